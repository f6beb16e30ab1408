//! `/invite#<token>`, the link of an invitation e-mail: who invites the person where, then their
//! name and password; accepting creates the account and signs it in, like the login page does.

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::components::A;
use leptos_router::hooks::use_navigate;
use stead_api_types::{AcceptInvitation, InvitationPreview, InvitationToken};

use crate::api;
use crate::pages::login::{PublicCard, link_token};
use crate::session::{ApiError, SessionState, codes, use_session};
use crate::ui::{ErrorMessage, Loader, Spinner, format_time, non_empty};

/// Why an invitation link cannot be used, in words for the invitee.
fn invitation_problem(e: &ApiError) -> String {
    match e.code.as_str() {
        codes::LINK_USED => {
            "This invitation was already used: its account exists. Sign in with it instead.".into()
        }
        codes::LINK_EXPIRED => {
            "This invitation has expired. Ask the person who invited you to send it again.".into()
        }
        codes::INVITATION_REVOKED => "This invitation was withdrawn.".into(),
        codes::INVALID_LINK => {
            "This invitation link is not valid. Check that you opened the whole link from the e-mail."
                .into()
        }
        _ => e.detail.clone(),
    }
}

#[component]
pub fn InvitePage() -> impl IntoView {
    let token = link_token();
    let preview = Loader::new({
        let token = token.clone();
        move || {
            let token = token.clone();
            async move {
                match token {
                    Some(token) => api::preview_invitation(&InvitationToken { token }).await,
                    None => Err(ApiError {
                        status: 404,
                        code: codes::INVALID_LINK.into(),
                        detail: String::new(),
                        field: None,
                    }),
                }
            }
        }
    });
    let problem = Signal::derive(move || preview.error.get().map(|e| invitation_problem(&e)));

    view! {
        <PublicCard title="Your invitation">
            <ErrorMessage error=problem/>
            {move || match preview.data.get() {
                Some(p) => view! { <AcceptForm token=token.clone().unwrap_or_default() preview=p/> }.into_any(),
                None if preview.loading.get() => view! { <Spinner label="Reading the invitation…"/> }.into_any(),
                None => view! {
                    <p class="form-links">
                        <A href="/login" attr:data-test="to-sign-in">"Go to sign in"</A>
                    </p>
                }
                .into_any(),
            }}
        </PublicCard>
    }
}

#[component]
fn AcceptForm(token: String, preview: InvitationPreview) -> impl IntoView {
    let session = use_session();
    let navigate = use_navigate();
    let name = RwSignal::new(preview.name.clone());
    let password = RwSignal::new(String::new());
    let repeat = RwSignal::new(String::new());
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    // Someone already signed in here: the invitation is for a new account, not theirs.
    let signed_in_as = move || match session.state() {
        SessionState::SignedIn(me) if !busy.get() => Some(me.email),
        _ => None,
    };

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if busy.get_untracked() {
            return;
        }
        let password_value = password.get_untracked();
        if password_value.is_empty() {
            error.set(Some("Choose a password.".into()));
            return;
        }
        if password_value != repeat.get_untracked() {
            error.set(Some("The two passwords differ.".into()));
            return;
        }
        let body = AcceptInvitation {
            token: token.clone(),
            password: password_value,
            name: non_empty(&name.get_untracked()),
        };
        busy.set(true);
        error.set(None);
        let navigate = navigate.clone();
        spawn_local(async move {
            match session.accept_invitation(&body).await {
                Ok(()) => navigate(session.home(), Default::default()),
                Err(e) => {
                    error.try_set(Some(invitation_problem(&e)));
                    busy.try_set(false);
                }
            }
        });
    };

    let signing_out = RwSignal::new(false);
    view! {
        <p class="muted" data-test="invitation-intro">
            {format!("Join {} — invited by {} as ", preview.tenant_name, preview.invited_by_email)}
            <strong>{preview.email.clone()}</strong>
            "."
        </p>
        <p class="hint">{format!("The invitation is valid until {}.", format_time(&preview.expires_at))}</p>
        {move || signed_in_as().map(|email| view! {
            <div class="alert alert-warning" role="note" data-test="signed-in-elsewhere">
                {format!("You are signed in as {email}. Sign out first to accept this invitation for a new account.")}
                <div class="button-row">
                    <button type="button" class="button button-secondary button-small" data-test="logout"
                        disabled=move || signing_out.get()
                        on:click=move |_| {
                            signing_out.set(true);
                            spawn_local(async move {
                                session.logout().await;
                                signing_out.try_set(false);
                            });
                        }>"Sign out"</button>
                </div>
            </div>
        })}
        <form on:submit=submit class="form" novalidate=true>
            // For password managers: the account the new password belongs to.
            <input type="email" name="email" autocomplete="username" readonly=true style="display: none" value=preview.email.clone()/>
            <label class="field">
                <span>"Your name"</span>
                <input type="text" name="name" autocomplete="name" bind:value=name/>
            </label>
            <label class="field">
                <span>"Password"</span>
                <input type="password" name="password" autocomplete="new-password" autofocus=true bind:value=password/>
                <small class="hint">"At least 10 characters."</small>
            </label>
            <label class="field">
                <span>"Password, again"</span>
                <input type="password" name="repeat_password" autocomplete="new-password" bind:value=repeat/>
            </label>
            <ErrorMessage error=error/>
            <button type="submit" class="button button-primary button-block" data-test="accept-invitation"
                disabled=move || busy.get() || signed_in_as().is_some()>
                {move || if busy.get() { "Joining…" } else { "Join" }}
            </button>
        </form>
    }
}
