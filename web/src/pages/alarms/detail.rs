//! `/alarms/:id`: one alarm: its severity and status, the values that raised it, who it is
//! assigned to, and its history (raised, stepped, acknowledged, assigned, commented, cleared, and
//! by whom), newest first, read again every few seconds; for holders of `alarms.ack`, the buttons
//! (acknowledge, clear), assigning it to a person of the tenant, and a comment box.

use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::use_params_map;
use stead_api_types::{AlarmAction, AlarmChange, AlarmDetail, Permission};
use uuid::Uuid;

use super::POLL;
use super::actions::AlarmActions;
use super::look::{AlarmStatus, AlarmsChanged, SeverityBadge};
use crate::api;
use crate::chart::LineChart;
use crate::pages::device::interval_for;
use crate::session::{ApiError, use_session};
use crate::shell::{RequirePermission, RequireTenant};
use crate::ui::{
    Action, ErrorMessage, Loader, Spinner, compact_json, format_time, format_time_title, non_empty,
};

/// How often the chart of an active alarm is read again.
const CHART_POLL: std::time::Duration = std::time::Duration::from_secs(10);

/// The longest comment the server takes.
const MAX_COMMENT: usize = 2000;

#[component]
pub fn AlarmPage() -> impl IntoView {
    view! {
        <RequireTenant>
            <RequirePermission permission=Permission::AlarmsRead>
                <AlarmDetailPage/>
            </RequirePermission>
        </RequireTenant>
    }
}

#[component]
fn AlarmDetailPage() -> impl IntoView {
    let session = use_session();
    let params = use_params_map();
    let changed = AlarmsChanged::get();
    let id =
        Memo::new(move |_| params.with(|p| p.get("id").and_then(|s| Uuid::parse_str(&s).ok())));
    let alarm = Loader::new(move || {
        changed.track();
        let id = id.get();
        async move {
            match id {
                Some(id) => api::get_alarm(session, id).await,
                None => Err(ApiError::unexpected("This is not an alarm's address.")),
            }
        }
    });
    alarm.poll(POLL, || true, || {});
    // Equal answers (nothing happened since the last read) change nothing on the page.
    let current = Memo::new(move |_| alarm.data.get());
    let loaded_id = Memo::new(move |_| current.with(|a| a.as_ref().map(|a| a.alarm.id)));
    let not_found = Memo::new(move |_| {
        id.get().is_none()
            || alarm
                .error
                .with(|e| e.as_ref().is_some_and(|e| e.status == 404))
    });

    view! {
        <div class="page">
            <nav class="breadcrumb" aria-label="Breadcrumb">
                <A href="/alarms">"Alarms"</A>
                {move || current.with(|a| a.as_ref().map(|a| a.alarm.alarm_type.clone())).map(|t| view! {
                    <span aria-hidden="true">"/"</span>
                    <span>{t}</span>
                })}
            </nav>
            {move || match loaded_id.get() {
                _ if not_found.get() => view! {
                    <div class="card empty-state" data-test="alarm-not-found">
                        <h2>"Alarm not found"</h2>
                        <p class="muted">"Its device may have been deleted, or it is not yours to see."</p>
                        <A href="/alarms" attr:class="button button-primary">"Back to alarms"</A>
                    </div>
                }.into_any(),
                None if alarm.loading.get() => view! { <div class="card"><Spinner label="Loading the alarm…"/></div> }.into_any(),
                None => view! { <ErrorMessage error=alarm.error_text()/> }.into_any(),
                Some(id) => current.get_untracked().map(|first| view! {
                    <AlarmView id=id detail=Signal::derive(move || current.get().unwrap_or_else(|| first.clone()))/>
                    // A failed poll leaves the last read on screen, with why.
                    <ErrorMessage error=alarm.error_text()/>
                }).into_any(),
            }}
        </div>
    }
}

