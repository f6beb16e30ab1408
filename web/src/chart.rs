//! Hand-drawn SVG charts: a line chart of one aggregated series over a time range (axes with
//! rounded ticks, gridlines, the minimum and maximum marked, and a tooltip that follows the
//! pointer), and horizontal bars of counts sharing its ticks and measured width.
//! No chart library: the console loads nothing from elsewhere.

use leptos::prelude::*;
use stead_api_types::AggregatePoint;
use wasm_bindgen::JsValue;

use crate::ui::format_number;

/// The drawing's height; its width is the box's, measured, so that text keeps its size.
const H: f64 = 220.0;
/// The width until the box is measured.
const DEFAULT_W: f64 = 560.0;
const LEFT: f64 = 52.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 28.0;
/// Up to this many points, each is also drawn as a dot (sparse data would be invisible as a
/// line alone).
const DOTS_UP_TO: usize = 60;

const SECOND: i64 = 1000;
const MINUTE: i64 = 60 * SECOND;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

/// Ticks at round values covering `[min, max]`: about `count` of them, and their step.
pub fn nice_ticks(min: f64, max: f64, count: usize) -> (Vec<f64>, f64) {
    let (min, max) = if (max - min).abs() < f64::EPSILON {
        let pad = if min == 0.0 { 1.0 } else { min.abs() * 0.1 };
        (min - pad, max + pad)
    } else {
        (min, max)
    };
    let raw = (max - min) / count.max(1) as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    let first = (min / step).floor() * step;
    let last = (max / step).ceil() * step;
    let n = ((last - first) / step).round() as usize;
    let ticks = (0..=n).map(|i| first + i as f64 * step).collect();
    (ticks, step)
}

/// Decimals that write every multiple of `step` exactly (0.25 needs two, 2.5 one).
fn decimals_for(step: f64) -> usize {
    (0..8)
        .find(|d| {
            let scaled = step * 10f64.powi(*d as i32);
            (scaled - scaled.round()).abs() < 1e-6 * scaled.abs().max(1.0)
        })
        .unwrap_or(8)
}

fn format_tick(v: f64, step: f64) -> String {
    let decimals = decimals_for(step);
    let text = format!("{v:.decimals$}");
    // No "-0".
    if text
        .trim_start_matches('-')
        .chars()
        .all(|c| c == '0' || c == '.')
    {
        text.trim_start_matches('-').to_owned()
    } else {
        text
    }
}

