//! `/login`: e-mail and password.

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::components::Redirect;

use crate::session::{SessionState, use_session};
use crate::shell::Logo;
use crate::ui::ErrorMessage;

#[component]
pub fn LoginPage() -> impl IntoView {
    let session = use_session();
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
        1 => view! { <LoginForm/> }.into_any(),
        _ => view! { <Redirect path=session.after_login()/> }.into_any(),
    }
}

#[component]
fn LoginForm() -> impl IntoView {
    crate::ui::set_title("Sign in");
    let session = use_session();
    let email = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if busy.get_untracked() {
            return;
        }
        let (e, p) = (email.get_untracked(), password.get_untracked());
        if e.trim().is_empty() || p.is_empty() {
            error.set(Some("Enter your e-mail address and password.".into()));
            return;
        }
        busy.set(true);
        error.set(None);
        spawn_local(async move {
            // On success the session turns to SignedIn and the page redirects by itself.
            if let Err(err) = session.login(e.trim().to_owned(), p).await {
                error.try_set(Some(err.detail));
                busy.try_set(false);
            }
        });
    };

    view! {
        <div class="center-page login-page">
            <div class="login-card card">
                <div class="brand brand-large">
                    <Logo/>
                    <span class="brand-name">"Stead"</span>
                </div>
                <h1>"Sign in"</h1>
                <p class="muted">"Operate your fleet of devices."</p>
                {move || session.notice.get().map(|n| view! { <div class="alert alert-info">{n}</div> })}
                <form on:submit=submit class="form" novalidate=true>
                    <label class="field">
                        <span>"E-mail"</span>
                        <input
                            type="email"
                            name="email"
                            autocomplete="username"
                            required=true
                            autofocus=true
                            bind:value=email
                        />
                    </label>
                    <label class="field">
                        <span>"Password"</span>
                        <input
                            type="password"
                            name="password"
                            autocomplete="current-password"
                            required=true
                            bind:value=password
                        />
                    </label>
                    <ErrorMessage error=error/>
                    <button type="submit" class="button button-primary button-block" disabled=move || busy.get()>
                        {move || if busy.get() { "Signing in…" } else { "Sign in" }}
                    </button>
                </form>
            </div>
            <p class="footnote muted">"Stead · IoT operations platform"</p>
        </div>
    }
}
