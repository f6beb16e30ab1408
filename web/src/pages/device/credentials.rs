//! The device's credentials and quarantine: which kind it has and when they expire; rotating,
//! setting (access token or MQTT user name and password, optionally expiring) and revoking them,
//! each new secret shown once; disabling the device with a reason, and enabling it again.

use chrono::{DateTime, Utc};
use leptos::prelude::*;
use leptos::task::spawn_local;
use stead_api_types::{CredentialsType, Device, DeviceCredentials, Permission, SetCredentials};
use uuid::Uuid;

use crate::api;
use crate::pages::devices::CredentialsReveal;
use crate::session::use_session;
use crate::ui::{
    Action, ConfirmDialog, ErrorMessage, FormActions, Modal, StatusBadge, Tone, format_time,
    format_time_title, non_empty, use_toasts,
};

/// Credentials that expire within this many days are flagged.
const SOON_DAYS: i64 = 30;

fn type_words(t: CredentialsType) -> &'static str {
    match t {
        CredentialsType::AccessToken => "Access token",
        CredentialsType::MqttBasic => "MQTT user name and password",
        CredentialsType::None => "None (revoked)",
    }
}

/// The browser's clock (chrono's own clock is not built for wasm here).
fn now_utc() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(js_sys::Date::now() as i64).unwrap_or_default()
}

/// Which dialog is open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dialog {
    Rotate,
    Set,
    Revoke,
    Disable,
}

