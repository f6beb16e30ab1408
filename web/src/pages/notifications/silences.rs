//! Silences: notifications about a device, a group's devices or an alarm type held back until a
//! time (the alarms are still recorded, and shown as silenced). Listed with their ends, made in a
//! dialog, ended early with a confirmation.

use leptos::prelude::*;
use stead_api_types::{CreateSilence, DeviceListQuery, Silence};
use uuid::Uuid;

use crate::api;
use crate::session::use_session;
use crate::ui::{
    Action, ConfirmDialog, FormActions, HeaderButton, Loader, Modal, Refusal, Spinner, TableHead,
    format_time, format_time_title, from_local_input, non_empty, now, to_local_input, use_toasts,
};

/// Quick choices of how long, in hours.
const FOR_HOURS: [i64; 4] = [1, 4, 24, 168];

fn field_place(field: &str) -> String {
    match field {
        "device_id" => "Device",
        "group_id" => "Group",
        "alarm_type" => "Alarm type",
        "ends_at" | "starts_at" => "Until",
        "reason" => "Reason",
        other => return other.to_owned(),
    }
    .to_owned()
}

/// "1 h", "1 day", "1 week".
fn hours_words(h: i64) -> String {
    match h {
        168 => "1 week".to_owned(),
        24 => "1 day".to_owned(),
        h => format!("{h} h"),
    }
}

#[component]
pub fn Silences() -> impl IntoView {
    let session = use_session();
    let toasts = use_toasts();
    let silences = Loader::new(move || api::silences(session));
    let groups = Loader::new(move || api::list_groups(session));
    let group_name = move |id: Uuid| {
        groups.data.with(|g| {
            g.as_ref()
                .and_then(|g| g.iter().find(|g| g.id == id).map(|g| g.name.clone()))
                .unwrap_or_else(|| "a group".into())
        })
    };
    let creating = RwSignal::new(false);
    let ending = RwSignal::new(None::<Silence>);
    let end = Action::new();
    let confirm_end = move |_| {
        let Some(s) = ending.get_untracked() else {
            return;
        };
        end.run(api::end_silence(session, s.id), move |()| {
            toasts.success("Silence ended: notifications go out again.");
            ending.set(None);
            silences.reload();
        });
    };

    view! {
        <section class="card table-card" aria-labelledby="silences-title">
            <div class="card-header card-header-padded">
                <div>
                    <h2 id="silences-title">"Silences"</h2>
                    <p class="muted small">"Hold notifications back during maintenance. Alarms are still raised and recorded, and show as silenced."</p>
                </div>
                <HeaderButton when=Signal::derive(|| true) label="New silence" test="new-silence"
                    on_click=Callback::new(move |()| creating.set(true))/>
            </div>
            <crate::ui::ErrorMessage error=silences.error_text()/>
            {move || match silences.data.get() {
                None => view! { <Spinner label="Loading silences…"/> }.into_any(),
                Some(list) if list.is_empty() => view! {
                    <p class="empty-inline muted empty-padded" data-test="no-silences">"Nothing is silenced."</p>
                }.into_any(),
                Some(list) => {
                    let now = now();
                    view! {
                        <table class="table">
                            <TableHead columns=&["What", "From", "Until", "Reason"] actions=true/>
                            <tbody>
                                {list.into_iter().map(|s| {
                                    let mut what = Vec::new();
                                    if let Some(d) = s.device_id {
                                        what.push(view! { <span>"device " <DeviceName id=d/></span> }.into_any());
                                    }
                                    if let Some(g) = s.group_id {
                                        what.push(view! { <span data-test="silence-group">{format!("group {}", group_name(g))}</span> }.into_any());
                                    }
                                    if let Some(t) = s.alarm_type.clone() {
                                        what.push(view! { <span>"type " <code data-test="silence-type">{t}</code></span> }.into_any());
                                    }
                                    let pending = s.starts_at > now;
                                    let item = s.clone();
                                    view! {
                                        <tr data-test="silence-row" data-id=s.id.to_string()>
                                            <td class="badge-list">{what}</td>
                                            <td title=format_time_title(&s.starts_at)>
                                                {if pending { format_time(&s.starts_at) } else { "Now".to_owned() }}
                                            </td>
                                            <td data-test="silence-ends" title=format_time_title(&s.ends_at)>{format_time(&s.ends_at)}</td>
                                            <td class="muted" data-test="silence-reason">{s.reason.clone().unwrap_or_else(|| "—".into())}</td>
                                            <td class="row-actions">
                                                <button type="button" class="button button-ghost button-small" data-test="end-silence"
                                                    on:click=move |_| { end.error.set(None); ending.set(Some(item.clone())) }>"End now"</button>
                                            </td>
                                        </tr>
                                    }
                                }).collect_view()}
                            </tbody>
                        </table>
                    }.into_any()
                }
            }}
        </section>
        <Show when=move || creating.get()>
            <SilenceDialog groups=Signal::derive(move || groups.data.get().unwrap_or_default().into_iter().map(|g| (g.id, g.name)).collect())
                on_close=Callback::new(move |()| creating.set(false))
                on_saved=Callback::new(move |()| { creating.set(false); silences.reload(); })/>
        </Show>
        {move || ending.get().map(|_| view! {
            <ConfirmDialog title="End silence" message="End this silence now? Notifications it holds back go out again from the next change."
                confirm_label="End now" danger=false busy=end.busy error=end.error
                on_confirm=Callback::new(confirm_end)
                on_cancel=Callback::new(move |()| ending.set(None))/>
        })}
    }
}

