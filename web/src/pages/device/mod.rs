//! `/devices/:id`: a device's life (presence, latest values, charts, timeline, all live) and
//! its management (details, editing, connection instructions, token rotation, deletion).

mod activity;
mod charts;
mod timeline;

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::components::{A, Redirect};
use leptos_router::hooks::use_params_map;
use stead_api_types::{Device, UpdateDevice};
use uuid::Uuid;

use self::activity::{DeviceLive, LatestValues, LiveIndicator, PresenceBadge, PresenceCard};
use self::charts::TelemetryCharts;
use self::timeline::Timeline;
use crate::api;
use crate::connect::{ConnectBox, ConnectCommands};
use crate::session::use_session;
use crate::shell::RequireTenant;
use crate::ui::{
    ConfirmDialog, ErrorMessage, Loader, Spinner, TokenReveal, format_time, format_time_title,
    non_empty, use_clock, use_toasts,
};

#[component]
pub fn DevicePage() -> impl IntoView {
    view! {
        <RequireTenant>
            <DeviceDetail/>
        </RequireTenant>
    }
}

#[component]
fn DeviceDetail() -> impl IntoView {
    let session = use_session();
    let params = use_params_map();
    let id =
        Memo::new(move |_| params.with(|p| p.get("id").and_then(|s| Uuid::parse_str(&s).ok())));

    let device = Loader::new(move || {
        let id = id.get();
        async move {
            match id {
                Some(id) => api::get_device(session, id).await,
                None => Err(crate::session::ApiError {
                    status: 404,
                    code: "not_found".into(),
                    detail: "This is not a device address.".into(),
                    field: None,
                }),
            }
        }
    });
    // The token shown once after a rotation, also used to fill in the connection box.
    let fresh_token = RwSignal::new(None::<String>);
    let loaded_id = Memo::new(move |_| device.data.with(|d| d.as_ref().map(|d| d.id)));

    view! {
        <div class="page">
            <nav class="breadcrumb" aria-label="Breadcrumb">
                <A href="/devices">"Devices"</A>
                {move || {
                    device.data.with(|d| d.as_ref().map(|d| d.name.clone())).map(|name| {
                        view! {
                            <span aria-hidden="true">"/"</span>
                            <span>{name}</span>
                        }
                    })
                }}
            </nav>
            {move || {
                let not_found = device.error.with(|e| e.as_ref().is_some_and(|e| e.status == 404));
                // Keyed on the id alone: saving the device must not restart the live stream.
                match loaded_id.get() {
                    _ if not_found => view! {
                        <div class="card empty-state">
                            <h2>"Device not found"</h2>
                            <p class="muted">"It may have been deleted, or it belongs to another tenant."</p>
                            <A href="/devices" attr:class="button button-primary">"Back to devices"</A>
                        </div>
                    }.into_any(),
                    None if device.loading.get() => view! { <div class="card"><Spinner label="Loading device…"/></div> }.into_any(),
                    None => view! { <ErrorMessage error=device.error_text()/> }.into_any(),
                    Some(id) => view! {
                        <DeviceView id=id device=device.data fresh_token=fresh_token/>
                    }.into_any(),
                }
            }}
        </div>
    }
}

