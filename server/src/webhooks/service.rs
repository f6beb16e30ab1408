//! Changing webhook endpoints and the NATS sink: each change and its audit entry in one
//! transaction; the node's subscriptions are refreshed after the commit, so the next event of a
//! newly subscribed type is written at once (other nodes follow within seconds).

use chrono::Utc;
use sea_orm::ActiveValue::Set;
use sea_orm::DatabaseConnection;
use stead_api_types::{
    CreateWebhook, CreatedWebhook, EventType, NatsSink, Replayed, RotateWebhookSecret, SetNatsSink,
    UpdateWebhook, WebhookEndpoint, WebhookSecret,
};
use uuid::Uuid;

use super::{model::endpoint, repo};
use crate::app::AppState;
use crate::audit;
use crate::auth::{Actor, TenantCtx};
use crate::error::{Error, Result};
use crate::events::dispatch::{Target, new_delivery};

/// Endpoints per tenant.
const MAX_ENDPOINTS: u64 = 50;
/// Most requests in flight one endpoint may ask for.
const MAX_CONCURRENCY: u32 = 32;
/// Most deliveries one replay queues.
const MAX_REPLAY: u64 = 10_000;

async fn check_url(state: &AppState, url: &str) -> Result<String> {
    super::guard::check_url_resolved(url, state.config.webhook_allow_private_addresses)
        .await
        .map(|u| u.to_string())
        .map_err(|e| {
            let code = if e.contains("private, loopback") {
                "address_not_allowed"
            } else {
                "invalid_url"
            };
            Error::invalid(code, "url", e)
        })
}

fn check_description(raw: &str) -> Result<String> {
    let d = raw.trim();
    if d.chars().count() > 200 {
        return Err(Error::invalid(
            "invalid_field",
            "description",
            "a description has at most 200 characters",
        ));
    }
    Ok(d.to_owned())
}

fn check_concurrency(n: u32) -> Result<i32> {
    if !(1..=MAX_CONCURRENCY).contains(&n) {
        return Err(Error::invalid(
            "invalid_field",
            "max_concurrency",
            format!("between 1 and {MAX_CONCURRENCY} requests at once"),
        ));
    }
    Ok(n as i32)
}

fn check_types(mut types: Vec<EventType>) -> Result<serde_json::Value> {
    types.sort();
    types.dedup();
    if types.contains(&EventType::WebhookTest) {
        return Err(Error::invalid(
            "invalid_field",
            "event_types",
            "webhook.test goes only where \"Send test event\" sends it: leave it out of filters",
        ));
    }
    Ok(serde_json::to_value(types).unwrap_or_default())
}

async fn check_group(db: &DatabaseConnection, ctx: &TenantCtx, group: Option<Uuid>) -> Result<()> {
    if let Some(g) = group {
        crate::groups::repo::get(db, ctx, g).await.map_err(|_| {
            Error::invalid(
                "unknown_group",
                "group_id",
                format!("there is no device group {g} in this tenant"),
            )
        })?;
    }
    Ok(())
}

fn seal(state: &AppState, endpoint: Uuid, secret: &str) -> Result<String> {
    Ok(state.keys.sealer.seal(endpoint, secret.as_bytes())?)
}

fn parse_secret(raw: Option<String>, field: &'static str) -> Result<String> {
    match raw {
        Some(s) => super::parse_secret(&s).map_err(|e| Error::invalid("invalid_secret", field, e)),
        None => Ok(super::new_secret()),
    }
}

async fn refreshed(state: &AppState) {
    if let Err(e) = state
        .subscriptions
        .refresh(&state.db, state.config.nats_url.is_some())
        .await
    {
        tracing::warn!(error = %e, "refreshing event subscriptions failed");
    }
}

