//! OTA campaigns through the real server, with a simulated fleet (`stead-e2e simulate-ota`, real
//! MQTT clients speaking ThingsBoard's firmware protocol) whose devices succeed, fail or
//! reboot-loop after updating: waves that proceed while the gate holds, a gate that pauses,
//! the health watch that catches reboot loops, the auto-stop with roll-back to the previous
//! package, four eyes, pause, resume and cancel; bad campaigns and other tenants' campaigns;
//! two workers (one killed with `kill -9` midway) that never notify a device twice.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use stead_api_types::{Campaign, CampaignDevice, CampaignStatus, OtaState, Package, Page, Role};
use uuid::Uuid;

use crate::harness::{Backend, Options, TestServer};
use crate::mqtt::device;
use stead_e2e::Client;

async fn upload(c: &Client, version: &str, seed: u64) -> Package {
    let r = c
        .raw(
            Method::POST,
            &format!("/api/v1/ota/packages?kind=firmware&title=pump-fw&version={version}"),
            "application/octet-stream",
            crate::ota::image(64 * 1024, seed),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    r.ok().unwrap()
}

/// Simulated devices of one behaviour (`succeed`, `fail`, `hang`, `reboot-loop`), running
/// `pump-fw 1.0` at first.
fn simulate(server: &TestServer, tokens: &[String], behaviour: &str) -> tokio::process::Child {
    let mut args = vec![
        "simulate-ota".to_owned(),
        "--mqtt".into(),
        server.mqtt.clone(),
        "--tokens".into(),
        tokens.join(","),
        "--title".into(),
        "pump-fw".into(),
        "--version".into(),
        "1.0".into(),
        "--telemetry-ms".into(),
        "500".into(),
        "--duration".into(),
        "300".into(),
    ];
    for b in ["succeed", "fail", "hang", "reboot-loop"] {
        args.push(format!("--{b}"));
        args.push(if b == behaviour { "100" } else { "0" }.into());
    }
    tokio::process::Command::new(env!("CARGO_BIN_EXE_stead-e2e"))
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("stead-e2e simulate-ota")
}

async fn campaign(c: &Client, id: Uuid) -> Campaign {
    c.get(&format!("/api/v1/ota/campaigns/{id}"))
        .await
        .unwrap()
        .ok()
        .unwrap()
}

async fn devices_of(c: &Client, id: Uuid) -> Vec<CampaignDevice> {
    let page: Page<CampaignDevice> = c
        .get(&format!("/api/v1/ota/campaigns/{id}/devices?per_page=200"))
        .await
        .unwrap()
        .ok()
        .unwrap();
    page.items
}

/// Waits (at most `secs`) until `f` holds for the campaign; answers it.
async fn until(
    c: &Client,
    id: Uuid,
    secs: u64,
    what: &str,
    f: impl Fn(&Campaign) -> bool,
) -> Campaign {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let now = campaign(c, id).await;
        if f(&now) {
            return now;
        }
        if tokio::time::Instant::now() > deadline {
            panic!(
                "never happened: {what}; the campaign: {now:?}\nits devices: {:#?}",
                devices_of(c, id).await
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn n(c: &Campaign, s: OtaState) -> u64 {
    c.counts.get(&s).copied().unwrap_or(0)
}

/// A group of `count` devices with their tokens by id.
async fn fleet(c: &Client, count: usize) -> (Uuid, BTreeMap<Uuid, String>) {
    let group: serde_json::Value = c
        .post("/api/v1/groups", &json!({"name": "pumps"}))
        .await
        .unwrap()
        .ok()
        .unwrap();
    let group = Uuid::parse_str(group["id"].as_str().unwrap()).unwrap();
    let mut tokens = BTreeMap::new();
    for i in 0..count {
        let (id, token) = device(c, &format!("pump-{i:02}")).await;
        tokens.insert(id, token);
    }
    let ids: Vec<Uuid> = tokens.keys().copied().collect();
    let r = c
        .post(
            &format!("/api/v1/groups/{group}/devices"),
            &json!({"device_ids": ids}),
        )
        .await
        .unwrap();
    assert!(r.status.is_success(), "{}", r.body);
    (group, tokens)
}

/// Made, then started by the second admin; enrolled before its start time, so that the test
/// knows each device's place in the rollout before any is notified.
async fn started(c: &Client, approver: &Client, spec: serde_json::Value) -> (Campaign, Vec<Uuid>) {
    let r = c.post("/api/v1/ota/campaigns", &spec).await.unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    let made: Campaign = r.ok().unwrap();
    assert_eq!(made.status, CampaignStatus::Draft);
    let r = approver
        .post(
            &format!("/api/v1/ota/campaigns/{}/start", made.id),
            &json!({}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let total = spec["target"]["device_ids"]
        .as_array()
        .map(|a| a.len() as u64);
    let running = until(c, made.id, 30, "the target enrolled", |x| {
        x.devices > 0 && total.is_none_or(|t| x.devices == t)
    })
    .await;
    let order = devices_of(c, made.id)
        .await
        .into_iter()
        .map(|d| d.device_id)
        .collect();
    (running, order)
}

/// Ten devices, in two waves (20 %, then the rest) behind a gate; the first wave's two succeed,
/// so the second starts; of its eight, four reboot-loop after updating: the health watch fails
/// them, the auto-stop (over 30 % failed, after 8) pauses the campaign, tells its people, and
/// rolls every updated device back to 1.0, which the succeeding devices install and report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waves_gate_health_watch_auto_stop_and_roll_back() {
    let server = TestServer::start(Backend::Postgres).await;
    let acme = server.tenant("Acme").await;
    let c = &acme.admin;
    let approver = server.user(&acme, Role::TenantAdmin).await;
    let old = upload(c, "1.0", 1).await;
    let new = upload(c, "2.0", 2).await;
    let (group, tokens) = fleet(c, 10).await;

    let start_at = chrono::Utc::now() + chrono::Duration::seconds(6);
    let (made, order) = started(
        c,
        &approver,
        json!({
            "name": "spring release", "package_id": new.id,
            "target": {"group_ids": [group]},
            "start_at": start_at,
            "rollout": {"kind": "waves", "percents": [20, 100]},
            "max_in_flight": 10,
            "gate": {"min_success_percent": 100, "min_devices": 2},
            "health": {"secs": 5, "max_reconnects": 2},
            "auto_stop": {"max_failure_percent": 30, "min_devices": 8, "action": "pause", "rollback": true},
            "four_eyes": true
        }),
    )
    .await;
    assert_eq!(made.devices, 10);
    assert_eq!(order.len(), 10);
    let token = |id: &Uuid| tokens[id].clone();
    let good: Vec<String> = order[..6].iter().map(token).collect();
    let looping: Vec<String> = order[6..].iter().map(token).collect();
    let _good = simulate(&server, &good, "succeed");
    let _looping = simulate(&server, &looping, "reboot-loop");

    // The first wave: two devices, both healthy after the update; then the second wave.
    let after_first = until(c, made.id, 90, "the second wave", |x| x.wave == 2).await;
    assert!(n(&after_first, OtaState::Succeeded) >= 2, "{after_first:?}");
    assert_eq!(n(&after_first, OtaState::Failed), 0, "{after_first:?}");

    // The reboot loops fail the health watch; the auto-stop pauses and rolls back.
    let stopped = until(c, made.id, 120, "the auto-stop", |x| {
        x.status == CampaignStatus::Paused
    })
    .await;
    let reason = stopped.reason.clone().unwrap_or_default();
    assert!(reason.starts_with("auto-stop:"), "{reason}");
    let rolled = until(c, made.id, 60, "the roll-back", |x| {
        n(x, OtaState::RolledBack) >= 8
    })
    .await;
    let devices = devices_of(c, made.id).await;
    for d in &devices {
        let steps: Vec<OtaState> = d.history.iter().map(|s| s.state).collect();
        assert_eq!(
            steps.iter().filter(|s| **s == OtaState::Notified).count(),
            1,
            "notified once: {d:?}"
        );
        if looping.contains(&tokens[&d.device_id]) {
            let caught = d.history.iter().any(|s| {
                s.state == OtaState::Failed
                    && s.reason
                        .as_deref()
                        .is_some_and(|r| r.starts_with("health:"))
            });
            assert!(caught, "the health watch caught the reboot loop: {d:?}");
        }
        if d.state == OtaState::RolledBack {
            let targets: Vec<serde_json::Value> = c
                .get(&format!("/api/v1/devices/{}/ota", d.device_id))
                .await
                .unwrap()
                .ok()
                .unwrap();
            assert_eq!(targets[0]["package_id"], json!(old.id), "{d:?}");
        }
    }
    assert!(n(&rolled, OtaState::RolledBack) >= 8, "{rolled:?}");

    // The healthy devices install 1.0 again and say so.
    crate::mqtt::eventually("the healthy devices report 1.0 again", || async {
        let versions: serde_json::Value = c
            .get("/api/v1/ota/versions?kind=firmware")
            .await
            .unwrap()
            .body;
        versions
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["version"] == "1.0" && v["devices"].as_u64().unwrap_or(0) >= 6)
    })
    .await;

    // Its people were told.
    for person in [c, &approver] {
        let notes = person
            .get("/api/v1/notifications")
            .await
            .unwrap()
            .body
            .to_string();
        assert!(notes.contains("campaign spring release paused"), "{notes}");
    }
    // People's steps are in the audit log; a canceled campaign is over, and then deleted.
    let r = c
        .post(
            &format!("/api/v1/ota/campaigns/{}/cancel", made.id),
            &json!({"reason": "bad image"}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    until(c, made.id, 30, "the campaign wound down", |x| {
        x.finished_at.is_some()
    })
    .await;
    let audit = c.get("/api/v1/audit?per_page=100").await.unwrap().body;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for a in [
        "ota.campaign.create",
        "ota.campaign.start",
        "ota.campaign.cancel",
    ] {
        assert!(actions.contains(&a), "{a} in {actions:?}");
    }
    let r = c
        .delete(&format!("/api/v1/ota/packages/{}", new.id))
        .await
        .unwrap();
    assert_eq!(r.code(), "package_in_use", "{}", r.body);
    let r = c
        .delete(&format!("/api/v1/ota/campaigns/{}", made.id))
        .await
        .unwrap();
    assert_eq!(r.status, 204, "{}", r.body);
}

/// On the embedded default: four eyes, a gate that pauses after a failed first wave, a person
/// who resumes (the next wave starts) and cancels (what waits is canceled, what is under way
/// withdrawn); a retry after a backoff; each step as an `ota.execution.updated` webhook; bad
/// campaigns, people without the permission, another
/// tenant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_gate_pauses_and_people_steer() {
    let server = crate::webhooks::server(Backend::Sqlite, &[]).await;
    let acme = server.tenant("Acme").await;
    let c = &acme.admin;
    // Each device's steps reach integrations as `ota.execution.updated` events.
    let receiver = crate::webhooks::Receiver::start().await;
    receiver
        .hook(
            c,
            "ota",
            json!({"event_types": ["ota.execution.updated"]}),
            json!({}),
        )
        .await;
    let approver = server.user(&acme, Role::TenantAdmin).await;
    upload(c, "1.0", 1).await;
    let new = upload(c, "2.0", 2).await;
    let (_, tokens) = fleet(c, 4).await;
    let ids: Vec<Uuid> = tokens.keys().copied().collect();

    // Bad campaigns name the field.
    let base = json!({
        "name": "canary", "package_id": new.id, "target": {"device_ids": ids},
        "rollout": {"kind": "waves", "percents": [25, 100]}, "max_in_flight": 1,
        "gate": {"min_success_percent": 100}, "four_eyes": true,
        "max_retries": 1, "retry_backoff_secs": 1,
        "start_at": chrono::Utc::now() + chrono::Duration::seconds(5)
    });
    for (patch, field) in [
        (
            json!({"rollout": {"kind": "waves", "percents": [50, 40]}}),
            "rollout.percents",
        ),
        (
            json!({"rollout": {"kind": "waves", "percents": [50]}}),
            "rollout.percents",
        ),
        (json!({"max_in_flight": 0}), "max_in_flight"),
        (json!({"target": {}}), "target"),
        (json!({"package_id": Uuid::new_v4()}), "package_id"),
        (
            json!({"target": {"group_ids": [Uuid::new_v4()]}}),
            "target.group_ids",
        ),
        (
            json!({"window": {"timezone": "Mars/Olympus"}}),
            "window.timezone",
        ),
        (json!({"name": " "}), "name"),
    ] {
        let mut spec = base.clone();
        for (k, v) in patch.as_object().unwrap() {
            spec[k] = v.clone();
        }
        let r = c.post("/api/v1/ota/campaigns", &spec).await.unwrap();
        assert_eq!(r.status, 400, "{patch}: {}", r.body);
        assert_eq!(r.error().field.as_deref(), Some(field), "{}", r.body);
    }
    let r = c
        .post(
            "/api/v1/ota/campaigns/target-count",
            &json!({"device_ids": ids}),
        )
        .await
        .unwrap();
    assert_eq!(r.body["devices"], 4, "{}", r.body);

    // Four eyes: its author may not start it; a viewer may not make one.
    let made: Campaign = c
        .post("/api/v1/ota/campaigns", &base)
        .await
        .unwrap()
        .ok()
        .unwrap();
    let r = c
        .post(
            &format!("/api/v1/ota/campaigns/{}/start", made.id),
            &json!({}),
        )
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (403, "four_eyes".into()),
        "{}",
        r.body
    );
    let viewer = server.user(&acme, Role::Viewer).await;
    let r = viewer.post("/api/v1/ota/campaigns", &base).await.unwrap();
    assert_eq!(r.status, 403);
    let operator = server.user(&acme, Role::Operator).await;
    let r = operator
        .post(
            &format!("/api/v1/ota/campaigns/{}/start", made.id),
            &json!({}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 403, "ota.approve is needed");
    let other = server.tenant("Other").await;
    for (m, path) in [
        ("GET", format!("/api/v1/ota/campaigns/{}", made.id)),
        ("GET", format!("/api/v1/ota/campaigns/{}/devices", made.id)),
        ("POST", format!("/api/v1/ota/campaigns/{}/start", made.id)),
        ("POST", format!("/api/v1/ota/campaigns/{}/cancel", made.id)),
    ] {
        let r = if m == "GET" {
            other.admin.get(&path).await.unwrap()
        } else {
            other.admin.post(&path, &json!({})).await.unwrap()
        };
        assert_eq!(r.status, 404, "{m} {path}: {}", r.body);
    }
    let r = approver
        .post(
            &format!("/api/v1/ota/campaigns/{}/start", made.id),
            &json!({}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let running = until(c, made.id, 30, "the target enrolled", |x| x.devices == 4).await;
    assert_eq!(running.approved_by, Some(approver_id(&approver).await));
    let order: Vec<Uuid> = devices_of(c, made.id)
        .await
        .into_iter()
        .map(|d| d.device_id)
        .collect();
    // The first wave's one device fails; the rest would succeed.
    let _bad = simulate(&server, &[tokens[&order[0]].clone()], "fail");
    let rest: Vec<String> = order[1..].iter().map(|id| tokens[id].clone()).collect();
    let _good = simulate(&server, &rest, "succeed");

    let paused = until(c, made.id, 90, "the gate pauses it", |x| {
        x.status == CampaignStatus::Paused
    })
    .await;
    assert!(
        paused
            .reason
            .as_deref()
            .unwrap_or("")
            .starts_with("gate after wave 1"),
        "{paused:?}"
    );
    assert_eq!(n(&paused, OtaState::Failed), 1, "{paused:?}");
    assert_eq!(
        n(&paused, OtaState::Queued),
        3,
        "nothing more was notified: {paused:?}"
    );
    let failed = &devices_of(c, made.id).await[0];
    assert_eq!(
        failed.reason.as_deref(),
        Some("simulated flash failure"),
        "the device's own fw_error: {failed:?}"
    );
    let failed_id = failed.device_id.to_string();
    let got = receiver
        .wait("ota", 30, "the failed device's steps as events", |got| {
            got.iter().any(|r| {
                r.body["data"]["device_id"] == failed_id.as_str()
                    && r.body["data"]["state"] == "FAILED"
            })
        })
        .await;
    assert!(
        got.iter()
            .all(|r| r.verified && r.event_type() == "ota.execution.updated")
    );
    let steps: Vec<&str> = got
        .iter()
        .filter(|r| r.body["data"]["device_id"] == failed_id.as_str())
        .filter_map(|r| r.body["data"]["state"].as_str())
        .collect();
    assert!(
        steps.contains(&"NOTIFIED") && steps.contains(&"QUEUED"),
        "{steps:?}"
    );
    // Tried again once after its backoff, then failed for good.
    assert_eq!(failed.attempts, 2, "{failed:?}");
    assert!(
        failed.history.iter().any(|s| s.state == OtaState::Queued
            && s.reason
                .as_deref()
                .is_some_and(|r| r.contains("retry 1 of 1"))),
        "{failed:?}"
    );

    // Resumed by a person: the second wave runs, one device at a time.
    let r = c
        .post(
            &format!("/api/v1/ota/campaigns/{}/resume", made.id),
            &json!({}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    until(
        c,
        made.id,
        90,
        "a device of the second wave succeeded",
        |x| n(x, OtaState::Succeeded) >= 1,
    )
    .await;
    // Canceled: what waits is canceled and what is under way withdrawn.
    let r = c
        .post(
            &format!("/api/v1/ota/campaigns/{}/cancel", made.id),
            &json!({"reason": "enough for today"}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let over = until(c, made.id, 30, "the campaign wound down", |x| {
        x.finished_at.is_some()
    })
    .await;
    assert_eq!(over.status, CampaignStatus::Canceled);
    assert_eq!(over.reason.as_deref(), Some("enough for today"));
    let open: u64 = [
        OtaState::Queued,
        OtaState::Notified,
        OtaState::Downloading,
        OtaState::Downloaded,
        OtaState::Verified,
        OtaState::Updating,
    ]
    .iter()
    .map(|s| n(&over, *s))
    .sum();
    assert_eq!(open, 0, "{over:?}");
    assert!(n(&over, OtaState::Canceled) >= 1, "{over:?}");
    let r = c
        .post(
            &format!("/api/v1/ota/campaigns/{}/resume", made.id),
            &json!({}),
        )
        .await
        .unwrap();
    assert_eq!((r.status.as_u16(), r.code()), (409, "wrong_status".into()));
}

async fn approver_id(c: &Client) -> Uuid {
    let me: stead_api_types::Me = c.get("/api/v1/me").await.unwrap().ok().unwrap();
    me.id
}

/// Two workers run one dynamic campaign at a rate; one is killed (`kill -9`) midway and started
/// again, and a device joins the group meanwhile. Every device, the late one too, is notified exactly once (its history
/// and its timeline say so) and succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_and_a_crash_notify_each_device_once() {
    // The nodes share the packages' directory (each would otherwise have its own).
    let blobs = tempfile::tempdir().unwrap();
    let url = format!("file://{}", blobs.path().display());
    let mut a = TestServer::start_with(
        Backend::Postgres,
        Options::default().env("STEAD_BLOB_URL", url.clone()),
    )
    .await;
    let b = TestServer::start_with(
        Backend::Postgres,
        Options {
            join: Some(a.shared()),
            ..Options::default()
        }
        .env("STEAD_BLOB_URL", url),
    )
    .await;
    let acme = a.tenant("Acme").await;
    let c = &acme.admin;
    let approver = a.user(&acme, Role::TenantAdmin).await;
    upload(c, "1.0", 1).await;
    let new = upload(c, "2.0", 2).await;
    let (group, tokens) = fleet(c, 12).await;
    // A device that joins the group later: the campaign is dynamic.
    let (late, late_token) = device(c, "late").await;
    let mut all: Vec<String> = tokens.values().cloned().collect();
    all.push(late_token);
    // The devices talk to the node that stays.
    let _fleet = simulate(&b, &all, "succeed");
    let (made, _) = started(
        c,
        &approver,
        json!({
            "name": "rate", "package_id": new.id,
            "target": {"group_ids": [group], "dynamic": true},
            "rollout": {"kind": "rate", "per_minute": 120},
            "max_in_flight": 3
        }),
    )
    .await;
    until(c, made.id, 90, "a few devices updated", |x| {
        n(x, OtaState::Succeeded) >= 3
    })
    .await;
    a.kill9();
    let cb = Client::new(&b.base).with_token(c.token().unwrap());
    let r = cb
        .post(
            &format!("/api/v1/groups/{group}/devices"),
            &json!({"device_ids": [late]}),
        )
        .await
        .unwrap();
    assert!(r.status.is_success(), "{}", r.body);
    // The killed node comes back: two workers again.
    a.restart().await;
    let done = until(
        &cb,
        made.id,
        120,
        "every device, the late one too, updated",
        |x| n(x, OtaState::Succeeded) == 13,
    )
    .await;
    assert_eq!(done.devices, 13, "{done:?}");
    assert_eq!(
        done.status,
        CampaignStatus::Running,
        "a dynamic campaign goes on"
    );
    for d in devices_of(&cb, made.id).await {
        assert_eq!(d.attempts, 1, "{d:?}");
        let notified = d
            .history
            .iter()
            .filter(|s| s.state == OtaState::Notified)
            .count();
        assert_eq!(notified, 1, "{d:?}");
        // Every step the device reported, with its time, not only those a tick saw.
        let steps: Vec<OtaState> = d.history.iter().map(|s| s.state).collect();
        for step in [
            OtaState::Notified,
            OtaState::Downloading,
            OtaState::Downloaded,
            OtaState::Verified,
            OtaState::Updating,
            OtaState::Succeeded,
        ] {
            assert!(steps.contains(&step), "{step:?} in {steps:?}");
        }
        let timeline = cb
            .get(&format!(
                "/api/v1/devices/{}/timeline?limit=200",
                d.device_id
            ))
            .await
            .unwrap()
            .body
            .to_string();
        assert_eq!(
            timeline.matches("firmware pump-fw 2.0 assigned").count(),
            1,
            "{timeline}"
        );
    }
}
