//! Marks devices offline with reason "inactive" when they stay silent for longer than their
//! profile's inactivity timeout, ending their session if one is still open. Runs on worker nodes.

use std::time::Duration;

use sea_orm::{ConnectionTrait, Statement};
use stead_api_types::{DisconnectReason, LiveEvent};

use crate::app::AppState;
use crate::ids::{DeviceId, TenantId};
use crate::live::state::PresenceChange;
use crate::telemetry::now_ms;
use crate::timeline::EventKind;

/// Online devices whose profile has an inactivity timeout, with the timeout in ms.
async fn watched(state: &AppState) -> crate::error::Result<Vec<(DeviceId, TenantId, i64)>> {
    let b = state.db.get_database_backend();
    let rows = state
        .db
        .query_all_raw(Statement::from_string(
            b,
            "SELECT d.id AS id, d.tenant_id AS tenant_id, p.inactivity_timeout_secs AS timeout \
             FROM devices d JOIN device_profiles p ON p.id = d.profile_id \
             WHERE d.online = true AND p.inactivity_timeout_secs IS NOT NULL",
        ))
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let id: uuid::Uuid = r.try_get("", "id")?;
        let tenant: uuid::Uuid = r.try_get("", "tenant_id")?;
        let timeout: i64 = r.try_get("", "timeout")?;
        out.push((DeviceId(id), TenantId(tenant), timeout * 1000));
    }
    Ok(out)
}

pub async fn sweep(state: &AppState) -> crate::error::Result<()> {
    let now = now_ms();
    for chunk in watched(state).await?.chunks(1000) {
        let ids: Vec<DeviceId> = chunk.iter().map(|(d, _, _)| *d).collect();
        let presences = state.live.presence_of(&ids).await?;
        for (&(device, tenant, timeout_ms), presence) in chunk.iter().zip(presences) {
            let last = presence.last_activity.max(presence.last_connect);
            if last.is_none_or(|t| now - t > timeout_ms) {
                mark_inactive(state, device, tenant, timeout_ms, now).await?;
            }
        }
    }
    Ok(())
}

async fn mark_inactive(
    state: &AppState,
    device: DeviceId,
    tenant: TenantId,
    timeout_ms: i64,
    now: i64,
) -> crate::error::Result<()> {
    state
        .sessions
        .end_session(device, DisconnectReason::Inactive);
    let p = state
        .live
        .update_presence(device, PresenceChange::Inactive { ts: now })
        .await?;
    state.bus.publish(device, LiveEvent::Presence(p));
    crate::devices::repo::set_online(crate::auth::System::worker(), &state.db, &[device], false)
        .await?;
    state.timeline.record_for(
        tenant,
        device,
        EventKind::Disconnected,
        format!(
            "Marked offline: {} (no message for {} s)",
            crate::ingress::describe(DisconnectReason::Inactive),
            timeout_ms / 1000
        ),
        serde_json::json!({"reason": DisconnectReason::Inactive}),
    );
    Ok(())
}

pub async fn run(state: AppState) {
    loop {
        if let Err(e) = sweep(&state).await {
            tracing::warn!(error = %e, "the inactivity sweep failed");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
