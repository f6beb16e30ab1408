//! Gateways: ThingsBoard's Gateway MQTT API against the real binary. ThingsBoard's own gateway
//! client (`tb-mqtt-client`'s `TBGatewayMqttClient`, driven by `e2e/python/tb_sdk_gateway.py`)
//! connects devices behind a gateway, sends their data and answers a command sent through the
//! REST API; the byte-level client sends what a good client would not (unknown fields, names it
//! may not use, floods), and each refusal must stay with the device it is about.

use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use stead_api_types::{
    CreatedDevice, Device, DisconnectReason, Page, RpcCommand, RpcStatus, SavedProfile,
    TelemetrySeries,
};
use stead_e2e::Client;
use stead_e2e::wire;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use uuid::Uuid;

use crate::harness::{Backend, Options, TestServer, workspace_root};
use crate::mqtt::{attribute_values, count_stored, device, eventually, presence, timeline};
use crate::mqtt_raw::{PUBACK, Raw, SUBACK, read_packet};
use crate::on_both_backends;

on_both_backends!(
    thingsboard_gateway_client_speaks_for_its_devices,
    bad_input_on_gateway_topics_is_refused_per_device,
    gateways_are_marked_and_their_devices_listed,
);

/// A device marked as gateway; answers its id and access token.
async fn gateway(c: &Client, name: &str) -> (Uuid, String) {
    let created: CreatedDevice = c
        .post("/api/v1/devices", &json!({"name": name, "gateway": true}))
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert!(created.device.gateway);
    (created.device.id, created.access_token.unwrap())
}

/// The tenant's device named `name`, if any.
pub(crate) async fn named(c: &Client, name: &str) -> Option<Device> {
    let page: Page<Device> = c
        .get(&format!("/api/v1/devices?search={name}&per_page=100"))
        .await
        .unwrap()
        .ok()
        .unwrap();
    page.items.into_iter().find(|d| d.name == name)
}

async fn sub_devices(c: &Client, gateway: Uuid) -> Vec<Device> {
    let page: Page<Device> = c
        .get(&format!("/api/v1/devices/{gateway}/sub-devices"))
        .await
        .unwrap()
        .ok()
        .unwrap();
    page.items
}

type Lines = tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>;

async fn next_event(lines: &mut Lines, server: &TestServer) -> serde_json::Value {
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("the gateway script said something within 30 s")
        .unwrap()
        .unwrap_or_else(|| {
            panic!(
                "the gateway script ended early; server log:\n{}",
                server.log_tail(80)
            )
        });
    let event: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert!(
        event.get("error").is_none(),
        "the gateway script failed: {event}\nserver log:\n{}",
        server.log_tail(80)
    );
    event
}

