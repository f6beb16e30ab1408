//! `/firmware/campaigns/:id` (for `ota.read`; the auto-stop's notification links here): one
//! campaign, read again every few seconds until it is over. Its status and why, the wave, the
//! devices per state (each count filters the table), a chart of the devices per outcome over
//! time (the server's point a minute, and now), the failures with their reasons, the devices
//! with their state filter and each one's steps; what it was made with. Start (`ota.approve`;
//! the server's four-eyes refusal shown), pause and cancel with a reason, resume, delete.

use std::collections::BTreeMap;
use std::time::Duration;

use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::{use_navigate, use_params_map};
use stead_api_types::{
    AggregatePoint, Campaign, CampaignDevice, CampaignProgress, CampaignStatus, OtaState,
    Permission, Rollout, StopAction,
};
use uuid::Uuid;

use super::campaigns::{CampaignStatusBadge, FirmwareTabs, Tally, TallyBar};
use crate::api;
use crate::chart::LineChart;
use crate::pages::alarms::severity_words;
use crate::pages::device::{state_label, state_tone};
use crate::session::{ApiError, use_session};
use crate::shell::{RequirePermission, RequireTenant};
use crate::ui::{
    Action, ConfirmDialog, ErrorMessage, Loader, Pagination, Spinner, StatusBadge, TableHead,
    format_time, format_time_title, non_empty, now, use_toasts,
};

/// How often a campaign that is not over is read again.
const POLL: Duration = Duration::from_millis(2500);
/// The server keeps one progress point a minute.
const MINUTE_MS: i64 = 60_000;

/// The outcomes the chart can show, each the sum of some states.
const SERIES: [(&str, &str); 4] = [
    ("succeeded", "Succeeded"),
    ("in_flight", "In flight"),
    ("failed", "Failed"),
    ("queued", "Waiting"),
];

fn series_value(t: &Tally, series: &str) -> u64 {
    match series {
        "succeeded" => t.succeeded,
        "in_flight" => t.in_flight,
        "failed" => t.failed,
        _ => t.queued,
    }
}

/// The chart's points for `series`: each of the server's minutes, then the counts now, each
/// drawn in the middle of its minute.
fn series_points(
    progress: &[CampaignProgress],
    current: Option<&BTreeMap<OtaState, u64>>,
    now_ms: i64,
    series: &str,
) -> Vec<AggregatePoint> {
    let point = |at: i64, counts: &BTreeMap<OtaState, u64>| AggregatePoint {
        ts: at - MINUTE_MS / 2,
        value: series_value(&Tally::of(counts), series) as f64,
        count: 1,
    };
    let mut points: Vec<AggregatePoint> = progress
        .iter()
        .map(|p| point(p.at.timestamp_millis(), &p.counts))
        .collect();
    if let Some(counts) = current {
        points.push(point(now_ms, counts));
    }
    points
}

#[component]
pub fn CampaignPage() -> impl IntoView {
    view! {
        <RequireTenant>
            <RequirePermission permission=Permission::OtaRead>
                <CampaignDetail/>
            </RequirePermission>
        </RequireTenant>
    }
}

#[component]
fn CampaignDetail() -> impl IntoView {
    let session = use_session();
    let params = use_params_map();
    let id =
        Memo::new(move |_| params.with(|p| p.get("id").and_then(|s| Uuid::parse_str(&s).ok())));
    let campaign = Loader::new(move || {
        let id = id.get();
        async move {
            match id {
                Some(id) => api::get_campaign(session, id).await,
                None => Err(ApiError::unexpected("This is not a campaign's address.")),
            }
        }
    });
    let current = Memo::new(move |_| campaign.data.get());
    let not_found = Memo::new(move |_| {
        id.get().is_none()
            || campaign
                .error
                .with(|e| e.as_ref().is_some_and(|e| e.status == 404))
    });
    // Only a new campaign draws the page anew; each reading updates it in place.
    let loaded_id = Memo::new(move |_| current.with(|c| c.as_ref().map(|c| c.id)));
    let over = move || current.with_untracked(|c| c.as_ref().is_some_and(|c| c.status.is_over()));
    campaign.poll(POLL, move || !over(), || {});

    view! {
        <div class="page" data-test="campaign-page">
            <nav class="breadcrumb" aria-label="Breadcrumb">
                <A href="/firmware/campaigns">"Campaigns"</A>
                {move || current.with(|c| c.as_ref().map(|c| c.spec.name.clone())).map(|n| view! {
                    <span aria-hidden="true">"/"</span>
                    <span>{n}</span>
                })}
            </nav>
            {move || {
                if not_found.get() {
                    view! {
                        <div class="empty-state" data-test="campaign-not-found">
                            <h2>"No such campaign"</h2>
                            <p class="muted">"It may have been deleted, or it belongs to another tenant."</p>
                            <A href="/firmware/campaigns" attr:class="button button-primary">"All campaigns"</A>
                        </div>
                    }.into_any()
                } else if let Some(id) = loaded_id.get() {
                    view! { <Loaded id=id current=current reload=Callback::new(move |_| campaign.reload())/> }.into_any()
                } else {
                    view! {
                        <ErrorMessage error=campaign.error_text()/>
                        <Spinner label="Loading the campaign…"/>
                    }.into_any()
                }
            }}
        </div>
    }
}

