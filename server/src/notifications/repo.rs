//! Notification queries, each scoped to the caller's tenant (and, for in-app notifications, to
//! the signed-in person).

use chrono::{DateTime, Utc};
use sea_orm::entity::prelude::*;
use sea_orm::{ConnectionTrait, PaginatorTrait, QueryOrder};
use stead_api_types::{Notification, NotificationRule, NotificationRuleSpec, Silence};

use super::model::{notification, rule, silence};
use crate::auth::{System, TenantCtx};
use crate::error::{Error, Result};
use crate::ids::UserId;

pub fn rule_to_api(r: rule::Model) -> Result<NotificationRule> {
    let spec: NotificationRuleSpec = serde_json::from_value(r.spec)
        .map_err(|e| anyhow::anyhow!("notification rule {} holds an unreadable spec: {e}", r.id))?;
    Ok(NotificationRule {
        id: r.id,
        spec,
        created_at: r.created_at,
        updated_at: r.updated_at,
    })
}

pub fn silence_to_api(s: silence::Model) -> Silence {
    Silence {
        id: s.id,
        device_id: s.device_id,
        group_id: s.group_id,
        alarm_type: s.alarm_type,
        starts_at: s.starts_at,
        ends_at: s.ends_at,
        reason: s.reason,
        created_at: s.created_at,
    }
}

pub fn notification_to_api(n: notification::Model) -> Notification {
    Notification {
        id: n.id,
        alarm_id: n.alarm_id,
        title: n.title,
        body: n.body,
        severity: crate::alarms::repo::severity_of(&n.severity),
        created_at: n.created_at,
        read: n.read_at.is_some(),
    }
}

pub async fn list_rules(db: &impl ConnectionTrait, ctx: &TenantCtx) -> Result<Vec<rule::Model>> {
    Ok(rule::Entity::find()
        .filter(rule::Column::TenantId.eq(ctx.tenant_id().0))
        .order_by_asc(rule::Column::Name)
        .all(db)
        .await?)
}

pub async fn get_rule(db: &impl ConnectionTrait, ctx: &TenantCtx, id: Uuid) -> Result<rule::Model> {
    rule::Entity::find_by_id(id)
        .filter(rule::Column::TenantId.eq(ctx.tenant_id().0))
        .one(db)
        .await?
        .ok_or(Error::NotFound("notification rule"))
}

/// Every enabled rule of every tenant, for the notifier.
pub async fn enabled_rules(db: &impl ConnectionTrait, _: System) -> Result<Vec<rule::Model>> {
    Ok(rule::Entity::find()
        .filter(rule::Column::Enabled.eq(true))
        .all(db)
        .await?)
}

pub async fn list_silences(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    current_only: bool,
) -> Result<Vec<silence::Model>> {
    let mut q = silence::Entity::find().filter(silence::Column::TenantId.eq(ctx.tenant_id().0));
    if current_only {
        q = q.filter(silence::Column::EndsAt.gt(Utc::now()));
    }
    Ok(q.order_by_desc(silence::Column::CreatedAt).all(db).await?)
}

/// Every silence in force at `at`, of every tenant, for the notifier.
pub async fn silences_at(
    db: &impl ConnectionTrait,
    _: System,
    at: DateTime<Utc>,
) -> Result<Vec<silence::Model>> {
    Ok(silence::Entity::find()
        .filter(silence::Column::StartsAt.lte(at))
        .filter(silence::Column::EndsAt.gt(at))
        .all(db)
        .await?)
}

