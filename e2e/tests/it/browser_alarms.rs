//! Alarms in the console: a rule made through the REST API raises an alarm when a real MQTT client
//! (`mosquitto_pub`) sends a temperature above it; the alarm list and the bell show it without a
//! reload; a person acknowledges it from the list, comments on it, assigns it and clears it from
//! its page, and finds it on the device's Alarms tab. A second alarm is acknowledged and cleared as
//! a selection. A profile's rule is made, refused (the field named), edited and deleted in the
//! profile's rule dialog. An unsaved rule is previewed on a device's stored telemetry (when it
//! would have raised, stepped up and cleared). Every step is checked through the API too.

use fantoccini::Client as Browser;
use serde_json::json;
use stead_api_types::{Alarm, AlarmDetail, AlarmPage, AlarmRule, AlarmSeverity, Device, Me};
use stead_e2e::Client;
use uuid::Uuid;

use crate::browser::{
    Console, click, dismiss_toasts, fill, screenshot, wait_count, wait_css, wait_text,
};
use crate::harness::TestServer;
use crate::mqtt::{device, mosquitto_pub};

fn publish(server: &TestServer, token: &str, temperature: u32) {
    publish_json(server, token, &json!({ "temperature": temperature }));
}

/// Telemetry as the device sends it: values, or `{"ts": …, "values": …}` with its own time.
fn publish_json(server: &TestServer, token: &str, payload: &serde_json::Value) {
    let payload = payload.to_string();
    let args = [
        "-u",
        token,
        "-q",
        "1",
        "-t",
        "v1/devices/me/telemetry",
        "-m",
        &payload,
    ];
    let (ok, out) = mosquitto_pub(server.mqtt_port(), &args);
    assert!(ok, "mosquitto_pub failed: {out}");
}

async fn alarms(c: &Client) -> Vec<Alarm> {
    let page: AlarmPage = c.get("/api/v1/alarms").await.unwrap().ok().unwrap();
    page.items
}

async fn detail(c: &Client, id: Uuid) -> AlarmDetail {
    c.get(&format!("/api/v1/alarms/{id}"))
        .await
        .unwrap()
        .ok()
        .unwrap()
}

async fn path_of(b: &Browser) -> String {
    let url = b.current_url().await.unwrap();
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    }
}

