//! Alarm and rule queries. People's reads are scoped to the caller's tenant and reach (an alarm
//! of a device out of reach is 404); the engine's writes name the device they evaluated.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::entity::prelude::*;
use sea_orm::{ConnectionTrait, PaginatorTrait, QueryOrder, QuerySelect};
use stead_api_types::{
    Alarm, AlarmChange, AlarmCounts, AlarmQuery, AlarmRule, AlarmRuleSpec, AlarmSeverity,
    AlarmStatusFilter,
};

use super::model::{alarm, history, rule};
use crate::auth::{System, TenantCtx};
use crate::devices::model as device;
use crate::error::{Error, Result};
use crate::ids::DeviceId;

pub fn severity_of(s: &str) -> AlarmSeverity {
    AlarmSeverity::parse(s).unwrap_or(AlarmSeverity::Indeterminate)
}

pub fn rule_to_api(r: rule::Model) -> Result<AlarmRule> {
    let spec: AlarmRuleSpec = serde_json::from_value(r.spec)
        .map_err(|e| anyhow::anyhow!("alarm rule {} holds an unreadable spec: {e}", r.id))?;
    Ok(AlarmRule {
        id: r.id,
        spec,
        created_at: r.created_at,
        updated_at: r.updated_at,
    })
}

// ---------------------------------------------------------------------------------------------
// Rules

pub async fn list_rules(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    profile: Option<Uuid>,
    device: Option<Uuid>,
) -> Result<Vec<rule::Model>> {
    let mut q = rule::Entity::find().filter(rule::Column::TenantId.eq(ctx.tenant_id().0));
    if let Some(p) = profile {
        q = q.filter(rule::Column::ProfileId.eq(p));
    }
    if let Some(d) = device {
        q = q.filter(rule::Column::DeviceId.eq(d));
    }
    Ok(q.order_by_asc(rule::Column::AlarmType)
        .order_by_asc(rule::Column::Id)
        .all(db)
        .await?)
}

pub async fn get_rule(db: &impl ConnectionTrait, ctx: &TenantCtx, id: Uuid) -> Result<rule::Model> {
    rule::Entity::find_by_id(id)
        .filter(rule::Column::TenantId.eq(ctx.tenant_id().0))
        .one(db)
        .await?
        .ok_or(Error::NotFound("alarm rule"))
}

/// Every enabled rule of every tenant, for the engines' caches.
pub async fn enabled_rules(db: &impl ConnectionTrait, _: System) -> Result<Vec<rule::Model>> {
    Ok(rule::Entity::find()
        .filter(rule::Column::Enabled.eq(true))
        .all(db)
        .await?)
}

// ---------------------------------------------------------------------------------------------
// Alarms, as people see them

/// The devices `ctx` reaches, as a condition on `alarms.device_id`.
fn device_in_reach(ctx: &TenantCtx) -> sea_orm::Condition {
    use sea_orm::sea_query::Query;
    let mut sub = Query::select();
    sub.column(device::Column::Id)
        .from(device::Entity)
        .cond_where(crate::devices::repo::in_reach(ctx));
    sea_orm::Condition::all()
        .add(alarm::Column::TenantId.eq(ctx.tenant_id().0))
        .add(alarm::Column::DeviceId.in_subquery(sub.to_owned()))
}

pub async fn get(db: &impl ConnectionTrait, ctx: &TenantCtx, id: Uuid) -> Result<alarm::Model> {
    alarm::Entity::find_by_id(id)
        .filter(device_in_reach(ctx))
        .one(db)
        .await?
        .ok_or(Error::NotFound("alarm"))
}

