//! The rule engine: evaluates committed telemetry against alarm rules, off the PUBACK path.
//!
//! The telemetry writer's commit hook hands each batch to [`Engine::add`], which keeps only the
//! rows of tenants that have rules and queues them to one of a few shards by device, so each
//! device's messages are evaluated in order. Each rule's progress on a device (how long, how
//! many in a row, which severity is active) lives in the live-state store, so a device that
//! reconnects to another node, or a restart with Redis, continues where it was. Raising, stepping
//! and clearing go to the database (one active alarm per device and type, by its unique index),
//! with the history, the outbox event and the device's timeline.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, EntityTrait, QuerySelect};
use serde::{Deserialize, Serialize};
use stead_api_types::{AlarmRuleSpec, AlarmSeverity, ConditionKind, ValueSource};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::rules::{Facts, Progress, Rule};
use super::{notify_change, repo};
use crate::ids::{DeviceId, TenantId};
use crate::live::LiveStore;
use crate::telemetry::Row;
use crate::timeline::TimelineWriter;

/// Rows waiting per shard; past it, evaluation is skipped (counted), never the ingest slowed.
const SHARD_QUEUE: usize = 512;
/// How long a device's profile and attributes are trusted before they are read again.
const DEVICE_TTL: Duration = Duration::from_secs(5);

/// One rule, parsed, with where it applies.
#[derive(Debug)]
pub struct Compiled {
    pub id: Uuid,
    pub tenant: TenantId,
    pub profile: Option<Uuid>,
    pub device: Option<Uuid>,
    pub rule: Rule,
    pub needs_attributes: bool,
}

/// Every enabled rule, by tenant; read again every few seconds on every node, and at once after
/// a change made through this node.
#[derive(Default)]
pub struct RuleCache {
    tenants: RwLock<HashMap<TenantId, Arc<Vec<Arc<Compiled>>>>>,
}

impl RuleCache {
    pub fn has_rules(&self, tenant: TenantId) -> bool {
        self.tenants
            .read()
            .map(|t| t.contains_key(&tenant))
            .unwrap_or(true)
    }

    pub fn of_tenant(&self, tenant: TenantId) -> Arc<Vec<Arc<Compiled>>> {
        self.tenants
            .read()
            .ok()
            .and_then(|t| t.get(&tenant).cloned())
            .unwrap_or_default()
    }

    /// Every rule of every tenant (the no-data sweep).
    pub fn all(&self) -> Vec<Arc<Compiled>> {
        self.tenants
            .read()
            .map(|t| t.values().flat_map(|r| r.iter().cloned()).collect())
            .unwrap_or_default()
    }

    pub async fn refresh(&self, db: &impl ConnectionTrait) -> crate::error::Result<()> {
        let mut by_tenant: HashMap<TenantId, Vec<Arc<Compiled>>> = HashMap::new();
        for r in repo::enabled_rules(db, crate::auth::System::worker()).await? {
            let parsed = serde_json::from_value::<AlarmRuleSpec>(r.spec.clone())
                .ok()
                .and_then(|spec| Rule::parse(&spec).ok());
            let Some(rule) = parsed else {
                tracing::warn!(rule = %r.id, "an alarm rule no longer parses; it is skipped");
                continue;
            };
            let needs_attributes = super::rules::needs_attributes(&rule);
            by_tenant
                .entry(TenantId(r.tenant_id))
                .or_default()
                .push(Arc::new(Compiled {
                    id: r.id,
                    tenant: TenantId(r.tenant_id),
                    profile: r.profile_id,
                    device: r.device_id,
                    rule,
                    needs_attributes,
                }));
        }
        let map = by_tenant
            .into_iter()
            .map(|(t, rules)| (t, Arc::new(rules)))
            .collect();
        if let Ok(mut t) = self.tenants.write() {
            *t = map;
        }
        Ok(())
    }
}

