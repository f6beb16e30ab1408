//! Live events (new telemetry, presence changes) for people watching a device, across nodes.
//!
//! Events are only produced for devices someone watches: a node that serves a live view
//! registers the device in a shared "watched" set (a Redis sorted set scored by expiry, or a
//! local set in embedded mode), refreshed while the view is open. Each node refreshes its copy
//! of that set every second, so the hot path asks a local set, never the network. With Redis,
//! events travel over one pub/sub channel that every node subscribes to; without it, over a
//! local broadcast channel.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures_util::StreamExt as _;
use redis::AsyncCommands as _;
use stead_api_types::LiveEvent;
use tokio::sync::broadcast;
use tracing::Instrument as _;

use super::LiveStore;
use crate::ids::DeviceId;
use crate::observability::trace::redis_span;

/// How long a registration lasts without a refresh.
const WATCH_TTL_MS: i64 = 60_000;

#[derive(Clone)]
pub struct LiveBus {
    local: broadcast::Sender<Arc<(DeviceId, LiveEvent)>>,
    watched: Arc<RwLock<HashSet<DeviceId>>>,
    /// Embedded mode: local registrations, counted per device.
    local_watchers: Arc<Mutex<HashMap<DeviceId, usize>>>,
    redis: Option<RedisBus>,
    /// Set at shutdown: open live views end, so that they do not hold up the HTTP drain.
    closing: Arc<tokio::sync::watch::Sender<bool>>,
    /// Whether this node hears the other nodes (always, without Redis).
    link: Arc<Link>,
}

/// The state of the node's subscription to the other nodes' messages.
pub struct Link {
    up: std::sync::atomic::AtomicBool,
    /// Counts the subscriptions made again after one was lost: each time, what the node may
    /// have missed meanwhile (revocations, take-overs, commands) is caught up on
    /// (`ingress::resync`).
    relinked: tokio::sync::watch::Sender<u64>,
}

impl Link {
    fn set_up(&self, up: bool) {
        self.up.store(up, std::sync::atomic::Ordering::Release);
    }
}

impl Default for Link {
    fn default() -> Link {
        Link {
            up: std::sync::atomic::AtomicBool::new(true),
            relinked: tokio::sync::watch::Sender::new(0),
        }
    }
}

/// Subscribes to the live-event and session-control channels.
async fn subscribe(
    client: &redis::Client,
    live: &str,
    control: &str,
) -> anyhow::Result<redis::aio::PubSub> {
    let mut pubsub = tokio::time::timeout(Duration::from_secs(5), client.get_async_pubsub())
        .await
        .map_err(|_| anyhow::anyhow!("no answer within 5 s"))??;
    pubsub.subscribe(live).await?;
    pubsub.subscribe(control).await?;
    Ok(pubsub)
}

/// Hands what the other nodes say to this node's live views and sessions. When the
/// subscription drops (Redis restarted, the network cut), the node stops trusting what it
/// cached from before (`Sessions::set_linked`), subscribes again as soon as Redis answers, and
/// then catches up (`Link::relinked`).
async fn listen(
    client: redis::Client,
    mut pubsub: redis::aio::PubSub,
    [live, control]: [String; 2],
    local: broadcast::Sender<Arc<(DeviceId, LiveEvent)>>,
    sessions: Arc<crate::ingress::Sessions>,
    link: Arc<Link>,
) {
    let node = sessions.node_id;
    loop {
        {
            let mut messages = pubsub.on_message();
            while let Some(msg) = messages.next().await {
                let payload = msg.get_payload_bytes();
                if msg.get_channel_name() == live {
                    if let Ok(wire) = serde_json::from_slice::<Wire>(payload) {
                        let _ = local.send(Arc::new((wire.device, wire.event)));
                    }
                } else if let Ok(control) = serde_json::from_slice::<ControlWire>(payload)
                    && control.from != node
                {
                    sessions.apply(control.control);
                }
            }
        }
        link.set_up(false);
        sessions.set_linked(false);
        tracing::error!(
            "the Redis subscription for live events and session control was lost; \
             subscribing again (meanwhile this node trusts no cached device login)"
        );
        let mut wait = Duration::from_millis(200);
        pubsub = loop {
            tokio::time::sleep(wait).await;
            match subscribe(&client, &live, &control).await {
                Ok(pubsub) => break pubsub,
                Err(e) => {
                    tracing::warn!(error = %e, "subscribing to Redis again failed; retrying");
                    wait = (wait * 2).min(Duration::from_secs(2));
                }
            }
        };
        sessions.set_linked(true);
        link.set_up(true);
        link.relinked.send_modify(|n| *n += 1);
        tracing::info!("subscribed to Redis again: catching up on what this node missed");
    }
}

