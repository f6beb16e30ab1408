//! A device's MQTT session, whatever the protocol version: what a publish does, what is refused
//! and why, and what happens when the session ends. The v3 and v5 adapters only translate.
//!
//! A session lives on one ntex worker thread. Database and live-state work runs on the main
//! runtime (the `rt` handle): the ntex threads only parse, route and wait.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;

use ntex::util::Bytes;
use stead_api_types::DisconnectReason;
use tracing::Instrument as _;

use super::gateway::Gateway;
use super::limits::Limiter;
use super::topic::{self, PublishTopic};
use super::{Delivery, IngressCtx, SessionMsg};
use crate::devices::credentials::{MqttLogin, Why};
use crate::devices::repo::DeviceIdentity;
use crate::ingest;
pub use crate::ingest::Rejection;
use crate::live::state::{Activity, PresenceChange};
use crate::telemetry;
use crate::timeline::{self, EventKind};

/// A device's MQTT connection: the session, the protocol's sink, and why the protocol layer
/// ended it (set by the adapters, handed to the session when the connection goes away).
pub struct Connection<S> {
    pub inner: DeviceSession,
    pub sink: S,
    pub ended: Rc<Cell<Option<DisconnectReason>>>,
    /// The topic filters it holds, within its quota.
    pub filters: super::filters::Filters,
}

impl<S> Drop for Connection<S> {
    fn drop(&mut self) {
        if let Some(reason) = self.ended.get() {
            self.inner.end_reason.set(Some(reason));
        }
    }
}

/// What a CONNECT carries that matters here.
pub struct ConnectRequest {
    pub peer: String,
    /// User name (an access token, an MQTT user name or `provision`), password, client id.
    pub login: MqttLogin,
    pub will: Option<(String, Bytes)>,
    pub protocol: &'static str,
}

impl ConnectRequest {
    /// Reads the credentials out of a CONNECT's fields.
    pub fn login(
        username: Option<&ntex::util::ByteString>,
        password: Option<&Bytes>,
        client_id: &ntex::util::ByteString,
    ) -> MqttLogin {
        MqttLogin {
            username: username.map(|u| u.to_string()).unwrap_or_default(),
            password: password.map(|p| p.to_vec()).unwrap_or_default(),
            client_id: client_id.to_string(),
        }
    }
}

/// What an accepted CONNECT opens.
#[expect(
    clippy::large_enum_variant,
    reason = "nearly every connection is a device's; the small variant is the rare one"
)]
pub enum Admitted {
    Device(
        DeviceSession,
        tokio::sync::mpsc::UnboundedReceiver<SessionMsg>,
    ),
    /// User name `provision`: the connection may only ask for credentials.
    Provisioning(ProvisioningSession),
}

/// An accepted connection, as the protocol adapters keep it.
#[expect(
    clippy::large_enum_variant,
    reason = "nearly every connection is a device's; the small variant is the rare one"
)]
pub enum State<S> {
    Device(Connection<S>),
    Provisioning(ProvisioningSession),
}

/// Why a CONNECT is refused; each adapter answers it with its protocol's code.
pub enum Refusal {
    BadCredentials,
    NotAuthorized,
    Unavailable,
}

/// Authenticates a CONNECT, registers the session (taking over an older one) and records the
/// connect. Answers the session and the channel on which it is told to end, or a
/// provisioning-only session for user name `provision` with an empty password.
pub async fn admit(ctx: &Arc<IngressCtx>, request: ConnectRequest) -> Result<Admitted, Refusal> {
    let span = tracing::info_span!(
        "mqtt connect",
        otel.name = "mqtt connect",
        otel.kind = "server",
        network.peer.address = %request.peer,
        network.protocol.name = "mqtt",
        network.protocol.version = %request.protocol,
        stead.device.id = tracing::field::Empty,
        stead.tenant.id = tracing::field::Empty,
        stead.connect.outcome = tracing::field::Empty,
        stead.connect.reason = tracing::field::Empty,
        trace_id = tracing::field::Empty,
    );
    crate::observability::trace::record_trace_id(&span);
    let admitted = admit_in_span(ctx, request).instrument(span.clone()).await;
    span.record(
        "stead.connect.outcome",
        match &admitted {
            Ok(_) => "accepted",
            Err(Refusal::BadCredentials) => "bad_credentials",
            Err(Refusal::NotAuthorized) => "not_authorized",
            Err(Refusal::Unavailable) => "unavailable",
        },
    );
    admitted
}

