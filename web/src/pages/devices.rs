//! `/devices`: the device list (each device's online status, last seen and most severe active
//! alarm) with search, sorting, filters (profile, group, label, online, least alarm severity, the
//! gateway a device is behind; kept
//! in the URL query so that a filtered list can be linked to) and pages; a selection with bulk
//! actions; creating a device (its credentials are shown once) and deleting one.

use std::collections::BTreeSet;

use gloo_timers::callback::Timeout;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::NavigateOptions;
use leptos_router::components::A;
use leptos_router::hooks::{use_navigate, use_query_map};
use stead_api_types::{
    AlarmSeverity, AttributeScope, BulkAction, BulkOperation, CreateDevice, Device,
    DeviceCredentials, DeviceGroup, DeviceListQuery, DeviceProfile, DeviceStatus, Permission,
    SetCredentials,
};
use uuid::Uuid;

use super::attribute_form::{AttributeDialog, Draft, Values};
use crate::api;
use crate::connect::ConnectCommands;
use crate::pages::alarms::{SeverityBadge, severity_words};
use crate::session::use_session;
use crate::shell::RequireTenant;
use crate::ui::{
    Action, ConfirmDialog, ErrorMessage, FormActions, Loader, Modal, Pagination, Secret,
    SecretReveal, Spinner, StatusBadge, TokenReveal, Tone, format_age, format_ms_title, non_empty,
    use_clock, use_toasts,
};

const SEARCH_DEBOUNCE_MS: u32 = 300;

const SORTS: [(&str, &str); 8] = [
    ("-created_at", "Newest first"),
    ("created_at", "Oldest first"),
    ("name", "Name A–Z"),
    ("-name", "Name Z–A"),
    ("label", "Label"),
    ("-updated_at", "Recently updated"),
    ("-online", "Online first"),
    ("-alarm_severity", "Worst alarm first"),
];

#[component]
pub fn DevicesPage() -> impl IntoView {
    view! {
        <RequireTenant>
            <DeviceList/>
        </RequireTenant>
    }
}

/// The list's filters, as the URL query carries them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Filters {
    pub profile: Option<Uuid>,
    pub group: Option<Uuid>,
    pub label: String,
    pub online: Option<bool>,
    /// Only devices with an active alarm at least this severe.
    pub alarm_severity: Option<AlarmSeverity>,
    /// Only the sub-devices of this gateway.
    pub gateway: Option<Uuid>,
}

impl Filters {
    pub fn is_empty(&self) -> bool {
        *self == Filters::default()
    }

    /// The filters of a query (`profile`, `group`, `label`, `online`, `gateway`), or `None` when it names
    /// none of them.
    pub fn from_query(get: impl Fn(&str) -> Option<String>) -> Option<Filters> {
        let f = Filters {
            profile: get("profile").and_then(|v| Uuid::parse_str(&v).ok()),
            group: get("group").and_then(|v| Uuid::parse_str(&v).ok()),
            label: get("label").unwrap_or_default(),
            online: get("online").and_then(|v| v.parse().ok()),
            alarm_severity: get("alarm_severity").and_then(|v| AlarmSeverity::parse(&v)),
            gateway: get("gateway").and_then(|v| Uuid::parse_str(&v).ok()),
        };
        (!f.is_empty()).then_some(f)
    }

    /// `?group=…&online=true`, or "" without filters.
    pub fn to_query(&self) -> String {
        let mut parts = Vec::new();
        if let Some(p) = self.profile {
            parts.push(format!("profile={p}"));
        }
        if let Some(g) = self.group {
            parts.push(format!("group={g}"));
        }
        if !self.label.trim().is_empty() {
            parts.push(format!(
                "label={}",
                String::from(js_sys::encode_uri_component(self.label.trim()))
            ));
        }
        if let Some(o) = self.online {
            parts.push(format!("online={o}"));
        }
        if let Some(s) = self.alarm_severity {
            parts.push(format!("alarm_severity={}", s.as_str()));
        }
        if let Some(g) = self.gateway {
            parts.push(format!("gateway={g}"));
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!("?{}", parts.join("&"))
        }
    }
}

/// Search, sort, filters and page of the device list. Provided once for the whole app, so that
/// coming back from a device page finds the list as it was left.
#[derive(Clone, Copy)]
pub struct ListState {
    search_input: RwSignal<String>,
    search: RwSignal<String>,
    sort: RwSignal<String>,
    page: RwSignal<u64>,
    filters: RwSignal<Filters>,
    label_input: RwSignal<String>,
}

