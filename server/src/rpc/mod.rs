//! Commands to devices (server-side RPC), ThingsBoard style.
//!
//! Every command is a row with a state (QUEUED, SENT, DELIVERED, SUCCESSFUL, TIMEOUT, EXPIRED,
//! FAILED), so each device has a history. A command goes to the device's session on whichever
//! node holds it (over the Redis control channel), or to a long-poll of the HTTP device API. A
//! two-way command ends when the device answers on `v1/devices/me/rpc/response/{id}`; a one-way
//! command when the device acknowledges it. A persistent command waits (QUEUED) while the device
//! is offline or not subscribed, is delivered when it subscribes, is resent after a timeout while
//! it has retries, and expires. State changes are conditional updates, so two nodes never both
//! send or both finish a command.

pub mod http;
mod model;
pub mod repo;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use stead_api_types::{RpcCommand, RpcStatus, SendRpc};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::{Actor, TenantCtx};
use crate::error::{Error, Result};
use crate::ids::DeviceId;
use crate::telemetry::now_ms;
use crate::timeline::EventKind;

/// A command on its way to a device.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Outgoing {
    pub id: Uuid,
    pub device_id: DeviceId,
    pub request_id: u32,
    pub method: String,
    pub params: serde_json::Value,
    pub oneway: bool,
    /// How long the device has to acknowledge (and answer) it.
    pub timeout_ms: u64,
    /// The trace of whoever sent it (W3C trace context), so that its delivery, on whichever
    /// node holds the device's session, continues that trace.
    #[serde(default, skip_serializing_if = "std::collections::HashMap::is_empty")]
    pub trace: crate::observability::trace::TraceCarrier,
}

impl Outgoing {
    pub fn topic(&self) -> String {
        format!("v1/devices/me/rpc/request/{}", self.request_id)
    }

    /// The MQTT payload, as ThingsBoard's SDKs expect it.
    pub fn payload(&self) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({"method": self.method, "params": self.params}))
            .unwrap_or_default()
    }

    /// The payload on `v1/gateway/rpc` for a device behind a gateway, named `device` (the id,
    /// which a device's own topic carries, is in the payload), as ThingsBoard's gateways expect.
    pub fn gateway_payload(&self, device: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "device": device,
            "data": {"id": self.request_id, "method": self.method, "params": self.params},
        }))
        .unwrap_or_default()
    }

    /// The HTTP long-poll answer (it carries the id, which MQTT puts in the topic).
    pub fn http_body(&self) -> serde_json::Value {
        serde_json::json!({"id": self.request_id, "method": self.method, "params": self.params})
    }
}

/// Who waits for what on this node: devices long-polling for a command, callers waiting for a
/// command's outcome.
#[derive(Default)]
pub struct Waits {
    devices: Mutex<HashMap<DeviceId, Arc<Notify>>>,
    commands: Mutex<HashMap<Uuid, Arc<Notify>>>,
}

fn notify_of<K: std::hash::Hash + Eq + Copy>(
    map: &Mutex<HashMap<K, Arc<Notify>>>,
    key: K,
) -> Arc<Notify> {
    let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
    if map.len() > 10_000 {
        map.retain(|_, n| Arc::strong_count(n) > 1);
    }
    map.entry(key).or_default().clone()
}

fn wake<K: std::hash::Hash + Eq>(map: &Mutex<HashMap<K, Arc<Notify>>>, key: &K) {
    if let Some(n) = map.lock().unwrap_or_else(|p| p.into_inner()).get(key) {
        n.notify_waiters();
    }
}

impl Waits {
    pub fn device(&self, device: DeviceId) -> Arc<Notify> {
        notify_of(&self.devices, device)
    }

    pub fn command(&self, id: Uuid) -> Arc<Notify> {
        notify_of(&self.commands, id)
    }

    pub fn wake_device(&self, device: DeviceId) {
        wake(&self.devices, &device);
    }

    pub fn wake_command(&self, id: Uuid) {
        wake(&self.commands, &id);
    }
}

