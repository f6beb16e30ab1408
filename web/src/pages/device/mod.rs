//! `/devices/:id`: a device's life (presence, latest values, charts, timeline, all live) and
//! its management, in tabs kept in the URL (`?tab=`): the overview (the live view, details,
//! editing, groups, connection instructions, deletion), attributes, commands, credentials,
//! alarms (for holders of `alarms.read`) and firmware (over-the-air updates, for `ota.read`).

mod activity;
mod alarms;
mod attributes;
mod charts;
pub use self::charts::interval_for;
mod commands;
mod credentials;
mod firmware;
pub use self::firmware::{state_label, state_tone};
mod gateway;
mod membership;
mod timeline;

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::NavigateOptions;
use leptos_router::components::{A, Redirect};
use leptos_router::hooks::{use_navigate, use_params_map, use_query_map};
use stead_api_types::{Device, Permission, UpdateDevice};
use uuid::Uuid;

use self::activity::{DeviceLive, LatestValues, LiveIndicator, PresenceBadge, PresenceCard};
use self::alarms::AlarmsTab;
use self::attributes::AttributesTab;
use self::charts::TelemetryCharts;
use self::commands::CommandsTab;
use self::credentials::CredentialsTab;
use self::firmware::FirmwareTab;
use self::gateway::{GatewayLink, SubDevices};
use self::membership::DeviceGroups;
use self::timeline::Timeline;
use super::devices::GatewayBadge;
use crate::api;
use crate::connect::ConnectBox;
use crate::session::use_session;
use crate::shell::RequireTenant;
use crate::ui::{
    ConfirmDialog, ErrorMessage, Loader, Spinner, Tabs, format_time, format_time_title, non_empty,
    use_clock, use_toasts,
};

