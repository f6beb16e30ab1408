//! A forgotten password, signed out: `/forgot-password` asks for a link by e-mail, and
//! `/reset-password#<token>` (the mailed link) sets a new password with it.

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::components::A;
use stead_api_types::{ConfirmPasswordReset, RequestPasswordReset};

use crate::api;
use crate::pages::login::{PublicCard, link_token};
use crate::session::{ApiError, codes};
use crate::ui::{ErrorMessage, non_empty};

#[component]
pub fn ForgotPasswordPage() -> impl IntoView {
    let email = RwSignal::new(String::new());
    let busy = RwSignal::new(false);
    let sent = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if busy.get_untracked() {
            return;
        }
        let Some(address) = non_empty(&email.get_untracked()) else {
            error.set(Some("Enter the e-mail address you sign in with.".into()));
            return;
        };
        busy.set(true);
        error.set(None);
        spawn_local(async move {
            match api::request_password_reset(&RequestPasswordReset { email: address }).await {
                Ok(()) => {
                    sent.try_set(true);
                }
                Err(e) if e.code == codes::MAIL_NOT_CONFIGURED => {
                    error.try_set(Some(
                        "This Stead server cannot send e-mail, so it cannot mail you a link. Ask your administrator to set a new password for you."
                            .into(),
                    ));
                }
                Err(e) => {
                    error.try_set(Some(e.detail));
                }
            }
            busy.try_set(false);
        });
    };

    view! {
        <PublicCard title="Reset your password">
            {move || if sent.get() {
                view! {
                    <div class="alert alert-info" role="status" data-test="reset-sent">
                        "If an account exists for "
                        <strong>{email.get_untracked().trim().to_owned()}</strong>
                        ", we sent a link to it. Open it to choose a new password; it works once."
                    </div>
                }.into_any()
            } else {
                view! {
                    <p class="muted">"We will e-mail you a link to choose a new one."</p>
                    <form on:submit=submit class="form" novalidate=true>
                        <label class="field">
                            <span>"E-mail"</span>
                            <input type="email" name="email" autocomplete="username" autofocus=true bind:value=email/>
                        </label>
                        <ErrorMessage error=error/>
                        <button type="submit" class="button button-primary button-block" data-test="send-reset-link" disabled=move || busy.get()>
                            {move || if busy.get() { "Sending…" } else { "Send the link" }}
                        </button>
                    </form>
                }.into_any()
            }}
            <p class="form-links">
                <A href="/login" attr:data-test="to-sign-in">"Back to sign in"</A>
            </p>
        </PublicCard>
    }
}

/// Why a mailed link cannot be used, in words for the person holding it.
fn link_problem(e: &ApiError) -> Option<&'static str> {
    Some(match e.code.as_str() {
        codes::LINK_USED => {
            "This link was already used. If you need to reset your password again, ask for a new link."
        }
        codes::LINK_EXPIRED => "This link has expired. Ask for a new one.",
        codes::INVALID_LINK => {
            "This link is not valid. Check that you opened the whole link from the e-mail, or ask for a new one."
        }
        _ => return None,
    })
}

#[component]
pub fn ResetPasswordPage() -> impl IntoView {
    let token = link_token();
    let new = RwSignal::new(String::new());
    let repeat = RwSignal::new(String::new());
    let busy = RwSignal::new(false);
    let done = RwSignal::new(false);
    let error = RwSignal::new(token.is_none().then(|| {
        "This link is incomplete. Open the whole link from the e-mail, or ask for a new one."
            .to_owned()
    }));
    // A link that cannot work: the form gives way to asking for another.
    let dead = RwSignal::new(token.is_none());

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let Some(token) = token.clone() else {
            return;
        };
        if busy.get_untracked() {
            return;
        }
        let new_password = new.get_untracked();
        if new_password.is_empty() {
            error.set(Some("Choose a new password.".into()));
            return;
        }
        if new_password != repeat.get_untracked() {
            error.set(Some("The two passwords differ.".into()));
            return;
        }
        busy.set(true);
        error.set(None);
        spawn_local(async move {
            let body = ConfirmPasswordReset {
                token,
                new_password,
            };
            match api::confirm_password_reset(&body).await {
                Ok(()) => {
                    done.try_set(true);
                }
                Err(e) => match link_problem(&e) {
                    Some(why) => {
                        dead.try_set(true);
                        error.try_set(Some(why.to_owned()));
                    }
                    None => {
                        error.try_set(Some(e.detail));
                    }
                },
            }
            busy.try_set(false);
        });
    };

    view! {
        <PublicCard title="Choose a new password">
            {move || if done.get() {
                view! {
                    <div class="alert alert-info" role="status" data-test="password-reset-done">
                        "Password changed. Sign in with your new password; every earlier session of yours has ended."
                    </div>
                    <A href="/login" attr:class="button button-primary button-block" attr:data-test="to-sign-in">"Sign in"</A>
                }.into_any()
            } else if dead.get() {
                view! {
                    <ErrorMessage error=error/>
                    <p class="form-links">
                        <A href="/forgot-password" attr:data-test="forgot-password">"Ask for a new link"</A>
                        <A href="/login" attr:data-test="to-sign-in">"Back to sign in"</A>
                    </p>
                }.into_any()
            } else {
                let submit = submit.clone();
                view! {
                    <form on:submit=submit class="form" novalidate=true>
                        <label class="field">
                            <span>"New password"</span>
                            <input type="password" name="new_password" autocomplete="new-password" autofocus=true bind:value=new/>
                            <small class="hint">"At least 10 characters."</small>
                        </label>
                        <label class="field">
                            <span>"New password, again"</span>
                            <input type="password" name="repeat_password" autocomplete="new-password" bind:value=repeat/>
                        </label>
                        <ErrorMessage error=error/>
                        <button type="submit" class="button button-primary button-block" data-test="set-password" disabled=move || busy.get()>
                            {move || if busy.get() { "Saving…" } else { "Set the new password" }}
                        </button>
                    </form>
                }.into_any()
            }}
        </PublicCard>
    }
}