/// Which of these alarms a silence in force now holds back.
pub async fn silenced(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    alarms: &[crate::alarms::model::alarm::Model],
) -> Result<std::collections::HashSet<Uuid>> {
    let now = Utc::now();
    let silences: Vec<silence::Model> = silence::Entity::find()
        .filter(silence::Column::TenantId.eq(ctx.tenant_id().0))
        .filter(silence::Column::StartsAt.lte(now))
        .filter(silence::Column::EndsAt.gt(now))
        .all(db)
        .await?;
    if silences.is_empty() || alarms.is_empty() {
        return Ok(Default::default());
    }
    let groups: Vec<Uuid> = silences.iter().filter_map(|s| s.group_id).collect();
    let members: std::collections::HashSet<(Uuid, Uuid)> = if groups.is_empty() {
        Default::default()
    } else {
        use crate::groups::model::member;
        use sea_orm::QuerySelect;
        member::Entity::find()
            .select_only()
            .column(member::Column::GroupId)
            .column(member::Column::DeviceId)
            .filter(member::Column::TenantId.eq(ctx.tenant_id().0))
            .filter(member::Column::GroupId.is_in(groups))
            .into_tuple::<(Uuid, Uuid)>()
            .all(db)
            .await?
            .into_iter()
            .collect()
    };
    Ok(alarms
        .iter()
        .filter(|a| silences.iter().any(|s| holds(s, a, &members)))
        .map(|a| a.id)
        .collect())
}

/// Whether the silence holds back the alarm's notifications (`members`: (group, device)).
pub fn holds(
    s: &silence::Model,
    a: &crate::alarms::model::alarm::Model,
    members: &std::collections::HashSet<(Uuid, Uuid)>,
) -> bool {
    s.tenant_id == a.tenant_id
        && s.device_id.is_none_or(|d| d == a.device_id)
        && s.alarm_type.as_ref().is_none_or(|t| *t == a.alarm_type)
        && s.group_id
            .is_none_or(|g| members.contains(&(g, a.device_id)))
}

pub async fn get_silence(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    id: Uuid,
) -> Result<silence::Model> {
    silence::Entity::find_by_id(id)
        .filter(silence::Column::TenantId.eq(ctx.tenant_id().0))
        .one(db)
        .await?
        .ok_or(Error::NotFound("silence"))
}

/// A person's in-app notifications, newest first, with how many are unread.
pub async fn of_person(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    user: UserId,
    unread_only: bool,
    page: u64,
    per_page: u64,
) -> Result<(Vec<notification::Model>, u64, u64)> {
    let mine = || {
        notification::Entity::find()
            .filter(notification::Column::TenantId.eq(ctx.tenant_id().0))
            .filter(notification::Column::UserId.eq(user.0))
    };
    let unread = mine()
        .filter(notification::Column::ReadAt.is_null())
        .count(db)
        .await?;
    let mut q = mine();
    if unread_only {
        q = q.filter(notification::Column::ReadAt.is_null());
    }
    let paginator = q
        .order_by_desc(notification::Column::CreatedAt)
        .order_by_desc(notification::Column::Id)
        .paginate(db, per_page);
    let total = paginator.num_items().await?;
    Ok((
        paginator.fetch_page(page.saturating_sub(1)).await?,
        total,
        unread,
    ))
}

/// Marks one (or, with `None`, every) unread notification of the person read; answers how many.
pub async fn mark_read(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    user: UserId,
    id: Option<Uuid>,
) -> Result<u64> {
    let mut q = notification::Entity::update_many()
        .col_expr(notification::Column::ReadAt, Expr::value(Utc::now()))
        .filter(notification::Column::TenantId.eq(ctx.tenant_id().0))
        .filter(notification::Column::UserId.eq(user.0))
        .filter(notification::Column::ReadAt.is_null());
    if let Some(id) = id {
        let exists = notification::Entity::find_by_id(id)
            .filter(notification::Column::TenantId.eq(ctx.tenant_id().0))
            .filter(notification::Column::UserId.eq(user.0))
            .count(db)
            .await?;
        if exists == 0 {
            return Err(Error::NotFound("notification"));
        }
        q = q.filter(notification::Column::Id.eq(id));
    }
    Ok(q.exec(db).await?.rows_affected)
}