/// A device's name, linked to its page (read once).
#[component]
fn DeviceName(id: Uuid) -> impl IntoView {
    let session = use_session();
    let device = Loader::new(move || api::get_device(session, id));
    view! {
        <leptos_router::components::A href=format!("/devices/{id}") attr:data-test="silence-device">
            {move || device.data.with(|d| d.as_ref().map_or_else(|| "…".to_owned(), |d| d.name.clone()))}
        </leptos_router::components::A>
    }
}

#[component]
fn SilenceDialog(
    groups: Signal<Vec<(Uuid, String)>>,
    on_close: Callback<()>,
    on_saved: Callback<()>,
) -> impl IntoView {
    let session = use_session();
    let toasts = use_toasts();
    let device = RwSignal::new(String::new());
    let group = RwSignal::new(None::<Uuid>);
    let alarm_type = RwSignal::new(String::new());
    let until = RwSignal::new(to_local_input(now().timestamp_millis() + 3_600_000));
    let reason = RwSignal::new(String::new());
    // Devices whose name matches what is typed, for the suggestions and to find the one meant.
    let matches = Loader::new(move || {
        let search = device.get();
        async move {
            let q = DeviceListQuery {
                search: non_empty(&search),
                ..Default::default()
            };
            api::list_devices(session, &q).await.map(|p| p.items)
        }
    });
    let action = Action::new();
    let bad = move |field: &'static str| {
        Signal::derive(move || action.field.with(|f| f.as_deref() == Some(field)))
    };

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let device_id = match non_empty(&device.get_untracked()) {
            None => None,
            Some(name) => {
                let found = matches.data.with_untracked(|m| {
                    m.as_ref()
                        .and_then(|m| m.iter().find(|d| d.name == name).map(|d| d.id))
                });
                match found {
                    Some(id) => Some(id),
                    None => return action.refuse(format!("There is no device named “{name}”.")),
                }
            }
        };
        let Some(ends_at) = from_local_input(&until.get_untracked()) else {
            return action.refuse("Say until when.");
        };
        let body = CreateSilence {
            device_id,
            group_id: group.get_untracked(),
            alarm_type: non_empty(&alarm_type.get_untracked()),
            starts_at: None,
            ends_at,
            reason: non_empty(&reason.get_untracked()),
        };
        let fut = async move { api::create_silence(session, &body).await };
        action.run(fut, move |_| {
            toasts.success("Silence set.");
            on_saved.run(());
        });
    };

    view! {
        <Modal title="New silence" on_close=on_close>
            <form class="form" on:submit=submit novalidate=true data-test="silence-form">
                <p class="modal-text">"Silence a device, a group's devices or an alarm type; name several to narrow it (this device's overheat alarms, say)."</p>
                <label class="field" class:field-invalid=bad("device_id")>
                    <span>"Device"</span>
                    <input type="text" name="device" list="silence-devices" autocomplete="off" placeholder="Any device" bind:value=device/>
                    <datalist id="silence-devices">
                        {move || matches.data.get().unwrap_or_default().into_iter().map(|d| view! { <option value=d.name></option> }).collect_view()}
                    </datalist>
                </label>
                <div class="field-row">
                    <label class="field" class:field-invalid=bad("group_id")>
                        <span>"Group"</span>
                        <select name="group" data-test="silence-group-select" on:change=move |ev| group.set(Uuid::parse_str(&event_target_value(&ev)).ok())>
                            <option value="">"Any group"</option>
                            {move || groups.get().into_iter().map(|(id, name)| view! { <option value=id.to_string()>{name}</option> }).collect_view()}
                        </select>
                    </label>
                    <label class="field" class:field-invalid=bad("alarm_type")>
                        <span>"Alarm type"</span>
                        <input type="text" name="alarm_type" autocomplete="off" placeholder="Any type" bind:value=alarm_type/>
                    </label>
                </div>
                <label class="field" class:field-invalid=bad("ends_at")>
                    <span>"Until" <em class="required">"required"</em></span>
                    <input type="datetime-local" name="ends_at" bind:value=until/>
                    <span class="button-row">
                        {FOR_HOURS.into_iter().map(|h| view! {
                            <button type="button" class="button button-ghost button-small" data-test=format!("silence-for-{h}")
                                on:click=move |_| until.set(to_local_input(now().timestamp_millis() + h * 3_600_000))>
                                {format!("For {}", hours_words(h))}
                            </button>
                        }).collect_view()}
                    </span>
                </label>
                <label class="field" class:field-invalid=bad("reason")>
                    <span>"Reason"</span>
                    <input type="text" name="reason" autocomplete="off" placeholder="Boiler maintenance" bind:value=reason/>
                </label>
                <Refusal action=action place=field_place/>
                <FormActions busy=action.busy on_cancel=on_close label="Silence" busy_label="Saving…" test="save-silence"/>
            </form>
        </Modal>
    }
}
