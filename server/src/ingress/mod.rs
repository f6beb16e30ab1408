//! The MQTT device ingress (ntex-mqtt, MQTT 3.1.1 and 5.0).
//!
//! It runs on its own threads inside its own ntex system; ntex's tokio backend means the same
//! tokio that runs the API, the database pool and Redis. Devices authenticate in the handshake
//! (username = access token: one indexed hash lookup, cached briefly), which fixes their identity
//! for the whole session; every topic is relative to that device. The protocol adapters (`v3`,
//! `v5`) translate packets; what a message does is decided once, in `session`.

pub mod daily;
mod filters;
pub mod gateway;
mod limits;
mod registry;
pub mod resync;
pub mod session;
pub mod topic;
mod v3;
mod v5;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use stead_api_types::DisconnectReason;

pub use limits::{DeviceLimiters, Limiter, Rate, TenantRates, run_tenant_sync};
pub use registry::{Grant, Held, Registry, SessionMsg};

use crate::app::AppState;
use crate::devices::credentials::{Denied, MqttLogin, Why, admissible, verify_mqtt_password};
use crate::devices::repo::DeviceIdentity;
use crate::ids::TenantId;
use crate::live::state::{Activity, Claim, Connect, SessionRef};
use crate::tenants::repo::EffectiveLimits;
use crate::timeline::EventKind;

/// The error that ends a connection (the protocol adapters' only error).
#[derive(Debug)]
pub struct Close;

impl From<()> for Close {
    fn from(_: ()) -> Self {
        Close
    }
}

impl TryFrom<Close> for ntex_mqtt::v5::PublishAck {
    type Error = Close;

    fn try_from(err: Close) -> Result<Self, Self::Error> {
        Err(err)
    }
}

/// How long a token → device lookup is reused. Revocation clears it at once.
const AUTH_CACHE_TTL: Duration = Duration::from_secs(10);

/// How long a verified MQTT-basic login is reused. Any change of the device's credentials, its
/// disabling or enabling, its deletion or its tenant's suspension clears it at once on every
/// node (the revoke path), so the bound is there for memory, not for correctness.
const MQTT_LOGIN_CACHE_TTL: Duration = Duration::from_secs(24 * 3600);

/// What every session shares: the app, the main runtime, the session registry, limits.
pub struct IngressCtx {
    pub state: AppState,
    pub rt: tokio::runtime::Handle,
    pub registry: Arc<Registry>,
}

impl IngressCtx {
    /// Runs `f` on the main runtime (database and live-state clients live there) and waits.
    pub async fn on_main<T: Send + 'static>(
        &self,
        f: impl Future<Output = crate::error::Result<T>> + Send + 'static,
    ) -> anyhow::Result<T> {
        // The work stays in the caller's span (a CONNECT's, a command delivery's).
        match self.rt.spawn(tracing::Instrument::in_current_span(f)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(anyhow::anyhow!("{e}")),
            Err(e) => Err(anyhow::anyhow!("task failed: {e}")),
        }
    }

    /// The device a CONNECT's credentials prove: the user name as an access token first (as
    /// before MQTT basic existed), else an MQTT-basic login (`Sessions::authenticate_mqtt_basic`,
    /// on the main runtime). From the login caches on the ingress thread; an access token not
    /// cached is looked up from here too, batched with the other lookups of the moment on the
    /// main runtime: a reconnect storm costs no hop between runtimes per CONNECT.
    pub async fn authenticate(
        &self,
        login: MqttLogin,
    ) -> anyhow::Result<Result<DeviceIdentity, Denied>> {
        let sessions = &self.state.sessions;
        if let Some(identity) = sessions.cached_login(&login) {
            return Ok(admissible(identity));
        }
        let token = sessions
            .authenticate(&self.state.db, &login.username)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        if let Some(identity) = token {
            return Ok(admissible(identity));
        }
        let state = self.state.clone();
        self.on_main(async move {
            state
                .sessions
                .authenticate_mqtt_basic(&state.db, &login)
                .await
        })
        .await
    }

    pub fn session_ref(&self, conn_id: u64) -> SessionRef {
        SessionRef {
            node: self.state.sessions.node_id,
            conn: conn_id,
        }
    }

    pub fn limits(&self, identity: &DeviceIdentity) -> EffectiveLimits {
        identity.limits(&self.state.config)
    }

    /// The device's limiter on this node (the one its last session used, if it still counts).
    pub fn device_limiter(&self, identity: &DeviceIdentity) -> Arc<Mutex<Limiter>> {
        let limits = self.limits(identity);
        self.state.sessions.limiters.get(
            identity.device_id,
            &limits.device_messages,
            &limits.device_points,
        )
    }

    /// The answer to the built-in `getSessionLimits` RPC: the limits really enforced. A
    /// gateway also hears the limits of the devices behind it (`gatewayRateLimits`): each of
    /// them has the tenant's per-device limits, and ThingsBoard's gateway client, which applies
    /// them to all of its devices together, stays within them.
    pub fn session_limits(&self, identity: &DeviceIdentity) -> serde_json::Value {
        let cfg = &self.state.config;
        let limits = self.limits(identity);
        let rates = |messages: &Rate, points: &Rate| {
            serde_json::json!({
                "messages": messages.to_string(),
                "telemetryMessages": messages.to_string(),
                "telemetryDataPoints": points.to_string(),
            })
        };
        let mut answer = serde_json::json!({
            "maxPayloadSize": cfg.mqtt_max_payload_bytes,
            "maxInflightMessages": cfg.mqtt_max_inflight,
            "rateLimits": rates(&limits.device_messages, &limits.device_points),
        });
        if identity.gateway {
            let behind = EffectiveLimits::of(cfg, &identity.tenant_limits);
            answer["gatewayRateLimits"] = rates(&behind.device_messages, &behind.device_points);
        }
        answer
    }

    pub fn metrics_rejected(&self, reason: &'static str) {
        self.state
            .metrics
            .mqtt_rejected
            .with_label_values(&[reason])
            .inc();
    }

    /// Records a refused CONNECT: on the device's timeline when the credentials name a device,
    /// always in the log (source address and reason, never the secret) and the metrics.
    pub fn connect_refused(
        &self,
        peer: &str,
        reason: &'static str,
        device: Option<&DeviceIdentity>,
    ) {
        self.connect_refused_with(peer, reason, None, device);
    }

    /// `connect_refused` with a note for the timeline (a disabled device's reason).
    pub fn connect_refused_with(
        &self,
        peer: &str,
        reason: &'static str,
        note: Option<&str>,
        device: Option<&DeviceIdentity>,
    ) {
        tracing::Span::current().record("stead.connect.reason", reason);
        tracing::info!(%peer, reason, "MQTT connect refused");
        self.state
            .metrics
            .mqtt_connect_refused
            .with_label_values(&[reason])
            .inc();
        if let Some(device) = device {
            let detail = match note {
                Some(note) => format!("Connection from {peer} refused: {reason} ({note})"),
                None => format!("Connection from {peer} refused: {reason}"),
            };
            crate::timeline::record(
                &self.state.timeline,
                device,
                EventKind::ConnectRefused,
                detail,
                serde_json::json!({"peer": peer, "reason": reason, "note": note}),
            );
        }
    }

    /// A device is connected: presence, timeline, live view.
    pub fn connected(
        &self,
        identity: &DeviceIdentity,
        peer: &str,
        client_id: &str,
        protocol: &str,
        grant: Grant,
    ) {
        self.state.metrics.mqtt_connects.inc();
        crate::timeline::record(
            &self.state.timeline,
            identity,
            EventKind::Connected,
            format!("Connected from {peer} over {protocol} (client id {client_id:?})"),
            serde_json::json!({"peer": peer, "client_id": client_id, "protocol": protocol}),
        );
        self.record_connect(identity.device_id, grant);
    }

    /// Queues the presence write of a session given a device (`Registry::register`,
    /// `register_sub`), recorded with the other connects of the moment (`run_connects`).
    pub fn record_connect(&self, device: crate::ids::DeviceId, grant: Grant) {
        let connect = Connect {
            device,
            ts: grant.at,
            session: self.session_ref(grant.conn_id),
            seq: grant.seq,
        };
        // Fails only once the runtime is gone (the process is ending).
        let _ = self.state.sessions.connects(&self.state).send(connect);
    }
}

