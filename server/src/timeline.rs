//! Each device's timeline, for support people: connects, disconnects with their reason, refused
//! connects, rejected messages with theirs. Written off the hot path through a bounded queue (a
//! full queue drops timeline entries, never telemetry), in batches, and capped per device.

use std::collections::HashMap;

use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection, Statement, Value};
use stead_api_types::TimelineEvent;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::auth::TenantCtx;
use crate::devices::repo::DeviceIdentity;
use crate::error::Result;
use crate::ids::{DeviceId, TenantId};

/// Entries kept per device; older ones are trimmed.
pub const KEEP_PER_DEVICE: i64 = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Connected,
    Disconnected,
    ConnectRefused,
    MessageRejected,
    SubscriptionRefused,
    CredentialsRotated,
    /// A command (RPC) was sent or changed state.
    Command,
    /// The device's credentials were revoked, or it was disabled or enabled.
    Credentials,
    /// Provisioned itself.
    Provisioned,
    /// An alarm was raised, stepped or cleared.
    Alarm,
    /// An update: a package assigned, each step the device reported, a failure or time-out.
    Ota,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Connected => "connected",
            EventKind::Disconnected => "disconnected",
            EventKind::ConnectRefused => "connect_refused",
            EventKind::MessageRejected => "message_rejected",
            EventKind::SubscriptionRefused => "subscription_refused",
            EventKind::CredentialsRotated => "credentials_rotated",
            EventKind::Command => "command",
            EventKind::Credentials => "credentials",
            EventKind::Provisioned => "provisioned",
            EventKind::Alarm => "alarm",
            EventKind::Ota => "ota",
        }
    }
}

struct Entry {
    tenant_id: TenantId,
    device_id: DeviceId,
    ts: i64,
    kind: EventKind,
    detail: String,
    data: serde_json::Value,
}

/// What the writer is handed: an entry, or a request to answer once everything before it is
/// written (shutdown).
enum Msg {
    Entry(Entry),
    Flush(tokio::sync::oneshot::Sender<()>),
}

#[derive(Clone)]
pub struct TimelineWriter {
    tx: mpsc::Sender<Msg>,
}

impl TimelineWriter {
    pub fn start(
        db: DatabaseConnection,
        subscriptions: std::sync::Arc<crate::events::Subscriptions>,
    ) -> TimelineWriter {
        let (tx, rx) = mpsc::channel(10_000);
        tokio::spawn(writer(db, rx, subscriptions));
        TimelineWriter { tx }
    }

    /// Entries waiting to be written, for the queue-depth gauge.
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    pub fn record_for(
        &self,
        tenant_id: TenantId,
        device_id: DeviceId,
        kind: EventKind,
        mut detail: String,
        mut data: serde_json::Value,
    ) {
        // Entries quote what clients sent (a refused device name, a topic): PostgreSQL cannot
        // store U+0000, and one such entry would fail the whole batch it is written in.
        if detail.contains('\0') {
            detail = detail.replace('\0', "\\u0000");
        }
        crate::text::escape_nul(&mut data);
        let entry = Entry {
            tenant_id,
            device_id,
            ts: crate::telemetry::now_ms(),
            kind,
            detail,
            data,
        };
        if self.tx.try_send(Msg::Entry(entry)).is_err() {
            tracing::debug!("timeline queue full: entry dropped");
        }
    }

