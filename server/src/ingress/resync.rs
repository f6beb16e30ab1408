//! The catch-up after this node lost its link to the others (the Redis subscription dropped:
//! Redis restarted or was unreachable). Meanwhile it may have missed revocations, take-overs and
//! commands, and Redis may have lost the live state. Once subscribed again, the node:
//!
//! 1. renews its liveness, so that no worker takes it for lost;
//! 2. claims the presence records of the sessions it holds (`LiveStore::reassert_presence`):
//!    a session that a newer one elsewhere took over ends, and one that replaced an older
//!    session's record tells the other nodes, which end theirs;
//! 3. checks every session it holds against the database (`no_longer_admitted`): a device
//!    deleted, disabled, suspended, given new credentials or whose credentials expired is
//!    disconnected;
//! 4. hands its sessions the commands queued for them;
//! 5. merges each device's latest values with storage again on their next read.
//!
//! Cached logins were already forgotten when the link dropped (`Sessions::set_linked`).

use crate::app::AppState;
use crate::ids::DeviceId;
use crate::live::state::{Claim, SessionRef};

/// Catches up each time the link to the other nodes is made again, for as long as the node
/// runs.
pub async fn run(state: AppState) {
    let mut relinked = state.bus.relinked();
    while relinked.changed().await.is_ok() {
        let started = std::time::Instant::now();
        match catch_up(&state).await {
            Ok(done) => tracing::info!(
                sessions = done.held,
                ended = done.ended,
                took_ms = started.elapsed().as_millis() as u64,
                "caught up after the link to the other nodes was restored"
            ),
            Err(e) => {
                tracing::error!(error = %e, "catching up after the link to the other nodes was restored failed");
            }
        }
    }
}

/// What a catch-up did.
pub struct CaughtUp {
    pub held: usize,
    pub ended: usize,
}

pub async fn catch_up(state: &AppState) -> anyhow::Result<CaughtUp> {
    let sessions = &state.sessions;
    let node = sessions.node_id;
    state.telemetry.forget_warm();
    state
        .live
        .node_heartbeat(node, state.config.node_timeout_secs * 1000)
        .await?;
    let held = sessions.registry.held();
    let claims: Vec<(DeviceId, SessionRef, i64, u64)> = held
        .iter()
        .map(|h| {
            let session = SessionRef {
                node,
                conn: h.grant.conn_id,
            };
            (h.device, session, h.grant.at, h.grant.seq)
        })
        .collect();
    let current = state.live.reassert_presence(node, &claims).await?;
    let mut ended = 0;
    for (h, claim) in held.iter().zip(current) {
        match claim {
            Claim::Current | Claim::Outdated => {}
            // The older session it replaced, on another node, ends (told only then: a node
            // that has not caught up yet may hold a newer one).
            Claim::TookOver => sessions.announce_connected(h.device),
            Claim::Superseded => {
                if sessions.registry.kick_conn(
                    h.device,
                    h.grant.conn_id,
                    stead_api_types::DisconnectReason::TakenOver,
                ) {
                    ended += 1;
                }
            }
        }
    }
    let checks: Vec<(DeviceId, Option<String>)> =
        held.iter().map(|h| (h.device, h.stamp.clone())).collect();
    let refused = crate::devices::repo::no_longer_admitted(
        crate::auth::System::ingress(),
        &state.db,
        &checks,
    )
    .await?;
    for (device, why) in &refused {
        let conn = held
            .iter()
            .find(|h| h.device == *device)
            .map(|h| h.grant.conn_id);
        if conn.is_some_and(|conn| sessions.registry.kick_conn(*device, conn, *why)) {
            ended += 1;
        }
    }
    let devices: Vec<DeviceId> = held.iter().map(|h| h.device).collect();
    crate::rpc::deliver_pending_to(state, &devices).await?;
    Ok(CaughtUp {
        held: held.len(),
        ended,
    })
}
