//! Campaign queries, scoped to the tenant (or, for the worker's engine, to one campaign it
//! leased). Device rows move only with conditional updates (`move_device`): from the state the
//! caller read, so that two workers never both take one step.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::TransactionSession as _;
use sea_orm::entity::prelude::*;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ConnectionTrait, DatabaseBackend, QueryOrder, QuerySelect, Statement,
};
use stead_api_types::{
    Campaign, CampaignDevice, CampaignQuery, CampaignSpec, CampaignStatus, CampaignStep,
    CampaignTarget, OtaState, PackageKind,
};

use super::model::{campaign, device, progress};
use crate::auth::{System, TenantCtx};
use crate::db::placeholder as p;
use crate::error::{Error, Result};

/// Where a device is being updated: notified and not yet done.
pub const IN_FLIGHT: [OtaState; 7] = [
    OtaState::Notified,
    OtaState::Downloading,
    OtaState::Downloaded,
    OtaState::Verified,
    OtaState::Updating,
    OtaState::Updated,
    OtaState::VerifyingHealth,
];

pub fn spec_of(c: &campaign::Model) -> Result<CampaignSpec> {
    serde_json::from_value(c.spec.clone())
        .map_err(|e| Error::Internal(anyhow::anyhow!("campaign {} has a bad spec: {e}", c.id)))
}

pub fn status_of(c: &campaign::Model) -> CampaignStatus {
    CampaignStatus::parse(&c.status).unwrap_or(CampaignStatus::Paused)
}

pub fn state_of(d: &device::Model) -> OtaState {
    OtaState::parse(&d.state).unwrap_or(OtaState::Queued)
}

pub fn to_api(
    c: campaign::Model,
    title: String,
    version: String,
    counts: BTreeMap<OtaState, u64>,
) -> Result<Campaign> {
    Ok(Campaign {
        spec: spec_of(&c)?,
        id: c.id,
        kind: PackageKind::parse(&c.kind).unwrap_or(PackageKind::Firmware),
        title,
        version,
        status: status_of(&c),
        reason: c.reason,
        wave: c.wave.max(1) as u32,
        devices: counts.values().sum(),
        counts,
        created_by: c.created_by,
        approved_by: c.approved_by,
        created_at: c.created_at,
        started_at: c.started_at,
        finished_at: c.finished_at,
    })
}

pub fn device_to_api(d: device::Model, name: String) -> CampaignDevice {
    CampaignDevice {
        state: state_of(&d),
        device_id: d.device_id,
        device_name: name,
        reason: d.reason,
        attempts: d.attempts.max(0) as u32,
        state_at: d.state_at,
        history: serde_json::from_value(d.history).unwrap_or_default(),
    }
}

pub async fn insert(db: &impl ConnectionTrait, ctx: &TenantCtx, c: campaign::Model) -> Result<()> {
    debug_assert_eq!(c.tenant_id, ctx.tenant_id().0);
    campaign::ActiveModel::from(c).insert(db).await?;
    Ok(())
}

pub async fn get(db: &impl ConnectionTrait, ctx: &TenantCtx, id: Uuid) -> Result<campaign::Model> {
    campaign::Entity::find_by_id(id)
        .filter(campaign::Column::TenantId.eq(ctx.tenant_id().0))
        .one(db)
        .await?
        .ok_or(Error::NotFound("campaign"))
}

pub async fn list(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    q: &CampaignQuery,
    page: u64,
    per_page: u64,
) -> Result<(Vec<campaign::Model>, u64)> {
    let mut find =
        campaign::Entity::find().filter(campaign::Column::TenantId.eq(ctx.tenant_id().0));
    if let Some(s) = q.status {
        find = find.filter(campaign::Column::Status.eq(s.as_str()));
    }
    let paginator = find
        .order_by_desc(campaign::Column::CreatedAt)
        .paginate(db, per_page);
    let total = paginator.num_items().await?;
    Ok((paginator.fetch_page(page.saturating_sub(1)).await?, total))
}