pub async fn create(
    state: &AppState,
    ctx: &TenantCtx,
    actor: &Actor,
    body: CreateWebhook,
) -> Result<CreatedWebhook> {
    let url = check_url(state, &body.url).await?;
    let description = check_description(&body.description)?;
    let types = check_types(body.event_types)?;
    let concurrency = check_concurrency(body.max_concurrency.unwrap_or(4))?;
    check_group(&state.db, ctx, body.group_id).await?;
    let secret = parse_secret(body.secret, "secret")?;
    let id = Uuid::new_v4();
    let now = Utc::now();
    let txn = audit::begin(&state.db, Some(ctx.tenant_id())).await?;
    if repo::count(&txn, ctx).await? >= MAX_ENDPOINTS {
        return Err(Error::conflict(
            "quota_exceeded",
            format!("a tenant has at most {MAX_ENDPOINTS} webhook endpoints"),
        ));
    }
    let ep = repo::insert(
        &txn,
        ctx,
        endpoint::Model {
            id,
            tenant_id: ctx.tenant_id().0,
            url,
            description,
            event_types: types,
            group_id: body.group_id,
            format: repo::format_name(body.format).to_owned(),
            ordered: body.ordered,
            max_concurrency: concurrency,
            enabled: true,
            disabled_reason: None,
            failing_since: None,
            secret: seal(state, id, &secret)?,
            previous_secret: None,
            previous_secret_expires_at: None,
            created_by: actor.user_id.0,
            created_at: now,
            updated_at: now,
        },
    )
    .await?;
    let api = repo::to_api(ep, 0);
    audit::record(
        &txn,
        Some(ctx.tenant_id()),
        actor,
        "webhook.create",
        "webhook",
        Some(id),
        serde_json::json!({"url": api.url, "event_types": api.event_types, "group_id": api.group_id}),
    )
    .await?;
    txn.commit().await?;
    refreshed(state).await;
    Ok(CreatedWebhook {
        endpoint: api,
        secret,
    })
}

pub async fn update(
    state: &AppState,
    ctx: &TenantCtx,
    actor: &Actor,
    id: Uuid,
    body: UpdateWebhook,
) -> Result<WebhookEndpoint> {
    let txn = audit::begin(&state.db, Some(ctx.tenant_id())).await?;
    let current = repo::get(&txn, ctx, id).await?;
    let before = repo::to_api(current.clone(), 0);
    let mut active: endpoint::ActiveModel = current.into();
    if let Some(url) = &body.url {
        active.url = Set(check_url(state, url).await?);
    }
    if let Some(d) = &body.description {
        active.description = Set(check_description(d)?);
    }
    if let Some(types) = body.event_types {
        active.event_types = Set(check_types(types)?);
    }
    if let Some(group) = body.group_id {
        check_group(&state.db, ctx, group).await?;
        active.group_id = Set(group);
    }
    if let Some(format) = body.format {
        active.format = Set(repo::format_name(format).to_owned());
    }
    if let Some(ordered) = body.ordered {
        active.ordered = Set(ordered);
    }
    if let Some(n) = body.max_concurrency {
        active.max_concurrency = Set(check_concurrency(n)?);
    }
    if let Some(enabled) = body.enabled {
        active.enabled = Set(enabled);
        if enabled {
            // On again: the failure clock starts afresh.
            active.disabled_reason = Set(None);
            active.failing_since = Set(None);
        } else {
            active.disabled_reason = Set(Some(format!("turned off by {}", actor.email)));
        }
    }
    active.updated_at = Set(Utc::now());
    let ep = repo::save(&txn, active).await?;
    let after = repo::to_api(ep, 0);
    audit::record(
        &txn,
        Some(ctx.tenant_id()),
        actor,
        "webhook.update",
        "webhook",
        Some(id),
        audit::diff(&before, &after),
    )
    .await?;
    txn.commit().await?;
    refreshed(state).await;
    state.deliveries.notify_waiters();
    repo::api_of(&state.db, ctx, id).await
}

pub async fn delete(state: &AppState, ctx: &TenantCtx, actor: &Actor, id: Uuid) -> Result<()> {
    let txn = audit::begin(&state.db, Some(ctx.tenant_id())).await?;
    let ep = repo::get(&txn, ctx, id).await?;
    repo::delete(&txn, ctx, id).await?;
    audit::record(
        &txn,
        Some(ctx.tenant_id()),
        actor,
        "webhook.delete",
        "webhook",
        Some(id),
        serde_json::json!({"url": ep.url}),
    )
    .await?;
    txn.commit().await?;
    refreshed(state).await;
    Ok(())
}