async fn admit_in_span(
    ctx: &Arc<IngressCtx>,
    request: ConnectRequest,
) -> Result<Admitted, Refusal> {
    let peer = &request.peer;
    if request.login.username.is_empty() {
        ctx.connect_refused(peer, "no access token in the username", None);
        return Err(Refusal::BadCredentials);
    }
    if request.login.username == crate::provisioning::USERNAME {
        if !request.login.password.is_empty() {
            ctx.connect_refused(peer, "provisioning takes an empty password", None);
            return Err(Refusal::BadCredentials);
        }
        return Ok(Admitted::Provisioning(ProvisioningSession {
            ctx: ctx.clone(),
            peer: request.peer,
        }));
    }
    let client_id = request.login.client_id.clone();
    let identity = match ctx.authenticate(request.login).await {
        Ok(Ok(identity)) => identity,
        Ok(Err(denied)) => {
            ctx.connect_refused_with(
                peer,
                denied.why.reason(),
                denied.why.note(),
                denied.device.as_deref(),
            );
            return Err(match denied.why {
                Why::Disabled(_) => Refusal::NotAuthorized,
                _ => Refusal::BadCredentials,
            });
        }
        Err(e) => {
            tracing::error!(error = %e, "device authentication failed");
            return Err(Refusal::Unavailable);
        }
    };
    let span = tracing::Span::current();
    span.record(
        "stead.device.id",
        tracing::field::display(identity.device_id),
    );
    span.record(
        "stead.tenant.id",
        tracing::field::display(identity.tenant_id),
    );
    let Some((grant, kick)) = ctx.registry.register(
        identity.device_id,
        identity.tenant_id,
        identity.stamp.clone(),
    ) else {
        // The node is shutting down: the device should connect to another one.
        ctx.connect_refused(peer, "the server is shutting down", Some(&identity));
        return Err(Refusal::Unavailable);
    };
    let session = DeviceSession::new(
        ctx.clone(),
        identity.clone(),
        grant.conn_id,
        request.peer.clone(),
        client_id.clone(),
        request.protocol,
        ctx.device_limiter(&identity),
    );
    *session.will.borrow_mut() = request.will;
    ctx.connected(
        &identity,
        &request.peer,
        &client_id,
        request.protocol,
        grant,
    );
    Ok(Admitted::Device(session, kick))
}

/// A provisioning-only connection (user name `provision`): it may subscribe to
/// `/provision/response` and publish to `/provision/request`, nothing else. It names no device,
/// so nothing is registered, and it is answered on the response topic whether or not the client
/// subscribed first (ThingsBoard's SDK subscribes and publishes without waiting for SUBACK).
pub struct ProvisioningSession {
    ctx: Arc<IngressCtx>,
    peer: String,
}

impl ProvisioningSession {
    pub fn may_subscribe(&self, filter: &str) -> bool {
        filter == crate::provisioning::RESPONSE_TOPIC
    }

    /// Answers a provisioning request (a payload over the limit or another topic is refused).
    pub async fn publish(
        &self,
        topic: &str,
        size: usize,
        payload: impl Future<Output = Option<Bytes>>,
    ) -> Result<Reply, Rejection> {
        if topic != crate::provisioning::REQUEST_TOPIC {
            return Err(Rejection::Topic(format!(
                "a provisioning connection may only publish to {}",
                crate::provisioning::REQUEST_TOPIC
            )));
        }
        ingest::check_size(size, self.ctx.state.config.mqtt_max_payload_bytes)?;
        let payload = payload
            .await
            .ok_or_else(|| Rejection::Payload("the payload could not be read".into()))?;
        let state = self.ctx.state.clone();
        let ip = self
            .peer
            .parse::<std::net::SocketAddr>()
            .ok()
            .map(|a| a.ip());
        let answer = self
            .ctx
            .on_main(async move { Ok(crate::provisioning::handle(&state, ip, &payload).await) })
            .await
            .map_err(|e| Rejection::Unavailable(e.to_string()))?;
        Ok(Reply {
            topic: crate::provisioning::RESPONSE_TOPIC.to_owned(),
            payload: Bytes::from(answer.to_string()),
            qos1: false,
        })
    }
}

