//! The device's life as it happens: presence (online, last seen, last connect and disconnect,
//! counters) and the latest value of each key, kept current by the live stream.
//!
//! `DeviceLive` owns the state the device page shares: what was loaded, what arrived live since,
//! and the stream's status. Live values are kept apart from loaded ones and merged on read (the
//! newer time wins), so a slow first load never overwrites a value that arrived meanwhile.

use std::collections::{BTreeMap, HashMap};

use leptos::prelude::*;
use stead_api_types::{DisconnectReason, LatestTelemetry, LiveEvent, Presence, TsValue};
use uuid::Uuid;

use crate::api;
use crate::live::{LiveStatus, follow_device};
use crate::session::use_session;
use crate::ui::{ErrorMessage, Loader, Spinner, format_age, format_ms_title, format_significant};

/// How long a changed value stays highlighted.
const FLASH_MS: u64 = 1500;
/// Live points kept for the charts; older ones are in the loaded aggregates anyway.
const MAX_LIVE_POINTS: usize = 5000;
/// Telemetry does not carry counters: presence is fetched again at most this often while
/// messages arrive.
const PRESENCE_REFRESH_MS: u64 = 3000;

/// A numeric value received live, for the charts.
#[derive(Clone, Debug, PartialEq)]
pub struct LivePoint {
    pub key: String,
    pub ts: i64,
    pub value: f64,
    /// When the browser received it (ms), to tell it from what a later load already contains.
    pub received_ms: f64,
}

#[derive(Clone, Copy)]
pub struct DeviceLive {
    pub id: Uuid,
    pub now: ReadSignal<f64>,
    pub presence: Loader<Presence>,
    pub latest: Loader<LatestTelemetry>,
    live_latest: RwSignal<LatestTelemetry>,
    /// The latest value of each key, loaded or live, whichever is newer.
    pub values: Memo<LatestTelemetry>,
    pub points: RwSignal<Vec<LivePoint>>,
    /// Keys whose value changed lately, with a generation so that only the newest change ends
    /// the highlight.
    flash: RwSignal<HashMap<String, u64>>,
    flash_seq: StoredValue<u64>,
    pub status: RwSignal<LiveStatus>,
    /// Bumped when the timeline may have new entries (presence changed, stream reopened).
    pub timeline_stale: RwSignal<u64>,
    /// Bumped when the charts should load again (stream reopened after a gap).
    pub charts_stale: RwSignal<u64>,
    presence_refresh_pending: RwSignal<bool>,
    /// Online, last connect, last disconnect of the previous live presence event.
    last_sessions: StoredValue<Option<Sessions>>,
}

type Sessions = (bool, Option<i64>, Option<i64>);

impl DeviceLive {
    /// Loads presence and latest values and follows the live stream while the caller lives.
    pub fn start(id: Uuid, now: ReadSignal<f64>) -> DeviceLive {
        let session = use_session();
        let latest = Loader::new(move || api::latest_telemetry(session, id));
        let live_latest = RwSignal::new(BTreeMap::new());
        let live = DeviceLive {
            id,
            now,
            presence: Loader::new(move || api::presence(session, id)),
            latest,
            live_latest,
            values: Memo::new(move |_| merge_latest(latest.data.get(), live_latest)),
            points: RwSignal::new(Vec::new()),
            flash: RwSignal::new(HashMap::new()),
            flash_seq: StoredValue::new(0),
            status: RwSignal::new(LiveStatus::Connecting),
            timeline_stale: RwSignal::new(0),
            charts_stale: RwSignal::new(0),
            presence_refresh_pending: RwSignal::new(false),
            last_sessions: StoredValue::new(None),
        };
        follow_device(
            session,
            id,
            live.status,
            move |reconnected| {
                if reconnected {
                    // Whatever happened while the stream was down.
                    live.presence.reload();
                    live.latest.reload();
                    live.timeline_stale.update(|n| *n += 1);
                    live.charts_stale.update(|n| *n += 1);
                }
            },
            move |event| live.apply(event),
        );
        live
    }