/// The rules that apply to a device: its own, and its profile's of the types it has none of.
pub fn rules_for(rules: &[Arc<Compiled>], device: Uuid, profile: Uuid) -> Vec<Arc<Compiled>> {
    let own: Vec<Arc<Compiled>> = rules
        .iter()
        .filter(|r| r.device == Some(device))
        .cloned()
        .collect();
    let mut out = own.clone();
    out.extend(
        rules
            .iter()
            .filter(|r| {
                r.profile == Some(profile)
                    && !own.iter().any(|o| o.rule.alarm_type == r.rule.alarm_type)
            })
            .cloned(),
    );
    out
}

/// A rule's progress on one device, as kept in the live-state store.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RuleState {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub create: BTreeMap<AlarmSeverity, Progress>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub clear: Progress,
    /// The severity of the alarm this rule holds active, as far as the engine knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<AlarmSeverity>,
    /// When a create expression last held (for `clear_after_secs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_met: Option<i64>,
}

fn is_default(p: &Progress) -> bool {
    *p == Progress::default()
}

/// What one message does to a rule's alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Nothing,
    Raise(AlarmSeverity),
    Clear,
}

/// Takes one message (values at `ts`) into a rule's progress and says what happens to its
/// alarm. Pure: the engine applies the decision.
pub fn decide(rule: &Rule, state: &mut RuleState, facts: &Facts<'_>, ts: i64) -> Decision {
    let mut target = None;
    let mut any_held = false;
    let mut touched = false;
    for (severity, c) in &rule.create {
        if c.kind == ConditionKind::NoData {
            // Data arriving ends a no-data alarm of this severity.
            let arrived = match &c.key {
                Some(k) => facts.telemetry.contains_key(k),
                None => !facts.telemetry.is_empty(),
            };
            if arrived {
                touched = true;
            }
            continue;
        }
        let Some(expr) = &c.expr else { continue };
        if !facts.touches(expr) {
            continue;
        }
        touched = true;
        let held = facts.holds(expr);
        any_held |= held;
        let met = state.create.entry(*severity).or_default().step(c, held, ts);
        if met && target.is_none() && rule.in_schedule(ts) {
            target = Some(*severity);
        }
    }
    if !touched {
        return Decision::Nothing;
    }
    if any_held {
        state.last_met = Some(ts);
    }
    if let Some(severity) = target {
        state.clear = Progress::default();
        if state.active == Some(severity) {
            return Decision::Nothing;
        }
        state.active = Some(severity);
        return Decision::Raise(severity);
    }
    if state.active.is_none() {
        return Decision::Nothing;
    }
    let clear_now = match &rule.clear {
        Some(c) => match &c.expr {
            Some(expr) if facts.touches(expr) => {
                let held = facts.holds(expr);
                state.clear.step(c, held, ts)
            }
            _ => false,
        },
        // Without a clear condition: when no create expression holds any more (unless a
        // "not recurred for" time is set, which then decides alone).
        None => !any_held && rule.clear_after_ms.is_none(),
    };
    let quiet_long_enough = rule
        .clear_after_ms
        .is_some_and(|ms| !any_held && ts - state.last_met.unwrap_or(ts) >= ms);
    if clear_now || quiet_long_enough {
        *state = RuleState::default();
        return Decision::Clear;
    }
    Decision::Nothing
}

/// Runs a rule over stored messages (oldest first) from a fresh start: what it would have done.
pub fn preview(
    rule: &Rule,
    messages: &[(i64, serde_json::Map<String, serde_json::Value>)],
    attributes: &BTreeMap<(ValueSource, String), serde_json::Value>,
) -> (Vec<stead_api_types::PreviewStep>, Option<AlarmSeverity>) {
    use stead_api_types::{AlarmChangeKind, PreviewStep};
    let mut state = RuleState::default();
    let mut steps = Vec::new();
    for (ts, values) in messages {
        let before = state.active;
        let facts = Facts {
            telemetry: values,
            attributes,
        };
        let (change, severity) = match decide(rule, &mut state, &facts, *ts) {
            Decision::Nothing => continue,
            Decision::Raise(s) if before.is_some() => (AlarmChangeKind::SeverityChanged, Some(s)),
            Decision::Raise(s) => (AlarmChangeKind::Raised, Some(s)),
            Decision::Clear => (AlarmChangeKind::Cleared, None),
        };
        steps.push(PreviewStep {
            ts: *ts,
            change,
            severity,
            values: serde_json::Value::Object(values.clone()),
        });
    }
    (steps, state.active)
}

