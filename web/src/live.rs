//! A device's live stream, `GET /api/v1/devices/{id}/live`: server-sent events read through
//! `fetch`, because `EventSource` cannot send the Authorization header.
//!
//! The body is read chunk by chunk and cut into events here (`SseParser`). When the stream ends
//! or fails, it is opened again after a growing, jittered delay (1 s doubling to 30 s), and the
//! page is told so that it can fetch what it missed meanwhile. It stops for good when the page
//! that started it unmounts (the request is aborted) or when the device is gone.

use gloo_timers::future::TimeoutFuture;
use leptos::prelude::*;
use leptos::task::spawn_local;
use stead_api_types::LiveEvent;
use uuid::Uuid;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use crate::session::Session;

/// What the stream is doing, for the indicator on the page.
#[derive(Clone, Debug, PartialEq)]
pub enum LiveStatus {
    Connecting,
    Live,
    /// Waiting to reconnect, until this time (ms since the epoch).
    Retrying {
        at_ms: f64,
    },
    /// Given up, with the reason.
    Stopped(String),
}

/// One dispatched server-sent event.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
}

/// Cuts a byte stream into server-sent events, following the WHATWG algorithm for the fields
/// this console uses (`event`, `data`, `retry`; comments are heartbeats).
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    event: String,
    data: String,
    /// The server's `retry:` hint, in ms.
    pub retry_ms: Option<u32>,
}

impl SseParser {
    /// Feeds a chunk; answers the events it completed. A line may be split across chunks, and
    /// a multi-byte character too: lines are cut on bytes before decoding.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        self.buf.extend_from_slice(chunk);
        let mut events = Vec::new();
        let mut start = 0;
        while let Some(pos) = self.buf[start..].iter().position(|&b| b == b'\n') {
            let end = start + pos;
            let raw = &self.buf[start..end];
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            let line = String::from_utf8_lossy(raw).into_owned();
            start = end + 1;
            if let Some(event) = self.line(&line) {
                events.push(event);
            }
        }
        self.buf.drain(..start);
        events
    }

    fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            let event = std::mem::take(&mut self.event);
            let mut data = std::mem::take(&mut self.data);
            if data.is_empty() {
                return None;
            }
            data.pop();
            let event = if event.is_empty() {
                "message".to_owned()
            } else {
                event
            };
            return Some(SseEvent { event, data });
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = value.to_owned(),
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
            }
            "retry" => self.retry_ms = value.parse().ok(),
            _ => {}
        }
        None
    }
}

/// The delay before reconnection attempt `attempt` (1-based): 1 s doubling up to 30 s, ±20 %
/// so that many open consoles do not come back in lockstep after a server restart.
pub fn backoff_ms(attempt: u32, jitter: f64) -> u32 {
    let base = 1000.0 * 2f64.powi(attempt.saturating_sub(1).min(5) as i32);
    let base = base.min(30_000.0);
    (base * (0.8 + 0.4 * jitter.clamp(0.0, 1.0))) as u32
}

enum Outcome {
    /// The stream was open and then ended; `lasted` whether it stayed up long enough to count
    /// as a success (resets the backoff).
    Ended { lasted: bool },
    /// Could not open it this time.
    Failed { renew_token: bool },
    /// No point trying again.
    Fatal(String),
}

/// Opens the device's live stream for as long as the current reactive owner (the page) lives.
/// `on_open(reconnected)` runs each time the stream opens; `on_event` for each event.
pub fn follow_device(
    session: Session,
    device: Uuid,
    status: RwSignal<LiveStatus>,
    on_open: impl Fn(bool) + 'static,
    on_event: impl Fn(LiveEvent) + 'static,
) {
    // Both live in the page's arena: once the page is gone `try_` reads fail, which is the
    // signal to stop. Cleanups run before the arena is cleared, so the abort below still finds
    // the controller.
    let stopped = RwSignal::new(false);
    let controller = StoredValue::new_local(None::<web_sys::AbortController>);
    on_cleanup(move || {
        stopped.try_set(true);
        controller.try_update_value(|c| {
            if let Some(c) = c.take() {
                c.abort();
            }
        });
    });
    let is_stopped = move || stopped.try_get_untracked().unwrap_or(true);

    spawn_local(async move {
        let mut attempt = 0u32;
        let mut opened_before = false;
        let mut renew_token = false;
        loop {
            if is_stopped() {
                return;
            }
            status.try_set(LiveStatus::Connecting);
            let outcome = open_once(
                session,
                device,
                controller,
                renew_token,
                &mut |reconnected| {
                    status.try_set(LiveStatus::Live);
                    on_open(reconnected);
                },
                &on_event,
                opened_before,
            )
            .await;
            if is_stopped() {
                return;
            }
            renew_token = false;
            match outcome {
                Outcome::Ended { lasted } => {
                    opened_before = true;
                    if lasted {
                        attempt = 0;
                    }
                }
                Outcome::Failed { renew_token: renew } => renew_token = renew,
                Outcome::Fatal(reason) => {
                    status.try_set(LiveStatus::Stopped(reason));
                    return;
                }
            }
            attempt += 1;
            let delay = backoff_ms(attempt, js_sys::Math::random());
            status.try_set(LiveStatus::Retrying {
                at_ms: js_sys::Date::now() + f64::from(delay),
            });
            TimeoutFuture::new(delay).await;
        }
    });
}

