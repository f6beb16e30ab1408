//! `POST /api/v1/devices/bulk`: one action on a selection of the tenant's devices, or on every
//! device of one of its groups.

use sea_orm::DatabaseTransaction;
use stead_api_types::{BulkAction, BulkOperation, DisconnectReason};
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::{Actor, TenantCtx};
use crate::error::{Error, Result};
use crate::ids::DeviceId;
use crate::timeline::EventKind;

/// The devices an action applies to: the given ids (each must be the tenant's, else 400 naming
/// it) or a group's members (another tenant's group is 404). Read in `txn`: a second connection
/// while the transaction holds SQLite's write lock could wait for a pool whose other
/// connections wait for that lock.
async fn targets(
    txn: &DatabaseTransaction,
    ctx: &TenantCtx,
    action: &BulkAction,
) -> Result<Vec<Uuid>> {
    match (&action.device_ids, action.group_id) {
        (Some(ids), None) => crate::groups::repo::own_devices(txn, ctx, ids).await,
        (None, Some(group)) => {
            let group = crate::groups::repo::get(txn, ctx, group).await?;
            crate::groups::repo::members(txn, ctx, group.id).await
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

/// What `apply` changed, and what it still has to tell sessions and timelines once it commits.
pub struct Applied {
    pub ids: Vec<Uuid>,
    /// What the audit log says.
    pub detail: serde_json::Value,
    after: After,
}

enum After {
    Nothing,
    Push {
        scope: stead_api_types::AttributeScope,
        values: serde_json::Map<String, serde_json::Value>,
    },
    Disabled(Vec<(Uuid, String)>),
    Enabled,
    Deleted,
}

/// Applies the action inside `txn` (the caller commits it with the audit entry, then calls
/// [`Applied::announce`]).
pub async fn apply(
    txn: &DatabaseTransaction,
    ctx: &TenantCtx,
    action: BulkAction,
) -> Result<Applied> {
    let ids = targets(txn, ctx, &action).await?;
    let mut detail = serde_json::json!({
        "action": operation_name(&action.action),
        "devices": ids.len(),
        "group_id": action.group_id,
    });
    let after = match action.action {
        BulkOperation::SetAttributes { scope, values } => {
            let now = crate::telemetry::now_ms();
            crate::attributes::set(txn, ctx, &ids, scope, &values, now).await?;
            detail["scope"] = scope.as_str().into();
            detail["keys"] = values.keys().cloned().collect::<Vec<_>>().into();
            After::Push { scope, values }
        }
        BulkOperation::AddToGroup { group_id } => {
            let group = crate::groups::repo::get(txn, ctx, group_id).await?;
            crate::groups::repo::add(txn, ctx, group.id, &ids).await?;
            detail["to_group_id"] = group.id.to_string().into();
            After::Nothing
        }
        BulkOperation::Disable { reason } => {
            let mut disabled = Vec::with_capacity(ids.len());
            for id in &ids {
                let device = crate::devices::repo::set_disabled(
                    txn,
                    ctx,
                    DeviceId(*id),
                    Some(reason.clone()),
                )
                .await?;
                disabled.push((*id, device.disabled_reason.unwrap_or_default()));
            }
            detail["reason"] = reason.into();
            After::Disabled(disabled)
        }
        BulkOperation::Enable => {
            for id in &ids {
                crate::devices::repo::set_disabled(txn, ctx, DeviceId(*id), None).await?;
            }
            After::Enabled
        }
        BulkOperation::Delete => {
            for id in &ids {
                match crate::devices::repo::delete(txn, ctx, DeviceId(*id)).await {
                    // Gone meanwhile: as good as deleted.
                    Ok(()) | Err(Error::NotFound(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            After::Deleted
        }
    };
    Ok(Applied { ids, detail, after })
}

impl Applied {
    /// After the commit: sessions, cached logins and timelines learn what changed.
    pub fn announce(&self, state: &AppState, ctx: &TenantCtx, actor: &Actor) {
        match &self.after {
            After::Nothing => {}
            After::Push { scope, values } => {
                crate::attributes::http::push(state, &self.ids, *scope, values);
            }
            After::Disabled(devices) => {
                for (id, reason) in devices {
                    // As `POST /devices/{id}/disable`: the session ends saying why, then the
                    // cached logins go.
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
            }
            After::Enabled => {
                for id in &self.ids {
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
            After::Deleted => {
                for id in &self.ids {
                    state.sessions.revoke_device(DeviceId(*id));
                }
            }
        }
    }
}
