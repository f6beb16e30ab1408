//! ThingsBoard's own Python device SDK (`tb-mqtt-client`, pinned in `e2e/python/requirements.txt`)
//! against Stead: the fleets Stead wants to win run it, so its observable behaviour is the
//! contract. `e2e/python/tb_sdk_device.py` drives one device session with the SDK and prints
//! what it received; this test checks that output and, through the REST API, what was stored.
//!
//! The interpreter is `$STEAD_TEST_PYTHON`, else the virtual environment `cargo xtask test` (or
//! `cargo xtask setup`) creates in `<target>/python-venv` with `e2e/python/requirements.txt`.

use std::process::Stdio;
use std::time::Duration;

use stead_api_types::{LatestTelemetry, TelemetrySeries, TimelineEvent};

use crate::harness::{Backend, TestServer, workspace_root};
use crate::mqtt::{device, timeline};
use crate::on_both_backends;

on_both_backends!(thingsboard_python_sdk_session);

/// The tests' Python interpreter (see the module doc); fails naming the command that makes it.
pub fn python() -> String {
    if let Ok(python) = std::env::var("STEAD_TEST_PYTHON") {
        return python;
    }
    // The same path as `venv_dir` in infra/xtask/src/setup.rs.
    let venv = crate::harness::target_dir().join("python-venv/bin/python");
    assert!(
        venv.exists(),
        "no Python environment for the tests at {}: `cargo xtask setup` creates it \
         (or set STEAD_TEST_PYTHON to an interpreter with e2e/python/requirements.txt installed)",
        venv.display()
    );
    venv.display().to_string()
}

