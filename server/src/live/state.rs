//! Per-device live state: latest value per key, presence, counters. Kept in the live-state store
//! (Redis across nodes, or in process), never in the relational database: it changes with every
//! message.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use redis::AsyncCommands as _;
use stead_api_types::{DisconnectReason, Presence, TsValue};
use tracing::Instrument as _;

use super::{LiveStore, RedisStore};
use crate::ids::DeviceId;
use crate::observability::trace::redis_span;

#[derive(Default, Clone)]
pub struct MemoryState {
    latest: Arc<Mutex<HashMap<DeviceId, BTreeMap<String, TsValue>>>>,
    presence: Arc<Mutex<HashMap<DeviceId, PresenceEntry>>>,
    alarm_state: Arc<Mutex<HashMap<DeviceId, HashMap<String, String>>>>,
    /// Score sets (the fleet page's busiest devices), with when each expires.
    scores: Arc<Mutex<HashMap<String, ScoreSet>>>,
    /// Counts changes to `latest`, so that its snapshot (`live::snapshot`) is written only when
    /// something changed.
    latest_changes: Arc<std::sync::atomic::AtomicU64>,
}

/// A score set's members and when it expires.
type ScoreSet = (HashMap<String, f64>, std::time::Instant);

/// A presence record and the session it belongs to, with that session's `seq`.
type PresenceEntry = (Presence, Option<(SessionRef, u64)>);

/// Which connection (node and connection number) a presence record belongs to, so that the end
/// of a session that was taken over (perhaps on another node) does not mark the device offline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionRef {
    pub node: uuid::Uuid,
    pub conn: u64,
}

impl std::fmt::Display for SessionRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.node, self.conn)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub fn empty_presence() -> Presence {
    Presence {
        online: false,
        last_activity: None,
        last_connect: None,
        last_disconnect: None,
        last_disconnect_reason: None,
        messages: 0,
        errors: 0,
    }
}

/// A session's connect, for its device's presence (`LiveStore::connected`). It applies unless
/// the record already belongs to a session that got the device later (see `claim_of`):
/// connects recorded out of order leave the newest session holding the record.
#[derive(Debug, Clone, Copy)]
pub struct Connect {
    pub device: DeviceId,
    pub ts: i64,
    pub session: SessionRef,
    /// The order in which its node gave devices to sessions (`ingress::Grant::seq`).
    pub seq: u64,
}

/// A change to a device's presence after its connect (`Connect`).
#[derive(Debug, Clone, Copy)]
pub enum PresenceChange {
    /// Applies only while `session` is still the device's current one.
    Disconnected {
        ts: i64,
        reason: DisconnectReason,
        session: SessionRef,
    },
    /// Silent for longer than its profile allows: offline with reason "inactive", whatever the
    /// session.
    Inactive { ts: i64 },
    /// Offline with this reason, whatever the session (a previous run's devices at start-up).
    Ended { ts: i64, reason: DisconnectReason },
}

/// What a device did since its activity was last recorded: when it was last heard from, and how
/// many messages it sent and had refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Activity {
    pub ts: i64,
    pub messages: u64,
    pub errors: u64,
}

impl Activity {
    pub fn merge(&mut self, other: Activity) {
        self.ts = self.ts.max(other.ts);
        self.messages += other.messages;
        self.errors += other.errors;
    }
}

/// What the connect of `session` (at `ts`, its node's grant `seq`) claims of a presence record
/// held by `current` (connected at `last_connect`): nothing when it is the older of the two: on
/// the same node, it got the device before the current one (`Outdated`); across nodes, it
/// connected earlier (`Superseded`: nodes' clocks are taken to agree to the millisecond or so,
/// as the catch-up after an outage takes them to, `REASSERT_SCRIPT`). `CONNECT_SCRIPT` is the
/// same rule in Redis.
fn claim_of(
    current: Option<(SessionRef, u64)>,
    last_connect: Option<i64>,
    session: SessionRef,
    ts: i64,
    seq: u64,
) -> Claim {
    match current {
        None => Claim::Current,
        Some((current, current_seq)) if current.node == session.node => {
            if current_seq > seq {
                Claim::Outdated
            } else {
                Claim::Current
            }
        }
        Some(_) if last_connect.is_some_and(|last| last > ts) => Claim::Superseded,
        Some(_) => Claim::TookOver,
    }
}

fn apply(p: &mut Presence, change: PresenceChange) {
    match change {
        PresenceChange::Disconnected { ts, reason, .. } => {
            p.online = false;
            p.last_disconnect = Some(ts);
            p.last_disconnect_reason = Some(reason);
        }
        PresenceChange::Inactive { ts } => {
            p.online = false;
            p.last_disconnect = Some(ts);
            p.last_disconnect_reason = Some(DisconnectReason::Inactive);
        }
        PresenceChange::Ended { ts, reason } => {
            p.online = false;
            p.last_disconnect = Some(ts);
            p.last_disconnect_reason = Some(reason);
        }
    }
}

pub(super) fn reason_str(reason: DisconnectReason) -> String {
    serde_json::to_value(reason)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// For each device hash in KEYS, `HSET` each of its keys only when its timestamp is at least the
/// stored one. ARGV holds, per device in KEYS order, a count of keys followed by that many
/// (field, ts, value) triples. Values are `{"ts":…,"value":…}` with `ts` first, as `TsValue`
/// serialises.
static LATEST_SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r#"
local a = 1
for k = 1, #KEYS do
  local n = tonumber(ARGV[a])
  a = a + 1
  for i = 1, n do
    local current = redis.call('HGET', KEYS[k], ARGV[a])
    local stored = current and tonumber(string.match(current, '^{"ts":(%-?%d+)'))
    if not stored or stored <= tonumber(ARGV[a + 1]) then
      redis.call('HSET', KEYS[k], ARGV[a], ARGV[a + 2])
    end
    a = a + 3
  end
end
return 0
"#,
    )
});

