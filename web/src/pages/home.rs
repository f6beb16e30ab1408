//! `/`: the fleet health dashboard, the start page of everyone in a tenant who may read devices
//! (`devices.read`, over the whole tenant or some groups: the server counts what the person
//! reaches): devices online and offline, acknowledged messages per minute over the last hours as
//! a chart, active alarms by severity (each a link to the list), the busiest devices, credentials
//! about to expire and the latest refused connects. Read again every 5 s. Everyone else is sent
//! where they landed before: the platform admin to Tenants, the rest to Devices.

use leptos::prelude::*;
use leptos_router::components::{A, Redirect};
use leptos_router::hooks::use_navigate;
use stead_api_types::{
    AggregatePoint, BusyDevice, ExpiringCredentials, FleetHealth, Permission, RefusedConnect,
};

use crate::api;
use crate::chart::LineChart;
use crate::pages::alarms::{AlarmsChanged, SeverityCounts};
use crate::session::{sees_dashboard, use_session};
use crate::ui::{
    ErrorMessage, Loader, PageHeader, Spinner, Stat, StatusBadge, TableHead, Tone, format_ms,
    format_ms_title, format_number, format_time, format_time_title, now,
};

/// The hours of messages per minute a person can pick.
const HOURS: [u32; 4] = [1, 3, 12, 24];
const POLL: std::time::Duration = std::time::Duration::from_secs(5);
const MINUTE: i64 = 60_000;

#[component]
pub fn HomePage() -> impl IntoView {
    let session = use_session();
    // Only a change of who may see it re-renders, not every session update.
    let dashboard = Memo::new(move |_| session.me().is_some_and(|m| sees_dashboard(&m)));
    move || {
        if dashboard.get() {
            view! { <Dashboard/> }.into_any()
        } else {
            view! { <Redirect path=session.home()/> }.into_any()
        }
    }
}

/// "62 %" of `whole`, or nothing of none.
fn percent(part: u64, whole: u64) -> Option<String> {
    (whole > 0).then(|| format!("{} %", (part as f64 * 100.0 / whole as f64).round()))
}

#[component]
fn Dashboard() -> impl IntoView {
    crate::ui::set_title("Fleet health");
    let session = use_session();
    let changed = AlarmsChanged::get();
    let hours = RwSignal::new(3u32);
    let health = Loader::new(move || {
        changed.track();
        let h = hours.get();
        async move { api::fleet_health(session, h).await }
    });
    health.poll(POLL, || true, || {});
    // Equal answers leave the page alone.
    let data = Memo::new(move |_| health.data.get());
    let loaded = Memo::new(move |_| data.with(Option::is_some));

    view! {
        <div class="page" data-test="fleet-health">
            <PageHeader title="Fleet health" intro="Your devices at a glance: who is connected, how much they send, what is wrong and what needs doing soon.">
                <span class="live live-on" title="Read again every 5 seconds">"Live"</span>
            </PageHeader>
            <ErrorMessage error=health.error_text()/>
            {move || if loaded.get() {
                view! { <Overview data=Signal::derive(move || data.get().unwrap_or_else(empty)) hours=hours/> }.into_any()
            } else if health.loading.get() {
                view! { <div class="card"><Spinner label="Loading the fleet…"/></div> }.into_any()
            } else {
                ().into_any()
            }}
        </div>
    }
}

fn empty() -> FleetHealth {
    FleetHealth {
        devices: 0,
        online: 0,
        offline: 0,
        messages_per_minute: Vec::new(),
        alarms: Default::default(),
        noisiest: Vec::new(),
        expiring: Vec::new(),
        refused_connects: Vec::new(),
    }
}

