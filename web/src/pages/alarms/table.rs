//! The alarm table the alarm list and a device's Alarms tab share: severity, type (and who it is
//! assigned to), device, status, when it started and last changed, and the row buttons
//! (acknowledge, clear) for holders of `alarms.ack`. Rows are keyed on what they show, so that a
//! poll that finds nothing new leaves the table alone.

use std::collections::BTreeSet;

use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::use_navigate;
use stead_api_types::{Alarm, AlarmAction, AlarmSeverity, Permission};
use uuid::Uuid;

use super::actions::AlarmActions;
use super::look::{AlarmStatus, SeverityBadge};
use crate::session::use_session;
use crate::ui::{format_age, format_time, format_time_title, use_clock};

/// Identifies what a row shows.
type RowKey = (Uuid, AlarmSeverity, bool, bool, i64, Option<Uuid>);

fn row_key(a: &Alarm) -> RowKey {
    (
        a.id,
        a.severity,
        a.active,
        a.acknowledged,
        a.updated_at.timestamp_millis(),
        a.assignee_id,
    )
}

#[component]
pub fn AlarmTable(
    #[prop(into)] alarms: Signal<Vec<Alarm>>,
    /// The device column (not on a device's own tab).
    #[prop(optional)]
    show_device: bool,
    /// Checkboxes for a selection (the list's bulk actions).
    #[prop(optional)]
    selected: Option<RwSignal<BTreeSet<Uuid>>>,
) -> impl IntoView {
    let session = use_session();
    let can_ack = Memo::new(move |_| session.can(Permission::AlarmsAck));
    let actions = AlarmActions::new();
    let now = use_clock();
    let page_ids = Memo::new(move |_| alarms.with(|l| l.iter().map(|a| a.id).collect::<Vec<_>>()));
    let check_all = selected.map(|selected| {
        let all = move || {
            let ids = page_ids.get();
            !ids.is_empty() && selected.with(|s| ids.iter().all(|id| s.contains(id)))
        };
        view! {
            <th class="check-col">
                <input type="checkbox" aria-label="Select all on this page" data-test="select-all-alarms"
                    prop:checked=all
                    on:change=move |ev| {
                        let on = event_target_checked(&ev);
                        let ids = page_ids.get_untracked();
                        selected.update(|s| for id in ids {
                            if on { s.insert(id); } else { s.remove(&id); }
                        });
                    }/>
            </th>
        }
    });

    view! {
        <div class="table-scroll">
            <table class="table alarm-table">
                <thead>
                    <tr>
                        {check_all}
                        <th>"Severity"</th>
                        <th>"Alarm"</th>
                        {show_device.then(|| view! { <th>"Device"</th> })}
                        <th>"Status"</th>
                        <th>"Started"</th>
                        <th>"Updated"</th>
                        <th class="actions-col"><span class="sr-only">"Actions"</span></th>
                    </tr>
                </thead>
                <tbody>
                    <For each=move || alarms.get() key=row_key let:alarm>
                        <AlarmRow alarm=alarm show_device=show_device selected=selected can_ack=can_ack actions=actions now=now/>
                    </For>
                </tbody>
            </table>
        </div>
    }
}

#[component]
fn AlarmRow(
    alarm: Alarm,
    show_device: bool,
    selected: Option<RwSignal<BTreeSet<Uuid>>>,
    can_ack: Memo<bool>,
    actions: AlarmActions,
    now: ReadSignal<f64>,
) -> impl IntoView {
    let navigate = use_navigate();
    let id = alarm.id;
    let updated = alarm.updated_at.timestamp_millis();
    let (active, acknowledged) = (alarm.active, alarm.acknowledged);
    let busy = actions.busy();
    let run = move |action: AlarmAction| actions.one(id, action, |_| {});
    let check = selected.map(|selected| {
        view! {
            <td class="check-col" on:click=|ev| ev.stop_propagation()>
                <input type="checkbox" aria-label="Select" data-test="select-alarm"
                    prop:checked=move || selected.with(|s| s.contains(&id))
                    on:change=move |ev| {
                        let on = event_target_checked(&ev);
                        selected.update(|s| { if on { s.insert(id); } else { s.remove(&id); } });
                    }/>
            </td>
        }
    });
    let device_id = alarm.device_id;
    let device = show_device.then(|| {
        view! {
            <td on:click=|ev| ev.stop_propagation()>
                <A href=format!("/devices/{device_id}") attr:data-test="alarm-device">{alarm.device_name.clone()}</A>
            </td>
        }
    });
    view! {
        <tr class="clickable" class:inactive=!active data-test="alarm-row" data-id=id.to_string()
            data-type=alarm.alarm_type.clone() title="Open the alarm"
            on:click=move |_| navigate(&format!("/alarms/{id}"), Default::default())>
            {check}
            <td><SeverityBadge severity=alarm.severity/></td>
            <td>
                <a href=format!("/alarms/{id}") class="strong" data-test="alarm-link" on:click=|ev| ev.prevent_default()>
                    {alarm.alarm_type.clone()}
                </a>
                {alarm.assignee_email.clone().map(|who| view! {
                    <div class="muted small" data-test="alarm-assignee">{format!("Assigned to {who}")}</div>
                })}
            </td>
            {device}
            <td><AlarmStatus active=active acknowledged=acknowledged/></td>
            <td title=format_time_title(&alarm.started_at)>{format_time(&alarm.started_at)}</td>
            <td class="muted" title=format_time_title(&alarm.updated_at)>{move || format_age(updated, now.get())}</td>
            <td class="actions-col" on:click=|ev| ev.stop_propagation()>
                <Show when=move || can_ack.get()>
                    <div class="row-actions">
                        {(!acknowledged).then(|| view! {
                            <button type="button" class="button button-ghost button-small" data-test="ack-alarm"
                                disabled=move || busy.get() on:click=move |_| run(AlarmAction::Acknowledge)>
                                "Acknowledge"
                            </button>
                        })}
                        {active.then(|| view! {
                            <button type="button" class="button button-ghost button-small" data-test="clear-alarm"
                                disabled=move || busy.get() on:click=move |_| run(AlarmAction::Clear)>
                                "Clear"
                            </button>
                        })}
                    </div>
                </Show>
            </td>
        </tr>
    }
}
