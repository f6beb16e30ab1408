//! What a device sends, whatever the transport (MQTT or the HTTP device API): decoding into rows
//! and attribute values, and the refusals with their reasons. The transports map a `Rejection` to
//! their own answer (an MQTT 5 reason code, an HTTP status) once.

use crate::config::Config;
use crate::devices::repo::DeviceIdentity;
use crate::telemetry::{Row, decode};

/// Why a device message was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// Invalid JSON, a value of the wrong shape, or too large (MQTT 5: 0x99; HTTP 400/413).
    Payload(String),
    /// Not a topic a device may publish to (MQTT 5: 0x90).
    Topic(String),
    /// Over a rate limit (MQTT 5: 0x97; HTTP 429).
    RateLimited(String),
    /// Over the tenant's daily quota of data points (MQTT 5: 0x97; HTTP 409 `quota_exceeded`).
    QuotaExceeded(String),
    /// Recognised but not available (MQTT 5: 0x83; HTTP 501).
    NotSupported(String),
    /// Not this device's to do: a gateway naming a device that is not behind it, or a disabled
    /// device behind a gateway (MQTT 5: 0x87; HTTP 403).
    NotAuthorized(String),
    /// Refused for some of the devices behind a gateway, for the reason inside (recorded on
    /// their timelines); the parts for the others were handled. Neither the gateway nor its
    /// other devices are to blame: MQTT 5 answers the reason code inside, and MQTT 3.1.1, which
    /// cannot refuse part of a message, acknowledges it and keeps the connection.
    SubDevices(Box<Rejection>),
    /// Storage failed; nothing was stored (MQTT 5: 0x80, 3.1.1 closes the connection so the
    /// client resends; HTTP 503).
    Unavailable(String),
}

impl Rejection {
    pub fn detail(&self) -> &str {
        match self {
            Rejection::Payload(d)
            | Rejection::Topic(d)
            | Rejection::RateLimited(d)
            | Rejection::QuotaExceeded(d)
            | Rejection::NotSupported(d)
            | Rejection::NotAuthorized(d)
            | Rejection::Unavailable(d) => d,
            Rejection::SubDevices(inner) => inner.detail(),
        }
    }

    /// The refusal itself, unwrapped from `SubDevices`.
    pub fn root(&self) -> &Rejection {
        match self {
            Rejection::SubDevices(inner) => inner.root(),
            other => other,
        }
    }

    /// A stable name, for metrics and the timeline.
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::Payload(_) => "invalid_payload",
            Rejection::Topic(_) => "unknown_topic",
            Rejection::RateLimited(_) => "rate_limited",
            Rejection::QuotaExceeded(_) => "quota_exceeded",
            Rejection::NotSupported(_) => "not_supported",
            Rejection::NotAuthorized(_) => "not_authorized",
            Rejection::Unavailable(_) => "storage_unavailable",
            Rejection::SubDevices(inner) => inner.reason(),
        }
    }
}

pub fn check_size(len: usize, max: usize) -> Result<(), Rejection> {
    if len > max {
        return Err(Rejection::Payload(format!(
            "the payload has {len} bytes; the limit is {max}"
        )));
    }
    Ok(())
}

/// Telemetry rows of `device` from a payload in any of the three forms; answers the rows and the
/// number of data points (for the rate limits).
pub fn telemetry_rows(
    cfg: &Config,
    device: &DeviceIdentity,
    payload: &[u8],
    now: i64,
) -> Result<(Vec<Row>, u64), Rejection> {
    let points = decode::telemetry(payload, now).map_err(|e| Rejection::Payload(e.to_string()))?;
    rows_of(cfg, device, points, now)
}

const DAY_MS: i64 = 86_400_000;

/// Decoded points as rows of `device`, with the number of data points (for the rate limits).
/// A point stamped further ahead of the server's clock than `STEAD_TELEMETRY_MAX_FUTURE_SECS`
/// (a device whose clock is wrong) is refused, and the whole message with it: stored, it would
/// sit beyond every partition made so far (PostgreSQL) and hide from every recent query. So is a
/// point older than the tenant's retention, which would be deleted at the next pass.
pub fn rows_of(
    cfg: &Config,
    device: &DeviceIdentity,
    points: Vec<decode::Point>,
    now: i64,
) -> Result<(Vec<Row>, u64), Rejection> {
    let latest = now.saturating_add(cfg.telemetry_max_future_secs.saturating_mul(1000) as i64);
    let retention_days = device
        .telemetry_retention_days
        .map_or(i64::from(cfg.telemetry_retention_days), i64::from);
    let earliest = now.saturating_sub(retention_days.saturating_mul(DAY_MS));
    for p in &points {
        if p.ts > latest {
            return Err(Rejection::Payload(format!(
                "`ts` {} ({}) is {} s ahead of the server's clock; at most {} s ahead is accepted \
                 (is the device's clock set?)",
                p.ts,
                time_of(p.ts),
                (p.ts - now) / 1000,
                cfg.telemetry_max_future_secs
            )));
        }
        if p.ts < earliest {
            return Err(Rejection::Payload(format!(
                "`ts` {} ({}) is older than the telemetry retention of {retention_days} days: \
                 it would be deleted at once (is the device's clock set?)",
                p.ts,
                time_of(p.ts)
            )));
        }
    }
    let values: usize = points.iter().map(|p| p.values.len()).sum();
    let rows = points
        .into_iter()
        .map(|p| Row {
            tenant_id: device.tenant_id,
            device_id: device.device_id,
            ts: p.ts,
            values: p.values,
        })
        .collect();
    Ok((rows, values as u64))
}

fn time_of(ts: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ts)
        .map_or_else(|| "out of range".into(), |t| t.to_rfc3339())
}

pub fn attributes(payload: &[u8]) -> Result<serde_json::Map<String, serde_json::Value>, Rejection> {
    decode::attributes(payload).map_err(|e| Rejection::Payload(e.to_string()))
}