/// Devices per `LATEST_SCRIPT` call: one round trip for a whole committed batch, in slices short
/// enough not to hold Redis up for other clients.
const LATEST_DEVICES_PER_CALL: usize = 256;

/// Marks the device offline only if the ending session is still the current one. The device
/// leaves its node's set (KEYS[2], see `nodes`) unless a newer session on the same node (ARGV[4]
/// is the node's `"{id}:"`) holds it now.
static DISCONNECT_SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r#"
local current = redis.call('HGET', KEYS[1], 'session')
if current == ARGV[1] then
  redis.call('HSET', KEYS[1], 'online', 0, 'last_disconnect', ARGV[2], 'last_disconnect_reason', ARGV[3])
end
if current == ARGV[1] or not current or string.sub(current, 1, #ARGV[4]) ~= ARGV[4] then
  redis.call('SREM', KEYS[2], ARGV[5])
end
return 0
"#,
    )
});

/// Connects (`Connect`), each unless its record belongs to a newer session (the rule of
/// `claim_of`): online, its session and `seq`, connected and active at its time, and the
/// device in its node's set (KEYS[1], see `nodes`; one node's connects per call). KEYS[2…] are
/// the presence records; ARGV[1] is the node's `"{id}:"`, then per record the session, its
/// connect time, its `seq`, the device, and 1 if the record is wanted back. Answers, per
/// record, what became of the connect's claim (as `REASSERT_SCRIPT`: 1 the session holds the
/// record, 2 it does and took it from another node's session, 0 a newer session elsewhere holds
/// it; and 3 a newer session of the same node holds it) and the record as it is now (`HGETALL`)
/// or, when not wanted, an empty one.
static CONNECT_SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r#"
local out = {}
for i = 2, #KEYS do
  local a = 2 + (i - 2) * 5
  local key = KEYS[i]
  local current = redis.call('HGET', key, 'session')
  local claim
  if not current then
    claim = 1
  elseif string.sub(current, 1, #ARGV[1]) == ARGV[1] then
    local seq = tonumber(redis.call('HGET', key, 'seq') or '0') or 0
    claim = (seq > tonumber(ARGV[a + 2])) and 3 or 1
  else
    local last = tonumber(redis.call('HGET', key, 'last_connect') or '0') or 0
    claim = (last > tonumber(ARGV[a + 1])) and 0 or 2
  end
  if claim == 1 or claim == 2 then
    redis.call('HSET', key, 'online', 1, 'session', ARGV[a], 'seq', ARGV[a + 2],
      'last_connect', ARGV[a + 1], 'last_activity', ARGV[a + 1])
    redis.call('SADD', KEYS[1], ARGV[a + 3])
  end
  if ARGV[a + 4] == '1' then
    out[i - 1] = {claim, redis.call('HGETALL', key)}
  else
    out[i - 1] = {claim, {}}
  end
end
return out
"#,
    )
});

/// What a session's claim of its presence record became (`LiveStore::connected`,
/// `reassert_presence`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// It is the device's current session.
    Current,
    /// It is, and it replaced an older session on another node (or, after an outage, another
    /// connection), which ends.
    TookOver,
    /// A session given the device later on the same node holds it: the registry already ended
    /// this one when it gave the device away (a connect recorded late; `LiveStore::connected`
    /// only).
    Outdated,
    /// A newer session elsewhere holds the device: this one ends.
    Superseded,
}

/// The catch-up after an outage (`ingress::resync`): for each presence hash in KEYS, a session
/// this node holds claims the record when it is already its own, unclaimed, or older (by
/// `last_connect`) than its own connect; it is then online, and in the node's set (ARGV[1]).
/// ARGV holds, per key, the session, its connect time, the device and the session's `seq`. Answers per key 1 (the
/// session is the device's current one), 2 (it is, and it replaced an older session, which its
/// node must end) or 0 (a newer session elsewhere holds it).
static REASSERT_SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r#"
local out = {}
for i = 1, #KEYS do
  local a = 2 + (i - 1) * 4
  local mine, at, device, seq = ARGV[a], tonumber(ARGV[a + 1]), ARGV[a + 2], ARGV[a + 3]
  local current = redis.call('HGET', KEYS[i], 'session')
  local last = tonumber(redis.call('HGET', KEYS[i], 'last_connect') or '0') or 0
  if current == mine or not current or last <= at then
    redis.call('HSET', KEYS[i], 'online', 1, 'session', mine, 'seq', seq)
    if current ~= mine then
      redis.call('HSET', KEYS[i], 'last_connect', at)
    end
    redis.call('SADD', ARGV[1], device)
    if current and current ~= mine then
      out[i] = 2
    else
      out[i] = 1
    end
  else
    out[i] = 0
  end
end
return out
"#,
    )
});

impl RedisStore {
    fn latest_key(&self, device: DeviceId) -> String {
        self.key(&format!("latest:{device}"))
    }

    pub(super) fn presence_key(&self, device: DeviceId) -> String {
        self.key(&format!("presence:{device}"))
    }

    fn alarm_state_key(&self, device: DeviceId) -> String {
        self.key(&format!("alarmstate:{device}"))
    }
}

