//! The endpoint dialog: a new endpoint (its secret is handed back to be shown once) or changes
//! to one (`PATCH`, every field sent).

use std::collections::BTreeSet;

use leptos::prelude::*;
use stead_api_types::{CreateWebhook, EventType, UpdateWebhook, WebhookEndpoint, WebhookFormat};
use uuid::Uuid;

use crate::api;
use crate::session::use_session;
use crate::ui::{Action, CheckPicker, ErrorMessage, FormActions, Modal, non_empty};

const FORMATS: [(WebhookFormat, &str, &str); 2] = [
    (WebhookFormat::Standard, "standard", "Standard Webhooks"),
    (WebhookFormat::Cloudevents, "cloudevents", "CloudEvents 1.0"),
];

/// Creates an endpoint (`endpoint` absent) or changes one; `on_saved` gets a new endpoint's
/// signing secret.
#[component]
pub fn EndpointForm(
    endpoint: Option<WebhookEndpoint>,
    on_close: Callback<()>,
    on_saved: Callback<Option<String>>,
) -> impl IntoView {
    let session = use_session();
    let existing = endpoint.as_ref().map(|e| e.id);
    let url = RwSignal::new(endpoint.as_ref().map(|e| e.url.clone()).unwrap_or_default());
    let description = RwSignal::new(
        endpoint
            .as_ref()
            .map(|e| e.description.clone())
            .unwrap_or_default(),
    );
    let chosen = RwSignal::new(
        endpoint
            .as_ref()
            .map(|e| e.event_types.iter().copied().collect::<BTreeSet<_>>())
            .unwrap_or_default(),
    );
    let group = RwSignal::new(endpoint.as_ref().and_then(|e| e.group_id));
    let format = RwSignal::new(endpoint.as_ref().map(|e| e.format).unwrap_or_default());
    let ordered = RwSignal::new(endpoint.as_ref().is_some_and(|e| e.ordered));
    let concurrency = RwSignal::new(
        endpoint
            .as_ref()
            .map_or(4, |e| e.max_concurrency)
            .to_string(),
    );
    let catalogue = crate::ui::Loader::new(move || api::event_types(session));
    let groups = crate::ui::Loader::new(move || api::list_groups(session));
    // The test event goes only where "Send test event" sends it: no filter takes it.
    let offered = Signal::derive(move || {
        catalogue
            .data
            .get()
            .unwrap_or_default()
            .into_iter()
            .filter(|t| t.event_type != EventType::WebhookTest)
            .map(|t| (t.event_type, t.label, t.event_type.as_str().to_owned()))
            .collect::<Vec<_>>()
    });
    let action = Action::new();

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let Some(url_value) = non_empty(&url.get_untracked()) else {
            action.refuse("Enter the URL Stead should send the events to.");
            return;
        };
        let Ok(max_concurrency) = concurrency.get_untracked().trim().parse::<u32>() else {
            action.refuse("Requests at once is a whole number, such as 4.");
            return;
        };
        let description_value = description.get_untracked().trim().to_owned();
        let event_types: Vec<EventType> = chosen.get_untracked().into_iter().collect();
        let (group_id, format_value, ordered_value) = (
            group.get_untracked(),
            format.get_untracked(),
            ordered.get_untracked(),
        );
        let fut = async move {
            match existing {
                None => {
                    let body = CreateWebhook {
                        url: url_value,
                        description: description_value,
                        event_types,
                        group_id,
                        format: format_value,
                        ordered: ordered_value,
                        max_concurrency: Some(max_concurrency),
                        secret: None,
                    };
                    api::create_webhook(session, &body)
                        .await
                        .map(|c| Some(c.secret))
                }
                Some(id) => {
                    let body = UpdateWebhook {
                        url: Some(url_value),
                        description: Some(description_value),
                        event_types: Some(event_types),
                        group_id: Some(group_id),
                        format: Some(format_value),
                        ordered: Some(ordered_value),
                        max_concurrency: Some(max_concurrency),
                        enabled: None,
                    };
                    api::update_webhook(session, id, &body).await.map(|_| None)
                }
            }
        };
        action.run(fut, move |secret| on_saved.run(secret));
    };

    view! {
        <Modal title=if existing.is_some() { "Edit endpoint" } else { "New endpoint" } on_close=on_close wide=true>
            <form class="form" on:submit=submit novalidate=true>
                <label class="field">
                    <span>"URL" <em class="required">"required"</em></span>
                    <input type="url" name="url" autocomplete="off" placeholder="https://example.com/stead/events" bind:value=url/>
                    <small class="hint">"HTTPS is best. Stead POSTs each event here and counts any 2xx answer as delivered."</small>
                </label>
                <label class="field">
                    <span>"Description"</span>
                    <input type="text" name="description" autocomplete="off" placeholder="ERP sync" bind:value=description/>
                </label>
                <ErrorMessage error=catalogue.error_text()/>
                <CheckPicker
                    legend="Events"
                    name="event_types"
                    test="event-type"
                    chosen=chosen
                    offered=offered
                    wide=true
                    hint="Tick none to receive every event, including types added later."
                />
                <div class="field-row">
                    <label class="field">
                        <span>"Devices"</span>
                        <select name="group" data-test="endpoint-group" on:change=move |ev| {
                            group.set(Uuid::parse_str(&event_target_value(&ev)).ok());
                        }>
                            <option value="" selected=move || group.get().is_none()>"Every device"</option>
                            {move || groups.data.get().unwrap_or_default().into_iter().map(|g| view! {
                                <option value=g.id.to_string() selected=move || group.get() == Some(g.id)>
                                    {format!("Only devices of {}", g.name)}
                                </option>
                            }).collect_view()}
                        </select>
                        <small class="hint">"Events that are not about a device (audit entries) go either way."</small>
                    </label>
                    <label class="field">
                        <span>"Format"</span>
                        <select name="format" data-test="endpoint-format" on:change=move |ev| {
                            let value = event_target_value(&ev);
                            if let Some((f, _, _)) = FORMATS.iter().find(|(_, key, _)| *key == value) {
                                format.set(*f);
                            }
                        }>
                            {FORMATS.iter().map(|(f, key, label)| view! {
                                <option value=*key selected=move || format.get() == *f>{*label}</option>
                            }).collect_view()}
                        </select>
                        <small class="hint">"Standard Webhooks: JSON with type, timestamp and data. CloudEvents: its structured JSON, signed the same way."</small>
                    </label>
                </div>
                <div class="field-row">
                    <label class="field">
                        <span>"Requests at once"</span>
                        <input type="number" name="max_concurrency" min="1" max="32" data-test="endpoint-concurrency"
                            disabled=move || ordered.get() bind:value=concurrency/>
                        <small class="hint">"How many requests may be open to this endpoint at the same time (1 to 32)."</small>
                    </label>
                    <div class="field">
                        <span class="field-label">"Order"</span>
                        <label class="checkbox">
                            <input type="checkbox" name="ordered" data-test="endpoint-ordered"
                                prop:checked=move || ordered.get()
                                on:change=move |ev| ordered.set(event_target_checked(&ev))/>
                            <span>"In event order, one at a time"</span>
                        </label>
                        <small class="hint">"Each event waits until the one before it was delivered or given up."</small>
                    </div>
                </div>
                <ErrorMessage error=action.error/>
                <FormActions busy=action.busy on_cancel=on_close
                    label=if existing.is_some() { "Save endpoint" } else { "Create endpoint" }
                    busy_label="Saving…" test="save-endpoint"/>
            </form>
        </Modal>
    }
}