#[component]
fn Overview(data: Signal<FleetHealth>, hours: RwSignal<u32>) -> impl IntoView {
    let session = use_session();
    let navigate = StoredValue::new_local(use_navigate());
    let can_alarms = Memo::new(move |_| session.can(Permission::AlarmsRead));
    let alarms = Memo::new(move |_| data.with(|d| d.alarms.clone()));
    let totals = Memo::new(move |_| data.with(|d| (d.devices, d.online, d.offline)));
    // The minute under way, and the range's sum.
    let traffic = Memo::new(move |_| {
        data.with(|d| {
            let last = d.messages_per_minute.last().map_or(0, |m| m.messages);
            let sum: u64 = d.messages_per_minute.iter().map(|m| m.messages).sum();
            (last, sum)
        })
    });
    let points = Memo::new(move |_| {
        data.with(|d| {
            d.messages_per_minute
                .iter()
                .map(|m| AggregatePoint {
                    ts: m.minute,
                    value: m.messages as f64,
                    count: 1,
                })
                .collect::<Vec<_>>()
        })
    });
    let domain = Signal::derive(move || {
        points.with(|p| match (p.first(), p.last()) {
            (Some(first), Some(last)) => (first.ts, last.ts + MINUTE),
            _ => {
                let to = now().timestamp_millis();
                (to - i64::from(hours.get()) * 60 * MINUTE, to)
            }
        })
    });
    let no_band = Signal::derive(Vec::new);
    let pick = Callback::new(move |severity: Option<stead_api_types::AlarmSeverity>| {
        let query = severity.map_or_else(String::new, |s| format!("&severity={}", s.as_str()));
        navigate
            .with_value(|nav| nav(&format!("/alarms?status=active{query}"), Default::default()));
    });

    view! {
        <section class="card stats-card" aria-label="The fleet now">
            <div class="stats">
                {move || {
                    let (devices, online, offline) = totals.get();
                    let (last, sum) = traffic.get();
                    let active = alarms.with(|a| (a.total(), a.unacknowledged));
                    view! {
                        <Stat label="Devices" value=devices.to_string() sub="in your reach" test="fleet-devices"/>
                        <Stat label="Online" value=online.to_string() test="fleet-online"
                            sub=percent(online, devices).map_or_else(|| "connected now".to_owned(), |p| format!("{p} connected now"))/>
                        <Stat label="Offline" value=offline.to_string() test="fleet-offline"
                            sub=percent(offline, devices).map_or_else(|| "not connected".to_owned(), |p| format!("{p} not connected"))/>
                        <Stat label="This minute" value=format_number(last as f64) test="fleet-rate"
                            sub=format!("messages; {} in {} h", format_number(sum as f64), hours.get_untracked())
                            title="Messages acknowledged since the minute began"/>
                        <Stat label="Active alarms" value=active.0.to_string() test="fleet-alarms" bad={active.1 > 0}
                            sub=format!("{} unacknowledged", active.1)/>
                    }
                }}
            </div>
        </section>

        <Show when=move || totals.get().0 == 0>
            <div class="card empty-state" data-test="fleet-empty">
                <div class="empty-icon" aria-hidden="true">"▣"</div>
                <h2>"No devices yet"</h2>
                <p class="muted">"Once devices are registered and connect, this page shows how they are doing."</p>
                <A href="/devices" attr:class="button button-primary">"Go to devices"</A>
            </div>
        </Show>

        <section aria-labelledby="fleet-alarms-title" data-test="fleet-alarm-counts">
            <div class="card-header">
                <h2 id="fleet-alarms-title">"Active alarms"</h2>
                <Show when=move || can_alarms.get()>
                    <A href="/alarms?status=active" attr:class="button button-ghost button-small" attr:data-test="fleet-alarms-link">"All active alarms →"</A>
                </Show>
            </div>
            {move || if can_alarms.get() {
                view! { <SeverityCounts counts=Signal::derive(move || Some(alarms.get())) on_pick=pick/> }.into_any()
            } else {
                view! { <SeverityCounts counts=Signal::derive(move || Some(alarms.get()))/> }.into_any()
            }}
        </section>

        <div class="grid">
            <div class="stack">
                <section class="card" aria-labelledby="fleet-traffic-title">
                    <div class="card-header">
                        <h2 id="fleet-traffic-title">"Messages per minute"</h2>
                        <div class="segmented" role="group" aria-label="Hours shown">
                            {HOURS.into_iter().map(|h| view! {
                                <button type="button" class="segment" data-test=format!("hours-{h}")
                                    class:segment-active=move || hours.get() == h
                                    on:click=move |_| hours.set(h)>
                                    {format!("{h} h")}
                                </button>
                            }).collect_view()}
                        </div>
                    </div>
                    <figure class="chart" data-test="fleet-chart">
                        <LineChart points=points lows=no_band highs=no_band
                            domain=domain interval_ms=MINUTE label="Acknowledged messages per minute" from_zero=true/>
                    </figure>
                    <p class="muted small">"Messages stored and acknowledged, from every device of the organisation."</p>
                </section>
                <RefusedConnects data=data/>
            </div>
            <div class="stack">
                <Noisiest data=data/>
                <Expiring data=data/>
            </div>
        </div>
    }
}

