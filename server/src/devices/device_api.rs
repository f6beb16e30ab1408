//! The HTTP device API (`/api/v1/{token}/…`), for devices that cannot keep an MQTT connection.
//! The token in the path is the device's access token; the same decoding, limits and durability
//! as MQTT apply: a 200 means the data is stored.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use stead_api_types::ApiErrorBody;
use utoipa::IntoResponses;

use self::thingsboard::{DeviceAttributes, DeviceCommand, ProvisionAnswer, ProvisionRequest};

use super::credentials::{self, Why};
use super::repo::DeviceIdentity;
use crate::app::AppState;
use crate::http::openapi::{BadQuery, NotFound};
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
        .route("/{token}/rpc/{id}", web::post().to(answer_rpc))
        .route("/{token}/firmware", web::get().to(firmware))
        .route("/{token}/software", web::get().to(software));
}

/// What any route with a device's token in the path answers when the token does not admit it.
#[derive(IntoResponses)]
#[allow(dead_code)] // documentation only
enum DeviceDenied {
    #[response(
        status = 401,
        description = "Unknown or revoked token, or expired credentials (`invalid_device_token`, `credentials_expired`)"
    )]
    Unauthenticated(ApiErrorBody),
    #[response(
        status = 403,
        description = "The device is disabled (`device_disabled`)"
    )]
    Disabled(ApiErrorBody),
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
#[utoipa::path(
    post,
    path = "/provision",
    tag = "device-api",
    operation_id = "provision_device",
    summary = "Device: provision itself (ThingsBoard)",
    description = "`POST /api/v1/provision`: ThingsBoard's provisioning over HTTP. The answer is the same JSON as over MQTT, with 200 whatever its status (as ThingsBoard answers), except 429 when the source address made too many attempts.",
    request_body(content = ProvisionRequest, description = "ThingsBoard's provisioning request (unknown fields are ignored)"),
    responses(
        (status = 200, description = "ThingsBoard's answer, whatever its `status` (`SUCCESS` with the credentials, `NOT_FOUND`, `FAILURE` with `errorMsg`)", body = ProvisionAnswer),
        (status = 413, description = "The body is larger than the limit (`payload_too_large`)", body = ApiErrorBody),
        (status = 429, description = "Too many provisioning attempts from this address (`too_many_attempts`)", body = ApiErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ),
)]
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

#[utoipa::path(
    post,
    path = "/{token}/telemetry",
    tag = "device-api",
    operation_id = "device_telemetry",
    summary = "Device: send telemetry",
    params(("token" = String, Path, description = "The device's access token", min_length = 1)),
    request_body(content = serde_json::Value, description = "Telemetry as ThingsBoard takes it: `{\"key\": value, …}`, `{\"ts\": <ms>, \"values\": {…}}`, or an array of either", content_type = "application/json"),
    responses(
        (status = 200, description = "Stored"),
        DeviceDenied,
        NotFound,
        (status = 400, description = "The payload cannot be read (`invalid_payload`)", body = ApiErrorBody),
        (status = 409, description = "The tenant's data points for today are used up (`quota_exceeded`)", body = ApiErrorBody),
        (status = 413, description = "The payload is larger than the limit (`payload_too_large`)", body = ApiErrorBody),
        (status = 429, description = "Over the device's or the tenant's rate limit (`rate_limited`)", body = ApiErrorBody),
        (status = 503, description = "Storage cannot take the data now (`storage_unavailable`); send it again", body = ApiErrorBody),
    ),
)]
async fn telemetry(
    state: web::Data<AppState>,
    token: web::Path<String>,
    Body(body): Body,
) -> ApiResult<HttpResponse> {
    let device = identify(&state, &token).await?;
    let now = now_ms();
    let stored = async {
        ingest::check_size(body.len(), state.config.mqtt_max_payload_bytes)?;
        let (rows, points) = ingest::telemetry_rows(&state.config, &device, &body, now)?;
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

#[utoipa::path(
    post,
    path = "/{token}/attributes",
    tag = "device-api",
    operation_id = "device_set_attributes",
    summary = "Device: report client attributes",
    params(("token" = String, Path, description = "The device's access token", min_length = 1)),
    request_body(content = BTreeMap<String, serde_json::Value>, description = "Client attributes: keys and their values", content_type = "application/json"),
    responses(
        (status = 200, description = "Stored as client attributes"),
        DeviceDenied,
        NotFound,
        (status = 400, description = "The payload is not a JSON object (`invalid_payload`)", body = ApiErrorBody),
        (status = 413, description = "The payload is larger than the limit (`payload_too_large`)", body = ApiErrorBody),
        (status = 429, description = "Over the device's rate limit (`rate_limited`)", body = ApiErrorBody),
    ),
)]
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

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AttributeQuery {
    /// Comma-separated client attribute keys.
    client_keys: Option<String>,
    /// Comma-separated shared attribute keys.
    shared_keys: Option<String>,
}