/// The device's attributes as rules read them.
pub async fn attributes_of(
    db: &impl ConnectionTrait,
    ctx: &crate::auth::TenantCtx,
    device: DeviceId,
) -> crate::error::Result<BTreeMap<(ValueSource, String), serde_json::Value>> {
    use stead_api_types::AttributeScope;
    let mut attributes = BTreeMap::new();
    for (scope, source) in [
        (AttributeScope::Client, ValueSource::Client),
        (AttributeScope::Shared, ValueSource::Shared),
        (AttributeScope::Server, ValueSource::Server),
    ] {
        let values = crate::attributes::values_of(db, ctx, &[device.0], scope).await?;
        for (k, v) in values.into_values().flatten() {
            attributes.insert((source, k), v);
        }
    }
    Ok(attributes)
}

/// A device's attributes as rules read them.
type Attributes = BTreeMap<(ValueSource, String), serde_json::Value>;

/// What the engine needs of a device, read once per `DEVICE_TTL`.
struct DeviceFacts {
    profile: Uuid,
    attributes: Arc<Attributes>,
    /// Whether `attributes` were read (only for devices whose rules need them).
    with_attributes: bool,
    read: Instant,
}

#[derive(Clone)]
pub struct Engine {
    shards: Arc<Vec<mpsc::Sender<Vec<Row>>>>,
    pub rules: Arc<RuleCache>,
    dropped: prometheus::IntCounter,
    /// Batches handed to the shards and not yet evaluated (`settle` waits for none).
    queued: Arc<AtomicUsize>,
}

/// What the shards share.
#[derive(Clone)]
struct Ctx {
    db: DatabaseConnection,
    live: LiveStore,
    timeline: TimelineWriter,
    rules: Arc<RuleCache>,
    queued: Arc<AtomicUsize>,
}

impl Engine {
    pub fn start(
        db: DatabaseConnection,
        live: LiveStore,
        timeline: TimelineWriter,
        registry: &prometheus::Registry,
    ) -> anyhow::Result<Engine> {
        let rules = Arc::new(RuleCache::default());
        let dropped = prometheus::IntCounter::new(
            "alarm_rows_skipped_total",
            "Telemetry rows not evaluated against alarm rules because the engine's queue was full",
        )?;
        registry.register(Box::new(dropped.clone()))?;
        let queued = Arc::new(AtomicUsize::new(0));
        let ctx = Ctx {
            db,
            live,
            timeline,
            rules: rules.clone(),
            queued: queued.clone(),
        };
        let shards = (0..shard_count())
            .map(|_| {
                let (tx, rx) = mpsc::channel(SHARD_QUEUE);
                tokio::spawn(run_shard(ctx.clone(), rx));
                tx
            })
            .collect();
        Ok(Engine {
            shards: Arc::new(shards),
            rules,
            dropped,
            queued,
        })
    }

