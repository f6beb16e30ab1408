//! The notifier (worker role): every second it works through the alarm changes that committed
//! (`alarm_notices`), matches them against the tenants' notification rules and silences, and
//! sends: in-app notifications, e-mail, and the change's event to a webhook endpoint (through the
//! integrations' delivery engine, so signed and retried). Changes of one alarm type that a rule
//! groups wait for the rule's window, then go out as one notification naming every device. It
//! also escalates alarms left unacknowledged past a rule's time, once per alarm and rule.
//!
//! Each notice is claimed with a conditional update before it is sent, so two workers never send
//! one twice; an escalation is claimed by inserting its row (the primary key decides).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::ActiveValue::Set;
use sea_orm::entity::prelude::*;
use sea_orm::{ActiveModelTrait, QueryOrder, QuerySelect};
use stead_api_types::{
    AlarmChangeKind, AlarmSeverity, NotificationRuleSpec, NotifyChannel, Recipients,
};

use super::model::{escalation, notice, notification, silence};
use super::repo;
use crate::alarms::model::alarm;
use crate::alarms::repo::severity_of;
use crate::app::AppState;
use crate::auth::System;
use crate::error::Result;

/// Notices read per tick: a whole burst, so that one grouped notification names it all.
const PENDING: u64 = 20_000;
/// Notices claimed per statement.
const CLAIM_CHUNK: usize = 500;

/// Devices a grouped notification names before "and N more".
const NAMED: usize = 100;

struct Rule {
    id: Uuid,
    tenant: Uuid,
    spec: NotificationRuleSpec,
}

impl Rule {
    fn speaks_of(&self, a: &alarm::Model, change: AlarmChangeKind) -> bool {
        a.tenant_id == self.tenant
            && self.spec.changes.contains(&change)
            && severity_of(&a.severity) >= self.spec.min_severity
            && (self.spec.alarm_types.is_empty() || self.spec.alarm_types.contains(&a.alarm_type))
    }
}

pub async fn run(state: AppState) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let Err(e) = tick(&state).await {
            tracing::warn!(error = %e, "sending alarm notifications failed; trying again");
        }
    }
}

async fn tick(state: &AppState) -> Result<()> {
    let rules: Vec<Rule> = repo::enabled_rules(&state.db, System::worker())
        .await?
        .into_iter()
        .filter_map(|r| {
            let spec = serde_json::from_value(r.spec).ok()?;
            Some(Rule {
                id: r.id,
                tenant: r.tenant_id,
                spec,
            })
        })
        .collect();
    let now = Utc::now();
    let silences = Silences::load(state, now).await?;
    notices(state, &rules, &silences, now).await?;
    escalate(state, &rules, &silences, now).await?;
    Ok(())
}

/// The silences in force, with the members of the groups they name.
struct Silences {
    list: Vec<silence::Model>,
    members: HashSet<(Uuid, Uuid)>,
}

impl Silences {
    async fn load(state: &AppState, now: DateTime<Utc>) -> Result<Silences> {
        let list = repo::silences_at(&state.db, System::worker(), now).await?;
        let groups: Vec<Uuid> = list.iter().filter_map(|s| s.group_id).collect();
        let members = if groups.is_empty() {
            HashSet::new()
        } else {
            use crate::groups::model::member;
            member::Entity::find()
                .select_only()
                .column(member::Column::GroupId)
                .column(member::Column::DeviceId)
                .filter(member::Column::GroupId.is_in(groups))
                .into_tuple::<(Uuid, Uuid)>()
                .all(&state.db)
                .await?
                .into_iter()
                .collect()
        };
        Ok(Silences { list, members })
    }

    fn hold(&self, a: &alarm::Model) -> bool {
        self.list.iter().any(|s| repo::holds(s, a, &self.members))
    }
}