#[component]
fn AlarmView(id: Uuid, detail: Signal<AlarmDetail>) -> impl IntoView {
    let session = use_session();
    let can_ack = Memo::new(move |_| session.can(Permission::AlarmsAck));
    let actions = AlarmActions::new();
    let busy = actions.busy();
    let a = move || detail.with(|d| d.alarm.clone());
    let state = Memo::new(move |_| detail.with(|d| (d.alarm.active, d.alarm.acknowledged)));
    let title = Memo::new(move |_| detail.with(|d| d.alarm.alarm_type.clone()));
    Effect::new(move |_| crate::ui::set_title(&format!("Alarm {}", title.get())));

    view! {
        <header class="page-header">
            <div>
                <h1 data-test="alarm-title">{move || title.get()}</h1>
                <p class="muted">
                    "On "
                    {move || {
                        let a = a();
                        view! { <A href=format!("/devices/{}?tab=alarms", a.device_id) attr:data-test="alarm-device">{a.device_name}</A> }
                    }}
                    {move || format!(" · since {}", format_time(&a().started_at))}
                </p>
            </div>
            <div class="header-status" data-test="alarm-header-status">
                {move || view! { <SeverityBadge severity=a().severity/> }}
                {move || { let (active, acknowledged) = state.get(); view! { <AlarmStatus active=active acknowledged=acknowledged/> } }}
            </div>
        </header>

        <Show when=move || can_ack.get() && (state.get().0 || !state.get().1)>
            <div class="button-row" data-test="alarm-actions">
                <Show when=move || !state.get().1>
                    <button type="button" class="button button-primary" data-test="alarm-ack" disabled=move || busy.get()
                        on:click=move |_| actions.one(id, AlarmAction::Acknowledge, |_| {})>
                        "Acknowledge"
                    </button>
                </Show>
                <Show when=move || state.get().0>
                    <button type="button" class="button button-secondary" data-test="alarm-clear" disabled=move || busy.get()
                        on:click=move |_| actions.one(id, AlarmAction::Clear, |_| {})>
                        "Clear"
                    </button>
                </Show>
                <span class="muted small">
                    {move || match state.get() {
                        (true, false) => "Acknowledge it to say someone is on it; clear it once it is dealt with.",
                        (true, true) => "It clears by itself when its rule's clear condition holds, or by hand.",
                        _ => "Cleared: acknowledge it to close it.",
                    }}
                </span>
            </div>
        </Show>

        <AlarmChart detail=detail/>

        <div class="grid">
            <div class="stack">
                <section class="card" aria-labelledby="history-title">
                    <h2 id="history-title">"History"</h2>
                    <Show when=move || can_ack.get()>
                        <CommentBox id=id/>
                    </Show>
                    {move || {
                        let mut history = detail.with(|d| d.history.clone());
                        history.reverse();
                        view! {
                            <ol class="timeline alarm-history" data-test="alarm-history">
                                {history.into_iter().map(|change| view! { <HistoryEntry change=change/> }).collect_view()}
                            </ol>
                        }
                    }}
                </section>
            </div>
            <div class="stack">
                <section class="card">
                    <h2>"Details"</h2>
                    {move || {
                        let a = a();
                        let when = |t: Option<chrono::DateTime<chrono::Utc>>| match t {
                            Some(t) => view! { <span title=format_time_title(&t)>{format_time(&t)}</span> }.into_any(),
                            None => view! { <span class="muted">"—"</span> }.into_any(),
                        };
                        view! {
                            <dl class="details" data-test="alarm-details">
                                <dt>"Type"</dt>
                                <dd><code>{a.alarm_type.clone()}</code></dd>
                                <dt>"Severity"</dt>
                                <dd><SeverityBadge severity=a.severity/></dd>
                                <dt>"Device"</dt>
                                <dd><A href=format!("/devices/{}", a.device_id)>{a.device_name.clone()}</A></dd>
                                <dt>"Started"</dt>
                                <dd>{when(Some(a.started_at))}</dd>
                                <dt>"Updated"</dt>
                                <dd>{when(Some(a.updated_at))}</dd>
                                <dt>"Acknowledged"</dt>
                                <dd data-test="alarm-acknowledged-at">{when(a.acknowledged_at)}</dd>
                                <dt>"Cleared"</dt>
                                <dd data-test="alarm-cleared-at">{when(a.cleared_at)}</dd>
                                <dt>"Assigned to"</dt>
                                <dd data-test="alarm-assignee">{a.assignee_email.clone().unwrap_or_else(|| "Nobody".into())}</dd>
                            </dl>
                        }
                    }}
                </section>
                <section class="card">
                    <h2>"Values that raised it"</h2>
                    {move || view! { <AlarmValues values=detail.with(|d| d.alarm.details.clone())/> }}
                </section>
                <Show when=move || can_ack.get()>
                    <AssignBox id=id assignee=Signal::derive(move || detail.with(|d| d.alarm.assignee_id.map(|u| (u, d.alarm.assignee_email.clone().unwrap_or_default()))))/>
                </Show>
            </div>
        </div>
    }
}

