//! Campaigns as people make and steer them: made as drafts (`ota.manage`), started by someone
//! with `ota.approve` (a second person when the campaign asks for four eyes), paused, resumed
//! and canceled. Each change is audited in its transaction. The worker's engine (`engine`) does
//! the rest.

use std::collections::BTreeMap;

use chrono::Utc;
use stead_api_types::{
    Campaign, CampaignAction, CampaignDevice, CampaignDeviceQuery, CampaignProgress, CampaignQuery,
    CampaignSpec, CampaignStatus, CampaignTarget, OtaState, Page, Rollout,
};
use uuid::Uuid;

use super::model::campaign;
use super::repo;
use crate::app::AppState;
use crate::audit;
use crate::auth::{Actor, TenantCtx};
use crate::error::{Error, Result};

/// Devices a campaign may name one by one.
const MAX_NAMED_DEVICES: usize = 10_000;
/// Groups a campaign may target.
const MAX_GROUPS: usize = 100;

fn bad(field: &str, detail: impl Into<String>) -> Error {
    Error::invalid_at("invalid_campaign", field.to_owned(), detail)
}

/// Checks a campaign against the tenant: its package, groups and profile exist here, and every
/// number is within its range. Answers the package.
async fn check(
    state: &AppState,
    ctx: &TenantCtx,
    spec: &mut CampaignSpec,
) -> Result<crate::ota::model::package::Model> {
    spec.name =
        stead_api_types::check_name("campaign", &spec.name, 100).map_err(|e| bad("name", e))?;
    let p = crate::ota::repo::get(&state.db, ctx, spec.package_id)
        .await
        .map_err(|_| {
            bad(
                "package_id",
                format!("there is no package {} in this tenant", spec.package_id),
            )
        })?;
    check_target(state, ctx, &spec.target).await?;
    if let Some(w) = &spec.window {
        crate::alarms::rules::check_schedule(w, "invalid_campaign", "window")?;
    }
    match &spec.rollout {
        Rollout::Waves { percents } => {
            if percents.is_empty() || percents.len() > 10 {
                return Err(bad("rollout.percents", "1 to 10 waves"));
            }
            if percents.windows(2).any(|w| w[0] >= w[1])
                || percents.iter().any(|p| *p == 0 || *p > 100)
            {
                return Err(bad(
                    "rollout.percents",
                    "shares of the target from 1 to 100, each larger than the one before",
                ));
            }
            if percents.last() != Some(&100) {
                return Err(bad(
                    "rollout.percents",
                    "the last wave is 100: the whole target",
                ));
            }
        }
        Rollout::Rate {
            per_minute,
            growth,
            grow_after,
        } => {
            if !(1..=100_000).contains(per_minute) {
                return Err(bad("rollout.per_minute", "1 to 100,000 devices a minute"));
            }
            if !(1.0..=10.0).contains(growth) {
                return Err(bad("rollout.growth", "a factor from 1 to 10"));
            }
            if grow_after.is_some_and(|n| n == 0) {
                return Err(bad("rollout.grow_after", "at least 1 success"));
            }
        }
    }
    if !(1..=10_000).contains(&spec.max_in_flight) {
        return Err(bad("max_in_flight", "1 to 10,000 devices at once"));
    }
    if let Some(g) = &spec.gate {
        if g.min_success_percent > 100 {
            return Err(bad("gate.min_success_percent", "a share from 0 to 100"));
        }
        if g.min_devices == 0 {
            return Err(bad("gate.min_devices", "at least 1 device"));
        }
    }
    if let Some(h) = &spec.health {
        if !(1..=86_400).contains(&h.secs) {
            return Err(bad("health.secs", "1 s to a day"));
        }
        if h.max_reconnects > 100 {
            return Err(bad("health.max_reconnects", "0 to 100"));
        }
    }
    if let Some(a) = &spec.auto_stop {
        if a.max_failure_percent > 100 {
            return Err(bad(
                "auto_stop.max_failure_percent",
                "a share from 0 to 100",
            ));
        }
        if a.min_devices == 0 {
            return Err(bad("auto_stop.min_devices", "at least 1 device"));
        }
    }
    if spec.max_retries > 10 {
        return Err(bad("max_retries", "0 to 10 retries"));
    }
    if !(1..=86_400).contains(&spec.retry_backoff_secs) {
        return Err(bad("retry_backoff_secs", "1 s to a day"));
    }
    Ok(p)
}

