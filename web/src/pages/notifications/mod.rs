//! Notifications. `inbox` is the bell of the signed-in person's in-app notifications (every
//! person of a tenant). `/notifications` (for `alarms.manage` over the whole tenant) is the
//! settings: the notification rules (who hears of which alarm changes, by which channels, grouped
//! and escalated how; made and edited in `rule_form`'s dialog) and the silences that hold
//! notifications back for a while (`silences`).

mod inbox;
mod rule_form;
mod silences;

use std::collections::BTreeMap;

use leptos::prelude::*;
use stead_api_types::{AlarmChangeKind, NotificationRule, Permission, Recipients};
use uuid::Uuid;

pub use self::inbox::NotificationBell;
use self::rule_form::{RuleDialog, change_words, channel_words};
use self::silences::Silences;
use crate::api;
use crate::pages::alarms::SeverityBadge;
use crate::session::use_session;
use crate::shell::{RequirePermission, RequireTenant};
use crate::ui::{
    Action, ConfirmDialog, ErrorMessage, HeaderButton, Loader, PageHeader, Spinner, TableHead,
    use_toasts,
};

#[component]
pub fn NotificationsPage() -> impl IntoView {
    view! {
        <RequireTenant>
            <RequirePermission permission=Permission::AlarmsManage tenant_wide=true>
                <Settings/>
            </RequirePermission>
        </RequireTenant>
    }
}

/// The tenant's people a rule can name (only the signed-in person without `users.read`), as
/// check boxes offer them, and their names by id.
#[derive(Clone, Copy)]
pub struct People {
    pub offered: Signal<Vec<(Uuid, String, String)>>,
    names: Memo<BTreeMap<Uuid, String>>,
}

impl People {
    fn load() -> Self {
        let session = use_session();
        let can_list = session.can(Permission::UsersRead);
        let users = Loader::new(move || async move {
            if can_list {
                api::all_users(session).await.map(|p| p.items)
            } else {
                Ok(Vec::new())
            }
        });
        let names = Memo::new(move |_| {
            let mut names: BTreeMap<Uuid, String> = users
                .data
                .get()
                .unwrap_or_default()
                .into_iter()
                .filter(|u| u.active)
                .map(|u| (u.id, u.email))
                .collect();
            if let Some(me) = session.me() {
                names.entry(me.id).or_insert(me.email);
            }
            names
        });
        let offered = Signal::derive(move || {
            names
                .get()
                .into_iter()
                .map(|(id, email)| (id, email.clone(), email))
                .collect()
        });
        People { offered, names }
    }

    /// "ops@…, everyone Operator".
    fn describe(&self, r: &Recipients) -> String {
        let names = self.names.get();
        let people = r.users.iter().map(|u| {
            names
                .get(u)
                .cloned()
                .unwrap_or_else(|| "a former member".into())
        });
        let roles = r.roles.iter().map(|r| format!("every {}", r.label()));
        people.chain(roles).collect::<Vec<_>>().join(", ")
    }
}

#[component]
fn Settings() -> impl IntoView {
    crate::ui::set_title("Notifications");
    view! {
        <div class="page">
            <PageHeader title="Notifications" intro="Who hears of which alarms, and how: in the console's bell, by e-mail or at a webhook endpoint. Notifications go out when an alarm is raised, changes severity, is acknowledged or cleared, never for each message."/>
            <Rules/>
            <Silences/>
        </div>
    }
}

