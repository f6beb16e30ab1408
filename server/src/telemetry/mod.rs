//! Telemetry: decoding, the durable batched write path, and the queries people and integrations
//! run on stored series.
//!
//! The write path is a group commit. Producers (MQTT sessions, the HTTP device API) hand rows to
//! one of a few writer shards over bounded queues; each shard takes whatever has queued up while
//! its previous batch was committing, writes it in one statement, and only then answers every
//! producer in the batch. A QoS 1 PUBACK waits for that answer, so nothing acknowledged is lost.
//! A device always maps to the same shard, which keeps its messages in order. When storage is
//! slow the queues fill, producers wait, and the ingress stops reading sockets: back-pressure
//! instead of dropped data or unbounded memory.

pub mod decode;
pub mod http;
pub mod repo;
pub mod retention;

use std::sync::Arc;
use std::time::Instant;

use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection, Statement, Value};
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument as _;
use uuid::Uuid;

use crate::ids::{DeviceId, TenantId};

/// Rows per INSERT statement: 4 parameters each, well under both backends' parameter limits.
const MAX_BATCH_ROWS: usize = 2000;

/// The least time between the starts of two commits of one writer (see `writer`).
const MIN_COMMIT_INTERVAL: std::time::Duration = std::time::Duration::from_millis(2);

/// One point of one device, ready to store.
#[derive(Debug, Clone)]
pub struct Row {
    pub tenant_id: TenantId,
    pub device_id: DeviceId,
    pub ts: i64,
    pub values: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("telemetry storage is unavailable: {0}")]
    Unavailable(String),
    #[error("the server is shutting down")]
    Closed,
}

struct Job {
    rows: Vec<Row>,
    done: Option<oneshot::Sender<Result<(), StoreError>>>,
}

/// Called with every committed batch and the time its write took (live state, fan-out,
/// metrics). Must not block.
pub type OnCommit = Arc<dyn Fn(Vec<Row>, std::time::Duration) + Send + Sync>;

/// The handle producers write through. Cheap to clone.
#[derive(Clone)]
pub struct TelemetryStore {
    shards: Arc<Vec<mpsc::Sender<Job>>>,
    /// Devices whose stored latest values this process has merged into the live state.
    warm: Arc<std::sync::Mutex<std::collections::HashSet<DeviceId>>>,
}

impl TelemetryStore {
    /// Starts the writer shards on the current runtime. PostgreSQL commits `writers` batches
    /// at once; SQLite has a single writer anyway.
    pub fn start(
        db: DatabaseConnection,
        writers: usize,
        queue_per_shard: usize,
        on_commit: OnCommit,
    ) -> TelemetryStore {
        let shards = match db.get_database_backend() {
            DatabaseBackend::Postgres => writers.max(1),
            _ => 1,
        };
        let mut senders = Vec::with_capacity(shards);
        for shard in 0..shards {
            let (tx, rx) = mpsc::channel(queue_per_shard);
            senders.push(tx);
            tokio::spawn(writer(shard, db.clone(), rx, on_commit.clone()));
        }
        TelemetryStore {
            shards: Arc::new(senders),
            warm: Arc::default(),
        }
    }

    fn shard(&self, device: DeviceId) -> &mpsc::Sender<Job> {
        let n = self.shards.len();
        let i = (device.0.as_u128() % n as u128) as usize;
        &self.shards[i]
    }

    /// (jobs queued, jobs the queues hold) over all shards, for the queue-depth gauges.
    pub fn queued(&self) -> (usize, usize) {
        self.shards.iter().fold((0, 0), |(queued, capacity), tx| {
            (
                queued + (tx.max_capacity() - tx.capacity()),
                capacity + tx.max_capacity(),
            )
        })
    }

    pub fn is_warm(&self, device: DeviceId) -> bool {
        self.warm
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&device)
    }

    /// Forgets which devices' latest values were merged with storage: the live state lost or
    /// missed writes (Redis restarted or was unreachable), so each is merged again on its next
    /// read.
    pub fn forget_warm(&self) {
        self.warm.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    pub fn mark_warm(&self, device: DeviceId) {
        let mut warm = self.warm.lock().unwrap_or_else(|p| p.into_inner());
        if warm.len() > 1_000_000 {
            warm.clear();
        }
        warm.insert(device);
    }

    /// Queues rows of one device and waits until they are committed.
    pub async fn write(&self, device: DeviceId, rows: Vec<Row>) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.shard(device)
            .send(Job {
                rows,
                done: Some(tx),
            })
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Waits until everything queued before the call is committed (or has failed): shutdown
    /// calls it once nothing more can arrive, so that QoS 0 data already accepted is not lost
    /// with the process.
    pub async fn flush(&self) {
        let mut waits = Vec::with_capacity(self.shards.len());
        for shard in self.shards.iter() {
            let (tx, rx) = oneshot::channel();
            // Each shard answers its jobs in order: this empty one comes after all the others.
            if shard
                .send(Job {
                    rows: Vec::new(),
                    done: Some(tx),
                })
                .await
                .is_ok()
            {
                waits.push(rx);
            }
        }
        for rx in waits {
            let _ = rx.await;
        }
    }

    /// Queues rows without waiting for the commit (QoS 0); waits only for queue space.
    pub async fn write_unacknowledged(
        &self,
        device: DeviceId,
        rows: Vec<Row>,
    ) -> Result<(), StoreError> {
        self.shard(device)
            .send(Job { rows, done: None })
            .await
            .map_err(|_| StoreError::Closed)
    }
}

