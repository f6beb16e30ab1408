//! The campaign engine (worker role). Every two seconds, for each running campaign whose lease
//! it holds (a campaign is run by one worker at a time; another takes over when a lease lapses):
//!
//! 1. enrolls the target's devices (`QUEUED`, in one statement; a dynamic target again every
//!    15 s, for devices that joined);
//! 2. follows the devices being updated: their target's state as the device reports it, then the
//!    health watch of `UPDATED` devices (`VERIFYING_HEALTH` until `SUCCEEDED`, or `FAILED` on an
//!    alarm, a reconnect loop, silence or being offline); a failure is queued again with backoff
//!    while retries are left;
//! 3. stops the campaign when failures pass its threshold (paused or aborted, its people told,
//!    and optionally the devices that took the package rolled back to the one they ran before);
//! 4. notifies the next devices: within the maintenance window, under the cap on updates in
//!    flight, within the wave (the next wave starts when this one is over and the gate holds) or
//!    the rate;
//! 5. records its progress once a minute, and completes it when nothing is left.
//!
//! Every step of a device is a conditional update from the state it was read in, and a device is
//! notified in the transaction that moves it from `QUEUED` to `NOTIFIED`: a restarted or second
//! worker finds the step taken and does not notify it again. Nothing holds the campaign's devices
//! in memory but those in flight (at most `max_in_flight`) and pages of a few hundred.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::QuerySelect;
use sea_orm::entity::prelude::*;
use stead_api_types::{
    AlarmSeverity, CampaignSpec, CampaignStatus, ChecksumAlgorithm, OtaState, PackageKind, Rollout,
    StopAction,
};

use super::model::{campaign, device};
use super::repo::{self, Move};
use crate::app::AppState;
use crate::auth::{System, TenantCtx};
use crate::error::Result;
use crate::ids::{DeviceId, TenantId};
use crate::ota::model::{package, target};

/// How often the engine looks at its campaigns.
const TICK: Duration = Duration::from_secs(2);
/// How long a lease lasts without being renewed.
const LEASE_SECS: i64 = 20;
/// How often a dynamic campaign looks for devices that joined its target.
const DYNAMIC_ENROLL_EVERY: Duration = Duration::from_secs(15);
/// Devices read per page when canceling or rolling back.
const PAGE: u64 = 500;

pub async fn run(state: AppState) {
    let mut worker = Worker {
        me: Uuid::new_v4(),
        enrolled_at: HashMap::new(),
    };
    loop {
        tokio::time::sleep(TICK).await;
        if let Err(e) = tick(&state, &mut worker).await {
            tracing::warn!(error = %e, "running the OTA campaigns failed; trying again");
        }
    }
}

/// One worker's engine.
pub struct Worker {
    /// Its name on the leases it takes.
    me: Uuid,
    /// When it last looked for devices that joined each dynamic campaign's target.
    enrolled_at: HashMap<Uuid, std::time::Instant>,
}

/// One pass over every campaign with work.
async fn tick(state: &AppState, worker: &mut Worker) -> Result<()> {
    for id in repo::live_campaigns(&state.db, System::worker()).await? {
        let now = Utc::now();
        let until = now + chrono::Duration::seconds(LEASE_SECS);
        let Some(c) = repo::lease(&state.db, System::worker(), id, worker.me, now, until).await?
        else {
            continue;
        };
        let enroll_due = worker
            .enrolled_at
            .get(&id)
            .is_none_or(|at| at.elapsed() >= DYNAMIC_ENROLL_EVERY);
        if enroll_due {
            worker.enrolled_at.insert(id, std::time::Instant::now());
        }
        if let Err(e) = step(state, &c, enroll_due, now).await {
            tracing::warn!(error = %e, campaign = %c.id, "a campaign step failed; trying again");
        }
    }
    Ok(())
}

