//! The console's home page, the fleet health dashboard: signing in lands on it; it counts the
//! devices online and offline, charts acknowledged messages per minute over the hours picked,
//! counts active alarms by severity (each count a link to the alarm list, filtered), names the
//! busiest devices, the credentials about to expire and the latest refused connects, and follows
//! a real MQTT device without a reload.

use reqwest::Method;
use serde_json::json;
use stead_e2e::Client;

use crate::browser::{Console, click, screenshot, wait_count, wait_css, wait_text};
use crate::mqtt::device;
use crate::mqtt_raw::Raw;

/// Calls the API and asserts it did what was asked.
pub async fn must(c: &Client, method: Method, path: &str, body: serde_json::Value) {
    let r = c.send(method, path, Some(&body)).await.unwrap();
    assert!(r.status.is_success(), "{path}: {}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_home_page_follows_the_fleet_live() {
    let console = Console::start().await;
    let (server, c) = (&console.server, &console.acme.admin);
    let (chatty, chatty_token) = device(c, "chatty").await;
    let (quiet, quiet_token) = device(c, "quiet").await;
    let (blocked, blocked_token) = device(c, "blocked").await;
    must(
        c,
        Method::POST,
        "/api/v1/alarm-rules",
        json!({"alarm_type": "overheat", "device_id": chatty,
               "create": {"major": {"expr": {"test": {"key": "t", "op": ">", "value": 50}}}}}),
    )
    .await;
    // The quiet device's credentials expire in two days; the blocked one is turned away.
    let expires = chrono::Utc::now() + chrono::Duration::days(2);
    let credentials = json!({"type": "access_token", "token": quiet_token, "expires_at": expires});
    must(
        c,
        Method::PUT,
        &format!("/api/v1/devices/{quiet}/credentials"),
        credentials,
    )
    .await;
    let reason = json!({"reason": "stolen"});
    must(
        c,
        Method::POST,
        &format!("/api/v1/devices/{blocked}/disable"),
        reason,
    )
    .await;
    assert_eq!(
        Raw::connect(&server.mqtt, &blocked_token, 60, None).await.1,
        5
    );

    // Signing in lands on the dashboard: nobody online, nothing sent, nothing wrong.
    let b = console.sign_in().await;
    click(&b, "[data-test=nav-home]").await;
    wait_text(&b, "h1", "Fleet health").await;
    wait_css(&b, "[data-test=nav-home][aria-current=page]").await;
    wait_text(&b, "[data-test=fleet-devices]", "3").await;
    wait_text(&b, "[data-test=fleet-online]", "0").await;
    wait_text(&b, "[data-test=fleet-offline]", "3").await;
    wait_text(&b, "[data-test=fleet-alarms]", "0").await;
    wait_text(&b, "[data-test=severity-count][data-severity=major]", "0").await;
    wait_css(&b, "[data-test=no-noisy-devices]").await;
    wait_text(
        &b,
        &format!("[data-test=expiring-device][data-id='{quiet}']"),
        "quiet",
    )
    .await;
    wait_count(&b, "[data-test=expiring-device]", 1).await;
    wait_text(
        &b,
        &format!("[data-test=refused-connect][data-id='{blocked}'] [data-test=refused-detail]"),
        "refused",
    )
    .await;
    // Three hours of minutes by default: too many to dot; one hour is dotted minute by minute.
    wait_css(&b, "[data-test=hours-3].segment-active").await;
    wait_css(&b, "[data-test=fleet-chart] path.chart-line").await;
    wait_count(&b, "[data-test=fleet-chart] circle.chart-dot", 0).await;
    click(&b, "[data-test=hours-1]").await;
    wait_count(&b, "[data-test=fleet-chart] circle.chart-dot", 60).await;
    screenshot(&b, "home-quiet").await;

    // A device connects and sends twelve messages, the last ones too hot: the page follows.
    let (mut online, code) = Raw::connect(&server.mqtt, &chatty_token, 60, None).await;
    assert_eq!(code, 0);
    for i in 0..12u16 {
        crate::gateway::publish_acked(
            &mut online,
            i + 1,
            "v1/devices/me/telemetry",
            json!({ "t": 40 + i }),
        )
        .await;
    }
    wait_text(&b, "[data-test=fleet-online]", "1").await;
    wait_text(&b, "[data-test=fleet-offline]", "2").await;
    wait_text(&b, "[data-test=severity-count][data-severity=major]", "1").await;
    wait_text(&b, "[data-test=fleet-alarms]", "1").await;
    wait_text(
        &b,
        &format!("[data-test=noisy-device][data-id='{chatty}'] [data-test=noisy-messages]"),
        "12",
    )
    .await;
    wait_text(&b, "[data-test=fleet-chart] .chart-mark-label", "max").await;
    screenshot(&b, "home-busy").await;

    // The major count opens the active major alarms.
    click(&b, "[data-test=count-major]").await;
    wait_text(&b, "h1", "Alarms").await;
    wait_css(&b, "[data-test=status-filter-active].segment-active").await;
    wait_count(&b, "[data-test=alarm-row]", 1).await;
    wait_text(&b, "[data-test=alarm-device]", "chatty").await;
    let url = b.current_url().await.unwrap();
    assert_eq!(url.query(), Some("status=active&severity=major"));
    online.disconnect().await;
}

/// The device list: each device's online status, last seen and most severe active alarm, sorted
/// by alarm severity and filtered by it (kept in the URL).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_device_list_shows_status_last_seen_and_alarms() {
    let console = Console::start().await;
    let (server, c) = (&console.server, &console.acme.admin);
    let (hot, hot_token) = device(c, "hot").await;
    let (calm, calm_token) = device(c, "calm").await;
    device(c, "never-seen").await;
    must(
        c,
        Method::POST,
        "/api/v1/alarm-rules",
        json!({"alarm_type": "overheat", "device_id": hot,
               "create": {"major": {"expr": {"test": {"key": "t", "op": ">", "value": 50}}}}}),
    )
    .await;
    // The hot device stays connected and too hot; the calm one sends once and leaves.
    let (mut online, code) = Raw::connect(&server.mqtt, &hot_token, 60, None).await;
    assert_eq!(code, 0);
    crate::gateway::publish_acked(&mut online, 1, "v1/devices/me/telemetry", json!({"t": 60}))
        .await;
    let (mut once, code) = Raw::connect(&server.mqtt, &calm_token, 60, None).await;
    assert_eq!(code, 0);
    crate::gateway::publish_acked(&mut once, 1, "v1/devices/me/telemetry", json!({"t": 20})).await;
    once.disconnect().await;
    crate::mqtt::eventually(
        "the hot device is online with its alarm, the calm one has left",
        || async {
            let page: stead_api_types::Page<stead_api_types::Device> =
                c.get("/api/v1/devices").await.unwrap().ok().unwrap();
            page.items.iter().any(|d| {
                d.id == hot
                    && d.status
                        .as_ref()
                        .is_some_and(|s| s.online && s.alarm_severity.is_some())
            }) && page
                .items
                .iter()
                .any(|d| d.id == calm && d.status.as_ref().is_some_and(|s| !s.online))
        },
    )
    .await;

    let b = console.sign_in().await;
    let row = |name: &str| format!("[data-test=device-row][data-name='{name}']");
    wait_count(&b, "[data-test=device-row]", 3).await;
    wait_css(
        &b,
        &format!("{} [data-test=device-online][data-online=true]", row("hot")),
    )
    .await;
    wait_css(
        &b,
        &format!(
            "{} [data-test=device-alarm] [data-test=alarm-severity][data-severity=major]",
            row("hot")
        ),
    )
    .await;
    wait_text(
        &b,
        &format!("{} [data-test=device-last-seen]", row("hot")),
        "ago",
    )
    .await;
    wait_css(
        &b,
        &format!(
            "{} [data-test=device-online][data-online=false]",
            row("calm")
        ),
    )
    .await;
    wait_text(
        &b,
        &format!("{} [data-test=device-alarm]", row("calm")),
        "—",
    )
    .await;
    wait_text(
        &b,
        &format!("{} [data-test=device-last-seen]", row("calm")),
        "ago",
    )
    .await;
    wait_text(
        &b,
        &format!("{} [data-test=device-last-seen]", row("never-seen")),
        "Never",
    )
    .await;
    screenshot(&b, "devices-status").await;

    // Sorted by name, then by the worst alarm: the hot device comes first.
    let first = "tbody tr[data-test=device-row]:first-child";
    click(&b, "[data-test=device-sort] option[value=name]").await;
    wait_css(&b, &format!("{first}[data-name=calm]")).await;
    click(
        &b,
        "[data-test=device-sort] option[value='-alarm_severity']",
    )
    .await;
    wait_css(&b, &format!("{first}[data-name=hot]")).await;

    // Filtered to major alarms or worse, in the URL; none critical.
    click(&b, "[data-test=filter-alarm] option[value=major]").await;
    wait_count(&b, "[data-test=device-row]", 1).await;
    wait_css(&b, &row("hot")).await;
    let url = b.current_url().await.unwrap();
    assert_eq!(url.query(), Some("alarm_severity=major"));
    click(&b, "[data-test=filter-alarm] option[value=critical]").await;
    wait_text(&b, "h2", "No matching devices").await;
    click(&b, "[data-test=clear-filters]").await;
    wait_count(&b, "[data-test=device-row]", 3).await;
    online.disconnect().await;
}
