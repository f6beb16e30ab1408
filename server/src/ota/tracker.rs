//! Where each device's update stands, from what the device reports: the `fw_state` (`sw_state`)
//! telemetry of ThingsBoard's SDKs (`DOWNLOADING`, `DOWNLOADED`, `VERIFIED`, `UPDATING`,
//! `UPDATED`, `FAILED` with `fw_error`). Committed rows that carry a state reach the tracker off
//! the PUBACK path (the telemetry commit hook, like the alarm engine); each step moves the
//! device's target with a conditional update and goes on the device's timeline.
//!
//! Two guards: a device that fails `STEAD_OTA_MAX_ATTEMPTS` times (SDK 1.x asks again at once
//! after a checksum failure) has its target's attributes removed, so that its SDK stops instead
//! of downloading forever; and the worker's sweep marks `TIMED_OUT` a device that stays in one
//! step longer than `STEAD_OTA_STEP_TIMEOUT_SECS`.

use std::time::Duration;

use chrono::Utc;
use stead_api_types::{AttributeScope, OtaState, PackageKind};
use tokio::sync::mpsc;

use super::model::{package, target};
use super::repo;
use crate::app::AppState;
use crate::auth::{System, TenantCtx};
use crate::error::Result;
use crate::ids::{DeviceId, TenantId};
use crate::telemetry::Row;

/// Reports queued for the tracker; past this, reports are dropped (the next one carries on).
const QUEUE: usize = 10_000;

/// One report: a device's state of one kind, with what came with it.
#[derive(Debug, Clone)]
pub struct Report {
    tenant: TenantId,
    device: DeviceId,
    kind: PackageKind,
    state: String,
    error: Option<String>,
    title: Option<String>,
    version: Option<String>,
}

#[derive(Clone)]
pub struct Tracker {
    tx: mpsc::Sender<Report>,
}

impl Tracker {
    /// A tracker whose reports wait for `run` (which needs the whole application state).
    pub fn new() -> (Tracker, mpsc::Receiver<Report>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (Tracker { tx }, rx)
    }

    /// From a committed batch: the rows that report an update's state. Never waits.
    pub fn add(&self, rows: &[Row]) {
        for row in rows {
            for (key, kind) in [
                ("fw_state", PackageKind::Firmware),
                ("sw_state", PackageKind::Software),
            ] {
                // The common case, a row without a state, costs two map lookups.
                let Some(state) = row.values.get(key).and_then(|v| v.as_str()) else {
                    continue;
                };
                let x = kind.prefix();
                let text = |k: &str| {
                    row.values
                        .get(k)
                        .and_then(|v| v.as_str())
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                };
                let _ = self.tx.try_send(Report {
                    tenant: row.tenant_id,
                    device: row.device_id,
                    kind,
                    state: state.to_owned(),
                    error: text(&format!("{x}_error")),
                    title: text(&format!("current_{x}_title")),
                    version: text(&format!("current_{x}_version")),
                });
            }
        }
    }
}

/// Works through the reports, in order.
pub async fn run(state: AppState, mut rx: mpsc::Receiver<Report>) {
    while let Some(report) = rx.recv().await {
        if let Err(e) = apply(&state, report).await {
            tracing::warn!(error = %e, "recording an update's progress failed");
        }
    }
}

