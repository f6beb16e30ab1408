//! Serving a device its target package: chunks over MQTT (`v2/fw/request/{req}/chunk/{n}`,
//! ThingsBoard's protocol) and the image over the HTTP device API, read from the blob store by
//! byte range (never whole). A node's delivery bandwidth is bounded (`STEAD_OTA_BYTES_PER_SEC`):
//! past it, answers wait, so a thousand devices updating at once slow down instead of starving
//! the node's telemetry.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt as _;
use stead_api_types::{OtaState, PackageKind};

use super::model::package;
use super::repo;
use crate::app::AppState;
use crate::auth::TenantCtx;
use crate::blobs::Blobs;
use crate::devices::repo::DeviceIdentity;

/// A token bucket of bytes per second, shared by every delivery of the node; a burst of one
/// second's worth.
pub struct Bandwidth {
    per_sec: u64,
    /// Bytes available, and when that was.
    bucket: Mutex<(f64, Instant)>,
}

impl Bandwidth {
    pub fn new(per_sec: u64) -> Bandwidth {
        Bandwidth {
            per_sec: per_sec.max(1),
            bucket: Mutex::new((per_sec as f64, Instant::now())),
        }
    }

    /// Waits until `n` bytes may go out.
    pub async fn take(&self, n: u64) {
        let wait = self.reserve(n, Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Takes `n` bytes from the bucket at `now`; answers how long to wait before sending them.
    /// Debt is allowed: a chunk larger than a second's worth still goes, later.
    fn reserve(&self, n: u64, now: Instant) -> Duration {
        let mut b = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        let rate = self.per_sec as f64;
        let available = (b.0 + now.saturating_duration_since(b.1).as_secs_f64() * rate).min(rate);
        let left = available - n as f64;
        *b = (left, now);
        if left >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-left / rate)
        }
    }
}

/// The device's target of `kind`, with its package.
async fn target_package(
    state: &AppState,
    device: &DeviceIdentity,
    kind: PackageKind,
) -> Result<package::Model, String> {
    let ctx = TenantCtx::new(device.tenant_id);
    match repo::target(&state.db, &ctx, device.device_id, kind).await {
        Ok(Some((t, _)))
            if t.state == OtaState::Canceled.as_str()
                || (t.state == OtaState::Failed.as_str()
                    && t.attempts >= state.config.ota_max_attempts as i32) =>
        {
            Err(format!(
                "the {} update was withdrawn ({})",
                kind.as_str(),
                t.reason.unwrap_or_else(|| t.state.clone())
            ))
        }
        Ok(Some((_, p))) => Ok(p),
        Ok(None) => Err(format!(
            "no {} package is assigned to this device",
            kind.as_str()
        )),
        Err(e) => Err(format!("the target could not be read: {e}")),
    }
}

/// Bytes `range` of the package's image, read from the blob store.
pub async fn read(
    state: &AppState,
    tenant: crate::ids::TenantId,
    p: &package::Model,
    range: std::ops::Range<u64>,
) -> Result<Bytes, String> {
    state.ota_bandwidth.take(range.end - range.start).await;
    let mut stream = state
        .blobs
        .get(&Blobs::key_of(tenant, &p.sha256), Some(range.clone()))
        .await
        .map_err(|e| format!("the image could not be read: {e}"))?;
    let mut out = BytesMut::with_capacity((range.end - range.start) as usize);
    while let Some(part) = stream.next().await {
        out.extend_from_slice(&part.map_err(|e| format!("the image could not be read: {e}"))?);
    }
    Ok(out.freeze())
}

/// Chunk `n` of `size` bytes (`None`: the whole image) of the device's target of `kind`: the
/// raw slice `[size·n, size·(n+1))`, empty past the end. A chunk larger than the largest message
/// the node sends (`max`) is refused: cutting it shorter would shift every later chunk.
pub async fn chunk(
    state: &AppState,
    device: &DeviceIdentity,
    kind: PackageKind,
    size: Option<u64>,
    n: u32,
    max: u64,
) -> Result<Bytes, String> {
    let p = target_package(state, device, kind).await?;
    let total = p.size.max(0) as u64;
    let size = size.filter(|s| *s > 0).unwrap_or(total);
    if size > max {
        return Err(format!(
            "a chunk of {size} bytes is larger than the largest message ({max} bytes): ask for chunks of at most {max} bytes"
        ));
    }
    let Some(start) = size.checked_mul(u64::from(n)).filter(|s| *s < total) else {
        return Ok(Bytes::new());
    };
    let end = (start + size).min(total);
    read(state, device.tenant_id, &p, start..end).await
}

/// The package the HTTP device API names (`?title=&version=`), if it is the device's target.
pub async fn named_target(
    state: &AppState,
    device: &DeviceIdentity,
    kind: PackageKind,
    title: &str,
    version: &str,
) -> Result<package::Model, String> {
    let p = target_package(state, device, kind).await?;
    if p.title != title || p.version != version {
        return Err(format!(
            "{title} {version} is not this device's target ({} {})",
            p.title, p.version
        ));
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bandwidth_is_bounded() {
        let b = Bandwidth::new(1_000);
        let t0 = Instant::now();
        assert_eq!(
            b.reserve(1_000, t0),
            Duration::ZERO,
            "a second's worth at once"
        );
        assert_eq!(b.reserve(500, t0), Duration::from_millis(500));
        // Half a second later the bucket has refilled what the last one owed.
        assert_eq!(
            b.reserve(500, t0 + Duration::from_millis(500)),
            Duration::from_millis(500)
        );
        assert_eq!(
            b.reserve(0, t0 + Duration::from_secs(5)),
            Duration::ZERO,
            "refills, up to a second's worth"
        );
    }
}
