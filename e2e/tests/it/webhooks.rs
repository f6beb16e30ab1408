//! Integrations from the outside: a real HTTP receiver (`e2e/python/webhook_receiver.py`) that
//! verifies every delivery with the Standard Webhooks reference library, the event outbox under
//! rollbacks and `kill -9`, the address guard, and a real NATS JetStream server.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::Deserialize;
use stead_api_types::{
    CreatedWebhook, DeliveryStatus, NatsSink, Replayed, WebhookDelivery, WebhookDeliveryDetail,
    WebhookDeliveryPage, WebhookEndpoint, WebhookSecret,
};
use stead_e2e::Client;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use uuid::Uuid;

use crate::harness::{Backend, Options, TestServer, workspace_root};
use crate::on_both_backends;

on_both_backends!(
    deliveries_are_signed_and_carry_every_kind_of_event,
    retries_follow_the_schedule_and_the_endpoint_answers,
    replay_rotation_and_test_events,
    a_rolled_back_change_sends_nothing,
);

/// One request the receiver got.
#[derive(Debug, Clone, Deserialize)]
pub struct Received {
    pub id: Option<String>,
    pub signature: Option<String>,
    pub content_type: Option<String>,
    pub verified: bool,
    pub body: serde_json::Value,
    pub status: u16,
    pub at: f64,
}

impl Received {
    pub fn event_type(&self) -> &str {
        self.body["type"].as_str().unwrap_or_default()
    }
}

/// The Python receiver, one per test.
pub struct Receiver {
    _child: tokio::process::Child,
    pub port: u16,
    http: reqwest::Client,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let python = crate::sdk::python();
        let script = workspace_root().join("e2e/python/webhook_receiver.py");
        let mut child = tokio::process::Command::new(&python)
            .arg(&script)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {python} {}: {e}", script.display()));
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("the webhook receiver did not start within 20 s")
            .expect("reading the receiver's output")
            .expect("the webhook receiver exited before it was ready (is standardwebhooks installed? `cargo xtask setup`)");
        let port = line
            .strip_prefix("ready ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("unexpected line from the receiver: {line}"));
        Receiver {
            _child: child,
            port,
            http: reqwest::Client::new(),
        }
    }