const TABS: [(&str, &str); 6] = [
    ("overview", "Overview"),
    ("attributes", "Attributes"),
    ("commands", "Commands"),
    ("credentials", "Credentials"),
    ("alarms", "Alarms"),
    ("firmware", "Firmware"),
];

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
    let name = Memo::new(move |_| {
        device
            .with(|d| d.as_ref().map(|d| d.name.clone()))
            .unwrap_or_default()
    });
    let now = use_clock();
    let live = DeviceLive::start(id, now);

    let query = use_query_map();
    let navigate = use_navigate();
    let can_see_alarms = session.can(Permission::AlarmsRead);
    let can_see_ota = session.can(Permission::OtaRead);
    let tabs: Vec<_> = TABS
        .into_iter()
        .filter(|(key, _)| match *key {
            "alarms" => can_see_alarms,
            "firmware" => can_see_ota,
            _ => true,
        })
        .collect();
    let shown_tabs = tabs.clone();
    let tab = Memo::new(move |_| {
        query
            .with(|q| q.get("tab"))
            .filter(|t| shown_tabs.iter().any(|(key, _)| key == t))
            .unwrap_or_else(|| "overview".to_string())
    });
    let select_tab = Callback::new(move |key: &'static str| {
        let path = if key == "overview" {
            format!("/devices/{id}")
        } else {
            format!("/devices/{id}?tab={key}")
        };
        navigate(
            &path,
            NavigateOptions {
                replace: true,
                scroll: false,
                ..Default::default()
            },
        );
    });

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

    view! {
        <header class="page-header">
            <div>
                <h1>{move || name.get()}</h1>
                <p class="muted">
                    {move || device.with(|d| d.as_ref().and_then(|d| d.label.clone())).unwrap_or_else(|| "No label".into())}
                    {move || device.with(|d| d.as_ref().and_then(|d| d.device_type.clone())).map(|t| view! { " · " <span class="badge">{t}</span> })}
                    {move || device.get().map(|d| view! { <GatewayBadge device=d/> })}
                </p>
            </div>
            <div class="header-status">
                {move || device.with(|d| d.as_ref().and_then(|d| d.disabled_reason.clone())).map(|why| view! {
                    <span class="badge badge-bad" data-test="disabled-badge" title=why>"Disabled"</span>
                })}
                <LiveIndicator live=live/>
                <PresenceBadge live=live/>
            </div>
        </header>

        <Tabs tabs=tabs active=tab.into() on_select=select_tab/>

        {move || match tab.get().as_str() {
            "attributes" => view! { <AttributesTab id=id now=now/> }.into_any(),
            "commands" => view! { <CommandsTab id=id now=now/> }.into_any(),
            "credentials" => view! { <CredentialsTab device=device fresh_token=fresh_token/> }.into_any(),
            "alarms" => view! { <AlarmsTab id=id/> }.into_any(),
            "firmware" => view! { <FirmwareTab id=id device=device/> }.into_any(),
            _ => view! { <Overview id=id device=device live=live fresh_token=fresh_token on_delete=Callback::new(move |_| delete_confirm.set(true))/> }.into_any(),
        }}

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

/// The first tab: the device's life as it happens, its details and its everyday management.
#[component]
fn Overview(
    id: Uuid,
    device: RwSignal<Option<Device>>,
    live: DeviceLive,
    fresh_token: RwSignal<Option<String>>,
    on_delete: Callback<()>,
) -> impl IntoView {
    let session = use_session();
    let can_write = Memo::new(move |_| session.can(Permission::DevicesWrite));
    let on_saved = Callback::new(move |d: Device| device.set(Some(d)));
    view! {
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
                {move || device.with(|d| d.as_ref().is_some_and(|d| d.gateway)).then(|| view! { <SubDevices id=id/> })}
                <ConnectBox fresh_token=fresh_token/>
                <DeviceGroups id=id/>

                <Show when=move || can_write.get()>
                    <section class="card danger-zone">
                        <h2>"Delete device"</h2>
                        <p class="muted">"Removes the device and its credentials. This cannot be undone."</p>
                        <button type="button" class="button button-danger" data-test="delete-device" on:click=move |_| on_delete.run(())>
                            "Delete device"
                        </button>
                    </section>
                </Show>
            </div>
        </div>
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
                {device.gateway_id.map(|gateway| view! {
                    <dt>"Behind gateway"</dt>
                    <dd><GatewayLink gateway=gateway/></dd>
                })}
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
    let profile = RwSignal::new(device.profile_id);
    let gateway = RwSignal::new(device.gateway);
    let was_gateway = device.gateway;
    let profiles = Loader::new(move || api::list_profiles(session));
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
            profile_id: Some(profile.get_untracked()),
            gateway: (gateway.get_untracked() != was_gateway).then(|| gateway.get_untracked()),
            ..Default::default()
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
                    <span>"Profile"</span>
                    <select name="profile" on:change=move |ev| {
                        if let Ok(p) = Uuid::parse_str(&event_target_value(&ev)) {
                            profile.set(p);
                        }
                    }>
                        {move || {
                            let list = profiles.data.get().unwrap_or_default();
                            if list.is_empty() {
                                // Until the list arrives, the current profile stands alone.
                                view! { <option value=profile.get_untracked().to_string()>"Current profile"</option> }.into_any()
                            } else {
                                list.into_iter().map(|p| view! {
                                    <option value=p.id.to_string() selected=move || profile.get() == p.id>
                                        {if p.is_default { format!("{} (default)", p.name) } else { p.name.clone() }}
                                    </option>
                                }).collect_view().into_any()
                            }
                        }}
                    </select>
                </label>
                <label class="checkbox">
                    <input type="checkbox" name="gateway" data-test="edit-gateway"
                        prop:checked=move || gateway.get() on:change=move |ev| gateway.set(event_target_checked(&ev))/>
                    <span>"Gateway " <small class="hint">"(speaks for the devices behind it; changing this ends its session so that it reconnects as what it is now)"</small></span>
                </label>
                <label class="field">
                    <span>"Metadata " <em class="hint">"(JSON object)"</em></span>
                    <textarea name="metadata" rows="6" spellcheck="false" class="mono" bind:value=metadata></textarea>
                </label>
                <ErrorMessage error=error/>
                <div class="form-actions">
                    <button type="submit" class="button button-primary" data-test="save-device" disabled=move || busy.get()>
                        {move || if busy.get() { "Saving…" } else { "Save changes" }}
                    </button>
                </div>
            </form>
        </section>
    }
}
