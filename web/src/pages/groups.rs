//! `/groups`: device groups, named sets of devices to act on together: create, rename, delete,
//! open the device list filtered by a group, and set an attribute on every device of one.

use leptos::prelude::*;
use leptos_router::components::A;
use stead_api_types::{AttributeScope, CreateGroup, DeviceGroup, Permission, UpdateGroup};

use super::attribute_form::{AttributeDialog, Draft, Values};
use crate::api;
use crate::session::use_session;
use crate::shell::RequireTenant;
use crate::ui::{
    Action, ConfirmDialog, ErrorMessage, FormActions, HeaderButton, Loader, Modal, PageHeader,
    Spinner, TableHead, format_ms, non_empty, use_toasts,
};

#[component]
pub fn GroupsPage() -> impl IntoView {
    view! {
        <RequireTenant>
            <GroupList/>
        </RequireTenant>
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Dialog {
    New,
    Rename(DeviceGroup),
    SetAttribute(DeviceGroup),
    Delete(DeviceGroup),
}

#[component]
fn GroupList() -> impl IntoView {
    crate::ui::set_title("Groups");
    let session = use_session();
    let toasts = use_toasts();
    let can_write = Memo::new(move |_| session.can_tenant_wide(Permission::DevicesWrite));
    let groups = Loader::new(move || api::list_groups(session));
    let dialog = RwSignal::new(None::<Dialog>);
    let deletion = Action::new();
    let close = Callback::new(move |_| dialog.set(None));
    let done = Callback::new(move |_| {
        dialog.set(None);
        groups.reload();
    });

    let confirm_delete = move |group: DeviceGroup| {
        deletion.run(api::delete_group(session, group.id), move |()| {
            toasts.success(format!("Group “{}” deleted; its devices stay.", group.name));
            done.run(());
        });
    };

    view! {
        <div class="page">
            <PageHeader title="Groups" intro="Named sets of devices, to find them and act on them together.">
                <HeaderButton when=can_write label="+ New group" test="new-group" on_click=Callback::new(move |_| dialog.set(Some(Dialog::New)))/>
            </PageHeader>

            <ErrorMessage error=groups.error_text()/>

            {move || match groups.data.get() {
                None if groups.loading.get() => view! { <div class="card"><Spinner label="Loading groups…"/></div> }.into_any(),
                None => ().into_any(),
                Some(list) if list.is_empty() => view! {
                    <div class="card empty-state">
                        <div class="empty-icon" aria-hidden="true">"◇"</div>
                        <h2>"No groups yet"</h2>
                        <p class="muted">"Group devices by site, customer or purpose; then filter the device list by group or set an attribute on all of them at once."</p>
                        <Show when=move || can_write.get()>
                            <button type="button" class="button button-primary" on:click=move |_| dialog.set(Some(Dialog::New))>
                                "Create the first group"
                            </button>
                        </Show>
                    </div>
                }.into_any(),
                Some(list) => view! {
                    <div class="card table-card" class:is-loading=move || groups.loading.get()>
                        <table class="table">
                            <TableHead columns=&["Name", "Devices", "Created"] actions=true/>
                            <tbody>
                                {list.into_iter().map(|g| {
                                    let gid = g.id;
                                    let group = StoredValue::new(g.clone());
                                    let open = move |d: fn(DeviceGroup) -> Dialog| dialog.set(Some(d(group.get_value())));
                                    view! {
                                        <tr data-test="group-row">
                                            <td>
                                                <div class="strong">{g.name.clone()}</div>
                                                {g.description.clone().map(|d| view! { <div class="muted small">{d}</div> })}
                                            </td>
                                            <td>
                                                <A href=format!("/devices?group={gid}") attr:class="count-link" attr:data-test="group-devices">
                                                    {format!("{} {} →", g.device_count, if g.device_count == 1 { "device" } else { "devices" })}
                                                </A>
                                            </td>
                                            <td>{format_ms(g.created_at)}</td>
                                            <td class="actions-col">
                                                <Show when=move || can_write.get()>
                                                    <button type="button" class="button button-ghost button-small" data-test="group-set-attribute"
                                                        on:click=move |_| open(Dialog::SetAttribute)>
                                                        "Set attribute"
                                                    </button>
                                                    <button type="button" class="button button-ghost button-small" data-test="rename-group"
                                                        on:click=move |_| open(Dialog::Rename)>
                                                        "Rename"
                                                    </button>
                                                    <button type="button" class="button button-ghost button-small danger-text" data-test="delete-group"
                                                        on:click=move |_| {
                                                            deletion.error.set(None);
                                                            open(Dialog::Delete);
                                                        }>
                                                        "Delete"
                                                    </button>
                                                </Show>
                                            </td>
                                        </tr>
                                    }
                                }).collect_view()}
                            </tbody>
                        </table>
                    </div>
                }.into_any(),
            }}

            {move || dialog.get().map(|d| match d {
                Dialog::New => view! { <GroupForm group=None on_close=close on_saved=done/> }.into_any(),
                Dialog::Rename(g) => view! { <GroupForm group=Some(g) on_close=close on_saved=done/> }.into_any(),
                Dialog::SetAttribute(g) => {
                    let (id, name, count) = (g.id, g.name.clone(), g.device_count);
                    let save = move |scope: AttributeScope, values: Values| {
                        let name = name.clone();
                        async move {
                            let result = api::set_group_attributes(session, id, scope, &values).await?;
                            Ok(format!("Set on {} {} of “{name}”.", result.devices, if result.devices == 1 { "device" } else { "devices" }))
                        }
                    };
                    view! {
                        <AttributeDialog
                            title=format!("Set an attribute on “{}”", g.name)
                            intro=format!("Sets the attribute on each of the group's {count} devices; shared attributes are pushed to those connected.")
                            draft=Draft::new(AttributeScope::Shared)
                            save=save
                            on_close=close
                            on_done=done
                        />
                    }.into_any()
                }
                Dialog::Delete(g) => {
                    let group = g.clone();
                    view! {
                        <ConfirmDialog
                            title="Delete group"
                            message=format!("Delete the group “{}”? Its {} devices are not deleted, only the group.", g.name, g.device_count)
                            confirm_label="Delete group"
                            busy=deletion.busy
                            error=deletion.error
                            on_confirm=Callback::new(move |_| confirm_delete(group.clone()))
                            on_cancel=close
                        />
                    }.into_any()
                }
            })}
        </div>
    }
}

/// Create a group (`group` absent) or rename one.
#[component]
fn GroupForm(
    group: Option<DeviceGroup>,
    on_close: Callback<()>,
    on_saved: Callback<()>,
) -> impl IntoView {
    let session = use_session();
    let toasts = use_toasts();
    let name = RwSignal::new(group.as_ref().map(|g| g.name.clone()).unwrap_or_default());
    let description = RwSignal::new(
        group
            .as_ref()
            .and_then(|g| g.description.clone())
            .unwrap_or_default(),
    );
    let action = Action::new();
    let id = group.as_ref().map(|g| g.id);
    let title = if id.is_some() {
        "Rename group"
    } else {
        "New group"
    };

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let Some(group_name) = non_empty(&name.get_untracked()) else {
            action.refuse("Give the group a name.");
            return;
        };
        let description_value = non_empty(&description.get_untracked());
        let fut = async move {
            match id {
                None => {
                    let body = CreateGroup {
                        name: group_name,
                        description: description_value,
                    };
                    api::create_group(session, &body).await
                }
                Some(id) => {
                    let body = UpdateGroup {
                        name: Some(group_name),
                        description: Some(description_value),
                    };
                    api::update_group(session, id, &body).await
                }
            }
        };
        action.run(fut, move |g| {
            toasts.success(format!("Group “{}” saved.", g.name));
            on_saved.run(());
        });
    };

    view! {
        <Modal title=title on_close=on_close>
            <form class="form" on:submit=submit novalidate=true>
                <label class="field">
                    <span>"Name" <em class="required">"required"</em></span>
                    <input type="text" name="name" autocomplete="off" placeholder="Building A" bind:value=name/>
                </label>
                <label class="field">
                    <span>"Description"</span>
                    <input type="text" name="description" autocomplete="off" bind:value=description/>
                </label>
                <ErrorMessage error=action.error/>
                <FormActions busy=action.busy on_cancel=on_close label="Save group" busy_label="Saving…" test="save-group"/>
            </form>
        </Modal>
    }
}
