//! The device's timeline, newest first: connections, disconnections, refused connects and
//! rejected messages, each in a sentence, so support people can answer "why did it drop?".

use leptos::prelude::*;
use stead_api_types::TimelineEvent;

use super::activity::DeviceLive;
use crate::api;
use crate::session::use_session;
use crate::ui::{ErrorMessage, Loader, Spinner, format_age, format_ms_title};

/// Events per "show more".
const PAGE: u32 = 50;

/// An icon and a tone (a CSS modifier) for each kind; unknown kinds get a neutral dot.
fn look(kind: &str) -> (&'static str, &'static str) {
    match kind {
        "connected" => ("↗", "good"),
        "disconnected" => ("↘", "neutral"),
        "connect_refused" => ("⊘", "bad"),
        "message_rejected" => ("!", "warn"),
        "rate_limited" => ("⏱", "warn"),
        "credentials_rotated" | "token_rotated" => ("⚿", "info"),
        "created" | "device_created" => ("+", "info"),
        _ => ("•", "neutral"),
    }
}

/// `connect_refused` → "Connect refused".
fn kind_words(kind: &str) -> String {
    let mut words = kind.replace('_', " ");
    if let Some(first) = words.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    words
}

#[component]
pub fn Timeline(live: DeviceLive) -> impl IntoView {
    let session = use_session();
    let id = live.id;
    let limit = RwSignal::new(PAGE);
    let events = Loader::new(move || {
        live.timeline_stale.track();
        let limit = limit.get();
        async move { api::timeline(session, id, limit).await }
    });
    // More may exist when the server filled the whole page.
    let maybe_more = move || {
        events
            .data
            .with(|e| e.as_ref().is_some_and(|e| e.len() as u32 >= limit.get()))
    };
    let now = live.now;

    view! {
        <section class="card" aria-labelledby="timeline-title">
            <div class="card-header">
                <h2 id="timeline-title">"Timeline"</h2>
                <button
                    type="button"
                    class="button button-ghost button-small"
                    data-test="timeline-refresh"
                    disabled=move || events.loading.get()
                    on:click=move |_| events.reload()
                >
                    {move || if events.loading.get() { "Refreshing…" } else { "↻ Refresh" }}
                </button>
            </div>
            {move || match events.data.get() {
                None if events.loading.get() => view! { <Spinner label="Loading timeline…"/> }.into_any(),
                None => view! { <ErrorMessage error=events.error_text()/> }.into_any(),
                Some(list) if list.is_empty() => view! {
                    <div class="empty-inline">
                        <p class="muted">"Nothing has happened yet. Connections, disconnections and rejected messages will be listed here."</p>
                    </div>
                }.into_any(),
                Some(list) => view! {
                    <ErrorMessage error=events.error_text()/>
                    <ol class="timeline">
                        {list.into_iter().map(|e| view! { <TimelineRow event=e now=now/> }).collect_view()}
                    </ol>
                    <Show when=maybe_more>
                        <div class="timeline-more">
                            <button
                                type="button"
                                class="button button-secondary button-small"
                                data-test="timeline-more"
                                disabled=move || events.loading.get()
                                on:click=move |_| limit.update(|l| *l += PAGE)
                            >
                                {move || if events.loading.get() { "Loading…" } else { "Show older events" }}
                            </button>
                        </div>
                    </Show>
                }.into_any(),
            }}
        </section>
    }
}

#[component]
fn TimelineRow(event: TimelineEvent, now: ReadSignal<f64>) -> impl IntoView {
    let (icon, tone) = look(&event.kind);
    let ts = event.ts;
    let facts = match &event.data {
        serde_json::Value::Object(m) if !m.is_empty() => {
            serde_json::to_string_pretty(&event.data).ok()
        }
        _ => None,
    };
    view! {
        <li class=format!("timeline-event tone-{tone}") data-test="timeline-event" data-kind=event.kind.clone()>
            <span class="timeline-icon" aria-hidden="true">{icon}</span>
            <div class="timeline-body">
                <p class="timeline-detail">{event.detail.clone()}</p>
                <p class="timeline-meta">
                    <span class="timeline-kind">{kind_words(&event.kind)}</span>
                    " · "
                    <time title=format_ms_title(ts)>{move || format_age(ts, now.get())}</time>
                </p>
                {facts.map(|f| view! {
                    <details class="timeline-facts">
                        <summary>"Details"</summary>
                        <pre class="code-block">{f}</pre>
                    </details>
                })}
            </div>
        </li>
    }
}
