//! The REST endpoints the console calls, typed with `stead-api-types`.

use stead_api_types::{
    CreateDevice, CreateTenant, CreateUser, CreatedDevice, Device, DeviceCredentials, Page, Tenant,
    UpdateDevice, UpdateTenant, UpdateUser, User,
};
use uuid::Uuid;

use crate::session::{ApiError, Session};

pub const PER_PAGE: u64 = 20;

fn page_query(page: u64) -> Vec<(&'static str, String)> {
    vec![
        ("page", page.to_string()),
        ("per_page", PER_PAGE.to_string()),
    ]
}

pub async fn list_devices(
    s: Session,
    page: u64,
    search: &str,
    sort: &str,
) -> Result<Page<Device>, ApiError> {
    let mut query = page_query(page);
    let search = search.trim();
    if !search.is_empty() {
        query.push(("search", search.to_owned()));
    }
    if !sort.is_empty() {
        query.push(("sort", sort.to_owned()));
    }
    s.get_query("/api/v1/devices", &query).await
}

pub async fn create_device(s: Session, body: &CreateDevice) -> Result<CreatedDevice, ApiError> {
    s.post("/api/v1/devices", body).await
}

pub async fn get_device(s: Session, id: Uuid) -> Result<Device, ApiError> {
    s.get(&format!("/api/v1/devices/{id}")).await
}

pub async fn update_device(s: Session, id: Uuid, body: &UpdateDevice) -> Result<Device, ApiError> {
    s.patch(&format!("/api/v1/devices/{id}"), body).await
}

pub async fn delete_device(s: Session, id: Uuid) -> Result<(), ApiError> {
    s.delete(&format!("/api/v1/devices/{id}")).await
}

pub async fn rotate_device_token(s: Session, id: Uuid) -> Result<DeviceCredentials, ApiError> {
    s.post(
        &format!("/api/v1/devices/{id}/credentials/rotate"),
        &serde_json::json!({}),
    )
    .await
}

pub async fn list_users(s: Session, page: u64) -> Result<Page<User>, ApiError> {
    s.get_query("/api/v1/users", &page_query(page)).await
}

pub async fn create_user(s: Session, body: &CreateUser) -> Result<User, ApiError> {
    s.post("/api/v1/users", body).await
}

pub async fn update_user(s: Session, id: Uuid, body: &UpdateUser) -> Result<User, ApiError> {
    s.patch(&format!("/api/v1/users/{id}"), body).await
}

pub async fn list_tenants(s: Session, page: u64) -> Result<Page<Tenant>, ApiError> {
    s.get_query("/api/v1/tenants", &page_query(page)).await
}

pub async fn create_tenant(s: Session, body: &CreateTenant) -> Result<Tenant, ApiError> {
    s.post("/api/v1/tenants", body).await
}

pub async fn update_tenant(s: Session, id: Uuid, body: &UpdateTenant) -> Result<Tenant, ApiError> {
    s.patch(&format!("/api/v1/tenants/{id}"), body).await
}