/// Controls that could not be published wait here, in order, for Redis to answer again; beyond
/// this many the oldest go (the catch-up after the outage covers them).
const CONTROLS_WAITING: usize = 10_000;

/// Session controls published in one round trip at most.
const CONTROLS_PER_ROUND_TRIP: usize = 256;

/// How long a take-over announcement stays worth sending: a late one could end a newer session,
/// and the catch-up after an outage settles take-overs from the presence records instead.
const TAKE_OVER_FRESH: Duration = Duration::from_secs(5);

/// Publishes this node's session control for the other nodes. What cannot be published (Redis
/// down) is kept and published, in order, once Redis answers again: a revocation made during
/// an outage reaches every node.
async fn tell(
    mut conn: redis::aio::ConnectionManager,
    channel: String,
    node: uuid::Uuid,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<(crate::ingress::Control, tracing::Span)>,
) {
    let mut waiting: std::collections::VecDeque<(Vec<u8>, bool, std::time::Instant)> =
        std::collections::VecDeque::new();
    let wire = |control: crate::ingress::Control| {
        let take_over = matches!(control, crate::ingress::Control::Connected(_));
        let payload = serde_json::to_vec(&ControlWire {
            from: node,
            control,
        })
        .unwrap_or_default();
        (payload, take_over)
    };
    while let Some((control, sent_in)) = rx.recv().await {
        // What queued meanwhile goes in the same round trip (a storm of devices moving between
        // nodes: one write per batch of take-over announcements, not per device), in order;
        // the batch's PUBLISH joins the trace of its first control.
        let mut batch = vec![wire(control)];
        while batch.len() < CONTROLS_PER_ROUND_TRIP {
            match rx.try_recv() {
                Ok((control, _)) => batch.push(wire(control)),
                Err(_) => break,
            }
        }
        let span = sent_in.in_scope(|| redis_span("PUBLISH"));
        if waiting.is_empty() {
            let mut pipe = redis::pipe();
            for (payload, _) in &batch {
                pipe.publish(&channel, payload).ignore();
            }
            if pipe
                .query_async::<()>(&mut conn)
                .instrument(span)
                .await
                .is_ok()
            {
                continue;
            }
        }
        // (Some of the batch may have gone out: a control said twice does what it did once.)
        let now = std::time::Instant::now();
        waiting.extend(
            batch
                .into_iter()
                .map(|(payload, take_over)| (payload, take_over, now)),
        );
        // Publishes the waiting controls in order until Redis takes them all, while taking in
        // new ones.
        let mut wait = Duration::from_millis(200);
        while !waiting.is_empty() {
            while let Ok((control, _)) = rx.try_recv() {
                let (payload, take_over) = wire(control);
                waiting.push_back((payload, take_over, std::time::Instant::now()));
            }
            if waiting.len() > CONTROLS_WAITING {
                let dropped = waiting.len() - CONTROLS_WAITING;
                waiting.drain(..dropped);
                tracing::warn!(
                    dropped,
                    "session control for other nodes dropped while Redis is down"
                );
            }
            waiting.retain(|(_, take_over, at)| !*take_over || at.elapsed() < TAKE_OVER_FRESH);
            let Some((payload, _, _)) = waiting.front() else {
                break;
            };
            match conn.publish::<_, _, ()>(&channel, payload).await {
                Ok(()) => {
                    waiting.pop_front();
                    wait = Duration::from_millis(200);
                }
                Err(e) => {
                    tracing::warn!(error = %e, waiting = waiting.len(), "telling the other nodes failed; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(2));
                }
            }
        }
    }
}

#[derive(Clone)]
struct RedisBus {
    conn: redis::aio::ConnectionManager,
    channel: String,
    watch_key: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ControlWire {
    from: uuid::Uuid,
    control: crate::ingress::Control,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Wire {
    device: DeviceId,
    event: LiveEvent,
}

impl LiveBus {
    pub async fn start(
        live: &LiveStore,
        sessions: Arc<crate::ingress::Sessions>,
    ) -> anyhow::Result<LiveBus> {
        let (local, _) = broadcast::channel(4096);
        let mut bus = LiveBus {
            local,
            watched: Arc::default(),
            local_watchers: Arc::default(),
            redis: None,
            closing: Arc::new(tokio::sync::watch::Sender::new(false)),
            link: Arc::default(),
        };
        if let LiveStore::Redis(r) = live {
            let redis = RedisBus {
                conn: r.conn.clone(),
                channel: r.key("live"),
                watch_key: r.key("watched"),
            };
            let control_channel = r.key("control");
            // The first subscription is made here, so that a node that cannot subscribe does not
            // start; later ones are made again by the task below whenever the link drops.
            let pubsub = subscribe(&r.client, &redis.channel, &control_channel).await?;
            bus.link.set_up(true);
            tokio::spawn(listen(
                r.client.clone(),
                pubsub,
                [redis.channel.clone(), control_channel.clone()],
                bus.local.clone(),
                sessions.clone(),
                bus.link.clone(),
            ));
            // Session control for the other nodes: revocations and take-overs.
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            sessions.set_remote(tx);
            tokio::spawn(tell(
                redis.conn.clone(),
                control_channel,
                sessions.node_id,
                rx,
            ));
            let watched = bus.watched.clone();
            let (mut conn, key) = (redis.conn.clone(), redis.watch_key.clone());
            tokio::spawn(async move {
                loop {
                    let now = crate::telemetry::now_ms();
                    let members: redis::RedisResult<Vec<String>> =
                        conn.zrangebyscore(&key, now, "+inf").await;
                    if let Ok(members) = members {
                        let set = members
                            .iter()
                            .filter_map(|m| m.parse().ok().map(DeviceId))
                            .collect();
                        *watched.write().unwrap_or_else(|p| p.into_inner()) = set;
                    }
                    let _: redis::RedisResult<()> = conn.zrembyscore(&key, "-inf", now).await;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            });
            bus.redis = Some(redis);
        }
        Ok(bus)
    }

    /// Whether this node hears the other nodes now (always true without Redis).
    pub fn linked(&self) -> bool {
        self.link.up.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Changes each time the subscription to the other nodes is made again after a loss.
    pub fn relinked(&self) -> tokio::sync::watch::Receiver<u64> {
        self.link.relinked.subscribe()
    }

    /// Whether anyone, on any node, watches this device.
    pub fn is_watched(&self, device: DeviceId) -> bool {
        self.watched
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&device)
    }

    /// Hands an event to the device's live views, on every node. Only for a device someone
    /// watches (see the module's doc): a reconnect storm of unwatched devices publishes nothing.
    pub fn publish(&self, device: DeviceId, event: LiveEvent) {
        if !self.is_watched(device) {
            return;
        }
        match &self.redis {
            Some(redis) => {
                let mut conn = redis.conn.clone();
                let channel = redis.channel.clone();
                let payload = serde_json::to_vec(&Wire { device, event }).unwrap_or_default();
                tokio::spawn(async move {
                    let _: redis::RedisResult<()> = conn.publish(channel, payload).await;
                });
            }
            None => {
                let _ = self.local.send(Arc::new((device, event)));
            }
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<(DeviceId, LiveEvent)>> {
        self.local.subscribe()
    }

    /// The node is shutting down: every live view's `closing` resolves.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Resolves when the node starts shutting down.
    pub fn closing(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.closing.subscribe();
        async move {
            let _ = rx.wait_for(|closing| *closing).await;
        }
    }

    /// Registers interest in a device until the returned guard is dropped.
    pub async fn watch(&self, device: DeviceId) -> WatchGuard {
        match &self.redis {
            Some(redis) => {
                let mut conn = redis.conn.clone();
                let key = redis.watch_key.clone();
                let watched = self.watched.clone();
                let refresher = tokio::spawn(async move {
                    loop {
                        let until = crate::telemetry::now_ms() + WATCH_TTL_MS;
                        let _: redis::RedisResult<()> =
                            conn.zadd(&key, device.to_string(), until).await;
                        watched
                            .write()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(device);
                        tokio::time::sleep(Duration::from_millis((WATCH_TTL_MS / 3) as u64)).await;
                    }
                });
                WatchGuard {
                    bus: self.clone(),
                    device,
                    refresher: Some(refresher),
                }
            }
            None => {
                *self
                    .local_watchers
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(device)
                    .or_default() += 1;
                self.watched
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(device);
                WatchGuard {
                    bus: self.clone(),
                    device,
                    refresher: None,
                }
            }
        }
    }
}

pub struct WatchGuard {
    bus: LiveBus,
    device: DeviceId,
    refresher: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        if let Some(refresher) = self.refresher.take() {
            // The registration expires on its own once no longer refreshed.
            refresher.abort();
            return;
        }
        let mut watchers = self
            .bus
            .local_watchers
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = watchers.get_mut(&self.device) {
            *n -= 1;
            if *n == 0 {
                watchers.remove(&self.device);
                self.bus
                    .watched
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&self.device);
            }
        }
    }
}