/// The peer's address, for the timeline and the log.
pub fn peer_of(io: &ntex::io::IoBoxed) -> String {
    io.query::<ntex::io::types::PeerAddr>()
        .get()
        .map(|p| p.0.to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// What the device subscribed to, with the QoS granted (0 or 1): the platform sends shared
/// attributes and commands only to a device that asked for them.
#[derive(Default)]
pub struct Subscriptions {
    attributes: Cell<Option<u8>>,
    rpc: Cell<Option<u8>>,
    /// A gateway's: shared attribute changes and commands of the devices behind it.
    gateway_attributes: Cell<Option<u8>>,
    gateway_rpc: Cell<Option<u8>>,
}

impl Subscriptions {
    /// The QoS of a gateway's subscription to the commands of the devices behind it.
    pub fn gateway_rpc(&self) -> Option<u8> {
        self.gateway_rpc.get()
    }
}

/// Sends at the QoS of a subscription, if there is one (a QoS 1 send is not waited for).
fn send_subscribed<O: Outbound>(out: &O, qos: Option<u8>, topic: String, payload: Bytes) {
    match qos {
        Some(0) => out.send_qos0(topic, payload),
        Some(_) => {
            let sent = out.send_qos1(topic, payload);
            ntex::rt::spawn(async move {
                let _ = sent.await;
            });
        }
        None => {}
    }
}

/// A protocol's sink, as the session uses it to reach the device.
pub trait Outbound: Clone + 'static {
    /// Ends the connection (with the reason, where the protocol can say it).
    fn end(&self, reason: DisconnectReason);
    fn send_qos0(&self, topic: String, payload: Bytes);
    /// Sends at QoS 1; resolves to whether the device acknowledged it.
    fn send_qos1(
        &self,
        topic: String,
        payload: Bytes,
    ) -> std::pin::Pin<Box<dyn Future<Output = bool>>>;
}

/// A command on its way out, with the name of the device behind the gateway it is for (`None`:
/// the session's own device).
type QueuedCommand = (u8, crate::rpc::Outgoing, Option<String>);

/// Carries out what the platform tells the session: end it, or send the device (or, for a
/// gateway, a device behind it) shared attributes and commands it subscribed to.
pub fn pump<O: Outbound>(
    ctx: Arc<IngressCtx>,
    out: O,
    ended: Rc<Cell<Option<DisconnectReason>>>,
    subs: Rc<Subscriptions>,
    gateway: Option<Rc<Gateway>>,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<SessionMsg>,
    credentials_expire_at: Option<i64>,
) {
    ntex::rt::spawn(async move {
        // Credentials that expire while the device is connected end its session then, not only
        // its next CONNECT.
        let mut expiry = std::pin::pin!(async move {
            match credentials_expire_at {
                Some(at) => {
                    let left = (at - crate::telemetry::now_ms()).max(0) as u64;
                    tokio::time::sleep(std::time::Duration::from_millis(left)).await;
                }
                None => std::future::pending().await,
            }
        });
        // Commands go out one at a time, in the order they came: each waits for its
        // acknowledgement. The queue and its task start with the first command: most sessions
        // never get one, and each costs memory for as long as the device stays connected.
        let mut commands: Option<tokio::sync::mpsc::UnboundedSender<QueuedCommand>> = None;
        let mut queue_command = |qos: u8, command, via| {
            let queue = commands.get_or_insert_with(|| {
                let (tx, mut queue) = tokio::sync::mpsc::unbounded_channel::<QueuedCommand>();
                let (ctx, out) = (ctx.clone(), out.clone());
                ntex::rt::spawn(async move {
                    while let Some((qos, command, via)) = queue.recv().await {
                        send_command(ctx.clone(), out.clone(), qos, command, via).await;
                    }
                });
                tx
            });
            let _ = queue.send((qos, command, via));
        };
        loop {
            let msg = tokio::select! {
                msg = rx.recv() => msg,
                () = &mut expiry => Some(SessionMsg::End(DisconnectReason::CredentialsExpired)),
            };
            let Some(msg) = msg else { break };
            match msg {
                SessionMsg::End(reason) => {
                    ended.set(Some(reason));
                    out.end(reason);
                    break;
                }
                SessionMsg::Deliver(delivery) => match *delivery {
                    Delivery::Attributes(values) => send_subscribed(
                        &out,
                        subs.attributes.get(),
                        "v1/devices/me/attributes".to_owned(),
                        Bytes::from(values.to_string()),
                    ),
                    Delivery::Rpc(command) => {
                        // Not subscribed: it stays queued until the device subscribes.
                        let Some(qos) = subs.rpc.get() else { continue };
                        queue_command(qos, command, None);
                    }
                },
                SessionMsg::DeliverSub { name, delivery, .. } => match *delivery {
                    Delivery::Attributes(values) => send_subscribed(
                        &out,
                        subs.gateway_attributes.get(),
                        topic::GATEWAY_ATTRIBUTES.to_owned(),
                        Bytes::from(super::gateway::attributes_update(&name, &values).to_string()),
                    ),
                    Delivery::Rpc(command) => {
                        // Not subscribed: it stays queued until the gateway subscribes.
                        let Some(qos) = subs.gateway_rpc.get() else {
                            continue;
                        };
                        queue_command(qos, command, Some(name));
                    }
                },
                SessionMsg::EndSub { device, reason } => {
                    let Some(gateway) = &gateway else { continue };
                    // The gateway hears that the platform let go of it (disabled, deleted, …),
                    // as ThingsBoard tells it.
                    if let Some(name) = gateway.release_device(device, reason) {
                        out.send_qos0(
                            topic::GATEWAY_DISCONNECT.to_owned(),
                            Bytes::from(serde_json::json!({"device": name}).to_string()),
                        );
                    }
                }
            }
        }
    });
}

/// Delivers one command in its own span, a child of the sender's (the context travelled with
/// the command, across Redis when the sender is another node).
async fn send_command<O: Outbound>(
    ctx: Arc<IngressCtx>,
    out: O,
    qos: u8,
    command: crate::rpc::Outgoing,
    via: Option<String>,
) {
    let span = tracing::info_span!(
        "rpc deliver",
        otel.name = "rpc deliver",
        otel.kind = "consumer",
        stead.device.id = %command.device_id,
        stead.rpc.id = %command.id,
        stead.rpc.method = %command.method,
        mqtt.qos = i64::from(qos),
        trace_id = tracing::field::Empty,
    );
    crate::observability::trace::adopt_parent(&span, &command.trace);
    deliver_command(ctx, out, qos, command, via)
        .instrument(span)
        .await;
}

async fn deliver_command<O: Outbound>(
    ctx: Arc<IngressCtx>,
    out: O,
    qos: u8,
    command: crate::rpc::Outgoing,
    via: Option<String>,
) {
    let id = command.id;
    let state = ctx.state.clone();
    // Only one sender: another node, or an HTTP long-poll, may have taken it.
    match ctx
        .on_main(async move { crate::rpc::claim(&state, id).await })
        .await
    {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) => {
            tracing::warn!(error = %e, "claiming a command failed");
            return;
        }
    }
    let (topic, payload) = match &via {
        Some(name) => (
            topic::GATEWAY_RPC.to_owned(),
            Bytes::from(command.gateway_payload(name)),
        ),
        None => (command.topic(), Bytes::from(command.payload())),
    };
    let acknowledged = if qos == 0 {
        out.send_qos0(topic, payload);
        true
    } else {
        // A device that never acknowledges must not hold back the commands after this one.
        let wait = std::time::Duration::from_millis(command.timeout_ms.max(1000));
        ntex::time::timeout(wait, out.send_qos1(topic, payload))
            .await
            .unwrap_or(false)
    };
    let state = ctx.state.clone();
    let _ = ctx
        .on_main(async move {
            if acknowledged {
                crate::rpc::delivered(&state, id).await
            } else {
                crate::rpc::send_failed(
                    &state,
                    id,
                    "the connection ended before the device acknowledged the command",
                )
                .await
            }
        })
        .await;
}

