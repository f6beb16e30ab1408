//! `/audit`: the tenant's audit log for people with `audit.read`: who changed what, when and from
//! where, newest first, filtered by kind of change and time, exported as CSV.

use chrono::{Duration, Utc};
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::components::A;
use stead_api_types::{AuditEntry, AuditQuery, Permission};

use crate::api;
use crate::session::use_session;
use crate::shell::{RequirePermission, RequireTenant};
use crate::ui::{
    ErrorMessage, Loader, Pagination, Spinner, TableHead, format_time, format_time_title,
    save_blob, use_toasts,
};

/// The kinds of change one can filter by: an action prefix (ending in a dot) or one action.
const KINDS: [(&str, &str); 9] = [
    ("", "All changes"),
    ("device.", "Devices"),
    ("attributes.", "Attributes"),
    ("device.rpc", "Commands"),
    ("devices.", "Imports and bulk actions"),
    ("group.", "Groups"),
    ("profile.", "Profiles"),
    ("user.", "Users"),
    ("tenant.", "Tenant"),
];

/// Time windows, in hours (0: all time).
const WINDOWS: [(i64, &str); 4] = [
    (24, "Last 24 hours"),
    (24 * 7, "Last 7 days"),
    (24 * 30, "Last 30 days"),
    (0, "All time"),
];

#[component]
pub fn AuditPage() -> impl IntoView {
    view! {
        <RequireTenant>
            <RequirePermission permission=Permission::AuditRead>
                <AuditLog/>
            </RequirePermission>
        </RequireTenant>
    }
}

#[component]
fn AuditLog() -> impl IntoView {
    crate::ui::set_title("Audit log");
    let session = use_session();
    let toasts = use_toasts();
    let kind = RwSignal::new(String::new());
    let window = RwSignal::new(0i64);
    let page = RwSignal::new(1u64);
    let query = move || AuditQuery {
        action: Some(kind.get()).filter(|k| !k.is_empty()),
        from: match window.get() {
            0 => None,
            hours => chrono::DateTime::<Utc>::from_timestamp_millis(js_sys::Date::now() as i64)
                .map(|now| now - Duration::hours(hours)),
        },
        page: Some(page.get()),
        ..Default::default()
    };
    let entries = Loader::new(move || {
        let q = query();
        async move { api::list_audit(session, &q).await }
    });
    let total = Signal::derive(move || entries.data.with(|d| d.as_ref().map_or(0, |p| p.total)));
    let exporting = RwSignal::new(false);
    let export = move |_| {
        if exporting.get_untracked() {
            return;
        }
        exporting.set(true);
        let q = query();
        spawn_local(async move {
            match api::audit_csv(session, &q)
                .await
                .and_then(|blob| save_blob(&blob, "audit.csv"))
            {
                Ok(()) => {}
                Err(e) => toasts.error(e.detail),
            }
            exporting.try_set(false);
        });
    };

    view! {
        <div class="page">
            <header class="page-header">
                <div>
                    <h1>"Audit log"</h1>
                    <p class="muted">
                        "Every change made in "
                        {move || session.me().and_then(|m| m.tenant).map(|t| t.name).unwrap_or_default()}
                        ": who made it, from where, and what it changed. Entries are hash-chained; "
                        <code>"stead admin verify-audit"</code>
                        " finds one that was altered."
                    </p>
                </div>
                <button
                    type="button"
                    class="button button-secondary"
                    data-test="audit-export"
                    disabled=move || exporting.get()
                    on:click=export
                >
                    {move || if exporting.get() { "Exporting…" } else { "Export CSV" }}
                </button>
            </header>

            <div class="toolbar">
                <label class="sort">
                    <span class="muted">"Show"</span>
                    <select
                        data-test="audit-kind"
                        on:change=move |ev| {
                            kind.set(event_target_value(&ev));
                            page.set(1);
                        }
                    >
                        {KINDS
                            .iter()
                            .map(|(value, label)| {
                                view! {
                                    <option value=*value selected=move || kind.get() == *value>
                                        {*label}
                                    </option>
                                }
                            })
                            .collect_view()}
                    </select>
                </label>
                <label class="sort">
                    <span class="muted">"When"</span>
                    <select
                        data-test="audit-window"
                        on:change=move |ev| {
                            window.set(event_target_value(&ev).parse().unwrap_or(0));
                            page.set(1);
                        }
                    >
                        {WINDOWS
                            .iter()
                            .map(|(hours, label)| {
                                view! {
                                    <option value=hours.to_string() selected=move || window.get() == *hours>
                                        {*label}
                                    </option>
                                }
                            })
                            .collect_view()}
                    </select>
                </label>
                <Show when=move || entries.loading.get() && entries.data.with(|d| d.is_some())>
                    <span class="spinner spinner-small" aria-label="Loading"></span>
                </Show>
            </div>

            <ErrorMessage error=entries.error_text()/>

            {move || match entries.data.get() {
                None if entries.loading.get() => view! { <div class="card"><Spinner label="Loading the audit log…"/></div> }.into_any(),
                None => ().into_any(),
                Some(p) if p.items.is_empty() => view! {
                    <div class="card empty-state" data-test="audit-empty">
                        <h2>"Nothing here"</h2>
                        <p class="muted">"No change matches these filters."</p>
                    </div>
                }.into_any(),
                Some(p) => view! {
                    <div class="card table-card" class:is-loading=move || entries.loading.get()>
                        <table class="table">
                            <TableHead columns=&["When", "Who", "What", "On", "Changes"]/>
                            <tbody>
                                {p.items.into_iter().map(|e| view! { <Row entry=e/> }).collect_view()}
                            </tbody>
                        </table>
                        <Pagination page=page total=total per_page=api::PER_PAGE noun="entries"/>
                    </div>
                }.into_any(),
            }}
        </div>
    }
}

