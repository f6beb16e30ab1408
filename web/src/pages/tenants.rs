//! `/tenants`: the platform admin's list of tenants: create one with its first admin, suspend and
//! reactivate.

use leptos::prelude::*;
use leptos::task::spawn_local;
use stead_api_types::{CreateTenant, Permission, Role, Tenant, TenantStatus, UpdateTenant};

use crate::api;
use crate::session::use_session;
use crate::ui::{
    ConfirmDialog, ErrorMessage, FormActions, Loader, Modal, Pagination, Spinner, TableHead,
    format_time, format_time_title, non_empty, use_toasts,
};

#[component]
pub fn TenantsPage() -> impl IntoView {
    let session = use_session();
    let allowed = move || {
        session.me().is_some_and(|m| m.role == Role::PlatformAdmin)
            || session.can(Permission::TenantsManage)
    };
    move || {
        if allowed() {
            view! { <TenantList/> }.into_any()
        } else {
            view! { <leptos_router::components::Redirect path="/devices"/> }.into_any()
        }
    }
}

#[component]
fn TenantList() -> impl IntoView {
    crate::ui::set_title("Tenants");
    let session = use_session();
    let toasts = use_toasts();
    let page = RwSignal::new(1u64);
    let tenants = Loader::new(move || {
        let page = page.get();
        async move { api::list_tenants(session, page).await }
    });
    let total = Signal::derive(move || tenants.data.with(|d| d.as_ref().map_or(0, |p| p.total)));

    let creating = RwSignal::new(false);
    let saving = RwSignal::new(None::<uuid::Uuid>);
    let suspending = RwSignal::new(None::<Tenant>);
    let suspend_busy = RwSignal::new(false);

    let set_status = move |tenant: Tenant, status: TenantStatus| {
        saving.set(Some(tenant.id));
        spawn_local(async move {
            let body = UpdateTenant {
                status: Some(status),
                ..Default::default()
            };
            match api::update_tenant(session, tenant.id, &body).await {
                Ok(updated) => {
                    toasts.success(match status {
                        TenantStatus::Suspended => format!("{} is suspended.", updated.name),
                        TenantStatus::Active => format!("{} is active again.", updated.name),
                    });
                    tenants.data.try_update(|d| {
                        if let Some(p) = d {
                            for t in p.items.iter_mut().filter(|t| t.id == updated.id) {
                                *t = updated.clone();
                            }
                        }
                    });
                }
                Err(e) => toasts.error(e.detail),
            }
            saving.try_set(None);
            suspending.try_set(None);
            suspend_busy.try_set(false);
        });
    };

    view! {
        <div class="page">
            <header class="page-header">
                <div>
                    <h1>"Tenants"</h1>
                    <p class="muted">"Each tenant is an organisation with its own users and devices."</p>
                </div>
                <button type="button" class="button button-primary" data-test="new-tenant" on:click=move |_| creating.set(true)>
                    "+ New tenant"
                </button>
            </header>

            <ErrorMessage error=tenants.error_text()/>

            {move || match tenants.data.get() {
                None if tenants.loading.get() => view! { <div class="card"><Spinner label="Loading tenants…"/></div> }.into_any(),
                None => ().into_any(),
                Some(p) if p.items.is_empty() => view! {
                    <div class="card empty-state">
                        <div class="empty-icon" aria-hidden="true">"▤"</div>
                        <h2>"No tenants yet"</h2>
                        <p class="muted">"Create a tenant and its first admin; they take it from there."</p>
                        <button type="button" class="button button-primary" on:click=move |_| creating.set(true)>
                            "Create the first tenant"
                        </button>
                    </div>
                }.into_any(),
                Some(p) => view! {
                    <div class="card table-card" class:is-loading=move || tenants.loading.get()>
                        <table class="table">
                            <TableHead columns=&["Name", "Status", "Created", "ID"] actions=true/>
                            <tbody>
                                {p.items.into_iter().map(|t| {
                                    let tid = t.id;
                                    let row_busy = move || saving.get() == Some(tid);
                                    let suspended = t.status == TenantStatus::Suspended;
                                    let tenant = t.clone();
                                    view! {
                                        <tr data-test="tenant-row" class:inactive=suspended>
                                            <td class="strong">{t.name.clone()}</td>
                                            <td>
                                                {if suspended {
                                                    view! { <span class="status status-off">"Suspended"</span> }.into_any()
                                                } else {
                                                    view! { <span class="status status-ok">"Active"</span> }.into_any()
                                                }}
                                            </td>
                                            <td title=format_time_title(&t.created_at)>{format_time(&t.created_at)}</td>
                                            <td><code class="muted small">{t.id.to_string()}</code></td>
                                            <td class="actions-col">
                                                {if suspended {
                                                    view! {
                                                        <button type="button" class="button button-ghost button-small" data-test="reactivate-tenant"
                                                            disabled=row_busy
                                                            on:click=move |_| set_status(tenant.clone(), TenantStatus::Active)>
                                                            {move || if row_busy() { "Reactivating…" } else { "Reactivate" }}
                                                        </button>
                                                    }.into_any()
                                                } else {
                                                    view! {
                                                        <button type="button" class="button button-ghost button-small danger-text" data-test="suspend-tenant"
                                                            disabled=row_busy
                                                            on:click=move |_| suspending.set(Some(tenant.clone()))>
                                                            "Suspend"
                                                        </button>
                                                    }.into_any()
                                                }}
                                            </td>
                                        </tr>
                                    }
                                }).collect_view()}
                            </tbody>
                        </table>
                        <Pagination page=page total=total per_page=api::PER_PAGE noun="tenants"/>
                    </div>
                }.into_any(),
            }}

            <Show when=move || creating.get()>
                <CreateTenantModal
                    on_close=Callback::new(move |_| creating.set(false))
                    on_created=Callback::new(move |_| {
                        creating.set(false);
                        tenants.reload();
                    })
                />
            </Show>

            {move || suspending.get().map(|t| {
                let tenant = t.clone();
                view! {
                    <ConfirmDialog
                        title="Suspend tenant"
                        message=format!("Suspend {}? Its users can no longer sign in and its devices are refused until you reactivate it.", t.name)
                        confirm_label="Suspend tenant"
                        busy=suspend_busy
                        on_confirm=Callback::new(move |_| {
                            suspend_busy.set(true);
                            set_status(tenant.clone(), TenantStatus::Suspended);
                        })
                        on_cancel=Callback::new(move |_| suspending.set(None))
                    />
                }
            })}
        </div>
    }
}

