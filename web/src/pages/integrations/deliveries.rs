//! An endpoint's delivery log: newest first, filtered by status, paged, read again every 3 s
//! while live so that deliveries show as they happen; a delivery's detail (the request body,
//! every attempt with its answer); replaying one delivery, or every event since a time.

use leptos::prelude::*;
use stead_api_types::{DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookDeliveryPage};
use uuid::Uuid;

use crate::api;
use crate::session::use_session;
use crate::ui::{
    Action, ErrorMessage, Loader, Modal, Pagination, RefreshButton, Spinner, StatusBadge,
    TableHead, Tone, format_age, format_time, format_time_title, from_local_input, to_local_input,
    use_clock, use_toasts,
};

/// How often the log is read again while live.
const POLL_MS: u64 = 3000;

/// The status filter's choices: the wire name ("" for all) and the words.
const FILTERS: [(&str, &str); 4] = [
    ("", "All"),
    ("succeeded", "Succeeded"),
    ("pending", "Pending"),
    ("failed", "Failed"),
];

pub fn status_look(status: DeliveryStatus) -> (Tone, &'static str) {
    match status {
        DeliveryStatus::Succeeded => (Tone::Good, "Succeeded"),
        DeliveryStatus::Pending => (Tone::Warn, "Pending"),
        DeliveryStatus::Failed => (Tone::Bad, "Failed"),
    }
}

#[component]
fn DeliveryBadge(status: DeliveryStatus) -> impl IntoView {
    let (tone, text) = status_look(status);
    view! { <StatusBadge tone=tone text=text status=status.as_str()/> }
}

/// When a retry is due, seen from `now_ms`: "now", "in 12 s", "in 3 min", or the time.
fn format_due(ms: i64, now_ms: f64) -> String {
    let secs = ((ms as f64 - now_ms) / 1000.0).ceil();
    match secs {
        s if s <= 0.0 => "now".into(),
        s if s < 60.0 => format!("in {s} s"),
        s if s < 3600.0 => format!("in {} min", (s / 60.0).ceil()),
        _ => crate::ui::format_ms(ms),
    }
}

/// The last answer in a few words: the HTTP status, else why there was none.
fn answer_words(code: Option<u16>, error: Option<&str>) -> (String, bool) {
    match (code, error) {
        (Some(code), _) => (code.to_string(), !(200..300).contains(&code)),
        (None, Some(e)) => (e.to_owned(), true),
        (None, None) => ("—".into(), false),
    }
}