/// Time ticks for `[from, to]` at a round step, aligned to the local clock (midnight, whole
/// hours), `offset_ms` being the local time zone's offset from UTC.
pub fn time_ticks(from: i64, to: i64, offset_ms: i64, max_ticks: i64) -> (Vec<i64>, i64) {
    const STEPS: [i64; 20] = [
        SECOND,
        2 * SECOND,
        5 * SECOND,
        10 * SECOND,
        15 * SECOND,
        30 * SECOND,
        MINUTE,
        2 * MINUTE,
        5 * MINUTE,
        10 * MINUTE,
        15 * MINUTE,
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
    let span = (to - from).max(1);
    let step = STEPS
        .iter()
        .copied()
        .find(|s| span / s <= max_ticks)
        .unwrap_or(30 * DAY);
    let first = (from + offset_ms).div_euclid(step) * step - offset_ms;
    let first = if first < from { first + step } else { first };
    let ticks = (0..)
        .map(|i| first + i * step)
        .take_while(|t| *t <= to)
        .collect();
    (ticks, step)
}

/// The local time zone's offset from UTC at `ms` (positive east of Greenwich).
fn local_offset_ms(ms: i64) -> i64 {
    let date = js_sys::Date::new(&JsValue::from_f64(ms as f64));
    -(date.get_timezone_offset() as i64) * MINUTE
}

fn format_local(ms: i64, options: &[(&str, &str)]) -> String {
    let date = js_sys::Date::new(&JsValue::from_f64(ms as f64));
    let o = js_sys::Object::new();
    for (k, v) in options {
        let _ = js_sys::Reflect::set(&o, &JsValue::from_str(k), &JsValue::from_str(v));
    }
    String::from(date.to_locale_string("default", &o))
}

fn format_time_tick(ms: i64, step: i64, span: i64) -> String {
    if step >= DAY {
        format_local(ms, &[("month", "short"), ("day", "numeric")])
    } else if span > DAY {
        format_local(
            ms,
            &[
                ("weekday", "short"),
                ("hour", "2-digit"),
                ("minute", "2-digit"),
            ],
        )
    } else if step < MINUTE {
        format_local(
            ms,
            &[
                ("hour", "2-digit"),
                ("minute", "2-digit"),
                ("second", "2-digit"),
            ],
        )
    } else {
        format_local(ms, &[("hour", "2-digit"), ("minute", "2-digit")])
    }
}

/// The time of a point in the tooltip.
fn format_point_time(ms: i64) -> String {
    format_local(
        ms,
        &[
            ("month", "short"),
            ("day", "numeric"),
            ("hour", "2-digit"),
            ("minute", "2-digit"),
            ("second", "2-digit"),
        ],
    )
}

/// Geometry of one drawing: maps times and values to SVG coordinates.
#[derive(Clone, Copy, PartialEq)]
struct Scale {
    from: f64,
    to: f64,
    lo: f64,
    hi: f64,
    w: f64,
}

impl Scale {
    fn x(&self, ts: f64) -> f64 {
        LEFT + (ts - self.from) / (self.to - self.from).max(1.0) * (self.w - LEFT - RIGHT)
    }

    fn y(&self, v: f64) -> f64 {
        TOP + (self.hi - v) / (self.hi - self.lo).max(f64::EPSILON) * (H - TOP - BOTTOM)
    }
}

/// A point as drawn: its time (middle of its bucket), value (the average), how many values it
/// sums up, and the bucket's lowest and highest value when known.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Drawn {
    ts: f64,
    value: f64,
    count: u64,
    low: Option<f64>,
    high: Option<f64>,
    x: f64,
    y: f64,
}

impl Drawn {
    fn low(&self) -> f64 {
        self.low.unwrap_or(self.value)
    }

    fn high(&self) -> f64 {
        self.high.unwrap_or(self.value)
    }
}

/// The width of the box `frame`, measured once it is drawn and again on every resize of the
/// window, so that a drawing's text keeps its size.
fn measured_width(frame: NodeRef<leptos::html::Div>) -> RwSignal<f64> {
    let width = RwSignal::new(DEFAULT_W);
    let measure = move || {
        if let Some(el) = frame.get_untracked() {
            let w = f64::from(el.client_width());
            if w > 100.0 {
                width.set(w);
            }
        }
    };
    Effect::new(move |_| {
        if frame.get().is_some() {
            measure();
        }
    });
    let resize = window_event_listener(leptos::ev::resize, move |_| measure());
    on_cleanup(move || resize.remove());
    width
}

/// The value of the bucket starting at `ts` in `series` (sorted by time), if any.
fn bucket_value(series: &[AggregatePoint], ts: i64) -> Option<f64> {
    series
        .binary_search_by_key(&ts, |p| p.ts)
        .ok()
        .map(|i| series[i].value)
        .filter(|v| v.is_finite())
}

