//! Telemetry, presence, timeline, attributes and the live stream of one device, under
//! `/api/v1/devices/{id}`; and `/api/v1/connection-info`.

use std::collections::BTreeMap;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use stead_api_types::{
    AggregateSeries, ConnectionInfo, LatestTelemetry, LiveEvent, Presence, TelemetrySeries,
    TimelineEvent, TsValue,
};
use uuid::Uuid;

use super::repo::{self, Agg};
use crate::app::AppState;
use crate::auth::perm::DevicesRead;
use crate::http::openapi::{BadQuery, Denied, NotFound};
use crate::http::{ApiError, ApiResult, Authenticated, DeviceScope};
use crate::ids::DeviceId;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/devices/{id}/telemetry/latest", web::get().to(latest))
        .route(
            "/devices/{id}/telemetry/aggregate",
            web::get().to(aggregate),
        )
        .route("/devices/{id}/telemetry.csv", web::get().to(csv))
        .route("/devices/{id}/telemetry", web::get().to(series))
        .route("/devices/{id}/presence", web::get().to(presence))
        .route("/devices/{id}/timeline", web::get().to(timeline))
        .route("/devices/{id}/live", web::get().to(live))
        .route("/connection-info", web::get().to(connection_info));
}

const DAY_MS: i64 = 24 * 3600 * 1000;

fn bad(field: &'static str, detail: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", detail).with_field(field)
}

/// `keys=a,b`: trimmed, non-empty, at most 50.
fn parse_keys(keys: Option<&str>) -> ApiResult<Option<Vec<String>>> {
    let Some(keys) = keys else { return Ok(None) };
    let keys: Vec<String> = keys
        .split(',')
        .map(|k| k.trim().to_owned())
        .filter(|k| !k.is_empty())
        .collect();
    if keys.is_empty() {
        return Err(bad("keys", "`keys` names at least one key"));
    }
    if keys.len() > 50 {
        return Err(bad("keys", "at most 50 keys at once"));
    }
    Ok(Some(keys))
}

/// `[from, to)` in ms; defaults to the last 24 hours. Stored times are never negative, and
/// neither are the bounds: the arithmetic on them (here and in SQL) then cannot overflow.
fn range(from: Option<i64>, to: Option<i64>) -> ApiResult<(i64, i64)> {
    for (field, value) in [("from", from), ("to", to)] {
        if value.is_some_and(|v| v < 0) {
            return Err(bad(
                field,
                format!("`{field}` is milliseconds since the Unix epoch: 0 or more"),
            ));
        }
    }
    let to = to.unwrap_or_else(|| super::now_ms() + 1);
    let from = from.unwrap_or((to - DAY_MS).max(0));
    if from >= to {
        return Err(bad("from", "`from` must be before `to`"));
    }
    Ok((from, to))
}

/// The latest value per key. The live state only knows what arrived since it started (an
/// embedded restart empties it): the first read of a device on this process merges in what
/// storage knows, keeping whichever value is newer.
async fn latest_values(
    state: &AppState,
    ctx: &crate::auth::TenantCtx,
    device: DeviceId,
) -> ApiResult<LatestTelemetry> {
    if !state.telemetry.is_warm(device) {
        let stored = repo::latest_from_storage(&state.db, ctx, device).await?;
        let points: Vec<(i64, serde_json::Map<String, serde_json::Value>)> = stored
            .into_iter()
            .map(|(key, v)| (v.ts, std::iter::once((key, v.value)).collect()))
            .collect();
        let mut newest = crate::live::state::Newest::new();
        crate::live::state::merge_newest(
            &mut newest,
            points.iter().map(|(ts, m)| (device, *ts, m)),
        );
        state.live.update_latest(newest).await?;
        state.telemetry.mark_warm(device);
    }
    Ok(state.live.latest(device).await?)
}

/// The device, if the caller's tenant owns it (404 otherwise).
async fn device(
    state: &AppState,
    scope: &DeviceScope<DevicesRead>,
    id: Uuid,
) -> ApiResult<DeviceId> {
    crate::devices::repo::get(&state.db, &scope.ctx, DeviceId(id)).await?;
    Ok(DeviceId(id))
}

