//! The signed-in frame: the sidebar with navigation, the signed-in person and sign-out, and the
//! guards that keep each page to the people allowed to see it.

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::components::{A, Outlet, Redirect};
use leptos_router::hooks::use_location;
use stead_api_types::{Permission, Role};

use crate::pages::alarms::{AlarmBell, AlarmsChanged};
use crate::pages::notifications::NotificationBell;
use crate::session::{SessionState, sees_dashboard, use_session};

#[component]
pub fn Logo() -> impl IntoView {
    view! {
        <svg class="logo" viewBox="0 0 32 32" aria-hidden="true">
            <rect x="1" y="1" width="30" height="30" rx="8" fill="currentColor" opacity="0.14"></rect>
            <circle cx="16" cy="16" r="4" fill="currentColor"></circle>
            <path
                d="M9.5 9.5a9.2 9.2 0 0 0 0 13M22.5 9.5a9.2 9.2 0 0 1 0 13"
                fill="none"
                stroke="currentColor"
                stroke-width="2.2"
                stroke-linecap="round"
            ></path>
        </svg>
    }
}

fn initials(name: &str, email: &str) -> String {
    let source = if name.trim().is_empty() { email } else { name };
    let mut letters = source
        .split(|c: char| c.is_whitespace() || c == '.' || c == '@' || c == '_' || c == '-')
        .filter_map(|w| w.chars().next())
        .take(2)
        .collect::<String>();
    if letters.is_empty() {
        letters.push('?');
    }
    letters.to_uppercase()
}

/// The frame of every signed-in page. While the session is being restored it shows a loader;
/// once signed out it sends the person to the login page.
#[component]
pub fn Shell() -> impl IntoView {
    let session = use_session();
    AlarmsChanged::provide();
    // Re-render the frame only when the phase changes, not on every session update.
    let phase = Memo::new(move |_| match session.state() {
        SessionState::Restoring => 0,
        SessionState::SignedOut => 1,
        SessionState::SignedIn(_) => 2,
    });
    move || match phase.get() {
        0 => view! {
            <div class="boot">
                <span class="spinner" aria-hidden="true"></span>
                <span>"Signing you in…"</span>
            </div>
        }
        .into_any(),
        1 => view! { <Redirect path="/login"/> }.into_any(),
        _ => view! {
            <div class="layout">
                <Sidebar/>
                <main class="content">
                    <SetUpTwoFactorFirst/>
                </main>
            </div>
        }
        .into_any(),
    }
}

/// The page, unless the tenant requires a second factor the person has not set up yet: then
/// every page but My account (where they set it up) sends them there, as the server refuses
/// everything else meanwhile.
#[component]
fn SetUpTwoFactorFirst() -> impl IntoView {
    let session = use_session();
    let location = use_location();
    let blocked = Memo::new(move |_| {
        session.me().is_some_and(|m| m.two_factor_setup_required)
            && location.pathname.get() != "/account"
    });
    move || {
        if blocked.get() {
            view! { <Redirect path="/account"/> }.into_any()
        } else {
            view! { <Outlet/> }.into_any()
        }
    }
}

/// One entry of the navigation, shown while `when` holds.
#[component]
fn NavLink(
    href: &'static str,
    icon: &'static str,
    label: &'static str,
    test: &'static str,
    when: Signal<bool>,
    /// Marked current only on exactly its own address (`/` is the start of every address).
    #[prop(optional)]
    exact: bool,
) -> impl IntoView {
    view! {
        <Show when=move || when.get()>
            <A href=href exact=exact attr:class="nav-link" attr:data-test=test>
                <span class="nav-icon" aria-hidden="true">{icon}</span>
                {label}
            </A>
        </Show>
    }
}

