//! `/integrations`: where the tenant's events go out, for holders of `webhooks.manage` over the
//! whole tenant. The page lists the webhook endpoints (create, edit, turn on or off, rotate the
//! signing secret, send a test event, delete) and shows the NATS JetStream sink the platform
//! admin set up; `/integrations/:id` is one endpoint with its delivery log.
//!
//! `actions` holds an endpoint's buttons and their dialogs (the list and the endpoint's page share
//! them), `form` the create / edit dialog, `endpoint` the endpoint's page, `deliveries` its log
//! (polled every 3 s while live) with a delivery's detail and the replays, `nats` the sink's panel.

mod actions;
mod deliveries;
mod endpoint;
mod form;
mod nats;

use leptos::prelude::*;
use leptos_router::components::A;
use stead_api_types::{DeviceGroup, EventType, Permission, WebhookEndpoint, WebhookFormat};

use self::actions::EndpointActions;
pub use self::endpoint::EndpointPage;
use self::form::EndpointForm;
use self::nats::NatsPanel;
use crate::api;
use crate::session::use_session;
use crate::shell::{RequirePermission, RequireTenant};
use crate::ui::{
    ErrorMessage, Loader, PageHeader, Secret, SecretReveal, Spinner, StatusBadge, TableHead, Tone,
    format_time, format_time_title,
};

/// Where the API reference is served.
const API_DOCS: &str = "/api/v1/docs";

#[component]
pub fn IntegrationsPage() -> impl IntoView {
    view! {
        <RequireTenant>
            <RequirePermission permission=Permission::WebhooksManage tenant_wide=true>
                <Integrations/>
            </RequirePermission>
        </RequireTenant>
    }
}

/// The page header's link to the REST API's reference, opened beside the console.
#[component]
fn ApiDocsLink() -> impl IntoView {
    view! {
        <a class="button button-secondary" href=API_DOCS target="_blank" rel="noopener" data-test="api-docs">
            "API reference ↗"
        </a>
    }
}

#[component]
fn Integrations() -> impl IntoView {
    crate::ui::set_title("Integrations");
    let session = use_session();
    let endpoints = Loader::new(move || api::list_webhooks(session));
    let groups = Loader::new(move || api::list_groups(session));
    let creating = RwSignal::new(false);
    // The secret of the endpoint just made, shown once.
    let fresh_secret = RwSignal::new(None::<String>);
    let reload = Callback::new(move |_| endpoints.reload());
    let group_names = Signal::derive(move || groups.data.get().unwrap_or_default());

    view! {
        <div class="page">
            <PageHeader title="Integrations" intro="Where Stead sends your events as they happen: to webhook endpoints of yours, each request signed the Standard Webhooks way, and to NATS JetStream.">
                <div class="header-actions">
                    <ApiDocsLink/>
                    <button type="button" class="button button-primary" data-test="new-endpoint" on:click=move |_| creating.set(true)>
                        "+ New endpoint"
                    </button>
                </div>
            </PageHeader>

            <section class="card table-card" aria-labelledby="endpoints-title">
                <div class="card-header card-header-padded">
                    <div class="card-title-block">
                        <h2 id="endpoints-title">"Webhook endpoints"</h2>
                        <p class="muted small">"Failed requests are retried with growing pauses; an endpoint that fails for days, or answers 410 Gone, is turned off."</p>
                    </div>
                </div>
                <ErrorMessage error=endpoints.error_text()/>
                {move || match endpoints.data.get() {
                    None if endpoints.loading.get() => view! { <Spinner label="Loading endpoints…"/> }.into_any(),
                    None => ().into_any(),
                    Some(list) if list.is_empty() => view! {
                        <div class="empty-state" data-test="no-endpoints">
                            <div class="empty-icon" aria-hidden="true">"⇄"</div>
                            <h2>"No endpoints yet"</h2>
                            <p class="muted">"Add the URL of a service of yours, pick the events it wants, and Stead sends each one there as it happens, signed with the endpoint's secret."</p>
                            <button type="button" class="button button-primary" data-test="empty-new-endpoint" on:click=move |_| creating.set(true)>
                                "Add the first endpoint"
                            </button>
                        </div>
                    }.into_any(),
                    Some(list) => view! {
                        <div class="table-scroll">
                            <table class="table">
                                <TableHead columns=&["Endpoint", "Events", "Status"] actions=true/>
                                <tbody>
                                    {list.into_iter().map(|e| view! {
                                        <EndpointRow endpoint=e groups=group_names on_changed=reload/>
                                    }).collect_view()}
                                </tbody>
                            </table>
                        </div>
                    }.into_any(),
                }}
            </section>

            <NatsPanel/>

            <Show when=move || creating.get()>
                <EndpointForm
                    endpoint=None
                    on_close=Callback::new(move |_| creating.set(false))
                    on_saved=Callback::new(move |secret: Option<String>| {
                        creating.set(false);
                        fresh_secret.set(secret);
                        endpoints.reload();
                    })
                />
            </Show>

            {move || fresh_secret.get().map(|secret| view! {
                <SecretReveal
                    title="Endpoint created"
                    secrets=vec![Secret { label: "Signing secret", value: secret, test: "webhook-secret", copy_test: "copy-webhook-secret" }]
                    intro="Stead signs every request to this endpoint with this secret (headers webhook-id, webhook-timestamp, webhook-signature). Give it to your receiver, so that it can check each request came from Stead."
                    warning=("Store it with your receiver now.", "You can show it again on the endpoint's page, and rotate it there if it leaks.")
                    close_label="Done"
                    on_close=Callback::new(move |_| fresh_secret.set(None))
                />
            })}
        </div>
    }
}