    /// Waits (at most `within`) until every batch handed over has been evaluated: a graceful
    /// shutdown saves the progress only after that.
    pub async fn settle(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while self.queued.load(Ordering::Acquire) > 0 {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        true
    }

    /// Takes a committed batch; never waits.
    pub fn add(&self, rows: &[Row]) {
        let n = self.shards.len();
        let mut per_shard: Vec<Vec<Row>> = vec![Vec::new(); n];
        for row in rows {
            if self.rules.has_rules(row.tenant_id) {
                per_shard[shard_of(row.device_id, n)].push(row.clone());
            }
        }
        for (shard, rows) in per_shard.into_iter().enumerate() {
            if rows.is_empty() {
                continue;
            }
            let count = rows.len() as u64;
            self.queued.fetch_add(1, Ordering::AcqRel);
            if self.shards[shard].try_send(rows).is_err() {
                self.queued.fetch_sub(1, Ordering::AcqRel);
                self.dropped.inc_by(count);
            }
        }
    }
}

fn shard_count() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(2, 8)
}

fn shard_of(device: DeviceId, n: usize) -> usize {
    (device.0.as_u128() % n as u128) as usize
}

/// Most rows one shard evaluates at once (queued batches are taken together).
const SHARD_BATCH: usize = 5_000;

async fn run_shard(ctx: Ctx, mut rx: mpsc::Receiver<Vec<Row>>) {
    let mut devices: HashMap<DeviceId, DeviceFacts> = HashMap::new();
    while let Some(mut rows) = rx.recv().await {
        let mut batches = 1;
        while rows.len() < SHARD_BATCH {
            match rx.try_recv() {
                Ok(more) => {
                    rows.extend(more);
                    batches += 1;
                }
                Err(_) => break,
            }
        }
        if devices.len() > 50_000 {
            devices.retain(|_, f| f.read.elapsed() < DEVICE_TTL);
        }
        if let Err(e) = evaluate(&ctx, &mut devices, rows).await {
            tracing::warn!(error = %e, "alarm rule evaluation failed");
        }
        ctx.queued.fetch_sub(batches, Ordering::AcqRel);
    }
}

async fn device_facts(
    ctx: &Ctx,
    cache: &mut HashMap<DeviceId, DeviceFacts>,
    tenant: TenantId,
    device: DeviceId,
    with_attributes: bool,
) -> crate::error::Result<Option<(Uuid, Arc<Attributes>)>> {
    let fresh = cache
        .get(&device)
        .is_some_and(|f| f.read.elapsed() < DEVICE_TTL && (f.with_attributes || !with_attributes));
    if !fresh {
        use crate::devices::model as d;
        use sea_orm::{ColumnTrait, QueryFilter};
        let profile: Option<Uuid> = d::Entity::find_by_id(device.0)
            .select_only()
            .column(d::Column::ProfileId)
            .filter(d::Column::TenantId.eq(tenant.0))
            .into_tuple()
            .one(&ctx.db)
            .await?;
        let Some(profile) = profile else {
            cache.remove(&device);
            return Ok(None);
        };
        let attributes = if with_attributes {
            attributes_of(&ctx.db, &crate::auth::TenantCtx::new(tenant), device).await?
        } else {
            BTreeMap::new()
        };
        cache.insert(
            device,
            DeviceFacts {
                profile,
                attributes: Arc::new(attributes),
                with_attributes,
                read: Instant::now(),
            },
        );
    }
    Ok(cache
        .get(&device)
        .map(|f| (f.profile, f.attributes.clone())))
}

/// One device's part of a batch, and what it needs.
struct DeviceWork {
    device: DeviceId,
    tenant: TenantId,
    rows: Vec<Row>,
    rules: Vec<Arc<Compiled>>,
    attributes: Arc<Attributes>,
}

