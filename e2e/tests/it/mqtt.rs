//! The MQTT ingress from the outside: third-party clients (mosquitto_pub/sub), a byte-level
//! client for what libraries refuse to send, and the REST API to see what was stored.

use std::process::{Command, Stdio};
use std::time::Duration;

use stead_api_types::{
    CreatedDevice, DisconnectReason, LatestTelemetry, Presence, TelemetrySeries, TimelineEvent,
};
use stead_e2e::Client;

use crate::harness::{Backend, Options, TestServer};
use crate::mqtt_raw::{PUBACK, Raw, SUBACK, Will};
use crate::on_both_backends;

on_both_backends!(
    third_party_clients_store_telemetry_and_attributes,
    bad_input_is_refused_and_recorded_while_others_flow,
    keep_alive_timeout_and_take_over,
    revocation_ends_sessions_at_once,
    session_limits_attribute_requests_and_last_will,
);

/// A fixed recent time for points stamped by the test (the start of yesterday, UTC): within
/// the retention, so the server takes them, and the same for the whole test.
pub fn ts0() -> i64 {
    let day = 86_400_000;
    (chrono::Utc::now().timestamp_millis() / day - 1) * day
}

pub async fn device(client: &Client, name: &str) -> (uuid::Uuid, String) {
    let created: CreatedDevice = client
        .post("/api/v1/devices", &serde_json::json!({"name": name}))
        .await
        .unwrap()
        .ok()
        .unwrap();
    (created.device.id, created.access_token.clone().unwrap())
}

/// A device's presence, through the REST API.
pub async fn presence(client: &Client, device: uuid::Uuid) -> Presence {
    client
        .get(&format!("/api/v1/devices/{device}/presence"))
        .await
        .unwrap()
        .ok()
        .unwrap()
}

/// A device's attributes of one scope as `{"key": value}`, through the REST API.
pub async fn attribute_values(
    client: &Client,
    device: uuid::Uuid,
    scope: &str,
) -> serde_json::Value {
    let attrs: Vec<stead_api_types::Attribute> = client
        .get(&format!(
            "/api/v1/devices/{device}/attributes?scope={scope}"
        ))
        .await
        .unwrap()
        .ok()
        .unwrap();
    attrs.into_iter().map(|a| (a.key, a.value)).collect()
}