#[component]
pub fn CredentialsTab(
    device: RwSignal<Option<Device>>,
    fresh_token: RwSignal<Option<String>>,
) -> impl IntoView {
    let session = use_session();
    let toasts = use_toasts();
    let can_write = Memo::new(move |_| session.can(Permission::DevicesWrite));
    let id = Memo::new(move |_| device.with(|d| d.as_ref().map(|d| d.id).unwrap_or_default()));
    let dialog = RwSignal::new(None::<Dialog>);
    let action = Action::new();
    let reveal = RwSignal::new(None::<DeviceCredentials>);
    let reason = RwSignal::new(String::new());
    let open = move |d: Dialog| {
        action.error.set(None);
        reason.set(String::new());
        dialog.set(Some(d));
    };
    let close = Callback::new(move |_| dialog.set(None));

    // The device as the server has it now, after a change of credentials.
    let refresh = move |id: Uuid| {
        spawn_local(async move {
            if let Ok(d) = api::get_device(session, id).await {
                device.try_set(Some(d));
            }
        });
    };
    let issued = move |id: Uuid, creds: DeviceCredentials, message: &'static str| {
        toasts.success(message);
        if creds.access_token.is_some() {
            fresh_token.try_set(creds.access_token.clone());
        }
        dialog.try_set(None);
        reveal.try_set(Some(creds));
        refresh(id);
    };

    let rotate = move |_| {
        let id = id.get_untracked();
        action.run(api::rotate_device_token(session, id), move |creds| {
            issued(
                id,
                creds,
                "New credentials issued. The old ones no longer work.",
            );
        });
    };
    let revoke = move |_| {
        let id = id.get_untracked();
        action.run(api::revoke_credentials(session, id), move |()| {
            toasts.success("Credentials revoked: the device cannot connect.");
            dialog.try_set(None);
            refresh(id);
        });
    };
    let disable = move |_| {
        let Some(why) = non_empty(&reason.get_untracked()) else {
            action.refuse("Say why, for the people who will find it disabled.");
            return;
        };
        action.run(
            api::disable_device(session, id.get_untracked(), why),
            move |d| {
                toasts.success(format!("“{}” is disabled.", d.name));
                device.try_set(Some(d));
                dialog.try_set(None);
            },
        );
    };
    let enabling = RwSignal::new(false);
    let enable = move |_| {
        let id = id.get_untracked();
        enabling.set(true);
        spawn_local(async move {
            match api::enable_device(session, id).await {
                Ok(d) => {
                    toasts.success(format!("“{}” is enabled again.", d.name));
                    device.try_set(Some(d));
                }
                Err(e) => toasts.error(e.detail),
            }
            enabling.try_set(false);
        });
    };

    let kind = move || device.with(|d| d.as_ref().map(|d| d.credentials_type));
    let expires = move || device.with(|d| d.as_ref().and_then(|d| d.credentials_expire_at));
    let disabled_reason =
        move || device.with(|d| d.as_ref().and_then(|d| d.disabled_reason.clone()));

    view! {
        <div class="grid">
            <section class="card" data-test="credentials-card">
                <h2>"Credentials"</h2>
                <dl class="details">
                    <dt>"Type"</dt>
                    <dd data-test="credentials-type">{move || kind().map(type_words)}</dd>
                    <dt>"Expires"</dt>
                    <dd data-test="credentials-expiry">
                        {move || match expires() {
                            None => view! { <span class="muted">"Never"</span> }.into_any(),
                            Some(t) => {
                                let left = t.signed_duration_since(now_utc()).num_days();
                                let badge = if t <= now_utc() {
                                    Some(view! { <StatusBadge tone=Tone::Bad text="Expired" status="expired"/> })
                                } else if left < SOON_DAYS {
                                    Some(view! { <StatusBadge tone=Tone::Warn text=format!("in {left} d") status="soon"/> })
                                } else {
                                    None
                                };
                                view! {
                                    <span class="with-action">
                                        <span title=format_time_title(&t)>{format_time(&t)}</span>
                                        {badge}
                                    </span>
                                }.into_any()
                            }
                        }}
                    </dd>
                </dl>
                <Show when=move || can_write.get()>
                    <p class="muted section-gap">
                        "Rotate if the secret may have leaked: the current one stops working at once and the device must be reconfigured."
                    </p>
                    <div class="button-row section-gap">
                        <button type="button" class="button button-secondary" data-test="rotate-token" on:click=move |_| open(Dialog::Rotate)>
                            {move || if kind() == Some(CredentialsType::MqttBasic) { "Rotate password" } else { "Rotate token" }}
                        </button>
                        <button type="button" class="button button-secondary" data-test="set-credentials" on:click=move |_| open(Dialog::Set)>
                            "Set credentials…"
                        </button>
                        <Show when=move || kind() != Some(CredentialsType::None)>
                            <button type="button" class="button button-ghost danger-text" data-test="revoke-credentials" on:click=move |_| open(Dialog::Revoke)>
                                "Revoke"
                            </button>
                        </Show>
                    </div>
                </Show>
            </section>

            <section class="card" class:danger-zone=move || disabled_reason().is_some() data-test="quarantine-card">
                <h2>"Status"</h2>
                {move || match disabled_reason() {
                    Some(why) => view! {
                        <div class="stack-small">
                            <span class="status status-bad" data-test="device-status">"Disabled"</span>
                            <p><span class="muted">"Reason: "</span><span data-test="disabled-reason">{why}</span></p>
                            <p class="muted">"It cannot connect and its data is refused."</p>
                        </div>
                    }.into_any(),
                    None => view! {
                        <div class="stack-small">
                            <span class="status status-ok" data-test="device-status">"Enabled"</span>
                            <p class="muted">"Disable a device to quarantine it: it is disconnected and refused until enabled again, and its credentials are kept."</p>
                        </div>
                    }.into_any(),
                }}
                <Show when=move || can_write.get()>
                    <div class="button-row section-gap">
                        {move || if disabled_reason().is_some() {
                            view! {
                                <button type="button" class="button button-primary" data-test="enable-device" disabled=move || enabling.get() on:click=enable>
                                    {move || if enabling.get() { "Enabling…" } else { "Enable device" }}
                                </button>
                            }.into_any()
                        } else {
                            view! {
                                <button type="button" class="button button-danger" data-test="disable-device" on:click=move |_| open(Dialog::Disable)>
                                    "Disable device…"
                                </button>
                            }.into_any()
                        }}
                    </div>
                </Show>
            </section>
        </div>

        {move || dialog.get().map(|d| match d {
            Dialog::Rotate | Dialog::Revoke | Dialog::Disable => {
                let (title, message, label, run) = match d {
                    Dialog::Rotate => ("Rotate credentials", "New credentials will be issued and the current ones stop working immediately. The device must be reconfigured.", "Rotate", Callback::new(rotate)),
                    Dialog::Revoke => ("Revoke credentials", "The device is disconnected and cannot connect until it gets new credentials.", "Revoke credentials", Callback::new(revoke)),
                    _ => ("Disable device", "The device is disconnected; it cannot connect and its data is refused until you enable it again.", "Disable device", Callback::new(disable)),
                };
                view! {
                    <ConfirmDialog
                        title=title
                        message=message
                        confirm_label=label
                        busy=action.busy
                        error=action.error
                        on_confirm=run
                        on_cancel=close
                    >
                        {(d == Dialog::Disable).then(|| view! {
                            <label class="field">
                                <span>"Reason" <em class="required">"required"</em></span>
                                <input type="text" name="reason" data-test="disable-reason" placeholder="Suspected compromise" bind:value=reason/>
                            </label>
                        })}
                    </ConfirmDialog>
                }.into_any()
            }
            Dialog::Set => view! {
                <SetCredentialsDialog
                    id=id.get_untracked()
                    on_close=close
                    on_set=Callback::new(move |creds| issued(id.get_untracked(), creds, "Credentials set. The old ones no longer work."))
                />
            }.into_any(),
        })}

        {move || reveal.get().map(|creds| view! {
            <CredentialsReveal
                title="New credentials"
                intro="The previous credentials no longer work."
                credentials=creds
                on_close=Callback::new(move |_| reveal.set(None))
            />
        })}
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Token,
    Mqtt,
}

