//! The device's Firmware tab (for `ota.read`): per kind (firmware, software), what the device
//! reports it runs, its target package and where the update stands (the steps from notified to
//! updated, or why it failed), read again every few seconds; for `ota.manage`, a package of that
//! kind (and of the device's profile, or of any) given as its target, and the target withdrawn.

use std::time::Duration;

use leptos::prelude::*;
use stead_api_types::{
    AssignPackage, ChecksumAlgorithm, Device, DeviceOtaTarget, LatestTelemetry, OtaState, Package,
    PackageKind, Permission,
};
use uuid::Uuid;

use crate::api;
use crate::pages::firmware::kind_label;
use crate::session::use_session;
use crate::ui::{
    Action, ConfirmDialog, ErrorMessage, Loader, Spinner, StatusBadge, Tone, format_bytes,
    format_time, format_time_title, use_toasts,
};

const POLL: Duration = Duration::from_secs(3);

/// The steps of an update that goes well, in order.
const STEPS: [OtaState; 6] = [
    OtaState::Notified,
    OtaState::Downloading,
    OtaState::Downloaded,
    OtaState::Verified,
    OtaState::Updating,
    OtaState::Updated,
];

pub fn state_label(state: OtaState) -> &'static str {
    match state {
        OtaState::Queued => "Queued",
        OtaState::Notified => "Notified",
        OtaState::Downloading => "Downloading",
        OtaState::Downloaded => "Downloaded",
        OtaState::Verified => "Verified",
        OtaState::Updating => "Updating",
        OtaState::Updated => "Updated",
        OtaState::VerifyingHealth => "Verifying health",
        OtaState::Succeeded => "Succeeded",
        OtaState::Failed => "Failed",
        OtaState::TimedOut => "Timed out",
        OtaState::Canceled => "Canceled",
        OtaState::Skipped => "Already running it",
        OtaState::RolledBack => "Rolled back",
    }
}

pub fn state_tone(state: OtaState) -> Tone {
    match state {
        OtaState::Updated | OtaState::Succeeded | OtaState::Skipped => Tone::Good,
        OtaState::Failed | OtaState::TimedOut | OtaState::RolledBack => Tone::Bad,
        OtaState::Canceled => Tone::Neutral,
        OtaState::Queued | OtaState::Notified => Tone::Info,
        _ => Tone::Warn,
    }
}

/// What the device last reported running of `kind` (`current_fw_title` and
/// `current_fw_version`), and when.
fn reported(latest: &LatestTelemetry, kind: PackageKind) -> Option<(String, String, i64)> {
    let x = kind.prefix();
    let text = |key: String| {
        latest.get(&key).map(|v| {
            let s = v
                .value
                .as_str()
                .map_or_else(|| v.value.to_string(), str::to_owned);
            (s, v.ts)
        })
    };
    let (title, _) = text(format!("current_{x}_title"))?;
    let (version, ts) = text(format!("current_{x}_version"))?;
    Some((title, version, ts))
}

#[component]
pub fn FirmwareTab(id: Uuid, device: RwSignal<Option<Device>>) -> impl IntoView {
    let session = use_session();
    let can_manage = Memo::new(move |_| session.can(Permission::OtaManage));
    let targets = Loader::new(move || api::device_ota(session, id));
    targets.poll(POLL, || true, || {});
    let latest = Loader::new(move || api::latest_telemetry(session, id));
    latest.poll(POLL, || true, || {});
    // Only who may assign needs the library.
    let packages = Loader::new(move || {
        let wanted = can_manage.get();
        async move {
            if wanted {
                api::list_packages(session, None).await
            } else {
                Ok(Vec::new())
            }
        }
    });
    let profile = Memo::new(move |_| device.with(|d| d.as_ref().map(|d| d.profile_id)));
    let loaded = Memo::new(move |_| targets.data.with(Option::is_some));

    view! {
        <div class="stack" data-test="device-firmware">
            <ErrorMessage error=targets.error_text()/>
            {move || if loaded.get() {
                view! {
                    <div class="grid">
                        {[PackageKind::Firmware, PackageKind::Software].into_iter().map(|kind| {
                            let target = Memo::new(move |_| targets.data.with(|t| {
                                t.iter().flatten().find(|t| t.kind == kind).cloned()
                            }));
                            let running = Memo::new(move |_| latest.data.with(|l| l.as_ref().and_then(|l| reported(l, kind))));
                            let offered = Memo::new(move |_| packages.data.with(|p| {
                                p.iter()
                                    .flatten()
                                    .filter(|p| p.kind == kind)
                                    .filter(|p| p.profile_id.is_none() || p.profile_id == profile.get())
                                    .cloned()
                                    .collect::<Vec<_>>()
                            }));
                            view! {
                                <KindCard id=id kind=kind target=target running=running offered=offered
                                    can_manage=can_manage on_change=Callback::new(move |_| targets.reload())/>
                            }
                        }).collect_view()}
                    </div>
                }.into_any()
            } else if targets.loading.get() {
                view! { <div class="card"><Spinner label="Loading updates…"/></div> }.into_any()
            } else {
                ().into_any()
            }}
        </div>
    }
}

