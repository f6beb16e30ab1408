//! `/usage`: a tenant's use of its quotas (devices, people, API keys), as bars; for the platform
//! admin, every tenant's at once.

use leptos::prelude::*;
use stead_api_types::{Permission, QuotaUse, Usage};

use crate::api;
use crate::session::use_session;
use crate::shell::RequirePermission;
use crate::ui::{ErrorMessage, Loader, PageHeader, ProgressBar, Spinner, TableHead};

#[component]
pub fn UsagePage() -> impl IntoView {
    crate::ui::set_title("Usage");
    let session = use_session();
    move || {
        if session.can(Permission::TenantsManage) {
            view! { <AllTenants/> }.into_any()
        } else {
            view! {
                <RequirePermission permission=Permission::QuotasRead>
                    <OwnUsage/>
                </RequirePermission>
            }
            .into_any()
        }
    }
}

fn bar(q: QuotaUse) -> impl IntoView {
    let full = q.used >= q.limit;
    view! {
        <div class:quota-full=full>
            <ProgressBar done=q.used total=q.limit/>
        </div>
    }
}

#[component]
fn OwnUsage() -> impl IntoView {
    let session = use_session();
    let usage = Loader::new(move || async move { api::usage(session).await });
    view! {
        <div class="page">
            <PageHeader title="Usage" intro="What your organisation uses against its quotas. The platform operator sets them; at a quota, adding one more is refused with the quota's name."/>
            <ErrorMessage error=usage.error_text()/>
            {move || match usage.data.get() {
                None => view! { <div class="card"><Spinner label="Loading usage…"/></div> }.into_any(),
                Some(u) => view! {
                    <div class="grid">
                        <section class="card" data-test="quota-devices"><h2>"Devices"</h2>{bar(u.devices)}</section>
                        <section class="card" data-test="quota-users"><h2>"People"</h2>{bar(u.users)}</section>
                        <section class="card" data-test="quota-api-keys"><h2>"Active API keys"</h2>{bar(u.api_keys)}</section>
                        <section class="card" data-test="quota-data-points"><h2>"Data points today"</h2>{bar(u.data_points_today)}<p class="muted">"Telemetry data points since 00:00 UTC, over MQTT and HTTP. Past the quota, devices are refused until the next day."</p></section>
                    </div>
                }.into_any(),
            }}
        </div>
    }
}

#[component]
fn AllTenants() -> impl IntoView {
    let session = use_session();
    let all = Loader::new(move || async move { api::all_usage(session).await });
    view! {
        <div class="page">
            <PageHeader title="Usage" intro="Every tenant's use of its quotas. Set a tenant's own quotas with PATCH /api/v1/tenants/{id} {\"quotas\": …}."/>
            <ErrorMessage error=all.error_text()/>
            {move || match all.data.get() {
                None => view! { <div class="card"><Spinner label="Loading usage…"/></div> }.into_any(),
                Some(list) => view! {
                    <section class="card table-card">
                        <table class="table">
                            <TableHead columns=&["Tenant", "Devices", "People", "Active API keys", "Data points today"]/>
                            <tbody>
                                {list.into_iter().map(|u: Usage| view! {
                                    <tr data-test="usage-row">
                                        <td class="strong">{u.tenant.name.clone()}</td>
                                        <td>{bar(u.devices)}</td>
                                        <td>{bar(u.users)}</td>
                                        <td>{bar(u.api_keys)}</td>
                                        <td>{bar(u.data_points_today)}</td>
                                    </tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                    </section>
                }.into_any(),
            }}
        </div>
    }
}