#[utoipa::path(
    get,
    path = "/{token}/attributes",
    tag = "device-api",
    operation_id = "device_get_attributes",
    summary = "Device: read its attributes",
    params(("token" = String, Path, description = "The device's access token", min_length = 1), AttributeQuery),
    responses(
        (status = 200, description = "The attributes asked for (both scopes when neither is named)", body = DeviceAttributes),
        DeviceDenied,
        NotFound,
        BadQuery,
    ),
)]
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

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct PollQuery {
    /// Milliseconds to wait for a command (default 30 s, at most 5 min).
    #[param(minimum = 1, maximum = 300000)]
    timeout: Option<u64>,
}

/// Long-polls for one command: `{"id","method","params"}`, or 408 when none came in time.
#[utoipa::path(
    get,
    path = "/{token}/rpc",
    tag = "device-api",
    operation_id = "device_poll_command",
    summary = "Device: wait for a command (long poll)",
    description = "Long-polls for one command: `{\"id\",\"method\",\"params\"}`, or 408 when none came in time.",
    params(("token" = String, Path, description = "The device's access token", min_length = 1), PollQuery),
    responses(
        (status = 200, description = "A command for the device", body = DeviceCommand),
        DeviceDenied,
        NotFound,
        BadQuery,
        (status = 408, description = "No command came within `timeout` (`no_command`)", body = ApiErrorBody),
    ),
)]
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
#[utoipa::path(
    post,
    path = "/{token}/rpc/{id}",
    tag = "device-api",
    operation_id = "device_answer_command",
    summary = "Device: answer a command",
    description = "The device's answer to command `{id}` (any JSON).",
    params(("token" = String, Path, description = "The device's access token", min_length = 1), ("id" = u32, Path, description = "The command's `id` (the request id of `GET /{token}/rpc`)")),
    request_body(content = serde_json::Value, description = "The answer: any JSON (other bytes are kept as a string)", content_type = "application/json"),
    responses(
        (status = 200, description = "The answer is stored"),
        DeviceDenied,
        (status = 404, description = "No such command (`unknown_command`), or no route", body = ApiErrorBody),
        (status = 400, description = "No command of that id waits for an answer (`invalid_payload`)", body = ApiErrorBody),
        (status = 413, description = "The payload is larger than the limit (`payload_too_large`)", body = ApiErrorBody),
        (status = 429, description = "Over the device's rate limit (`rate_limited`)", body = ApiErrorBody),
    ),
)]
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
    if crate::text::nul_in(&response).is_some() {
        return Err(refused(
            &state,
            &device,
            "command answer",
            Rejection::Payload(
                "the answer holds a NUL character (U+0000), which text may not".into(),
            ),
        ));
    }
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

/// The device API speaks ThingsBoard's JSON, built by hand where it is answered (over MQTT too):
/// these types describe it for the OpenAPI document, and the tests hold them to what is sent.
mod thingsboard {
    #![allow(dead_code)] // read by the document and the tests only

    use std::collections::BTreeMap;

    use serde::{Deserialize, Serialize};
    use utoipa::ToSchema;

    /// `POST /api/v1/provision`: ThingsBoard's provisioning request.
    #[derive(Serialize, Deserialize, ToSchema)]
    #[serde(rename_all = "camelCase")]
    pub(super) struct ProvisionRequest {
        /// The device's name (`allow_create` creates it; `pre_provisioned` finds it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        device_name: Option<String>,
        provision_device_key: String,
        provision_device_secret: String,
        /// `ACCESS_TOKEN` (the default) or `MQTT_BASIC`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        credentials_type: Option<String>,
        /// The access token to use, instead of a generated one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
        /// MQTT basic credentials to use.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        username: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password: Option<String>,
    }

