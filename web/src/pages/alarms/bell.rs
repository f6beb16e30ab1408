//! Beside the brand: how many active alarms nobody has acknowledged yet (a warning sign with its
//! count), read every few seconds (and at once after a person changed an alarm here), linking to
//! the active alarms. `BellIcon` is the notification bell's (`pages/notifications/inbox.rs`).

use leptos::prelude::*;
use leptos_router::components::A;

use super::POLL;
use super::look::AlarmsChanged;
use crate::api;
use crate::session::use_session;
use crate::ui::Loader;

#[component]
pub fn BellIcon() -> impl IntoView {
    view! {
        <svg class="bell-icon" viewBox="0 0 24 24" aria-hidden="true">
            <path d="M12 3a6 6 0 0 0-6 6v3.6L4.3 15.4A1 1 0 0 0 5.2 17h13.6a1 1 0 0 0 .9-1.6L18 12.6V9a6 6 0 0 0-6-6Z"
                fill="none" stroke="currentColor" stroke-width="1.9" stroke-linejoin="round"></path>
            <path d="M9.5 19.5a2.6 2.6 0 0 0 5 0" fill="none" stroke="currentColor" stroke-width="1.9" stroke-linecap="round"></path>
        </svg>
    }
}

/// A warning sign: the alarms waiting for someone.
#[component]
fn AlarmIcon() -> impl IntoView {
    view! {
        <svg class="bell-icon" viewBox="0 0 24 24" aria-hidden="true">
            <path d="M10.3 4.2a2 2 0 0 1 3.4 0l7.4 12.8a2 2 0 0 1-1.7 3H4.6a2 2 0 0 1-1.7-3Z"
                fill="none" stroke="currentColor" stroke-width="1.9" stroke-linejoin="round"></path>
            <path d="M12 9.5v4.2" fill="none" stroke="currentColor" stroke-width="1.9" stroke-linecap="round"></path>
            <circle cx="12" cy="16.8" r="1.1" fill="currentColor"></circle>
        </svg>
    }
}

#[component]
pub fn AlarmBell() -> impl IntoView {
    let session = use_session();
    let changed = AlarmsChanged::get();
    let counts = Loader::new(move || {
        changed.track();
        api::alarm_counts(session, None)
    });
    counts.poll(POLL, || true, || {});
    let waiting = Memo::new(move |_| counts.data.with(|c| c.as_ref().map(|c| c.unacknowledged)));
    let words = move || match waiting.get() {
        None => "Alarms".to_owned(),
        Some(0) => "No active alarm waiting to be acknowledged".to_owned(),
        Some(1) => "1 active alarm waiting to be acknowledged".to_owned(),
        Some(n) => format!("{n} active alarms waiting to be acknowledged"),
    };
    view! {
        <A href="/alarms?status=active" attr:class="bell" attr:data-test="alarm-bell"
            attr:data-count=move || waiting.get().unwrap_or(0).to_string()
            attr:title=words attr:aria-label=words>
            <AlarmIcon/>
            {move || waiting.get().filter(|n| *n > 0).map(|n| view! {
                <span class="bell-count" data-test="alarm-bell-count">{if n > 99 { "99+".to_owned() } else { n.to_string() }}</span>
            })}
        </A>
    }
}