/// Waits until `check` answers something, `notify` fires, or the deadline passes; `check` runs
/// after each wake-up (and first of all), so no wake-up is lost.
pub async fn wait_for<T, F, Fut>(
    notify: &Notify,
    deadline: tokio::time::Instant,
    mut check: F,
) -> Result<Option<T>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    loop {
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if let Some(v) = check().await? {
            return Ok(Some(v));
        }
        tokio::select! {
            _ = notified => {}
            _ = tokio::time::sleep_until(deadline) => return check().await,
            // Another node's change may arrive without a wake-up if Redis drops it.
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

const DEFAULT_TIMEOUT_MS: u64 = 10_000;
const MAX_TIMEOUT_MS: u64 = 600_000;
const DEFAULT_EXPIRATION_MS: u64 = 86_400_000;
const MAX_EXPIRATION_MS: u64 = 30 * 86_400_000;

/// What `send` did.
pub enum Sent {
    /// The command finished (answered, delivered one-way, or timed out) while the caller waited.
    Done(RpcCommand),
    /// A persistent command, queued or on its way: follow it by id.
    Accepted(RpcCommand),
}

fn validate(body: &SendRpc) -> Result<()> {
    let method = body.method.trim();
    if method.is_empty() || method.len() > 256 {
        return Err(Error::invalid(
            "invalid_rpc",
            "method",
            "`method` has 1 to 256 characters",
        ));
    }
    if body
        .params
        .as_ref()
        .is_some_and(|p| p.to_string().len() > 64 * 1024)
    {
        return Err(Error::invalid(
            "invalid_rpc",
            "params",
            "`params` is larger than 64 KiB",
        ));
    }
    if body
        .timeout_ms
        .is_some_and(|t| !(100..=MAX_TIMEOUT_MS).contains(&t))
    {
        return Err(Error::invalid(
            "invalid_rpc",
            "timeout_ms",
            "`timeout_ms` is between 100 and 600000",
        ));
    }
    if body
        .expiration_ms
        .is_some_and(|t| !(1_000..=MAX_EXPIRATION_MS).contains(&t))
    {
        return Err(Error::invalid(
            "invalid_rpc",
            "expiration_ms",
            "`expiration_ms` is between 1000 and 2592000000 (30 days)",
        ));
    }
    if !body.persistent && (body.expiration_ms.is_some() || body.retries.is_some()) {
        return Err(Error::invalid(
            "invalid_rpc",
            "persistent",
            "`expiration_ms` and `retries` apply to persistent commands only",
        ));
    }
    if body.retries.is_some_and(|r| r > 10) {
        return Err(Error::invalid(
            "invalid_rpc",
            "retries",
            "`retries` is at most 10",
        ));
    }
    Ok(())
}

/// Whether the device can take a command now: an MQTT session, or recent HTTP activity (a device
/// that long-polls).
async fn reachable(state: &AppState, device: DeviceId) -> bool {
    match state.live.presence(device).await {
        Ok(p) => p.online || p.last_activity.is_some_and(|t| now_ms() - t < 60_000),
        // Without the live state, try anyway: the timeout answers.
        Err(_) => true,
    }
}

/// Sends a command to a device of the caller's tenant.
pub async fn send(
    state: &AppState,
    ctx: &TenantCtx,
    actor: &Actor,
    device: DeviceId,
    body: SendRpc,
) -> Result<Sent> {
    let by = actor.email.as_str();
    crate::devices::repo::get(&state.db, ctx, device).await?;
    validate(&body)?;
    let timeout_ms = body.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
    let online = reachable(state, device).await;
    if !body.persistent && !online {
        return Err(Error::conflict(
            "device_offline",
            "the device is offline: send a persistent command to have it queued until it connects",
        ));
    }
    let now = now_ms();
    let expires_at = if body.persistent {
        now + body.expiration_ms.unwrap_or(DEFAULT_EXPIRATION_MS) as i64
    } else {
        now + timeout_ms as i64
    };
    // The command and its audit entry commit together, before anything reaches the device.
    let txn = crate::audit::begin(&state.db, Some(ctx.tenant_id())).await?;
    let command = repo::insert(
        &txn,
        ctx,
        device,
        repo::NewCommand {
            method: body.method.trim().to_owned(),
            params: body.params.unwrap_or(serde_json::json!({})),
            oneway: body.oneway,
            persistent: body.persistent,
            timeout_ms: timeout_ms as i64,
            expires_at,
            retries: body.retries.unwrap_or(0) as i32,
            created_by: by.to_owned(),
        },
    )
    .await?;
    crate::audit::record(
        &txn,
        Some(ctx.tenant_id()),
        actor,
        "device.rpc",
        "device",
        Some(device.0),
        serde_json::json!({"rpc_id": command.id, "method": command.method, "persistent": body.persistent}),
    )
    .await?;
    crate::events::record(
        &txn,
        ctx.tenant_id(),
        stead_api_types::EventType::CommandCreated,
        Some(device),
        serde_json::json!({"device_id": device.0, "command": repo::to_api(command.clone())}),
    )
    .await?;
    txn.commit().await?;
    state.timeline.record_for(
        ctx.tenant_id(),
        device,
        EventKind::Command,
        format!(
            "Command {:?} sent by {by}{}",
            command.method,
            if body.persistent { " (persistent)" } else { "" }
        ),
        serde_json::json!({"rpc_id": command.id, "method": command.method}),
    );
    let id = command.id;
    // Wait on the outcome before handing the command over, so that no change is missed.
    let notify = state.sessions.waits.command(id);
    state.sessions.deliver(
        device,
        crate::ingress::Delivery::Rpc(repo::outgoing(&command)),
    );
    if body.persistent {
        // A moment for a connected device to take it, so the answer shows SENT when it did.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let current = repo::get(&state.db, ctx, device, id).await?;
        return Ok(Sent::Accepted(repo::to_api(current)));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_millis(timeout_ms);
    let done = wait_for(&notify, deadline, || async {
        let c = repo::get(&state.db, ctx, device, id).await?;
        let status = repo::status_of(&c);
        let finished = if c.oneway {
            status != RpcStatus::Queued && status != RpcStatus::Sent
        } else {
            status.is_final() && status != RpcStatus::Delivered
        };
        Ok(finished.then_some(c))
    })
    .await?;
    let command = match done {
        Some(c) => c,
        None => {
            committed(state, async |txn| {
                let ended = repo::finish_unless_final(
                    crate::auth::System::worker(),
                    txn,
                    id,
                    RpcStatus::Timeout,
                    "no answer in time",
                )
                .await?;
                Ok(((), if ended { vec![id] } else { vec![] }))
            })
            .await?;
            repo::get(&state.db, ctx, device, id).await?
        }
    };
    Ok(Sent::Done(repo::to_api(command)))
}

/// Hands the device's queued commands to its session (called when it subscribes to commands).
pub async fn deliver_pending(state: &AppState, device: DeviceId) -> Result<()> {
    deliver_pending_to(state, &[device]).await
}

/// Hands the queued commands of these devices to their sessions, 500 devices per query.
pub async fn deliver_pending_to(state: &AppState, devices: &[DeviceId]) -> Result<()> {
    for chunk in devices.chunks(500) {
        let queued =
            repo::queued(crate::auth::System::worker(), &state.db, chunk, now_ms()).await?;
        for command in queued {
            state.sessions.deliver(
                DeviceId(command.device_id),
                crate::ingress::Delivery::Rpc(repo::outgoing(&command)),
            );
        }
    }
    Ok(())
}

/// Claims a queued command for sending (QUEUED → SENT); false when another node or an expiry
/// got there first.
pub async fn claim(state: &AppState, id: Uuid) -> Result<bool> {
    committed(state, async |txn| {
        let claimed = repo::transition(
            crate::auth::System::worker(),
            txn,
            id,
            &[RpcStatus::Queued],
            RpcStatus::Sent,
            repo::Stamp::Sent,
        )
        .await?;
        Ok((claimed, if claimed { vec![id] } else { vec![] }))
    })
    .await
}

/// A state change of commands and their `command.updated` events, committed together; then the
/// waiters on those commands are woken.
async fn committed<T>(
    state: &AppState,
    change: impl AsyncFnOnce(&sea_orm::DatabaseTransaction) -> Result<(T, Vec<Uuid>)>,
) -> Result<T> {
    let txn = crate::db::begin_write(&state.db).await?;
    let (out, changed) = change(&txn).await?;
    repo::record_changes(crate::auth::System::worker(), &txn, &changed).await?;
    txn.commit().await?;
    for id in changed {
        state.sessions.command_changed(id);
    }
    Ok(out)
}

/// The device acknowledged the command (MQTT PUBACK, or the HTTP answer went out).
pub async fn delivered(state: &AppState, id: Uuid) -> Result<()> {
    committed(state, async |txn| {
        let done = repo::transition(
            crate::auth::System::worker(),
            txn,
            id,
            &[RpcStatus::Sent],
            RpcStatus::Delivered,
            repo::Stamp::Delivered,
        )
        .await?;
        Ok(((), if done { vec![id] } else { vec![] }))
    })
    .await
}

/// Sending failed (the connection went away): a persistent command waits for the next session,
/// any other fails.
pub async fn send_failed(state: &AppState, id: Uuid, why: &str) -> Result<()> {
    committed(state, async |txn| {
        let changed = repo::requeue_or_fail(crate::auth::System::worker(), txn, id, why).await?;
        Ok(((), if changed { vec![id] } else { vec![] }))
    })
    .await
}

/// The device answered command `request_id`; false when no command of it waits for an answer.
pub async fn answered(
    state: &AppState,
    device: DeviceId,
    request_id: u32,
    response: serde_json::Value,
) -> Result<bool> {
    // An answer nested too deep to send on inside other JSON (see `nesting`) is kept as its
    // text, as an answer that is not JSON is.
    let response = if crate::nesting::too_deep(&response) {
        serde_json::Value::String(response.to_string())
    } else {
        response
    };
    committed(state, async |txn| {
        let answered = repo::answer(
            crate::auth::System::worker(),
            txn,
            device,
            request_id,
            response,
        )
        .await?;
        Ok((answered.is_some(), answered.into_iter().collect()))
    })
    .await
}

/// The next command for a device that long-polls the HTTP API, claimed for it.
pub async fn next_for_http(
    state: &AppState,
    device: DeviceId,
    timeout: Duration,
) -> Result<Option<Outgoing>> {
    let notify = state.sessions.waits.device(device);
    let deadline = tokio::time::Instant::now() + timeout;
    wait_for(&notify, deadline, || async {
        for command in repo::queued(
            crate::auth::System::worker(),
            &state.db,
            &[device],
            now_ms(),
        )
        .await?
        {
            if claim(state, command.id).await? {
                // The HTTP answer carries it: delivered as soon as it is claimed.
                delivered(state, command.id).await?;
                return Ok(Some(repo::outgoing(&command)));
            }
        }
        Ok(None)
    })
    .await
}

/// Expires what waited too long, times out what was not answered (resending while retries
/// last). Runs on worker nodes; every step is a conditional update, so nodes may overlap.
pub async fn sweep(state: &AppState) -> Result<()> {
    let now = now_ms();
    // Each step is its own conditional update (a sweep finds nothing most of the time, and on
    // SQLite a write transaction per pass would hold the one write lock); the events of what
    // changed follow in one transaction.
    let expired = repo::expire(crate::auth::System::worker(), &state.db, now).await?;
    let overdue = repo::overdue(crate::auth::System::worker(), &state.db, now).await?;
    let changed: Vec<Uuid> = expired
        .iter()
        .copied()
        .chain(overdue.iter().map(|(c, _)| c.id))
        .collect();
    if !changed.is_empty() {
        committed(state, async |_| Ok(((), changed))).await?;
    }
    for (command, resend) in overdue {
        if resend {
            state.sessions.deliver(
                DeviceId(command.device_id),
                crate::ingress::Delivery::Rpc(repo::outgoing(&command)),
            );
        }
    }
    Ok(())
}

pub async fn run_sweeper(state: AppState) {
    loop {
        if let Err(e) = sweep(&state).await {
            tracing::warn!(error = %e, "sweeping commands failed");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
