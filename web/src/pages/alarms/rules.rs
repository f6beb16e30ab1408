//! A device profile's alarm rules, opened from the profiles page: the list (what each rule raises
//! at which severity, and when it clears) for holders of `alarms.read`, and for holders of
//! `alarms.manage` a form to create, edit and delete one: its type, a condition per severity
//! (a key, a comparison and a value; at once, held for some seconds, some messages in a row, or no
//! data for some seconds) and an optional clear condition. The server checks the rule and names
//! the field it refuses; the form shows it on the row it belongs to.
//!
//! Before saving, the form's rule can be previewed on a device of the profile: the server runs it
//! over the device's stored telemetry of the last 24 hours and answers when it would have raised,
//! changed severity and cleared.
//!
//! The form shows one test per condition; a rule made through the API with combined tests or
//! thresholds read from attributes is listed, and can be deleted, but is changed through the API.

use leptos::prelude::*;
use stead_api_types::{
    AlarmChangeKind, AlarmPreview, AlarmPreviewRequest, AlarmRule, AlarmRuleSpec, AlarmSeverity,
    Condition, ConditionKind, CreateConditions, DeviceListQuery, DeviceProfile, Expr, Operator,
    Permission, Predicate, ValueSource,
};
use uuid::Uuid;

use super::look::{SeverityBadge, severity_words};
use crate::api;
use crate::pages::profiles::format_secs;
use crate::session::use_session;
use crate::ui::{
    Action, ErrorMessage, Loader, Modal, Refusal, Spinner, compact_json, format_ms_title,
    non_empty, use_toasts,
};

/// The comparisons the form offers, with their words.
const OPERATORS: [(Operator, &str); 9] = [
    (Operator::Gt, ">"),
    (Operator::Ge, "≥"),
    (Operator::Lt, "<"),
    (Operator::Le, "≤"),
    (Operator::Eq, "="),
    (Operator::Ne, "≠"),
    (Operator::Equals, "is (text)"),
    (Operator::NotEquals, "is not (text)"),
    (Operator::Contains, "contains"),
];

/// When a condition counts as met, as the form offers it.
const KINDS: [(ConditionKind, &str, &str); 4] = [
    (ConditionKind::Immediate, "immediate", "At once"),
    (ConditionKind::Duration, "duration", "Held for"),
    (ConditionKind::Repeating, "repeating", "In a row"),
    (ConditionKind::NoData, "no_data", "No data for"),
];

/// The wire symbol of a comparison (`>`, `equals` ...).
fn op_symbol(op: Operator) -> &'static str {
    match op {
        Operator::Gt => ">",
        Operator::Ge => ">=",
        Operator::Lt => "<",
        Operator::Le => "<=",
        Operator::Eq => "==",
        Operator::Ne => "!=",
        Operator::Between => "between",
        Operator::Equals => "equals",
        Operator::NotEquals => "not_equals",
        Operator::Contains => "contains",
        Operator::In => "in",
    }
}

fn op_parse(s: &str) -> Operator {
    OPERATORS
        .iter()
        .map(|(op, _)| *op)
        .find(|op| op_symbol(*op) == s)
        .unwrap_or(Operator::Gt)
}

fn kind_parse(s: &str) -> ConditionKind {
    KINDS
        .iter()
        .find(|(_, name, _)| *name == s)
        .map_or(ConditionKind::Immediate, |(k, _, _)| *k)
}

// ---------------------------------------------------------------------------------------------
// Words for a rule

fn value_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Object(o) if o.contains_key("attribute") => {
            let name = o.get("attribute").and_then(|a| a.as_str()).unwrap_or("?");
            match o.get("default") {
                Some(d) => format!("attribute {name} (else {})", compact_json(d)),
                None => format!("attribute {name}"),
            }
        }
        other => compact_json(other),
    }
}

fn expr_text(e: &Expr) -> String {
    let join = |list: &[Expr], word: &str| {
        let parts: Vec<_> = list.iter().map(expr_text).collect();
        format!("({})", parts.join(word))
    };
    match e {
        Expr::Test(p) => {
            let source = match p.source {
                ValueSource::Telemetry => String::new(),
                other => format!(
                    "{} attribute ",
                    serde_json::to_value(other)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default()
                ),
            };
            format!(
                "{source}{} {} {}",
                p.key,
                op_symbol(p.op),
                value_text(&p.value)
            )
        }
        Expr::All(list) => join(list, " and "),
        Expr::Any(list) => join(list, " or "),
    }
}

