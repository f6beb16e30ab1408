//! `GET /api/v1/fleet/health` (`devices.read`, tenant-wide or over device groups).

use actix_web::web;
use stead_api_types::{
    BusyDevice, ExpiringCredentials, FleetHealth, FleetHealthQuery, MinuteCount, RefusedConnect,
};
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::perm::DevicesRead;
use crate::error::Error;
use crate::http::openapi::{BadQuery, Denied};
use crate::http::{ApiResult, DeviceScope};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/fleet/health", web::get().to(health));
}

#[utoipa::path(
    get,
    path = "/fleet/health",
    tag = "devices",
    operation_id = "fleet_health",
    summary = "The fleet at a glance (`devices.read`)",
    description = "Devices online and offline, acknowledged messages per minute (the tenant's, whatever the caller reaches), active alarms by severity, the busiest devices of the last minutes, credentials expiring within 7 days and the latest refused connects. Lists hold only the devices the caller reaches.",
    params(FleetHealthQuery),
    responses(
        (status = 200, description = "The fleet at a glance", body = FleetHealth),
        Denied,
        BadQuery,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn health(
    state: web::Data<AppState>,
    scope: DeviceScope<DevicesRead>,
    query: web::Query<FleetHealthQuery>,
) -> ApiResult<web::Json<FleetHealth>> {
    let hours = query.hours.unwrap_or(3);
    if !(1..=24).contains(&hours) {
        return Err(Error::invalid("invalid_query", "hours", "between 1 and 24 hours").into());
    }
    let ctx = &scope.ctx;
    let tenant = ctx.tenant_id();
    let (devices, online) = crate::devices::repo::count_online(&state.db, ctx).await?;

    let now_minute = chrono::Utc::now().timestamp() / 60;
    let minutes: Vec<i64> = (now_minute - i64::from(hours) * 60 + 1..=now_minute).collect();
    let keys: Vec<String> = minutes
        .iter()
        .map(|m| super::minute_key(tenant, *m))
        .collect();
    let counts = state.live.counts(&keys).await?;
    let messages_per_minute = minutes
        .into_iter()
        .zip(counts)
        .map(|(m, messages)| MinuteCount {
            minute: m * 60_000,
            messages,
        })
        .collect();

    let bucket = now_minute / super::BUCKET_MINUTES;
    let busy = state
        .live
        .top_scores(
            &[
                super::busy_key(tenant, bucket),
                super::busy_key(tenant, bucket - 1),
            ],
            50,
        )
        .await?;
    let busy: Vec<(Uuid, u64)> = busy
        .into_iter()
        .filter_map(|(d, n)| Uuid::parse_str(&d).ok().map(|d| (d, n)))
        .collect();
    let ids: Vec<Uuid> = busy.iter().map(|(d, _)| *d).collect();
    let names = crate::devices::repo::names_of(&state.db, ctx, &ids).await?;
    let noisiest = busy
        .into_iter()
        .filter_map(|(d, messages)| {
            names.get(&d).map(|name| BusyDevice {
                device_id: d,
                name: name.clone(),
                messages,
            })
        })
        .take(5)
        .collect();

    let expiring = crate::devices::repo::expiring(&state.db, ctx, 7)
        .await?
        .into_iter()
        .take(10)
        .filter_map(|d| {
            Some(ExpiringCredentials {
                device_id: d.id,
                expires_at: chrono::DateTime::from_timestamp_millis(d.credentials_expire_at?)?,
                name: d.name,
            })
        })
        .collect();

    let refused = crate::timeline::latest_of_kind(
        &state.db,
        ctx,
        crate::timeline::EventKind::ConnectRefused,
        50,
    )
    .await?;
    let ids: Vec<Uuid> = refused.iter().map(|(d, _)| *d).collect();
    let names = crate::devices::repo::names_of(&state.db, ctx, &ids).await?;
    let refused_connects = refused
        .into_iter()
        .filter_map(|(d, e)| {
            names.get(&d).map(|name| RefusedConnect {
                device_id: d,
                name: name.clone(),
                ts: e.ts,
                detail: e.detail,
            })
        })
        .take(10)
        .collect();

    Ok(web::Json(FleetHealth {
        devices,
        online,
        offline: devices.saturating_sub(online),
        messages_per_minute,
        alarms: crate::alarms::repo::counts(&state.db, ctx, None, None).await?,
        noisiest,
        expiring,
        refused_connects,
    }))
}