#[component]
fn Loaded(id: Uuid, current: Memo<Option<Campaign>>, reload: Callback<()>) -> impl IntoView {
    let session = use_session();
    let toasts = use_toasts();
    let navigate = use_navigate();
    let status = Memo::new(move |_| current.with(|c| c.as_ref().map(|c| c.status)));
    let counts = Memo::new(move |_| {
        current.with(|c| c.as_ref().map(|c| c.counts.clone()).unwrap_or_default())
    });
    let tally = Signal::derive(move || counts.with(Tally::of));
    let name = Memo::new(move |_| {
        current.with(|c| c.as_ref().map(|c| c.spec.name.clone()).unwrap_or_default())
    });
    Effect::new(move |_| crate::ui::set_title(&format!("Campaign {}", name.get())));

    let can_manage = Memo::new(move |_| session.can(Permission::OtaManage));
    let can_approve = Memo::new(move |_| session.can(Permission::OtaApprove));
    let is_author = Memo::new(move |_| {
        let me = session.me().map(|m| m.id);
        current.with(|c| {
            c.as_ref()
                .is_some_and(|c| c.created_by.is_some() && c.created_by == me)
        })
    });
    let four_eyes =
        Memo::new(move |_| current.with(|c| c.as_ref().is_some_and(|c| c.spec.four_eyes)));

    let start = Action::new();
    let resume = Action::new().toast_errors(toasts);
    let steer = Action::new();
    let asking = RwSignal::new(None::<&'static str>);
    let reason = RwSignal::new(String::new());

    let is = move |s: CampaignStatus| status.get() == Some(s);
    let deletable = move || {
        status
            .get()
            .is_some_and(|s| s == CampaignStatus::Draft || s.is_over())
    };
    let do_start = move |_| {
        start.run(api::campaign_action(session, id, "start", None), move |c| {
            toasts.success(format!("“{}” is started.", c.spec.name));
            reload.run(());
        });
    };
    let do_resume = move |_| {
        resume.run(
            api::campaign_action(session, id, "resume", None),
            move |c| {
                toasts.success(format!("“{}” runs again.", c.spec.name));
                reload.run(());
            },
        );
    };
    let ask = move |what: &'static str| {
        steer.error.set(None);
        reason.set(String::new());
        asking.set(Some(what));
    };

    view! {
        <header class="page-header">
            <div>
                <h1 data-test="campaign-title">{move || name.get()}</h1>
                <p class="muted" data-test="campaign-package">
                    {move || current.with(|c| c.as_ref().map(|c| format!(
                        "{} {} · {} · made {}", c.title, c.version, super::kind_label(c.kind), format_time(&c.created_at)
                    )))}
                </p>
            </div>
            <div class="header-status">
                {move || status.get().map(|s| view! { <CampaignStatusBadge status=s/> })}
                {move || current.get().and_then(|c| match &c.spec.rollout {
                    Rollout::Waves { percents } if !c.status.is_over() && c.status != CampaignStatus::Draft => Some(view! {
                        <span class="badge" data-test="campaign-wave" data-wave=c.wave.to_string()>
                            {format!("Wave {} of {} ({} %)", c.wave, percents.len(), percents.get(c.wave.saturating_sub(1) as usize).copied().unwrap_or(100))}
                        </span>
                    }),
                    _ => None,
                })}
            </div>
        </header>
        <FirmwareTabs/>

        {move || current.with(|c| c.as_ref().and_then(|c| c.reason.clone())).map(|r| {
            let stopped = r.starts_with("auto-stop");
            view! {
                <div class="alert" class:alert-warning=stopped class:alert-info=!stopped data-test="campaign-reason">{r}</div>
            }
        })}

        <div class="button-row" data-test="campaign-actions">
            <Show when=move || is(CampaignStatus::Draft) && can_approve.get()>
                <button type="button" class="button button-primary" data-test="start-campaign" disabled=move || start.busy.get() on:click=do_start>
                    {move || if start.busy.get() { "Starting…" } else { "Start" }}
                </button>
            </Show>
            <Show when=move || is(CampaignStatus::Running) && can_manage.get()>
                <button type="button" class="button button-secondary" data-test="pause-campaign" on:click=move |_| ask("pause")>"Pause"</button>
            </Show>
            <Show when=move || is(CampaignStatus::Paused) && can_manage.get()>
                <button type="button" class="button button-primary" data-test="resume-campaign" disabled=move || resume.busy.get() on:click=do_resume>
                    {move || if resume.busy.get() { "Resuming…" } else { "Resume" }}
                </button>
            </Show>
            <Show when=move || (is(CampaignStatus::Running) || is(CampaignStatus::Paused)) && can_manage.get()>
                <button type="button" class="button button-secondary danger-text" data-test="cancel-campaign" on:click=move |_| ask("cancel")>"Cancel campaign"</button>
            </Show>
            <Show when=move || deletable() && can_manage.get()>
                <button type="button" class="button button-ghost danger-text" data-test="delete-campaign" on:click=move |_| ask("delete")>"Delete"</button>
            </Show>
            <Show when=move || is(CampaignStatus::Draft) && four_eyes.get()>
                <span class="muted small" data-test="four-eyes-note">
                    {move || if is_author.get() { "Four eyes: someone other than you starts it." } else { "Four eyes: its author may not start it." }}
                </span>
            </Show>
            <Show when=move || is(CampaignStatus::Draft) && !can_approve.get()>
                <span class="muted small">"Someone who may approve updates starts it."</span>
            </Show>
        </div>
        <div data-test="campaign-action-error"><ErrorMessage error=start.error/></div>

        <section class="card stats-card" aria-label="Devices per state">
            <div class="campaign-summary">
                <TallyBar tally=tally/>
            </div>
            <div class="state-counts" data-test="state-counts">
                {move || {
                    let counts = counts.get();
                    if counts.is_empty() {
                        return view! {
                            <p class="muted small empty-padded" data-test="no-campaign-devices">
                                {if is(CampaignStatus::Draft) { "Its devices are chosen when it starts." } else { "No devices yet: the target is being looked up." }}
                            </p>
                        }.into_any();
                    }
                    OtaState::ALL.into_iter().filter_map(|s| counts.get(&s).map(|n| (s, *n))).map(|(s, n)| view! {
                        <span class=format!("state-count tone-{}", tone_name(s)) data-test="state-count" data-state=s.as_str() data-count=n.to_string()>
                            <span class="state-count-value">{n}</span>
                            <span class="state-count-label">{state_label(s)}</span>
                        </span>
                    }).collect_view().into_any()
                }}
            </div>
        </section>

        // A draft has no devices yet: nothing to chart and nothing failed.
        <Show when=move || !is(CampaignStatus::Draft)>
            <ProgressChart id=id current=current/>
            <Failures id=id counts=counts/>
        </Show>

        <Devices id=id counts=counts/>

        <Settings current=current/>

        {move || asking.get().map(|what| {
            let (title, message, label, danger) = match what {
                "pause" => ("Pause campaign", "No new devices are notified until it is resumed; updates under way go on.", "Pause", false),
                "cancel" => ("Cancel campaign", "Waiting devices are canceled and updates under way withdrawn. This cannot be undone.", "Cancel campaign", true),
                _ => ("Delete campaign", "The campaign and its record of every device are deleted. Devices keep what they run. This cannot be undone.", "Delete campaign", true),
            };
            let navigate = navigate.clone();
            view! {
                <ConfirmDialog title=title message=message confirm_label=label danger=danger busy=steer.busy error=steer.error
                    on_confirm=Callback::new(move |_| {
                        let why = non_empty(&reason.get_untracked());
                        if what == "delete" {
                            let navigate = navigate.clone();
                            steer.run(api::delete_campaign(session, id), move |()| {
                                toasts.success("The campaign is deleted.");
                                asking.set(None);
                                navigate("/firmware/campaigns", Default::default());
                            });
                        } else {
                            steer.run(api::campaign_action(session, id, what, why), move |c| {
                                toasts.success(format!("“{}” is {}.", c.spec.name, if what == "pause" { "paused" } else { "canceled" }));
                                asking.set(None);
                                reload.run(());
                            });
                        }
                    })
                    on_cancel=Callback::new(move |_| asking.set(None))>
                    {(what != "delete").then(|| view! {
                        <label class="field">
                            <span>"Reason " <em class="hint">"(for the record; optional)"</em></span>
                            <input type="text" name="reason" data-test="campaign-action-reason" autocomplete="off"
                                placeholder="Waiting for the night shift" bind:value=reason/>
                        </label>
                    })}
                </ConfirmDialog>
            }
        })}
    }
}