#[component]
fn EndpointRow(
    endpoint: WebhookEndpoint,
    groups: Signal<Vec<DeviceGroup>>,
    on_changed: Callback<()>,
) -> impl IntoView {
    let id = endpoint.id;
    let group = endpoint.group_id;
    let group_name = move || {
        group.map(|g| {
            groups
                .get()
                .into_iter()
                .find(|x| x.id == g)
                .map_or_else(|| "one device group".to_owned(), |x| x.name)
        })
    };
    let (enabled, url, pending) = (endpoint.enabled, endpoint.url.clone(), endpoint.pending);
    let description = Some(endpoint.description.clone()).filter(|d| !d.is_empty());
    let (events, all_events) = (
        event_summary(&endpoint.event_types),
        event_list(&endpoint.event_types),
    );
    let words = format_words(&endpoint);
    view! {
        <tr data-test="endpoint-row" class:inactive=!enabled>
            <td class="endpoint-col">
                <A href=format!("/integrations/{id}") attr:class="strong endpoint-url" attr:data-test="endpoint-link">
                    {url}
                </A>
                {description.map(|d| view! { <div class="muted small">{d}</div> })}
            </td>
            <td class="small">
                <div data-test="endpoint-events" title=all_events>{events}</div>
                <div class="muted">
                    {move || group_name().map(|g| format!("Devices of {g} · "))}
                    {words}
                </div>
            </td>
            <td>
                <EndpointStatus endpoint=endpoint.clone()/>
                {(pending > 0).then(|| view! {
                    <div class="muted small" data-test="endpoint-pending">{format!("{pending} waiting")}</div>
                })}
            </td>
            <td class="actions-col">
                <EndpointActions endpoint=endpoint on_changed=on_changed on_deleted=on_changed/>
            </td>
        </tr>
    }
}

/// "All events", one or two types by name, or how many.
fn event_summary(types: &[EventType]) -> String {
    match types {
        [] => "All events".to_owned(),
        [one] => one.as_str().to_owned(),
        [a, b] => format!("{}, {}", a.as_str(), b.as_str()),
        more => format!("{} event types", more.len()),
    }
}

/// Every type of the filter, for a tooltip.
fn event_list(types: &[EventType]) -> String {
    if types.is_empty() {
        return "Every event type".to_owned();
    }
    types
        .iter()
        .map(|t| t.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The request shape and the delivery order, in a few words.
fn format_words(endpoint: &WebhookEndpoint) -> String {
    let format = match endpoint.format {
        WebhookFormat::Standard => "Standard Webhooks",
        WebhookFormat::Cloudevents => "CloudEvents",
    };
    if endpoint.ordered {
        format!("{format} · in order")
    } else {
        format!("{format} · up to {} at once", endpoint.max_concurrency)
    }
}

/// On, failing (since when) or off (and why).
#[component]
fn EndpointStatus(endpoint: WebhookEndpoint) -> impl IntoView {
    let (tone, text, key) = match (endpoint.enabled, endpoint.failing_since.is_some()) {
        (true, false) => (Tone::Good, "Enabled", "enabled"),
        (true, true) => (Tone::Warn, "Failing", "failing"),
        (false, _) => (Tone::Neutral, "Off", "off"),
    };
    let reason = (!endpoint.enabled)
        .then(|| endpoint.disabled_reason.clone())
        .flatten();
    view! {
        <div data-test="endpoint-status" data-status=key>
            <StatusBadge tone=tone text=text status=key/>
            {reason.map(|r| view! { <div class="muted small" data-test="disabled-reason">{r}</div> })}
            {endpoint.failing_since.map(|t| view! {
                <div class="muted small" title=format_time_title(&t)>{format!("failing since {}", format_time(&t))}</div>
            })}
        </div>
    }
}