async fn thingsboard_gateway_client_speaks_for_its_devices(backend: Backend) {
    let t0 = crate::mqtt::ts0();
    let server = TestServer::start(backend).await;
    let acme = server.tenant("Acme").await;
    let c = &acme.admin;
    let thermostats: SavedProfile = c
        .post("/api/v1/profiles", &json!({"name": "thermostat"}))
        .await
        .unwrap()
        .ok()
        .unwrap();
    let thermostats = thermostats.profile;
    let (gw_id, token) = gateway(c, "gw-1").await;

    let python = crate::sdk::python();
    crate::sdk::require_sdk(&python).await;
    let mut child = tokio::process::Command::new(&python)
        .arg(workspace_root().join("e2e/python/tb_sdk_gateway.py"))
        .args(["127.0.0.1", &server.mqtt_port().to_string(), &token])
        .env("STEAD_TEST_TS0", t0.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start the gateway script");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();

    let ready = next_event(&mut lines, &server).await;
    println!("gateway session: {ready}");
    assert_eq!(ready["event"], "ready", "{ready}");
    // Every QoS 1 publish was acknowledged with reason code 0 (the script fails otherwise).
    for what in [
        "connect_1",
        "connect_2",
        "telemetry_1",
        "telemetry_2",
        "attributes_1",
    ] {
        assert_eq!(ready["publishes"][what], 1, "{what}: {ready}");
    }
    // The client attributes just sent come back as ThingsBoard answers them: several keys as
    // `values`, one key as `value`.
    assert_eq!(ready["client_attributes"]["device"], "thermo-1", "{ready}");
    assert_eq!(
        ready["client_attributes"]["values"],
        json!({"fw": "2.0", "serial": "T1"}),
        "{ready}"
    );
    assert_eq!(ready["one_attribute"]["value"], "2.0", "{ready}");
    // The gateway hears the limits of the devices behind it, and the SDK applies them.
    let limits = &ready["session_limits"];
    assert_eq!(
        limits["gatewayRateLimits"]["messages"], "200:1,6000:60",
        "{ready}"
    );
    assert_eq!(
        limits["gatewayRateLimits"]["telemetryDataPoints"], "2000:1,60000:60",
        "{ready}"
    );
    assert_eq!(ready["sdk_applied_gateway_limits"], true, "{ready}");

    // Both devices were created on first sight, in the gateway's tenant, behind it, without
    // credentials of their own; the type chose the profile (the default when none has its name).
    let t1 = named(c, "thermo-1").await.expect("thermo-1 was created");
    let t2 = named(c, "thermo-2").await.expect("thermo-2 was created");
    assert_eq!(t1.gateway_id, Some(gw_id));
    assert_eq!(t2.gateway_id, Some(gw_id));
    assert_eq!(t1.device_type.as_deref(), Some("thermostat"));
    assert_eq!(t1.profile_id, thermostats.id);
    assert_ne!(t2.profile_id, thermostats.id);
    assert_eq!(
        t1.credentials_type,
        stead_api_types::CredentialsType::None,
        "{t1:?}"
    );
    assert!(!t1.gateway);
    let mut listed: Vec<String> = sub_devices(c, gw_id)
        .await
        .into_iter()
        .map(|d| d.name)
        .collect();
    listed.sort();
    assert_eq!(listed, ["thermo-1", "thermo-2"]);
    let filtered: Page<Device> = c
        .get(&format!("/api/v1/devices?gateway={gw_id}"))
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(filtered.total, 2);
    // Each has its own presence, online while the gateway holds it.
    for (id, name) in [(t1.id, "thermo-1"), (t2.id, "thermo-2")] {
        eventually(&format!("{name} online"), || async {
            presence(c, id).await.online
        })
        .await;
    }
    assert!(presence(c, gw_id).await.online);

    // Its own data: points with their own time, or server time.
    let series: TelemetrySeries = c
        .get(&format!(
            "/api/v1/devices/{}/telemetry?keys=temperature,humidity&from=0&order=asc",
            t1.id
        ))
        .await
        .unwrap()
        .ok()
        .unwrap();
    let temps: Vec<(i64, f64)> = series.series["temperature"]
        .iter()
        .map(|p| (p.ts, p.value.as_f64().unwrap()))
        .collect();
    assert_eq!(temps, [(t0, 21.5), (t0 + 1000, 21.75)], "{series:?}");
    assert_eq!(series.series["humidity"].len(), 1);
    let series: TelemetrySeries = c
        .get(&format!(
            "/api/v1/devices/{}/telemetry?keys=temperature,on&from=0",
            t2.id
        ))
        .await
        .unwrap()
        .ok()
        .unwrap();
    let ts = series.series["temperature"][0].ts;
    let window = (
        ready["server_time_window"][0].as_i64().unwrap(),
        ready["server_time_window"][1].as_i64().unwrap(),
    );
    assert!(
        window.0 <= ts && ts <= window.1,
        "server time {ts} in {window:?}"
    );
    assert_eq!(series.series["on"][0].value, json!(true));
    assert_eq!(
        attribute_values(c, t1.id, "client").await,
        json!({"fw": "2.0", "serial": "T1"})
    );
    // The gateway's own series holds none of it.
    assert_eq!(count_stored(c, gw_id, "temperature").await, 0);

    // A shared attribute of a device behind the gateway reaches the gateway, addressed to it.
    let r = c
        .post(
            &format!("/api/v1/devices/{}/attributes/shared", t1.id),
            &json!({"target": 22.5}),
        )
        .await
        .unwrap();
    assert!(r.status.is_success(), "{}", r.body);
    let update = next_event(&mut lines, &server).await;
    assert_eq!(
        update,
        json!({"event": "attributes", "content": {"device": "thermo-1", "data": {"target": 22.5}}})
    );

    // A command to a device behind the gateway goes out on v1/gateway/rpc, and the gateway's
    // answer completes it.
    let answer: RpcCommand = c
        .post(
            &format!("/api/v1/devices/{}/rpc", t1.id),
            &json!({"method": "setTarget", "params": {"value": 22.5}, "timeout_ms": 10000}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(answer.status, RpcStatus::Successful, "{answer:?}");
    assert_eq!(
        answer.response,
        Some(json!({"echo": {"value": 22.5}, "method": "setTarget"}))
    );
    let rpc = next_event(&mut lines, &server).await;
    assert_eq!(rpc["event"], "rpc");
    assert_eq!(rpc["content"]["device"], "thermo-1");
    assert_eq!(
        rpc["content"]["data"]["id"],
        json!(answer.request_id),
        "{rpc}"
    );
    assert_eq!(rpc["content"]["data"]["method"], "setTarget");
    assert_eq!(rpc["content"]["data"]["params"], json!({"value": 22.5}));

    let shared = next_event(&mut lines, &server).await;
    assert_eq!(
        shared["answer"],
        json!({"id": shared["answer"]["id"], "device": "thermo-1", "value": 22.5}),
        "{shared}"
    );
    let done = next_event(&mut lines, &server).await;
    assert_eq!(done["event"], "done");
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());

    // The device the gateway disconnected went offline as a device does; the other went with
    // its gateway.
    eventually("thermo-2 disconnected by its gateway", || async {
        let p = presence(c, t2.id).await;
        !p.online && p.last_disconnect_reason == Some(DisconnectReason::ClientDisconnect)
    })
    .await;
    eventually("thermo-1 offline with its gateway", || async {
        let p = presence(c, t1.id).await;
        !p.online && p.last_disconnect_reason == Some(DisconnectReason::GatewayDisconnected)
    })
    .await;
    let p = presence(c, t1.id).await;
    assert!(p.messages >= 4, "its own message count: {p:?}");
    // A command to a device whose gateway is gone reaches no one (it was active a moment ago,
    // so it is tried as any such device is): it ends unsent, timed out or expired (whichever of
    // the caller's wait and the worker's sweep notices first).
    let r = c
        .post(
            &format!("/api/v1/devices/{}/rpc", t1.id),
            &json!({"method": "ping", "timeout_ms": 500}),
        )
        .await
        .unwrap();
    let command = match r.status.as_u16() {
        504 => r.body["command"].clone(),
        200 => r.body.clone(),
        other => panic!("{other}: {}", r.body),
    };
    assert!(
        ["TIMEOUT", "EXPIRED"].contains(&command["status"].as_str().unwrap()),
        "{command}"
    );
    assert_eq!(command["sent_at"], serde_json::Value::Null, "{command}");
    // Its timeline tells its story, through whom.
    let t = timeline(c, t1.id).await;
    assert!(
        t.iter().any(|e| e.kind == "connected"
            && e.detail.contains("gw-1")
            && e.data["created"] == true),
        "{t:?}"
    );
    assert!(t.iter().any(|e| e.kind == "command"), "{t:?}");
    assert!(
        t.iter()
            .any(|e| e.kind == "disconnected" && e.data["reason"] == "gateway_disconnected"),
        "{t:?}"
    );
}

/// A byte-level MQTT 5 connection (reason codes on every PUBACK).
struct V5 {
    stream: TcpStream,
}

impl V5 {
    async fn connect(addr: &str, token: &str) -> V5 {
        let stream = TcpStream::connect(addr).await.unwrap();
        let mut c = V5 { stream };
        let client_id = format!("v5-{}", Uuid::new_v4().simple());
        let connect = wire::Connect {
            v5: true,
            client_id: &client_id,
            username: token,
            password: None,
            keep_alive: 30,
            will: None,
        };
        c.stream.write_all(&connect.encode()).await.unwrap();
        match read_packet(&mut c.stream, Duration::from_secs(5)).await {
            Some((wire::CONNACK, body)) if body.len() >= 2 && body[1] == 0 => c,
            other => panic!("no CONNACK: {other:?}"),
        }
    }

    /// Publishes at QoS 1; answers the PUBACK's reason code.
    async fn publish(&mut self, packet_id: u16, topic: &str, payload: serde_json::Value) -> u8 {
        let mut out = Vec::new();
        wire::put_publish(
            &mut out,
            true,
            topic,
            Some(packet_id),
            payload.to_string().as_bytes(),
        );
        self.stream.write_all(&out).await.unwrap();
        loop {
            match read_packet(&mut self.stream, Duration::from_secs(5)).await {
                Some((PUBACK, body)) if body[..2] == packet_id.to_be_bytes() => {
                    return body.get(2).copied().unwrap_or(0);
                }
                Some(_) => continue,
                None => panic!("no PUBACK for {packet_id}"),
            }
        }
    }
}

/// Publishes at QoS 1 on MQTT 3.1.1 and waits for the PUBACK.
pub(crate) async fn publish_acked(
    raw: &mut Raw,
    packet_id: u16,
    topic: &str,
    payload: serde_json::Value,
) {
    raw.publish(topic, payload.to_string().as_bytes(), Some(packet_id))
        .await;
    loop {
        match raw.read(Duration::from_secs(5)).await {
            Some((PUBACK, body)) if body == packet_id.to_be_bytes() => return,
            Some(_) => continue,
            None => panic!("no PUBACK for {packet_id}: the connection closed or stalled"),
        }
    }
}

fn rejections(t: &[stead_api_types::TimelineEvent]) -> Vec<&str> {
    t.iter()
        .filter(|e| e.kind == "message_rejected")
        .map(|e| e.detail.as_str())
        .collect()
}

async fn bad_input_on_gateway_topics_is_refused_per_device(backend: Backend) {
    let server = TestServer::start_with(
        backend,
        Options::default().env("STEAD_DEVICE_RATE_MESSAGES", "5:1"),
    )
    .await;
    let acme = server.tenant("Acme").await;
    let other = server.tenant("Other").await;
    let c = &acme.admin;
    let (gw_id, token) = gateway(c, "gw").await;
    let (direct_id, _) = device(c, "direct").await;
    let (theirs_id, _) = device(&other.admin, "their-meter").await;

    let (mut raw, code) = Raw::connect(&server.mqtt, &token, 30, None).await;
    assert_eq!(code, 0);
    let connect = "v1/gateway/connect";
    let telemetry = "v1/gateway/telemetry";

    // Unknown fields in a message about one device: refused for it, nothing created.
    publish_acked(
        &mut raw,
        1,
        connect,
        json!({"device": "s1", "type": "meter", "colour": "red"}),
    )
    .await;
    assert!(named(c, "s1").await.is_none());
    publish_acked(
        &mut raw,
        2,
        connect,
        json!({"device": "s1", "type": "meter"}),
    )
    .await;
    let s1 = named(c, "s1").await.expect("s1 created on connect");
    // Now held: a malformed request about it lands on its own timeline.
    publish_acked(
        &mut raw,
        3,
        "v1/gateway/attributes/request",
        json!({"id": 1, "device": "s1", "client": true, "keys": ["a"], "extra": 1}),
    )
    .await;
    eventually("s1's timeline says why", || async {
        rejections(&timeline(c, s1.id).await)
            .iter()
            .any(|d| d.contains("unknown field `extra`"))
    })
    .await;
    // Refused before the device was known: on the gateway's timeline.
    eventually("the gateway's timeline says why", || async {
        rejections(&timeline(c, gw_id).await)
            .iter()
            .any(|d| d.contains("unknown field `colour`"))
    })
    .await;

    // One message for several devices: the good parts are stored, the bad ones refused alone.
    publish_acked(
        &mut raw,
        4,
        telemetry,
        json!({
            "s1": [{"ts": crate::mqtt::ts0(), "values": {"t": 1}}],
            "s2": [{"ts": crate::mqtt::ts0(), "values": {"t": 2}}],
            "broken": [{"ts": crate::mqtt::ts0(), "values": {"t": null}}],
            "direct": [{"t": 3}],
            "gw": [{"t": 4}],
            "their-meter": [{"t": 5}],
        }),
    )
    .await;
    assert_eq!(count_stored(c, s1.id, "t").await, 1);
    let s2 = named(c, "s2").await.expect("s2 created on first sight");
    assert_eq!(count_stored(c, s2.id, "t").await, 1);
    assert!(
        named(c, "broken").await.is_none(),
        "a refused part creates nothing"
    );
    // A device of the tenant that is not behind this gateway is not its to speak for.
    assert_eq!(count_stored(c, direct_id, "t").await, 0);
    eventually("the direct device's timeline says who tried", || async {
        rejections(&timeline(c, direct_id).await)
            .iter()
            .any(|d| d.contains("not behind this gateway"))
    })
    .await;
    assert_eq!(count_stored(c, gw_id, "t").await, 0);
    // Another tenant's device cannot be named at all: the name means a device of the gateway's
    // own tenant, and the other tenant's device sees nothing.
    let o = &other.admin;
    assert_eq!(count_stored(o, theirs_id, "t").await, 0);
    assert!(timeline(o, theirs_id).await.is_empty());
    let ours = named(c, "their-meter")
        .await
        .expect("a device of Acme's own");
    assert_ne!(ours.id, theirs_id);
    assert_eq!(ours.gateway_id, Some(gw_id));
    assert!(
        o.get(&format!("/api/v1/devices/{}", ours.id))
            .await
            .unwrap()
            .status
            == 404
    );

    // A flood from one device is refused for it alone (its own limit, 5 a second), while another
    // device behind the same gateway keeps flowing, and the connection stays (MQTT 3.1.1
    // acknowledges what it cannot refuse on its own).
    // (20 messages: however slow the machine, they cannot all fit in windows of 5.)
    for i in 0..20u16 {
        publish_acked(
            &mut raw,
            10 + i,
            telemetry,
            json!({"s1": [{"ts": crate::mqtt::ts0() + i64::from(i), "values": {"flood": i}}]}),
        )
        .await;
        if i % 7 == 0 {
            publish_acked(
                &mut raw,
                30 + i,
                telemetry,
                json!({"s2": [{"ts": crate::mqtt::ts0() + i64::from(i), "values": {"calm": i}}]}),
            )
            .await;
        }
    }
    let flooded = count_stored(c, s1.id, "flood").await;
    // (Its earlier message may share the first second's five.)
    assert!((4..20).contains(&flooded), "s1 stored {flooded} of 20");
    assert_eq!(count_stored(c, s2.id, "calm").await, 3);
    eventually("s1's timeline shows its flood", || async {
        rejections(&timeline(c, s1.id).await)
            .iter()
            .any(|d| d.contains("messages in 1 s"))
    })
    .await;
    assert!(
        !rejections(&timeline(c, s2.id).await)
            .iter()
            .any(|d| d.contains("messages in 1 s")),
        "s2 was not limited"
    );
    // Still connected: the gateway still speaks for its devices.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    publish_acked(&mut raw, 50, telemetry, json!({"s1": [{"after": 1}]})).await;
    assert_eq!(count_stored(c, s1.id, "after").await, 1);

    // A device that is not a gateway may not use the gateway topics.
    let (_, plain) = device(c, "plain").await;
    let (mut p, code) = Raw::connect(&server.mqtt, &plain, 30, None).await;
    assert_eq!(code, 0);
    p.subscribe("v1/gateway/rpc", 1).await;
    match p.read(Duration::from_secs(5)).await {
        Some((SUBACK, body)) => assert_eq!(body, vec![0, 1, 0x80]),
        other => panic!("expected SUBACK, got {other:?}"),
    }
    publish_acked(&mut p, 2, telemetry, json!({"x": [{"t": 1}]})).await;
    assert!(named(c, "x").await.is_none());
    raw.disconnect().await;
    p.disconnect().await;

    // MQTT 5 says which part was refused and why, by reason code; the rest is stored.
    let mut v5 = V5::connect(&server.mqtt, &token).await;
    assert_eq!(
        v5.publish(1, telemetry, json!({"s2": [{"v5": 1}]})).await,
        0x00
    );
    assert_eq!(
        v5.publish(
            2,
            telemetry,
            json!({"s2": [{"v5": 2}], "direct": [{"v5": 2}]})
        )
        .await,
        0x87,
        "not authorized for `direct`"
    );
    assert_eq!(
        v5.publish(3, telemetry, json!({"s2": {"v5": null}})).await,
        0x99,
        "payload format invalid"
    );
    assert_eq!(v5.publish(4, telemetry, json!(["s2"])).await, 0x99);
    assert_eq!(
        v5.publish(5, connect, json!({"device": "s3", "kind": "x"}))
            .await,
        0x99
    );
    assert_eq!(
        v5.publish(
            6,
            "v1/gateway/rpc",
            json!({"device": "s2", "id": 999, "data": {}})
        )
        .await,
        0x99,
        "no such command"
    );
    assert_eq!(count_stored(c, s2.id, "v5").await, 2);
    let mut codes = Vec::new();
    for i in 0..8u16 {
        codes.push(
            v5.publish(
                10 + i,
                telemetry,
                json!({"s2": [{"ts": crate::mqtt::ts0() + 5000 + i64::from(i), "values": {"burst": i}}]}),
            )
            .await,
        );
    }
    assert!(
        codes.contains(&0x97),
        "over its limit: quota exceeded, {codes:?}"
    );
    assert_eq!(codes[0], 0x00);

    // The tenant's device quota applies to devices created on first sight.
    let all: Page<Device> = c.get("/api/v1/devices").await.unwrap().ok().unwrap();
    let r = server
        .admin()
        .await
        .patch(
            &format!("/api/v1/tenants/{}", acme.tenant.id),
            &json!({"quotas": {"devices": all.total}}),
        )
        .await
        .unwrap();
    assert!(r.status.is_success(), "{}", r.body);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        v5.publish(
            30,
            telemetry,
            json!({"over-quota": [{"t": 1}], "s2": [{"quota": 1}]})
        )
        .await,
        0x97
    );
    assert!(named(c, "over-quota").await.is_none());
    assert_eq!(count_stored(c, s2.id, "quota").await, 1);
}

async fn gateways_are_marked_and_their_devices_listed(backend: Backend) {
    let server = TestServer::start(backend).await;
    let acme = server.tenant("Acme").await;
    let other = server.tenant("Other").await;
    let c = &acme.admin;
    let (plain_id, plain_token) = device(c, "becomes-gateway").await;
    let (gw_id, gw_token) = gateway(c, "gw").await;

    // A device behind a gateway can be created by hand (without credentials of its own unless
    // given some); only a gateway can have devices behind it, and gateways do not nest.
    let created: CreatedDevice = c
        .post(
            "/api/v1/devices",
            &json!({"name": "pre-made", "gateway_id": gw_id}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(created.device.gateway_id, Some(gw_id));
    assert!(created.access_token.is_none());
    let pre_id = created.device.id;

    // A persistent command to a device behind a gateway waits until its gateway holds it and
    // has subscribed to commands.
    let r = c
        .post(
            &format!("/api/v1/devices/{pre_id}/rpc"),
            &json!({"method": "wake", "persistent": true}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.body);
    let queued: RpcCommand = r.ok().unwrap();
    assert_eq!(queued.status, RpcStatus::Queued);
    let (mut g, code) = Raw::connect(&server.mqtt, &gw_token, 30, None).await;
    assert_eq!(code, 0);
    publish_acked(
        &mut g,
        1,
        "v1/gateway/connect",
        json!({"device": "pre-made"}),
    )
    .await;
    g.subscribe("v1/gateway/rpc", 2).await;
    let (topic, payload) = g
        .next_publish_acked(Duration::from_secs(5))
        .await
        .expect("the queued command");
    assert_eq!(topic, "v1/gateway/rpc");
    let request: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(
        request,
        json!({"device": "pre-made", "data": {"id": queued.request_id, "method": "wake", "params": {}}})
    );
    publish_acked(
        &mut g,
        3,
        "v1/gateway/rpc",
        json!({"device": "pre-made", "id": queued.request_id, "data": {"awake": true}}),
    )
    .await;
    eventually("the queued command answered", || async {
        let command: RpcCommand = c
            .get(&format!("/api/v1/devices/{pre_id}/rpc/{}", queued.id))
            .await
            .unwrap()
            .ok()
            .unwrap();
        command.status == RpcStatus::Successful && command.response == Some(json!({"awake": true}))
    })
    .await;
    g.disconnect().await;
    for (body, code) in [
        (
            json!({"name": "x", "gateway_id": plain_id}),
            "not_a_gateway",
        ),
        (
            json!({"name": "x", "gateway_id": Uuid::new_v4()}),
            "unknown_gateway",
        ),
        (
            json!({"name": "x", "gateway": true, "gateway_id": gw_id}),
            "gateway_behind_gateway",
        ),
    ] {
        let r = c.post("/api/v1/devices", &body).await.unwrap();
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert_eq!(r.code(), code, "{body}");
    }
    // Another tenant cannot put a device behind our gateway, nor list it.
    let r = other
        .admin
        .post(
            "/api/v1/devices",
            &json!({"name": "sneaky", "gateway_id": gw_id}),
        )
        .await
        .unwrap();
    assert_eq!(r.code(), "unknown_gateway");
    let r = other
        .admin
        .get(&format!("/api/v1/devices/{gw_id}/sub-devices"))
        .await
        .unwrap();
    assert_eq!(r.status, 404);

    // Marking a connected device as a gateway ends its session: it reconnects as one.
    let (mut raw, code) = Raw::connect(&server.mqtt, &plain_token, 30, None).await;
    assert_eq!(code, 0);
    let updated: Device = c
        .patch(
            &format!("/api/v1/devices/{plain_id}"),
            &json!({"gateway": true}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert!(updated.gateway);
    assert!(
        raw.closed_within(Duration::from_secs(5)).await.is_some(),
        "its session ends"
    );
    let (mut raw, code) = Raw::connect(&server.mqtt, &plain_token, 30, None).await;
    assert_eq!(code, 0);
    publish_acked(
        &mut raw,
        1,
        "v1/gateway/connect",
        json!({"device": "behind-new"}),
    )
    .await;
    let behind = named(c, "behind-new").await.expect("created behind it");
    assert_eq!(behind.gateway_id, Some(plain_id));
    eventually("behind-new online", || async {
        presence(c, behind.id).await.online
    })
    .await;

    // A gateway with devices behind it stays one until they are moved; moving one ends its
    // session through the old gateway.
    let r = c
        .patch(
            &format!("/api/v1/devices/{plain_id}"),
            &json!({"gateway": false}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(r.code(), "gateway_has_sub_devices");
    let moved: Device = c
        .patch(
            &format!("/api/v1/devices/{}", behind.id),
            &json!({"gateway_id": gw_id}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(moved.gateway_id, Some(gw_id));
    eventually("behind-new let go of by its old gateway", || async {
        !presence(c, behind.id).await.online
    })
    .await;
    // Its old gateway may no longer speak for it.
    publish_acked(
        &mut raw,
        2,
        "v1/gateway/telemetry",
        json!({"behind-new": [{"t": 1}]}),
    )
    .await;
    assert_eq!(count_stored(c, behind.id, "t").await, 0);
    let mut listed: Vec<String> = sub_devices(c, gw_id)
        .await
        .into_iter()
        .map(|d| d.name)
        .collect();
    listed.sort();
    assert_eq!(listed, ["behind-new", "pre-made"]);
    assert!(sub_devices(c, plain_id).await.is_empty());
    let r = c
        .patch(
            &format!("/api/v1/devices/{}", behind.id),
            &json!({"gateway_id": behind.id}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400);

    // Disabling a device behind a connected gateway ends only it; the gateway is told.
    let (mut raw2, code) = Raw::connect(&server.mqtt, &plain_token, 30, None).await;
    assert_eq!(code, 0);
    assert!(raw.closed_within(Duration::from_secs(5)).await.is_some());
    publish_acked(
        &mut raw2,
        1,
        "v1/gateway/connect",
        json!({"device": "second"}),
    )
    .await;
    let second = named(c, "second").await.unwrap();
    let r = c
        .post(
            &format!("/api/v1/devices/{}/disable", second.id),
            &json!({"reason": "test"}),
        )
        .await
        .unwrap();
    assert!(r.status.is_success(), "{}", r.body);
    let (topic, payload) = raw2
        .next_publish(Duration::from_secs(5))
        .await
        .expect("the gateway hears it");
    assert_eq!(topic, "v1/gateway/disconnect");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&payload).unwrap(),
        json!({"device": "second"})
    );
    eventually("second offline, disabled", || async {
        let p = presence(c, second.id).await;
        !p.online && p.last_disconnect_reason == Some(DisconnectReason::Disabled)
    })
    .await;
    publish_acked(
        &mut raw2,
        2,
        "v1/gateway/telemetry",
        json!({"second": [{"t": 1}]}),
    )
    .await;
    assert_eq!(count_stored(c, second.id, "t").await, 0);
    // The gateway itself is untouched.
    publish_acked(&mut raw2, 3, "v1/devices/me/telemetry", json!({"own": 1})).await;
    assert_eq!(count_stored(c, plain_id, "own").await, 1);
    raw2.disconnect().await;

    // Deleting a gateway leaves the devices behind it, detached.
    let r = c.delete(&format!("/api/v1/devices/{gw_id}")).await.unwrap();
    assert_eq!(r.status, 204);
    let pre = named(c, "pre-made").await.expect("still there");
    assert_eq!(pre.gateway_id, None);
}

/// A gateway's session is on one node, the person on another: shared attributes and commands
/// for a device behind it travel between the nodes, and when the gateway's node dies, the
/// devices behind it go offline with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_on_another_node_gets_its_devices_commands_and_dies_with_it() {
    let options = || {
        Options::default()
            .env("STEAD_NODE_HEARTBEAT_SECS", "1")
            .env("STEAD_NODE_TIMEOUT_SECS", "2")
    };
    let a = TestServer::start_with(Backend::Postgres, options()).await;
    let mut b = TestServer::start_with(
        Backend::Postgres,
        Options {
            join: Some(a.shared()),
            ..options()
        },
    )
    .await;
    let acme = a.tenant("Acme").await;
    // The person works through node A, the gateway connects to node B.
    let c = &acme.admin;
    let (_, token) = gateway(c, "gw").await;
    let (mut raw, code) = Raw::connect(&b.mqtt, &token, 30, None).await;
    assert_eq!(code, 0);
    for (id, filter) in [(1u16, "v1/gateway/rpc"), (2, "v1/gateway/attributes")] {
        raw.subscribe(filter, id).await;
        match raw.read(Duration::from_secs(5)).await {
            Some((SUBACK, body)) => assert_eq!(body[..2], id.to_be_bytes()),
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }
    publish_acked(&mut raw, 3, "v1/gateway/connect", json!({"device": "far"})).await;
    let far = named(c, "far").await.expect("created on first sight");
    eventually("far online", || async { presence(c, far.id).await.online }).await;

    let r = c
        .post(
            &format!("/api/v1/devices/{}/attributes/shared", far.id),
            &json!({"mode": "eco"}),
        )
        .await
        .unwrap();
    assert!(r.status.is_success(), "{}", r.body);
    let (topic, payload) = raw
        .next_publish_acked(Duration::from_secs(5))
        .await
        .expect("the shared attribute crossed to node B");
    assert_eq!(topic, "v1/gateway/attributes");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&payload).unwrap(),
        json!({"device": "far", "data": {"mode": "eco"}})
    );

    let (caller, path) = (c.clone(), format!("/api/v1/devices/{}/rpc", far.id));
    let sent = tokio::spawn(async move {
        caller
            .post(
                &path,
                &json!({"method": "open", "params": {"valve": 2}, "timeout_ms": 10000}),
            )
            .await
            .unwrap()
            .ok::<RpcCommand>()
            .unwrap()
    });
    let (topic, payload) = raw
        .next_publish_acked(Duration::from_secs(5))
        .await
        .expect("the command crossed to node B");
    assert_eq!(topic, "v1/gateway/rpc");
    let request: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(request["device"], "far");
    assert_eq!(request["data"]["method"], "open");
    assert_eq!(request["data"]["params"], json!({"valve": 2}));
    publish_acked(
        &mut raw,
        4,
        "v1/gateway/rpc",
        json!({"device": "far", "id": request["data"]["id"], "data": {"opened": true}}),
    )
    .await;
    let done = sent.await.unwrap();
    assert_eq!(done.status, RpcStatus::Successful, "{done:?}");
    assert_eq!(done.response, Some(json!({"opened": true})));

    // Node B dies with the gateway's session: node A's worker marks the device behind it offline.
    b.kill9();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let p = presence(c, far.id).await;
        if !p.online && p.last_disconnect_reason == Some(DisconnectReason::NodeLost) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "far still {p:?}\n{}",
            a.log_tail(40)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
