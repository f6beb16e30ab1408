//! `/alarms`: the alarms the tenant's rules raised, for holders of `alarms.read`: the active ones
//! counted by severity, a table filtered by status, severity and type (kept in the URL query, so
//! that a filtered list can be linked to, as the bell does), paged, read again every 4 s; and for
//! holders of `alarms.ack`, acknowledging and clearing one alarm or a selection.
//! `/alarms/:id` is one alarm with its history.
//!
//! `look` holds the badges and counts every alarm view shares, `actions` what people do to
//! alarms, `table` the table the list and a device's Alarms tab share, `detail` the alarm's page,
//! `bell` the header's count of alarms waiting for someone, `rules` a profile's alarm rules (the
//! profiles page opens them).

mod actions;
mod bell;
mod detail;
mod look;
mod rules;
mod table;

use std::collections::BTreeSet;

use leptos::prelude::*;
use leptos_router::NavigateOptions;
use leptos_router::components::A;
use leptos_router::hooks::{use_navigate, use_query_map};
use stead_api_types::{AlarmAction, AlarmQuery, AlarmSeverity, AlarmStatusFilter, Permission};

use self::actions::AlarmActions;
pub use self::bell::{AlarmBell, BellIcon};
pub use self::detail::AlarmPage;
pub use self::look::{AlarmsChanged, SeverityBadge, SeverityCounts, severity_words};
pub use self::rules::ProfileAlarmRules;
pub use self::table::AlarmTable;
use super::devices::debouncer;
use crate::api;
use crate::session::use_session;
use crate::shell::{RequirePermission, RequireTenant};
use crate::ui::{ConfirmDialog, ErrorMessage, Loader, PageHeader, Pagination, Spinner, non_empty};

/// How often the list, the counts and the bell are read again.
pub const POLL: std::time::Duration = std::time::Duration::from_secs(4);

/// The status filter's choices and their words.
pub const STATUSES: [(Option<AlarmStatusFilter>, &str); 5] = [
    (None, "All"),
    (Some(AlarmStatusFilter::Active), "Active"),
    (Some(AlarmStatusFilter::Unacknowledged), "Unacknowledged"),
    (Some(AlarmStatusFilter::Acknowledged), "Acknowledged"),
    (Some(AlarmStatusFilter::Cleared), "Cleared"),
];

/// The wire name of a status choice, "all" for none (the filter buttons' `data-test`).
pub fn status_key(status: Option<AlarmStatusFilter>) -> &'static str {
    status.map_or("all", api::alarm_status_name)
}

#[component]
pub fn AlarmsPage() -> impl IntoView {
    view! {
        <RequireTenant>
            <RequirePermission permission=Permission::AlarmsRead>
                <AlarmList/>
            </RequirePermission>
        </RequireTenant>
    }
}

/// The list's filters, as the URL query carries them (`status`, `severity`, `type`).
#[derive(Clone, Debug, Default, PartialEq)]
struct Filters {
    status: Option<AlarmStatusFilter>,
    severity: Option<AlarmSeverity>,
    alarm_type: String,
}

impl Filters {
    fn from_query(get: impl Fn(&str) -> Option<String>) -> Filters {
        Filters {
            status: get("status").and_then(|s| {
                STATUSES
                    .iter()
                    .find_map(|(v, _)| v.filter(|v| api::alarm_status_name(*v) == s))
            }),
            severity: get("severity").and_then(|s| AlarmSeverity::parse(&s)),
            alarm_type: get("type").unwrap_or_default().trim().to_owned(),
        }
    }

    /// `?status=active&severity=major&type=overheat`, or "" without filters.
    fn to_query(&self) -> String {
        let mut parts = Vec::new();
        if let Some(s) = self.status {
            parts.push(format!("status={}", api::alarm_status_name(s)));
        }
        if let Some(s) = self.severity {
            parts.push(format!("severity={}", s.as_str()));
        }
        if !self.alarm_type.is_empty() {
            parts.push(format!(
                "type={}",
                String::from(js_sys::encode_uri_component(&self.alarm_type))
            ));
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!("?{}", parts.join("&"))
        }
    }

    fn is_empty(&self) -> bool {
        *self == Filters::default()
    }
}