async fn open_once(
    session: Session,
    device: Uuid,
    controller: StoredValue<Option<web_sys::AbortController>, LocalStorage>,
    renew_token: bool,
    on_open: &mut dyn FnMut(bool),
    on_event: &dyn Fn(LiveEvent),
    opened_before: bool,
) -> Outcome {
    let token = match session.bearer(renew_token).await {
        Ok(token) => token,
        // The session is over: the page is about to be replaced by the login form.
        Err(e) if e.status == 401 => return Outcome::Fatal(e.detail),
        Err(_) => return Outcome::Failed { renew_token: false },
    };
    let Some(window) = web_sys::window() else {
        return Outcome::Fatal("No browser window.".into());
    };
    let Ok(abort) = web_sys::AbortController::new() else {
        return Outcome::Fatal("This browser cannot stream.".into());
    };
    let signal = abort.signal();
    if controller.try_set_value(Some(abort)).is_some() {
        // The page is gone already.
        return Outcome::Ended { lasted: false };
    }

    let init = web_sys::RequestInit::new();
    init.set_method("GET");
    let Ok(headers) = web_sys::Headers::new() else {
        return Outcome::Failed { renew_token: false };
    };
    let _ = headers.append("Authorization", &format!("Bearer {token}"));
    let _ = headers.append("Accept", "text/event-stream");
    init.set_headers(&headers);
    init.set_signal(Some(&signal));
    let url = format!("/api/v1/devices/{device}/live");
    let Ok(request) = web_sys::Request::new_with_str_and_init(&url, &init) else {
        return Outcome::Failed { renew_token: false };
    };
    let response: web_sys::Response = match JsFuture::from(window.fetch_with_request(&request))
        .await
        .and_then(|r| r.dyn_into::<web_sys::Response>())
    {
        Ok(r) => r,
        Err(_) => return Outcome::Failed { renew_token: false },
    };
    match response.status() {
        200 => {}
        401 => return Outcome::Failed { renew_token: true },
        403 => return Outcome::Fatal("You may not follow this device live.".into()),
        404 => return Outcome::Fatal("The device no longer exists.".into()),
        _ => return Outcome::Failed { renew_token: false },
    }
    let Some(body) = response.body() else {
        return Outcome::Failed { renew_token: false };
    };
    let reader: web_sys::ReadableStreamDefaultReader = body.get_reader().unchecked_into();
    let opened_at = js_sys::Date::now();
    on_open(opened_before);

    let mut parser = SseParser::default();
    loop {
        // Fails when the request is aborted (the page unmounted) or the connection drops.
        let Ok(chunk) = JsFuture::from(reader.read()).await else {
            break;
        };
        let done = js_sys::Reflect::get(&chunk, &JsValue::from_str("done"))
            .ok()
            .and_then(|v| v.as_bool())
            .unwrap_or(true);
        if done {
            break;
        }
        let Ok(value) = js_sys::Reflect::get(&chunk, &JsValue::from_str("value")) else {
            break;
        };
        let bytes = js_sys::Uint8Array::new(&value).to_vec();
        for event in parser.push(&bytes) {
            if !matches!(event.event.as_str(), "telemetry" | "presence" | "message") {
                continue;
            }
            // An event this console does not understand (a newer server) is skipped, not fatal.
            if let Ok(live) = serde_json::from_str::<LiveEvent>(&event.data) {
                on_event(live);
            }
        }
    }
    Outcome::Ended {
        lasted: js_sys::Date::now() - opened_at > 10_000.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_events_split_across_chunks() {
        let mut p = SseParser::default();
        assert!(p.push(b": hello\n\nevent: telem").is_empty());
        let events = p.push(b"etry\r\ndata: {\"a\":\n\ndata:1\ndata: 2\n\n");
        assert_eq!(
            events,
            vec![
                SseEvent {
                    event: "telemetry".into(),
                    data: "{\"a\":".into()
                },
                SseEvent {
                    event: "message".into(),
                    data: "1\n2".into()
                },
            ]
        );
    }

    #[test]
    fn keeps_multibyte_characters_split_across_chunks() {
        let mut p = SseParser::default();
        let text = "data: 21.5 °C\n\n".as_bytes();
        let (a, b) = text.split_at(12);
        assert!(p.push(a).is_empty());
        assert_eq!(p.push(b)[0].data, "21.5 °C");
    }

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(backoff_ms(1, 0.5), 1000);
        assert_eq!(backoff_ms(2, 0.5), 2000);
        assert_eq!(backoff_ms(20, 0.5), 30_000);
        assert_eq!(backoff_ms(1, 0.0), 800);
    }
}
