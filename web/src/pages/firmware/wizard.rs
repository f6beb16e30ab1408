//! `/firmware/campaigns/new` (for `ota.manage`): a campaign made in one form, section by
//! section: its name and package; the devices (groups, a profile, dynamic or a snapshot) with
//! how many match now, counted again as the choice changes; how fast (waves of cumulative shares,
//! or a rate), the cap on updates in flight; the gate between waves, the health watch, the
//! auto-stop and the retries; when (a start time, a maintenance window); four eyes. Saved as a
//! draft, the server's refusal shown with the field it names, that field marked.

use std::collections::BTreeSet;

use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::use_navigate;
use stead_api_types::{
    AlarmSchedule, AlarmSeverity, AutoStop, CampaignGate, CampaignSpec, CampaignTarget, HealthGate,
    Permission, Rollout, StopAction,
};
use uuid::Uuid;

use super::campaigns::FirmwareTabs;
use super::profile_option;
use crate::api;
use crate::pages::alarms::severity_words;
use crate::session::use_session;
use crate::shell::{RequirePermission, RequireTenant};
use crate::ui::{
    Action, CheckPicker, ErrorMessage, Loader, PageHeader, Refusal, Spinner, from_local_input,
    non_empty, use_toasts,
};

/// The waves a new campaign starts with: a canary, then ever larger shares.
const DEFAULT_WAVES: [u8; 4] = [1, 10, 50, 100];

const DAYS: [(u8, &str); 7] = [
    (1, "Mon"),
    (2, "Tue"),
    (3, "Wed"),
    (4, "Thu"),
    (5, "Fri"),
    (6, "Sat"),
    (7, "Sun"),
];

/// What the server's field is called on the form.
fn field_place(field: &str) -> String {
    let mut parts = field.split('.');
    let first = parts.next().unwrap_or_default();
    let second = parts.next().unwrap_or_default();
    match (first, second) {
        ("name", _) => "Name",
        ("package_id", _) => "Package",
        ("target", _) => "Devices",
        ("rollout", "percents") => "Waves",
        ("rollout", _) => "Rate",
        ("max_in_flight", _) => "At once",
        ("gate", _) => "Gate",
        ("health", _) => "Health watch",
        ("auto_stop", _) => "Auto-stop",
        ("max_retries" | "retry_backoff_secs", _) => "Retries",
        ("start_at", _) => "Start",
        ("window", _) => "Maintenance window",
        _ => return field.to_owned(),
    }
    .to_owned()
}

/// A number typed in a box, or why not.
fn number<T: std::str::FromStr>(text: &str, what: &str) -> Result<T, String> {
    text.trim()
        .parse::<T>()
        .map_err(|_| format!("{what} is a whole number, such as 10."))
}

/// Percentages typed one per box, in order; empty boxes are left out.
fn percents(boxes: &[String]) -> Result<Vec<u8>, String> {
    boxes
        .iter()
        .filter_map(|b| non_empty(b))
        .map(|b| {
            b.trim_end_matches('%')
                .trim()
                .parse::<u8>()
                .map_err(|_| format!("“{b}” is not a share from 1 to 100."))
        })
        .collect()
}

/// The browser's IANA time zone (`Europe/Berlin`), the window's default.
fn browser_time_zone() -> String {
    let format = js_sys::Intl::DateTimeFormat::new(&js_sys::Array::new(), &js_sys::Object::new());
    js_sys::Reflect::get(&format.resolved_options(), &"timeZone".into())
        .ok()
        .and_then(|v| v.as_string())
        .unwrap_or_else(|| "UTC".to_owned())
}

/// A part of the form that is on or off: a checkbox saying what it does, and its fields (the
/// children) while it is on.
#[component]
fn Switched(
    legend: &'static str,
    name: &'static str,
    test: &'static str,
    text: &'static str,
    on: RwSignal<bool>,
    invalid: Signal<bool>,
    children: ChildrenFn,
) -> impl IntoView {
    view! {
        <fieldset class="fieldset" class:field-invalid=move || invalid.get()>
            <legend>{legend}</legend>
            <label class="checkbox">
                <input type="checkbox" name=name data-test=test prop:checked=move || on.get()
                    on:change=move |ev| on.set(event_target_checked(&ev))/>
                <span>{text}</span>
            </label>
            <Show when=move || on.get()>{children()}</Show>
        </fieldset>
    }
}

