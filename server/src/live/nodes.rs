//! Node liveness in Redis: which ingress nodes are alive and which devices' sessions each one
//! holds, so that the devices of a node that died without a word (killed, crashed, cut off) can
//! be marked offline by the nodes that survive it.
//!
//! Each ingress node renews `node:{id}` (a TTL key) and its score in the `nodes` sorted set
//! (last heartbeat, ms) every heartbeat; a device's connect adds it to `node-devices:{id}` and
//! its disconnect takes it out again (`state.rs`, in the same round trips as the presence). A
//! node found in `nodes` with an old score and no `node:{id}` key is lost. Marking its devices
//! offline is conditional, device by device, on the presence still naming a session of that node
//! and saying online: a device that has reconnected elsewhere is left alone, and a second worker
//! doing the same work (or the same worker again after a failure) changes nothing. The embedded
//! in-process store has no other node and keeps none of this.

use redis::AsyncCommands as _;
use stead_api_types::DisconnectReason;

use super::{LiveStore, RedisStore};
use crate::ids::DeviceId;

/// For each presence hash in KEYS: when its session belongs to the node (ARGV[1] is `"{id}:"`)
/// and it says online, marks it offline at ARGV[2] with reason ARGV[3]. Answers 1 or 0 per key,
/// or nothing when the node's liveness key (ARGV[4]) exists again: a node that was only cut off
/// from Redis for a while is back, and its devices are still connected.
static NODE_LOST_SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r#"
if redis.call('EXISTS', ARGV[4]) == 1 then
  return {}
end
local out = {}
for i = 1, #KEYS do
  local s = redis.call('HGET', KEYS[i], 'session')
  if s and string.sub(s, 1, #ARGV[1]) == ARGV[1] and redis.call('HGET', KEYS[i], 'online') == '1' then
    redis.call('HSET', KEYS[i], 'online', 0, 'last_disconnect', ARGV[2], 'last_disconnect_reason', ARGV[3])
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
"#,
    )
});

/// Devices per `NODE_LOST_SCRIPT` call: short enough not to hold Redis up for other clients.
const DEVICES_PER_CALL: usize = 500;

/// How long one worker may take over a lost node's devices before another may try again.
const CLAIM_MS: u64 = 60_000;

impl RedisStore {
    pub(super) fn node_devices_key(&self, node: uuid::Uuid) -> String {
        self.key(&format!("node-devices:{node}"))
    }

    fn node_key(&self, node: uuid::Uuid) -> String {
        self.key(&format!("node:{node}"))
    }

    fn nodes_key(&self) -> String {
        self.key("nodes")
    }

    fn claim_key(&self, node: uuid::Uuid) -> String {
        self.key(&format!("node-lost:{node}"))
    }
}

impl LiveStore {
    /// This node is alive for another `ttl_ms`. Nothing to do without Redis.
    pub async fn node_heartbeat(&self, node: uuid::Uuid, ttl_ms: u64) -> anyhow::Result<()> {
        let LiveStore::Redis(r) = self else {
            return Ok(());
        };
        let now = crate::telemetry::now_ms();
        let _: () = redis::pipe()
            .cmd("SET")
            .arg(r.node_key(node))
            .arg(now)
            .arg("PX")
            .arg(ttl_ms)
            .ignore()
            .zadd(r.nodes_key(), node.to_string(), now)
            .ignore()
            .query_async(&mut r.conn.clone())
            .await?;
        Ok(())
    }

    /// Nodes whose last heartbeat is more than `timeout_ms` old and whose liveness key is gone
    /// (the key, not the score, decides: the score is the other node's clock).
    pub async fn lost_nodes(&self, timeout_ms: u64) -> anyhow::Result<Vec<uuid::Uuid>> {
        let LiveStore::Redis(r) = self else {
            return Ok(Vec::new());
        };
        let before = crate::telemetry::now_ms() - timeout_ms as i64;
        let stale: Vec<String> = r
            .conn
            .clone()
            .zrangebyscore(r.nodes_key(), "-inf", before)
            .await?;
        let mut lost = Vec::new();
        for node in stale.iter().filter_map(|n| n.parse::<uuid::Uuid>().ok()) {
            let alive: bool = r.conn.clone().exists(r.node_key(node)).await?;
            if !alive {
                lost.push(node);
            }
        }
        Ok(lost)
    }

    /// Takes on the work for a lost node, unless another worker has it (for `CLAIM_MS`).
    pub async fn claim_lost_node(&self, node: uuid::Uuid, by: uuid::Uuid) -> anyhow::Result<bool> {
        let LiveStore::Redis(r) = self else {
            return Ok(false);
        };
        let set: Option<String> = redis::cmd("SET")
            .arg(r.claim_key(node))
            .arg(by.to_string())
            .arg("NX")
            .arg("PX")
            .arg(CLAIM_MS)
            .query_async(&mut r.conn.clone())
            .await?;
        Ok(set.is_some())
    }

    /// Marks offline every device whose presence still names a session of `node` and says
    /// online; answers the devices it changed.
    pub async fn mark_node_offline(
        &self,
        node: uuid::Uuid,
        ts: i64,
        reason: DisconnectReason,
    ) -> anyhow::Result<Vec<DeviceId>> {
        let LiveStore::Redis(r) = self else {
            return Ok(Vec::new());
        };
        let members: Vec<String> = r.conn.clone().smembers(r.node_devices_key(node)).await?;
        let devices: Vec<DeviceId> = members
            .iter()
            .filter_map(|m| m.parse().ok().map(DeviceId))
            .collect();
        let prefix = format!("{node}:");
        let reason = super::state::reason_str(reason);
        let mut marked = Vec::new();
        for chunk in devices.chunks(DEVICES_PER_CALL) {
            let mut invocation = NODE_LOST_SCRIPT.prepare_invoke();
            for device in chunk {
                invocation.key(r.presence_key(*device));
            }
            invocation
                .arg(&prefix)
                .arg(ts)
                .arg(&reason)
                .arg(r.node_key(node));
            let changed: Vec<i64> = invocation.invoke_async(&mut r.conn.clone()).await?;
            marked.extend(
                chunk
                    .iter()
                    .zip(changed)
                    .filter(|(_, c)| *c == 1)
                    .map(|(d, _)| *d),
            );
        }
        Ok(marked)
    }

    /// Forgets a node whose devices have been dealt with (lost, or shut down).
    pub async fn forget_node(&self, node: uuid::Uuid) -> anyhow::Result<()> {
        let LiveStore::Redis(r) = self else {
            return Ok(());
        };
        let _: () = redis::pipe()
            .del(r.node_devices_key(node))
            .ignore()
            .del(r.node_key(node))
            .ignore()
            .zrem(r.nodes_key(), node.to_string())
            .ignore()
            .del(r.claim_key(node))
            .ignore()
            .query_async(&mut r.conn.clone())
            .await?;
        Ok(())
    }
}
