//! Commands (RPC) to the device: a form to send one (method, JSON params checked before
//! sending, one-way, persistent, timeout) with its result, and the history with each command's
//! state, polled every 2 s while any is still open (queued or sent).

use leptos::prelude::*;
use leptos::task::spawn_local;
use stead_api_types::{Permission, RpcCommand, RpcStatus, SendRpc};
use uuid::Uuid;

use crate::api;
use crate::session::{ApiError, use_session};
use crate::ui::{
    ErrorMessage, Loader, Pagination, RefreshButton, Spinner, StatusBadge, TableHead, Tone,
    compact_json, format_age, format_ms_title, non_empty, parse_json,
};

/// How often the history is read again while a command is open.
const POLL_MS: u64 = 2000;

pub fn status_tone(status: RpcStatus) -> Tone {
    match status {
        RpcStatus::Queued => Tone::Neutral,
        RpcStatus::Sent => Tone::Info,
        RpcStatus::Delivered | RpcStatus::Successful => Tone::Good,
        RpcStatus::Timeout | RpcStatus::Expired => Tone::Warn,
        RpcStatus::Failed => Tone::Bad,
    }
}

fn status_words(status: RpcStatus) -> &'static str {
    match status {
        RpcStatus::Queued => "Queued",
        RpcStatus::Sent => "Sent",
        RpcStatus::Delivered => "Delivered",
        RpcStatus::Successful => "Successful",
        RpcStatus::Timeout => "Timed out",
        RpcStatus::Expired => "Expired",
        RpcStatus::Failed => "Failed",
    }
}

#[component]
fn RpcBadge(status: RpcStatus) -> impl IntoView {
    view! { <StatusBadge tone=status_tone(status) text=status_words(status) status=status.as_str()/> }
}

/// The params a person typed: empty means none; otherwise JSON.
fn parse_params(text: &str) -> Result<Option<serde_json::Value>, String> {
    if text.trim().is_empty() {
        Ok(None)
    } else {
        parse_json(text, "The params").map(Some)
    }
}

#[component]
pub fn CommandsTab(id: Uuid, now: ReadSignal<f64>) -> impl IntoView {
    let session = use_session();
    let can_send = Memo::new(move |_| session.can(Permission::CommandsSend));
    let page = RwSignal::new(1u64);
    let history = Loader::new(move || {
        let page = page.get();
        async move { api::rpc_history(session, id, page).await }
    });
    let any_open = Memo::new(move |_| {
        history.data.with(|h| {
            h.as_ref()
                .is_some_and(|p| p.items.iter().any(|c| !c.status.is_final()))
        })
    });
    // While a command is open, read the history again every 2 s.
    history.poll(
        std::time::Duration::from_millis(POLL_MS),
        move || any_open.try_get_untracked() == Some(true),
        || {},
    );
    let total = Signal::derive(move || history.data.with(|d| d.as_ref().map_or(0, |p| p.total)));

    view! {
        <div class="stack">
            <Show when=move || can_send.get()>
                <SendCommand id=id on_sent=Callback::new(move |_| {
                    page.set(1);
                    history.reload();
                })/>
            </Show>
            <section class="card table-card" aria-labelledby="rpc-history-title">
                <div class="card-header card-header-padded">
                    <h2 id="rpc-history-title">"History"</h2>
                    <div class="card-tools">
                        <Show when=move || any_open.get()>
                            <span class="live live-wait" data-test="rpc-polling">"Following open commands"</span>
                        </Show>
                        <RefreshButton loader=history test="rpc-refresh"/>
                    </div>
                </div>
                <ErrorMessage error=history.error_text()/>
                {move || match history.data.get() {
                    None if history.loading.get() => view! { <Spinner label="Loading commands…"/> }.into_any(),
                    None => ().into_any(),
                    Some(p) if p.items.is_empty() => view! {
                        <div class="empty-inline empty-padded">
                            <p class="muted">"No commands sent to this device yet."</p>
                        </div>
                    }.into_any(),
                    Some(p) => view! {
                        <table class="table table-compact">
                            <TableHead columns=&["Sent", "Method", "Params", "Status", "Answer", "By"]/>
                            <tbody>
                                {p.items.into_iter().map(|c| view! { <CommandRow command=c now=now/> }).collect_view()}
                            </tbody>
                        </table>
                        <Pagination page=page total=total per_page=api::PER_PAGE noun="commands"/>
                    }.into_any(),
                }}
            </section>
        </div>
    }
}

