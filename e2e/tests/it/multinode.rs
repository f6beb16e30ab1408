//! Several `stead serve` processes sharing one PostgreSQL and one Redis: revocation, take-over
//! and live views work whichever node the device and the person are on; roles run apart.

use std::time::Duration;

use futures_util::StreamExt as _;
use stead_api_types::DeviceCredentials;

use crate::harness::{Backend, Options, TestServer};
use crate::mqtt::device;
use crate::mqtt_raw::{PUBACK, Raw};

async fn node_of(first: &TestServer, args: &[&str]) -> TestServer {
    TestServer::start_with(
        Backend::Postgres,
        Options {
            join: Some(first.shared()),
            args: args.iter().map(|a| a.to_string()).collect(),
            ..Options::default()
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_and_live_views_span_nodes() {
    let a = TestServer::start(Backend::Postgres).await;
    let b = node_of(&a, &[]).await;
    let acme = a.tenant("Acme").await;
    let c = &acme.admin;
    let (id, token) = device(c, "roamer").await;

    // Take-over across nodes: connected on A, then on B; A's session ends.
    let (mut on_a, code) = Raw::connect(&a.mqtt, &token, 30, None).await;
    assert_eq!(code, 0);
    let (mut on_b, code) = Raw::connect(&b.mqtt, &token, 30, None).await;
    assert_eq!(code, 0);
    assert!(
        on_a.closed_within(Duration::from_secs(2)).await.is_some(),
        "node A ended the old session"
    );
    let mut presence = None;
    for _ in 0..50 {
        let p = crate::mqtt::presence(c, id).await;
        if p.online {
            presence = Some(p);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        presence.is_some(),
        "still online: the end of A's session does not mark it offline"
    );

    // A live view on node A sees telemetry published to node B.
    let mut live = reqwest::Client::new()
        .get(format!("{}/api/v1/devices/{id}/live", a.base))
        .bearer_auth(c.token().unwrap())
        .send()
        .await
        .unwrap()
        .bytes_stream();
    let first = tokio::time::timeout(Duration::from_secs(5), live.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&first).starts_with("event: presence"));
    tokio::time::sleep(Duration::from_millis(1500)).await; // the watch registration reaches B
    on_b.publish(
        "v1/devices/me/telemetry",
        br#"{"temperature":30.5}"#,
        Some(1),
    )
    .await;
    assert_eq!(
        on_b.read(Duration::from_secs(5)).await.map(|p| p.0),
        Some(PUBACK)
    );
    let mut seen = String::new();
    while !seen.contains("30.5") {
        let chunk = tokio::time::timeout(Duration::from_secs(5), live.next())
            .await
            .expect("a live event")
            .unwrap()
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains("event: telemetry"), "{seen}");

    // Rotating the token through node A's API ends the session held by node B within a second.
    let client_b = stead_e2e::Client::new(&b.base).with_token(c.token().unwrap());
    let _: DeviceCredentials = c
        .post(
            &format!("/api/v1/devices/{id}/credentials/rotate"),
            &serde_json::json!({}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert!(
        on_b.closed_within(Duration::from_secs(1)).await.is_some(),
        "node B ended the revoked session"
    );
    let (_, code) = Raw::connect(&b.mqtt, &token, 30, None).await;
    assert_eq!(code, 4, "and no node accepts the old token");
    // The person's access token works on either node: one signing key.
    assert_eq!(client_b.get("/api/v1/me").await.unwrap().status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_run_apart() {
    let first = TestServer::start(Backend::Postgres).await;
    let api = node_of(&first, &["--roles", "api,worker"]).await;
    let ingress = node_of(&first, &["--roles", "ingress"]).await;
    let acme = first.tenant("Acme").await;
    let (id, token) = device(&acme.admin, "split").await;

    assert!(api.mqtt.is_empty(), "an api node has no MQTT listener");
    let r = stead_e2e::Client::new(&ingress.base)
        .get("/api/v1/me")
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (404, "route_not_found".into()),
        "an ingress node serves no API"
    );
    assert_eq!(
        stead_e2e::Client::new(&ingress.base)
            .get("/readyz")
            .await
            .unwrap()
            .status,
        200
    );

    let (mut raw, code) = Raw::connect(&ingress.mqtt, &token, 30, None).await;
    assert_eq!(code, 0);
    raw.publish("v1/devices/me/telemetry", br#"{"split":1}"#, Some(1))
        .await;
    assert_eq!(
        raw.read(Duration::from_secs(5)).await.map(|p| p.0),
        Some(PUBACK)
    );
    let via_api = stead_e2e::Client::new(&api.base).with_token(acme.admin.token().unwrap());
    let latest: stead_api_types::LatestTelemetry = via_api
        .get(&format!("/api/v1/devices/{id}/telemetry/latest"))
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(latest["split"].value, serde_json::json!(1));
}