/// A card of the dashboard: a titled table of `rows`, each drawn by `row`, or a line saying
/// there is nothing (`empty`, with `data-test` `empty_test`).
#[component]
fn ListCard<T, R, V>(
    title: &'static str,
    hint: &'static str,
    columns: &'static [&'static str],
    rows: Memo<Vec<T>>,
    row: R,
    empty: &'static str,
    empty_test: &'static str,
) -> impl IntoView
where
    T: Clone + PartialEq + Send + Sync + 'static,
    R: Fn(T) -> V + Copy + Send + Sync + 'static,
    V: IntoView + 'static,
{
    view! {
        <section class="card" aria-label=title>
            <h2>{title}</h2>
            <p class="muted small">{hint}</p>
            {move || {
                let rows = rows.get();
                if rows.is_empty() {
                    return view! { <p class="empty-inline muted" data-test=empty_test>{empty}</p> }.into_any();
                }
                view! {
                    <table class="table table-compact">
                        <TableHead columns=columns/>
                        <tbody>{rows.into_iter().map(row).collect_view()}</tbody>
                    </table>
                }.into_any()
            }}
        </section>
    }
}

#[component]
fn Noisiest(data: Signal<FleetHealth>) -> impl IntoView {
    let rows = Memo::new(move |_| data.with(|d| d.noisiest.clone()));
    let row = |d: BusyDevice| {
        view! {
            <tr data-test="noisy-device" data-id=d.device_id.to_string()>
                <td><A href=format!("/devices/{}", d.device_id)>{d.name}</A></td>
                <td class="mono" data-test="noisy-messages">{format_number(d.messages as f64)}</td>
            </tr>
        }
    };
    view! {
        <ListCard title="Busiest devices" hint="Messages in the last 10 to 20 minutes."
            columns=&["Device", "Messages"] rows=rows row=row
            empty="No device sent anything in the last minutes." empty_test="no-noisy-devices"/>
    }
}

#[component]
fn Expiring(data: Signal<FleetHealth>) -> impl IntoView {
    let rows = Memo::new(move |_| data.with(|d| d.expiring.clone()));
    let row = |d: ExpiringCredentials| {
        let expired = d.expires_at <= now();
        view! {
            <tr data-test="expiring-device" data-id=d.device_id.to_string()>
                <td><A href=format!("/devices/{}?tab=credentials", d.device_id)>{d.name}</A></td>
                <td title=format_time_title(&d.expires_at)>
                    {expired.then(|| view! { <StatusBadge tone=Tone::Bad text="Expired" status="expired"/> " " })}
                    {format_time(&d.expires_at)}
                </td>
            </tr>
        }
    };
    view! {
        <ListCard title="Credentials expiring soon"
            hint="Within 7 days, or already expired: rotate or set new ones before devices are refused."
            columns=&["Device", "Expires"] rows=rows row=row
            empty="No credentials expire within 7 days." empty_test="no-expiring"/>
    }
}

#[component]
fn RefusedConnects(data: Signal<FleetHealth>) -> impl IntoView {
    let rows = Memo::new(move |_| data.with(|d| d.refused_connects.clone()));
    let row = |r: RefusedConnect| {
        view! {
            <tr data-test="refused-connect" data-id=r.device_id.to_string()>
                <td><A href=format!("/devices/{}?tab=credentials", r.device_id)>{r.name}</A></td>
                <td title=format_ms_title(r.ts)>{format_ms(r.ts)}</td>
                <td class="muted" data-test="refused-detail">{r.detail}</td>
            </tr>
        }
    };
    view! {
        <ListCard title="Recent refused connects" hint="Known devices the MQTT broker turned away, newest first."
            columns=&["Device", "When", "Why"] rows=rows row=row
            empty="No device was refused lately." empty_test="no-refused-connects"/>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_are_whole_and_absent_without_devices() {
        assert_eq!(percent(2, 3).as_deref(), Some("67 %"));
        assert_eq!(percent(0, 5).as_deref(), Some("0 %"));
        assert_eq!(percent(0, 0), None);
    }
}
