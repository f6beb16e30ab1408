//! The role bindings editor that the Access dialog (Users) and the invitation form share: rows of
//! a role (built-in or custom), each over the whole tenant or over the ticked device groups; and
//! bindings shown as badges.

use std::collections::BTreeSet;

use leptos::prelude::*;
use stead_api_types::{CustomRole, DeviceGroup, NewRoleBinding, Role, RoleBinding, RoleRef};
use uuid::Uuid;

use crate::session::{ApiError, Session};

/// One row per binding: its role and its groups (none: the whole tenant).
pub type BindingRows = RwSignal<Vec<(RoleRef, BTreeSet<Uuid>)>>;

/// The rows as the API takes them.
pub fn new_bindings(rows: BindingRows) -> Vec<NewRoleBinding> {
    rows.get_untracked()
        .into_iter()
        .map(|(role, groups)| NewRoleBinding {
            role,
            groups: groups.into_iter().collect(),
        })
        .collect()
}

/// The rows of bindings a person already holds.
pub fn rows_of(bindings: Vec<RoleBinding>) -> Vec<(RoleRef, BTreeSet<Uuid>)> {
    bindings
        .into_iter()
        .map(|b| (b.role, b.groups.into_iter().collect()))
        .collect()
}

/// The tenant's custom roles and device groups, which the editor offers.
pub async fn load_choices(
    session: Session,
) -> Result<(Vec<CustomRole>, Vec<DeviceGroup>), ApiError> {
    let roles = crate::api::list_roles(session).await?;
    let groups = crate::api::list_groups(session).await?;
    Ok((roles, groups))
}

#[component]
pub fn BindingsEditor(
    rows: BindingRows,
    roles: Vec<CustomRole>,
    groups: Vec<DeviceGroup>,
) -> impl IntoView {
    // Member grants nothing and the platform admin is not a tenant's to give.
    let choices: Vec<(RoleRef, String)> = [Role::TenantAdmin, Role::Operator, Role::Viewer]
        .into_iter()
        .map(|r| (RoleRef::Builtin(r), r.label().to_owned()))
        .chain(roles.into_iter().map(|r| (RoleRef::Custom(r.id), r.name)))
        .collect();
    let first = choices.first().map(|c| c.0);
    view! {
        <div class="bindings" data-test="bindings">
            {move || (0..rows.with(Vec::len)).map(|i| {
                    let choices = choices.clone();
                    let groups = groups.clone();
                    view! {
                        <fieldset class="fieldset" data-test="binding">
                            <legend>{format!("Role {}", i + 1)}</legend>
                            <select data-test="binding-role" aria-label="Role" on:change=move |ev| {
                                let value = event_target_value(&ev);
                                if let Some(r) = role_of(&value) {
                                    rows.update(|v| if let Some(row) = v.get_mut(i) { row.0 = r; });
                                }
                            }>
                                {choices.into_iter().map(|(r, label)| {
                                    let value = role_value(r);
                                    view! {
                                        <option value=value selected=move || rows.with(|v| v.get(i).map(|x| x.0) == Some(r))>{label}</option>
                                    }
                                }).collect_view()}
                            </select>
                            <div class="check-list">
                                {groups.into_iter().map(|g| {
                                    let gid = g.id;
                                    view! {
                                        <label class="checkbox">
                                            <input type="checkbox" data-test="binding-group" value=gid.to_string()
                                                prop:checked=move || rows.with(|v| v.get(i).is_some_and(|x| x.1.contains(&gid)))
                                                on:change=move |ev| {
                                                    let on = event_target_checked(&ev);
                                                    rows.update(|v| if let Some(row) = v.get_mut(i) {
                                                        if on { row.1.insert(gid); } else { row.1.remove(&gid); }
                                                    });
                                                }/>
                                            <span>{g.name}</span>
                                        </label>
                                    }
                                }).collect_view()}
                            </div>
                            <small class="hint">
                                {move || if rows.with(|v| v.get(i).is_some_and(|x| x.1.is_empty())) {
                                    "Over the whole tenant. Tick groups to limit it to their devices."
                                } else {
                                    "Only over the ticked groups' devices."
                                }}
                            </small>
                            <button type="button" class="button button-ghost button-small danger-text" data-test="remove-binding"
                                on:click=move |_| rows.update(|v| { if i < v.len() { v.remove(i); } })>"Remove"</button>
                        </fieldset>
                    }
            }).collect_view()}
            {first.map(|r| view! {
                <button type="button" class="button button-secondary" data-test="add-binding"
                    on:click=move |_| rows.update(|v| v.push((r, BTreeSet::new())))>"+ Add a role"</button>
            })}
        </div>
    }
}

/// Bindings as badges: each role's name and where it applies.
#[component]
pub fn BindingBadges(bindings: Vec<RoleBinding>) -> impl IntoView {
    view! {
        <span class="badge-list">
            {bindings.into_iter().map(|b| {
                let reach = match b.groups.len() {
                    0 => "whole tenant".to_owned(),
                    1 => "1 group".to_owned(),
                    n => format!("{n} groups"),
                };
                view! { <span class="badge badge-info binding-badge" data-test="binding-badge">{format!("{} · {reach}", b.role_name)}</span> }
            }).collect_view()}
        </span>
    }
}

fn role_value(r: RoleRef) -> String {
    match r {
        RoleRef::Builtin(role) => role.as_str().to_owned(),
        RoleRef::Custom(id) => id.to_string(),
    }
}

fn role_of(value: &str) -> Option<RoleRef> {
    Role::parse(value)
        .map(RoleRef::Builtin)
        .or_else(|| value.parse::<Uuid>().ok().map(RoleRef::Custom))
}