    fn apply(self, event: LiveEvent) {
        match event {
            LiveEvent::Presence(p) => {
                // The stream opens with the current presence: the timeline only needs a look
                // when a session began or ended since the previous event (or, for the first,
                // since the page loaded).
                let sessions = (p.online, p.last_connect, p.last_disconnect);
                let Some(previous) = self.last_sessions.try_get_value() else {
                    return;
                };
                let previous = previous.or_else(|| {
                    self.presence
                        .data
                        .try_with_untracked(|d| {
                            d.as_ref()
                                .map(|d| (d.online, d.last_connect, d.last_disconnect))
                        })
                        .flatten()
                });
                self.last_sessions.try_set_value(Some(sessions));
                self.presence.data.try_set(Some(p));
                if previous != Some(sessions) {
                    self.timeline_stale.try_update(|n| *n += 1);
                }
            }
            LiveEvent::Telemetry { ts, values } => {
                let received_ms = js_sys::Date::now();
                let Some(before) = self.values.try_get_untracked() else {
                    return;
                };
                let mut changed = Vec::new();
                self.live_latest.try_update(|m| {
                    for (key, value) in &values {
                        let newer = before.get(key).is_none_or(|old| old.ts <= ts);
                        if !newer {
                            continue;
                        }
                        if before.get(key).is_none_or(|old| old.value != *value) {
                            changed.push(key.clone());
                        }
                        m.insert(
                            key.clone(),
                            TsValue {
                                ts,
                                value: value.clone(),
                            },
                        );
                    }
                });
                self.points.try_update(|points| {
                    for (key, value) in &values {
                        if let Some(value) = value.as_f64() {
                            points.push(LivePoint {
                                key: key.clone(),
                                ts,
                                value,
                                received_ms,
                            });
                        }
                    }
                    let excess = points.len().saturating_sub(MAX_LIVE_POINTS);
                    points.drain(..excess);
                });
                for key in changed {
                    self.flash(key);
                }
                self.touch_presence(ts);
            }
        }
    }

    /// A message means the device was active: "last seen" moves now, and the counters are
    /// fetched again shortly.
    fn touch_presence(self, ts: i64) {
        let seen = (js_sys::Date::now() as i64).max(ts);
        self.presence.data.try_update(|p| {
            if let Some(p) = p {
                p.last_activity = Some(p.last_activity.map_or(seen, |a| a.max(seen)));
            }
        });
        // Also when the page is gone (the signal no longer exists).
        if self
            .presence_refresh_pending
            .try_get_untracked()
            .unwrap_or(true)
        {
            return;
        }
        self.presence_refresh_pending.try_set(true);
        set_timeout(
            move || {
                if self.presence_refresh_pending.try_set(false).is_none() {
                    self.presence.reload();
                }
            },
            std::time::Duration::from_millis(PRESENCE_REFRESH_MS),
        );
    }

    fn flash(self, key: String) {
        let Some(seq) = self.flash_seq.try_get_value().map(|s| s + 1) else {
            return;
        };
        self.flash_seq.try_set_value(seq);
        self.flash.try_update(|m| {
            m.insert(key.clone(), seq);
        });
        set_timeout(
            move || {
                self.flash.try_update(|m| {
                    if m.get(&key) == Some(&seq) {
                        m.remove(&key);
                    }
                });
            },
            std::time::Duration::from_millis(FLASH_MS),
        );
    }
}

/// Loaded latest values, overridden by newer live ones.
fn merge_latest(
    loaded: Option<LatestTelemetry>,
    live: RwSignal<LatestTelemetry>,
) -> LatestTelemetry {
    let mut merged = loaded.unwrap_or_default();
    live.with(|live| {
        for (key, v) in live {
            if merged.get(key).is_none_or(|old| old.ts <= v.ts) {
                merged.insert(key.clone(), v.clone());
            }
        }
    });
    merged
}

