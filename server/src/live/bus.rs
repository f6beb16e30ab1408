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
        };
        if let LiveStore::Redis(r) = live {
            let redis = RedisBus {
                conn: r.conn.clone(),
                channel: r.key("live"),
                watch_key: r.key("watched"),
            };
            let control_channel = r.key("control");
            let mut pubsub = r.client.get_async_pubsub().await?;
            pubsub.subscribe(&redis.channel).await?;
            pubsub.subscribe(&control_channel).await?;
            let local = bus.local.clone();
            let node = sessions.node_id;
            let receiver = sessions.clone();
            tokio::spawn(async move {
                let mut messages = pubsub.into_on_message();
                while let Some(msg) = messages.next().await {
                    let Ok(payload) = msg.get_payload::<Vec<u8>>() else {
                        continue;
                    };
                    if let Ok(wire) = serde_json::from_slice::<Wire>(&payload) {
                        let _ = local.send(Arc::new((wire.device, wire.event)));
                    } else if let Ok(control) = serde_json::from_slice::<ControlWire>(&payload)
                        && control.from != node
                    {
                        receiver.apply(control.control);
                    }
                }
                tracing::error!("the Redis subscription for live events and session control ended");
            });
            // Session control for the other nodes: revocations and take-overs.
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            sessions.set_remote(tx);
            let mut conn = redis.conn.clone();
            tokio::spawn(async move {
                while let Some((control, sent_in)) = rx.recv().await {
                    let payload = serde_json::to_vec(&ControlWire {
                        from: node,
                        control,
                    })
                    .unwrap_or_default();
                    let span = sent_in.in_scope(|| redis_span("PUBLISH"));
                    if let Err(e) = conn
                        .publish::<_, _, ()>(&control_channel, payload)
                        .instrument(span)
                        .await
                    {
                        tracing::warn!(error = %e, "telling the other nodes failed");
                    }
                }
            });
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

    /// Whether anyone, on any node, watches this device.
    pub fn is_watched(&self, device: DeviceId) -> bool {
        self.watched
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&device)
    }

    pub fn publish(&self, device: DeviceId, event: LiveEvent) {
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
