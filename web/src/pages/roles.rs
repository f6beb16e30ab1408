//! `/roles`: the built-in roles and what each grants, and the tenant's own custom roles (create,
//! edit, delete), for people with `roles.manage`. Others with `users.read` see the list.

use std::collections::BTreeSet;

use leptos::prelude::*;
use leptos::task::spawn_local;
use stead_api_types::{CreateRole, CustomRole, Permission, Role, UpdateRole};

use crate::api;
use crate::session::use_session;
use crate::shell::{RequirePermission, RequireTenant};
use crate::ui::{
    ConfirmDialog, ErrorMessage, FormActions, HeaderButton, Loader, Modal, PageHeader,
    PermissionBadges, PermissionPicker, Spinner, TableHead, format_time, non_empty, use_toasts,
};

#[component]
pub fn RolesPage() -> impl IntoView {
    view! {
        <RequireTenant>
            <RequirePermission permission=Permission::UsersRead>
                <RoleList/>
            </RequirePermission>
        </RequireTenant>
    }
}

/// What a tenant's role may hold: the catalogue without the platform's own permission.
pub fn tenant_permissions() -> Vec<Permission> {
    Permission::ALL
        .into_iter()
        .filter(|p| *p != Permission::TenantsManage)
        .collect()
}

#[component]
fn RoleList() -> impl IntoView {
    crate::ui::set_title("Roles");
    let session = use_session();
    let toasts = use_toasts();
    let can_manage = Memo::new(move |_| session.can_tenant_wide(Permission::RolesManage));
    let roles = Loader::new(move || async move { api::list_roles(session).await });
    // `Some(None)`: a new role; `Some(Some(r))`: editing `r`.
    let editing = RwSignal::new(None::<Option<CustomRole>>);
    let deleting = RwSignal::new(None::<CustomRole>);
    let delete_busy = RwSignal::new(false);

    view! {
        <div class="page">
            <PageHeader title="Roles" intro="What people may do. Built-in roles cannot change; your own roles hold exactly the permissions you pick.">
                <HeaderButton when=can_manage label="+ New role" test="new-role" on_click=Callback::new(move |_| editing.set(Some(None)))/>
            </PageHeader>

            <section class="card">
                <h2>"Built-in roles"</h2>
                <table class="table">
                    <TableHead columns=&["Role", "Permissions"] actions=false/>
                    <tbody>
                        {Role::TENANT.into_iter().map(|r| view! {
                            <tr data-test="builtin-role">
                                <td class="strong">{r.label()}</td>
                                <td><PermissionBadges permissions=Permission::of_role(r)/></td>
                            </tr>
                        }).collect_view()}
                    </tbody>
                </table>
                <p class="hint">"Members hold nothing over the whole tenant: give them roles over device groups on the Users page (your end customers, for instance)."</p>
            </section>

            <ErrorMessage error=roles.error_text()/>
            {move || match roles.data.get() {
                None if roles.loading.get() => view! { <div class="card"><Spinner label="Loading roles…"/></div> }.into_any(),
                None => ().into_any(),
                Some(list) if list.is_empty() => view! {
                    <section class="card empty-state" data-test="no-roles">
                        <h2>"No custom roles yet"</h2>
                        <p class="muted">"Make one for what your built-in roles do not fit: support staff who read devices and send commands, say."</p>
                    </section>
                }.into_any(),
                Some(list) => view! {
                    <section class="card table-card">
                        <table class="table">
                            <TableHead columns=&["Custom role", "Permissions", "People", "Changed"] actions=true/>
                            <tbody>
                                {list.into_iter().map(|r| {
                                    let (for_edit, for_delete) = (r.clone(), r.clone());
                                    view! {
                                        <tr data-test="role-row">
                                            <td class="strong">
                                                {r.name.clone()}
                                                <div class="muted small">{r.description.clone()}</div>
                                            </td>
                                            <td><PermissionBadges permissions=r.permissions.clone()/></td>
                                            <td>{r.users}</td>
                                            <td>{format_time(&r.updated_at)}</td>
                                            <td class="actions-col">
                                                <Show when=move || can_manage.get()>
                                                    {
                                                        let (e, d) = (for_edit.clone(), for_delete.clone());
                                                        view! {
                                                            <button type="button" class="button button-ghost button-small" data-test="edit-role"
                                                                on:click=move |_| editing.set(Some(Some(e.clone())))>"Edit"</button>
                                                            <button type="button" class="button button-ghost button-small danger-text" data-test="delete-role"
                                                                on:click=move |_| deleting.set(Some(d.clone()))>"Delete"</button>
                                                        }
                                                    }
                                                </Show>
                                            </td>
                                        </tr>
                                    }
                                }).collect_view()}
                            </tbody>
                        </table>
                    </section>
                }.into_any(),
            }}

            {move || editing.get().map(|role| view! {
                <RoleModal
                    role=role
                    on_close=Callback::new(move |_| editing.set(None))
                    on_saved=Callback::new(move |_| {
                        editing.set(None);
                        roles.reload();
                    })
                />
            })}

            {move || deleting.get().map(|r| {
                let role = r.clone();
                view! {
                    <ConfirmDialog
                        title="Delete role"
                        message=format!("Delete the role {:?}? Nobody may hold it when it goes.", r.name)
                        confirm_label="Delete"
                        busy=delete_busy
                        on_confirm=Callback::new(move |_| {
                            delete_busy.set(true);
                            let role = role.clone();
                            spawn_local(async move {
                                match api::delete_role(session, role.id).await {
                                    Ok(()) => {
                                        toasts.success(format!("The role {} is gone.", role.name));
                                        roles.reload();
                                    }
                                    Err(e) => toasts.error(e.detail),
                                }
                                delete_busy.try_set(false);
                                deleting.try_set(None);
                            });
                        })
                        on_cancel=Callback::new(move |_| deleting.set(None))
                    />
                }
            })}
        </div>
    }
}