impl LiveStore {
    /// Adds `n` to each counter (created with its expiry) and answers each counter's new value:
    /// one Redis round trip.
    pub async fn add_and_read(
        &self,
        counters: &[(String, u64, std::time::Duration)],
    ) -> anyhow::Result<Vec<u64>> {
        match self {
            LiveStore::Memory(m) => Ok(counters
                .iter()
                .map(|(key, n, ttl)| m.add(key, *n, *ttl).0)
                .collect()),
            LiveStore::Redis(r) => {
                let mut pipe = redis::pipe();
                for (key, n, ttl) in counters {
                    let key = r.key(key);
                    pipe.incr(&key, *n);
                    pipe.cmd("PEXPIRE")
                        .arg(&key)
                        .arg(ttl.as_millis().max(1) as u64)
                        .arg("NX")
                        .ignore();
                }
                Ok(pipe
                    .query_async(&mut r.conn.clone())
                    .instrument(redis_span("INCRBY"))
                    .await?)
            }
        }
    }

    /// Adds to several counters and to members' scores in score sets, each key expiring `ttl`
    /// after its creation: one Redis round trip.
    pub async fn add_many(
        &self,
        counters: &[(String, u64)],
        scores: &[(String, String, u64)],
        ttl: std::time::Duration,
    ) -> anyhow::Result<()> {
        match self {
            LiveStore::Memory(m) => {
                for (key, n) in counters {
                    m.add(key, *n, ttl);
                }
                let now = std::time::Instant::now();
                let mut sets = lock(&m.state.scores);
                sets.retain(|_, (_, until)| *until > now);
                for (key, member, n) in scores {
                    let (set, _) = sets
                        .entry(key.clone())
                        .or_insert_with(|| (HashMap::new(), now + ttl));
                    *set.entry(member.clone()).or_default() += *n as f64;
                }
                Ok(())
            }
            LiveStore::Redis(r) => {
                let ms = ttl.as_millis().max(1) as u64;
                let mut pipe = redis::pipe();
                for (key, n) in counters {
                    let key = r.key(key);
                    pipe.incr(&key, *n).ignore();
                    pipe.cmd("PEXPIRE").arg(&key).arg(ms).arg("NX").ignore();
                }
                for (key, member, n) in scores {
                    let key = r.key(key);
                    pipe.zincr(&key, member, *n).ignore();
                    pipe.cmd("PEXPIRE").arg(&key).arg(ms).arg("NX").ignore();
                }
                let _: () = pipe
                    .query_async(&mut r.conn.clone())
                    .instrument(redis_span("INCRBY"))
                    .await?;
                Ok(())
            }
        }
    }

    /// Several counters' values (0 for a missing one), in the order asked.
    pub async fn counts(&self, keys: &[String]) -> anyhow::Result<Vec<u64>> {
        match self {
            LiveStore::Memory(m) => Ok(keys.iter().map(|k| m.count(k).0).collect()),
            LiveStore::Redis(r) => {
                if keys.is_empty() {
                    return Ok(Vec::new());
                }
                let keys: Vec<String> = keys.iter().map(|k| r.key(k)).collect();
                let values: Vec<Option<u64>> = r
                    .conn
                    .clone()
                    .mget(keys)
                    .instrument(redis_span("MGET"))
                    .await?;
                Ok(values.into_iter().map(Option::unwrap_or_default).collect())
            }
        }
    }

    /// The `n` highest-scored members of some score sets taken together.
    pub async fn top_scores(
        &self,
        keys: &[String],
        n: usize,
    ) -> anyhow::Result<Vec<(String, u64)>> {
        let mut total: HashMap<String, f64> = HashMap::new();
        match self {
            LiveStore::Memory(m) => {
                let now = std::time::Instant::now();
                let sets = lock(&m.state.scores);
                for key in keys {
                    if let Some((set, until)) = sets.get(key)
                        && *until > now
                    {
                        for (member, score) in set {
                            *total.entry(member.clone()).or_default() += score;
                        }
                    }
                }
            }
            LiveStore::Redis(r) => {
                for key in keys {
                    let top: Vec<(String, f64)> = r
                        .conn
                        .clone()
                        .zrevrange_withscores(r.key(key), 0, (n as isize * 4).max(1) - 1)
                        .instrument(redis_span("ZREVRANGE"))
                        .await?;
                    for (member, score) in top {
                        *total.entry(member).or_default() += score;
                    }
                }
            }
        }
        let mut all: Vec<(String, u64)> = total.into_iter().map(|(m, s)| (m, s as u64)).collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        all.truncate(n);
        Ok(all)
    }
}

/// How long a device's alarm-rule progress outlives its last message: a month of silence
/// forgets half-run durations, never an active alarm (that is in the database).
const ALARM_STATE_TTL_SECS: i64 = 30 * 24 * 3600;

/// A device's rule progress to write (`Some`) or forget (`None`), by rule id.
pub type RuleChanges = Vec<(String, Option<String>)>;

impl LiveStore {
    /// The alarm-rule progress of several devices, by rule (each value the engine's own JSON),
    /// in the order asked: one Redis round trip.
    pub async fn alarm_states(
        &self,
        devices: &[DeviceId],
    ) -> anyhow::Result<Vec<HashMap<String, String>>> {
        match self {
            LiveStore::Memory(m) => {
                let all = lock(&m.state.alarm_state);
                Ok(devices
                    .iter()
                    .map(|d| all.get(d).cloned().unwrap_or_default())
                    .collect())
            }
            LiveStore::Redis(r) => {
                if devices.is_empty() {
                    return Ok(Vec::new());
                }
                let mut pipe = redis::pipe();
                for d in devices {
                    pipe.hgetall(r.alarm_state_key(*d));
                }
                Ok(pipe
                    .query_async(&mut r.conn.clone())
                    .instrument(redis_span("HGETALL"))
                    .await?)
            }
        }
    }

