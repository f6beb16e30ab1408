//! The notification bell beside the brand: the signed-in person's unread in-app notifications,
//! read every few seconds, and a panel of the latest ones (each linking to its alarm, marked read
//! when opened or with its button; all at once with "Mark all read").

use leptos::prelude::*;
use leptos_router::components::A;
use stead_api_types::{Notification, Permission};
use uuid::Uuid;

use crate::api;
use crate::pages::alarms::{BellIcon, POLL};
use crate::session::use_session;
use crate::ui::{
    Action, ErrorMessage, Loader, Spinner, format_age, format_time_title, use_clock, use_toasts,
};

/// How many of the latest notifications the panel lists.
const SHOWN: u64 = 8;

fn unread_words(n: Option<u64>) -> String {
    match n {
        None => "Notifications".to_owned(),
        Some(0) => "No unread notifications".to_owned(),
        Some(1) => "1 unread notification".to_owned(),
        Some(n) => format!("{n} unread notifications"),
    }
}

#[component]
pub fn NotificationBell() -> impl IntoView {
    let session = use_session();
    let toasts = use_toasts();
    let open = RwSignal::new(false);
    let inbox = Loader::new(move || api::notifications(session, false, SHOWN));
    inbox.poll(POLL, || true, || {});
    let unread = Memo::new(move |_| inbox.data.with(|p| p.as_ref().map(|p| p.unread)));
    let items = Memo::new(move |_| {
        inbox
            .data
            .with(|p| p.as_ref().map(|p| p.items.clone()).unwrap_or_default())
    });
    let marking = Action::new().toast_errors(toasts);
    // `None` marks them all.
    let mark_read = Callback::new(move |id: Option<Uuid>| {
        marking.run(api::read_notifications(session, id), move |()| {
            inbox.reload()
        });
    });
    let toggle = move |_| {
        let opening = !open.get_untracked();
        open.set(opening);
        if opening {
            inbox.reload();
        }
    };
    let close = Callback::new(move |()| open.set(false));
    let escape = window_event_listener(leptos::ev::keydown, move |ev| {
        if ev.key() == "Escape" {
            open.set(false);
        }
    });
    on_cleanup(move || escape.remove());
    let can_manage = Memo::new(move |_| session.can_tenant_wide(Permission::AlarmsManage));
    let clock = use_clock();

    view! {
        <div class="inbox">
            <button type="button" class="bell" data-test="notification-bell"
                data-count=move || unread.get().unwrap_or(0).to_string()
                aria-haspopup="dialog" aria-expanded=move || open.get().to_string()
                title=move || unread_words(unread.get()) aria-label=move || unread_words(unread.get())
                on:click=toggle>
                <BellIcon/>
                {move || unread.get().filter(|n| *n > 0).map(|n| view! {
                    <span class="bell-count" data-test="notification-count">{if n > 99 { "99+".to_owned() } else { n.to_string() }}</span>
                })}
            </button>
            <Show when=move || open.get()>
                <div class="inbox-backdrop" on:click=move |_| close.run(())></div>
                <div class="inbox-panel" role="dialog" aria-label="Notifications" data-test="notification-panel">
                    <div class="inbox-head">
                        <div>
                            <strong>"Notifications"</strong>
                            <span class="muted small" data-test="notification-unread">{move || unread_words(unread.get())}</span>
                        </div>
                        <button type="button" class="link-button small" data-test="read-all-notifications"
                            disabled=move || unread.get().unwrap_or(0) == 0 || marking.busy.get()
                            on:click=move |_| mark_read.run(None)>
                            "Mark all read"
                        </button>
                    </div>
                    <ErrorMessage error=inbox.error_text()/>
                    {move || {
                        let list = items.get();
                        if list.is_empty() {
                            if inbox.data.with(Option::is_none) && inbox.loading.get() {
                                return view! { <Spinner label="Loading notifications…"/> }.into_any();
                            }
                            return view! {
                                <p class="inbox-empty muted" data-test="no-notifications">
                                    "Nothing yet. Notification rules decide who hears of which alarms."
                                </p>
                            }.into_any();
                        }
                        view! {
                            <ul class="inbox-list">
                                {list.into_iter().map(|n| view! { <InboxItem n=n clock=clock mark_read=mark_read close=close/> }).collect_view()}
                            </ul>
                        }.into_any()
                    }}
                    <Show when=move || can_manage.get()>
                        <div class="inbox-foot">
                            <A href="/notifications" attr:data-test="notification-settings-link" on:click=move |_| close.run(())>
                                "Notification settings"
                            </A>
                        </div>
                    </Show>
                </div>
            </Show>
        </div>
    }
}

