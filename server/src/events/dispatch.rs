//! The dispatcher (worker role): turns each committed event into one delivery per enabled
//! endpoint whose filter takes it, and one for the tenant's NATS sink, then marks it dispatched,
//! all in one transaction. On PostgreSQL it takes its events `FOR UPDATE SKIP LOCKED`, so two
//! workers never dispatch one event twice; a crash before the commit leaves the events to the
//! next pass. Events are taken by the `dispatched` flag, not by a cursor over `seq`: a
//! transaction that took a lower `seq` may commit after a higher one, and a cursor would skip it.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::Utc;
use sea_orm::ActiveValue::Set;
use sea_orm::entity::prelude::*;
use sea_orm::sea_query::{LockBehavior, LockType};
use sea_orm::{DatabaseBackend, QueryOrder, QuerySelect, TransactionTrait as _};
use stead_api_types::{DeliveryStatus, EventType};

use super::model;
use crate::app::AppState;
use crate::error::Result;
use crate::webhooks::model::{delivery, endpoint, nats_sink};

/// Events taken per pass.
const BATCH: u64 = 500;

/// Where one event goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Webhook(Uuid),
    Nats,
}

/// A new pending delivery of `event` to `target`, due now.
pub fn new_delivery(event: &model::Model, target: &Target, replay: bool) -> delivery::ActiveModel {
    let now = Utc::now();
    delivery::ActiveModel {
        id: Set(Uuid::new_v4()),
        tenant_id: Set(event.tenant_id),
        endpoint_id: Set(match target {
            Target::Webhook(id) => Some(*id),
            Target::Nats => None,
        }),
        sink: Set(match target {
            Target::Webhook(_) => "webhook",
            Target::Nats => "nats",
        }
        .to_owned()),
        event_seq: Set(event.seq),
        event_id: Set(event.id),
        event_type: Set(event.event_type.clone()),
        status: Set(DeliveryStatus::Pending.as_str().to_owned()),
        attempts: Set(0),
        next_attempt_at: Set(Some(now)),
        leased_until: Set(None),
        last_status_code: Set(None),
        last_error: Set(None),
        last_latency_ms: Set(None),
        replay: Set(replay),
        created_at: Set(now),
        finished_at: Set(None),
    }
}

/// The devices an event is about: its own, or every device of a telemetry batch.
pub fn devices_of(event: &model::Model) -> Vec<Uuid> {
    if let Some(d) = event.device_id {
        return vec![d];
    }
    event
        .data
        .get("points")
        .and_then(|p| p.as_array())
        .map(|points| {
            let mut ids: Vec<Uuid> = points
                .iter()
                .filter_map(|p| p.get("device_id")?.as_str()?.parse().ok())
                .collect();
            ids.sort();
            ids.dedup();
            ids
        })
        .unwrap_or_default()
}

/// Whether an endpoint's type filter takes the event (test events go only where they were sent).
pub fn takes(filter: &[EventType], event_type: Option<EventType>) -> bool {
    match event_type {
        None | Some(EventType::WebhookTest) => false,
        Some(t) => filter.is_empty() || filter.contains(&t),
    }
}

