//! `/api/v1/groups`.

use actix_web::{HttpResponse, web};
use stead_api_types::{CreateGroup, DeviceGroup, GroupDevices, UpdateGroup};
use uuid::Uuid;

use super::repo;
use crate::app::AppState;
use crate::audit;
use crate::auth::perm::{DevicesRead, DevicesWrite};
use crate::http::{ApiResult, DeviceScope, Json, TenantScope};

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
    scope: DeviceScope<DevicesRead>,
) -> ApiResult<web::Json<Vec<DeviceGroup>>> {
    Ok(web::Json(repo::list(&state.db, &scope.ctx).await?))
}

async fn get(
    state: web::Data<AppState>,
    scope: DeviceScope<DevicesRead>,
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
    let txn = audit::begin(&state.db, Some(scope.ctx.tenant_id())).await?;
    let group = repo::create(&txn, &scope.ctx, body).await?;
    audit::record(
        &txn,
        Some(scope.ctx.tenant_id()),
        &scope.actor,
        "group.create",
        "group",
        Some(group.id),
        serde_json::json!({"name": group.name}),
    )
    .await?;
    txn.commit().await?;
    Ok(HttpResponse::Created().json(repo::to_api(group, 0)))
}

async fn update(
    state: web::Data<AppState>,
    scope: TenantScope<DevicesWrite>,
    id: web::Path<Uuid>,
    Json(body): Json<UpdateGroup>,
) -> ApiResult<web::Json<DeviceGroup>> {
    let txn = audit::begin(&state.db, Some(scope.ctx.tenant_id())).await?;
    let before = repo::to_api(repo::get(&txn, &scope.ctx, *id).await?, 0);
    let group = repo::update(&txn, &scope.ctx, *id, body).await?;
    audit::record(
        &txn,
        Some(scope.ctx.tenant_id()),
        &scope.actor,
        "group.update",
        "group",
        Some(group.id),
        audit::diff(&before, &repo::to_api(group.clone(), 0)),
    )
    .await?;
    txn.commit().await?;
    Ok(web::Json(repo::api_of(&state.db, &scope.ctx, group).await?))
}

async fn delete(
    state: web::Data<AppState>,
    scope: TenantScope<DevicesWrite>,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let txn = audit::begin(&state.db, Some(scope.ctx.tenant_id())).await?;
    let before = repo::get(&txn, &scope.ctx, *id).await?;
    repo::delete(&txn, &scope.ctx, *id).await?;
    audit::record(
        &txn,
        Some(scope.ctx.tenant_id()),
        &scope.actor,
        "group.delete",
        "group",
        Some(*id),
        serde_json::json!({"name": before.name}),
    )
    .await?;
    txn.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn add(
    state: web::Data<AppState>,
    scope: TenantScope<DevicesWrite>,
    id: web::Path<Uuid>,
    Json(body): Json<GroupDevices>,
) -> ApiResult<web::Json<DeviceGroup>> {
    let txn = audit::begin(&state.db, Some(scope.ctx.tenant_id())).await?;
    let group = repo::get(&txn, &scope.ctx, *id).await?;
    let devices = repo::own_devices(&txn, &scope.ctx, &body.device_ids).await?;
    repo::add(&txn, &scope.ctx, group.id, &devices).await?;
    audit::record(
        &txn,
        Some(scope.ctx.tenant_id()),
        &scope.actor,
        "group.add_devices",
        "group",
        Some(group.id),
        serde_json::json!({"devices": devices}),
    )
    .await?;
    txn.commit().await?;
    Ok(web::Json(repo::api_of(&state.db, &scope.ctx, group).await?))
}

async fn remove(
    state: web::Data<AppState>,
    scope: TenantScope<DevicesWrite>,
    id: web::Path<Uuid>,
    Json(body): Json<GroupDevices>,
) -> ApiResult<web::Json<DeviceGroup>> {
    let txn = audit::begin(&state.db, Some(scope.ctx.tenant_id())).await?;
    let group = repo::get(&txn, &scope.ctx, *id).await?;
    let n = repo::remove(&txn, &scope.ctx, group.id, &body.device_ids).await?;
    audit::record(
        &txn,
        Some(scope.ctx.tenant_id()),
        &scope.actor,
        "group.remove_devices",
        "group",
        Some(group.id),
        serde_json::json!({"devices": n, "device_ids": body.device_ids}),
    )
    .await?;
    txn.commit().await?;
    Ok(web::Json(repo::api_of(&state.db, &scope.ctx, group).await?))
}

async fn of_device(
    state: web::Data<AppState>,
    scope: DeviceScope<DevicesRead>,
    id: web::Path<Uuid>,
) -> ApiResult<web::Json<Vec<DeviceGroup>>> {
    // 404 for a device that is not the caller's.
    crate::devices::repo::get(&state.db, &scope.ctx, crate::ids::DeviceId(*id)).await?;
    Ok(web::Json(
        repo::of_device(&state.db, &scope.ctx, *id).await?,
    ))
}
