//! Alarms in the console: a rule made through the REST API raises an alarm when a real MQTT client
//! (`mosquitto_pub`) sends a temperature above it; the alarm list and the bell show it without a
//! reload; a person acknowledges it from the list, comments on it, assigns it and clears it from
//! its page, and finds it on the device's Alarms tab. A second alarm is acknowledged and cleared as
//! a selection. Every step is checked through the API too.

use fantoccini::Client as Browser;
use serde_json::json;
use stead_api_types::{Alarm, AlarmDetail, AlarmPage, AlarmSeverity, Me};
use stead_e2e::Client;
use uuid::Uuid;

use crate::browser::{Console, click, screenshot, wait_count, wait_css, wait_text};
use crate::harness::TestServer;
use crate::mqtt::{device, mosquitto_pub};

fn publish(server: &TestServer, token: &str, temperature: u32) {
    let payload = json!({ "temperature": temperature }).to_string();
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

/// Closes the toasts, which may cover a button at the bottom right.
async fn dismiss_toasts(b: &Browser) {
    b.execute(
        "document.querySelectorAll('.toast-close').forEach(x => x.click()); return true;",
        vec![],
    )
    .await
    .unwrap();
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