/// One kind's card: reported, target with its steps, and the controls.
#[component]
fn KindCard(
    id: Uuid,
    kind: PackageKind,
    target: Memo<Option<DeviceOtaTarget>>,
    running: Memo<Option<(String, String, i64)>>,
    offered: Memo<Vec<Package>>,
    can_manage: Memo<bool>,
    on_change: Callback<()>,
) -> impl IntoView {
    let session = use_session();
    let toasts = use_toasts();
    let chosen = RwSignal::new(None::<Uuid>);
    let algorithm = RwSignal::new(ChecksumAlgorithm::Sha256);
    let assign = Action::new();
    let withdraw = Action::new();
    let confirming = RwSignal::new(false);
    let label = kind_label(kind);

    // The first offered package until one is picked (or the list changes under the pick).
    let picked = Memo::new(move |_| {
        offered.with(|list| {
            chosen
                .get()
                .filter(|c| list.iter().any(|p| p.id == *c))
                .or_else(|| list.first().map(|p| p.id))
        })
    });
    let give = move |_| {
        let Some(package_id) = picked.get_untracked() else {
            assign.refuse(format!("Upload a {} package first.", label.to_lowercase()));
            return;
        };
        let body = AssignPackage {
            package_id,
            checksum_algorithm: Some(algorithm.get_untracked()),
        };
        assign.run(
            async move { api::assign_package(session, id, kind, &body).await },
            move |t| {
                toasts.success(format!(
                    "{} {} is the device's {} target.",
                    t.title,
                    t.version,
                    label.to_lowercase()
                ));
                on_change.run(());
            },
        );
    };

    view! {
        <section class="card" data-test="ota-kind" data-kind=kind.as_str() aria-label=label>
            <h2>{label}</h2>
            <dl class="details">
                <dt>"Reports running"</dt>
                <dd data-test="ota-current">
                    {move || match running.get() {
                        Some((title, version, ts)) => view! {
                            <span class="strong">{title}</span> " " <code>{version}</code>
                            <span class="muted small" title=crate::ui::format_ms_title(ts)>{format!(" · {}", crate::ui::format_ms(ts))}</span>
                        }.into_any(),
                        None => view! { <span class="muted">"Nothing reported yet"</span> }.into_any(),
                    }}
                </dd>
                <dt>"Target"</dt>
                <dd data-test="ota-target">
                    {move || match target.get() {
                        Some(t) => view! {
                            <span class="strong" data-test="ota-target-title">{t.title.clone()}</span> " "
                            <code data-test="ota-target-version">{t.version.clone()}</code> " "
                            <span data-test="ota-state" data-state=t.state.as_str()>
                                <StatusBadge tone=state_tone(t.state) text=state_label(t.state) status=t.state.as_str()/>
                            </span>
                        }.into_any(),
                        None => view! { <span class="muted" data-test="no-ota-target">"None: the device is not asked to update"</span> }.into_any(),
                    }}
                </dd>
            </dl>
            {move || target.get().map(|t| view! { <TargetDetail target=t/> })}

            <Show when=move || can_manage.get()>
                <div class="ota-assign">
                    {move || if offered.with(Vec::is_empty) {
                        view! {
                            <p class="muted small" data-test="no-offered-packages">
                                {format!("No {} package for this device's profile yet: upload one on the ", label.to_lowercase())}
                                <leptos_router::components::A href="/firmware">"Firmware"</leptos_router::components::A>
                                " page."
                            </p>
                        }.into_any()
                    } else {
                        view! {
                            <div class="field-row">
                                <label class="field">
                                    <span>"Package"</span>
                                    <select name="package" data-test="assign-package-select" on:change=move |ev| chosen.set(Uuid::parse_str(&event_target_value(&ev)).ok())>
                                        {move || offered.get().into_iter().map(|p| view! {
                                            <option value=p.id.to_string() selected=move || picked.get() == Some(p.id)>
                                                {format!("{} {} ({})", p.title, p.version, format_bytes(p.size))}
                                            </option>
                                        }).collect_view()}
                                    </select>
                                </label>
                                <label class="field field-narrow">
                                    <span>"Checksum"</span>
                                    <select name="checksum_algorithm" on:change=move |ev| {
                                        if let Some(a) = ChecksumAlgorithm::parse(&event_target_value(&ev)) {
                                            algorithm.set(a);
                                        }
                                    }>
                                        {ChecksumAlgorithm::ALL.into_iter().map(|a| view! {
                                            <option value=a.as_str() selected=move || algorithm.get() == a>{a.as_str()}</option>
                                        }).collect_view()}
                                    </select>
                                </label>
                            </div>
                        }.into_any()
                    }}
                    <ErrorMessage error=assign.error/>
                    <div class="form-actions gap">
                        <Show when=move || !offered.with(Vec::is_empty)>
                            <button type="button" class="button button-primary" data-test="assign-package"
                                disabled=move || assign.busy.get() on:click=give>
                                {move || match (assign.busy.get(), target.with(Option::is_some)) {
                                    (true, _) => "Assigning…",
                                    (false, true) => "Replace target",
                                    (false, false) => "Assign package",
                                }}
                            </button>
                        </Show>
                        <Show when=move || target.with(Option::is_some)>
                            <button type="button" class="button button-secondary" data-test="withdraw-package"
                                on:click=move |_| {
                                    withdraw.error.set(None);
                                    confirming.set(true);
                                }>"Withdraw target"</button>
                        </Show>
                    </div>
                </div>
            </Show>

            {move || confirming.get().then(|| view! {
                <ConfirmDialog
                    title=format!("Withdraw {} target", label.to_lowercase())
                    message="The device is no longer asked to update (its target's shared attributes are removed). An update already under way on the device is not stopped by this."
                    confirm_label="Withdraw"
                    busy=withdraw.busy
                    error=withdraw.error
                    on_confirm=Callback::new(move |_| {
                        withdraw.run(api::unassign_package(session, id, kind), move |()| {
                            toasts.success(format!("The {} target is withdrawn.", label.to_lowercase()));
                            confirming.set(false);
                            on_change.run(());
                        });
                    })
                    on_cancel=Callback::new(move |_| confirming.set(false))
                />
            })}
        </section>
    }
}