async fn check_target(state: &AppState, ctx: &TenantCtx, t: &CampaignTarget) -> Result<()> {
    if t.group_ids.is_empty() && t.profile_id.is_none() && t.device_ids.is_empty() {
        return Err(bad(
            "target",
            "name groups, a profile or devices: the campaign updates their union",
        ));
    }
    if t.group_ids.len() > MAX_GROUPS {
        return Err(bad(
            "target.group_ids",
            format!("at most {MAX_GROUPS} groups"),
        ));
    }
    if t.device_ids.len() > MAX_NAMED_DEVICES {
        return Err(bad(
            "target.device_ids",
            format!("at most {MAX_NAMED_DEVICES} devices by name: use a group for more"),
        ));
    }
    for g in &t.group_ids {
        crate::groups::repo::get(&state.db, ctx, *g)
            .await
            .map_err(|_| {
                bad(
                    "target.group_ids",
                    format!("there is no group {g} in this tenant"),
                )
            })?;
    }
    if let Some(profile) = t.profile_id {
        crate::profiles::repo::get(&state.db, ctx, profile)
            .await
            .map_err(|_| {
                bad(
                    "target.profile_id",
                    format!("there is no profile {profile} in this tenant"),
                )
            })?;
    }
    Ok(())
}

/// The campaign as the API shows it: with its package's title and version, and its devices per
/// state.
async fn present(state: &AppState, ctx: &TenantCtx, c: campaign::Model) -> Result<Campaign> {
    let (title, version) = match crate::ota::repo::get(&state.db, ctx, c.package_id).await {
        Ok(p) => (p.title, p.version),
        Err(_) => (String::new(), String::new()),
    };
    let counts = repo::counts(&state.db, ctx, c.id).await?;
    repo::to_api(c, title, version, counts)
}

pub async fn create(
    state: &AppState,
    ctx: &TenantCtx,
    actor: &Actor,
    mut spec: CampaignSpec,
) -> Result<Campaign> {
    let p = check(state, ctx, &mut spec).await?;
    let now = Utc::now();
    let c = campaign::Model {
        id: Uuid::now_v7(),
        tenant_id: ctx.tenant_id().0,
        name: spec.name.clone(),
        package_id: p.id,
        kind: p.kind.clone(),
        spec: serde_json::to_value(&spec).map_err(anyhow::Error::from)?,
        status: CampaignStatus::Draft.as_str().to_owned(),
        reason: None,
        wave: 1,
        enrolled: false,
        created_by: Some(actor.user_id.0),
        approved_by: None,
        created_at: now,
        started_at: None,
        finished_at: None,
        lease_owner: None,
        lease_until: None,
        progress_at: None,
    };
    let txn = audit::begin(&state.db, Some(ctx.tenant_id())).await?;
    repo::insert(&txn, ctx, c.clone()).await?;
    audit::record(
        &txn,
        Some(ctx.tenant_id()),
        actor,
        "ota.campaign.create",
        "campaign",
        Some(c.id),
        serde_json::json!({"name": spec.name, "package_id": p.id, "title": p.title,
                           "version": p.version, "spec": c.spec}),
    )
    .await?;
    txn.commit().await?;
    present(state, ctx, c).await
}

pub async fn get(state: &AppState, ctx: &TenantCtx, id: Uuid) -> Result<Campaign> {
    let c = repo::get(&state.db, ctx, id).await?;
    present(state, ctx, c).await
}

pub async fn list(
    state: &AppState,
    ctx: &TenantCtx,
    q: &CampaignQuery,
    page: u64,
    per_page: u64,
) -> Result<Page<Campaign>> {
    let (rows, total) = repo::list(&state.db, ctx, q, page, per_page).await?;
    let mut items = Vec::with_capacity(rows.len());
    for c in rows {
        items.push(present(state, ctx, c).await?);
    }
    Ok(Page {
        items,
        total,
        page,
        per_page,
    })
}

pub async fn devices(
    state: &AppState,
    ctx: &TenantCtx,
    id: Uuid,
    q: &CampaignDeviceQuery,
    page: u64,
    per_page: u64,
) -> Result<Page<CampaignDevice>> {
    repo::get(&state.db, ctx, id).await?;
    let (items, total) = repo::devices(&state.db, ctx, id, q.state, page, per_page).await?;
    Ok(Page {
        items,
        total,
        page,
        per_page,
    })
}

pub async fn progress(
    state: &AppState,
    ctx: &TenantCtx,
    id: Uuid,
) -> Result<Vec<CampaignProgress>> {
    Ok(repo::progress(&state.db, ctx, id)
        .await?
        .into_iter()
        .map(|p| CampaignProgress {
            at: p.at,
            counts: serde_json::from_value::<BTreeMap<OtaState, u64>>(p.counts).unwrap_or_default(),
        })
        .collect())
}

pub async fn target_count(state: &AppState, ctx: &TenantCtx, t: &CampaignTarget) -> Result<u64> {
    check_target(state, ctx, t).await?;
    repo::count_target(&state.db, ctx, t).await
}

/// A change of status people make: from which statuses, to which, and its audit action.
struct Transition {
    from: &'static [CampaignStatus],
    to: CampaignStatus,
    action: &'static str,
}

const START: Transition = Transition {
    from: &[CampaignStatus::Draft],
    to: CampaignStatus::Running,
    action: "ota.campaign.start",
};
const PAUSE: Transition = Transition {
    from: &[CampaignStatus::Running],
    to: CampaignStatus::Paused,
    action: "ota.campaign.pause",
};
const RESUME: Transition = Transition {
    from: &[CampaignStatus::Paused],
    to: CampaignStatus::Running,
    action: "ota.campaign.resume",
};
const CANCEL: Transition = Transition {
    from: &[
        CampaignStatus::Draft,
        CampaignStatus::Running,
        CampaignStatus::Paused,
    ],
    to: CampaignStatus::Canceled,
    action: "ota.campaign.cancel",
};

