//! `POST /api/v1/devices/bulk`: one action on a selection of the tenant's devices, or on every
//! device of one of its groups.

use stead_api_types::{BulkAction, BulkOperation, DisconnectReason};
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::{Actor, TenantCtx};
use crate::error::{Error, Result};
use crate::ids::DeviceId;
use crate::timeline::EventKind;

/// The devices an action applies to: the given ids (each must be the tenant's, else 400 naming
/// it) or a group's members (another tenant's group is 404).
async fn targets(state: &AppState, ctx: &TenantCtx, action: &BulkAction) -> Result<Vec<Uuid>> {
    match (&action.device_ids, action.group_id) {
        (Some(ids), None) => crate::groups::repo::own_devices(&state.db, ctx, ids).await,
        (None, Some(group)) => {
            let group = crate::groups::repo::get(&state.db, ctx, group).await?;
            crate::groups::repo::members(&state.db, ctx, group.id).await
        }
        _ => Err(Error::invalid(
            "invalid_target",
            "device_ids",
            "give either `device_ids` or `group_id`",
        )),
    }
}

fn operation_name(op: &BulkOperation) -> &'static str {
    match op {
        BulkOperation::SetAttributes { .. } => "set_attributes",
        BulkOperation::AddToGroup { .. } => "add_to_group",
        BulkOperation::Disable { .. } => "disable",
        BulkOperation::Enable => "enable",
        BulkOperation::Delete => "delete",
    }
}

/// Applies the action; answers the devices it applied to and what the audit log should say.
pub async fn apply(
    state: &AppState,
    ctx: &TenantCtx,
    actor: &Actor,
    action: BulkAction,
) -> Result<(Vec<Uuid>, serde_json::Value)> {
    let ids = targets(state, ctx, &action).await?;
    let mut detail = serde_json::json!({
        "action": operation_name(&action.action),
        "devices": ids.len(),
        "group_id": action.group_id,
    });
    match action.action {
        BulkOperation::SetAttributes { scope, values } => {
            crate::attributes::http::set_and_push(state, ctx, &ids, scope, &values).await?;
            detail["scope"] = scope.as_str().into();
            detail["keys"] = values.keys().cloned().collect::<Vec<_>>().into();
        }
        BulkOperation::AddToGroup { group_id } => {
            let group = crate::groups::repo::get(&state.db, ctx, group_id).await?;
            crate::groups::repo::add(&state.db, ctx, group.id, &ids).await?;
            detail["to_group_id"] = group.id.to_string().into();
        }
        BulkOperation::Disable { reason } => {
            for id in &ids {
                let device = crate::devices::repo::set_disabled(
                    &state.db,
                    ctx,
                    DeviceId(*id),
                    Some(reason.clone()),
                )
                .await?;
                let reason = device.disabled_reason.unwrap_or_default();
                // As `POST /devices/{id}/disable`: the session ends saying why, then the cached
                // logins go.
                state
                    .sessions
                    .end_session(DeviceId(*id), DisconnectReason::Disabled);
                state.sessions.revoke_device(DeviceId(*id));
                state.timeline.record_for(
                    ctx.tenant_id(),
                    DeviceId(*id),
                    EventKind::Credentials,
                    format!("Disabled by {}: {reason}", actor.email),
                    serde_json::json!({"by": actor.email, "reason": reason}),
                );
            }
            detail["reason"] = reason.into();
        }
        BulkOperation::Enable => {
            for id in &ids {
                crate::devices::repo::set_disabled(&state.db, ctx, DeviceId(*id), None).await?;
                state.sessions.revoke_device(DeviceId(*id));
                state.timeline.record_for(
                    ctx.tenant_id(),
                    DeviceId(*id),
                    EventKind::Credentials,
                    format!("Enabled by {}", actor.email),
                    serde_json::json!({"by": actor.email}),
                );
            }
        }
        BulkOperation::Delete => {
            for id in &ids {
                match crate::devices::repo::delete(&state.db, ctx, DeviceId(*id)).await {
                    // Gone meanwhile: as good as deleted.
                    Ok(()) | Err(Error::NotFound(_)) => {}
                    Err(e) => return Err(e),
                }
                state.sessions.revoke_device(DeviceId(*id));
            }
        }
    }
    Ok((ids, detail))
}
