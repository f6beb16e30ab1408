//! `/api/v1/devices`.

use actix_web::{HttpResponse, web};
use sea_orm::DatabaseTransaction;
use stead_api_types::{
    ApiErrorBody, CreateDevice, CreatedDevice, Device, DeviceCredentials, DeviceListQuery,
    DisableDevice, DisconnectReason, ExpiringQuery, Page, SetCredentials, UpdateDevice,
};
use uuid::Uuid;

use super::repo;
use crate::app::AppState;
use crate::audit;
use crate::auth::perm::{DevicesRead, DevicesWrite};
use crate::http::openapi::{BadQuery, Denied, JsonBody, NotFound};
use crate::http::{ApiResult, DeviceScope, Json, TenantScope};
use crate::ids::DeviceId;
use crate::timeline::EventKind;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/devices", web::get().to(list))
        .route("/devices", web::post().to(create))
        .route("/devices/credentials/expiring", web::get().to(expiring))
        .route("/devices/{id}", web::get().to(get))
        .route("/devices/{id}", web::patch().to(update))
        .route("/devices/{id}", web::delete().to(delete))
        .route("/devices/{id}/sub-devices", web::get().to(sub_devices))
        .route("/devices/{id}/credentials", web::put().to(set_credentials))
        .route("/devices/{id}/credentials/rotate", web::post().to(rotate))
        .route("/devices/{id}/credentials/revoke", web::post().to(revoke))
        .route("/devices/{id}/disable", web::post().to(disable))
        .route("/devices/{id}/enable", web::post().to(enable));
}

#[utoipa::path(
    get,
    path = "/devices",
    tag = "devices",
    operation_id = "list_devices",
    summary = "List devices (`devices.read` tenant-wide or over device groups)",
    params(DeviceListQuery),
    responses(
        (status = 200, description = "A page of the devices within the caller's reach", body = Page<Device>),
        Denied,
        BadQuery,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn list(
    state: web::Data<AppState>,
    scope: DeviceScope<DevicesRead>,
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
            gateway: query.gateway,
            alarm_severity: query.alarm_severity,
        },
    )
    .await?;
    Ok(web::Json(Page {
        items: with_status(&state, &scope.ctx, items).await?,
        total,
        page,
        per_page,
    }))
}

/// Devices as lists show them: each with whether it is online, when it was last seen and its
/// most severe active alarm (the live state and one alarm query for the page).
async fn with_status(
    state: &AppState,
    ctx: &crate::auth::TenantCtx,
    items: Vec<super::model::Model>,
) -> ApiResult<Vec<Device>> {
    let ids: Vec<Uuid> = items.iter().map(|d| d.id).collect();
    let presence = state
        .live
        .presence_of(&ids.iter().copied().map(DeviceId).collect::<Vec<_>>())
        .await?;
    let worst = crate::alarms::repo::worst_active(&state.db, ctx, &ids).await?;
    Ok(items
        .into_iter()
        .zip(presence)
        .map(|(d, p)| {
            let id = d.id;
            let mut device = repo::to_api(d);
            device.status = Some(stead_api_types::DeviceStatus {
                online: p.online,
                last_activity: p.last_activity,
                alarm_severity: worst.get(&id).copied(),
            });
            device
        })
        .collect())
}