#[component]
fn Sidebar() -> impl IntoView {
    let session = use_session();
    let signing_out = RwSignal::new(false);
    let logout = move |_| {
        signing_out.set(true);
        spawn_local(async move {
            session.logout().await;
        });
    };
    let me = move || session.me();
    let has_tenant = move || me().is_some_and(|m| m.tenant.is_some());
    let is_platform_admin = move || {
        me().is_some_and(|m| m.role == Role::PlatformAdmin)
            || session.can(Permission::TenantsManage)
    };
    // A tenant's page for holders of `permission` (over some groups, or the whole tenant).
    let in_tenant = move |permission: Permission| {
        Signal::derive(move || has_tenant() && session.can(permission))
    };
    let tenant_wide = move |permission: Permission| {
        Signal::derive(move || has_tenant() && session.can_tenant_wide(permission))
    };

    view! {
        <aside class="sidebar">
            <div class="brand">
                <Logo/>
                <span class="brand-name">"Stead"</span>
                <div class="brand-bells">
                    <Show when=move || has_tenant() && session.can(Permission::AlarmsRead)>
                        <AlarmBell/>
                    </Show>
                    <Show when=has_tenant>
                        <NotificationBell/>
                    </Show>
                </div>
            </div>
            <nav class="nav" aria-label="Main">
                <NavLink href="/" icon="◔" label="Fleet health" test="nav-home" exact=true
                    when=Signal::derive(move || me().is_some_and(|m| sees_dashboard(&m)))/>
                <NavLink href="/devices" icon="▣" label="Devices" test="nav-devices" when=Signal::derive(has_tenant)/>
                <NavLink href="/alarms" icon="△" label="Alarms" test="nav-alarms" when=in_tenant(Permission::AlarmsRead)/>
                <NavLink href="/notifications" icon="✆" label="Notifications" test="nav-notifications" when=tenant_wide(Permission::AlarmsManage)/>
                <NavLink href="/groups" icon="◇" label="Groups" test="nav-groups" when=Signal::derive(has_tenant)/>
                <NavLink href="/profiles" icon="☰" label="Profiles" test="nav-profiles" when=Signal::derive(has_tenant)/>
                <NavLink href="/firmware" icon="⬆" label="Firmware" test="nav-firmware" when=in_tenant(Permission::OtaRead)/>
                <NavLink href="/import" icon="⇪" label="Import" test="nav-import" when=tenant_wide(Permission::DevicesWrite)/>
                <NavLink href="/users" icon="◉" label="Users" test="nav-users" when=in_tenant(Permission::UsersRead)/>
                <NavLink href="/invitations" icon="✉" label="Invitations" test="nav-invitations" when=in_tenant(Permission::UsersManage)/>
                <NavLink href="/roles" icon="◈" label="Roles" test="nav-roles" when=in_tenant(Permission::UsersRead)/>
                <NavLink href="/api-keys" icon="⚿" label="API keys" test="nav-api-keys" when=in_tenant(Permission::ApiKeysManage)/>
                <NavLink href="/integrations" icon="⇄" label="Integrations" test="nav-integrations" when=tenant_wide(Permission::WebhooksManage)/>
                <NavLink href="/audit" icon="✎" label="Audit log" test="nav-audit" when=in_tenant(Permission::AuditRead)/>
                <NavLink href="/tenants" icon="▤" label="Tenants" test="nav-tenants" when=Signal::derive(is_platform_admin)/>
                <NavLink href="/usage" icon="▥" label="Usage" test="nav-usage"
                    when=Signal::derive(move || is_platform_admin() || (has_tenant() && session.can(Permission::QuotasRead)))/>
            </nav>
            <div class="sidebar-footer">
                {move || {
                    me().map(|m| {
                        let tenant = m
                            .tenant
                            .as_ref()
                            .map(|t| t.name.clone())
                            .unwrap_or_else(|| "Platform".into());
                        let show_name = !m.name.trim().is_empty() && m.name != m.email;
                        view! {
                            <div class="user-card">
                                <span class="avatar" aria-hidden="true">{initials(&m.name, &m.email)}</span>
                                <div class="user-text">
                                    {show_name.then(|| view! { <span class="user-name">{m.name.clone()}</span> })}
                                    <span class="user-email" class:user-name=!show_name data-test="current-user">
                                        {m.email.clone()}
                                    </span>
                                    <span class="user-tenant" data-test="current-tenant" title=tenant.clone()>{tenant.clone()}</span>
                                    <span class="user-role">{m.role.label()}</span>
                                </div>
                            </div>
                        }
                    })
                }}
                <A href="/account" attr:class="nav-link" attr:data-test="nav-account">
                    <span class="nav-icon" aria-hidden="true">"⚙"</span>
                    "My account"
                </A>
                <button
                    type="button"
                    class="button button-secondary button-block"
                    data-test="logout"
                    on:click=logout
                    disabled=move || signing_out.get()
                >
                    {move || if signing_out.get() { "Signing out…" } else { "Sign out" }}
                </button>
            </div>
        </aside>
    }
}

/// Renders its children only for people in a tenant; the platform admin goes to Tenants.
#[component]
pub fn RequireTenant(children: ChildrenFn) -> impl IntoView {
    let session = use_session();
    move || {
        if session.me().is_some_and(|m| m.tenant.is_some()) {
            children().into_any()
        } else {
            view! { <Redirect path="/tenants"/> }.into_any()
        }
    }
}

/// Renders its children only for people with `permission` (with `tenant_wide`, over the whole
/// tenant, not only over some device groups); others see a short explanation.
#[component]
pub fn RequirePermission(
    permission: Permission,
    #[prop(optional)] tenant_wide: bool,
    children: ChildrenFn,
) -> impl IntoView {
    let session = use_session();
    move || {
        let allowed = if tenant_wide {
            session.can_tenant_wide(permission)
        } else {
            session.can(permission)
        };
        if allowed {
            children().into_any()
        } else {
            view! {
                <div class="page">
                    <div class="empty-state">
                        <h2>"Not available"</h2>
                        <p class="muted">"Your role does not allow you to see this page."</p>
                        <A href="/" attr:class="button button-primary">"Go to your start page"</A>
                    </div>
                </div>
            }
            .into_any()
        }
    }
}

#[component]
pub fn NotFound() -> impl IntoView {
    crate::ui::set_title("Page not found");
    let location = use_location();
    view! {
        <div class="center-page">
            <div class="card narrow">
                <h1>"Page not found"</h1>
                <p class="muted">
                    "There is nothing at "
                    <code>{move || location.pathname.get()}</code>
                    "."
                </p>
                <A href="/" attr:class="button button-primary">"Back to Stead"</A>
            </div>
        </div>
    }
}
