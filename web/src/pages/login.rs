//! `/login`: e-mail and password, then the second factor (a code of the person's authenticator
//! app, or one of their recovery codes) when the server asks for it. Also the frame that every
//! page reached signed out shares, and the token of a mailed link.

use leptos::html::Input;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::components::{A, Redirect};
use stead_api_types::LoginRequest;

use crate::session::{SessionState, codes, use_session};
use crate::shell::Logo;
use crate::ui::ErrorMessage;

/// The frame of the pages people see signed out: the brand, a title, and the card's content.
#[component]
pub fn PublicCard(#[prop(into)] title: String, children: Children) -> impl IntoView {
    crate::ui::set_title(&title);
    view! {
        <div class="center-page login-page">
            <div class="login-card card">
                <div class="brand brand-large">
                    <Logo/>
                    <span class="brand-name">"Stead"</span>
                </div>
                <h1>{title}</h1>
                {children()}
            </div>
            <p class="footnote muted">"Stead · IoT operations platform"</p>
        </div>
    }
}

/// The token of a mailed link (`/invite#<token>`, `/reset-password#<token>`). It travels in the
/// fragment, which browsers never send, so it stays out of every server's and proxy's logs.
pub fn link_token() -> Option<String> {
    let hash = web_sys::window()?.location().hash().ok()?;
    let token = hash.trim_start_matches('#').trim();
    (!token.is_empty()).then(|| token.to_owned())
}

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

/// What the form asks for: the password first, then a second factor when the account has one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Password,
    Code,
    RecoveryCode,
}

#[component]
fn LoginForm() -> impl IntoView {
    let session = use_session();
    let email = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let code = RwSignal::new(String::new());
    let step = RwSignal::new(Step::Password);
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    // The code field appears after the first answer: `autofocus` does not apply to it.
    let code_field = NodeRef::<Input>::new();
    Effect::new(move |_| {
        step.track();
        if let Some(field) = code_field.get() {
            let _ = field.focus();
        }
    });
    let switch = move |to: Step| {
        step.set(to);
        code.set(String::new());
        error.set(None);
    };

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if busy.get_untracked() {
            return;
        }
        let (e, p) = (email.get_untracked(), password.get_untracked());
        if e.trim().is_empty() || p.is_empty() {
            error.set(Some("Enter your e-mail address and password.".into()));
            step.set(Step::Password);
            return;
        }
        // People type codes with spaces ("123 456"), as apps show them.
        let typed: String = code
            .get_untracked()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let current = step.get_untracked();
        let mut body = LoginRequest {
            email: e.trim().to_owned(),
            password: p,
            totp_code: None,
            recovery_code: None,
        };
        match current {
            Step::Password => {}
            Step::Code => {
                if typed.len() != 6 || !typed.chars().all(|c| c.is_ascii_digit()) {
                    error.set(Some(
                        "Enter the 6-digit code your authenticator app shows.".into(),
                    ));
                    return;
                }
                body.totp_code = Some(typed);
            }
            Step::RecoveryCode => {
                if typed.is_empty() {
                    error.set(Some("Enter one of your recovery codes.".into()));
                    return;
                }
                body.recovery_code = Some(typed);
            }
        }
        busy.set(true);
        error.set(None);
        spawn_local(async move {
            // On success the session turns to SignedIn and the page redirects by itself.
            let Err(err) = session.login(&body).await else {
                return;
            };
            busy.try_set(false);
            match (current, err.code.as_str()) {
                (Step::Password, codes::TWO_FACTOR_REQUIRED) => {
                    // "You have signed out" and the like no longer apply.
                    session.notice.try_set(None);
                    step.try_set(Step::Code);
                }
                (Step::Code, codes::INVALID_TWO_FACTOR_CODE) => {
                    error.try_set(Some(
                        "That code is not right, or it was used already. Enter the code your app shows now."
                            .into(),
                    ));
                }
                (Step::RecoveryCode, codes::INVALID_TWO_FACTOR_CODE) => {
                    error.try_set(Some(
                        "That recovery code is not right, or it was used already: each works once."
                            .into(),
                    ));
                }
                _ => {
                    error.try_set(Some(err.detail));
                }
            }
        });
    };

    view! {
        <PublicCard title="Sign in">
            {move || match step.get() {
                Step::Password => view! { <p class="muted">"Operate your fleet of devices."</p> }.into_any(),
                Step::Code => view! {
                    <p class="muted" data-test="two-factor-prompt">"Enter the 6-digit code from your authenticator app."</p>
                }.into_any(),
                Step::RecoveryCode => view! {
                    <p class="muted" data-test="two-factor-prompt">"Enter one of the recovery codes you saved when you set up two-factor sign-in."</p>
                }.into_any(),
            }}
            {move || session.notice.get().map(|n| view! { <div class="alert alert-info">{n}</div> })}
            <form on:submit=submit class="form" novalidate=true>
                <Show when=move || step.get() == Step::Password>
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
                </Show>
                <Show when=move || step.get() == Step::Code>
                    <label class="field">
                        <span>"Code"</span>
                        <input
                            node_ref=code_field
                            type="text"
                            name="totp_code"
                            inputmode="numeric"
                            autocomplete="one-time-code"
                            maxlength="7"
                            class="code-input"
                            bind:value=code
                        />
                    </label>
                </Show>
                <Show when=move || step.get() == Step::RecoveryCode>
                    <label class="field">
                        <span>"Recovery code"</span>
                        <input
                            node_ref=code_field
                            type="text"
                            name="recovery_code"
                            autocomplete="off"
                            spellcheck="false"
                            class="code-input"
                            bind:value=code
                        />
                    </label>
                </Show>
                <ErrorMessage error=error/>
                <button type="submit" class="button button-primary button-block" disabled=move || busy.get()>
                    {move || match (busy.get(), step.get()) {
                        (true, _) => "Signing in…",
                        (false, Step::Password) => "Sign in",
                        (false, _) => "Verify",
                    }}
                </button>
            </form>
            {move || match step.get() {
                Step::Password => view! {
                    <p class="form-links">
                        <A href="/forgot-password" attr:data-test="forgot-password">"Forgot your password?"</A>
                    </p>
                }.into_any(),
                Step::Code => view! {
                    <p class="form-links">
                        <button type="button" class="link-button" data-test="use-recovery-code"
                            on:click=move |_| switch(Step::RecoveryCode)>"Use a recovery code instead"</button>
                        <button type="button" class="link-button" data-test="back-to-password"
                            on:click=move |_| { password.set(String::new()); switch(Step::Password); }>"Start over"</button>
                    </p>
                }.into_any(),
                Step::RecoveryCode => view! {
                    <p class="form-links">
                        <button type="button" class="link-button" data-test="use-totp-code"
                            on:click=move |_| switch(Step::Code)>"Use your authenticator app instead"</button>
                        <button type="button" class="link-button" data-test="back-to-password"
                            on:click=move |_| { password.set(String::new()); switch(Step::Password); }>"Start over"</button>
                    </p>
                }.into_any(),
            }}
        </PublicCard>
    }
}