/// The secrets in force, opened (people with `webhooks.manage` configure receivers with them).
pub async fn secret(state: &AppState, ctx: &TenantCtx, id: Uuid) -> Result<WebhookSecret> {
    let ep = repo::get(&state.db, ctx, id).await?;
    let mut secrets = super::deliver::secrets_of(state, &ep)?.into_iter();
    let secret = secrets.next().unwrap_or_default();
    let previous_secret = secrets.next();
    Ok(WebhookSecret {
        previous_secret_expires_at: previous_secret.as_ref().and(ep.previous_secret_expires_at),
        previous_secret,
        secret,
    })
}

/// A new secret; the old one keeps signing beside it for the overlap, so receivers can switch
/// without missing a delivery.
pub async fn rotate(
    state: &AppState,
    ctx: &TenantCtx,
    actor: &Actor,
    id: Uuid,
    body: RotateWebhookSecret,
) -> Result<WebhookSecret> {
    let overlap = body.overlap_secs.unwrap_or(24 * 3600);
    if overlap > 7 * 24 * 3600 {
        return Err(Error::invalid(
            "invalid_field",
            "overlap_secs",
            "the old secret signs for at most 7 days (604800 s) after a rotation",
        ));
    }
    let secret = parse_secret(body.secret, "secret")?;
    let txn = audit::begin(&state.db, Some(ctx.tenant_id())).await?;
    let current = repo::get(&txn, ctx, id).await?;
    let until = Utc::now() + chrono::Duration::seconds(overlap as i64);
    let mut active: endpoint::ActiveModel = current.clone().into();
    active.previous_secret = Set(Some(current.secret.clone()));
    active.previous_secret_expires_at = Set(Some(until));
    active.secret = Set(seal(state, id, &secret)?);
    active.updated_at = Set(Utc::now());
    repo::save(&txn, active).await?;
    audit::record(
        &txn,
        Some(ctx.tenant_id()),
        actor,
        "webhook.rotate_secret",
        "webhook",
        Some(id),
        serde_json::json!({"overlap_secs": overlap}),
    )
    .await?;
    txn.commit().await?;
    self::secret(state, ctx, id).await
}

/// "Send test event": a `webhook.test` event to this endpoint only (enabled or not).
pub async fn test(
    state: &AppState,
    ctx: &TenantCtx,
    actor: &Actor,
    id: Uuid,
) -> Result<stead_api_types::WebhookDelivery> {
    let ep = repo::get(&state.db, ctx, id).await?;
    let txn = audit::begin(&state.db, Some(ctx.tenant_id())).await?;
    let event = crate::events::record(
        &txn,
        ctx.tenant_id(),
        EventType::WebhookTest,
        None,
        serde_json::json!({"message": "A test event from Stead", "endpoint_id": ep.id, "sent_by": actor.email}),
    )
    .await?;
    let delivery = new_delivery(&event, &Target::Webhook(ep.id), false);
    let delivery_id = match &delivery.id {
        Set(id) => *id,
        _ => Uuid::nil(),
    };
    repo::insert_deliveries(&txn, ctx, vec![delivery]).await?;
    // Dispatched already: the dispatcher must not send it anywhere else.
    crate::events::mark_dispatched(&txn, event.seq).await?;
    audit::record(
        &txn,
        Some(ctx.tenant_id()),
        actor,
        "webhook.test",
        "webhook",
        Some(id),
        serde_json::json!({"event_id": event.id}),
    )
    .await?;
    txn.commit().await?;
    state.deliveries.notify_waiters();
    Ok(repo::delivery_to_api(
        repo::delivery(&state.db, ctx, id, delivery_id).await?,
    ))
}

/// Sends one delivery's event again, as a new delivery with the same event id (receivers that
/// deduplicate on `webhook-id` see it once).
pub async fn replay_delivery(
    state: &AppState,
    ctx: &TenantCtx,
    actor: &Actor,
    endpoint_id: Uuid,
    delivery_id: Uuid,
) -> Result<stead_api_types::WebhookDelivery> {
    let old = repo::delivery(&state.db, ctx, endpoint_id, delivery_id).await?;
    let event = repo::event(&state.db, ctx, old.event_seq).await?;
    let fresh = new_delivery(&event, &Target::Webhook(endpoint_id), true);
    let fresh_id = match &fresh.id {
        Set(id) => *id,
        _ => Uuid::nil(),
    };
    let txn = audit::begin(&state.db, Some(ctx.tenant_id())).await?;
    repo::insert_deliveries(&txn, ctx, vec![fresh]).await?;
    audit::record(
        &txn,
        Some(ctx.tenant_id()),
        actor,
        "webhook.replay",
        "webhook",
        Some(endpoint_id),
        serde_json::json!({"event_id": event.id, "delivery_id": delivery_id}),
    )
    .await?;
    txn.commit().await?;
    state.deliveries.notify_waiters();
    Ok(repo::delivery_to_api(
        repo::delivery(&state.db, ctx, endpoint_id, fresh_id).await?,
    ))
}