#[component]
fn SetCredentialsDialog(
    id: Uuid,
    on_close: Callback<()>,
    on_set: Callback<DeviceCredentials>,
) -> impl IntoView {
    let session = use_session();
    let kind = RwSignal::new(Kind::Mqtt);
    let token = RwSignal::new(String::new());
    let username = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let client_id = RwSignal::new(String::new());
    let expires = RwSignal::new(String::new());
    let action = Action::new();

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let expires_at = crate::ui::from_local_input(&expires.get_untracked());
        if expires_at.is_some_and(|t| t <= now_utc()) {
            action.refuse("The expiry must be in the future.");
            return;
        }
        let body = match kind.get_untracked() {
            Kind::Token => SetCredentials::AccessToken {
                token: non_empty(&token.get_untracked()),
                expires_at,
            },
            Kind::Mqtt => {
                let Some(user) = non_empty(&username.get_untracked()) else {
                    action.refuse("Give the MQTT user name.");
                    return;
                };
                SetCredentials::MqttBasic {
                    client_id: non_empty(&client_id.get_untracked()),
                    username: user,
                    password: non_empty(&password.get_untracked()),
                    expires_at,
                }
            }
        };
        let fut = async move { api::set_credentials(session, id, &body).await };
        action.run(fut, move |creds| on_set.run(creds));
    };

    view! {
        <Modal title="Set credentials" on_close=on_close>
            <form class="form" on:submit=submit novalidate=true>
                <p class="modal-text">"The new credentials replace the current ones at once."</p>
                <div class="check-row">
                    <label class="checkbox">
                        <input type="radio" name="kind" value="mqtt_basic" data-test="credentials-kind-mqtt"
                            prop:checked=move || kind.get() == Kind::Mqtt on:change=move |_| kind.set(Kind::Mqtt)/>
                        <span>"MQTT user name and password"</span>
                    </label>
                    <label class="checkbox">
                        <input type="radio" name="kind" value="access_token" data-test="credentials-kind-token"
                            prop:checked=move || kind.get() == Kind::Token on:change=move |_| kind.set(Kind::Token)/>
                        <span>"Access token"</span>
                    </label>
                </div>
                {move || match kind.get() {
                    Kind::Token => view! {
                        <label class="field">
                            <span>"Token"</span>
                            <input type="text" name="token" class="mono" autocomplete="off" placeholder="Generated when empty" bind:value=token/>
                        </label>
                    }.into_any(),
                    Kind::Mqtt => view! {
                        <div class="field-row">
                            <label class="field">
                                <span>"User name" <em class="required">"required"</em></span>
                                <input type="text" name="mqtt_username" autocomplete="off" bind:value=username/>
                            </label>
                            <label class="field">
                                <span>"Password"</span>
                                <input type="password" name="mqtt_password" autocomplete="new-password" placeholder="Generated when empty" bind:value=password/>
                            </label>
                        </div>
                        <label class="field">
                            <span>"Client id"</span>
                            <input type="text" name="mqtt_client_id" autocomplete="off" placeholder="Any" bind:value=client_id/>
                        </label>
                    }.into_any(),
                }}
                <label class="field">
                    <span>"Expires"</span>
                    <input type="datetime-local" name="expires_at" bind:value=expires/>
                    <small class="hint">"Empty: they do not expire."</small>
                </label>
                <ErrorMessage error=action.error/>
                <FormActions busy=action.busy on_cancel=on_close label="Set credentials" busy_label="Saving…" test="save-credentials"/>
            </form>
        </Modal>
    }
}