    /// Waits until the entries recorded before the call are written.
    pub async fn flush(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.tx.send(Msg::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

/// Records an entry on a device's timeline without waiting.
pub fn record(
    writer: &TimelineWriter,
    device: &DeviceIdentity,
    kind: EventKind,
    detail: String,
    data: serde_json::Value,
) {
    writer.record_for(device.tenant_id, device.device_id, kind, detail, data);
}

use crate::db::placeholder as p;

/// The event a timeline entry also is, for tenants that subscribe to it.
fn event_of(
    e: &Entry,
    subscriptions: &crate::events::Subscriptions,
) -> Option<stead_api_types::EventType> {
    use stead_api_types::EventType;
    let event_type = match e.kind {
        EventKind::Connected => EventType::DeviceConnected,
        EventKind::Disconnected => EventType::DeviceDisconnected,
        _ => return None,
    };
    subscriptions
        .wants(e.tenant_id, event_type)
        .then_some(event_type)
}

async fn writer(
    db: DatabaseConnection,
    mut rx: mpsc::Receiver<Msg>,
    subscriptions: std::sync::Arc<crate::events::Subscriptions>,
) {
    let mut since_trim: HashMap<DeviceId, i64> = HashMap::new();
    let mut batch = Vec::new();
    let mut flushes = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Entry(e) => batch.push(e),
                Msg::Flush(done) => flushes.push(done),
            }
            if batch.len() < 500 {
                next = rx.try_recv().ok();
            }
        }
        if batch.is_empty() {
            for done in flushes.drain(..) {
                let _ = done.send(());
            }
            continue;
        }
        let b = db.get_database_backend();
        let mut sql = String::from(
            "INSERT INTO device_events (tenant_id, device_id, ts, kind, detail, data) VALUES ",
        );
        let mut values: Vec<Value> = Vec::new();
        for (i, e) in batch.iter().enumerate() {
            if i > 0 {
                sql.push(',');
            }
            let n = i * 6;
            let data_cast = if b == DatabaseBackend::Postgres {
                "::jsonb"
            } else {
                ""
            };
            sql.push_str(&format!(
                "({},{},{},{},{},{}{data_cast})",
                p(b, n + 1),
                p(b, n + 2),
                p(b, n + 3),
                p(b, n + 4),
                p(b, n + 5),
                p(b, n + 6)
            ));
            values.extend([
                Uuid::from(e.tenant_id).into(),
                Uuid::from(e.device_id).into(),
                e.ts.into(),
                e.kind.as_str().into(),
                e.detail.clone().into(),
                e.data.to_string().into(),
            ]);
            *since_trim.entry(e.device_id).or_default() += 1;
        }
        let events: Vec<_> = batch
            .iter()
            .filter_map(|e| event_of(e, &subscriptions).map(|t| (e, t)))
            .collect();
        // Connects and disconnects that go somewhere are events too, committed with their
        // entries.
        let written = async {
            if events.is_empty() {
                db.execute_raw(Statement::from_sql_and_values(b, sql, values))
                    .await?;
                return Ok::<_, crate::error::Error>(());
            }
            let txn = crate::db::begin_write(&db).await?;
            txn.execute_raw(Statement::from_sql_and_values(b, sql, values))
                .await?;
            for (e, event_type) in events {
                crate::events::record(
                    &txn,
                    e.tenant_id,
                    event_type,
                    Some(e.device_id),
                    serde_json::json!({
                        "device_id": Uuid::from(e.device_id),
                        "ts": e.ts,
                        "detail": e.detail,
                        "data": e.data,
                    }),
                )
                .await?;
            }
            txn.commit().await?;
            Ok(())
        }
        .await;
        if let Err(e) = written {
            tracing::warn!(error = %e, entries = batch.len(), "timeline entries lost");
        }
        batch.clear();
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
        let due: Vec<DeviceId> = since_trim
            .iter()
            .filter(|(_, n)| **n >= 100)
            .map(|(d, _)| *d)
            .collect();
        for device in due {
            since_trim.remove(&device);
            let sql = format!(
                "DELETE FROM device_events WHERE device_id = {} AND id <= (SELECT id FROM device_events WHERE device_id = {} ORDER BY id DESC LIMIT 1 OFFSET {KEEP_PER_DEVICE})",
                p(b, 1),
                p(b, 2)
            );
            let values: Vec<Value> = vec![Uuid::from(device).into(), Uuid::from(device).into()];
            if let Err(e) = db
                .execute_raw(Statement::from_sql_and_values(b, sql, values))
                .await
            {
                tracing::warn!(error = %e, "trimming a timeline failed");
            }
        }
        if since_trim.len() > 100_000 {
            since_trim.clear();
        }
    }
}

/// The tenant's newest entries of one kind, newest first, as (device, entry); the caller keeps
/// those of devices it reaches.
pub async fn latest_of_kind(
    db: &DatabaseConnection,
    ctx: &TenantCtx,
    kind: EventKind,
    limit: u64,
) -> Result<Vec<(Uuid, TimelineEvent)>> {
    let b = db.get_database_backend();
    let sql = format!(
        "SELECT device_id, ts, kind, detail FROM device_events WHERE tenant_id = {} AND kind = {} ORDER BY id DESC LIMIT {}",
        p(b, 1),
        p(b, 2),
        p(b, 3)
    );
    let values: Vec<Value> = vec![
        Uuid::from(ctx.tenant_id()).into(),
        kind.as_str().into(),
        (limit as i64).into(),
    ];
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(b, sql, values))
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push((
            r.try_get("", "device_id")?,
            TimelineEvent {
                ts: r.try_get("", "ts")?,
                kind: r.try_get("", "kind")?,
                detail: r.try_get("", "detail")?,
                data: serde_json::Value::Null,
            },
        ));
    }
    Ok(out)
}

/// The newest entries of a device the caller's tenant owns, newest first.
pub async fn list(
    db: &DatabaseConnection,
    ctx: &TenantCtx,
    device: DeviceId,
    limit: u64,
) -> Result<Vec<TimelineEvent>> {
    let b = db.get_database_backend();
    let data = if b == DatabaseBackend::Postgres {
        "data::text"
    } else {
        "data"
    };
    let sql = format!(
        "SELECT ts, kind, detail, {data} AS data FROM device_events WHERE device_id = {} AND tenant_id = {} ORDER BY id DESC LIMIT {}",
        p(b, 1),
        p(b, 2),
        p(b, 3)
    );
    let values: Vec<Value> = vec![
        Uuid::from(device).into(),
        Uuid::from(ctx.tenant_id()).into(),
        (limit as i64).into(),
    ];
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(b, sql, values))
        .await?;
    let mut events = Vec::with_capacity(rows.len());
    for r in rows {
        let data: String = r.try_get("", "data")?;
        events.push(TimelineEvent {
            ts: r.try_get("", "ts")?,
            kind: r.try_get("", "kind")?,
            detail: r.try_get("", "detail")?,
            data: serde_json::from_str(&data).unwrap_or(serde_json::Value::Null),
        });
    }
    Ok(events)
}