async fn notices(
    state: &AppState,
    rules: &[Rule],
    silences: &Silences,
    now: DateTime<Utc>,
) -> Result<()> {
    let pending = notice::Entity::find()
        .filter(notice::Column::Processed.eq(false))
        .order_by_asc(notice::Column::Id)
        .limit(PENDING)
        .all(&state.db)
        .await?;
    if pending.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = pending.iter().map(|n| n.alarm_id).collect();
    let alarms: HashMap<Uuid, alarm::Model> = alarm::Entity::find()
        .filter(alarm::Column::Id.is_in(ids))
        .all(&state.db)
        .await?
        .into_iter()
        .map(|a| (a.id, a))
        .collect();
    // Which rules each notice is for, and the first time of each (rule, type, change) group.
    let mut first: HashMap<GroupKey, DateTime<Utc>> = HashMap::new();
    let mut matched: Vec<(
        &notice::Model,
        Option<&alarm::Model>,
        AlarmChangeKind,
        Vec<&Rule>,
    )> = Vec::new();
    for n in &pending {
        let change = AlarmChangeKind::parse(&n.change).unwrap_or(AlarmChangeKind::Raised);
        let a = alarms.get(&n.alarm_id);
        let for_rules: Vec<&Rule> = match a {
            Some(a) => rules.iter().filter(|r| r.speaks_of(a, change)).collect(),
            None => Vec::new(),
        };
        for r in &for_rules {
            let key = (r.id, type_of(a), change);
            let at = first.entry(key).or_insert(n.at);
            *at = (*at).min(n.at);
        }
        matched.push((n, a, change, for_rules));
    }
    // Ready: every group the notice is in has waited its window.
    let ready: Vec<_> = matched
        .into_iter()
        .filter(|(n, a, change, for_rules)| {
            for_rules.iter().all(|r| {
                let started = first[&(r.id, type_of(*a), *change)];
                now >= started + chrono::Duration::seconds(i64::from(r.spec.group_window_secs))
            }) && n.at <= now
        })
        .collect();
    // Claimed here, a chunk per statement; what another worker took is left to it.
    let mut claimed: HashSet<i64> = HashSet::new();
    let ids: Vec<i64> = ready.iter().map(|(n, ..)| n.id).collect();
    for chunk in ids.chunks(CLAIM_CHUNK) {
        let taken = notice::Entity::update_many()
            .col_expr(notice::Column::Processed, Expr::value(true))
            .filter(notice::Column::Id.is_in(chunk.to_vec()))
            .filter(notice::Column::Processed.eq(false))
            .exec_with_returning(&state.db)
            .await?;
        claimed.extend(taken.into_iter().map(|n| n.id));
    }
    let mut groups: HashMap<GroupKey, Vec<(&notice::Model, &alarm::Model)>> = HashMap::new();
    for (n, a, change, for_rules) in ready {
        let Some(a) = a else { continue };
        if !claimed.contains(&n.id) || silences.hold(a) {
            continue;
        }
        for r in for_rules {
            groups
                .entry((r.id, a.alarm_type.clone(), change))
                .or_default()
                .push((n, a));
        }
    }
    for ((rule_id, alarm_type, change), items) in groups {
        let Some(rule) = rules.iter().find(|r| r.id == rule_id) else {
            continue;
        };
        let batches: Vec<Vec<(&notice::Model, &alarm::Model)>> = if rule.spec.group_window_secs > 0
        {
            vec![items]
        } else {
            items.into_iter().map(|i| vec![i]).collect()
        };
        for batch in batches {
            send(
                state,
                rule,
                &alarm_type,
                change,
                &batch,
                &rule.spec.recipients,
                false,
            )
            .await?;
        }
    }
    Ok(())
}

/// A rule's group of changes: the rule, the alarm type, the change.
type GroupKey = (Uuid, String, AlarmChangeKind);

fn type_of(a: Option<&alarm::Model>) -> String {
    a.map(|a| a.alarm_type.clone()).unwrap_or_default()
}

async fn escalate(
    state: &AppState,
    rules: &[Rule],
    silences: &Silences,
    now: DateTime<Utc>,
) -> Result<()> {
    for rule in rules {
        let (Some(secs), Some(to)) = (rule.spec.escalate_after_secs, &rule.spec.escalate_to) else {
            continue;
        };
        let before = now - chrono::Duration::seconds(i64::from(secs));
        let mut q = alarm::Entity::find()
            .filter(alarm::Column::TenantId.eq(rule.tenant))
            .filter(alarm::Column::Active.eq(true))
            .filter(alarm::Column::Acknowledged.eq(false))
            .filter(alarm::Column::StartedAt.lte(before));
        if !rule.spec.alarm_types.is_empty() {
            q = q.filter(alarm::Column::AlarmType.is_in(rule.spec.alarm_types.clone()));
        }
        let done: Vec<Uuid> = escalation::Entity::find()
            .select_only()
            .column(escalation::Column::AlarmId)
            .filter(escalation::Column::RuleId.eq(rule.id))
            .into_tuple()
            .all(&state.db)
            .await?;
        let due: Vec<alarm::Model> = q
            .limit(500)
            .all(&state.db)
            .await?
            .into_iter()
            .filter(|a| {
                !done.contains(&a.id)
                    && severity_of(&a.severity) >= rule.spec.min_severity
                    && !silences.hold(a)
            })
            .collect();
        for a in due {
            let claimed = escalation::ActiveModel {
                alarm_id: Set(a.id),
                rule_id: Set(rule.id),
                at: Set(now),
            }
            .insert(&state.db)
            .await
            .is_ok();
            if claimed {
                let n = notice::Model {
                    id: 0,
                    tenant_id: a.tenant_id,
                    alarm_id: a.id,
                    change: "escalated".into(),
                    event_seq: 0,
                    at: now,
                    processed: true,
                };
                send(
                    state,
                    rule,
                    &a.alarm_type,
                    AlarmChangeKind::Raised,
                    &[(&n, &a)],
                    to,
                    true,
                )
                .await?;
            }
        }
    }
    Ok(())
}

