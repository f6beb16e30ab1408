//! A chart per numeric key over a chosen time range (1 h, 24 h, 7 d ending now, or custom),
//! from the aggregate endpoint at about 200 buckets, extended by live values; and the CSV
//! download of the range.

use std::collections::BTreeMap;
use std::future::Future;
use std::task::Poll;

use leptos::prelude::*;
use leptos::task::spawn_local;
use stead_api_types::{AggregatePoint, AggregateSeries};

use super::activity::{DeviceLive, LivePoint};
use crate::api;
use crate::chart::LineChart;
use crate::session::use_session;
use crate::ui::{
    ErrorMessage, Loader, Spinner, format_number, from_local_input, save_blob, to_local_input,
    use_toasts,
};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;
/// Buckets per chart the interval aims at.
const BUCKETS: i64 = 200;
/// The server answers at most this many buckets.
const MAX_BUCKETS: i64 = 10_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeKind {
    Hour,
    Day,
    Week,
    Custom,
}

impl RangeKind {
    fn span(self) -> Option<i64> {
        match self {
            RangeKind::Hour => Some(HOUR),
            RangeKind::Day => Some(DAY),
            RangeKind::Week => Some(7 * DAY),
            RangeKind::Custom => None,
        }
    }
}

/// A round bucket length giving about `BUCKETS` buckets over `span` ms.
pub fn interval_for(span: i64) -> i64 {
    const NICE: [i64; 22] = [
        1_000,
        2_000,
        5_000,
        10_000,
        15_000,
        20_000,
        30_000,
        MINUTE,
        2 * MINUTE,
        5 * MINUTE,
        10 * MINUTE,
        15 * MINUTE,
        20 * MINUTE,
        30 * MINUTE,
        HOUR,
        2 * HOUR,
        3 * HOUR,
        6 * HOUR,
        12 * HOUR,
        DAY,
        2 * DAY,
        7 * DAY,
    ];
    let ideal = (span / BUCKETS).max(1);
    let nice = NICE
        .iter()
        .copied()
        .min_by_key(|n| (n - ideal).abs())
        .unwrap_or(DAY);
    // Never more buckets than the server allows, however long the custom range.
    nice.max((span + MAX_BUCKETS - 1) / MAX_BUCKETS)
}

/// The aggregations each chart draws: the average as its line, minimum and maximum as a band.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Agg {
    Avg,
    Min,
    Max,
}

/// Adds live points to loaded buckets: each point joins the bucket its time falls in (buckets
/// aligned like the loaded ones), updating its aggregate, or starts a new bucket.
pub fn merge_live(
    mut buckets: Vec<AggregatePoint>,
    interval: i64,
    agg: Agg,
    live: impl Iterator<Item = (i64, f64)>,
) -> Vec<AggregatePoint> {
    let interval = interval.max(1);
    for (ts, value) in live {
        let base = buckets.first().map_or(0, |b| b.ts);
        let start = base + (ts - base).div_euclid(interval) * interval;
        match buckets.binary_search_by_key(&start, |b| b.ts) {
            Ok(i) => {
                let b = &mut buckets[i];
                b.value = match agg {
                    Agg::Avg => (b.value * b.count as f64 + value) / (b.count + 1) as f64,
                    Agg::Min => b.value.min(value),
                    Agg::Max => b.value.max(value),
                };
                b.count += 1;
            }
            Err(i) => buckets.insert(
                i,
                AggregatePoint {
                    ts: start,
                    value,
                    count: 1,
                },
            ),
        }
    }
    buckets
}

/// The range's bounds (ms) at `now`.
fn bounds(kind: RangeKind, custom: (i64, i64), now: f64) -> (i64, i64) {
    match kind.span() {
        Some(span) => (now as i64 - span, now as i64),
        None => custom,
    }
}

#[derive(Clone, Debug, PartialEq)]
struct Loaded {
    avg: AggregateSeries,
    min: AggregateSeries,
    max: AggregateSeries,
    /// When the requests left (ms): live points received later are not in them.
    requested_ms: f64,
}

impl Loaded {
    fn series(&self, agg: Agg) -> &AggregateSeries {
        match agg {
            Agg::Avg => &self.avg,
            Agg::Min => &self.min,
            Agg::Max => &self.max,
        }
    }
}

/// One key's chart data: average, minimum and maximum per bucket.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KeySeries {
    avg: Vec<AggregatePoint>,
    min: Vec<AggregatePoint>,
    max: Vec<AggregatePoint>,
}