async fn step(
    state: &AppState,
    c: &campaign::Model,
    enroll_due: bool,
    now: DateTime<Utc>,
) -> Result<()> {
    let ctx = TenantCtx::new(TenantId(c.tenant_id));
    let spec = repo::spec_of(c)?;
    let status = repo::status_of(c);
    if status.is_over() {
        let reason = c.reason.clone().unwrap_or_else(|| "canceled".into());
        wind_down(state, &ctx, c, &reason, now).await?;
        repo::set_finished(&state.db, &ctx, c, now).await?;
        return Ok(());
    }
    // 1. Enrollment.
    let enroll_again = spec.target.dynamic && enroll_due;
    if !c.enrolled || enroll_again {
        let added = repo::enroll(&state.db, &ctx, c, &spec.target, now).await?;
        if !c.enrolled {
            repo::set_enrolled(&state.db, &ctx, c).await?;
            tracing::info!(campaign = %c.id, devices = added, "campaign enrolled its target");
        } else if added > 0 {
            tracing::info!(campaign = %c.id, devices = added, "devices joined a dynamic campaign");
        }
    }
    // Enrolled, it waits for its start time.
    if spec.start_at.is_some_and(|at| now < at) {
        return Ok(());
    }
    let p = crate::ota::repo::get(&state.db, &ctx, c.package_id).await?;
    // 2. The devices under way.
    follow(state, &ctx, c, &spec, &p, now).await?;
    let counts = repo::counts(&state.db, &ctx, c.id).await?;
    // 3. The auto-stop.
    if let Some(stop) = &spec.auto_stop {
        let failed = count(&counts, &[OtaState::Failed, OtaState::TimedOut]);
        let done = failed + count(&counts, &[OtaState::Succeeded]);
        if done >= u64::from(stop.min_devices)
            && failed * 100 > u64::from(stop.max_failure_percent) * done
        {
            let reason = format!(
                "auto-stop: {failed} of {done} devices failed ({} %, more than {} %)",
                failed * 100 / done.max(1),
                stop.max_failure_percent
            );
            return auto_stop(state, &ctx, c, &spec, &reason, now).await;
        }
    }
    // 4. The next devices.
    let dispatched = status == CampaignStatus::Running
        && dispatch(state, &ctx, c, &spec, &p, &counts, now).await?;
    // 5. Progress, and the end (counted again only when something moved since).
    let counts = if dispatched {
        repo::counts(&state.db, &ctx, c.id).await?
    } else {
        counts
    };
    repo::record_progress(&state.db, &ctx, c, &counts, now).await?;
    let open = count(&counts, &[OtaState::Queued]) + count(&counts, &repo::IN_FLIGHT);
    if status == CampaignStatus::Running && open == 0 && c.enrolled && !spec.target.dynamic {
        let moved = repo::set_status(
            &state.db,
            &ctx,
            c.id,
            &[CampaignStatus::Running],
            CampaignStatus::Completed,
            None,
            |u| {
                u.col_expr(
                    campaign::Column::FinishedAt,
                    sea_orm::sea_query::Expr::value(now),
                )
            },
        )
        .await?;
        if moved {
            tracing::info!(campaign = %c.id, counts = ?counts, "campaign completed");
        }
    }
    Ok(())
}

fn count(counts: &BTreeMap<OtaState, u64>, states: &[OtaState]) -> u64 {
    states.iter().filter_map(|s| counts.get(s)).sum()
}