/// Runs mosquitto_pub; answers (success, stdout + stderr).
pub fn mosquitto_pub(port: u16, args: &[&str]) -> (bool, String) {
    let out = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("mosquitto_pub is installed (Debian package mosquitto-clients)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

pub async fn timeline(c: &Client, id: uuid::Uuid) -> Vec<TimelineEvent> {
    c.get(&format!("/api/v1/devices/{id}/timeline?limit=200"))
        .await
        .unwrap()
        .ok()
        .unwrap()
}

/// Polls `f` until it holds (the live state and timeline are written just after the ack).
pub async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..100 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never happened: {what}");
}

/// How many points of `key` the device has stored (through the aggregate API).
pub async fn count_stored(c: &Client, id: uuid::Uuid, key: &str) -> u64 {
    let r: serde_json::Value = c
        .get(&format!("/api/v1/devices/{id}/telemetry/aggregate?keys={key}&from=0&to=99999999999999&interval=99999999999999&agg=count"))
        .await
        .unwrap()
        .ok()
        .unwrap();
    r["series"][key]
        .as_array()
        .map(|b| b.iter().map(|p| p["count"].as_u64().unwrap_or(0)).sum())
        .unwrap_or(0)
}

async fn third_party_clients_store_telemetry_and_attributes(backend: Backend) {
    let server = TestServer::start(backend).await;
    let acme = server.tenant("Acme").await;
    let c = &acme.admin;
    let (id, token) = device(c, "sensor-1").await;
    let port = server.mqtt_port();

    let t0 = ts0();
    for (version, payload) in [
        (
            "mqttv311",
            r#"{"temperature":21.5,"on":true,"mode":"eco"}"#.to_owned(),
        ),
        (
            "mqttv5",
            format!(r#"{{"ts":{t0},"values":{{"temperature":19.25,"count":7}}}}"#),
        ),
        (
            "mqttv311",
            format!(
                r#"[{{"ts":{},"values":{{"temperature":19.5}}}},{{"humidity":40,"config":{{"a":1}}}}]"#,
                t0 + 1000
            ),
        ),
    ] {
        let (ok, out) = mosquitto_pub(
            port,
            &[
                "-V",
                version,
                "-q",
                "1",
                "-u",
                &token,
                "-t",
                "v1/devices/me/telemetry",
                "-m",
                &payload,
            ],
        );
        assert!(ok, "{version}: {out}");
    }
    let (ok, out) = mosquitto_pub(
        port,
        &[
            "-V",
            "mqttv5",
            "-q",
            "1",
            "-u",
            &token,
            "-t",
            "v1/devices/me/attributes",
            "-m",
            r#"{"fw":"1.2.0","serial":"A17"}"#,
        ],
    );
    assert!(ok, "{out}");

    // QoS 1 was acknowledged, so it is stored: readable at once.
    let series: TelemetrySeries = c
        .get(&format!(
            "/api/v1/devices/{id}/telemetry?keys=temperature&from=0&order=asc"
        ))
        .await
        .unwrap()
        .ok()
        .unwrap();
    let temps: Vec<(i64, f64)> = series.series["temperature"]
        .iter()
        .map(|p| (p.ts, p.value.as_f64().unwrap()))
        .collect();
    assert_eq!(temps.len(), 3);
    assert_eq!(temps[0], (t0, 19.25));
    assert_eq!(temps[1], (t0 + 1000, 19.5));
    assert_eq!(temps[2].1, 21.5);

    let latest: LatestTelemetry = c
        .get(&format!("/api/v1/devices/{id}/telemetry/latest"))
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(latest["on"].value, serde_json::json!(true));
    assert_eq!(latest["mode"].value, serde_json::json!("eco"));
    assert_eq!(latest["count"].value, serde_json::json!(7));
    assert_eq!(latest["config"].value, serde_json::json!({"a": 1}));
    assert_eq!(latest["humidity"].value, serde_json::json!(40));

    assert_eq!(
        attribute_values(c, id, "client").await,
        serde_json::json!({"fw": "1.2.0", "serial": "A17"})
    );

    let csv = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/devices/{id}/telemetry.csv?keys=temperature,mode&from=0",
            server.base
        ))
        .bearer_auth(c.token().unwrap())
        .send()
        .await
        .unwrap();
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = csv.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "ts,time,temperature,mode");
    assert!(
        lines[1].starts_with(&format!(
            "{t0},{}",
            chrono::DateTime::from_timestamp_millis(t0)
                .unwrap()
                .to_rfc3339()
        )) && lines[1].ends_with(",19.25,"),
        "{csv}"
    );
    assert_eq!(lines.len(), 4, "{csv}");

    // One-shot QoS 0 publishers send PUBLISH and DISCONNECT back to back: still stored.
    for n in 0..3 {
        let (ok, out) = mosquitto_pub(
            port,
            &[
                "-V",
                "mqttv311",
                "-u",
                &token,
                "-t",
                "v1/devices/me/telemetry",
                "-m",
                &format!(r#"{{"qos0":{n}}}"#),
            ],
        );
        assert!(ok, "{out}");
    }
    eventually("every QoS 0 message stored", || async {
        count_stored(c, id, "qos0").await == 3
    })
    .await;
    eventually(
        "presence counts seven messages, offline after each client left",
        || async {
            let p = presence(c, id).await;
            p.messages == 7
                && !p.online
                && p.last_disconnect_reason == Some(DisconnectReason::ClientDisconnect)
        },
    )
    .await;
    eventually("the timeline shows the sessions", || async {
        let t = timeline(c, id).await;
        t.iter().filter(|e| e.kind == "connected").count() == 7
            && t.iter().filter(|e| e.kind == "disconnected").count() == 7
    })
    .await;
    let info: stead_api_types::ConnectionInfo = c
        .get("/api/v1/connection-info")
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(
        info.mqtt_port, port,
        "the port devices are told is the one bound"
    );
    let t = timeline(c, id).await;
    assert!(
        t.iter().any(|e| e.detail.contains("MQTT 5"))
            && t.iter().any(|e| e.detail.contains("MQTT 3.1.1"))
    );
}

