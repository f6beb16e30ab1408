//! The NATS JetStream sink (worker role): the same events as the webhooks get, published to one
//! subject per tenant and type (`<prefix>.<tenant id>.<event type>`) in a stream Stead creates
//! when it is missing. A delivery is marked delivered only when the stream acknowledged it; the
//! event id travels as `Nats-Msg-Id`, so the stream itself drops a duplicate that a retry after a
//! lost acknowledgement would add. While NATS is away the deliveries wait in the database and
//! go out, in order, when it is back.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::entity::prelude::*;
use sea_orm::{Condition, QueryOrder, QuerySelect};
use stead_api_types::{DeliveryStatus, WebhookFormat};

use crate::app::AppState;
use crate::error::Result;
use crate::events::model as event;
use crate::webhooks::model::{delivery, nats_sink};

/// Events published per pass (each up to some 50 KB: a telemetry event of 500 points).
const BATCH: u64 = 64;

/// The sink's loop: connect (again and again while NATS is away), make sure the stream exists,
/// publish what waits.
pub async fn run(state: AppState) {
    let Some(url) = state.config.nats_url.clone() else {
        return;
    };
    loop {
        let connected = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            .name("stead")
            .connect(url.expose())
            .await;
        let client = match connected {
            Ok(c) => c,
            Err(e) => {
                note_error(&state, &format!("cannot reach NATS: {e}")).await;
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        let mut js = async_nats::jetstream::new(client);
        js.set_timeout(Duration::from_secs(5));
        let stream = js
            .get_or_create_stream(async_nats::jetstream::stream::Config {
                name: state.config.nats_stream.clone(),
                subjects: vec![format!("{}.>", state.config.nats_subject_prefix)],
                ..Default::default()
            })
            .await;
        if let Err(e) = stream {
            note_error(
                &state,
                &format!("the JetStream stream is not available: {e}"),
            )
            .await;
            tokio::time::sleep(Duration::from_secs(2)).await;
            continue;
        }
        tracing::info!(stream = %state.config.nats_stream, "NATS sink connected");
        loop {
            match pass(&state, &js).await {
                Ok(n) if n as u64 == BATCH => continue,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "the NATS sink failed; reconnecting");
                    break;
                }
            }
            tokio::select! {
                _ = state.deliveries.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Publishes one batch of due deliveries; answers how many it took.
async fn pass(state: &AppState, js: &async_nats::jetstream::Context) -> Result<usize> {
    let now = Utc::now();
    let due = delivery::Entity::find()
        .filter(delivery::Column::Sink.eq("nats"))
        .filter(delivery::Column::Status.eq(DeliveryStatus::Pending.as_str()))
        .filter(delivery::Column::NextAttemptAt.lte(now))
        .filter(free())
        .order_by_asc(delivery::Column::EventSeq)
        .limit(BATCH)
        .all(&state.db)
        .await?;
    if due.is_empty() {
        return Ok(0);
    }
    // Leased together: the rows this pass's own lease time marks are this pass's.
    // Milliseconds: what both databases give back exactly, so it can be compared.
    let until = Utc::now() + chrono::Duration::seconds(60);
    let until: DateTime<Utc> =
        DateTime::from_timestamp_millis(until.timestamp_millis()).unwrap_or(until);
    delivery::Entity::update_many()
        .col_expr(delivery::Column::LeasedUntil, Expr::value(until))
        .filter(delivery::Column::Id.is_in(due.iter().map(|d| d.id)))
        .filter(delivery::Column::Status.eq(DeliveryStatus::Pending.as_str()))
        .filter(free())
        .exec(&state.db)
        .await?;
    let mine = delivery::Entity::find()
        .filter(delivery::Column::Id.is_in(due.iter().map(|d| d.id)))
        .filter(delivery::Column::LeasedUntil.eq(until))
        .order_by_asc(delivery::Column::EventSeq)
        .all(&state.db)
        .await?;
    let mut events: HashMap<i64, event::Model> = event::Entity::find()
        .filter(event::Column::Seq.is_in(mine.iter().map(|d| d.event_seq)))
        .all(&state.db)
        .await?
        .into_iter()
        .map(|e| (e.seq, e))
        .collect();
    let mut acks = Vec::with_capacity(mine.len());
    for d in &mine {
        let Some(ev) = events.remove(&d.event_seq) else {
            acks.push(Err("the event is no longer kept".to_owned()));
            continue;
        };
        let subject = format!(
            "{}.{}.{}",
            state.config.nats_subject_prefix, ev.tenant_id, ev.event_type
        );
        let id = ev.id.to_string();
        let body = crate::webhooks::deliver::body_of(ev, WebhookFormat::Standard, None);
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", id.as_str());
        let payload = serde_json::to_vec(&body).unwrap_or_default();
        acks.push(
            js.publish_with_headers(subject, headers, payload.into())
                .await
                .map_err(|e| e.to_string()),
        );
    }
    let mut failed: Option<String> = None;
    let mut delivered: HashMap<Uuid, i64> = HashMap::new();
    let mut succeeded: Vec<Uuid> = Vec::new();
    for (d, ack) in mine.iter().zip(acks) {
        let result = match ack {
            Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        let attempts = d.attempts + 1;
        match result {
            Ok(()) => {
                *delivered.entry(d.tenant_id).or_default() += 1;
                succeeded.push(d.id);
            }
            Err(e) => {
                let wait = Duration::from_secs(1u64 << attempts.clamp(0, 5));
                delivery::Entity::update_many()
                    .col_expr(delivery::Column::Attempts, Expr::value(attempts))
                    .col_expr(
                        delivery::Column::LeasedUntil,
                        Expr::value(Option::<DateTime<Utc>>::None),
                    )
                    .col_expr(delivery::Column::LastError, Expr::value(Some(e.clone())))
                    .col_expr(
                        delivery::Column::NextAttemptAt,
                        Expr::value(Some(
                            Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default(),
                        )),
                    )
                    .filter(delivery::Column::Id.eq(d.id))
                    .exec(&state.db)
                    .await?;
                failed.get_or_insert(e);
            }
        }
    }
    // The acknowledged ones in one statement (a NATS delivery is tried once per pass).
    for chunk in succeeded.chunks(500) {
        delivery::Entity::update_many()
            .col_expr(
                delivery::Column::Status,
                Expr::value(DeliveryStatus::Succeeded.as_str()),
            )
            .col_expr(
                delivery::Column::Attempts,
                sea_orm::sea_query::ExprTrait::add(Expr::col(delivery::Column::Attempts), 1),
            )
            .col_expr(
                delivery::Column::LeasedUntil,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .col_expr(
                delivery::Column::LastError,
                Expr::value(Option::<String>::None),
            )
            .col_expr(delivery::Column::FinishedAt, Expr::value(Some(Utc::now())))
            .filter(delivery::Column::Id.is_in(chunk.iter().copied()))
            .exec(&state.db)
            .await?;
    }
    for (tenant, n) in delivered {
        state.metrics.nats_published.inc_by(n as u64);
        nats_sink::Entity::update_many()
            .col_expr(
                nats_sink::Column::Delivered,
                sea_orm::sea_query::ExprTrait::add(Expr::col(nats_sink::Column::Delivered), n),
            )
            .col_expr(
                nats_sink::Column::LastDeliveredAt,
                Expr::value(Some(Utc::now())),
            )
            .col_expr(
                nats_sink::Column::LastError,
                Expr::value(Option::<String>::None),
            )
            .filter(nats_sink::Column::TenantId.eq(tenant))
            .exec(&state.db)
            .await?;
    }
    if let Some(e) = failed {
        note_error(state, &e).await;
        return Err(anyhow::anyhow!("publishing to JetStream: {e}").into());
    }
    Ok(mine.len())
}

/// Not leased by anyone, or the lease ran out.
fn free() -> Condition {
    Condition::any()
        .add(delivery::Column::LeasedUntil.is_null())
        .add(delivery::Column::LeasedUntil.lt(Utc::now()))
}

/// Shows the sink's trouble on every enabled sink (the console's Integrations page shows it).
async fn note_error(state: &AppState, error: &str) {
    tracing::warn!(error, "NATS sink");
    let _ = nats_sink::Entity::update_many()
        .col_expr(
            nats_sink::Column::LastError,
            Expr::value(Some(error.to_owned())),
        )
        .filter(nats_sink::Column::Enabled.eq(true))
        .exec(&state.db)
        .await;
}
