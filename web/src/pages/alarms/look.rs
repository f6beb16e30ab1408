//! How an alarm looks wherever it shows: its severity as a coloured badge, its status (active or
//! cleared, acknowledged or not), the active alarms counted by severity; and the signal that
//! tells the bell and every open list to read again when a person changed an alarm here.

use leptos::prelude::*;
use stead_api_types::{AlarmCounts, AlarmSeverity};

use crate::ui::{StatusBadge, Tone};

pub fn severity_words(severity: AlarmSeverity) -> &'static str {
    match severity {
        AlarmSeverity::Critical => "Critical",
        AlarmSeverity::Major => "Major",
        AlarmSeverity::Minor => "Minor",
        AlarmSeverity::Warning => "Warning",
        AlarmSeverity::Indeterminate => "Indeterminate",
    }
}

/// The severity in its colour (`.sev-<name>` in the stylesheet).
#[component]
pub fn SeverityBadge(severity: AlarmSeverity) -> impl IntoView {
    let name = severity.as_str();
    view! {
        <span class=format!("badge sev sev-{name}") data-test="alarm-severity" data-severity=name>
            {severity_words(severity)}
        </span>
    }
}

/// Active or cleared, and acknowledged or not, as two badges.
#[component]
pub fn AlarmStatus(active: bool, acknowledged: bool) -> impl IntoView {
    let (tone, text, key) = if active {
        (Tone::Bad, "Active", "active")
    } else {
        (Tone::Neutral, "Cleared", "cleared")
    };
    let (ack_tone, ack_text, ack_key) = if acknowledged {
        (Tone::Good, "Acknowledged", "acknowledged")
    } else {
        (Tone::Warn, "Unacknowledged", "unacknowledged")
    };
    view! {
        <span class="alarm-status" data-test="alarm-status" data-active=active.to_string()
            data-acknowledged=acknowledged.to_string()>
            <StatusBadge tone=tone text=text status=key/>
            <StatusBadge tone=ack_tone text=ack_text status=ack_key/>
        </span>
    }
}

fn count_of(counts: &AlarmCounts, severity: AlarmSeverity) -> u64 {
    match severity {
        AlarmSeverity::Critical => counts.critical,
        AlarmSeverity::Major => counts.major,
        AlarmSeverity::Minor => counts.minor,
        AlarmSeverity::Warning => counts.warning,
        AlarmSeverity::Indeterminate => counts.indeterminate,
    }
}

/// Active alarms by severity, most severe first; with `on_pick`, each count narrows a list to its
/// severity (`picked` is the one chosen, picked again to widen).
#[component]
pub fn SeverityCounts(
    #[prop(into)] counts: Signal<Option<AlarmCounts>>,
    #[prop(optional)] on_pick: Option<Callback<Option<AlarmSeverity>>>,
    #[prop(optional, into)] picked: Option<Signal<Option<AlarmSeverity>>>,
) -> impl IntoView {
    let picked = picked.unwrap_or_else(|| Signal::derive(|| None));
    view! {
        <section class="card stats-card" aria-label="Active alarms by severity">
            <div class="stats" data-test="severity-counts">
                {AlarmSeverity::ALL.into_iter().map(|severity| {
                    let name = severity.as_str();
                    let n = move || counts.with(|c| c.as_ref().map(|c| count_of(c, severity)));
                    let text = move || n().map_or_else(|| "…".to_owned(), |n| n.to_string());
                    let inner = move || view! {
                        <span class="stat-label"><span class=format!("sev-dot sev-{name}") aria-hidden="true"></span>{severity_words(severity)}</span>
                        <span class="stat-value" class:stat-zero=move || n() == Some(0) data-test="severity-count" data-severity=name>{text}</span>
                        <span class="stat-sub">"active"</span>
                    };
                    match on_pick {
                        Some(pick) => view! {
                            <button type="button" class="stat stat-button" data-test=format!("count-{name}")
                                class:stat-picked=move || picked.get() == Some(severity)
                                title=move || if picked.get() == Some(severity) { "Show every severity".to_owned() } else { format!("Show only {} alarms", name) }
                                on:click=move |_| pick.run((picked.get_untracked() != Some(severity)).then_some(severity))>
                                {inner()}
                            </button>
                        }.into_any(),
                        None => view! { <div class="stat">{inner()}</div> }.into_any(),
                    }
                }).collect_view()}
            </div>
        </section>
    }
}

/// Bumped after a person changed alarms in this tab, so that the bell and the lists read again
/// at once rather than at their next poll. Provided once by the signed-in frame.
#[derive(Clone, Copy)]
pub struct AlarmsChanged(RwSignal<u64>);

impl AlarmsChanged {
    pub fn provide() {
        provide_context(AlarmsChanged(RwSignal::new(0)));
    }

    /// The frame's, or (outside it) one that nobody else hears.
    pub fn get() -> Self {
        use_context().unwrap_or_else(|| AlarmsChanged(RwSignal::new(0)))
    }

    pub fn bump(self) {
        self.0.try_update(|n| *n += 1);
    }

    pub fn track(self) {
        self.0.track();
    }
}
