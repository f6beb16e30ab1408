//! Live state in Redis, shared by every node. Every key carries the configured prefix.

use std::time::Duration;

use redis::AsyncCommands as _;
use redis::aio::ConnectionManager;
use tracing::Instrument as _;

use crate::observability::trace::redis_span;

#[derive(Clone)]
pub struct RedisStore {
    pub(super) conn: ConnectionManager,
    pub(super) client: redis::Client,
    prefix: String,
}

impl RedisStore {
    pub async fn connect(url: &str, prefix: &str) -> anyhow::Result<RedisStore> {
        use redis::IntoConnectionInfo as _;
        let info = url
            .into_connection_info()
            .map_err(|e| anyhow::anyhow!("STEAD_REDIS_URL is not a valid Redis URL: {e}"))?
            // Nagle off: a large pipeline must not wait for Redis's delayed ACK.
            .set_tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true));
        let client = redis::Client::open(info)
            .map_err(|e| anyhow::anyhow!("STEAD_REDIS_URL is not a valid Redis URL: {e}"))?;
        // One direct attempt first: a refused connection is reported at once, not after the
        // connection manager's retries.
        tokio::time::timeout(
            Duration::from_secs(10),
            client.get_multiplexed_async_connection(),
        )
        .await
        .map_err(|_| anyhow::anyhow!("cannot reach Redis: no answer within 10 s"))?
        .map_err(|e| anyhow::anyhow!("cannot reach Redis: {e}"))?;
        let conn = tokio::time::timeout(
            Duration::from_secs(10),
            ConnectionManager::new(client.clone()),
        )
        .await
        .map_err(|_| anyhow::anyhow!("cannot reach Redis: no answer within 10 s"))?
        .map_err(|e| anyhow::anyhow!("cannot reach Redis: {e}"))?;
        Ok(RedisStore {
            conn,
            client,
            prefix: prefix.to_owned(),
        })
    }

    pub(super) fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    pub async fn add(
        &self,
        key: &str,
        n: u64,
        window: Duration,
    ) -> anyhow::Result<(u64, Duration)> {
        let key = self.key(key);
        let window_ms = window.as_millis().max(1) as u64;
        // INCR and set the expiry only when the key is new: a fixed window, atomically.
        let (count, ttl): (u64, i64) = redis::pipe()
            .atomic()
            .incr(&key, n)
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(window_ms)
            .arg("NX")
            .ignore()
            .cmd("PTTL")
            .arg(&key)
            .query_async(&mut self.conn.clone())
            .instrument(redis_span("INCR"))
            .await?;
        Ok((count, Duration::from_millis(ttl.max(0) as u64)))
    }

    pub async fn count(&self, key: &str) -> anyhow::Result<(u64, Duration)> {
        let key = self.key(key);
        let (count, ttl): (Option<u64>, i64) = redis::pipe()
            .get(&key)
            .cmd("PTTL")
            .arg(&key)
            .query_async(&mut self.conn.clone())
            .instrument(redis_span("GET"))
            .await?;
        Ok((count.unwrap_or(0), Duration::from_millis(ttl.max(0) as u64)))
    }

    pub async fn reset(&self, key: &str) -> anyhow::Result<()> {
        let _: () = self
            .conn
            .clone()
            .del(self.key(key))
            .instrument(redis_span("DEL"))
            .await?;
        Ok(())
    }

    pub async fn ping(&self) -> anyhow::Result<()> {
        let _: String = redis::cmd("PING")
            .query_async(&mut self.conn.clone())
            .instrument(redis_span("PING"))
            .await?;
        Ok(())
    }
}
