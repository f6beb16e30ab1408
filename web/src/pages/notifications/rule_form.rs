//! The dialog that makes or edits a notification rule: a form, not JSON. Which alarms (types,
//! least severity, changes), who (people and roles), how (in-app, e-mail, a webhook endpoint),
//! grouping and escalation; the server's refusal is shown with the field it names, and that
//! field is marked.

use std::collections::BTreeSet;

use leptos::prelude::*;
use stead_api_types::{
    AlarmChangeKind, AlarmSeverity, NotificationRule, NotificationRuleSpec, NotifyChannel,
    Recipients, Role,
};
use uuid::Uuid;

use super::People;
use crate::api;
use crate::pages::alarms::severity_words;
use crate::session::use_session;
use crate::ui::{Action, CheckPicker, FormActions, Modal, Refusal, non_empty, use_toasts};

pub fn channel_words(c: NotifyChannel) -> &'static str {
    match c {
        NotifyChannel::InApp => "In the console",
        NotifyChannel::Email => "E-mail",
        NotifyChannel::Webhook => "Webhook",
    }
}

pub fn channel_name(c: NotifyChannel) -> &'static str {
    match c {
        NotifyChannel::InApp => "in_app",
        NotifyChannel::Email => "email",
        NotifyChannel::Webhook => "webhook",
    }
}

pub fn change_words(c: AlarmChangeKind) -> &'static str {
    match c {
        AlarmChangeKind::Raised => "Raised",
        AlarmChangeKind::SeverityChanged => "Severity changed",
        AlarmChangeKind::Acknowledged => "Acknowledged",
        AlarmChangeKind::Cleared => "Cleared",
    }
}

const CHANNELS: [NotifyChannel; 3] = [
    NotifyChannel::InApp,
    NotifyChannel::Email,
    NotifyChannel::Webhook,
];

/// What the server's field is called on the form.
fn field_place(field: &str) -> String {
    match field.split('.').next().unwrap_or_default() {
        "name" => "Name",
        "alarm_types" => "Alarm types",
        "channels" => "Channels",
        "changes" => "Changes",
        "recipients" => "Who",
        "webhook_id" => "Webhook endpoint",
        "group_window_secs" => "Grouping",
        "escalate_after_secs" | "escalate_to" => "Escalation",
        other => return other.to_owned(),
    }
    .to_owned()
}

/// Whole seconds from a number of minutes typed in a box; empty is none.
fn minutes(text: &str, what: &str) -> Result<Option<u32>, String> {
    match non_empty(text) {
        None => Ok(None),
        Some(t) => match t.parse::<f64>() {
            Ok(m) if m >= 0.0 && m.is_finite() => Ok(Some((m * 60.0).round() as u32)),
            _ => Err(format!("{what} is a number of minutes, such as 15.")),
        },
    }
}

fn minutes_text(secs: Option<u32>) -> String {
    secs.map(|s| crate::ui::format_number(f64::from(s) / 60.0))
        .unwrap_or_default()
}

/// The people and roles of a rule or of its escalation.
#[derive(Clone, Copy)]
struct Picked {
    users: RwSignal<BTreeSet<Uuid>>,
    roles: RwSignal<BTreeSet<&'static str>>,
}

impl Picked {
    fn new(r: Option<&Recipients>) -> Self {
        Picked {
            users: RwSignal::new(
                r.map(|r| r.users.iter().copied().collect())
                    .unwrap_or_default(),
            ),
            roles: RwSignal::new(
                r.map(|r| r.roles.iter().map(|x| x.as_str()).collect())
                    .unwrap_or_default(),
            ),
        }
    }

    fn get(self) -> Recipients {
        Recipients {
            users: self.users.get_untracked().into_iter().collect(),
            roles: self
                .roles
                .get_untracked()
                .into_iter()
                .filter_map(Role::parse)
                .collect(),
        }
    }
}

/// Roles and people to tick.
#[component]
fn RecipientPicker(
    picked: Picked,
    people: People,
    test: &'static str,
    invalid: Signal<bool>,
) -> impl IntoView {
    let roles = Signal::derive(|| {
        Role::TENANT
            .into_iter()
            .map(|r| (r.as_str(), r.label().to_owned(), r.as_str().to_owned()))
            .collect::<Vec<_>>()
    });
    view! {
        <div class="recipients" class:field-invalid=move || invalid.get() data-test=test>
            <CheckPicker legend="Everyone holding the role" name="roles" test="recipient-role" chosen=picked.roles offered=roles/>
            <CheckPicker legend="People" name="users" test="recipient-user" chosen=picked.users offered=people.offered wide=true/>
        </div>
    }
}

