//! Alarms through the real server and real MQTT clients (`mosquitto_pub`): rules on a profile and
//! on a device, each condition kind, hysteresis and stepping, dynamic thresholds, what people do
//! to alarms (acknowledge, clear, assign, comment, in bulk), and bad input.

use serde_json::{Value, json};
use std::future::Future;
use stead_api_types::{
    Alarm, AlarmCounts, AlarmDetail, AlarmPage, AlarmRule, AlarmSeverity, Device, Role,
};
use stead_e2e::Client;

use uuid::Uuid;

use crate::harness::{Backend, TestServer};
use crate::mqtt::{device, eventually, mosquitto_pub, timeline};
use crate::on_both_backends;

on_both_backends!(
    a_profile_rule_raises_steps_and_clears_with_hysteresis,
    duration_repeating_and_dynamic_thresholds,
    people_acknowledge_clear_assign_and_comment,
    bad_rules_name_their_field_and_other_tenants_see_nothing,
    no_data_and_schedules,
    notifications_by_mail_in_app_and_webhook,
    the_device_list_shows_status_and_worst_alarm,
    fleet_health_at_a_glance,
);

fn publish(server: &TestServer, token: &str, payload: Value) {
    let (ok, out) = mosquitto_pub(
        server.mqtt_port(),
        &[
            "-u",
            token,
            "-q",
            "1",
            "-t",
            "v1/devices/me/telemetry",
            "-m",
            &payload.to_string(),
        ],
    );
    assert!(ok, "mosquitto_pub failed: {out}");
}

async fn profile_of(c: &Client, id: Uuid) -> Uuid {
    let d: Device = c
        .get(&format!("/api/v1/devices/{id}"))
        .await
        .unwrap()
        .ok()
        .unwrap();
    d.profile_id
}

async fn rule(c: &Client, body: Value) -> AlarmRule {
    let r = c.post("/api/v1/alarm-rules", &body).await.unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    r.ok().unwrap()
}

async fn alarms_of(c: &Client, device: Uuid) -> Vec<Alarm> {
    let page: AlarmPage = c
        .get(&format!("/api/v1/alarms?device={device}"))
        .await
        .unwrap()
        .ok()
        .unwrap();
    page.items
}