    pub fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/hook/{name}", self.port)
    }

    /// An endpoint of `c`'s tenant for `name` (body: the endpoint's other fields), and this
    /// receiver told its secret and how to answer (`script`, without `secrets`).
    pub async fn hook(
        &self,
        c: &Client,
        name: &str,
        body: serde_json::Value,
        script: serde_json::Value,
    ) -> CreatedWebhook {
        let created = endpoint(c, &self.url(name), body).await;
        let mut script = script;
        script["secrets"] = serde_json::json!([created.secret]);
        self.control(name, script).await;
        created
    }

    /// Which secrets verify `name`'s requests, and how it answers them.
    pub async fn control(&self, name: &str, script: serde_json::Value) {
        let r = self
            .http
            .put(format!("http://127.0.0.1:{}/control/{name}", self.port))
            .json(&script)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }

    pub async fn received(&self, name: &str) -> Vec<Received> {
        self.http
            .get(format!("http://127.0.0.1:{}/received/{name}", self.port))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Waits until `name` got requests for which `done` holds (up to `secs`).
    pub async fn wait(
        &self,
        name: &str,
        secs: u64,
        what: &str,
        done: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let got = self.received(name).await;
            if done(&got) {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not within {secs} s; the receiver got {:#?}",
                got.iter()
                    .map(|r| (r.event_type().to_owned(), r.status, r.verified))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A server whose webhooks may call this machine, with a quick retry schedule.
pub async fn server(backend: Backend, extra: &[(&str, &str)]) -> TestServer {
    let mut options = Options::default()
        .env("STEAD_WEBHOOK_ALLOW_PRIVATE_ADDRESSES", "true")
        .env("STEAD_WEBHOOK_RETRY_SCHEDULE", "1s,1s,1s")
        .env("STEAD_WEBHOOK_TIMEOUT_SECS", "2");
    for (k, v) in extra {
        options = options.env(k, *v);
    }
    TestServer::start_with(backend, options).await
}

pub async fn endpoint(c: &Client, url: &str, body: serde_json::Value) -> CreatedWebhook {
    let mut body = body;
    body["url"] = serde_json::json!(url);
    let r = c.post("/api/v1/webhooks", &body).await.unwrap();
    assert_eq!(r.status, 201, "creating an endpoint: {:?}", r.error());
    r.ok().unwrap()
}

pub async fn deliveries(c: &Client, endpoint: Uuid) -> Vec<WebhookDelivery> {
    let page: WebhookDeliveryPage = c
        .get(&format!(
            "/api/v1/webhooks/{endpoint}/deliveries?per_page=200"
        ))
        .await
        .unwrap()
        .ok()
        .unwrap();
    page.items
}

/// Every kind of event, each verified by the reference library, with what it says.
async fn deliveries_are_signed_and_carry_every_kind_of_event(backend: Backend) {
    let s = server(backend, &[]).await;
    let receiver = Receiver::start().await;
    let t = s.tenant("Hooks").await;
    let created = endpoint(&t.admin, &receiver.url("all"), serde_json::json!({})).await;
    assert!(created.secret.starts_with("whsec_"));
    receiver
        .control("all", serde_json::json!({"secrets": [created.secret]}))
        .await;
    // A device, its telemetry and client attributes over MQTT, a shared attribute, a command.
    let (device, token) = crate::mqtt::device(&t.admin, "pump-1").await;
    let (ok, out) = crate::mqtt::mosquitto_pub(
        s.mqtt_port(),
        &[
            "-q",
            "1",
            "-u",
            &token,
            "-t",
            "v1/devices/me/telemetry",
            "-m",
            r#"{"temperature":81.5,"on":true}"#,
        ],
    );
    assert!(ok, "{out}");
    let (ok, out) = crate::mqtt::mosquitto_pub(
        s.mqtt_port(),
        &[
            "-q",
            "1",
            "-u",
            &token,
            "-t",
            "v1/devices/me/attributes",
            "-m",
            r#"{"fw":"1.2"}"#,
        ],
    );
    assert!(ok, "{out}");
    let r = t
        .admin
        .post(
            &format!("/api/v1/devices/{device}/attributes/shared"),
            &serde_json::json!({"target": 75}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{:?}", r.error());
    let r = t
        .admin
        .patch(
            &format!("/api/v1/devices/{device}"),
            &serde_json::json!({"label": "north pump"}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    // A persistent command to the (now offline) device that expires unsent.
    let r = t
        .admin
        .post(
            &format!("/api/v1/devices/{device}/rpc"),
            &serde_json::json!({"method": "reboot", "persistent": true, "expiration_ms": 1000}),
        )
        .await
        .unwrap();
    assert!(r.status.is_success(), "{:?}", r.error());
    let got = receiver
        .wait("all", 30, "every kind of event", |got| {
            [
                "command.created",
                "command.updated",
                "device.created",
                "device.connected",
                "device.telemetry",
                "device.disconnected",
                "attributes.client.updated",
                "attributes.shared.updated",
                "device.updated",
                "audit.entry",
            ]
            .iter()
            .all(|t| got.iter().any(|r| r.event_type() == *t))
        })
        .await;
    for r in &got {
        assert!(r.verified, "a delivery did not verify: {r:?}");
        assert_eq!(r.content_type.as_deref(), Some("application/json"));
        assert_eq!(
            r.id.as_deref(),
            r.body["id"].as_str(),
            "webhook-id is the event id"
        );
        assert_eq!(r.body["tenant_id"], serde_json::json!(t.tenant.id));
    }
    let of = |ty: &str| got.iter().find(|r| r.event_type() == ty).unwrap().body["data"].clone();
    assert_eq!(of("device.created")["device"]["name"], "pump-1");
    assert_eq!(of("device.updated")["device"]["label"], "north pump");
    let points = of("device.telemetry")["points"].clone();
    assert_eq!(points[0]["device_id"], serde_json::json!(device));
    assert_eq!(points[0]["values"]["temperature"], 81.5);
    assert_eq!(points[0]["values"]["on"], true);
    assert_eq!(of("attributes.client.updated")["values"]["fw"], "1.2");
    assert_eq!(of("attributes.shared.updated")["values"]["target"], 75);
    assert_eq!(
        of("device.connected")["device_id"],
        serde_json::json!(device)
    );
    assert_eq!(of("command.created")["command"]["method"], "reboot");
    assert_eq!(of("command.updated")["command"]["status"], "EXPIRED");
    assert!(
        got.iter()
            .any(|r| r.event_type() == "audit.entry" && r.body["data"]["action"] == "device.create"),
        "the device's creation is an audit.entry event too"
    );
    // No event is sent twice.
    let mut ids: Vec<&str> = got.iter().filter_map(|r| r.id.as_deref()).collect();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "an event arrived twice");

    // A filtered endpoint, CloudEvents, a device group: only what it asked for.
    let group: stead_api_types::DeviceGroup = t
        .admin
        .post("/api/v1/groups", &serde_json::json!({"name": "north"}))
        .await
        .unwrap()
        .ok()
        .unwrap();
    receiver
        .hook(&t.admin, "north", serde_json::json!({"event_types": ["device.telemetry"], "group_id": group.id, "format": "cloudevents"}), serde_json::json!({}))
        .await;
    let (inside, inside_token) = crate::mqtt::device(&t.admin, "north-1").await;
    let r = t
        .admin
        .post(
            &format!("/api/v1/groups/{}/devices", group.id),
            &serde_json::json!({"device_ids": [inside]}),
        )
        .await
        .unwrap();
    assert!(r.status.is_success(), "{:?}", r.error());
    for (token, value) in [(&token, 1), (&inside_token, 2)] {
        let (ok, out) = crate::mqtt::mosquitto_pub(
            s.mqtt_port(),
            &[
                "-q",
                "1",
                "-u",
                token,
                "-t",
                "v1/devices/me/telemetry",
                "-m",
                &format!(r#"{{"level":{value}}}"#),
            ],
        );
        assert!(ok, "{out}");
    }
    let got = receiver
        .wait("north", 20, "the group's telemetry", |got| !got.is_empty())
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got_after = receiver.received("north").await;
    assert_eq!(got.len(), got_after.len().min(got.len()));
    for r in &got_after {
        assert!(r.verified);
        assert_eq!(
            r.content_type.as_deref(),
            Some("application/cloudevents+json")
        );
        assert_eq!(r.body["specversion"], "1.0");
        assert_eq!(r.body["type"], "io.stead.device.telemetry");
        for p in r.body["data"]["points"].as_array().unwrap() {
            assert_eq!(
                p["device_id"],
                serde_json::json!(inside),
                "only the group's devices"
            );
        }
    }
    assert!(got_after.iter().any(|r| {
        r.body["data"]["points"]
            .as_array()
            .is_some_and(|p| !p.is_empty())
    }));

    // Another tenant sees none of it.
    let other = s.tenant("Other").await;
    let id = created.endpoint.id;
    for path in [
        format!("/api/v1/webhooks/{id}"),
        format!("/api/v1/webhooks/{id}/deliveries"),
        format!("/api/v1/webhooks/{id}/secret"),
    ] {
        let r = other.admin.get(&path).await.unwrap();
        assert_eq!(r.status, 404, "{path}");
    }
    let r = other
        .admin
        .patch(
            &format!("/api/v1/webhooks/{id}"),
            &serde_json::json!({"enabled": false}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    let r = other
        .admin
        .post(
            &format!("/api/v1/webhooks/{id}/test"),
            &serde_json::json!({}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    let r = other
        .admin
        .delete(&format!("/api/v1/webhooks/{id}"))
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    let list: Vec<WebhookEndpoint> = other
        .admin
        .get("/api/v1/webhooks")
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert!(list.is_empty());

    // Bad bodies name their field; a viewer may not manage webhooks.
    for (body, code, field) in [
        (
            serde_json::json!({"url": "ftp://example.com/"}),
            "invalid_url",
            "url",
        ),
        (
            serde_json::json!({"url": "not a url"}),
            "invalid_url",
            "url",
        ),
        (
            serde_json::json!({"url": receiver.url("x"), "event_types": ["device.exploded"]}),
            "invalid_json",
            "",
        ),
        (
            serde_json::json!({"url": receiver.url("x"), "max_concurrency": 0}),
            "invalid_field",
            "max_concurrency",
        ),
        (
            serde_json::json!({"url": receiver.url("x"), "secret": "whsec_short"}),
            "invalid_secret",
            "secret",
        ),
        (
            serde_json::json!({"url": receiver.url("x"), "group_id": Uuid::new_v4()}),
            "unknown_group",
            "group_id",
        ),
        (
            serde_json::json!({"url": receiver.url("x"), "event_types": ["webhook.test"]}),
            "invalid_field",
            "event_types",
        ),
    ] {
        let r = t.admin.post("/api/v1/webhooks", &body).await.unwrap();
        assert_eq!(r.status, 400, "{body}");
        let e = r.error();
        if !field.is_empty() {
            assert_eq!(
                (e.code.as_str(), e.field.as_deref()),
                (code, Some(field)),
                "{body}"
            );
        } else {
            assert!(e.detail.contains("device.exploded"), "{e:?}");
        }
    }
    let viewer = s.user(&t, stead_api_types::Role::Viewer).await;
    let r = viewer.get("/api/v1/webhooks").await.unwrap();
    assert_eq!(r.status, 403);
    assert_eq!(r.code(), "permission_denied");

    // Audited, and the secret is in neither the database nor the log.
    let audit = s.sql("SELECT action FROM audit_log WHERE action LIKE 'webhook.%'");
    assert!(audit.contains("webhook.create"), "{audit}");
    let stored = s.sql("SELECT secret FROM webhook_endpoints");
    assert!(!stored.contains(&created.secret) && !stored.contains(&created.secret[6..]));
    assert!(
        !s.log_text().contains(&created.secret[6..]),
        "the secret is in the log"
    );
}

/// 500, a timeout, then 200: three attempts of one delivery, the same id each time; 410 turns
/// the endpoint off; `Retry-After` is honoured.
async fn retries_follow_the_schedule_and_the_endpoint_answers(backend: Backend) {
    let s = server(backend, &[]).await;
    let receiver = Receiver::start().await;
    let t = s.tenant("Retries").await;
    let only_created = serde_json::json!({"event_types": ["device.created"]});
    let flaky = receiver
        .hook(
            &t.admin,
            "flaky",
            only_created.clone(),
            serde_json::json!({"answers": [
                {"status": 500}, {"status": 200, "delay_ms": 3000}, {"status": 200}]}),
        )
        .await;
    let gone = receiver
        .hook(
            &t.admin,
            "gone",
            only_created.clone(),
            serde_json::json!({"default": {"status": 410}}),
        )
        .await;
    receiver
        .hook(
            &t.admin,
            "busy",
            only_created.clone(),
            serde_json::json!({"answers": [
                {"status": 503, "headers": {"Retry-After": "4"}}]}),
        )
        .await;
    crate::mqtt::device(&t.admin, "sensor-1").await;

    let got = receiver
        .wait("flaky", 30, "three attempts", |g| g.len() >= 3)
        .await;
    assert!(got.iter().all(|r| r.verified));
    assert!(
        got.iter().all(|r| r.id == got[0].id),
        "every attempt carries the same webhook-id"
    );
    let logged = deliveries(&t.admin, flaky.endpoint.id).await;
    assert_eq!(logged.len(), 1);
    let mut d = logged[0].clone();
    for _ in 0..50 {
        if d.status == DeliveryStatus::Succeeded {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        d = deliveries(&t.admin, flaky.endpoint.id).await[0].clone();
    }
    assert_eq!((d.status, d.attempts), (DeliveryStatus::Succeeded, 3));
    let detail: WebhookDeliveryDetail = t
        .admin
        .get(&format!(
            "/api/v1/webhooks/{}/deliveries/{}",
            flaky.endpoint.id, d.id
        ))
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(detail.attempts.len(), 3);
    assert_eq!(detail.attempts[0].status_code, Some(500));
    assert_eq!(detail.attempts[1].status_code, None);
    assert!(
        detail.attempts[1]
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("timed out"),
        "{:?}",
        detail.attempts[1]
    );
    assert_eq!(detail.attempts[2].status_code, Some(200));
    assert!(
        detail.attempts[2]
            .response_body
            .as_deref()
            .unwrap_or_default()
            .contains("ok")
    );
    assert_eq!(detail.request["type"], "device.created");
    // The schedule: about a second between attempts (the timeout took its 2 s in between).
    assert!(got[1].at - got[0].at >= 0.9, "{} {}", got[0].at, got[1].at);

    // 410: given up at once, the endpoint turned off and saying why; nothing more is sent.
    let got = receiver
        .wait("gone", 20, "the 410", |g| !g.is_empty())
        .await;
    assert_eq!(got.len(), 1);
    let mut ep: WebhookEndpoint = t
        .admin
        .get(&format!("/api/v1/webhooks/{}", gone.endpoint.id))
        .await
        .unwrap()
        .ok()
        .unwrap();
    for _ in 0..50 {
        if !ep.enabled {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        ep = t
            .admin
            .get(&format!("/api/v1/webhooks/{}", gone.endpoint.id))
            .await
            .unwrap()
            .ok()
            .unwrap();
    }
    assert!(!ep.enabled);
    assert!(
        ep.disabled_reason
            .as_deref()
            .unwrap_or_default()
            .contains("410")
    );
    let logged = deliveries(&t.admin, gone.endpoint.id).await;
    assert_eq!(
        (logged[0].status, logged[0].attempts),
        (DeliveryStatus::Failed, 1)
    );
    let off_since = chrono::Utc::now();
    crate::mqtt::device(&t.admin, "sensor-2").await;

    // Retry-After: 4 s, longer than the schedule's 1 s.
    let got = receiver
        .wait("busy", 30, "the retry after Retry-After", |g| g.len() >= 2)
        .await;
    let waited = got[1].at - got[0].at;
    assert!(
        waited >= 3.9,
        "the retry came {waited:.1} s after a Retry-After of 4 s"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        receiver.received("gone").await.len(),
        1,
        "a turned-off endpoint got more"
    );
    // Turned on again, what happened while it was off is replayed.
    receiver
        .control(
            "gone",
            serde_json::json!({"secrets": [gone.secret], "default": {"status": 200}}),
        )
        .await;
    let ep: WebhookEndpoint = t
        .admin
        .patch(
            &format!("/api/v1/webhooks/{}", gone.endpoint.id),
            &serde_json::json!({"enabled": true}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert!(ep.enabled && ep.disabled_reason.is_none());
    let replayed: Replayed = t
        .admin
        .post(
            &format!("/api/v1/webhooks/{}/replay", gone.endpoint.id),
            &serde_json::json!({"since": off_since}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(replayed.queued, 1);
    let got = receiver
        .wait("gone", 20, "the replayed event after turning on", |g| {
            g.len() >= 2
        })
        .await;
    assert_eq!(got[1].body["data"]["device"]["name"], "sensor-2");

    // A receiver that is down for good: retries run out, the delivery fails with the reason.
    let down = endpoint(&t.admin, "http://127.0.0.1:9/hook", only_created).await;
    crate::mqtt::device(&t.admin, "sensor-3").await;
    let mut d = None;
    for _ in 0..100 {
        let list = deliveries(&t.admin, down.endpoint.id).await;
        if list
            .first()
            .is_some_and(|d| d.status == DeliveryStatus::Failed)
        {
            d = list.into_iter().next();
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let d = d.expect("the delivery to a closed port failed in time");
    assert_eq!(d.attempts, 4, "one attempt and three retries");
    assert!(d.last_error.is_some());
}

/// Replay of one delivery and of everything since a time; secret rotation with both signatures
/// during the overlap; the test event.
async fn replay_rotation_and_test_events(backend: Backend) {
    let s = server(backend, &[]).await;
    let receiver = Receiver::start().await;
    let t = s.tenant("Replays").await;
    let created = endpoint(
        &t.admin,
        &receiver.url("r"),
        serde_json::json!({"event_types": ["device.created"], "ordered": true}),
    )
    .await;
    let id = created.endpoint.id;
    receiver
        .control("r", serde_json::json!({"secrets": [created.secret]}))
        .await;
    let since = chrono::Utc::now() - chrono::Duration::seconds(1);
    for n in 0..3 {
        crate::mqtt::device(&t.admin, &format!("d-{n}")).await;
    }
    let got = receiver
        .wait("r", 20, "three events", |g| g.len() >= 3)
        .await;
    let names: Vec<&str> = got
        .iter()
        .map(|r| r.body["data"]["device"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["d-0", "d-1", "d-2"],
        "an ordered endpoint gets them in order"
    );
    let first = deliveries(&t.admin, id).await.into_iter().last().unwrap();
    let replayed: WebhookDelivery = t
        .admin
        .post(
            &format!("/api/v1/webhooks/{id}/deliveries/{}/replay", first.id),
            &serde_json::json!({}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert!(replayed.replay);
    let got = receiver.wait("r", 20, "the replay", |g| g.len() >= 4).await;
    assert_eq!(
        got[3].id, got[0].id,
        "a replay carries the event's id again"
    );
    let all: Replayed = t
        .admin
        .post(
            &format!("/api/v1/webhooks/{id}/replay"),
            &serde_json::json!({"since": since}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(all.queued, 3);
    receiver
        .wait("r", 20, "the replay since a time", |g| g.len() >= 7)
        .await;

    // Rotation: both signatures for the overlap; a receiver with either secret verifies.
    let rotated: WebhookSecret = t
        .admin
        .post(
            &format!("/api/v1/webhooks/{id}/rotate-secret"),
            &serde_json::json!({"overlap_secs": 3600}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_ne!(rotated.secret, created.secret);
    assert_eq!(
        rotated.previous_secret.as_deref(),
        Some(created.secret.as_str())
    );
    for secret in [&rotated.secret, &created.secret] {
        receiver
            .control("r", serde_json::json!({"secrets": [secret]}))
            .await;
        let before = receiver.received("r").await.len();
        crate::mqtt::device(&t.admin, &format!("rot-{}", &secret[6..10])).await;
        let got = receiver
            .wait("r", 20, "a delivery after rotation", |g| g.len() > before)
            .await;
        let last = got.last().unwrap();
        assert!(
            last.verified,
            "verifies with {}",
            if *secret == rotated.secret {
                "the new secret"
            } else {
                "the old one"
            }
        );
        assert_eq!(last.signature.as_deref().unwrap().matches("v1,").count(), 2);
    }
    // Without overlap, the old secret stops at once.
    let again: WebhookSecret = t
        .admin
        .post(
            &format!("/api/v1/webhooks/{id}/rotate-secret"),
            &serde_json::json!({"overlap_secs": 0}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert!(again.previous_secret.is_none());
    receiver
        .control("r", serde_json::json!({"secrets": [rotated.secret]}))
        .await;
    let before = receiver.received("r").await.len();
    crate::mqtt::device(&t.admin, "after-rotation").await;
    let got = receiver
        .wait("r", 20, "a delivery after the second rotation", |g| {
            g.len() > before
        })
        .await;
    assert!(
        !got.last().unwrap().verified,
        "the retired secret no longer signs"
    );
    let shown: WebhookSecret = t
        .admin
        .get(&format!("/api/v1/webhooks/{id}/secret"))
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(shown.secret, again.secret);

    // The test event goes to this endpoint only, though its filter does not take it.
    receiver
        .control("r", serde_json::json!({"secrets": [again.secret]}))
        .await;
    let other = endpoint(&t.admin, &receiver.url("other"), serde_json::json!({})).await;
    let r = t
        .admin
        .post(
            &format!("/api/v1/webhooks/{id}/test"),
            &serde_json::json!({}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 202);
    let got = receiver
        .wait("r", 20, "the test event", |g| {
            g.iter().any(|r| r.event_type() == "webhook.test")
        })
        .await;
    assert!(got.last().unwrap().verified);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !receiver
            .received("other")
            .await
            .iter()
            .any(|r| r.event_type() == "webhook.test"),
        "the test event went to another endpoint"
    );
    let r = t
        .admin
        .post(
            &format!("/api/v1/webhooks/{}/replay", other.endpoint.id),
            &serde_json::json!({"since": "yesterday"}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    let audit = s.sql("SELECT action FROM audit_log WHERE action LIKE 'webhook.%' ORDER BY seq");
    for action in [
        "webhook.create",
        "webhook.replay",
        "webhook.rotate_secret",
        "webhook.test",
    ] {
        assert!(audit.contains(action), "{action} not audited: {audit}");
    }
}

/// The outbox: a change that rolled back wrote no event, and sends nothing.
async fn a_rolled_back_change_sends_nothing(backend: Backend) {
    let s = server(backend, &[]).await;
    let receiver = Receiver::start().await;
    let t = s.tenant("Outbox").await;
    receiver
        .hook(
            &t.admin,
            "o",
            serde_json::json!({"event_types": ["device.created", "device.deleted"]}),
            serde_json::json!({}),
        )
        .await;
    crate::mqtt::device(&t.admin, "only-once").await;
    // The same name again: the insert fails and its transaction, event included, rolls back.
    let r = t
        .admin
        .post("/api/v1/devices", &serde_json::json!({"name": "only-once"}))
        .await
        .unwrap();
    assert_eq!(r.status, 409);
    // A device in a group that does not exist: refused inside the transaction as well.
    let r = t
        .admin
        .post(
            "/api/v1/devices",
            &serde_json::json!({"name": "never", "groups": [Uuid::new_v4()]}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    let (last, _) = crate::mqtt::device(&t.admin, "last").await;
    let got = receiver
        .wait("o", 20, "both creations", |g| g.len() >= 2)
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let got_after = receiver.received("o").await;
    assert_eq!(got.len(), got_after.len());
    // An endpoint that is not ordered may get them in either order.
    let mut names: Vec<&str> = got_after
        .iter()
        .map(|r| r.body["data"]["device"]["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["last", "only-once"]);
    let stored = s.sql("SELECT count(*) FROM events WHERE event_type = 'device.created'");
    assert_eq!(stored, "2");
    let r = t
        .admin
        .delete(&format!("/api/v1/devices/{last}"))
        .await
        .unwrap();
    assert_eq!(r.status, 204);
    let got = receiver
        .wait("o", 20, "the deletion", |g| g.len() >= 3)
        .await;
    assert_eq!(got[2].event_type(), "device.deleted");
    assert_eq!(got[2].body["data"]["device"]["id"], serde_json::json!(last));
}

/// `kill -9` after changes committed and before (or while) they were delivered: after the
/// restart every event arrives, and once per id after deduplication.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_between_commit_and_delivery_loses_nothing() {
    let mut s = server(Backend::Postgres, &[]).await;
    let receiver = Receiver::start().await;
    let t = s.tenant("Crash").await;
    // Refuses everything at first: deliveries stay pending.
    let created = receiver
        .hook(
            &t.admin,
            "k",
            serde_json::json!({"event_types": ["device.created"]}),
            serde_json::json!({"default": {"status": 503}}),
        )
        .await;
    let mut names = Vec::new();
    for n in 0..20 {
        let name = format!("crash-{n}");
        crate::mqtt::device(&t.admin, &name).await;
        names.push(name);
    }
    // Some were attempted (and refused), the newest maybe not even dispatched: kill now.
    receiver
        .wait("k", 20, "a first attempt", |g| !g.is_empty())
        .await;
    s.kill9();
    receiver
        .control(
            "k",
            serde_json::json!({"secrets": [created.secret], "default": {"status": 200}}),
        )
        .await;
    s.restart().await;
    let got = receiver
        .wait("k", 60, "every event after the restart", |g| {
            let ok: std::collections::HashSet<&str> = g
                .iter()
                .filter(|r| r.status == 200)
                .filter_map(|r| r.id.as_deref())
                .collect();
            ok.len() >= 20
        })
        .await;
    let mut by_id: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
    for r in got.iter().filter(|r| r.status == 200) {
        assert!(r.verified);
        by_id.insert(
            r.id.as_deref().unwrap(),
            r.body["data"]["device"]["name"].as_str().unwrap(),
        );
    }
    let mut delivered: Vec<&str> = by_id.values().copied().collect();
    delivered.sort();
    let mut expected: Vec<&str> = names.iter().map(String::as_str).collect();
    expected.sort();
    assert_eq!(
        delivered, expected,
        "each event once after deduplication by webhook-id"
    );
}

/// Without the platform's allowance, endpoints on private, loopback and link-local addresses are
/// refused, by literal address and by a name that resolves to one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_on_private_addresses_are_refused_unless_allowed() {
    let s = TestServer::start(Backend::Sqlite).await;
    let t = s.tenant("Guard").await;
    for url in [
        "http://127.0.0.1:8080/hook",
        "http://10.0.0.5/hook",
        "http://192.168.1.10/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]:9000/",
        "http://localhost:9000/hook",
    ] {
        let r = t
            .admin
            .post("/api/v1/webhooks", &serde_json::json!({"url": url}))
            .await
            .unwrap();
        assert_eq!(r.status, 400, "{url}");
        let e = r.error();
        assert_eq!(
            (e.code.as_str(), e.field.as_deref()),
            ("address_not_allowed", Some("url")),
            "{url}: {e:?}"
        );
    }
    // Nothing was made, and nothing is called: no test here sends traffic off this machine.
    let list: Vec<WebhookEndpoint> = t.admin.get("/api/v1/webhooks").await.unwrap().ok().unwrap();
    assert!(list.is_empty());
}

/// The NATS JetStream sink against a NATS server of the test's own: events wait while it is
/// away and arrive in the stream, once each, when it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_nats_jetstream_and_wait_while_it_is_away() {
    let port = free_port();
    let url = format!("nats://127.0.0.1:{port}");
    let stream = format!("T{}", Uuid::new_v4().simple());
    let s = server(
        Backend::Postgres,
        &[
            ("STEAD_NATS_URL", &url),
            ("STEAD_NATS_STREAM", &stream),
            ("STEAD_NATS_SUBJECT_PREFIX", "steadtest"),
        ],
    )
    .await;
    let t = s.tenant("Stream").await;
    let admin = s.admin().await;
    // Only the platform admin sets it; the tenant sees it.
    let r = t
        .admin
        .send(
            reqwest::Method::PUT,
            &format!("/api/v1/tenants/{}/nats-sink", t.tenant.id),
            Some(&serde_json::json!({"enabled": true})),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    let sink: NatsSink = admin
        .send(
            reqwest::Method::PUT,
            &format!("/api/v1/tenants/{}/nats-sink", t.tenant.id),
            Some(&serde_json::json!({"enabled": true, "event_types": ["device.created", "device.telemetry"]})),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert!(sink.enabled && sink.configured);
    // NATS is not there yet: the events wait.
    for n in 0..5 {
        crate::mqtt::device(&t.admin, &format!("n-{n}")).await;
    }
    let mut sink: NatsSink = t
        .admin
        .get("/api/v1/integrations/nats")
        .await
        .unwrap()
        .ok()
        .unwrap();
    for _ in 0..100 {
        if sink.pending >= 5 && sink.last_error.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        sink = t
            .admin
            .get("/api/v1/integrations/nats")
            .await
            .unwrap()
            .ok()
            .unwrap();
    }
    assert!(sink.pending >= 5, "{sink:?}");
    assert!(sink.last_error.is_some(), "{sink:?}");
    assert_eq!(sink.delivered, 0);
    // Now it comes up.
    let dir = tempfile::tempdir().unwrap();
    let _nats = tokio::process::Command::new("nats-server")
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("nats-server is installed (Debian package nats-server)");
    for _ in 0..300 {
        if sink.delivered >= 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        sink = t
            .admin
            .get("/api/v1/integrations/nats")
            .await
            .unwrap()
            .ok()
            .unwrap();
    }
    assert!(sink.delivered >= 5 && sink.pending == 0, "{sink:?}");
    assert!(sink.last_error.is_none(), "{sink:?}");
    // What the stream holds: each creation once, on the tenant's subject.
    let client = async_nats::connect(&url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut st = js.get_stream(&stream).await.unwrap();
    let info = st.info().await.unwrap();
    let subject = format!("steadtest.{}.device.created", t.tenant.id);
    let mut names = Vec::new();
    for seq in 1..=info.state.messages {
        let m = st.get_raw_message(seq).await.unwrap();
        if m.subject.as_str() == subject {
            let body: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
            names.push(body["data"]["device"]["name"].as_str().unwrap().to_owned());
        }
    }
    names.sort();
    assert_eq!(names, ["n-0", "n-1", "n-2", "n-3", "n-4"]);
    // Telemetry too, once the stream is there.
    let (_, token) = crate::mqtt::device(&t.admin, "n-telemetry").await;
    let (ok, out) = crate::mqtt::mosquitto_pub(
        s.mqtt_port(),
        &[
            "-q",
            "1",
            "-u",
            &token,
            "-t",
            "v1/devices/me/telemetry",
            "-m",
            r#"{"x":1}"#,
        ],
    );
    assert!(ok, "{out}");
    let telemetry = format!("steadtest.{}.device.telemetry", t.tenant.id);
    let mut found = false;
    for _ in 0..100 {
        let info = st.info().await.unwrap();
        for seq in 1..=info.state.messages {
            if let Ok(m) = st.get_raw_message(seq).await
                && m.subject.as_str() == telemetry
            {
                found = true;
            }
        }
        if found {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(found, "no telemetry event in the stream");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An endpoint whose every attempt fails for longer than `STEAD_WEBHOOK_DISABLE_AFTER_SECS` is
/// turned off, says why, and its creator gets an e-mail (a real SMTP server).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_failing_too_long_is_turned_off_and_its_owner_told() {
    let mailbox = crate::mail::Mailbox::start().await;
    let smtp = format!("smtp://127.0.0.1:{}", mailbox.port);
    let s = server(
        Backend::Sqlite,
        &[
            ("STEAD_SMTP_URL", &smtp),
            ("STEAD_WEBHOOK_DISABLE_AFTER_SECS", "2"),
            ("STEAD_WEBHOOK_RETRY_SCHEDULE", "1s,1s,1s,1s,1s,1s"),
        ],
    )
    .await;
    let receiver = Receiver::start().await;
    let t = s.tenant("Failing").await;
    let created = receiver
        .hook(
            &t.admin,
            "bad",
            serde_json::json!({"event_types": ["device.created"]}),
            serde_json::json!({"default": {"status": 500}}),
        )
        .await;
    crate::mqtt::device(&t.admin, "x").await;
    let mail = mailbox.wait_for("admin@failing.example.com").await;
    assert!(mail.subject.contains("turned off"), "{}", mail.subject);
    assert!(mail.text.contains(&receiver.url("bad")), "{}", mail.text);
    assert!(
        mail.text.contains("the endpoint answered 500"),
        "{}",
        mail.text
    );
    let ep: WebhookEndpoint = t
        .admin
        .get(&format!("/api/v1/webhooks/{}", created.endpoint.id))
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert!(!ep.enabled);
    assert!(ep.failing_since.is_some());
    assert!(
        ep.disabled_reason
            .unwrap()
            .contains("every delivery failed since")
    );
    let attempts = receiver.received("bad").await.len();
    assert!(
        (3..=5).contains(&attempts),
        "{attempts} attempts before it was turned off"
    );
    // The delivery waits (not failed): turned on, it goes on.
    let d = deliveries(&t.admin, created.endpoint.id).await;
    assert_eq!(d[0].status, DeliveryStatus::Pending);
}
