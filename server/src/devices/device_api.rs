//! The HTTP device API (`/api/v1/{token}/…`), for devices that cannot keep an MQTT connection.
//! The token in the path is the device's access token; the same decoding, limits and durability
//! as MQTT apply: a 200 means the data is stored.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::credentials::{self, Why};
use super::repo::DeviceIdentity;
use crate::app::AppState;
use crate::http::{ApiError, ApiResult, Body, ClientIp};
use crate::ingest::{self, Rejection};
use crate::telemetry::now_ms;
use crate::timeline::{self, EventKind};

pub fn routes(cfg: &mut web::ServiceConfig) {
    // Before the `/{token}/…` patterns.
    cfg.route("/provision", web::post().to(provision))
        .route("/{token}/telemetry", web::post().to(telemetry))
        .route("/{token}/attributes", web::post().to(post_attributes))
        .route("/{token}/attributes", web::get().to(get_attributes))
        .route("/{token}/rpc", web::get().to(poll_rpc))
        .route("/{token}/rpc/{id}", web::post().to(answer_rpc));
}

/// The device behind the token, if it may act now: a disabled device is refused with 403
/// `device_disabled`, expired credentials with 401 `credentials_expired` (both on its timeline).
async fn identify(state: &AppState, token: &str) -> ApiResult<DeviceIdentity> {
    let device = state
        .sessions
        .authenticate(&state.db, token)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_device_token",
                "unknown or revoked device access token",
            )
        })?;
    credentials::admissible(device).map_err(|denied| {
        let (status, code) = match &denied.why {
            Why::Disabled(_) => (StatusCode::FORBIDDEN, "device_disabled"),
            _ => (StatusCode::UNAUTHORIZED, "credentials_expired"),
        };
        let reason = match denied.why.note() {
            Some(note) => format!("{}: {note}", denied.why.reason()),
            None => denied.why.reason().to_owned(),
        };
        if let Some(device) = denied.device.as_deref() {
            timeline::record(
                &state.timeline,
                device,
                EventKind::ConnectRefused,
                format!("HTTP request refused: {reason}"),
                serde_json::json!({"transport": "http", "reason": denied.why.reason(), "note": denied.why.note()}),
            );
        }
        ApiError::new(status, code, reason)
    })
}

/// `POST /api/v1/provision`: ThingsBoard's provisioning over HTTP. The answer is the same JSON as
/// over MQTT, with 200 whatever its status (as ThingsBoard answers), except 429 when the source
/// address made too many attempts.
async fn provision(
    state: web::Data<AppState>,
    ClientIp(ip): ClientIp,
    Body(body): Body,
) -> ApiResult<web::Json<serde_json::Value>> {
    match crate::provisioning::provision(&state, Some(ip), &body).await {
        Err(crate::provisioning::Failed::Throttled { retry_after_secs }) => {
            Err(crate::error::Error::Throttled { retry_after_secs }.into())
        }
        outcome => Ok(web::Json(crate::provisioning::answer(outcome))),
    }
}