    /// Writes (`Some`) or forgets (`None`) the progress of some rules of some devices: one Redis
    /// round trip.
    pub async fn save_alarm_states(
        &self,
        changes: Vec<(DeviceId, RuleChanges)>,
    ) -> anyhow::Result<()> {
        let changes: Vec<_> = changes.into_iter().filter(|(_, c)| !c.is_empty()).collect();
        if changes.is_empty() {
            return Ok(());
        }
        match self {
            LiveStore::Memory(m) => {
                let mut all = lock(&m.state.alarm_state);
                for (device, rules) in changes {
                    let entry = all.entry(device).or_default();
                    for (rule, value) in rules {
                        match value {
                            Some(v) => entry.insert(rule, v),
                            None => entry.remove(&rule),
                        };
                    }
                    if entry.is_empty() {
                        all.remove(&device);
                    }
                }
                Ok(())
            }
            LiveStore::Redis(r) => {
                let mut pipe = redis::pipe();
                for (device, rules) in changes {
                    let key = r.alarm_state_key(device);
                    for (rule, value) in rules {
                        match value {
                            Some(v) => pipe.hset(&key, rule, v).ignore(),
                            None => pipe.hdel(&key, rule).ignore(),
                        };
                    }
                    pipe.expire(&key, ALARM_STATE_TTL_SECS).ignore();
                }
                let _: () = pipe
                    .query_async(&mut r.conn.clone())
                    .instrument(redis_span("HSET"))
                    .await?;
                Ok(())
            }
        }
    }

    /// Every device's progress held in process (`None` on Redis, which keeps its own): what a
    /// graceful shutdown of the embedded server saves.
    pub fn alarm_state_snapshot(&self) -> Option<HashMap<DeviceId, HashMap<String, String>>> {
        match self {
            LiveStore::Memory(m) => Some(lock(&m.state.alarm_state).clone()),
            LiveStore::Redis(_) => None,
        }
    }

    /// The in-process store's latest values, with its change count (`None` on Redis, which
    /// outlives the process).
    pub fn latest_snapshot(&self) -> Option<(u64, Newest)> {
        match self {
            LiveStore::Memory(m) => {
                let changes = m
                    .state
                    .latest_changes
                    .load(std::sync::atomic::Ordering::Relaxed);
                let all = lock(&m.state.latest)
                    .iter()
                    .map(|(d, keys)| (*d, keys.clone()))
                    .collect();
                Some((changes, all))
            }
            LiveStore::Redis(_) => None,
        }
    }

    /// The in-process store's change count of latest values.
    pub fn latest_changes(&self) -> Option<u64> {
        match self {
            LiveStore::Memory(m) => Some(
                m.state
                    .latest_changes
                    .load(std::sync::atomic::Ordering::Relaxed),
            ),
            LiveStore::Redis(_) => None,
        }
    }

    /// Puts saved progress back into the in-process store (nothing on Redis).
    pub fn restore_alarm_states(&self, all: HashMap<DeviceId, HashMap<String, String>>) {
        if let LiveStore::Memory(m) = self {
            lock(&m.state.alarm_state).extend(all);
        }
    }

    /// One device's progress (`alarm_states` of one).
    pub async fn alarm_state(&self, device: DeviceId) -> anyhow::Result<HashMap<String, String>> {
        Ok(self
            .alarm_states(&[device])
            .await?
            .pop()
            .unwrap_or_default())
    }

    /// `save_alarm_states` of one device.
    pub async fn save_alarm_state(
        &self,
        device: DeviceId,
        changes: RuleChanges,
    ) -> anyhow::Result<()> {
        self.save_alarm_states(vec![(device, changes)]).await
    }
}

/// The newest value of each key, per device.
pub type Newest = HashMap<DeviceId, BTreeMap<String, TsValue>>;

/// Merges points (device, timestamp, values) into `newest`, keeping the greatest timestamp of
/// each key.
pub fn merge_newest<'a>(
    newest: &mut Newest,
    points: impl IntoIterator<
        Item = (
            DeviceId,
            i64,
            &'a serde_json::Map<String, serde_json::Value>,
        ),
    >,
) {
    for (device, ts, values) in points {
        let keys = newest.entry(device).or_default();
        for (key, value) in values {
            match keys.get_mut(key) {
                Some(held) if held.ts <= ts => {
                    *held = TsValue {
                        ts,
                        value: value.clone(),
                    }
                }
                Some(_) => {}
                None => {
                    keys.insert(
                        key.clone(),
                        TsValue {
                            ts,
                            value: value.clone(),
                        },
                    );
                }
            }
        }
    }
}

/// How long committed values may wait before they reach the live state. At tens of messages
/// per device per second, writing each device once per interval instead of once per message
/// saves most of the live state's work; the live view does not wait (its events go out as each
/// batch commits).
const LATEST_FLUSH: std::time::Duration = std::time::Duration::from_millis(200);

/// Latest values on their way to the live state: merged as telemetry commits, written every
/// `LATEST_FLUSH`.
#[derive(Clone)]
pub struct LatestWriter {
    pending: Arc<Mutex<Newest>>,
}