#[component]
fn Row(entry: AuditEntry) -> impl IntoView {
    let target = match (entry.target_type.as_str(), entry.target_id) {
        ("device", Some(id)) => view! {
            <A href=format!("/devices/{id}") attr:class="link">{format!("device {}", short(id))}</A>
        }
        .into_any(),
        (kind, Some(id)) => format!("{kind} {}", short(id)).into_any(),
        (kind, None) => kind.to_owned().into_any(),
    };
    let seq_title = format!("entry {} · hash {}", entry.seq, entry.hash);
    view! {
        <tr data-test="audit-row" title=seq_title>
            <td title=format_time_title(&entry.at)>{format_time(&entry.at)}</td>
            <td>
                <div class="strong" data-test="audit-actor">{entry.actor_email.clone().unwrap_or_else(|| "Stead".into())}</div>
                <div class="muted small">{entry.source_ip.clone().unwrap_or_default()}</div>
            </td>
            <td><span class="badge" data-test="audit-action">{entry.action.clone()}</span></td>
            <td>{target}</td>
            <td class="small" data-test="audit-changes">{summary(&entry.detail)}</td>
        </tr>
    }
}

fn short(id: uuid::Uuid) -> String {
    id.simple().to_string()[..8].to_owned()
}

/// "name: pump-1 → pump-one; label: — → north" for updates, `key: value` pairs otherwise.
fn summary(detail: &serde_json::Value) -> String {
    fn show(v: &serde_json::Value) -> String {
        match v {
            serde_json::Value::Null => "—".into(),
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }
    let Some(map) = detail.as_object() else {
        return String::new();
    };
    let mut parts = Vec::new();
    for (key, value) in map {
        if key == "changes"
            && let Some(changes) = value.as_object()
        {
            for (field, change) in changes {
                parts.push(format!(
                    "{field}: {} → {}",
                    show(&change["before"]),
                    show(&change["after"])
                ));
            }
        } else {
            parts.push(format!("{key}: {}", show(value)));
        }
    }
    parts.join("; ")
}