/// The row of the alarm, and something in it.
fn in_row(id: Uuid, css: &str) -> String {
    format!("[data-test=alarm-row][data-id='{id}'] {css}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_is_raised_acknowledged_commented_and_cleared_in_the_console() {
    let console = Console::start().await;
    let (server, c) = (&console.server, &console.acme.admin);
    let (id, token) = device(c, "boiler-1").await;
    let rule = c
        .post(
            "/api/v1/alarm-rules",
            &json!({
                "alarm_type": "overheat",
                "device_id": id,
                "create": {"major": {"expr": {"test": {"key": "temperature", "op": ">", "value": 80}}}},
                "clear": {"expr": {"test": {"key": "temperature", "op": "<", "value": 75}}}
            }),
        )
        .await
        .unwrap();
    assert_eq!(rule.status, 201, "{}", rule.body);
    let me: Me = c.get("/api/v1/me").await.unwrap().ok().unwrap();

    // Nothing raised yet: the list says so, the bell has nothing to count.
    let b = console.sign_in().await;
    click(&b, "[data-test=nav-alarms]").await;
    wait_text(&b, "h1", "Alarms").await;
    wait_text(&b, "[data-test=no-alarms]", "No alarms yet").await;
    wait_css(&b, "[data-test=alarm-bell][data-count='0']").await;
    screenshot(&b, "alarms-empty").await;

    // Too hot: the alarm appears by itself, major, unacknowledged; the bell counts it.
    publish(server, &token, 85);
    wait_count(&b, "[data-test=alarm-row]", 1).await;
    let alarm = alarms(c).await.remove(0);
    assert_eq!(
        (alarm.severity, alarm.active, alarm.acknowledged),
        (AlarmSeverity::Major, true, false)
    );
    wait_css(
        &b,
        &in_row(alarm.id, "[data-test=alarm-severity][data-severity=major]"),
    )
    .await;
    wait_text(
        &b,
        &in_row(alarm.id, "[data-test=alarm-device]"),
        "boiler-1",
    )
    .await;
    wait_text(&b, &in_row(alarm.id, "[data-test=alarm-link]"), "overheat").await;
    wait_css(
        &b,
        &in_row(
            alarm.id,
            "[data-test=alarm-status][data-active=true][data-acknowledged=false]",
        ),
    )
    .await;
    wait_text(&b, "[data-test=alarm-bell-count]", "1").await;
    wait_css(&b, "[data-test=alarm-bell][data-count='1']").await;
    wait_text(&b, "[data-test=severity-count][data-severity=major]", "1").await;
    screenshot(&b, "alarms-raised").await;

    // Filters live in the URL: none critical; the link of the bell lists the active ones.
    click(&b, "[data-test=filter-severity] option[value=critical]").await;
    wait_text(&b, "[data-test=no-alarms]", "No matching alarms").await;
    assert_eq!(path_of(&b).await, "/alarms?severity=critical");
    click(&b, "[data-test=clear-filters]").await;
    wait_count(&b, "[data-test=alarm-row]", 1).await;
    click(&b, "[data-test=alarm-bell]").await;
    wait_css(&b, "[data-test=status-filter-active].segment-active").await;
    assert_eq!(path_of(&b).await, "/alarms?status=active");
    wait_count(&b, "[data-test=alarm-row]", 1).await;

    // Acknowledged from the list: the bell goes to 0, the row says so.
    click(&b, &in_row(alarm.id, "[data-test=ack-alarm]")).await;
    wait_css(&b, "[data-test=alarm-bell][data-count='0']").await;
    wait_css(
        &b,
        &in_row(
            alarm.id,
            "[data-test=alarm-status][data-active=true][data-acknowledged=true]",
        ),
    )
    .await;
    assert!(detail(c, alarm.id).await.alarm.acknowledged);

    // Its page: the values that raised it, the history; a comment joins the history.
    click(&b, &in_row(alarm.id, "[data-test=alarm-link]")).await;
    wait_text(&b, "[data-test=alarm-title]", "overheat").await;
    wait_text(&b, "[data-test=alarm-value][data-key=temperature]", "85").await;
    wait_count(&b, "[data-test=history-entry]", 2).await;
    wait_css(&b, "[data-test=history-entry][data-kind=raised]").await;
    wait_text(
        &b,
        "[data-test=history-entry][data-kind=acknowledged] [data-test=history-actor]",
        "admin@acme.example.com",
    )
    .await;
    // An empty comment is refused before sending.
    click(&b, "[data-test=add-comment]").await;
    wait_text(&b, "[data-test=error]", "Write the comment first").await;
    wait_css(&b, "[data-test=comment-text]")
        .await
        .send_keys("Fan replaced, watching it")
        .await
        .unwrap();
    click(&b, "[data-test=add-comment]").await;
    wait_text(
        &b,
        "[data-test=history-entry][data-kind=commented] [data-test=history-text]",
        "Fan replaced, watching it",
    )
    .await;
    wait_count(&b, "[data-test=history-entry]", 3).await;
    wait_text(&b, ".toast-success", "Comment added").await;
    dismiss_toasts(&b).await;

    // Assigned to the admin.
    click(
        &b,
        &format!("[data-test=assignee-select] option[value='{}']", me.id),
    )
    .await;
    click(&b, "[data-test=assign-alarm]").await;
    wait_text(
        &b,
        "[data-test=alarm-details] [data-test=alarm-assignee]",
        "admin@acme.example.com",
    )
    .await;
    screenshot(&b, "alarm-page").await;

    // Cleared: the page says so and the buttons go.
    click(&b, "[data-test=alarm-clear]").await;
    wait_css(
        &b,
        "[data-test=alarm-header-status] [data-test=alarm-status][data-active=false]",
    )
    .await;
    wait_css(&b, "[data-test=history-entry][data-kind=cleared]").await;
    crate::browser::wait_gone(&b, "[data-test=alarm-actions]").await;
    let d = detail(c, alarm.id).await;
    assert!(!d.alarm.active && d.alarm.acknowledged, "{d:?}");
    assert!(d.alarm.cleared_at.is_some() && d.alarm.ended_at.is_some());
    assert_eq!(d.alarm.assignee_id, Some(me.id));
    let kinds: Vec<&str> = d.history.iter().map(|h| h.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["raised", "acknowledged", "commented", "assigned", "cleared"]
    );
    assert_eq!(
        d.history[2].text.as_deref(),
        Some("Fan replaced, watching it")
    );
    screenshot(&b, "alarm-cleared").await;

    // The device's Alarms tab lists it, cleared; nothing active by severity.
    click(&b, "[data-test=alarm-device]").await;
    wait_css(&b, "[data-test=device-alarms]").await;
    wait_css(&b, "[data-test=tab-alarms].tab-active").await;
    wait_count(&b, "[data-test=device-alarms] [data-test=alarm-row]", 1).await;
    wait_css(
        &b,
        &in_row(alarm.id, "[data-test=alarm-status][data-active=false]"),
    )
    .await;
    wait_text(&b, "[data-test=severity-count][data-severity=major]", "0").await;
    screenshot(&b, "device-alarms").await;

    // Hot again: a new alarm, acknowledged and cleared as a selection from the list.
    publish(server, &token, 90);
    wait_count(&b, "[data-test=device-alarms] [data-test=alarm-row]", 2).await;
    wait_css(&b, "[data-test=alarm-bell][data-count='1']").await;
    let second = alarms(c).await.into_iter().find(|a| a.active).unwrap();
    assert_ne!(second.id, alarm.id);
    click(&b, "[data-test=nav-alarms]").await;
    wait_count(&b, "[data-test=alarm-row]", 2).await;
    click(&b, "[data-test=select-all-alarms]").await;
    wait_text(&b, "[data-test=alarm-selection-count]", "2 alarms selected").await;
    click(&b, "[data-test=bulk-ack]").await;
    wait_css(&b, "[data-test=alarm-bell][data-count='0']").await;
    wait_css(
        &b,
        &in_row(
            second.id,
            "[data-test=alarm-status][data-acknowledged=true]",
        ),
    )
    .await;
    click(&b, &in_row(second.id, "[data-test=select-alarm]")).await;
    click(&b, "[data-test=bulk-clear]").await;
    click(&b, "[data-test=confirm]").await;
    wait_css(
        &b,
        &in_row(second.id, "[data-test=alarm-status][data-active=false]"),
    )
    .await;
    click(&b, "[data-test=status-filter-active]").await;
    wait_text(&b, "[data-test=no-alarms]", "No active alarms").await;
    let second = detail(c, second.id).await.alarm;
    assert!(!second.active && second.acknowledged, "{second:?}");
}

/// A field of a condition row of the rule form (`critical`, `major` … or the clear row).
fn field(row: &str, css: &str) -> String {
    match row {
        "clear" => format!("[data-test=rule-clear] {css}"),
        severity => format!("[data-test=rule-condition][data-severity={severity}] {css}"),
    }
}

async fn rules_of(c: &Client, profile: Uuid) -> Vec<AlarmRule> {
    c.get(&format!("/api/v1/alarm-rules?profile={profile}"))
        .await
        .unwrap()
        .ok()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_alarm_rule_is_made_edited_and_deleted_in_the_console() {
    let console = Console::start().await;
    let (server, c) = (&console.server, &console.acme.admin);
    let (id, token) = device(c, "pump-1").await;
    let d: Device = c
        .get(&format!("/api/v1/devices/{id}"))
        .await
        .unwrap()
        .ok()
        .unwrap();
    let profile = d.profile_id;

    let b = console.sign_in().await;
    click(&b, "[data-test=nav-profiles]").await;
    click(&b, "[data-test=profile-alarm-rules]").await;
    wait_css(&b, "[data-test=no-alarm-rules]").await;

    // A rule with two severities and a clear condition, from the form.
    click(&b, "[data-test=new-alarm-rule]").await;
    fill(&b, "input[name=alarm_type]", "over heat").await;
    fill(&b, &field("major", "input[name=key]"), "temperature").await;
    fill(&b, &field("major", "input[name=value]"), "80").await;
    click(&b, "[data-test=add-condition]").await;
    click(
        &b,
        &field("critical", "select[name=kind] option[value=repeating]"),
    )
    .await;
    fill(&b, &field("critical", "input[name=amount]"), "1").await;
    fill(&b, &field("critical", "input[name=key]"), "temperature").await;
    fill(&b, &field("critical", "input[name=value]"), "90").await;
    click(&b, "[data-test=rule-has-clear]").await;
    fill(&b, &field("clear", "input[name=key]"), "temperature").await;
    fill(&b, &field("clear", "input[name=value]"), "75").await;
    screenshot(&b, "alarm-rule-form").await;

    // The server refuses, naming the field; the form says where.
    click(&b, "[data-test=save-alarm-rule]").await;
    wait_text(&b, "[data-test=error-field]", "alarm_type").await;
    wait_text(&b, "[data-test=error]", "Alarm type:").await;
    fill(&b, "input[name=alarm_type]", "overheat").await;
    click(&b, "[data-test=save-alarm-rule]").await;
    wait_text(&b, "[data-test=error-field]", "create.critical.count").await;
    wait_text(&b, "[data-test=error]", "Critical condition:").await;
    wait_css(
        &b,
        "[data-test=rule-condition][data-severity=critical].field-invalid",
    )
    .await;
    screenshot(&b, "alarm-rule-refused").await;
    assert!(rules_of(c, profile).await.is_empty());
    fill(&b, &field("critical", "input[name=amount]"), "3").await;
    click(&b, "[data-test=save-alarm-rule]").await;

    // Listed, and stored as the form said.
    let row = "[data-test=alarm-rule-row][data-type=overheat]";
    wait_text(
        &b,
        &format!("{row} [data-test=rule-raises][data-severity=critical]"),
        "temperature > 90, 3 in a row",
    )
    .await;
    wait_text(
        &b,
        &format!("{row} [data-test=rule-raises][data-severity=major]"),
        "temperature > 80",
    )
    .await;
    wait_text(
        &b,
        &format!("{row} [data-test=rule-clears]"),
        "when temperature < 75",
    )
    .await;
    screenshot(&b, "alarm-rules").await;
    let rules = rules_of(c, profile).await;
    assert_eq!(rules.len(), 1);
    let spec = serde_json::to_value(&rules[0].spec).unwrap();
    assert_eq!(
        spec["create"],
        json!({
            "critical": {"kind": "repeating", "count": 3,
                         "expr": {"test": {"source": "telemetry", "key": "temperature", "op": ">", "value": 90}}},
            "major": {"kind": "immediate",
                      "expr": {"test": {"source": "telemetry", "key": "temperature", "op": ">", "value": 80}}}
        })
    );
    assert_eq!(
        spec["clear"]["expr"]["test"],
        json!({"source": "telemetry", "key": "temperature", "op": "<", "value": 75})
    );

    // Edited: the critical condition goes, major moves to 85.
    click(&b, &format!("{row} [data-test=edit-alarm-rule]")).await;
    click(&b, &field("critical", "[data-test=remove-condition]")).await;
    fill(&b, &field("major", "input[name=value]"), "85").await;
    click(&b, "[data-test=save-alarm-rule]").await;
    wait_text(
        &b,
        &format!("{row} [data-test=rule-raises][data-severity=major]"),
        "temperature > 85",
    )
    .await;
    wait_count(&b, &format!("{row} [data-test=rule-raises]"), 1).await;
    let spec = rules_of(c, profile).await.remove(0).spec;
    assert!(
        spec.create.critical.is_none() && spec.clear.is_some(),
        "{spec:?}"
    );

    // The rule made in the console raises alarms on the profile's devices.
    publish(server, &token, 86);
    crate::mqtt::eventually("the console's rule raises an alarm", || async {
        alarms(c)
            .await
            .iter()
            .any(|a| a.device_id == id && a.alarm_type == "overheat" && a.active)
    })
    .await;

    // Deleted.
    click(&b, &format!("{row} [data-test=delete-alarm-rule]")).await;
    click(&b, "[data-test=confirm-delete-alarm-rule]").await;
    wait_css(&b, "[data-test=no-alarm-rules]").await;
    assert!(rules_of(c, profile).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsaved_rule_is_previewed_on_a_device_s_stored_telemetry() {
    let console = Console::start().await;
    let (server, c) = (&console.server, &console.acme.admin);
    let (id, token) = device(c, "boiler-1").await;
    device(c, "boiler-2").await;

    // Two hours ago: 70, then 85 (major), 95 (critical), 70 (clear), a minute apart.
    let base = chrono::Utc::now().timestamp_millis() - 2 * 3_600_000;
    let series = [70, 85, 95, 70];
    for (i, t) in series.iter().enumerate() {
        let ts = base + i as i64 * 60_000;
        publish_json(
            server,
            &token,
            &json!({"ts": ts, "values": {"temperature": t}}),
        );
    }
    let d: Device = c
        .get(&format!("/api/v1/devices/{id}"))
        .await
        .unwrap()
        .ok()
        .unwrap();
    let rule = json!({
        "alarm_type": "overheat", "profile_id": d.profile_id,
        "create": {"major": {"kind": "immediate", "expr": {"test": {"key": "temperature", "op": ">", "value": 80}}}}
    });
    crate::mqtt::eventually("the four messages are stored", || async {
        let reply = c
            .post(
                "/api/v1/alarm-rules/preview",
                &json!({"rule": rule, "device_id": id}),
            )
            .await
            .unwrap();
        reply.status == 200 && reply.body["messages"] == 4
    })
    .await;

    let b = console.sign_in().await;
    click(&b, "[data-test=nav-profiles]").await;
    click(&b, "[data-test=profile-alarm-rules]").await;
    click(&b, "[data-test=new-alarm-rule]").await;
    fill(&b, "input[name=alarm_type]", "overheat").await;
    fill(&b, &field("major", "input[name=key]"), "temperature").await;
    fill(&b, &field("major", "input[name=value]"), "80").await;
    click(&b, "[data-test=add-condition]").await;
    click(
        &b,
        &field("critical", "select[name=kind] option[value=repeating]"),
    )
    .await;
    fill(&b, &field("critical", "input[name=amount]"), "1").await;
    fill(&b, &field("critical", "input[name=key]"), "temperature").await;
    fill(&b, &field("critical", "input[name=value]"), "90").await;

    // The profile's devices are offered; the one with the data is chosen.
    wait_count(&b, "[data-test=preview-device] option", 2).await;
    click(
        &b,
        &format!("[data-test=preview-device] option[value='{id}']"),
    )
    .await;

    // The server refuses the unsaved rule as it would refuse saving it, naming the field.
    click(&b, "[data-test=preview-rule]").await;
    wait_text(&b, "[data-test=error-field]", "rule.create.critical.count").await;
    wait_text(&b, "[data-test=error]", "Critical condition:").await;
    wait_css(
        &b,
        "[data-test=rule-condition][data-severity=critical].field-invalid",
    )
    .await;
    click(
        &b,
        &field("critical", "select[name=kind] option[value=immediate]"),
    )
    .await;

    // Raised as major, stepped up to critical, cleared: at the messages' own times.
    click(&b, "[data-test=preview-rule]").await;
    wait_text(&b, "[data-test=preview-messages]", "4 messages evaluated").await;
    wait_count(&b, "[data-test=preview-step]", 3).await;
    screenshot(&b, "alarm-rule-preview").await;
    let steps = b
        .execute(
            "return [...document.querySelectorAll('[data-test=preview-step]')].map(s => \
             [s.dataset.change, s.dataset.severity || null, Number(s.dataset.ts)]);",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        steps,
        json!([
            ["raised", "major", base + 60_000],
            ["severity_changed", "critical", base + 120_000],
            ["cleared", null, base + 180_000]
        ])
    );
    wait_css(
        &b,
        "[data-test=preview-step][data-change=raised] [data-test=alarm-severity][data-severity=major]",
    )
    .await;
    wait_text(
        &b,
        "[data-test=preview-step][data-change=severity_changed] [data-test=preview-values]",
        "95",
    )
    .await;
    assert!(
        b.find(fantoccini::Locator::Css("[data-test=error]"))
            .await
            .is_err()
    );

    // Above everything the device sent: it would not have raised. Nothing was saved.
    fill(&b, &field("major", "input[name=value]"), "200").await;
    fill(&b, &field("critical", "input[name=value]"), "300").await;
    click(&b, "[data-test=preview-rule]").await;
    wait_text(&b, "[data-test=preview-none]", "Would not have raised").await;
    assert!(rules_of(c, d.profile_id).await.is_empty());
}