/// A condition in a few words: "temperature > 80 for 5 min".
pub fn condition_text(c: &Condition) -> String {
    let expr = c.expr.as_ref().map(expr_text).unwrap_or_default();
    let secs = format_secs(u64::from(c.secs.unwrap_or(0)));
    match c.kind {
        ConditionKind::Immediate => expr,
        ConditionKind::Duration => format!("{expr} for {secs}"),
        ConditionKind::Repeating => format!("{expr}, {} in a row", c.count.unwrap_or(0)),
        ConditionKind::NoData => match &c.key {
            Some(k) => format!("no {k} for {secs}"),
            None => format!("no telemetry for {secs}"),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// A condition as the form holds it

/// One condition as typed: a test of one telemetry key, and when it counts.
#[derive(Clone, Debug, PartialEq)]
struct Draft {
    key: String,
    op: Operator,
    value: String,
    kind: ConditionKind,
    /// Seconds (duration, no data) or messages (in a row).
    amount: String,
}

impl Default for Draft {
    fn default() -> Self {
        Draft {
            key: String::new(),
            op: Operator::Gt,
            value: String::new(),
            kind: ConditionKind::Immediate,
            amount: String::new(),
        }
    }
}

/// The form's view of a condition, or `None` when it holds more than the form shows.
fn draft_of(c: &Condition) -> Option<Draft> {
    let amount = match c.kind {
        ConditionKind::Repeating => c.count.map(|n| n.to_string()),
        ConditionKind::Duration | ConditionKind::NoData => c.secs.map(|s| s.to_string()),
        ConditionKind::Immediate => None,
    }
    .unwrap_or_default();
    if c.kind == ConditionKind::NoData {
        return Some(Draft {
            key: c.key.clone().unwrap_or_default(),
            kind: c.kind,
            amount,
            ..Draft::default()
        });
    }
    let Some(Expr::Test(p)) = &c.expr else {
        return None;
    };
    let offered = OPERATORS.iter().any(|(op, _)| *op == p.op);
    let value = match &p.value {
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Bool(b) => b.to_string(),
        _ => return None,
    };
    (offered && p.source == ValueSource::Telemetry).then(|| Draft {
        key: p.key.clone(),
        op: p.op,
        value,
        kind: c.kind,
        amount,
    })
}

/// The typed value as the comparison wants it: a number for `>` `<` ..., a number or a
/// boolean for `=` `≠`, text for the text comparisons.
fn typed_value(op: Operator, text: &str) -> Result<serde_json::Value, String> {
    let t = text.trim();
    let number = || -> Option<serde_json::Value> {
        if let Ok(i) = t.parse::<i64>() {
            return Some(i.into());
        }
        t.parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(serde_json::Value::Number)
    };
    match op {
        Operator::Equals | Operator::NotEquals | Operator::Contains => Ok(t.into()),
        Operator::Eq | Operator::Ne => number()
            .or_else(|| t.parse::<bool>().ok().map(serde_json::Value::Bool))
            .ok_or_else(|| "= and ≠ compare with a number, true or false".to_owned()),
        _ => number().ok_or_else(|| format!("{} compares with a number", op_symbol(op))),
    }
}

/// The condition a draft says; `what` names it in messages ("Major", "The clear condition").
fn condition_of(d: &Draft, what: &str) -> Result<Condition, String> {
    let amount = || -> Result<u32, String> {
        d.amount
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| match d.kind {
                ConditionKind::Repeating => format!("{what}: how many messages in a row?"),
                _ => format!("{what}: for how many seconds?"),
            })
    };
    let mut c = Condition {
        kind: d.kind,
        expr: None,
        secs: None,
        count: None,
        key: None,
    };
    match d.kind {
        ConditionKind::Immediate => {}
        ConditionKind::Duration => c.secs = Some(amount()?),
        ConditionKind::Repeating => c.count = Some(amount()?),
        ConditionKind::NoData => {
            c.secs = Some(amount()?);
            c.key = non_empty(&d.key);
            return Ok(c);
        }
    }
    let Some(key) = non_empty(&d.key) else {
        return Err(format!("{what}: which telemetry key does it test?"));
    };
    if d.value.trim().is_empty() {
        return Err(format!("{what}: give the value to compare {key} with."));
    }
    let value = typed_value(d.op, &d.value).map_err(|e| format!("{what}: {e}."))?;
    c.expr = Some(Expr::Test(Predicate {
        source: ValueSource::Telemetry,
        key,
        op: d.op,
        value,
    }));
    Ok(c)
}

fn set_condition(create: &mut CreateConditions, severity: AlarmSeverity, c: Condition) {
    let slot = match severity {
        AlarmSeverity::Critical => &mut create.critical,
        AlarmSeverity::Major => &mut create.major,
        AlarmSeverity::Minor => &mut create.minor,
        AlarmSeverity::Warning => &mut create.warning,
        AlarmSeverity::Indeterminate => &mut create.indeterminate,
    };
    *slot = Some(c);
}

/// Whether the form can show the whole rule.
fn editable(spec: &AlarmRuleSpec) -> bool {
    spec.create.iter().all(|(_, c)| draft_of(c).is_some())
        && spec.clear.as_ref().is_none_or(|c| draft_of(c).is_some())
}

/// A row of the form: the draft's fields as signals.
#[derive(Clone, Copy)]
struct Row {
    id: u64,
    severity: RwSignal<AlarmSeverity>,
    key: RwSignal<String>,
    op: RwSignal<Operator>,
    value: RwSignal<String>,
    kind: RwSignal<ConditionKind>,
    amount: RwSignal<String>,
}

impl Row {
    fn new(id: u64, severity: AlarmSeverity, d: Draft) -> Row {
        Row {
            id,
            severity: RwSignal::new(severity),
            key: RwSignal::new(d.key),
            op: RwSignal::new(d.op),
            value: RwSignal::new(d.value),
            kind: RwSignal::new(d.kind),
            amount: RwSignal::new(d.amount),
        }
    }

    fn draft(&self) -> Draft {
        Draft {
            key: self.key.get_untracked(),
            op: self.op.get_untracked(),
            value: self.value.get_untracked(),
            kind: self.kind.get_untracked(),
            amount: self.amount.get_untracked(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The dialog

/// What the dialog shows.
#[derive(Clone, Debug, PartialEq)]
enum Mode {
    List,
    New,
    Edit(AlarmRule),
    Delete(AlarmRule),
}

#[component]
pub fn ProfileAlarmRules(profile: DeviceProfile, on_close: Callback<()>) -> impl IntoView {
    let session = use_session();
    let can_manage = Memo::new(move |_| session.can(Permission::AlarmsManage));
    let profile_id = profile.id;
    let rules = Loader::new(move || api::profile_alarm_rules(session, profile_id));
    let mode = RwSignal::new(Mode::List);
    let back = Callback::new(move |_| {
        mode.set(Mode::List);
        rules.reload();
    });
    view! {
        <Modal title=format!("Alarm rules of “{}”", profile.name) on_close=on_close wide=true>
            <div class="alarm-rules" data-test="alarm-rules">
                {move || match mode.get() {
                    Mode::List => view! {
                        <p class="modal-text">"Each rule raises alarms of one type on every device of this profile (a device's own rule of the same type wins), at the most severe condition met."</p>
                        <ErrorMessage error=rules.error_text()/>
                        {move || match rules.data.get() {
                            None => view! { <Spinner label="Loading rules…"/> }.into_any(),
                            Some(list) if list.is_empty() => view! {
                                <div class="empty-inline" data-test="no-alarm-rules">
                                    <p class="strong">"No alarm rules yet"</p>
                                    <p class="muted">"Add one to be told when a value of these devices goes out of bounds, such as a temperature above 80."</p>
                                </div>
                            }.into_any(),
                            Some(list) => view! { <RuleTable rules=list can_manage=can_manage mode=mode/> }.into_any(),
                        }}
                        <div class="modal-actions">
                            <button type="button" class="button button-secondary" on:click=move |_| on_close.run(())>"Close"</button>
                            <Show when=move || can_manage.get()>
                                <button type="button" class="button button-primary" data-test="new-alarm-rule" on:click=move |_| mode.set(Mode::New)>
                                    "+ New rule"
                                </button>
                            </Show>
                        </div>
                    }.into_any(),
                    Mode::New => view! { <RuleForm profile=profile_id rule=None on_done=back/> }.into_any(),
                    Mode::Edit(rule) => view! { <RuleForm profile=profile_id rule=Some(rule) on_done=back/> }.into_any(),
                    Mode::Delete(rule) => view! { <DeleteRule rule=rule on_done=back/> }.into_any(),
                }}
            </div>
        </Modal>
    }
}

#[component]
fn RuleTable(rules: Vec<AlarmRule>, can_manage: Memo<bool>, mode: RwSignal<Mode>) -> impl IntoView {
    view! {
        <table class="table table-compact rule-table">
            <thead>
                <tr>
                    <th>"Type"</th>
                    <th>"Raises"</th>
                    <th>"Clears"</th>
                    <th class="actions-col"><span class="sr-only">"Actions"</span></th>
                </tr>
            </thead>
            <tbody>
                {rules.into_iter().map(|rule| {
                    let spec = &rule.spec;
                    let clears = match (&spec.clear, spec.clear_after_secs) {
                        (Some(c), _) => format!("when {}", condition_text(c)),
                        (None, Some(s)) => format!("after {} without a condition met", format_secs(u64::from(s))),
                        (None, None) => "when no condition holds".to_owned(),
                    };
                    let can_edit = editable(spec);
                    let (for_edit, for_delete) = (rule.clone(), rule.clone());
                    view! {
                        <tr data-test="alarm-rule-row" data-type=spec.alarm_type.clone() class:inactive=!spec.enabled>
                            <td>
                                <code class="strong">{spec.alarm_type.clone()}</code>
                                {(!spec.enabled).then(|| view! { <span class="badge badge-after" data-test="rule-off">"Off"</span> })}
                                {spec.description.clone().map(|d| view! { <div class="muted small">{d}</div> })}
                            </td>
                            <td>
                                {spec.create.iter().map(|(severity, c)| view! {
                                    <div class="rule-line" data-test="rule-raises" data-severity=severity.as_str()>
                                        <SeverityBadge severity=severity/>
                                        <span>{condition_text(c)}</span>
                                    </div>
                                }).collect_view()}
                            </td>
                            <td class="small" data-test="rule-clears">{clears}</td>
                            <td class="actions-col">
                                <Show when=move || can_manage.get()>
                                    {
                                        let (for_edit, for_delete) = (for_edit.clone(), for_delete.clone());
                                        view! {
                                            <button type="button" class="button button-ghost button-small" data-test="edit-alarm-rule"
                                                disabled=!can_edit
                                                title=if can_edit { "Edit the rule" } else { "Combined tests and attribute thresholds are changed through the REST API" }
                                                on:click=move |_| mode.set(Mode::Edit(for_edit.clone()))>
                                                "Edit"
                                            </button>
                                            <button type="button" class="button button-ghost button-small danger-text" data-test="delete-alarm-rule"
                                                on:click=move |_| mode.set(Mode::Delete(for_delete.clone()))>
                                                "Delete"
                                            </button>
                                        }
                                    }
                                </Show>
                            </td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
    }
}

#[component]
fn DeleteRule(rule: AlarmRule, on_done: Callback<()>) -> impl IntoView {
    let session = use_session();
    let toasts = use_toasts();
    let action = Action::new();
    let (id, alarm_type) = (rule.id, rule.spec.alarm_type);
    let message = format!(
        "Delete the rule “{alarm_type}”? It raises no more alarms; the alarms it raised stay, and active ones are cleared by nothing but people."
    );
    let delete = move |_| {
        let alarm_type = alarm_type.clone();
        action.run(api::delete_alarm_rule(session, id), move |()| {
            toasts.success(format!("Rule “{alarm_type}” deleted."));
            on_done.run(());
        });
    };
    view! {
        <p class="modal-text">{message}</p>
        <ErrorMessage error=action.error/>
        <div class="modal-actions">
            <button type="button" class="button button-secondary" disabled=move || action.busy.get() on:click=move |_| on_done.run(())>"Cancel"</button>
            <button type="button" class="button button-danger" data-test="confirm-delete-alarm-rule" disabled=move || action.busy.get() on:click=delete>
                {move || if action.busy.get() { "Deleting…" } else { "Delete rule" }}
            </button>
        </div>
    }
}

/// Where a refused field is, in words: "Major condition", "Clear condition", "Alarm type".
fn field_place(field: &str) -> String {
    let mut parts = field.split('.');
    match parts.next() {
        Some("create") => match parts.next().and_then(AlarmSeverity::parse) {
            Some(s) => format!("{} condition", severity_words(s)),
            None => "Conditions".to_owned(),
        },
        Some("clear") => "Clear condition".to_owned(),
        Some("alarm_type") => "Alarm type".to_owned(),
        Some("clear_after_secs") => "Clear after".to_owned(),
        Some("description") => "Description".to_owned(),
        _ => "Rule".to_owned(),
    }
}

/// The severity a refused field belongs to (`create.major.count` → major), or `clear`.
fn field_row(field: &str) -> Option<String> {
    let mut parts = field.split('.');
    match parts.next() {
        Some("create") => parts.next().map(str::to_owned),
        Some("clear") => Some("clear".to_owned()),
        _ => None,
    }
}

#[component]
fn RuleForm(profile: Uuid, rule: Option<AlarmRule>, on_done: Callback<()>) -> impl IntoView {
    let session = use_session();
    let toasts = use_toasts();
    let base = rule.as_ref().map(|r| r.spec.clone());
    let id = rule.as_ref().map(|r| r.id);
    let alarm_type = RwSignal::new(
        base.as_ref()
            .map(|s| s.alarm_type.clone())
            .unwrap_or_default(),
    );
    let description = RwSignal::new(
        base.as_ref()
            .and_then(|s| s.description.clone())
            .unwrap_or_default(),
    );
    let enabled = RwSignal::new(base.as_ref().is_none_or(|s| s.enabled));
    let next = RwSignal::new(0u64);
    let new_row = move |severity: AlarmSeverity, d: Draft| {
        let id = next.get_untracked();
        next.set(id + 1);
        Row::new(id, severity, d)
    };
    let first: Vec<Row> = match &base {
        Some(s) => s
            .create
            .iter()
            .filter_map(|(sev, c)| draft_of(c).map(|d| new_row(sev, d)))
            .collect(),
        None => vec![new_row(AlarmSeverity::Major, Draft::default())],
    };
    let rows = RwSignal::new(first);
    let has_clear = RwSignal::new(base.as_ref().is_some_and(|s| s.clear.is_some()));
    let clear = new_row(
        AlarmSeverity::Indeterminate,
        base.as_ref()
            .and_then(|s| s.clear.as_ref())
            .and_then(draft_of)
            .unwrap_or_else(|| Draft {
                op: Operator::Lt,
                ..Draft::default()
            }),
    );
    let clear_after = RwSignal::new(
        base.as_ref()
            .and_then(|s| s.clear_after_secs)
            .map(|s| s.to_string())
            .unwrap_or_default(),
    );
    // The refusal, and the field the server named.
    let action = Action::new();
    let preview = Action::new();
    let bad_row = Memo::new(move |_| {
        let saved = action.field.with(|f| f.as_deref().and_then(field_row));
        saved.or_else(|| {
            preview.field.with(|f| {
                f.as_deref()
                    .and_then(|f| f.strip_prefix("rule."))
                    .and_then(field_row)
            })
        })
    });

    let all_used = move || rows.with(|r| r.len() >= AlarmSeverity::ALL.len());
    let add_row = move |_| {
        let taken: Vec<_> =
            rows.with_untracked(|r| r.iter().map(|r| r.severity.get_untracked()).collect());
        let severity = AlarmSeverity::ALL
            .into_iter()
            .find(|s| !taken.contains(s))
            .unwrap_or(AlarmSeverity::Critical);
        let row = new_row(severity, Draft::default());
        rows.update(|r| r.push(row));
    };

    // The rule as the form says it now, or why it cannot be said yet.
    let spec_of_form = move || -> Result<AlarmRuleSpec, String> {
        let Some(t) = non_empty(&alarm_type.get_untracked()) else {
            return Err("Give the alarm a type, such as overheat.".into());
        };
        let mut create = CreateConditions::default();
        let mut seen = Vec::new();
        for row in rows.get_untracked() {
            let severity = row.severity.get_untracked();
            if seen.contains(&severity) {
                return Err(format!(
                    "{} has two conditions: one per severity.",
                    severity_words(severity)
                ));
            }
            seen.push(severity);
            set_condition(
                &mut create,
                severity,
                condition_of(&row.draft(), severity_words(severity))?,
            );
        }
        if create.is_empty() {
            return Err("Add a condition for at least one severity.".into());
        }
        let clear_condition = if has_clear.get_untracked() {
            Some(condition_of(&clear.draft(), "The clear condition")?)
        } else {
            None
        };
        let clear_after_secs = match non_empty(&clear_after.get_untracked()) {
            None => None,
            Some(t) => match t.parse::<u32>() {
                Ok(s) if s > 0 => Some(s),
                _ => return Err("Clear after is a whole number of seconds, such as 600.".into()),
            },
        };
        let mut spec = base.clone().unwrap_or(AlarmRuleSpec {
            alarm_type: String::new(),
            profile_id: Some(profile),
            device_id: None,
            description: None,
            enabled: true,
            create: CreateConditions::default(),
            clear: None,
            clear_after_secs: None,
            schedule: None,
        });
        spec.alarm_type = t;
        spec.description = non_empty(&description.get_untracked());
        spec.enabled = enabled.get_untracked();
        spec.create = create;
        spec.clear = clear_condition;
        spec.clear_after_secs = clear_after_secs;
        Ok(spec)
    };
    let spec_for_preview = Callback::new({
        let spec_of_form = spec_of_form.clone();
        move |()| spec_of_form()
    });

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let spec = match spec_of_form() {
            Ok(spec) => spec,
            Err(why) => return action.refuse(why),
        };
        let fut = async move {
            match id {
                Some(id) => api::update_alarm_rule(session, id, &spec).await,
                None => api::create_alarm_rule(session, &spec).await,
            }
        };
        action.run(fut, move |rule| {
            toasts.success(format!("Rule “{}” saved.", rule.spec.alarm_type));
            on_done.run(());
        });
    };

    view! {
        <form class="form rule-form" on:submit=submit novalidate=true data-test="alarm-rule-form">
            <div class="field-row">
                <label class="field" class:field-invalid=move || action.field.with(|f| f.as_deref() == Some("alarm_type"))>
                    <span>"Alarm type" <em class="required">"required"</em></span>
                    <input type="text" name="alarm_type" autocomplete="off" placeholder="overheat" bind:value=alarm_type/>
                </label>
                <label class="field">
                    <span>"Description"</span>
                    <input type="text" name="description" autocomplete="off" placeholder="Boiler too hot" bind:value=description/>
                </label>
            </div>
            <fieldset class="fieldset">
                <legend>"Raise when"</legend>
                <p class="hint">"One condition per severity; the most severe one met sets the alarm's severity."</p>
                <For each=move || rows.get() key=|r| r.id let:row>
                    <ConditionRow row=row bad=Signal::derive(move || bad_row.get().as_deref() == Some(row.severity.get().as_str()))
                        on_remove=Some(Callback::new(move |_| rows.update(|r| r.retain(|x| x.id != row.id))))/>
                </For>
                <div>
                    <button type="button" class="button button-ghost button-small" data-test="add-condition"
                        disabled=all_used
                        on:click=add_row>
                        "+ Another severity"
                    </button>
                </div>
            </fieldset>
            <fieldset class="fieldset">
                <legend>"Clear"</legend>
                <label class="checkbox">
                    <input type="checkbox" name="has_clear" data-test="rule-has-clear" prop:checked=move || has_clear.get()
                        on:change=move |ev| has_clear.set(event_target_checked(&ev))/>
                    <span>"Clear on a condition of its own " <small class="hint">"(say, below 75 after raising above 80, so that a value around 80 does not raise and clear in turn)"</small></span>
                </label>
                <Show when=move || has_clear.get()>
                    <ConditionRow row=clear clear=true bad=Signal::derive(move || bad_row.get().as_deref() == Some("clear")) on_remove=None/>
                </Show>
                <Show when=move || !has_clear.get()>
                    <p class="hint">"Without one, the alarm clears as soon as no condition above holds."</p>
                </Show>
                <label class="field field-narrow">
                    <span>"Or clear after " <em class="hint">"(seconds without a condition met)"</em></span>
                    <input type="number" min="1" name="clear_after_secs" placeholder="Not set" bind:value=clear_after/>
                </label>
            </fieldset>
            <label class="checkbox">
                <input type="checkbox" name="enabled" data-test="rule-enabled" prop:checked=move || enabled.get()
                    on:change=move |ev| enabled.set(event_target_checked(&ev))/>
                <span>"On " <small class="hint">"(a rule turned off raises nothing)"</small></span>
            </label>
            <Refusal action=action place=field_place/>
            <RulePreview profile=profile spec=spec_for_preview action=preview/>
            <div class="modal-actions">
                <button type="button" class="button button-secondary" disabled=move || action.busy.get() on:click=move |_| on_done.run(())>"Back"</button>
                <button type="submit" class="button button-primary" data-test="save-alarm-rule" disabled=move || action.busy.get()>
                    {move || if action.busy.get() { "Saving…" } else { "Save rule" }}
                </button>
            </div>
        </form>
    }
}

/// One condition's fields in a line: severity (not for the clear condition), when, key,
/// comparison, value.
#[component]
fn ConditionRow(
    row: Row,
    #[prop(optional)] clear: bool,
    bad: Signal<bool>,
    on_remove: Option<Callback<()>>,
) -> impl IntoView {
    let Row {
        severity,
        key,
        op,
        value,
        kind,
        amount,
        ..
    } = row;
    let no_data = move || kind.get() == ConditionKind::NoData;
    let unit = move || match kind.get() {
        ConditionKind::Repeating => "messages",
        _ => "seconds",
    };
    view! {
        <div class="rule-condition" class:field-invalid=move || bad.get()
            data-test=if clear { "rule-clear" } else { "rule-condition" }
            data-severity=move || (!clear).then(|| severity.get().as_str())>
            {(!clear).then(|| view! {
                <select name="severity" aria-label="Severity" class=move || format!("sev-select sev-{}", severity.get().as_str())
                    on:change=move |ev| if let Some(s) = AlarmSeverity::parse(&event_target_value(&ev)) { severity.set(s) }>
                    {AlarmSeverity::ALL.into_iter().map(|s| view! {
                        <option value=s.as_str() selected=move || severity.get() == s>{severity_words(s)}</option>
                    }).collect_view()}
                </select>
            })}
            <select name="kind" aria-label="When" on:change=move |ev| kind.set(kind_parse(&event_target_value(&ev)))>
                {KINDS.iter().filter(|(k, _, _)| !clear || *k != ConditionKind::NoData).map(|(k, name, words)| {
                    let k = *k;
                    view! { <option value=*name selected=move || kind.get() == k>{*words}</option> }
                }).collect_view()}
            </select>
            <Show when=move || kind.get() != ConditionKind::Immediate>
                <label class="amount">
                    <input type="number" min="1" name="amount" aria-label=unit bind:value=amount/>
                    <span class="hint">{unit}</span>
                </label>
            </Show>
            <input type="text" name="key" aria-label="Telemetry key" autocomplete="off" class="mono"
                placeholder=move || if no_data() { "any key" } else { "temperature" } bind:value=key/>
            <Show when=move || !no_data()>
                <select name="op" aria-label="Comparison" on:change=move |ev| op.set(op_parse(&event_target_value(&ev)))>
                    {OPERATORS.iter().map(|(o, words)| {
                        let o = *o;
                        view! { <option value=op_symbol(o) selected=move || op.get() == o>{*words}</option> }
                    }).collect_view()}
                </select>
                <input type="text" name="value" aria-label="Value" autocomplete="off" class="mono" placeholder="80" bind:value=value/>
            </Show>
            {on_remove.map(|remove| view! {
                <button type="button" class="icon-button" aria-label="Remove this condition" data-test="remove-condition"
                    on:click=move |_| remove.run(())>"×"</button>
            })}
        </div>
    }
}

// ---------------------------------------------------------------------------------------------
// The preview

/// Where a refused field of a preview is: the rule's fields come back as `rule.…`.
fn preview_place(field: &str) -> String {
    match field {
        "device_id" => "Device".to_owned(),
        "hours" => "Hours".to_owned(),
        f => field_place(f.strip_prefix("rule.").unwrap_or(f)),
    }
}

fn change_words(change: AlarmChangeKind) -> &'static str {
    match change {
        AlarmChangeKind::Raised => "Raised",
        AlarmChangeKind::SeverityChanged => "Severity changed",
        AlarmChangeKind::Acknowledged => "Acknowledged",
        AlarmChangeKind::Cleared => "Cleared",
    }
}

/// The rule as the form holds it (unsaved), run over a device's last 24 hours of stored
/// telemetry: when it would have raised, changed severity and cleared.
#[component]
fn RulePreview(
    profile: Uuid,
    spec: Callback<(), Result<AlarmRuleSpec, String>>,
    action: Action,
) -> impl IntoView {
    let session = use_session();
    let search = RwSignal::new(String::new());
    let devices = Loader::new(move || {
        let q = DeviceListQuery {
            profile: Some(profile),
            search: non_empty(&search.get()),
            sort: Some("name".into()),
            ..DeviceListQuery::default()
        };
        async move { api::list_devices(session, &q).await }
    });
    let device = RwSignal::new(None::<Uuid>);
    // The first device found, unless the chosen one is still among those found.
    Effect::new(move |_| {
        devices.data.with(|page| {
            let Some(page) = page else { return };
            let chosen = device.get_untracked();
            if chosen.is_none_or(|id| page.items.iter().all(|d| d.id != id)) {
                device.set(page.items.first().map(|d| d.id));
            }
        });
    });
    let result = RwSignal::new(None::<AlarmPreview>);
    let run = move |_| {
        let rule = match spec.run(()) {
            Ok(rule) => rule,
            Err(why) => return action.refuse(why),
        };
        let Some(device_id) = device.get_untracked() else {
            return action.refuse("Choose a device of this profile to run the rule over.");
        };
        let body = AlarmPreviewRequest {
            rule,
            device_id,
            hours: Some(24),
        };
        result.set(None);
        action.run(
            async move { api::preview_alarm_rule(session, &body).await },
            move |p| result.set(Some(p)),
        );
    };
    let no_devices = move || {
        devices
            .data
            .with(|p| p.as_ref().is_some_and(|p| p.items.is_empty()))
    };
    view! {
        <fieldset class="fieldset rule-preview" data-test="rule-preview">
            <legend>"Preview"</legend>
            <p class="hint">"Runs the rule as the form says it now (unsaved) over a device's stored telemetry of the last 24 hours."</p>
            <div class="preview-controls">
                <input type="search" name="preview_search" aria-label="Find a device" placeholder="Find a device…"
                    autocomplete="off" bind:value=search/>
                <select name="preview_device" aria-label="Device" data-test="preview-device"
                    disabled=no_devices
                    on:change=move |ev| device.set(Uuid::parse_str(&event_target_value(&ev)).ok())>
                    {move || devices.data.with(|page| match page {
                        None => view! { <option value="">"Loading devices…"</option> }.into_any(),
                        Some(p) if p.items.is_empty() => view! { <option value="">"No device of this profile found"</option> }.into_any(),
                        Some(p) => p.items.iter().map(|d| {
                            let id = d.id;
                            view! { <option value=id.to_string() selected=move || device.get() == Some(id)>{d.name.clone()}</option> }
                        }).collect_view().into_any(),
                    })}
                </select>
                <button type="button" class="button button-secondary" data-test="preview-rule"
                    disabled=move || action.busy.get() || device.get().is_none()
                    on:click=run>
                    {move || if action.busy.get() { "Running…" } else { "Preview (last 24 h)" }}
                </button>
            </div>
            <ErrorMessage error=devices.error_text()/>
            <Refusal action=action place=preview_place/>
            {move || result.get().map(|p| view! { <PreviewResult preview=p/> })}
        </fieldset>
    }
}

#[component]
fn PreviewResult(preview: AlarmPreview) -> impl IntoView {
    let evaluated = match preview.messages {
        1 => "1 message evaluated".to_owned(),
        n => format!("{n} messages evaluated"),
    };
    let truncated = preview
        .truncated
        .then_some(" (the newest were left out: more were stored than a preview reads)");
    view! {
        <div class="preview-result" data-test="preview-result">
            <p class="small">
                <span data-test="preview-messages" data-count=preview.messages.to_string()>{evaluated}</span>
                {truncated}
            </p>
            {if preview.steps.is_empty() {
                view! {
                    <div class="empty-inline" data-test="preview-none">
                        <p class="strong">"Would not have raised"</p>
                        <p class="muted">"No condition of the rule held on this device's messages."</p>
                    </div>
                }.into_any()
            } else {
                view! {
                    <ol class="preview-steps">
                        {preview.steps.into_iter().map(|step| view! {
                            <li class="preview-step" data-test="preview-step" data-change=step.change.as_str()
                                data-severity=step.severity.map(|s| s.as_str()) data-ts=step.ts.to_string()>
                                <time class="preview-time" data-test="preview-time">{format_ms_title(step.ts)}</time>
                                <span class="preview-change" class:cleared=step.change == AlarmChangeKind::Cleared>
                                    {change_words(step.change)}
                                </span>
                                {step.severity.map(|s| view! { <SeverityBadge severity=s/> })}
                                <code class="preview-values muted" data-test="preview-values">{compact_json(&step.values)}</code>
                            </li>
                        }).collect_view()}
                    </ol>
                }.into_any()
            }}
            {preview.active_at_end.map(|s| view! {
                <p class="small" data-test="preview-active-at-end">
                    "Still active at the end, " <SeverityBadge severity=s/>
                </p>
            })}
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test(op: Operator, value: serde_json::Value) -> Condition {
        Condition {
            kind: ConditionKind::Immediate,
            expr: Some(Expr::Test(Predicate {
                source: ValueSource::Telemetry,
                key: "temperature".into(),
                op,
                value,
            })),
            secs: None,
            count: None,
            key: None,
        }
    }

    #[test]
    fn a_one_test_condition_round_trips_through_the_form() {
        let mut c = test(Operator::Gt, serde_json::json!(80));
        c.kind = ConditionKind::Duration;
        c.secs = Some(300);
        let d = draft_of(&c).unwrap();
        assert_eq!((d.value.as_str(), d.amount.as_str()), ("80", "300"));
        assert_eq!(condition_of(&d, "Major").unwrap(), c);
        assert_eq!(condition_text(&c), "temperature > 80 for 5 min");
        let text = test(Operator::Equals, serde_json::json!("open"));
        assert_eq!(condition_of(&draft_of(&text).unwrap(), "x").unwrap(), text);
    }

    #[test]
    fn what_the_form_cannot_show_is_left_to_the_api() {
        let mut c = test(
            Operator::Gt,
            serde_json::json!({"attribute": "max", "default": 8}),
        );
        assert!(draft_of(&c).is_none());
        c.expr = Some(Expr::All(vec![]));
        assert!(draft_of(&c).is_none());
    }

    #[test]
    fn values_are_typed_by_their_comparison() {
        assert_eq!(
            typed_value(Operator::Gt, "80.5"),
            Ok(serde_json::json!(80.5))
        );
        assert!(typed_value(Operator::Lt, "hot").is_err());
        assert_eq!(
            typed_value(Operator::Eq, "true"),
            Ok(serde_json::json!(true))
        );
        assert_eq!(
            typed_value(Operator::Equals, "42"),
            Ok(serde_json::json!("42"))
        );
        let d = Draft {
            key: "t".into(),
            kind: ConditionKind::Repeating,
            amount: "0".into(),
            value: "1".into(),
            ..Draft::default()
        };
        assert!(condition_of(&d, "Minor").unwrap_err().contains("in a row"));
    }

    #[test]
    fn refused_fields_are_placed() {
        assert_eq!(
            field_place("create.major.expr.test.value"),
            "Major condition"
        );
        assert_eq!(field_row("create.major.count").as_deref(), Some("major"));
        assert_eq!(field_row("clear.expr"), Some("clear".to_owned()));
        assert_eq!(field_row("alarm_type"), None);
    }
}