/// The numeric values among those that raised the alarm: the keys worth a chart.
fn numeric_keys(values: &serde_json::Value) -> Vec<String> {
    values
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(_, v)| v.is_number())
                .map(|(k, _)| k.clone())
                .take(api::MAX_KEYS)
                .collect()
        })
        .unwrap_or_default()
}

/// The keys that raised the alarm, from a while before it started until a while after it
/// cleared (or now, read again every 10 s while it is active), its active time shaded.
#[component]
fn AlarmChart(detail: Signal<AlarmDetail>) -> impl IntoView {
    let session = use_session();
    let keys = Memo::new(move |_| detail.with(|d| numeric_keys(&d.alarm.details)));
    let span = Memo::new(move |_| {
        detail.with(|d| {
            (
                d.alarm.device_id,
                d.alarm.started_at.timestamp_millis(),
                d.alarm.cleared_at.map(|t| t.timestamp_millis()),
            )
        })
    });
    let series = Loader::new(move || {
        let keys = keys.get();
        let (device, start, end) = span.get();
        async move {
            let now = crate::ui::now().timestamp_millis();
            let until = end.unwrap_or(now);
            let margin = ((until - start) / 4).max(5 * 60_000);
            let (from, to) = (start - margin, (until + margin).min(now).max(until));
            let interval = interval_for(to - from);
            if keys.is_empty() {
                return Ok(None);
            }
            api::aggregate_telemetry(session, device, &keys, (from, to), interval, "avg")
                .await
                .map(|s| Some((s, (from, to))))
        }
    });
    series.poll(
        CHART_POLL,
        move || span.with_untracked(|s| s.2.is_none()),
        || {},
    );
    let shade = Signal::derive(move || {
        let (_, start, end) = span.get();
        Some((
            start,
            end.unwrap_or_else(|| crate::ui::now().timestamp_millis()),
        ))
    });
    let no_band = Signal::derive(Vec::new);
    view! {
        <section class="card" data-test="alarm-chart" aria-labelledby="alarm-chart-title">
            <h2 id="alarm-chart-title">"Around the alarm"</h2>
            <p class="muted small">"The values that raised it, from before it started until after it cleared (or now); the shaded stretch is while it was active."</p>
            <ErrorMessage error=series.error_text()/>
            {move || match series.data.get() {
                None => view! { <Spinner label="Loading the values…"/> }.into_any(),
                Some(None) => view! { <p class="empty-inline muted" data-test="no-alarm-chart">"No numeric values raised it: nothing to chart."</p> }.into_any(),
                Some(Some((s, domain))) => view! {
                    <div class="chart-grid-wrap">
                        {keys.get().into_iter().map(|key| {
                            let points = s.series.get(&key).cloned().unwrap_or_default();
                            let label = format!("Chart of {key}");
                            view! {
                                <figure class="chart" data-test="chart" data-key=key.clone()>
                                    <figcaption class="chart-head"><span class="chart-key">{key.clone()}</span></figcaption>
                                    <LineChart points=points lows=no_band highs=no_band domain=domain
                                        interval_ms=s.interval_ms label=label shade=shade/>
                                </figure>
                            }
                        }).collect_view()}
                    </div>
                }.into_any(),
            }}
        </section>
    }
}