/// A message the platform sends back to the device right away.
pub struct Reply {
    pub topic: String,
    pub payload: Bytes,
    /// At QoS 1 (a firmware chunk, which the device may not have subscribed to); else QoS 0.
    pub qos1: bool,
}

/// Sends a reply at its QoS (a QoS 1 send is not waited for).
pub fn send_reply<O: Outbound>(out: &O, reply: Reply) {
    send_subscribed(out, Some(u8::from(reply.qos1)), reply.topic, reply.payload);
}

/// After this many refused messages within a minute, an MQTT 3.1.1 connection is closed.
pub const ABUSE_LIMIT: u32 = 20;

pub struct DeviceSession {
    pub ctx: Arc<IngressCtx>,
    pub identity: DeviceIdentity,
    pub conn_id: u64,
    pub peer: String,
    pub client_id: String,
    pub protocol: &'static str,
    /// Set when the platform ends the session (take-over, revocation, shutdown) or the client
    /// sends DISCONNECT; otherwise the end is a lost connection or a protocol error.
    pub end_reason: Cell<Option<DisconnectReason>>,
    /// The Last Will, published when the session ends without a DISCONNECT.
    pub will: RefCell<Option<(String, Bytes)>>,
    pub subs: Rc<Subscriptions>,
    /// Set for a device marked as gateway: the devices behind it that it speaks for.
    pub gateway: Option<Rc<Gateway>>,
    limiter: std::sync::Arc<std::sync::Mutex<Limiter>>,
    rejections: Cell<(i64, u32)>,
    /// The chunk size each recent package download asked for (an empty request repeats it).
    chunk_sizes: RefCell<Vec<((stead_api_types::PackageKind, u32), u64)>>,
}

impl DeviceSession {
    pub fn new(
        ctx: Arc<IngressCtx>,
        identity: DeviceIdentity,
        conn_id: u64,
        peer: String,
        client_id: String,
        protocol: &'static str,
        limiter: std::sync::Arc<std::sync::Mutex<Limiter>>,
    ) -> DeviceSession {
        let gateway = identity
            .gateway
            .then(|| Rc::new(Gateway::new(ctx.clone(), identity.clone(), conn_id)));
        DeviceSession {
            gateway,
            ctx,
            identity,
            conn_id,
            peer,
            client_id,
            protocol,
            end_reason: Cell::new(None),
            will: RefCell::new(None),
            subs: Rc::default(),
            limiter,
            rejections: Cell::new((0, 0)),
            chunk_sizes: RefCell::default(),
        }
    }

    /// Handles one PUBLISH. `wait` is true for QoS 1: the call returns only once the data is
    /// durably stored.
    pub async fn publish(
        &self,
        topic: &str,
        wait: bool,
        payload: Bytes,
    ) -> Result<Option<Reply>, Rejection> {
        match self.route(topic, wait, payload).await {
            Ok(reply) => {
                self.note_activity(telemetry::now_ms(), 1, 0);
                Ok(reply)
            }
            Err(rejection) => self.reject(topic, rejection),
        }
    }