/// Moves a campaign from one of `from` to `to` (a conditional update); answers whether it moved.
pub async fn set_status(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    id: Uuid,
    from: &[CampaignStatus],
    to: CampaignStatus,
    reason: Option<String>,
    extra: impl FnOnce(sea_orm::UpdateMany<campaign::Entity>) -> sea_orm::UpdateMany<campaign::Entity>,
) -> Result<bool> {
    let update = campaign::Entity::update_many()
        .col_expr(campaign::Column::Status, Expr::value(to.as_str()))
        .col_expr(campaign::Column::Reason, Expr::value(reason))
        .filter(campaign::Column::TenantId.eq(ctx.tenant_id().0))
        .filter(campaign::Column::Id.eq(id))
        .filter(campaign::Column::Status.is_in(from.iter().map(|s| s.as_str())));
    Ok(extra(update).exec(db).await?.rows_affected > 0)
}

/// Devices per state of a campaign.
pub async fn counts(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    campaign: Uuid,
) -> Result<BTreeMap<OtaState, u64>> {
    let rows: Vec<(String, i64)> = device::Entity::find()
        .select_only()
        .column(device::Column::State)
        .column_as(device::Column::DeviceId.count(), "n")
        .filter(device::Column::TenantId.eq(ctx.tenant_id().0))
        .filter(device::Column::CampaignId.eq(campaign))
        .group_by(device::Column::State)
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(s, n)| Some((OtaState::parse(&s)?, n.max(0) as u64)))
        .collect())
}

/// A page of a campaign's devices with their names, in rollout order.
pub async fn devices(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    campaign: Uuid,
    state: Option<OtaState>,
    page: u64,
    per_page: u64,
) -> Result<(Vec<CampaignDevice>, u64)> {
    let mut find = device::Entity::find()
        .filter(device::Column::TenantId.eq(ctx.tenant_id().0))
        .filter(device::Column::CampaignId.eq(campaign));
    if let Some(s) = state {
        find = find.filter(device::Column::State.eq(s.as_str()));
    }
    let paginator = find
        .order_by_asc(device::Column::Position)
        .paginate(db, per_page);
    let total = paginator.num_items().await?;
    let rows = paginator.fetch_page(page.saturating_sub(1)).await?;
    let ids: Vec<Uuid> = rows.iter().map(|r| r.device_id).collect();
    let names: BTreeMap<Uuid, String> = crate::devices::model::Entity::find()
        .select_only()
        .column(crate::devices::model::Column::Id)
        .column(crate::devices::model::Column::Name)
        .filter(crate::devices::model::Column::TenantId.eq(ctx.tenant_id().0))
        .filter(crate::devices::model::Column::Id.is_in(ids))
        .into_tuple::<(Uuid, String)>()
        .all(db)
        .await?
        .into_iter()
        .collect();
    Ok((
        rows.into_iter()
            .map(|r| {
                let name = names.get(&r.device_id).cloned().unwrap_or_default();
                device_to_api(r, name)
            })
            .collect(),
        total,
    ))
}

/// The `WHERE` of the devices a target matches (over `devices d`), its values pushed onto
/// `values` in the order their placeholders appear (SQLite's `?` are numbered by position).
fn target_where(
    b: DatabaseBackend,
    ctx: &TenantCtx,
    t: &CampaignTarget,
    values: &mut Vec<sea_orm::Value>,
) -> String {
    let next = |v: sea_orm::Value, values: &mut Vec<sea_orm::Value>| {
        values.push(v);
        p(b, values.len())
    };
    let tenant = next(ctx.tenant_id().0.into(), values);
    let mut any = Vec::new();
    if let Some(profile) = t.profile_id {
        any.push(format!("d.profile_id = {}", next(profile.into(), values)));
    }
    if !t.group_ids.is_empty() {
        let list: Vec<String> = t
            .group_ids
            .iter()
            .map(|g| next((*g).into(), values))
            .collect();
        any.push(format!(
            "d.id IN (SELECT m.device_id FROM device_group_members m WHERE m.group_id IN ({}))",
            list.join(",")
        ));
    }
    if !t.device_ids.is_empty() {
        let list: Vec<String> = t
            .device_ids
            .iter()
            .map(|d| next((*d).into(), values))
            .collect();
        any.push(format!("d.id IN ({})", list.join(",")));
    }
    if any.is_empty() {
        any.push("1 = 0".into());
    }
    format!("d.tenant_id = {tenant} AND ({})", any.join(" OR "))
}