/// A change of status by a person, audited with it.
async fn change(
    state: &AppState,
    ctx: &TenantCtx,
    actor: &Actor,
    id: Uuid,
    t: &Transition,
    reason: Option<String>,
) -> Result<Campaign> {
    let (from, to, action) = (t.from, t.to, t.action);
    let txn = audit::begin(&state.db, Some(ctx.tenant_id())).await?;
    let c = repo::get(&txn, ctx, id).await?;
    let now = Utc::now();
    let approver = actor.user_id.0;
    let moved = repo::set_status(&txn, ctx, id, from, to, reason.clone(), |u| match to {
        CampaignStatus::Running if c.status == CampaignStatus::Draft.as_str() => u
            .col_expr(
                campaign::Column::ApprovedBy,
                sea_orm::sea_query::Expr::value(approver),
            )
            .col_expr(
                campaign::Column::StartedAt,
                sea_orm::sea_query::Expr::value(now),
            ),
        // A draft canceled has no devices to cancel: it is over at once.
        CampaignStatus::Canceled if c.status == CampaignStatus::Draft.as_str() => u.col_expr(
            campaign::Column::FinishedAt,
            sea_orm::sea_query::Expr::value(now),
        ),
        _ => u,
    })
    .await?;
    if !moved {
        return Err(Error::conflict(
            "wrong_status",
            format!(
                "the campaign is {}: it cannot be {}",
                c.status,
                match to {
                    CampaignStatus::Running => "started or resumed",
                    CampaignStatus::Paused => "paused",
                    _ => "canceled",
                }
            ),
        ));
    }
    audit::record(
        &txn,
        Some(ctx.tenant_id()),
        actor,
        action,
        "campaign",
        Some(id),
        serde_json::json!({"name": c.name, "from": c.status, "to": to.as_str(), "reason": reason}),
    )
    .await?;
    txn.commit().await?;
    get(state, ctx, id).await
}

/// Starts a draft (`ota.approve`). With four eyes, its author may not.
pub async fn start(state: &AppState, ctx: &TenantCtx, actor: &Actor, id: Uuid) -> Result<Campaign> {
    let c = repo::get(&state.db, ctx, id).await?;
    let spec = repo::spec_of(&c)?;
    if spec.four_eyes && c.created_by == Some(actor.user_id.0) {
        return Err(Error::Forbidden {
            code: "four_eyes",
            detail: "this campaign needs a second person: someone other than its author with \
                     ota.approve starts it"
                .into(),
        });
    }
    change(state, ctx, actor, id, &START, None).await
}

/// The reason a person gave, or who did it.
fn reason_of(body: CampaignAction, done: &str, actor: &Actor) -> Option<String> {
    Some(
        body.reason
            .filter(|r| !r.trim().is_empty())
            .unwrap_or_else(|| format!("{done} by {}", actor.email)),
    )
}

pub async fn pause(
    state: &AppState,
    ctx: &TenantCtx,
    actor: &Actor,
    id: Uuid,
    body: CampaignAction,
) -> Result<Campaign> {
    let reason = reason_of(body, "paused", actor);
    change(state, ctx, actor, id, &PAUSE, reason).await
}

pub async fn resume(
    state: &AppState,
    ctx: &TenantCtx,
    actor: &Actor,
    id: Uuid,
) -> Result<Campaign> {
    change(state, ctx, actor, id, &RESUME, None).await
}

/// Cancels a campaign: devices waiting are canceled and updates under way withdrawn (by the
/// engine, at once).
pub async fn cancel(
    state: &AppState,
    ctx: &TenantCtx,
    actor: &Actor,
    id: Uuid,
    body: CampaignAction,
) -> Result<Campaign> {
    let reason = reason_of(body, "canceled", actor);
    change(state, ctx, actor, id, &CANCEL, reason).await
}

/// Deletes a draft, or a campaign that is over (its record goes with it).
pub async fn delete(state: &AppState, ctx: &TenantCtx, actor: &Actor, id: Uuid) -> Result<()> {
    use sea_orm::ModelTrait;
    let txn = audit::begin(&state.db, Some(ctx.tenant_id())).await?;
    let c = repo::get(&txn, ctx, id).await?;
    let status = repo::status_of(&c);
    if !(status == CampaignStatus::Draft || (status.is_over() && c.finished_at.is_some())) {
        return Err(Error::conflict(
            "wrong_status",
            format!("the campaign is {}: cancel it first", c.status),
        ));
    }
    let name = c.name.clone();
    c.delete(&txn).await?;
    audit::record(
        &txn,
        Some(ctx.tenant_id()),
        actor,
        "ota.campaign.delete",
        "campaign",
        Some(id),
        serde_json::json!({"name": name, "status": status.as_str()}),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}