/// Evaluates a batch: each device's rows in order against its rules, their progress read and
/// written back in one live-store round trip each; raising and clearing go to the database.
async fn evaluate(
    ctx: &Ctx,
    cache: &mut HashMap<DeviceId, DeviceFacts>,
    rows: Vec<Row>,
) -> crate::error::Result<()> {
    // Rows of one device together, in their order.
    let mut index: HashMap<DeviceId, usize> = HashMap::new();
    let mut by_device: Vec<(DeviceId, TenantId, Vec<Row>)> = Vec::new();
    for row in rows {
        match index.get(&row.device_id) {
            Some(i) => by_device[*i].2.push(row),
            None => {
                index.insert(row.device_id, by_device.len());
                by_device.push((row.device_id, row.tenant_id, vec![row]));
            }
        }
    }
    let mut work = Vec::new();
    for (device, tenant, rows) in by_device {
        let tenant_rules = ctx.rules.of_tenant(tenant);
        if tenant_rules.is_empty() {
            continue;
        }
        // The profile first (cheap), then attributes only if a rule of this device reads them.
        let Some((profile, _)) = device_facts(ctx, cache, tenant, device, false).await? else {
            continue;
        };
        let rules = rules_for(&tenant_rules, device.0, profile);
        if rules.is_empty() {
            continue;
        }
        let attributes = if rules.iter().any(|r| r.needs_attributes) {
            match device_facts(ctx, cache, tenant, device, true).await? {
                Some((_, a)) => a,
                None => continue,
            }
        } else {
            Arc::default()
        };
        work.push(DeviceWork {
            device,
            tenant,
            rows,
            rules,
            attributes,
        });
    }
    if work.is_empty() {
        return Ok(());
    }
    let ids: Vec<DeviceId> = work.iter().map(|w| w.device).collect();
    let stored = ctx.live.alarm_states(&ids).await?;
    let mut decisions: Vec<Decided> = Vec::new();
    let mut changes = Vec::new();
    for (w, stored) in work.iter().zip(stored) {
        let mut states: HashMap<Uuid, RuleState> = w
            .rules
            .iter()
            .map(|r| {
                let s = stored
                    .get(&r.id.to_string())
                    .and_then(|s| serde_json::from_str(s).ok())
                    .unwrap_or_default();
                (r.id, s)
            })
            .collect();
        let before = states.clone();
        for row in &w.rows {
            let f = Facts {
                telemetry: &row.values,
                attributes: &w.attributes,
            };
            for r in &w.rules {
                let Some(state) = states.get_mut(&r.id) else {
                    continue;
                };
                let d = decide(&r.rule, state, &f, row.ts);
                if d != Decision::Nothing {
                    decisions.push(Decided {
                        tenant: w.tenant,
                        device: w.device,
                        rule: r.clone(),
                        decision: d,
                        values: serde_json::Value::Object(row.values.clone()),
                        ts: row.ts,
                    });
                }
            }
        }
        let changed: Vec<(String, Option<String>)> = states
            .into_iter()
            .filter(|(id, s)| before.get(id) != Some(s))
            .map(|(id, s)| {
                let value = (s != RuleState::default())
                    .then(|| serde_json::to_string(&s).unwrap_or_default());
                (id.to_string(), value)
            })
            .collect();
        changes.push((w.device, changed));
    }
    apply_all(ctx, decisions).await?;
    ctx.live.save_alarm_states(changes).await?;
    Ok(())
}

fn at_of(ts: i64) -> DateTime<Utc> {
    let now = Utc::now();
    // A device clock far off must not date the alarm: the message's time within a day, else now.
    DateTime::from_timestamp_millis(ts)
        .filter(|t| (*t - now).num_seconds().abs() < 86_400)
        .unwrap_or(now)
}

/// A rule's decision about one device, with the values and time that made it.
pub struct Decided {
    pub tenant: TenantId,
    pub device: DeviceId,
    pub rule: Arc<Compiled>,
    pub decision: Decision,
    pub values: serde_json::Value,
    pub ts: i64,
}

/// Decisions written per transaction: a burst of raises (10,000 devices going silent) costs a
/// commit per hundred, not one each.
const APPLY_CHUNK: usize = 100;

