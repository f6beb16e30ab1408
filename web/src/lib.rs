//! Stead's browser console: a client-side rendered Leptos app that talks only to the public REST
//! API (`/api/v1`), with the wire types of `stead-api-types`.
//!
//! `session` owns sign-in, tokens and every HTTP call; `api` names the endpoints; `shell` is the
//! signed-in frame (sidebar, guards); `pages` holds one module per screen; `ui` the shared parts;
//! `live` follows a device's event stream, `chart` draws time series, `connect` tells devices how
//! to connect.

mod api;
mod chart;
mod connect;
mod live;
mod pages;
mod session;
mod shell;
mod ui;

use leptos::prelude::*;
use leptos_router::components::{ParentRoute, Route, Router, Routes};
use leptos_router::path;
use wasm_bindgen::prelude::wasm_bindgen;

use crate::pages::{
    account::AccountPage,
    alarms::{AlarmPage, AlarmsPage},
    api_keys::ApiKeysPage,
    audit::AuditPage,
    device::DevicePage,
    devices::DevicesPage,
    firmware::{CampaignPage, CampaignsPage, FirmwarePage, NewCampaignPage},
    groups::GroupsPage,
    home::HomePage,
    import::ImportPage,
    integrations::{EndpointPage, IntegrationsPage},
    invitations::InvitationsPage,
    invite::InvitePage,
    login::LoginPage,
    notifications::NotificationsPage,
    password_reset::{ForgotPasswordPage, ResetPasswordPage},
    profiles::ProfilesPage,
    roles::RolesPage,
    tenants::TenantsPage,
    usage::UsagePage,
    users::UsersPage,
};
use crate::session::{Session, SessionState};
use crate::shell::{NotFound, Shell};
use crate::ui::{ToastHost, Toasts};

#[component]
pub fn App() -> impl IntoView {
    let session = Session::new();
    let toasts = Toasts::new();
    let device_list = pages::devices::ListState::default();
    provide_context(session);
    provide_context(toasts);
    provide_context(device_list);
    session.restore();
    // One person's messages and list filters should not greet the next one.
    Effect::new(move |_| {
        if session.state() == SessionState::SignedOut {
            toasts.clear();
            device_list.reset();
        }
    });

    view! {
        <Router>
            <Routes fallback=|| view! { <NotFound/> }>
                <Route path=path!("/login") view=LoginPage/>
                <Route path=path!("/forgot-password") view=ForgotPasswordPage/>
                <Route path=path!("/reset-password") view=ResetPasswordPage/>
                <Route path=path!("/invite") view=InvitePage/>
                <ParentRoute path=path!("") view=Shell>
                    <Route path=path!("/devices") view=DevicesPage/>
                    <Route path=path!("/devices/:id") view=DevicePage/>
                    <Route path=path!("/alarms") view=AlarmsPage/>
                    <Route path=path!("/alarms/:id") view=AlarmPage/>
                    <Route path=path!("/notifications") view=NotificationsPage/>
                    <Route path=path!("/firmware") view=FirmwarePage/>
                    <Route path=path!("/firmware/campaigns") view=CampaignsPage/>
                    <Route path=path!("/firmware/campaigns/new") view=NewCampaignPage/>
                    <Route path=path!("/firmware/campaigns/:id") view=CampaignPage/>
                    <Route path=path!("/import") view=ImportPage/>
                    <Route path=path!("/groups") view=GroupsPage/>
                    <Route path=path!("/profiles") view=ProfilesPage/>
                    <Route path=path!("/users") view=UsersPage/>
                    <Route path=path!("/invitations") view=InvitationsPage/>
                    <Route path=path!("/roles") view=RolesPage/>
                    <Route path=path!("/api-keys") view=ApiKeysPage/>
                    <Route path=path!("/integrations") view=IntegrationsPage/>
                    <Route path=path!("/integrations/:id") view=EndpointPage/>
                    <Route path=path!("/usage") view=UsagePage/>
                    <Route path=path!("/tenants") view=TenantsPage/>
                    <Route path=path!("/audit") view=AuditPage/>
                    <Route path=path!("/account") view=AccountPage/>
                    <Route path=path!("") view=HomePage/>
                </ParentRoute>
            </Routes>
        </Router>
        <ToastHost/>
    }
}

#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
    // The page shows a plain "Loading" placeholder until the app takes over.
    if let Some(placeholder) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.get_element_by_id("boot"))
    {
        placeholder.remove();
    }
    mount_to_body(App);
}