/// A line chart of `points` (bucket averages of `interval_ms`) between `from` and `to` (ms), over
/// a band from `lows` to `highs` (the buckets' minimum and maximum; may be empty).
#[component]
pub fn LineChart(
    #[prop(into)] points: Signal<Vec<AggregatePoint>>,
    #[prop(into)] lows: Signal<Vec<AggregatePoint>>,
    #[prop(into)] highs: Signal<Vec<AggregatePoint>>,
    #[prop(into)] domain: Signal<(i64, i64)>,
    #[prop(into)] interval_ms: Signal<i64>,
    /// What the values are, for the tooltip and the screen-reader label.
    #[prop(into)]
    label: String,
    /// Counts: the axis starts at 0 and reaches at least 1, so a quiet stretch lies on the
    /// floor rather than in the middle of a range around it.
    #[prop(optional)]
    from_zero: bool,
    /// A stretch of time shaded behind the line (an alarm's active time), in ms.
    #[prop(optional, into)]
    shade: Option<Signal<Option<(i64, i64)>>>,
) -> impl IntoView {
    let hover = RwSignal::new(None::<usize>);
    let plot = NodeRef::<leptos::svg::Svg>::new();
    let frame = NodeRef::<leptos::html::Div>::new();
    let width = measured_width(frame);

    let geometry = Memo::new(move |_| {
        let w = width.get();
        let (from, to) = domain.get();
        let half = interval_ms.get() as f64 / 2.0;
        let visible: Vec<AggregatePoint> = points.with(|p| {
            p.iter()
                .filter(|p| p.ts + interval_ms.get_untracked() > from && p.ts <= to)
                .filter(|p| p.value.is_finite())
                .cloned()
                .collect()
        });
        let bands: Vec<(Option<f64>, Option<f64>)> = lows.with(|lows| {
            highs.with(|highs| {
                visible
                    .iter()
                    .map(|p| (bucket_value(lows, p.ts), bucket_value(highs, p.ts)))
                    .collect()
            })
        });
        let (lo, hi) = visible.iter().zip(&bands).fold(
            (f64::INFINITY, f64::NEG_INFINITY),
            |(lo, hi), (p, (low, high))| {
                (
                    lo.min(low.unwrap_or(p.value)),
                    hi.max(high.unwrap_or(p.value)),
                )
            },
        );
        let (ticks, step) = if visible.is_empty() {
            nice_ticks(0.0, 1.0, 4)
        } else if from_zero {
            nice_ticks(lo.min(0.0), hi.max(1.0), 4)
        } else {
            nice_ticks(lo, hi, 4)
        };
        let scale = Scale {
            from: from as f64,
            to: to as f64,
            lo: ticks.first().copied().unwrap_or(0.0),
            hi: ticks.last().copied().unwrap_or(1.0),
            w,
        };
        let drawn: Vec<Drawn> = visible
            .iter()
            .zip(bands)
            .map(|(p, (low, high))| {
                // The middle of the bucket, kept inside the range for the partial first and
                // last buckets.
                let ts = (p.ts as f64 + half).clamp(from as f64, to as f64);
                Drawn {
                    ts,
                    value: p.value,
                    count: p.count,
                    low,
                    high,
                    x: scale.x(ts),
                    y: scale.y(p.value),
                }
            })
            .collect();
        (scale, ticks, step, drawn)
    });

    let on_move = move |ev: leptos::ev::MouseEvent| {
        let Some(svg) = plot.get_untracked() else {
            return;
        };
        let rect = svg.get_bounding_client_rect();
        if rect.width() <= 0.0 {
            return;
        }
        let x = (f64::from(ev.client_x()) - rect.left()) / rect.width() * width.get_untracked();
        let nearest = geometry.with_untracked(|(_, _, _, drawn)| {
            drawn
                .iter()
                .enumerate()
                .min_by(|a, b| (a.1.x - x).abs().total_cmp(&(b.1.x - x).abs()))
                .map(|(i, _)| i)
        });
        hover.set(nearest);
    };

    let aria = label.clone();
    view! {
        <div class="chart-plot" node_ref=frame on:mouseleave=move |_| hover.set(None)>
            <svg
                node_ref=plot
                class="chart-svg"
                viewBox=move || format!("0 0 {} {H}", width.get())
                role="img"
                aria-label=aria
                on:mousemove=on_move
            >
                {move || geometry.with(|(scale, ticks, step, drawn)| {
                    let (from, to) = domain.get();
                    let offset = local_offset_ms(from);
                    let w = scale.w;
                    // About one time label per 90 px, so they never overlap.
                    let max_ticks = ((w - LEFT - RIGHT) / 90.0).floor().clamp(2.0, 8.0) as i64;
                    let (time_ticks, time_step) = time_ticks(from, to, offset, max_ticks);
                    let grid_y = ticks.iter().map(|v| {
                        let y = scale.y(*v);
                        view! {
                            <line class="chart-grid" x1=LEFT x2=w - RIGHT y1=y y2=y/>
                            <text class="chart-tick" x=LEFT - 8.0 y=y + 4.0 text-anchor="end">
                                {format_tick(*v, *step)}
                            </text>
                        }
                    }).collect_view();
                    let grid_x = time_ticks.iter().map(|t| {
                        let x = scale.x(*t as f64);
                        view! {
                            <line class="chart-grid chart-grid-x" x1=x x2=x y1=TOP y2=H - BOTTOM/>
                            <text class="chart-tick" x=x y=H - BOTTOM + 17.0 text-anchor="middle">
                                {format_time_tick(*t, time_step, to - from)}
                            </text>
                        }
                    }).collect_view();
                    let line = drawn.iter().enumerate().fold(String::new(), |mut d, (i, p)| {
                        d.push_str(&format!("{}{:.1},{:.1} ", if i == 0 { "M" } else { "L" }, p.x, p.y));
                        d
                    });
                    // The band from each bucket's lowest to its highest value: along the highs,
                    // then back along the lows.
                    let band = if drawn.len() > 1 && drawn.iter().any(|p| p.low.is_some() || p.high.is_some()) {
                        let mut d = String::new();
                        for (i, p) in drawn.iter().enumerate() {
                            d.push_str(&format!("{}{:.1},{:.1} ", if i == 0 { "M" } else { "L" }, p.x, scale.y(p.high())));
                        }
                        for p in drawn.iter().rev() {
                            d.push_str(&format!("L{:.1},{:.1} ", p.x, scale.y(p.low())));
                        }
                        d.push('Z');
                        d
                    } else {
                        String::new()
                    };
                    let dots = (drawn.len() <= DOTS_UP_TO).then(|| {
                        drawn.iter().map(|p| view! {
                            <circle class="chart-dot" cx=p.x cy=p.y r="2.5"/>
                        }).collect_view()
                    });
                    let extremes = extremes(drawn, scale).map(|(min, max)| view! {
                        <MarkLabel point=max above=true w=w/>
                        <MarkLabel point=min above=false w=w/>
                    });
                    let empty = drawn.is_empty().then(|| view! {
                        <text class="chart-empty" x=(LEFT + w - RIGHT) / 2.0 y=(TOP + H - BOTTOM) / 2.0 text-anchor="middle">
                            "No data in this range"
                        </text>
                    });
                    let shaded = shade.and_then(|s| s.get()).map(|(a, b)| {
                        let x1 = scale.x(a.max(from) as f64);
                        let x2 = scale.x(b.min(to) as f64);
                        view! { <rect class="chart-shade" data-test="chart-shade" x=x1 y=TOP width=(x2 - x1).max(1.0) height=H - TOP - BOTTOM/> }
                    });
                    view! {
                        {shaded}
                        <g>{grid_y}</g>
                        <g>{grid_x}</g>
                        <line class="chart-axis" x1=LEFT x2=w - RIGHT y1=H - BOTTOM y2=H - BOTTOM/>
                        <path class="chart-band" d=band/>
                        <path class="chart-line" d=line/>
                        {dots}
                        {extremes}
                        {empty}
                    }
                })}
                {move || hover.get().and_then(|i| geometry.with(|(_, _, _, d)| d.get(i).copied())).map(|p| view! {
                    <line class="chart-cursor" x1=p.x x2=p.x y1=TOP y2=H - BOTTOM/>
                    <circle class="chart-focus" cx=p.x cy=p.y r="4"/>
                })}
            </svg>
            {move || hover.get().and_then(|i| geometry.with(|(_, _, _, d)| d.get(i).copied())).map(|p| {
                let left = p.x / width.get() * 100.0;
                let top = p.y / H * 100.0;
                // Keep the box inside the chart near the edges.
                let shift = if left < 20.0 { "0%" } else if left > 80.0 { "-100%" } else { "-50%" };
                let count = match p.count {
                    0 | 1 => String::new(),
                    n => match (p.low, p.high) {
                        (Some(lo), Some(hi)) => format!(
                            "average of {n} values, {} to {}",
                            format_number(lo),
                            format_number(hi)
                        ),
                        _ => format!("average of {n} values"),
                    },
                };
                view! {
                    <div
                        class="chart-tooltip"
                        style=format!("left:{left:.2}%;top:{top:.2}%;transform:translate({shift}, calc(-100% - 10px))")
                    >
                        <strong>{format_number(p.value)}</strong>
                        <span>{format_point_time(p.ts as i64)}</span>
                        {(!count.is_empty()).then(|| view! { <span class="muted">{count}</span> })}
                    </div>
                }
            })}
        </div>
    }
}