#[component]
fn DeviceView(
    id: Uuid,
    device: RwSignal<Option<Device>>,
    fresh_token: RwSignal<Option<String>>,
) -> impl IntoView {
    let session = use_session();
    let toasts = use_toasts();
    let can_write = Memo::new(move |_| session.can("devices.write"));
    let name = Memo::new(move |_| {
        device
            .with(|d| d.as_ref().map(|d| d.name.clone()))
            .unwrap_or_default()
    });
    let now = use_clock();
    let live = DeviceLive::start(id, now);

    let rotate_confirm = RwSignal::new(false);
    let rotate_busy = RwSignal::new(false);
    let reveal = RwSignal::new(None::<String>);
    let rotate = move |_| {
        rotate_busy.set(true);
        spawn_local(async move {
            match api::rotate_device_token(session, id).await {
                Ok(creds) => {
                    rotate_confirm.try_set(false);
                    fresh_token.try_set(creds.access_token.clone());
                    reveal.try_set(creds.access_token);
                    toasts.success("New access token issued. The old one no longer works.");
                }
                Err(e) => toasts.error(e.detail),
            }
            rotate_busy.try_set(false);
        });
    };

    let delete_confirm = RwSignal::new(false);
    let delete_busy = RwSignal::new(false);
    let deleted = RwSignal::new(false);
    let delete = move |_: ()| {
        delete_busy.set(true);
        let name = name.get_untracked();
        spawn_local(async move {
            match api::delete_device(session, id).await {
                Ok(()) => {
                    toasts.success(format!("Device “{name}” deleted."));
                    deleted.try_set(true);
                }
                Err(e) => {
                    toasts.error(e.detail);
                    delete_busy.try_set(false);
                }
            }
        });
    };

    Effect::new(move |_| crate::ui::set_title(&name.get()));
    let on_saved = Callback::new(move |d: Device| device.set(Some(d)));

    view! {
        <header class="page-header">
            <div>
                <h1>{move || name.get()}</h1>
                <p class="muted">
                    {move || device.with(|d| d.as_ref().and_then(|d| d.label.clone())).unwrap_or_else(|| "No label".into())}
                    {move || device.with(|d| d.as_ref().and_then(|d| d.device_type.clone())).map(|t| view! { " · " <span class="badge">{t}</span> })}
                </p>
            </div>
            <div class="header-status">
                <LiveIndicator live=live/>
                <PresenceBadge live=live/>
            </div>
        </header>

        <PresenceCard live=live/>
        <LatestValues live=live/>
        <TelemetryCharts live=live/>

        <div class="grid">
            <div class="stack">
                <Timeline live=live/>
                {move || device.get().map(|d| view! { <DeviceDetails device=d/> })}
                {move || match (can_write.get(), device.get()) {
                    (true, Some(d)) => view! { <EditDevice device=d on_saved=on_saved/> }.into_any(),
                    (false, Some(d)) => {
                        let metadata = serde_json::to_string_pretty(&d.metadata).unwrap_or_else(|_| "{}".into());
                        view! {
                            <section class="card">
                                <h2>"Metadata"</h2>
                                <pre class="code-block">{metadata}</pre>
                            </section>
                        }.into_any()
                    }
                    (_, None) => ().into_any(),
                }}
            </div>

            <div class="stack">
                <ConnectBox fresh_token=fresh_token/>

                <Show when=move || can_write.get()>
                    <section class="card">
                        <h2>"Access token"</h2>
                        <p class="muted">
                            "The token authenticates the device. Rotate it if it may have leaked: the current token stops working at once."
                        </p>
                        <button type="button" class="button button-secondary" data-test="rotate-token" on:click=move |_| rotate_confirm.set(true)>
                            "Rotate token"
                        </button>
                    </section>

                    <section class="card danger-zone">
                        <h2>"Delete device"</h2>
                        <p class="muted">"Removes the device and its credentials. This cannot be undone."</p>
                        <button type="button" class="button button-danger" data-test="delete-device" on:click=move |_| delete_confirm.set(true)>
                            "Delete device"
                        </button>
                    </section>
                </Show>
            </div>
        </div>

        <Show when=move || rotate_confirm.get()>
            <ConfirmDialog
                title="Rotate access token"
                message="A new token will be issued and the current one stops working immediately. The device must be reconfigured with the new token."
                confirm_label="Rotate token"
                busy=rotate_busy
                on_confirm=Callback::new(rotate)
                on_cancel=Callback::new(move |_| rotate_confirm.set(false))
            />
        </Show>
        {move || reveal.get().map(|token| {
            let for_commands = token.clone();
            view! {
                <TokenReveal
                    title="New access token"
                    intro="Configure the device with this token. The previous token no longer works."
                    token=token
                    on_close=Callback::new(move |_| reveal.set(None))
                >
                    <ConnectCommands token=Signal::derive(move || Some(for_commands.clone())) id_prefix="rotated"/>
                </TokenReveal>
            }
        })}
        {move || deleted.get().then(|| view! { <Redirect path="/devices"/> })}
        {move || delete_confirm.get().then(|| view! {
            <ConfirmDialog
                title="Delete device"
                message=format!("Delete “{}”? Its token stops working at once. This cannot be undone.", name.get_untracked())
                confirm_label="Delete device"
                busy=delete_busy
                on_confirm=Callback::new(delete)
                on_cancel=Callback::new(move |_| delete_confirm.set(false))
            />
        })}
    }
}

