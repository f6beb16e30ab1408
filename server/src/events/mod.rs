//! Events: one catalogue (`stead_api_types::EventType`) of what happened in a tenant, written by a
//! transactional outbox and carried to webhooks and the NATS sink by the workers.
//!
//! A change writes its event with [`record`] on the connection of its own transaction, so an
//! event exists exactly when its change committed: nothing is sent for a change that rolled back,
//! nothing is lost for one that committed. The high-volume types (telemetry batches, connects and
//! disconnects) are written only for tenants that subscribe to them ([`Subscriptions`]), so that
//! ingest pays nothing where nobody listens: connects and disconnects in the transaction of their
//! timeline entries, telemetry from the committed batches, off the PUBACK path (`telemetry`). The dispatcher (`dispatch`, worker role) turns each event into
//! one delivery per matching endpoint and sink; `webhooks::deliver` and `nats` send them.

pub mod dispatch;
pub mod model;
pub mod nats;
pub mod telemetry;

use std::collections::HashMap;
use std::sync::RwLock;

use chrono::Utc;
use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::entity::prelude::*;
use sea_orm::{ConnectionTrait, QuerySelect};
use stead_api_types::EventType;

use crate::error::Result;
use crate::ids::{DeviceId, TenantId};

/// Writes one event inside the caller's transaction.
pub async fn record(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    event_type: EventType,
    device: Option<DeviceId>,
    data: serde_json::Value,
) -> Result<model::Model> {
    Ok(model::ActiveModel {
        seq: NotSet,
        id: Set(Uuid::new_v4()),
        tenant_id: Set(tenant.0),
        event_type: Set(event_type.as_str().to_owned()),
        device_id: Set(device.map(|d| d.0)),
        data: Set(data),
        created_at: Set(Utc::now()),
        dispatched: Set(false),
    }
    .insert(db)
    .await?)
}

/// Marks an event as dispatched already (one that goes only where its writer sent it).
pub async fn mark_dispatched(db: &impl ConnectionTrait, seq: i64) -> Result<()> {
    model::Entity::update_many()
        .col_expr(model::Column::Dispatched, Expr::value(true))
        .filter(model::Column::Seq.eq(seq))
        .exec(db)
        .await?;
    Ok(())
}

/// An event's columns but its data, as a query answers them.
type Head = (
    i64,
    Uuid,
    Uuid,
    String,
    Option<Uuid>,
    chrono::DateTime<Utc>,
    bool,
);

/// The columns of an event but its data (which can be large: a telemetry batch), for work that
/// only routes events; `data` is `null` in what it answers.
pub async fn without_data(
    db: &impl ConnectionTrait,
    query: sea_orm::Select<model::Entity>,
) -> Result<Vec<model::Model>> {
    let rows: Vec<Head> = query
        .select_only()
        .column(model::Column::Seq)
        .column(model::Column::Id)
        .column(model::Column::TenantId)
        .column(model::Column::EventType)
        .column(model::Column::DeviceId)
        .column(model::Column::CreatedAt)
        .column(model::Column::Dispatched)
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(
            |(seq, id, tenant_id, event_type, device_id, created_at, dispatched)| model::Model {
                seq,
                id,
                tenant_id,
                event_type,
                device_id,
                data: serde_json::Value::Null,
                created_at,
                dispatched,
            },
        )
        .collect())
}

/// Which event types reach somewhere, per tenant: `None` in the map means every type.
#[derive(Debug, Default)]
pub struct Subscriptions {
    tenants: RwLock<HashMap<TenantId, Option<Vec<EventType>>>>,
}

impl Subscriptions {
    /// Whether some enabled endpoint or sink of the tenant takes this type.
    pub fn wants(&self, tenant: TenantId, event_type: EventType) -> bool {
        match self.tenants.read() {
            Ok(map) => match map.get(&tenant) {
                Some(None) => true,
                Some(Some(types)) => types.contains(&event_type),
                None => false,
            },
            Err(_) => true,
        }
    }

    /// Reads every enabled endpoint's and sink's filter again. Every node does it every few
    /// seconds (ingress nodes write the telemetry and presence events), and a node at once after
    /// a change made through it.
    pub async fn refresh(&self, db: &impl ConnectionTrait, nats_configured: bool) -> Result<()> {
        use crate::webhooks::model::endpoint;
        let mut map: HashMap<TenantId, Option<Vec<EventType>>> = HashMap::new();
        let mut add = |tenant: Uuid, types: Vec<EventType>| {
            let entry = map
                .entry(TenantId(tenant))
                .or_insert_with(|| Some(Vec::new()));
            match (entry.as_mut(), types.is_empty()) {
                (_, true) => *entry = None,
                (Some(list), false) => {
                    list.extend(types);
                    list.sort();
                    list.dedup();
                }
                (None, false) => {}
            }
        };
        let endpoints: Vec<(Uuid, serde_json::Value)> = endpoint::Entity::find()
            .select_only()
            .column(endpoint::Column::TenantId)
            .column(endpoint::Column::EventTypes)
            .filter(endpoint::Column::Enabled.eq(true))
            .into_tuple()
            .all(db)
            .await?;
        for (tenant, types) in endpoints {
            add(tenant, types_of(&types));
        }
        if nats_configured {
            use crate::webhooks::model::nats_sink;
            let sinks: Vec<(Uuid, serde_json::Value)> = nats_sink::Entity::find()
                .select_only()
                .column(nats_sink::Column::TenantId)
                .column(nats_sink::Column::EventTypes)
                .filter(nats_sink::Column::Enabled.eq(true))
                .into_tuple()
                .all(db)
                .await?;
            for (tenant, types) in sinks {
                add(tenant, types_of(&types));
            }
        }
        if let Ok(mut tenants) = self.tenants.write() {
            *tenants = map;
        }
        Ok(())
    }
}

/// A stored filter (JSON array of type names); unknown names are skipped.
pub fn types_of(json: &serde_json::Value) -> Vec<EventType> {
    json.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().and_then(EventType::parse))
                .collect()
        })
        .unwrap_or_default()
}

/// Keeps a node's [`Subscriptions`] current (every node: ingress writes events too).
pub async fn run_refresh(state: crate::app::AppState) {
    loop {
        if let Err(e) = state
            .subscriptions
            .refresh(&state.db, state.config.nats_url.is_some())
            .await
        {
            tracing::debug!(error = %e, "reading event subscriptions failed; trying again");
        }
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    }
}

/// The `device.telemetry` event of one tenant's part of a committed batch: its points, grouped
/// in batch order (the SQLite writer builds it here; PostgreSQL builds the same in SQL).
pub fn telemetry_data(rows: &[&crate::telemetry::Row]) -> serde_json::Value {
    serde_json::json!({
        "points": rows.iter().map(|r| serde_json::json!({
            "device_id": Uuid::from(r.device_id),
            "ts": r.ts,
            "values": r.values,
        })).collect::<Vec<_>>()
    })
}