/// Every event since a time that the endpoint's filter takes, again.
pub async fn replay_since(
    state: &AppState,
    ctx: &TenantCtx,
    actor: &Actor,
    endpoint_id: Uuid,
    since: chrono::DateTime<Utc>,
) -> Result<Replayed> {
    let ep = repo::get(&state.db, ctx, endpoint_id).await?;
    let filter = crate::events::types_of(&ep.event_types);
    let events =
        repo::events_since(&state.db, ctx, since, MAX_REPLAY, ep.group_id.is_some()).await?;
    let mut in_group = std::collections::HashSet::new();
    if let Some(group) = ep.group_id {
        in_group.extend(crate::groups::repo::members(&state.db, ctx, group).await?);
    }
    let rows: Vec<_> = events
        .iter()
        .filter(|e| crate::events::dispatch::takes(&filter, EventType::parse(&e.event_type)))
        .filter(|e| {
            ep.group_id.is_none()
                || !EventType::parse(&e.event_type).is_some_and(|t| t.is_about_a_device())
                || crate::events::dispatch::devices_of(e)
                    .iter()
                    .any(|d| in_group.contains(d))
        })
        .map(|e| new_delivery(e, &Target::Webhook(endpoint_id), true))
        .collect();
    let queued = rows.len() as u64;
    let txn = audit::begin(&state.db, Some(ctx.tenant_id())).await?;
    repo::insert_deliveries(&txn, ctx, rows).await?;
    audit::record(
        &txn,
        Some(ctx.tenant_id()),
        actor,
        "webhook.replay",
        "webhook",
        Some(endpoint_id),
        serde_json::json!({"since": since, "queued": queued}),
    )
    .await?;
    txn.commit().await?;
    state.deliveries.notify_waiters();
    Ok(Replayed { queued })
}

/// The tenant's NATS sink as its people and the platform admin see it.
pub async fn nats_sink(state: &AppState, ctx: &TenantCtx) -> Result<NatsSink> {
    let row = repo::nats_sink(&state.db, ctx).await?;
    let pending = repo::nats_pending(&state.db, ctx).await?;
    Ok(NatsSink {
        enabled: row.as_ref().is_some_and(|r| r.enabled),
        event_types: row
            .as_ref()
            .map(|r| crate::events::types_of(&r.event_types))
            .unwrap_or_default(),
        subject_prefix: format!("{}.{}", state.config.nats_subject_prefix, ctx.tenant_id().0),
        stream: state.config.nats_stream.clone(),
        delivered: row.as_ref().map(|r| r.delivered.max(0) as u64).unwrap_or(0),
        pending,
        last_error: row.as_ref().and_then(|r| r.last_error.clone()),
        last_delivered_at: row.as_ref().and_then(|r| r.last_delivered_at),
        configured: state.config.nats_url.is_some(),
    })
}

/// The platform admin turns a tenant's sink on or off.
pub async fn set_nats_sink(
    state: &AppState,
    ctx: &TenantCtx,
    actor: &Actor,
    body: SetNatsSink,
) -> Result<NatsSink> {
    if body.enabled && state.config.nats_url.is_none() {
        return Err(Error::conflict(
            "nats_not_configured",
            "this platform has no NATS server: set STEAD_NATS_URL first",
        ));
    }
    let types = check_types(body.event_types)?;
    let types: Vec<EventType> = crate::events::types_of(&types);
    let txn = audit::begin(&state.db, Some(ctx.tenant_id())).await?;
    repo::set_nats_sink(&txn, ctx, body.enabled, &types).await?;
    audit::record(
        &txn,
        Some(ctx.tenant_id()),
        actor,
        "tenant.nats_sink.set",
        "tenant",
        Some(ctx.tenant_id().0),
        serde_json::json!({"enabled": body.enabled, "event_types": types}),
    )
    .await?;
    txn.commit().await?;
    refreshed(state).await;
    nats_sink(state, ctx).await
}