/// Waits for three futures at once (the three aggregations load side by side).
async fn join3<A, B, C>(
    a: impl Future<Output = A>,
    b: impl Future<Output = B>,
    c: impl Future<Output = C>,
) -> (A, B, C) {
    let (mut a, mut b, mut c) = (Box::pin(a), Box::pin(b), Box::pin(c));
    let (mut ra, mut rb, mut rc) = (None, None, None);
    std::future::poll_fn(move |cx| {
        if ra.is_none()
            && let Poll::Ready(v) = a.as_mut().poll(cx)
        {
            ra = Some(v);
        }
        if rb.is_none()
            && let Poll::Ready(v) = b.as_mut().poll(cx)
        {
            rb = Some(v);
        }
        if rc.is_none()
            && let Poll::Ready(v) = c.as_mut().poll(cx)
        {
            rc = Some(v);
        }
        if ra.is_some() && rb.is_some() && rc.is_some() {
            match (ra.take(), rb.take(), rc.take()) {
                (Some(a), Some(b), Some(c)) => Poll::Ready((a, b, c)),
                _ => Poll::Pending,
            }
        } else {
            Poll::Pending
        }
    })
    .await
}

#[component]
pub fn TelemetryCharts(live: DeviceLive) -> impl IntoView {
    let session = use_session();
    let toasts = use_toasts();
    let id = live.id;
    let kind = RwSignal::new(RangeKind::Hour);
    let now0 = js_sys::Date::now() as i64;
    // The custom range: applied bounds, and the inputs being edited.
    let custom = RwSignal::new((now0 - DAY, now0));
    let from_text = RwSignal::new(to_local_input(now0 - DAY));
    let to_text = RwSignal::new(to_local_input(now0));
    let custom_error = RwSignal::new(None::<String>);

    // Keys whose latest value is a number; strings, booleans and objects are not charted.
    let numeric = Memo::new(move |_| {
        live.values
            .get()
            .into_iter()
            .filter(|(_, v)| v.value.is_number())
            .map(|(k, _)| k)
            .collect::<Vec<_>>()
    });

    let data = Loader::new(move || {
        live.charts_stale.track();
        let keys = numeric.get();
        let kind = kind.get();
        let (from, to) = bounds(kind, custom.get(), js_sys::Date::now());
        let requested_ms = js_sys::Date::now();
        async move {
            if keys.is_empty() {
                return Ok(None);
            }
            let interval = interval_for(to - from);
            let range = (from, to);
            let mut loaded: Option<Loaded> = None;
            // The server takes a limited number of keys per query.
            for keys in keys.chunks(api::MAX_KEYS) {
                let (avg, min, max) = join3(
                    api::aggregate_telemetry(session, id, keys, range, interval, "avg"),
                    api::aggregate_telemetry(session, id, keys, range, interval, "min"),
                    api::aggregate_telemetry(session, id, keys, range, interval, "max"),
                )
                .await;
                let (avg, min, max) = (avg?, min?, max?);
                match &mut loaded {
                    None => {
                        loaded = Some(Loaded {
                            avg,
                            min,
                            max,
                            requested_ms,
                        })
                    }
                    Some(l) => {
                        l.avg.series.extend(avg.series);
                        l.min.series.extend(min.series);
                        l.max.series.extend(max.series);
                    }
                }
            }
            Ok(loaded)
        }
    });

    let interval = Signal::derive(move || {
        data.data
            .with(|d| {
                d.as_ref()
                    .and_then(|d| d.as_ref())
                    .map(|d| d.avg.interval_ms)
            })
            .unwrap_or_else(|| {
                let (from, to) = bounds(kind.get(), custom.get(), live.now.get_untracked());
                interval_for(to - from)
            })
    });
    // Ranges ending now move with the clock, and reach at least the newest live point (the
    // clock ticks each second; a value should not wait for the next tick to appear).
    let domain = Memo::new(move |_| {
        let kind = kind.get();
        let newest = live.points.with(|p| p.iter().map(|p| p.ts).max());
        let now = match (kind.span(), newest) {
            // A device whose clock runs far ahead must not squash the chart.
            (Some(_), Some(newest)) => {
                let now = live.now.get();
                now.max((newest as f64 + 1.0).min(now + 60_000.0))
            }
            _ => live.now.get(),
        };
        bounds(kind, custom.get(), now)
    });
    let domain = Signal::from(domain);

    // Loaded buckets with the live points merged in (ranges ending now only).
    let series = Memo::new(move |_| {
        let loaded = data.data.get().flatten();
        let keys = numeric.get();
        let follows_now = kind.get() != RangeKind::Custom;
        let interval = interval.get();
        live.points.with(|points| {
            keys.iter()
                .map(|key| {
                    let one = |agg: Agg| {
                        let buckets = loaded
                            .as_ref()
                            .and_then(|l| l.series(agg).series.get(key).cloned())
                            .unwrap_or_default();
                        if !follows_now {
                            return buckets;
                        }
                        let requested = loaded.as_ref().map_or(f64::INFINITY, |l| l.requested_ms);
                        let loaded_end = buckets.last().map_or(i64::MIN, |b| b.ts + interval);
                        // A point is new to the loaded data when it arrived after the request
                        // left, or lies beyond everything loaded.
                        let fresh = points.iter().filter(|p: &&LivePoint| {
                            p.key == *key && (p.received_ms >= requested || p.ts >= loaded_end)
                        });
                        merge_live(buckets, interval, agg, fresh.map(|p| (p.ts, p.value)))
                    };
                    let series = KeySeries {
                        avg: one(Agg::Avg),
                        min: one(Agg::Min),
                        max: one(Agg::Max),
                    };
                    (key.clone(), series)
                })
                .collect::<BTreeMap<_, _>>()
        })
    });

    let apply_custom = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let (Some(from), Some(to)) = (
            from_local_input(&from_text.get_untracked()).map(|t| t.timestamp_millis()),
            from_local_input(&to_text.get_untracked()).map(|t| t.timestamp_millis()),
        ) else {
            custom_error.set(Some("Enter both a start and an end.".into()));
            return;
        };
        if from >= to {
            custom_error.set(Some("The start must be before the end.".into()));
            return;
        }
        custom_error.set(None);
        custom.set((from, to));
        kind.set(RangeKind::Custom);
    };

    let downloading = RwSignal::new(false);
    let download = move |_| {
        if downloading.get_untracked() {
            return;
        }
        let (from, to) = bounds(
            kind.get_untracked(),
            custom.get_untracked(),
            js_sys::Date::now(),
        );
        downloading.set(true);
        spawn_local(async move {
            let result = api::telemetry_csv(session, id, from, to).await;
            match result.and_then(|blob| save_blob(&blob, &format!("device-{id}-{from}-{to}.csv")))
            {
                Ok(()) => {}
                Err(e) => toasts.error(e.detail),
            }
            downloading.try_set(false);
        });
    };

    let range_button = move |k: RangeKind, label: &'static str, test: &'static str| {
        view! {
            <button
                type="button"
                class="segment"
                class:segment-active=move || kind.get() == k
                aria-pressed=move || (kind.get() == k).to_string()
                data-test=test
                on:click=move |_| {
                    if k == RangeKind::Custom {
                        // Open the inputs on the range shown now; applying switches to it.
                        let (from, to) = bounds(kind.get_untracked(), custom.get_untracked(), js_sys::Date::now());
                        from_text.set(to_local_input(from));
                        to_text.set(to_local_input(to));
                        custom.set((from, to));
                    }
                    kind.set(k);
                }
            >
                {label}
            </button>
        }
    };

    view! {
        <section class="card" aria-labelledby="charts-title">
            <div class="card-header">
                <h2 id="charts-title">"Telemetry"</h2>
                <div class="card-tools">
                    <div class="segmented" role="group" aria-label="Time range">
                        {range_button(RangeKind::Hour, "1 h", "range-1h")}
                        {range_button(RangeKind::Day, "24 h", "range-24h")}
                        {range_button(RangeKind::Week, "7 d", "range-7d")}
                        {range_button(RangeKind::Custom, "Custom", "range-custom")}
                    </div>
                    <button
                        type="button"
                        class="button button-secondary button-small"
                        data-test="download-csv"
                        title="Every value of every key in the range, as CSV"
                        disabled=move || downloading.get() || live.values.with(|v| v.is_empty())
                        on:click=download
                    >
                        {move || if downloading.get() { "Preparing…" } else { "Download CSV" }}
                    </button>
                </div>
            </div>
            <Show when=move || kind.get() == RangeKind::Custom>
                <form class="custom-range" on:submit=apply_custom novalidate=true>
                    <label class="field">
                        <span>"From"</span>
                        <input type="datetime-local" name="from" data-test="range-from" bind:value=from_text/>
                    </label>
                    <label class="field">
                        <span>"To"</span>
                        <input type="datetime-local" name="to" data-test="range-to" bind:value=to_text/>
                    </label>
                    <button type="submit" class="button button-primary button-small" data-test="range-apply">"Apply"</button>
                </form>
                <ErrorMessage error=custom_error/>
            </Show>
            {move || {
                let keys = numeric.get();
                let first_load = data.data.with(Option::is_none);
                if keys.is_empty() {
                    let nothing_yet = live.values.with(|v| v.is_empty());
                    return view! {
                        <div class="empty-inline">
                            <p class="muted">
                                {if nothing_yet {
                                    "Charts appear once the device sends numeric values."
                                } else {
                                    "None of this device's values are numbers, so there is nothing to chart."
                                }}
                            </p>
                        </div>
                    }.into_any();
                }
                if first_load && data.loading.get() {
                    return view! { <Spinner label="Loading charts…"/> }.into_any();
                }
                view! {
                    <div>
                        <ErrorMessage error=data.error_text()/>
                        <div class="chart-grid-wrap" class:is-loading=move || data.loading.get()>
                            <For each=move || numeric.get() key=|k| k.clone() let:key>
                                <KeyChart key=key live=live series=series domain=domain interval=interval/>
                            </For>
                        </div>
                    </div>
                }.into_any()
            }}
        </section>
    }
}

