//! Webhook queries, each scoped to the caller's tenant.

use std::collections::HashMap;

use sea_orm::entity::prelude::*;
use sea_orm::{ConnectionTrait, PaginatorTrait, QueryOrder, QuerySelect};
use stead_api_types::{
    DeliveryStatus, EventType, WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookFormat,
};

use super::model::{attempt, delivery, endpoint, nats_sink};
use crate::auth::TenantCtx;
use crate::error::{Error, Result};

pub fn format_of(s: &str) -> WebhookFormat {
    if s == "cloudevents" {
        WebhookFormat::Cloudevents
    } else {
        WebhookFormat::Standard
    }
}

pub fn format_name(f: WebhookFormat) -> &'static str {
    match f {
        WebhookFormat::Standard => "standard",
        WebhookFormat::Cloudevents => "cloudevents",
    }
}

pub fn to_api(e: endpoint::Model, pending: u64) -> WebhookEndpoint {
    WebhookEndpoint {
        id: e.id,
        url: e.url,
        description: e.description,
        event_types: crate::events::types_of(&e.event_types),
        group_id: e.group_id,
        format: format_of(&e.format),
        ordered: e.ordered,
        max_concurrency: e.max_concurrency.max(1) as u32,
        enabled: e.enabled,
        disabled_reason: e.disabled_reason,
        failing_since: e.failing_since,
        previous_secret_expires_at: e
            .previous_secret_expires_at
            .filter(|t| *t > chrono::Utc::now()),
        created_at: e.created_at,
        updated_at: e.updated_at,
        pending,
    }
}

pub fn delivery_to_api(d: delivery::Model) -> WebhookDelivery {
    WebhookDelivery {
        id: d.id,
        event_id: d.event_id,
        event_type: EventType::parse(&d.event_type).unwrap_or(EventType::WebhookTest),
        status: DeliveryStatus::parse(&d.status).unwrap_or(DeliveryStatus::Pending),
        attempts: d.attempts.max(0) as u32,
        created_at: d.created_at,
        next_attempt_at: d
            .next_attempt_at
            .filter(|_| d.status == DeliveryStatus::Pending.as_str()),
        last_status_code: d.last_status_code.map(|s| s as u16),
        last_error: d.last_error,
        last_latency_ms: d.last_latency_ms.map(|l| l.max(0) as u64),
        replay: d.replay,
    }
}

pub fn attempt_to_api(a: attempt::Model) -> WebhookAttempt {
    WebhookAttempt {
        attempt: a.attempt.max(0) as u32,
        at: a.at,
        status_code: a.status_code.map(|s| s as u16),
        response_body: a.response_body,
        error: a.error,
        latency_ms: a.latency_ms.max(0) as u64,
    }
}

/// Pending deliveries per endpoint of the tenant.
async fn pending_counts(db: &impl ConnectionTrait, ctx: &TenantCtx) -> Result<HashMap<Uuid, u64>> {
    let rows: Vec<(Option<Uuid>, i64)> = delivery::Entity::find()
        .select_only()
        .column(delivery::Column::EndpointId)
        .column_as(delivery::Column::Id.count(), "n")
        .filter(delivery::Column::TenantId.eq(ctx.tenant_id().0))
        .filter(delivery::Column::Status.eq(DeliveryStatus::Pending.as_str()))
        .group_by(delivery::Column::EndpointId)
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(e, n)| e.map(|e| (e, n.max(0) as u64)))
        .collect())
}

pub async fn list(db: &impl ConnectionTrait, ctx: &TenantCtx) -> Result<Vec<WebhookEndpoint>> {
    let pending = pending_counts(db, ctx).await?;
    Ok(endpoint::Entity::find()
        .filter(endpoint::Column::TenantId.eq(ctx.tenant_id().0))
        .order_by_asc(endpoint::Column::CreatedAt)
        .all(db)
        .await?
        .into_iter()
        .map(|e| {
            let n = pending.get(&e.id).copied().unwrap_or(0);
            to_api(e, n)
        })
        .collect())
}

pub async fn get(db: &impl ConnectionTrait, ctx: &TenantCtx, id: Uuid) -> Result<endpoint::Model> {
    endpoint::Entity::find_by_id(id)
        .filter(endpoint::Column::TenantId.eq(ctx.tenant_id().0))
        .one(db)
        .await?
        .ok_or(Error::NotFound("webhook endpoint"))
}

pub async fn api_of(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    id: Uuid,
) -> Result<WebhookEndpoint> {
    let e = get(db, ctx, id).await?;
    let pending = pending_counts(db, ctx)
        .await?
        .get(&id)
        .copied()
        .unwrap_or(0);
    Ok(to_api(e, pending))
}

pub async fn count(db: &impl ConnectionTrait, ctx: &TenantCtx) -> Result<u64> {
    Ok(endpoint::Entity::find()
        .filter(endpoint::Column::TenantId.eq(ctx.tenant_id().0))
        .count(db)
        .await?)
}

pub async fn insert(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    e: endpoint::Model,
) -> Result<endpoint::Model> {
    debug_assert_eq!(e.tenant_id, ctx.tenant_id().0);
    let active: endpoint::ActiveModel = e.into();
    Ok(active.reset_all().insert(db).await?)
}

/// Writes back an endpoint read through [`get`].
pub async fn save(db: &impl ConnectionTrait, e: endpoint::ActiveModel) -> Result<endpoint::Model> {
    Ok(e.update(db).await?)
}

