//! `/api/v1/devices/{id}/attributes` and `/api/v1/groups/{id}/attributes/{scope}`.

use actix_web::{HttpResponse, web};
use stead_api_types::{Attribute, AttributeQuery, AttributeScope, BulkResult};
use uuid::Uuid;

use crate::app::AppState;
use crate::audit;
use crate::auth::perm::{DevicesRead, DevicesWrite};
use crate::error::Error;
use crate::http::openapi::{BadQuery, Denied, JsonBody, NotFound};
use crate::http::{ApiResult, DeviceScope, Json, TenantScope};
use crate::ids::DeviceId;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/devices/{id}/attributes", web::get().to(list))
        .route("/devices/{id}/attributes/{scope}", web::post().to(set))
        .route("/devices/{id}/attributes/{scope}", web::delete().to(delete))
        .route("/groups/{id}/attributes/{scope}", web::post().to(set_group));
}

fn scope_of(raw: &str) -> Result<AttributeScope, Error> {
    AttributeScope::parse(raw).ok_or_else(|| {
        Error::invalid(
            "invalid_scope",
            "scope",
            format!("unknown attribute scope {raw:?}: use client, shared or server"),
        )
    })
}

#[utoipa::path(
    get,
    path = "/devices/{id}/attributes",
    tag = "attributes",
    operation_id = "list_attributes",
    summary = "A device's attributes (`devices.read` tenant-wide or over device groups)",
    params(("id" = Uuid, Path, description = "The device"), AttributeQuery),
    responses(
        (status = 200, description = "The device's attributes", body = Vec<Attribute>),
        Denied,
        NotFound,
        BadQuery,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn list(
    state: web::Data<AppState>,
    scope: DeviceScope<DevicesRead>,
    id: web::Path<Uuid>,
    q: web::Query<AttributeQuery>,
) -> ApiResult<web::Json<Vec<Attribute>>> {
    let device = crate::devices::repo::get(&state.db, &scope.ctx, DeviceId(*id)).await?;
    let keys = q.keys.as_deref().map(crate::attributes::split_keys);
    Ok(web::Json(
        crate::attributes::list(
            &state.db,
            &scope.ctx,
            DeviceId(device.id),
            q.scope,
            keys.as_deref(),
        )
        .await?,
    ))
}

/// Sets attributes and, for the shared scope, pushes them to the devices.
pub async fn set_and_push(
    state: &AppState,
    ctx: &crate::auth::TenantCtx,
    devices: &[Uuid],
    scope: AttributeScope,
    values: &serde_json::Map<String, serde_json::Value>,
) -> crate::error::Result<u64> {
    let now = crate::telemetry::now_ms();
    let changed = crate::attributes::set(&state.db, ctx, devices, scope, values, now).await?;
    if changed > 0 {
        push(state, devices, scope, values);
    }
    Ok(changed)
}

/// Shared attributes that were set (and committed) go to their devices.
pub fn push(
    state: &AppState,
    devices: &[Uuid],
    scope: AttributeScope,
    values: &serde_json::Map<String, serde_json::Value>,
) {
    if scope != AttributeScope::Shared {
        return;
    }
    let payload = serde_json::Value::Object(values.clone());
    for device in devices {
        state.sessions.deliver(
            DeviceId(*device),
            crate::ingress::Delivery::Attributes(payload.clone()),
        );
    }
}

#[utoipa::path(
    post,
    path = "/devices/{id}/attributes/{scope}",
    tag = "attributes",
    operation_id = "set_attributes",
    summary = "Set a device's attributes (`devices.write` tenant-wide or over device groups)",
    params(("id" = Uuid, Path, description = "The device"), ("scope" = AttributeScope, Path, description = "`client`, `shared` or `server`")),
    request_body(content = BTreeMap<String, serde_json::Value>, description = "Keys and their values (any JSON)"),
    responses(
        (status = 200, description = "The attributes set (shared ones are pushed to the device)", body = Vec<Attribute>),
        JsonBody,
        Denied,
        NotFound,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn set(
    state: web::Data<AppState>,
    scope: DeviceScope<DevicesWrite>,
    path: web::Path<(Uuid, String)>,
    Json(values): Json<serde_json::Map<String, serde_json::Value>>,
) -> ApiResult<web::Json<Vec<Attribute>>> {
    let (id, raw_scope) = path.into_inner();
    let attr_scope = scope_of(&raw_scope)?;
    let txn = audit::begin(&state.db, Some(scope.ctx.tenant_id())).await?;
    let device = crate::devices::repo::get(&txn, &scope.ctx, DeviceId(id)).await?;
    let now = crate::telemetry::now_ms();
    let changed =
        crate::attributes::set(&txn, &scope.ctx, &[device.id], attr_scope, &values, now).await?;
    audit::record(
        &txn,
        Some(scope.ctx.tenant_id()),
        &scope.actor,
        "attributes.set",
        "device",
        Some(device.id),
        serde_json::json!({"scope": attr_scope, "keys": values.keys().collect::<Vec<_>>()}),
    )
    .await?;
    txn.commit().await?;
    if changed > 0 {
        push(&state, &[device.id], attr_scope, &values);
    }
    let keys: Vec<String> = values.keys().cloned().collect();
    Ok(web::Json(
        crate::attributes::list(
            &state.db,
            &scope.ctx,
            DeviceId(device.id),
            Some(attr_scope),
            Some(&keys),
        )
        .await?,
    ))
}

#[utoipa::path(
    delete,
    path = "/devices/{id}/attributes/{scope}",
    tag = "attributes",
    operation_id = "delete_attributes",
    summary = "Delete a device's attributes (`devices.write` tenant-wide or over device groups)",
    params(("id" = Uuid, Path, description = "The device"), ("scope" = AttributeScope, Path, description = "`client`, `shared` or `server`"), AttributeQuery),
    responses(
        (status = 204, description = "Deleted (shared ones: the device is told)"),
        Denied,
        NotFound,
        BadQuery,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn delete(
    state: web::Data<AppState>,
    scope: DeviceScope<DevicesWrite>,
    path: web::Path<(Uuid, String)>,
    q: web::Query<AttributeQuery>,
) -> ApiResult<HttpResponse> {
    let (id, raw_scope) = path.into_inner();
    let attr_scope = scope_of(&raw_scope)?;
    let keys = q
        .keys
        .as_deref()
        .map(crate::attributes::split_keys)
        .unwrap_or_default();
    if keys.is_empty() {
        return Err(Error::invalid(
            "invalid_query",
            "keys",
            "name the keys to delete: ?keys=a,b",
        )
        .into());
    }
    let txn = audit::begin(&state.db, Some(scope.ctx.tenant_id())).await?;
    let device = crate::devices::repo::get(&txn, &scope.ctx, DeviceId(id)).await?;
    let deleted =
        crate::attributes::delete(&txn, &scope.ctx, DeviceId(device.id), attr_scope, &keys).await?;
    audit::record(
        &txn,
        Some(scope.ctx.tenant_id()),
        &scope.actor,
        "attributes.delete",
        "device",
        Some(device.id),
        serde_json::json!({"scope": attr_scope, "keys": deleted}),
    )
    .await?;
    txn.commit().await?;
    if attr_scope == AttributeScope::Shared && !deleted.is_empty() {
        state.sessions.deliver(
            DeviceId(device.id),
            crate::ingress::Delivery::Attributes(serde_json::json!({"deleted": deleted})),
        );
    }
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    post,
    path = "/groups/{id}/attributes/{scope}",
    tag = "attributes",
    operation_id = "set_group_attributes",
    summary = "Set attributes on a group's devices (`devices.write`)",
    params(("id" = Uuid, Path, description = "The group"), ("scope" = AttributeScope, Path, description = "`client`, `shared` or `server`")),
    request_body(content = BTreeMap<String, serde_json::Value>, description = "Keys and their values (any JSON)"),
    responses(
        (status = 200, description = "Set on every device of the group: how many", body = BulkResult),
        JsonBody,
        Denied,
        NotFound,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn set_group(
    state: web::Data<AppState>,
    scope: TenantScope<DevicesWrite>,
    path: web::Path<(Uuid, String)>,
    Json(values): Json<serde_json::Map<String, serde_json::Value>>,
) -> ApiResult<web::Json<BulkResult>> {
    let (id, raw_scope) = path.into_inner();
    let attr_scope = scope_of(&raw_scope)?;
    let txn = audit::begin(&state.db, Some(scope.ctx.tenant_id())).await?;
    let group = crate::groups::repo::get(&txn, &scope.ctx, id).await?;
    let members = crate::groups::repo::members(&txn, &scope.ctx, group.id).await?;
    let now = crate::telemetry::now_ms();
    let changed =
        crate::attributes::set(&txn, &scope.ctx, &members, attr_scope, &values, now).await?;
    audit::record(
        &txn,
        Some(scope.ctx.tenant_id()),
        &scope.actor,
        "attributes.set_group",
        "group",
        Some(group.id),
        serde_json::json!({"scope": attr_scope, "keys": values.keys().collect::<Vec<_>>(), "devices": members.len()}),
    )
    .await?;
    txn.commit().await?;
    if changed > 0 {
        push(&state, &members, attr_scope, &values);
    }
    Ok(web::Json(BulkResult {
        devices: members.len() as u64,
    }))
}
