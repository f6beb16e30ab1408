//! Device management from the outside: profiles, groups and list filters; shared attributes
//! pushed to devices; commands (RPC) two-way, one-way, persistent, over MQTT and the HTTP
//! long-poll, and across nodes; inactivity. Devices are real MQTT clients (ThingsBoard's Python
//! SDK and a byte-level client).

use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use stead_api_types::{
    Attribute, BulkResult, CreatedDevice, Device, DeviceGroup, DeviceProfile, DisconnectReason,
    Page, RpcCommand, RpcStatus, SavedProfile,
};
use stead_e2e::Client;
use tokio::io::AsyncBufReadExt as _;

use crate::harness::{Backend, Options, TestServer, workspace_root};
use crate::mqtt::{attribute_values, device, eventually, timeline};
use crate::mqtt_raw::{Raw, SUBACK};
use crate::on_both_backends;

on_both_backends!(
    profiles_groups_and_filters,
    shared_attributes_reach_the_device,
    sdk_device_gets_attributes_and_commands,
    persistent_commands_wait_for_the_device,
    commands_over_the_http_long_poll,
    inactive_devices_go_offline,
);

async fn set_attributes(
    c: &Client,
    device: uuid::Uuid,
    scope: &str,
    values: serde_json::Value,
) -> Vec<Attribute> {
    c.post(
        &format!("/api/v1/devices/{device}/attributes/{scope}"),
        &values,
    )
    .await
    .unwrap()
    .ok()
    .unwrap()
}

async fn names(c: &Client, query: &str) -> Vec<String> {
    let page: Page<Device> = c
        .get(&format!("/api/v1/devices?{query}"))
        .await
        .unwrap()
        .ok()
        .unwrap();
    page.items.into_iter().map(|d| d.name).collect()
}

