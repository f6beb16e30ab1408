//! `/api/v1/groups`.

use actix_web::{HttpResponse, web};
use stead_api_types::{ApiErrorBody, CreateGroup, DeviceGroup, GroupDevices, UpdateGroup};
use uuid::Uuid;

use super::repo;
use crate::app::AppState;
use crate::audit;
use crate::auth::perm::{DevicesRead, DevicesWrite};
use crate::http::openapi::{Denied, JsonBody, NotFound};
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

#[utoipa::path(
    get,
    path = "/groups",
    tag = "groups",
    operation_id = "list_groups",
    summary = "List device groups (`devices.read` tenant-wide or over device groups)",
    responses(
        (status = 200, description = "The device groups within the caller's reach", body = Vec<DeviceGroup>),
        Denied,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn list(
    state: web::Data<AppState>,
    scope: DeviceScope<DevicesRead>,
) -> ApiResult<web::Json<Vec<DeviceGroup>>> {
    Ok(web::Json(repo::list(&state.db, &scope.ctx).await?))
}

#[utoipa::path(
    get,
    path = "/groups/{id}",
    tag = "groups",
    operation_id = "get_group",
    summary = "Get a device group (`devices.read` tenant-wide or over device groups)",
    params(("id" = Uuid, Path, description = "The group")),
    responses(
        (status = 200, description = "The group", body = DeviceGroup),
        Denied,
        NotFound,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn get(
    state: web::Data<AppState>,
    scope: DeviceScope<DevicesRead>,
    id: web::Path<Uuid>,
) -> ApiResult<web::Json<DeviceGroup>> {
    let group = repo::get(&state.db, &scope.ctx, *id).await?;
    Ok(web::Json(repo::api_of(&state.db, &scope.ctx, group).await?))
}

#[utoipa::path(
    post,
    path = "/groups",
    tag = "groups",
    operation_id = "create_group",
    summary = "Create a device group (`devices.write`)",
    request_body = CreateGroup,
    responses(
        (status = 201, description = "Created", body = DeviceGroup),
        JsonBody,
        Denied,
        (status = 409, description = "The name is taken (`group_name_taken`)", body = ApiErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
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

#[utoipa::path(
    patch,
    path = "/groups/{id}",
    tag = "groups",
    operation_id = "update_group",
    summary = "Change a device group (`devices.write`)",
    params(("id" = Uuid, Path, description = "The group")),
    request_body = UpdateGroup,
    responses(
        (status = 200, description = "The group, changed", body = DeviceGroup),
        JsonBody,
        Denied,
        NotFound,
        (status = 409, description = "The name is taken (`group_name_taken`)", body = ApiErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
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

#[utoipa::path(
    delete,
    path = "/groups/{id}",
    tag = "groups",
    operation_id = "delete_group",
    summary = "Delete a device group (`devices.write`)",
    params(("id" = Uuid, Path, description = "The group")),
    responses(
        (status = 204, description = "Deleted (its devices stay)"),
        Denied,
        NotFound,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
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

#[utoipa::path(
    post,
    path = "/groups/{id}/devices",
    tag = "groups",
    operation_id = "add_group_devices",
    summary = "Add devices to a group (`devices.write`)",
    params(("id" = Uuid, Path, description = "The group")),
    request_body = GroupDevices,
    responses(
        (status = 200, description = "The group, with the devices added", body = DeviceGroup),
        JsonBody,
        Denied,
        NotFound,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
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

#[utoipa::path(
    post,
    path = "/groups/{id}/devices/remove",
    tag = "groups",
    operation_id = "remove_group_devices",
    summary = "Remove devices from a group (`devices.write`)",
    params(("id" = Uuid, Path, description = "The group")),
    request_body = GroupDevices,
    responses(
        (status = 200, description = "The group, without the devices", body = DeviceGroup),
        JsonBody,
        Denied,
        NotFound,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
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

#[utoipa::path(
    get,
    path = "/devices/{id}/groups",
    tag = "groups",
    operation_id = "device_groups",
    summary = "A device's groups (`devices.read` tenant-wide or over device groups)",
    params(("id" = Uuid, Path, description = "The device")),
    responses(
        (status = 200, description = "The groups the device is in", body = Vec<DeviceGroup>),
        Denied,
        NotFound,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
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