    /// ThingsBoard's provisioning answer.
    #[derive(Serialize, Deserialize, ToSchema)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub(super) struct ProvisionAnswer {
        status: ProvisionStatus,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        credentials_type: Option<ProvisionedType>,
        /// The access token, or the MQTT basic credentials.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        credentials_value: Option<ProvisionedValue>,
        /// Why it failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error_msg: Option<String>,
    }

    #[derive(Serialize, Deserialize, ToSchema)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    pub(super) enum ProvisionStatus {
        Success,
        NotFound,
        Failure,
    }

    #[derive(Serialize, Deserialize, ToSchema)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    pub(super) enum ProvisionedType {
        AccessToken,
        MqttBasic,
    }

    #[derive(Serialize, Deserialize, ToSchema)]
    #[serde(untagged)]
    pub(super) enum ProvisionedValue {
        AccessToken(String),
        MqttBasic(ProvisionedMqttBasic),
    }

    #[derive(Serialize, Deserialize, ToSchema)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub(super) struct ProvisionedMqttBasic {
        client_id: Option<String>,
        user_name: String,
        password: String,
    }

    /// `GET /api/v1/{token}/attributes`: the scopes asked for, each a map of keys to values.
    #[derive(Serialize, Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub(super) struct DeviceAttributes {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client: Option<BTreeMap<String, serde_json::Value>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        shared: Option<BTreeMap<String, serde_json::Value>>,
    }

    /// `GET /api/v1/{token}/rpc`: one command for the device.
    #[derive(Serialize, Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub(super) struct DeviceCommand {
        /// Answer it at `POST /api/v1/{token}/rpc/{id}`.
        id: u32,
        method: String,
        params: serde_json::Value,
    }

    #[cfg(test)]
    mod tests {
        use stead_api_types::{CredentialsType, DeviceCredentials, MqttBasicCredentials};

        use super::ProvisionAnswer;
        use crate::provisioning::{Failed, answer};

        #[test]
        fn provisioning_answers_are_what_the_document_says() {
            let token = DeviceCredentials {
                credentials_type: CredentialsType::AccessToken,
                access_token: Some("t".into()),
                mqtt_basic: None,
                expires_at: None,
            };
            let basic = DeviceCredentials {
                credentials_type: CredentialsType::MqttBasic,
                access_token: None,
                mqtt_basic: Some(MqttBasicCredentials {
                    client_id: None,
                    username: "u".into(),
                    password: "p".into(),
                }),
                expires_at: None,
            };
            for outcome in [
                Ok(token),
                Ok(basic),
                Err(Failed::NotFound("x".into())),
                Err(Failed::Failure("x".into())),
                Err(Failed::Throttled {
                    retry_after_secs: 1,
                }),
            ] {
                let json = answer(outcome);
                serde_json::from_value::<ProvisionAnswer>(json.clone())
                    .unwrap_or_else(|e| panic!("{json}: {e}"));
            }
        }
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct PackageQuery {
    /// The target's title, as in the `fw_title` (`sw_title`) attribute.
    title: String,
    /// The target's version, as in `fw_version` (`sw_version`).
    version: String,
    /// Bytes per chunk; with `chunk`, the answer is bytes `[size·chunk, size·(chunk+1))`.
    size: Option<u64>,
    /// The chunk's index, from 0.
    chunk: Option<u64>,
}

#[utoipa::path(
    get,
    path = "/{token}/firmware",
    tag = "device-api",
    operation_id = "device_firmware",
    summary = "Device: download its target firmware, whole, by chunk or by Range",
    params(
        ("token" = String, Path, description = "The device's access token", min_length = 1),
        PackageQuery,
        ("Range" = Option<String>, Header, description = "`bytes=first-` to resume an interrupted download"),
    ),
    responses(
        (status = 200, description = "The image, or the chunk asked for (empty past the end)", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 206, description = "The range asked for", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 416, description = "The range lies past the end", body = ApiErrorBody),
        DeviceDenied,
        NotFound,
        BadQuery,
    ),
)]
async fn firmware(
    state: web::Data<AppState>,
    req: HttpRequest,
    token: web::Path<String>,
    q: web::Query<PackageQuery>,
) -> ApiResult<HttpResponse> {
    package(
        &state,
        &req,
        &token,
        stead_api_types::PackageKind::Firmware,
        &q,
    )
    .await
}

#[utoipa::path(
    get,
    path = "/{token}/software",
    tag = "device-api",
    operation_id = "device_software",
    summary = "Device: download its target software, whole, by chunk or by Range",
    params(
        ("token" = String, Path, description = "The device's access token", min_length = 1),
        PackageQuery,
        ("Range" = Option<String>, Header, description = "`bytes=first-` to resume an interrupted download"),
    ),
    responses(
        (status = 200, description = "The image, or the chunk asked for (empty past the end)", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 206, description = "The range asked for", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 416, description = "The range lies past the end", body = ApiErrorBody),
        DeviceDenied,
        NotFound,
        BadQuery,
    ),
)]
async fn software(
    state: web::Data<AppState>,
    req: HttpRequest,
    token: web::Path<String>,
    q: web::Query<PackageQuery>,
) -> ApiResult<HttpResponse> {
    package(
        &state,
        &req,
        &token,
        stead_api_types::PackageKind::Software,
        &q,
    )
    .await
}

/// The device's target package, if `title` and `version` name it: a chunk (`size` and `chunk`),
/// else the image (whole or the `Range` asked for).
async fn package(
    state: &AppState,
    req: &HttpRequest,
    token: &str,
    kind: stead_api_types::PackageKind,
    q: &PackageQuery,
) -> ApiResult<HttpResponse> {
    let device = identify(state, token).await?;
    let p = crate::ota::delivery::named_target(state, &device, kind, &q.title, &q.version)
        .await
        .map_err(|why| ApiError::new(StatusCode::NOT_FOUND, "not_found", why))?;
    if let (Some(size), Some(n)) = (q.size, q.chunk) {
        let total = p.size.max(0) as u64;
        let range = size
            .checked_mul(n)
            .filter(|start| size > 0 && *start < total)
            .map(|start| start..(start + size).min(total));
        let bytes = match range {
            Some(range) => crate::ota::delivery::read(state, device.tenant_id, &p, range)
                .await
                .map_err(|e| crate::error::Error::from(anyhow::anyhow!(e)))?,
            None => bytes::Bytes::new(),
        };
        return Ok(HttpResponse::Ok()
            .content_type("application/octet-stream")
            .body(bytes));
    }
    crate::ota::http::serve_image(state, req, device.tenant_id, &p).await
}