#[component]
fn Rules() -> impl IntoView {
    let session = use_session();
    let toasts = use_toasts();
    let rules = Loader::new(move || api::notification_rules(session));
    let people = People::load();
    let endpoints = Loader::new(move || async move {
        if session.can_tenant_wide(Permission::WebhooksManage) {
            api::list_webhooks(session).await
        } else {
            Ok(Vec::new())
        }
    });
    let webhooks = Signal::derive(move || {
        endpoints
            .data
            .get()
            .unwrap_or_default()
            .into_iter()
            .map(|w| (w.id, w.url))
            .collect::<Vec<_>>()
    });
    // The dialog: closed, a new rule (`Some(None)`) or one to edit.
    let editing = RwSignal::new(None::<Option<NotificationRule>>);
    let deleting = RwSignal::new(None::<NotificationRule>);
    let delete = Action::new();
    let confirm_delete = move |_| {
        let Some(rule) = deleting.get_untracked() else {
            return;
        };
        delete.run(api::delete_notification_rule(session, rule.id), move |()| {
            toasts.success(format!("Notification rule “{}” deleted.", rule.spec.name));
            deleting.set(None);
            rules.reload();
        });
    };

    view! {
        <section class="card table-card" aria-labelledby="notification-rules-title">
            <div class="card-header card-header-padded">
                <h2 id="notification-rules-title">"Rules"</h2>
                <HeaderButton when=Signal::derive(|| true) label="New rule" test="new-notification-rule"
                    on_click=Callback::new(move |()| editing.set(Some(None)))/>
            </div>
            <ErrorMessage error=rules.error_text()/>
            {move || match rules.data.get() {
                None => view! { <Spinner label="Loading rules…"/> }.into_any(),
                Some(list) if list.is_empty() => view! {
                    <p class="empty-inline muted empty-padded" data-test="no-notification-rules">
                        "No rules yet: nobody is told of alarms. Add one to send them to the console's bell, by e-mail or to a webhook."
                    </p>
                }.into_any(),
                Some(list) => view! {
                    <div class="table-scroll">
                        <table class="table">
                            <TableHead columns=&["Name", "Alarms", "Channels", "Who", "Grouping, escalation"] actions=true/>
                            <tbody>
                                {list.into_iter().map(|rule| {
                                    let s = rule.spec.clone();
                                    let (edit, remove) = (rule.clone(), rule.clone());
                                    let types = if s.alarm_types.is_empty() { "every type".to_owned() } else { s.alarm_types.join(", ") };
                                    let changes = if s.changes.len() == AlarmChangeKind::ALL.len() { "every change".to_owned() } else {
                                        s.changes.iter().map(|c| change_words(*c).to_lowercase()).collect::<Vec<_>>().join(", ") };
                                    let extra = [
                                        (s.group_window_secs > 0).then(|| format!("grouped over {} s", s.group_window_secs)),
                                        s.escalate_after_secs.map(|a| format!("after {} min to {}", crate::ui::format_number(f64::from(a) / 60.0),
                                            s.escalate_to.as_ref().map(|r| people.describe(r)).unwrap_or_default())),
                                    ].into_iter().flatten().collect::<Vec<_>>().join("; ");
                                    view! {
                                        <tr data-test="notification-rule-row" data-name=s.name.clone()>
                                            <td class="strong">
                                                {s.name.clone()}
                                                {(!s.enabled).then(|| view! { " " <span class="badge" data-test="rule-off">"Off"</span> })}
                                            </td>
                                            <td data-test="rule-alarms">
                                                <SeverityBadge severity=s.min_severity/>
                                                {format!(" and above · {types} · {changes}")}
                                            </td>
                                            <td data-test="rule-channels">
                                                <span class="badge-list">
                                                    {s.channels.iter().map(|c| view! { <span class="badge">{channel_words(*c)}</span> }).collect_view()}
                                                </span>
                                            </td>
                                            <td data-test="rule-recipients">{move || people.describe(&s.recipients)}</td>
                                            <td class="muted" data-test="rule-extra">{if extra.is_empty() { "—".to_owned() } else { extra }}</td>
                                            <td class="row-actions">
                                                <button type="button" class="button button-ghost button-small" data-test="edit-notification-rule"
                                                    on:click=move |_| editing.set(Some(Some(edit.clone())))>"Edit"</button>
                                                <button type="button" class="button button-ghost button-small danger-text" data-test="delete-notification-rule"
                                                    on:click=move |_| { delete.error.set(None); deleting.set(Some(remove.clone())) }>"Delete"</button>
                                            </td>
                                        </tr>
                                    }
                                }).collect_view()}
                            </tbody>
                        </table>
                    </div>
                }.into_any(),
            }}
        </section>
        {move || editing.get().map(|rule| view! {
            <RuleDialog rule=rule people=people webhooks=webhooks
                on_close=Callback::new(move |()| editing.set(None))
                on_saved=Callback::new(move |()| { editing.set(None); rules.reload(); })/>
        })}
        {move || deleting.get().map(|rule| view! {
            <ConfirmDialog title="Delete notification rule"
                message=format!("Delete “{}”? Nobody will be told of alarms through it any more.", rule.spec.name)
                confirm_label="Delete" busy=delete.busy error=delete.error
                on_confirm=Callback::new(confirm_delete)
                on_cancel=Callback::new(move |()| deleting.set(None))/>
        })}
    }
}