/// Raises, steps or clears the rules' alarms, in order, a transaction per chunk. A chunk that
/// fails (a device deleted meanwhile) is written again one decision per transaction, so that
/// one bad decision does not lose the others.
pub async fn apply_all(sink: &impl AlarmSink, decisions: Vec<Decided>) -> crate::error::Result<()> {
    for chunk in decisions.chunks(APPLY_CHUNK) {
        let written = match apply_chunk(sink, chunk).await {
            Ok(written) => written,
            Err(e) if chunk.len() > 1 => {
                tracing::debug!(error = %e, "an alarm chunk failed; writing its decisions one by one");
                let mut written = Vec::new();
                for one in chunk.chunks(1) {
                    match apply_chunk(sink, one).await {
                        Ok(w) => written.extend(w),
                        Err(e) => {
                            tracing::warn!(error = %e, device = %one[0].device, alarm_type = one[0].rule.rule.alarm_type.as_str(), "writing an alarm change failed")
                        }
                    }
                }
                written
            }
            Err(e) => return Err(e),
        };
        for (d, alarm, change) in written {
            sink.timeline().record_for(
                d.tenant,
                d.device,
                crate::timeline::EventKind::Alarm,
                super::timeline_text(&alarm, change),
                serde_json::json!({"alarm_id": alarm.id, "type": alarm.alarm_type, "severity": alarm.severity}),
            );
        }
    }
    Ok(())
}

/// One transaction: the chunk's changes, with their history, outbox events and notices.
async fn apply_chunk<'a>(
    sink: &impl AlarmSink,
    chunk: &'a [Decided],
) -> crate::error::Result<Vec<(&'a Decided, super::model::alarm::Model, super::Change)>> {
    let txn = crate::db::begin_write(sink.db()).await?;
    let mut written = Vec::new();
    for d in chunk {
        let at = at_of(d.ts);
        // The tenant's own rule acts for the tenant as a whole.
        let ctx = crate::auth::TenantCtx::new(d.tenant);
        let alarm_type = &d.rule.rule.alarm_type;
        let change = match d.decision {
            Decision::Nothing => None,
            Decision::Raise(severity) => {
                match repo::raise(
                    &txn,
                    &ctx,
                    d.device,
                    alarm_type,
                    d.rule.id,
                    severity,
                    d.values.clone(),
                    at,
                )
                .await?
                {
                    repo::Raised::New(a) => Some((a, super::Change::Raised)),
                    repo::Raised::Stepped { alarm, from } => {
                        Some((alarm, super::Change::Stepped(from)))
                    }
                    repo::Raised::Unchanged => None,
                }
            }
            Decision::Clear => match repo::active(&txn, &ctx, d.device, alarm_type).await? {
                Some(a) => repo::clear(&txn, &ctx, &a, "rule", Some(d.values.clone()), at)
                    .await?
                    .map(|a| (a, super::Change::Cleared)),
                None => None,
            },
        };
        if let Some((alarm, change)) = change {
            notify_change(&txn, &alarm, change).await?;
            written.push((d, alarm, change));
        }
    }
    txn.commit().await?;
    Ok(written)
}

/// Where `apply_all` writes: the engine's shards and the no-data sweep.
pub trait AlarmSink {
    fn db(&self) -> &DatabaseConnection;
    fn timeline(&self) -> &TimelineWriter;
}

impl AlarmSink for Ctx {
    fn db(&self) -> &DatabaseConnection {
        &self.db
    }
    fn timeline(&self) -> &TimelineWriter {
        &self.timeline
    }
}

impl AlarmSink for crate::app::AppState {
    fn db(&self) -> &DatabaseConnection {
        &self.db
    }
    fn timeline(&self) -> &TimelineWriter {
        &self.timeline
    }
}

