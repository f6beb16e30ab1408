//! `/devices`: the device list with search, sorting and pages; creating a device (its token is
//! shown once) and deleting one.

use gloo_timers::callback::Timeout;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::use_navigate;
use stead_api_types::{CreateDevice, Device};
use uuid::Uuid;

use crate::api;
use crate::connect::ConnectCommands;
use crate::session::use_session;
use crate::shell::RequireTenant;
use crate::ui::{
    ConfirmDialog, ErrorMessage, Loader, Modal, Pagination, Spinner, TokenReveal, format_time,
    format_time_title, non_empty, use_toasts,
};

const SEARCH_DEBOUNCE_MS: u32 = 300;

const SORTS: [(&str, &str); 6] = [
    ("-created_at", "Newest first"),
    ("created_at", "Oldest first"),
    ("name", "Name A–Z"),
    ("-name", "Name Z–A"),
    ("label", "Label"),
    ("-updated_at", "Recently updated"),
];

#[component]
pub fn DevicesPage() -> impl IntoView {
    view! {
        <RequireTenant>
            <DeviceList/>
        </RequireTenant>
    }
}

/// Search, sort and page of the device list. Provided once for the whole app, so that coming
/// back from a device page finds the list as it was left.
#[derive(Clone, Copy)]
pub struct ListState {
    search_input: RwSignal<String>,
    search: RwSignal<String>,
    sort: RwSignal<String>,
    page: RwSignal<u64>,
}

impl Default for ListState {
    fn default() -> Self {
        ListState {
            search_input: RwSignal::new(String::new()),
            search: RwSignal::new(String::new()),
            sort: RwSignal::new("-created_at".to_string()),
            page: RwSignal::new(1),
        }
    }
}

impl ListState {
    /// Back to the first page of everything, for the next person to sign in.
    pub fn reset(&self) {
        self.search_input.set(String::new());
        self.search.set(String::new());
        self.sort.set("-created_at".to_string());
        self.page.set(1);
    }
}

/// The one-time token to show after creating a device.
#[derive(Clone, Debug, PartialEq)]
struct NewToken {
    device_name: String,
    token: String,
}

