//! The webhook sender (worker role). Every pass it takes the due deliveries of enabled endpoints,
//! leases each with a conditional update (so two workers never send one at once, and a worker
//! that dies mid-request leaves it to another once the lease runs out), and sends them: each
//! endpoint at most `max_concurrency` at a time on this node, an ordered endpoint one at a time
//! in event order. Each request is one `webhook_attempts` row; the delivery then succeeds (2xx),
//! fails for good (410 Gone, or retries used up), or waits for its next attempt (the schedule,
//! or a longer `Retry-After`). An endpoint whose every attempt has failed for
//! `STEAD_WEBHOOK_DISABLE_AFTER_SECS` is turned off and its creator told by e-mail.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sea_orm::entity::prelude::*;
use sea_orm::{Condition, QueryOrder, QuerySelect, TransactionTrait as _};
use stead_api_types::{DeliveryStatus, EventType, WebhookFormat};

use super::model::{attempt, delivery, endpoint};
use crate::app::AppState;
use crate::error::Result;
use crate::events::model as event;

/// Requests in flight on this node, across endpoints.
const MAX_IN_FLIGHT: usize = 64;
/// Response bodies are kept up to this many bytes.
const KEEP_BODY: usize = 1024;
/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// What a request came back with.
#[derive(Debug)]
pub struct Outcome {
    pub status: Option<u16>,
    pub body: Option<String>,
    pub error: Option<String>,
    pub latency: Duration,
    pub retry_after: Option<Duration>,
}

impl Outcome {
    fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// The request body an endpoint gets for an event: Standard Webhooks' `{type, timestamp, data}`
/// (with `id` and `tenant_id`), or a structured CloudEvent. With a group filter, a telemetry
/// batch carries only that group's devices' points.
pub fn body_of(
    ev: event::Model,
    format: WebhookFormat,
    only_devices: Option<&[Uuid]>,
) -> serde_json::Value {
    let mut data = ev.data;
    if let (Some(devices), Some(points)) = (
        only_devices,
        data.get_mut("points").and_then(|p| p.as_array_mut()),
    ) {
        points.retain(|p| {
            p.get("device_id")
                .and_then(|d| d.as_str())
                .and_then(|d| d.parse::<Uuid>().ok())
                .is_some_and(|d| devices.contains(&d))
        });
    }
    match format {
        WebhookFormat::Standard => serde_json::json!({
            "id": ev.id,
            "type": ev.event_type,
            "tenant_id": ev.tenant_id,
            "timestamp": ev.created_at,
            "data": data,
        }),
        WebhookFormat::Cloudevents => {
            let mut ce = serde_json::json!({
                "specversion": "1.0",
                "id": ev.id,
                "source": format!("/stead/tenants/{}", ev.tenant_id),
                "type": format!("io.stead.{}", ev.event_type),
                "time": ev.created_at,
                "datacontenttype": "application/json",
                "data": data,
            });
            if let Some(device) = ev.device_id {
                ce["subject"] = serde_json::json!(format!("devices/{device}"));
            }
            ce
        }
    }
}

/// `webhook-signature`: one `v1,` signature per secret in force (two during a rotation).
pub fn signature(secrets: &[String], id: &str, timestamp: i64, body: &[u8]) -> Result<String> {
    let mut parts = Vec::with_capacity(secrets.len());
    for secret in secrets {
        let hook = standardwebhooks::Webhook::new(secret)
            .map_err(|e| anyhow::anyhow!("a webhook secret is unusable: {e}"))?;
        parts.push(
            hook.sign(id, timestamp, body)
                .map_err(|e| anyhow::anyhow!("signing a webhook: {e}"))?,
        );
    }
    Ok(parts.join(" "))
}

/// The secrets an endpoint signs with now: its own, and the previous one until its overlap ends.
pub fn secrets_of(state: &AppState, ep: &endpoint::Model) -> Result<Vec<String>> {
    let open = |sealed: &str| -> Result<String> {
        let raw = state.keys.sealer.open(ep.id, sealed)?;
        Ok(String::from_utf8(raw)
            .map_err(|_| anyhow::anyhow!("a sealed webhook secret is not text"))?)
    };
    let mut secrets = vec![open(&ep.secret)?];
    if let (Some(previous), Some(until)) = (&ep.previous_secret, ep.previous_secret_expires_at)
        && until > Utc::now()
    {
        secrets.push(open(previous)?);
    }
    Ok(secrets)
}

/// Sends one request. Never fails: what went wrong is in the outcome.
pub async fn send(
    client: &reqwest::Client,
    url: &str,
    format: WebhookFormat,
    id: &str,
    signature_of: impl FnOnce(i64, &[u8]) -> Result<String>,
    body: &serde_json::Value,
    allow_private: bool,
) -> Outcome {
    let started = Instant::now();
    let failed = |error: String| Outcome {
        status: None,
        body: None,
        error: Some(error),
        latency: started.elapsed(),
        retry_after: None,
    };
    // Literal addresses never reach the resolver: check them on every request.
    if let Err(e) = super::guard::check_url(url, allow_private) {
        return failed(e);
    }
    let bytes = match serde_json::to_vec(body) {
        Ok(b) => b,
        Err(e) => return failed(format!("encoding the event: {e}")),
    };
    let timestamp = Utc::now().timestamp();
    let signature = match signature_of(timestamp, &bytes) {
        Ok(s) => s,
        Err(e) => return failed(e.to_string()),
    };
    let content_type = match format {
        WebhookFormat::Standard => "application/json",
        WebhookFormat::Cloudevents => "application/cloudevents+json",
    };
    let response = client
        .post(url)
        .header("content-type", content_type)
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(bytes)
        .send()
        .await;
    match response {
        Ok(response) => {
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER));
            let body = read_some(response).await;
            Outcome {
                status: Some(status),
                body: Some(body),
                error: None,
                latency: started.elapsed(),
                retry_after,
            }
        }
        Err(e) => failed(describe(&e)),
    }
}