pub async fn list(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    q: &AlarmQuery,
    page: u64,
    per_page: u64,
) -> Result<(Vec<alarm::Model>, u64)> {
    let mut select = alarm::Entity::find().filter(device_in_reach(ctx));
    select = match q.status {
        Some(AlarmStatusFilter::Active) => select.filter(alarm::Column::Active.eq(true)),
        Some(AlarmStatusFilter::Cleared) => select.filter(alarm::Column::Active.eq(false)),
        Some(AlarmStatusFilter::Acknowledged) => {
            select.filter(alarm::Column::Acknowledged.eq(true))
        }
        Some(AlarmStatusFilter::Unacknowledged) => {
            select.filter(alarm::Column::Acknowledged.eq(false))
        }
        None => select,
    };
    if let Some(s) = q.severity {
        select = select.filter(alarm::Column::Severity.eq(s.as_str()));
    }
    if let Some(t) = q
        .alarm_type
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        select = select.filter(alarm::Column::AlarmType.eq(t));
    }
    if let Some(d) = q.device {
        select = select.filter(alarm::Column::DeviceId.eq(d));
    }
    if let Some(g) = q.group {
        select = select.filter(in_group(ctx, g));
    }
    if let Some(from) = q.from {
        select = select.filter(alarm::Column::StartedAt.gte(from));
    }
    if let Some(to) = q.to {
        select = select.filter(alarm::Column::StartedAt.lt(to));
    }
    let paginator = select
        .order_by_desc(alarm::Column::StartedAt)
        .order_by_desc(alarm::Column::Id)
        .paginate(db, per_page);
    let total = paginator.num_items().await?;
    Ok((paginator.fetch_page(page.saturating_sub(1)).await?, total))
}

fn in_group(ctx: &TenantCtx, group: Uuid) -> sea_orm::Condition {
    use crate::groups::model::member;
    use sea_orm::sea_query::Query;
    sea_orm::Condition::all().add(
        alarm::Column::DeviceId.in_subquery(
            Query::select()
                .column(member::Column::DeviceId)
                .from(member::Entity)
                .and_where(member::Column::GroupId.eq(group))
                .and_where(member::Column::TenantId.eq(ctx.tenant_id().0))
                .to_owned(),
        ),
    )
}

/// Active alarms by severity, for the tenant (what `ctx` reaches), a group or a device.
pub async fn counts(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    device: Option<Uuid>,
    group: Option<Uuid>,
) -> Result<AlarmCounts> {
    let mut select = alarm::Entity::find()
        .filter(device_in_reach(ctx))
        .filter(alarm::Column::Active.eq(true));
    if let Some(d) = device {
        select = select.filter(alarm::Column::DeviceId.eq(d));
    }
    if let Some(g) = group {
        select = select.filter(in_group(ctx, g));
    }
    let rows: Vec<(String, bool, i64)> = select
        .select_only()
        .column(alarm::Column::Severity)
        .column(alarm::Column::Acknowledged)
        .column_as(alarm::Column::Id.count(), "n")
        .group_by(alarm::Column::Severity)
        .group_by(alarm::Column::Acknowledged)
        .into_tuple()
        .all(db)
        .await?;
    let mut counts = AlarmCounts::default();
    for (severity, acknowledged, n) in rows {
        counts.add(severity_of(&severity), n.max(0) as u64);
        if !acknowledged {
            counts.unacknowledged += n.max(0) as u64;
        }
    }
    Ok(counts)
}