/// Why the protocol layer ended a session, when it was the protocol's doing.
pub fn stop_reason(reason: &ntex_mqtt::Reason<Close>) -> Option<DisconnectReason> {
    match reason {
        ntex_mqtt::Reason::Protocol(e)
            if matches!(
                e.get_ref(),
                ntex_mqtt::error::ProtocolError::KeepAliveTimeout
            ) =>
        {
            Some(DisconnectReason::KeepAliveTimeout)
        }
        ntex_mqtt::Reason::Protocol(_) => Some(DisconnectReason::ProtocolError),
        _ => None,
    }
}

/// Logs why the protocol layer ended a device's session, when the device broke the protocol (a
/// malformed or oversized packet, one dribbled slower than the packet timeout). A keep-alive
/// timeout is an ordinary end, on the timeline only.
pub fn log_protocol_error(session: &session::DeviceSession, reason: &ntex_mqtt::Reason<Close>) {
    if let ntex_mqtt::Reason::Protocol(e) = reason
        && !matches!(
            e.get_ref(),
            ntex_mqtt::error::ProtocolError::KeepAliveTimeout
        )
    {
        tracing::info!(
            device = %session.identity.device_id,
            peer = %session.peer,
            error = %e.get_ref(),
            "MQTT session ended: protocol error"
        );
    }
}

/// Logs that a device's session ends for breaking the protocol in a way the codec lets through.
pub fn log_violation(session: &session::DeviceSession, what: &str) {
    tracing::info!(
        device = %session.identity.device_id,
        peer = %session.peer,
        error = what,
        "MQTT session ended: protocol error"
    );
}

/// A person-readable reason.
pub fn describe(reason: DisconnectReason) -> &'static str {
    match reason {
        DisconnectReason::ClientDisconnect => "the device disconnected",
        DisconnectReason::KeepAliveTimeout => {
            "keep-alive timeout (no packet within 1.5 × keep-alive)"
        }
        DisconnectReason::TakenOver => "taken over by a new connection with the same credentials",
        DisconnectReason::CredentialsRevoked => "its credentials were revoked",
        DisconnectReason::ProtocolError => "protocol error",
        DisconnectReason::ServerShutdown => "the server is shutting down",
        DisconnectReason::ConnectionLost => "the connection was lost without a DISCONNECT",
        DisconnectReason::RateLimited => {
            "over its rate limit (MQTT 3.1.1 cannot refuse a single message)"
        }
        DisconnectReason::Inactive => "silent for longer than its profile's inactivity timeout",
        DisconnectReason::Disabled => "the device was disabled",
        DisconnectReason::NodeLost => {
            "the server node holding its session was lost (crashed or killed)"
        }
        DisconnectReason::GatewayDisconnected => "the connection of its gateway ended",
        DisconnectReason::CredentialsExpired => "its credentials expired while it was connected",
    }
}

/// How soon a device row's `online` column follows a connect or disconnect.
const ONLINE_MIRROR_EVERY: Duration = Duration::from_millis(100);