/// The first KiB of a response body, as text.
async fn read_some(mut response: reqwest::Response) -> String {
    let mut kept = Vec::new();
    while kept.len() < KEEP_BODY {
        match response.chunk().await {
            Ok(Some(chunk)) => kept.extend_from_slice(&chunk),
            _ => break,
        }
    }
    kept.truncate(KEEP_BODY);
    String::from_utf8_lossy(&kept).into_owned()
}

/// A request error in words, with its cause (reqwest's own message stops at "error sending
/// request").
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out waiting for the endpoint".into();
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// This node's requests in flight, per endpoint.
#[derive(Default)]
struct InFlight(Mutex<HashMap<Uuid, u32>>);

impl InFlight {
    fn count(&self, ep: Uuid) -> u32 {
        self.0
            .lock()
            .map(|m| m.get(&ep).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    fn add(&self, ep: Uuid, n: i32) {
        if let Ok(mut m) = self.0.lock() {
            let entry = m.entry(ep).or_default();
            *entry = entry.saturating_add_signed(n);
            if *entry == 0 {
                m.remove(&ep);
            }
        }
    }
}

/// The sender's loop.
pub async fn run(state: AppState) {
    let client = match super::guard::client(
        state.config.webhook_allow_private_addresses,
        Duration::from_secs(state.config.webhook_timeout_secs),
    ) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "the webhook HTTP client could not be built: webhooks are not sent");
            return;
        }
    };
    let in_flight = Arc::new(InFlight::default());
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    loop {
        let woken = state.deliveries.notified();
        if let Err(e) = pass(&state, &client, &in_flight, &slots).await {
            tracing::warn!(error = %e, "sending webhooks failed; trying again");
        }
        tokio::select! {
            _ = woken => {}
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    }
}

