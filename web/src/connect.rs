//! How a device connects: host, port and credentials, and two command lines that work when
//! pasted into a shell (`mosquitto_pub` over MQTT, `curl` against the HTTP device API). Shown on
//! the device page, where the token is unknown, and in the one-time token dialogs, where it is.

use leptos::prelude::*;
use leptos::task::spawn_local;
use stead_api_types::ConnectionInfo;

use crate::api;
use crate::session::use_session;
use crate::ui::{Loader, copy_text};

/// The example payload of both command lines.
const EXAMPLE: &str = r#"{"temperature":21.5}"#;

/// Quotes a word for a POSIX shell: double quotes when that is safe and readable (tokens are
/// URL-safe base64), single quotes otherwise.
fn shell_quote(word: &str) -> String {
    if word
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.~:/".contains(c))
    {
        format!("\"{word}\"")
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// `mosquitto_pub` publishing one telemetry message; with `token` absent it reads `$TOKEN`.
/// QoS 1: the platform acknowledges only stored data, so the command returns once the value is
/// safe (and with QoS 0 it would close the connection right behind the message).
pub fn mqtt_command(host: &str, port: u16, token: Option<&str>) -> String {
    let user = token.map_or_else(|| "\"$TOKEN\"".to_owned(), shell_quote);
    format!(
        "mosquitto_pub -V mqttv311 -q 1 -h {} -p {port} -u {user} -t v1/devices/me/telemetry -m '{EXAMPLE}'",
        shell_quote(host).trim_matches('"')
    )
}

/// `curl` posting the same message to the HTTP device API at `origin` (scheme, host, port).
pub fn curl_command(origin: &str, token: Option<&str>) -> String {
    let url = match token {
        Some(token) => shell_quote(&format!("{origin}/api/v1/{token}/telemetry")),
        None => format!("\"{origin}/api/v1/$TOKEN/telemetry\""),
    };
    format!("curl -sS -H 'Content-Type: application/json' -d '{EXAMPLE}' {url}")
}

/// Where devices connect: the server's answer, with the console's own host when it names none.
fn endpoint(info: &ConnectionInfo) -> (String, u16) {
    let host = info.mqtt_host.clone().unwrap_or_else(page_host);
    (host, info.mqtt_port)
}

fn page_host() -> String {
    web_sys::window()
        .and_then(|w| w.location().hostname().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

fn page_origin() -> String {
    web_sys::window()
        .and_then(|w| w.location().origin().ok())
        .unwrap_or_else(|| "http://localhost:8080".into())
}

fn use_connection_info() -> Loader<ConnectionInfo> {
    let session = use_session();
    Loader::new(move || api::connection_info(session))
}

/// A command line with a copy button.
#[component]
fn CommandLine(
    #[prop(into)] label: String,
    #[prop(into)] text: Signal<String>,
    /// A unique element id, for copying where the Clipboard API is unavailable.
    #[prop(into)]
    id: String,
    #[prop(into)] test: String,
) -> impl IntoView {
    let copied = RwSignal::new(None::<bool>);
    let id_for_copy = id.clone();
    let copy = move |_| {
        let text = text.get_untracked();
        let id = id_for_copy.clone();
        spawn_local(async move {
            let ok = copy_text(&text, &id).await;
            copied.try_set(Some(ok));
        });
    };
    view! {
        <div class="command">
            <div class="command-head">
                <span class="command-label">{label}</span>
                <button type="button" class="button button-ghost button-small" data-test=format!("copy-{test}") on:click=copy>
                    {move || match copied.get() {
                        Some(true) => "Copied",
                        Some(false) => "Select and copy by hand",
                        None => "Copy",
                    }}
                </button>
            </div>
            <pre class="command-text" id=id data-test=test>{move || text.get()}</pre>
        </div>
    }
}

/// The two command lines, with `token` filled in when it is known.
#[component]
pub fn ConnectCommands(
    #[prop(into)] token: Signal<Option<String>>,
    /// Distinguishes the element ids of several instances on one page.
    id_prefix: &'static str,
) -> impl IntoView {
    let info = use_connection_info();
    let origin = page_origin();
    let mqtt = Signal::derive(move || {
        let (host, port) = info
            .data
            .with(|i| i.as_ref().map(endpoint))
            .unwrap_or_else(|| (page_host(), 1883));
        mqtt_command(&host, port, token.get().as_deref())
    });
    let curl = Signal::derive(move || curl_command(&origin, token.get().as_deref()));
    view! {
        <div class="commands">
            {move || info.error.get().map(|e| view! {
                <p class="hint" data-test="error">{format!("The MQTT port could not be loaded: {}", e.detail)}</p>
            })}
            <CommandLine label="MQTT (mosquitto_pub)" text=mqtt id=format!("{id_prefix}-mqtt-command") test="mqtt-command"/>
            <CommandLine label="HTTP (curl)" text=curl id=format!("{id_prefix}-http-command") test="http-command"/>
        </div>
    }
}

/// The device page's connection card.
#[component]
pub fn ConnectBox(fresh_token: RwSignal<Option<String>>) -> impl IntoView {
    let info = use_connection_info();
    let host = Signal::derive(move || {
        info.data
            .with(|i| i.as_ref().map(endpoint))
            .map_or_else(page_host, |(host, _)| host)
    });
    let copied = RwSignal::new(false);
    let copy_host = move |_| {
        let host = host.get_untracked();
        spawn_local(async move {
            let ok = copy_text(&host, "mqtt-host").await;
            copied.try_set(ok);
        });
    };
    view! {
        <section class="card" id="connect" data-test="connect-box">
            <h2>"Connect"</h2>
            <p class="muted">
                "Devices connect over MQTT 3.1.1 or 5 with their access token as the username, or post to the HTTP device API."
            </p>
            <dl class="details">
                <dt>"Host"</dt>
                <dd class="with-action">
                    <code id="mqtt-host" data-test="mqtt-host">{move || host.get()}</code>
                    <button type="button" class="button button-ghost button-small" on:click=copy_host>
                        {move || if copied.get() { "Copied" } else { "Copy" }}
                    </button>
                </dd>
                <dt>"Port"</dt>
                <dd>
                    <code data-test="mqtt-port">
                        {move || match info.data.get() {
                            Some(i) => i.mqtt_port.to_string(),
                            None if info.loading.get() => "…".into(),
                            None => "—".into(),
                        }}
                    </code>
                </dd>
                <dt>"Username"</dt>
                <dd>
                    {move || match fresh_token.get() {
                        Some(t) => view! { <code class="token-inline">{t}</code> }.into_any(),
                        None => view! {
                            <span class="muted">"the access token shown when the device was created or last rotated"</span>
                        }.into_any(),
                    }}
                </dd>
                <dt>"Password"</dt>
                <dd><span class="muted">"leave empty"</span></dd>
                <dt>"Topic"</dt>
                <dd><code>"v1/devices/me/telemetry"</code></dd>
            </dl>
            <Show when=move || fresh_token.get().is_none()>
                <p class="hint connect-hint">
                    "Set the token in your shell first: "
                    <code>"TOKEN='…'"</code>
                    ", then paste a line."
                </p>
            </Show>
            <ConnectCommands token=fresh_token id_prefix="page"/>
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_read_the_token_from_the_shell_or_carry_it() {
        assert_eq!(
            mqtt_command("stead.example.com", 1883, None),
            r#"mosquitto_pub -V mqttv311 -q 1 -h stead.example.com -p 1883 -u "$TOKEN" -t v1/devices/me/telemetry -m '{"temperature":21.5}'"#
        );
        assert_eq!(
            mqtt_command("127.0.0.1", 1884, Some("abc_-9")),
            r#"mosquitto_pub -V mqttv311 -q 1 -h 127.0.0.1 -p 1884 -u "abc_-9" -t v1/devices/me/telemetry -m '{"temperature":21.5}'"#
        );
        assert_eq!(
            curl_command("http://127.0.0.1:8080", None),
            r#"curl -sS -H 'Content-Type: application/json' -d '{"temperature":21.5}' "http://127.0.0.1:8080/api/v1/$TOKEN/telemetry""#
        );
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
