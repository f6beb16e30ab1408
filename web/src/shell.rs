//! The signed-in frame: the sidebar with navigation, the signed-in person and sign-out, and the
//! guards that keep each page to the people allowed to see it.

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::components::{A, Outlet, Redirect};
use leptos_router::hooks::use_location;
use stead_api_types::{Permission, Role};

use crate::session::{SessionState, use_session};

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

    view! {
        <aside class="sidebar">
            <div class="brand">
                <Logo/>
                <span class="brand-name">"Stead"</span>
            </div>
            <nav class="nav" aria-label="Main">
                <Show when=has_tenant>
                    <A href="/devices" attr:class="nav-link" attr:data-test="nav-devices">
                        <span class="nav-icon" aria-hidden="true">"▣"</span>
                        "Devices"
                    </A>
                    <A href="/groups" attr:class="nav-link" attr:data-test="nav-groups">
                        <span class="nav-icon" aria-hidden="true">"◇"</span>
                        "Groups"
                    </A>
                    <A href="/profiles" attr:class="nav-link" attr:data-test="nav-profiles">
                        <span class="nav-icon" aria-hidden="true">"☰"</span>
                        "Profiles"
                    </A>
                </Show>
                <Show when=move || has_tenant() && session.can_tenant_wide(Permission::DevicesWrite)>
                    <A href="/import" attr:class="nav-link" attr:data-test="nav-import">
                        <span class="nav-icon" aria-hidden="true">"⇪"</span>
                        "Import"
                    </A>
                </Show>
                <Show when=move || has_tenant() && session.can(Permission::UsersRead)>
                    <A href="/users" attr:class="nav-link" attr:data-test="nav-users">
                        <span class="nav-icon" aria-hidden="true">"◉"</span>
                        "Users"
                    </A>
                </Show>
                <Show when=move || has_tenant() && session.can(Permission::UsersManage)>
                    <A href="/invitations" attr:class="nav-link" attr:data-test="nav-invitations">
                        <span class="nav-icon" aria-hidden="true">"✉"</span>
                        "Invitations"
                    </A>
                </Show>
                <Show when=move || has_tenant() && session.can(Permission::UsersRead)>
                    <A href="/roles" attr:class="nav-link" attr:data-test="nav-roles">
                        <span class="nav-icon" aria-hidden="true">"◈"</span>
                        "Roles"
                    </A>
                </Show>
                <Show when=move || has_tenant() && session.can(Permission::ApiKeysManage)>
                    <A href="/api-keys" attr:class="nav-link" attr:data-test="nav-api-keys">
                        <span class="nav-icon" aria-hidden="true">"⚿"</span>
                        "API keys"
                    </A>
                </Show>
                <Show when=move || has_tenant() && session.can(Permission::AuditRead)>
                    <A href="/audit" attr:class="nav-link" attr:data-test="nav-audit">
                        <span class="nav-icon" aria-hidden="true">"✎"</span>
                        "Audit log"
                    </A>
                </Show>
                <Show when=is_platform_admin>
                    <A href="/tenants" attr:class="nav-link" attr:data-test="nav-tenants">
                        <span class="nav-icon" aria-hidden="true">"▤"</span>
                        "Tenants"
                    </A>
                </Show>
                <Show when=move || is_platform_admin() || (has_tenant() && session.can(Permission::QuotasRead))>
                    <A href="/usage" attr:class="nav-link" attr:data-test="nav-usage">
                        <span class="nav-icon" aria-hidden="true">"▥"</span>
                        "Usage"
                    </A>
                </Show>
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

/// `/`: each person's landing page.
#[component]
pub fn Home() -> impl IntoView {
    let session = use_session();
    view! { <Redirect path=session.home()/> }
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

/// Renders its children only for people with `permission`; others see a short explanation.
#[component]
pub fn RequirePermission(permission: Permission, children: ChildrenFn) -> impl IntoView {
    let session = use_session();
    move || {
        if session.can(permission) {
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