#[component]
fn RoleModal(
    role: Option<CustomRole>,
    on_close: Callback<()>,
    on_saved: Callback<()>,
) -> impl IntoView {
    let session = use_session();
    let toasts = use_toasts();
    let existing = role.as_ref().map(|r| r.id);
    let name = RwSignal::new(role.as_ref().map(|r| r.name.clone()).unwrap_or_default());
    let description = RwSignal::new(
        role.as_ref()
            .map(|r| r.description.clone())
            .unwrap_or_default(),
    );
    let chosen = RwSignal::new(
        role.as_ref()
            .map(|r| r.permissions.iter().copied().collect::<BTreeSet<_>>())
            .unwrap_or_default(),
    );
    // Only what the author holds over the whole tenant can be granted (the server checks too).
    let offered = Signal::derive(move || {
        tenant_permissions()
            .into_iter()
            .filter(|p| session.can_tenant_wide(*p) || chosen.with(|c| c.contains(p)))
            .collect::<Vec<_>>()
    });
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if busy.get_untracked() {
            return;
        }
        let Some(name_value) = non_empty(&name.get_untracked()) else {
            error.set(Some("Give the role a name.".into()));
            return;
        };
        let permissions: Vec<Permission> = chosen.get_untracked().into_iter().collect();
        let description_value = description.get_untracked();
        busy.set(true);
        error.set(None);
        spawn_local(async move {
            let saved = match existing {
                None => {
                    api::create_role(
                        session,
                        &CreateRole {
                            name: name_value,
                            description: Some(description_value),
                            permissions,
                        },
                    )
                    .await
                }
                Some(id) => {
                    api::update_role(
                        session,
                        id,
                        &UpdateRole {
                            name: Some(name_value),
                            description: Some(description_value),
                            permissions: Some(permissions),
                        },
                    )
                    .await
                }
            };
            match saved {
                Ok(r) => {
                    toasts.success(format!("The role {} is saved.", r.name));
                    on_saved.run(());
                }
                Err(e) => {
                    error.try_set(Some(e.detail));
                    busy.try_set(false);
                }
            }
        });
    };

    view! {
        <Modal title=if existing.is_some() { "Edit role" } else { "New role" } on_close=on_close wide=true>
            <form class="form" on:submit=submit novalidate=true>
                <label class="field">
                    <span>"Name" <em class="required">"required"</em></span>
                    <input type="text" name="name" autocomplete="off" autofocus=true bind:value=name/>
                </label>
                <label class="field">
                    <span>"Description"</span>
                    <input type="text" name="description" autocomplete="off" bind:value=description/>
                </label>
                <PermissionPicker chosen=chosen offered=offered/>
                <small class="hint">"Changes apply to everyone holding the role at their next request."</small>
                <ErrorMessage error=error/>
                <FormActions busy=busy on_cancel=on_close label="Save role" busy_label="Saving…" test="save-role"/>
            </form>
        </Modal>
    }
}