/// The device sessions of this node, reachable from the API (to revoke) and the ingress.
/// Revocations and take-overs also go to the other nodes, over the live bus.
pub struct Sessions {
    /// This process, as other nodes know it.
    pub node_id: uuid::Uuid,
    pub registry: Arc<Registry>,
    auth_cache: Mutex<AuthCache>,
    /// One argon2 verification per core at a time: a reconnect storm queues here, and the
    /// runtime's other work (telemetry, the API) keeps its share of the CPU.
    verify_permits: tokio::sync::Semaphore,
    /// The tenants' rates, shared between nodes (`TenantRates`).
    pub tenant_rates: TenantRates,
    /// Each device's rate limiter, shared by its sessions one after another and the HTTP device
    /// API: a reconnect does not start the counts again.
    pub limiters: DeviceLimiters,
    /// The tenants' data points today, against their daily quota (shared once a second).
    pub daily: daily::DailyPoints,
    /// What this node's sessions did and the live state does not know yet: written for all of
    /// them at once, once a second (`run_flusher`), not a round trip per device.
    activity: Mutex<HashMap<crate::ids::DeviceId, Activity>>,
    /// Devices that connected or disconnected since their rows' `online` column was last
    /// brought in line with their presence: done for all of them at once every
    /// `ONLINE_MIRROR_EVERY`, so a reconnect storm costs two UPDATEs, not two per device.
    online_dirty: Mutex<HashSet<crate::ids::DeviceId>>,
    /// Where messages for the other nodes go (set when Redis connects the nodes).
    /// Each message goes with the span it was sent in, so that the publish joins its trace.
    remote: std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<(Control, tracing::Span)>>,
    /// Wakes the HTTP long-polls of devices waiting for a command, and the callers waiting for
    /// a command's outcome.
    pub waits: crate::rpc::Waits,
    /// Ended sessions whose end (activity, presence, Last Will) is still being written: shutdown
    /// waits for them before the process goes.
    ending: std::sync::atomic::AtomicUsize,
    /// Token lookups waiting for their query (`run_lookups`), started with the first.
    lookups: std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<Lookup>>,
    /// Connects waiting for their presence write (`run_connects`), started with the first.
    connects: std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<Connect>>,
    /// False while this node does not hear the other nodes (the Redis subscription is lost): a
    /// revocation made elsewhere meanwhile would not reach the login cache, so it is not used.
    linked: std::sync::atomic::AtomicBool,
}

/// One session's end being written; see `Sessions::ending`.
pub struct Ending(Arc<Sessions>);

impl Drop for Ending {
    fn drop(&mut self) {
        self.0
            .ending
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

impl Default for Sessions {
    fn default() -> Sessions {
        Sessions {
            node_id: uuid::Uuid::new_v4(),
            registry: Arc::default(),
            auth_cache: Mutex::default(),
            daily: daily::DailyPoints::default(),
            verify_permits: tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            ),
            tenant_rates: TenantRates::default(),
            limiters: DeviceLimiters::default(),
            activity: Mutex::default(),
            online_dirty: Mutex::default(),
            remote: std::sync::OnceLock::new(),
            waits: crate::rpc::Waits::default(),
            ending: std::sync::atomic::AtomicUsize::new(0),
            linked: std::sync::atomic::AtomicBool::new(true),
            lookups: std::sync::OnceLock::new(),
            connects: std::sync::OnceLock::new(),
        }
    }
}

/// Something the platform sends to a connected device.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// Changed shared attributes (or `{"deleted":[…]}`), on `v1/devices/me/attributes`.
    Attributes(serde_json::Value),
    /// A command, on `v1/devices/me/rpc/request/{request_id}`.
    Rpc(crate::rpc::Outgoing),
}

/// What one node tells the others about device sessions.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Control {
    RevokeDevice(crate::ids::DeviceId),
    RevokeTenant(TenantId),
    ForgetTenant(TenantId),
    /// A device connected here, and its presence record was another node's session's: that
    /// session is taken over (`run_connects`).
    Connected(crate::ids::DeviceId),
    /// Ends the device's session wherever it is, with this reason.
    End(crate::ids::DeviceId, DisconnectReason),
    /// For the node that holds the device's session (or a long-poll of its HTTP API).
    Deliver(crate::ids::DeviceId, Delivery),
    /// A command changed state: whoever waits for it looks again.
    RpcChanged(uuid::Uuid),
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Authentications this node reuses: access-token hash, or MQTT-basic login key
/// (`MqttLogin::cache_key`), to the identity and the instant the entry stops being used.
#[derive(Default)]
struct AuthCache {
    entries: HashMap<String, (DeviceIdentity, Instant)>,
    /// Counts removals (revocations): a lookup that started before one is not cached, so an old
    /// secret checked while its rotation was applied cannot come back.
    generation: u64,
}

impl AuthCache {
    /// Forgets the entries `keep` refuses.
    fn retain(&mut self, keep: impl FnMut(&String, &mut (DeviceIdentity, Instant)) -> bool) {
        self.generation += 1;
        self.entries.retain(keep);
    }
}

impl Sessions {
    /// The device behind an access token: from a short-lived cache, or one indexed hash lookup
    /// (never a password hash: a reconnect storm must not melt the CPU). Whether it may act now
    /// is `credentials::admissible`.
    pub async fn authenticate(
        &self,
        db: &sea_orm::DatabaseConnection,
        token: &str,
    ) -> crate::error::Result<Option<DeviceIdentity>> {
        let hash = crate::auth::tokens::hash_token(token);
        if let Some(identity) = self.cached(&hash) {
            return Ok(Some(identity));
        }
        let generation = self.cache_generation();
        let found = self.look_up(db, hash.clone()).await?;
        if let Some(identity) = &found {
            self.cache(hash, identity.clone(), AUTH_CACHE_TTL, generation);
        }
        Ok(found)
    }