/// The people a rule names: by id, and everyone active holding one of its roles.
async fn people(state: &AppState, tenant: Uuid, r: &Recipients) -> Result<Vec<(Uuid, String)>> {
    use crate::users::model as user;
    let roles: Vec<&str> = r.roles.iter().map(|r| r.as_str()).collect();
    let mut cond = sea_orm::Condition::any();
    if !r.users.is_empty() {
        cond = cond.add(user::Column::Id.is_in(r.users.clone()));
    }
    if !roles.is_empty() {
        cond = cond.add(user::Column::Role.is_in(roles));
    }
    Ok(user::Entity::find()
        .select_only()
        .column(user::Column::Id)
        .column(user::Column::Email)
        .filter(user::Column::TenantId.eq(tenant))
        .filter(user::Column::Active.eq(true))
        .filter(cond)
        .into_tuple()
        .all(&state.db)
        .await?)
}

/// One notification about one or more alarms of a type, by every channel of the rule.
async fn send(
    state: &AppState,
    rule: &Rule,
    alarm_type: &str,
    change: AlarmChangeKind,
    batch: &[(&notice::Model, &alarm::Model)],
    to: &Recipients,
    escalated: bool,
) -> Result<()> {
    let Some((_, first)) = batch.first() else {
        return Ok(());
    };
    let severity: AlarmSeverity = batch
        .iter()
        .map(|(_, a)| severity_of(&a.severity))
        .max()
        .unwrap_or(AlarmSeverity::Indeterminate);
    let devices: BTreeSet<Uuid> = batch.iter().map(|(_, a)| a.device_id).collect();
    // Names of those a notification lists (the count says how many there are).
    let named: Vec<Uuid> = devices.iter().copied().take(NAMED).collect();
    let names: Vec<String> = crate::devices::model::Entity::find()
        .select_only()
        .column(crate::devices::model::Column::Name)
        .filter(crate::devices::model::Column::Id.is_in(named))
        .order_by_asc(crate::devices::model::Column::Name)
        .into_tuple()
        .all(&state.db)
        .await?;
    let what = if escalated {
        "not acknowledged in time".to_owned()
    } else {
        change.as_str().replace('_', " ")
    };
    let sev = severity.as_str().to_uppercase();
    let url = crate::mail::public_url(&state.config);
    let (title, body) = if devices.len() == 1 && names.len() == 1 {
        (
            format!("[{sev}] {alarm_type} {what} on {}", names[0]),
            format!(
                "Alarm {alarm_type} on device {} is {what} (severity {}).\nValues: {}\n\n{url}/alarms/{}",
                names[0], first.severity, first.details, first.id
            ),
        )
    } else {
        let mut listed = names.join("\n  ");
        if devices.len() > names.len() {
            listed.push_str(&format!("\n  … and {} more", devices.len() - names.len()));
        }
        (
            format!("[{sev}] {alarm_type} {what} on {} devices", devices.len()),
            format!(
                "Alarm {alarm_type} is {what} on {} devices:\n  {listed}\n\n{url}/alarms?alarm_type={alarm_type}",
                devices.len()
            ),
        )
    };
    let people = people(state, rule.tenant, to).await?;
    let channels = &rule.spec.channels;
    let now = Utc::now();
    if channels.contains(&NotifyChannel::InApp) {
        for (user, _) in &people {
            notification::ActiveModel {
                id: Set(Uuid::new_v4()),
                tenant_id: Set(rule.tenant),
                user_id: Set(*user),
                alarm_id: Set((batch.len() == 1).then_some(first.id)),
                title: Set(title.clone()),
                body: Set(body.clone()),
                severity: Set(severity.as_str().to_owned()),
                created_at: Set(now),
                read_at: Set(None),
            }
            .insert(&state.db)
            .await?;
        }
    }
    if channels.contains(&NotifyChannel::Webhook)
        && !escalated
        && let Some(endpoint) = rule.spec.webhook_id
    {
        let seqs: Vec<i64> = batch.iter().map(|(n, _)| n.event_seq).collect();
        let mut events = Vec::new();
        for chunk in seqs.chunks(CLAIM_CHUNK) {
            events.extend(
                crate::events::model::Entity::find()
                    .filter(crate::events::model::Column::Seq.is_in(chunk.to_vec()))
                    .all(&state.db)
                    .await?,
            );
        }
        for e in &events {
            crate::events::dispatch::new_delivery(
                e,
                &crate::events::dispatch::Target::Webhook(endpoint),
                false,
            )
            .insert(&state.db)
            .await?;
        }
        state.deliveries.notify_waiters();
    }
    if channels.contains(&NotifyChannel::Email) {
        for (_, email) in &people {
            if let Err(e) = state
                .mailer
                .send(crate::mail::Mail {
                    to: email,
                    subject: title.clone(),
                    text: body.clone(),
                })
                .await
            {
                tracing::warn!(error = %e, rule = %rule.id, "an alarm e-mail could not be sent");
            }
        }
    }
    Ok(())
}