/// Follows each device in flight: from its target's state, then its health.
async fn follow(
    state: &AppState,
    ctx: &TenantCtx,
    c: &campaign::Model,
    spec: &CampaignSpec,
    p: &package::Model,
    now: DateTime<Utc>,
) -> Result<()> {
    let rows = repo::devices_in(&state.db, ctx, c.id, &repo::IN_FLIGHT, 0, 10_000).await?;
    if rows.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = rows.iter().map(|r| r.device_id).collect();
    let mut targets: HashMap<Uuid, target::Model> = HashMap::new();
    for chunk in ids.chunks(PAGE as usize) {
        for t in target::Entity::find()
            .filter(target::Column::TenantId.eq(ctx.tenant_id().0))
            .filter(target::Column::Kind.eq(c.kind.clone()))
            .filter(target::Column::DeviceId.is_in(chunk.to_vec()))
            .all(&state.db)
            .await?
        {
            targets.insert(t.device_id, t);
        }
    }
    for d in rows {
        let current = repo::state_of(&d);
        if current == OtaState::VerifyingHealth {
            watch_health(state, ctx, spec, &d, now).await?;
            continue;
        }
        let t = targets.get(&d.device_id).filter(|t| t.package_id == p.id);
        let Some(t) = t else {
            // Someone gave the device another target, or withdrew it.
            repo::move_device(
                &state.db,
                ctx,
                &d,
                OtaState::Canceled,
                Move {
                    reason: Some("the device's target was changed outside the campaign".into()),
                    ..Move::default()
                },
                now,
            )
            .await?;
            continue;
        };
        let reported = OtaState::parse(&t.state).unwrap_or(OtaState::Notified);
        let previous = Some((t.previous_title.clone(), t.previous_version.clone()));
        match reported {
            OtaState::Updated => {
                let (to, reason) = if spec.health.is_some() {
                    (OtaState::VerifyingHealth, None)
                } else {
                    (OtaState::Succeeded, None)
                };
                repo::move_device(
                    &state.db,
                    ctx,
                    &d,
                    to,
                    Move {
                        reason,
                        updated_at: Some(t.state_at),
                        previous,
                        ..Move::default()
                    },
                    now,
                )
                .await?;
            }
            OtaState::Skipped => {
                repo::move_device(
                    &state.db,
                    ctx,
                    &d,
                    OtaState::Skipped,
                    Move {
                        reason: t.reason.clone(),
                        ..Move::default()
                    },
                    now,
                )
                .await?;
            }
            OtaState::Failed | OtaState::TimedOut => {
                let reason = t
                    .reason
                    .clone()
                    .unwrap_or_else(|| reported.as_str().to_lowercase());
                fail(state, ctx, spec, &d, reported, reason, previous, now).await?;
            }
            other if other != current && !other.is_final() => {
                repo::move_device(
                    &state.db,
                    ctx,
                    &d,
                    other,
                    Move {
                        previous,
                        ..Move::default()
                    },
                    now,
                )
                .await?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// A device's download step as the tracker records it (`DOWNLOADING` … `UPDATING`), at once, so
/// that a campaign device's history holds every step with its time even when several come
/// between two ticks. `UPDATED`, failures and time-outs stay the tick's: they decide health
/// watches and retries.
pub async fn follow_report(
    state: &AppState,
    ctx: &TenantCtx,
    device: DeviceId,
    package: Uuid,
    step: OtaState,
) -> Result<()> {
    let order = |s: OtaState| repo::IN_FLIGHT.iter().position(|x| *x == s);
    if !matches!(
        step,
        OtaState::Downloading | OtaState::Downloaded | OtaState::Verified | OtaState::Updating
    ) {
        return Ok(());
    }
    for d in repo::updating_to(&state.db, ctx, device.0, package).await? {
        // Forward only: a late report never moves a device back.
        if order(step) > order(repo::state_of(&d)) {
            repo::move_device(&state.db, ctx, &d, step, Move::default(), Utc::now()).await?;
        }
    }
    Ok(())
}

/// A device failed: queued again after its backoff while retries are left, otherwise `FAILED`
/// (or `TIMED_OUT`) for good.
#[allow(clippy::too_many_arguments)]
async fn fail(
    state: &AppState,
    ctx: &TenantCtx,
    spec: &CampaignSpec,
    d: &device::Model,
    how: OtaState,
    reason: String,
    previous: Option<(Option<String>, Option<String>)>,
    now: DateTime<Utc>,
) -> Result<()> {
    let retries_used = (d.attempts - 1).max(0) as u32;
    if retries_used < spec.max_retries {
        let backoff = u64::from(spec.retry_backoff_secs) << retries_used.min(16);
        let next = now + chrono::Duration::seconds(backoff.min(7 * 86_400) as i64);
        repo::move_device(
            &state.db,
            ctx,
            d,
            OtaState::Queued,
            Move {
                reason: Some(format!(
                    "{reason}; retry {} of {} after {backoff} s",
                    retries_used + 1,
                    spec.max_retries
                )),
                next_at: Some(Some(next)),
                previous,
                ..Move::default()
            },
            now,
        )
        .await?;
    } else {
        repo::move_device(
            &state.db,
            ctx,
            d,
            how,
            Move {
                reason: Some(reason),
                previous,
                ..Move::default()
            },
            now,
        )
        .await?;
    }
    Ok(())
}

/// The health watch of an updated device: an alarm at or above the set severity, or more
/// reconnects than allowed, fail it at once; at the end of the watch it must be online and have
/// sent telemetry since the update.
async fn watch_health(
    state: &AppState,
    ctx: &TenantCtx,
    spec: &CampaignSpec,
    d: &device::Model,
    now: DateTime<Utc>,
) -> Result<()> {
    let Some(h) = &spec.health else {
        return Ok(());
    };
    let since = d.updated_at.unwrap_or(d.state_at);
    let device = DeviceId(d.device_id);
    let mut verdict: Option<(OtaState, String)> = None;
    if let Some(min) = h.alarm_severity {
        let raised: Vec<(String, String)> = crate::alarms::model::alarm::Entity::find()
            .select_only()
            .column(crate::alarms::model::alarm::Column::AlarmType)
            .column(crate::alarms::model::alarm::Column::Severity)
            .filter(crate::alarms::model::alarm::Column::TenantId.eq(ctx.tenant_id().0))
            .filter(crate::alarms::model::alarm::Column::DeviceId.eq(d.device_id))
            .filter(crate::alarms::model::alarm::Column::StartedAt.gte(since))
            .into_tuple()
            .all(&state.db)
            .await?;
        if let Some((kind, severity)) = raised
            .into_iter()
            .find(|(_, s)| crate::alarms::repo::severity_of(s) >= min)
        {
            verdict = Some((
                OtaState::Failed,
                format!("health: alarm {kind} ({severity}) raised after the update"),
            ));
        }
    }
    if verdict.is_none() {
        let connects = reconnects_since(state, ctx, d.device_id, since).await?;
        if connects > u64::from(h.max_reconnects) {
            verdict = Some((
                OtaState::Failed,
                format!(
                    "health: reconnected {connects} times since the update (a reboot loop; at most {} allowed)",
                    h.max_reconnects
                ),
            ));
        }
    }
    let watched_until = since + chrono::Duration::seconds(i64::from(h.secs));
    if verdict.is_none() && now >= watched_until {
        let presence = state
            .live
            .presence(device)
            .await
            .map_err(crate::error::Error::Internal)?;
        let latest = state
            .live
            .latest(device)
            .await
            .map_err(crate::error::Error::Internal)?;
        let since_ms = since.timestamp_millis();
        let resumed = latest.iter().any(|(k, v)| {
            v.ts > since_ms
                && !k.starts_with("fw_")
                && !k.starts_with("sw_")
                && !k.starts_with("current_")
        });
        verdict = Some(if !presence.online {
            (
                OtaState::Failed,
                "health: offline at the end of the watch".to_owned(),
            )
        } else if !resumed {
            (
                OtaState::Failed,
                "health: no telemetry since the update".to_owned(),
            )
        } else {
            (
                OtaState::Succeeded,
                format!("healthy for {} s after the update", h.secs),
            )
        });
    }
    // A device that fails its health watch runs the new package: no retry would help.
    if let Some((to, reason)) = verdict {
        repo::move_device(
            &state.db,
            ctx,
            d,
            to,
            Move {
                reason: Some(reason),
                ..Move::default()
            },
            now,
        )
        .await?;
    }
    Ok(())
}

/// Connects on the device's timeline since `since`.
async fn reconnects_since(
    state: &AppState,
    ctx: &TenantCtx,
    device: Uuid,
    since: DateTime<Utc>,
) -> Result<u64> {
    use sea_orm::{ConnectionTrait, Statement};
    let b = state.db.get_database_backend();
    let p = crate::db::placeholder;
    let row = state
        .db
        .query_one_raw(Statement::from_sql_and_values(
            b,
            format!(
                "SELECT COUNT(*) AS n FROM device_events WHERE tenant_id = {} AND device_id = {} AND kind = 'connected' AND ts > {}",
                p(b, 1),
                p(b, 2),
                p(b, 3)
            ),
            [
                ctx.tenant_id().0.into(),
                device.into(),
                since.timestamp_millis().into(),
            ],
        ))
        .await?;
    Ok(row
        .and_then(|r| r.try_get::<i64>("", "n").ok())
        .unwrap_or(0)
        .max(0) as u64)
}

/// Notifies the next devices the rollout allows now. Answers whether anything changed (a device
/// notified, a wave begun, the campaign paused).
async fn dispatch(
    state: &AppState,
    ctx: &TenantCtx,
    c: &campaign::Model,
    spec: &CampaignSpec,
    p: &package::Model,
    counts: &BTreeMap<OtaState, u64>,
    now: DateTime<Utc>,
) -> Result<bool> {
    if let Some(w) = &spec.window
        && let Ok(tz) = w.timezone.parse::<chrono_tz::Tz>()
        && !crate::alarms::rules::schedule_allows(&tz, w, now.timestamp_millis())
    {
        return Ok(false);
    }
    let in_flight = count(counts, &repo::IN_FLIGHT);
    let mut room = u64::from(spec.max_in_flight).saturating_sub(in_flight);
    let total: u64 = counts.values().sum();
    let mut up_to = None;
    let mut changed = false;
    match &spec.rollout {
        Rollout::Waves { percents } if total > 0 => {
            let wave = (c.wave.max(1) as usize).min(percents.len());
            let limit = |w: usize| (total * u64::from(percents[w - 1])).div_ceil(100) as i64;
            up_to = Some(limit(wave));
            // The wave is over: nothing of it waits and nothing is under way.
            if in_flight == 0
                && wave < percents.len()
                && repo::queued_within(&state.db, ctx, c.id, up_to).await? == 0
            {
                if let Some(gate) = &spec.gate {
                    let succeeded = count(counts, &[OtaState::Succeeded, OtaState::Skipped]);
                    let failed = count(counts, &[OtaState::Failed, OtaState::TimedOut]);
                    let done = succeeded + failed;
                    let needed = u64::from(gate.min_devices).min(done.max(1));
                    let held = done >= needed
                        && succeeded * 100 >= u64::from(gate.min_success_percent) * done;
                    if !held {
                        // Paused at the boundary: a person who resumes it starts the next wave.
                        let reason = format!(
                            "gate after wave {wave}: {succeeded} of {done} devices succeeded, {} % needed",
                            gate.min_success_percent
                        );
                        repo::set_wave(&state.db, ctx, c, wave as i32 + 1).await?;
                        stop(state, ctx, c, spec, StopAction::Pause, false, &reason, now).await?;
                        return Ok(true);
                    }
                }
                if repo::set_wave(&state.db, ctx, c, wave as i32 + 1).await? {
                    changed = true;
                    tracing::info!(campaign = %c.id, wave = wave + 1, "next wave");
                    up_to = Some(limit(wave + 1));
                }
            }
        }
        // An empty target: nothing to notify, the campaign completes.
        Rollout::Waves { .. } => return Ok(false),
        Rollout::Rate {
            per_minute,
            growth,
            grow_after,
        } => {
            let succeeded = count(counts, &[OtaState::Succeeded]);
            let steps = grow_after.map_or(0, |n| succeeded / u64::from(n.max(1)));
            let rate = (f64::from(*per_minute) * growth.powi(steps.min(64) as i32)).min(1_000_000.0)
                as u64;
            let recent =
                repo::notified_since(&state.db, ctx, c.id, now - chrono::Duration::seconds(60))
                    .await?;
            room = room.min(rate.saturating_sub(recent));
        }
    }
    if room == 0 {
        return Ok(changed);
    }
    let algorithm = ChecksumAlgorithm::Sha256;
    for d in repo::due(&state.db, ctx, c.id, now, up_to, room.min(PAGE)).await? {
        let txn = crate::db::begin_write(&state.db).await?;
        let moved = repo::move_device(
            &txn,
            ctx,
            &d,
            OtaState::Notified,
            Move {
                attempts: Some(d.attempts + 1),
                notified_at: Some(now),
                next_at: Some(None),
                ..Move::default()
            },
            now,
        )
        .await?;
        if !moved {
            continue;
        }
        let set = match crate::ota::service::set_target(
            state,
            &txn,
            ctx,
            DeviceId(d.device_id),
            p,
            algorithm,
            None,
        )
        .await
        {
            Ok(set) => set,
            Err(e) => {
                drop(txn);
                tracing::warn!(error = %e, device = %d.device_id, "notifying a device failed");
                continue;
            }
        };
        txn.commit().await?;
        set.announce(state, ctx);
        changed = true;
    }
    Ok(changed)
}

/// The auto-stop: pause or abort, tell the campaign's people, roll back if asked.
async fn auto_stop(
    state: &AppState,
    ctx: &TenantCtx,
    c: &campaign::Model,
    spec: &CampaignSpec,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    let Some(a) = &spec.auto_stop else {
        return Ok(());
    };
    stop(state, ctx, c, spec, a.action, a.rollback, reason, now).await
}

/// Stops a running campaign (paused or aborted) for `reason`: its people are told, devices that
/// took the package are rolled back when asked, an abort cancels what waits.
#[allow(clippy::too_many_arguments)]
async fn stop(
    state: &AppState,
    ctx: &TenantCtx,
    c: &campaign::Model,
    spec: &CampaignSpec,
    action: StopAction,
    rollback: bool,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    let to = match action {
        StopAction::Pause => CampaignStatus::Paused,
        StopAction::Abort => CampaignStatus::Aborted,
    };
    let moved = repo::set_status(
        &state.db,
        ctx,
        c.id,
        &[CampaignStatus::Running],
        to,
        Some(reason.to_owned()),
        |u| u,
    )
    .await?;
    if !moved {
        return Ok(());
    }
    tracing::warn!(campaign = %c.id, reason, status = to.as_str(), "campaign stopped");
    let mut rolled = 0;
    if rollback {
        rolled = roll_back(state, ctx, c, reason, now).await?;
    }
    let mut body = format!(
        "Campaign {} ({} {}) is {}: {reason}.",
        c.name,
        c.kind,
        spec.package_id,
        to.as_str()
    );
    if rollback {
        body.push_str(&format!(
            " {rolled} updated device(s) were given their previous package again."
        ));
    }
    body.push_str(&format!(
        "\n\n{}/firmware/campaigns/{}",
        crate::mail::public_url(&state.config),
        c.id
    ));
    notify(
        state,
        c,
        &format!("[MAJOR] campaign {} {}", c.name, to.as_str()),
        &body,
        now,
    )
    .await?;
    Ok(())
}

/// In-app notifications to the campaign's author and approver.
async fn notify(
    state: &AppState,
    c: &campaign::Model,
    title: &str,
    body: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    use crate::notifications::model::notification;
    use sea_orm::ActiveValue::Set;
    let mut people: Vec<Uuid> = [c.created_by, c.approved_by]
        .into_iter()
        .flatten()
        .collect();
    people.dedup();
    for user in people {
        notification::ActiveModel {
            id: Set(Uuid::new_v4()),
            tenant_id: Set(c.tenant_id),
            user_id: Set(user),
            alarm_id: Set(None),
            title: Set(title.to_owned()),
            body: Set(body.to_owned()),
            severity: Set(AlarmSeverity::Major.as_str().to_owned()),
            created_at: Set(now),
            read_at: Set(None),
        }
        .insert(&state.db)
        .await?;
    }
    Ok(())
}

/// Gives every device that took the package (succeeded, or being watched, or failed its health
/// watch) the package it ran before, when the tenant has it. Answers how many were given it.
async fn roll_back(
    state: &AppState,
    ctx: &TenantCtx,
    c: &campaign::Model,
    why: &str,
    now: DateTime<Utc>,
) -> Result<u64> {
    let kind = PackageKind::parse(&c.kind).unwrap_or(PackageKind::Firmware);
    let took = [
        OtaState::Succeeded,
        OtaState::VerifyingHealth,
        OtaState::Updated,
        OtaState::Failed,
    ];
    let mut rolled = 0;
    let mut after = 0;
    loop {
        let rows = repo::devices_in(&state.db, ctx, c.id, &took, after, PAGE).await?;
        let Some(last) = rows.last() else { break };
        after = last.position;
        for d in rows {
            // A failed device that never updated runs its old package already.
            if d.updated_at.is_none() {
                continue;
            }
            let (Some(title), Some(version)) = (&d.previous_title, &d.previous_version) else {
                continue;
            };
            let previous = package::Entity::find()
                .filter(package::Column::TenantId.eq(ctx.tenant_id().0))
                .filter(package::Column::Kind.eq(kind.as_str()))
                .filter(package::Column::Title.eq(title.as_str()))
                .filter(package::Column::Version.eq(version.as_str()))
                .one(&state.db)
                .await?;
            let Some(previous) = previous else {
                continue;
            };
            let txn = crate::db::begin_write(&state.db).await?;
            if !repo::move_device(
                &txn,
                ctx,
                &d,
                OtaState::RolledBack,
                Move {
                    reason: Some(format!("rolled back to {title} {version}: {why}")),
                    ..Move::default()
                },
                now,
            )
            .await?
            {
                continue;
            }
            let set = crate::ota::service::set_target(
                state,
                &txn,
                ctx,
                DeviceId(d.device_id),
                &previous,
                ChecksumAlgorithm::Sha256,
                None,
            )
            .await?;
            txn.commit().await?;
            set.announce(state, ctx);
            rolled += 1;
        }
    }
    Ok(rolled)
}

/// A campaign canceled or aborted: what waits is canceled, updates under way are withdrawn.
async fn wind_down(
    state: &AppState,
    ctx: &TenantCtx,
    c: &campaign::Model,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    repo::cancel_queued(&state.db, ctx, c.id, reason, now).await?;
    let kind = PackageKind::parse(&c.kind).unwrap_or(PackageKind::Firmware);
    let under_way = [
        OtaState::Notified,
        OtaState::Downloading,
        OtaState::Downloaded,
        OtaState::Verified,
        OtaState::Updating,
    ];
    let mut after = 0;
    loop {
        let rows = repo::devices_in(&state.db, ctx, c.id, &under_way, after, PAGE).await?;
        let Some(last) = rows.last() else { break };
        after = last.position;
        for d in rows {
            let txn = crate::db::begin_write(&state.db).await?;
            if !repo::move_device(
                &txn,
                ctx,
                &d,
                OtaState::Canceled,
                Move {
                    reason: Some(reason.to_owned()),
                    ..Move::default()
                },
                now,
            )
            .await?
            {
                continue;
            }
            let withdrawn = crate::ota::service::withdraw(
                &txn,
                ctx,
                DeviceId(d.device_id),
                kind,
                Some(c.package_id),
            )
            .await?;
            txn.commit().await?;
            if let Some(w) = withdrawn {
                w.announce(state);
            }
        }
    }
    Ok(())
}
