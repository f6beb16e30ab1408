//! `/api-keys`: keys for integrations. Create one with a description, the permissions it holds
//! (never more than yours), optional device groups and an expiry; its secret shows once. Every
//! key of the tenant is listed with its last use, and any can be revoked.

use std::collections::BTreeSet;

use leptos::prelude::*;
use leptos::task::spawn_local;
use stead_api_types::{ApiKey, CreateApiKey, Permission};

use crate::api;
use crate::session::use_session;
use crate::shell::{RequirePermission, RequireTenant};
use crate::ui::{
    ConfirmDialog, ErrorMessage, FormActions, HeaderButton, Loader, Modal, PageHeader,
    PermissionBadges, PermissionPicker, Secret, SecretReveal, Spinner, TableHead, format_time,
    format_time_title, use_toasts,
};

#[component]
pub fn ApiKeysPage() -> impl IntoView {
    view! {
        <RequireTenant>
            <RequirePermission permission=Permission::ApiKeysManage>
                <KeyList/>
            </RequirePermission>
        </RequireTenant>
    }
}

#[component]
fn KeyList() -> impl IntoView {
    crate::ui::set_title("API keys");
    let session = use_session();
    let toasts = use_toasts();
    let keys = Loader::new(move || async move { api::list_api_keys(session).await });
    let creating = RwSignal::new(false);
    let revealed = RwSignal::new(None::<String>);
    let revoking = RwSignal::new(None::<ApiKey>);
    let revoke_busy = RwSignal::new(false);

    view! {
        <div class="page">
            <PageHeader title="API keys" intro="How integrations call Stead's REST API: Authorization: Bearer <key>. A key can never do more than the person who made it.">
                <HeaderButton when=Signal::derive(|| true) label="+ New API key" test="new-api-key" on_click=Callback::new(move |_| creating.set(true))/>
            </PageHeader>
            <ErrorMessage error=keys.error_text()/>
            {move || match keys.data.get() {
                None if keys.loading.get() => view! { <div class="card"><Spinner label="Loading keys…"/></div> }.into_any(),
                None => ().into_any(),
                Some(list) if list.is_empty() => view! {
                    <section class="card empty-state" data-test="no-api-keys">
                        <h2>"No API keys yet"</h2>
                        <p class="muted">"Make one for each integration, with only the permissions it needs."</p>
                    </section>
                }.into_any(),
                Some(list) => view! {
                    <section class="card table-card">
                        <table class="table">
                            <TableHead columns=&["Key", "Permissions", "Made by", "Expires", "Last used", "Status"] actions=true/>
                            <tbody>
                                {list.into_iter().map(|k| {
                                    let now = crate::ui::now();
                                    let status = if k.revoked_at.is_some() {
                                        view! { <span class="status status-off">"Revoked"</span> }.into_any()
                                    } else if k.expires_at <= now {
                                        view! { <span class="status status-off">"Expired"</span> }.into_any()
                                    } else {
                                        view! { <span class="status status-ok">"Active"</span> }.into_any()
                                    };
                                    let live = k.revoked_at.is_none() && k.expires_at > now;
                                    let for_revoke = k.clone();
                                    view! {
                                        <tr data-test="api-key-row" class:inactive=!live>
                                            <td class="strong">
                                                {k.description.clone()}
                                                <div><code class="muted" data-test="api-key-prefix">{format!("{}…", k.prefix)}</code></div>
                                            </td>
                                            <td>
                                                <PermissionBadges permissions=k.permissions.clone()/>
                                                {(!k.groups.is_empty()).then(|| view! {
                                                    <div class="muted small">{format!("Only {} device group(s)", k.groups.len())}</div>
                                                })}
                                            </td>
                                            <td>{k.created_by_email.clone()}</td>
                                            <td title=format_time_title(&k.expires_at)>{format_time(&k.expires_at)}</td>
                                            <td>
                                                {match (k.last_used_at, k.last_used_address.clone()) {
                                                    (Some(t), address) => view! {
                                                        <span title=format_time_title(&t)>{format_time(&t)}</span>
                                                        <div class="muted small">{address.unwrap_or_default()}</div>
                                                    }.into_any(),
                                                    (None, _) => view! { <span class="muted">"Never"</span> }.into_any(),
                                                }}
                                            </td>
                                            <td>{status}</td>
                                            <td class="actions-col">
                                                {live.then(|| view! {
                                                    <button type="button" class="button button-ghost button-small danger-text" data-test="revoke-api-key"
                                                        on:click=move |_| revoking.set(Some(for_revoke.clone()))>"Revoke"</button>
                                                })}
                                            </td>
                                        </tr>
                                    }
                                }).collect_view()}
                            </tbody>
                        </table>
                    </section>
                }.into_any(),
            }}

            <Show when=move || creating.get()>
                <CreateKeyModal
                    on_close=Callback::new(move |_| creating.set(false))
                    on_created=Callback::new(move |secret: String| {
                        creating.set(false);
                        revealed.set(Some(secret));
                        keys.reload();
                    })
                />
            </Show>

            {move || revealed.get().map(|secret| view! {
                <SecretReveal
                    title="API key created"
                    secrets=vec![Secret { label: "API key", value: secret, test: "api-key-secret", copy_test: "copy-api-key" }]
                    intro="Send it as Authorization: Bearer <key>."
                    warning=("Store this key now.", "It will not be shown again: Stead keeps only a hash of it. If it is lost, revoke it and make another.")
                    close_label="I have stored the key"
                    on_close=Callback::new(move |_| revealed.set(None))
                />
            })}

            {move || revoking.get().map(|k| {
                let key = k.clone();
                view! {
                    <ConfirmDialog
                        title="Revoke API key"
                        message=format!("Revoke {:?} ({}…)? Integrations using it are refused from their next request, on every node.", k.description, k.prefix)
                        confirm_label="Revoke"
                        busy=revoke_busy
                        on_confirm=Callback::new(move |_| {
                            revoke_busy.set(true);
                            let key = key.clone();
                            spawn_local(async move {
                                match api::revoke_api_key(session, key.id).await {
                                    Ok(()) => {
                                        toasts.success(format!("{} is revoked.", key.description));
                                        keys.reload();
                                    }
                                    Err(e) => toasts.error(e.detail),
                                }
                                revoke_busy.try_set(false);
                                revoking.try_set(None);
                            });
                        })
                        on_cancel=Callback::new(move |_| revoking.set(None))
                    />
                }
            })}
        </div>
    }
}

