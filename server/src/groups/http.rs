//! `/api/v1/groups`.

use actix_web::{HttpResponse, web};
use stead_api_types::{CreateGroup, DeviceGroup, GroupDevices, UpdateGroup};
use uuid::Uuid;

use super::repo;
use crate::app::AppState;
use crate::audit;
use crate::auth::perm::{DevicesRead, DevicesWrite};
use crate::http::{ApiResult, Json, TenantScope};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/groups", web::get().to(list))
        .route("/groups", web::post().to(create))
        .route("/groups/{id}", web::get().to(get))
        .route("/groups/{id}", web::patch().to(update))
        .route("/groups/{id}", web::delete().to(delete))
        .route("/groups/{id}/devices", web::post().to(add))
        .route("/groups/{id}/devices/remove", web::post().to(remove))
        .route("/devices/{id}/groups", web::get().to(of_device));
}

async fn list(
    state: web::Data<AppState>,
    scope: TenantScope<DevicesRead>,
) -> ApiResult<web::Json<Vec<DeviceGroup>>> {
    Ok(web::Json(repo::list(&state.db, &scope.ctx).await?))
}

async fn get(
    state: web::Data<AppState>,
    scope: TenantScope<DevicesRead>,
    id: web::Path<Uuid>,
) -> ApiResult<web::Json<DeviceGroup>> {
    let group = repo::get(&state.db, &scope.ctx, *id).await?;
    Ok(web::Json(repo::api_of(&state.db, &scope.ctx, group).await?))
}

async fn create(
    state: web::Data<AppState>,
    scope: TenantScope<DevicesWrite>,
    Json(body): Json<CreateGroup>,
) -> ApiResult<HttpResponse> {
    let group = repo::create(&state.db, &scope.ctx, body).await?;
    audit::record(
        &state.db,
        Some(scope.ctx.tenant_id()),
        &scope.actor,
        "group.create",
        "group",
        Some(group.id),
        serde_json::json!({"name": group.name}),
    )
    .await?;
    Ok(HttpResponse::Created().json(repo::to_api(group, 0)))
}

async fn update(
    state: web::Data<AppState>,
    scope: TenantScope<DevicesWrite>,
    id: web::Path<Uuid>,
    Json(body): Json<UpdateGroup>,
) -> ApiResult<web::Json<DeviceGroup>> {
    let detail = serde_json::to_value(&body).unwrap_or_default();
    let group = repo::update(&state.db, &scope.ctx, *id, body).await?;
    audit::record(
        &state.db,
        Some(scope.ctx.tenant_id()),
        &scope.actor,
        "group.update",
        "group",
        Some(group.id),
        detail,
    )
    .await?;
    Ok(web::Json(repo::api_of(&state.db, &scope.ctx, group).await?))
}

async fn delete(
    state: web::Data<AppState>,
    scope: TenantScope<DevicesWrite>,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    repo::delete(&state.db, &scope.ctx, *id).await?;
    audit::record(
        &state.db,
        Some(scope.ctx.tenant_id()),
        &scope.actor,
        "group.delete",
        "group",
        Some(*id),
        serde_json::json!({}),
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn add(
    state: web::Data<AppState>,
    scope: TenantScope<DevicesWrite>,
    id: web::Path<Uuid>,
    Json(body): Json<GroupDevices>,
) -> ApiResult<web::Json<DeviceGroup>> {
    let group = repo::get(&state.db, &scope.ctx, *id).await?;
    let devices = repo::own_devices(&state.db, &scope.ctx, &body.device_ids).await?;
    repo::add(&state.db, &scope.ctx, group.id, &devices).await?;
    audit::record(
        &state.db,
        Some(scope.ctx.tenant_id()),
        &scope.actor,
        "group.add_devices",
        "group",
        Some(group.id),
        serde_json::json!({"devices": devices.len()}),
    )
    .await?;
    Ok(web::Json(repo::api_of(&state.db, &scope.ctx, group).await?))
}

async fn remove(
    state: web::Data<AppState>,
    scope: TenantScope<DevicesWrite>,
    id: web::Path<Uuid>,
    Json(body): Json<GroupDevices>,
) -> ApiResult<web::Json<DeviceGroup>> {
    let group = repo::get(&state.db, &scope.ctx, *id).await?;
    let n = repo::remove(&state.db, &scope.ctx, group.id, &body.device_ids).await?;
    audit::record(
        &state.db,
        Some(scope.ctx.tenant_id()),
        &scope.actor,
        "group.remove_devices",
        "group",
        Some(group.id),
        serde_json::json!({"devices": n}),
    )
    .await?;
    Ok(web::Json(repo::api_of(&state.db, &scope.ctx, group).await?))
}

async fn of_device(
    state: web::Data<AppState>,
    scope: TenantScope<DevicesRead>,
    id: web::Path<Uuid>,
) -> ApiResult<web::Json<Vec<DeviceGroup>>> {
    // 404 for a device that is not the caller's.
    crate::devices::repo::get(&state.db, &scope.ctx, crate::ids::DeviceId(*id)).await?;
    Ok(web::Json(
        repo::of_device(&state.db, &scope.ctx, *id).await?,
    ))
}
