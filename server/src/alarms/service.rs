//! Changing alarm rules, and what people do to alarms: each change with its history entry, its
//! outbox event and its audit entry in one transaction. After a rule changes, this node reads
//! the rules again at once (the others within seconds).

use chrono::Utc;
use sea_orm::ActiveValue::Set;
use sea_orm::{ActiveModelTrait, DatabaseConnection, EntityTrait};
use stead_api_types::{AlarmAction, AlarmRule, AlarmRuleSpec};
use uuid::Uuid;

use super::model::{alarm, rule};
use super::rules::Rule;
use super::{Change, notify_change, repo};
use crate::app::AppState;
use crate::audit;
use crate::auth::{Actor, TenantCtx};
use crate::error::{Error, Result};
use crate::ids::{DeviceId, UserId};

/// Rules per tenant.
const MAX_RULES: usize = 500;

async fn check_owner(db: &DatabaseConnection, ctx: &TenantCtx, spec: &AlarmRuleSpec) -> Result<()> {
    match (spec.profile_id, spec.device_id) {
        (Some(p), None) => crate::profiles::repo::get(db, ctx, p)
            .await
            .map(|_| ())
            .map_err(|_| {
                Error::invalid(
                    "unknown_profile",
                    "profile_id",
                    format!("there is no device profile {p} in this tenant"),
                )
            }),
        (None, Some(d)) => crate::devices::repo::get(db, ctx, DeviceId(d))
            .await
            .map(|_| ())
            .map_err(|_| {
                Error::invalid(
                    "unknown_device",
                    "device_id",
                    format!("there is no device {d} in this tenant"),
                )
            }),
        _ => Err(Error::invalid(
            "invalid_rule",
            "profile_id",
            "a rule belongs to exactly one of a profile (`profile_id`) or a device (`device_id`)",
        )),
    }
}

fn taken(e: sea_orm::DbErr) -> Error {
    Error::on_unique_violation(
        e,
        "alarm_rule_exists",
        "this profile (or device) already has a rule of this alarm type: change that one",
    )
}