    /// Counts and records a refused message on the device's timeline, and answers the refusal.
    pub fn reject(&self, topic: &str, rejection: Rejection) -> Result<Option<Reply>, Rejection> {
        let now = telemetry::now_ms();
        if matches!(rejection, Rejection::SubDevices(_)) {
            // Refused for some devices behind the gateway, on their timelines: the gateway
            // itself sent a message that was handled.
            self.note_activity(now, 1, 0);
            return Err(rejection);
        }
        self.note_activity(now, 0, 1);
        self.ctx.metrics_rejected(rejection.reason());
        let (since, n) = self.rejections.get();
        self.rejections.set(if now - since > 60_000 {
            (now, 1)
        } else {
            (since, n + 1)
        });
        timeline::record(
            &self.ctx.state.timeline,
            &self.identity,
            EventKind::MessageRejected,
            format!("Message on {topic:?} rejected: {}", rejection.detail()),
            serde_json::json!({"topic": topic.chars().take(200).collect::<String>(), "reason": rejection.reason()}),
        );
        Err(rejection)
    }

    /// Whether the device may subscribe to `filter` (only its own topics), noting what it
    /// subscribed to at which QoS; a refusal goes on its timeline. A subscription to commands
    /// delivers the commands queued for the device.
    pub fn may_subscribe(&self, filter: &str, qos: u8) -> bool {
        if let Some(gateway) = &self.gateway
            && topic::gateway_subscription_allowed(filter)
        {
            if filter == topic::GATEWAY_ATTRIBUTES {
                self.subs.gateway_attributes.set(Some(qos));
            } else if filter == topic::GATEWAY_RPC {
                self.subs.gateway_rpc.set(Some(qos));
                let state = self.ctx.state.clone();
                let devices = gateway.devices();
                self.ctx.rt.spawn(async move {
                    for device in devices {
                        if let Err(e) = crate::rpc::deliver_pending(&state, device).await {
                            tracing::warn!(error = %e, "delivering queued commands failed");
                        }
                    }
                });
            }
            return true;
        }
        if super::topic::subscription_allowed(filter) {
            if filter == "v1/devices/me/attributes" {
                self.subs.attributes.set(Some(qos));
            } else if filter.starts_with("v1/devices/me/rpc/request/") {
                self.subs.rpc.set(Some(qos));
                let state = self.ctx.state.clone();
                let device = self.identity.device_id;
                self.ctx.rt.spawn(async move {
                    if let Err(e) = crate::rpc::deliver_pending(&state, device).await {
                        tracing::warn!(error = %e, "delivering queued commands failed");
                    }
                });
            }
            return true;
        }
        timeline::record(
            &self.ctx.state.timeline,
            &self.identity,
            EventKind::SubscriptionRefused,
            format!(
                "Subscription to {filter:?} refused: devices may only subscribe to their own topics"
            ),
            serde_json::json!({"topic": filter.chars().take(200).collect::<String>()}),
        );
        false
    }

    /// The device unsubscribed from `filter` (`held`: the filters it still holds): shared
    /// attributes or commands stop coming unless another held filter asks for them.
    pub fn unsubscribed(&self, filter: &str, held: &std::collections::HashSet<Box<str>>) {
        const RPC: &str = "v1/devices/me/rpc/request/";
        if filter.starts_with(RPC) {
            if !held.iter().any(|f| f.starts_with(RPC)) {
                self.subs.rpc.set(None);
            }
        } else if filter == "v1/devices/me/attributes" {
            self.subs.attributes.set(None);
        } else if self.gateway.is_some() && filter == topic::GATEWAY_ATTRIBUTES {
            self.subs.gateway_attributes.set(None);
        } else if self.gateway.is_some() && filter == topic::GATEWAY_RPC {
            self.subs.gateway_rpc.set(None);
        }
    }

    /// Whether this connection has been refused so often that it should be closed.
    pub fn abusive(&self) -> bool {
        self.rejections.get().1 >= ABUSE_LIMIT
    }

    /// Telemetry, the hot path, is handled without a detour; every other topic in
    /// `route_other`, boxed, so that the future of each telemetry message (allocated per PUBLISH
    /// by the MQTT service) stays small.
    async fn route(
        &self,
        topic: &str,
        wait: bool,
        payload: Bytes,
    ) -> Result<Option<Reply>, Rejection> {
        match PublishTopic::parse(topic).map_err(|e| Rejection::Topic(e.to_string()))? {
            PublishTopic::Telemetry => self.telemetry(wait, payload).await,
            other => Box::pin(self.route_other(other, wait, payload)).await,
        }
    }

    async fn telemetry(&self, wait: bool, payload: Bytes) -> Result<Option<Reply>, Rejection> {
        let now = telemetry::now_ms();
        let (rows, points) =
            ingest::telemetry_rows(&self.ctx.state.config, &self.identity, &payload, now)?;
        self.limiter
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .admit(now, points)
            .map_err(Rejection::RateLimited)?;
        self.ctx.state.sessions.tenant_admit(
            &self.ctx.state.config,
            &self.identity,
            now,
            points,
        )?;
        let store = &self.ctx.state.telemetry;
        let result = if wait {
            let started = std::time::Instant::now();
            let stored = store.write(self.identity.device_id, rows).await;
            self.ctx
                .state
                .metrics
                .mqtt_publish_stored
                .observe(started.elapsed().as_secs_f64());
            stored
        } else {
            store
                .write_unacknowledged(self.identity.device_id, rows)
                .await
        };
        result.map_err(|e| Rejection::Unavailable(e.to_string()))?;
        Ok(None)
    }