impl LatestWriter {
    /// Starts the flush on the current runtime.
    pub fn start(live: LiveStore) -> LatestWriter {
        let pending: Arc<Mutex<Newest>> = Arc::default();
        let writer = LatestWriter {
            pending: pending.clone(),
        };
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(LATEST_FLUSH);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let newest = std::mem::take(&mut *lock(&pending));
                if newest.is_empty() {
                    continue;
                }
                if let Err(e) = live.update_latest(newest.clone()).await {
                    // Kept for the next round (Redis may be restarting): newer values that came
                    // meanwhile win.
                    tracing::warn!(error = %e, "updating latest values failed; retrying");
                    let mut pending = lock(&pending);
                    for (device, keys) in newest {
                        let entry = pending.entry(device).or_default();
                        for (key, v) in keys {
                            if entry.get(&key).is_none_or(|newer| newer.ts < v.ts) {
                                entry.insert(key, v);
                            }
                        }
                    }
                }
            }
        });
        writer
    }

    pub fn add<'a>(
        &self,
        points: impl IntoIterator<
            Item = (
                DeviceId,
                i64,
                &'a serde_json::Map<String, serde_json::Value>,
            ),
        >,
    ) {
        merge_newest(&mut lock(&self.pending), points);
    }

    /// `add` for values the caller no longer needs: moved, not copied (committed telemetry, on
    /// the hot path: no allocation for a key already pending).
    pub fn add_owned(
        &self,
        points: impl IntoIterator<Item = (DeviceId, i64, serde_json::Map<String, serde_json::Value>)>,
    ) {
        let mut pending = lock(&self.pending);
        for (device, ts, values) in points {
            let keys = pending.entry(device).or_default();
            for (key, value) in values {
                match keys.get_mut(&key) {
                    Some(held) if held.ts <= ts => *held = TsValue { ts, value },
                    Some(_) => {}
                    None => {
                        keys.insert(key, TsValue { ts, value });
                    }
                }
            }
        }
    }
}

impl LiveStore {
    /// Records the newest value of each key of each device: one lock, or one Redis round trip
    /// per `LATEST_DEVICES_PER_CALL` devices. A value older than the stored one never replaces
    /// it, whichever node wrote that.
    pub async fn update_latest(&self, newest: Newest) -> anyhow::Result<()> {
        match self {
            LiveStore::Memory(m) => {
                m.state
                    .latest_changes
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let mut all = lock(&m.state.latest);
                for (device, keys) in newest {
                    let entry = all.entry(device).or_default();
                    for (key, v) in keys {
                        if entry.get(&key).is_none_or(|old| old.ts <= v.ts) {
                            entry.insert(key, v);
                        }
                    }
                }
                Ok(())
            }
            LiveStore::Redis(r) => {
                let devices: Vec<_> = newest.into_iter().filter(|(_, k)| !k.is_empty()).collect();
                for slice in devices.chunks(LATEST_DEVICES_PER_CALL) {
                    let mut invocation = LATEST_SCRIPT.prepare_invoke();
                    for (device, keys) in slice {
                        invocation.key(r.latest_key(*device)).arg(keys.len());
                        for (key, v) in keys {
                            invocation
                                .arg(key)
                                .arg(v.ts)
                                .arg(serde_json::to_string(v).unwrap_or_default());
                        }
                    }
                    let _: () = invocation
                        .invoke_async(&mut r.conn.clone())
                        .instrument(redis_span("EVALSHA"))
                        .await?;
                }
                Ok(())
            }
        }
    }

    pub async fn latest(&self, device: DeviceId) -> anyhow::Result<BTreeMap<String, TsValue>> {
        match self {
            LiveStore::Memory(m) => Ok(lock(&m.state.latest)
                .get(&device)
                .cloned()
                .unwrap_or_default()),
            LiveStore::Redis(r) => {
                let raw: HashMap<String, String> = r
                    .conn
                    .clone()
                    .hgetall(r.latest_key(device))
                    .instrument(redis_span("HGETALL"))
                    .await?;
                Ok(raw
                    .into_iter()
                    .filter_map(|(k, v)| serde_json::from_str(&v).ok().map(|v| (k, v)))
                    .collect())
            }
        }
    }

    /// Records connects (`Connect`): one lock, or one Redis round trip per 256 (a connect storm's
    /// are recorded together). Answers, per connect, what became of its claim, and its device's
    /// presence as it is now when `read_back` says so for it (its live views want it).
    pub async fn connected(
        &self,
        connects: &[Connect],
        read_back: impl Fn(DeviceId) -> bool,
    ) -> anyhow::Result<Vec<(Claim, Option<Presence>)>> {
        match self {
            LiveStore::Memory(m) => {
                let mut all = lock(&m.state.presence);
                Ok(connects
                    .iter()
                    .map(|c| {
                        let (p, current) = all
                            .entry(c.device)
                            .or_insert_with(|| (empty_presence(), None));
                        let claim = claim_of(*current, p.last_connect, c.session, c.ts, c.seq);
                        if matches!(claim, Claim::Current | Claim::TookOver) {
                            *current = Some((c.session, c.seq));
                            p.online = true;
                            p.last_connect = Some(c.ts);
                            p.last_activity = Some(c.ts);
                        }
                        (claim, read_back(c.device).then(|| p.clone()))
                    })
                    .collect())
            }
            LiveStore::Redis(r) => {
                let mut recorded = Vec::with_capacity(connects.len());
                // One node's connects per call (the node's set is the script's first key).
                for chunk in connects.chunk_by(|a, b| a.session.node == b.session.node) {
                    for chunk in chunk.chunks(LATEST_DEVICES_PER_CALL) {
                        let node = chunk[0].session.node;
                        let mut invocation = CONNECT_SCRIPT.prepare_invoke();
                        invocation
                            .key(r.node_devices_key(node))
                            .arg(format!("{node}:"));
                        let wanted: Vec<bool> = chunk.iter().map(|c| read_back(c.device)).collect();
                        for (c, wanted) in chunk.iter().zip(&wanted) {
                            invocation
                                .key(r.presence_key(c.device))
                                .arg(c.session.to_string())
                                .arg(c.ts)
                                .arg(c.seq)
                                .arg(c.device.to_string())
                                .arg(u8::from(*wanted));
                        }
                        let raw: Vec<(i64, HashMap<String, String>)> = invocation
                            .invoke_async(&mut r.conn.clone())
                            .instrument(redis_span("EVALSHA"))
                            .await?;
                        recorded.extend(raw.iter().zip(wanted).map(|((claim, raw), wanted)| {
                            (claim_from(*claim), wanted.then(|| presence_from_hash(raw)))
                        }));
                    }
                }
                Ok(recorded)
            }
        }
    }