async fn bad_input_is_refused_and_recorded_while_others_flow(backend: Backend) {
    let server = TestServer::start_with(
        backend,
        Options::default()
            .env("STEAD_MQTT_MAX_PAYLOAD_BYTES", "1024")
            .env("STEAD_DEVICE_RATE_MESSAGES", "5:1"),
    )
    .await;
    let acme = server.tenant("Acme").await;
    let c = &acme.admin;
    let (bad_id, bad) = device(c, "bad").await;
    let (good_id, good) = device(c, "good").await;
    let port = server.mqtt_port();

    // A well-behaved device keeps publishing (QoS 1, within its limit) through all of it.
    let addr = server.mqtt.clone();
    let flowing = tokio::spawn(async move {
        let (mut raw, code) = Raw::connect(&addr, &good, 30, None).await;
        assert_eq!(code, 0);
        let mut acked = 0u16;
        for seq in 1..=12u16 {
            raw.publish(
                "v1/devices/me/telemetry",
                format!(r#"{{"seq":{seq}}}"#).as_bytes(),
                Some(seq),
            )
            .await;
            match raw.read(Duration::from_secs(5)).await {
                Some((PUBACK, body)) if body == seq.to_be_bytes() => acked += 1,
                other => panic!("the good device got {other:?}"),
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        raw.disconnect().await;
        acked
    });

    // Wrong token: refused at CONNECT on both versions.
    let (ok, out) = mosquitto_pub(
        port,
        &[
            "-V",
            "mqttv311",
            "-q",
            "1",
            "-u",
            "not-a-token",
            "-t",
            "v1/devices/me/telemetry",
            "-m",
            "{}",
        ],
    );
    assert!(
        !ok && out.to_lowercase().contains("bad user name or password"),
        "{out}"
    );
    let (ok, out) = mosquitto_pub(
        port,
        &[
            "-V",
            "mqttv5",
            "-q",
            "1",
            "-u",
            "not-a-token",
            "-t",
            "v1/devices/me/telemetry",
            "-m",
            "{}",
        ],
    );
    assert!(
        !ok && out.to_lowercase().contains("bad user name or password"),
        "{out}"
    );

    // MQTT 5 answers each refused PUBLISH with its reason code.
    let big = format!(r#"{{"blob":"{}"}}"#, "x".repeat(2000));
    for (what, topic, payload, code) in [
        (
            "invalid JSON",
            "v1/devices/me/telemetry",
            r#"{"temperature":"#,
            "RC:153",
        ),
        (
            "wrong shape",
            "v1/devices/me/telemetry",
            r#"{"temperature":null}"#,
            "RC:153",
        ),
        (
            "too large",
            "v1/devices/me/telemetry",
            big.as_str(),
            "RC:153",
        ),
        ("unknown topic", "v1/devices/me/bogus", "{}", "RC:144"),
    ] {
        let (_, out) = mosquitto_pub(
            port,
            &[
                "-V", "mqttv5", "-d", "-q", "1", "-u", &bad, "-t", topic, "-m", payload,
            ],
        );
        assert!(out.contains(code), "{what}: expected {code} in {out}");
        tokio::time::sleep(Duration::from_millis(220)).await; // stay under the rate limit
    }

    // A publish to a wildcard (which client libraries refuse to send) and a subscription
    // outside the device's own topics.
    // A wildcard in a PUBLISH topic is a protocol violation: the connection ends.
    let (mut raw, code) = Raw::connect(&server.mqtt, &bad, 30, None).await;
    assert_eq!(code, 0);
    raw.publish("v1/devices/me/telemetry/#", b"{\"a\":1}", Some(7))
        .await;
    assert!(
        raw.closed_within(Duration::from_secs(5)).await.is_some(),
        "a wildcard publish ends the connection"
    );
    let (mut raw, code) = Raw::connect(&server.mqtt, &bad, 30, None).await;
    assert_eq!(code, 0);
    raw.subscribe("v1/devices/+/attributes", 8).await;
    match raw.read(Duration::from_secs(5)).await {
        Some((SUBACK, body)) => assert_eq!(body, vec![0, 8, 0x80], "SUBACK failure"),
        other => panic!("expected SUBACK, got {other:?}"),
    }
    raw.disconnect().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;

    // A flood past the limit of 5 messages a second: the excess is refused with 0x97.
    let lines = (0..15)
        .map(|i| format!(r#"{{"n":{i}}}"#))
        .collect::<Vec<_>>()
        .join("\n");
    let mut flood = Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-V",
            "mqttv5",
            "-d",
            "-q",
            "1",
            "-u",
            &bad,
            "-t",
            "v1/devices/me/telemetry",
            "-l",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = flood.stdin.take().unwrap();
        stdin.write_all(lines.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
    }
    let out = flood.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let refused = text.matches("RC:151").count();
    let accepted = text.matches("PUBACK (Mid:").count() - refused;
    assert!(
        refused >= 9 && accepted <= 6,
        "accepted {accepted}, refused {refused}:\n{text}"
    );

    // The well-behaved device never noticed.
    assert_eq!(flowing.await.unwrap(), 12);
    assert_eq!(count_stored(c, good_id, "seq").await, 12);

    // Everything refused is on the bad device's timeline, with its reason.
    eventually("each refusal is on the timeline", || async {
        let t = timeline(c, bad_id).await;
        let rejected: Vec<String> = t
            .iter()
            .filter(|e| e.kind == "message_rejected")
            .map(|e| e.data["reason"].as_str().unwrap_or_default().to_owned())
            .collect();
        rejected.iter().filter(|r| *r == "invalid_payload").count() == 3
            && rejected.iter().filter(|r| *r == "unknown_topic").count() == 1
            && rejected.iter().filter(|r| *r == "rate_limited").count() == refused
            && t.iter().any(|e| e.kind == "subscription_refused")
            && t.iter()
                .any(|e| e.kind == "disconnected" && e.data["reason"] == "protocol_error")
    })
    .await;
    let t = timeline(c, bad_id).await;
    assert!(t.iter().any(|e| e.detail.contains("not valid JSON")));
    assert!(t.iter().any(|e| e.detail.contains("limit is 1024")));
    // Only the first messages of the flood were stored, and nothing refused.
    assert_eq!(count_stored(c, bad_id, "n").await, accepted as u64);
    assert_eq!(count_stored(c, bad_id, "blob").await, 0);
    let metrics = reqwest::get(format!("{}/metrics", server.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            r#"stead_mqtt_connect_refused_total{reason="unknown or revoked access token"} 2"#
        ),
        "{metrics}"
    );
}

async fn keep_alive_timeout_and_take_over(backend: Backend) {
    let server = TestServer::start(backend).await;
    let acme = server.tenant("Acme").await;
    let c = &acme.admin;
    let (id, token) = device(c, "sleepy").await;

    // Keep-alive 1 s, then silence: the server ends the session after 1.5 s.
    let (mut raw, code) = Raw::connect(&server.mqtt, &token, 1, None).await;
    assert_eq!(code, 0);
    let took = raw
        .closed_within(Duration::from_secs(10))
        .await
        .expect("closed for keep-alive");
    assert!(
        took >= Duration::from_millis(1000),
        "not before the keep-alive: {took:?}"
    );
    eventually("offline with reason keep-alive timeout", || async {
        let p = presence(c, id).await;
        !p.online && p.last_disconnect_reason == Some(DisconnectReason::KeepAliveTimeout)
    })
    .await;

    // A second connection with the same credentials takes over; the first is closed.
    let (mut first, code) = Raw::connect(&server.mqtt, &token, 30, None).await;
    assert_eq!(code, 0);
    let (mut second, code) = Raw::connect(&server.mqtt, &token, 30, None).await;
    assert_eq!(code, 0);
    assert!(
        first.closed_within(Duration::from_secs(5)).await.is_some(),
        "the old session ends"
    );
    second
        .publish("v1/devices/me/telemetry", br#"{"still":1}"#, Some(1))
        .await;
    assert_eq!(
        second.read(Duration::from_secs(5)).await.map(|p| p.0),
        Some(PUBACK),
        "the new one works"
    );
    eventually("taken over on the timeline, still online", || async {
        let t = timeline(c, id).await;
        let p = presence(c, id).await;
        p.online
            && t.iter()
                .any(|e| e.kind == "disconnected" && e.data["reason"] == "taken_over")
    })
    .await;

    // A connected device's activity reaches its presence while the session lasts (each node
    // flushes its sessions' activity once a second), not only when it ends.
    let before = presence(c, id).await;
    for n in 0..3 {
        second
            .publish(
                "v1/devices/me/telemetry",
                format!(r#"{{"counted":{n}}}"#).as_bytes(),
                Some(1),
            )
            .await;
        assert_eq!(
            second.read(Duration::from_secs(5)).await.map(|p| p.0),
            Some(PUBACK)
        );
    }
    eventually("messages counted while connected", || async {
        let p = presence(c, id).await;
        p.online && p.messages >= before.messages + 3 && p.last_activity > before.last_activity
    })
    .await;
}

async fn revocation_ends_sessions_at_once(backend: Backend) {
    let server = TestServer::start(backend).await;
    let platform = server.admin().await;
    let acme = server.tenant("Acme").await;
    let c = &acme.admin;
    let (id, token) = device(c, "rotated").await;

    // Rotation: the live session ends within a second; the old token no longer connects.
    let (mut raw, code) = Raw::connect(&server.mqtt, &token, 30, None).await;
    assert_eq!(code, 0);
    let rotated: stead_api_types::DeviceCredentials = c
        .post(
            &format!("/api/v1/devices/{id}/credentials/rotate"),
            &serde_json::json!({}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert!(
        raw.closed_within(Duration::from_secs(1)).await.is_some(),
        "session ended within 1 s of rotation"
    );
    let (_, code) = Raw::connect(&server.mqtt, &token, 30, None).await;
    assert_eq!(code, 4, "old token: bad user name or password");
    let (mut raw, code) = Raw::connect(
        &server.mqtt,
        &rotated.access_token.clone().unwrap(),
        30,
        None,
    )
    .await;
    assert_eq!(code, 0, "the new token works");
    eventually("revocation on the timeline", || async {
        timeline(c, id)
            .await
            .iter()
            .any(|e| e.data["reason"] == "credentials_revoked")
    })
    .await;

    // Suspending the tenant ends its sessions and refuses its devices.
    platform
        .patch(
            &format!("/api/v1/tenants/{}", acme.tenant.id),
            &serde_json::json!({"status": "suspended"}),
        )
        .await
        .unwrap()
        .ok::<serde_json::Value>()
        .unwrap();
    assert!(
        raw.closed_within(Duration::from_secs(1)).await.is_some(),
        "session ended within 1 s of suspension"
    );
    let (_, code) = Raw::connect(
        &server.mqtt,
        &rotated.access_token.clone().unwrap(),
        30,
        None,
    )
    .await;
    assert_ne!(code, 0, "a suspended tenant's device is refused");
    platform
        .patch(
            &format!("/api/v1/tenants/{}", acme.tenant.id),
            &serde_json::json!({"status": "active"}),
        )
        .await
        .unwrap()
        .ok::<serde_json::Value>()
        .unwrap();

    // Deleting the device ends its session too.
    let (mut raw, code) = Raw::connect(
        &server.mqtt,
        &rotated.access_token.clone().unwrap(),
        30,
        None,
    )
    .await;
    assert_eq!(code, 0);
    assert_eq!(
        c.delete(&format!("/api/v1/devices/{id}"))
            .await
            .unwrap()
            .status,
        204
    );
    assert!(
        raw.closed_within(Duration::from_secs(1)).await.is_some(),
        "session ended within 1 s of deletion"
    );
    let (_, code) = Raw::connect(
        &server.mqtt,
        &rotated.access_token.clone().unwrap(),
        30,
        None,
    )
    .await;
    assert_eq!(code, 4);

    // A malformed packet ends only that connection.
    let (mut broken, _) = Raw::connect(&server.mqtt, "whatever", 30, None).await;
    broken.send(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]).await;
    assert!(broken.closed_within(Duration::from_secs(5)).await.is_some());
    assert_eq!(server.client().get("/healthz").await.unwrap().status, 200);
}

async fn session_limits_attribute_requests_and_last_will(backend: Backend) {
    let server = TestServer::start(backend).await;
    let acme = server.tenant("Acme").await;
    let c = &acme.admin;
    let (id, token) = device(c, "chatty").await;

    let (mut raw, code) = Raw::connect(
        &server.mqtt,
        &token,
        30,
        Some(Will {
            topic: "v1/devices/me/telemetry",
            payload: br#"{"status":"lost"}"#,
        }),
    )
    .await;
    assert_eq!(code, 0);
    raw.subscribe("v1/devices/me/rpc/response/+", 1).await;
    assert_eq!(
        raw.read(Duration::from_secs(5)).await.map(|p| p.0),
        Some(SUBACK)
    );
    raw.subscribe("v1/devices/me/attributes/response/+", 2)
        .await;
    assert_eq!(
        raw.read(Duration::from_secs(5)).await.map(|p| p.0),
        Some(SUBACK)
    );
    let metrics = reqwest::get(format!("{}/metrics", server.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.lines().any(|l| l == "stead_mqtt_sessions 1"),
        "one session connected:\n{metrics}"
    );

    raw.publish(
        "v1/devices/me/rpc/request/42",
        br#"{"method":"getSessionLimits","params":{}}"#,
        None,
    )
    .await;
    let (topic, payload) = raw
        .next_publish(Duration::from_secs(5))
        .await
        .expect("an RPC answer");
    assert_eq!(topic, "v1/devices/me/rpc/response/42");
    let limits: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(limits["maxPayloadSize"], 65536);
    assert_eq!(limits["maxInflightMessages"], 16);
    assert_eq!(limits["rateLimits"]["messages"], "200:1,6000:60");
    assert_eq!(
        limits["rateLimits"]["telemetryDataPoints"],
        "2000:1,60000:60"
    );

    raw.publish(
        "v1/devices/me/rpc/request/43",
        br#"{"method":"selfDestruct","params":{}}"#,
        None,
    )
    .await;
    let (topic, payload) = raw
        .next_publish(Duration::from_secs(5))
        .await
        .expect("an RPC answer");
    assert_eq!(topic, "v1/devices/me/rpc/response/43");
    assert!(String::from_utf8_lossy(&payload).contains("unknown method"));

    raw.publish(
        "v1/devices/me/attributes",
        br#"{"fw":"2.0","model":"X"}"#,
        Some(3),
    )
    .await;
    assert_eq!(
        raw.read(Duration::from_secs(5)).await.map(|p| p.0),
        Some(PUBACK)
    );
    raw.publish(
        "v1/devices/me/attributes/request/5",
        br#"{"clientKeys":"fw"}"#,
        None,
    )
    .await;
    let (topic, payload) = raw
        .next_publish(Duration::from_secs(5))
        .await
        .expect("an attribute answer");
    assert_eq!(topic, "v1/devices/me/attributes/response/5");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&payload).unwrap(),
        serde_json::json!({"client": {"fw": "2.0"}})
    );

    // Dropping the TCP connection without DISCONNECT publishes the Last Will.
    drop(raw);
    eventually("the Last Will was stored", || async {
        let latest: LatestTelemetry = c
            .get(&format!("/api/v1/devices/{id}/telemetry/latest"))
            .await
            .unwrap()
            .ok()
            .unwrap();
        latest.get("status").map(|v| v.value.clone()) == Some(serde_json::json!("lost"))
    })
    .await;
}
