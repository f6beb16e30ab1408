//! `/account`: the signed-in person's own account: change the password (every other session then
//! ends), two-factor sign-in (`two_factor`), and see where they are signed in, ending any session
//! but this one. When their tenant requires a second factor they have not set up, this is the one
//! page the console shows them, with a banner saying why.

use leptos::prelude::*;
use leptos::task::spawn_local;
use stead_api_types::{ChangePassword, SessionInfo};

use crate::api;
use crate::pages::two_factor::TwoFactorCard;
use crate::session::use_session;
use crate::ui::{
    ErrorMessage, Loader, Spinner, TableHead, format_time, format_time_title, use_toasts,
};

#[component]
pub fn AccountPage() -> impl IntoView {
    crate::ui::set_title("My account");
    let session = use_session();
    let sessions = Loader::new(move || async move { api::my_sessions(session).await });
    view! {
        <div class="page">
            <header class="page-header">
                <div>
                    <h1>"My account"</h1>
                    <p class="muted">
                        {move || session.me().map(|m| format!("Signed in as {}.", m.email)).unwrap_or_default()}
                    </p>
                </div>
            </header>
            <Show when=move || session.me().is_some_and(|m| m.two_factor_setup_required)>
                <div class="alert alert-warning banner" role="alert" data-test="two-factor-setup-required">
                    <strong>"Set up two-factor sign-in to continue."</strong>
                    " Your organisation requires a code from an authenticator app at each sign-in. Until you set it up below, the rest of Stead stays closed to you."
                </div>
            </Show>
            <div class="grid">
                <TwoFactorCard/>
                <PasswordCard on_changed=Callback::new(move |_| sessions.reload())/>
                <section class="card" data-test="sessions-card">
                    <h2>"Where you are signed in"</h2>
                    <ErrorMessage error=sessions.error_text()/>
                    {move || match sessions.data.get() {
                        None if sessions.loading.get() => view! { <Spinner label="Loading sessions…"/> }.into_any(),
                        None => ().into_any(),
                        Some(list) => view! { <SessionTable list=list on_ended=Callback::new(move |_| sessions.reload())/> }.into_any(),
                    }}
                </section>
            </div>
        </div>
    }
}

#[component]
fn PasswordCard(on_changed: Callback<()>) -> impl IntoView {
    let session = use_session();
    let toasts = use_toasts();
    let current = RwSignal::new(String::new());
    let new = RwSignal::new(String::new());
    let repeat = RwSignal::new(String::new());
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if busy.get_untracked() {
            return;
        }
        let body = ChangePassword {
            current_password: current.get_untracked(),
            new_password: new.get_untracked(),
        };
        if body.current_password.is_empty() || body.new_password.is_empty() {
            error.set(Some("Enter your current password and a new one.".into()));
            return;
        }
        if body.new_password != repeat.get_untracked() {
            error.set(Some("The two new passwords differ.".into()));
            return;
        }
        busy.set(true);
        error.set(None);
        spawn_local(async move {
            match api::change_password(session, &body).await {
                Ok(()) => {
                    toasts.success("Password changed. Your other sessions were signed out.");
                    for field in [current, new, repeat] {
                        field.try_set(String::new());
                    }
                    on_changed.run(());
                }
                Err(e) => {
                    error.try_set(Some(e.detail));
                }
            }
            busy.try_set(false);
        });
    };

    view! {
        <section class="card" data-test="password-card">
            <h2>"Password"</h2>
            <form class="form" on:submit=submit novalidate=true>
                <label class="field">
                    <span>"Current password"</span>
                    <input type="password" name="current_password" autocomplete="current-password" bind:value=current/>
                </label>
                <label class="field">
                    <span>"New password"</span>
                    <input type="password" name="new_password" autocomplete="new-password" bind:value=new/>
                    <small class="hint">"At least 10 characters. Your other sessions end when it changes."</small>
                </label>
                <label class="field">
                    <span>"New password, again"</span>
                    <input type="password" name="repeat_password" autocomplete="new-password" bind:value=repeat/>
                </label>
                {move || error.get().map(|e| view! { <div class="alert alert-error" role="alert" data-test="password-error">{e}</div> })}
                <div class="button-row">
                    <button type="submit" class="button button-primary" data-test="change-password" disabled=move || busy.get()>
                        {move || if busy.get() { "Changing…" } else { "Change password" }}
                    </button>
                </div>
            </form>
        </section>
    }
}

/// A `User-Agent` in a few words: the browser and the system, when they can be told.
fn client_words(user_agent: Option<&str>) -> String {
    let Some(ua) = user_agent else {
        return "Unknown client".into();
    };
    let browser = [
        ("Edg/", "Edge"),
        ("Chrome/", "Chrome"),
        ("Firefox/", "Firefox"),
        ("Safari/", "Safari"),
        ("curl/", "curl"),
    ]
    .into_iter()
    .find(|(needle, _)| ua.contains(needle))
    .map(|(_, name)| name);
    let system = [
        ("Windows", "Windows"),
        ("Android", "Android"),
        ("iPhone", "iOS"),
        ("Mac OS", "macOS"),
        ("Linux", "Linux"),
    ]
    .into_iter()
    .find(|(needle, _)| ua.contains(needle))
    .map(|(_, name)| name);
    match (browser, system) {
        (Some(b), Some(s)) => format!("{b} on {s}"),
        (Some(b), None) => b.to_owned(),
        (None, Some(s)) => s.to_owned(),
        (None, None) => ua.chars().take(40).collect(),
    }
}

#[component]
fn SessionTable(list: Vec<SessionInfo>, on_ended: Callback<()>) -> impl IntoView {
    let session = use_session();
    let toasts = use_toasts();
    let ending = RwSignal::new(None::<uuid::Uuid>);
    let end = move |id: uuid::Uuid| {
        ending.set(Some(id));
        spawn_local(async move {
            match api::end_session(session, id).await {
                Ok(()) => {
                    toasts.success("That session is signed out.");
                    on_ended.run(());
                }
                Err(e) => toasts.error(e.detail),
            }
            ending.try_set(None);
        });
    };
    view! {
        <table class="table">
            <TableHead columns=&["Client", "Address", "Signed in", "Last active"] actions=true/>
            <tbody>
                {list.into_iter().map(|s| {
                    let id = s.id;
                    view! {
                        <tr data-test="session-row" class:current=s.current>
                            <td class="strong" title=s.user_agent.clone().unwrap_or_default()>
                                {client_words(s.user_agent.as_deref())}
                                {s.current.then(|| view! { <span class="badge badge-accent" data-test="this-session">"This session"</span> })}
                            </td>
                            <td>{s.address.clone().unwrap_or_else(|| "—".into())}</td>
                            <td><span title=format_time_title(&s.started_at)>{format_time(&s.started_at)}</span></td>
                            <td><span title=format_time_title(&s.last_active_at)>{format_time(&s.last_active_at)}</span></td>
                            <td class="actions-col">
                                {(!s.current).then(|| view! {
                                    <button type="button" class="button button-ghost button-small danger-text" data-test="end-session"
                                        disabled=move || ending.get() == Some(id)
                                        on:click=move |_| end(id)>
                                        {move || if ending.get() == Some(id) { "Signing out…" } else { "Sign out" }}
                                    </button>
                                })}
                            </td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
    }
}
