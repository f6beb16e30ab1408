//! `/users`: the people of a tenant, for tenant admins: create, change role, deactivate and
//! reactivate, turn off a person's second factor (a lost phone), and require two-factor sign-in
//! for everyone. People with `users.read` only see the list.

use leptos::prelude::*;
use leptos::task::spawn_local;

use stead_api_types::{
    CreateUser, Permission, Role, SetRoleBindings, TenantSecurity, UpdateUser, User,
};

use crate::api;
use crate::pages::bindings::{BindingRows, BindingsEditor, load_choices, new_bindings, rows_of};
use crate::session::use_session;
use crate::shell::{RequirePermission, RequireTenant};
use crate::ui::{
    ConfirmDialog, ErrorMessage, FormActions, Loader, Modal, Pagination, Spinner, TableHead,
    format_time, format_time_title, non_empty, use_toasts,
};

/// The roles a tenant admin can hand out; the platform admin role is not theirs to give.
const TENANT_ROLES: [Role; 4] = Role::TENANT;

#[component]
pub fn UsersPage() -> impl IntoView {
    view! {
        <RequireTenant>
            <RequirePermission permission=Permission::UsersRead>
                <UserList/>
            </RequirePermission>
        </RequireTenant>
    }
}

#[component]
fn UserList() -> impl IntoView {
    crate::ui::set_title("Users");
    let session = use_session();
    let toasts = use_toasts();
    let can_manage = Memo::new(move |_| session.can(Permission::UsersManage));
    let can_bind = Memo::new(move |_| session.can_tenant_wide(Permission::RolesManage));
    let binding = RwSignal::new(None::<User>);
    let my_id = Memo::new(move |_| session.me().map(|m| m.id));
    let page = RwSignal::new(1u64);
    let users = Loader::new(move || {
        let page = page.get();
        async move { api::list_users(session, page).await }
    });
    let total = Signal::derive(move || users.data.with(|d| d.as_ref().map_or(0, |p| p.total)));

    let creating = RwSignal::new(false);
    // A row whose change is being saved: its controls are disabled meanwhile.
    let saving = RwSignal::new(None::<uuid::Uuid>);
    let deactivating = RwSignal::new(None::<User>);
    let deactivate_busy = RwSignal::new(false);
    let resetting = RwSignal::new(None::<User>);
    let reset_busy = RwSignal::new(false);

    let update = move |user: User, body: UpdateUser, done: String| {
        saving.set(Some(user.id));
        spawn_local(async move {
            match api::update_user(session, user.id, &body).await {
                Ok(updated) => {
                    toasts.success(done);
                    users.data.try_update(|d| {
                        if let Some(p) = d {
                            for u in p.items.iter_mut().filter(|u| u.id == updated.id) {
                                *u = updated.clone();
                            }
                        }
                    });
                }
                Err(e) => {
                    toasts.error(e.detail);
                    // Put the row back as the server has it (e.g. a refused role change).
                    users.reload();
                }
            }
            saving.try_set(None);
            deactivating.try_set(None);
            deactivate_busy.try_set(false);
        });
    };

    view! {
        <div class="page">
            <header class="page-header">
                <div>
                    <h1>"Users"</h1>
                    <p class="muted">
                        {move || session.me().and_then(|m| m.tenant).map(|t| format!("People who can sign in to {}.", t.name)).unwrap_or_default()}
                    </p>
                </div>
                <Show when=move || can_manage.get()>
                    <button type="button" class="button button-primary" data-test="new-user" on:click=move |_| creating.set(true)>
                        "+ New user"
                    </button>
                </Show>
            </header>

            <Show when=move || can_manage.get()>
                <SecurityCard/>
            </Show>

            <ErrorMessage error=users.error_text()/>

            {move || match users.data.get() {
                None if users.loading.get() => view! { <div class="card"><Spinner label="Loading users…"/></div> }.into_any(),
                None => ().into_any(),
                Some(p) => view! {
                    <div class="card table-card" class:is-loading=move || users.loading.get()>
                        <table class="table">
                            <TableHead columns=&["Name", "E-mail", "Role", "Status", "Two-factor", "Last sign-in"] actions=true/>
                            <tbody>
                                {p.items.into_iter().map(|u| {
                                    let is_me = my_id.get_untracked() == Some(u.id);
                                    let uid = u.id;
                                    let row_busy = move || saving.get() == Some(uid);
                                    let editable = move || can_manage.get() && !is_me;
                                    let for_role = u.clone();
                                    let for_toggle = u.clone();
                                    let for_access = u.clone();
                                    let for_reset = u.clone();
                                    let two_factor = u.two_factor;
                                    let active = u.active;
                                    let role = u.role;
                                    view! {
                                        <tr data-test="user-row" class:inactive=!active>
                                            <td class="strong">
                                                {if u.name.trim().is_empty() { "—".to_string() } else { u.name.clone() }}
                                                {is_me.then(|| view! { <span class="badge badge-accent">"You"</span> })}
                                            </td>
                                            <td>{u.email.clone()}</td>
                                            <td>
                                                {move || if editable() {
                                                    let for_role = for_role.clone();
                                                    view! {
                                                        <select
                                                            class="select-small"
                                                            data-test="user-role"
                                                            aria-label="Role"
                                                            disabled=row_busy
                                                            on:change=move |ev| {
                                                                if let Some(new_role) = Role::parse(&event_target_value(&ev)) {
                                                                    let msg = format!("{} is now {}.", for_role.email, new_role.label());
                                                                    update(for_role.clone(), UpdateUser { role: Some(new_role), ..Default::default() }, msg);
                                                                }
                                                            }
                                                        >
                                                            {TENANT_ROLES.iter().map(|r| view! {
                                                                <option value=r.as_str() selected=*r == role>{r.label()}</option>
                                                            }).collect_view()}
                                                        </select>
                                                    }.into_any()
                                                } else {
                                                    view! { <span class="badge">{role.label()}</span> }.into_any()
                                                }}
                                            </td>
                                            <td>
                                                {if active {
                                                    view! { <span class="status status-ok">"Active"</span> }.into_any()
                                                } else {
                                                    view! { <span class="status status-off">"Deactivated"</span> }.into_any()
                                                }}
                                            </td>
                                            <td>
                                                {if two_factor {
                                                    view! { <span class="status status-ok" data-test="user-two-factor">"On"</span> }.into_any()
                                                } else {
                                                    view! { <span class="status status-off" data-test="user-two-factor">"Off"</span> }.into_any()
                                                }}
                                            </td>
                                            <td>
                                                {match u.last_login_at {
                                                    Some(t) => view! { <span title=format_time_title(&t)>{format_time(&t)}</span> }.into_any(),
                                                    None => view! { <span class="muted">"Never"</span> }.into_any(),
                                                }}
                                            </td>
                                            <td class="actions-col">
                                                {move || (can_bind.get() && !is_me).then(|| {
                                                    let user = for_access.clone();
                                                    view! {
                                                        <button type="button" class="button button-ghost button-small" data-test="user-access"
                                                            on:click=move |_| binding.set(Some(user.clone()))>"Access"</button>
                                                    }
                                                })}
                                                {move || (editable() && two_factor).then(|| {
                                                    let user = for_reset.clone();
                                                    view! {
                                                        <button type="button" class="button button-ghost button-small" data-test="reset-two-factor"
                                                            on:click=move |_| resetting.set(Some(user.clone()))>"Reset two-factor"</button>
                                                    }
                                                })}
                                                {move || editable().then(|| {
                                                    let user = for_toggle.clone();
                                                    if active {
                                                        view! {
                                                            <button type="button" class="button button-ghost button-small danger-text" data-test="deactivate-user"
                                                                disabled=row_busy
                                                                on:click=move |_| deactivating.set(Some(user.clone()))>
                                                                "Deactivate"
                                                            </button>
                                                        }.into_any()
                                                    } else {
                                                        view! {
                                                            <button type="button" class="button button-ghost button-small" data-test="reactivate-user"
                                                                disabled=row_busy
                                                                on:click=move |_| {
                                                                    let msg = format!("{} can sign in again.", user.email);
                                                                    update(user.clone(), UpdateUser { active: Some(true), ..Default::default() }, msg);
                                                                }>
                                                                {move || if row_busy() { "Reactivating…" } else { "Reactivate" }}
                                                            </button>
                                                        }.into_any()
                                                    }
                                                })}
                                            </td>
                                        </tr>
                                    }
                                }).collect_view()}
                            </tbody>
                        </table>
                        <Pagination page=page total=total per_page=api::PER_PAGE noun="users"/>
                    </div>
                }.into_any(),
            }}

            <Show when=move || creating.get()>
                <CreateUserModal
                    on_close=Callback::new(move |_| creating.set(false))
                    on_created=Callback::new(move |_| {
                        creating.set(false);
                        users.reload();
                    })
                />
            </Show>

            {move || binding.get().map(|u| view! {
                <BindingsModal user=u on_close=Callback::new(move |_| binding.set(None))/>
            })}

            {move || resetting.get().map(|u| {
                let user = u.clone();
                view! {
                    <ConfirmDialog
                        title="Reset two-factor sign-in"
                        message=format!("Turn off two-factor sign-in for {}? Their password alone will sign them in until they set it up again (for a lost phone, say).", u.email)
                        confirm_label="Reset two-factor"
                        busy=reset_busy
                        on_confirm=Callback::new(move |_| {
                            reset_busy.set(true);
                            let user = user.clone();
                            spawn_local(async move {
                                match api::reset_two_factor(session, user.id).await {
                                    Ok(()) => {
                                        toasts.success(format!("Two-factor sign-in is off for {}.", user.email));
                                        users.reload();
                                    }
                                    Err(e) => toasts.error(e.detail),
                                }
                                reset_busy.try_set(false);
                                resetting.try_set(None);
                            });
                        })
                        on_cancel=Callback::new(move |_| resetting.set(None))
                    />
                }
            })}

            {move || deactivating.get().map(|u| {
                let user = u.clone();
                view! {
                    <ConfirmDialog
                        title="Deactivate user"
                        message=format!("Deactivate {}? Their sessions end now and they can no longer sign in. You can reactivate them later.", u.email)
                        confirm_label="Deactivate"
                        busy=deactivate_busy
                        on_confirm=Callback::new(move |_| {
                            deactivate_busy.set(true);
                            let msg = format!("{} has been deactivated.", user.email);
                            update(user.clone(), UpdateUser { active: Some(false), ..Default::default() }, msg);
                        })
                        on_cancel=Callback::new(move |_| deactivating.set(None))
                    />
                }
            })}
        </div>
    }
}

