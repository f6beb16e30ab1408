//! `/api/v1/devices/{id}/rpc`: send a command, follow it, read a device's command history.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use stead_api_types::{ApiErrorBody, Page, PageQuery, RpcCommand, SendRpc};
use uuid::Uuid;

use super::{Sent, repo};
use crate::app::AppState;
use crate::auth::perm::{CommandsSend, DevicesRead};
use crate::http::openapi::{BadQuery, Denied, JsonBody, NotFound};
use crate::http::{ApiResult, DeviceScope, Json};
use crate::ids::DeviceId;

/// The 504 of a two-way command the device did not answer in time: the error body, and the
/// command as it stands.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct RpcTimeout {
    /// `rpc_timeout`.
    code: &'static str,
    detail: String,
    command: RpcCommand,
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/devices/{id}/rpc", web::post().to(send))
        .route("/devices/{id}/rpc", web::get().to(history))
        .route("/devices/{id}/rpc/{rpc_id}", web::get().to(get));
}

/// Two-way: 200 with the device's answer in `response`, or 504 `rpc_timeout`. One-way: 200 once
/// delivered. Persistent: 202 at once. Offline (not persistent): 409 `device_offline`.
#[utoipa::path(
    post,
    path = "/devices/{id}/rpc",
    tag = "commands",
    operation_id = "send_command",
    summary = "Send a command to a device (`commands.send` tenant-wide or over device groups)",
    description = "Two-way: 200 with the device's answer in `response`, or 504 `rpc_timeout`. One-way: 200 once delivered. Persistent: 202 at once. Offline (not persistent): 409 `device_offline`.",
    params(("id" = Uuid, Path, description = "The device")),
    request_body = SendRpc,
    responses(
        (status = 200, description = "Two-way: the device answered (`response`); one-way: delivered", body = RpcCommand),
        (status = 202, description = "Persistent: queued, delivered when the device connects", body = RpcCommand),
        JsonBody,
        Denied,
        NotFound,
        (status = 409, description = "The device is offline and the command is not persistent (`device_offline`)", body = ApiErrorBody),
        (status = 504, description = "Two-way: no answer within `timeout_ms` (`rpc_timeout`); `command` is the command as it stands", body = RpcTimeout),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn send(
    state: web::Data<AppState>,
    scope: DeviceScope<CommandsSend>,
    id: web::Path<Uuid>,
    Json(body): Json<SendRpc>,
) -> ApiResult<HttpResponse> {
    let sent = super::send(&state, &scope.ctx, &scope.actor, DeviceId(*id), body).await?;
    Ok(match sent {
        Sent::Accepted(command) => HttpResponse::Accepted().json(command),
        Sent::Done(command) if command.status == stead_api_types::RpcStatus::Timeout => {
            HttpResponse::build(StatusCode::GATEWAY_TIMEOUT).json(RpcTimeout {
                code: "rpc_timeout",
                detail: format!("the device did not answer within {} ms", command.timeout_ms),
                command,
            })
        }
        Sent::Done(command) => HttpResponse::Ok().json(command),
    })
}

#[utoipa::path(
    get,
    path = "/devices/{id}/rpc",
    tag = "commands",
    operation_id = "list_commands",
    summary = "A device's commands (`devices.read` tenant-wide or over device groups)",
    params(("id" = Uuid, Path, description = "The device"), PageQuery),
    responses(
        (status = 200, description = "A page of the device's commands, newest first", body = Page<RpcCommand>),
        Denied,
        NotFound,
        BadQuery,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn history(
    state: web::Data<AppState>,
    scope: DeviceScope<DevicesRead>,
    id: web::Path<Uuid>,
    query: web::Query<PageQuery>,
) -> ApiResult<web::Json<Page<RpcCommand>>> {
    let device = DeviceId(*id);
    crate::devices::repo::get(&state.db, &scope.ctx, device).await?;
    let (page, per_page) = crate::http::paging(query.page, query.per_page)?;
    let (items, total) = repo::history(&state.db, &scope.ctx, device, page, per_page).await?;
    Ok(web::Json(Page {
        items: items.into_iter().map(repo::to_api).collect(),
        total,
        page,
        per_page,
    }))
}

#[utoipa::path(
    get,
    path = "/devices/{id}/rpc/{rpc_id}",
    tag = "commands",
    operation_id = "get_command",
    summary = "Get a command (`devices.read` tenant-wide or over device groups)",
    params(("id" = Uuid, Path, description = "The device"), ("rpc_id" = Uuid, Path, description = "The command")),
    responses(
        (status = 200, description = "The command", body = RpcCommand),
        Denied,
        NotFound,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn get(
    state: web::Data<AppState>,
    scope: DeviceScope<DevicesRead>,
    path: web::Path<(Uuid, Uuid)>,
) -> ApiResult<web::Json<RpcCommand>> {
    let (device, rpc_id) = path.into_inner();
    // 404 for a device out of the caller's reach.
    crate::devices::repo::get(&state.db, &scope.ctx, DeviceId(device)).await?;
    let command = repo::get(&state.db, &scope.ctx, DeviceId(device), rpc_id).await?;
    Ok(web::Json(repo::to_api(command)))
}
