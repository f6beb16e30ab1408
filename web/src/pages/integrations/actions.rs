//! An endpoint's buttons, the same in its list row and on its page: send a test event, edit,
//! turn on or off, rotate the signing secret (the new one shown once), delete; with their
//! dialogs.

use leptos::prelude::*;
use stead_api_types::{UpdateWebhook, WebhookEndpoint, WebhookSecret};

use super::form::EndpointForm;
use crate::api;
use crate::session::use_session;
use crate::ui::{Action, ConfirmDialog, Secret, SecretReveal, format_time, use_toasts};

/// How long the old secret may keep signing beside the new one, in seconds.
const OVERLAPS: [(u64, &str); 4] = [
    (0, "Not at all: it stops now"),
    (3600, "1 hour"),
    (24 * 3600, "24 hours"),
    (7 * 24 * 3600, "7 days"),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dialog {
    Edit,
    Rotate,
    Delete,
}

#[component]
pub fn EndpointActions(
    /// Read when a button is pressed, so that the buttons stay (and a dialog stays open) while
    /// the endpoint is read again.
    #[prop(into)]
    endpoint: Signal<WebhookEndpoint>,
    /// The endpoint changed, or a delivery was queued: read again.
    on_changed: Callback<()>,
    on_deleted: Callback<()>,
    /// On the endpoint's own page: whole words, and the test as the main action.
    #[prop(optional)]
    full: bool,
) -> impl IntoView {
    let session = use_session();
    let toasts = use_toasts();
    let id = endpoint.with_untracked(|e| e.id);
    let enabled = Memo::new(move |_| endpoint.with(|e| e.enabled));
    let url = move || endpoint.with_untracked(|e| e.url.clone());
    let dialog = RwSignal::new(None::<Dialog>);
    // The dialogs' action, and the buttons' own (test, on / off), kept apart so that one's
    // busy state does not grey out the other.
    let action = Action::new();
    let quick = Action::new().toast_errors(toasts);
    let overlap = RwSignal::new(24 * 3600u64);
    let rotated = RwSignal::new(None::<WebhookSecret>);
    let open = move |d: Dialog| {
        action.error.set(None);
        dialog.set(Some(d));
    };
    let close = Callback::new(move |_| dialog.set(None));

    let send_test = move |()| {
        quick.run(api::test_webhook(session, id), move |_| {
            toasts.success("Test event queued: it shows in the delivery log.");
            on_changed.run(());
        });
    };
    let toggle = move |()| {
        let body = UpdateWebhook {
            enabled: Some(!enabled.get_untracked()),
            ..Default::default()
        };
        let fut = async move { api::update_webhook(session, id, &body).await };
        quick.run(fut, move |e| {
            toasts.success(if e.enabled {
                format!("{} is on: waiting deliveries go out now.", e.url)
            } else {
                format!("{} is off: events for it wait until it is on again.", e.url)
            });
            on_changed.run(());
        });
    };
    let rotate = Callback::new(move |_| {
        let overlap = overlap.get_untracked();
        action.run(
            api::rotate_webhook_secret(session, id, overlap),
            move |secret| {
                dialog.set(None);
                rotated.set(Some(secret));
            },
        );
    });
    let delete = Callback::new(move |_| {
        let gone = url();
        action.run(api::delete_webhook(session, id), move |()| {
            toasts.success(format!("The endpoint {gone} is deleted."));
            dialog.try_set(None);
            on_deleted.run(());
        });
    });

    // On the endpoint's page the test is the main action; in a list row every button is quiet.
    let (main, plain, danger) = if full {
        (
            "button button-small button-primary",
            "button button-small button-secondary",
            "button button-small button-secondary danger-text",
        )
    } else {
        (
            "button button-small button-ghost",
            "button button-small button-ghost",
            "button button-small button-ghost danger-text",
        )
    };
    let words = |w: &'static str| Signal::derive(move || w);
    let buttons = [
        (
            words(if full { "Send test event" } else { "Send test" }),
            "send-test",
            main,
            Callback::new(send_test),
        ),
        (
            words("Edit"),
            "edit-endpoint",
            plain,
            Callback::new(move |()| open(Dialog::Edit)),
        ),
        (
            Signal::derive(move || if enabled.get() { "Turn off" } else { "Turn on" }),
            "toggle-endpoint",
            plain,
            Callback::new(toggle),
        ),
        (
            words("Rotate secret"),
            "rotate-secret",
            plain,
            Callback::new(move |()| open(Dialog::Rotate)),
        ),
        (
            words("Delete"),
            "delete-endpoint",
            danger,
            Callback::new(move |()| open(Dialog::Delete)),
        ),
    ];

    view! {
        <span class="button-row endpoint-actions">
            {buttons.into_iter().map(|(label, test, class, on_click)| view! {
                <button type="button" class=class data-test=test disabled=move || quick.busy.get()
                    on:click=move |_| on_click.run(())>
                    {move || label.get()}
                </button>
            }).collect_view()}
        </span>

        {move || dialog.get().map(|d| match d {
            Dialog::Edit => view! {
                <EndpointForm
                    endpoint=Some(endpoint.get_untracked())
                    on_close=close
                    on_saved=Callback::new(move |_| {
                        dialog.set(None);
                        toasts.success("The endpoint is saved.");
                        on_changed.run(());
                    })
                />
            }.into_any(),
            Dialog::Rotate => view! {
                <ConfirmDialog
                    title="Rotate the signing secret"
                    message=format!("Make a new signing secret for {}? Requests are signed with the new one from now on.", url())
                    confirm_label="Rotate secret"
                    danger=false
                    busy=action.busy
                    error=action.error
                    on_confirm=rotate
                    on_cancel=close
                >
                    <label class="field">
                        <span>"Keep signing with the old secret too for"</span>
                        <select name="overlap" data-test="rotate-overlap" on:change=move |ev| {
                            if let Ok(secs) = event_target_value(&ev).parse() {
                                overlap.set(secs);
                            }
                        }>
                            {OVERLAPS.iter().map(|(secs, label)| view! {
                                <option value=secs.to_string() selected=move || overlap.get() == *secs>{*label}</option>
                            }).collect_view()}
                        </select>
                        <small class="hint">"Meanwhile each request carries both signatures, so your receiver can switch to the new secret without missing one."</small>
                    </label>
                </ConfirmDialog>
            }.into_any(),
            Dialog::Delete => view! {
                <ConfirmDialog
                    title="Delete endpoint"
                    message=format!("Delete the endpoint {}? Nothing more is sent to it, and its delivery log goes with it. This cannot be undone.", url())
                    confirm_label="Delete endpoint"
                    busy=action.busy
                    error=action.error
                    on_confirm=delete
                    on_cancel=close
                />
            }.into_any(),
        })}

        {move || rotated.get().map(|s| {
            let mut secrets = vec![Secret { label: "New signing secret", value: s.secret, test: "webhook-secret", copy_test: "copy-webhook-secret" }];
            let until = s.previous_secret_expires_at.map(|t| format_time(&t));
            if let Some(previous) = s.previous_secret {
                secrets.push(Secret { label: "Previous secret", value: previous, test: "previous-webhook-secret", copy_test: "copy-previous-webhook-secret" });
            }
            let intro = match until {
                Some(until) => format!("Requests carry signatures with both secrets until {until}; then only the new one."),
                None => "The previous secret no longer signs: requests carry only the new signature.".to_owned(),
            };
            view! {
                <SecretReveal
                    title="New signing secret"
                    secrets=secrets
                    intro=intro
                    warning=("Give the new secret to your receiver.", "You can show it again on the endpoint's page.")
                    close_label="Done"
                    on_close=Callback::new(move |_| {
                        rotated.set(None);
                        // Only now: in the list, reading the endpoints again redraws this row.
                        on_changed.run(());
                    })
                />
            }
        })}
    }
}