#[component]
fn CommandRow(command: RpcCommand, now: ReadSignal<f64>) -> impl IntoView {
    let ts = command.created_at;
    let kind = match (command.oneway, command.persistent) {
        (true, true) => "one-way, persistent",
        (true, false) => "one-way",
        (false, true) => "persistent",
        (false, false) => "two-way",
    };
    let answer = match (&command.response, &command.error) {
        (_, Some(e)) => view! { <span class="danger-text">{e.clone()}</span> }.into_any(),
        (Some(r), None) => {
            let text = compact_json(r);
            view! { <code class="attr-value" title=text.clone()>{text.clone()}</code> }.into_any()
        }
        (None, None) => view! { <span class="muted">"—"</span> }.into_any(),
    };
    let params = compact_json(&command.params);
    view! {
        <tr data-test="rpc-row" data-status=command.status.as_str()>
            <td><time title=format_ms_title(ts)>{move || format_age(ts, now.get())}</time></td>
            <td>
                <div class="strong mono">{command.method.clone()}</div>
                <div class="muted small">{kind}</div>
            </td>
            <td><code class="attr-value" title=params.clone()>{params.clone()}</code></td>
            <td><RpcBadge status=command.status/></td>
            <td>{answer}</td>
            <td class="muted small">{command.created_by.clone()}</td>
        </tr>
    }
}

/// What the last send came to.
#[derive(Clone, Debug, PartialEq)]
enum Outcome {
    Done(RpcCommand),
    Refused(ApiError),
}

