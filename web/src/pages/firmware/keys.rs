//! The tenant's signing keys: the Ed25519 public keys an uploaded package's signature is checked
//! against. Listed for `ota.read`; added (a name and the base64 public key) and removed for
//! `ota.manage`. Packages a removed key signed stay as they are.

use leptos::prelude::*;
use stead_api_types::{CreateSigningKey, Permission, SigningKey};

use crate::api;
use crate::session::use_session;
use crate::ui::{
    Action, ConfirmDialog, ErrorMessage, FormActions, Loader, Modal, Refusal, Spinner, TableHead,
    format_time, format_time_title, use_toasts,
};

fn field_label(field: &str) -> String {
    match field {
        "name" => "Name",
        "public_key" => "Public key",
        other => other,
    }
    .to_owned()
}

#[component]
pub fn SigningKeys(keys: Loader<Vec<SigningKey>>) -> impl IntoView {
    let session = use_session();
    let toasts = use_toasts();
    let can_manage = Memo::new(move |_| session.can(Permission::OtaManage));
    let adding = RwSignal::new(false);
    let removing = RwSignal::new(None::<SigningKey>);
    let remove = Action::new();

    view! {
        <section class="card table-card" aria-labelledby="signing-keys-title" data-test="signing-keys">
            <div class="card-header card-header-padded">
                <div>
                    <h2 id="signing-keys-title">"Signing keys"</h2>
                    <p class="muted small">"Ed25519 public keys. A package uploaded with a signature of its SHA-256 by one of them is marked signed."</p>
                </div>
                <Show when=move || can_manage.get()>
                    <button type="button" class="button button-secondary button-small" data-test="add-signing-key"
                        on:click=move |_| adding.set(true)>"+ Add key"</button>
                </Show>
            </div>
            <ErrorMessage error=keys.error_text()/>
            {move || match keys.data.get() {
                None if keys.loading.get() => view! { <Spinner label="Loading keys…"/> }.into_any(),
                None => ().into_any(),
                Some(list) if list.is_empty() => view! {
                    <p class="empty-inline empty-padded muted" data-test="no-signing-keys">"No signing keys: packages are accepted unsigned."</p>
                }.into_any(),
                Some(list) => view! {
                    <table class="table table-compact">
                        <TableHead columns=&["Name", "Public key", "Added"] actions=true/>
                        <tbody>
                            {list.into_iter().map(|k| {
                                let for_remove = k.clone();
                                view! {
                                    <tr data-test="signing-key-row" data-name=k.name.clone()>
                                        <td class="strong">{k.name.clone()}</td>
                                        <td><code class="hash" title=k.public_key.clone()>{k.public_key.clone()}</code></td>
                                        <td class="nowrap" title=format_time_title(&k.created_at)>{format_time(&k.created_at)}</td>
                                        <td class="actions-col">
                                            <Show when=move || can_manage.get()>
                                                {
                                                    let k = for_remove.clone();
                                                    view! {
                                                        <button type="button" class="button button-ghost button-small danger-text" data-test="delete-signing-key"
                                                            on:click=move |_| {
                                                                remove.error.set(None);
                                                                removing.set(Some(k.clone()));
                                                            }>"Remove"</button>
                                                    }
                                                }
                                            </Show>
                                        </td>
                                    </tr>
                                }
                            }).collect_view()}
                        </tbody>
                    </table>
                }.into_any(),
            }}
        </section>

        <Show when=move || adding.get()>
            <AddKeyDialog
                on_close=Callback::new(move |_| adding.set(false))
                on_added=Callback::new(move |k: SigningKey| {
                    adding.set(false);
                    toasts.success(format!("Signing key {} is added.", k.name));
                    keys.reload();
                })
            />
        </Show>

        {move || removing.get().map(|k| {
            let (id, name) = (k.id, k.name.clone());
            view! {
                <ConfirmDialog
                    title="Remove signing key"
                    message=format!("Remove {name}? Packages it signed stay; new uploads can no longer be signed with it.")
                    confirm_label="Remove key"
                    busy=remove.busy
                    error=remove.error
                    on_confirm=Callback::new(move |_| {
                        let name = name.clone();
                        remove.run(api::delete_signing_key(session, id), move |()| {
                            toasts.success(format!("Signing key {name} is removed."));
                            removing.set(None);
                            keys.reload();
                        });
                    })
                    on_cancel=Callback::new(move |_| removing.set(None))
                />
            }
        })}
    }
}

#[component]
fn AddKeyDialog(on_close: Callback<()>, on_added: Callback<SigningKey>) -> impl IntoView {
    let session = use_session();
    let name = RwSignal::new(String::new());
    let public_key = RwSignal::new(String::new());
    let action = Action::new();
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let body = CreateSigningKey {
            name: name.get_untracked().trim().to_owned(),
            public_key: public_key.get_untracked().trim().to_owned(),
        };
        if body.name.is_empty() || body.public_key.is_empty() {
            action.refuse("Give the key a name and paste its public key.");
            return;
        }
        action.run(
            async move { api::create_signing_key(session, &body).await },
            move |k| on_added.run(k),
        );
    };
    view! {
        <Modal title="Add signing key" on_close=on_close>
            <form class="form" on:submit=submit novalidate=true>
                <label class="field" class:field-invalid=move || action.field.with(|f| f.as_deref() == Some("name"))>
                    <span>"Name" <em class="required">"required"</em></span>
                    <input type="text" name="key_name" autocomplete="off" placeholder="release-2026" bind:value=name/>
                </label>
                <label class="field" class:field-invalid=move || action.field.with(|f| f.as_deref() == Some("public_key"))>
                    <span>"Public key" <em class="required">"required"</em></span>
                    <input type="text" name="public_key" class="mono" autocomplete="off" spellcheck="false"
                        placeholder="Base64 of the 32-byte Ed25519 public key" bind:value=public_key/>
                </label>
                <Refusal action=action place=field_label/>
                <FormActions busy=action.busy on_cancel=on_close label="Add key" busy_label="Adding…" test="save-signing-key"/>
            </form>
        </Modal>
    }
}