async fn pass(
    state: &AppState,
    client: &reqwest::Client,
    in_flight: &Arc<InFlight>,
    slots: &Arc<tokio::sync::Semaphore>,
) -> Result<()> {
    let now = Utc::now();
    let due = delivery::Entity::find()
        .filter(delivery::Column::Sink.eq("webhook"))
        .filter(delivery::Column::Status.eq(DeliveryStatus::Pending.as_str()))
        .filter(delivery::Column::NextAttemptAt.lte(now))
        .filter(
            Condition::any()
                .add(delivery::Column::LeasedUntil.is_null())
                .add(delivery::Column::LeasedUntil.lt(now)),
        )
        .order_by_asc(delivery::Column::EventSeq)
        .limit(500)
        .all(&state.db)
        .await?;
    if due.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = due.iter().filter_map(|d| d.endpoint_id).collect();
    let endpoints: HashMap<Uuid, endpoint::Model> = endpoint::Entity::find()
        .filter(endpoint::Column::Id.is_in(ids))
        .filter(endpoint::Column::Enabled.eq(true))
        .all(&state.db)
        .await?
        .into_iter()
        .map(|e| (e.id, e))
        .collect();
    // An ordered endpoint sends only its oldest pending delivery.
    let mut heads: HashMap<Uuid, Option<i64>> = HashMap::new();
    for ep in endpoints.values().filter(|e| e.ordered) {
        let head: Option<i64> = delivery::Entity::find()
            .select_only()
            .column_as(delivery::Column::EventSeq.min(), "m")
            .filter(delivery::Column::EndpointId.eq(ep.id))
            .filter(delivery::Column::Status.eq(DeliveryStatus::Pending.as_str()))
            .into_tuple::<Option<i64>>()
            .one(&state.db)
            .await?
            .flatten();
        heads.insert(ep.id, head);
    }
    let lease = Duration::from_secs(state.config.webhook_timeout_secs + 30);
    for d in due {
        let Some(ep) = d.endpoint_id.and_then(|id| endpoints.get(&id)) else {
            continue;
        };
        let limit = if ep.ordered {
            1
        } else {
            ep.max_concurrency.max(1) as u32
        };
        if in_flight.count(ep.id) >= limit {
            continue;
        }
        if ep.ordered && heads.get(&ep.id).copied().flatten() != Some(d.event_seq) {
            continue;
        }
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            break;
        };
        let until = Utc::now() + chrono::Duration::from_std(lease).unwrap_or_default();
        let leased = delivery::Entity::update_many()
            .col_expr(delivery::Column::LeasedUntil, Expr::value(until))
            .filter(delivery::Column::Id.eq(d.id))
            .filter(delivery::Column::Status.eq(DeliveryStatus::Pending.as_str()))
            .filter(
                Condition::any()
                    .add(delivery::Column::LeasedUntil.is_null())
                    .add(delivery::Column::LeasedUntil.lt(Utc::now())),
            )
            .exec(&state.db)
            .await?
            .rows_affected
            == 1;
        if !leased {
            continue;
        }
        in_flight.add(ep.id, 1);
        let (state, client, in_flight, ep) =
            (state.clone(), client.clone(), in_flight.clone(), ep.clone());
        tokio::spawn(async move {
            let endpoint_id = ep.id;
            if let Err(e) = attempt_one(&state, &client, ep, d).await {
                tracing::warn!(error = %e, endpoint = %endpoint_id, "a webhook attempt could not be recorded; it is tried again when its lease ends");
            }
            in_flight.add(endpoint_id, -1);
            drop(permit);
            state.deliveries.notify_waiters();
        });
    }
    Ok(())
}

