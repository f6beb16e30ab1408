//! Notifications in the console: with an in-app notification rule made through the API, a real
//! MQTT device crossing a threshold raises an alarm that the home page, the alarm list, the alarm
//! sign and the notification bell show without a reload; the bell's panel leads to the alarm,
//! which is acknowledged and cleared there, each change a new notification, read one by one or
//! all at once.

use reqwest::Method;
use serde_json::json;
use stead_api_types::{Me, NotificationPage};
use stead_e2e::Client;

use crate::browser::dismiss_toasts;
use crate::browser::{Console, click, screenshot, wait_count, wait_css, wait_text};
use crate::browser_home::must;
use crate::mqtt::device;
use crate::mqtt_raw::Raw;

async fn inbox(c: &Client) -> NotificationPage {
    c.get("/api/v1/notifications").await.unwrap().ok().unwrap()
}

async fn bell_says(b: &fantoccini::Client, n: u64) {
    wait_css(
        b,
        &format!("[data-test=notification-bell][data-count='{n}']"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_reaches_the_home_page_the_list_and_the_notification_bell() {
    let console = Console::start().await;
    let (server, c) = (&console.server, &console.acme.admin);
    let (boiler, token) = device(c, "boiler-1").await;
    let me: Me = c.get("/api/v1/me").await.unwrap().ok().unwrap();
    must(
        c,
        Method::POST,
        "/api/v1/alarm-rules",
        json!({"alarm_type": "overheat", "device_id": boiler,
               "create": {"major": {"expr": {"test": {"key": "temperature", "op": ">", "value": 80}}}},
               "clear": {"expr": {"test": {"key": "temperature", "op": "<", "value": 75}}}}),
    )
    .await;
    must(
        c,
        Method::POST,
        "/api/v1/notification-rules",
        json!({"name": "Everything to me", "channels": ["in_app"], "recipients": {"users": [me.id]}}),
    )
    .await;

    // Home: the device is offline, nothing is wrong, nothing to read.
    let b = console.sign_in().await;
    click(&b, "[data-test=nav-home]").await;
    wait_text(&b, "[data-test=fleet-online]", "0").await;
    wait_text(&b, "[data-test=severity-count][data-severity=major]", "0").await;
    bell_says(&b, 0).await;
    click(&b, "[data-test=notification-bell]").await;
    wait_css(
        &b,
        "[data-test=notification-panel] [data-test=no-notifications]",
    )
    .await;
    click(&b, "[data-test=notification-bell]").await;
    crate::browser::wait_gone(&b, "[data-test=notification-panel]").await;

    // The device connects and gets too hot: the home page, both signs and the list follow.
    let (mut online, code) = Raw::connect(&server.mqtt, &token, 60, None).await;
    assert_eq!(code, 0);
    crate::gateway::publish_acked(
        &mut online,
        1,
        "v1/devices/me/telemetry",
        json!({"temperature": 85}),
    )
    .await;
    wait_text(&b, "[data-test=fleet-online]", "1").await;
    wait_text(&b, "[data-test=severity-count][data-severity=major]", "1").await;
    wait_text(&b, "[data-test=fleet-alarms]", "1").await;
    wait_css(&b, "[data-test=alarm-bell][data-count='1']").await;
    bell_says(&b, 1).await;
    wait_text(&b, "[data-test=notification-count]", "1").await;
    screenshot(&b, "notifications-home").await;
    click(&b, "[data-test=nav-alarms]").await;
    wait_count(&b, "[data-test=alarm-row]", 1).await;
    wait_text(&b, "[data-test=alarm-device]", "boiler-1").await;

    // The panel names it; opening it reads it and shows the alarm.
    click(&b, "[data-test=notification-bell]").await;
    let item = "[data-test=notification-panel] [data-test=notification][data-read=false]";
    wait_text(
        &b,
        &format!("{item} [data-test=notification-link]"),
        "overheat raised on boiler-1",
    )
    .await;
    wait_text(
        &b,
        "[data-test=notification-unread]",
        "1 unread notification",
    )
    .await;
    screenshot(&b, "notifications-panel").await;
    click(&b, &format!("{item} [data-test=notification-link]")).await;
    wait_text(&b, "[data-test=alarm-title]", "overheat").await;
    // Its page charts the temperature around it, its active time shaded.
    let chart = "[data-test=alarm-chart] [data-test=chart][data-key=temperature]";
    wait_css(&b, &format!("{chart} circle.chart-dot")).await;
    wait_css(&b, &format!("{chart} [data-test=chart-shade]")).await;
    screenshot(&b, "alarm-chart").await;
    crate::browser::wait_gone(&b, "[data-test=notification-panel]").await;
    bell_says(&b, 0).await;
    assert_eq!(inbox(c).await.unread, 0);

    // Acknowledged on its page: that is news too, read with its own button.
    click(&b, "[data-test=alarm-ack]").await;
    bell_says(&b, 1).await;
    click(&b, "[data-test=notification-bell]").await;
    wait_count(&b, "[data-test=notification]", 2).await;
    wait_text(&b, item, "acknowledged").await;
    click(&b, &format!("{item} [data-test=read-notification]")).await;
    bell_says(&b, 0).await;
    wait_count(&b, "[data-test=notification][data-read=true]", 2).await;
    click(&b, "[data-test=notification-bell]").await;

    // Cleared: one more, and "Mark all read".
    click(&b, "[data-test=alarm-clear]").await;
    wait_css(
        &b,
        "[data-test=alarm-header-status] [data-test=alarm-status][data-active=false]",
    )
    .await;
    bell_says(&b, 1).await;
    click(&b, "[data-test=notification-bell]").await;
    wait_text(&b, item, "cleared").await;
    click(&b, "[data-test=read-all-notifications]").await;
    bell_says(&b, 0).await;
    wait_count(&b, "[data-test=notification][data-read=true]", 3).await;
    let page = inbox(c).await;
    assert_eq!((page.total, page.unread), (3, 0), "{page:?}");

    // Home again: nothing active, the device still online.
    click(&b, "[data-test=notification-bell]").await;
    click(&b, "[data-test=nav-home]").await;
    wait_text(&b, "[data-test=severity-count][data-severity=major]", "0").await;
    wait_text(&b, "[data-test=fleet-alarms]", "0").await;
    wait_text(&b, "[data-test=fleet-online]", "1").await;
    online.disconnect().await;
}

async fn fill(b: &fantoccini::Client, css: &str, text: &str) {
    let input = wait_css(b, css).await;
    input.clear().await.unwrap();
    input.send_keys(text).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notification_rules_and_silences_are_set_in_the_console() {
    let console = Console::start().await;
    let c = &console.acme.admin;
    let (boiler, _) = device(c, "boiler-1").await;
    let me: Me = c.get("/api/v1/me").await.unwrap().ok().unwrap();
    let b = console.sign_in().await;
    click(&b, "[data-test=nav-notifications]").await;
    wait_text(&b, "h1", "Notifications").await;
    wait_css(&b, "[data-test=no-notification-rules]").await;
    wait_css(&b, "[data-test=no-silences]").await;

    // A rule without anyone to tell is refused, the field named; then made for operators,
    // escalated to the admin.
    click(&b, "[data-test=new-notification-rule]").await;
    fill(&b, "input[name=name]", "Overheat to the night shift").await;
    fill(&b, "input[name=alarm_types]", "overheat").await;
    click(&b, "select[name=min_severity] option[value=major]").await;
    click(&b, "[data-test=save-notification-rule]").await;
    wait_text(&b, "[data-test=error-field]", "recipients").await;
    wait_text(&b, "[data-test=error]", "Who:").await;
    wait_css(&b, "[data-test=rule-recipients].field-invalid").await;
    screenshot(&b, "notification-rule-refused").await;
    click(
        &b,
        "[data-test=rule-recipients] input[data-test=recipient-role][value=operator]",
    )
    .await;
    click(&b, "[data-test=rule-escalate]").await;
    fill(&b, "input[name=escalate_after]", "15").await;
    click(
        &b,
        &format!(
            "[data-test=rule-escalate-to] input[data-test=recipient-user][value='{}']",
            me.email
        ),
    )
    .await;
    click(&b, "[data-test=save-notification-rule]").await;
    let row = "[data-test=notification-rule-row][data-name='Overheat to the night shift']";
    wait_text(
        &b,
        &format!("{row} [data-test=rule-alarms]"),
        "and above · overheat",
    )
    .await;
    wait_css(
        &b,
        &format!("{row} [data-test=rule-alarms] [data-severity=major]"),
    )
    .await;
    wait_text(
        &b,
        &format!("{row} [data-test=rule-recipients]"),
        "every Operator",
    )
    .await;
    wait_text(
        &b,
        &format!("{row} [data-test=rule-channels]"),
        "In the console",
    )
    .await;
    wait_text(
        &b,
        &format!("{row} [data-test=rule-extra]"),
        "after 15 min to admin@acme.example.com",
    )
    .await;
    screenshot(&b, "notification-rules").await;
    let rules: Vec<stead_api_types::NotificationRule> = c
        .get("/api/v1/notification-rules")
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(rules.len(), 1);
    let spec = &rules[0].spec;
    assert_eq!(spec.alarm_types, ["overheat"]);
    assert_eq!(spec.min_severity, stead_api_types::AlarmSeverity::Major);
    assert_eq!(spec.channels, [stead_api_types::NotifyChannel::InApp]);
    assert_eq!(spec.recipients.roles, [stead_api_types::Role::Operator]);
    assert_eq!(spec.escalate_after_secs, Some(900));
    assert_eq!(spec.escalate_to.as_ref().unwrap().users, [me.id]);
    assert!(spec.enabled);

    // Turned off, then deleted.
    dismiss_toasts(&b).await;
    click(&b, &format!("{row} [data-test=edit-notification-rule]")).await;
    click(&b, "[data-test=rule-enabled]").await;
    click(&b, "[data-test=save-notification-rule]").await;
    wait_css(&b, &format!("{row} [data-test=rule-off]")).await;
    let rules: Vec<stead_api_types::NotificationRule> = c
        .get("/api/v1/notification-rules")
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert!(!rules[0].spec.enabled);
    assert_eq!(
        rules[0].spec.escalate_after_secs,
        Some(900),
        "the rest is kept"
    );
    dismiss_toasts(&b).await;
    click(&b, &format!("{row} [data-test=delete-notification-rule]")).await;
    click(&b, "[data-test=confirm]").await;
    wait_css(&b, "[data-test=no-notification-rules]").await;

    // A silence of nothing is refused; one of the boiler's overheat alarms for 4 hours is set.
    dismiss_toasts(&b).await;
    click(&b, "[data-test=new-silence]").await;
    click(&b, "[data-test=save-silence]").await;
    wait_text(&b, "[data-test=error-field]", "device_id").await;
    fill(&b, "input[name=device]", "boiler-1").await;
    wait_css(&b, "#silence-devices option[value='boiler-1']").await;
    fill(&b, "input[name=alarm_type]", "overheat").await;
    fill(&b, "input[name=reason]", "Boiler maintenance").await;
    click(&b, "[data-test=silence-for-4]").await;
    click(&b, "[data-test=save-silence]").await;
    wait_text(
        &b,
        "[data-test=silence-row] [data-test=silence-device]",
        "boiler-1",
    )
    .await;
    wait_text(
        &b,
        "[data-test=silence-row] [data-test=silence-type]",
        "overheat",
    )
    .await;
    wait_text(
        &b,
        "[data-test=silence-row] [data-test=silence-reason]",
        "Boiler maintenance",
    )
    .await;
    screenshot(&b, "silences").await;
    let silences: Vec<stead_api_types::Silence> =
        c.get("/api/v1/silences").await.unwrap().ok().unwrap();
    assert_eq!(silences.len(), 1);
    let s = &silences[0];
    assert_eq!(
        (s.device_id, s.alarm_type.as_deref()),
        (Some(boiler), Some("overheat"))
    );
    let hours = (s.ends_at - chrono::Utc::now()).num_minutes();
    assert!((235..=240).contains(&hours), "ends in 4 hours: {hours} min");

    // Ended now.
    dismiss_toasts(&b).await;
    click(&b, "[data-test=end-silence]").await;
    click(&b, "[data-test=confirm]").await;
    wait_css(&b, "[data-test=no-silences]").await;
    let silences: Vec<stead_api_types::Silence> =
        c.get("/api/v1/silences").await.unwrap().ok().unwrap();
    assert!(silences.is_empty(), "{silences:?}");
}
