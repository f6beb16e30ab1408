//! `/integrations/:id`: one webhook endpoint: its settings, its buttons, its signing secret
//! (shown on request), replaying events since a time, and its delivery log.

use leptos::prelude::*;
use leptos_router::components::{A, Redirect};
use leptos_router::hooks::use_params_map;
use stead_api_types::{Permission, WebhookEndpoint, WebhookFormat, WebhookSecret};
use uuid::Uuid;

use super::actions::EndpointActions;
use super::deliveries::{DeliveryLog, ReplaySince};
use super::{ApiDocsLink, EndpointStatus};
use crate::api;
use crate::session::{ApiError, use_session};
use crate::shell::{RequirePermission, RequireTenant};
use crate::ui::{Action, CopyBox, ErrorMessage, Loader, Spinner, format_time, format_time_title};

#[component]
pub fn EndpointPage() -> impl IntoView {
    view! {
        <RequireTenant>
            <RequirePermission permission=Permission::WebhooksManage tenant_wide=true>
                <EndpointDetail/>
            </RequirePermission>
        </RequireTenant>
    }
}

#[component]
fn EndpointDetail() -> impl IntoView {
    let session = use_session();
    let params = use_params_map();
    let id =
        Memo::new(move |_| params.with(|p| p.get("id").and_then(|s| Uuid::parse_str(&s).ok())));
    let endpoint = Loader::new(move || {
        let id = id.get();
        async move {
            match id {
                Some(id) => api::get_webhook(session, id).await,
                None => Err(ApiError::unexpected("This is not an endpoint's address.")),
            }
        }
    });
    // Equal answers (the page reads the endpoint on every live tick) change nothing.
    let current = Memo::new(move |_| endpoint.data.get());
    let loaded_id = Memo::new(move |_| current.with(|e| e.as_ref().map(|e| e.id)));
    let not_found = Memo::new(move |_| {
        id.get().is_none()
            || endpoint
                .error
                .with(|e| e.as_ref().is_some_and(|e| e.status == 404))
    });
    let deleted = RwSignal::new(false);

    view! {
        <div class="page">
            <nav class="breadcrumb" aria-label="Breadcrumb">
                <A href="/integrations">"Integrations"</A>
                {move || current.with(|e| e.as_ref().map(|e| e.url.clone())).map(|url| view! {
                    <span aria-hidden="true">"/"</span>
                    <span class="endpoint-url">{url}</span>
                })}
            </nav>
            {move || match loaded_id.get() {
                _ if not_found.get() => view! {
                    <div class="card empty-state" data-test="endpoint-not-found">
                        <h2>"Endpoint not found"</h2>
                        <p class="muted">"It may have been deleted, or it belongs to another tenant."</p>
                        <A href="/integrations" attr:class="button button-primary">"Back to integrations"</A>
                    </div>
                }.into_any(),
                None if endpoint.loading.get() => view! { <div class="card"><Spinner label="Loading the endpoint…"/></div> }.into_any(),
                None => view! { <ErrorMessage error=endpoint.error_text()/> }.into_any(),
                Some(id) => {
                    let first = current.get_untracked();
                    first.map(|first| view! {
                        <EndpointView
                            id=id
                            endpoint=Signal::derive(move || current.get().unwrap_or_else(|| first.clone()))
                            reload=Callback::new(move |_| endpoint.reload())
                            on_deleted=Callback::new(move |_| deleted.set(true))
                        />
                    }).into_any()
                }
            }}
            {move || deleted.get().then(|| view! { <Redirect path="/integrations"/> })}
        </div>
    }
}