/// `GET /devices/{id}/sub-devices`: the devices behind a gateway (the list's filters apply).
#[utoipa::path(
    get,
    path = "/devices/{id}/sub-devices",
    tag = "devices",
    operation_id = "list_sub_devices",
    summary = "List the devices behind a gateway (`devices.read`)",
    params(("id" = Uuid, Path, description = "The gateway"), DeviceListQuery),
    responses(
        (status = 200, description = "A page of the devices behind the gateway, within the caller's reach", body = Page<Device>),
        Denied,
        BadQuery,
        NotFound,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn sub_devices(
    state: web::Data<AppState>,
    scope: DeviceScope<DevicesRead>,
    id: web::Path<Uuid>,
    query: web::Query<DeviceListQuery>,
) -> ApiResult<web::Json<Page<Device>>> {
    // Another tenant's gateway, or one out of reach, is 404 like any device.
    repo::get(&state.db, &scope.ctx, DeviceId(*id)).await?;
    let mut query = query.into_inner();
    query.gateway = Some(*id);
    list(state, scope, web::Query(query)).await
}

#[utoipa::path(
    post,
    path = "/devices",
    tag = "devices",
    operation_id = "create_device",
    summary = "Create a device (`devices.write`)",
    request_body = CreateDevice,
    responses(
        (status = 201, description = "Created: its secret (access token or MQTT password) is shown this once", body = CreatedDevice),
        JsonBody,
        Denied,
        (status = 409, description = "The name or MQTT user name is taken, or the tenant's device quota is used up (`device_name_taken`, `mqtt_username_taken`, `quota_exceeded`)", body = ApiErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn create(
    state: web::Data<AppState>,
    scope: TenantScope<DevicesWrite>,
    Json(body): Json<CreateDevice>,
) -> ApiResult<HttpResponse> {
    let txn = audit::begin(&state.db, Some(scope.ctx.tenant_id())).await?;
    let (device, credentials) = repo::create(
        &txn,
        &scope.ctx,
        &crate::tenants::quotas::Defaults::of(&state.config),
        body,
    )
    .await?;
    audit::record(
        &txn,
        Some(scope.ctx.tenant_id()),
        &scope.actor,
        "device.create",
        "device",
        Some(device.id),
        serde_json::json!({"name": device.name}),
    )
    .await?;
    txn.commit().await?;
    Ok(HttpResponse::Created().json(CreatedDevice {
        device: repo::to_api(device),
        access_token: credentials.access_token,
        mqtt_basic: credentials.mqtt_basic,
    }))
}

#[utoipa::path(
    get,
    path = "/devices/{id}",
    tag = "devices",
    operation_id = "get_device",
    summary = "Get a device (`devices.read` tenant-wide or over device groups)",
    params(("id" = Uuid, Path, description = "The device")),
    responses(
        (status = 200, description = "The device", body = Device),
        Denied,
        NotFound,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn get(
    state: web::Data<AppState>,
    scope: DeviceScope<DevicesRead>,
    id: web::Path<Uuid>,
) -> ApiResult<web::Json<Device>> {
    let device = repo::get(&state.db, &scope.ctx, DeviceId(*id)).await?;
    Ok(web::Json(repo::to_api(device)))
}

#[utoipa::path(
    patch,
    path = "/devices/{id}",
    tag = "devices",
    operation_id = "update_device",
    summary = "Change a device (`devices.write` tenant-wide or over device groups)",
    params(("id" = Uuid, Path, description = "The device")),
    request_body = UpdateDevice,
    responses(
        (status = 200, description = "The device, changed", body = Device),
        JsonBody,
        Denied,
        NotFound,
        (status = 409, description = "The name is taken (`device_name_taken`)", body = ApiErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn update(
    state: web::Data<AppState>,
    scope: DeviceScope<DevicesWrite>,
    id: web::Path<Uuid>,
    Json(body): Json<UpdateDevice>,
) -> ApiResult<web::Json<Device>> {
    let txn = audit::begin(&state.db, Some(scope.ctx.tenant_id())).await?;
    let before = repo::to_api(repo::get(&txn, &scope.ctx, DeviceId(*id)).await?);
    let device = repo::update(&txn, &scope.ctx, DeviceId(*id), body).await?;
    audit::record(
        &txn,
        Some(scope.ctx.tenant_id()),
        &scope.actor,
        "device.update",
        "device",
        Some(device.id),
        audit::diff(&before, &repo::to_api(device.clone())),
    )
    .await?;
    txn.commit().await?;
    // What it may speak for, or who speaks for it, changed: its session ends (a gateway's with
    // the devices behind it), so that it reconnects as what it is now.
    if before.gateway != device.gateway || before.gateway_id != device.gateway_id {
        state.sessions.revoke_device(DeviceId(*id));
    }
    Ok(web::Json(repo::to_api(device)))
}

#[utoipa::path(
    delete,
    path = "/devices/{id}",
    tag = "devices",
    operation_id = "delete_device",
    summary = "Delete a device (`devices.write` tenant-wide or over device groups)",
    params(("id" = Uuid, Path, description = "The device")),
    responses(
        (status = 204, description = "Deleted; a live session ends"),
        Denied,
        NotFound,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn delete(
    state: web::Data<AppState>,
    scope: DeviceScope<DevicesWrite>,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let txn = audit::begin(&state.db, Some(scope.ctx.tenant_id())).await?;
    let before = repo::get(&txn, &scope.ctx, DeviceId(*id)).await?;
    repo::delete(&txn, &scope.ctx, DeviceId(*id)).await?;
    audit::record(
        &txn,
        Some(scope.ctx.tenant_id()),
        &scope.actor,
        "device.delete",
        "device",
        Some(*id),
        serde_json::json!({"name": before.name}),
    )
    .await?;
    txn.commit().await?;
    state.sessions.revoke_device(DeviceId(*id));
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    post,
    path = "/devices/{id}/credentials/rotate",
    tag = "devices",
    operation_id = "rotate_credentials",
    summary = "Rotate a device's credentials (`devices.write` tenant-wide or over device groups)",
    params(("id" = Uuid, Path, description = "The device")),
    responses(
        (status = 200, description = "New credentials of the same type: the secret is shown this once, the old one stops working", body = DeviceCredentials),
        Denied,
        NotFound,
        (status = 400, description = "The device has no credentials to rotate (revoked): set new ones instead", body = ApiErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn rotate(
    state: web::Data<AppState>,
    scope: DeviceScope<DevicesWrite>,
    id: web::Path<Uuid>,
) -> ApiResult<web::Json<DeviceCredentials>> {
    let txn = audit::begin(&state.db, Some(scope.ctx.tenant_id())).await?;
    let credentials = repo::rotate_credentials(&txn, &scope.ctx, DeviceId(*id)).await?;
    changed(
        &state,
        &scope,
        txn,
        None,
        *id,
        EventKind::CredentialsRotated,
        "device.credentials.rotate",
        format!("Credentials rotated by {}", scope.actor.email),
        serde_json::json!({}),
    )
    .await?;
    Ok(web::Json(credentials))
}

/// A device's credentials or state changed (in `txn`): the audit entry joins the transaction,
/// which commits; then the old secret stops working and cached logins (which carry the disabled
/// state) are forgotten, on every node, and a live session ends (with `end`'s reason, when
/// given); its timeline says who did it.
#[allow(clippy::too_many_arguments)]
async fn changed(
    state: &AppState,
    scope: &DeviceScope<DevicesWrite>,
    txn: DatabaseTransaction,
    end: Option<DisconnectReason>,
    id: Uuid,
    kind: EventKind,
    action: &str,
    detail: String,
    data: serde_json::Value,
) -> ApiResult<()> {
    audit::record(
        &txn,
        Some(scope.ctx.tenant_id()),
        &scope.actor,
        action,
        "device",
        Some(id),
        data.clone(),
    )
    .await?;
    txn.commit().await?;
    // The session ends with its reason first; the revocation then only clears the cached logins
    // (the session has already been told why it ends).
    if let Some(reason) = end {
        state.sessions.end_session(DeviceId(id), reason);
    }
    state.sessions.revoke_device(DeviceId(id));
    let mut timeline_data = data.clone();
    if let Some(map) = timeline_data.as_object_mut() {
        map.insert("by".into(), scope.actor.email.clone().into());
    }
    state.timeline.record_for(
        scope.ctx.tenant_id(),
        DeviceId(id),
        kind,
        detail,
        timeline_data,
    );
    Ok(())
}

/// `PUT /devices/{id}/credentials`: new credentials of either type (the secret is shown once).
#[utoipa::path(
    put,
    path = "/devices/{id}/credentials",
    tag = "devices",
    operation_id = "set_credentials",
    summary = "Set a device's credentials (`devices.write` tenant-wide or over device groups)",
    description = "`PUT /devices/{id}/credentials`: new credentials of either type (the secret is shown once).",
    params(("id" = Uuid, Path, description = "The device")),
    request_body = SetCredentials,
    responses(
        (status = 200, description = "The new credentials: a generated secret is shown this once", body = DeviceCredentials),
        JsonBody,
        Denied,
        NotFound,
        (status = 409, description = "The access token or MQTT user name is taken (`mqtt_username_taken`, `token_taken`)", body = ApiErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn set_credentials(
    state: web::Data<AppState>,
    scope: DeviceScope<DevicesWrite>,
    id: web::Path<Uuid>,
    Json(body): Json<SetCredentials>,
) -> ApiResult<web::Json<DeviceCredentials>> {
    let txn = audit::begin(&state.db, Some(scope.ctx.tenant_id())).await?;
    let credentials = repo::set_credentials(&txn, &scope.ctx, DeviceId(*id), body).await?;
    let data = serde_json::json!({
        "credentials_type": credentials.credentials_type,
        "expires_at": credentials.expires_at,
    });
    changed(
        &state,
        &scope,
        txn,
        None,
        *id,
        EventKind::Credentials,
        "device.credentials.set",
        format!("New credentials set by {}", scope.actor.email),
        data,
    )
    .await?;
    Ok(web::Json(credentials))
}

/// `POST /devices/{id}/credentials/revoke`: no credentials at all until new ones are set; a
/// live session ends at once.
#[utoipa::path(
    post,
    path = "/devices/{id}/credentials/revoke",
    tag = "devices",
    operation_id = "revoke_credentials",
    summary = "Revoke a device's credentials (`devices.write` tenant-wide or over device groups)",
    description = "`POST /devices/{id}/credentials/revoke`: no credentials at all until new ones are set; a live session ends at once.",
    params(("id" = Uuid, Path, description = "The device")),
    responses(
        (status = 200, description = "The device, without credentials; a live session ends", body = Device),
        Denied,
        NotFound,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn revoke(
    state: web::Data<AppState>,
    scope: DeviceScope<DevicesWrite>,
    id: web::Path<Uuid>,
) -> ApiResult<web::Json<Device>> {
    let txn = audit::begin(&state.db, Some(scope.ctx.tenant_id())).await?;
    let device = repo::revoke_credentials(&txn, &scope.ctx, DeviceId(*id)).await?;
    changed(
        &state,
        &scope,
        txn,
        None,
        *id,
        EventKind::Credentials,
        "device.credentials.revoke",
        format!("Credentials revoked by {}", scope.actor.email),
        serde_json::json!({}),
    )
    .await?;
    Ok(web::Json(repo::to_api(device)))
}

/// `POST /devices/{id}/disable`: quarantine. The live session ends with reason `disabled`; the
/// device is refused at CONNECT and on the HTTP device API until it is enabled.
#[utoipa::path(
    post,
    path = "/devices/{id}/disable",
    tag = "devices",
    operation_id = "disable_device",
    summary = "Disable (quarantine) a device (`devices.write` tenant-wide or over device groups)",
    description = "`POST /devices/{id}/disable`: quarantine. The live session ends with reason `disabled`; the device is refused at CONNECT and on the HTTP device API until it is enabled.",
    params(("id" = Uuid, Path, description = "The device")),
    request_body = DisableDevice,
    responses(
        (status = 200, description = "The device, disabled", body = Device),
        JsonBody,
        Denied,
        NotFound,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn disable(
    state: web::Data<AppState>,
    scope: DeviceScope<DevicesWrite>,
    id: web::Path<Uuid>,
    Json(body): Json<DisableDevice>,
) -> ApiResult<web::Json<Device>> {
    let txn = audit::begin(&state.db, Some(scope.ctx.tenant_id())).await?;
    let device = repo::set_disabled(&txn, &scope.ctx, DeviceId(*id), Some(body.reason)).await?;
    let reason = device.disabled_reason.clone().unwrap_or_default();
    changed(
        &state,
        &scope,
        txn,
        Some(DisconnectReason::Disabled),
        *id,
        EventKind::Credentials,
        "device.disable",
        format!("Disabled by {}: {reason}", scope.actor.email),
        serde_json::json!({"reason": reason}),
    )
    .await?;
    Ok(web::Json(repo::to_api(device)))
}

/// `POST /devices/{id}/enable`: the device may connect again.
#[utoipa::path(
    post,
    path = "/devices/{id}/enable",
    tag = "devices",
    operation_id = "enable_device",
    summary = "Enable a device again (`devices.write` tenant-wide or over device groups)",
    description = "`POST /devices/{id}/enable`: the device may connect again.",
    params(("id" = Uuid, Path, description = "The device")),
    responses(
        (status = 200, description = "The device, enabled", body = Device),
        Denied,
        NotFound,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn enable(
    state: web::Data<AppState>,
    scope: DeviceScope<DevicesWrite>,
    id: web::Path<Uuid>,
) -> ApiResult<web::Json<Device>> {
    let txn = audit::begin(&state.db, Some(scope.ctx.tenant_id())).await?;
    let device = repo::set_disabled(&txn, &scope.ctx, DeviceId(*id), None).await?;
    changed(
        &state,
        &scope,
        txn,
        None,
        *id,
        EventKind::Credentials,
        "device.enable",
        format!("Enabled by {}", scope.actor.email),
        serde_json::json!({}),
    )
    .await?;
    Ok(web::Json(repo::to_api(device)))
}

/// `GET /devices/credentials/expiring?within_days=N`: soonest first, expired ones included.
#[utoipa::path(
    get,
    path = "/devices/credentials/expiring",
    tag = "devices",
    operation_id = "expiring_credentials",
    summary = "Devices whose credentials expire soon (`devices.read` tenant-wide or over device groups)",
    description = "`GET /devices/credentials/expiring?within_days=N`: soonest first, expired ones included.",
    params(ExpiringQuery),
    responses(
        (status = 200, description = "Devices whose credentials expire within the window, soonest first, expired ones included", body = Vec<Device>),
        Denied,
        BadQuery,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn expiring(
    state: web::Data<AppState>,
    scope: DeviceScope<DevicesRead>,
    query: web::Query<ExpiringQuery>,
) -> ApiResult<web::Json<Vec<Device>>> {
    let within = query.within_days.unwrap_or(30);
    let devices = repo::expiring(&state.db, &scope.ctx, within).await?;
    Ok(web::Json(devices.into_iter().map(repo::to_api).collect()))
}