/// The tenant's sign-in rules: whether everyone must sign in with a second factor.
#[component]
fn SecurityCard() -> impl IntoView {
    let session = use_session();
    let toasts = use_toasts();
    let security = Loader::new(move || async move { api::security(session).await });
    let saving = RwSignal::new(false);
    let set = move |require: bool| {
        saving.set(true);
        spawn_local(async move {
            let body = TenantSecurity {
                require_two_factor: require,
            };
            match api::set_security(session, &body).await {
                Ok(saved) => {
                    security.data.try_set(Some(saved));
                    toasts.success(if require {
                        "Everyone must now sign in with a second factor; those without one set it up first."
                    } else {
                        "Two-factor sign-in is now up to each person."
                    });
                    // The rule applies to the admin too: the shell sends them to set it up.
                    session.reload_me().await;
                }
                Err(e) => {
                    toasts.error(e.detail);
                    security.reload();
                }
            }
            saving.try_set(false);
        });
    };
    view! {
        <section class="card" data-test="security-card">
            <h2>"Sign-in security"</h2>
            <ErrorMessage error=security.error_text()/>
            {move || security.data.get().map(|s| view! {
                <div class="stack-small">
                <label class="checkbox">
                    <input type="checkbox" name="require_two_factor" data-test="require-two-factor"
                        prop:checked=s.require_two_factor
                        disabled=move || saving.get()
                        on:change=move |ev| set(event_target_checked(&ev))/>
                    <span>"Require two-factor sign-in for everyone"</span>
                </label>
                <small class="hint">"People without it set it up at their next visit, before anything else; they cannot turn it off while this is on."</small>
                </div>
            })}
        </section>
    }
}