/// A disconnect reason in words.
pub fn reason_words(reason: DisconnectReason) -> String {
    match reason {
        DisconnectReason::ClientDisconnect => "disconnected by the device".into(),
        DisconnectReason::KeepAliveTimeout => "keep-alive timeout".into(),
        DisconnectReason::TakenOver => "taken over by a new connection".into(),
        DisconnectReason::CredentialsRevoked => "credentials revoked".into(),
        DisconnectReason::ProtocolError => "protocol error".into(),
        DisconnectReason::ServerShutdown => "server shut down".into(),
        DisconnectReason::ConnectionLost => "connection lost".into(),
        DisconnectReason::NodeLost => "its server node was lost".into(),
        DisconnectReason::GatewayDisconnected => "its gateway disconnected".into(),
        DisconnectReason::CredentialsExpired => "credentials expired".into(),
        // A reason added after this list: its wire name in words ("rate_limited" → "rate
        // limited"), until it gets a sentence of its own.
        #[allow(unreachable_patterns)]
        other => serde_json::to_value(other)
            .ok()
            .and_then(|v| v.as_str().map(|s| s.replace('_', " ")))
            .unwrap_or_else(|| "unknown reason".into()),
    }
}

/// "Online" / "Offline" (or "Checking…"), for the page header.
#[component]
pub fn PresenceBadge(live: DeviceLive) -> impl IntoView {
    view! {
        {move || {
            let online = live.presence.data.with(|p| p.as_ref().map(|p| p.online));
            let (class, text) = match online {
                Some(true) => ("presence presence-online", "Online"),
                Some(false) => ("presence presence-offline", "Offline"),
                None if live.presence.error.with(|e| e.is_some()) => ("presence presence-unknown", "Unknown"),
                None => ("presence presence-unknown", "Checking…"),
            };
            view! { <span class=class data-test="presence" role="status">{text}</span> }
        }}
    }
}

/// Whether the page is following the device live.
#[component]
pub fn LiveIndicator(live: DeviceLive) -> impl IntoView {
    move || {
        let (class, text, title) = match live.status.get() {
            LiveStatus::Live => (
                "live live-on",
                "Live".to_owned(),
                "New values appear as they arrive.".to_owned(),
            ),
            LiveStatus::Connecting => ("live live-wait", "Connecting…".to_owned(), String::new()),
            LiveStatus::Retrying { at_ms } => {
                let secs = ((at_ms - live.now.get()) / 1000.0).ceil().max(0.0);
                (
                    "live live-wait",
                    if secs >= 1.0 {
                        format!("Reconnecting in {secs} s")
                    } else {
                        "Reconnecting…".to_owned()
                    },
                    "The live stream dropped; values shown may be stale.".to_owned(),
                )
            }
            LiveStatus::Stopped(reason) => ("live live-off", "Not live".to_owned(), reason),
        };
        view! { <span class=class title=title data-test="live-status">{text}</span> }
    }
}

/// Last seen, last connect and disconnect, counters.
#[component]
pub fn PresenceCard(live: DeviceLive) -> impl IntoView {
    let now = live.now;
    view! {
        <section class="card stats-card" aria-label="Connection status">
            {move || match live.presence.data.get() {
                None if live.presence.loading.get() => view! { <Spinner label="Loading status…"/> }.into_any(),
                None => view! { <ErrorMessage error=live.presence.error_text()/> }.into_any(),
                Some(p) => {
                    let age = move |ms: Option<i64>| ms.map(|ms| format_age(ms, now.get()));
                    let title = |ms: Option<i64>| ms.map(format_ms_title).unwrap_or_default();
                    let never = p.last_connect.is_none() && p.last_activity.is_none();
                    let reason = p.last_disconnect_reason.map(reason_words);
                    let bad = p.errors > 0;
                    view! {
                        <div class="stats">
                            <div class="stat">
                                <span class="stat-label">"Last seen"</span>
                                <span class="stat-value" title=title(p.last_activity)>
                                    {move || age(p.last_activity).unwrap_or_else(|| "Never".into())}
                                </span>
                                <span class="stat-sub">
                                    {if never { "No message yet" } else if p.online { "Connected now" } else { "Not connected" }}
                                </span>
                            </div>
                            <div class="stat">
                                <span class="stat-label">"Connected"</span>
                                <span class="stat-value" title=title(p.last_connect)>
                                    {move || age(p.last_connect).unwrap_or_else(|| "Never".into())}
                                </span>
                                <span class="stat-sub">{p.online.then_some("Session open")}</span>
                            </div>
                            <div class="stat">
                                <span class="stat-label">"Disconnected"</span>
                                <span class="stat-value" title=title(p.last_disconnect)>
                                    {move || age(p.last_disconnect).unwrap_or_else(|| "Never".into())}
                                </span>
                                <span class="stat-sub" data-test="disconnect-reason">
                                    {reason.map(|mut r| {
                                        if let Some(first) = r.get_mut(0..1) {
                                            first.make_ascii_uppercase();
                                        }
                                        r
                                    })}
                                </span>
                            </div>
                            <div class="stat">
                                <span class="stat-label">"Messages"</span>
                                <span class="stat-value" data-test="messages">{p.messages}</span>
                                <span class="stat-sub">"accepted"</span>
                            </div>
                            <div class="stat" class:stat-bad=bad>
                                <span class="stat-label">"Errors"</span>
                                <span class="stat-value" data-test="errors">{p.errors}</span>
                                <span class="stat-sub">
                                    {if p.errors > 0 { "rejected — see the timeline" } else { "rejected" }}
                                </span>
                            </div>
                        </div>
                    }.into_any()
                }
            }}
        </section>
    }
}