impl Default for ListState {
    fn default() -> Self {
        ListState {
            search_input: RwSignal::new(String::new()),
            search: RwSignal::new(String::new()),
            sort: RwSignal::new("-created_at".to_string()),
            page: RwSignal::new(1),
            filters: RwSignal::new(Filters::default()),
            label_input: RwSignal::new(String::new()),
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
        self.filters.set(Filters::default());
        self.label_input.set(String::new());
    }
}

/// The bulk action whose dialog is open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bulk {
    AddToGroup,
    SetAttribute,
    Disable,
    Delete,
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Runs `debounced` `SEARCH_DEBOUNCE_MS` after the last call, with the last value.
pub fn debouncer(debounced: impl Fn(String) + Copy + 'static) -> impl Fn(String) + Copy + 'static {
    let seq = RwSignal::new(0u64);
    move |value: String| {
        let mine = seq.get_untracked() + 1;
        seq.set(mine);
        Timeout::new(SEARCH_DEBOUNCE_MS, move || {
            if seq.try_get_untracked() == Some(mine) {
                debounced(value);
            }
        })
        .forget();
    }
}

#[component]
fn DeviceList() -> impl IntoView {
    crate::ui::set_title("Devices");
    let session = use_session();
    let clock = use_clock();
    let toasts = use_toasts();
    let navigate = use_navigate();
    let query = use_query_map();
    let can_write = Memo::new(move |_| session.can_tenant_wide(Permission::DevicesWrite));

    let ListState {
        search_input,
        search,
        sort,
        page,
        filters,
        label_input,
    } = use_context::<ListState>().unwrap_or_default();

    // A query that names filters (a link from the groups or profiles page) sets them all; the
    // filters chosen here are written back to the query. Applied once before the effects, so
    // that the first write-back does not drop the link's filters.
    let apply_query = move |from_url: Option<Filters>| {
        if let Some(f) = from_url
            && f != filters.get_untracked()
        {
            label_input.set(f.label.clone());
            filters.set(f);
            page.set(1);
        }
    };
    apply_query(query.with_untracked(|q| Filters::from_query(|k| q.get(k))));
    Effect::new(move |_| apply_query(query.with(|q| Filters::from_query(|k| q.get(k)))));
    let nav = navigate.clone();
    Effect::new(move |_| {
        let wanted = filters.with(Filters::to_query);
        let current = web_sys::window()
            .and_then(|w| w.location().search().ok())
            .unwrap_or_default();
        if wanted != current {
            nav(
                &format!("/devices{wanted}"),
                NavigateOptions {
                    replace: true,
                    scroll: false,
                    ..Default::default()
                },
            );
        }
    });

    let devices = Loader::new(move || {
        let f = filters.get();
        let q = DeviceListQuery {
            page: Some(page.get()),
            search: Some(search.get()),
            sort: Some(sort.get()),
            profile: f.profile,
            group: f.group,
            label: non_empty(&f.label),
            online: f.online,
            alarm_severity: f.alarm_severity,
            gateway: f.gateway,
            ..Default::default()
        };
        async move { api::list_devices(session, &q).await }
    });
    let profiles = Loader::new(move || api::list_profiles(session));
    let groups = Loader::new(move || api::list_groups(session));
    // The gateway whose sub-devices are listed, for its name in the filter bar.
    let gateway_filter = Loader::new(move || {
        let gateway = filters.with(|f| f.gateway);
        async move {
            match gateway {
                Some(id) => api::get_device(session, id).await.map(Some),
                None => Ok(None),
            }
        }
    });
    let profile_list = Signal::derive(move || profiles.data.get().unwrap_or_default());
    let group_list = Signal::derive(move || groups.data.get().unwrap_or_default());

    let search_later = debouncer(move |value| {
        page.try_set(1);
        search.try_set(value);
    });
    let label_later = debouncer(move |value| {
        page.try_set(1);
        filters.try_update(|f| f.label = value);
    });
    let set_filter = move |change: &dyn Fn(&mut Filters)| {
        filters.update(|f| change(f));
        page.set(1);
    };
    let clear_filters = move || {
        label_input.set(String::new());
        filters.set(Filters::default());
        search_input.set(String::new());
        search.set(String::new());
        page.set(1);
    };

    // The selection lives on one page of one listing.
    let selected = RwSignal::new(BTreeSet::<Uuid>::new());
    Effect::new(move |_| {
        page.track();
        filters.track();
        search.track();
        selected.set(BTreeSet::new());
    });
    let page_ids = Memo::new(move |_| {
        devices.data.with(|d| {
            d.as_ref()
                .map(|p| p.items.iter().map(|d| d.id).collect::<Vec<_>>())
                .unwrap_or_default()
        })
    });
    let all_selected = move || {
        let ids = page_ids.get();
        !ids.is_empty() && selected.with(|s| ids.iter().all(|id| s.contains(id)))
    };

    let creating = RwSignal::new(false);
    // The new device's name and its credentials, shown once.
    let new_credentials = RwSignal::new(None::<(String, DeviceCredentials)>);
    let deleting = RwSignal::new(None::<Device>);
    let delete_busy = RwSignal::new(false);
    let bulk = RwSignal::new(None::<Bulk>);
    let bulk_action = Action::new();
    let bulk_group = RwSignal::new(String::new());
    let disable_reason = RwSignal::new(String::new());

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

    // Runs one bulk operation on the selection; `done` words the result.
    let run_bulk = move |action: BulkOperation, done: &'static str| {
        let body = BulkAction {
            device_ids: Some(selected.get_untracked().into_iter().collect()),
            group_id: None,
            action,
        };
        let fut = async move { api::bulk(session, &body).await };
        bulk_action.run(fut, move |result| {
            toasts.success(format!(
                "{} {done}.",
                plural(result.devices, "device", "devices")
            ));
            bulk.try_set(None);
            selected.try_set(BTreeSet::new());
            devices.reload();
            groups.reload();
        });
    };
    let open_bulk = move |b: Bulk| {
        bulk_action.error.set(None);
        disable_reason.set(String::new());
        bulk_group.set(String::new());
        bulk.set(Some(b));
    };

    let total = Signal::derive(move || devices.data.with(|d| d.as_ref().map_or(0, |p| p.total)));
    let narrowed = move || !search.get().trim().is_empty() || !filters.with(Filters::is_empty);

    let open_device = move |id: Uuid| navigate(&format!("/devices/{id}"), Default::default());
    let profile_name = move |id: Uuid| {
        profiles.data.with(|p| {
            p.as_ref()
                .and_then(|p| p.iter().find(|p| p.id == id).map(|p| p.name.clone()))
        })
    };

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
                                Some(n) if narrowed() => format!("{n} matching {noun}"),
                                Some(n) => format!("{n} {noun}"),
                                None => "Everything that reports to this tenant.".to_string(),
                            }
                        }}
                    </p>
                </div>
                <Show when=move || can_write.get()>
                    <div class="header-actions">
                        <A href="/import" attr:class="button button-secondary" attr:data-test="import-devices">"Import CSV"</A>
                        <button
                            type="button"
                            class="button button-primary"
                            data-test="new-device"
                            on:click=move |_| creating.set(true)
                        >
                            "+ New device"
                        </button>
                    </div>
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
                        on:input=move |ev| {
                            let value = event_target_value(&ev);
                            search_input.set(value.clone());
                            search_later(value);
                        }
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

            <div class="filters" role="group" aria-label="Filters">
                <PickFilter
                    label="Profile"
                    test="filter-profile"
                    all="All profiles"
                    options=Signal::derive(move || profile_list.get().into_iter().map(|p| (p.id, p.name)).collect())
                    value=Signal::derive(move || filters.with(|f| f.profile))
                    on_pick=Callback::new(move |v| set_filter(&|f| f.profile = v))
                />
                <PickFilter
                    label="Group"
                    test="filter-group"
                    all="All groups"
                    options=Signal::derive(move || group_list.get().into_iter().map(|g| (g.id, g.name)).collect())
                    value=Signal::derive(move || filters.with(|f| f.group))
                    on_pick=Callback::new(move |v| set_filter(&|f| f.group = v))
                />
                <input
                    type="text"
                    class="input-small"
                    placeholder="Label is…"
                    aria-label="Exact label"
                    data-test="filter-label"
                    class:filter-on=move || filters.with(|f| !f.label.is_empty())
                    prop:value=move || label_input.get()
                    on:input=move |ev| {
                        let value = event_target_value(&ev);
                        label_input.set(value.clone());
                        label_later(value);
                    }
                />
                <select
                    class="select-small"
                    aria-label="Status"
                    data-test="filter-online"
                    class:filter-on=move || filters.with(|f| f.online.is_some())
                    on:change=move |ev| {
                        let v = event_target_value(&ev).parse::<bool>().ok();
                        set_filter(&|f| f.online = v);
                    }
                >
                    <option value="" selected=move || filters.with(|f| f.online.is_none())>"Online or offline"</option>
                    <option value="true" selected=move || filters.with(|f| f.online == Some(true))>"Online now"</option>
                    <option value="false" selected=move || filters.with(|f| f.online == Some(false))>"Offline"</option>
                </select>
                <select
                    class="select-small"
                    aria-label="Active alarms"
                    data-test="filter-alarm"
                    class:filter-on=move || filters.with(|f| f.alarm_severity.is_some())
                    on:change=move |ev| {
                        let v = AlarmSeverity::parse(&event_target_value(&ev));
                        set_filter(&|f| f.alarm_severity = v);
                    }
                >
                    <option value="" selected=move || filters.with(|f| f.alarm_severity.is_none())>"Any alarm state"</option>
                    {AlarmSeverity::ALL.into_iter().rev().map(|s| view! {
                        <option value=s.as_str() selected=move || filters.with(|f| f.alarm_severity == Some(s))>
                            {if s == AlarmSeverity::Indeterminate { "Any active alarm".to_owned() } else { format!("{} alarm or worse", severity_words(s)) }}
                        </option>
                    }).collect_view()}
                </select>
                {move || filters.with(|f| f.gateway).map(|gid| {
                    let name = gateway_filter.data.with(|g| g.iter().flatten().map(|g| g.name.clone()).next())
                        .unwrap_or_else(|| "a gateway".into());
                    view! {
                        <span class="chip filter-on" data-test="filter-gateway">
                            "Behind " <A href=format!("/devices/{gid}")>{name}</A>
                            <button type="button" class="chip-remove" aria-label="Show devices behind any gateway"
                                on:click=move |_| set_filter(&|f| f.gateway = None)>"×"</button>
                        </span>
                    }
                })}
                <Show when=move || !filters.with(Filters::is_empty)>
                    <button type="button" class="button button-ghost button-small" data-test="clear-filters" on:click=move |_| clear_filters()>
                        "Clear filters"
                    </button>
                </Show>
            </div>

            <Show when=move || can_write.get() && selected.with(|s| !s.is_empty())>
                <div class="bulk-bar" data-test="bulk-bar">
                    <span class="strong" data-test="selection-count">
                        {move || format!("{} selected", plural(selected.with(|s| s.len() as u64), "device", "devices"))}
                    </span>
                    <div class="bulk-actions">
                        <button type="button" class="button button-secondary button-small" data-test="bulk-add-to-group" on:click=move |_| open_bulk(Bulk::AddToGroup)>"Add to group"</button>
                        <button type="button" class="button button-secondary button-small" data-test="bulk-set-attribute" on:click=move |_| open_bulk(Bulk::SetAttribute)>"Set attribute"</button>
                        <button type="button" class="button button-secondary button-small" data-test="bulk-disable" on:click=move |_| open_bulk(Bulk::Disable)>"Disable"</button>
                        <button type="button" class="button button-secondary button-small" data-test="bulk-enable" disabled=move || bulk_action.busy.get()
                            on:click=move |_| run_bulk(BulkOperation::Enable, "enabled")>"Enable"</button>
                        <button type="button" class="button button-secondary button-small danger-text" data-test="bulk-delete" on:click=move |_| open_bulk(Bulk::Delete)>"Delete"</button>
                        <button type="button" class="button button-ghost button-small" data-test="clear-selection" on:click=move |_| selected.set(BTreeSet::new())>"Clear"</button>
                    </div>
                </div>
                {move || bulk.get().is_none().then(|| view! { <ErrorMessage error=bulk_action.error/> })}
            </Show>

            <ExpiringCredentials/>

            <ErrorMessage error=devices.error_text()/>

            {move || match devices.data.get() {
                None if devices.loading.get() => view! { <div class="card"><Spinner label="Loading devices…"/></div> }.into_any(),
                None => ().into_any(),
                Some(p) if p.items.is_empty() && narrowed() => view! {
                    <div class="card empty-state">
                        <h2>"No matching devices"</h2>
                        <p class="muted">"No device matches the search and filters."</p>
                        <button type="button" class="button button-secondary" data-test="empty-clear-filters" on:click=move |_| clear_filters()>"Clear search and filters"</button>
                    </div>
                }.into_any(),
                Some(p) if p.items.is_empty() => view! {
                    <div class="card empty-state">
                        <div class="empty-icon" aria-hidden="true">"▣"</div>
                        <h2>"No devices yet"</h2>
                        <p class="muted">"Create a device to get its access token and connect it to Stead, or import many from a CSV file."</p>
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
                                        <Show when=move || can_write.get()>
                                            <th class="check-col">
                                                <input
                                                    type="checkbox"
                                                    aria-label="Select all on this page"
                                                    data-test="select-all"
                                                    prop:checked=all_selected
                                                    on:change=move |ev| {
                                                        let on = event_target_checked(&ev);
                                                        let ids = page_ids.get_untracked();
                                                        selected.update(|s| for id in ids {
                                                            if on { s.insert(id); } else { s.remove(&id); }
                                                        });
                                                    }
                                                />
                                            </th>
                                        </Show>
                                        <th>"Name"</th>
                                        <th>"Label"</th>
                                        <th>"Type"</th>
                                        <th>"Profile"</th>
                                        <th>"Status"</th>
                                        <th>"Last seen"</th>
                                        <th>"Alarm"</th>
                                        <th class="actions-col"><span class="sr-only">"Actions"</span></th>
                                    </tr>
                                </thead>
                                <tbody>
                                    {p.items.into_iter().map(|d| {
                                        let id = d.id;
                                        let open = open_device.clone();
                                        let for_delete = d.clone();
                                        let profile_id = d.profile_id;
                                        let disabled = d.disabled_reason.clone();
                                        view! {
                                            <tr data-test="device-row" data-name=d.name.clone() class="clickable" class:inactive=disabled.is_some() on:click=move |_| open(id)>
                                                <Show when=move || can_write.get()>
                                                    <td class="check-col" on:click=|ev| ev.stop_propagation()>
                                                        <input
                                                            type="checkbox"
                                                            aria-label="Select"
                                                            data-test="select-device"
                                                            prop:checked=move || selected.with(|s| s.contains(&id))
                                                            on:change=move |ev| {
                                                                let on = event_target_checked(&ev);
                                                                selected.update(|s| { if on { s.insert(id); } else { s.remove(&id); } });
                                                            }
                                                        />
                                                    </td>
                                                </Show>
                                                <td class="strong">
                                                    <a href=format!("/devices/{id}") on:click=|ev| ev.prevent_default()>{d.name.clone()}</a>
                                                    {disabled.clone().map(|reason| view! {
                                                        <span class="badge badge-bad badge-after" data-test="disabled-badge" title=reason>"Disabled"</span>
                                                    })}
                                                    <GatewayBadge device=d.clone()/>
                                                </td>
                                                <td>{d.label.clone().unwrap_or_else(|| "—".into())}</td>
                                                <td>{d.device_type.clone().map(|t| view! { <span class="badge">{t}</span> }.into_any()).unwrap_or_else(|| "—".into_any())}</td>
                                                <td class="muted">{move || profile_name(profile_id).unwrap_or_default()}</td>
                                                <DeviceStatusCells status=d.status.clone() clock=clock/>
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
                    profiles=profile_list
                    groups=group_list
                    on_close=Callback::new(move |_| creating.set(false))
                    on_created=Callback::new(move |created: (String, DeviceCredentials)| {
                        creating.set(false);
                        new_credentials.set(Some(created));
                        devices.reload();
                        groups.reload();
                        profiles.reload();
                    })
                />
            </Show>

            {move || new_credentials.get().map(|(device_name, creds)| view! {
                <CredentialsReveal
                    title="Device created"
                    intro=format!("“{device_name}” is ready.")
                    credentials=creds
                    on_close=Callback::new(move |_| new_credentials.set(None))
                />
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

            {move || bulk.get().map(|b| {
                let n = selected.with_untracked(|s| s.len() as u64);
                let close = Callback::new(move |_| bulk.set(None));
                match b {
                    Bulk::AddToGroup => view! {
                        <ConfirmDialog
                            title="Add to group"
                            message=format!("Add {} to a group.", plural(n, "device", "devices"))
                            confirm_label="Add to group"
                            danger=false
                            busy=bulk_action.busy
                            error=bulk_action.error
                            on_confirm=Callback::new(move |_| {
                                match Uuid::parse_str(&bulk_group.get_untracked()) {
                                    Ok(group_id) => run_bulk(BulkOperation::AddToGroup { group_id }, "added to the group"),
                                    Err(_) => bulk_action.refuse("Choose a group."),
                                }
                            })
                            on_cancel=close
                        >
                            <label class="field">
                                <span>"Group"</span>
                                <select name="group" data-test="bulk-group" on:change=move |ev| bulk_group.set(event_target_value(&ev))>
                                    <option value="">"Choose a group…"</option>
                                    {group_list.get_untracked().into_iter().map(|g| view! {
                                        <option value=g.id.to_string()>{g.name}</option>
                                    }).collect_view()}
                                </select>
                                {group_list.with_untracked(|g| g.is_empty()).then(|| view! {
                                    <small class="hint">"There are no groups yet: create one on the Groups page."</small>
                                })}
                            </label>
                        </ConfirmDialog>
                    }.into_any(),
                    Bulk::SetAttribute => {
                        let ids: Vec<Uuid> = selected.get_untracked().into_iter().collect();
                        let save = move |scope: AttributeScope, values: Values| {
                            let body = BulkAction {
                                device_ids: Some(ids.clone()),
                                group_id: None,
                                action: BulkOperation::SetAttributes { scope, values },
                            };
                            async move {
                                let result = api::bulk(session, &body).await?;
                                Ok(format!("Attribute set on {}.", plural(result.devices, "device", "devices")))
                            }
                        };
                        view! {
                            <AttributeDialog
                                title="Set an attribute"
                                intro=format!("Sets the attribute on the {} selected.", plural(n, "device", "devices"))
                                draft=Draft::new(AttributeScope::Shared)
                                save=save
                                on_close=close
                                on_done=Callback::new(move |_| {
                                    bulk.set(None);
                                    selected.set(BTreeSet::new());
                                })
                            />
                        }.into_any()
                    }
                    Bulk::Disable => view! {
                        <ConfirmDialog
                            title="Disable devices"
                            message=format!("Disable {}? They are disconnected, cannot connect and their data is refused until enabled again.", plural(n, "device", "devices"))
                            confirm_label="Disable"
                            busy=bulk_action.busy
                            error=bulk_action.error
                            on_confirm=Callback::new(move |_| {
                                match non_empty(&disable_reason.get_untracked()) {
                                    Some(reason) => run_bulk(BulkOperation::Disable { reason }, "disabled"),
                                    None => bulk_action.refuse("Say why, for the people who will find them disabled."),
                                }
                            })
                            on_cancel=close
                        >
                            <label class="field">
                                <span>"Reason" <em class="required">"required"</em></span>
                                <input type="text" name="reason" data-test="disable-reason" placeholder="Suspected compromise" bind:value=disable_reason/>
                            </label>
                        </ConfirmDialog>
                    }.into_any(),
                    Bulk::Delete => view! {
                        <ConfirmDialog
                            title="Delete devices"
                            message=format!("Delete {}? Their credentials stop working at once. This cannot be undone.", plural(n, "device", "devices"))
                            confirm_label="Delete devices"
                            busy=bulk_action.busy
                            error=bulk_action.error
                            on_confirm=Callback::new(move |_| run_bulk(BulkOperation::Delete, "deleted"))
                            on_cancel=close
                        />
                    }.into_any(),
                }
            })}
        </div>
    }
}

/// Credentials expire within this many days: time to rotate them.
const EXPIRING_DAYS: u32 = 30;
/// Devices named in the notice; the rest are counted.
const EXPIRING_NAMED: usize = 5;

/// A notice naming the devices whose credentials expire soon (or have expired), if any.
/// A device's status in the list: online or not, when it was last heard from, and its most
/// severe active alarm (the list answers carry them).
#[component]
fn DeviceStatusCells(status: Option<DeviceStatus>, clock: ReadSignal<f64>) -> impl IntoView {
    let online = status.as_ref().is_some_and(|s| s.online);
    let seen = status.as_ref().and_then(|s| s.last_activity);
    let severity = status.and_then(|s| s.alarm_severity);
    view! {
        <td data-test="device-online" data-online=online.to_string()>
            {if online {
                view! { <StatusBadge tone=Tone::Good text="Online" status="online"/> }
            } else {
                view! { <StatusBadge tone=Tone::Neutral text="Offline" status="offline"/> }
            }}
        </td>
        <td class="muted" data-test="device-last-seen" title=seen.map(format_ms_title).unwrap_or_default()>
            {move || seen.map_or_else(|| "Never".to_owned(), |ms| format_age(ms, clock.get()))}
        </td>
        <td data-test="device-alarm">
            {match severity {
                Some(s) => view! { <SeverityBadge severity=s/> }.into_any(),
                None => view! { <span class="muted">"—"</span> }.into_any(),
            }}
        </td>
    }
}

#[component]
fn ExpiringCredentials() -> impl IntoView {
    let session = use_session();
    let expiring = Loader::new(move || api::expiring_credentials(session, EXPIRING_DAYS));
    move || {
        let list = expiring.data.get().unwrap_or_default();
        (!list.is_empty()).then(|| {
            let more = list.len().saturating_sub(EXPIRING_NAMED);
            view! {
                <div class="alert alert-warning" role="note" data-test="expiring-credentials">
                    <strong>{format!("{} expire within {EXPIRING_DAYS} days or have expired: ", plural(list.len() as u64, "device's credentials", "devices' credentials"))}</strong>
                    {list.into_iter().take(EXPIRING_NAMED).enumerate().map(|(i, d)| view! {
                        {(i > 0).then_some(", ")}
                        <A href=format!("/devices/{}?tab=credentials", d.id)>{d.name}</A>
                    }).collect_view()}
                    {(more > 0).then(|| format!(" and {more} more"))}
                    ". Rotate or set new credentials before devices are refused."
                </div>
            }
        })
    }
}

/// A filter that is "all" or one of `options` (id, name).
#[component]
fn PickFilter(
    label: &'static str,
    test: &'static str,
    all: &'static str,
    options: Signal<Vec<(Uuid, String)>>,
    value: Signal<Option<Uuid>>,
    on_pick: Callback<Option<Uuid>>,
) -> impl IntoView {
    view! {
        <select
            class="select-small"
            aria-label=label
            data-test=test
            class:filter-on=move || value.get().is_some()
            on:change=move |ev| on_pick.run(Uuid::parse_str(&event_target_value(&ev)).ok())
        >
            <option value="" selected=move || value.get().is_none()>{all}</option>
            {move || options.get().into_iter().map(|(id, name)| view! {
                <option value=id.to_string() selected=move || value.get() == Some(id)>{name}</option>
            }).collect_view()}
        </select>
    }
}

/// New credentials, shown once: an access token with the connection lines filled in, or an
/// MQTT user name and password. `intro` says what happened; a sentence on their use follows.
#[component]
pub fn CredentialsReveal(
    #[prop(into)] title: String,
    #[prop(into)] intro: String,
    credentials: DeviceCredentials,
    on_close: Callback<()>,
) -> impl IntoView {
    if let Some(token) = credentials.access_token {
        let for_commands = token.clone();
        return view! {
            <TokenReveal
                title=title
                intro=format!("{intro} Use this access token as the MQTT user name of the device, or try one of the lines below.")
                token=token
                on_close=on_close
            >
                <ConnectCommands token=Signal::derive(move || Some(for_commands.clone())) id_prefix="new"/>
            </TokenReveal>
        }
        .into_any();
    }
    let Some(basic) = credentials.mqtt_basic else {
        return ().into_any();
    };
    let mut secrets = Vec::new();
    if let Some(client_id) = basic.client_id {
        secrets.push(Secret {
            label: "Client id",
            value: client_id,
            test: "mqtt-client-id",
            copy_test: "copy-client-id",
        });
    }
    secrets.push(Secret {
        label: "User name",
        value: basic.username,
        test: "mqtt-username",
        copy_test: "copy-username",
    });
    secrets.push(Secret {
        label: "Password",
        value: basic.password,
        test: "mqtt-password",
        copy_test: "copy-password",
    });
    view! {
        <SecretReveal
            title=title
            secrets=secrets
            intro=format!("{intro} The device connects with this MQTT user name and password.")
            warning=("Store the password now.", "It will not be shown again: Stead keeps only a hash of it. If it is lost, set new credentials.")
            close_label="I have stored the password"
            on_close=on_close
        />
    }
    .into_any()
}

/// How a new device will authenticate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CredentialsChoice {
    Token,
    Mqtt,
}

#[component]
fn CreateDeviceModal(
    #[prop(into)] profiles: Signal<Vec<DeviceProfile>>,
    #[prop(into)] groups: Signal<Vec<DeviceGroup>>,
    on_close: Callback<()>,
    on_created: Callback<(String, DeviceCredentials)>,
) -> impl IntoView {
    let session = use_session();
    let name = RwSignal::new(String::new());
    let label = RwSignal::new(String::new());
    let device_type = RwSignal::new(String::new());
    // Empty: the tenant's default profile.
    let profile = RwSignal::new(String::new());
    let chosen_groups = RwSignal::new(BTreeSet::<Uuid>::new());
    let gateway = RwSignal::new(false);
    let choice = RwSignal::new(CredentialsChoice::Token);
    let mqtt_username = RwSignal::new(String::new());
    let mqtt_password = RwSignal::new(String::new());
    let mqtt_client_id = RwSignal::new(String::new());
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
        let credentials = match choice.get_untracked() {
            CredentialsChoice::Token => None,
            CredentialsChoice::Mqtt => {
                let Some(username) = non_empty(&mqtt_username.get_untracked()) else {
                    error.set(Some("Give the MQTT user name.".into()));
                    return;
                };
                Some(SetCredentials::MqttBasic {
                    client_id: non_empty(&mqtt_client_id.get_untracked()),
                    username,
                    password: non_empty(&mqtt_password.get_untracked()),
                    expires_at: None,
                })
            }
        };
        let groups = chosen_groups.get_untracked();
        let body = CreateDevice {
            name: device_name,
            label: non_empty(&label.get_untracked()),
            device_type: non_empty(&device_type.get_untracked()),
            metadata: None,
            profile_id: Uuid::parse_str(&profile.get_untracked()).ok(),
            groups: (!groups.is_empty()).then(|| groups.into_iter().collect()),
            credentials,
            gateway: gateway.get_untracked(),
            gateway_id: None,
        };
        busy.set(true);
        error.set(None);
        spawn_local(async move {
            match api::create_device(session, &body).await {
                Ok(created) => {
                    // The credentials dialog that follows says it was created: no toast.
                    let credentials = DeviceCredentials {
                        credentials_type: created.device.credentials_type,
                        access_token: created.access_token,
                        mqtt_basic: created.mqtt_basic,
                        expires_at: created.device.credentials_expire_at,
                    };
                    on_created.run((created.device.name, credentials));
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
                <div class="field-row">
                    <label class="field">
                        <span>"Type"</span>
                        <input type="text" name="type" placeholder="thermometer" bind:value=device_type/>
                    </label>
                    <label class="field">
                        <span>"Profile"</span>
                        <select name="profile" on:change=move |ev| profile.set(event_target_value(&ev))>
                            <option value="">"Default profile"</option>
                            {move || profiles.get().into_iter().filter(|p| !p.is_default).map(|p| view! {
                                <option value=p.id.to_string()>{p.name}</option>
                            }).collect_view()}
                        </select>
                    </label>
                </div>
                <label class="checkbox">
                    <input type="checkbox" name="gateway" data-test="new-device-gateway"
                        prop:checked=move || gateway.get() on:change=move |ev| gateway.set(event_target_checked(&ev))/>
                    <span>"Gateway " <small class="hint">"(speaks for the devices behind it, ThingsBoard's Gateway API)"</small></span>
                </label>
                {move || {
                    let groups = groups.get();
                    (!groups.is_empty()).then(|| view! {
                        <fieldset class="fieldset">
                            <legend>"Groups"</legend>
                            <div class="check-list">
                                {groups.into_iter().map(|g| {
                                    let id = g.id;
                                    view! {
                                        <label class="checkbox">
                                            <input type="checkbox" name="groups" value=id.to_string()
                                                prop:checked=move || chosen_groups.with(|s| s.contains(&id))
                                                on:change=move |ev| {
                                                    let on = event_target_checked(&ev);
                                                    chosen_groups.update(|s| { if on { s.insert(id); } else { s.remove(&id); } });
                                                }/>
                                            <span>{g.name}</span>
                                        </label>
                                    }
                                }).collect_view()}
                            </div>
                        </fieldset>
                    })
                }}
                <fieldset class="fieldset">
                    <legend>"Credentials"</legend>
                    <label class="checkbox">
                        <input type="radio" name="credentials" value="access_token"
                            prop:checked=move || choice.get() == CredentialsChoice::Token
                            on:change=move |_| choice.set(CredentialsChoice::Token)/>
                        <span>"Access token (generated, shown once)"</span>
                    </label>
                    <label class="checkbox">
                        <input type="radio" name="credentials" value="mqtt_basic"
                            prop:checked=move || choice.get() == CredentialsChoice::Mqtt
                            on:change=move |_| choice.set(CredentialsChoice::Mqtt)/>
                        <span>"MQTT user name and password"</span>
                    </label>
                    <Show when=move || choice.get() == CredentialsChoice::Mqtt>
                        <div class="field-row">
                            <label class="field">
                                <span>"User name" <em class="required">"required"</em></span>
                                <input type="text" name="mqtt_username" autocomplete="off" bind:value=mqtt_username/>
                            </label>
                            <label class="field">
                                <span>"Password"</span>
                                <input type="password" name="mqtt_password" autocomplete="new-password" placeholder="Generated when empty" bind:value=mqtt_password/>
                            </label>
                        </div>
                        <label class="field">
                            <span>"Client id"</span>
                            <input type="text" name="mqtt_client_id" autocomplete="off" placeholder="Any" bind:value=mqtt_client_id/>
                        </label>
                    </Show>
                </fieldset>
                <ErrorMessage error=error/>
                <FormActions busy=busy on_cancel=on_close label="Create device" busy_label="Creating…"/>
            </form>
        </Modal>
    }
}

/// "Gateway" on a gateway, "Sub-device" on a device behind one (both say what they mean on hover).
#[component]
pub fn GatewayBadge(device: Device) -> impl IntoView {
    if device.gateway {
        Some(view! {
            <span class="badge badge-info badge-after" data-test="gateway-badge"
                title="Connects with its own credentials and speaks for the devices behind it">"Gateway"</span>
        }.into_any())
    } else {
        device.gateway_id.map(|_| view! {
            <span class="badge badge-after" data-test="sub-device-badge"
                title="Behind a gateway: it speaks through the gateway's connection">"Sub-device"</span>
        }.into_any())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_come_from_the_query_only_when_it_names_one() {
        let none = Filters::from_query(|k| (k == "page").then(|| "2".to_string()));
        assert_eq!(none, None);
        let g = Uuid::nil();
        let f = Filters::from_query(|k| match k {
            "group" => Some(g.to_string()),
            "online" => Some("false".into()),
            "alarm_severity" => Some("major".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(f.group, Some(g));
        assert_eq!(f.online, Some(false));
        assert_eq!(f.alarm_severity, Some(AlarmSeverity::Major));
        assert_eq!(f.profile, None);
        assert_eq!(Filters::default().to_query(), "");
        let f = Filters {
            group: Some(g),
            online: Some(true),
            alarm_severity: Some(AlarmSeverity::Critical),
            gateway: Some(g),
            ..Default::default()
        };
        assert_eq!(
            f.to_query(),
            format!("?group={g}&online=true&alarm_severity=critical&gateway={g}")
        );
    }
}
