//! Notifications in the console: with an in-app notification rule made through the API, a real
//! MQTT device crossing a threshold raises an alarm that the home page, the alarm list, the alarm
//! sign and the notification bell show without a reload; the bell's panel leads to the alarm,
//! which is acknowledged and cleared there, each change a new notification, read one by one or
//! all at once.

use reqwest::Method;
use serde_json::json;
use stead_api_types::{Me, NotificationPage};
use stead_e2e::Client;

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