pub async fn delete(db: &impl ConnectionTrait, ctx: &TenantCtx, id: Uuid) -> Result<()> {
    let gone = endpoint::Entity::delete_many()
        .filter(endpoint::Column::Id.eq(id))
        .filter(endpoint::Column::TenantId.eq(ctx.tenant_id().0))
        .exec(db)
        .await?
        .rows_affected;
    if gone == 0 {
        return Err(Error::NotFound("webhook endpoint"));
    }
    Ok(())
}

/// An endpoint's deliveries, newest first.
pub async fn deliveries(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    endpoint_id: Uuid,
    status: Option<DeliveryStatus>,
    page: u64,
    per_page: u64,
) -> Result<(Vec<WebhookDelivery>, u64)> {
    let mut query = delivery::Entity::find()
        .filter(delivery::Column::TenantId.eq(ctx.tenant_id().0))
        .filter(delivery::Column::EndpointId.eq(endpoint_id))
        .order_by_desc(delivery::Column::CreatedAt)
        .order_by_desc(delivery::Column::EventSeq)
        .order_by_asc(delivery::Column::Id);
    if let Some(status) = status {
        query = query.filter(delivery::Column::Status.eq(status.as_str()));
    }
    let pages = query.paginate(db, per_page);
    let total = pages.num_items().await?;
    let items = pages.fetch_page(page - 1).await?;
    Ok((items.into_iter().map(delivery_to_api).collect(), total))
}

pub async fn delivery(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    endpoint_id: Uuid,
    id: Uuid,
) -> Result<delivery::Model> {
    delivery::Entity::find_by_id(id)
        .filter(delivery::Column::TenantId.eq(ctx.tenant_id().0))
        .filter(delivery::Column::EndpointId.eq(endpoint_id))
        .one(db)
        .await?
        .ok_or(Error::NotFound("delivery"))
}

pub async fn attempts(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    delivery_id: Uuid,
) -> Result<Vec<WebhookAttempt>> {
    Ok(attempt::Entity::find()
        .filter(attempt::Column::TenantId.eq(ctx.tenant_id().0))
        .filter(attempt::Column::DeliveryId.eq(delivery_id))
        .order_by_asc(attempt::Column::Attempt)
        .order_by_asc(attempt::Column::At)
        .all(db)
        .await?
        .into_iter()
        .map(attempt_to_api)
        .collect())
}

/// One of the tenant's events, by its sequence number.
pub async fn event(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    seq: i64,
) -> Result<crate::events::model::Model> {
    use crate::events::model as event;
    event::Entity::find()
        .filter(event::Column::Seq.eq(seq))
        .filter(event::Column::TenantId.eq(ctx.tenant_id().0))
        .one(db)
        .await?
        .ok_or(Error::gone(
            "event_expired",
            "this event is no longer kept (STEAD_EVENT_RETENTION_DAYS)",
        ))
}

/// The tenant's events since a time, oldest first (at most `limit`).
/// With `data` only when asked (a telemetry batch's can be large; routing needs it only to
/// apply a group filter).
pub async fn events_since(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    since: chrono::DateTime<chrono::Utc>,
    limit: u64,
    with_data: bool,
) -> Result<Vec<crate::events::model::Model>> {
    use crate::events::model as event;
    let query = event::Entity::find()
        .filter(event::Column::TenantId.eq(ctx.tenant_id().0))
        .filter(event::Column::CreatedAt.gte(since))
        .filter(event::Column::EventType.ne(EventType::WebhookTest.as_str()))
        .order_by_asc(event::Column::Seq)
        .limit(limit);
    if with_data {
        return Ok(query.all(db).await?);
    }
    crate::events::without_data(db, query).await
}

pub async fn insert_deliveries(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    rows: Vec<delivery::ActiveModel>,
) -> Result<()> {
    let tenant = ctx.tenant_id().0;
    debug_assert!(
        rows.iter()
            .all(|r| matches!(&r.tenant_id, sea_orm::ActiveValue::Set(t) if *t == tenant))
    );
    for chunk in rows.chunks(200) {
        delivery::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(db)
            .await?;
    }
    Ok(())
}

/// The tenant's NATS sink row, if the platform admin set one.
pub async fn nats_sink(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
) -> Result<Option<nats_sink::Model>> {
    Ok(nats_sink::Entity::find_by_id(ctx.tenant_id().0)
        .one(db)
        .await?)
}

/// NATS deliveries of the tenant still waiting.
pub async fn nats_pending(db: &impl ConnectionTrait, ctx: &TenantCtx) -> Result<u64> {
    Ok(delivery::Entity::find()
        .filter(delivery::Column::TenantId.eq(ctx.tenant_id().0))
        .filter(delivery::Column::Sink.eq("nats"))
        .filter(delivery::Column::Status.eq(DeliveryStatus::Pending.as_str()))
        .count(db)
        .await?)
}

pub async fn set_nats_sink(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    enabled: bool,
    types: &[EventType],
) -> Result<()> {
    use sea_orm::ActiveValue::Set;
    let now = chrono::Utc::now();
    let types = serde_json::to_value(types).unwrap_or_default();
    match nats_sink(db, ctx).await? {
        Some(existing) => {
            let mut active: nats_sink::ActiveModel = existing.into();
            active.enabled = Set(enabled);
            active.event_types = Set(types);
            active.updated_at = Set(now);
            active.update(db).await?;
        }
        None => {
            nats_sink::ActiveModel {
                tenant_id: Set(ctx.tenant_id().0),
                enabled: Set(enabled),
                event_types: Set(types),
                delivered: Set(0),
                last_error: Set(None),
                last_delivered_at: Set(None),
                updated_at: Set(now),
            }
            .insert(db)
            .await?;
        }
    }
    Ok(())
}
