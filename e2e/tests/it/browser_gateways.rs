//! Gateways in the console: a device made a gateway in the "New device" dialog connects over
//! MQTT and speaks for two devices (ThingsBoard's Gateway API); the gateway's page lists them with
//! who is online, read again by itself when one disconnects; a device behind it links back; the
//! device list filters by gateway; a device becomes a gateway from its edit form, and a gateway
//! with devices behind it cannot stop being one.

use serde_json::json;

use crate::browser::{Console, click, screenshot, shown_text, wait_count, wait_css, wait_text};
use crate::gateway::{named, publish_acked};
use crate::mqtt_raw::Raw;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_shows_the_devices_behind_it() {
    let console = Console::start().await;
    let c = &console.acme.admin;
    let b = console.sign_in().await;

    // A gateway, made in the console; its token is shown once.
    click(&b, "[data-test=new-device]").await;
    wait_css(&b, "input[name=name]")
        .await
        .send_keys("gw-hall")
        .await
        .unwrap();
    click(&b, "[data-test=new-device-gateway]").await;
    click(&b, "form button[type=submit]").await;
    let token = shown_text(&b, "[data-test=device-token]").await;
    let token = token.trim().to_owned();
    click(&b, "[data-test=close-token]").await;
    wait_text(&b, "[data-test=device-row]", "gw-hall").await;
    wait_text(&b, "[data-test=gateway-badge]", "Gateway").await;
    let gw = named(c, "gw-hall").await.unwrap();
    assert!(gw.gateway, "made a gateway through the console: {gw:?}");

    // Its page: nobody behind it yet.
    b.goto(&format!("{}/devices/{}", console.server.base, gw.id))
        .await
        .unwrap();
    wait_css(&b, "[data-test=no-sub-devices]").await;

    // The gateway connects two devices behind it (created on first sight).
    let (mut g, code) = Raw::connect(&console.server.mqtt, &token, 30, None).await;
    assert_eq!(code, 0);
    publish_acked(
        &mut g,
        1,
        "v1/gateway/connect",
        json!({"device": "sensor-a", "type": "thermometer"}),
    )
    .await;
    publish_acked(
        &mut g,
        2,
        "v1/gateway/connect",
        json!({"device": "sensor-b", "type": "thermometer"}),
    )
    .await;
    publish_acked(
        &mut g,
        3,
        "v1/gateway/telemetry",
        json!({"sensor-a": [{"ts": crate::mqtt::ts0(), "values": {"t": 21.5}}]}),
    )
    .await;
    // Read again by itself: no reload.
    wait_count(&b, "[data-test=sub-device]", 2).await;
    wait_count(&b, "[data-test=sub-device-online]", 2).await;
    wait_text(&b, "[data-test=sub-device-counts]", "2 · 2 online").await;
    wait_text(&b, "[data-test=sub-device]", "thermometer").await;
    screenshot(&b, "gateway-sub-devices").await;

    // One goes away; the list says so without a reload.
    publish_acked(
        &mut g,
        4,
        "v1/gateway/disconnect",
        json!({"device": "sensor-b"}),
    )
    .await;
    wait_count(&b, "[data-test=sub-device-online]", 1).await;
    wait_count(&b, "[data-test=sub-device-offline]", 1).await;
    wait_text(&b, "[data-test=sub-device-counts]", "2 · 1 online").await;

    // A device behind it is marked so and links back to its gateway.
    click(&b, "[data-test=sub-device] a").await;
    wait_text(&b, "h1", "sensor-a").await;
    wait_text(&b, "[data-test=sub-device-badge]", "Sub-device").await;
    wait_text(&b, "[data-test=gateway-link]", "gw-hall").await;
    screenshot(&b, "sub-device").await;
    click(&b, "[data-test=gateway-link]").await;
    wait_text(&b, "h1", "gw-hall").await;

    // The device list, narrowed to the gateway's devices.
    click(&b, "[data-test=all-sub-devices]").await;
    wait_text(&b, "[data-test=filter-gateway]", "gw-hall").await;
    wait_count(&b, "[data-test=device-row]", 2).await;
    wait_count(&b, "[data-test=sub-device-badge]", 2).await;
    screenshot(&b, "devices-behind-gateway").await;
    click(&b, "[data-test=filter-gateway] button").await;
    wait_count(&b, "[data-test=device-row]", 3).await;

    // A gateway with devices behind it cannot stop being one: the server's reason is shown.
    b.goto(&format!("{}/devices/{}", console.server.base, gw.id))
        .await
        .unwrap();
    wait_count(&b, "[data-test=sub-device]", 2).await;
    click(&b, "[data-test=edit-gateway]").await;
    click(&b, "[data-test=save-device]").await;
    wait_text(&b, "[data-test=error]", "behind this gateway").await;
    assert!(named(c, "gw-hall").await.unwrap().gateway);
    g.disconnect().await;

    // A plain device becomes a gateway from its edit form.
    let plain = crate::mqtt::device(c, "becomes-gateway").await.0;
    b.goto(&format!("{}/devices/{plain}", console.server.base))
        .await
        .unwrap();
    wait_text(&b, "h1", "becomes-gateway").await;
    click(&b, "[data-test=edit-gateway]").await;
    click(&b, "[data-test=save-device]").await;
    wait_text(&b, "[data-test=gateway-badge]", "Gateway").await;
    wait_css(&b, "[data-test=no-sub-devices]").await;
    assert!(named(c, "becomes-gateway").await.unwrap().gateway);
}