#[component]
pub fn RuleDialog(
    /// The rule being edited; a new one without.
    rule: Option<NotificationRule>,
    people: People,
    webhooks: Signal<Vec<(Uuid, String)>>,
    on_close: Callback<()>,
    on_saved: Callback<()>,
) -> impl IntoView {
    let session = use_session();
    let toasts = use_toasts();
    let id = rule.as_ref().map(|r| r.id);
    let spec = rule.map(|r| r.spec);
    let s = spec.as_ref();
    let name = RwSignal::new(s.map(|s| s.name.clone()).unwrap_or_default());
    let enabled = RwSignal::new(s.is_none_or(|s| s.enabled));
    let types = RwSignal::new(s.map(|s| s.alarm_types.join(", ")).unwrap_or_default());
    let min_severity = RwSignal::new(s.map_or(AlarmSeverity::Indeterminate, |s| s.min_severity));
    let changes = RwSignal::new(
        s.map(|s| s.changes.iter().copied().collect())
            .unwrap_or_else(|| AlarmChangeKind::ALL.into_iter().collect::<BTreeSet<_>>()),
    );
    let channels = RwSignal::new(
        s.map(|s| s.channels.iter().copied().collect())
            .unwrap_or_else(|| BTreeSet::from([NotifyChannel::InApp])),
    );
    let webhook = RwSignal::new(s.and_then(|s| s.webhook_id));
    let window = RwSignal::new(
        s.map(|s| s.group_window_secs)
            .filter(|w| *w > 0)
            .map(|w| w.to_string())
            .unwrap_or_default(),
    );
    let recipients = Picked::new(s.map(|s| &s.recipients));
    let escalate = RwSignal::new(s.is_some_and(|s| s.escalate_after_secs.is_some()));
    let escalate_after = RwSignal::new(minutes_text(s.and_then(|s| s.escalate_after_secs)));
    let escalate_to = Picked::new(s.and_then(|s| s.escalate_to.as_ref()));

    let action = Action::new();
    let bad = move |field: &'static str| {
        Signal::derive(move || {
            action.field.with(|f| {
                f.as_deref()
                    .is_some_and(|f| f.split('.').next() == Some(field))
            })
        })
    };
    let channel_offer = Signal::derive(|| {
        CHANNELS
            .into_iter()
            .map(|c| (c, channel_words(c).to_owned(), channel_name(c).to_owned()))
            .collect::<Vec<_>>()
    });
    let change_offer = Signal::derive(|| {
        AlarmChangeKind::ALL
            .into_iter()
            .map(|c| (c, change_words(c).to_owned(), c.as_str().to_owned()))
            .collect::<Vec<_>>()
    });

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let window_secs = match non_empty(&window.get_untracked()) {
            None => 0,
            Some(t) => match t.parse::<u32>() {
                Ok(w) => w,
                Err(_) => {
                    return action.refuse("Grouping is a whole number of seconds, such as 60.");
                }
            },
        };
        let (escalate_after_secs, escalate_to) = if escalate.get_untracked() {
            match minutes(&escalate_after.get_untracked(), "Escalate after") {
                Ok(Some(secs)) => (Some(secs), Some(escalate_to.get())),
                Ok(None) => return action.refuse("Say after how many minutes to escalate."),
                Err(why) => return action.refuse(why),
            }
        } else {
            (None, None)
        };
        let channels = channels.get_untracked();
        let spec = NotificationRuleSpec {
            name: name.get_untracked().trim().to_owned(),
            enabled: enabled.get_untracked(),
            alarm_types: types
                .get_untracked()
                .split(',')
                .filter_map(non_empty)
                .collect(),
            min_severity: min_severity.get_untracked(),
            changes: changes.get_untracked().into_iter().collect(),
            webhook_id: webhook
                .get_untracked()
                .filter(|_| channels.contains(&NotifyChannel::Webhook)),
            channels: channels.into_iter().collect(),
            recipients: recipients.get(),
            group_window_secs: window_secs,
            escalate_after_secs,
            escalate_to,
        };
        let fut = async move {
            match id {
                Some(id) => api::update_notification_rule(session, id, &spec).await,
                None => api::create_notification_rule(session, &spec).await,
            }
        };
        action.run(fut, move |rule| {
            toasts.success(format!("Notification rule “{}” saved.", rule.spec.name));
            on_saved.run(());
        });
    };

    let title = if id.is_some() {
        "Edit notification rule"
    } else {
        "New notification rule"
    };
    view! {
        <Modal title=title on_close=on_close wide=true>
            <form class="form" on:submit=submit novalidate=true data-test="notification-rule-form">
                <div class="field-row">
                    <label class="field" class:field-invalid=bad("name")>
                        <span>"Name" <em class="required">"required"</em></span>
                        <input type="text" name="name" autocomplete="off" placeholder="Overheat to the night shift" bind:value=name/>
                    </label>
                    <label class="field" class:field-invalid=bad("alarm_types")>
                        <span>"Alarm types"</span>
                        <input type="text" name="alarm_types" autocomplete="off" placeholder="Every type" bind:value=types/>
                        <small class="hint">"Separated by commas, such as overheat, offline; empty for every type."</small>
                    </label>
                </div>
                <div class="field-row">
                    <label class="field">
                        <span>"At least"</span>
                        <select name="min_severity" on:change=move |ev| {
                            if let Some(s) = AlarmSeverity::parse(&event_target_value(&ev)) {
                                min_severity.set(s);
                            }
                        }>
                            {AlarmSeverity::ALL.into_iter().map(|s| view! {
                                <option value=s.as_str() selected=move || min_severity.get() == s>{severity_words(s)}</option>
                            }).collect_view()}
                        </select>
                    </label>
                    <label class="field" class:field-invalid=bad("group_window_secs")>
                        <span>"Group for " <em class="hint">"(seconds)"</em></span>
                        <input type="number" min="0" name="group_window_secs" placeholder="Not grouped" bind:value=window/>
                        <small class="hint">"Changes of one alarm type within this window make one notification naming every device."</small>
                    </label>
                </div>
                <div class:field-invalid=bad("changes")>
                    <CheckPicker legend="On" name="changes" test="rule-change" chosen=changes offered=change_offer/>
                </div>
                <div class:field-invalid=bad("channels")>
                    <CheckPicker legend="Channels" name="channels" test="rule-channel" chosen=channels offered=channel_offer
                        hint="E-mail needs the platform's mail server; a webhook sends the alarm's event to one of your endpoints, signed and retried."/>
                </div>
                <Show when=move || channels.with(|c| c.contains(&NotifyChannel::Webhook))>
                    <label class="field" class:field-invalid=bad("webhook_id")>
                        <span>"Webhook endpoint"</span>
                        <select name="webhook_id" data-test="rule-webhook" on:change=move |ev| webhook.set(Uuid::parse_str(&event_target_value(&ev)).ok())>
                            <option value="" selected=move || webhook.get().is_none()>"Choose an endpoint"</option>
                            {move || webhooks.get().into_iter().map(|(w, url)| view! {
                                <option value=w.to_string() selected=move || webhook.get() == Some(w)>{url}</option>
                            }).collect_view()}
                        </select>
                    </label>
                </Show>
                <fieldset class="fieldset">
                    <legend>"Who"</legend>
                    <RecipientPicker picked=recipients people=people test="rule-recipients" invalid=bad("recipients")/>
                </fieldset>
                <fieldset class="fieldset" class:field-invalid=bad("escalate_after_secs")>
                    <legend>"Escalation"</legend>
                    <label class="checkbox">
                        <input type="checkbox" name="escalate" data-test="rule-escalate" prop:checked=move || escalate.get()
                            on:change=move |ev| escalate.set(event_target_checked(&ev))/>
                        <span>"Tell others when nobody acknowledges in time"</span>
                    </label>
                    <Show when=move || escalate.get()>
                        <label class="field field-narrow">
                            <span>"After " <em class="hint">"(minutes unacknowledged)"</em></span>
                            <input type="number" min="1" name="escalate_after" placeholder="15" bind:value=escalate_after/>
                        </label>
                        <RecipientPicker picked=escalate_to people=people test="rule-escalate-to" invalid=bad("escalate_to")/>
                    </Show>
                </fieldset>
                <label class="checkbox">
                    <input type="checkbox" name="enabled" data-test="rule-enabled" prop:checked=move || enabled.get()
                        on:change=move |ev| enabled.set(event_target_checked(&ev))/>
                    <span>"On " <small class="hint">"(a rule turned off tells nobody)"</small></span>
                </label>
                <Refusal action=action place=field_place/>
                <FormActions busy=action.busy on_cancel=on_close label="Save rule" busy_label="Saving…" test="save-notification-rule"/>
            </form>
        </Modal>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escalation_minutes_become_seconds() {
        assert_eq!(minutes("15", "x"), Ok(Some(900)));
        assert_eq!(minutes(" ", "x"), Ok(None));
        assert!(minutes("soon", "x").is_err());
        assert_eq!(minutes_text(Some(90)), "1.5");
        assert_eq!(field_place("escalate_to.users"), "Escalation");
    }
}