#[component]
fn CreateKeyModal(on_close: Callback<()>, on_created: Callback<String>) -> impl IntoView {
    let session = use_session();
    let description = RwSignal::new(String::new());
    let days = RwSignal::new(90i64);
    let chosen = RwSignal::new(BTreeSet::from([Permission::DevicesRead]));
    // A key holds at most what its creator holds.
    let offered = Signal::derive(move || {
        session
            .me()
            .map(|m| m.permissions)
            .unwrap_or_default()
            .into_iter()
            .filter(|p| *p != Permission::TenantsManage)
            .collect::<Vec<_>>()
    });
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if busy.get_untracked() {
            return;
        }
        let what = description.get_untracked().trim().to_owned();
        if what.is_empty() {
            error.set(Some("Say what the key is for.".into()));
            return;
        }
        let permissions: Vec<Permission> = chosen.get_untracked().into_iter().collect();
        if permissions.is_empty() {
            error.set(Some("Pick at least one permission.".into()));
            return;
        }
        let body = CreateApiKey {
            description: what,
            permissions,
            groups: Vec::new(),
            expires_at: Some(crate::ui::now() + chrono::Duration::days(days.get_untracked())),
        };
        busy.set(true);
        error.set(None);
        spawn_local(async move {
            match api::create_api_key(session, &body).await {
                Ok(created) => on_created.run(created.secret),
                Err(e) => {
                    error.try_set(Some(e.detail));
                    busy.try_set(false);
                }
            }
        });
    };

    view! {
        <Modal title="New API key" on_close=on_close wide=true>
            <form class="form" on:submit=submit novalidate=true>
                <label class="field">
                    <span>"What it is for" <em class="required">"required"</em></span>
                    <input type="text" name="description" autocomplete="off" autofocus=true bind:value=description/>
                </label>
                <PermissionPicker chosen=chosen offered=offered/>
                <label class="field">
                    <span>"Expires in"</span>
                    <select name="expiry" on:change=move |ev| {
                        if let Ok(d) = event_target_value(&ev).parse::<i64>() {
                            days.set(d);
                        }
                    }>
                        {[(7, "7 days"), (30, "30 days"), (90, "90 days"), (365, "1 year")].into_iter().map(|(d, label)| view! {
                            <option value=d.to_string() selected=move || days.get() == d>{label}</option>
                        }).collect_view()}
                    </select>
                </label>
                <ErrorMessage error=error/>
                <FormActions busy=busy on_cancel=on_close label="Create key" busy_label="Creating…" test="create-api-key"/>
            </form>
        </Modal>
    }
}
