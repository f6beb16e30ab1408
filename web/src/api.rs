//! The REST endpoints the console calls, typed with `stead-api-types`.

use stead_api_types::{
    AggregateSeries, ConnectionInfo, CreateDevice, CreateTenant, CreateUser, CreatedDevice, Device,
    DeviceCredentials, LatestTelemetry, Page, Presence, Tenant, TimelineEvent, UpdateDevice,
    UpdateTenant, UpdateUser, User,
};
use uuid::Uuid;

use crate::session::{ApiError, Session};

pub const PER_PAGE: u64 = 20;
/// The most keys one telemetry query may name.
pub const MAX_KEYS: usize = 50;

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

// ---------------------------------------------------------------------------------------------
// A device's life: telemetry, presence, timeline

pub async fn latest_telemetry(s: Session, id: Uuid) -> Result<LatestTelemetry, ApiError> {
    s.get(&format!("/api/v1/devices/{id}/telemetry/latest"))
        .await
}

/// Buckets of `interval_ms` between `from` and `to` (ms), aggregated by `agg` (avg, min, max,
/// sum or count).
pub async fn aggregate_telemetry(
    s: Session,
    id: Uuid,
    keys: &[String],
    (from, to): (i64, i64),
    interval_ms: i64,
    agg: &str,
) -> Result<AggregateSeries, ApiError> {
    let query = vec![
        ("keys", keys.join(",")),
        ("from", from.to_string()),
        ("to", to.to_string()),
        ("interval", interval_ms.to_string()),
        ("agg", agg.to_owned()),
    ];
    s.get_query(&format!("/api/v1/devices/{id}/telemetry/aggregate"), &query)
        .await
}

/// Every key's raw points between `from` and `to` as CSV.
pub async fn telemetry_csv(
    s: Session,
    id: Uuid,
    from: i64,
    to: i64,
) -> Result<web_sys::Blob, ApiError> {
    let query = vec![("from", from.to_string()), ("to", to.to_string())];
    s.get_blob(&format!("/api/v1/devices/{id}/telemetry.csv"), &query)
        .await
}

pub async fn presence(s: Session, id: Uuid) -> Result<Presence, ApiError> {
    s.get(&format!("/api/v1/devices/{id}/presence")).await
}

/// The newest `limit` events of the device's timeline, newest first.
pub async fn timeline(s: Session, id: Uuid, limit: u32) -> Result<Vec<TimelineEvent>, ApiError> {
    s.get_query(
        &format!("/api/v1/devices/{id}/timeline"),
        &[("limit", limit.to_string())],
    )
    .await
}

pub async fn connection_info(s: Session) -> Result<ConnectionInfo, ApiError> {
    s.get("/api/v1/connection-info").await
}