#[component]
fn DeviceList() -> impl IntoView {
    crate::ui::set_title("Devices");
    let session = use_session();
    let toasts = use_toasts();
    let navigate = use_navigate();
    let can_write = Memo::new(move |_| session.can("devices.write"));

    let ListState {
        search_input,
        search,
        sort,
        page,
    } = use_context::<ListState>().unwrap_or_default();
    let debounce_seq = RwSignal::new(0u64);

    let devices = Loader::new(move || {
        let (page, search, sort) = (page.get(), search.get(), sort.get());
        async move { api::list_devices(session, page, &search, &sort).await }
    });

    let on_search = move |ev| {
        let value = event_target_value(&ev);
        search_input.set(value.clone());
        let mine = debounce_seq.get_untracked() + 1;
        debounce_seq.set(mine);
        Timeout::new(SEARCH_DEBOUNCE_MS, move || {
            if debounce_seq.try_get_untracked() == Some(mine) {
                page.try_set(1);
                search.try_set(value);
            }
        })
        .forget();
    };

    let creating = RwSignal::new(false);
    let new_token = RwSignal::new(None::<NewToken>);
    let deleting = RwSignal::new(None::<Device>);
    let delete_busy = RwSignal::new(false);

    let confirm_delete = move |_| {
        let Some(device) = deleting.get_untracked() else {
            return;
        };
        delete_busy.set(true);
        spawn_local(async move {
            match api::delete_device(session, device.id).await {
                Ok(()) => {
                    toasts.success(format!("Device “{}” deleted.", device.name));
                    deleting.try_set(None);
                    // Stepping back keeps the list from showing an empty last page.
                    let on_last_alone = devices
                        .data
                        .try_with_untracked(|d| d.as_ref().is_some_and(|p| p.items.len() == 1))
                        .unwrap_or(false);
                    if on_last_alone && page.try_get_untracked().unwrap_or(1) > 1 {
                        page.try_update(|p| *p -= 1);
                    } else {
                        devices.reload();
                    }
                }
                Err(e) => toasts.error(e.detail),
            }
            delete_busy.try_set(false);
        });
    };

    let total = Signal::derive(move || devices.data.with(|d| d.as_ref().map_or(0, |p| p.total)));
    let searching = move || !search.get().trim().is_empty();

    let open_device = move |id: Uuid| navigate(&format!("/devices/{id}"), Default::default());

    view! {
        <div class="page">
            <header class="page-header">
                <div>
                    <h1>"Devices"</h1>
                    <p class="muted">
                        {move || {
                            let total = devices.data.with(|d| d.as_ref().map(|p| p.total));
                            let noun = if total == Some(1) { "device" } else { "devices" };
                            match total {
                                Some(n) if searching() => format!("{n} matching {noun}"),
                                Some(n) => format!("{n} {noun}"),
                                None => "Everything that reports to this tenant.".to_string(),
                            }
                        }}
                    </p>
                </div>
                <Show when=move || can_write.get()>
                    <button
                        type="button"
                        class="button button-primary"
                        data-test="new-device"
                        on:click=move |_| creating.set(true)
                    >
                        "+ New device"
                    </button>
                </Show>
            </header>

            <div class="toolbar">
                <div class="search">
                    <span class="search-icon" aria-hidden="true">"⌕"</span>
                    <input
                        type="search"
                        placeholder="Search by name or label"
                        aria-label="Search devices"
                        data-test="device-search"
                        prop:value=move || search_input.get()
                        on:input=on_search
                    />
                </div>
                <label class="sort">
                    <span class="muted">"Sort"</span>
                    <select
                        data-test="device-sort"
                        on:change=move |ev| {
                            sort.set(event_target_value(&ev));
                            page.set(1);
                        }
                    >
                        {SORTS
                            .iter()
                            .map(|(value, label)| {
                                view! {
                                    <option value=*value selected=move || sort.get() == *value>
                                        {*label}
                                    </option>
                                }
                            })
                            .collect_view()}
                    </select>
                </label>
                <Show when=move || devices.loading.get() && devices.data.with(|d| d.is_some())>
                    <span class="spinner spinner-small" aria-label="Loading"></span>
                </Show>
            </div>

            <ErrorMessage error=devices.error_text()/>

            {move || match devices.data.get() {
                None if devices.loading.get() => view! { <div class="card"><Spinner label="Loading devices…"/></div> }.into_any(),
                None => ().into_any(),
                Some(p) if p.items.is_empty() && searching() => view! {
                    <div class="card empty-state">
                        <h2>"No matching devices"</h2>
                        <p class="muted">{format!("No device name or label contains “{}”.", search.get().trim())}</p>
                        <button type="button" class="button button-secondary" on:click=move |_| {
                            search_input.set(String::new());
                            search.set(String::new());
                            page.set(1);
                        }>"Clear search"</button>
                    </div>
                }.into_any(),
                Some(p) if p.items.is_empty() => view! {
                    <div class="card empty-state">
                        <div class="empty-icon" aria-hidden="true">"▣"</div>
                        <h2>"No devices yet"</h2>
                        <p class="muted">"Create a device to get its access token and connect it to Stead."</p>
                        <Show when=move || can_write.get()>
                            <button type="button" class="button button-primary" data-test="empty-new-device" on:click=move |_| creating.set(true)>
                                "Create your first device"
                            </button>
                        </Show>
                    </div>
                }.into_any(),
                Some(p) => {
                    let open_device = open_device.clone();
                    view! {
                        <div class="card table-card" class:is-loading=move || devices.loading.get()>
                            <table class="table">
                                <thead>
                                    <tr>
                                        <th>"Name"</th>
                                        <th>"Label"</th>
                                        <th>"Type"</th>
                                        <th>"Created"</th>
                                        <th>"Updated"</th>
                                        <th class="actions-col"><span class="sr-only">"Actions"</span></th>
                                    </tr>
                                </thead>
                                <tbody>
                                    {p.items.into_iter().map(|d| {
                                        let id = d.id;
                                        let open = open_device.clone();
                                        let for_delete = d.clone();
                                        view! {
                                            <tr data-test="device-row" class="clickable" on:click=move |_| open(id)>
                                                <td class="strong">
                                                    <a href=format!("/devices/{id}") on:click=|ev| ev.prevent_default()>{d.name.clone()}</a>
                                                </td>
                                                <td>{d.label.clone().unwrap_or_else(|| "—".into())}</td>
                                                <td>{d.device_type.clone().map(|t| view! { <span class="badge">{t}</span> }.into_any()).unwrap_or_else(|| "—".into_any())}</td>
                                                <td title=format_time_title(&d.created_at)>{format_time(&d.created_at)}</td>
                                                <td title=format_time_title(&d.updated_at)>{format_time(&d.updated_at)}</td>
                                                <td class="actions-col">
                                                    <Show when=move || can_write.get()>
                                                        {
                                                            let for_delete = for_delete.clone();
                                                            view! {
                                                                <button
                                                                    type="button"
                                                                    class="button button-ghost button-small danger-text"
                                                                    data-test="delete-device"
                                                                    on:click=move |ev| {
                                                                        ev.stop_propagation();
                                                                        deleting.set(Some(for_delete.clone()));
                                                                    }
                                                                >
                                                                    "Delete"
                                                                </button>
                                                            }
                                                        }
                                                    </Show>
                                                </td>
                                            </tr>
                                        }
                                    }).collect_view()}
                                </tbody>
                            </table>
                            <Pagination page=page total=total per_page=api::PER_PAGE noun="devices"/>
                        </div>
                    }.into_any()
                }
            }}

            <Show when=move || creating.get()>
                <CreateDeviceModal
                    on_close=Callback::new(move |_| creating.set(false))
                    on_created=Callback::new(move |created: NewToken| {
                        creating.set(false);
                        new_token.set(Some(created));
                        devices.reload();
                    })
                />
            </Show>

            {move || new_token.get().map(|t| {
                let for_commands = t.token.clone();
                view! {
                    <TokenReveal
                        title="Device created"
                        intro=format!("“{}” is ready. Use this access token as the MQTT username of the device, or try one of the lines below.", t.device_name)
                        token=t.token
                        on_close=Callback::new(move |_| new_token.set(None))
                    >
                        <ConnectCommands token=Signal::derive(move || Some(for_commands.clone())) id_prefix="created"/>
                    </TokenReveal>
                }
            })}

            {move || deleting.get().map(|d| view! {
                <ConfirmDialog
                    title="Delete device"
                    message=format!("Delete “{}”? Its token stops working at once. This cannot be undone.", d.name)
                    confirm_label="Delete device"
                    busy=delete_busy
                    on_confirm=Callback::new(confirm_delete)
                    on_cancel=Callback::new(move |_| deleting.set(None))
                />
            })}
        </div>
    }
}

