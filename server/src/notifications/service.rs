//! Changing notification rules and silences (each audited in its transaction), and a person
//! reading their notifications.

use chrono::Utc;
use sea_orm::ActiveValue::Set;
use sea_orm::{ActiveModelTrait, DatabaseConnection, EntityTrait};
use stead_api_types::{
    CreateSilence, NotificationRule, NotificationRuleSpec, NotifyChannel, Recipients, Silence,
};
use uuid::Uuid;

use super::model::{rule, silence};
use super::repo;
use crate::app::AppState;
use crate::audit;
use crate::auth::{Actor, TenantCtx};
use crate::error::{Error, Result};
use crate::ids::{DeviceId, UserId};

/// Rules per tenant.
const MAX_RULES: usize = 100;
/// Longest grouping window: an hour.
const MAX_WINDOW_SECS: u32 = 3600;
/// Longest wait before escalating: a week.
const MAX_ESCALATE_SECS: u32 = 7 * 24 * 3600;

async fn check_recipients(
    db: &DatabaseConnection,
    ctx: &TenantCtx,
    r: &Recipients,
    field: &'static str,
) -> Result<()> {
    if r.users.is_empty() && r.roles.is_empty() {
        return Err(Error::invalid(
            "invalid_field",
            field,
            "name at least one person (`users`) or role (`roles`)",
        ));
    }
    for u in &r.users {
        crate::users::repo::get(db, ctx, UserId(*u))
            .await
            .map_err(|_| {
                Error::invalid(
                    "unknown_user",
                    field,
                    format!("there is no person {u} in this tenant"),
                )
            })?;
    }
    Ok(())
}

async fn check_rule(
    state: &AppState,
    ctx: &TenantCtx,
    mut spec: NotificationRuleSpec,
) -> Result<NotificationRuleSpec> {
    spec.name = crate::error::parse_name("notification rule", &spec.name, 100)?;
    for t in &mut spec.alarm_types {
        *t = crate::alarms::rules::check_alarm_type(t).map_err(|_| {
            Error::invalid(
                "invalid_field",
                "alarm_types",
                format!("{t:?} is not an alarm type"),
            )
        })?;
    }
    spec.channels.sort();
    spec.channels.dedup();
    if spec.channels.is_empty() {
        return Err(Error::invalid(
            "invalid_field",
            "channels",
            "name at least one channel: in_app, email or webhook",
        ));
    }
    if spec.changes.is_empty() {
        return Err(Error::invalid(
            "invalid_field",
            "changes",
            "name at least one change: raised, severity_changed, acknowledged or cleared",
        ));
    }
    if spec.channels.contains(&NotifyChannel::Email) && !state.mailer.configured() {
        return Err(Error::unavailable(
            "mail_not_configured",
            "the platform has no SMTP server (STEAD_SMTP_URL): the e-mail channel cannot send",
        ));
    }
    match (
        spec.channels.contains(&NotifyChannel::Webhook),
        spec.webhook_id,
    ) {
        (true, Some(w)) => {
            crate::webhooks::repo::get(&state.db, ctx, w)
                .await
                .map_err(|_| {
                    Error::invalid(
                        "unknown_webhook",
                        "webhook_id",
                        format!("there is no webhook endpoint {w} in this tenant"),
                    )
                })?;
        }
        (true, None) => {
            return Err(Error::invalid(
                "missing_field",
                "webhook_id",
                "the webhook channel needs the endpoint to send to (`webhook_id`)",
            ));
        }
        (false, Some(_)) => {
            return Err(Error::invalid(
                "invalid_field",
                "webhook_id",
                "`webhook_id` goes with the webhook channel",
            ));
        }
        (false, None) => {}
    }
    check_recipients(&state.db, ctx, &spec.recipients, "recipients").await?;
    if spec.group_window_secs > MAX_WINDOW_SECS {
        return Err(Error::invalid(
            "invalid_field",
            "group_window_secs",
            format!("at most {MAX_WINDOW_SECS} seconds"),
        ));
    }
    match (spec.escalate_after_secs, &spec.escalate_to) {
        (Some(s), Some(to)) if (1..=MAX_ESCALATE_SECS).contains(&s) => {
            check_recipients(&state.db, ctx, to, "escalate_to").await?;
        }
        (Some(_), Some(_)) => {
            return Err(Error::invalid(
                "invalid_field",
                "escalate_after_secs",
                format!("between 1 and {MAX_ESCALATE_SECS} seconds"),
            ));
        }
        (Some(_), None) => {
            return Err(Error::invalid(
                "missing_field",
                "escalate_to",
                "escalation needs people to escalate to (`escalate_to`)",
            ));
        }
        (None, Some(_)) => {
            return Err(Error::invalid(
                "missing_field",
                "escalate_after_secs",
                "escalation needs a time (`escalate_after_secs`)",
            ));
        }
        (None, None) => {}
    }
    Ok(spec)
}