#[component]
fn CreateUserModal(on_close: Callback<()>, on_created: Callback<()>) -> impl IntoView {
    let session = use_session();
    let toasts = use_toasts();
    let email = RwSignal::new(String::new());
    let name = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let role = RwSignal::new(Role::Operator);
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if busy.get_untracked() {
            return;
        }
        let Some(email_value) = non_empty(&email.get_untracked()) else {
            error.set(Some("Enter the person's e-mail address.".into()));
            return;
        };
        let password_value = password.get_untracked();
        if password_value.is_empty() {
            error.set(Some("Choose a first password for them.".into()));
            return;
        }
        let body = CreateUser {
            email: email_value,
            password: password_value,
            role: role.get_untracked(),
            name: non_empty(&name.get_untracked()),
        };
        busy.set(true);
        error.set(None);
        spawn_local(async move {
            match api::create_user(session, &body).await {
                Ok(user) => {
                    toasts.success(format!(
                        "{} can now sign in as {}.",
                        user.email,
                        user.role.label()
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
        <Modal title="New user" on_close=on_close>
            <form class="form" on:submit=submit novalidate=true>
                <label class="field">
                    <span>"E-mail" <em class="required">"required"</em></span>
                    <input type="email" name="email" autocomplete="off" autofocus=true bind:value=email/>
                </label>
                <label class="field">
                    <span>"Name"</span>
                    <input type="text" name="name" autocomplete="off" bind:value=name/>
                </label>
                <label class="field">
                    <span>"First password" <em class="required">"required"</em></span>
                    <input type="password" name="password" autocomplete="new-password" bind:value=password/>
                    <small class="hint">"Share it with them safely; they can change it later."</small>
                </label>
                <label class="field">
                    <span>"Role"</span>
                    <select name="role" on:change=move |ev| {
                        if let Some(r) = Role::parse(&event_target_value(&ev)) {
                            role.set(r);
                        }
                    }>
                        {TENANT_ROLES.iter().map(|r| view! {
                            <option value=r.as_str() selected=move || role.get() == *r>{r.label()}</option>
                        }).collect_view()}
                    </select>
                    <small class="hint">
                        "Tenant admins manage users and devices; operators manage devices; viewers only look; members see only what their roles over device groups give them (set on Access)."
                    </small>
                </label>
                <ErrorMessage error=error/>
                <FormActions busy=busy on_cancel=on_close label="Create user" busy_label="Creating…"/>
            </form>
        </Modal>
    }
}

/// A person's role bindings beyond their built-in role: each a role (built-in or custom) over the
/// whole tenant or over some device groups.
#[component]
fn BindingsModal(user: User, on_close: Callback<()>) -> impl IntoView {
    let session = use_session();
    let toasts = use_toasts();
    let rows: BindingRows = RwSignal::new(Vec::new());
    let uid = user.id;
    let loaded = Loader::new(move || async move {
        let bindings = api::user_bindings(session, uid).await?;
        let (roles, groups) = load_choices(session).await?;
        Ok::<_, crate::session::ApiError>((bindings, roles, groups))
    });
    Effect::new(move |_| {
        if let Some((bindings, _, _)) = loaded.data.get() {
            rows.set(rows_of(bindings));
        }
    });
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let email = user.email.clone();
    let save = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if busy.get_untracked() {
            return;
        }
        let body = SetRoleBindings {
            bindings: new_bindings(rows),
        };
        busy.set(true);
        error.set(None);
        let email = email.clone();
        spawn_local(async move {
            match api::set_user_bindings(session, uid, &body).await {
                Ok(_) => {
                    toasts.success(format!(
                        "{email}'s access is saved; it applies at their next request."
                    ));
                    on_close.run(());
                }
                Err(e) => {
                    error.try_set(Some(e.detail));
                    busy.try_set(false);
                }
            }
        });
    };

    view! {
        <Modal title=format!("Access of {}", user.email) on_close=on_close wide=true>
            <form class="form" on:submit=save novalidate=true>
                <p class="modal-text">
                    {format!("Built-in role: {}. Add roles over the whole tenant, or over device groups only: a person bound to a group sees just its devices.", user.role.label())}
                </p>
                <ErrorMessage error=loaded.error_text()/>
                {move || loaded.data.get().map(|(_, roles, groups)| view! {
                    <BindingsEditor rows=rows roles=roles groups=groups/>
                })}
                <ErrorMessage error=error/>
                <FormActions busy=busy on_cancel=on_close label="Save access" busy_label="Saving…" test="save-access"/>
            </form>
        </Modal>
    }
}