#[component]
pub fn NewCampaignPage() -> impl IntoView {
    view! {
        <RequireTenant>
            <RequirePermission permission=Permission::OtaManage>
                <Wizard/>
            </RequirePermission>
        </RequireTenant>
    }
}

#[component]
fn Wizard() -> impl IntoView {
    crate::ui::set_title("New campaign");
    let session = use_session();
    let toasts = use_toasts();
    let navigate = use_navigate();
    let packages = Loader::new(move || api::list_packages(session, None));
    let groups = Loader::new(move || api::list_groups(session));
    let profiles = Loader::new(move || api::list_profiles(session));

    let name = RwSignal::new(String::new());
    let package = RwSignal::new(None::<Uuid>);
    let chosen_groups = RwSignal::new(BTreeSet::<Uuid>::new());
    let profile = RwSignal::new(None::<Uuid>);
    let dynamic = RwSignal::new(false);
    let by_rate = RwSignal::new(false);
    let waves = RwSignal::new(DEFAULT_WAVES.map(|w| w.to_string()).to_vec());
    let per_minute = RwSignal::new("10".to_owned());
    let growth = RwSignal::new("1".to_owned());
    let grow_after = RwSignal::new(String::new());
    let max_in_flight = RwSignal::new("50".to_owned());
    let gated = RwSignal::new(true);
    let gate_percent = RwSignal::new("95".to_owned());
    let gate_devices = RwSignal::new("1".to_owned());
    let watched = RwSignal::new(false);
    let health_secs = RwSignal::new("300".to_owned());
    let health_severity = RwSignal::new(Some(AlarmSeverity::Major));
    let max_reconnects = RwSignal::new("2".to_owned());
    let stops = RwSignal::new(true);
    let stop_percent = RwSignal::new("10".to_owned());
    let stop_devices = RwSignal::new("5".to_owned());
    let stop_action = RwSignal::new(StopAction::Pause);
    let rollback = RwSignal::new(false);
    let retries = RwSignal::new("0".to_owned());
    let backoff = RwSignal::new("60".to_owned());
    let start_at = RwSignal::new(String::new());
    let windowed = RwSignal::new(false);
    let timezone = RwSignal::new(browser_time_zone());
    let days = RwSignal::new((1..=5).collect::<BTreeSet<u8>>());
    let from_hour = RwSignal::new("9".to_owned());
    let to_hour = RwSignal::new("17".to_owned());
    let four_eyes = RwSignal::new(true);
    let action = Action::new();

    let target = Memo::new(move |_| CampaignTarget {
        group_ids: chosen_groups.get().into_iter().collect(),
        profile_id: profile.get(),
        device_ids: Vec::new(),
        dynamic: dynamic.get(),
    });
    // Counted again whenever the choice changes; nothing chosen matches nothing.
    let matching = Loader::new(move || {
        let t = target.get();
        async move {
            if t.group_ids.is_empty() && t.profile_id.is_none() {
                return Ok(None);
            }
            api::campaign_target_count(session, &t)
                .await
                .map(|c| Some(c.devices))
        }
    });
    let bad = move |field: &'static str| {
        Signal::derive(move || {
            action.field.with(|f| {
                f.as_deref()
                    .is_some_and(|f| f == field || f.starts_with(&format!("{field}.")))
            })
        })
    };
    let day_offer = Signal::derive(|| {
        DAYS.into_iter()
            .map(|(d, label)| (d, label.to_owned(), d.to_string()))
            .collect::<Vec<_>>()
    });

    let spec = move || -> Result<CampaignSpec, String> {
        let Some(package_id) = package.get_untracked() else {
            return Err("Choose the package to roll out.".into());
        };
        let rollout = if by_rate.get_untracked() {
            Rollout::Rate {
                per_minute: number(&per_minute.get_untracked(), "Devices a minute")?,
                growth: growth
                    .get_untracked()
                    .trim()
                    .parse::<f64>()
                    .map_err(|_| "Growth is a factor, such as 1.5.".to_owned())?,
                grow_after: match non_empty(&grow_after.get_untracked()) {
                    None => None,
                    Some(t) => Some(number(&t, "Grow after")?),
                },
            }
        } else {
            Rollout::Waves {
                percents: percents(&waves.get_untracked())?,
            }
        };
        let gate = if gated.get_untracked() {
            Some(CampaignGate {
                min_success_percent: number(&gate_percent.get_untracked(), "The gate's share")?,
                min_devices: number(&gate_devices.get_untracked(), "The gate's devices")?,
            })
        } else {
            None
        };
        let health = if watched.get_untracked() {
            Some(HealthGate {
                secs: number(&health_secs.get_untracked(), "The health watch")?,
                alarm_severity: health_severity.get_untracked(),
                max_reconnects: number(&max_reconnects.get_untracked(), "Reconnects")?,
            })
        } else {
            None
        };
        let auto_stop = if stops.get_untracked() {
            Some(AutoStop {
                max_failure_percent: number(&stop_percent.get_untracked(), "The failure share")?,
                min_devices: number(&stop_devices.get_untracked(), "The auto-stop's devices")?,
                action: stop_action.get_untracked(),
                rollback: rollback.get_untracked(),
            })
        } else {
            None
        };
        let start_at = match non_empty(&start_at.get_untracked()) {
            None => None,
            Some(t) => Some(from_local_input(&t).ok_or("The start time is not a time.")?),
        };
        let window = if windowed.get_untracked() {
            Some(AlarmSchedule {
                timezone: timezone.get_untracked().trim().to_owned(),
                days: days.get_untracked().into_iter().collect(),
                from_hour: number(&from_hour.get_untracked(), "The window's first hour")?,
                to_hour: number(&to_hour.get_untracked(), "The window's last hour")?,
            })
        } else {
            None
        };
        Ok(CampaignSpec {
            name: name.get_untracked().trim().to_owned(),
            package_id,
            target: target.get_untracked(),
            start_at,
            window,
            rollout,
            max_in_flight: number(&max_in_flight.get_untracked(), "At once")?,
            gate,
            health,
            auto_stop,
            max_retries: number(&retries.get_untracked(), "Retries")?,
            retry_backoff_secs: number(&backoff.get_untracked(), "The backoff")?,
            four_eyes: four_eyes.get_untracked(),
        })
    };
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let spec = match spec() {
            Ok(spec) => spec,
            Err(why) => return action.refuse(why),
        };
        let navigate = navigate.clone();
        action.run(
            async move { api::create_campaign(session, &spec).await },
            move |c| {
                toasts.success(format!("Campaign “{}” is saved as a draft.", c.spec.name));
                navigate(&format!("/firmware/campaigns/{}", c.id), Default::default());
            },
        );
    };

    // Drawn again only when a wave is added or removed, not as one is typed in.
    let wave_count = Memo::new(move |_| waves.with(Vec::len));
    let wave_boxes = move || {
        (0..wave_count.get())
            .map(|i| {
                view! {
                    <span class="wave-box">
                        <input type="number" min="1" max="100" class="wave-input" name="wave" data-test="wave-percent"
                            aria-label=format!("Wave {}", i + 1)
                            prop:value=move || waves.with(|w| w.get(i).cloned().unwrap_or_default())
                            on:input=move |ev| {
                                let v = event_target_value(&ev);
                                waves.update(|w| if let Some(x) = w.get_mut(i) { *x = v; });
                            }/>
                        <span class="muted">"%"</span>
                        <Show when=move || { wave_count.get() > 1 }>
                            <button type="button" class="icon-button" data-test="remove-wave" aria-label=format!("Remove wave {}", i + 1)
                                on:click=move |_| waves.update(|w| { if i < w.len() { w.remove(i); } })>"×"</button>
                        </Show>
                    </span>
                }
            })
            .collect_view()
    };

    view! {
        <div class="page" data-test="campaign-wizard">
            <nav class="breadcrumb" aria-label="Breadcrumb">
                <A href="/firmware/campaigns">"Campaigns"</A>
                <span aria-hidden="true">"/"</span>
                <span>"New campaign"</span>
            </nav>
            <PageHeader title="New campaign" intro="Saved as a draft: someone who may approve updates starts it (with four eyes, not you)."/>
            <FirmwareTabs/>
            <form class="form campaign-form" on:submit=submit novalidate=true data-test="campaign-form">
                <section class="card campaign-section">
                    <h2 class="section-title">"1 · What"</h2>
                    <div class="field-row">
                        <label class="field" class:field-invalid=bad("name")>
                            <span>"Name" <em class="required">"required"</em></span>
                            <input type="text" name="name" autocomplete="off" placeholder="Spring release" bind:value=name/>
                        </label>
                        <label class="field" class:field-invalid=bad("package_id")>
                            <span>"Package" <em class="required">"required"</em></span>
                            <select name="package_id" data-test="campaign-package-select"
                                on:change=move |ev| package.set(Uuid::parse_str(&event_target_value(&ev)).ok())>
                                <option value="" selected=move || package.get().is_none()>"Choose a package"</option>
                                {move || packages.data.get().unwrap_or_default().into_iter().map(|p| {
                                    let id = p.id;
                                    view! {
                                        <option value=id.to_string() selected=move || package.get() == Some(id)>
                                            {format!("{} {} ({})", p.title, p.version, super::kind_label(p.kind).to_lowercase())}
                                        </option>
                                    }
                                }).collect_view()}
                            </select>
                            {move || packages.data.with(|p| p.as_ref().is_some_and(Vec::is_empty)).then(|| view! {
                                <small class="hint" data-test="no-campaign-packages">
                                    "No packages yet: " <A href="/firmware">"upload one"</A> " first."
                                </small>
                            })}
                        </label>
                    </div>
                    <ErrorMessage error=packages.error_text()/>
                </section>

                <section class="card campaign-section" class:field-invalid=bad("target")>
                    <h2 class="section-title">"2 · Which devices"</h2>
                    <p class="muted small">"Members of any chosen group and the devices of the profile, together."</p>
                    {move || match groups.data.get() {
                        None => view! { <Spinner label="Loading groups…"/> }.into_any(),
                        Some(g) if g.is_empty() => view! {
                            <p class="muted" data-test="no-campaign-groups">"No groups yet: " <A href="/groups">"make one"</A> ", or choose a profile."</p>
                        }.into_any(),
                        Some(list) => view! {
                            <fieldset class="fieldset">
                                <legend>"Groups"</legend>
                                <div class="check-list check-list-wide">
                                    {list.into_iter().map(|g| {
                                        let id = g.id;
                                        let devices = match g.device_count { 1 => "1 device".to_owned(), n => format!("{n} devices") };
                                        view! {
                                            <label class="checkbox">
                                                <input type="checkbox" name="group_ids" value=id.to_string() data-test="campaign-group"
                                                    prop:checked=move || chosen_groups.with(|s| s.contains(&id))
                                                    on:change=move |ev| {
                                                        let on = event_target_checked(&ev);
                                                        chosen_groups.update(|s| { if on { s.insert(id); } else { s.remove(&id); } });
                                                    }/>
                                                <span>{g.name} " " <span class="muted small">{devices}</span></span>
                                            </label>
                                        }
                                    }).collect_view()}
                                </div>
                            </fieldset>
                        }.into_any(),
                    }}
                    <div class="field-row">
                        <label class="field">
                            <span>"Profile"</span>
                            <select name="profile_id" data-test="campaign-profile"
                                on:change=move |ev| profile.set(Uuid::parse_str(&event_target_value(&ev)).ok())>
                                <option value="" selected=move || profile.get().is_none()>"No profile"</option>
                                {move || profiles.data.get().unwrap_or_default().into_iter().map(|p| {
                                    let id = p.id;
                                    view! { <option value=id.to_string() selected=move || profile.get() == Some(id)>{profile_option(&p)}</option> }
                                }).collect_view()}
                            </select>
                        </label>
                        <div class="field">
                            <span class="field-label">"Matching now"</span>
                            <div class="target-count" data-test="target-count"
                                data-count=move || matching.data.get().flatten().map(|n| n.to_string()).unwrap_or_default()>
                                {move || match matching.data.get() {
                                    _ if matching.loading.get() && matching.data.with(Option::is_none) => "Counting…".to_owned(),
                                    Some(Some(1)) => "1 device matches".to_owned(),
                                    Some(Some(n)) => format!("{n} devices match"),
                                    _ => "Choose groups or a profile".to_owned(),
                                }}
                            </div>
                            <ErrorMessage error=matching.error_text()/>
                        </div>
                    </div>
                    <label class="checkbox">
                        <input type="checkbox" name="dynamic" data-test="campaign-dynamic" prop:checked=move || dynamic.get()
                            on:change=move |ev| dynamic.set(event_target_checked(&ev))/>
                        <span>"Dynamic " <small class="hint">"(devices that join a group or get the profile later are updated too; otherwise those matching at the start)"</small></span>
                    </label>
                </section>

                <section class="card campaign-section">
                    <h2 class="section-title">"3 · How fast"</h2>
                    <div class="segmented" role="group" aria-label="Rollout">
                        <button type="button" class="segment" data-test="rollout-waves" class:segment-active=move || !by_rate.get()
                            on:click=move |_| by_rate.set(false)>"In waves"</button>
                        <button type="button" class="segment" data-test="rollout-rate" class:segment-active=move || by_rate.get()
                            on:click=move |_| by_rate.set(true)>"At a rate"</button>
                    </div>
                    <Show when=move || !by_rate.get() fallback=move || view! {
                        <div class="field-row field-row-3">
                            <label class="field" class:field-invalid=bad("rollout.per_minute")>
                                <span>"Devices a minute"</span>
                                <input type="number" min="1" name="per_minute" bind:value=per_minute/>
                            </label>
                            <label class="field" class:field-invalid=bad("rollout.growth")>
                                <span>"Growth " <em class="hint">"(factor)"</em></span>
                                <input type="number" min="1" max="10" step="0.1" name="growth" bind:value=growth/>
                            </label>
                            <label class="field" class:field-invalid=bad("rollout.grow_after")>
                                <span>"Grow after " <em class="hint">"(successes)"</em></span>
                                <input type="number" min="1" name="grow_after" placeholder="Never" bind:value=grow_after/>
                            </label>
                        </div>
                    }>
                        <div class="field" class:field-invalid=bad("rollout.percents")>
                            <span class="field-label">"Waves " <em class="hint">"(cumulative shares of the devices; the last is 100)"</em></span>
                            <div class="waves" data-test="waves">
                                {wave_boxes}
                                <button type="button" class="button button-ghost button-small" data-test="add-wave"
                                    disabled=move || { wave_count.get() >= 10 }
                                    on:click=move |_| waves.update(|w| w.push("100".into()))>"+ Wave"</button>
                            </div>
                        </div>
                    </Show>
                    <label class="field field-narrow" class:field-invalid=bad("max_in_flight")>
                        <span>"At once " <em class="hint">"(updates in flight, at most)"</em></span>
                        <input type="number" min="1" max="10000" name="max_in_flight" bind:value=max_in_flight/>
                    </label>
                </section>

                <section class="card campaign-section">
                    <h2 class="section-title">"4 · Safety"</h2>
                    <Switched legend="Gate between waves" name="gate" test="campaign-gate" on=gated invalid=bad("gate")
                            text="Start the next wave only when enough succeeded (otherwise it pauses)">
                            <div class="field-row">
                                <label class="field">
                                    <span>"At least " <em class="hint">"(% succeeded)"</em></span>
                                    <input type="number" min="0" max="100" name="gate_min_success_percent" bind:value=gate_percent/>
                                </label>
                                <label class="field">
                                    <span>"Over at least " <em class="hint">"(devices done)"</em></span>
                                    <input type="number" min="1" name="gate_min_devices" bind:value=gate_devices/>
                                </label>
                            </div>
                    </Switched>
                    <Switched legend="Health watch" name="health" test="campaign-health" on=watched invalid=bad("health")
                            text="After UPDATED, watch each device before it counts as succeeded (online, telemetry again, no alarm, no reboot loop)">
                            <div class="field-row field-row-3">
                                <label class="field">
                                    <span>"For " <em class="hint">"(seconds)"</em></span>
                                    <input type="number" min="1" max="86400" name="health_secs" bind:value=health_secs/>
                                </label>
                                <label class="field">
                                    <span>"Fails on an alarm of"</span>
                                    <select name="health_alarm_severity" on:change=move |ev| health_severity.set(AlarmSeverity::parse(&event_target_value(&ev)))>
                                        <option value="" selected=move || health_severity.get().is_none()>"No alarm check"</option>
                                        {AlarmSeverity::ALL.into_iter().map(|s| view! {
                                            <option value=s.as_str() selected=move || health_severity.get() == Some(s)>{format!("{} or worse", severity_words(s))}</option>
                                        }).collect_view()}
                                    </select>
                                </label>
                                <label class="field">
                                    <span>"Reconnects, at most"</span>
                                    <input type="number" min="0" max="100" name="max_reconnects" bind:value=max_reconnects/>
                                </label>
                            </div>
                    </Switched>
                    <Switched legend="Auto-stop" name="auto_stop" test="campaign-auto-stop" on=stops invalid=bad("auto_stop")
                            text="Stop when too many fail, and tell the author and approver">
                            <div class="field-row field-row-3">
                                <label class="field">
                                    <span>"More than " <em class="hint">"(% failed)"</em></span>
                                    <input type="number" min="0" max="100" name="max_failure_percent" bind:value=stop_percent/>
                                </label>
                                <label class="field">
                                    <span>"Once done " <em class="hint">"(devices)"</em></span>
                                    <input type="number" min="1" name="auto_stop_min_devices" bind:value=stop_devices/>
                                </label>
                                <label class="field">
                                    <span>"Then"</span>
                                    <select name="stop_action" on:change=move |ev| stop_action.set(if event_target_value(&ev) == "abort" { StopAction::Abort } else { StopAction::Pause })>
                                        <option value="pause" selected=move || stop_action.get() == StopAction::Pause>"Pause (a person resumes it)"</option>
                                        <option value="abort" selected=move || stop_action.get() == StopAction::Abort>"Abort"</option>
                                    </select>
                                </label>
                            </div>
                            <label class="checkbox">
                                <input type="checkbox" name="rollback" data-test="campaign-rollback" prop:checked=move || rollback.get()
                                    on:change=move |ev| rollback.set(event_target_checked(&ev))/>
                                <span>"Roll updated devices back to the package they ran before"</span>
                            </label>
                    </Switched>
                    <div class="field-row">
                        <label class="field" class:field-invalid=bad("max_retries")>
                            <span>"Retries " <em class="hint">"(a failed device tried again, 0–10)"</em></span>
                            <input type="number" min="0" max="10" name="max_retries" bind:value=retries/>
                        </label>
                        <label class="field" class:field-invalid=bad("retry_backoff_secs")>
                            <span>"After " <em class="hint">"(seconds, doubled each time)"</em></span>
                            <input type="number" min="1" max="86400" name="retry_backoff_secs" bind:value=backoff/>
                        </label>
                    </div>
                </section>

                <section class="card campaign-section">
                    <h2 class="section-title">"5 · When"</h2>
                    <label class="field field-narrow" class:field-invalid=bad("start_at")>
                        <span>"Not before " <em class="hint">"(empty: when it is started)"</em></span>
                        <input type="datetime-local" name="start_at" bind:value=start_at/>
                    </label>
                    <Switched legend="Maintenance window" name="window" test="campaign-window" on=windowed invalid=bad("window")
                            text="Notify devices only on these days and hours">
                            <div class="field-row field-row-3">
                                <label class="field">
                                    <span>"Time zone"</span>
                                    <input type="text" name="timezone" placeholder="Europe/Berlin" bind:value=timezone/>
                                </label>
                                <label class="field">
                                    <span>"From " <em class="hint">"(hour, 0–23)"</em></span>
                                    <input type="number" min="0" max="23" name="from_hour" bind:value=from_hour/>
                                </label>
                                <label class="field">
                                    <span>"Until " <em class="hint">"(hour, 1–24)"</em></span>
                                    <input type="number" min="1" max="24" name="to_hour" bind:value=to_hour/>
                                </label>
                            </div>
                            <CheckPicker legend="Days" name="days" test="campaign-day" chosen=days offered=day_offer/>
                    </Switched>
                </section>

                <section class="card campaign-section">
                    <h2 class="section-title">"6 · Approval"</h2>
                    <label class="checkbox">
                        <input type="checkbox" name="four_eyes" data-test="campaign-four-eyes" prop:checked=move || four_eyes.get()
                            on:change=move |ev| four_eyes.set(event_target_checked(&ev))/>
                        <span>"Four eyes " <small class="hint">"(someone other than you, with ota.approve, starts it)"</small></span>
                    </label>
                    <Refusal action=action place=field_place/>
                    <div class="form-actions">
                        <A href="/firmware/campaigns" attr:class="button button-secondary">"Cancel"</A>
                        <button type="submit" class="button button-primary" data-test="save-campaign" disabled=move || action.busy.get()>
                            {move || if action.busy.get() { "Saving…" } else { "Save draft" }}
                        </button>
                    </div>
                </section>
            </form>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waves_are_read_from_their_boxes() {
        let boxes = ["1", " 10 ", "", "50%", "100"].map(str::to_owned);
        assert_eq!(percents(&boxes), Ok(vec![1, 10, 50, 100]));
        assert!(percents(&["half".to_owned()]).is_err());
        assert_eq!(field_place("rollout.percents"), "Waves");
        assert_eq!(field_place("target.group_ids"), "Devices");
        assert_eq!(field_place("window.timezone"), "Maintenance window");
    }
}
