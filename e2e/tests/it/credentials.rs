//! Device credentials and provisioning from the outside: MQTT basic logins with mosquitto and a
//! byte-level client, the credential lifecycle (set, rotate, revoke, disable, enable, expiry)
//! through the REST API and what a connected device sees of it, and ThingsBoard provisioning with
//! ThingsBoard's own Python SDK and over HTTP, with every documented refusal.

use std::process::Stdio;
use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use stead_api_types::{
    CreatedDevice, CredentialsType, Device, DeviceCredentials, LatestTelemetry,
    MqttBasicCredentials, Role, SavedProfile,
};
use stead_e2e::{Client, Reply};

use crate::harness::{Backend, Options, TestServer, workspace_root};
use crate::mqtt::{device, eventually, mosquitto_pub, timeline};
use crate::mqtt_raw::{Login, Raw, SUBACK};
use crate::on_both_backends;

on_both_backends!(
    mqtt_basic_connects_and_wrong_secrets_are_refused,
    rotation_and_revocation_end_sessions_and_refuse_old_secrets,
    disable_quarantines_and_enable_restores,
    expired_credentials_are_refused_and_listed,
    provisioning_with_the_thingsboard_sdk,
    provisioning_over_http_and_mqtt_with_every_refusal,
    credential_routes_are_tenant_scoped,
);

