//! The live-state store: short-lived shared state such as rate-limit counters (and, with the
//! ingress, presence and latest values). Redis when configured, so that every node sees the same
//! state; an in-process map for the single-node embedded mode.

pub mod bus;
mod memory;
mod nodes;
mod redis_store;
pub mod snapshot;
pub mod state;

use std::time::Duration;

pub use memory::MemoryStore;
pub use redis_store::RedisStore;

use crate::config::Config;

#[derive(Clone)]
pub enum LiveStore {
    Memory(MemoryStore),
    Redis(RedisStore),
}

impl LiveStore {
    pub async fn from_config(config: &Config) -> anyhow::Result<LiveStore> {
        match &config.redis_url {
            Some(url) => Ok(LiveStore::Redis(
                RedisStore::connect(url.expose(), &config.redis_prefix).await?,
            )),
            None => Ok(LiveStore::Memory(MemoryStore::default())),
        }
    }

    /// Adds one to the counter `key` in a fixed window that starts with the first hit, and
    /// answers the new count and the time left in the window.
    pub async fn hit(&self, key: &str, window: Duration) -> anyhow::Result<(u64, Duration)> {
        self.add(key, 1, window).await
    }

    /// Adds `n` to the counter `key`, as `hit` adds one.
    pub async fn add(
        &self,
        key: &str,
        n: u64,
        window: Duration,
    ) -> anyhow::Result<(u64, Duration)> {
        match self {
            LiveStore::Memory(m) => Ok(m.add(key, n, window)),
            LiveStore::Redis(r) => r.add(key, n, window).await,
        }
    }

    /// The counter's current value without adding to it.
    pub async fn count(&self, key: &str) -> anyhow::Result<(u64, Duration)> {
        match self {
            LiveStore::Memory(m) => Ok(m.count(key)),
            LiveStore::Redis(r) => r.count(key).await,
        }
    }

    pub async fn reset(&self, key: &str) -> anyhow::Result<()> {
        match self {
            LiveStore::Memory(m) => {
                m.reset(key);
                Ok(())
            }
            LiveStore::Redis(r) => r.reset(key).await,
        }
    }

    /// Whether the store lives in this process (the embedded default) and ends with it.
    pub fn is_in_process(&self) -> bool {
        matches!(self, LiveStore::Memory(_))
    }

    /// For `/readyz`: `None` when the store is not a separate service.
    pub async fn ping(&self) -> Option<anyhow::Result<()>> {
        match self {
            LiveStore::Memory(_) => None,
            LiveStore::Redis(r) => Some(r.ping().await),
        }
    }
}