    async fn route_other(
        &self,
        topic: PublishTopic,
        wait: bool,
        payload: Bytes,
    ) -> Result<Option<Reply>, Rejection> {
        match topic {
            PublishTopic::Telemetry => self.telemetry(wait, payload).await,
            PublishTopic::Attributes => {
                let now = telemetry::now_ms();
                let values = ingest::attributes(&payload)?;
                self.limiter
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .admit(now, values.len() as u64)
                    .map_err(Rejection::RateLimited)?;
                let ctx = self.ctx.clone();
                let identity = self.identity.clone();
                self.ctx
                    .on_main(async move {
                        crate::attributes::set_client(
                            &ctx.state.db,
                            &ctx.state.subscriptions,
                            &identity,
                            values,
                            now,
                        )
                        .await
                    })
                    .await
                    .map_err(|e| Rejection::Unavailable(e.to_string()))?;
                Ok(None)
            }
            PublishTopic::AttributeRequest(id) => {
                let (client_keys, shared_keys) = attribute_request_keys(&payload)?;
                let ctx = self.ctx.clone();
                let identity = self.identity.clone();
                let answer = self
                    .ctx
                    .on_main(async move {
                        crate::attributes::answer_request(
                            &ctx.state.db,
                            &identity,
                            client_keys,
                            shared_keys,
                        )
                        .await
                    })
                    .await
                    .map_err(|e| Rejection::Unavailable(e.to_string()))?;
                Ok(Some(Reply {
                    topic: format!("v1/devices/me/attributes/response/{id}"),
                    payload: Bytes::from(answer.to_string()),
                    qos1: false,
                }))
            }
            PublishTopic::RpcRequest(id) => {
                let method = rpc_request_method(&payload)?;
                let answer = match method.as_str() {
                    "getSessionLimits" => self.ctx.session_limits(&self.identity),
                    "getCurrentTime" | "getTime" => {
                        serde_json::json!({"time": telemetry::now_ms()})
                    }
                    other => serde_json::json!({"error": format!("unknown method {other:?}")}),
                };
                Ok(Some(Reply {
                    topic: format!("v1/devices/me/rpc/response/{id}"),
                    payload: Bytes::from(answer.to_string()),
                    qos1: false,
                }))
            }
            PublishTopic::RpcResponse(id) => {
                let response = rpc_response(&payload)?;
                let ctx = self.ctx.clone();
                let device = self.identity.device_id;
                let known = self
                    .ctx
                    .on_main(
                        async move { crate::rpc::answered(&ctx.state, device, id, response).await },
                    )
                    .await
                    .map_err(|e| Rejection::Unavailable(e.to_string()))?;
                if known {
                    Ok(None)
                } else {
                    Err(Rejection::Payload(format!(
                        "no command {id} waits for an answer (unknown, one-way, already answered or timed out)"
                    )))
                }
            }
            PublishTopic::PackageChunk {
                kind,
                request,
                chunk,
            } => Ok(Some(
                self.package_chunk(kind, request, chunk, &payload).await?,
            )),
            PublishTopic::Claim => Err(Rejection::NotSupported(
                "device claiming comes with customer accounts and is not supported yet".into(),
            )),
            PublishTopic::Gateway(topic) => match &self.gateway {
                Some(gateway) => gateway.publish(topic, wait, &payload, &self.subs).await,
                None => Err(Rejection::Topic(format!(
                    "only a device marked as gateway may publish to {}",
                    topic.as_str()
                ))),
            },
        }
    }

    /// A chunk of the device's target package: the raw bytes on
    /// `v2/fw/response/{request}/chunk/{chunk}` at QoS 1 whatever the device subscribed to (SDK
    /// 1.x subscribes to `v2/fw/response/+`, which does not match), or why not on `v2/fw/error`.
    /// The payload is the chunk size as decimal text; empty: the size last used for this request,
    /// or the whole image.
    async fn package_chunk(
        &self,
        kind: stead_api_types::PackageKind,
        request: u32,
        chunk: u32,
        payload: &[u8],
    ) -> Result<Reply, Rejection> {
        let x = kind.prefix();
        let asked = match chunk_size(payload) {
            Ok(asked) => asked,
            Err(why) => {
                return Ok(Reply {
                    topic: format!("v2/{x}/error"),
                    payload: Bytes::from(why),
                    qos1: false,
                });
            }
        };
        let size = {
            let mut sizes = self.chunk_sizes.borrow_mut();
            match asked {
                Some(n) => {
                    sizes.retain(|(k, _)| *k != (kind, request));
                    if sizes.len() >= 8 {
                        sizes.remove(0);
                    }
                    sizes.push(((kind, request), n));
                    Some(n)
                }
                None => sizes
                    .iter()
                    .find(|(k, _)| *k == (kind, request))
                    .map(|(_, n)| *n),
            }
        };
        let max = self.ctx.state.config.mqtt_max_payload_bytes as u64;
        let ctx = self.ctx.clone();
        let identity = self.identity.clone();
        let answer = self
            .ctx
            .on_main(async move {
                Ok(
                    crate::ota::delivery::chunk(&ctx.state, &identity, kind, size, chunk, max)
                        .await,
                )
            })
            .await
            .map_err(|e| Rejection::Unavailable(e.to_string()))?;
        Ok(match answer {
            Ok(bytes) => Reply {
                topic: format!("v2/{x}/response/{request}/chunk/{chunk}"),
                payload: Bytes::copy_from_slice(&bytes),
                qos1: true,
            },
            Err(why) => {
                timeline::record(
                    &self.ctx.state.timeline,
                    &self.identity,
                    EventKind::Ota,
                    format!("Chunk {chunk} of request {request} refused: {why}"),
                    serde_json::json!({"kind": kind.as_str(), "request": request, "chunk": chunk}),
                );
                Reply {
                    topic: format!("v2/{x}/error"),
                    payload: Bytes::from(why),
                    qos1: false,
                }
            }
        })
    }