#[component]
fn KeyChart(
    key: String,
    live: DeviceLive,
    series: Memo<BTreeMap<String, KeySeries>>,
    domain: Signal<(i64, i64)>,
    interval: Signal<i64>,
) -> impl IntoView {
    let pick = move |key: String, agg: Agg| {
        Signal::derive(move || {
            series.with(|s| {
                s.get(&key)
                    .map(|s| match agg {
                        Agg::Avg => s.avg.clone(),
                        Agg::Min => s.min.clone(),
                        Agg::Max => s.max.clone(),
                    })
                    .unwrap_or_default()
            })
        })
    };
    let points = pick(key.clone(), Agg::Avg);
    let lows = pick(key.clone(), Agg::Min);
    let highs = pick(key.clone(), Agg::Max);
    let k = key.clone();
    // The range's true lowest and highest value, and the key's latest value as its card shows.
    let stats = move || {
        let (from, to) = domain.get();
        let interval = interval.get();
        let in_range = |p: &&AggregatePoint| p.ts + interval > from && p.ts <= to;
        let min = lows.with(|l| l.iter().filter(in_range).map(|p| p.value).reduce(f64::min));
        let max = highs.with(|h| h.iter().filter(in_range).map(|p| p.value).reduce(f64::max));
        let latest = live
            .values
            .with(|v| v.get(&k).and_then(|v| v.value.as_f64()));
        Some((min?, max?, latest))
    };
    let label = format!("Chart of {key}");
    view! {
        <figure class="chart" data-test="chart" data-key=key.clone()>
            <figcaption class="chart-head">
                <span class="chart-key">{key.clone()}</span>
                {move || stats().map(|(min, max, latest)| view! {
                    <span class="chart-stats">
                        <span>"min "<strong data-test="chart-min">{format_number(min)}</strong></span>
                        <span>"max "<strong data-test="chart-max">{format_number(max)}</strong></span>
                        {latest.map(|v| view! { <span>"latest "<strong>{format_number(v)}</strong></span> })}
                    </span>
                })}
            </figcaption>
            <LineChart points=points lows=lows highs=highs domain=domain interval_ms=interval label=label/>
        </figure>
    }
}