/// The CSS tone of a state's count.
fn tone_name(s: OtaState) -> &'static str {
    match state_tone(s) {
        crate::ui::Tone::Good => "good",
        crate::ui::Tone::Bad => "bad",
        crate::ui::Tone::Warn => "warn",
        crate::ui::Tone::Info => "info",
        crate::ui::Tone::Neutral => "neutral",
    }
}

/// Devices per outcome over time: the server's point a minute, then now.
#[component]
fn ProgressChart(id: Uuid, current: Memo<Option<Campaign>>) -> impl IntoView {
    let session = use_session();
    let series = RwSignal::new("succeeded");
    let progress = Loader::new(move || api::campaign_progress(session, id));
    // A new point comes once a minute; reading every 15 s is enough.
    progress.poll(
        Duration::from_secs(15),
        move || current.with_untracked(|c| c.as_ref().is_some_and(|c| !c.status.is_over())),
        || {},
    );
    let started = Memo::new(move |_| {
        current.with(|c| {
            c.as_ref()
                .map(|c| c.started_at.unwrap_or(c.created_at).timestamp_millis())
        })
    });
    let now_ms = Memo::new(move |_| {
        // Read again with the campaign: "now" is its last reading (or its end).
        current.with(|c| {
            c.as_ref().map(|c| {
                c.finished_at
                    .map_or_else(|| now().timestamp_millis(), |t| t.timestamp_millis())
            })
        })
    });
    let points = Signal::derive(move || {
        let end = now_ms.get().unwrap_or_default();
        progress.data.with(|p| {
            current.with(|c| {
                series_points(
                    p.as_deref().unwrap_or_default(),
                    c.as_ref()
                        .filter(|c| c.status != CampaignStatus::Draft)
                        .map(|c| &c.counts),
                    end,
                    series.get(),
                )
            })
        })
    });
    let domain = Signal::derive(move || {
        let end = now_ms.get().unwrap_or_default();
        let first = progress.data.with(|p| {
            p.as_ref()
                .and_then(|p| p.first().map(|p| p.at.timestamp_millis()))
        });
        let from = first
            .or(started.get())
            .unwrap_or(end)
            .min(end - 5 * MINUTE_MS);
        (from - MINUTE_MS / 2, end + MINUTE_MS / 2)
    });
    let label = move || {
        SERIES
            .iter()
            .find(|(k, _)| *k == series.get())
            .map_or("", |(_, l)| l)
    };
    view! {
        <section class="card chart-card" data-test="progress-chart" data-series=move || series.get()>
            <div class="card-header">
                <h2>"Over time"</h2>
                <div class="segmented" role="group" aria-label="Devices">
                    {SERIES.into_iter().map(|(key, text)| view! {
                        <button type="button" class="segment" data-test=format!("series-{key}")
                            class:segment-active=move || series.get() == key on:click=move |_| series.set(key)>{text}</button>
                    }).collect_view()}
                </div>
            </div>
            <ErrorMessage error=progress.error_text()/>
            {move || {
                let label = format!("Devices {}", label().to_lowercase());
                view! {
                    <figure class="chart">
                        <LineChart points=points lows=Signal::derive(Vec::new) highs=Signal::derive(Vec::new)
                            domain=domain interval_ms=Signal::derive(|| MINUTE_MS) label=label from_zero=true/>
                    </figure>
                }
            }}
            <p class="muted small">"One point a minute while it runs, and the devices now."</p>
        </section>
    }
}