pub async fn create_rule(
    state: &AppState,
    ctx: &TenantCtx,
    actor: &Actor,
    mut spec: AlarmRuleSpec,
) -> Result<AlarmRule> {
    let parsed = Rule::parse(&spec)?;
    spec.alarm_type = parsed.alarm_type;
    check_owner(&state.db, ctx, &spec).await?;
    if repo::list_rules(&state.db, ctx, None, None).await?.len() >= MAX_RULES {
        return Err(Error::conflict(
            "too_many_rules",
            format!("a tenant has at most {MAX_RULES} alarm rules"),
        ));
    }
    let now = Utc::now();
    let txn = audit::begin(&state.db, Some(ctx.tenant_id())).await?;
    let model = rule::ActiveModel {
        id: Set(Uuid::new_v4()),
        tenant_id: Set(ctx.tenant_id().0),
        profile_id: Set(spec.profile_id),
        device_id: Set(spec.device_id),
        alarm_type: Set(spec.alarm_type.clone()),
        description: Set(spec.description.clone()),
        enabled: Set(spec.enabled),
        spec: Set(serde_json::to_value(&spec).unwrap_or_default()),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await
    .map_err(taken)?;
    audit::record(
        &txn,
        Some(ctx.tenant_id()),
        actor,
        "alarm_rule.create",
        "alarm_rule",
        Some(model.id),
        serde_json::to_value(&spec).unwrap_or_default(),
    )
    .await?;
    txn.commit().await?;
    state.alarms.rules.refresh(&state.db).await?;
    repo::rule_to_api(model)
}

pub async fn update_rule(
    state: &AppState,
    ctx: &TenantCtx,
    actor: &Actor,
    id: Uuid,
    mut spec: AlarmRuleSpec,
) -> Result<AlarmRule> {
    let existing = repo::get_rule(&state.db, ctx, id).await?;
    let parsed = Rule::parse(&spec)?;
    spec.alarm_type = parsed.alarm_type;
    check_owner(&state.db, ctx, &spec).await?;
    let txn = audit::begin(&state.db, Some(ctx.tenant_id())).await?;
    let mut model: rule::ActiveModel = existing.into();
    model.profile_id = Set(spec.profile_id);
    model.device_id = Set(spec.device_id);
    model.alarm_type = Set(spec.alarm_type.clone());
    model.description = Set(spec.description.clone());
    model.enabled = Set(spec.enabled);
    model.spec = Set(serde_json::to_value(&spec).unwrap_or_default());
    model.updated_at = Set(Utc::now());
    let model = model.update(&txn).await.map_err(taken)?;
    audit::record(
        &txn,
        Some(ctx.tenant_id()),
        actor,
        "alarm_rule.update",
        "alarm_rule",
        Some(id),
        serde_json::to_value(&spec).unwrap_or_default(),
    )
    .await?;
    txn.commit().await?;
    state.alarms.rules.refresh(&state.db).await?;
    repo::rule_to_api(model)
}

pub async fn delete_rule(state: &AppState, ctx: &TenantCtx, actor: &Actor, id: Uuid) -> Result<()> {
    let existing = repo::get_rule(&state.db, ctx, id).await?;
    let txn = audit::begin(&state.db, Some(ctx.tenant_id())).await?;
    rule::Entity::delete_by_id(id).exec(&txn).await?;
    audit::record(
        &txn,
        Some(ctx.tenant_id()),
        actor,
        "alarm_rule.delete",
        "alarm_rule",
        Some(id),
        serde_json::json!({"alarm_type": existing.alarm_type}),
    )
    .await?;
    txn.commit().await?;
    state.alarms.rules.refresh(&state.db).await?;
    Ok(())
}

/// One action on one alarm, in its own transaction. Answers the alarm as it is now.
pub async fn act(
    state: &AppState,
    ctx: &TenantCtx,
    actor: &Actor,
    id: Uuid,
    action: &AlarmAction,
) -> Result<alarm::Model> {
    let a = repo::get(&state.db, ctx, id).await?;
    if let AlarmAction::Assign { user_id: Some(u) } = action {
        crate::users::repo::get(&state.db, &TenantCtx::new(ctx.tenant_id()), UserId(*u))
            .await
            .map_err(|_| {
                Error::invalid(
                    "unknown_user",
                    "user_id",
                    format!("there is no person {u} in this tenant"),
                )
            })?;
    }
    if let AlarmAction::Comment { text } = action
        && (text.trim().is_empty() || text.chars().count() > 2000)
    {
        return Err(Error::invalid(
            "invalid_field",
            "text",
            "a comment is 1–2000 characters",
        ));
    }
    let now = Utc::now();
    let who = actor.email.as_str();
    let txn = audit::begin(&state.db, Some(ctx.tenant_id())).await?;
    let (changed, change) = match action {
        AlarmAction::Acknowledge => (
            repo::acknowledge(&txn, ctx, &a, who, now).await?,
            Change::Acknowledged,
        ),
        AlarmAction::Clear => (
            repo::clear(&txn, ctx, &a, who, None, now).await?,
            Change::Cleared,
        ),
        AlarmAction::Assign { user_id } => (
            Some(repo::assign(&txn, ctx, &a, *user_id, who, now).await?),
            Change::Assigned,
        ),
        AlarmAction::Comment { text } => {
            repo::add_history(
                &txn,
                ctx,
                &a,
                "commented",
                who,
                Some(text.trim().to_owned()),
                None,
                now,
            )
            .await?;
            (Some(a.clone()), Change::Commented)
        }
    };
    let Some(changed) = changed else {
        // Already so (acknowledged, or cleared): nothing to record.
        txn.rollback().await?;
        return Ok(a);
    };
    notify_change(&txn, &changed, change).await?;
    audit::record(
        &txn,
        Some(ctx.tenant_id()),
        actor,
        &format!("alarm.{}", action_name(action)),
        "alarm",
        Some(a.id),
        serde_json::json!({
            "device_id": a.device_id,
            "type": a.alarm_type,
            "action": action,
        }),
    )
    .await?;
    txn.commit().await?;
    if change == Change::Cleared {
        // The rule starts afresh on this device: a condition still met raises a new alarm.
        forget_progress(state, &changed).await;
    }
    Ok(changed)
}

fn action_name(a: &AlarmAction) -> &'static str {
    match a {
        AlarmAction::Acknowledge => "acknowledge",
        AlarmAction::Clear => "clear",
        AlarmAction::Assign { .. } => "assign",
        AlarmAction::Comment { .. } => "comment",
    }
}

async fn forget_progress(state: &AppState, a: &alarm::Model) {
    if let Some(rule) = a.rule_id
        && let Err(e) = state
            .live
            .save_alarm_state(DeviceId(a.device_id), vec![(rule.to_string(), None)])
            .await
    {
        tracing::warn!(alarm = %a.id, error = %e, "forgetting a cleared alarm's rule progress failed");
    }
}