/// How many devices a target matches now.
pub async fn count_target(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    t: &CampaignTarget,
) -> Result<u64> {
    let b = db.get_database_backend();
    let mut values = Vec::new();
    let w = target_where(b, ctx, t, &mut values);
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            b,
            format!("SELECT COUNT(*) AS n FROM devices d WHERE {w}"),
            values,
        ))
        .await?;
    Ok(row
        .and_then(|r| r.try_get::<i64>("", "n").ok())
        .unwrap_or(0)
        .max(0) as u64)
}

/// Adds the devices the target matches that are not in the campaign yet, `QUEUED`, after the
/// last position, in one statement (nothing is read into memory). Answers how many were added.
pub async fn enroll(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    c: &campaign::Model,
    t: &CampaignTarget,
    now: DateTime<Utc>,
) -> Result<u64> {
    let b = db.get_database_backend();
    let last: Option<i64> = device::Entity::find()
        .select_only()
        .column_as(device::Column::Position.max(), "m")
        .filter(device::Column::CampaignId.eq(c.id))
        .into_tuple::<Option<i64>>()
        .one(db)
        .await?
        .flatten();
    // Values in the order their placeholders appear.
    let mut values: Vec<sea_orm::Value> = vec![c.id.into(), last.unwrap_or(0).into(), now.into()];
    let (campaign, after, at) = (p(b, 1), p(b, 2), p(b, 3));
    let w = target_where(b, ctx, t, &mut values);
    values.push(c.id.into());
    let same_campaign = p(b, values.len());
    let (history, cast) = if b == DatabaseBackend::Postgres {
        ("'[]'::jsonb", "::bigint")
    } else {
        ("'[]'", "")
    };
    let sql = format!(
        "INSERT INTO ota_campaign_devices \
           (campaign_id, device_id, tenant_id, position, state, attempts, state_at, history) \
         SELECT {campaign}, d.id, d.tenant_id, {after}{cast} + ROW_NUMBER() OVER (ORDER BY d.id), \
                'QUEUED', 0, {at}, {history} \
         FROM devices d WHERE {w} \
           AND NOT EXISTS (SELECT 1 FROM ota_campaign_devices c \
                           WHERE c.campaign_id = {same_campaign} AND c.device_id = d.id) \
         ON CONFLICT DO NOTHING"
    );
    Ok(db
        .execute_raw(Statement::from_sql_and_values(b, sql, values))
        .await?
        .rows_affected())
}

/// The campaigns the engine has work in: running, paused (its devices under way are still
/// followed), or ended by a person or the auto-stop with devices still to cancel (`finished_at`
/// is set once they are).
pub async fn live_campaigns(db: &impl ConnectionTrait, _: System) -> Result<Vec<Uuid>> {
    Ok(campaign::Entity::find()
        .select_only()
        .column(campaign::Column::Id)
        .filter(
            sea_orm::Condition::any()
                .add(campaign::Column::Status.is_in([
                    CampaignStatus::Running.as_str(),
                    CampaignStatus::Paused.as_str(),
                ]))
                .add(
                    sea_orm::Condition::all()
                        .add(campaign::Column::Status.is_in([
                            CampaignStatus::Canceled.as_str(),
                            CampaignStatus::Aborted.as_str(),
                        ]))
                        .add(campaign::Column::FinishedAt.is_null()),
                ),
        )
        .into_tuple()
        .all(db)
        .await?)
}