/// Where the update stands: the steps done, why it failed, since when.
#[component]
fn TargetDetail(target: DeviceOtaTarget) -> impl IntoView {
    let reached = STEPS.iter().position(|s| *s == target.state);
    let failed = matches!(
        target.state,
        OtaState::Failed | OtaState::TimedOut | OtaState::RolledBack
    );
    // A failed update says why below; its steps would only show how far it did not get.
    let steps =
        (!failed && !matches!(target.state, OtaState::Skipped | OtaState::Canceled)).then(|| {
            STEPS
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let done = reached.is_some_and(|r| i <= r) || target.state == OtaState::Succeeded;
                let current = reached == Some(i);
                view! {
                    <li class="ota-step" class:ota-step-done=done class:ota-step-current=current>
                        {state_label(*s)}
                    </li>
                }
            })
            .collect_view()
        });
    view! {
        {steps.map(|s| view! { <ol class="ota-steps" aria-label="Steps">{s}</ol> })}
        {target.reason.clone().map(|why| view! {
            <div class="alert alert-error" role="note" data-test="ota-reason">{why}</div>
        })}
        <dl class="details details-compact">
            <dt>"Since"</dt>
            <dd title=format_time_title(&target.state_at)>{format_time(&target.state_at)}</dd>
            <dt>"Assigned"</dt>
            <dd title=format_time_title(&target.assigned_at)>{format_time(&target.assigned_at)}</dd>
            {(target.attempts > 0).then(|| view! {
                <dt>"Failed downloads"</dt>
                <dd data-test="ota-attempts">{target.attempts.to_string()}</dd>
            })}
            {target.previous_version.clone().map(|v| view! {
                <dt>"Ran before"</dt>
                <dd>{target.previous_title.clone().unwrap_or_default()} " " <code>{v}</code></dd>
            })}
        </dl>
    }
}