/// Fails with the install command when the SDK is missing. `mmh3` is imported first: without it
/// the SDK would try to pip-install it at import time.
pub async fn require_sdk(python: &str) {
    let out = tokio::process::Command::new(python)
        .args(["-c", "import mmh3, paho.mqtt.client, tb_device_mqtt"])
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {python} (set STEAD_TEST_PYTHON): {e}"));
    assert!(
        out.status.success(),
        "ThingsBoard's Python SDK is not installed for {python}: `cargo xtask setup` installs \
         e2e/python/requirements.txt into the tests' environment\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs the SDK script against the server; answers its JSON line.
async fn run_sdk_device(server: &TestServer, token: &str) -> serde_json::Value {
    let t0 = crate::mqtt::ts0();
    let python = python();
    require_sdk(&python).await;
    let script = workspace_root().join("e2e/python/tb_sdk_device.py");
    let child = tokio::process::Command::new(&python)
        .arg(&script)
        .args(["127.0.0.1", &server.mqtt_port().to_string(), token])
        .env("STEAD_TEST_TS0", t0.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the SDK script");
    // The script bounds itself to 30 s; this bounds a hung interpreter.
    let out = tokio::time::timeout(Duration::from_secs(45), child.wait_with_output())
        .await
        .expect("the SDK script ended within 45 s")
        .expect("the SDK script ran");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the SDK session failed ({}):\nstdout: {stdout}\nstderr: {stderr}\nserver log:\n{}",
        out.status,
        server.log_text()
    );
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("the SDK script printed no JSON line ({e}): {stdout}"))
}

async fn thingsboard_python_sdk_session(backend: Backend) {
    let t0 = crate::mqtt::ts0();
    let server = TestServer::start(backend).await;
    let acme = server.tenant("Acme").await;
    let c = &acme.admin;
    let (id, token) = device(c, "tb-sdk").await;

    let out = run_sdk_device(&server, &token).await;
    println!("SDK session: {out}");

    // Each of the SDK's QoS 1 publishes was acknowledged with reason code 0 (the script fails
    // otherwise); one publish per call, as nothing here is large enough for the SDK to split.
    for what in ["dict", "ts_values", "list", "attributes"] {
        assert_eq!(out["publishes"][what], 1, "{what}: {out}");
    }
    // The client attributes just sent come back; a key never sent is absent, not null.
    assert_eq!(
        out["client_attributes"],
        serde_json::json!({"client": {"fw": "1.2.0", "serial": "A17", "calibrated": true, "channels": 4}}),
        "{out}"
    );
    // Shared attributes do not exist yet: asked for, their scope answers empty.
    assert_eq!(
        out["shared_attributes"],
        serde_json::json!({"shared": {}}),
        "{out}"
    );
    let limits = &out["session_limits"];
    assert_eq!(limits["maxPayloadSize"], 65536, "{out}");
    assert_eq!(limits["maxInflightMessages"], 16, "{out}");
    assert_eq!(limits["rateLimits"]["messages"], "200:1,6000:60", "{out}");
    assert_eq!(
        limits["rateLimits"]["telemetryMessages"], "200:1,6000:60",
        "{out}"
    );
    assert_eq!(
        limits["rateLimits"]["telemetryDataPoints"], "2000:1,60000:60",
        "{out}"
    );
    // The SDK asked for the same limits on its own when it connected, and applied them: its
    // payload limit is then a share of Stead's (not its built-in 8196).
    let sdk_max = out["sdk_max_payload_size"].as_u64().unwrap();
    assert!(
        sdk_max != 8196 && sdk_max > 0 && sdk_max <= 65536,
        "the SDK did not apply getSessionLimits: {out}"
    );

    // What was stored: timestamps from the payload where given, server time otherwise, and each
    // value with its JSON type.
    let window = (
        out["server_time_window"][0].as_i64().unwrap(),
        out["server_time_window"][1].as_i64().unwrap(),
    );
    let series: TelemetrySeries = c
        .get(&format!(
            "/api/v1/devices/{id}/telemetry?keys=temperature,humidity,config,on,mode,count&from=0&order=asc"
        ))
        .await
        .unwrap()
        .ok()
        .unwrap();
    let temps: Vec<(i64, f64)> = series.series["temperature"]
        .iter()
        .map(|p| (p.ts, p.value.as_f64().unwrap()))
        .collect();
    assert_eq!(temps.len(), 4, "{series:?}");
    assert_eq!(
        temps[..3],
        [(t0, 19.25), (t0 + 1000, 19.5), (t0 + 2000, 20.0)]
    );
    let (server_ts, value) = temps[3];
    assert_eq!(value, 21.5);
    assert!(
        window.0 <= server_ts && server_ts <= window.1,
        "a dict without ts is stored at server time, between send and PUBACK: {server_ts} not in {window:?}"
    );
    let humidity = &series.series["humidity"];
    assert_eq!(humidity.len(), 1);
    assert_eq!(humidity[0].ts, t0);
    assert!(humidity[0].value.is_i64() && humidity[0].value == 40);
    let config = &series.series["config"];
    assert_eq!(config.len(), 1);
    assert_eq!(
        (config[0].ts, &config[0].value),
        (t0 + 2000, &serde_json::json!({"a": 1}))
    );
    for key in ["on", "mode", "count"] {
        let points = &series.series[key];
        assert_eq!(points.len(), 1, "{key}: {points:?}");
        assert_eq!(
            points[0].ts, server_ts,
            "{key} shares the dict's server time"
        );
    }

    let latest: LatestTelemetry = c
        .get(&format!("/api/v1/devices/{id}/telemetry/latest"))
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(latest["on"].value, serde_json::json!(true));
    assert_eq!(latest["mode"].value, serde_json::json!("eco"));
    assert!(latest["count"].value.is_i64() && latest["count"].value == 7);
    assert!(latest["humidity"].value.is_i64() && latest["humidity"].value == 40);
    assert_eq!(latest["humidity"].ts, t0);
    assert_eq!(latest["config"].value, serde_json::json!({"a": 1}));
    assert_eq!(latest["config"].ts, t0 + 2000);

    let attrs = crate::mqtt::attribute_values(c, id, "client").await;
    assert_eq!(
        attrs,
        serde_json::json!({"fw": "1.2.0", "serial": "A17", "calibrated": true, "channels": 4}),
        "{attrs}"
    );

    // The session on the timeline: MQTT 5 (the SDK's protocol), a clean disconnect, and nothing
    // the SDK did was refused (its four subscriptions included).
    let mut events = Vec::new();
    for _ in 0..100 {
        events = timeline(c, id).await;
        if events.iter().any(|e| e.kind == "disconnected") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        events
            .iter()
            .any(|e| e.kind == "connected" && e.detail.contains("MQTT 5")),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e.kind == "disconnected" && e.data["reason"] == "client_disconnect"),
        "{events:?}"
    );
    let refused: Vec<&TimelineEvent> = events
        .iter()
        .filter(|e| e.kind == "message_rejected" || e.kind == "subscription_refused")
        .collect();
    assert!(
        refused.is_empty(),
        "the SDK's session was refused: {refused:?}"
    );

    // The SDK sent the server-time temperature first and the older, explicitly timestamped ones
    // after it: the latest value is the newest by timestamp, not the last to arrive.
    assert_eq!(
        (latest["temperature"].ts, &latest["temperature"].value),
        (server_ts, &serde_json::json!(21.5)),
        "latest temperature: the point with the greatest ts wins, not the last one received"
    );
}