/// A value as a person reads it: as the device sent it, objects as compact JSON.
fn value_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        // Long float noise (23.140951078794) is cut to significant digits; the title keeps
        // the value as sent.
        serde_json::Value::Number(n) if n.to_string().len() > 10 => n
            .as_f64()
            .map_or_else(|| n.to_string(), |v| format_significant(v, 6)),
        other => other.to_string(),
    }
}

/// A card per key with its latest value and its age.
#[component]
pub fn LatestValues(live: DeviceLive) -> impl IntoView {
    let values = live.values;
    let keys = Memo::new(move |_| values.with(|v| v.keys().cloned().collect::<Vec<_>>()));
    view! {
        <section class="card" aria-labelledby="latest-title">
            <div class="card-header">
                <h2 id="latest-title">"Latest values"</h2>
                {move || {
                    let n = keys.with(Vec::len);
                    (n > 0).then(|| view! {
                        <span class="muted small">{if n == 1 { "1 key".to_owned() } else { format!("{n} keys") }}</span>
                    })
                }}
            </div>
            {move || {
                let loaded = live.latest.data.with(Option::is_some);
                if !loaded && keys.with(Vec::is_empty) {
                    if live.latest.loading.get() {
                        return view! { <Spinner label="Loading values…"/> }.into_any();
                    }
                    if live.latest.error.with(Option::is_some) {
                        return view! { <ErrorMessage error=live.latest.error_text()/> }.into_any();
                    }
                }
                if keys.with(Vec::is_empty) {
                    return view! {
                        <div class="empty-inline" data-test="no-telemetry">
                            <p class="strong">"No telemetry yet"</p>
                            <p class="muted">
                                "Connect the device with the "
                                <a href="#connect">"instructions below"</a>
                                ". Values appear here as soon as they arrive, without reloading."
                            </p>
                        </div>
                    }.into_any();
                }
                view! {
                    <div class="value-grid">
                        <For each=move || keys.get() key=|k| k.clone() let:key>
                            <ValueCard live=live values=values key=key/>
                        </For>
                    </div>
                }.into_any()
            }}
        </section>
    }
}

#[component]
fn ValueCard(live: DeviceLive, values: Memo<LatestTelemetry>, key: String) -> impl IntoView {
    let k = key.clone();
    let current = Memo::new(move |_| values.with(|v| v.get(&k).cloned()));
    let k = key.clone();
    let flashing = Memo::new(move |_| live.flash.with(|f| f.contains_key(&k)));
    let now = live.now;
    view! {
        <div class="value-card" class:flash=move || flashing.get() data-test="latest-value" data-key=key.clone()>
            <span class="value-key" title=key.clone()>{key.clone()}</span>
            {move || current.get().map(|tv| {
                let text = value_text(&tv.value);
                let exact = match &tv.value {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let is_text = tv.value.is_string();
                let is_long = text.chars().count() > 40 || tv.value.is_object() || tv.value.is_array();
                view! {
                    <span class="value" class:value-text=is_text class:value-long=is_long title=exact data-test="value">
                        {text.clone()}
                    </span>
                    <span class="value-age" title=format_ms_title(tv.ts)>
                        {move || format_age(tv.ts, now.get())}
                    </span>
                }
            })}
        </div>
    }
}