/// One pass: answers how many events were dispatched.
pub async fn once(state: &AppState) -> Result<usize> {
    // A plain read first: on SQLite a write transaction takes the one write lock, which the
    // telemetry writer needs too, and most passes find nothing.
    let waiting = model::Entity::find()
        .select_only()
        .column(model::Column::Seq)
        .filter(model::Column::Dispatched.eq(false))
        .limit(1)
        .into_tuple::<i64>()
        .one(&state.db)
        .await?;
    if waiting.is_none() {
        return Ok(0);
    }
    let txn = crate::db::begin_write(&state.db).await?;
    let mut query = model::Entity::find()
        .filter(model::Column::Dispatched.eq(false))
        .order_by_asc(model::Column::Seq)
        .limit(BATCH);
    if state.db.get_database_backend() == DatabaseBackend::Postgres {
        query = query.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
    }
    let mut events = super::without_data(&txn, query).await?;
    if events.is_empty() {
        txn.commit().await?;
        return Ok(0);
    }
    let tenants: HashSet<Uuid> = events.iter().map(|e| e.tenant_id).collect();
    let endpoints = endpoint::Entity::find()
        .filter(endpoint::Column::TenantId.is_in(tenants.iter().copied()))
        .filter(endpoint::Column::Enabled.eq(true))
        .all(&txn)
        .await?;
    let sinks: HashMap<Uuid, Vec<EventType>> = if state.config.nats_url.is_some() {
        nats_sink::Entity::find()
            .filter(nats_sink::Column::TenantId.is_in(tenants.iter().copied()))
            .filter(nats_sink::Column::Enabled.eq(true))
            .all(&txn)
            .await?
            .into_iter()
            .map(|s| (s.tenant_id, super::types_of(&s.event_types)))
            .collect()
    } else {
        HashMap::new()
    };
    // Group filters: which of the batch's devices are in which of the filtering groups. A
    // telemetry batch names its devices in its data, read only for the tenants that filter.
    let groups: HashSet<Uuid> = endpoints.iter().filter_map(|e| e.group_id).collect();
    let filtering: HashSet<Uuid> = endpoints
        .iter()
        .filter(|e| e.group_id.is_some())
        .map(|e| e.tenant_id)
        .collect();
    let batches: Vec<i64> = events
        .iter()
        .filter(|e| e.device_id.is_none() && filtering.contains(&e.tenant_id))
        .map(|e| e.seq)
        .collect();
    if !batches.is_empty() {
        let full: HashMap<i64, serde_json::Value> = model::Entity::find()
            .filter(model::Column::Seq.is_in(batches))
            .all(&txn)
            .await?
            .into_iter()
            .map(|e| (e.seq, e.data))
            .collect();
        for e in events.iter_mut() {
            if let Some(data) = full.get(&e.seq) {
                e.data = data.clone();
            }
        }
    }
    let members: HashSet<(Uuid, Uuid)> = if groups.is_empty() {
        HashSet::new()
    } else {
        let devices: HashSet<Uuid> = events.iter().flat_map(devices_of).collect();
        crate::groups::repo::memberships_across_tenants(
            crate::auth::System::worker(),
            &txn,
            &devices.into_iter().collect::<Vec<_>>(),
        )
        .await?
        .into_iter()
        .filter(|(_, group)| groups.contains(group))
        .collect()
    };
    let mut deliveries = Vec::new();
    for event in &events {
        let event_type = EventType::parse(&event.event_type);
        for ep in endpoints.iter().filter(|e| e.tenant_id == event.tenant_id) {
            if !takes(&super::types_of(&ep.event_types), event_type) {
                continue;
            }
            if let Some(group) = ep.group_id
                && event_type.is_some_and(|t| t.is_about_a_device())
                && !devices_of(event)
                    .iter()
                    .any(|d| members.contains(&(*d, group)))
            {
                continue;
            }
            deliveries.push(new_delivery(event, &Target::Webhook(ep.id), false));
        }
        if let Some(filter) = sinks.get(&event.tenant_id)
            && takes(filter, event_type)
        {
            deliveries.push(new_delivery(event, &Target::Nats, false));
        }
    }
    let queued = deliveries.len();
    for chunk in deliveries.chunks(200) {
        delivery::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(&txn)
            .await?;
    }
    model::Entity::update_many()
        .col_expr(model::Column::Dispatched, Expr::value(true))
        .filter(model::Column::Seq.is_in(events.iter().map(|e| e.seq)))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    if queued > 0 {
        state.deliveries.notify_waiters();
    }
    Ok(events.len())
}

/// Deletes events and finished deliveries past `STEAD_EVENT_RETENTION_DAYS` (an event is kept
/// while a delivery of it is still pending).
pub async fn retention(state: &AppState) -> Result<()> {
    let cutoff = Utc::now() - chrono::Duration::days(state.config.event_retention_days as i64);
    let txn = state.db.begin().await?;
    let gone = delivery::Entity::delete_many()
        .filter(delivery::Column::Status.ne(DeliveryStatus::Pending.as_str()))
        .filter(delivery::Column::CreatedAt.lt(cutoff))
        .exec(&txn)
        .await?
        .rows_affected;
    let oldest_pending: Option<i64> = delivery::Entity::find()
        .select_only()
        .column_as(delivery::Column::EventSeq.min(), "m")
        .filter(delivery::Column::Status.eq(DeliveryStatus::Pending.as_str()))
        .into_tuple::<Option<i64>>()
        .one(&txn)
        .await?
        .flatten();
    let mut events = model::Entity::delete_many()
        .filter(model::Column::CreatedAt.lt(cutoff))
        .filter(model::Column::Dispatched.eq(true));
    if let Some(seq) = oldest_pending {
        events = events.filter(model::Column::Seq.lt(seq));
    }
    let events = events.exec(&txn).await?.rows_affected;
    txn.commit().await?;
    if gone + events > 0 {
        tracing::info!(
            deliveries = gone,
            events,
            "event retention: old events and deliveries deleted"
        );
    }
    Ok(())
}

/// The worker's loop: dispatch whatever is new (at once again while there is more), and
/// apply retention every hour.
pub async fn run(state: AppState) {
    let mut last_retention = std::time::Instant::now() - Duration::from_secs(3600);
    loop {
        match once(&state).await {
            Ok(n) if n as u64 == BATCH => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "dispatching events failed; trying again"),
        }
        if last_retention.elapsed() >= Duration::from_secs(3600) {
            last_retention = std::time::Instant::now();
            if let Err(e) = retention(&state).await {
                tracing::warn!(error = %e, "event retention failed");
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