/// Sends one leased delivery and records what happened.
async fn attempt_one(
    state: &AppState,
    client: &reqwest::Client,
    ep: endpoint::Model,
    d: delivery::Model,
) -> Result<()> {
    let ev = event::Entity::find()
        .filter(event::Column::Seq.eq(d.event_seq))
        .one(&state.db)
        .await?;
    let Some(ev) = ev else {
        return finish(
            state,
            &d,
            None,
            Some("the event is no longer kept (retention)"),
        )
        .await;
    };
    let format = if ep.format == "cloudevents" {
        WebhookFormat::Cloudevents
    } else {
        WebhookFormat::Standard
    };
    let only: Option<Vec<Uuid>> = match ep.group_id {
        Some(group) if EventType::parse(&ev.event_type) == Some(EventType::DeviceTelemetry) => {
            let devices = crate::events::dispatch::devices_of(&ev);
            Some(
                crate::groups::repo::memberships_across_tenants(
                    crate::auth::System::worker(),
                    &state.db,
                    &devices,
                )
                .await?
                .into_iter()
                .filter(|(_, g)| *g == group)
                .map(|(d, _)| d)
                .collect(),
            )
        }
        _ => None,
    };
    let id = ev.id.to_string();
    let body = body_of(ev, format, only.as_deref());
    let secrets = secrets_of(state, &ep)?;
    let outcome = send(
        client,
        &ep.url,
        format,
        &id,
        |ts, bytes| signature(&secrets, &id, ts, bytes),
        &body,
        state.config.webhook_allow_private_addresses,
    )
    .await;
    record(state, &ep, &d, &outcome).await
}