/// An MQTT-basic device; answers its id and the credentials shown once.
pub async fn basic_device(
    c: &Client,
    name: &str,
    credentials: serde_json::Value,
) -> (uuid::Uuid, MqttBasicCredentials) {
    let mut spec = json!({"type": "mqtt_basic"});
    spec.as_object_mut()
        .unwrap()
        .extend(credentials.as_object().unwrap().clone());
    let created: CreatedDevice = c
        .post(
            "/api/v1/devices",
            &json!({"name": name, "credentials": spec}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(created.device.credentials_type, CredentialsType::MqttBasic);
    assert!(created.access_token.is_none());
    (created.device.id, created.mqtt_basic.unwrap())
}

async fn put(c: &Client, path: &str, body: serde_json::Value) -> Reply {
    c.send(Method::PUT, path, Some(&body)).await.unwrap()
}

async fn latest(c: &Client, id: uuid::Uuid) -> LatestTelemetry {
    c.get(&format!("/api/v1/devices/{id}/telemetry/latest"))
        .await
        .unwrap()
        .ok()
        .unwrap()
}

/// Waits until the device's timeline has an event of `kind` whose JSON contains `needle`.
async fn on_timeline(c: &Client, id: uuid::Uuid, kind: &str, needle: &str) {
    eventually(
        &format!("{kind} event with {needle:?} on the timeline"),
        || async {
            timeline(c, id)
                .await
                .iter()
                .any(|e| e.kind == kind && serde_json::to_string(e).unwrap().contains(needle))
        },
    )
    .await;
}

/// Posts telemetry through the HTTP device API; answers the reply.
async fn http_telemetry(server: &TestServer, token: &str) -> Reply {
    server
        .client()
        .post(&format!("/api/v1/{token}/telemetry"), &json!({"t": 1}))
        .await
        .unwrap()
}

async fn mqtt_basic_connects_and_wrong_secrets_are_refused(backend: Backend) {
    let server = TestServer::start(backend).await;
    let acme = server.tenant("Acme").await;
    let c = &acme.admin;
    let port = server.mqtt_port();
    let (id, shown) = basic_device(
        c,
        "basic-1",
        json!({"client_id": "cid-1", "username": "user-1", "password": "password-123"}),
    )
    .await;
    assert_eq!(
        shown,
        MqttBasicCredentials {
            client_id: Some("cid-1".into()),
            username: "user-1".into(),
            password: "password-123".into()
        }
    );

    // mosquitto clients, both protocol versions (the second login comes from the cache).
    for (version, n) in [("mqttv311", 1), ("mqttv5", 2)] {
        let payload = format!(r#"{{"n":{n}}}"#);
        let (ok, out) = mosquitto_pub(
            port,
            &[
                "-V",
                version,
                "-q",
                "1",
                "-i",
                "cid-1",
                "-u",
                "user-1",
                "-P",
                "password-123",
                "-t",
                "v1/devices/me/telemetry",
                "-m",
                &payload,
            ],
        );
        assert!(ok, "{version}: {out}");
    }
    assert_eq!(latest(c, id).await["n"].value, json!(2));

    // Refusals: return code 4, each on the device's timeline when the user name names it.
    let refusals = [
        (Some("cid-1"), "user-1", Some("wrong-password-9")),
        (Some("cid-2"), "user-1", Some("password-123")),
        (Some("cid-1"), "user-1", None),
        (Some("cid-1"), "nobody", Some("password-123")),
    ];
    for (client_id, username, password) in refusals {
        let login = Login {
            client_id,
            username,
            password,
        };
        let (_, code) = Raw::connect_as(&server.mqtt, &login, 30, None).await;
        assert_eq!(
            code, 4,
            "{client_id:?} {username} {password:?}: bad user name or password"
        );
    }
    let (ok, out) = mosquitto_pub(
        port,
        &[
            "-V",
            "mqttv5",
            "-i",
            "cid-1",
            "-u",
            "user-1",
            "-P",
            "wrong-password-9",
            "-t",
            "v1/devices/me/telemetry",
            "-m",
            "{}",
        ],
    );
    assert!(!ok, "MQTT 5 with a wrong password: {out}");
    assert!(
        out.to_lowercase().contains("bad user name or password"),
        "MQTT 5 reason 0x86: {out}"
    );
    on_timeline(c, id, "connect_refused", "wrong MQTT password").await;
    on_timeline(c, id, "connect_refused", "client id does not match").await;
    let recorded = serde_json::to_string(&timeline(c, id).await).unwrap() + &server.log_text();
    assert!(
        !recorded.contains("wrong-password-9") && !recorded.contains("password-123"),
        "a password reached the timeline or the log"
    );

    // A device that requires no client id connects with any; a generated password works.
    let (_, generated) = basic_device(c, "basic-2", json!({"username": "user-2"})).await;
    assert!(generated.password.len() >= 16, "{generated:?}");
    let login = Login {
        client_id: None,
        username: "user-2",
        password: Some(&generated.password),
    };
    assert_eq!(Raw::connect_as(&server.mqtt, &login, 30, None).await.1, 0);

    // Access-token devices connect as before, with or without a password.
    let (_, token) = device(c, "token-1").await;
    assert_eq!(Raw::connect(&server.mqtt, &token, 30, None).await.1, 0);
    let login = Login {
        client_id: None,
        username: &token,
        password: Some("ignored"),
    };
    assert_eq!(Raw::connect_as(&server.mqtt, &login, 30, None).await.1, 0);

    // A user name is unique across tenants.
    let globex = server.tenant("Globex").await;
    let r = globex
        .admin
        .post(
            "/api/v1/devices",
            &json!({"name": "copy", "credentials": {"type": "mqtt_basic", "username": "user-1"}}),
        )
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (409, "mqtt_username_taken".into())
    );
}

async fn rotation_and_revocation_end_sessions_and_refuse_old_secrets(backend: Backend) {
    let server = TestServer::start(backend).await;
    let acme = server.tenant("Acme").await;
    let c = &acme.admin;
    let (id, _) = basic_device(
        c,
        "rev-1",
        json!({"username": "rev-user", "password": "rev-password-1"}),
    )
    .await;
    let old = Login {
        client_id: None,
        username: "rev-user",
        password: Some("rev-password-1"),
    };

    // Rotation: a new password; the old one, verified and cached by the first login, stops
    // working at once.
    let (mut raw, code) = Raw::connect_as(&server.mqtt, &old, 30, None).await;
    assert_eq!(code, 0);
    let rotated: DeviceCredentials = c
        .post(
            &format!("/api/v1/devices/{id}/credentials/rotate"),
            &json!({}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert!(
        raw.closed_within(Duration::from_secs(1)).await.is_some(),
        "session ended within 1 s of rotation"
    );
    assert_eq!(Raw::connect_as(&server.mqtt, &old, 30, None).await.1, 4);
    let rotated = rotated.mqtt_basic.unwrap();
    assert_eq!(rotated.username, "rev-user");
    let new = Login {
        client_id: None,
        username: "rev-user",
        password: Some(&rotated.password),
    };
    let (mut raw, code) = Raw::connect_as(&server.mqtt, &new, 30, None).await;
    assert_eq!(code, 0, "the rotated password works");

    // Revocation: the session ends within a second; nothing connects until new credentials.
    let revoked: Device = c
        .post(
            &format!("/api/v1/devices/{id}/credentials/revoke"),
            &json!({}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(revoked.credentials_type, CredentialsType::None);
    assert!(
        raw.closed_within(Duration::from_secs(1)).await.is_some(),
        "session ended within 1 s of revocation"
    );
    assert_eq!(Raw::connect_as(&server.mqtt, &new, 30, None).await.1, 4);
    on_timeline(c, id, "disconnected", "credentials_revoked").await;
    on_timeline(c, id, "credentials", "Credentials revoked by").await;

    // New credentials, an access token this time, shown once.
    let r = put(
        c,
        &format!("/api/v1/devices/{id}/credentials"),
        json!({"type": "access_token"}),
    )
    .await;
    let set: DeviceCredentials = r.ok().unwrap();
    assert_eq!(set.credentials_type, CredentialsType::AccessToken);
    let token = set.access_token.unwrap();
    assert_eq!(Raw::connect(&server.mqtt, &token, 30, None).await.1, 0);
    assert_eq!(Raw::connect_as(&server.mqtt, &new, 30, None).await.1, 4);
    on_timeline(c, id, "credentials", "New credentials set by").await;

    // The revoked user name is free again.
    basic_device(
        c,
        "rev-2",
        json!({"username": "rev-user", "password": "another-pass-1"}),
    )
    .await;
}

async fn disable_quarantines_and_enable_restores(backend: Backend) {
    let server = TestServer::start(backend).await;
    let acme = server.tenant("Acme").await;
    let c = &acme.admin;
    let (id, token) = device(c, "quarantine").await;

    let (mut raw, code) = Raw::connect(&server.mqtt, &token, 30, None).await;
    assert_eq!(code, 0);
    let disabled: Device = c
        .post(
            &format!("/api/v1/devices/{id}/disable"),
            &json!({"reason": "suspected compromise"}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(
        disabled.disabled_reason.as_deref(),
        Some("suspected compromise")
    );
    assert!(
        raw.closed_within(Duration::from_secs(1)).await.is_some(),
        "session ended within 1 s of disabling"
    );
    on_timeline(c, id, "disconnected", r#""reason":"disabled""#).await;

    // Refused at CONNECT as not authorized (3.1.1 code 5, MQTT 5 0x87), with the reason on the
    // timeline; its HTTP device API calls are refused too.
    assert_eq!(Raw::connect(&server.mqtt, &token, 30, None).await.1, 5);
    let (ok, out) = mosquitto_pub(
        server.mqtt_port(),
        &[
            "-V",
            "mqttv5",
            "-u",
            &token,
            "-t",
            "v1/devices/me/telemetry",
            "-m",
            "{}",
        ],
    );
    assert!(!ok, "{out}");
    assert!(out.to_lowercase().contains("not authori"), "0x87: {out}");
    on_timeline(c, id, "connect_refused", "suspected compromise").await;
    let r = http_telemetry(&server, &token).await;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (403, "device_disabled".into())
    );
    on_timeline(c, id, "credentials", "Disabled by").await;

    // Enabled: it connects again, and its HTTP API answers.
    let enabled: Device = c
        .post(&format!("/api/v1/devices/{id}/enable"), &json!({}))
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(enabled.disabled_reason, None);
    assert_eq!(Raw::connect(&server.mqtt, &token, 30, None).await.1, 0);
    assert_eq!(http_telemetry(&server, &token).await.status, 200);

    // An MQTT-basic device whose login is cached is refused all the same once disabled.
    let (basic, _) = basic_device(
        c,
        "quarantine-2",
        json!({"username": "q-user", "password": "q-password-1"}),
    )
    .await;
    let login = Login {
        client_id: None,
        username: "q-user",
        password: Some("q-password-1"),
    };
    assert_eq!(Raw::connect_as(&server.mqtt, &login, 30, None).await.1, 0);
    let r = c
        .post(
            &format!("/api/v1/devices/{basic}/disable"),
            &json!({"reason": "recalled"}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(Raw::connect_as(&server.mqtt, &login, 30, None).await.1, 5);
    on_timeline(c, basic, "connect_refused", "recalled").await;
    let r = c
        .post(
            &format!("/api/v1/devices/{basic}/disable"),
            &json!({"reason": "  "}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400, "a reason is required: {:?}", r.body);
}

async fn expired_credentials_are_refused_and_listed(backend: Backend) {
    let server = TestServer::start(backend).await;
    let acme = server.tenant("Acme").await;
    let c = &acme.admin;
    let in_days = |d: i64| (chrono::Utc::now() + chrono::Duration::days(d)).to_rfc3339();

    // Credentials that expire in two seconds: they work until then, and not after.
    let (id, _) = device(c, "expiring-now").await;
    let soon = chrono::Utc::now() + chrono::Duration::seconds(2);
    let set: DeviceCredentials = put(
        c,
        &format!("/api/v1/devices/{id}/credentials"),
        json!({"type": "access_token", "expires_at": soon.to_rfc3339()}),
    )
    .await
    .ok()
    .unwrap();
    assert!(set.expires_at.is_some());
    let token = set.access_token.unwrap();
    let (mut session, code) = Raw::connect(&server.mqtt, &token, 30, None).await;
    assert_eq!(code, 0);
    assert_eq!(http_telemetry(&server, &token).await.status, 200);
    // The session open when they expire ends then, not at its next CONNECT.
    let wait = soon - chrono::Utc::now() + chrono::Duration::milliseconds(300);
    assert!(
        session
            .closed_within(wait.to_std().unwrap_or_default() + Duration::from_secs(2))
            .await
            .is_some(),
        "the session outlived its credentials"
    );
    on_timeline(c, id, "disconnected", "credentials_expired").await;
    assert_eq!(Raw::connect(&server.mqtt, &token, 30, None).await.1, 4);
    let r = http_telemetry(&server, &token).await;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (401, "credentials_expired".into())
    );
    on_timeline(c, id, "connect_refused", "credentials expired").await;
    let past = put(
        c,
        &format!("/api/v1/devices/{id}/credentials"),
        json!({"type": "access_token", "expires_at": in_days(-1)}),
    )
    .await;
    assert_eq!(past.status, 400, "an expiry in the past: {:?}", past.body);

    // The expiring list: soonest first, the expired one included.
    basic_device(
        c,
        "in-10-days",
        json!({"username": "e-user", "expires_at": in_days(10)}),
    )
    .await;
    let (in40, _) = device(c, "in-40-days").await;
    put(
        c,
        &format!("/api/v1/devices/{in40}/credentials"),
        json!({"type": "access_token", "expires_at": in_days(40)}),
    )
    .await
    .ok::<DeviceCredentials>()
    .unwrap();
    device(c, "never").await;
    let names =
        |devices: Vec<Device>| -> Vec<String> { devices.into_iter().map(|d| d.name).collect() };
    let listed: Vec<Device> = c
        .get("/api/v1/devices/credentials/expiring")
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert!(listed.iter().all(|d| d.credentials_expire_at.is_some()));
    assert_eq!(names(listed), ["expiring-now", "in-10-days"]);
    let viewer = server.user(&acme, Role::Viewer).await;
    let listed: Vec<Device> = viewer
        .get("/api/v1/devices/credentials/expiring?within_days=60")
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(names(listed), ["expiring-now", "in-10-days", "in-40-days"]);
    let r = c
        .get("/api/v1/devices/credentials/expiring?within_days=99999")
        .await
        .unwrap();
    assert_eq!(r.status, 400);
}

/// A profile with provisioning on; answers its id, key and secret.
async fn provisioning_profile(
    c: &Client,
    name: &str,
    strategy: &str,
) -> (uuid::Uuid, String, String) {
    let saved: SavedProfile = c
        .post(
            "/api/v1/profiles",
            &json!({"name": name, "provision_strategy": strategy}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    (
        saved.profile.id,
        saved.profile.provision_key.unwrap(),
        saved.provision_secret.unwrap(),
    )
}

/// Provisions with the SDK (`e2e/python/tb_sdk_provision.py`); answers its JSON line.
async fn sdk_provision(server: &TestServer, request: serde_json::Value) -> serde_json::Value {
    let python = crate::sdk::python();
    crate::sdk::require_sdk(&python).await;
    let script = workspace_root().join("e2e/python/tb_sdk_provision.py");
    let child = tokio::process::Command::new(&python)
        .arg(&script)
        .args([
            "127.0.0.1",
            &server.mqtt_port().to_string(),
            &request.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the SDK script");
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the SDK script ended within 60 s")
        .expect("the SDK script ran");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the SDK failed ({}):\nstdout: {stdout}\nstderr: {}\nserver log:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        server.log_text()
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("the SDK script printed no JSON line ({e}): {stdout}"))
}

async fn provisioning_with_the_thingsboard_sdk(backend: Backend) {
    let server = TestServer::start(backend).await;
    let acme = server.tenant("Acme").await;
    let c = &acme.admin;
    let (profile, key, secret) = provisioning_profile(c, "field sensors", "allow_create").await;

    // ACCESS_TOKEN, generated by Stead.
    let out = sdk_provision(
        &server,
        json!({"key": key, "secret": secret, "device_name": "sdk-token"}),
    )
    .await;
    let credentials = &out["credentials"];
    assert_eq!(credentials["status"], "SUCCESS", "{out}");
    assert_eq!(credentials["credentialsType"], "ACCESS_TOKEN", "{out}");
    assert!(credentials["credentialsValue"].as_str().unwrap().len() >= 32);
    assert_eq!(out["connack"], 0, "the provisioned token connects: {out}");
    let made = crate::gateway::named(c, "sdk-token").await.unwrap();
    assert_eq!(made.profile_id, profile);
    assert_eq!(made.credentials_type, CredentialsType::AccessToken);
    eventually("the SDK's telemetry stored", || async {
        latest(c, made.id).await.contains_key("provisioned")
    })
    .await;
    on_timeline(c, made.id, "provisioned", "field sensors").await;

    // MQTT_BASIC, chosen by the device.
    let out = sdk_provision(
        &server,
        json!({"key": key, "secret": secret, "device_name": "sdk-basic",
               "client_id": "sdk-cid", "username": "sdk-user", "password": "sdk-password-1"}),
    )
    .await;
    assert_eq!(out["credentials"]["status"], "SUCCESS", "{out}");
    assert_eq!(out["credentials"]["credentialsType"], "MQTT_BASIC", "{out}");
    assert_eq!(
        out["credentials"]["credentialsValue"],
        json!({"clientId": "sdk-cid", "userName": "sdk-user", "password": "sdk-password-1"})
    );
    assert_eq!(out["connack"], 0, "the provisioned login connects: {out}");
    let made = crate::gateway::named(c, "sdk-basic").await.unwrap();
    assert_eq!(made.credentials_type, CredentialsType::MqttBasic);
    eventually("the SDK's telemetry stored", || async {
        latest(c, made.id).await.contains_key("provisioned")
    })
    .await;

    // A token the device chose; then the same name again fails (and the SDK answers nothing).
    let out = sdk_provision(
        &server,
        json!({"key": key, "secret": secret, "device_name": "sdk-chosen",
               "access_token": "chosen-token-0123456789"}),
    )
    .await;
    assert_eq!(
        out["credentials"]["credentialsValue"], "chosen-token-0123456789",
        "{out}"
    );
    assert_eq!(out["connack"], 0, "{out}");
    let out = sdk_provision(
        &server,
        json!({"key": key, "secret": secret, "device_name": "sdk-chosen"}),
    )
    .await;
    assert_eq!(out["credentials"], serde_json::Value::Null, "{out}");
}

async fn provisioning_over_http_and_mqtt_with_every_refusal(backend: Backend) {
    let server = TestServer::start(backend).await;
    let acme = server.tenant("Acme").await;
    let c = &acme.admin;
    let (open, ckey, csecret) = provisioning_profile(c, "open", "allow_create").await;
    let (closed, pkey, psecret) = provisioning_profile(c, "closed", "pre_provisioned").await;
    let anon = server.client();
    let provision = async |body: serde_json::Value| -> serde_json::Value {
        let r = anon.post("/api/v1/provision", &body).await.unwrap();
        assert_eq!(r.status, 200, "{body}: {:?}", r.body);
        r.body
    };
    let status =
        |answer: &serde_json::Value| answer["status"].as_str().unwrap_or_default().to_owned();

    // allow_create: a new device in the key's profile, whose token works.
    let answer = provision(
        json!({"deviceName": "http-1", "provisionDeviceKey": ckey, "provisionDeviceSecret": csecret}),
    )
    .await;
    assert_eq!(status(&answer), "SUCCESS", "{answer}");
    assert_eq!(answer["credentialsType"], "ACCESS_TOKEN");
    let token = answer["credentialsValue"].as_str().unwrap().to_owned();
    assert_eq!(http_telemetry(&server, &token).await.status, 200);
    let made = crate::gateway::named(c, "http-1").await.unwrap();
    assert_eq!(made.profile_id, open);
    on_timeline(c, made.id, "provisioned", "open").await;

    // Refusals: a name taken, an unknown key, a wrong secret.
    let taken = provision(
        json!({"deviceName": "http-1", "provisionDeviceKey": ckey, "provisionDeviceSecret": csecret}),
    )
    .await;
    assert_eq!(status(&taken), "FAILURE", "{taken}");
    assert!(
        taken["errorMsg"]
            .as_str()
            .unwrap()
            .contains("already exists"),
        "{taken}"
    );
    for (key, secret) in [
        ("no-such-key", csecret.as_str()),
        (ckey.as_str(), "wrong-secret"),
    ] {
        let answer = provision(
            json!({"deviceName": "http-2", "provisionDeviceKey": key, "provisionDeviceSecret": secret}),
        )
        .await;
        assert_eq!(status(&answer), "NOT_FOUND", "{answer}");
        assert!(answer["errorMsg"].is_string());
    }

    // pre_provisioned: a name not created beforehand in this profile fails.
    device(c, "elsewhere").await;
    for name in ["pre-1", "elsewhere"] {
        let answer = provision(
            json!({"deviceName": name, "provisionDeviceKey": pkey, "provisionDeviceSecret": psecret}),
        )
        .await;
        assert_eq!(status(&answer), "FAILURE", "{name}: {answer}");
        assert!(
            answer["errorMsg"]
                .as_str()
                .unwrap()
                .contains("pre-provisioned"),
            "{answer}"
        );
    }
    // Created beforehand: fresh credentials (only hashes are stored), and the old token stops
    // working; once only.
    let pre: CreatedDevice = c
        .post(
            "/api/v1/devices",
            &json!({"name": "pre-1", "profile_id": closed}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    let old_token = pre.access_token.unwrap();
    let request = json!({"deviceName": "pre-1", "provisionDeviceKey": pkey,
        "provisionDeviceSecret": psecret, "credentialsType": "MQTT_BASIC",
        "clientId": "pre-cid", "username": "pre-user", "password": "pre-password-1"});
    let answer = provision(request.clone()).await;
    assert_eq!(status(&answer), "SUCCESS", "{answer}");
    assert_eq!(
        answer["credentialsValue"],
        json!({"clientId": "pre-cid", "userName": "pre-user", "password": "pre-password-1"})
    );
    assert_eq!(http_telemetry(&server, &old_token).await.status, 401);
    let login = Login {
        client_id: Some("pre-cid"),
        username: "pre-user",
        password: Some("pre-password-1"),
    };
    assert_eq!(Raw::connect_as(&server.mqtt, &login, 30, None).await.1, 0);
    on_timeline(c, pre.device.id, "provisioned", "closed").await;
    let again = provision(request).await;
    assert_eq!(status(&again), "FAILURE", "{again}");
    assert!(
        again["errorMsg"]
            .as_str()
            .unwrap()
            .contains("already provisioned")
    );
    // An unsupported credentials type, a missing name.
    for body in [
        json!({"deviceName": "x509", "provisionDeviceKey": ckey, "provisionDeviceSecret": csecret,
               "credentialsType": "X509_CERTIFICATE", "hash": "abc"}),
        json!({"provisionDeviceKey": ckey, "provisionDeviceSecret": csecret}),
    ] {
        assert_eq!(status(&provision(body).await), "FAILURE");
    }

    // Over MQTT: a provisioning-only session that answers the same JSON and allows nothing else.
    let (mut raw, code) = Raw::connect(&server.mqtt, "provision", 30, None).await;
    assert_eq!(code, 0);
    raw.subscribe("/provision/response", 1).await;
    assert_eq!(
        raw.read(Duration::from_secs(5))
            .await
            .map(|(k, b)| (k, b[2])),
        Some((SUBACK, 1))
    );
    raw.subscribe("v1/devices/me/attributes", 2).await;
    assert_eq!(
        raw.read(Duration::from_secs(5))
            .await
            .map(|(k, b)| (k, b[2])),
        Some((SUBACK, 0x80)),
        "a provisioning session may subscribe to nothing else"
    );
    let request = json!({"deviceName": "mqtt-1", "provisionDeviceKey": ckey, "provisionDeviceSecret": "wrong"});
    raw.publish("/provision/request", request.to_string().as_bytes(), None)
        .await;
    let (topic, payload) = raw
        .next_publish(Duration::from_secs(5))
        .await
        .expect("an answer");
    assert_eq!(topic, "/provision/response");
    let answer: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(status(&answer), "NOT_FOUND", "{answer}");
    let request = json!({"deviceName": "mqtt-1", "provisionDeviceKey": ckey, "provisionDeviceSecret": csecret});
    raw.publish(
        "/provision/request",
        request.to_string().as_bytes(),
        Some(7),
    )
    .await;
    let (_, payload) = raw
        .next_publish(Duration::from_secs(5))
        .await
        .expect("an answer");
    let answer: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(status(&answer), "SUCCESS", "{answer}");
    let token = answer["credentialsValue"].as_str().unwrap();
    assert_eq!(Raw::connect(&server.mqtt, token, 30, None).await.1, 0);
    raw.publish("v1/devices/me/telemetry", b"{\"t\":1}", Some(8))
        .await;
    assert!(
        raw.closed_within(Duration::from_secs(2)).await.is_some(),
        "a provisioning session cannot send device data"
    );
    let with_password = Login {
        client_id: None,
        username: "provision",
        password: Some("secret"),
    };
    assert_eq!(
        Raw::connect_as(&server.mqtt, &with_password, 30, None)
            .await
            .1,
        4
    );

    // Provisioning turned off for the profile: its key is unknown.
    c.patch(
        &format!("/api/v1/profiles/{open}"),
        &json!({"provision_strategy": "disabled"}),
    )
    .await
    .unwrap()
    .ok::<serde_json::Value>()
    .unwrap();
    let answer = provision(
        json!({"deviceName": "http-3", "provisionDeviceKey": ckey, "provisionDeviceSecret": csecret}),
    )
    .await;
    assert_eq!(status(&answer), "NOT_FOUND", "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisioning_is_throttled_per_address() {
    let options = Options::default().env("STEAD_PROVISION_MAX_ATTEMPTS_PER_IP", "3");
    let server = TestServer::start_with(Backend::Sqlite, options).await;
    let anon = server.client();
    let body = json!({"deviceName": "d", "provisionDeviceKey": "k", "provisionDeviceSecret": "s"});
    for _ in 0..3 {
        let r = anon.post("/api/v1/provision", &body).await.unwrap();
        assert_eq!(
            (r.status.as_u16(), &r.body["status"]),
            (200, &json!("NOT_FOUND"))
        );
    }
    let r = anon.post("/api/v1/provision", &body).await.unwrap();
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (429, "too_many_attempts".into())
    );
    assert!(r.headers.contains_key("retry-after"));
    // The same allowance over MQTT.
    let (mut raw, code) = Raw::connect(&server.mqtt, "provision", 30, None).await;
    assert_eq!(code, 0);
    raw.publish("/provision/request", body.to_string().as_bytes(), None)
        .await;
    let (_, payload) = raw
        .next_publish(Duration::from_secs(5))
        .await
        .expect("an answer");
    let answer: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(answer["status"], "FAILURE", "{answer}");
    assert!(
        answer["errorMsg"].as_str().unwrap().contains("too many"),
        "{answer}"
    );
}

async fn credential_routes_are_tenant_scoped(backend: Backend) {
    let server = TestServer::start(backend).await;
    let acme = server.tenant("Acme").await;
    let globex = server.tenant("Globex").await;
    let (id, _) = device(&acme.admin, "acme-device").await;
    let in_days = (chrono::Utc::now() + chrono::Duration::days(3)).to_rfc3339();
    put(
        &acme.admin,
        &format!("/api/v1/devices/{id}/credentials"),
        json!({"type": "access_token", "expires_at": in_days}),
    )
    .await
    .ok::<DeviceCredentials>()
    .unwrap();
    let g = &globex.admin;
    let routes = [
        (Method::PUT, "credentials", json!({"type": "access_token"})),
        (Method::POST, "credentials/rotate", json!({})),
        (Method::POST, "credentials/revoke", json!({})),
        (Method::POST, "disable", json!({"reason": "not yours"})),
        (Method::POST, "enable", json!({})),
    ];
    for (method, route, body) in routes {
        let path = format!("/api/v1/devices/{id}/{route}");
        let r = g.send(method.clone(), &path, Some(&body)).await.unwrap();
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (404, "not_found".into()),
            "{method} {path}: another tenant's device"
        );
    }
    let theirs: Vec<Device> = g
        .get("/api/v1/devices/credentials/expiring")
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert!(theirs.is_empty(), "{theirs:?}");
    let ours: Vec<Device> = acme
        .admin
        .get("/api/v1/devices/credentials/expiring")
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(ours.len(), 1);
    // Nothing changed on Acme's device.
    let d: Device = acme
        .admin
        .get(&format!("/api/v1/devices/{id}"))
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(
        (d.credentials_type, d.disabled_reason),
        (CredentialsType::AccessToken, None)
    );
}
