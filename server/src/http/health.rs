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
    if let Some(result) = state.live.ping().await {
        match result {
            Ok(()) => checks.insert("redis".into(), "ok".into()),
            Err(e) => {
                ready = false;
                tracing::warn!(error = %e, "readiness: redis unreachable");
                checks.insert("redis".into(), format!("unreachable: {e}"))
            }
        };
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

pub async fn metrics(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    state
        .metrics
        .mqtt_sessions
        .set(state.sessions.registry.connected() as i64);
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render()?))
}