/// Writes the attempt and the delivery's (and endpoint's) new state in one transaction.
async fn record(
    state: &AppState,
    ep: &endpoint::Model,
    d: &delivery::Model,
    outcome: &Outcome,
) -> Result<()> {
    let now = Utc::now();
    let attempts = d.attempts + 1;
    let gone = outcome.status == Some(410);
    let succeeded = outcome.succeeded();
    let next_wait = if succeeded || gone {
        None
    } else {
        state
            .config
            .webhook_retry_schedule
            .after(attempts as u32)
            .map(|wait| wait.max(outcome.retry_after.unwrap_or_default()))
    };
    let status = if succeeded {
        DeliveryStatus::Succeeded
    } else if next_wait.is_some() {
        DeliveryStatus::Pending
    } else {
        DeliveryStatus::Failed
    };
    let error = outcome.error.clone().or_else(|| {
        outcome
            .status
            .filter(|_| !succeeded)
            .map(|s| format!("the endpoint answered {s}"))
    });
    let txn = state.db.begin().await?;
    attempt::ActiveModel {
        id: sea_orm::ActiveValue::Set(Uuid::new_v4()),
        delivery_id: sea_orm::ActiveValue::Set(d.id),
        tenant_id: sea_orm::ActiveValue::Set(d.tenant_id),
        attempt: sea_orm::ActiveValue::Set(attempts),
        at: sea_orm::ActiveValue::Set(now),
        status_code: sea_orm::ActiveValue::Set(outcome.status.map(i32::from)),
        response_body: sea_orm::ActiveValue::Set(outcome.body.clone()),
        error: sea_orm::ActiveValue::Set(outcome.error.clone()),
        latency_ms: sea_orm::ActiveValue::Set(outcome.latency.as_millis() as i64),
    }
    .insert(&txn)
    .await?;
    let next_at: Option<DateTime<Utc>> =
        next_wait.map(|w| now + chrono::Duration::from_std(w).unwrap_or_default());
    delivery::Entity::update_many()
        .col_expr(delivery::Column::Attempts, Expr::value(attempts))
        .col_expr(delivery::Column::Status, Expr::value(status.as_str()))
        .col_expr(delivery::Column::NextAttemptAt, Expr::value(next_at))
        .col_expr(
            delivery::Column::LeasedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(
            delivery::Column::LastStatusCode,
            Expr::value(outcome.status.map(i32::from)),
        )
        .col_expr(delivery::Column::LastError, Expr::value(error.clone()))
        .col_expr(
            delivery::Column::LastLatencyMs,
            Expr::value(outcome.latency.as_millis() as i64),
        )
        .col_expr(
            delivery::Column::FinishedAt,
            Expr::value((status != DeliveryStatus::Pending).then_some(now)),
        )
        .filter(delivery::Column::Id.eq(d.id))
        .exec(&txn)
        .await?;
    // The endpoint's health: a success clears its failure clock; a 410 or a clock past the
    // limit turns it off.
    let mut disabled: Option<String> = None;
    if succeeded {
        if ep.failing_since.is_some() {
            endpoint::Entity::update_many()
                .col_expr(
                    endpoint::Column::FailingSince,
                    Expr::value(Option::<DateTime<Utc>>::None),
                )
                .filter(endpoint::Column::Id.eq(ep.id))
                .exec(&txn)
                .await?;
        }
    } else {
        let since = ep.failing_since.unwrap_or(now);
        if gone {
            disabled = Some("the endpoint answered 410 Gone".to_owned());
        } else if (now - since).num_seconds() >= state.config.webhook_disable_after_secs as i64 {
            disabled = Some(format!(
                "every delivery failed since {} (last: {})",
                since.format("%Y-%m-%d %H:%M UTC"),
                error.as_deref().unwrap_or("no answer")
            ));
        }
        let mut update = endpoint::Entity::update_many()
            .col_expr(endpoint::Column::FailingSince, Expr::value(Some(since)))
            .filter(endpoint::Column::Id.eq(ep.id));
        if let Some(reason) = &disabled {
            update = update
                .col_expr(endpoint::Column::Enabled, Expr::value(false))
                .col_expr(
                    endpoint::Column::DisabledReason,
                    Expr::value(reason.clone()),
                )
                .filter(endpoint::Column::Enabled.eq(true));
        }
        update.exec(&txn).await?;
    }
    txn.commit().await?;
    state
        .metrics
        .webhook_attempts
        .with_label_values(&[status.as_str()])
        .inc();
    if let Some(reason) = disabled {
        tracing::warn!(endpoint = %ep.id, url = %ep.url, reason = %reason, "webhook endpoint turned off");
        state
            .subscriptions
            .refresh(&state.db, state.config.nats_url.is_some())
            .await
            .ok();
        tell_owner(state, ep, &reason).await;
    }
    Ok(())
}

/// Ends a delivery that cannot be attempted (its event is gone).
async fn finish(
    state: &AppState,
    d: &delivery::Model,
    status: Option<u16>,
    why: Option<&str>,
) -> Result<()> {
    delivery::Entity::update_many()
        .col_expr(
            delivery::Column::Status,
            Expr::value(DeliveryStatus::Failed.as_str()),
        )
        .col_expr(
            delivery::Column::LastError,
            Expr::value(why.map(str::to_owned)),
        )
        .col_expr(
            delivery::Column::LastStatusCode,
            Expr::value(status.map(i32::from)),
        )
        .col_expr(delivery::Column::FinishedAt, Expr::value(Some(Utc::now())))
        .filter(delivery::Column::Id.eq(d.id))
        .exec(&state.db)
        .await?;
    Ok(())
}

/// Mails the endpoint's creator that it was turned off (when mail is configured).
async fn tell_owner(state: &AppState, ep: &endpoint::Model, reason: &str) {
    if !state.mailer.configured() {
        return;
    }
    let owner = crate::users::repo::find_by_id(
        crate::auth::System::worker(),
        &state.db,
        crate::ids::UserId(ep.created_by),
    )
    .await;
    let Ok(Some(owner)) = owner else {
        return;
    };
    let console = crate::mail::public_url(&state.config);
    let text = format!(
        "Stead turned off your webhook endpoint\n\n    {}\n\nbecause {reason}.\n\nWhile it is off it gets no events. Once it answers again, turn it on in the console ({console}/integrations): deliveries still waiting resume, and \"Replay since\" sends what happened while it was off.\n",
        ep.url
    );
    if let Err(e) = state
        .mailer
        .send(crate::mail::Mail {
            to: &owner.email,
            subject: "A webhook endpoint was turned off".into(),
            text,
        })
        .await
    {
        tracing::warn!(error = %e, "telling the owner of a turned-off webhook endpoint failed");
    }
}