async fn apply(state: &AppState, r: Report) -> Result<()> {
    let ctx = TenantCtx::new(r.tenant);
    // The platform's clock: step time-outs are measured against it, whatever the device's says.
    let at = Utc::now();
    // What it runs, whatever the state (IDLE included): the fleet's version distribution.
    if let (Some(title), Some(version)) = (&r.title, &r.version) {
        repo::note_version(&state.db, &ctx, r.device, r.kind, title, version, at).await?;
    }
    let reported = match r.state.as_str() {
        "DOWNLOADING" => OtaState::Downloading,
        "DOWNLOADED" => OtaState::Downloaded,
        "VERIFIED" => OtaState::Verified,
        "UPDATING" => OtaState::Updating,
        "UPDATED" => OtaState::Updated,
        "FAILED" => OtaState::Failed,
        // IDLE and anything else: nothing under way.
        _ => return Ok(()),
    };
    let Some((t, p)) = repo::target(&state.db, &ctx, r.device, r.kind).await? else {
        return Ok(());
    };
    let current = OtaState::parse(&t.state).unwrap_or(OtaState::Notified);
    let max = state.config.ota_max_attempts as i32;
    // A target given up on, removed or already done stays so.
    if matches!(
        current,
        OtaState::Canceled | OtaState::Skipped | OtaState::RolledBack
    ) || (current == OtaState::Failed && t.attempts >= max)
        || (current == OtaState::Updated && reported != OtaState::Updated)
        // A repeated step changes nothing; a repeated failure is another attempt.
        || (current == reported && reported != OtaState::Failed)
    {
        return Ok(());
    }
    let (next, reason, attempts) = match reported {
        OtaState::Updated
            if r.title.as_deref() != Some(p.title.as_str())
                || r.version.as_deref() != Some(p.version.as_str()) =>
        {
            (
                OtaState::Failed,
                Some(format!(
                    "reported UPDATED but runs {} {}",
                    r.title.as_deref().unwrap_or("?"),
                    r.version.as_deref().unwrap_or("?")
                )),
                t.attempts + 1,
            )
        }
        OtaState::Failed => (
            OtaState::Failed,
            Some(
                r.error
                    .clone()
                    .unwrap_or_else(|| "the device reported FAILED".into()),
            ),
            t.attempts + 1,
        ),
        other => (other, None, t.attempts),
    };
    if !repo::move_target(&state.db, &ctx, &t, next, reason.clone(), attempts, at).await? {
        return Ok(());
    }
    if let Err(e) = crate::campaigns::engine::follow_report(state, &ctx, r.device, p.id, next).await
    {
        tracing::warn!(error = %e, "recording a step in the device's campaign failed");
    }
    let mut detail = format!(
        "{} {} {}: {}",
        r.kind.as_str(),
        p.title,
        p.version,
        next.as_str()
    );
    if let Some(reason) = &reason {
        detail.push_str(&format!(" ({reason})"));
    }
    if next == OtaState::Failed && attempts >= max {
        give_up(state, &ctx, &t).await?;
        detail.push_str(&format!(
            "; failed {attempts} times, the target is withdrawn so that the device stops trying"
        ));
    }
    state.timeline.record_for(
        r.tenant,
        r.device,
        crate::timeline::EventKind::Ota,
        detail,
        serde_json::json!({"package_id": p.id, "state": next.as_str(), "attempts": attempts}),
    );
    Ok(())
}

/// Removes the target's shared attributes (the row stays, `FAILED`, for the record), so that a
/// device's SDK that asks again finds nothing to download.
async fn give_up(state: &AppState, ctx: &TenantCtx, t: &target::Model) -> Result<()> {
    let kind = PackageKind::parse(&t.kind).unwrap_or(PackageKind::Firmware);
    let device = DeviceId(t.device_id);
    let deleted = crate::attributes::delete(
        &state.db,
        ctx,
        device,
        AttributeScope::Shared,
        &super::service::target_keys(kind),
    )
    .await?;
    if !deleted.is_empty() {
        state.sessions.deliver(
            device,
            crate::ingress::Delivery::Attributes(serde_json::json!({"deleted": deleted})),
        );
    }
    Ok(())
}

/// The worker's sweep: a device that stays in one step longer than allowed is `TIMED_OUT`.
pub async fn run_timeouts(state: AppState) {
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        if let Err(e) = sweep(&state).await {
            tracing::warn!(error = %e, "the update time-out sweep failed; trying again");
        }
    }
}

async fn sweep(state: &AppState) -> Result<()> {
    let now = Utc::now();
    let before = now - chrono::Duration::seconds(state.config.ota_step_timeout_secs as i64);
    for t in repo::stale_targets(&state.db, System::worker(), before, 500).await? {
        let ctx = TenantCtx::new(TenantId(t.tenant_id));
        let reason = format!(
            "no progress from {} for {} s",
            t.state, state.config.ota_step_timeout_secs
        );
        if repo::move_target(
            &state.db,
            &ctx,
            &t,
            OtaState::TimedOut,
            Some(reason.clone()),
            t.attempts,
            now,
        )
        .await?
        {
            let p: Option<package::Model> = repo::get(&state.db, &ctx, t.package_id).await.ok();
            state.timeline.record_for(
                ctx.tenant_id(),
                DeviceId(t.device_id),
                crate::timeline::EventKind::Ota,
                format!(
                    "{} {}: TIMED_OUT ({reason})",
                    t.kind,
                    p.map(|p| format!("{} {}", p.title, p.version))
                        .unwrap_or_default()
                ),
                serde_json::json!({"package_id": t.package_id, "state": "TIMED_OUT"}),
            );
        }
    }
    Ok(())
}