/// Alarms changed at or after `since` (oldest change first), for the live stream.
pub async fn changed_since(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    since: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<alarm::Model>> {
    Ok(alarm::Entity::find()
        .filter(device_in_reach(ctx))
        .filter(alarm::Column::UpdatedAt.gte(since))
        .order_by_asc(alarm::Column::UpdatedAt)
        .order_by_asc(alarm::Column::Id)
        .limit(limit)
        .all(db)
        .await?)
}

pub async fn history_of(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    alarm_id: Uuid,
) -> Result<Vec<AlarmChange>> {
    Ok(history::Entity::find()
        .filter(history::Column::AlarmId.eq(alarm_id))
        .filter(history::Column::TenantId.eq(ctx.tenant_id().0))
        .order_by_asc(history::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(|h| AlarmChange {
            at: h.at,
            kind: h.kind,
            severity: severity_of(&h.severity),
            actor: h.actor,
            text: h.text,
            values: h.values.unwrap_or(serde_json::Value::Null),
        })
        .collect())
}

/// The wire form of alarms, with their devices' names and assignees' e-mails in two queries.
pub async fn to_api(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    alarms: Vec<alarm::Model>,
) -> Result<Vec<Alarm>> {
    let mut device_ids: Vec<Uuid> = alarms.iter().map(|a| a.device_id).collect();
    device_ids.sort();
    device_ids.dedup();
    let names: HashMap<Uuid, String> = device::Entity::find()
        .select_only()
        .column(device::Column::Id)
        .column(device::Column::Name)
        .filter(device::Column::Id.is_in(device_ids))
        .filter(device::Column::TenantId.eq(ctx.tenant_id().0))
        .into_tuple()
        .all(db)
        .await?
        .into_iter()
        .collect();
    let mut user_ids: Vec<Uuid> = alarms.iter().filter_map(|a| a.assignee_id).collect();
    user_ids.sort();
    user_ids.dedup();
    let emails: HashMap<Uuid, String> = if user_ids.is_empty() {
        HashMap::new()
    } else {
        use crate::users::model as user;
        user::Entity::find()
            .select_only()
            .column(user::Column::Id)
            .column(user::Column::Email)
            .filter(user::Column::Id.is_in(user_ids))
            .filter(user::Column::TenantId.eq(ctx.tenant_id().0))
            .into_tuple()
            .all(db)
            .await?
            .into_iter()
            .collect()
    };
    let silenced = crate::notifications::repo::silenced(db, ctx, &alarms).await?;
    Ok(alarms
        .into_iter()
        .map(|a| Alarm {
            silenced: silenced.contains(&a.id),
            id: a.id,
            device_id: a.device_id,
            device_name: names.get(&a.device_id).cloned().unwrap_or_default(),
            alarm_type: a.alarm_type,
            severity: severity_of(&a.severity),
            active: a.active,
            acknowledged: a.acknowledged,
            rule_id: a.rule_id,
            started_at: a.started_at,
            updated_at: a.updated_at,
            acknowledged_at: a.acknowledged_at,
            cleared_at: a.cleared_at,
            ended_at: a.ended_at,
            details: a.details,
            assignee_email: a.assignee_id.and_then(|u| emails.get(&u).cloned()),
            assignee_id: a.assignee_id,
        })
        .collect())
}

/// A severity as a number, most severe highest (for sorting and "at least").
const RANK: &str = "CASE severity WHEN 'critical' THEN 5 WHEN 'major' THEN 4 WHEN 'minor' THEN 3 WHEN 'warning' THEN 2 ELSE 1 END";

/// The rank of a device's most severe active alarm, 0 without one (to sort the device list by).
pub fn worst_active_rank() -> sea_orm::sea_query::SimpleExpr {
    Expr::cust(format!(
        "COALESCE((SELECT MAX({RANK}) FROM alarms WHERE alarms.device_id = devices.id AND alarms.active), 0)"
    ))
}

/// Devices (of `ctx`'s tenant) with an active alarm at least as severe as `least`.
pub fn devices_alarmed_at_least(ctx: &TenantCtx, least: AlarmSeverity) -> sea_orm::Condition {
    use sea_orm::sea_query::Query;
    let severities: Vec<&str> = AlarmSeverity::ALL
        .into_iter()
        .filter(|s| *s >= least)
        .map(AlarmSeverity::as_str)
        .collect();
    sea_orm::Condition::all().add(
        device::Column::Id.in_subquery(
            Query::select()
                .column(alarm::Column::DeviceId)
                .from(alarm::Entity)
                .and_where(alarm::Column::TenantId.eq(ctx.tenant_id().0))
                .and_where(alarm::Column::Active.eq(true))
                .and_where(alarm::Column::Severity.is_in(severities))
                .to_owned(),
        ),
    )
}

/// The most severe active alarm of each of these devices that has one.
pub async fn worst_active(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    devices: &[Uuid],
) -> Result<HashMap<Uuid, AlarmSeverity>> {
    if devices.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(Uuid, String)> = alarm::Entity::find()
        .select_only()
        .column(alarm::Column::DeviceId)
        .column(alarm::Column::Severity)
        .filter(alarm::Column::TenantId.eq(ctx.tenant_id().0))
        .filter(alarm::Column::Active.eq(true))
        .filter(alarm::Column::DeviceId.is_in(devices.to_vec()))
        .into_tuple()
        .all(db)
        .await?;
    let mut worst: HashMap<Uuid, AlarmSeverity> = HashMap::new();
    for (d, s) in rows {
        let s = severity_of(&s);
        worst.entry(d).and_modify(|w| *w = (*w).max(s)).or_insert(s);
    }
    Ok(worst)
}

// ---------------------------------------------------------------------------------------------
// Changes (inside the caller's transaction)

#[allow(clippy::too_many_arguments)]
pub async fn add_history(
    db: &impl ConnectionTrait,
    _: &TenantCtx,
    a: &alarm::Model,
    kind: &str,
    actor: &str,
    text: Option<String>,
    values: Option<serde_json::Value>,
    at: DateTime<Utc>,
) -> Result<()> {
    history::ActiveModel {
        id: NotSet,
        alarm_id: Set(a.id),
        tenant_id: Set(a.tenant_id),
        at: Set(at),
        kind: Set(kind.to_owned()),
        severity: Set(a.severity.clone()),
        actor: Set(actor.to_owned()),
        text: Set(text),
        values: Set(values),
    }
    .insert(db)
    .await?;
    Ok(())
}

/// The active alarm of a type on a device, if any.
pub async fn active(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    device: DeviceId,
    alarm_type: &str,
) -> Result<Option<alarm::Model>> {
    Ok(alarm::Entity::find()
        .filter(alarm::Column::TenantId.eq(ctx.tenant_id().0))
        .filter(alarm::Column::DeviceId.eq(device.0))
        .filter(alarm::Column::AlarmType.eq(alarm_type))
        .filter(alarm::Column::Active.eq(true))
        .one(db)
        .await?)
}

/// What raising did.
pub enum Raised {
    New(alarm::Model),
    Stepped {
        alarm: alarm::Model,
        from: AlarmSeverity,
    },
    Unchanged,
}

/// Raises the alarm, or steps the active one to `severity`. The unique index on active alarms
/// decides between two nodes raising at once: the loser's insert fails and it steps (or leaves)
/// the winner's alarm instead.
#[allow(clippy::too_many_arguments)]
pub async fn raise(
    db: &sea_orm::DatabaseTransaction,
    ctx: &TenantCtx,
    device: DeviceId,
    alarm_type: &str,
    rule_id: Uuid,
    severity: AlarmSeverity,
    details: serde_json::Value,
    at: DateTime<Utc>,
) -> Result<Raised> {
    for _ in 0..2 {
        if let Some(a) = active(db, ctx, device, alarm_type).await? {
            let from = severity_of(&a.severity);
            if from == severity {
                return Ok(Raised::Unchanged);
            }
            let updated = alarm::Entity::update_many()
                .col_expr(alarm::Column::Severity, Expr::value(severity.as_str()))
                .col_expr(alarm::Column::UpdatedAt, Expr::value(at))
                .col_expr(alarm::Column::Details, Expr::value(details.clone()))
                .filter(alarm::Column::Id.eq(a.id))
                .filter(alarm::Column::TenantId.eq(ctx.tenant_id().0))
                .filter(alarm::Column::Active.eq(true))
                .filter(alarm::Column::Severity.eq(a.severity.clone()))
                .exec(db)
                .await?;
            if updated.rows_affected == 0 {
                // Changed under us (cleared or stepped by another node): look again.
                continue;
            }
            let alarm = alarm::Model {
                severity: severity.as_str().to_owned(),
                updated_at: at,
                details: details.clone(),
                ..a
            };
            add_history(
                db,
                ctx,
                &alarm,
                "severity_changed",
                "rule",
                Some(format!("{} → {}", from.as_str(), severity.as_str())),
                Some(details),
                at,
            )
            .await?;
            return Ok(Raised::Stepped { alarm, from });
        }
        let new = alarm::Model {
            id: Uuid::new_v4(),
            tenant_id: ctx.tenant_id().0,
            device_id: device.0,
            alarm_type: alarm_type.to_owned(),
            rule_id: Some(rule_id),
            severity: severity.as_str().to_owned(),
            active: true,
            acknowledged: false,
            started_at: at,
            updated_at: at,
            acknowledged_at: None,
            cleared_at: None,
            ended_at: None,
            details: details.clone(),
            assignee_id: None,
        };
        // A savepoint: a lost race must not abort the caller's transaction on PostgreSQL.
        let sp = sea_orm::TransactionTrait::begin(db).await?;
        match alarm::ActiveModel::from(new.clone()).insert(&sp).await {
            Ok(_) => {
                sp.commit().await?;
                add_history(db, ctx, &new, "raised", "rule", None, Some(details), at).await?;
                return Ok(Raised::New(new));
            }
            Err(e)
                if matches!(
                    e.sql_err(),
                    Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
                ) =>
            {
                sp.rollback().await?;
                continue;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Raised::Unchanged)
}

/// Clears the active alarm (by the rule or by a person); `None` when none was active.
pub async fn clear(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    a: &alarm::Model,
    actor: &str,
    values: Option<serde_json::Value>,
    at: DateTime<Utc>,
) -> Result<Option<alarm::Model>> {
    let ended = a.acknowledged.then_some(at);
    let updated = alarm::Entity::update_many()
        .col_expr(alarm::Column::Active, Expr::value(false))
        .col_expr(alarm::Column::ClearedAt, Expr::value(at))
        .col_expr(alarm::Column::UpdatedAt, Expr::value(at))
        .col_expr(alarm::Column::EndedAt, Expr::value(ended))
        .filter(alarm::Column::Id.eq(a.id))
        .filter(alarm::Column::TenantId.eq(ctx.tenant_id().0))
        .filter(alarm::Column::Active.eq(true))
        .exec(db)
        .await?;
    if updated.rows_affected == 0 {
        return Ok(None);
    }
    let cleared = alarm::Model {
        active: false,
        cleared_at: Some(at),
        updated_at: at,
        ended_at: ended,
        ..a.clone()
    };
    add_history(db, ctx, &cleared, "cleared", actor, None, values, at).await?;
    Ok(Some(cleared))
}

/// Acknowledges it; `None` when it already was.
pub async fn acknowledge(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    a: &alarm::Model,
    actor: &str,
    at: DateTime<Utc>,
) -> Result<Option<alarm::Model>> {
    let ended = (!a.active).then_some(at);
    let updated = alarm::Entity::update_many()
        .col_expr(alarm::Column::Acknowledged, Expr::value(true))
        .col_expr(alarm::Column::AcknowledgedAt, Expr::value(at))
        .col_expr(alarm::Column::UpdatedAt, Expr::value(at))
        .col_expr(alarm::Column::EndedAt, Expr::value(ended))
        .filter(alarm::Column::Id.eq(a.id))
        .filter(alarm::Column::TenantId.eq(ctx.tenant_id().0))
        .filter(alarm::Column::Acknowledged.eq(false))
        .exec(db)
        .await?;
    if updated.rows_affected == 0 {
        return Ok(None);
    }
    let acked = alarm::Model {
        acknowledged: true,
        acknowledged_at: Some(at),
        updated_at: at,
        ended_at: ended,
        ..a.clone()
    };
    add_history(db, ctx, &acked, "acknowledged", actor, None, None, at).await?;
    Ok(Some(acked))
}

pub async fn assign(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    a: &alarm::Model,
    user: Option<Uuid>,
    actor: &str,
    at: DateTime<Utc>,
) -> Result<alarm::Model> {
    alarm::Entity::update_many()
        .col_expr(alarm::Column::AssigneeId, Expr::value(user))
        .col_expr(alarm::Column::UpdatedAt, Expr::value(at))
        .filter(alarm::Column::Id.eq(a.id))
        .filter(alarm::Column::TenantId.eq(ctx.tenant_id().0))
        .exec(db)
        .await?;
    let changed = alarm::Model {
        assignee_id: user,
        updated_at: at,
        ..a.clone()
    };
    let kind = if user.is_some() {
        "assigned"
    } else {
        "unassigned"
    };
    add_history(db, ctx, &changed, kind, actor, None, None, at).await?;
    Ok(changed)
}
