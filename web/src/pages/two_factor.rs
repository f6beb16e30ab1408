//! My account's two-factor card: turning on sign-in with a code from an authenticator app
//! (password, then the QR code or the key typed by hand, then a code proving the app has it),
//! the recovery codes shown once, new ones, and turning it off.

use leptos::prelude::*;
use leptos::task::spawn_local;
use stead_api_types::{ConfirmPassword, EnableTwoFactor, RecoveryCodes, TwoFactorSetup};

use crate::api;
use crate::session::use_session;
use crate::ui::{Action, ConfirmDialog, ErrorMessage, Modal, copy_text, use_toasts};

/// Where the setting-up stands.
#[derive(Clone, Debug, PartialEq)]
enum Setup {
    Idle,
    /// Asking for the password again.
    Password,
    /// The new secret, waiting for a code from the app.
    Scan(TwoFactorSetup),
}

/// A change that needs the password again, once two-factor sign-in is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ask {
    NewCodes,
    TurnOff,
}

/// Digits only: apps show codes as "123 456".
fn typed_code(raw: &str) -> String {
    raw.chars().filter(|c| !c.is_whitespace()).collect()
}

#[component]
pub fn TwoFactorCard() -> impl IntoView {
    let session = use_session();
    let toasts = use_toasts();
    let on = Memo::new(move |_| session.me().is_some_and(|m| m.two_factor));
    let setup = RwSignal::new(Setup::Idle);
    let password = RwSignal::new(String::new());
    let code = RwSignal::new(String::new());
    let action = Action::new();
    let recovery = RwSignal::new(None::<Vec<String>>);
    let asking = RwSignal::new(None::<Ask>);
    let ask_password = RwSignal::new(String::new());
    let ask = Action::new();

    let cancel = move || {
        setup.set(Setup::Idle);
        password.set(String::new());
        code.set(String::new());
        action.error.set(None);
    };
    let start = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let body = ConfirmPassword {
            password: password.get_untracked(),
        };
        if body.password.is_empty() {
            action.refuse("Enter your password.");
            return;
        }
        action.run(
            async move { api::two_factor_setup(session, &body).await },
            move |s| {
                password.set(String::new());
                setup.set(Setup::Scan(s));
            },
        );
    };
    let enable = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let typed = typed_code(&code.get_untracked());
        if typed.len() != 6 || !typed.chars().all(|c| c.is_ascii_digit()) {
            action.refuse("Enter the 6-digit code your app shows for Stead.");
            return;
        }
        action.run(
            async move { api::enable_two_factor(session, &EnableTwoFactor { code: typed }).await },
            move |codes: RecoveryCodes| {
                code.set(String::new());
                setup.set(Setup::Idle);
                recovery.set(Some(codes.recovery_codes));
                spawn_local(session.reload_me());
            },
        );
    };
    let confirm_ask = move |_| {
        let Some(what) = asking.get_untracked() else {
            return;
        };
        let body = ConfirmPassword {
            password: ask_password.get_untracked(),
        };
        if body.password.is_empty() {
            ask.refuse("Enter your password.");
            return;
        }
        let done = move || {
            ask_password.set(String::new());
            asking.set(None);
        };
        match what {
            Ask::NewCodes => ask.run(
                async move { api::new_recovery_codes(session, &body).await },
                move |codes| {
                    done();
                    recovery.set(Some(codes.recovery_codes));
                },
            ),
            Ask::TurnOff => ask.run(
                async move { api::disable_two_factor(session, &body).await },
                move |()| {
                    done();
                    toasts.success("Two-factor sign-in is off: your password alone signs you in.");
                    spawn_local(session.reload_me());
                },
            ),
        }
    };
    let open_ask = move |what: Ask| {
        ask_password.set(String::new());
        ask.error.set(None);
        asking.set(Some(what));
    };

    view! {
        <section class="card two-factor" data-test="two-factor-card">
            <h2>"Two-factor sign-in"</h2>
            <p>
                {move || if on.get() {
                    view! { <span class="status status-ok" data-test="two-factor-status">"On"</span> }.into_any()
                } else {
                    view! { <span class="status status-off" data-test="two-factor-status">"Off"</span> }.into_any()
                }}
            </p>
            <p class="muted">
                {move || if on.get() {
                    "Signing in takes your password and a code from your authenticator app (or one of your recovery codes)."
                } else {
                    "Ask for a code from an authenticator app (such as Google Authenticator, 1Password or Aegis) at each sign-in, on top of your password."
                }}
            </p>
            {move || match (on.get(), setup.get()) {
                (true, _) => view! {
                    <div class="button-row">
                        <button type="button" class="button button-secondary" data-test="new-recovery-codes"
                            on:click=move |_| open_ask(Ask::NewCodes)>"New recovery codes"</button>
                        <button type="button" class="button button-ghost danger-text" data-test="disable-two-factor"
                            on:click=move |_| open_ask(Ask::TurnOff)>"Turn off"</button>
                    </div>
                }.into_any(),
                (false, Setup::Idle) => view! {
                    <div class="button-row">
                        <button type="button" class="button button-primary" data-test="setup-two-factor"
                            on:click=move |_| { action.error.set(None); setup.set(Setup::Password); }>"Set up"</button>
                    </div>
                }.into_any(),
                (false, Setup::Password) => view! {
                    <form class="form" on:submit=start novalidate=true>
                        <label class="field">
                            <span>"Your password"</span>
                            <input type="password" name="two_factor_password" autocomplete="current-password" bind:value=password/>
                            <small class="hint">"To be sure it is you."</small>
                        </label>
                        <ErrorMessage error=action.error/>
                        <div class="button-row">
                            <button type="submit" class="button button-primary" data-test="two-factor-continue" disabled=move || action.busy.get()>
                                {move || if action.busy.get() { "Checking…" } else { "Continue" }}
                            </button>
                            <button type="button" class="button button-secondary" on:click=move |_| cancel()>"Cancel"</button>
                        </div>
                    </form>
                }.into_any(),
                (false, Setup::Scan(s)) => view! {
                    <form class="form" on:submit=enable novalidate=true>
                        <p>"1. Scan this QR code with your authenticator app:"</p>
                        <div class="qr" data-test="two-factor-qr" inner_html=s.qr_svg.clone()></div>
                        <p class="muted">
                            "Or type this key into the app: "
                            <code class="token-inline" data-test="two-factor-secret">{s.secret.clone()}</code>
                        </p>
                        <label class="field">
                            <span>"2. Enter the 6-digit code it shows"</span>
                            <input type="text" name="two_factor_code" inputmode="numeric" autocomplete="one-time-code" maxlength="7" class="code-input" bind:value=code/>
                        </label>
                        <ErrorMessage error=action.error/>
                        <div class="button-row">
                            <button type="submit" class="button button-primary" data-test="enable-two-factor" disabled=move || action.busy.get()>
                                {move || if action.busy.get() { "Turning on…" } else { "Turn on" }}
                            </button>
                            <button type="button" class="button button-secondary" on:click=move |_| cancel()>"Cancel"</button>
                        </div>
                    </form>
                }.into_any(),
            }}
        </section>

        {move || recovery.get().map(|codes| view! {
            <RecoveryCodesReveal codes=codes on_close=Callback::new(move |_| recovery.set(None))/>
        })}

        {move || asking.get().map(|what| {
            let (title, message, label) = match what {
                Ask::NewCodes => (
                    "New recovery codes",
                    "Make a new set of recovery codes? The ones you have stop working.",
                    "Make new codes",
                ),
                Ask::TurnOff => (
                    "Turn off two-factor sign-in",
                    "Turn off two-factor sign-in? Your password alone will sign you in.",
                    "Turn off",
                ),
            };
            view! {
                <ConfirmDialog
                    title=title
                    message=message
                    confirm_label=label
                    danger=what == Ask::TurnOff
                    busy=ask.busy
                    error=ask.error
                    on_confirm=Callback::new(confirm_ask)
                    on_cancel=Callback::new(move |_| asking.set(None))
                >
                    <label class="field">
                        <span>"Your password"</span>
                        <input type="password" name="confirm_password" autocomplete="current-password" bind:value=ask_password/>
                    </label>
                </ConfirmDialog>
            }
        })}
    }
}