/// One bar of a `BarChart`: what it counts and how many.
#[derive(Clone, Debug, PartialEq)]
pub struct Bar {
    pub label: String,
    pub value: f64,
}

/// A bar's height and the room around it.
const BAR_ROW: f64 = 30.0;
const BAR_THICKNESS: f64 = 18.0;
/// Labels longer than this are cut, with "…".
const BAR_LABEL_CHARS: usize = 30;

/// Horizontal bars of counts (devices per version), the longest first as given, on a value axis
/// from zero with the line chart's round ticks. Each bar is `data-test=chart-bar` with its
/// `data-label` and `data-value`.
#[component]
pub fn BarChart(
    #[prop(into)] bars: Signal<Vec<Bar>>,
    /// What the values are, for the screen-reader label.
    #[prop(into)]
    label: String,
    /// Shown where there are no bars.
    #[prop(into)]
    empty: String,
) -> impl IntoView {
    let frame = NodeRef::<leptos::html::Div>::new();
    let width = measured_width(frame);
    // The labels' column: a third of the width, between 120 and 220 px.
    let label_w = move || (width.get() / 3.0).clamp(120.0, 220.0);
    let height = move || TOP + BAR_ROW * bars.with(Vec::len).max(1) as f64 + BOTTOM;
    let geometry = Memo::new(move |_| {
        let hi = bars.with(|b| b.iter().map(|b| b.value).fold(0.0, f64::max));
        // Counts: whole steps only (no "0.25 devices").
        let step = nice_ticks(0.0, hi.max(1.0), 4).1.ceil().max(1.0);
        let n = (hi.max(1.0) / step).ceil() as usize;
        let ticks: Vec<f64> = (0..=n).map(|i| i as f64 * step).collect();
        let top = n as f64 * step;
        (ticks, step, top)
    });
    view! {
        <div class="chart-plot" node_ref=frame>
            <svg class="chart-svg" role="img" aria-label=label
                viewBox=move || format!("0 0 {} {}", width.get(), height())>
                {move || geometry.with(|(ticks, step, top)| {
                    let (w, left, h) = (width.get(), label_w(), height());
                    // Room on the right for the longest bar's count.
                    let right = w - RIGHT - 36.0;
                    let x = move |v: f64| left + v / top * (right - left);
                    let grid = ticks.iter().map(|v| view! {
                        <line class="chart-grid chart-grid-x" x1=x(*v) x2=x(*v) y1=TOP y2=h - BOTTOM/>
                        <text class="chart-tick" x=x(*v) y=h - BOTTOM + 17.0 text-anchor="middle">{format_tick(*v, *step)}</text>
                    }).collect_view();
                    let drawn = bars.get().into_iter().enumerate().map(|(i, b)| {
                        let y = TOP + i as f64 * BAR_ROW + (BAR_ROW - BAR_THICKNESS) / 2.0;
                        let shown = if b.label.chars().count() > BAR_LABEL_CHARS {
                            format!("{}…", b.label.chars().take(BAR_LABEL_CHARS - 1).collect::<String>())
                        } else {
                            b.label.clone()
                        };
                        view! {
                            <g data-test="chart-bar" data-label=b.label.clone() data-value=b.value.to_string()>
                                <text class="chart-bar-label" x=left - 8.0 y=y + BAR_THICKNESS / 2.0 + 4.0 text-anchor="end">{shown}</text>
                                <rect class="chart-bar" x=left y=y width=(x(b.value) - left).max(2.0) height=BAR_THICKNESS rx="3"/>
                                <text class="chart-bar-value" x=x(b.value) + 6.0 y=y + BAR_THICKNESS / 2.0 + 4.0>{format_number(b.value)}</text>
                            </g>
                        }
                    }).collect_view();
                    // No bars: the message alone, without an axis of nothing.
                    if bars.with(Vec::is_empty) {
                        return view! {
                            <text class="chart-empty" x=w / 2.0 y=h / 2.0 + 4.0 text-anchor="middle">{empty.clone()}</text>
                        }.into_any();
                    }
                    view! {
                        <g>{grid}</g>
                        <line class="chart-axis" x1=left x2=left y1=TOP y2=h - BOTTOM/>
                        {drawn}
                    }.into_any()
                })}
            </svg>
        </div>
    }
}