/// Identifies what a row shows, so that a row is drawn again only when it changed.
type RowKey = (Uuid, &'static str, u32, Option<i64>);

fn row_key(d: &WebhookDelivery) -> RowKey {
    (
        d.id,
        d.status.as_str(),
        d.attempts,
        d.next_attempt_at.map(|t| t.timestamp_millis()),
    )
}

#[component]
pub fn DeliveryLog(
    id: Uuid,
    /// Bumped when something may have queued deliveries (a test event, a replay since a time).
    refresh: Signal<u64>,
    /// Called on each live read, for the page to read the endpoint too.
    on_poll: Callback<()>,
) -> impl IntoView {
    let session = use_session();
    let toasts = use_toasts();
    let status = RwSignal::new(None::<DeliveryStatus>);
    let page = RwSignal::new(1u64);
    let live = RwSignal::new(true);
    let log = Loader::new(move || {
        refresh.track();
        let (status, page) = (status.get(), page.get());
        async move { api::webhook_deliveries(session, id, status, page).await }
    });
    // Equal answers (nothing new) leave the table alone.
    let data = Memo::new(move |_| log.data.get());
    let total = Signal::derive(move || data.with(|d| d.as_ref().map_or(0, |p| p.total)));
    let shown = Memo::new(move |_| data.with(|d| d.as_ref().map(|p| !p.items.is_empty())));
    log.poll(
        std::time::Duration::from_millis(POLL_MS),
        move || live.try_get_untracked() == Some(true),
        move || on_poll.run(()),
    );
    let now = use_clock();
    let opened = RwSignal::new(None::<Uuid>);
    let replay = Action::new().toast_errors(toasts);
    let replay_one = Callback::new(move |delivery: Uuid| {
        replay.run(api::replay_delivery(session, id, delivery), move |_| {
            toasts.success("Replay queued: it carries the event's webhook-id again.");
            page.set(1);
            log.reload();
        });
    });
    let filter_words = move || {
        FILTERS
            .iter()
            .find(|(key, _)| status.get().map_or("", |s| s.as_str()) == *key)
            .map_or("", |(_, words)| *words)
            .to_lowercase()
    };

    view! {
        <section class="card table-card" aria-labelledby="deliveries-title" data-test="delivery-log">
            <div class="card-header card-header-padded">
                <h2 id="deliveries-title">"Deliveries"</h2>
                <div class="card-tools">
                    <div class="segmented" role="group" aria-label="Status">
                        {FILTERS.iter().map(|(key, words)| {
                            let choice = DeliveryStatus::parse(key);
                            view! {
                                <button type="button" class="segment" data-test=format!("delivery-filter-{}", if key.is_empty() { "all" } else { key })
                                    class:segment-active=move || status.get() == choice
                                    on:click=move |_| {
                                        status.set(choice);
                                        page.set(1);
                                    }>
                                    {*words}
                                </button>
                            }
                        }).collect_view()}
                    </div>
                    <label class="checkbox small" title="Read the log again every 3 seconds">
                        <input type="checkbox" data-test="live-toggle" prop:checked=move || live.get()
                            on:change=move |ev| live.set(event_target_checked(&ev))/>
                        <span class="live" class:live-on=move || live.get()>"Live"</span>
                    </label>
                    <Show when=move || !live.get()>
                        <RefreshButton loader=log test="deliveries-refresh"/>
                    </Show>
                </div>
            </div>
            <ErrorMessage error=log.error_text()/>
            {move || match shown.get() {
                None if log.loading.get() => view! { <Spinner label="Loading deliveries…"/> }.into_any(),
                None => ().into_any(),
                Some(false) if status.get().is_some() => view! {
                    <div class="empty-inline empty-padded" data-test="no-deliveries">
                        <p class="muted">{format!("No {} deliveries.", filter_words())}</p>
                    </div>
                }.into_any(),
                Some(false) => view! {
                    <div class="empty-inline empty-padded" data-test="no-deliveries">
                        <p class="strong">"No deliveries yet"</p>
                        <p class="muted">"Each event this endpoint takes shows here as it goes out, with every attempt. Send a test event to try it."</p>
                    </div>
                }.into_any(),
                Some(true) => view! {
                    <div class="table-scroll">
                        <table class="table table-compact">
                            <TableHead columns=&["When", "Event", "Status", "Attempts", "Answer", "Latency", "Next attempt"] actions=true/>
                            <tbody>
                                <For
                                    each=move || data.with(|d| d.as_ref().map(|p| p.items.clone()).unwrap_or_default())
                                    key=row_key
                                    let:delivery
                                >
                                    <DeliveryRow delivery=delivery now=now busy=replay.busy on_open=Callback::new(move |d| opened.set(Some(d))) on_replay=replay_one/>
                                </For>
                            </tbody>
                        </table>
                    </div>
                    <Pagination page=page total=total per_page=api::DELIVERIES_PER_PAGE noun="deliveries"/>
                }.into_any(),
            }}
        </section>

        {move || opened.get().map(|delivery| view! {
            <DeliveryDetail
                endpoint=id
                delivery=delivery
                log=data
                busy=replay.busy
                on_replay=Callback::new(move |d| {
                    opened.set(None);
                    replay_one.run(d);
                })
                on_close=Callback::new(move |_| opened.set(None))
            />
        })}
    }
}

#[component]
fn DeliveryRow(
    delivery: WebhookDelivery,
    now: ReadSignal<f64>,
    busy: RwSignal<bool>,
    on_open: Callback<Uuid>,
    on_replay: Callback<Uuid>,
) -> impl IntoView {
    let id = delivery.id;
    let created = delivery.created_at.timestamp_millis();
    let (answer, answer_bad) =
        answer_words(delivery.last_status_code, delivery.last_error.as_deref());
    let (status, due) = (
        delivery.status,
        delivery.next_attempt_at.map(|t| t.timestamp_millis()),
    );
    view! {
        <tr class="clickable" data-test="delivery-row" data-status=delivery.status.as_str()
            data-event=delivery.event_type.as_str() title="Show the request and every attempt"
            on:click=move |_| on_open.run(id)>
            <td><time title=format_time_title(&delivery.created_at)>{move || format_age(created, now.get())}</time></td>
            <td>
                <code class="small" data-test="delivery-event">{delivery.event_type.as_str()}</code>
                {delivery.replay.then(|| view! { <span class="badge badge-accent" data-test="delivery-replay">"replay"</span> })}
            </td>
            <td><DeliveryBadge status=delivery.status/></td>
            <td data-test="delivery-attempts">{delivery.attempts}</td>
            <td>
                <span class="attr-value" class:danger-text=answer_bad title=answer.clone() data-test="delivery-answer">{answer.clone()}</span>
            </td>
            <td class="muted">{delivery.last_latency_ms.map_or_else(|| "—".to_owned(), |ms| format!("{ms} ms"))}</td>
            <td class="muted">
                {move || match (status, due) {
                    (DeliveryStatus::Pending, Some(ms)) => format_due(ms, now.get()),
                    _ => "—".to_owned(),
                }}
            </td>
            <td class="actions-col">
                <button type="button" class="button button-ghost button-small" data-test="replay-delivery"
                    disabled=move || busy.get()
                    on:click=move |ev| {
                        ev.stop_propagation();
                        on_replay.run(id);
                    }>
                    "Replay"
                </button>
            </td>
        </tr>
    }
}

/// One delivery: the request it sends and every attempt; read again when its row changes.
#[component]
fn DeliveryDetail(
    endpoint: Uuid,
    delivery: Uuid,
    log: Memo<Option<WebhookDeliveryPage>>,
    busy: RwSignal<bool>,
    on_replay: Callback<Uuid>,
    on_close: Callback<()>,
) -> impl IntoView {
    let session = use_session();
    let row = Memo::new(move |_| {
        log.with(|l| {
            l.as_ref()
                .and_then(|p| p.items.iter().find(|d| d.id == delivery).map(row_key))
        })
    });
    let detail = Loader::new(move || {
        row.track();
        api::webhook_delivery(session, endpoint, delivery)
    });

    view! {
        <Modal title="Delivery" on_close=on_close wide=true>
            <div class="delivery-detail" data-test="delivery-detail">
                <ErrorMessage error=detail.error_text()/>
                {move || match detail.data.get() {
                    None => view! { <Spinner label="Loading the delivery…"/> }.into_any(),
                    Some(d) => {
                        let request = serde_json::to_string_pretty(&d.request).unwrap_or_default();
                        let item = d.delivery;
                        view! {
                            <div class="with-action">
                                <DeliveryBadge status=item.status/>
                                <code>{item.event_type.as_str()}</code>
                                {item.replay.then(|| view! { <span class="badge badge-accent">"replay"</span> })}
                            </div>
                            <dl class="details">
                                <dt>"webhook-id"</dt>
                                <dd><code data-test="delivery-event-id">{item.event_id.to_string()}</code></dd>
                                <dt>"Queued"</dt>
                                <dd title=format_time_title(&item.created_at)>{format_time(&item.created_at)}</dd>
                                <dt>"Attempts"</dt>
                                <dd>{item.attempts}</dd>
                                {item.next_attempt_at.filter(|_| item.status == DeliveryStatus::Pending).map(|t| view! {
                                    <dt>"Next attempt"</dt>
                                    <dd title=format_time_title(&t)>{format_time(&t)}</dd>
                                })}
                            </dl>
                            <h3 class="section-title">"Request body"</h3>
                            <pre class="code-block json-block" data-test="delivery-request">{request}</pre>
                            <h3 class="section-title">"Attempts"</h3>
                            <AttemptList attempts=d.attempts/>
                        }.into_any()
                    }
                }}
            </div>
            <div class="modal-actions">
                <button type="button" class="button button-secondary" on:click=move |_| on_close.run(())>"Close"</button>
                <button type="button" class="button button-primary" data-test="replay-delivery-detail"
                    disabled=move || busy.get() on:click=move |_| on_replay.run(delivery)>
                    "Replay"
                </button>
            </div>
        </Modal>
    }
}

#[component]
fn AttemptList(attempts: Vec<WebhookAttempt>) -> impl IntoView {
    if attempts.is_empty() {
        return view! { <p class="muted" data-test="no-attempts">"No attempt yet: it goes out in a moment."</p> }.into_any();
    }
    view! {
        <div class="stack-small">
            <table class="table table-compact">
                <TableHead columns=&["#", "When", "Answer", "Latency", "Response"]/>
                <tbody>
                    {attempts.into_iter().map(|a| {
                        let (answer, bad) = answer_words(a.status_code, a.error.as_deref());
                        view! {
                            <tr data-test="attempt-row">
                                <td>{a.attempt}</td>
                                <td title=format_time_title(&a.at)>{format_time(&a.at)}</td>
                                <td class:danger-text=bad data-test="attempt-answer">{answer}</td>
                                <td>{format!("{} ms", a.latency_ms)}</td>
                                <td>
                                    {match a.response_body.filter(|b| !b.trim().is_empty()) {
                                        Some(body) => view! { <pre class="code-block response-body">{body}</pre> }.into_any(),
                                        None => view! { <span class="muted">"—"</span> }.into_any(),
                                    }}
                                </td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
    .into_any()
}

/// Every event since a time, to this endpoint again.
#[component]
pub fn ReplaySince(id: Uuid, on_replayed: Callback<()>) -> impl IntoView {
    let session = use_session();
    let toasts = use_toasts();
    let since = RwSignal::new(to_local_input(js_sys::Date::now() as i64 - 3_600_000));
    let action = Action::new();
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let Some(at) = from_local_input(&since.get_untracked()) else {
            action.refuse("Pick the date and time to replay from.");
            return;
        };
        action.run(api::replay_webhook_since(session, id, at), move |r| {
            toasts.success(match r.queued {
                0 => "No event since then for this endpoint: nothing to replay.".to_owned(),
                1 => "1 delivery queued.".to_owned(),
                n => format!("{n} deliveries queued."),
            });
            on_replayed.run(());
        });
    };
    view! {
        <section class="card">
            <h2>"Replay events"</h2>
            <p class="muted">"Sends every event since a time to this endpoint again (the ones its filter takes), each with its first webhook-id, so a receiver that remembers ids skips what it already has."</p>
            <form class="form" on:submit=submit novalidate=true>
                <label class="field">
                    <span>"Since"</span>
                    <input type="datetime-local" name="since" data-test="replay-since" bind:value=since/>
                </label>
                <ErrorMessage error=action.error/>
                <div class="form-actions">
                    <button type="submit" class="button button-secondary" data-test="replay-since-submit" disabled=move || action.busy.get()>
                        {move || if action.busy.get() { "Queuing…" } else { "Replay since then" }}
                    </button>
                </div>
            </form>
        </section>
    }
}