/// Keeps a node's rule cache current.
pub async fn run_refresh(rules: Arc<RuleCache>, db: DatabaseConnection) {
    loop {
        if let Err(e) = rules.refresh(&db).await {
            tracing::debug!(error = %e, "reading alarm rules failed; trying again");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// The worker's no-data sweep: every few seconds, each no-data condition's devices that have
/// been silent for its time raise its alarm (a message clears it, in `decide`).
pub async fn run_no_data(state: crate::app::AppState) {
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        if let Err(e) = sweep_no_data(&state).await {
            tracing::warn!(error = %e, "the no-data sweep failed; trying again");
        }
    }
}

/// Devices the sweep reads from the live store at once.
const SWEEP_CHUNK: usize = 1_000;

async fn sweep_no_data(state: &crate::app::AppState) -> crate::error::Result<()> {
    use crate::devices::model as d;
    use sea_orm::{ColumnTrait, QueryFilter};
    let now = Utc::now().timestamp_millis();
    for rule in state.alarms.rules.all() {
        let conditions: Vec<(AlarmSeverity, i64, Option<String>)> = rule
            .rule
            .no_data()
            .map(|(s, ms, k)| (s, ms, k.map(str::to_owned)))
            .collect();
        if conditions.is_empty() || !rule.rule.in_schedule(now) {
            continue;
        }
        // The devices the rule covers.
        let q = d::Entity::find()
            .select_only()
            .column(d::Column::Id)
            .filter(d::Column::TenantId.eq(rule.tenant.0));
        let q = match (rule.device, rule.profile) {
            (Some(dev), _) => q.filter(d::Column::Id.eq(dev)),
            (None, Some(p)) => q.filter(d::Column::ProfileId.eq(p)),
            (None, None) => continue,
        };
        let ids: Vec<Uuid> = q.into_tuple().all(&state.db).await?;
        for chunk in ids.chunks(SWEEP_CHUNK) {
            let devices: Vec<DeviceId> = chunk.iter().copied().map(DeviceId).collect();
            let known = state.live.alarm_states(&devices).await?;
            let presence = state.live.presence_of(&devices).await?;
            let mut per_key: HashMap<String, Vec<Option<i64>>> = HashMap::new();
            for key in conditions.iter().filter_map(|(_, _, k)| k.clone()) {
                let ts = state.live.latest_ts_of(&devices, &key).await?;
                per_key.insert(key, ts);
            }
            let mut raised = Vec::new();
            let mut decisions = Vec::new();
            for (i, device) in devices.iter().enumerate() {
                let known: RuleState = known[i]
                    .get(&rule.id.to_string())
                    .and_then(|s| serde_json::from_str(s).ok())
                    .unwrap_or_default();
                for (severity, ms, key) in &conditions {
                    if known.active == Some(*severity) {
                        break;
                    }
                    let last = key
                        .as_ref()
                        .and_then(|k| per_key.get(k).and_then(|t| t[i]))
                        .or(presence[i].last_activity);
                    // A device never heard from has not gone silent.
                    let Some(last) = last else { continue };
                    if now - last < *ms {
                        continue;
                    }
                    decisions.push(Decided {
                        tenant: rule.tenant,
                        device: *device,
                        rule: rule.clone(),
                        decision: Decision::Raise(*severity),
                        values: serde_json::json!({"silent_since": DateTime::from_timestamp_millis(last), "key": key}),
                        ts: now,
                    });
                    let s = RuleState {
                        active: Some(*severity),
                        last_met: Some(now),
                        ..Default::default()
                    };
                    raised.push((
                        *device,
                        vec![(
                            rule.id.to_string(),
                            Some(serde_json::to_string(&s).unwrap_or_default()),
                        )],
                    ));
                    break;
                }
            }
            apply_all(state, decisions).await?;
            state.live.save_alarm_states(raised).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(v: serde_json::Value) -> Rule {
        Rule::parse(&serde_json::from_value(v).unwrap()).unwrap()
    }

    fn step(rule: &Rule, state: &mut RuleState, values: serde_json::Value, ts: i64) -> Decision {
        let telemetry = values.as_object().unwrap().clone();
        let attributes = BTreeMap::new();
        decide(
            rule,
            state,
            &Facts {
                telemetry: &telemetry,
                attributes: &attributes,
            },
            ts,
        )
    }

    #[test]
    fn hysteresis_and_stepping() {
        let r = rule(json!({
            "alarm_type": "overheat",
            "create": {
                "critical": {"expr": {"test": {"key": "t", "op": ">", "value": 90}}},
                "major": {"expr": {"test": {"key": "t", "op": ">", "value": 80}}}
            },
            "clear": {"expr": {"test": {"key": "t", "op": "<", "value": 75}}}
        }));
        let mut s = RuleState::default();
        assert_eq!(step(&r, &mut s, json!({"t": 70}), 1), Decision::Nothing);
        assert_eq!(
            step(&r, &mut s, json!({"t": 85}), 2),
            Decision::Raise(AlarmSeverity::Major)
        );
        assert_eq!(step(&r, &mut s, json!({"t": 86}), 3), Decision::Nothing);
        assert_eq!(
            step(&r, &mut s, json!({"t": 95}), 4),
            Decision::Raise(AlarmSeverity::Critical)
        );
        assert_eq!(
            step(&r, &mut s, json!({"t": 85}), 5),
            Decision::Raise(AlarmSeverity::Major)
        );
        // Between the clear and the create thresholds: it stays.
        assert_eq!(step(&r, &mut s, json!({"t": 78}), 6), Decision::Nothing);
        assert_eq!(step(&r, &mut s, json!({"other": 1}), 7), Decision::Nothing);
        assert_eq!(step(&r, &mut s, json!({"t": 70}), 8), Decision::Clear);
        assert_eq!(s, RuleState::default());
    }

    #[test]
    fn without_a_clear_condition_it_clears_when_nothing_holds() {
        let r = rule(json!({
            "alarm_type": "low_battery",
            "create": {"warning": {"expr": {"test": {"key": "battery", "op": "<", "value": 10}}}}
        }));
        let mut s = RuleState::default();
        assert_eq!(
            step(&r, &mut s, json!({"battery": 5}), 1),
            Decision::Raise(AlarmSeverity::Warning)
        );
        assert_eq!(step(&r, &mut s, json!({"battery": 50}), 2), Decision::Clear);
    }

    #[test]
    fn clear_after_quiet_time() {
        let r = rule(json!({
            "alarm_type": "spike",
            "create": {"minor": {"expr": {"test": {"key": "v", "op": ">", "value": 10}}}},
            "clear_after_secs": 60
        }));
        let mut s = RuleState::default();
        assert_eq!(
            step(&r, &mut s, json!({"v": 11}), 0),
            Decision::Raise(AlarmSeverity::Minor)
        );
        assert_eq!(step(&r, &mut s, json!({"v": 1}), 30_000), Decision::Nothing);
        assert_eq!(step(&r, &mut s, json!({"v": 1}), 60_000), Decision::Clear);
    }

    #[test]
    fn device_rules_win_over_the_profile_of_the_same_type() {
        let mk = |device: Option<Uuid>, profile: Option<Uuid>, t: &str| {
            Arc::new(Compiled {
                id: Uuid::new_v4(),
                tenant: TenantId(Uuid::nil()),
                profile,
                device,
                rule: rule(
                    json!({"alarm_type": t, "create": {"minor": {"expr": {"test": {"key": "v", "op": ">", "value": 1}}}}}),
                ),
                needs_attributes: false,
            })
        };
        let (dev, prof) = (Uuid::new_v4(), Uuid::new_v4());
        let own = mk(Some(dev), None, "hot");
        let all = vec![
            mk(None, Some(prof), "hot"),
            mk(None, Some(prof), "cold"),
            own.clone(),
            mk(None, Some(Uuid::new_v4()), "wet"),
        ];
        let picked = rules_for(&all, dev, prof);
        assert_eq!(picked.len(), 2);
        assert!(picked.iter().any(|r| r.id == own.id));
        assert!(picked.iter().any(|r| r.rule.alarm_type == "cold"));
    }
}