/// The notification's text without the link to the console at its end (the e-mail's; here the
/// title is the link).
fn summary(body: &str) -> &str {
    body.split("\n\n").next().unwrap_or_default().trim()
}

/// Where a notification leads: its alarm, or for one naming many devices, the list of its alarm
/// type (the body's link says which).
fn link_of(n: &Notification) -> String {
    if let Some(alarm) = n.alarm_id {
        return format!("/alarms/{alarm}");
    }
    let alarm_type = n
        .body
        .rsplit_once("/alarms?alarm_type=")
        .map(|(_, t)| t.split_whitespace().next().unwrap_or_default())
        .filter(|t| !t.is_empty());
    match alarm_type {
        Some(t) => format!("/alarms?type={t}"),
        None => "/alarms".to_owned(),
    }
}

#[component]
fn InboxItem(
    n: Notification,
    clock: ReadSignal<f64>,
    mark_read: Callback<Option<Uuid>>,
    close: Callback<()>,
) -> impl IntoView {
    let id = n.id;
    let read = n.read;
    let href = link_of(&n);
    let body = summary(&n.body).to_owned();
    let at = n.created_at;
    let severity = n.severity.as_str();
    view! {
        <li class="inbox-item" class:inbox-unread=!read data-test="notification" data-id=id.to_string()
            data-read=read.to_string()>
            <span class=format!("sev-dot sev-{severity}") title=severity aria-hidden="true"></span>
            <div class="inbox-text">
                <A href=href attr:class="inbox-title" attr:data-test="notification-link"
                    on:click=move |_| {
                        if !read {
                            mark_read.run(Some(id));
                        }
                        close.run(());
                    }>
                    {n.title.clone()}
                </A>
                {(!body.is_empty()).then(|| view! { <p class="inbox-body" data-test="notification-body">{body}</p> })}
                <time class="inbox-time" title=format_time_title(&at)>{move || format_age(at.timestamp_millis(), clock.get())}</time>
            </div>
            {(!read).then(|| view! {
                <button type="button" class="inbox-read" data-test="read-notification" title="Mark read" aria-label="Mark read"
                    on:click=move |_| mark_read.run(Some(id))>
                    "✓"
                </button>
            })}
        </li>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(alarm_id: Option<Uuid>, body: &str) -> Notification {
        Notification {
            id: Uuid::nil(),
            alarm_id,
            title: "[MAJOR] overheat raised on 3 devices".into(),
            body: body.into(),
            severity: stead_api_types::AlarmSeverity::Major,
            created_at: chrono::DateTime::default(),
            read: false,
        }
    }

    #[test]
    fn a_notification_leads_to_its_alarm_or_its_type() {
        let one = Uuid::from_u128(7);
        assert_eq!(link_of(&notice(Some(one), "")), format!("/alarms/{one}"));
        let many = "Alarm overheat is raised on 3 devices:\n  a\n  b\n  c\n\nhttp://x/alarms?alarm_type=overheat";
        assert_eq!(link_of(&notice(None, many)), "/alarms?type=overheat");
        assert_eq!(
            summary(many),
            "Alarm overheat is raised on 3 devices:\n  a\n  b\n  c"
        );
        assert_eq!(link_of(&notice(None, "no link")), "/alarms");
    }
}