#[component]
fn CreateTenantModal(on_close: Callback<()>, on_created: Callback<()>) -> impl IntoView {
    let session = use_session();
    let toasts = use_toasts();
    let name = RwSignal::new(String::new());
    let admin_email = RwSignal::new(String::new());
    let admin_password = RwSignal::new(String::new());
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if busy.get_untracked() {
            return;
        }
        let Some(tenant_name) = non_empty(&name.get_untracked()) else {
            error.set(Some("Give the tenant a name.".into()));
            return;
        };
        let Some(email) = non_empty(&admin_email.get_untracked()) else {
            error.set(Some(
                "Enter the e-mail address of the tenant's first admin.".into(),
            ));
            return;
        };
        let password = admin_password.get_untracked();
        if password.is_empty() {
            error.set(Some("Choose a first password for the admin.".into()));
            return;
        }
        let body = CreateTenant {
            name: tenant_name,
            admin_email: email,
            admin_password: password,
        };
        busy.set(true);
        error.set(None);
        spawn_local(async move {
            match api::create_tenant(session, &body).await {
                Ok(t) => {
                    toasts.success(format!(
                        "Tenant {} created; {} can sign in now.",
                        t.name, body.admin_email
                    ));
                    on_created.run(());
                }
                Err(e) => {
                    error.try_set(Some(e.detail));
                    busy.try_set(false);
                }
            }
        });
    };

    view! {
        <Modal title="New tenant" on_close=on_close>
            <form class="form" on:submit=submit novalidate=true>
                <label class="field">
                    <span>"Tenant name" <em class="required">"required"</em></span>
                    <input type="text" name="name" autocomplete="off" autofocus=true placeholder="Acme Facilities" bind:value=name/>
                </label>
                <fieldset class="fieldset">
                    <legend>"First admin"</legend>
                    <label class="field">
                        <span>"E-mail" <em class="required">"required"</em></span>
                        <input type="email" name="admin_email" autocomplete="off" bind:value=admin_email/>
                    </label>
                    <label class="field">
                        <span>"Password" <em class="required">"required"</em></span>
                        <input type="password" name="admin_password" autocomplete="new-password" bind:value=admin_password/>
                    </label>
                </fieldset>
                <ErrorMessage error=error/>
                <FormActions busy=busy on_cancel=on_close label="Create tenant" busy_label="Creating…"/>
            </form>
        </Modal>
    }
}