pub async fn create_rule(
    state: &AppState,
    ctx: &TenantCtx,
    actor: &Actor,
    spec: NotificationRuleSpec,
) -> Result<NotificationRule> {
    let spec = check_rule(state, ctx, spec).await?;
    if repo::list_rules(&state.db, ctx).await?.len() >= MAX_RULES {
        return Err(Error::conflict(
            "too_many_rules",
            format!("a tenant has at most {MAX_RULES} notification rules"),
        ));
    }
    let now = Utc::now();
    let txn = audit::begin(&state.db, Some(ctx.tenant_id())).await?;
    let model = rule::ActiveModel {
        id: Set(Uuid::new_v4()),
        tenant_id: Set(ctx.tenant_id().0),
        name: Set(spec.name.clone()),
        enabled: Set(spec.enabled),
        spec: Set(serde_json::to_value(&spec).unwrap_or_default()),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await?;
    audit::record(
        &txn,
        Some(ctx.tenant_id()),
        actor,
        "notification_rule.create",
        "notification_rule",
        Some(model.id),
        serde_json::to_value(&spec).unwrap_or_default(),
    )
    .await?;
    txn.commit().await?;
    repo::rule_to_api(model)
}

pub async fn update_rule(
    state: &AppState,
    ctx: &TenantCtx,
    actor: &Actor,
    id: Uuid,
    spec: NotificationRuleSpec,
) -> Result<NotificationRule> {
    let existing = repo::get_rule(&state.db, ctx, id).await?;
    let spec = check_rule(state, ctx, spec).await?;
    let txn = audit::begin(&state.db, Some(ctx.tenant_id())).await?;
    let mut model: rule::ActiveModel = existing.into();
    model.name = Set(spec.name.clone());
    model.enabled = Set(spec.enabled);
    model.spec = Set(serde_json::to_value(&spec).unwrap_or_default());
    model.updated_at = Set(Utc::now());
    let model = model.update(&txn).await?;
    audit::record(
        &txn,
        Some(ctx.tenant_id()),
        actor,
        "notification_rule.update",
        "notification_rule",
        Some(id),
        serde_json::to_value(&spec).unwrap_or_default(),
    )
    .await?;
    txn.commit().await?;
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
        "notification_rule.delete",
        "notification_rule",
        Some(id),
        serde_json::json!({"name": existing.name}),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

pub async fn create_silence(
    state: &AppState,
    ctx: &TenantCtx,
    actor: &Actor,
    body: CreateSilence,
) -> Result<Silence> {
    if body.device_id.is_none() && body.group_id.is_none() && body.alarm_type.is_none() {
        return Err(Error::invalid(
            "invalid_field",
            "device_id",
            "a silence names a device, a group or an alarm type (or several)",
        ));
    }
    if let Some(d) = body.device_id {
        crate::devices::repo::get(&state.db, ctx, DeviceId(d))
            .await
            .map_err(|_| {
                Error::invalid(
                    "unknown_device",
                    "device_id",
                    format!("there is no device {d} in this tenant"),
                )
            })?;
    }
    if let Some(g) = body.group_id {
        crate::groups::repo::get(&state.db, ctx, g)
            .await
            .map_err(|_| {
                Error::invalid(
                    "unknown_group",
                    "group_id",
                    format!("there is no device group {g} in this tenant"),
                )
            })?;
    }
    let alarm_type = body
        .alarm_type
        .as_deref()
        .map(crate::alarms::rules::check_alarm_type)
        .transpose()?;
    let now = Utc::now();
    let starts_at = body.starts_at.unwrap_or(now);
    if body.ends_at <= starts_at || body.ends_at <= now {
        return Err(Error::invalid(
            "invalid_field",
            "ends_at",
            "a silence ends in the future, after it starts",
        ));
    }
    let reason = body
        .reason
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty());
    if reason.as_ref().is_some_and(|r| r.chars().count() > 500) {
        return Err(Error::invalid(
            "invalid_field",
            "reason",
            "a reason has at most 500 characters",
        ));
    }
    let txn = audit::begin(&state.db, Some(ctx.tenant_id())).await?;
    let model = silence::ActiveModel {
        id: Set(Uuid::new_v4()),
        tenant_id: Set(ctx.tenant_id().0),
        device_id: Set(body.device_id),
        group_id: Set(body.group_id),
        alarm_type: Set(alarm_type),
        starts_at: Set(starts_at),
        ends_at: Set(body.ends_at),
        reason: Set(reason),
        created_by: Set(Some(actor.user_id.0)),
        created_at: Set(now),
    }
    .insert(&txn)
    .await?;
    let api = repo::silence_to_api(model);
    audit::record(
        &txn,
        Some(ctx.tenant_id()),
        actor,
        "silence.create",
        "silence",
        Some(api.id),
        serde_json::to_value(&api).unwrap_or_default(),
    )
    .await?;
    txn.commit().await?;
    Ok(api)
}

/// Ends a silence now (it stays listed as past).
pub async fn end_silence(state: &AppState, ctx: &TenantCtx, actor: &Actor, id: Uuid) -> Result<()> {
    let existing = repo::get_silence(&state.db, ctx, id).await?;
    let txn = audit::begin(&state.db, Some(ctx.tenant_id())).await?;
    let now = Utc::now();
    let mut model: silence::ActiveModel = existing.into();
    model.ends_at = Set(now);
    model.update(&txn).await?;
    audit::record(
        &txn,
        Some(ctx.tenant_id()),
        actor,
        "silence.end",
        "silence",
        Some(id),
        serde_json::json!({}),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}
