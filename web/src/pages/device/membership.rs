//! The groups a device belongs to, as chips: join another group, leave one.

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::components::A;
use stead_api_types::Permission;
use uuid::Uuid;

use crate::api;
use crate::session::use_session;
use crate::ui::{ErrorMessage, Loader, use_toasts};

#[component]
pub fn DeviceGroups(id: Uuid) -> impl IntoView {
    let session = use_session();
    let toasts = use_toasts();
    let can_write = Memo::new(move |_| session.can_tenant_wide(Permission::DevicesWrite));
    let mine = Loader::new(move || api::device_groups(session, id));
    let all = Loader::new(move || api::list_groups(session));
    let busy = RwSignal::new(false);
    // Groups it could join: every group it is not in yet.
    let others = Memo::new(move |_| {
        let mine: Vec<Uuid> = mine
            .data
            .with(|m| m.iter().flatten().map(|g| g.id).collect());
        all.data.with(|a| {
            a.iter()
                .flatten()
                .filter(|g| !mine.contains(&g.id))
                .map(|g| (g.id, g.name.clone()))
                .collect::<Vec<_>>()
        })
    });

    let change = move |group: Uuid, join: bool| {
        busy.set(true);
        spawn_local(async move {
            match api::group_membership(session, group, vec![id], join).await {
                Ok(g) if join => toasts.success(format!("Added to “{}”.", g.name)),
                Ok(g) => toasts.success(format!("Removed from “{}”.", g.name)),
                Err(e) => toasts.error(e.detail),
            }
            mine.reload();
            busy.try_set(false);
        });
    };

    view! {
        <section class="card" data-test="device-groups">
            <h2>"Groups"</h2>
            <ErrorMessage error=mine.error_text()/>
            <div class="chips">
                {move || {
                    let groups = mine.data.get().unwrap_or_default();
                    if groups.is_empty() {
                        view! { <span class="muted">"In no group."</span> }.into_any()
                    } else {
                        groups.into_iter().map(|g| {
                            let gid = g.id;
                            let label = format!("Remove from {}", g.name);
                            view! {
                                <span class="chip" data-test="device-group">
                                    <A href=format!("/devices?group={gid}")>{g.name.clone()}</A>
                                    <Show when=move || can_write.get()>
                                        <button type="button" class="chip-remove" aria-label=label.clone()
                                            disabled=move || busy.get()
                                            on:click=move |_| change(gid, false)>
                                            "×"
                                        </button>
                                    </Show>
                                </span>
                            }
                        }).collect_view().into_any()
                    }
                }}
            </div>
            <Show when=move || can_write.get() && !others.with(|o| o.is_empty())>
                <select class="select-small section-gap" aria-label="Add to group" data-test="join-group"
                    disabled=move || busy.get()
                    on:change=move |ev| {
                        if let Ok(g) = Uuid::parse_str(&event_target_value(&ev)) {
                            change(g, true);
                        }
                    }>
                    <option value="" selected=true>"Add to group…"</option>
                    {move || others.get().into_iter().map(|(gid, name)| view! {
                        <option value=gid.to_string()>{name}</option>
                    }).collect_view()}
                </select>
            </Show>
        </section>
    }
}