    /// The device a CONNECT's login proves by the caches alone: the user name as a cached
    /// access token, or a cached MQTT-basic login (user name, password and client id).
    pub fn cached_login(&self, login: &MqttLogin) -> Option<DeviceIdentity> {
        self.cached(&crate::auth::tokens::hash_token(&login.username))
            .or_else(|| self.cached(&login.cache_key()))
    }

    /// The device an MQTT-basic login proves (its caller, `IngressCtx::authenticate`, has
    /// tried the caches and the user name as an access token): user name (one indexed lookup),
    /// the client id when the device requires one, and the password against its argon2id hash,
    /// verified on the blocking pool, one per core at a time, and cached until the credentials
    /// change. An unknown user name costs no hash at all (no dummy verification): the CPU is
    /// what a storm attacks, and device user names are not secrets.
    #[tracing::instrument(skip_all)]
    pub async fn authenticate_mqtt_basic(
        &self,
        db: &sea_orm::DatabaseConnection,
        login: &MqttLogin,
    ) -> crate::error::Result<Result<DeviceIdentity, Denied>> {
        let key = login.cache_key();
        let generation = self.cache_generation();
        let Some(found) = crate::devices::repo::find_mqtt_basic(
            crate::auth::System::ingress(),
            db,
            &login.username,
        )
        .await?
        else {
            return Ok(Err(Denied {
                device: None,
                why: Why::Unknown,
            }));
        };
        let refused = |why| {
            Ok(Err(Denied {
                device: Some(Box::new(found.identity.clone())),
                why,
            }))
        };
        if found
            .client_id
            .as_ref()
            .is_some_and(|required| *required != login.client_id)
        {
            return refused(Why::WrongClientId);
        }
        if login.password.is_empty() {
            return refused(Why::WrongPassword);
        }
        let verified = {
            let _permit = self.verify_permits.acquire().await;
            verify_mqtt_password(login.password.clone(), found.password_hash.clone()).await
        };
        if !verified {
            return refused(Why::WrongPassword);
        }
        self.cache(
            key,
            found.identity.clone(),
            MQTT_LOGIN_CACHE_TTL,
            generation,
        );
        Ok(admissible(found.identity))
    }

    /// The device behind a token hash, looked up together with the other lookups waiting at
    /// the same moment: a reconnect storm of 10,000 devices is a few dozen queries, not 10,000
    /// (each lookup also reads the device's tenant and profile).
    async fn look_up(
        &self,
        db: &sea_orm::DatabaseConnection,
        hash: String,
    ) -> crate::error::Result<Option<DeviceIdentity>> {
        let (done, answer) = tokio::sync::oneshot::channel();
        self.lookups(db)
            .send((hash, done))
            .map_err(|_| anyhow::anyhow!("the token lookups stopped"))?;
        match answer.await {
            Ok(Ok(found)) => Ok(found),
            Ok(Err(e)) => Err(anyhow::anyhow!("looking up a device token: {e}").into()),
            Err(_) => Err(anyhow::anyhow!("the token lookups stopped").into()),
        }
    }

    /// Where token lookups go, started on the runtime of the first caller: the main runtime
    /// (`Ingress::start` asks first, so that the ingress threads only queue lookups and wait).
    pub fn lookups(
        &self,
        db: &sea_orm::DatabaseConnection,
    ) -> &tokio::sync::mpsc::UnboundedSender<Lookup> {
        self.lookups.get_or_init(|| {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            tokio::spawn(run_lookups(db.clone(), rx));
            tx
        })
    }

    /// Where connects go for their presence write, started on the runtime of the first caller:
    /// the main runtime (`Ingress::start` asks first).
    pub fn connects(&self, state: &AppState) -> &tokio::sync::mpsc::UnboundedSender<Connect> {
        self.connects.get_or_init(|| {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            tokio::spawn(run_connects(state.clone(), rx));
            tx
        })
    }

    /// Counts a session's end as being written until the answer is dropped.
    pub fn ending(self: &Arc<Self>) -> Ending {
        self.ending
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Ending(self.clone())
    }