#[component]
fn SendCommand(id: Uuid, on_sent: Callback<()>) -> impl IntoView {
    let session = use_session();
    let method = RwSignal::new(String::new());
    let params = RwSignal::new(String::new());
    let oneway = RwSignal::new(false);
    let persistent = RwSignal::new(false);
    let timeout_secs = RwSignal::new("10".to_string());
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let outcome = RwSignal::new(None::<Outcome>);

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if busy.get_untracked() {
            return;
        }
        let Some(method_name) = non_empty(&method.get_untracked()) else {
            error.set(Some("Name the method, such as setValue or reboot.".into()));
            return;
        };
        let params_value = match parse_params(&params.get_untracked()) {
            Ok(p) => p,
            Err(e) => {
                error.set(Some(e));
                return;
            }
        };
        let timeout_ms = match timeout_secs.get_untracked().trim().parse::<f64>() {
            Ok(s) if s > 0.0 && s <= 600.0 => Some((s * 1000.0) as u64),
            _ => {
                error.set(Some(
                    "The timeout is a number of seconds between 1 and 600.".into(),
                ));
                return;
            }
        };
        let body = SendRpc {
            method: method_name,
            params: params_value,
            oneway: oneway.get_untracked(),
            persistent: persistent.get_untracked(),
            timeout_ms,
            ..Default::default()
        };
        busy.set(true);
        error.set(None);
        outcome.set(None);
        // Two-way commands answer only when the device does: show the command as sent meanwhile.
        set_timeout(
            move || on_sent.run(()),
            std::time::Duration::from_millis(400),
        );
        spawn_local(async move {
            let result = api::send_rpc(session, id, &body).await;
            outcome.try_set(Some(match result {
                Ok(c) => Outcome::Done(c),
                Err(e) => Outcome::Refused(e),
            }));
            busy.try_set(false);
            on_sent.run(());
        });
    };

    view! {
        <section class="card">
            <h2>"Send a command"</h2>
            <form class="form" on:submit=submit novalidate=true>
                <div class="field-row">
                    <label class="field">
                        <span>"Method" <em class="required">"required"</em></span>
                        <input type="text" name="method" data-test="rpc-method" autocomplete="off" placeholder="setValue" bind:value=method/>
                    </label>
                    <label class="field">
                        <span>"Timeout " <em class="hint">"(seconds)"</em></span>
                        <input type="number" name="timeout" min="1" max="600" data-test="rpc-timeout" bind:value=timeout_secs/>
                    </label>
                </div>
                <label class="field">
                    <span>"Params " <em class="hint">"(JSON, optional)"</em></span>
                    <textarea name="params" rows="3" spellcheck="false" data-test="rpc-params" placeholder="{\"pin\": 4, \"value\": true}" bind:value=params></textarea>
                </label>
                <div class="check-row">
                    <label class="checkbox">
                        <input type="checkbox" name="oneway" data-test="rpc-oneway" prop:checked=move || oneway.get() on:change=move |ev| oneway.set(event_target_checked(&ev))/>
                        <span>"One-way " <em class="hint">"(no answer expected)"</em></span>
                    </label>
                    <label class="checkbox">
                        <input type="checkbox" name="persistent" data-test="rpc-persistent" prop:checked=move || persistent.get() on:change=move |ev| persistent.set(event_target_checked(&ev))/>
                        <span>"Persistent " <em class="hint">"(queued while the device is offline)"</em></span>
                    </label>
                </div>
                <ErrorMessage error=error/>
                <div class="form-actions gap">
                    <button type="submit" class="button button-primary" data-test="rpc-send" disabled=move || busy.get()>
                        {move || if busy.get() { "Waiting for the device…" } else { "Send command" }}
                    </button>
                </div>
            </form>
            {move || outcome.get().map(|o| match o {
                Outcome::Done(c) => {
                    let status = c.status;
                    let message = match status {
                        RpcStatus::Queued => "Queued: it is delivered when the device connects.",
                        RpcStatus::Successful => "The device answered:",
                        RpcStatus::Delivered => "The device received it.",
                        _ => "",
                    };
                    view! {
                        <div class="rpc-result" data-test="rpc-result" data-status=status.as_str()>
                            <div class="with-action">
                                <RpcBadge status=status/>
                                <span>{message}</span>
                            </div>
                            {c.response.as_ref().map(|r| view! {
                                <pre class="code-block" data-test="rpc-response">{serde_json::to_string_pretty(r).unwrap_or_default()}</pre>
                            })}
                            {c.error.clone().map(|e| view! { <p class="danger-text">{e}</p> })}
                        </div>
                    }.into_any()
                }
                Outcome::Refused(e) => {
                    let hint = match e.code.as_str() {
                        "device_offline" => Some("Mark the command persistent to queue it until the device connects."),
                        "rpc_timeout" => Some("The device did not answer in time; raise the timeout or check the device."),
                        _ => None,
                    };
                    view! {
                        <div class="rpc-result" data-test="rpc-result" data-status=e.code.clone()>
                            <div class="alert alert-error" role="alert" data-test="error">{e.detail.clone()}</div>
                            {hint.map(|h| view! { <p class="hint">{h}</p> })}
                        </div>
                    }.into_any()
                }
            })}
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_optional_json() {
        assert_eq!(parse_params("  "), Ok(None));
        assert_eq!(
            parse_params("{\"pin\": 4}"),
            Ok(Some(serde_json::json!({"pin": 4})))
        );
        assert!(parse_params("{pin: 4}").is_err());
    }

    #[test]
    fn open_commands_look_pending_and_final_ones_settled() {
        assert_eq!(status_tone(RpcStatus::Sent), Tone::Info);
        assert_eq!(status_tone(RpcStatus::Successful), Tone::Good);
        assert_eq!(status_tone(RpcStatus::Failed), Tone::Bad);
    }
}