/// Where the lowest and the highest value lie (x, y, value), when they differ.
fn extremes(drawn: &[Drawn], scale: &Scale) -> Option<(Mark, Mark)> {
    let min = drawn.iter().min_by(|a, b| a.low().total_cmp(&b.low()))?;
    let max = drawn.iter().max_by(|a, b| a.high().total_cmp(&b.high()))?;
    let min = Mark {
        x: min.x,
        y: scale.y(min.low()),
        value: min.low(),
    };
    let max = Mark {
        x: max.x,
        y: scale.y(max.high()),
        value: max.high(),
    };
    (max.value > min.value).then_some((min, max))
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Mark {
    x: f64,
    y: f64,
    value: f64,
}

/// "max 23.1" above the highest point, "min 18.2" below the lowest.
#[component]
fn MarkLabel(point: Mark, above: bool, w: f64) -> impl IntoView {
    let anchor = if point.x < LEFT + 40.0 {
        "start"
    } else if point.x > w - RIGHT - 40.0 {
        "end"
    } else {
        "middle"
    };
    let y = if above {
        (point.y - 8.0).max(TOP + 9.0)
    } else {
        (point.y + 15.0).min(H - BOTTOM - 4.0)
    };
    let text = format!(
        "{} {}",
        if above { "max" } else { "min" },
        format_number(point.value)
    );
    view! {
        <circle class="chart-mark" cx=point.x cy=point.y r="3.5"/>
        <text class="chart-mark-label" x=point.x y=y text-anchor=anchor>{text}</text>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_data() {
        let (ticks, step) = nice_ticks(18.3, 23.7, 4);
        assert_eq!(step, 2.0);
        assert_eq!(ticks, vec![18.0, 20.0, 22.0, 24.0]);
        let (ticks, _) = nice_ticks(21.5, 21.5, 4);
        assert!(ticks.first().unwrap() < &21.5 && ticks.last().unwrap() > &21.5);
        let (ticks, step) = nice_ticks(0.0, 0.0, 4);
        assert_eq!(step, 0.5);
        assert_eq!(ticks.len(), 5);
    }

    #[test]
    fn tick_labels_have_the_decimals_the_step_needs() {
        assert_eq!(format_tick(20.0, 2.0), "20");
        assert_eq!(format_tick(0.25, 0.25), "0.25");
        assert_eq!(format_tick(0.5, 0.25), "0.50");
        assert_eq!(format_tick(7.5, 2.5), "7.5");
        assert_eq!(format_tick(-0.0, 0.5), "0.0");
    }

    #[test]
    fn time_ticks_fall_on_round_local_times() {
        // One hour from 10:07 UTC, in UTC+1: ticks every 10 minutes, on the local clock.
        let from = 1_700_000_000_000 - 1_700_000_000_000 % HOUR + 7 * MINUTE;
        let (ticks, step) = time_ticks(from, from + HOUR, HOUR, 6);
        assert_eq!(step, 10 * MINUTE);
        assert_eq!(ticks[0] - from, 3 * MINUTE);
        assert!(ticks.iter().all(|t| (t + HOUR) % (10 * MINUTE) == 0));
        // A week: one tick a day, at local midnight.
        let (ticks, step) = time_ticks(from, from + 7 * DAY, 2 * HOUR, 8);
        assert_eq!(step, DAY);
        assert!(ticks.iter().all(|t| (t + 2 * HOUR) % DAY == 0));
    }
}