    /// Changes a device's presence after its connect (it ended, went silent, …) and answers
    /// the presence as it is now.
    pub async fn update_presence(
        &self,
        device: DeviceId,
        change: PresenceChange,
    ) -> anyhow::Result<Presence> {
        match self {
            LiveStore::Memory(m) => {
                let mut all = lock(&m.state.presence);
                let (p, current) = all
                    .entry(device)
                    .or_insert_with(|| (empty_presence(), None));
                if let PresenceChange::Disconnected { session, .. } = change
                    && current.map(|(c, _)| c) != Some(session)
                {
                    return Ok(p.clone());
                }
                apply(p, change);
                Ok(p.clone())
            }
            LiveStore::Redis(r) => {
                let key = r.presence_key(device);
                let mut pipe = redis::pipe();
                match change {
                    PresenceChange::Disconnected {
                        ts,
                        reason,
                        session,
                    } => {
                        let _: () = DISCONNECT_SCRIPT
                            .key(&key)
                            .key(r.node_devices_key(session.node))
                            .arg(session.to_string())
                            .arg(ts)
                            .arg(reason_str(reason))
                            .arg(format!("{}:", session.node))
                            .arg(device.to_string())
                            .invoke_async(&mut r.conn.clone())
                            .instrument(redis_span("EVALSHA"))
                            .await?;
                        // (An empty pipeline below would answer an error.)
                        return self.presence(device).await;
                    }
                    PresenceChange::Inactive { ts } => {
                        pipe.hset(&key, "online", 0)
                            .ignore()
                            .hset(&key, "last_disconnect", ts)
                            .ignore()
                            .hset(
                                &key,
                                "last_disconnect_reason",
                                reason_str(DisconnectReason::Inactive),
                            )
                            .ignore();
                    }
                    PresenceChange::Ended { ts, reason } => {
                        pipe.hset(&key, "online", 0)
                            .ignore()
                            .hset(&key, "last_disconnect", ts)
                            .ignore()
                            .hset(&key, "last_disconnect_reason", reason_str(reason))
                            .ignore();
                    }
                }
                // The presence as it is now, in the same round trip.
                let (raw,): (HashMap<String, String>,) = pipe
                    .hgetall(&key)
                    .query_async(&mut r.conn.clone())
                    .instrument(redis_span("HSET"))
                    .await?;
                Ok(presence_from_hash(&raw))
            }
        }
    }

    /// After an outage of the live state: the sessions this node holds (device, session,
    /// connect time, `seq`) claim their presence records again (see `REASSERT_SCRIPT`). Answers, per
    /// session, what became of its claim. In process there is no outage.
    pub async fn reassert_presence(
        &self,
        node: uuid::Uuid,
        held: &[(DeviceId, SessionRef, i64, u64)],
    ) -> anyhow::Result<Vec<Claim>> {
        let LiveStore::Redis(r) = self else {
            return Ok(vec![Claim::Current; held.len()]);
        };
        let mut current = Vec::with_capacity(held.len());
        for chunk in held.chunks(LATEST_DEVICES_PER_CALL) {
            let mut invocation = REASSERT_SCRIPT.prepare_invoke();
            invocation.arg(r.node_devices_key(node));
            for (device, session, at, seq) in chunk {
                invocation
                    .key(r.presence_key(*device))
                    .arg(session.to_string())
                    .arg(*at)
                    .arg(device.to_string())
                    .arg(*seq);
            }
            let ours: Vec<i64> = invocation
                .invoke_async(&mut r.conn.clone())
                .instrument(redis_span("EVALSHA"))
                .await?;
            current.extend(ours.into_iter().map(claim_from));
        }
        Ok(current)
    }

    /// Adds the activity of many devices to their presence: one lock, or one Redis round trip
    /// per 1,000 devices (nodes flush their sessions' activity together, once a second).
    pub async fn record_activity(&self, batch: &[(DeviceId, Activity)]) -> anyhow::Result<()> {
        match self {
            LiveStore::Memory(m) => {
                let mut all = lock(&m.state.presence);
                for &(device, a) in batch {
                    let (p, _) = all
                        .entry(device)
                        .or_insert_with(|| (empty_presence(), None));
                    p.last_activity = Some(p.last_activity.map_or(a.ts, |t| t.max(a.ts)));
                    p.messages += a.messages;
                    p.errors += a.errors;
                }
                Ok(())
            }
            LiveStore::Redis(r) => {
                for slice in batch.chunks(1000) {
                    let mut pipe = redis::pipe();
                    for &(device, a) in slice {
                        let key = r.presence_key(device);
                        pipe.hset(&key, "last_activity", a.ts).ignore();
                        if a.messages > 0 {
                            pipe.hincr(&key, "messages", a.messages).ignore();
                        }
                        if a.errors > 0 {
                            pipe.hincr(&key, "errors", a.errors).ignore();
                        }
                    }
                    let _: () = pipe
                        .query_async(&mut r.conn.clone())
                        .instrument(redis_span("HSET"))
                        .await?;
                }
                Ok(())
            }
        }
    }

