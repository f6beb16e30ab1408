//! `/api/v1/devices/{id}/rpc`: send a command, follow it, read a device's command history.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use stead_api_types::{Page, PageQuery, RpcCommand, SendRpc};
use uuid::Uuid;

use super::{Sent, repo};
use crate::app::AppState;
use crate::auth::perm::{CommandsSend, DevicesRead};
use crate::http::{ApiResult, DeviceScope, Json};
use crate::ids::DeviceId;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/devices/{id}/rpc", web::post().to(send))
        .route("/devices/{id}/rpc", web::get().to(history))
        .route("/devices/{id}/rpc/{rpc_id}", web::get().to(get));
}

/// Two-way: 200 with the device's answer in `response`, or 504 `rpc_timeout`. One-way: 200 once
/// delivered. Persistent: 202 at once. Offline (not persistent): 409 `device_offline`.
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
            HttpResponse::build(StatusCode::GATEWAY_TIMEOUT).json(serde_json::json!({
                "code": "rpc_timeout",
                "detail": format!(
                    "the device did not answer within {} ms",
                    command.timeout_ms
                ),
                "command": command,
            }))
        }
        Sent::Done(command) => HttpResponse::Ok().json(command),
    })
}

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