    /// Session ends still being written.
    pub fn endings(&self) -> usize {
        self.ending.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Adds to what the device did since the live state last heard of it.
    pub fn note_activity(&self, device: crate::ids::DeviceId, activity: Activity) {
        locked(&self.activity)
            .entry(device)
            .or_default()
            .merge(activity);
    }

    /// Takes what the device did that is not yet written (a session ending writes it at once).
    pub fn take_activity(&self, device: crate::ids::DeviceId) -> Activity {
        locked(&self.activity).remove(&device).unwrap_or_default()
    }

    /// Writes the noted activity of every device to the live state.
    pub async fn flush_activity(&self, live: &crate::live::LiveStore) {
        let batch: Vec<_> = std::mem::take(&mut *locked(&self.activity))
            .into_iter()
            .collect();
        if batch.is_empty() {
            return;
        }
        if let Err(e) = live.record_activity(&batch).await {
            tracing::warn!(error = %e, devices = batch.len(), "recording device activity failed");
        }
    }

    /// Notes that the device's presence changed: its row's `online` column follows within
    /// `ONLINE_MIRROR_EVERY`.
    pub fn mirror_online(&self, device: crate::ids::DeviceId) {
        locked(&self.online_dirty).insert(device);
    }

    /// Brings the `online` column of the devices whose presence changed in line with their
    /// presence as it is now (read after the change, so the last change wins whatever the
    /// order of the writes): one presence read and at most two UPDATEs per 1,000 devices. On
    /// an error the devices stay noted for the next round.
    pub async fn flush_online(&self, state: &AppState) {
        let devices: Vec<_> = std::mem::take(&mut *locked(&self.online_dirty))
            .into_iter()
            .collect();
        for chunk in devices.chunks(1000) {
            let mirrored = async {
                let presence = state.live.presence_of(chunk).await?;
                let (mut online, mut offline) = (Vec::new(), Vec::new());
                for (device, p) in chunk.iter().zip(&presence) {
                    if p.online {
                        online.push(*device);
                    } else {
                        offline.push(*device);
                    }
                }
                crate::devices::repo::set_online(
                    crate::auth::System::ingress(),
                    &state.db,
                    &online,
                    true,
                )
                .await?;
                crate::devices::repo::set_online(
                    crate::auth::System::ingress(),
                    &state.db,
                    &offline,
                    false,
                )
                .await?;
                anyhow::Ok(())
            };
            if let Err(e) = mirrored.await {
                tracing::warn!(error = %e, devices = chunk.len(), "recording which devices are online failed; retrying");
                locked(&self.online_dirty).extend(chunk.iter().copied());
            }
        }
    }

    /// Mirrors presence into the device rows every `ONLINE_MIRROR_EVERY` and flushes the noted
    /// activity once a second, for as long as the ingress runs.
    pub async fn run_flusher(state: AppState) {
        let mut tick = tokio::time::interval(ONLINE_MIRROR_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_activity = Instant::now();
        loop {
            tick.tick().await;
            state.sessions.flush_online(&state).await;
            if last_activity.elapsed() >= Duration::from_secs(1) {
                last_activity = Instant::now();
                state.sessions.flush_activity(&state.live).await;
            }
        }
    }

    /// The tenant-wide limit, counted across nodes (`TenantRates`), and its daily quota.
    pub fn tenant_admit(
        &self,
        cfg: &crate::config::Config,
        device: &DeviceIdentity,
        now: i64,
        points: u64,
    ) -> Result<(), crate::ingest::Rejection> {
        let limits = device.limits(cfg);
        self.tenant_rates
            .admit(
                device.tenant_id,
                &limits.tenant_messages,
                &limits.tenant_points,
                now,
                points,
            )
            .map_err(|e| crate::ingest::Rejection::RateLimited(format!("tenant limit: {e}")))?;
        let quota = device
            .tenant_quotas
            .data_points_per_day
            .unwrap_or(cfg.quota_data_points_per_day);
        self.daily.admit(device.tenant_id, now, points, quota)
    }

    /// The per-device limit for the HTTP device API (the same counts as the device's MQTT
    /// sessions on this node).
    pub fn http_admit(
        &self,
        cfg: &crate::config::Config,
        device: &DeviceIdentity,
        now: i64,
        points: u64,
    ) -> Result<(), crate::ingest::Rejection> {
        let limits = device.limits(cfg);
        let limiter = self.limiters.get(
            device.device_id,
            &limits.device_messages,
            &limits.device_points,
        );
        locked(&limiter)
            .admit(now, points)
            .map_err(crate::ingest::Rejection::RateLimited)
    }

    /// Whether this node hears the other nodes. Both ways the cached logins are forgotten: what
    /// was revoked elsewhere while the link was down is checked again against the database.
    pub fn set_linked(&self, linked: bool) {
        locked(&self.auth_cache).retain(|_, _| false);
        self.linked
            .store(linked, std::sync::atomic::Ordering::Release);
    }

    fn cached(&self, key: &str) -> Option<DeviceIdentity> {
        if !self.linked.load(std::sync::atomic::Ordering::Acquire) {
            return None;
        }
        let now = Instant::now();
        locked(&self.auth_cache)
            .entries
            .get(key)
            .filter(|(_, until)| now < *until)
            .map(|(identity, _)| identity.clone())
    }

    fn cache_generation(&self) -> u64 {
        locked(&self.auth_cache).generation
    }

    /// Keeps an authentication for `ttl`, unless a revocation happened since `generation`.
    fn cache(&self, key: String, identity: DeviceIdentity, ttl: Duration, generation: u64) {
        let mut cache = locked(&self.auth_cache);
        if cache.generation != generation || !self.linked.load(std::sync::atomic::Ordering::Acquire)
        {
            return;
        }
        let now = Instant::now();
        if cache.entries.len() > 200_000 {
            cache.entries.retain(|_, (_, until)| now < *until);
            if cache.entries.len() > 200_000 {
                cache.entries.clear();
            }
        }
        cache.entries.insert(key, (identity, now + ttl));
    }

    /// Connects this node's sessions to the others'.
    pub fn set_remote(&self, sender: tokio::sync::mpsc::UnboundedSender<(Control, tracing::Span)>) {
        let _ = self.remote.set(sender);
    }

    fn tell_others(&self, control: Control) {
        if let Some(remote) = self.remote.get() {
            let _ = remote.send((control, tracing::Span::current()));
        }
    }

    /// Applies what another node said, on this node only.
    pub fn apply(&self, control: Control) {
        match control {
            Control::RevokeDevice(device) => {
                locked(&self.auth_cache).retain(|_, (identity, _)| identity.device_id != device);
                self.registry
                    .kick(device, DisconnectReason::CredentialsRevoked);
            }
            Control::RevokeTenant(tenant) => {
                locked(&self.auth_cache).retain(|_, (identity, _)| identity.tenant_id != tenant);
                self.registry
                    .kick_tenant(tenant, DisconnectReason::CredentialsRevoked);
            }
            Control::ForgetTenant(tenant) => {
                locked(&self.auth_cache).retain(|_, (identity, _)| identity.tenant_id != tenant);
                self.tenant_rates.forget(tenant);
            }
            Control::Connected(device) => {
                self.registry.kick(device, DisconnectReason::TakenOver);
            }
            Control::End(device, reason) => {
                self.registry.kick(device, reason);
            }
            Control::Deliver(device, delivery) => {
                if matches!(delivery, Delivery::Rpc(_)) {
                    self.waits.wake_device(device);
                }
                self.registry.deliver(device, delivery);
            }
            Control::RpcChanged(id) => self.waits.wake_command(id),
        }
    }

    fn everywhere(&self, control: Control) {
        self.apply(control.clone());
        self.tell_others(control);
    }

    /// Sends a device a message through its session, on whichever node holds it (and wakes an
    /// HTTP long-poll of the device, for commands).
    pub fn deliver(&self, device: crate::ids::DeviceId, delivery: Delivery) {
        let rpc = matches!(delivery, Delivery::Rpc(_));
        if rpc {
            self.waits.wake_device(device);
        }
        if !self.registry.deliver(device, delivery.clone()) || rpc {
            // Elsewhere, or (a command) possibly long-polled on another node.
            self.tell_others(Control::Deliver(device, delivery));
        }
    }

    /// Ends the device's session wherever it is.
    pub fn end_session(&self, device: crate::ids::DeviceId, reason: DisconnectReason) {
        self.everywhere(Control::End(device, reason));
    }

    /// A command changed state: callers waiting for it, on any node, look again.
    pub fn command_changed(&self, id: uuid::Uuid) {
        self.everywhere(Control::RpcChanged(id));
    }

    /// A device's credentials changed or it is gone: forget cached lookups, end its session,
    /// on every node.
    pub fn revoke_device(&self, device: crate::ids::DeviceId) {
        self.everywhere(Control::RevokeDevice(device));
    }

    /// A tenant's settings changed: forget its cached identities and counters (sessions keep
    /// theirs until they reconnect).
    pub fn forget_tenant(&self, tenant: TenantId) {
        self.everywhere(Control::ForgetTenant(tenant));
    }

    /// A tenant was suspended: end its devices' sessions and forget their identities.
    pub fn revoke_tenant(&self, tenant: TenantId) {
        self.everywhere(Control::RevokeTenant(tenant));
    }

    /// This node now holds the device's session, which another node held: the others end
    /// theirs.
    pub fn announce_connected(&self, device: crate::ids::DeviceId) {
        self.tell_others(Control::Connected(device));
    }
}

/// Connects recorded in one call at most (`LiveStore::connected` splits them further for
/// Redis).
const CONNECTS_PER_WRITE: usize = 1024;

/// Records connects in presence in batches: whatever queued while the previous batch was being
/// written goes in the next (one write for a lone CONNECT, one per few hundred in a storm).
/// What the records held settles take-overs across nodes: the node whose session a connect
/// replaced is told to end it, and a connect that a newer session elsewhere already replaced
/// ends here; a reconnect to the same node tells no one. A batch that fails is not retried:
/// the catch-up after Redis comes back claims every session's record again (`resync`), and
/// settles take-overs the same way.
async fn run_connects(state: AppState, mut rx: tokio::sync::mpsc::UnboundedReceiver<Connect>) {
    let mut batch = Vec::with_capacity(CONNECTS_PER_WRITE);
    while rx.recv_many(&mut batch, CONNECTS_PER_WRITE).await > 0 {
        let bus = &state.bus;
        match state.live.connected(&batch, |d| bus.is_watched(d)).await {
            Ok(recorded) => {
                for (c, (claim, record)) in batch.iter().zip(recorded) {
                    match claim {
                        // (Outdated: the registry ended it when it gave the device to the newer
                        // session; a gateway's newer hold of the device shares its connection,
                        // so ending by connection here would end that one.)
                        Claim::Current | Claim::Outdated => {}
                        // A session on another node held the device: that node ends it.
                        Claim::TookOver => state.sessions.announce_connected(c.device),
                        // A newer session on another node holds it: this one ends.
                        Claim::Superseded => {
                            state.sessions.registry.kick_conn(
                                c.device,
                                c.session.conn,
                                DisconnectReason::TakenOver,
                            );
                        }
                    }
                    if let Some(p) = record {
                        bus.publish(c.device, stead_api_types::LiveEvent::Presence(p));
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, devices = batch.len(), "recording connects in presence failed");
            }
        }
        // Each row follows its presence, written just before.
        for c in batch.drain(..) {
            state.sessions.mirror_online(c.device);
        }
    }
}

/// A token hash, and where its device (or none) goes.
pub type Lookup = (
    String,
    tokio::sync::oneshot::Sender<Result<Option<DeviceIdentity>, String>>,
);

/// Token hashes looked up in one query at most.
const LOOKUPS_PER_QUERY: usize = 500;

/// Answers token lookups in batches: whatever queued while the previous query ran goes in the
/// next (one query for a lone CONNECT, one per few hundred in a storm).
async fn run_lookups(
    db: sea_orm::DatabaseConnection,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Lookup>,
) {
    let mut batch = Vec::with_capacity(LOOKUPS_PER_QUERY);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < LOOKUPS_PER_QUERY {
            match rx.try_recv() {
                Ok(lookup) => batch.push(lookup),
                Err(_) => break,
            }
        }
        let hashes: Vec<String> = batch.iter().map(|(hash, _)| hash.clone()).collect();
        match crate::devices::repo::authenticate_hashes(
            crate::auth::System::ingress(),
            &db,
            &hashes,
        )
        .await
        {
            Ok(found) => {
                let found: HashMap<String, DeviceIdentity> = found.into_iter().collect();
                for (hash, done) in batch.drain(..) {
                    let _ = done.send(Ok(found.get(&hash).cloned()));
                }
            }
            Err(e) => {
                let e = e.to_string();
                for (_, done) in batch.drain(..) {
                    let _ = done.send(Err(e.clone()));
                }
            }
        }
    }
}

/// The MQTT server of one listener: both protocol versions, one session logic.
macro_rules! mqtt_server {
    ($ctx:expr) => {{
        let (c3, c5) = ($ctx.clone(), $ctx.clone());
        ntex_mqtt::MqttServer::new()
            .v3(
                ntex_mqtt::v3::MqttServer::new(ntex::service::fn_service(move |hs| {
                    v3::handshake_service(c3.clone(), hs)
                }))
                .protocol(v3::protocol())
                .control(v3::control())
                .publish(v3::publish()),
            )
            .v5(
                ntex_mqtt::v5::MqttServer::new(ntex::service::fn_service(move |hs| {
                    v5::handshake_service(c5.clone(), hs)
                }))
                .protocol(v5::protocol())
                .control(v5::control())
                .publish(v5::publish()),
            )
    }};
}

/// The limits every MQTT listener applies.
fn listener_config(cfg: &crate::config::Config) -> ntex::SharedCfg {
    let packet = ntex::time::Seconds(cfg.mqtt_packet_timeout_secs);
    ntex::SharedCfg::new("MQTT")
        .add(
            // A packet that has begun to arrive must be whole within the packet timeout, however
            // long the keep-alive (a client dribbling one byte a second is cut off). The step and
            // the maximum are the same: ntex never extends the timer, so its rate is moot.
            ntex::io::IoConfig::new().set_frame_read_rate(packet, packet, 0),
        )
        .add(
            ntex_mqtt::MqttServiceConfig::new()
                .set_max_size(cfg.mqtt_max_payload_bytes as u32 * 4 + 1024)
                .set_max_receive(cfg.mqtt_max_inflight)
                // The first bytes (up to the protocol level) within 5 s of the connection, the
                // rest of CONNECT within the connect timeout: a connection that sends nothing, or
                // dribbles its CONNECT, is closed.
                .protocol_version_timeout(ntex::time::Seconds(cfg.mqtt_connect_timeout_secs.min(5)))
                .set_connect_timeout(ntex::time::Seconds(cfg.mqtt_connect_timeout_secs))
                // Publishes that arrive just before a DISCONNECT (a one-shot QoS 0 publisher) are
                // still handled.
                .set_handle_qos_after_disconnect(Some(ntex_mqtt::QoS::AtLeastOnce))
                .set_handshake_timeout(ntex::time::Seconds(cfg.mqtt_connect_timeout_secs)),
        )
        .into()
}

/// A listener's MQTT service behind the per-address bounds (`guard::AddressLimits`): a
/// connection over them is closed before any of it is read. A connection that breaks off before
/// its session starts (no CONNECT in time, a malformed or oversized first packet) is counted and
/// logged here, once per interval.
macro_rules! guarded {
    ($limits:expr, $inner:expr) => {{
        let limits = $limits.clone();
        ntex::service::apply_fn_factory::<
            _,
            ntex::io::Io,
            ntex::SharedCfg,
            _,
            ntex::io::Io,
            (),
            ntex_mqtt::MqttError<Close>,
            _,
        >(
            $inner,
            async move |io: ntex::io::Io, svc| -> Result<(), ntex_mqtt::MqttError<Close>> {
                let peer = io.query::<ntex::io::types::PeerAddr>().get().map(|p| p.0);
                let Ok(_permit) = limits.admit(peer.map(|p| p.ip())) else {
                    // Dropped unread: the connection closes.
                    return Ok(());
                };
                let result = svc.call(io).await;
                if let Err(e) = &result {
                    broken_off(&limits, peer, e);
                }
                result
            },
        )
    }};
}

/// Counts and logs (once per interval per reason) a connection that ended before its session
/// started, for a reason of its own making.
fn broken_off(
    limits: &crate::guard::AddressLimits,
    peer: Option<SocketAddr>,
    error: &ntex_mqtt::MqttError<Close>,
) {
    use ntex_mqtt::error::HandshakeError;
    let reason = match error {
        ntex_mqtt::MqttError::Handshake(HandshakeError::Timeout) => {
            "no CONNECT within the connect timeout"
        }
        ntex_mqtt::MqttError::Handshake(HandshakeError::Protocol(_)) => {
            "malformed or oversized packet before the session"
        }
        // The client went away, or the handshake or session refused it (logged there).
        _ => return,
    };
    limits.broken_off(peer.map(|p| p.ip()), reason, error);
}

fn build_server(
    ctx: &Arc<IngressCtx>,
    listener: std::net::TcpListener,
    tls: Option<(std::net::TcpListener, Arc<rustls::ServerConfig>)>,
) -> std::io::Result<ntex::server::ServerBuilder> {
    let cfg = ctx.state.config.clone();
    // One table for every worker and both listeners: the bounds are per address, not per thread.
    let limits = crate::guard::AddressLimits::new(
        "MQTT",
        cfg.mqtt_max_connections_per_address,
        Some(cfg.mqtt_connect_rate_per_address.clone()),
        vec![
            cfg.connection_limit_exempt.clone(),
            cfg.trusted_proxies.clone(),
        ],
        Some(ctx.state.metrics.mqtt_connect_refused.clone()),
    );
    let plain = ctx.clone();
    let plain_limits = limits.clone();
    let mut builder = ntex::server::build()
        .workers(cfg.mqtt_workers)
        .disable_signals()
        // Sessions are ended before the server stops (`Ingress::stop`): this bounds the rest.
        .shutdown_timeout(ntex::time::Seconds(
            cfg.shutdown_timeout_secs.min(u64::from(u16::MAX)) as u16,
        ))
        .maxconn(cfg.mqtt_max_connections)
        .listen("mqtt", listener, async move |_| {
            guarded!(plain_limits, mqtt_server!(plain))
        })?
        .config("mqtt", listener_config(&cfg));
    if let Some((tls_listener, tls_config)) = tls {
        let secure = ctx.clone();
        builder = builder
            .listen("mqtts", tls_listener, async move |_| {
                guarded!(
                    limits,
                    ntex::service::chain_factory(ntex_tls::rustls::TlsAcceptor::new(
                        tls_config.clone()
                    ))
                    .map_err(|_| ntex_mqtt::MqttError::Service(Close))
                    .and_then(mqtt_server!(secure))
                )
            })?
            .config("mqtts", listener_config(&cfg));
    }
    Ok(builder)
}

/// What ending the sessions at shutdown did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Drained {
    /// Sessions told to end (MQTT 5: DISCONNECT 0x8B; MQTT 3.1.1: the connection closed).
    pub told: usize,
    /// Sessions still open when the time was up (the server then stops them itself).
    pub left: usize,
    /// From the signal to the last session gone (or the time up).
    pub took: Duration,
}

/// The running ingress; `stop` ends every session (reason "server shutting down") and the
/// listener.
pub struct Ingress {
    stop: Option<std::sync::mpsc::Sender<Instant>>,
    thread: Option<std::thread::JoinHandle<Drained>>,
    flusher: Option<tokio::task::JoinHandle<()>>,
    state: AppState,
}

/// On the ingress thread, once told to stop: no new connections, every session told to end,
/// then wait (until `deadline`) for them to go. A QoS 1 message being stored when its session
/// ends is either committed and acknowledged before the DISCONNECT, or never acknowledged (the
/// device sends it again, to another node): it is never acknowledged and lost.
async fn end_sessions(
    ctx: &IngressCtx,
    paused: impl Future<Output = ()>,
    deadline: Instant,
) -> (usize, usize) {
    // The listener first: a device told to go must not come straight back to this node.
    paused.await;
    let told = ctx.registry.close(DisconnectReason::ServerShutdown);
    while ctx.registry.connected() > 0 && Instant::now() < deadline {
        ntex::time::sleep(ntex::time::Millis(10)).await;
    }
    (told, ctx.registry.connected())
}

impl Ingress {
    pub fn start(
        state: AppState,
        listener: std::net::TcpListener,
        tls: Option<(std::net::TcpListener, Arc<rustls::ServerConfig>)>,
    ) -> anyhow::Result<Ingress> {
        let flusher_state = state.clone();
        let timeout = Duration::from_secs(state.config.shutdown_timeout_secs);
        // Token lookups and connects' presence writes run on this (the main) runtime, whoever
        // queues them.
        state.sessions.lookups(&state.db);
        state.sessions.connects(&state);
        let ctx = Arc::new(IngressCtx {
            registry: state.sessions.registry.clone(),
            state,
            rt: tokio::runtime::Handle::current(),
        });
        let addr: SocketAddr = listener.local_addr()?;
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<Instant>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<anyhow::Result<()>>();
        let thread = std::thread::Builder::new()
            .name("stead-mqtt".into())
            .spawn(move || {
                let system = ntex::rt::System::build()
                    .name("stead-mqtt")
                    .build(ntex::rt::DefaultRuntime);
                system.block_on(async move {
                    let started = build_server(&ctx, listener, tls).map(|builder| builder.run());
                    let server = match started {
                        Ok(server) => server,
                        Err(e) => {
                            let _ = ready_tx
                                .send(Err(anyhow::anyhow!("starting the MQTT server: {e}")));
                            return Drained::default();
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    // Wait for the stop signal without blocking the runtime.
                    let since = loop {
                        match stop_rx.try_recv() {
                            Ok(since) => break since,
                            Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                                break Instant::now();
                            }
                            Err(std::sync::mpsc::TryRecvError::Empty) => {
                                ntex::time::sleep(ntex::time::Millis(20)).await
                            }
                        }
                    };
                    let (told, left) = end_sessions(&ctx, server.pause(), since + timeout).await;
                    let took = since.elapsed();
                    server.stop(true).await;
                    Drained { told, left, took }
                })
            })?;
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| anyhow::anyhow!("the MQTT server did not start"))??;
        tracing::info!(%addr, "mqtt ingress serving");
        Ok(Ingress {
            stop: Some(stop_tx),
            thread: Some(thread),
            flusher: Some(tokio::spawn(Sessions::run_flusher(flusher_state.clone()))),
            state: flusher_state,
        })
    }