#[component]
fn EndpointView(
    id: Uuid,
    endpoint: Signal<WebhookEndpoint>,
    reload: Callback<()>,
    on_deleted: Callback<()>,
) -> impl IntoView {
    let session = use_session();
    let groups = Loader::new(move || api::list_groups(session));
    // Bumped when deliveries may have been queued, for the log to read them at once.
    let refresh = RwSignal::new(0u64);
    let changed = Callback::new(move |_| {
        reload.run(());
        refresh.update(|n| *n += 1);
    });
    let title = Memo::new(move |_| {
        endpoint.with(|e| {
            if e.description.is_empty() {
                "Webhook endpoint".to_owned()
            } else {
                e.description.clone()
            }
        })
    });
    Effect::new(move |_| crate::ui::set_title(&title.get()));
    let group_name = move || {
        endpoint.with(|e| e.group_id).map(|g| {
            groups
                .data
                .get()
                .unwrap_or_default()
                .into_iter()
                .find(|x| x.id == g)
                .map_or_else(|| g.to_string(), |x| x.name)
        })
    };

    view! {
        <header class="page-header">
            <div>
                <h1 data-test="endpoint-title">{move || title.get()}</h1>
                <p class="muted"><code class="endpoint-url" data-test="endpoint-url">{move || endpoint.with(|e| e.url.clone())}</code></p>
            </div>
            <div class="header-status">
                {move || view! { <EndpointStatus endpoint=endpoint.get()/> }}
                <ApiDocsLink/>
            </div>
        </header>

        <EndpointActions endpoint=endpoint on_changed=changed on_deleted=on_deleted full=true/>

        <DeliveryLog id=id refresh=refresh.into() on_poll=reload/>

        <div class="grid">
            <section class="card">
                <h2>"Settings"</h2>
                {move || {
                    let e = endpoint.get();
                    let events = if e.event_types.is_empty() {
                        view! { <span>"All events"</span> }.into_any()
                    } else {
                        view! {
                            <span class="badge-list">
                                {e.event_types.iter().map(|t| view! {
                                    <span class="badge" title=t.label()>{t.as_str()}</span>
                                }).collect_view()}
                            </span>
                        }.into_any()
                    };
                    let format = match e.format {
                        WebhookFormat::Standard => "Standard Webhooks (JSON)",
                        WebhookFormat::Cloudevents => "CloudEvents 1.0, structured",
                    };
                    let order = if e.ordered {
                        "In event order, one at a time".to_owned()
                    } else {
                        format!("Up to {} requests at once", e.max_concurrency)
                    };
                    view! {
                        <dl class="details" data-test="endpoint-settings">
                            <dt>"Events"</dt>
                            <dd data-test="endpoint-events">{events}</dd>
                            <dt>"Devices"</dt>
                            <dd>{move || group_name().map_or_else(|| "Every device".to_owned(), |g| format!("Only devices of {g}"))}</dd>
                            <dt>"Format"</dt>
                            <dd>{format}</dd>
                            <dt>"Delivery"</dt>
                            <dd>{order}</dd>
                            <dt>"Waiting"</dt>
                            <dd data-test="endpoint-pending">{match e.pending { 1 => "1 delivery".to_owned(), n => format!("{n} deliveries") }}</dd>
                            <dt>"Created"</dt>
                            <dd title=format_time_title(&e.created_at)>{format_time(&e.created_at)}</dd>
                            <dt>"Changed"</dt>
                            <dd title=format_time_title(&e.updated_at)>{format_time(&e.updated_at)}</dd>
                        </dl>
                    }
                }}
            </section>
            <div class="stack">
                <SigningSecret id=id endpoint=endpoint refresh=refresh.into()/>
                <ReplaySince id=id on_replayed=Callback::new(move |_| refresh.update(|n| *n += 1))/>
            </div>
        </div>

    }
}

/// The signing secret, fetched only when asked for; hidden again after a rotation.
#[component]
fn SigningSecret(
    id: Uuid,
    endpoint: Signal<WebhookEndpoint>,
    refresh: Signal<u64>,
) -> impl IntoView {
    let session = use_session();
    let shown = RwSignal::new(None::<WebhookSecret>);
    let action = Action::new();
    Effect::new(move |_| {
        refresh.track();
        shown.set(None);
    });
    let show = move |_| {
        action.run(api::webhook_secret(session, id), move |s| {
            shown.set(Some(s));
        });
    };
    view! {
        <section class="card">
            <h2>"Signing secret"</h2>
            <p class="muted">"Every request carries the headers webhook-id, webhook-timestamp and webhook-signature (HMAC-SHA256 with this secret), which any Standard Webhooks library checks."</p>
            <div class="section-gap">
                {move || match shown.get() {
                    None => view! {
                        <button type="button" class="button button-secondary" data-test="show-secret"
                            disabled=move || action.busy.get() on:click=show>
                            {move || if action.busy.get() { "Loading…" } else { "Show secret" }}
                        </button>
                    }.into_any(),
                    Some(s) => view! {
                        <div class="secrets">
                            <CopyBox value=s.secret element_id="webhook-secret-shown" test="shown-secret" copy_test="copy-shown-secret"/>
                            {s.previous_secret.map(|p| view! {
                                <span class="secret-label">
                                    {s.previous_secret_expires_at.map_or_else(
                                        || "Previous secret, still signing".to_owned(),
                                        |t| format!("Previous secret, still signing until {}", format_time(&t)),
                                    )}
                                </span>
                                <CopyBox value=p element_id="webhook-previous-secret-shown" test="shown-previous-secret" copy_test="copy-shown-previous-secret"/>
                            })}
                            <div>
                                <button type="button" class="button button-ghost button-small" data-test="hide-secret" on:click=move |_| shown.set(None)>
                                    "Hide"
                                </button>
                            </div>
                        </div>
                    }.into_any(),
                }}
            </div>
            {move || endpoint.with(|e| e.previous_secret_expires_at).filter(|t| *t > crate::ui::now() && shown.with(Option::is_none)).map(|t| view! {
                <p class="hint" title=format_time_title(&t)>{format!("After a rotation, the previous secret also signs until {}.", format_time(&t))}</p>
            })}
            <ErrorMessage error=action.error/>
        </section>
    }
}