/// The recovery codes, shown this once, with a copy button for all of them.
#[component]
fn RecoveryCodesReveal(codes: Vec<String>, on_close: Callback<()>) -> impl IntoView {
    let all = codes.join("\n");
    let copied = RwSignal::new(None::<bool>);
    let copy = move |_| {
        let all = all.clone();
        spawn_local(async move {
            let ok = copy_text(&all, "recovery-codes").await;
            copied.try_set(Some(ok));
        });
    };
    view! {
        <Modal title="Your recovery codes" on_close=on_close dismissable=false>
            <p class="modal-text">
                "Each signs you in once instead of a code from your app, should you lose your phone. Keep them somewhere safe, apart from your phone."
            </p>
            <ul id="recovery-codes" class="recovery-codes" data-test="recovery-codes">
                {codes.into_iter().map(|c| view! { <li><code data-test="recovery-code">{c}</code></li> }).collect_view()}
            </ul>
            {move || (copied.get() == Some(false)).then(|| view! {
                <p class="hint">"Copying is not available here: select the codes and copy them by hand."</p>
            })}
            <div class="alert alert-warning" role="note">
                <strong>"Save them now."</strong>
                " They will not be shown again: Stead keeps only hashes of them."
            </div>
            <div class="modal-actions">
                <button type="button" class="button button-secondary" data-test="copy-recovery-codes" on:click=copy>
                    {move || if copied.get() == Some(true) { "Copied" } else { "Copy" }}
                </button>
                <button type="button" class="button button-primary" data-test="saved-recovery-codes" on:click=move |_| on_close.run(())>
                    "I saved them"
                </button>
            </div>
        </Modal>
    }
}
