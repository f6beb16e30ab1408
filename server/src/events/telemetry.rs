//! `device.telemetry` events, taken from the committed batches off the PUBACK path: the telemetry
//! writer hands each committed batch's rows of subscribed tenants here (a copy, only for them),
//! and this task writes them as events, many batches in one statement, one event per tenant per
//! flush. Ingest never waits for it: when the queue is full (storage far behind), events are
//! dropped and counted (`stead_events_dropped_total`), never the telemetry itself.
//!
//! What this trades: an event is written a few milliseconds after its rows committed, so a
//! `kill -9` in that window loses the event (not the data, which is stored and readable through
//! the API). Every other event type is written in its change's own transaction.

use std::time::Duration;

use chrono::Utc;
use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::{DatabaseConnection, EntityTrait as _};
use stead_api_types::EventType;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::Subscriptions;
use super::model;
use crate::ids::TenantId;
use crate::observability::Metrics;
use crate::telemetry::Row;

/// Committed batches waiting to become events.
const QUEUE: usize = 4096;
/// Points in one event at most (a flush splits a tenant's points beyond it): a request body of
/// some 50 KB, which receivers take in one piece.
const MAX_POINTS: usize = 500;

/// The handle the telemetry writer's commit hook holds. Cheap to clone.
#[derive(Clone)]
pub struct EventWriter {
    tx: mpsc::Sender<Vec<Row>>,
    subscriptions: std::sync::Arc<Subscriptions>,
    metrics: Metrics,
}

impl EventWriter {
    pub fn start(
        db: DatabaseConnection,
        subscriptions: std::sync::Arc<Subscriptions>,
        metrics: Metrics,
    ) -> EventWriter {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write(db, rx, metrics.clone()));
        EventWriter {
            tx,
            subscriptions,
            metrics,
        }
    }

    /// Takes the rows of a committed batch whose tenants subscribe to telemetry. Never waits.
    pub fn add(&self, rows: &[Row]) {
        let mut seen: Vec<(TenantId, bool)> = Vec::new();
        let mut wanted: Vec<Row> = Vec::new();
        for row in rows {
            let wants = match seen.iter().find(|(t, _)| *t == row.tenant_id) {
                Some((_, w)) => *w,
                None => {
                    let w = self
                        .subscriptions
                        .wants(row.tenant_id, EventType::DeviceTelemetry);
                    seen.push((row.tenant_id, w));
                    w
                }
            };
            if wants {
                wanted.push(row.clone());
            }
        }
        if wanted.is_empty() {
            return;
        }
        let n = wanted.len() as u64;
        if self.tx.try_send(wanted).is_err() {
            self.metrics.events_dropped.inc_by(n);
            tracing::debug!(
                points = n,
                "telemetry event queue full: points left out of events"
            );
        }
    }
}

async fn write(db: DatabaseConnection, mut rx: mpsc::Receiver<Vec<Row>>, metrics: Metrics) {
    while let Some(first) = rx.recv().await {
        // What else arrives within a few milliseconds joins this flush.
        let mut rows = first;
        tokio::time::sleep(Duration::from_millis(5)).await;
        while rows.len() < 20 * MAX_POINTS {
            match rx.try_recv() {
                Ok(more) => rows.extend(more),
                Err(_) => break,
            }
        }
        let mut tenants: Vec<TenantId> = Vec::new();
        for r in &rows {
            if !tenants.contains(&r.tenant_id) {
                tenants.push(r.tenant_id);
            }
        }
        let now = Utc::now();
        let mut events = Vec::new();
        for tenant in tenants {
            let of_tenant: Vec<&Row> = rows.iter().filter(|r| r.tenant_id == tenant).collect();
            for chunk in of_tenant.chunks(MAX_POINTS) {
                events.push(model::ActiveModel {
                    seq: NotSet,
                    id: Set(Uuid::new_v4()),
                    tenant_id: Set(tenant.0),
                    event_type: Set(EventType::DeviceTelemetry.as_str().to_owned()),
                    device_id: Set(None),
                    data: Set(super::telemetry_data(chunk)),
                    created_at: Set(now),
                    dispatched: Set(false),
                });
            }
        }
        let n = events.len();
        for attempt in 0..3 {
            match model::Entity::insert_many(events.clone())
                .exec_without_returning(&db)
                .await
            {
                Ok(_) => break,
                Err(e) if attempt < 2 => {
                    tracing::warn!(error = %e, events = n, "writing telemetry events failed; trying again");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => {
                    metrics.events_dropped.inc_by(rows.len() as u64);
                    tracing::error!(error = %e, events = n, "telemetry events lost (the telemetry itself is stored)");
                }
            }
        }
    }
}