/// The values a rule saw when it raised (or last stepped) the alarm: a table of keys and values
/// when they are an object, else the JSON.
#[component]
fn AlarmValues(values: serde_json::Value) -> impl IntoView {
    match values {
        serde_json::Value::Object(map) if !map.is_empty() => view! {
            <table class="table table-compact" data-test="alarm-values">
                <tbody>
                    {map.into_iter().map(|(key, value)| view! {
                        <tr data-test="alarm-value" data-key=key.clone()>
                            <td class="muted">{key.clone()}</td>
                            <td class="mono">{compact_json(&value)}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        }
        .into_any(),
        serde_json::Value::Null | serde_json::Value::Object(_) => {
            view! { <p class="muted" data-test="alarm-values">"No values were recorded."</p> }.into_any()
        }
        other => view! {
            <pre class="code-block json-block" data-test="alarm-values">{serde_json::to_string_pretty(&other).unwrap_or_default()}</pre>
        }
        .into_any(),
    }
}

/// How a kind of change reads: its words, its icon, and its tone (`.tone-*`).
fn change_look(kind: &str) -> (&'static str, &'static str, &'static str) {
    match kind {
        "raised" => ("Raised", "!", "tone-bad"),
        "severity_changed" => ("Severity changed", "↕", "tone-warn"),
        "acknowledged" => ("Acknowledged", "✓", "tone-good"),
        "cleared" => ("Cleared", "○", "tone-good"),
        "assigned" => ("Assigned", "→", "tone-info"),
        "unassigned" => ("Unassigned", "←", "tone-info"),
        "commented" => ("Comment", "✎", ""),
        _ => ("Changed", "·", ""),
    }
}

/// `key = value, …` of an object, else its JSON.
fn values_line(values: &serde_json::Value) -> Option<String> {
    match values {
        serde_json::Value::Null => None,
        serde_json::Value::Object(map) if map.is_empty() => None,
        serde_json::Value::Object(map) => Some(
            map.iter()
                .map(|(k, v)| format!("{k} = {}", compact_json(v)))
                .collect::<Vec<_>>()
                .join(", "),
        ),
        other => Some(compact_json(other)),
    }
}

#[component]
fn HistoryEntry(change: AlarmChange) -> impl IntoView {
    let (words, icon, tone) = change_look(&change.kind);
    let actor = if change.actor == "rule" {
        "by its rule".to_owned()
    } else {
        format!("by {}", change.actor)
    };
    let values = values_line(&change.values);
    view! {
        <li class=format!("timeline-event {tone}") data-test="history-entry" data-kind=change.kind.clone()>
            <span class="timeline-icon" aria-hidden="true">{icon}</span>
            <div class="timeline-body">
                <div class="with-action">
                    <span class="timeline-kind" data-test="history-kind">{words}</span>
                    <SeverityBadge severity=change.severity/>
                </div>
                {change.text.map(|text| view! { <p class="timeline-detail comment-text" data-test="history-text">{text}</p> })}
                {values.map(|v| view! { <p class="timeline-detail mono small" data-test="history-values">{v}</p> })}
                <div class="timeline-meta">
                    <span data-test="history-actor">{actor}</span>
                    " · "
                    <time title=format_time_title(&change.at)>{format_time(&change.at)}</time>
                </div>
            </div>
        </li>
    }
}

#[component]
fn CommentBox(id: Uuid) -> impl IntoView {
    let text = RwSignal::new(String::new());
    let action = Action::new();
    let actions = AlarmActions::with_runner(action);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let Some(comment) = non_empty(&text.get_untracked()) else {
            action.refuse("Write the comment first.");
            return;
        };
        if comment.chars().count() > MAX_COMMENT {
            action.refuse(format!(
                "A comment is at most {MAX_COMMENT} characters; this one has {}.",
                comment.chars().count()
            ));
            return;
        }
        actions.one(id, AlarmAction::Comment { text: comment }, move |_| {
            text.set(String::new());
        });
    };
    view! {
        <form class="form comment-form" on:submit=submit novalidate=true>
            <label class="field">
                <span class="sr-only">"Comment"</span>
                <textarea name="comment" rows="3" data-test="comment-text"
                    placeholder="What was done, what to watch, who to call…" bind:value=text></textarea>
            </label>
            <ErrorMessage error=action.error/>
            <div class="form-actions">
                <button type="submit" class="button button-secondary" data-test="add-comment" disabled=move || action.busy.get()>
                    {move || if action.busy.get() { "Adding…" } else { "Add comment" }}
                </button>
            </div>
        </form>
    }
}

/// Assigning the alarm to a person of the tenant (or to nobody). Without `users.read` the only
/// person offered is the signed-in one.
#[component]
fn AssignBox(id: Uuid, assignee: Signal<Option<(Uuid, String)>>) -> impl IntoView {
    let session = use_session();
    let can_list = session.can(Permission::UsersRead);
    let users = Loader::new(move || async move {
        if can_list {
            api::all_users(session).await.map(|p| p.items)
        } else {
            Ok(Vec::new())
        }
    });
    let people = Memo::new(move |_| {
        let me = session.me().map(|m| m.id);
        let mut people: Vec<(Uuid, String)> = users
            .data
            .get()
            .unwrap_or_default()
            .into_iter()
            .filter(|u| u.active)
            .map(|u| {
                let mut label = if u.name.trim().is_empty() {
                    u.email
                } else {
                    format!("{} ({})", u.name, u.email)
                };
                if Some(u.id) == me {
                    label.push_str(" · you");
                }
                (u.id, label)
            })
            .collect();
        if let Some(me) = session
            .me()
            .filter(|m| !people.iter().any(|(id, _)| *id == m.id))
        {
            people.insert(0, (me.id, format!("{} · you", me.email)));
        }
        if let Some((u, email)) = assignee
            .get()
            .filter(|(u, _)| !people.iter().any(|(id, _)| id == u))
        {
            people.push((u, email));
        }
        people
    });
    let chosen = RwSignal::new(String::new());
    // The box shows whom the alarm is assigned to, also when someone else changes it.
    let current = Memo::new(move |_| assignee.get().map(|(u, _)| u));
    Effect::new(move |_| chosen.set(current.get().map(|u| u.to_string()).unwrap_or_default()));
    let action = Action::new();
    let actions = AlarmActions::with_runner(action);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let user_id = Uuid::parse_str(&chosen.get_untracked()).ok();
        if user_id == current.get_untracked() {
            action.refuse(match user_id {
                Some(_) => "It is assigned to this person already.",
                None => "It is not assigned to anyone.",
            });
            return;
        }
        actions.one(id, AlarmAction::Assign { user_id }, |_| {});
    };
    view! {
        <section class="card">
            <h2>"Assign"</h2>
            <p class="muted">"Who looks after it. Everyone with access still sees it."</p>
            <form class="form" on:submit=submit novalidate=true>
                <label class="field">
                    <span class="sr-only">"Person"</span>
                    <select name="assignee" data-test="assignee-select" on:change=move |ev| chosen.set(event_target_value(&ev))>
                        <option value="" selected=move || chosen.get().is_empty()>"Nobody"</option>
                        {move || people.get().into_iter().map(|(u, label)| {
                            let value = u.to_string();
                            let is = value.clone();
                            view! { <option value=value selected=move || chosen.get() == is>{label}</option> }
                        }).collect_view()}
                    </select>
                </label>
                <ErrorMessage error=action.error/>
                <ErrorMessage error=users.error_text()/>
                <div class="form-actions">
                    <button type="submit" class="button button-secondary" data-test="assign-alarm" disabled=move || action.busy.get()>
                        {move || if action.busy.get() { "Saving…" } else { "Save" }}
                    </button>
                </div>
            </form>
        </section>
    }
}