async fn profiles_groups_and_filters(backend: Backend) {
    let server = TestServer::start(backend).await;
    let acme = server.tenant("Acme").await;
    let c = &acme.admin;

    // Every tenant has a default profile, and devices land in it.
    let profiles: Vec<DeviceProfile> = c.get("/api/v1/profiles").await.unwrap().ok().unwrap();
    assert_eq!(profiles.len(), 1);
    let default = profiles[0].clone();
    assert!(default.is_default && default.name == "default");

    let saved: SavedProfile = c
        .post(
            "/api/v1/profiles",
            &json!({"name": "thermostats", "provision_strategy": "allow_create",
                    "inactivity_timeout_secs": 600, "limits": {"device_messages": "5:1"}}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    let thermo = saved.profile;
    assert!(thermo.provision_key.is_some() && saved.provision_secret.is_some());
    let dup = c
        .post("/api/v1/profiles", &json!({"name": "thermostats"}))
        .await
        .unwrap();
    assert_eq!(
        (dup.status.as_u16(), dup.code()),
        (409, "profile_name_taken".into())
    );
    let bad = c
        .post(
            "/api/v1/profiles",
            &json!({"name": "x", "limits": {"device_messages": "lots"}}),
        )
        .await
        .unwrap();
    assert_eq!(bad.status, 400);
    assert_eq!(bad.error().field.as_deref(), Some("limits.device_messages"));

    let group: DeviceGroup = c
        .post("/api/v1/groups", &json!({"name": "floor-1"}))
        .await
        .unwrap()
        .ok()
        .unwrap();
    let a: CreatedDevice = c
        .post(
            "/api/v1/devices",
            &json!({"name": "a", "label": "lobby", "profile_id": thermo.id, "groups": [group.id]}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(a.device.profile_id, thermo.id);
    let (b_id, b_token) = device(c, "b").await;
    let b: Device = c
        .get(&format!("/api/v1/devices/{b_id}"))
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(b.profile_id, default.id);
    device(c, "c").await;

    assert_eq!(names(c, &format!("profile={}", thermo.id)).await, ["a"]);
    assert_eq!(
        names(c, &format!("profile={}", default.id)).await,
        ["b", "c"]
    );
    assert_eq!(names(c, &format!("group={}", group.id)).await, ["a"]);
    assert_eq!(names(c, "label=lobby").await, ["a"]);

    // The profile's rate-limit override applies to its devices, and getSessionLimits says so.
    let (mut raw_a, code) =
        Raw::connect(&server.mqtt, a.access_token.as_deref().unwrap(), 30, None).await;
    assert_eq!(code, 0);
    raw_a
        .publish(
            "v1/devices/me/rpc/request/1",
            br#"{"method":"getSessionLimits","params":{}}"#,
            None,
        )
        .await;
    let (_, payload) = raw_a.next_publish(Duration::from_secs(5)).await.unwrap();
    let limits: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(limits["rateLimits"]["messages"], "5:1", "{limits}");
    assert_eq!(
        limits["rateLimits"]["telemetryDataPoints"], "2000:1,60000:60",
        "{limits}"
    );
    raw_a.disconnect().await;

    // Group membership through the API.
    let g: DeviceGroup = c
        .post(
            &format!("/api/v1/groups/{}/devices", group.id),
            &json!({"device_ids": [b_id]}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(g.device_count, 2);
    assert_eq!(names(c, &format!("group={}", group.id)).await, ["a", "b"]);
    let groups_of_b: Vec<DeviceGroup> = c
        .get(&format!("/api/v1/devices/{b_id}/groups"))
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(groups_of_b.len(), 1);

    // Online status: b connects.
    eventually("a offline again", || async {
        names(c, "online=true").await.is_empty()
    })
    .await;
    let (mut raw, code) = Raw::connect(&server.mqtt, &b_token, 30, None).await;
    assert_eq!(code, 0);
    eventually("b listed online", || async {
        names(c, "online=true").await == ["b"]
    })
    .await;
    assert_eq!(names(c, "online=false").await, ["a", "c"]);
    raw.disconnect().await;
    eventually("b listed offline", || async {
        names(c, "online=true").await.is_empty()
    })
    .await;

    // Profiles in use or default cannot go; moving the device frees it.
    let r = c
        .delete(&format!("/api/v1/profiles/{}", thermo.id))
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (409, "profile_in_use".into())
    );
    let r = c
        .delete(&format!("/api/v1/profiles/{}", default.id))
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (409, "profile_is_default".into())
    );
    let moved: Device = c
        .patch(
            &format!("/api/v1/devices/{}", a.device.id),
            &json!({"profile_id": default.id}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(moved.profile_id, default.id);
    let r = c
        .delete(&format!("/api/v1/profiles/{}", thermo.id))
        .await
        .unwrap();
    assert_eq!(r.status, 204);

    // Another tenant sees none of it.
    let other = server.tenant("Other").await;
    let o = &other.admin;
    for path in [
        format!("/api/v1/profiles/{}", default.id),
        format!("/api/v1/groups/{}", group.id),
        format!("/api/v1/devices/{b_id}/groups"),
        format!("/api/v1/devices/{b_id}/attributes"),
        format!("/api/v1/devices/{b_id}/rpc"),
    ] {
        let r = o.get(&path).await.unwrap();
        assert_eq!(r.status, 404, "GET {path}: {}", r.body);
    }
    let r = o
        .post(
            &format!("/api/v1/groups/{}/devices", group.id),
            &json!({"device_ids": [b_id]}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    // Their own group cannot take our device either.
    let theirs: DeviceGroup = o
        .post("/api/v1/groups", &json!({"name": "theirs"}))
        .await
        .unwrap()
        .ok()
        .unwrap();
    let r = o
        .post(
            &format!("/api/v1/groups/{}/devices", theirs.id),
            &json!({"device_ids": [b_id]}),
        )
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (400, "unknown_device".into())
    );
    let r = o
        .post(
            "/api/v1/devices",
            &json!({"name": "sneaky", "profile_id": default.id}),
        )
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (400, "unknown_profile".into())
    );
}

async fn shared_attributes_reach_the_device(backend: Backend) {
    let server = TestServer::start(backend).await;
    let acme = server.tenant("Acme").await;
    let c = &acme.admin;
    let (id, token) = device(c, "valve").await;
    let (id2, token2) = device(c, "valve-2").await;
    let group: DeviceGroup = c
        .post("/api/v1/groups", &json!({"name": "valves"}))
        .await
        .unwrap()
        .ok()
        .unwrap();
    let _: DeviceGroup = c
        .post(
            &format!("/api/v1/groups/{}/devices", group.id),
            &json!({"device_ids": [id, id2]}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();

    let (mut raw, code) = Raw::connect(&server.mqtt, &token, 30, None).await;
    assert_eq!(code, 0);
    raw.subscribe("v1/devices/me/attributes", 1).await;
    assert_eq!(raw.read(Duration::from_secs(5)).await.unwrap().0, SUBACK);
    let (mut raw2, _) = Raw::connect(&server.mqtt, &token2, 30, None).await;
    raw2.subscribe("v1/devices/me/attributes", 1).await;
    assert_eq!(raw2.read(Duration::from_secs(5)).await.unwrap().0, SUBACK);

    // A change is pushed as it happens; versions count changes, not writes.
    let saved = set_attributes(c, id, "shared", json!({"target": 21.5, "mode": "eco"})).await;
    assert!(saved.iter().all(|a| a.version == 1), "{saved:?}");
    let (topic, payload) = raw
        .next_publish_acked(Duration::from_secs(5))
        .await
        .expect("the change reached the device");
    assert_eq!(topic, "v1/devices/me/attributes");
    let pushed: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(pushed, json!({"target": 21.5, "mode": "eco"}));
    let again = set_attributes(c, id, "shared", json!({"target": 22, "mode": "eco"})).await;
    let version = |key: &str| again.iter().find(|a| a.key == key).unwrap().version;
    assert_eq!((version("target"), version("mode")), (2, 1));
    raw.next_publish_acked(Duration::from_secs(5))
        .await
        .unwrap();

    // Server attributes stay on the platform.
    let _ = set_attributes(c, id, "server", json!({"site": "plant-3"})).await;
    assert!(
        raw.next_publish_acked(Duration::from_millis(500))
            .await
            .is_none(),
        "a server attribute was pushed"
    );

    // The device asks: client and shared answer, server never.
    raw.publish(
        "v1/devices/me/attributes/request/7",
        br#"{"sharedKeys":"target,site"}"#,
        None,
    )
    .await;
    let (topic, payload) = raw
        .next_publish(Duration::from_secs(5))
        .await
        .expect("an answer");
    assert_eq!(topic, "v1/devices/me/attributes/response/7");
    let answer: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(answer, json!({"shared": {"target": 22}}));
    // The HTTP device API answers the same.
    let r = server
        .client()
        .get(&format!("/api/v1/{token}/attributes?sharedKeys=mode"))
        .await
        .unwrap();
    assert_eq!(r.body, json!({"shared": {"mode": "eco"}}));

    // Deleting tells the device which keys went.
    let r = c
        .delete(&format!("/api/v1/devices/{id}/attributes/shared?keys=mode"))
        .await
        .unwrap();
    assert_eq!(r.status, 204);
    let (_, payload) = raw
        .next_publish_acked(Duration::from_secs(5))
        .await
        .unwrap();
    let pushed: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(pushed, json!({"deleted": ["mode"]}));
    assert_eq!(
        attribute_values(c, id, "shared").await,
        json!({"target": 22})
    );

    // A whole group in one call.
    let result: BulkResult = c
        .post(
            &format!("/api/v1/groups/{}/attributes/shared", group.id),
            &json!({"firmware_channel": "beta"}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(result.devices, 2);
    for r in [&mut raw, &mut raw2] {
        let (_, payload) = r.next_publish_acked(Duration::from_secs(5)).await.unwrap();
        let pushed: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(pushed, json!({"firmware_channel": "beta"}));
    }
    assert_eq!(
        attribute_values(c, id2, "shared").await,
        json!({"firmware_channel": "beta"})
    );

    // Bad input: client scope is the device's; unknown scope; not an object; empty.
    for (path, body, code) in [
        ("client", json!({"a": 1}), "read_only_scope"),
        ("bogus", json!({"a": 1}), "invalid_scope"),
        ("shared", json!({}), "invalid_attributes"),
    ] {
        let r = c
            .post(&format!("/api/v1/devices/{id}/attributes/{path}"), &body)
            .await
            .unwrap();
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (400, code.to_string()),
            "{path}"
        );
    }
    let r = c
        .post(
            &format!("/api/v1/devices/{id}/attributes/shared"),
            &json!([1]),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    // A viewer reads but cannot write.
    let viewer = server.user(&acme, stead_api_types::Role::Viewer).await;
    let r = viewer
        .post(
            &format!("/api/v1/devices/{id}/attributes/shared"),
            &json!({"a": 1}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    assert_eq!(
        attribute_values(&viewer, id, "server").await,
        json!({"site": "plant-3"})
    );
}

/// Runs the managed-device SDK script; answers its stdout lines as they come.
async fn sdk_device(
    server: &TestServer,
    token: &str,
    events: usize,
) -> (
    tokio::process::Child,
    tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
) {
    let python = crate::sdk::python();
    crate::sdk::require_sdk(&python).await;
    let mut child = tokio::process::Command::new(&python)
        .arg(workspace_root().join("e2e/python/tb_sdk_managed.py"))
        .args([
            "127.0.0.1",
            &server.mqtt_port().to_string(),
            token,
            &events.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start the SDK script");
    let lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    (child, lines)
}

async fn next_event(
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
) -> serde_json::Value {
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("the SDK script said something within 20 s")
        .unwrap()
        .expect("the SDK script ended early");
    let event: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert!(
        event.get("error").is_none(),
        "the SDK script failed: {event}"
    );
    event
}

async fn sdk_device_gets_attributes_and_commands(backend: Backend) {
    let server = TestServer::start(backend).await;
    let acme = server.tenant("Acme").await;
    let c = &acme.admin;
    let (id, token) = device(c, "sdk-managed").await;
    let _ = set_attributes(c, id, "shared", json!({"target_temp": 21})).await;

    let (mut child, mut lines) = sdk_device(&server, &token, 3).await;
    let ready = next_event(&mut lines).await;
    assert_eq!(ready["event"], "ready", "{ready}");
    // An attribute request answers client and shared values.
    assert_eq!(
        ready["attributes"],
        json!({"client": {"fw": "2.0.1"}, "shared": {"target_temp": 21}}),
        "{ready}"
    );

    // A shared attribute update reaches the subscribed SDK.
    let _ = set_attributes(c, id, "shared", json!({"target_temp": 23.5})).await;
    let update = next_event(&mut lines).await;
    assert_eq!(
        update,
        json!({"event": "attributes", "data": {"target_temp": 23.5}})
    );

    // A two-way command reaches the device and its answer reaches the caller.
    let answer: RpcCommand = c
        .post(
            &format!("/api/v1/devices/{id}/rpc"),
            &json!({"method": "setValve", "params": {"open": true}, "timeout_ms": 10000}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(answer.status, RpcStatus::Successful, "{answer:?}");
    assert_eq!(
        answer.response,
        Some(json!({"echo": {"open": true}, "method": "setValve"}))
    );
    let rpc = next_event(&mut lines).await;
    assert_eq!(rpc["method"], "setValve");

    // A deleted key is announced to the SDK as `{"deleted": [...]}`.
    let r = c
        .delete(&format!(
            "/api/v1/devices/{id}/attributes/shared?keys=target_temp"
        ))
        .await
        .unwrap();
    assert_eq!(r.status, 204);
    // (the script stops after 3 events: ready is not one; the delete is the 3rd)
    let deleted = next_event(&mut lines).await;
    assert_eq!(
        deleted,
        json!({"event": "attributes", "data": {"deleted": ["target_temp"]}})
    );
    let done = next_event(&mut lines).await;
    assert_eq!(done["event"], "done");
    assert!(child.wait().await.unwrap().success());
}

async fn rpc(c: &Client, id: uuid::Uuid, body: serde_json::Value) -> (u16, serde_json::Value) {
    let r = c
        .post(&format!("/api/v1/devices/{id}/rpc"), &body)
        .await
        .unwrap();
    (r.status.as_u16(), r.body)
}

async fn command(c: &Client, id: uuid::Uuid, rpc_id: &serde_json::Value) -> RpcCommand {
    c.get(&format!(
        "/api/v1/devices/{id}/rpc/{}",
        rpc_id.as_str().unwrap()
    ))
    .await
    .unwrap()
    .ok()
    .unwrap()
}

async fn persistent_commands_wait_for_the_device(backend: Backend) {
    let server = TestServer::start(backend).await;
    let acme = server.tenant("Acme").await;
    let c = &acme.admin;
    let (id, token) = device(c, "sleepy").await;

    // Offline: a plain command is refused at once, a persistent one waits.
    let (status, body) = rpc(c, id, json!({"method": "reboot"})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("device_offline"))
    );
    let (status, kept) = rpc(
        c,
        id,
        json!({"method": "setInterval", "params": {"s": 30}, "persistent": true}),
    )
    .await;
    assert_eq!(status, 202, "{kept}");
    assert_eq!(kept["status"], "QUEUED");
    let (status, short) = rpc(
        c,
        id,
        json!({"method": "tooLate", "persistent": true, "expiration_ms": 1000}),
    )
    .await;
    assert_eq!(status, 202);
    let (status, oneway) = rpc(
        c,
        id,
        json!({"method": "blink", "persistent": true, "oneway": true}),
    )
    .await;
    assert_eq!(status, 202);
    eventually("the short-lived command expires", || async {
        command(c, id, &short["id"]).await.status == RpcStatus::Expired
    })
    .await;

    // The device connects and subscribes: the queued commands arrive, the expired one never.
    let (mut raw, code) = Raw::connect(&server.mqtt, &token, 30, None).await;
    assert_eq!(code, 0);
    raw.subscribe("v1/devices/me/rpc/request/+", 1).await;
    let mut got = Vec::new();
    while let Some((topic, payload)) = raw.next_publish_acked(Duration::from_secs(3)).await {
        let body: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        got.push((topic, body));
    }
    let methods: Vec<&str> = got
        .iter()
        .map(|(_, b)| b["method"].as_str().unwrap())
        .collect();
    assert_eq!(methods, ["setInterval", "blink"], "{got:?}");
    assert_eq!(got[0].1["params"], json!({"s": 30}));
    let kept_cmd = command(c, id, &kept["id"]).await;
    assert_eq!(
        got[0].0,
        format!("v1/devices/me/rpc/request/{}", kept_cmd.request_id)
    );
    eventually("delivered", || async {
        command(c, id, &kept["id"]).await.status == RpcStatus::Delivered
            && command(c, id, &oneway["id"]).await.status == RpcStatus::Delivered
    })
    .await;

    // The device answers; an answer to nothing is refused and recorded.
    raw.publish(
        &format!("v1/devices/me/rpc/response/{}", kept_cmd.request_id),
        br#"{"ok":true}"#,
        None,
    )
    .await;
    eventually("answered", || async {
        let cmd = command(c, id, &kept["id"]).await;
        cmd.status == RpcStatus::Successful && cmd.response == Some(json!({"ok": true}))
    })
    .await;
    raw.publish("v1/devices/me/rpc/response/999", b"{}", None)
        .await;
    eventually("the stray answer is on the timeline", || async {
        timeline(c, id)
            .await
            .iter()
            .any(|e| e.kind == "message_rejected" && e.detail.contains("no command 999"))
    })
    .await;

    // Unanswered with a retry: sent again, then TIMEOUT.
    let (status, retried) = rpc(
        c,
        id,
        json!({"method": "calibrate", "persistent": true, "timeout_ms": 500, "retries": 1}),
    )
    .await;
    assert_eq!(status, 202);
    let first = raw
        .next_publish_acked(Duration::from_secs(5))
        .await
        .unwrap();
    let second = raw
        .next_publish_acked(Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(first.0, second.0, "the same command, resent");
    eventually("timed out after the retry", || async {
        let cmd = command(c, id, &retried["id"]).await;
        cmd.status == RpcStatus::Timeout && cmd.retries_left == 0
    })
    .await;

    // Online and not persistent: a two-way command with no answer times out with 504.
    let (status, body) = rpc(c, id, json!({"method": "ignored", "timeout_ms": 300})).await;
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["code"], "rpc_timeout");
    assert_eq!(body["command"]["status"], "TIMEOUT");
    let (_, payload) = raw
        .next_publish_acked(Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&payload).unwrap()["method"],
        "ignored"
    );
    // One-way and online: answered once the device acknowledges it.
    let call = {
        let c = c.clone();
        tokio::spawn(async move { rpc(&c, id, json!({"method": "beep", "oneway": true})).await })
    };
    raw.next_publish_acked(Duration::from_secs(5))
        .await
        .unwrap();
    let (status, body) = call.await.unwrap();
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("DELIVERED")),
        "{body}"
    );

    // The history, newest first, with every state.
    let history: Page<RpcCommand> = c
        .get(&format!("/api/v1/devices/{id}/rpc?per_page=50"))
        .await
        .unwrap()
        .ok()
        .unwrap();
    let states: Vec<(String, RpcStatus)> = history
        .items
        .iter()
        .map(|c| (c.method.clone(), c.status))
        .collect();
    assert_eq!(
        states,
        [
            ("beep".into(), RpcStatus::Delivered),
            ("ignored".into(), RpcStatus::Timeout),
            ("calibrate".into(), RpcStatus::Timeout),
            ("blink".into(), RpcStatus::Delivered),
            ("tooLate".into(), RpcStatus::Expired),
            ("setInterval".into(), RpcStatus::Successful),
        ]
    );

    // Bad input.
    for (body, field) in [
        (json!({"method": ""}), "method"),
        (json!({"method": "x", "timeout_ms": 5}), "timeout_ms"),
        (json!({"method": "x", "retries": 3}), "persistent"),
        (
            json!({"method": "x", "persistent": true, "retries": 99}),
            "retries",
        ),
    ] {
        let r = c
            .post(&format!("/api/v1/devices/{id}/rpc"), &body)
            .await
            .unwrap();
        assert_eq!(r.status, 400, "{body}");
        assert_eq!(r.error().field.as_deref(), Some(field), "{body}");
    }
    let viewer = server.user(&acme, stead_api_types::Role::Viewer).await;
    assert_eq!(
        viewer
            .post(
                &format!("/api/v1/devices/{id}/rpc"),
                &json!({"method": "x"})
            )
            .await
            .unwrap()
            .status,
        403
    );
}

async fn commands_over_the_http_long_poll(backend: Backend) {
    let server = TestServer::start(backend).await;
    let acme = server.tenant("Acme").await;
    let c = acme.admin.clone();
    let (id, token) = device(&c, "http-device").await;
    let device_api = server.client();

    // Nothing to do: the poll ends with 408.
    let r = device_api
        .get(&format!("/api/v1/{token}/rpc?timeout=200"))
        .await
        .unwrap();
    assert_eq!((r.status.as_u16(), r.code()), (408, "no_command".into()));

    // A caller sends while the device polls; the device answers over HTTP.
    let poll = {
        let device_api = device_api.clone();
        let token = token.clone();
        tokio::spawn(async move {
            device_api
                .get(&format!("/api/v1/{token}/rpc?timeout=10000"))
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let caller = {
        let c = c.clone();
        tokio::spawn(async move {
            rpc(&c, id, json!({"method": "getReading", "params": {"ch": 2}})).await
        })
    };
    let got = poll.await.unwrap();
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.body["method"], "getReading");
    assert_eq!(got.body["params"], json!({"ch": 2}));
    let request_id = got.body["id"].as_u64().unwrap();
    let r = device_api
        .post(
            &format!("/api/v1/{token}/rpc/{request_id}"),
            &json!({"value": 7.5}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let (status, body) = caller.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "SUCCESSFUL");
    assert_eq!(body["response"], json!({"value": 7.5}));
    // Answering again, or something never sent, is refused.
    let r = device_api
        .post(&format!("/api/v1/{token}/rpc/{request_id}"), &json!({}))
        .await
        .unwrap();
    assert_eq!(r.status, 400);

    // A persistent command waits for the next poll.
    let (status, _) = rpc(&c, id, json!({"method": "later", "persistent": true})).await;
    assert_eq!(status, 202);
    let r = device_api
        .get(&format!("/api/v1/{token}/rpc?timeout=2000"))
        .await
        .unwrap();
    assert_eq!(r.body["method"], "later");
}

async fn inactive_devices_go_offline(backend: Backend) {
    let server = TestServer::start(backend).await;
    let acme = server.tenant("Acme").await;
    let c = &acme.admin;
    let saved: SavedProfile = c
        .post(
            "/api/v1/profiles",
            &json!({"name": "chatty", "inactivity_timeout_secs": 2}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    let created: CreatedDevice = c
        .post(
            "/api/v1/devices",
            &json!({"name": "quiet", "profile_id": saved.profile.id}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    let id = created.device.id;
    let token = created.access_token.unwrap();
    // Keep-alive 30 s: the protocol would keep it; the profile says 2 s without a message.
    let (mut raw, code) = Raw::connect(&server.mqtt, &token, 30, None).await;
    assert_eq!(code, 0);
    raw.publish("v1/devices/me/telemetry", br#"{"t":1}"#, None)
        .await;
    assert!(
        raw.closed_within(Duration::from_secs(10)).await.is_some(),
        "the silent device's session was ended"
    );
    eventually("offline with reason inactive", || async {
        let p = crate::mqtt::presence(c, id).await;
        !p.online && p.last_disconnect_reason == Some(DisconnectReason::Inactive)
    })
    .await;
    eventually("the timeline says why", || async {
        timeline(c, id)
            .await
            .iter()
            .any(|e| e.kind == "disconnected" && e.detail.contains("inactivity timeout"))
    })
    .await;
}

/// Two nodes sharing PostgreSQL and Redis: a command sent through node A's API reaches the
/// device connected to node B, and its answer comes back to the caller on A.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_and_attributes_cross_nodes() {
    let a = TestServer::start(Backend::Postgres).await;
    let b = TestServer::start_with(
        Backend::Postgres,
        Options {
            join: Some(a.shared()),
            ..Options::default()
        },
    )
    .await;
    let acme = a.tenant("Acme").await;
    let c = acme.admin.clone();
    let (id, token) = device(&c, "far-away").await;
    let (mut raw, code) = Raw::connect(&b.mqtt, &token, 30, None).await;
    assert_eq!(code, 0);
    raw.subscribe("v1/devices/me/rpc/request/+", 1).await;
    assert_eq!(raw.read(Duration::from_secs(5)).await.unwrap().0, SUBACK);
    raw.subscribe("v1/devices/me/attributes", 2).await;
    assert_eq!(raw.read(Duration::from_secs(5)).await.unwrap().0, SUBACK);
    eventually("online as seen from A", || async {
        let p = crate::mqtt::presence(&c, id).await;
        p.online
    })
    .await;

    let caller = {
        let c = c.clone();
        tokio::spawn(async move {
            rpc(
                &c,
                id,
                json!({"method": "ping", "params": 1, "timeout_ms": 10000}),
            )
            .await
        })
    };
    let (topic, payload) = raw
        .next_publish_acked(Duration::from_secs(10))
        .await
        .expect("the command crossed to node B");
    let request: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(request, json!({"method": "ping", "params": 1}));
    let request_id = topic.rsplit('/').next().unwrap().to_owned();
    raw.publish(
        &format!("v1/devices/me/rpc/response/{request_id}"),
        br#""pong""#,
        None,
    )
    .await;
    let (status, body) = caller.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["response"], json!("pong"));

    let _ = set_attributes(&c, id, "shared", json!({"color": "blue"})).await;
    let (topic, payload) = raw
        .next_publish_acked(Duration::from_secs(10))
        .await
        .expect("the attribute crossed to node B");
    assert_eq!(topic, "v1/devices/me/attributes");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&payload).unwrap(),
        json!({"color": "blue"})
    );
}