/// Waits until one of the device's alarms satisfies `f`; answers it.
async fn wait_alarm(c: &Client, device: Uuid, what: &str, f: impl Fn(&Alarm) -> bool) -> Alarm {
    let mut found = None;
    for _ in 0..200 {
        if let Some(a) = alarms_of(c, device).await.into_iter().find(|a| f(a)) {
            found = Some(a);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    match found {
        Some(a) => a,
        None => panic!(
            "never happened: {what}; the device's alarms: {:?}",
            alarms_of(c, device).await
        ),
    }
}

async fn detail(c: &Client, id: Uuid) -> AlarmDetail {
    c.get(&format!("/api/v1/alarms/{id}"))
        .await
        .unwrap()
        .ok()
        .unwrap()
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

async fn a_profile_rule_raises_steps_and_clears_with_hysteresis(backend: Backend) {
    let server = TestServer::start(backend).await;
    let acme = server.tenant("Acme").await;
    let c = &acme.admin;
    let (id, token) = device(c, "pump-1").await;
    let profile = profile_of(c, id).await;
    rule(
        c,
        json!({
            "alarm_type": "overheat",
            "profile_id": profile,
            "create": {
                "critical": {"expr": {"test": {"key": "temperature", "op": ">", "value": 90}}},
                "major": {"expr": {"test": {"key": "temperature", "op": ">", "value": 80}}}
            },
            "clear": {"expr": {"test": {"key": "temperature", "op": "<", "value": 75}}}
        }),
    )
    .await;

    publish(&server, &token, json!({"temperature": 70}));
    publish(&server, &token, json!({"temperature": 85}));
    let raised = wait_alarm(c, id, "major raised", |a| {
        a.active && a.severity == AlarmSeverity::Major
    })
    .await;
    assert_eq!(raised.alarm_type, "overheat");
    assert_eq!(raised.device_name, "pump-1");
    assert_eq!(raised.details["temperature"], json!(85));
    // Repeated messages of an active alarm change nothing.
    publish(&server, &token, json!({"temperature": 86}));
    publish(&server, &token, json!({"temperature": 95}));
    wait_alarm(c, id, "stepped up to critical", |a| {
        a.id == raised.id && a.severity == AlarmSeverity::Critical
    })
    .await;
    publish(&server, &token, json!({"temperature": 85}));
    wait_alarm(c, id, "stepped down to major", |a| {
        a.id == raised.id && a.severity == AlarmSeverity::Major
    })
    .await;
    // Above the clear threshold, below the raise one: it stays (hysteresis).
    publish(&server, &token, json!({"temperature": 78}));
    publish(&server, &token, json!({"humidity": 40}));
    let counts: AlarmCounts = c
        .get(&format!("/api/v1/alarms/counts?device={id}"))
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!((counts.major, counts.total()), (1, 1), "{counts:?}");
    publish(&server, &token, json!({"temperature": 70}));
    let cleared = wait_alarm(c, id, "cleared", |a| a.id == raised.id && !a.active).await;
    assert!(cleared.cleared_at.is_some());
    assert!(cleared.ended_at.is_none(), "not acknowledged yet");
    let history = detail(c, raised.id).await.history;
    let kinds: Vec<&str> = history.iter().map(|h| h.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["raised", "severity_changed", "severity_changed", "cleared"]
    );
    assert!(history.iter().all(|h| h.actor == "rule"));
    assert_eq!(alarms_of(c, id).await.len(), 1, "one alarm, stepped");

    // A new crossing raises a new alarm.
    publish(&server, &token, json!({"temperature": 99}));
    let second = wait_alarm(c, id, "raised again", |a| a.active).await;
    assert_ne!(second.id, raised.id);
    assert_eq!(second.severity, AlarmSeverity::Critical);

    // Raising, stepping and clearing are on the device's timeline.
    eventually("alarm entries on the timeline", || async {
        timeline(c, id)
            .await
            .iter()
            .filter(|e| e.kind == "alarm")
            .count()
            >= 5
    })
    .await;
}

async fn duration_repeating_and_dynamic_thresholds(backend: Backend) {
    let server = TestServer::start(backend).await;
    let acme = server.tenant("Acme").await;
    let c = &acme.admin;

    // Duration: above 50 for 10 s by the messages' own timestamps; an interruption restarts it.
    let (d1, t1) = device(c, "boiler").await;
    rule(
        c,
        json!({
            "alarm_type": "sustained",
            "device_id": d1,
            "create": {"minor": {"kind": "duration", "secs": 10, "expr": {"test": {"key": "p", "op": ">", "value": 50}}}}
        }),
    )
    .await;
    let base = now_ms() - 60_000;
    for (dt, p) in [(0, 60), (6_000, 61), (8_000, 40), (9_000, 62), (15_000, 63)] {
        publish(&server, &t1, json!({"ts": base + dt, "values": {"p": p}}));
    }
    // 9 s → 15 s is 6 s: not yet (the 8 s message interrupted the first run).
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        alarms_of(c, d1).await.is_empty(),
        "an interrupted duration raised"
    );
    publish(
        &server,
        &t1,
        json!({"ts": base + 19_000, "values": {"p": 64}}),
    );
    wait_alarm(c, d1, "duration met", |a| {
        a.active && a.alarm_type == "sustained"
    })
    .await;

    // Repeating: three messages in a row.
    let (d2, t2) = device(c, "door").await;
    rule(
        c,
        json!({
            "alarm_type": "open",
            "device_id": d2,
            "create": {"warning": {"kind": "repeating", "count": 3, "expr": {"test": {"key": "state", "op": "equals", "value": "open"}}}}
        }),
    )
    .await;
    for s in ["open", "open", "closed", "open", "open"] {
        publish(&server, &t2, json!({"state": s}));
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(alarms_of(c, d2).await.is_empty(), "two in a row raised");
    publish(&server, &t2, json!({"state": "open"}));
    wait_alarm(c, d2, "third in a row", |a| {
        a.active && a.severity == AlarmSeverity::Warning
    })
    .await;

    // A per-device set point from a server attribute, with a default for devices without one.
    let (d3, t3) = device(c, "fridge-a").await;
    let (d4, t4) = device(c, "fridge-b").await;
    for d in [d3, d4] {
        rule(
            c,
            json!({
                "alarm_type": "warm",
                "device_id": d,
                "create": {"major": {"expr": {"test": {"key": "t", "op": ">", "value": {"attribute": "max_t", "scope": "server", "default": 8}}}}}
            }),
        )
        .await;
    }
    let r = c
        .post(
            &format!("/api/v1/devices/{d3}/attributes/server"),
            &json!({"max_t": 4}),
        )
        .await
        .unwrap();
    assert!(r.status.is_success(), "{}", r.body);
    publish(&server, &t3, json!({"t": 5}));
    publish(&server, &t4, json!({"t": 5}));
    wait_alarm(c, d3, "above its own set point", |a| a.active).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        alarms_of(c, d4).await.is_empty(),
        "5 is under the default 8"
    );
    publish(&server, &t4, json!({"t": 9}));
    wait_alarm(c, d4, "above the default", |a| a.active).await;
}

async fn people_acknowledge_clear_assign_and_comment(backend: Backend) {
    let server = TestServer::start(backend).await;
    let acme = server.tenant("Acme").await;
    let c = &acme.admin;
    let viewer = server.user(&acme, Role::Viewer).await;
    let operator = server.user(&acme, Role::Operator).await;
    let mut ids = Vec::new();
    for name in ["s-1", "s-2"] {
        let (id, token) = device(c, name).await;
        rule(
            c,
            json!({
                "alarm_type": "low_battery",
                "device_id": id,
                "create": {"warning": {"expr": {"test": {"key": "battery", "op": "<", "value": 10}}}}
            }),
        )
        .await;
        publish(&server, &token, json!({"battery": 5}));
        ids.push((id, wait_alarm(c, id, "raised", |a| a.active).await.id));
    }
    let (_, first) = ids[0];

    // Someone who sees one group's devices sees their alarms only.
    let group: Value = c
        .post("/api/v1/groups", &json!({"name": "north"}))
        .await
        .unwrap()
        .ok()
        .unwrap();
    let r = c
        .post(
            &format!("/api/v1/groups/{}/devices", group["id"].as_str().unwrap()),
            &json!({"device_ids": [ids[0].0]}),
        )
        .await
        .unwrap();
    assert!(r.status.is_success(), "{}", r.body);
    let (_, north) = crate::access::member(
        &server,
        &acme,
        json!([{"role": {"builtin": "viewer"}, "groups": [group["id"]]}]),
    )
    .await;
    let theirs: AlarmPage = north.get("/api/v1/alarms").await.unwrap().ok().unwrap();
    assert_eq!(
        theirs.items.iter().map(|a| a.id).collect::<Vec<_>>(),
        [first],
        "only the group's device's alarm"
    );
    let r = north
        .get(&format!("/api/v1/alarms/{}", ids[1].1))
        .await
        .unwrap();
    assert_eq!(r.status, 404, "{}", r.body);

    // A viewer reads but may not acknowledge.
    let seen: AlarmPage = viewer
        .get("/api/v1/alarms?status=active")
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(seen.total, 2);
    let r = viewer
        .post(
            &format!("/api/v1/alarms/{first}/actions"),
            &json!({"action": "acknowledge"}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 403, "{}", r.body);

    let act = |action: Value| {
        let op = &operator;
        async move {
            let r = op
                .post(&format!("/api/v1/alarms/{first}/actions"), &action)
                .await
                .unwrap();
            assert_eq!(r.status, 200, "{action}: {}", r.body);
            r.ok::<Alarm>().unwrap()
        }
    };
    let acked = act(json!({"action": "acknowledge"})).await;
    assert!(acked.acknowledged && acked.active);
    let me: Value = operator.get("/api/v1/me").await.unwrap().ok().unwrap();
    let me_id: Uuid = serde_json::from_value(me["id"].clone()).unwrap();
    let assigned = act(json!({"action": "assign", "user_id": me_id})).await;
    assert_eq!(assigned.assignee_id, Some(me_id));
    assert!(assigned.assignee_email.is_some());
    act(json!({"action": "comment", "text": "battery swap booked"})).await;
    let cleared = act(json!({"action": "clear"})).await;
    assert!(!cleared.active);
    assert!(
        cleared.ended_at.is_some(),
        "cleared and acknowledged: ended"
    );
    let history = detail(c, first).await.history;
    let kinds: Vec<&str> = history.iter().map(|h| h.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["raised", "acknowledged", "assigned", "commented", "cleared"]
    );
    assert_eq!(history[3].text.as_deref(), Some("battery swap booked"));
    assert!(history[1].actor.contains('@'), "a person: {:?}", history[1]);

    // Every action is audited.
    let audit: Value = c
        .get("/api/v1/audit?per_page=100")
        .await
        .unwrap()
        .ok()
        .unwrap();
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for a in [
        "alarm.acknowledge",
        "alarm.assign",
        "alarm.comment",
        "alarm.clear",
        "alarm_rule.create",
    ] {
        assert!(actions.contains(&a), "{a} not audited: {actions:?}");
    }

    // Bulk: acknowledge both; the first already was.
    let r = operator
        .post(
            "/api/v1/alarms/bulk",
            &json!({"ids": [ids[0].1, ids[1].1, Uuid::new_v4()], "action": "acknowledge"}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let result: Value = r.ok().unwrap();
    assert_eq!(result["changed"], 2, "{result}");
    assert_eq!(result["failed"].as_object().unwrap().len(), 1, "{result}");
    let unacked: AlarmPage = c
        .get("/api/v1/alarms?status=unacknowledged")
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(unacked.total, 0);
}

async fn bad_rules_name_their_field_and_other_tenants_see_nothing(backend: Backend) {
    let server = TestServer::start(backend).await;
    let acme = server.tenant("Acme").await;
    let other = server.tenant("Other").await;
    let c = &acme.admin;
    let (id, token) = device(c, "probe").await;
    let profile = profile_of(c, id).await;
    let cond = |v: Value| json!({"alarm_type": "x", "profile_id": profile, "create": {"major": v}});
    for (body, status, code, field) in [
        (
            cond(json!({"expr": {"test": {"key": "t", "op": "~", "value": 1}}})),
            400,
            "invalid_field",
            "create.major.expr.test.op",
        ),
        (
            cond(json!({"expr": {"test": {"key": "t", "op": ">", "value": "hot"}}})),
            400,
            "invalid_rule",
            "create.major.expr.test.value",
        ),
        (
            cond(
                json!({"kind": "duration", "expr": {"test": {"key": "t", "op": ">", "value": 1}}}),
            ),
            400,
            "missing_field",
            "create.major.secs",
        ),
        (
            cond(json!({"expr": {"test": {"op": ">", "value": 1}}})),
            400,
            "missing_field",
            "create.major.expr.test.key",
        ),
        (
            json!({"alarm_type": "x", "create": {"major": {"expr": {"test": {"key": "t", "op": ">", "value": 1}}}}}),
            400,
            "invalid_rule",
            "profile_id",
        ),
        (
            json!({"alarm_type": "x", "profile_id": Uuid::new_v4(), "create": {"major": {"expr": {"test": {"key": "t", "op": ">", "value": 1}}}}}),
            400,
            "unknown_profile",
            "profile_id",
        ),
    ] {
        let r = c.post("/api/v1/alarm-rules", &body).await.unwrap();
        assert_eq!(r.status, status, "{body}: {}", r.body);
        assert_eq!(r.code(), code, "{body}: {}", r.body);
        assert_eq!(r.body["field"], field, "{body}: {}", r.body);
    }

    // A rule on a key that never arrives does nothing harmful.
    let quiet = rule(
        c,
        json!({"alarm_type": "never", "profile_id": profile, "create": {"critical": {"expr": {"test": {"key": "absent", "op": ">", "value": 1}}}}}),
    )
    .await;
    let dup = c
        .post(
            "/api/v1/alarm-rules",
            &json!({"alarm_type": "never", "profile_id": profile, "create": {"minor": {"expr": {"test": {"key": "y", "op": ">", "value": 1}}}}}),
        )
        .await
        .unwrap();
    assert_eq!(dup.status, 409, "{}", dup.body);
    rule(
        c,
        json!({"alarm_type": "hot", "profile_id": profile, "create": {"critical": {"expr": {"test": {"key": "t", "op": ">", "value": 1}}}}}),
    )
    .await;
    publish(&server, &token, json!({"t": 5, "other": "x"}));
    let alarm = wait_alarm(c, id, "hot raised", |a| a.active).await;
    assert_eq!(
        alarms_of(c, id).await.len(),
        1,
        "the absent key raised nothing"
    );

    // Another tenant sees none of it.
    let o = &other.admin;
    for path in [
        format!("/api/v1/alarms/{}", alarm.id),
        format!("/api/v1/alarm-rules/{}", quiet.id),
    ] {
        let r = o.get(&path).await.unwrap();
        assert_eq!(r.status, 404, "{path}: {}", r.body);
    }
    let r = o
        .post(
            &format!("/api/v1/alarms/{}/actions", alarm.id),
            &json!({"action": "clear"}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 404, "{}", r.body);
    let r = o
        .put(
            &format!("/api/v1/alarm-rules/{}", quiet.id),
            &json!({"alarm_type": "never", "profile_id": profile, "create": {"critical": {"expr": {"test": {"key": "absent", "op": ">", "value": 1}}}}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 404, "{}", r.body);
    let theirs: AlarmPage = o.get("/api/v1/alarms").await.unwrap().ok().unwrap();
    assert_eq!(theirs.total, 0);
    let r = o
        .post(
            "/api/v1/alarm-rules",
            &json!({"alarm_type": "steal", "device_id": id, "create": {"critical": {"expr": {"test": {"key": "t", "op": ">", "value": 1}}}}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.code(), "unknown_device");
}

async fn node_of(first: &TestServer) -> TestServer {
    TestServer::start_with(
        Backend::Postgres,
        crate::harness::Options {
            join: Some(first.shared()),
            ..crate::harness::Options::default()
        },
    )
    .await
}

fn http_telemetry(server: &TestServer, token: &str, values: Value) -> impl Future<Output = ()> {
    let client = server.client();
    let path = format!("/api/v1/{token}/telemetry");
    async move {
        let r = client.post(&path, &values).await.unwrap();
        assert!(r.status.is_success(), "{}", r.body);
    }
}

/// Two nodes evaluate the same device at once (HTTP device API on both): one active alarm, raised
/// once, whatever the timing; the database's unique index decides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_raising_at_once_make_one_alarm() {
    let a = TestServer::start(Backend::Postgres).await;
    let acme = a.tenant("Acme").await;
    let c = &acme.admin;
    let (id, token) = device(c, "burst").await;
    rule(
        c,
        json!({"alarm_type": "burst", "device_id": id,
               "create": {"critical": {"expr": {"test": {"key": "v", "op": ">", "value": 10}}}}}),
    )
    .await;
    // Started after the rule exists, so both nodes know it.
    let b = node_of(&a).await;
    for round in 0..5 {
        let mut sends = Vec::new();
        for i in 0..10 {
            let node = if i % 2 == 0 { &a } else { &b };
            sends.push(http_telemetry(node, &token, json!({"v": 11 + i + round})));
        }
        futures_util::future::join_all(sends).await;
        let alarm = wait_alarm(c, id, "raised", |al| al.active).await;
        // Let both engines finish what they were handed.
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let all = alarms_of(c, id).await;
        assert_eq!(all.iter().filter(|x| x.active).count(), 1, "{all:?}");
        let raised = detail(c, alarm.id)
            .await
            .history
            .iter()
            .filter(|h| h.kind == "raised")
            .count();
        assert_eq!(raised, 1);
        // Cleared by a person: the next round raises a new one, again once.
        let r = c
            .post(
                &format!("/api/v1/alarms/{}/actions", alarm.id),
                &json!({"action": "clear"}),
            )
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
    }
    assert_eq!(alarms_of(c, id).await.len(), 5, "one alarm per round");
}

/// A duration rule's progress is in Redis: the device moves to another node halfway, and the
/// first node is killed and started again; the alarm still raises when the time is up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duration_continues_on_another_node_and_across_a_restart() {
    let mut a = TestServer::start(Backend::Postgres).await;
    let acme = a.tenant("Acme").await;
    let c = acme.admin.clone();
    let (id, token) = device(&c, "mover").await;
    rule(
        &c,
        json!({"alarm_type": "long_high", "device_id": id,
               "create": {"major": {"kind": "duration", "secs": 20,
                                    "expr": {"test": {"key": "p", "op": ">", "value": 50}}}}}),
    )
    .await;
    let b = node_of(&a).await;
    // People ask node B: node A's address changes when it starts again.
    let c = b.client().with_token(c.token().unwrap());
    let base = now_ms() - 120_000;
    publish(&a, &token, json!({"ts": base, "values": {"p": 60}}));
    publish(
        &b,
        &token,
        json!({"ts": base + 10_000, "values": {"p": 61}}),
    );
    a.kill9();
    a.restart().await;
    publish(
        &a,
        &token,
        json!({"ts": base + 15_000, "values": {"p": 62}}),
    );
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    assert!(alarms_of(&c, id).await.is_empty(), "15 s of 20: too early");
    publish(
        &b,
        &token,
        json!({"ts": base + 20_000, "values": {"p": 63}}),
    );
    let alarm = wait_alarm(&c, id, "raised after 20 s of messages", |al| al.active).await;
    assert_eq!(alarm.severity, AlarmSeverity::Major);
}

/// The embedded default keeps rule progress in process: a graceful restart saves it and the
/// next start reads it back, so a pending duration still raises on time. After a crash it starts
/// again (stale progress could raise what the messages since do not justify).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_restart_keeps_a_pending_duration() {
    let mut server = TestServer::start(Backend::Sqlite).await;
    let acme = server.tenant("Acme").await;
    let (id, token) = device(&acme.admin, "kettle").await;
    let token_of_admin = acme.admin.token().unwrap().to_owned();
    rule(
        &acme.admin,
        json!({"alarm_type": "long_high", "device_id": id,
               "create": {"major": {"kind": "duration", "secs": 20,
                                    "expr": {"test": {"key": "p", "op": ">", "value": 50}}}}}),
    )
    .await;
    let base = now_ms() - 120_000;
    publish(&server, &token, json!({"ts": base, "values": {"p": 60}}));
    publish(
        &server,
        &token,
        json!({"ts": base + 10_000, "values": {"p": 61}}),
    );
    server.sigterm();
    assert!(
        server
            .wait_exit(std::time::Duration::from_secs(30))
            .is_some(),
        "stopped within 30 s"
    );
    assert!(
        server.log_text().contains("alarm rules' progress saved"),
        "{}",
        server.log_tail(30)
    );
    server.restart().await;
    let c = server.client().with_token(&token_of_admin);
    publish(
        &server,
        &token,
        json!({"ts": base + 20_000, "values": {"p": 62}}),
    );
    let alarm = wait_alarm(&c, id, "raised 20 s after the first message", |a| a.active).await;
    assert_eq!(alarm.severity, AlarmSeverity::Major);
    let detail = detail(&c, alarm.id).await;
    assert_eq!(detail.alarm.started_at.timestamp_millis(), base + 20_000);

    // A crash saves nothing: the next start begins the duration afresh.
    publish(
        &server,
        &token,
        json!({"ts": base + 21_000, "values": {"p": 10}}),
    );
    let (id2, token2) = device(&c, "kettle-2").await;
    rule(
        &c,
        json!({"alarm_type": "long_high", "device_id": id2,
               "create": {"major": {"kind": "duration", "secs": 20,
                                    "expr": {"test": {"key": "p", "op": ">", "value": 50}}}}}),
    )
    .await;
    publish(&server, &token2, json!({"ts": base, "values": {"p": 60}}));
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    server.kill9();
    server.restart().await;
    let c = server.client().with_token(&token_of_admin);
    publish(
        &server,
        &token2,
        json!({"ts": base + 20_000, "values": {"p": 62}}),
    );
    publish(
        &server,
        &token2,
        json!({"ts": base + 30_000, "values": {"p": 63}}),
    );
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    assert!(
        alarms_of(&c, id2).await.is_empty(),
        "10 s of 20 since the crash: too early"
    );
}

/// No data: a device silent for the rule's time raises (swept by the worker); data clears it.
/// A schedule that excludes now raises nothing.
async fn no_data_and_schedules(backend: Backend) {
    let server = TestServer::start(backend).await;
    let acme = server.tenant("Acme").await;
    let c = &acme.admin;
    let (id, token) = device(c, "quiet").await;
    rule(
        c,
        json!({"alarm_type": "silent", "device_id": id,
               "create": {"warning": {"kind": "no_data", "secs": 2, "key": "heartbeat"}}}),
    )
    .await;
    publish(&server, &token, json!({"heartbeat": 1}));
    let silent = wait_alarm_within(c, id, 15, |a| a.active && a.alarm_type == "silent").await;
    assert_eq!(silent.severity, AlarmSeverity::Warning);
    publish(&server, &token, json!({"heartbeat": 2}));
    wait_alarm(c, id, "data cleared it", |a| a.id == silent.id && !a.active).await;

    // A rule limited to hours that exclude now (in UTC) does not raise.
    let hour = chrono::Timelike::hour(&chrono::Utc::now()) as u8;
    let (from, to) = ((hour + 2) % 24, (hour + 3) % 24);
    let (id2, token2) = device(c, "office-hours").await;
    rule(
        c,
        json!({"alarm_type": "after_hours", "device_id": id2,
               "schedule": {"timezone": "UTC", "from_hour": from, "to_hour": if to == 0 { 24 } else { to }},
               "create": {"minor": {"expr": {"test": {"key": "door", "op": "equals", "value": "open"}}}}}),
    )
    .await;
    publish(&server, &token2, json!({"door": "open"}));
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    assert!(
        alarms_of(c, id2).await.is_empty(),
        "raised outside its schedule"
    );
}

/// As `wait_alarm`, for up to `secs` seconds.
async fn wait_alarm_within(
    c: &Client,
    device: Uuid,
    secs: u64,
    f: impl Fn(&Alarm) -> bool,
) -> Alarm {
    let started = std::time::Instant::now();
    while started.elapsed() < std::time::Duration::from_secs(secs) {
        if let Some(a) = alarms_of(c, device).await.into_iter().find(|a| f(a)) {
            return a;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    panic!(
        "no such alarm within {secs} s: {:?}",
        alarms_of(c, device).await
    );
}

/// The console's live stream: the counts first, then each change and the new counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_tells_of_every_change() {
    use futures_util::StreamExt as _;
    let server = TestServer::start(Backend::Sqlite).await;
    let acme = server.tenant("Acme").await;
    let c = &acme.admin;
    let (id, token) = device(c, "streamed").await;
    rule(
        c,
        json!({"alarm_type": "hot", "device_id": id,
               "create": {"major": {"expr": {"test": {"key": "t", "op": ">", "value": 80}}}}}),
    )
    .await;
    let mut body = reqwest::Client::new()
        .get(format!("{}/api/v1/alarms/stream", server.base))
        .bearer_auth(c.token().unwrap())
        .send()
        .await
        .unwrap()
        .bytes_stream();
    let mut text = String::new();
    let mut next_event = async || -> (String, Value) {
        loop {
            if let Some(end) = text.find("\n\n") {
                let block: String = text.drain(..end + 2).collect();
                if block.starts_with(':') {
                    continue;
                }
                let name = block
                    .lines()
                    .find_map(|l| l.strip_prefix("event: "))
                    .unwrap_or_default()
                    .to_owned();
                let data = block
                    .lines()
                    .find_map(|l| l.strip_prefix("data: "))
                    .unwrap_or("null");
                return (name, serde_json::from_str(data).unwrap());
            }
            let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), body.next())
                .await
                .expect("an event within 10 s")
                .expect("the stream is open")
                .unwrap();
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    };
    let (name, counts) = next_event().await;
    assert_eq!(
        (name.as_str(), counts["major"].as_u64()),
        ("counts", Some(0))
    );
    publish(&server, &token, json!({"t": 90}));
    let (name, alarm) = next_event().await;
    assert_eq!(name, "alarm");
    assert_eq!(alarm["alarm_type"], "hot");
    assert_eq!(alarm["active"], true);
    let (name, counts) = next_event().await;
    assert_eq!(
        (name.as_str(), counts["major"].as_u64()),
        ("counts", Some(1))
    );
    let r = c
        .post(
            &format!("/api/v1/alarms/{}/actions", alarm["id"].as_str().unwrap()),
            &json!({"action": "acknowledge"}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let (name, alarm) = next_event().await;
    assert_eq!(
        (name.as_str(), alarm["acknowledged"].as_bool()),
        ("alarm", Some(true))
    );
    let (_, counts) = next_event().await;
    assert_eq!(counts["unacknowledged"].as_u64(), Some(0));
}

/// A person's id and e-mail, through `/me`.
async fn whoami(c: &Client) -> (Uuid, String) {
    let me: Value = c.get("/api/v1/me").await.unwrap().ok().unwrap();
    (
        serde_json::from_value(me["id"].clone()).unwrap(),
        me["email"].as_str().unwrap().to_owned(),
    )
}

async fn bell(c: &Client) -> stead_api_types::NotificationPage {
    c.get("/api/v1/notifications").await.unwrap().ok().unwrap()
}

/// Notifications on changes only: e-mail (a real SMTP server), in-app with read and unread, and
/// the alarm's event to a webhook endpoint verified with the Standard Webhooks library; repeated
/// messages of an active alarm send nothing.
async fn notifications_by_mail_in_app_and_webhook(backend: Backend) {
    let mailbox = crate::mail::Mailbox::start().await;
    let mut extra: Vec<(String, String)> = mailbox.env();
    extra.push((
        "STEAD_WEBHOOK_ALLOW_PRIVATE_ADDRESSES".into(),
        "true".into(),
    ));
    let extra: Vec<(&str, &str)> = extra
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let server = crate::webhooks::server(backend, &extra).await;
    let acme = server.tenant("Acme").await;
    let c = &acme.admin;
    let operator = server.user(&acme, Role::Operator).await;
    let (op_id, op_email) = whoami(&operator).await;
    let receiver = crate::webhooks::Receiver::start().await;
    let hook = receiver
        .hook(
            c,
            "alarms",
            json!({"event_types": ["device.deleted"]}),
            json!({}),
        )
        .await;
    let (id, token) = device(c, "pump-7").await;
    rule(
        c,
        json!({"alarm_type": "overheat", "device_id": id,
               "create": {"major": {"expr": {"test": {"key": "t", "op": ">", "value": 80}}}}}),
    )
    .await;
    let r = c
        .post(
            "/api/v1/notification-rules",
            &json!({"name": "Overheat to the floor", "channels": ["in_app", "email", "webhook"],
                    "webhook_id": hook.endpoint.id, "alarm_types": ["overheat"],
                    "recipients": {"users": [op_id], "roles": ["tenant_admin"]}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);

    publish(&server, &token, json!({"t": 85}));
    let mail = mailbox.wait_for(&op_email).await;
    assert!(
        mail.subject.contains("overheat raised on pump-7"),
        "{}",
        mail.subject
    );
    assert!(mail.subject.starts_with("[MAJOR]"), "{}", mail.subject);
    mailbox.wait_for("admin@acme.example.com").await;
    let got = receiver
        .wait("alarms", 15, "the alarm's event", |r| {
            r.iter().any(|r| r.event_type() == "alarm.raised")
        })
        .await;
    assert!(got.iter().all(|r| r.verified), "{got:?}");
    let inbox = bell(&operator).await;
    assert_eq!((inbox.total, inbox.unread), (1, 1), "{inbox:?}");
    assert!(inbox.items[0].title.contains("pump-7"));

    // Repeated messages of the active alarm: nothing more.
    publish(&server, &token, json!({"t": 86}));
    publish(&server, &token, json!({"t": 87}));
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(mailbox.to(&op_email).len(), 1);
    assert_eq!(bell(&operator).await.total, 1);

    // Acknowledged: said once more.
    let alarm = wait_alarm(c, id, "raised", |a| a.active).await;
    let r = c
        .post(
            &format!("/api/v1/alarms/{}/actions", alarm.id),
            &json!({"action": "acknowledge"}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let mail = mailbox.wait_for_nth(&op_email, 2).await;
    assert!(mail.subject.contains("acknowledged"), "{}", mail.subject);
    let inbox = bell(&operator).await;
    assert_eq!((inbox.total, inbox.unread), (2, 2));
    let r = operator
        .post(
            &format!("/api/v1/notifications/{}/read", inbox.items[0].id),
            &json!({}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(bell(&operator).await.unread, 1);
    // Someone else's notification is not found.
    let r = c
        .post(
            &format!("/api/v1/notifications/{}/read", inbox.items[1].id),
            &json!({}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 404, "{}", r.body);
    operator
        .post("/api/v1/notifications/read", &json!({}))
        .await
        .unwrap();
    assert_eq!(bell(&operator).await.unread, 0);

    // Bad rules name their field.
    for (body, field) in [
        (
            json!({"name": "x", "channels": [], "recipients": {"roles": ["operator"]}}),
            "channels",
        ),
        (
            json!({"name": "x", "channels": ["webhook"], "recipients": {"roles": ["operator"]}}),
            "webhook_id",
        ),
        (
            json!({"name": "x", "channels": ["in_app"], "recipients": {}}),
            "recipients",
        ),
        (
            json!({"name": "x", "channels": ["in_app"], "recipients": {"users": [Uuid::new_v4()]}}),
            "recipients",
        ),
        (
            json!({"name": "x", "channels": ["in_app"], "recipients": {"roles": ["operator"]}, "escalate_after_secs": 60}),
            "escalate_to",
        ),
    ] {
        let r = c.post("/api/v1/notification-rules", &body).await.unwrap();
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert_eq!(r.body["field"], field, "{body}: {}", r.body);
    }
}

/// Many devices raising one type within a rule's window make one notification naming them all;
/// a silenced device is left out (its alarm still recorded); an alarm left unacknowledged past the
/// rule's time is escalated, once, and an acknowledged one is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grouping_silences_and_escalation() {
    let server = TestServer::start(Backend::Sqlite).await;
    let acme = server.tenant("Acme").await;
    let c = &acme.admin;
    let operator = server.user(&acme, Role::Operator).await;
    let (op_id, _) = whoami(&operator).await;
    let (admin_id, _) = whoami(c).await;
    let mut devices = Vec::new();
    for i in 0..6 {
        devices.push(device(c, &format!("fridge-{i}")).await);
    }
    let profile = profile_of(c, devices[0].0).await;
    rule(
        c,
        json!({"alarm_type": "warm", "profile_id": profile,
               "create": {"minor": {"expr": {"test": {"key": "t", "op": ">", "value": 8}}}}}),
    )
    .await;
    for body in [
        json!({"name": "Grouped", "channels": ["in_app"], "changes": ["raised"],
               "recipients": {"users": [admin_id]}, "group_window_secs": 10}),
        json!({"name": "Escalation", "channels": ["in_app"], "changes": ["cleared"],
               "recipients": {"users": [admin_id]},
               "escalate_after_secs": 8, "escalate_to": {"users": [op_id]}}),
    ] {
        let r = c.post("/api/v1/notification-rules", &body).await.unwrap();
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let until = chrono::Utc::now() + chrono::Duration::hours(1);
    let r = c
        .post(
            "/api/v1/silences",
            &json!({"device_id": devices[5].0, "ends_at": until, "reason": "being repaired"}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);

    // The burst: six devices well within the 10 s window, however slow the machine. The first
    // device's alarm is acknowledged as soon as it exists (long before the 8 s escalation).
    publish(&server, &devices[0].1, json!({"t": 12}));
    wait_alarm(c, devices[0].0, "raised", |a| a.active).await;
    let first = alarms_of(c, devices[0].0).await.remove(0);
    let r = c
        .post(
            &format!("/api/v1/alarms/{}/actions", first.id),
            &json!({"action": "acknowledge"}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    for (_, token) in &devices[1..] {
        publish(&server, token, json!({"t": 12}));
    }
    for (id, _) in &devices {
        wait_alarm(c, *id, "raised", |a| a.active).await;
    }

    let mut grouped = None;
    for _ in 0..200 {
        let inbox = bell(c).await;
        if let Some(n) = inbox.items.iter().find(|n| n.title.contains("devices")) {
            grouped = Some((inbox.total, n.clone()));
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (total, n) = grouped.expect("a grouped notification within 20 s");
    assert_eq!(total, 1, "one notification for the burst");
    assert!(n.title.contains("warm raised on 5 devices"), "{}", n.title);
    for i in 0..5 {
        assert!(n.body.contains(&format!("fridge-{i}")), "{}", n.body);
    }
    assert!(
        !n.body.contains("fridge-5"),
        "the silenced device: {}",
        n.body
    );
    let recorded = alarms_of(c, devices[5].0).await;
    assert_eq!(recorded.len(), 1, "still recorded");
    assert!(recorded[0].silenced, "shown as silenced");
    assert!(!alarms_of(c, devices[1].0).await[0].silenced);

    // Escalated after 8 s: the four unacknowledged, unsilenced alarms, each once.
    for _ in 0..200 {
        if bell(&operator).await.items.len() >= 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // A few more sweeps: each alarm is escalated once, never again.
    tokio::time::sleep(std::time::Duration::from_millis(2000)).await;
    let escalated = bell(&operator).await.items;
    let mut names: Vec<String> = escalated
        .iter()
        .map(|n| {
            assert!(n.title.contains("not acknowledged in time"), "{}", n.title);
            n.title.rsplit(' ').next().unwrap().to_owned()
        })
        .collect();
    names.sort();
    assert_eq!(names, ["fridge-1", "fridge-2", "fridge-3", "fridge-4"]);
}

/// The rule editor's preview: a rule run over a device's stored data says when it would have
/// raised, stepped and cleared, before it exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preview_replays_stored_data() {
    let server = TestServer::start(Backend::Sqlite).await;
    let acme = server.tenant("Acme").await;
    let c = &acme.admin;
    let (id, token) = device(c, "history").await;
    let base = now_ms() - 3_600_000;
    let series = [70, 85, 95, 85, 78, 70, 88];
    for (i, t) in series.iter().enumerate() {
        publish(
            &server,
            &token,
            json!({"ts": base + i as i64 * 60_000, "values": {"temperature": t}}),
        );
    }
    crate::mqtt::eventually("all stored", || async {
        crate::mqtt::count_stored(c, id, "temperature").await == series.len() as u64
    })
    .await;
    let rule = json!({
        "alarm_type": "overheat",
        "create": {
            "critical": {"expr": {"test": {"key": "temperature", "op": ">", "value": 90}}},
            "major": {"expr": {"test": {"key": "temperature", "op": ">", "value": 80}}}
        },
        "clear": {"expr": {"test": {"key": "temperature", "op": "<", "value": 75}}}
    });
    let r = c
        .post(
            "/api/v1/alarm-rules/preview",
            &json!({"rule": rule, "device_id": id}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let preview: stead_api_types::AlarmPreview = r.ok().unwrap();
    assert_eq!(preview.messages, 7);
    let steps: Vec<(i64, &str, Option<AlarmSeverity>)> = preview
        .steps
        .iter()
        .map(|s| ((s.ts - base) / 60_000, s.change.as_str(), s.severity))
        .collect();
    assert_eq!(
        steps,
        [
            (1, "raised", Some(AlarmSeverity::Major)),
            (2, "severity_changed", Some(AlarmSeverity::Critical)),
            (3, "severity_changed", Some(AlarmSeverity::Major)),
            (5, "cleared", None),
            (6, "raised", Some(AlarmSeverity::Major)),
        ]
    );
    assert_eq!(preview.active_at_end, Some(AlarmSeverity::Major));
    assert!(
        alarms_of(c, id).await.is_empty(),
        "a preview raises nothing"
    );

    let r = c
        .post(
            "/api/v1/alarm-rules/preview",
            &json!({"rule": {"alarm_type": "x", "create": {"major": {"kind": "repeating", "expr": {"test": {"key": "t", "op": ">", "value": 1}}}}}, "device_id": id}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.body["field"], "rule.create.major.count");
}

/// The device list shows each device's status (online, last seen, its most severe active alarm),
/// sorts by the alarm and filters by it.
async fn the_device_list_shows_status_and_worst_alarm(backend: Backend) {
    let server = TestServer::start(backend).await;
    let acme = server.tenant("Acme").await;
    let c = &acme.admin;
    let (a, ta) = device(c, "a-calm").await;
    let (b, tb) = device(c, "b-hot").await;
    let (d, td) = device(c, "c-warm").await;
    let _never = device(c, "d-never-seen").await;
    let profile = profile_of(c, a).await;
    rule(
        c,
        json!({"alarm_type": "heat", "profile_id": profile, "create": {
            "critical": {"expr": {"test": {"key": "t", "op": ">", "value": 90}}},
            "minor": {"expr": {"test": {"key": "t", "op": ">", "value": 50}}}}}),
    )
    .await;
    rule(
        c,
        json!({"alarm_type": "battery", "profile_id": profile, "create": {
            "warning": {"expr": {"test": {"key": "battery", "op": "<", "value": 10}}}}}),
    )
    .await;
    publish(&server, &ta, json!({"t": 20}));
    publish(&server, &tb, json!({"t": 95, "battery": 5}));
    publish(&server, &td, json!({"t": 60}));
    wait_alarm(c, b, "critical", |x| x.severity == AlarmSeverity::Critical).await;
    wait_alarm(c, d, "minor", |x| x.active).await;
    let list = |q: &'static str| async move {
        let page: stead_api_types::Page<Device> = c
            .get(&format!("/api/v1/devices?{q}"))
            .await
            .unwrap()
            .ok()
            .unwrap();
        page.items
    };
    let by_alarm = list("sort=-alarm_severity").await;
    let names: Vec<&str> = by_alarm.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["b-hot", "c-warm", "a-calm", "d-never-seen"]);
    let status = |name: &str| {
        by_alarm
            .iter()
            .find(|d| d.name == name)
            .and_then(|d| d.status.clone())
            .unwrap()
    };
    assert_eq!(
        status("b-hot").alarm_severity,
        Some(AlarmSeverity::Critical)
    );
    assert_eq!(status("c-warm").alarm_severity, Some(AlarmSeverity::Minor));
    assert_eq!(status("a-calm").alarm_severity, None);
    assert!(status("a-calm").last_activity.is_some(), "seen");
    assert!(status("d-never-seen").last_activity.is_none());
    assert!(!status("d-never-seen").online);
    let at_least_minor = list("alarm_severity=minor").await;
    let mut names: Vec<&str> = at_least_minor.iter().map(|d| d.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["b-hot", "c-warm"]);
    let critical = list("alarm_severity=critical").await;
    assert_eq!(critical.len(), 1);
    assert_eq!(critical[0].id, b);
    let r = c.get("/api/v1/devices?sort=mood").await.unwrap();
    assert_eq!(r.status, 400, "{}", r.body);
}

/// The console's home page: devices online, messages per minute, active alarms, the busiest
/// devices, credentials expiring soon, refused connects.
async fn fleet_health_at_a_glance(backend: Backend) {
    let server = TestServer::start(backend).await;
    let acme = server.tenant("Acme").await;
    let c = &acme.admin;
    let (busy, busy_token) = device(c, "chatty").await;
    let (quiet, quiet_token) = device(c, "quiet").await;
    let (blocked, blocked_token) = device(c, "blocked").await;
    rule(
        c,
        json!({"alarm_type": "hot", "device_id": busy,
               "create": {"major": {"expr": {"test": {"key": "t", "op": ">", "value": 50}}}}}),
    )
    .await;
    let expires = chrono::Utc::now() + chrono::Duration::days(2);
    let r = c
        .send(
            reqwest::Method::PUT,
            &format!("/api/v1/devices/{quiet}/credentials"),
            Some(&json!({"type": "access_token", "token": quiet_token, "expires_at": expires})),
        )
        .await
        .unwrap();
    assert!(r.status.is_success(), "{}", r.body);
    let r = c
        .post(
            &format!("/api/v1/devices/{blocked}/disable"),
            &json!({"reason": "stolen"}),
        )
        .await
        .unwrap();
    assert!(r.status.is_success(), "{}", r.body);
    assert_eq!(
        crate::mqtt_raw::Raw::connect(&server.mqtt, &blocked_token, 30, None)
            .await
            .1,
        5
    );
    // A persistent connection keeps the chatty device online.
    let (mut online, code) =
        crate::mqtt_raw::Raw::connect(&server.mqtt, &busy_token, 30, None).await;
    assert_eq!(code, 0);
    for i in 0..12 {
        crate::gateway::publish_acked(
            &mut online,
            i + 1,
            "v1/devices/me/telemetry",
            json!({"t": 40 + i}),
        )
        .await;
    }
    publish(&server, &quiet_token, json!({"t": 1}));
    wait_alarm(c, busy, "raised", |a| a.active).await;

    let mut health = None;
    for _ in 0..60 {
        let h: stead_api_types::FleetHealth =
            c.get("/api/v1/fleet/health").await.unwrap().ok().unwrap();
        if h.messages_per_minute
            .iter()
            .map(|m| m.messages)
            .sum::<u64>()
            >= 13
            && !h.refused_connects.is_empty()
        {
            health = Some(h);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let h = health.expect("the counts arrive within 12 s");
    assert_eq!((h.devices, h.online, h.offline), (3, 1, 2), "{h:?}");
    assert_eq!(h.messages_per_minute.len(), 180, "3 hours of minutes");
    assert_eq!(
        h.messages_per_minute
            .iter()
            .map(|m| m.messages)
            .sum::<u64>(),
        13
    );
    assert_eq!(h.alarms.major, 1);
    assert_eq!(h.noisiest[0].name, "chatty");
    assert_eq!(h.noisiest[0].messages, 12);
    assert_eq!(h.noisiest.len(), 2);
    assert_eq!(h.expiring.len(), 1);
    assert_eq!(h.expiring[0].device_id, quiet);
    assert_eq!(h.refused_connects[0].device_id, blocked);
    let r = c.get("/api/v1/fleet/health?hours=48").await.unwrap();
    assert_eq!(r.status, 400, "{}", r.body);
    online.disconnect().await;
}
