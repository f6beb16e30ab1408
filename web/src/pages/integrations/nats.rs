//! The tenant's NATS JetStream sink, read-only: the platform admin turns it on
//! (`PUT /api/v1/tenants/{id}/nats-sink`); here is whether it runs and how far it got.

use leptos::prelude::*;
use stead_api_types::NatsSink;

use crate::api;
use crate::session::use_session;
use crate::ui::{
    ErrorMessage, Loader, RefreshButton, Spinner, Stat, StatusBadge, Tone, format_time,
    format_time_title,
};

/// Off, on, or not possible on this platform.
fn sink_look(sink: &NatsSink) -> (Tone, &'static str, &'static str) {
    match (sink.configured, sink.enabled) {
        (false, _) => (Tone::Neutral, "Not configured", "not-configured"),
        (true, false) => (Tone::Neutral, "Off", "off"),
        (true, true) if sink.last_error.is_some() => (Tone::Warn, "On, failing", "failing"),
        (true, true) => (Tone::Good, "On", "on"),
    }
}

#[component]
pub fn NatsPanel() -> impl IntoView {
    let session = use_session();
    let sink = Loader::new(move || api::nats_sink(session));
    let tenant = move || {
        session
            .me()
            .and_then(|m| m.tenant)
            .map(|t| t.id.to_string())
            .unwrap_or_default()
    };

    view! {
        <section class="card" data-test="nats-sink" aria-labelledby="nats-title">
            <div class="card-header">
                <div class="card-title-block">
                    <h2 id="nats-title">"NATS JetStream"</h2>
                    <p class="muted small">"Events published to a JetStream stream, for services that read them at their own pace. Your platform operator sets it up for you."</p>
                </div>
                <div class="card-tools">
                    {move || sink.data.get().map(|s| {
                        let (tone, text, key) = sink_look(&s);
                        view! { <span data-test="nats-status"><StatusBadge tone=tone text=text status=key/></span> }
                    })}
                    <RefreshButton loader=sink test="nats-refresh"/>
                </div>
            </div>
            <ErrorMessage error=sink.error_text()/>
            {move || match sink.data.get() {
                None if sink.loading.get() => view! { <Spinner label="Loading the sink…"/> }.into_any(),
                None => ().into_any(),
                Some(s) if !s.configured => view! {
                    <p class="muted" data-test="nats-not-configured">
                        "This platform has no NATS server configured ("<code>"STEAD_NATS_URL"</code>"), so events go to webhooks only."
                    </p>
                }.into_any(),
                Some(s) => {
                    let subject = format!("{}.{}.<event type>", s.subject_prefix, tenant());
                    let events = if s.event_types.is_empty() {
                        "All events".to_owned()
                    } else {
                        s.event_types.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ")
                    };
                    let (last, last_title) = s.last_delivered_at.map_or_else(
                        || ("Never".to_owned(), String::new()),
                        |t| (format_time(&t), format_time_title(&t)),
                    );
                    let stuck = s.pending > 0 && s.last_error.is_some();
                    view! {
                        <div class="stats stats-4 stats-inline">
                            <Stat label="Delivered" value=s.delivered.to_string() sub="acknowledged by the stream" test="nats-delivered"/>
                            <Stat label="Pending" value=s.pending.to_string() sub="waiting for the stream" test="nats-pending" bad=stuck/>
                            <Stat label="Last delivered" value=last title=last_title test="nats-last-delivered"/>
                            <Stat label="Stream" value=s.stream.clone() test="nats-stream"/>
                        </div>
                        <dl class="details">
                            <dt>"Subject"</dt>
                            <dd><code data-test="nats-subject">{subject}</code></dd>
                            <dt>"Events"</dt>
                            <dd>{events}</dd>
                            {s.last_error.clone().map(|e| view! {
                                <dt>"Last error"</dt>
                                <dd class="danger-text" data-test="nats-error">{e}</dd>
                            })}
                        </dl>
                        {(!s.enabled).then(|| view! {
                            <p class="hint">"Off for your organisation: ask your platform operator to turn it on."</p>
                        })}
                    }.into_any()
                }
            }}
        </section>
    }
}