    pub async fn presence(&self, device: DeviceId) -> anyhow::Result<Presence> {
        Ok(self
            .presence_of(&[device])
            .await?
            .pop()
            .unwrap_or_else(empty_presence))
    }

    /// The presence of many devices at once (one round trip on Redis), in the same order.
    /// The time (ms) of the newest value of `key` of each device, in the order asked: one Redis
    /// round trip.
    pub async fn latest_ts_of(
        &self,
        devices: &[DeviceId],
        key: &str,
    ) -> anyhow::Result<Vec<Option<i64>>> {
        match self {
            LiveStore::Memory(m) => {
                let all = lock(&m.state.latest);
                Ok(devices
                    .iter()
                    .map(|d| all.get(d).and_then(|k| k.get(key)).map(|v| v.ts))
                    .collect())
            }
            LiveStore::Redis(r) => {
                if devices.is_empty() {
                    return Ok(Vec::new());
                }
                let mut pipe = redis::pipe();
                for device in devices {
                    pipe.hget(r.latest_key(*device), key);
                }
                let raws: Vec<Option<String>> = pipe
                    .query_async(&mut r.conn.clone())
                    .instrument(redis_span("HGET"))
                    .await?;
                Ok(raws
                    .into_iter()
                    .map(|v| {
                        v.and_then(|v| serde_json::from_str::<TsValue>(&v).ok())
                            .map(|v| v.ts)
                    })
                    .collect())
            }
        }
    }

    pub async fn presence_of(&self, devices: &[DeviceId]) -> anyhow::Result<Vec<Presence>> {
        match self {
            LiveStore::Memory(m) => {
                let all = lock(&m.state.presence);
                Ok(devices
                    .iter()
                    .map(|d| {
                        all.get(d)
                            .map(|(p, _)| p.clone())
                            .unwrap_or_else(empty_presence)
                    })
                    .collect())
            }
            LiveStore::Redis(r) => {
                // Redis refuses an empty pipeline.
                if devices.is_empty() {
                    return Ok(Vec::new());
                }
                let mut pipe = redis::pipe();
                for device in devices {
                    pipe.hgetall(r.presence_key(*device));
                }
                let raws: Vec<HashMap<String, String>> = pipe
                    .query_async(&mut r.conn.clone())
                    .instrument(redis_span("HGETALL"))
                    .await?;
                Ok(raws.iter().map(presence_from_hash).collect())
            }
        }
    }
}

/// A claim as `CONNECT_SCRIPT` and `REASSERT_SCRIPT` answer it.
fn claim_from(answer: i64) -> Claim {
    match answer {
        3 => Claim::Outdated,
        2 => Claim::TookOver,
        1 => Claim::Current,
        _ => Claim::Superseded,
    }
}

