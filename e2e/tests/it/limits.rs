//! Limits that hold: a device's rate-limit counts survive its reconnects and are shared with its
//! HTTP API; the tenant's rate holds across nodes; a change of tenant settings does not wipe the
//! counts; login throttling counts the client behind a trusted proxy, not the proxy.

use std::time::Duration;

use serde_json::json;
use stead_e2e::Client;

use crate::harness::{Backend, Options, TestServer};
use crate::mqtt::device;
use crate::mqtt_raw::{PUBACK, Raw};
use crate::on_both_backends;

on_both_backends!(a_device_s_counts_survive_reconnects_and_settings_changes);

/// Posts telemetry through the HTTP device API; answers the status.
async fn post(server: &TestServer, token: &str) -> u16 {
    server
        .client()
        .post(&format!("/api/v1/{token}/telemetry"), &json!({"t": 1}))
        .await
        .unwrap()
        .status
        .as_u16()
}

/// Publishes one QoS 1 message; answers whether it was acknowledged (else the connection
/// closed: MQTT 3.1.1 cannot refuse one message).
async fn publish(raw: &mut Raw, id: u16) -> bool {
    raw.publish("v1/devices/me/telemetry", br#"{"t":1}"#, Some(id))
        .await;
    matches!(raw.read(Duration::from_secs(5)).await, Some((PUBACK, _)))
}

async fn a_device_s_counts_survive_reconnects_and_settings_changes(backend: Backend) {
    let server = TestServer::start_with(
        backend,
        Options::default().env("STEAD_DEVICE_RATE_MESSAGES", "5:60"),
    )
    .await;
    let acme = server.tenant("Acme").await;
    let (_, token) = device(&acme.admin, "counted").await;

    // Three messages, a reconnect, two more: the sixth in the minute is over the limit.
    let (mut raw, code) = Raw::connect(&server.mqtt, &token, 30, None).await;
    assert_eq!(code, 0);
    for id in 1..=3 {
        assert!(publish(&mut raw, id).await, "message {id}");
    }
    raw.disconnect().await;
    let (mut raw, code) = Raw::connect(&server.mqtt, &token, 30, None).await;
    assert_eq!(code, 0);
    for id in 4..=5 {
        assert!(publish(&mut raw, id).await, "message {id}");
    }
    assert!(
        !publish(&mut raw, 6).await,
        "a reconnect started the device's counts again"
    );
    // The HTTP device API counts with the same limiter.
    assert_eq!(post(&server, &token).await, 429);

    // The tenant's settings change: the counts stay.
    let platform = server.admin().await;
    let r = platform
        .patch(
            &format!("/api/v1/tenants/{}", acme.tenant.id),
            &json!({"name": "Acme Renamed"}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        post(&server, &token).await,
        429,
        "changing the tenant's settings wiped the device's counts"
    );
}

/// Two nodes on one Redis: the tenant's rate (20 messages a minute) holds for both together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tenant_rate_holds_across_nodes() {
    let env = |o: Options| {
        o.env("STEAD_TENANT_RATE_MESSAGES", "20:60")
            .env("STEAD_DEVICE_RATE_MESSAGES", "1000:60")
    };
    let a = TestServer::start_with(Backend::Postgres, env(Options::default())).await;
    let b = TestServer::start_with(
        Backend::Postgres,
        env(Options {
            join: Some(a.shared()),
            ..Options::default()
        }),
    )
    .await;
    let acme = a.tenant("Acme").await;
    let (_, on_a) = device(&acme.admin, "on-a").await;
    let (_, on_b) = device(&acme.admin, "on-b").await;
    // A node admits a tenant's first message of a window before its next sync (every 100 ms)
    // tells it what the others counted: both nodes have seen the tenant before the counting
    // that matters.
    assert_eq!(post(&b, &on_b).await, 200);
    let mut accepted = 1;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for _ in 0..12 {
        assert_eq!(post(&a, &on_a).await, 200);
        accepted += 1;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut refused = 0;
    for _ in 0..12 {
        match post(&b, &on_b).await {
            200 => accepted += 1,
            429 => refused += 1,
            other => panic!("status {other}"),
        }
    }
    assert_eq!(
        (accepted, refused),
        (20, 5),
        "node B admitted past the tenant's rate"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        post(&a, &on_a).await,
        429,
        "node A did not hear node B's count"
    );
}

/// Behind a trusted proxy, failed logins are counted per client (its `X-Forwarded-For`), not
/// per proxy; a forged header from anyone else is ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_throttling_counts_the_client_behind_a_trusted_proxy() {
    let server = TestServer::start_with(
        Backend::Sqlite,
        Options::default()
            .env("STEAD_LOGIN_MAX_ATTEMPTS_PER_IP", "3")
            .env("STEAD_TRUSTED_PROXIES", "127.0.0.0/8"),
    )
    .await;
    let http = reqwest::Client::new();
    let attempt = |from: &'static str, i: u32| {
        let request = http
            .post(format!("{}/api/v1/auth/login", server.base))
            .header("X-Forwarded-For", from)
            .json(
                &json!({"email": format!("nobody{i}@test.local"), "password": "wrong-password-x"}),
            );
        async move { request.send().await.unwrap().status().as_u16() }
    };
    for i in 0..3 {
        assert_eq!(attempt("203.0.113.7", i).await, 401);
    }
    assert_eq!(
        attempt("203.0.113.7", 3).await,
        429,
        "the client is throttled"
    );
    assert_eq!(
        attempt("198.51.100.9", 4).await,
        401,
        "another client behind the same proxy was throttled with the first"
    );
    // The login page still works for another client.
    let ok = Client::new(&server.base)
        .login(&server.admin_email, &server.admin_password)
        .await;
    assert!(ok.is_ok());
}