    /// Counts activity into the node's tally, which the live state gets once a second.
    fn note_activity(&self, now: i64, messages: u64, errors: u64) {
        self.ctx.state.sessions.note_activity(
            self.identity.device_id,
            Activity {
                ts: now,
                messages,
                errors,
            },
        );
    }
}

// ---------------------------------------------------------------------------------------------
// What a device's message asks for, read without touching any state (`route_other` calls these;
// so do the fuzz targets in server/fuzz).

/// The keys an attribute request asks for: `clientKeys` and `sharedKeys`, each a comma-separated
/// list (`None`: that scope is not named).
pub type RequestedKeys = (Option<Vec<String>>, Option<Vec<String>>);

/// Reads an attribute request (`v1/devices/me/attributes/request/{id}`); an empty payload names
/// no scope.
pub fn attribute_request_keys(payload: &[u8]) -> Result<RequestedKeys, Rejection> {
    let request: serde_json::Value = if payload.is_empty() {
        serde_json::json!({})
    } else {
        serde_json::from_slice(payload).map_err(|e| {
            Rejection::Payload(format!("the attribute request is not valid JSON: {e}"))
        })?
    };
    let keys = |name: &str| -> Option<Vec<String>> {
        request.get(name).and_then(|v| v.as_str()).map(|s| {
            s.split(',')
                .map(|k| k.trim().to_owned())
                .filter(|k| !k.is_empty())
                .collect()
        })
    };
    Ok((keys("clientKeys"), keys("sharedKeys")))
}

/// The method a device's request to the platform names (`v1/devices/me/rpc/request/{id}`),
/// empty when it names none.
pub fn rpc_request_method(payload: &[u8]) -> Result<String, Rejection> {
    let request: serde_json::Value = serde_json::from_slice(payload)
        .map_err(|e| Rejection::Payload(format!("the RPC request is not valid JSON: {e}")))?;
    Ok(request
        .get("method")
        .and_then(|m| m.as_str())
        .unwrap_or_default()
        .to_owned())
}

/// A device's answer to a command (`v1/devices/me/rpc/response/{id}`): its JSON, or its text as
/// a string when it is not JSON. One with a NUL character is refused, as the HTTP device API
/// refuses it: it cannot be stored.
pub fn rpc_response(payload: &[u8]) -> Result<serde_json::Value, Rejection> {
    let response = serde_json::from_slice(payload).unwrap_or_else(|_| {
        serde_json::Value::String(String::from_utf8_lossy(payload).into_owned())
    });
    if crate::text::nul_in(&response).is_some() {
        return Err(Rejection::Payload(
            "the answer holds a NUL character (U+0000), which text may not".into(),
        ));
    }
    Ok(response)
}

/// The chunk size a package chunk request asks for, as decimal text (`None`: empty, the size
/// last used for the request); the error is the text the device gets on `v2/{fw,sw}/error`.
pub fn chunk_size(payload: &[u8]) -> Result<Option<u64>, String> {
    let text = std::str::from_utf8(payload).unwrap_or("").trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse::<u64>().map(Some).map_err(|_| {
        // Escaped first, then cut: a control character escapes to up to 10 characters, and the
        // answer stays short whatever the device sent.
        let mut shown: String = text.escape_debug().take(60).collect();
        if text.escape_debug().nth(60).is_some() {
            shown.push('…');
        }
        format!("the chunk size must be a whole number of bytes as decimal text, not \"{shown}\"")
    })
}

