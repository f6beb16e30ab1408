//! `/healthz` (the process is alive), `/readyz` (its dependencies answer), `/metrics`.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, web};
use stead_api_types::Readiness;

use super::ApiResult;
use crate::app::AppState;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let mut checks = BTreeMap::new();
    let mut ready = true;
    match crate::db::ping(&state.db).await {
        Ok(()) => checks.insert("database".into(), "ok".into()),
        Err(e) => {
            ready = false;
            tracing::warn!(error = %e, "readiness: database unreachable");
            checks.insert("database".into(), format!("unreachable: {e}"))
        }
    };
    match tokio::time::timeout(PING_TIMEOUT, state.live.ping()).await {
        Ok(None) => {}
        Ok(Some(Ok(()))) if state.bus.linked() => {
            checks.insert("redis".into(), "ok".into());
        }
        Ok(Some(Ok(()))) => {
            ready = false;
            checks.insert(
                "redis".into(),
                "answers, but the subscription to the other nodes is being made again".into(),
            );
        }
        Ok(Some(Err(e))) => {
            ready = false;
            tracing::warn!(error = %e, "readiness: redis unreachable");
            checks.insert("redis".into(), format!("unreachable: {e}"));
        }
        Err(_) => {
            ready = false;
            tracing::warn!("readiness: redis did not answer within 2 s");
            checks.insert("redis".into(), "unreachable: no answer within 2 s".into());
        }
    }
    let body = Readiness {
        status: if ready { "ready" } else { "not_ready" }.into(),
        checks,
    };
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// How long a scrape waits for a dependency's ping before calling it down: well inside
/// Prometheus's default scrape timeout (10 s), so a dead Redis shows as 0 instead of a failed scrape.
const PING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

pub async fn metrics(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let m = &state.metrics;
    m.mqtt_sessions
        .set(state.sessions.registry.connected() as i64);
    // Gauges sampled here, once per scrape, so the hot path does no extra work for them.
    let (queued, capacity) = state.telemetry.queued();
    m.telemetry_queue_depth.set(queued as i64);
    m.telemetry_queue_capacity.set(capacity as i64);
    m.timeline_queue_depth.set(state.timeline.queued() as i64);
    let (database, redis) = tokio::join!(
        tokio::time::timeout(PING_TIMEOUT, crate::db::ping(&state.db)),
        tokio::time::timeout(PING_TIMEOUT, state.live.ping()),
    );
    let up = |ok: bool| i64::from(ok);
    m.dependency_up
        .with_label_values(&["database"])
        .set(up(matches!(database, Ok(Ok(())))));
    match redis {
        // In-process live state: there is no Redis to be up or down.
        Ok(None) => {}
        Ok(Some(result)) => m
            .dependency_up
            .with_label_values(&["redis"])
            .set(up(result.is_ok())),
        Err(_) => m.dependency_up.with_label_values(&["redis"]).set(0),
    }
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render()?))
}
