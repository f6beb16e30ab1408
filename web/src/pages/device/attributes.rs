//! The device's attributes by scope: shared and server ones are edited here (add, change,
//! delete), client ones come from the device and are read-only. Each shows its version and
//! when it last changed.

use leptos::prelude::*;
use stead_api_types::{Attribute, AttributeScope, Permission};
use uuid::Uuid;

use crate::api;
use crate::pages::attribute_form::{AttributeDialog, Draft, Values, scope_hint, scope_label};
use crate::session::use_session;
use crate::ui::{
    Action, ConfirmDialog, ErrorMessage, Loader, RefreshButton, Spinner, TableHead, compact_json,
    format_age, format_ms_title, use_toasts,
};

const SCOPES: [AttributeScope; 3] = [
    AttributeScope::Shared,
    AttributeScope::Server,
    AttributeScope::Client,
];

#[component]
pub fn AttributesTab(id: Uuid, now: ReadSignal<f64>) -> impl IntoView {
    let session = use_session();
    let toasts = use_toasts();
    let can_write = Memo::new(move |_| session.can(Permission::DevicesWrite));
    let attributes = Loader::new(move || api::attributes(session, id));
    let editing = RwSignal::new(None::<Draft>);
    let deleting = RwSignal::new(None::<Attribute>);
    let deletion = Action::new();

    let save = move |scope: AttributeScope, values: Values| async move {
        let saved = api::set_attributes(session, id, scope, &values).await?;
        let key = saved.first().map(|a| a.key.clone()).unwrap_or_default();
        Ok(format!("{} attribute “{key}” saved.", scope_label(scope)))
    };
    let confirm_delete = move |_| {
        let Some(attr) = deleting.get_untracked() else {
            return;
        };
        let key = attr.key.clone();
        let fut = async move { api::delete_attribute(session, id, attr.scope, &attr.key).await };
        deletion.run(fut, move |()| {
            toasts.success(format!("Attribute “{key}” deleted."));
            deleting.try_set(None);
            attributes.reload();
        });
    };

    view! {
        <div class="stack">
            <ErrorMessage error=attributes.error_text()/>
            {move || match attributes.data.get() {
                None if attributes.loading.get() => view! { <div class="card"><Spinner label="Loading attributes…"/></div> }.into_any(),
                None => ().into_any(),
                Some(all) => SCOPES.into_iter().map(|scope| {
                    let rows: Vec<Attribute> = all.iter().filter(|a| a.scope == scope).cloned().collect();
                    let writable = scope != AttributeScope::Client;
                    view! {
                        <section class="card" data-test="attribute-scope" data-scope=scope.as_str()>
                            <div class="card-header">
                                <div>
                                    <h2>{format!("{} attributes", scope_label(scope))}</h2>
                                    <p class="muted small">{scope_hint(scope)}</p>
                                </div>
                                <div class="card-tools">
                                    <Show when=move || writable && can_write.get()>
                                        <button type="button" class="button button-secondary button-small"
                                            data-test=format!("add-attribute-{}", scope.as_str())
                                            on:click=move |_| editing.set(Some(Draft::new(scope)))>
                                            "+ Add"
                                        </button>
                                    </Show>
                                    <RefreshButton loader=attributes test="attributes-refresh"/>
                                </div>
                            </div>
                            {if rows.is_empty() {
                                view! {
                                    <div class="empty-inline">
                                        <p class="muted">{format!("No {} attributes.", scope.as_str())}</p>
                                    </div>
                                }.into_any()
                            } else {
                                view! {
                                    <div class="table-scroll">
                                        <table class="table table-compact">
                                            <TableHead columns=&["Key", "Value", "Version", "Updated"] actions=true/>
                                            <tbody>
                                                {rows.into_iter().map(|a| {
                                                    let value = compact_json(&a.value);
                                                    let pretty = serde_json::to_string_pretty(&a.value).unwrap_or_default();
                                                    let ts = a.updated_at;
                                                    let (for_edit, for_delete) = (a.clone(), a.clone());
                                                    view! {
                                                        <tr data-test="attribute-row" data-scope=scope.as_str() data-key=a.key.clone()>
                                                            <td class="strong mono">{a.key.clone()}</td>
                                                            <td><code class="attr-value" data-test="attribute-value" title=value.clone()>{value.clone()}</code></td>
                                                            <td class="muted">{format!("v{}", a.version)}</td>
                                                            <td><time title=format_ms_title(ts)>{move || format_age(ts, now.get())}</time></td>
                                                            <td class="actions-col">
                                                                <Show when=move || writable && can_write.get()>
                                                                    {
                                                                        let (for_edit, for_delete, pretty) = (for_edit.clone(), for_delete.clone(), pretty.clone());
                                                                        view! {
                                                                            <button type="button" class="button button-ghost button-small" data-test="edit-attribute"
                                                                                on:click=move |_| editing.set(Some(Draft {
                                                                                    scope,
                                                                                    key: for_edit.key.clone(),
                                                                                    value: pretty.clone(),
                                                                                    fixed: true,
                                                                                }))>
                                                                                "Edit"
                                                                            </button>
                                                                            <button type="button" class="button button-ghost button-small danger-text" data-test="delete-attribute"
                                                                                on:click=move |_| {
                                                                                    deletion.error.set(None);
                                                                                    deleting.set(Some(for_delete.clone()));
                                                                                }>
                                                                                "Delete"
                                                                            </button>
                                                                        }
                                                                    }
                                                                </Show>
                                                            </td>
                                                        </tr>
                                                    }
                                                }).collect_view()}
                                            </tbody>
                                        </table>
                                    </div>
                                }.into_any()
                            }}
                        </section>
                    }
                }).collect_view().into_any(),
            }}

            {move || editing.get().map(|draft| {
                let title = if draft.fixed { format!("Edit “{}”", draft.key) } else { "New attribute".to_string() };
                view! {
                    <AttributeDialog
                        title=title
                        intro="Shared attributes are pushed to the device when it is connected; server attributes stay on the platform."
                        draft=draft
                        save=save
                        on_close=Callback::new(move |_| editing.set(None))
                        on_done=Callback::new(move |_| {
                            editing.set(None);
                            attributes.reload();
                        })
                    />
                }
            })}

            {move || deleting.get().map(|a| view! {
                <ConfirmDialog
                    title="Delete attribute"
                    message=format!("Delete the {} attribute “{}”?", a.scope.as_str(), a.key)
                    confirm_label="Delete attribute"
                    busy=deletion.busy
                    error=deletion.error
                    on_confirm=Callback::new(confirm_delete)
                    on_cancel=Callback::new(move |_| deleting.set(None))
                />
            })}
        </div>
    }
}