/// Takes (or keeps) the lease of a campaign for `owner` until `until`: answers the campaign when
/// this worker may run it now.
pub async fn lease(
    db: &impl ConnectionTrait,
    _: System,
    id: Uuid,
    owner: Uuid,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Option<campaign::Model>> {
    let taken = campaign::Entity::update_many()
        .col_expr(campaign::Column::LeaseOwner, Expr::value(owner))
        .col_expr(campaign::Column::LeaseUntil, Expr::value(until))
        .filter(campaign::Column::Id.eq(id))
        .filter(
            sea_orm::Condition::any()
                .add(campaign::Column::LeaseUntil.is_null())
                .add(campaign::Column::LeaseUntil.lt(now))
                .add(campaign::Column::LeaseOwner.eq(owner)),
        )
        .exec(db)
        .await?
        .rows_affected
        > 0;
    if !taken {
        return Ok(None);
    }
    Ok(campaign::Entity::find_by_id(id).one(db).await?)
}

/// A campaign's devices in these states (the engine's in-flight set is bounded by
/// `max_in_flight`; other callers page with `after`).
pub async fn devices_in(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    campaign: Uuid,
    states: &[OtaState],
    after: i64,
    limit: u64,
) -> Result<Vec<device::Model>> {
    Ok(device::Entity::find()
        .filter(device::Column::TenantId.eq(ctx.tenant_id().0))
        .filter(device::Column::CampaignId.eq(campaign))
        .filter(device::Column::State.is_in(states.iter().map(|s| s.as_str())))
        .filter(device::Column::Position.gt(after))
        .order_by_asc(device::Column::Position)
        .limit(limit)
        .all(db)
        .await?)
}

/// A device's rows in the campaigns that update it to `package` and have not seen it updated
/// yet (notified, or reporting its download steps).
pub async fn updating_to(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    device_id: Uuid,
    package: Uuid,
) -> Result<Vec<device::Model>> {
    let rows = device::Entity::find()
        .filter(device::Column::TenantId.eq(ctx.tenant_id().0))
        .filter(device::Column::DeviceId.eq(device_id))
        .filter(device::Column::State.is_in(IN_FLIGHT[..5].iter().map(|s| s.as_str())))
        .all(db)
        .await?;
    let mut mine = Vec::new();
    for r in rows {
        let c = get(db, ctx, r.campaign_id).await?;
        if c.package_id == package {
            mine.push(r);
        }
    }
    Ok(mine)
}

/// The next devices to notify: queued, due (a retry waits for its time), within the first
/// `up_to` positions (a wave), in rollout order.
pub async fn due(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    campaign: Uuid,
    now: DateTime<Utc>,
    up_to: Option<i64>,
    limit: u64,
) -> Result<Vec<device::Model>> {
    let mut find = device::Entity::find()
        .filter(device::Column::TenantId.eq(ctx.tenant_id().0))
        .filter(device::Column::CampaignId.eq(campaign))
        .filter(device::Column::State.eq(OtaState::Queued.as_str()))
        .filter(
            sea_orm::Condition::any()
                .add(device::Column::NextAt.is_null())
                .add(device::Column::NextAt.lte(now)),
        );
    if let Some(up_to) = up_to {
        find = find.filter(device::Column::Position.lte(up_to));
    }
    Ok(find
        .order_by_asc(device::Column::Position)
        .limit(limit)
        .all(db)
        .await?)
}

/// Queued devices within the first `up_to` positions, due or not (a wave is over without any).
pub async fn queued_within(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    campaign: Uuid,
    up_to: Option<i64>,
) -> Result<u64> {
    let mut find = device::Entity::find()
        .filter(device::Column::TenantId.eq(ctx.tenant_id().0))
        .filter(device::Column::CampaignId.eq(campaign))
        .filter(device::Column::State.eq(OtaState::Queued.as_str()));
    if let Some(up_to) = up_to {
        find = find.filter(device::Column::Position.lte(up_to));
    }
    Ok(find.count(db).await?)
}

/// Devices notified since `since` (the rate of a `rate` rollout).
pub async fn notified_since(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    campaign: Uuid,
    since: DateTime<Utc>,
) -> Result<u64> {
    Ok(device::Entity::find()
        .filter(device::Column::TenantId.eq(ctx.tenant_id().0))
        .filter(device::Column::CampaignId.eq(campaign))
        .filter(device::Column::NotifiedAt.gt(since))
        .count(db)
        .await?)
}

/// What moves with a device's state.
#[derive(Default)]
pub struct Move {
    pub reason: Option<String>,
    pub attempts: Option<i32>,
    pub next_at: Option<Option<DateTime<Utc>>>,
    pub notified_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    pub previous: Option<(Option<String>, Option<String>)>,
}

/// Moves a campaign's device from the state it was read in to `to`, adding the step to its
/// history (a conditional update: answers false when someone else moved it first), with its
/// `ota.execution.updated` event in the same transaction.
pub async fn move_device(
    db: &impl crate::db::Db,
    ctx: &TenantCtx,
    d: &device::Model,
    to: OtaState,
    m: Move,
    at: DateTime<Utc>,
) -> Result<bool> {
    let mut history: Vec<CampaignStep> =
        serde_json::from_value(d.history.clone()).unwrap_or_default();
    history.push(CampaignStep {
        state: to,
        at,
        reason: m.reason.clone(),
    });
    let reason = m.reason.clone();
    let mut update = device::Entity::update_many()
        .col_expr(device::Column::State, Expr::value(to.as_str()))
        .col_expr(device::Column::Reason, Expr::value(m.reason))
        .col_expr(device::Column::StateAt, Expr::value(at))
        .col_expr(
            device::Column::History,
            Expr::value(serde_json::to_value(history).unwrap_or_default()),
        );
    if let Some(a) = m.attempts {
        update = update.col_expr(device::Column::Attempts, Expr::value(a));
    }
    if let Some(n) = m.next_at {
        update = update.col_expr(device::Column::NextAt, Expr::value(n));
    }
    if let Some(n) = m.notified_at {
        update = update.col_expr(device::Column::NotifiedAt, Expr::value(n));
    }
    if let Some(u) = m.updated_at {
        update = update.col_expr(device::Column::UpdatedAt, Expr::value(u));
    }
    if let Some((title, version)) = m.previous {
        update = update
            .col_expr(device::Column::PreviousTitle, Expr::value(title))
            .col_expr(device::Column::PreviousVersion, Expr::value(version));
    }
    let txn = crate::db::begin_write(db).await?;
    let moved = update
        .filter(device::Column::TenantId.eq(ctx.tenant_id().0))
        .filter(device::Column::CampaignId.eq(d.campaign_id))
        .filter(device::Column::DeviceId.eq(d.device_id))
        .filter(device::Column::State.eq(d.state.clone()))
        .filter(device::Column::StateAt.eq(d.state_at))
        .exec(&txn)
        .await?
        .rows_affected
        > 0;
    if moved {
        crate::events::record(
            &txn,
            ctx.tenant_id(),
            stead_api_types::EventType::OtaExecutionUpdated,
            Some(crate::ids::DeviceId(d.device_id)),
            serde_json::json!({
                "campaign_id": d.campaign_id,
                "device_id": d.device_id,
                "state": to.as_str(),
                "previous_state": d.state,
                "reason": reason,
                "attempts": m.attempts.unwrap_or(d.attempts),
                "at": at,
            }),
        )
        .await?;
    }
    txn.commit().await?;
    Ok(moved)
}

/// Every queued device of a campaign canceled at once (a person canceled it, or it aborted).
pub async fn cancel_queued(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    campaign: Uuid,
    reason: &str,
    at: DateTime<Utc>,
) -> Result<u64> {
    Ok(device::Entity::update_many()
        .col_expr(
            device::Column::State,
            Expr::value(OtaState::Canceled.as_str()),
        )
        .col_expr(device::Column::Reason, Expr::value(reason))
        .col_expr(device::Column::StateAt, Expr::value(at))
        .filter(device::Column::TenantId.eq(ctx.tenant_id().0))
        .filter(device::Column::CampaignId.eq(campaign))
        .filter(device::Column::State.eq(OtaState::Queued.as_str()))
        .exec(db)
        .await?
        .rows_affected)
}

pub async fn set_wave(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    c: &campaign::Model,
    wave: i32,
) -> Result<bool> {
    Ok(campaign::Entity::update_many()
        .col_expr(campaign::Column::Wave, Expr::value(wave))
        .filter(campaign::Column::TenantId.eq(ctx.tenant_id().0))
        .filter(campaign::Column::Id.eq(c.id))
        .filter(campaign::Column::Wave.eq(c.wave))
        .exec(db)
        .await?
        .rows_affected
        > 0)
}

pub async fn set_enrolled(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    c: &campaign::Model,
) -> Result<()> {
    campaign::Entity::update_many()
        .col_expr(campaign::Column::Enrolled, Expr::value(true))
        .filter(campaign::Column::TenantId.eq(ctx.tenant_id().0))
        .filter(campaign::Column::Id.eq(c.id))
        .exec(db)
        .await?;
    Ok(())
}

pub async fn set_finished(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    c: &campaign::Model,
    at: DateTime<Utc>,
) -> Result<()> {
    campaign::Entity::update_many()
        .col_expr(campaign::Column::FinishedAt, Expr::value(at))
        .filter(campaign::Column::TenantId.eq(ctx.tenant_id().0))
        .filter(campaign::Column::Id.eq(c.id))
        .filter(campaign::Column::FinishedAt.is_null())
        .exec(db)
        .await?;
    Ok(())
}

/// Records the devices per state now, at most once a minute per campaign (the claim on
/// `progress_at` decides which worker writes it).
pub async fn record_progress(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    c: &campaign::Model,
    counts: &BTreeMap<OtaState, u64>,
    now: DateTime<Utc>,
) -> Result<()> {
    if c.progress_at
        .is_some_and(|at| now - at < chrono::Duration::seconds(60))
    {
        return Ok(());
    }
    let claimed = campaign::Entity::update_many()
        .col_expr(campaign::Column::ProgressAt, Expr::value(now))
        .filter(campaign::Column::TenantId.eq(ctx.tenant_id().0))
        .filter(campaign::Column::Id.eq(c.id))
        .filter(match c.progress_at {
            Some(at) => campaign::Column::ProgressAt.eq(at),
            None => campaign::Column::ProgressAt.is_null(),
        })
        .exec(db)
        .await?
        .rows_affected
        > 0;
    if claimed {
        progress::ActiveModel {
            campaign_id: Set(c.id),
            at: Set(now),
            counts: Set(serde_json::to_value(counts).unwrap_or_default()),
        }
        .insert(db)
        .await?;
    }
    Ok(())
}

pub async fn progress(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    campaign: Uuid,
) -> Result<Vec<progress::Model>> {
    get(db, ctx, campaign).await?;
    Ok(progress::Entity::find()
        .filter(progress::Column::CampaignId.eq(campaign))
        .order_by_asc(progress::Column::At)
        .limit(10_000)
        .all(db)
        .await?)
}

/// Whether a package is the subject of a campaign (it cannot be deleted then).
pub async fn package_in_campaign(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    package: Uuid,
) -> Result<bool> {
    Ok(campaign::Entity::find()
        .filter(campaign::Column::TenantId.eq(ctx.tenant_id().0))
        .filter(campaign::Column::PackageId.eq(package))
        .count(db)
        .await?
        > 0)
}