/// The devices that failed or timed out, with the device's or the platform's reason.
#[component]
fn Failures(id: Uuid, counts: Memo<BTreeMap<OtaState, u64>>) -> impl IntoView {
    let session = use_session();
    let bad = Memo::new(move |_| {
        counts.with(|c| {
            c.get(&OtaState::Failed).copied().unwrap_or(0)
                + c.get(&OtaState::TimedOut).copied().unwrap_or(0)
        })
    });
    let failures = Loader::new(move || {
        // Read again whenever the counts change.
        counts.track();
        let wanted = bad.get_untracked() > 0;
        async move {
            if !wanted {
                return Ok(Vec::new());
            }
            let mut all = api::campaign_devices(session, id, Some(OtaState::Failed), 1)
                .await?
                .items;
            all.extend(
                api::campaign_devices(session, id, Some(OtaState::TimedOut), 1)
                    .await?
                    .items,
            );
            all.sort_by_key(|d| std::cmp::Reverse(d.state_at));
            Ok(all)
        }
    });
    view! {
        <section class="card table-card" data-test="campaign-failures">
            <div class="card-header card-header-padded">
                <h2>"Failures"</h2>
                <span class="muted small">{move || match bad.get() { 0 => String::new(), 1 => "1 device".into(), n => format!("{n} devices") }}</span>
            </div>
            <ErrorMessage error=failures.error_text()/>
            {move || {
                let list = failures.data.get().unwrap_or_default();
                if bad.get() == 0 || list.is_empty() {
                    view! { <p class="muted empty-padded" data-test="no-failures">"No device has failed."</p> }.into_any()
                } else {
                    view! {
                        <div class="table-scroll">
                            <table class="table table-compact">
                                <TableHead columns=&["Device", "State", "Reason", "Attempts", "Since"]/>
                                <tbody>
                                    {list.into_iter().map(|d| { let name = d.device_name.clone(); view! {
                                        <tr data-test="failure-row" data-name=d.device_name.clone() data-state=d.state.as_str()>
                                            <td><A href=format!("/devices/{}?tab=firmware", d.device_id)>{name}</A></td>
                                            <td><StateBadge state=d.state/></td>
                                            <td data-test="failure-reason">{d.reason.clone().unwrap_or_default()}</td>
                                            <td>{d.attempts}</td>
                                            <td class="nowrap" title=format_time_title(&d.state_at)>{format_time(&d.state_at)}</td>
                                        </tr>
                                    }}).collect_view()}
                                </tbody>
                            </table>
                        </div>
                    }.into_any()
                }
            }}
        </section>
    }
}

