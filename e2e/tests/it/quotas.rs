//! Quotas per tenant: the device quota holds over REST, import and provisioning alike; people and
//! API keys have theirs; each tenant sees its use, the platform admin every tenant's.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use stead_api_types::{CreatedApiKey, ImportJob, ImportStatus, SavedProfile, Tenant, Usage};

use crate::harness::{Backend, Options, TestServer};
use crate::on_both_backends;

on_both_backends!(the_device_quota_holds_over_rest_import_and_provisioning);

async fn the_device_quota_holds_over_rest_import_and_provisioning(backend: Backend) {
    let server = TestServer::start(backend).await;
    let platform = server.admin().await;
    let acme = server.tenant("Acme").await;
    let admin = &acme.admin;
    let set_quota = |devices: u64| {
        let platform = &platform;
        let id = acme.tenant.id;
        async move {
            let t: Tenant = platform
                .patch(
                    &format!("/api/v1/tenants/{id}"),
                    &json!({"quotas": {"devices": devices}}),
                )
                .await
                .unwrap()
                .ok()
                .unwrap();
            assert_eq!(t.quotas.devices, Some(devices));
        }
    };
    set_quota(2).await;
    for name in ["one", "two"] {
        let r = admin
            .post("/api/v1/devices", &json!({"name": name}))
            .await
            .unwrap();
        assert_eq!(r.status, 201, "{}", r.body);
    }
    // REST.
    let r = admin
        .post("/api/v1/devices", &json!({"name": "three"}))
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (409, "quota_exceeded".into())
    );
    assert!(r.error().detail.contains("devices"), "{}", r.body);

    // Import: the row is refused with the reason, the job ends.
    let r = admin
        .raw(
            Method::POST,
            "/api/v1/devices/import",
            "text/csv",
            "name\nimported\n",
        )
        .await
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.body);
    let mut job: ImportJob = r.ok().unwrap();
    let started = Instant::now();
    while job.status == ImportStatus::Running {
        assert!(started.elapsed() < Duration::from_secs(30), "{job:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        job = admin
            .get(&format!("/api/v1/imports/{}", job.id))
            .await
            .unwrap()
            .ok()
            .unwrap();
    }
    assert_eq!(job.errors.len(), 1, "{job:?}");
    let reason = job.errors[0].reason.clone().unwrap_or_default();
    assert!(reason.contains("quota"), "{reason}");

    // Provisioning (the ThingsBoard device API): FAILURE with the reason.
    let saved: SavedProfile = admin
        .post(
            "/api/v1/profiles",
            &json!({"name": "field", "provision_strategy": "allow_create"}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    let body = json!({
        "deviceName": "provisioned",
        "provisionDeviceKey": saved.profile.provision_key.unwrap(),
        "provisionDeviceSecret": saved.provision_secret.unwrap(),
    });
    let r = server
        .client()
        .post("/api/v1/provision", &body)
        .await
        .unwrap();
    assert_eq!(r.body["status"], "FAILURE", "{}", r.body);
    assert!(
        r.body["errorMsg"]
            .as_str()
            .unwrap_or_default()
            .contains("quota"),
        "{}",
        r.body
    );

    // The tenant sees its use; the platform admin every tenant's.
    let usage: Usage = admin.get("/api/v1/usage").await.unwrap().ok().unwrap();
    assert_eq!((usage.devices.used, usage.devices.limit), (2, 2));
    assert_eq!(usage.users.used, 1);
    let all: Vec<Usage> = platform
        .get("/api/v1/tenants/usage")
        .await
        .unwrap()
        .ok()
        .unwrap();
    let theirs = all.iter().find(|u| u.tenant.id == acme.tenant.id).unwrap();
    assert_eq!(theirs.devices, usage.devices);
    assert_eq!(
        admin.get("/api/v1/tenants/usage").await.unwrap().status,
        403
    );
    let operator = server.user(&acme, stead_api_types::Role::Operator).await;
    assert_eq!(operator.get("/api/v1/usage").await.unwrap().status, 403);

    // Raised, the same requests go through.
    set_quota(4).await;
    let r = admin
        .post("/api/v1/devices", &json!({"name": "three"}))
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    let r = server
        .client()
        .post("/api/v1/provision", &body)
        .await
        .unwrap();
    assert_eq!(r.body["status"], "SUCCESS", "{}", r.body);
    // Back to the platform default (`{}`).
    let t: Tenant = platform
        .patch(
            &format!("/api/v1/tenants/{}", acme.tenant.id),
            &json!({"quotas": {}}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(t.quotas.devices, None);
    let usage: Usage = admin.get("/api/v1/usage").await.unwrap().ok().unwrap();
    assert_eq!(usage.devices.limit, 100_000);
}

/// The people and API-key quotas, from the platform defaults in the configuration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_and_api_keys_have_quotas_too() {
    let server = TestServer::start_with(
        Backend::Sqlite,
        Options::default()
            .env("STEAD_QUOTA_USERS", "2")
            .env("STEAD_QUOTA_API_KEYS", "1"),
    )
    .await;
    let acme = server.tenant("Acme").await;
    let admin = &acme.admin;
    let person = |n: u32| json!({"email": format!("p{n}@acme.example.com"), "password": "person-password-1", "role": "viewer"});
    assert_eq!(
        admin
            .post("/api/v1/users", &person(1))
            .await
            .unwrap()
            .status,
        201
    );
    let r = admin.post("/api/v1/users", &person(2)).await.unwrap();
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (409, "quota_exceeded".into())
    );
    assert!(r.error().detail.contains("users"), "{}", r.body);

    let key = |d: &str| json!({"description": d, "permissions": ["devices.read"]});
    let first: CreatedApiKey = admin
        .post("/api/v1/api-keys", &key("first"))
        .await
        .unwrap()
        .ok()
        .unwrap();
    let r = admin
        .post("/api/v1/api-keys", &key("second"))
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (409, "quota_exceeded".into())
    );
    // A revoked key no longer counts.
    admin
        .delete(&format!("/api/v1/api-keys/{}", first.key.id))
        .await
        .unwrap()
        .ok::<serde_json::Value>()
        .unwrap();
    let r = admin
        .post("/api/v1/api-keys", &key("second"))
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    let usage: Usage = admin.get("/api/v1/usage").await.unwrap().ok().unwrap();
    assert_eq!((usage.users.used, usage.users.limit), (2, 2));
    assert_eq!((usage.api_keys.used, usage.api_keys.limit), (1, 1));
}

/// Sends `body` over the HTTP device API.
async fn http_telemetry(server: &TestServer, token: &str, body: &str) -> stead_e2e::Reply {
    server
        .client()
        .raw(
            Method::POST,
            &format!("/api/v1/{token}/telemetry"),
            "application/json",
            body.to_string(),
        )
        .await
        .unwrap()
}

/// Publishes each line over MQTT 5 at QoS 1 and answers the PUBACK reason codes.
fn mqtt5_publish(server: &TestServer, token: &str, lines: &[&str]) -> Vec<u8> {
    use std::io::Write as _;
    let mut publish = std::process::Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &server.mqtt_port().to_string()])
        .args(["-V", "mqttv5", "-d", "-q", "1", "-u", token])
        .args(["-t", "v1/devices/me/telemetry", "-l"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("mosquitto_pub (Debian's mosquitto-clients)");
    {
        let mut stdin = publish.stdin.take().unwrap();
        stdin.write_all(lines.join("\n").as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
    }
    let out = publish.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("received PUBACK"))
        .map(|l| {
            l.split("RC:")
                .nth(1)
                .and_then(|rc| rc.trim_end_matches(')').parse().ok())
                .unwrap_or(0)
        })
        .collect()
}

async fn usage_today(c: &stead_e2e::Client) -> u64 {
    let usage: Usage = c.get("/api/v1/usage").await.unwrap().ok().unwrap();
    usage.data_points_today.used
}

/// Waits (up to 10 s) until the tenant's usage shows `points` today.
async fn wait_usage(c: &stead_e2e::Client, points: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while usage_today(c).await != points {
        assert!(
            Instant::now() < deadline,
            "usage today stayed at {} (want {points})",
            usage_today(c).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The data points per day quota holds over HTTP and MQTT, on two nodes that share the count
/// through Redis; over it, MQTT 5 answers PUBACK 0x97 and HTTP 409 `quota_exceeded`; usage shows
/// the day's count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_data_point_quota_holds_across_http_mqtt_and_nodes() {
    let a = TestServer::start(Backend::Postgres).await;
    let b = TestServer::start_with(
        Backend::Postgres,
        Options {
            join: Some(a.shared()),
            ..Options::default()
        },
    )
    .await;
    let platform = a.admin().await;
    let acme = a.tenant("Acme").await;
    let t: Tenant = platform
        .patch(
            &format!("/api/v1/tenants/{}", acme.tenant.id),
            &json!({"quotas": {"data_points_per_day": 10}}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(t.quotas.data_points_per_day, Some(10));
    let (meter, token) = crate::mqtt::device(&acme.admin, "meter-1").await;

    // Four points over HTTP on node a, one over MQTT on node b.
    assert_eq!(
        http_telemetry(&a, &token, r#"{"a":1,"b":2,"c":3,"d":4}"#)
            .await
            .status,
        200
    );
    wait_usage(&acme.admin, 4).await;
    assert_eq!(mqtt5_publish(&b, &token, &[r#"{"e":5}"#]), vec![0]);
    wait_usage(&acme.admin, 5).await;
    // Node b has the day's total now (its flush reads it back): four more fit, two do not.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        mqtt5_publish(
            &b,
            &token,
            &[r#"{"f":1,"g":2,"h":3,"i":4}"#, r#"{"j":1,"k":2}"#]
        ),
        vec![0, 0x97]
    );
    wait_usage(&acme.admin, 9).await;
    // Node a learns b's points at its next flush: one more fits, then it is over.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(http_telemetry(&a, &token, r#"{"l":1}"#).await.status, 200);
    let over = http_telemetry(&a, &token, r#"{"m":1}"#).await;
    assert_eq!(
        (over.status.as_u16(), over.code()),
        (409, "quota_exceeded".into()),
        "{}",
        over.body
    );
    assert!(
        over.error().detail.contains("10 data points per day"),
        "{}",
        over.body
    );
    wait_usage(&acme.admin, 10).await;
    let all: Vec<Usage> = platform
        .get("/api/v1/tenants/usage")
        .await
        .unwrap()
        .ok()
        .unwrap();
    let ours = all.iter().find(|u| u.tenant.id == acme.tenant.id).unwrap();
    assert_eq!(ours.data_points_today.used, 10);
    assert_eq!(ours.data_points_today.limit, 10);
    // What was refused is on the device's timeline, with the reason, from both transports.
    crate::mqtt::eventually("the refusals are on the timeline", || async {
        let refused = crate::mqtt::timeline(&acme.admin, meter)
            .await
            .into_iter()
            .filter(|e| e.kind == "message_rejected" && e.data["reason"] == "quota_exceeded")
            .count();
        refused >= 2
    })
    .await;
}