/// Hands a downloaded file to the browser as if a link had been clicked.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_give_about_two_hundred_round_buckets() {
        assert_eq!(interval_for(HOUR), 20_000);
        assert_eq!(interval_for(DAY), 5 * MINUTE);
        assert_eq!(interval_for(7 * DAY), HOUR);
        // A year: far more than 200 buckets at the largest round step would be too many.
        assert!(365 * DAY / interval_for(365 * DAY) <= MAX_BUCKETS);
    }

    #[test]
    fn live_points_join_their_bucket_or_start_one() {
        let loaded = vec![
            AggregatePoint {
                ts: 0,
                value: 10.0,
                count: 1,
            },
            AggregatePoint {
                ts: 100,
                value: 20.0,
                count: 3,
            },
        ];
        let live = [(150, 24.0), (420, 5.0), (-30, 1.0)];
        let merged = merge_live(loaded.clone(), 100, Agg::Avg, live.into_iter());
        assert_eq!(
            merged
                .iter()
                .map(|p| (p.ts, p.value, p.count))
                .collect::<Vec<_>>(),
            vec![(-100, 1.0, 1), (0, 10.0, 1), (100, 21.0, 4), (400, 5.0, 1)]
        );
        let merged = merge_live(loaded, 100, Agg::Max, live.into_iter());
        assert_eq!(merged[2].value, 24.0);
        // Nothing loaded yet: buckets align on the epoch.
        let merged = merge_live(Vec::new(), 100, Agg::Min, [(250, 3.0)].into_iter());
        assert_eq!(merged[0].ts, 200);
    }
}