#[component]
fn StateBadge(state: OtaState) -> impl IntoView {
    view! {
        <span data-test="campaign-device-state" data-state=state.as_str()>
            <StatusBadge tone=state_tone(state) text=state_label(state) status=state.as_str()/>
        </span>
    }
}

/// The campaign's devices in rollout order, of one state or all, each with its steps.
#[component]
fn Devices(id: Uuid, counts: Memo<BTreeMap<OtaState, u64>>) -> impl IntoView {
    let session = use_session();
    let state = RwSignal::new(None::<OtaState>);
    let page = RwSignal::new(1u64);
    let open = RwSignal::new(None::<Uuid>);
    let devices = Loader::new(move || {
        counts.track();
        let (state, page) = (state.get(), page.get());
        async move { api::campaign_devices(session, id, state, page).await }
    });
    let total = Signal::derive(move || devices.data.with(|p| p.as_ref().map_or(0, |p| p.total)));
    let row = move |d: CampaignDevice| {
        let device = d.device_id;
        let steps = d.history.clone();
        let name = d.device_name.clone();
        view! {
            <tr data-test="campaign-device-row" data-name=d.device_name.clone() data-state=d.state.as_str()>
                <td><A href=format!("/devices/{device}?tab=firmware") attr:data-test="campaign-device-link">{name}</A></td>
                <td><StateBadge state=d.state/></td>
                <td class="muted small">{d.reason.clone().unwrap_or_default()}</td>
                <td>{d.attempts}</td>
                <td class="nowrap" title=format_time_title(&d.state_at)>{format_time(&d.state_at)}</td>
                <td class="actions-col">
                    <button type="button" class="button button-ghost button-small" data-test="show-steps"
                        aria-expanded=move || (open.get() == Some(device)).to_string()
                        on:click=move |_| open.update(|o| *o = if *o == Some(device) { None } else { Some(device) })>
                        {move || if open.get() == Some(device) { "Hide steps" } else { "Steps" }}
                    </button>
                </td>
            </tr>
            <Show when=move || open.get() == Some(device)>
                <tr class="steps-row">
                    <td colspan="6">
                        <ol class="campaign-steps" data-test="device-steps">
                            {steps.iter().map(|s| view! {
                                <li data-test="device-step" data-state=s.state.as_str()>
                                    <StatusBadge tone=state_tone(s.state) text=state_label(s.state)/>
                                    <span class="muted small" title=format_time_title(&s.at)>{format_time(&s.at)}</span>
                                    {s.reason.clone().map(|r| view! { <span class="small">{r}</span> })}
                                </li>
                            }).collect_view()}
                        </ol>
                    </td>
                </tr>
            </Show>
        }
    };
    view! {
        <section class="card table-card" data-test="campaign-devices">
            <div class="card-header card-header-padded">
                <h2>"Devices"</h2>
                <div class="card-tools">
                    <select name="state" class="select-small" data-test="device-state-filter" aria-label="State"
                        on:change=move |ev| { state.set(OtaState::parse(&event_target_value(&ev))); page.set(1); }>
                        <option value="" selected=move || state.get().is_none()>"Every state"</option>
                        {OtaState::ALL.into_iter().map(|s| view! {
                            <option value=s.as_str() selected=move || state.get() == Some(s)>{state_label(s)}</option>
                        }).collect_view()}
                    </select>
                </div>
            </div>
            <ErrorMessage error=devices.error_text()/>
            {move || match devices.data.get() {
                None if devices.loading.get() => view! { <Spinner label="Loading devices…"/> }.into_any(),
                None => ().into_any(),
                Some(p) if p.items.is_empty() => view! {
                    <p class="muted empty-padded" data-test="no-campaign-device-rows">
                        {if state.get().is_some() { "No device in this state." } else { "No devices in the campaign yet." }}
                    </p>
                }.into_any(),
                Some(p) => view! {
                    <div class="table-scroll">
                        <table class="table table-compact">
                            <TableHead columns=&["Device", "State", "Reason", "Attempts", "Since"] actions=true/>
                            <tbody>{p.items.into_iter().map(row).collect_view()}</tbody>
                        </table>
                    </div>
                }.into_any(),
            }}
            <Show when=move || { total.get() > api::PER_PAGE }>
                <Pagination page=page total=total per_page=api::PER_PAGE noun="devices"/>
            </Show>
        </section>
    }
}