impl Drop for DeviceSession {
    /// The connection is gone, however it ended: record why, flush the counters, publish the
    /// Last Will when the client did not say goodbye, and free the device's registration.
    fn drop(&mut self) {
        let reason = self
            .end_reason
            .get()
            .unwrap_or(DisconnectReason::ConnectionLost);
        let ctx = self.ctx.clone();
        let identity = self.identity.clone();
        let conn_id = self.conn_id;
        let will = if matches!(reason, DisconnectReason::ClientDisconnect) {
            None
        } else {
            self.will.borrow_mut().take()
        };
        // The devices behind a gateway go with it.
        if let Some(gateway) = &self.gateway {
            gateway.release_all(DisconnectReason::GatewayDisconnected);
        }
        ctx.registry.unregister(identity.device_id, conn_id);
        let session = ctx.session_ref(conn_id);
        let now = telemetry::now_ms();
        let detail = format!("Disconnected: {}", super::describe(reason));
        timeline::record(
            &ctx.state.timeline,
            &identity,
            EventKind::Disconnected,
            detail,
            serde_json::json!({"reason": reason, "client_id": self.client_id, "peer": self.peer}),
        );
        let rt = ctx.rt.clone();
        let ending = ctx.state.sessions.ending();
        rt.spawn(async move {
            let _ending = ending;
            let live = &ctx.state.live;
            // What the session did since the last flush, written before it is marked offline.
            let mut activity = ctx.state.sessions.take_activity(identity.device_id);
            activity.merge(Activity {
                ts: now,
                messages: 0,
                errors: 0,
            });
            let _ = live
                .record_activity(&[(identity.device_id, activity)])
                .await;
            // Applies only if no newer session (on any node) took over.
            if let Ok(p) = live
                .update_presence(
                    identity.device_id,
                    PresenceChange::Disconnected {
                        ts: now,
                        reason,
                        session,
                    },
                )
                .await
            {
                ctx.state
                    .bus
                    .publish(identity.device_id, stead_api_types::LiveEvent::Presence(p));
                ctx.state.sessions.mirror_online(identity.device_id);
            }
            if let Some((topic, payload)) = will {
                if topic == "v1/devices/me/telemetry" {
                    if let Ok((rows, _)) =
                        ingest::telemetry_rows(&ctx.state.config, &identity, &payload, now)
                    {
                        let _ = ctx.state.telemetry.write(identity.device_id, rows).await;
                    }
                } else if topic == "v1/devices/me/attributes"
                    && let Ok(values) = ingest::attributes(&payload)
                {
                    let _ = crate::attributes::set_client(
                        &ctx.state.db,
                        &ctx.state.subscriptions,
                        &identity,
                        values,
                        now,
                    )
                    .await;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regression_a_chunk_size_of_control_characters_gets_a_short_answer() {
        // Found by the mqtt_session fuzz target: 40 control characters were cut before they
        // were escaped, and the answer grew to 380 characters.
        let why = chunk_size(&[0x16; 400]).unwrap_err();
        assert!(why.len() < 160, "{why}");
        assert!(why.ends_with("\\u{16}…\""), "{why}");
        assert_eq!(
            chunk_size(b"12x").unwrap_err(),
            "the chunk size must be a whole number of bytes as decimal text, not \"12x\""
        );
    }

    /// Found by the `mqtt_session` fuzz target (server/fuzz; this is the payload of its input): a
    /// command's answer on `v1/devices/me/rpc/response/{id}` that is not JSON is kept as text,
    /// NUL bytes included, and PostgreSQL refused to store it (a storage error: MQTT 3.1.1
    /// closes the connection and the device sends it again). The HTTP device API already
    /// refused such an answer; MQTT now does too.
    #[test]
    fn regression_an_answer_with_a_nul_is_refused() {
        let mut payload = b"{\"".to_vec();
        payload.extend([0xff; 20]);
        payload.extend([0x01, 0x00, 0x00, 0x01]);
        payload.extend([0xff; 13]);
        payload.extend(br#"status":"ok"}"#);
        let why = rpc_response(&payload).unwrap_err();
        assert_eq!(why.reason(), "invalid_payload");
        assert!(rpc_response(br#"{"out": "\u0000"}"#).is_err());
        assert_eq!(
            rpc_response(br#"{"status":"ok"}"#).unwrap(),
            serde_json::json!({"status": "ok"})
        );
        assert_eq!(rpc_response(b"done").unwrap(), serde_json::json!("done"));
    }

    #[test]
    fn payload_readers() {
        assert_eq!(attribute_request_keys(b"").unwrap(), (None, None));
        assert_eq!(
            attribute_request_keys(br#"{"clientKeys":"fw, ,model","sharedKeys":""}"#).unwrap(),
            (
                Some(vec!["fw".to_owned(), "model".to_owned()]),
                Some(vec![])
            )
        );
        assert!(attribute_request_keys(b"{").is_err());
        assert_eq!(
            rpc_request_method(br#"{"method":"getTime"}"#).unwrap(),
            "getTime"
        );
        assert_eq!(rpc_request_method(b"[1]").unwrap(), "");
        assert!(rpc_request_method(b"nope").is_err());
        assert_eq!(chunk_size(b" 1024 "), Ok(Some(1024)));
        assert_eq!(chunk_size(b""), Ok(None));
        assert!(chunk_size(b"-1").unwrap_err().contains("\"-1\""));
    }
}