/// Maps a refusal to HTTP once, and records it on the device's timeline.
fn refused(
    state: &AppState,
    device: &DeviceIdentity,
    what: &str,
    rejection: Rejection,
) -> ApiError {
    state
        .metrics
        .mqtt_rejected
        .with_label_values(&[rejection.reason()])
        .inc();
    timeline::record(
        &state.timeline,
        device,
        EventKind::MessageRejected,
        format!("HTTP {what} rejected: {}", rejection.detail()),
        serde_json::json!({"transport": "http", "reason": rejection.reason()}),
    );
    let (status, code) = match rejection.root() {
        Rejection::Payload(d) if d.starts_with("the payload has") => {
            (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
        }
        // `root` never answers `SubDevices` (and the HTTP device API has no gateway topics).
        Rejection::Payload(_) | Rejection::SubDevices(_) => {
            (StatusCode::BAD_REQUEST, "invalid_payload")
        }
        Rejection::Topic(_) => (StatusCode::NOT_FOUND, "route_not_found"),
        Rejection::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
        Rejection::QuotaExceeded(_) => (StatusCode::CONFLICT, "quota_exceeded"),
        Rejection::NotSupported(_) => (StatusCode::NOT_IMPLEMENTED, "not_supported"),
        Rejection::NotAuthorized(_) => (StatusCode::FORBIDDEN, "not_authorized"),
        Rejection::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable"),
    };
    ApiError::new(status, code, rejection.detail().to_owned())
}

async fn telemetry(
    state: web::Data<AppState>,
    token: web::Path<String>,
    Body(body): Body,
) -> ApiResult<HttpResponse> {
    let device = identify(&state, &token).await?;
    let now = now_ms();
    let stored = async {
        ingest::check_size(body.len(), state.config.mqtt_max_payload_bytes)?;
        let (rows, points) = ingest::telemetry_rows(&device, &body, now)?;
        state
            .sessions
            .http_admit(&state.config, &device, now, points)?;
        state
            .sessions
            .tenant_admit(&state.config, &device, now, points)?;
        state
            .telemetry
            .write(device.device_id, rows)
            .await
            .map_err(|e| Rejection::Unavailable(e.to_string()))
    }
    .await;
    stored.map_err(|r| refused(&state, &device, "telemetry", r))?;
    Ok(HttpResponse::Ok().finish())
}

async fn post_attributes(
    state: web::Data<AppState>,
    token: web::Path<String>,
    Body(body): Body,
) -> ApiResult<HttpResponse> {
    let device = identify(&state, &token).await?;
    let now = now_ms();
    let values = async {
        ingest::check_size(body.len(), state.config.mqtt_max_payload_bytes)?;
        let values = ingest::attributes(&body)?;
        state
            .sessions
            .http_admit(&state.config, &device, now, values.len() as u64)?;
        Ok(values)
    }
    .await
    .map_err(|r| refused(&state, &device, "attributes", r))?;
    crate::attributes::set_client(&state.db, &state.subscriptions, &device, values, now).await?;
    Ok(HttpResponse::Ok().finish())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AttributeQuery {
    client_keys: Option<String>,
    shared_keys: Option<String>,
}

async fn get_attributes(
    state: web::Data<AppState>,
    token: web::Path<String>,
    q: web::Query<AttributeQuery>,
) -> ApiResult<web::Json<serde_json::Value>> {
    let device = identify(&state, &token).await?;
    let split = |s: &Option<String>| {
        s.as_ref().map(|s| {
            s.split(',')
                .map(|k| k.trim().to_owned())
                .filter(|k| !k.is_empty())
                .collect()
        })
    };
    let answer = crate::attributes::answer_request(
        &state.db,
        &device,
        split(&q.client_keys),
        split(&q.shared_keys),
    )
    .await?;
    Ok(web::Json(answer))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PollQuery {
    /// Milliseconds to wait for a command (default 30 s, at most 5 min).
    timeout: Option<u64>,
}

/// Long-polls for one command: `{"id","method","params"}`, or 408 when none came in time.
async fn poll_rpc(
    state: web::Data<AppState>,
    token: web::Path<String>,
    q: web::Query<PollQuery>,
) -> ApiResult<HttpResponse> {
    let device = identify(&state, &token).await?;
    let timeout = q.timeout.unwrap_or(30_000);
    if !(1..=300_000).contains(&timeout) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "`timeout` is between 1 and 300000 ms",
        )
        .with_field("timeout"));
    }
    // A long-polling device is active: commands that are not persistent may reach it.
    let _ = state
        .live
        .record_activity(&[(
            device.device_id,
            crate::live::state::Activity {
                ts: now_ms(),
                messages: 0,
                errors: 0,
            },
        )])
        .await;
    match crate::rpc::next_for_http(
        &state,
        device.device_id,
        std::time::Duration::from_millis(timeout),
    )
    .await?
    {
        Some(command) => Ok(HttpResponse::Ok().json(command.http_body())),
        None => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "no_command",
            format!("no command arrived within {timeout} ms"),
        )),
    }
}

/// The device's answer to command `{id}` (any JSON).
async fn answer_rpc(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    Body(body): Body,
) -> ApiResult<HttpResponse> {
    let (token, id) = path.into_inner();
    let device = identify(&state, &token).await?;
    let id: u32 = id.parse().map_err(|_| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_command",
            format!("{id:?} is not a command id"),
        )
    })?;
    let response: serde_json::Value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&body).into_owned()));
    if crate::rpc::answered(&state, device.device_id, id, response).await? {
        Ok(HttpResponse::Ok().finish())
    } else {
        Err(refused(
            &state,
            &device,
            "command answer",
            Rejection::Payload(format!(
                "no command {id} waits for an answer (unknown, one-way, already answered or timed out)"
            )),
        ))
    }
}