/// What the campaign was made with.
#[component]
fn Settings(current: Memo<Option<Campaign>>) -> impl IntoView {
    let session = use_session();
    let groups = Loader::new(move || api::list_groups(session));
    let profiles = Loader::new(move || api::list_profiles(session));
    let target = move || {
        let Some(c) = current.get() else {
            return String::new();
        };
        let t = &c.spec.target;
        let mut parts = Vec::new();
        if !t.group_ids.is_empty() {
            let names: Vec<String> = groups.data.with(|g| {
                t.group_ids
                    .iter()
                    .map(|id| {
                        g.iter()
                            .flatten()
                            .find(|g| g.id == *id)
                            .map_or_else(|| "a deleted group".to_owned(), |g| g.name.clone())
                    })
                    .collect()
            });
            parts.push(format!("groups {}", names.join(", ")));
        }
        if let Some(p) = t.profile_id {
            let name = profiles
                .data
                .with(|ps| {
                    ps.iter()
                        .flatten()
                        .find(|x| x.id == p)
                        .map(|x| x.name.clone())
                })
                .unwrap_or_else(|| "a deleted profile".to_owned());
            parts.push(format!("profile {name}"));
        }
        if !t.device_ids.is_empty() {
            parts.push(format!("{} devices by name", t.device_ids.len()));
        }
        format!(
            "{} ({})",
            parts.join(" and "),
            if t.dynamic {
                "dynamic"
            } else {
                "those matching at the start"
            }
        )
    };
    view! {
        <section class="card" data-test="campaign-settings">
            <h2 class="section-title">"Settings"</h2>
            {move || current.get().map(|c| {
                let s = c.spec.clone();
                let rollout = match &s.rollout {
                    Rollout::Waves { percents } => format!("Waves of {} %", percents.iter().map(u8::to_string).collect::<Vec<_>>().join(", ")),
                    Rollout::Rate { per_minute, growth, grow_after } => match grow_after {
                        Some(n) => format!("{per_minute} a minute, × {growth} after every {n} successes"),
                        None => format!("{per_minute} a minute"),
                    },
                };
                let gate = s.gate.map_or_else(|| "None".to_owned(), |g| format!("{} % succeeded over at least {} devices", g.min_success_percent, g.min_devices));
                let health = s.health.map_or_else(|| "None".to_owned(), |h| format!(
                    "{} s; {}; at most {} reconnects", h.secs,
                    h.alarm_severity.map_or_else(|| "no alarm check".to_owned(), |a| format!("fails on {} alarms or worse", severity_words(a).to_lowercase())),
                    h.max_reconnects));
                let stop = s.auto_stop.map_or_else(|| "None".to_owned(), |a| format!(
                    "over {} % failed, once {} are done: {}{}", a.max_failure_percent, a.min_devices,
                    if a.action == StopAction::Abort { "abort" } else { "pause" },
                    if a.rollback { ", roll back" } else { "" }));
                let window = s.window.map_or_else(|| "Any time".to_owned(), |w| format!(
                    "{}:00–{}:00 {}{}", w.from_hour, w.to_hour, w.timezone,
                    if w.days.is_empty() { String::new() } else { format!(", days {}", w.days.iter().map(u8::to_string).collect::<Vec<_>>().join(", ")) }));
                view! {
                    <dl class="details">
                        <dt>"Devices"</dt><dd data-test="campaign-target">{target}</dd>
                        <dt>"Rollout"</dt><dd data-test="campaign-rollout">{rollout}</dd>
                        <dt>"At once"</dt><dd>{s.max_in_flight}</dd>
                        <dt>"Gate"</dt><dd>{gate}</dd>
                        <dt>"Health watch"</dt><dd>{health}</dd>
                        <dt>"Auto-stop"</dt><dd>{stop}</dd>
                        <dt>"Retries"</dt><dd>{format!("{} after {} s, doubled each time", s.max_retries, s.retry_backoff_secs)}</dd>
                        <dt>"Start"</dt><dd>{s.start_at.map_or_else(|| "When it is started".to_owned(), |t| format_time(&t))}</dd>
                        <dt>"Window"</dt><dd>{window}</dd>
                        <dt>"Four eyes"</dt><dd data-test="campaign-four-eyes">{if s.four_eyes { "Yes" } else { "No" }}</dd>
                        {c.started_at.map(|t| view! { <dt>"Started"</dt><dd>{format_time(&t)}</dd> })}
                        {c.finished_at.map(|t| view! { <dt>"Finished"</dt><dd>{format_time(&t)}</dd> })}
                    </dl>
                }
            })}
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_adds_now_to_the_servers_minutes() {
        let at = chrono::DateTime::from_timestamp_millis(600_000).unwrap();
        let progress = vec![CampaignProgress {
            at,
            counts: BTreeMap::from([(OtaState::Succeeded, 2), (OtaState::Failed, 1)]),
        }];
        let now = BTreeMap::from([(OtaState::Succeeded, 5)]);
        let p = series_points(&progress, Some(&now), 660_000, "succeeded");
        assert_eq!(
            p.iter().map(|p| (p.ts, p.value)).collect::<Vec<_>>(),
            vec![(570_000, 2.0), (630_000, 5.0)]
        );
        assert_eq!(series_points(&progress, None, 0, "failed")[0].value, 1.0);
    }
}
