//! Devices whose server node went away without ending their sessions: marked offline (presence,
//! the live view, the `online` column, a timeline entry) instead of staying "online" forever.
//!
//! With Redis, each ingress node keeps a liveness key (`live::nodes`) and every worker looks for
//! nodes whose key has expired: a device is offline within `node_timeout_secs +
//! node_heartbeat_secs` of its node's death (20 s by default). On the embedded single node there
//! is nobody else to notice: the server does it itself at start-up, for the devices its previous
//! run left online.

use std::time::{Duration, Instant};

use stead_api_types::{DisconnectReason, LiveEvent};

use crate::app::AppState;
use crate::ids::DeviceId;
use crate::live::LiveStore;
use crate::live::state::PresenceChange;
use crate::timeline::EventKind;

/// Renews this node's liveness key every `node_heartbeat_secs`, for as long as it runs.
pub async fn run_heartbeat(state: AppState) {
    let every = Duration::from_secs(state.config.node_heartbeat_secs);
    let ttl_ms = state.config.node_timeout_secs * 1000;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = state
            .live
            .node_heartbeat(state.sessions.node_id, ttl_ms)
            .await
        {
            tracing::warn!(error = %e, "renewing this node's liveness in Redis failed");
        }
    }
}

/// The worker's watch for lost nodes, every `node_heartbeat_secs`.
pub async fn run_watch(state: AppState) {
    if !matches!(state.live, LiveStore::Redis(_)) {
        return;
    }
    let every = Duration::from_secs(state.config.node_heartbeat_secs);
    loop {
        tokio::time::sleep(every).await;
        if let Err(e) = sweep(&state).await {
            tracing::warn!(error = %e, "looking for lost nodes failed");
        }
    }
}

/// Marks offline the devices of every lost node that no other worker is already dealing with.
pub async fn sweep(state: &AppState) -> anyhow::Result<()> {
    let me = state.sessions.node_id;
    for node in state
        .live
        .lost_nodes(state.config.node_timeout_secs * 1000)
        .await?
    {
        // This node's own key can lapse only if it stalled: it is not lost, it is here.
        if node == me || !state.live.claim_lost_node(node, me).await? {
            continue;
        }
        let started = Instant::now();
        let devices = release(state, node, DisconnectReason::NodeLost).await?;
        tracing::warn!(
            %node,
            devices,
            took_ms = started.elapsed().as_millis() as u64,
            "node lost (its liveness key expired): its devices are marked offline"
        );
    }
    Ok(())
}

/// Marks offline the devices whose presence still names a session of `node` (devices that
/// connected elsewhere since are left alone), then forgets the node. Answers how many.
pub async fn release(
    state: &AppState,
    node: uuid::Uuid,
    reason: DisconnectReason,
) -> anyhow::Result<usize> {
    let marked = state
        .live
        .mark_node_offline(node, crate::telemetry::now_ms(), reason)
        .await?;
    let detail = match reason {
        DisconnectReason::NodeLost => format!(
            "Marked offline: {} (node {node} stopped renewing its liveness)",
            crate::ingress::describe(reason)
        ),
        _ => format!(
            "Marked offline: {} before its session ended",
            crate::ingress::describe(reason)
        ),
    };
    record_offline(state, &marked, reason, &detail).await?;
    state.live.forget_node(node).await?;
    Ok(marked.len())
}

/// Embedded mode: the devices the database still says are online were online when the previous
/// run stopped without shutting down (killed, crashed, power lost); nothing else will ever say
/// otherwise. Answers how many.
pub async fn recover_embedded(state: &AppState) -> anyhow::Result<usize> {
    if !matches!(state.live, LiveStore::Memory(_)) {
        return Ok(0);
    }
    let stale =
        crate::devices::repo::tenants_of(crate::auth::System::worker(), &state.db, None).await?;
    let now = crate::telemetry::now_ms();
    let reason = DisconnectReason::NodeLost;
    for (device, _) in &stale {
        state
            .live
            .update_presence(*device, PresenceChange::Ended { ts: now, reason })
            .await?;
    }
    let devices: Vec<DeviceId> = stale.iter().map(|(d, _)| *d).collect();
    for chunk in devices.chunks(1000) {
        crate::devices::repo::set_online(crate::auth::System::worker(), &state.db, chunk, false)
            .await?;
    }
    for (device, tenant) in &stale {
        state.timeline.record_for(
            *tenant,
            *device,
            EventKind::Disconnected,
            format!(
                "Marked offline: {} (it was online when the server stopped without shutting down)",
                crate::ingress::describe(reason)
            ),
            serde_json::json!({"reason": reason}),
        );
    }
    if !stale.is_empty() {
        tracing::warn!(
            devices = stale.len(),
            "the previous run did not shut down cleanly: its devices are marked offline"
        );
    }
    Ok(stale.len())
}

/// After devices went offline outside their sessions: the live view, the `online` column (read
/// back from the presence, so a device that has just reconnected stays online) and a timeline
/// entry each.
async fn record_offline(
    state: &AppState,
    devices: &[DeviceId],
    reason: DisconnectReason,
    detail: &str,
) -> anyhow::Result<()> {
    for chunk in devices.chunks(1000) {
        let presence = state.live.presence_of(chunk).await?;
        for (device, p) in chunk.iter().zip(presence) {
            state.bus.publish(*device, LiveEvent::Presence(p));
            state.sessions.mirror_online(*device);
        }
        for (device, tenant) in
            crate::devices::repo::tenants_of(crate::auth::System::worker(), &state.db, Some(chunk))
                .await?
        {
            state.timeline.record_for(
                tenant,
                device,
                EventKind::Disconnected,
                detail.to_owned(),
                serde_json::json!({"reason": reason}),
            );
        }
    }
    state.sessions.flush_online(state).await;
    Ok(())
}