#[component]
fn DeviceDetails(device: Device) -> impl IntoView {
    view! {
        <section class="card">
            <h2>"Details"</h2>
            <dl class="details">
                <dt>"Device ID"</dt>
                <dd><code>{device.id.to_string()}</code></dd>
                <dt>"Name"</dt>
                <dd>{device.name.clone()}</dd>
                <dt>"Label"</dt>
                <dd>{device.label.clone().unwrap_or_else(|| "—".into())}</dd>
                <dt>"Type"</dt>
                <dd>{device.device_type.clone().unwrap_or_else(|| "—".into())}</dd>
                <dt>"Created"</dt>
                <dd title=format_time_title(&device.created_at)>{format_time(&device.created_at)}</dd>
                <dt>"Updated"</dt>
                <dd title=format_time_title(&device.updated_at)>{format_time(&device.updated_at)}</dd>
            </dl>
        </section>
    }
}

#[component]
fn EditDevice(device: Device, on_saved: Callback<Device>) -> impl IntoView {
    let session = use_session();
    let toasts = use_toasts();
    let name = RwSignal::new(device.name.clone());
    let label = RwSignal::new(device.label.clone().unwrap_or_default());
    let device_type = RwSignal::new(device.device_type.clone().unwrap_or_default());
    let metadata = RwSignal::new(
        serde_json::to_string_pretty(&device.metadata).unwrap_or_else(|_| "{}".into()),
    );
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let id = device.id;

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if busy.get_untracked() {
            return;
        }
        let Some(new_name) = non_empty(&name.get_untracked()) else {
            error.set(Some("The name cannot be empty.".into()));
            return;
        };
        let metadata_text = metadata.get_untracked();
        let metadata_value = if metadata_text.trim().is_empty() {
            serde_json::json!({})
        } else {
            match serde_json::from_str::<serde_json::Value>(&metadata_text) {
                Ok(v) if v.is_object() => v,
                Ok(_) => {
                    error.set(Some(
                        "Metadata must be a JSON object, such as {\"floor\": 2}.".into(),
                    ));
                    return;
                }
                Err(e) => {
                    error.set(Some(format!("Metadata is not valid JSON: {e}.")));
                    return;
                }
            }
        };
        let body = UpdateDevice {
            name: Some(new_name),
            label: Some(non_empty(&label.get_untracked())),
            device_type: Some(non_empty(&device_type.get_untracked())),
            metadata: Some(metadata_value),
            profile_id: None,
        };
        busy.set(true);
        error.set(None);
        spawn_local(async move {
            match api::update_device(session, id, &body).await {
                Ok(updated) => {
                    toasts.success("Device saved.");
                    on_saved.run(updated);
                }
                Err(e) => {
                    error.try_set(Some(e.detail));
                }
            }
            busy.try_set(false);
        });
    };

    view! {
        <section class="card">
            <h2>"Edit"</h2>
            <form class="form" on:submit=submit novalidate=true>
                <label class="field">
                    <span>"Name"</span>
                    <input type="text" name="name" required=true bind:value=name/>
                </label>
                <div class="field-row">
                    <label class="field">
                        <span>"Label"</span>
                        <input type="text" name="label" placeholder="None" bind:value=label/>
                    </label>
                    <label class="field">
                        <span>"Type"</span>
                        <input type="text" name="type" placeholder="None" bind:value=device_type/>
                    </label>
                </div>
                <label class="field">
                    <span>"Metadata " <em class="hint">"(JSON object)"</em></span>
                    <textarea name="metadata" rows="6" spellcheck="false" class="mono" bind:value=metadata></textarea>
                </label>
                <ErrorMessage error=error/>
                <div class="form-actions">
                    <button type="submit" class="button button-primary" disabled=move || busy.get()>
                        {move || if busy.get() { "Saving…" } else { "Save changes" }}
                    </button>
                </div>
            </form>
        </section>
    }
}