fn presence_from_hash(raw: &HashMap<String, String>) -> Presence {
    let num = |k: &str| raw.get(k).and_then(|v| v.parse::<i64>().ok());
    Presence {
        online: num("online") == Some(1),
        last_activity: num("last_activity"),
        last_connect: num("last_connect"),
        last_disconnect: num("last_disconnect"),
        last_disconnect_reason: raw
            .get("last_disconnect_reason")
            .and_then(|v| serde_json::from_value(serde_json::Value::String(v.clone())).ok()),
        messages: num("messages").unwrap_or(0).max(0) as u64,
        errors: num("errors").unwrap_or(0).max(0) as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn values(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    /// Latest values of several devices written in one call (one Redis script call): devices
    /// with different numbers of keys, several points of one device, and a late point that must
    /// not replace a newer value; then the same devices' activity.
    async fn latest_and_activity(store: LiveStore) -> [DeviceId; 3] {
        let (a, b, c) = (
            DeviceId(uuid::Uuid::new_v4()),
            DeviceId(uuid::Uuid::new_v4()),
            DeviceId(uuid::Uuid::new_v4()),
        );
        let first = [
            (a, 100, values(json!({"t": 1, "h": 2, "p": 3}))),
            (b, 100, values(json!({"x": "one"}))),
            (a, 200, values(json!({"t": 10}))),
            (c, 50, values(json!({"on": true, "cfg": {"k": 1}}))),
        ];
        let mut newest = Newest::new();
        merge_newest(&mut newest, first.iter().map(|(d, ts, v)| (*d, *ts, v)));
        store.update_latest(newest).await.unwrap();
        let late = [
            (a, 150, values(json!({"t": 5, "h": 20}))),
            (b, 300, values(json!({"x": "two"}))),
        ];
        let mut newest = Newest::new();
        merge_newest(&mut newest, late.iter().map(|(d, ts, v)| (*d, *ts, v)));
        store.update_latest(newest).await.unwrap();

        let got = |m: &BTreeMap<String, TsValue>| -> Vec<(String, i64, serde_json::Value)> {
            m.iter()
                .map(|(k, v)| (k.clone(), v.ts, v.value.clone()))
                .collect()
        };
        assert_eq!(
            got(&store.latest(a).await.unwrap()),
            vec![
                ("h".to_owned(), 150, json!(20)),
                ("p".to_owned(), 100, json!(3)),
                ("t".to_owned(), 200, json!(10)),
            ],
            "the newest point per key wins, whatever the order of arrival"
        );
        assert_eq!(
            got(&store.latest(b).await.unwrap()),
            vec![("x".to_owned(), 300, json!("two"))]
        );
        assert_eq!(
            got(&store.latest(c).await.unwrap()),
            vec![
                ("cfg".to_owned(), 50, json!({"k": 1})),
                ("on".to_owned(), 50, json!(true)),
            ]
        );

        let activity = |ts, messages, errors| Activity {
            ts,
            messages,
            errors,
        };
        store
            .record_activity(&[(a, activity(1_000, 3, 1)), (b, activity(2_000, 5, 0))])
            .await
            .unwrap();
        store
            .record_activity(&[(a, activity(3_000, 2, 0))])
            .await
            .unwrap();
        let presence = store.presence_of(&[a, b, c]).await.unwrap();
        let summary: Vec<_> = presence
            .iter()
            .map(|p| (p.last_activity, p.messages, p.errors))
            .collect();
        assert_eq!(
            summary,
            vec![(Some(3_000), 5, 1), (Some(2_000), 5, 0), (None, 0, 0)]
        );
        [a, b, c]
    }

    #[tokio::test]
    async fn memory_store_keeps_the_newest_values_and_counts_activity() {
        latest_and_activity(LiveStore::Memory(Default::default())).await;
    }

    /// A store in a key space of its own on the tests' Redis.
    async fn redis_store() -> RedisStore {
        let url = std::env::var("STEAD_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
        let prefix = format!("test-live-{}:", uuid::Uuid::new_v4().simple());
        RedisStore::connect(&url, &prefix)
            .await
            .expect("Redis is required for this test (STEAD_TEST_REDIS_URL)")
    }

    /// Connect writes that land out of order: the session given the device later keeps the
    /// record, so the end of the one it took over does not mark the device offline.
    async fn presence_keeps_the_newest_session(
        store: LiveStore,
    ) -> ([DeviceId; 3], [uuid::Uuid; 2]) {
        let device = DeviceId(uuid::Uuid::new_v4());
        let (here, there) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        let session = |node, conn| SessionRef { node, conn };
        let connected = async |session, ts, seq| {
            let connect = Connect {
                device,
                ts,
                session,
                seq,
            };
            let recorded = store.connected(&[connect], |_| true).await.unwrap();
            (recorded[0].0, recorded[0].1.clone().unwrap())
        };
        let ended = async |session, ts| {
            let change = PresenceChange::Disconnected {
                ts,
                reason: DisconnectReason::TakenOver,
                session,
            };
            store.update_presence(device, change).await.unwrap()
        };
        // On one node, in the same millisecond: the later grant (seq 2) is recorded first. Its
        // connection number is the lower one, as when an earlier CONNECT's login took longer.
        let (newer, older) = (session(here, 7), session(here, 9));
        let (claim, p) = connected(newer, 1_000, 2).await;
        assert_eq!((claim, p.online), (Claim::Current, true));
        let (claim, p) = connected(older, 1_000, 1).await;
        assert_eq!(claim, Claim::Outdated);
        assert_eq!((p.online, p.last_connect), (true, Some(1_000)));
        let p = ended(older, 1_010).await;
        assert!(
            p.online,
            "the older session's end took the newer one's device offline"
        );

        // Across nodes, the connect times order them: one that connected earlier elsewhere
        // changes nothing, a later one takes the record.
        let elsewhere = session(there, 1);
        let (claim, p) = connected(elsewhere, 990, 50).await;
        assert_eq!((claim, p.last_connect), (Claim::Superseded, Some(1_000)));
        assert!(ended(elsewhere, 1_020).await.online);
        let later = session(there, 2);
        // Taken from the other node's session, which its node is told to end.
        assert_eq!(connected(later, 1_030, 1).await.0, Claim::TookOver);
        let p = ended(newer, 1_040).await;
        assert_eq!((p.online, p.last_connect), (true, Some(1_030)));
        let p = ended(later, 1_050).await;
        assert_eq!((p.online, p.last_disconnect), (false, Some(1_050)));

        // Several connects at once, one not wanted back.
        let (a, b) = (
            DeviceId(uuid::Uuid::new_v4()),
            DeviceId(uuid::Uuid::new_v4()),
        );
        let connect = |device, conn| Connect {
            device,
            ts: 2_000,
            session: session(here, conn),
            seq: conn,
        };
        let records = store
            .connected(&[connect(a, 20), connect(b, 21)], |d| d == b)
            .await
            .unwrap();
        assert!(records.iter().all(|(claim, _)| *claim == Claim::Current));
        assert!(records[0].1.is_none());
        assert_eq!(records[1].1.as_ref().map(|p| p.online), Some(true));
        let both = store.presence_of(&[a, b]).await.unwrap();
        assert!(
            both.iter()
                .all(|p| p.online && p.last_connect == Some(2_000))
        );
        ([device, a, b], [here, there])
    }

    #[tokio::test]
    async fn memory_store_keeps_the_newest_session_s_presence() {
        presence_keeps_the_newest_session(LiveStore::Memory(Default::default())).await;
    }

    #[tokio::test]
    async fn redis_store_keeps_the_newest_session_s_presence() {
        let store = redis_store().await;
        let (devices, nodes) =
            presence_keeps_the_newest_session(LiveStore::Redis(store.clone())).await;
        let mut keys: Vec<String> = devices.iter().map(|d| store.presence_key(*d)).collect();
        keys.extend(nodes.iter().map(|n| store.node_devices_key(*n)));
        let _: () = redis::AsyncCommands::del(&mut store.conn.clone(), &keys)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn redis_store_keeps_the_newest_values_and_counts_activity() {
        let store = redis_store().await;
        let devices = latest_and_activity(LiveStore::Redis(store.clone())).await;
        let keys: Vec<String> = devices
            .iter()
            .flat_map(|d| [store.latest_key(*d), store.presence_key(*d)])
            .collect();
        let _: () = redis::AsyncCommands::del(&mut store.conn.clone(), keys)
            .await
            .unwrap();
    }
}
