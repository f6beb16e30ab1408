//! `/api/v1/devices`.

use actix_web::{HttpResponse, web};
use stead_api_types::{
    CreateDevice, CreatedDevice, Device, DeviceCredentials, DeviceListQuery, Page, UpdateDevice,
};
use uuid::Uuid;

use super::repo;
use crate::app::AppState;
use crate::audit;
use crate::auth::perm::{DevicesRead, DevicesWrite};
use crate::http::{ApiResult, Json, TenantScope};
use crate::ids::DeviceId;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/devices", web::get().to(list))
        .route("/devices", web::post().to(create))
        .route("/devices/{id}", web::get().to(get))
        .route("/devices/{id}", web::patch().to(update))
        .route("/devices/{id}", web::delete().to(delete))
        .route("/devices/{id}/credentials/rotate", web::post().to(rotate));
}

async fn list(
    state: web::Data<AppState>,
    scope: TenantScope<DevicesRead>,
    query: web::Query<DeviceListQuery>,
) -> ApiResult<web::Json<Page<Device>>> {
    let query = query.into_inner();
    let (page, per_page) = crate::http::paging(query.page, query.per_page)?;
    let (items, total) = repo::list(
        &state.db,
        &scope.ctx,
        repo::ListQuery {
            page,
            per_page,
            search: query.search,
            sort: query.sort,
            profile: query.profile,
            group: query.group,
            label: query.label,
            online: query.online,
        },
    )
    .await?;
    Ok(web::Json(Page {
        items: items.into_iter().map(repo::to_api).collect(),
        total,
        page,
        per_page,
    }))
}

async fn create(
    state: web::Data<AppState>,
    scope: TenantScope<DevicesWrite>,
    Json(body): Json<CreateDevice>,
) -> ApiResult<HttpResponse> {
    let (device, credentials) = repo::create(&state.db, &scope.ctx, body).await?;
    audit::record(
        &state.db,
        Some(scope.ctx.tenant_id()),
        &scope.actor,
        "device.create",
        "device",
        Some(device.id),
        serde_json::json!({"name": device.name}),
    )
    .await?;
    Ok(HttpResponse::Created().json(CreatedDevice {
        device: repo::to_api(device),
        access_token: credentials.access_token,
        mqtt_basic: credentials.mqtt_basic,
    }))
}

async fn get(
    state: web::Data<AppState>,
    scope: TenantScope<DevicesRead>,
    id: web::Path<Uuid>,
) -> ApiResult<web::Json<Device>> {
    let device = repo::get(&state.db, &scope.ctx, DeviceId(*id)).await?;
    Ok(web::Json(repo::to_api(device)))
}

async fn update(
    state: web::Data<AppState>,
    scope: TenantScope<DevicesWrite>,
    id: web::Path<Uuid>,
    Json(body): Json<UpdateDevice>,
) -> ApiResult<web::Json<Device>> {
    let detail = serde_json::to_value(&body).unwrap_or_default();
    let device = repo::update(&state.db, &scope.ctx, DeviceId(*id), body).await?;
    audit::record(
        &state.db,
        Some(scope.ctx.tenant_id()),
        &scope.actor,
        "device.update",
        "device",
        Some(device.id),
        detail,
    )
    .await?;
    Ok(web::Json(repo::to_api(device)))
}

async fn delete(
    state: web::Data<AppState>,
    scope: TenantScope<DevicesWrite>,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    repo::delete(&state.db, &scope.ctx, DeviceId(*id)).await?;
    state.sessions.revoke_device(DeviceId(*id));
    audit::record(
        &state.db,
        Some(scope.ctx.tenant_id()),
        &scope.actor,
        "device.delete",
        "device",
        Some(*id),
        serde_json::json!({}),
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn rotate(
    state: web::Data<AppState>,
    scope: TenantScope<DevicesWrite>,
    id: web::Path<Uuid>,
) -> ApiResult<web::Json<DeviceCredentials>> {
    let credentials = repo::rotate_credentials(&state.db, &scope.ctx, DeviceId(*id)).await?;
    // The old token stops working now, on this node's cache and its live session.
    state.sessions.revoke_device(DeviceId(*id));
    state.timeline.record_for(
        scope.ctx.tenant_id(),
        DeviceId(*id),
        crate::timeline::EventKind::CredentialsRotated,
        format!("Credentials rotated by {}", scope.actor.email),
        serde_json::json!({"by": scope.actor.email}),
    );
    audit::record(
        &state.db,
        Some(scope.ctx.tenant_id()),
        &scope.actor,
        "device.credentials.rotate",
        "device",
        Some(*id),
        serde_json::json!({}),
    )
    .await?;
    Ok(web::Json(credentials))
}