#[component]
fn CreateDeviceModal(on_close: Callback<()>, on_created: Callback<NewToken>) -> impl IntoView {
    let session = use_session();
    let name = RwSignal::new(String::new());
    let label = RwSignal::new(String::new());
    let device_type = RwSignal::new(String::new());
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if busy.get_untracked() {
            return;
        }
        let Some(device_name) = non_empty(&name.get_untracked()) else {
            error.set(Some("Give the device a name.".into()));
            return;
        };
        let body = CreateDevice {
            name: device_name,
            label: non_empty(&label.get_untracked()),
            device_type: non_empty(&device_type.get_untracked()),
            metadata: None,
            profile_id: None,
            groups: None,
            credentials: None,
        };
        busy.set(true);
        error.set(None);
        spawn_local(async move {
            match api::create_device(session, &body).await {
                Ok(created) => {
                    // The token dialog that follows says it was created: no toast.
                    on_created.run(NewToken {
                        device_name: created.device.name,
                        token: created.access_token.unwrap_or_default(),
                    });
                }
                Err(e) => {
                    error.try_set(Some(e.detail));
                    busy.try_set(false);
                }
            }
        });
    };

    view! {
        <Modal title="New device" on_close=on_close>
            <form class="form" on:submit=submit novalidate=true>
                <label class="field">
                    <span>"Name" <em class="required">"required"</em></span>
                    <input type="text" name="name" required=true autofocus=true placeholder="boiler-room-sensor-1" bind:value=name/>
                    <small class="hint">"Unique within your tenant."</small>
                </label>
                <label class="field">
                    <span>"Label"</span>
                    <input type="text" name="label" placeholder="Boiler room, 2nd floor" bind:value=label/>
                </label>
                <label class="field">
                    <span>"Type"</span>
                    <input type="text" name="type" placeholder="thermometer" bind:value=device_type/>
                </label>
                <ErrorMessage error=error/>
                <div class="modal-actions">
                    <button type="button" class="button button-secondary" on:click=move |_| on_close.run(()) disabled=move || busy.get()>
                        "Cancel"
                    </button>
                    <button type="submit" class="button button-primary" disabled=move || busy.get()>
                        {move || if busy.get() { "Creating…" } else { "Create device" }}
                    </button>
                </div>
            </form>
        </Modal>
    }
}