    /// Stops accepting, ends every session and stops the listener, then writes what the ended
    /// sessions left (presence, activity, the `online` column), all by `since` + the shutdown
    /// timeout.
    pub async fn stop(mut self, since: Instant) -> Drained {
        let deadline = since + Duration::from_secs(self.state.config.shutdown_timeout_secs);
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(since);
        }
        let mut drained = Drained::default();
        if let Some(thread) = self.thread.take() {
            match tokio::task::spawn_blocking(move || thread.join()).await {
                Ok(Ok(d)) => drained = d,
                _ => tracing::error!("the MQTT thread ended abnormally"),
            }
        }
        if let Some(flusher) = self.flusher.take() {
            flusher.abort();
        }
        // Each ended session writes its end on this runtime.
        let sessions = &self.state.sessions;
        while sessions.endings() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if sessions.endings() > 0 {
            tracing::warn!(
                sessions = sessions.endings(),
                "shutdown: out of time writing the end of sessions"
            );
        }
        sessions.flush_online(&self.state).await;
        sessions.flush_activity(&self.state.live).await;
        drained
    }
}

/// The TLS settings of the MQTT listener, from the PEM files in the configuration; every problem
/// is reported naming the file.
pub fn tls_config(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| anyhow::anyhow!("STEAD_MQTT_TLS_CERT {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("STEAD_MQTT_TLS_CERT {}: {e}", cert.display()))?;
    if chain.is_empty() {
        anyhow::bail!(
            "STEAD_MQTT_TLS_CERT {}: no certificate in the file",
            cert.display()
        );
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| anyhow::anyhow!("STEAD_MQTT_TLS_KEY {}: {e}", key.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(|e| anyhow::anyhow!("the MQTT TLS certificate and key do not fit together: {e}"))?;
    Ok(Arc::new(config))
}