#[component]
fn AlarmList() -> impl IntoView {
    crate::ui::set_title("Alarms");
    let session = use_session();
    let navigate = StoredValue::new_local(use_navigate());
    let query = use_query_map();
    let changed = AlarmsChanged::get();
    let can_ack = Memo::new(move |_| session.can(Permission::AlarmsAck));
    let can_manage = Memo::new(move |_| session.can(Permission::AlarmsManage));

    // The URL is where the filters live: choosing one navigates, reading one reads the query.
    let filters = Memo::new(move |_| query.with(|q| Filters::from_query(|k| q.get(k))));
    let set_filters = move |change: &dyn Fn(&mut Filters)| {
        let mut f = filters.get_untracked();
        change(&mut f);
        navigate.with_value(|nav| {
            nav(
                &format!("/alarms{}", f.to_query()),
                NavigateOptions {
                    replace: true,
                    scroll: false,
                    ..Default::default()
                },
            )
        });
    };
    let page = RwSignal::new(1u64);
    let selected = RwSignal::new(BTreeSet::new());
    Effect::new(move |_| {
        filters.track();
        page.set(1);
    });
    Effect::new(move |_| {
        filters.track();
        page.track();
        selected.set(BTreeSet::new());
    });

    // The type box follows the URL, except while its own edit waits to be applied.
    let type_input = RwSignal::new(filters.with_untracked(|f| f.alarm_type.clone()));
    let type_pending = RwSignal::new(false);
    Effect::new(move |_| {
        let from_url = filters.with(|f| f.alarm_type.clone());
        if !type_pending.get_untracked() && type_input.get_untracked().trim() != from_url {
            type_input.set(from_url);
        }
    });
    let type_later = debouncer(move |value: String| {
        type_pending.try_set(false);
        set_filters(&|f| f.alarm_type = value.trim().to_owned());
    });

    let alarms = Loader::new(move || {
        changed.track();
        let f = filters.get();
        let q = AlarmQuery {
            page: Some(page.get()),
            status: f.status,
            severity: f.severity,
            alarm_type: non_empty(&f.alarm_type),
            ..Default::default()
        };
        async move { api::list_alarms(session, &q).await }
    });
    alarms.poll(POLL, || true, || {});
    let counts = Loader::new(move || {
        changed.track();
        api::alarm_counts(session, None)
    });
    counts.poll(POLL, || true, || {});
    // Equal answers (nothing new) leave the page alone.
    let data = Memo::new(move |_| alarms.data.get());
    let items = Signal::derive(move || {
        data.with(|d| d.as_ref().map(|p| p.items.clone()).unwrap_or_default())
    });
    let total = Signal::derive(move || data.with(|d| d.as_ref().map_or(0, |p| p.total)));
    let shown = Memo::new(move |_| data.with(|d| d.as_ref().map(|p| !p.items.is_empty())));
    let count_data = Memo::new(move |_| counts.data.get());

    let bulk = AlarmActions::new();
    let confirm_clear = RwSignal::new(false);
    let run_bulk = move |action: AlarmAction| {
        let ids: Vec<_> = selected.get_untracked().into_iter().collect();
        bulk.bulk(ids, action, move || {
            confirm_clear.set(false);
            selected.set(BTreeSet::new());
        });
    };
    let n_selected = move || selected.with(|s| s.len());

    let clear_filters = move || {
        type_input.set(String::new());
        set_filters(&|f| *f = Filters::default());
    };

    view! {
        <div class="page">
            <PageHeader title="Alarms" intro="What your alarm rules raised, newest first. Acknowledge an alarm to say someone is on it; it clears by itself when its rule says so, or by hand.">
                <Show when=move || can_manage.get()>
                    <div class="header-actions">
                        <A href="/profiles" attr:class="button button-secondary" attr:data-test="alarm-rules-link">"Alarm rules"</A>
                    </div>
                </Show>
            </PageHeader>

            <SeverityCounts
                counts=count_data
                picked=Signal::derive(move || filters.with(|f| f.severity))
                on_pick=Callback::new(move |s| set_filters(&|f| f.severity = s))
            />

            <div class="filters" role="group" aria-label="Filters">
                <div class="segmented" role="group" aria-label="Status">
                    {STATUSES.iter().map(|(choice, words)| {
                        let choice = *choice;
                        view! {
                            <button type="button" class="segment" data-test=format!("status-filter-{}", status_key(choice))
                                class:segment-active=move || filters.with(|f| f.status == choice)
                                on:click=move |_| set_filters(&|f| f.status = choice)>
                                {*words}
                            </button>
                        }
                    }).collect_view()}
                </div>
                <select class="select-small" aria-label="Severity" data-test="filter-severity"
                    class:filter-on=move || filters.with(|f| f.severity.is_some())
                    on:change=move |ev| {
                        let s = AlarmSeverity::parse(&event_target_value(&ev));
                        set_filters(&|f| f.severity = s);
                    }>
                    <option value="" selected=move || filters.with(|f| f.severity.is_none())>"All severities"</option>
                    {AlarmSeverity::ALL.into_iter().map(|s| view! {
                        <option value=s.as_str() selected=move || filters.with(|f| f.severity == Some(s))>
                            {look::severity_words(s)}
                        </option>
                    }).collect_view()}
                </select>
                <input type="text" class="input-small" placeholder="Type is…" aria-label="Alarm type"
                    data-test="filter-type"
                    class:filter-on=move || filters.with(|f| !f.alarm_type.is_empty())
                    prop:value=move || type_input.get()
                    on:input=move |ev| {
                        let value = event_target_value(&ev);
                        type_input.set(value.clone());
                        type_pending.set(true);
                        type_later(value);
                    }/>
                <Show when=move || !filters.with(Filters::is_empty)>
                    <button type="button" class="button button-ghost button-small" data-test="clear-filters" on:click=move |_| clear_filters()>
                        "Clear filters"
                    </button>
                </Show>
                <span class="live live-on filters-end" title="The list is read again every 4 seconds">"Live"</span>
            </div>

            <Show when=move || can_ack.get() && (n_selected() > 0)>
                <div class="bulk-bar" data-test="alarm-bulk-bar">
                    <span class="strong" data-test="alarm-selection-count">
                        {move || match n_selected() { 1 => "1 alarm selected".to_owned(), n => format!("{n} alarms selected") }}
                    </span>
                    <div class="bulk-actions">
                        <button type="button" class="button button-secondary button-small" data-test="bulk-ack"
                            disabled=move || bulk.busy().get() on:click=move |_| run_bulk(AlarmAction::Acknowledge)>
                            "Acknowledge"
                        </button>
                        <button type="button" class="button button-secondary button-small" data-test="bulk-clear"
                            disabled=move || bulk.busy().get() on:click=move |_| confirm_clear.set(true)>
                            "Clear"
                        </button>
                        <button type="button" class="button button-ghost button-small" data-test="clear-alarm-selection"
                            on:click=move |_| selected.set(BTreeSet::new())>
                            "Clear selection"
                        </button>
                    </div>
                </div>
            </Show>

            <ErrorMessage error=alarms.error_text()/>

            {move || match shown.get() {
                None if alarms.loading.get() => view! { <div class="card"><Spinner label="Loading alarms…"/></div> }.into_any(),
                None => ().into_any(),
                Some(false) if !filters.with(Filters::is_empty) => {
                    let (title, text) = match filters.with(|f| f.status) {
                        Some(AlarmStatusFilter::Active) if filters.with(|f| f.severity.is_none() && f.alarm_type.is_empty()) =>
                            ("No active alarms", "All quiet: nothing your rules watch is out of bounds right now."),
                        Some(AlarmStatusFilter::Unacknowledged) if filters.with(|f| f.severity.is_none() && f.alarm_type.is_empty()) =>
                            ("Nothing to acknowledge", "Every alarm has been seen by someone."),
                        _ => ("No matching alarms", "No alarm matches these filters."),
                    };
                    view! {
                        <div class="card empty-state" data-test="no-alarms">
                            <div class="empty-icon" aria-hidden="true">"✓"</div>
                            <h2>{title}</h2>
                            <p class="muted">{text}</p>
                            <button type="button" class="button button-secondary" data-test="empty-clear-filters" on:click=move |_| clear_filters()>
                                "Show every alarm"
                            </button>
                        </div>
                    }.into_any()
                }
                Some(false) => view! {
                    <div class="card empty-state" data-test="no-alarms">
                        <div class="empty-icon" aria-hidden="true"><bell::BellIcon/></div>
                        <h2>"No alarms yet"</h2>
                        <p class="muted">"An alarm shows here as soon as a rule raises one: say, a temperature above 80 °C. Rules are set under a profile's Alarm rules, on the Profiles page, for every device of the profile."</p>
                        <Show when=move || can_manage.get()>
                            <A href="/profiles" attr:class="button button-primary" attr:data-test="empty-alarm-rules">"Set up alarm rules"</A>
                        </Show>
                    </div>
                }.into_any(),
                Some(true) => view! {
                    <div class="card table-card">
                        {move || if can_ack.get() {
                            view! { <AlarmTable alarms=items show_device=true selected=selected/> }.into_any()
                        } else {
                            view! { <AlarmTable alarms=items show_device=true/> }.into_any()
                        }}
                        <Pagination page=page total=total per_page=api::PER_PAGE noun="alarms"/>
                    </div>
                }.into_any(),
            }}

            <Show when=move || confirm_clear.get()>
                <ConfirmDialog
                    title="Clear alarms"
                    message=format!("Clear {}? A rule whose condition still holds raises a new alarm at its next message.",
                        match n_selected() { 1 => "the selected alarm".to_owned(), n => format!("the {n} selected alarms") })
                    confirm_label="Clear"
                    danger=false
                    busy=bulk.busy()
                    on_confirm=Callback::new(move |_| run_bulk(AlarmAction::Clear))
                    on_cancel=Callback::new(move |_| confirm_clear.set(false))
                />
            </Show>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_round_trip_through_the_query() {
        let f = Filters::from_query(|k| match k {
            "status" => Some("unacknowledged".into()),
            "severity" => Some("major".into()),
            "type" => Some(" overheat ".into()),
            _ => None,
        });
        assert_eq!(f.status, Some(AlarmStatusFilter::Unacknowledged));
        assert_eq!(f.severity, Some(AlarmSeverity::Major));
        assert_eq!(f.alarm_type, "overheat");
        let bad = Filters::from_query(|k| (k == "status").then(|| "sleeping".into()));
        assert!(bad.is_empty());
        assert_eq!(Filters::default().to_query(), "");
    }
}
