//! The fleet at a glance, for the console's home page: devices online, acknowledged messages per
//! minute, active alarms, the busiest devices, credentials about to expire and refused connects.
//!
//! Messages per minute and the busiest devices are counted as batches commit (in memory, off the
//! PUBACK path) and added to shared counters in the live store every two seconds, so every node's
//! traffic is in them and the page never scans the telemetry table.

pub mod http;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::ids::{DeviceId, TenantId};
use crate::live::LiveStore;

/// How long per-minute counts are kept (the page shows up to 24 h).
const KEEP: Duration = Duration::from_secs(25 * 3600);
/// The busiest devices are counted per bucket of this many minutes.
pub const BUCKET_MINUTES: i64 = 10;

pub fn minute_key(tenant: TenantId, minute: i64) -> String {
    format!("fleet:msgs:{}:{minute}", tenant.0)
}

pub fn busy_key(tenant: TenantId, bucket: i64) -> String {
    format!("fleet:busy:{}:{bucket}", tenant.0)
}

#[derive(Default)]
struct Pending {
    minutes: HashMap<(TenantId, i64), u64>,
    devices: HashMap<(TenantId, i64, DeviceId), u64>,
}

/// Counts committed messages per tenant and minute, and per device and bucket.
#[derive(Clone, Default)]
pub struct Activity {
    pending: Arc<Mutex<Pending>>,
}

impl Activity {
    pub fn start(live: LiveStore) -> Activity {
        let activity = Activity::default();
        let pending = activity.pending.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(2)).await;
                let taken = std::mem::take(&mut *pending.lock().unwrap_or_else(|e| e.into_inner()));
                if taken.minutes.is_empty() {
                    continue;
                }
                let counters: Vec<(String, u64)> = taken
                    .minutes
                    .into_iter()
                    .map(|((t, m), n)| (minute_key(t, m), n))
                    .collect();
                let scores: Vec<(String, String, u64)> = taken
                    .devices
                    .into_iter()
                    .map(|((t, b, d), n)| (busy_key(t, b), d.0.to_string(), n))
                    .collect();
                if let Err(e) = live.add_many(&counters, &scores, KEEP).await {
                    tracing::debug!(error = %e, "adding fleet activity counts failed");
                }
            }
        });
        activity
    }

    /// Takes a committed batch (device, its tenant, the message's arrival minute: now).
    pub fn add(&self, rows: &[crate::telemetry::Row]) {
        let minute = chrono::Utc::now().timestamp() / 60;
        let bucket = minute / BUCKET_MINUTES;
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        for r in rows {
            *p.minutes.entry((r.tenant_id, minute)).or_default() += 1;
            *p.devices
                .entry((r.tenant_id, bucket, r.device_id))
                .or_default() += 1;
        }
    }
}