#[utoipa::path(
    get,
    path = "/devices/{id}/telemetry/latest",
    tag = "telemetry",
    operation_id = "latest_telemetry",
    summary = "Latest telemetry values (`devices.read` tenant-wide or over device groups)",
    params(("id" = Uuid, Path, description = "The device")),
    responses(
        (status = 200, description = "Each key's latest value", body = BTreeMap<String, TsValue>),
        Denied,
        NotFound,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn latest(
    state: web::Data<AppState>,
    scope: DeviceScope<DevicesRead>,
    id: web::Path<Uuid>,
) -> ApiResult<web::Json<LatestTelemetry>> {
    let device = device(&state, &scope, *id).await?;
    Ok(web::Json(latest_values(&state, &scope.ctx, device).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct SeriesQuery {
    /// Comma-separated keys (at most 50); all keys when absent.
    keys: Option<String>,
    /// From this time (ms since the epoch, inclusive); 24 hours before `to` by default.
    #[param(minimum = 0)]
    from: Option<i64>,
    /// To this time (ms, exclusive); now by default.
    #[param(minimum = 0)]
    to: Option<i64>,
    /// At most this many points (1 to 10000, default 1000).
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<u64>,
    /// `desc` (newest first, the default) or `asc`.
    #[param(pattern = "^(asc|desc)$")]
    order: Option<String>,
    /// The previous page's `next_cursor`: this page begins right after it.
    #[param(pattern = "^[0-9]+\\.[0-9]+$")]
    cursor: Option<String>,
}

#[utoipa::path(
    get,
    path = "/devices/{id}/telemetry",
    tag = "telemetry",
    operation_id = "telemetry_series",
    summary = "Telemetry points (`devices.read` tenant-wide or over device groups)",
    params(("id" = Uuid, Path, description = "The device"), SeriesQuery),
    responses(
        (status = 200, description = "Raw points per key; `next_cursor` when more exist", body = TelemetrySeries),
        Denied,
        NotFound,
        BadQuery,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn series(
    state: web::Data<AppState>,
    scope: DeviceScope<DevicesRead>,
    id: web::Path<Uuid>,
    q: web::Query<SeriesQuery>,
) -> ApiResult<web::Json<TelemetrySeries>> {
    let device = device(&state, &scope, *id).await?;
    let keys = parse_keys(q.keys.as_deref())?;
    let (from, to) = range(q.from, q.to)?;
    let limit = q.limit.unwrap_or(1000);
    if !(1..=10_000).contains(&limit) {
        return Err(bad("limit", "`limit` is between 1 and 10000"));
    }
    let ascending = match q.order.as_deref() {
        None | Some("desc") => false,
        Some("asc") => true,
        Some(_) => return Err(bad("order", "`order` is asc or desc")),
    };
    let after = match q.cursor.as_deref() {
        None => None,
        Some(c) => Some(repo::Position::decode(c).ok_or_else(|| {
            bad(
                "cursor",
                "`cursor` is a `next_cursor` from an earlier page (`<ms>.<n>`)",
            )
        })?),
    };
    let (rows, next) = repo::page(
        &state.db, &scope.ctx, device, from, to, after, limit, ascending,
    )
    .await?;
    let mut series: BTreeMap<String, Vec<TsValue>> = BTreeMap::new();
    for (ts, data) in rows {
        for (key, value) in data {
            if keys.as_ref().is_none_or(|keys| keys.contains(&key)) {
                series.entry(key).or_default().push(TsValue { ts, value });
            }
        }
    }
    let next_cursor = next.map(repo::Position::encode);
    Ok(web::Json(TelemetrySeries {
        series,
        next_cursor,
    }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct AggregateQuery {
    /// Comma-separated keys (at most 50).
    keys: String,
    /// From this time (ms since the epoch, inclusive); 24 hours before `to` by default.
    #[param(minimum = 0)]
    from: Option<i64>,
    /// To this time (ms, exclusive); now by default.
    #[param(minimum = 0)]
    to: Option<i64>,
    /// Bucket width in ms (at most 10000 buckets); the range / 200 by default.
    #[param(minimum = 1)]
    interval: Option<i64>,
    /// `avg` (the default), `min`, `max`, `sum` or `count`.
    #[param(pattern = "^(avg|min|max|sum|count)$")]
    agg: Option<String>,
}

#[utoipa::path(
    get,
    path = "/devices/{id}/telemetry/aggregate",
    tag = "telemetry",
    operation_id = "telemetry_aggregate",
    summary = "Aggregated telemetry (`devices.read` tenant-wide or over device groups)",
    params(("id" = Uuid, Path, description = "The device"), AggregateQuery),
    responses(
        (status = 200, description = "Aggregated buckets per key", body = AggregateSeries),
        Denied,
        NotFound,
        BadQuery,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn aggregate(
    state: web::Data<AppState>,
    scope: DeviceScope<DevicesRead>,
    id: web::Path<Uuid>,
    q: web::Query<AggregateQuery>,
) -> ApiResult<web::Json<AggregateSeries>> {
    let device = device(&state, &scope, *id).await?;
    let keys = parse_keys(Some(&q.keys))?.unwrap_or_default();
    let (from, to) = range(q.from, q.to)?;
    let interval = q.interval.unwrap_or(((to - from) / 200).max(1));
    if interval < 1 {
        return Err(bad(
            "interval",
            "`interval` is a positive number of milliseconds",
        ));
    }
    if (to - from) / interval > 10_000 {
        return Err(bad(
            "interval",
            "at most 10000 buckets: use a longer interval",
        ));
    }
    let agg_name = q.agg.clone().unwrap_or_else(|| "avg".into());
    let agg =
        Agg::parse(&agg_name).ok_or_else(|| bad("agg", "`agg` is avg, min, max, sum or count"))?;
    let mut series = BTreeMap::new();
    for key in keys {
        let points =
            repo::aggregate(&state.db, &scope.ctx, device, &key, from, to, interval, agg).await?;
        series.insert(key, points);
    }
    Ok(web::Json(AggregateSeries {
        interval_ms: interval,
        agg: agg_name,
        series,
    }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct CsvQuery {
    /// Comma-separated keys (at most 50); the keys with a latest value when absent.
    keys: Option<String>,
    /// From this time (ms since the epoch, inclusive); 24 hours before `to` by default.
    #[param(minimum = 0)]
    from: Option<i64>,
    /// To this time (ms, exclusive); now by default.
    #[param(minimum = 0)]
    to: Option<i64>,
}

fn csv_field(value: Option<&serde_json::Value>) -> String {
    let text = match value {
        None => return String::new(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// Points per page of a CSV export.
const CSV_PAGE: u64 = 5000;

/// The range as CSV (`ts,time,<keys…>`), streamed page by page: never built in memory.
#[utoipa::path(
    get,
    path = "/devices/{id}/telemetry.csv",
    tag = "telemetry",
    operation_id = "telemetry_csv",
    summary = "Export telemetry as CSV (`devices.read` tenant-wide or over device groups)",
    description = "The range as CSV (`ts,time,<keys…>`), streamed page by page: never built in memory.",
    params(("id" = Uuid, Path, description = "The device"), CsvQuery),
    responses(
        (status = 200, description = "The range as CSV (`ts,time,<keys…>`), streamed", body = String, content_type = "text/csv"),
        Denied,
        NotFound,
        BadQuery,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn csv(
    state: web::Data<AppState>,
    scope: DeviceScope<DevicesRead>,
    id: web::Path<Uuid>,
    q: web::Query<CsvQuery>,
) -> ApiResult<HttpResponse> {
    let device = device(&state, &scope, *id).await?;
    let (from, to) = range(q.from, q.to)?;
    let keys = match parse_keys(q.keys.as_deref())? {
        Some(keys) => keys,
        None => latest_values(&state, &scope.ctx, device)
            .await?
            .into_keys()
            .collect(),
    };
    let header = format!(
        "ts,time,{}\n",
        keys.iter()
            .map(|k| csv_field(Some(&serde_json::Value::String(k.clone()))))
            .collect::<Vec<_>>()
            .join(",")
    );
    let db = state.db.clone();
    let ctx = scope.ctx;
    // Each page goes on from the last point of the one before (`repo::Position`). A failure
    // midway ends the response with an error, not a clean end: the client sees the transfer
    // break instead of a short file that looks complete.
    let start = (None, Some(header));
    let stream = futures_util::stream::unfold(Some(start), move |state| {
        let db = db.clone();
        let keys = keys.clone();
        let ctx = ctx.clone();
        async move {
            let (after, header) = state?;
            if let Some(header) = header {
                return Some((
                    Ok::<_, actix_web::Error>(web::Bytes::from(header)),
                    Some((after, None)),
                ));
            }
            let (rows, next) = match repo::page(&db, &ctx, device, from, to, after, CSV_PAGE, true)
                .await
            {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(error = %e, %device, "CSV export failed midway; the response is cut off");
                    return Some((
                        Err(actix_web::error::ErrorServiceUnavailable(
                            "the export failed midway",
                        )),
                        None,
                    ));
                }
            };
            if rows.is_empty() {
                return None;
            }
            let mut chunk = String::new();
            for (ts, data) in &rows {
                if !keys.iter().any(|k| data.contains_key(k)) {
                    continue;
                }
                let time = chrono::DateTime::from_timestamp_millis(*ts)
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_default();
                chunk.push_str(&format!("{ts},{time}"));
                for key in &keys {
                    chunk.push(',');
                    chunk.push_str(&csv_field(data.get(key)));
                }
                chunk.push('\n');
            }
            let state = next.map(|n| (Some(n), None));
            Some((Ok(web::Bytes::from(chunk)), state))
        }
    });
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"telemetry-{device}.csv\""),
        ))
        .streaming(stream))
}

#[utoipa::path(
    get,
    path = "/devices/{id}/presence",
    tag = "telemetry",
    operation_id = "presence",
    summary = "A device's presence (`devices.read` tenant-wide or over device groups)",
    params(("id" = Uuid, Path, description = "The device")),
    responses(
        (status = 200, description = "Whether the device is online, and since when", body = Presence),
        Denied,
        NotFound,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn presence(
    state: web::Data<AppState>,
    scope: DeviceScope<DevicesRead>,
    id: web::Path<Uuid>,
) -> ApiResult<web::Json<Presence>> {
    let device = device(&state, &scope, *id).await?;
    Ok(web::Json(state.live.presence(device).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct TimelineQuery {
    /// At most this many events (1 to 1000, default 100), newest first.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u64>,
}

#[utoipa::path(
    get,
    path = "/devices/{id}/timeline",
    tag = "telemetry",
    operation_id = "timeline",
    summary = "A device's timeline (`devices.read` tenant-wide or over device groups)",
    params(("id" = Uuid, Path, description = "The device"), TimelineQuery),
    responses(
        (status = 200, description = "The device's timeline, newest first", body = Vec<TimelineEvent>),
        Denied,
        NotFound,
        BadQuery,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn timeline(
    state: web::Data<AppState>,
    scope: DeviceScope<DevicesRead>,
    id: web::Path<Uuid>,
    q: web::Query<TimelineQuery>,
) -> ApiResult<web::Json<Vec<TimelineEvent>>> {
    let device = device(&state, &scope, *id).await?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(bad("limit", "`limit` is between 1 and 1000"));
    }
    Ok(web::Json(
        crate::timeline::list(&state.db, &scope.ctx, device, limit).await?,
    ))
}

fn sse(event: &LiveEvent) -> web::Bytes {
    let name = match event {
        LiveEvent::Telemetry { .. } => "telemetry",
        LiveEvent::Presence(_) => "presence",
    };
    let data = serde_json::to_string(event).unwrap_or_default();
    web::Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

/// Server-sent events for one device: its presence first, then every change as it happens.
/// Every `STEAD_LIVE_RECHECK_SECS` the viewer's access is read again; when they may no longer
/// see the device (deactivated, session ended, key revoked, binding or group changed, tenant
/// suspended) the stream says so in an `ended` event and closes.
#[utoipa::path(
    get,
    path = "/devices/{id}/live",
    tag = "telemetry",
    operation_id = "live",
    summary = "A device's live stream (server-sent events) (`devices.read` tenant-wide or over device groups)",
    description = "Server-sent events for one device: its presence first, then every change as it happens. Every `STEAD_LIVE_RECHECK_SECS` the viewer's access is read again; when they may no longer see the device (deactivated, session ended, key revoked, binding or group changed, tenant suspended) the stream says so in an `ended` event and closes.",
    params(("id" = Uuid, Path, description = "The device")),
    responses(
        (status = 200, description = "Server-sent events: `presence` first, then `telemetry` and `presence` as they happen (`data:` is a `LiveEvent`), `ended` when the viewer loses access", body = String, content_type = "text/event-stream"),
        Denied,
        NotFound,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn live(
    state: web::Data<AppState>,
    scope: DeviceScope<DevicesRead>,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let device = device(&state, &scope, *id).await?;
    let rx = state.bus.subscribe();
    let guard = state.bus.watch(device).await;
    let first = sse(&LiveEvent::Presence(state.live.presence(device).await?));
    // The stream ends when the node shuts down (the browser reconnects, to another node).
    let closing = Box::pin(state.bus.closing());
    let mut recheck = tokio::time::interval(Duration::from_secs(state.config.live_recheck_secs));
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    recheck.reset();
    let watcher = Watcher {
        state: state.clone(),
        actor: scope.actor,
        device,
        recheck,
    };
    let stream = futures_util::stream::unfold(
        (rx, guard, Some(first), closing, Some(watcher)),
        move |(mut rx, guard, first, mut closing, watcher)| async move {
            if let Some(first) = first {
                return Some((
                    Ok::<_, actix_web::Error>(first),
                    (rx, guard, None, closing, watcher),
                ));
            }
            let mut watcher = watcher?;
            loop {
                let next = tokio::select! {
                    _ = &mut closing => return None,
                    _ = watcher.recheck.tick() => {
                        match watcher.still_allowed().await {
                            Ok(()) => continue,
                            Err(reason) => {
                                let body = serde_json::json!({"reason": reason}).to_string();
                                let ended = web::Bytes::from(format!("event: ended\ndata: {body}\n\n"));
                                return Some((Ok(ended), (rx, guard, None, closing, None)));
                            }
                        }
                    }
                    next = tokio::time::timeout(Duration::from_secs(15), rx.recv()) => next,
                };
                match next {
                    // A comment line keeps proxies from closing an idle stream.
                    Err(_) => {
                        return Some((
                            Ok(web::Bytes::from_static(b": keep-alive\n\n")),
                            (rx, guard, None, closing, Some(watcher)),
                        ));
                    }
                    Ok(Ok(item)) if item.0 == device => {
                        return Some((Ok(sse(&item.1)), (rx, guard, None, closing, Some(watcher))));
                    }
                    Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {
                        continue;
                    }
                    Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => return None,
                }
            }
        },
    );
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(stream))
}

/// What a live view re-checks about its viewer.
struct Watcher {
    state: web::Data<AppState>,
    actor: crate::auth::Actor,
    device: DeviceId,
    recheck: tokio::time::Interval,
}

impl Watcher {
    /// `Err` with a reason for the viewer when they may no longer see the device.
    async fn still_allowed(&self) -> Result<(), String> {
        let actor = match crate::auth::service::recheck(&self.state, &self.actor).await {
            Ok(actor) => actor,
            Err(crate::error::Error::Unauthenticated { code, .. })
            | Err(crate::error::Error::Forbidden { code, .. }) => return Err(code.to_owned()),
            // An outage is not a revocation: the view goes on and asks again.
            Err(e) => {
                tracing::warn!(error = %e, "re-checking a live view's access failed");
                return Ok(());
            }
        };
        let (Some(tenant), Some(reach)) = (
            actor.tenant_id,
            actor.access.reach(crate::auth::Permission::DevicesRead),
        ) else {
            return Err("permission_denied".to_owned());
        };
        let ctx = crate::auth::TenantCtx::reaching(tenant, reach);
        match crate::devices::repo::get(&self.state.db, &ctx, self.device).await {
            Ok(_) => Ok(()),
            Err(crate::error::Error::NotFound(_)) => Err("device_out_of_reach".to_owned()),
            Err(e) => {
                tracing::warn!(error = %e, "re-checking a live view's access failed");
                Ok(())
            }
        }
    }
}

#[utoipa::path(
    get,
    path = "/connection-info",
    tag = "telemetry",
    operation_id = "connection_info",
    summary = "Where devices connect",
    responses(
        (status = 200, description = "Where devices connect over MQTT", body = ConnectionInfo),
        Denied,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn connection_info(
    state: web::Data<AppState>,
    _auth: Authenticated,
) -> web::Json<ConnectionInfo> {
    let addr = state.config.mqtt_addr;
    let host =
        (!addr.ip().is_unspecified() && !addr.ip().is_loopback()).then(|| addr.ip().to_string());
    web::Json(ConnectionInfo {
        mqtt_host: state.config.mqtt_public_host.clone().or(host),
        mqtt_port: state.config.mqtt_public_port.unwrap_or(addr.port()),
    })
}