async fn writer(
    shard: usize,
    db: DatabaseConnection,
    mut rx: mpsc::Receiver<Job>,
    on_commit: OnCommit,
) {
    let mut jobs: Vec<Job> = Vec::new();
    let mut last_commit = Instant::now();
    while let Some(first) = rx.recv().await {
        // A commit costs the database about as much as a few dozen rows: at moderate rates,
        // starting at most one every `MIN_COMMIT_INTERVAL` lets rows gather (a millisecond or
        // two more latency) instead of spending a core on tiny transactions.
        let due = last_commit + MIN_COMMIT_INTERVAL;
        if first.rows.len() < MAX_BATCH_ROWS / 8 && Instant::now() < due {
            tokio::time::sleep_until(due.into()).await;
        }
        last_commit = Instant::now();
        let mut rows_in_batch = first.rows.len();
        jobs.push(first);
        // Everything that queued while the previous batch was committing joins this one.
        while rows_in_batch < MAX_BATCH_ROWS {
            match rx.try_recv() {
                Ok(job) => {
                    rows_in_batch += job.rows.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let rows: Vec<Row> = jobs
            .iter_mut()
            .flat_map(|j| std::mem::take(&mut j.rows))
            .collect();
        if rows.is_empty() {
            // Only `flush` barriers: nothing to write.
            for job in jobs.drain(..) {
                if let Some(done) = job.done {
                    let _ = done.send(Ok(()));
                }
            }
            continue;
        }
        // One span per batch, never per message: the rows in it and the time to commit them.
        let span = tracing::info_span!(
            "telemetry batch",
            otel.name = "telemetry batch",
            otel.status_code = tracing::field::Empty,
            stead.telemetry.shard = shard as i64,
            stead.telemetry.rows = rows.len() as i64,
            stead.telemetry.commit_ms = tracing::field::Empty,
            trace_id = tracing::field::Empty,
        );
        crate::observability::trace::record_trace_id(&span);
        let started = Instant::now();
        let mut result = insert(&db, &rows).instrument(span.clone()).await;
        if let Err(e) = &result {
            span.in_scope(|| tracing::warn!(shard, error = %e, rows = rows.len(), "telemetry batch failed; retrying once"));
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            result = insert(&db, &rows).instrument(span.clone()).await;
        }
        let took = started.elapsed();
        span.record("stead.telemetry.commit_ms", took.as_secs_f64() * 1000.0);
        let outcome = match result {
            Ok(()) => {
                on_commit(rows, took);
                Ok(())
            }
            Err(e) => {
                span.record("otel.status_code", "ERROR");
                span.in_scope(|| tracing::error!(shard, error = %e, rows = rows.len(), "telemetry batch lost: producers are told, nothing was acknowledged"));
                Err(StoreError::Unavailable(e.to_string()))
            }
        };
        for job in jobs.drain(..) {
            if let Some(done) = job.done {
                let _ = done.send(outcome.clone());
            }
        }
    }
}

/// The whole batch in one statement. On PostgreSQL the rows travel as four arrays unnested by
/// the server: one small statement, prepared once per connection, whatever the batch size. On
/// SQLite a multi-row INSERT (chunked to the parameter limit) in the one writer's transaction.
async fn insert(db: &DatabaseConnection, rows: &[Row]) -> Result<(), sea_orm::DbErr> {
    let backend = db.get_database_backend();
    if backend == DatabaseBackend::Postgres {
        let mut tenants = Vec::with_capacity(rows.len());
        let mut devices = Vec::with_capacity(rows.len());
        let mut times = Vec::with_capacity(rows.len());
        let mut data = Vec::with_capacity(rows.len());
        for row in rows {
            tenants.push(Value::from(Uuid::from(row.tenant_id)));
            devices.push(Value::from(Uuid::from(row.device_id)));
            times.push(Value::from(row.ts));
            data.push(Value::from(values_json(row)));
        }
        let array = |kind, values: Vec<Value>| Value::Array(kind, Some(Box::new(values)));
        let values = vec![
            array(sea_orm::sea_query::ArrayType::Uuid, tenants),
            array(sea_orm::sea_query::ArrayType::Uuid, devices),
            array(sea_orm::sea_query::ArrayType::BigInt, times),
            array(sea_orm::sea_query::ArrayType::String, data),
        ];
        db.execute_raw(Statement::from_sql_and_values(
            backend,
            "INSERT INTO telemetry (tenant_id, device_id, ts, data) \
             SELECT t, d, ts, v::jsonb FROM UNNEST($1::uuid[], $2::uuid[], $3::int8[], $4::text[]) AS u(t, d, ts, v)",
            values,
        ))
        .await?;
        return Ok(());
    }
    for chunk in rows.chunks(MAX_BATCH_ROWS) {
        let mut sql = String::with_capacity(64 + chunk.len() * 12);
        sql.push_str("INSERT INTO telemetry (tenant_id, device_id, ts, data) VALUES ");
        let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 4);
        for (i, row) in chunk.iter().enumerate() {
            sql.push_str(if i == 0 { "(?,?,?,?)" } else { ",(?,?,?,?)" });
            values.push(Uuid::from(row.tenant_id).into());
            values.push(Uuid::from(row.device_id).into());
            values.push(row.ts.into());
            values.push(values_json(row).into());
        }
        db.execute_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
    }
    Ok(())
}

/// A row's values as JSON text (a map of JSON values always serialises).
fn values_json(row: &Row) -> String {
    serde_json::to_string(&row.values).unwrap_or_default()
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
