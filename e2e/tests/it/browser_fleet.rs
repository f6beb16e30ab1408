//! Fleet management in the console: profiles (a provisioning secret shown once, the default's
//! deletion refused with the server's reason), groups (created, a device joined from its page,
//! the device list filtered by it, an attribute set on the whole group), and a command to an
//! offline device refused with a hint.

use fantoccini::Locator;
use stead_api_types::CreatedDevice;

use crate::browser::{
    Console, assert_shared, click, screenshot, shown_text, text_of, wait_count, wait_css,
    wait_gone, wait_text,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiles_groups_and_commands_from_the_console() {
    let console = Console::start().await;
    let (server, acme) = (&console.server, &console.acme);
    let mut devices = Vec::new();
    for name in ["pump-1", "pump-2", "valve-1"] {
        let created: CreatedDevice = acme
            .admin
            .post("/api/v1/devices", &serde_json::json!({"name": name}))
            .await
            .unwrap()
            .ok()
            .unwrap();
        devices.push(created.device);
    }

    let b = console.sign_in().await;
    wait_count(&b, "[data-test=device-row]", 3).await;

    // Profiles: a new one that lets devices provision themselves shows its secret once.
    click(&b, "[data-test=nav-profiles]").await;
    wait_css(&b, "[data-test=default-profile]").await;
    click(&b, "[data-test=new-profile]").await;
    wait_css(&b, "input[name=name]")
        .await
        .send_keys("Pumps")
        .await
        .unwrap();
    click(
        &b,
        "select[name=provision_strategy] option[value=allow_create]",
    )
    .await;
    wait_css(&b, "input[name=inactivity_timeout_secs]")
        .await
        .send_keys("600")
        .await
        .unwrap();
    wait_css(&b, "input[name=device_messages]")
        .await
        .send_keys("50:1,1000:60")
        .await
        .unwrap();
    click(&b, "[data-test=save-profile]").await;
    let secret = shown_text(&b, "[data-test=provision-secret]").await;
    assert!(secret.trim().len() >= 16, "the secret is shown: {secret:?}");
    wait_css(&b, "[data-test=provision-key]").await;
    screenshot(&b, "profile-secret").await;
    click(&b, "[data-test=close-token]").await;
    wait_text(&b, "[data-test=profile-row]", "Pumps").await;
    wait_text(&b, "[data-test=profile-row]", "10 min").await;
    screenshot(&b, "profiles").await;

    // The default profile is in use: deleting it is refused, with the server's reason shown.
    let rows = b
        .find_all(Locator::Css("[data-test=profile-row]"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    click(&b, "[data-test=profile-row] [data-test=make-default]").await;
    wait_text(&b, "[data-test=profile-row]", "Default").await;
    let started = std::time::Instant::now();
    loop {
        // Once "Pumps" is the default, the other profile (with the three devices) may be deleted.
        let default_row = text_of(
            &b,
            "[data-test=profile-row]:has([data-test=default-profile])",
        )
        .await;
        if default_row.contains("Pumps") {
            break;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    click(&b, "[data-test=profile-row] [data-test=delete-profile]").await;
    click(&b, "[data-test=confirm]").await;
    wait_css(&b, ".modal [data-test=error]").await;
    screenshot(&b, "profile-delete-refused").await;
    click(&b, "[data-test=cancel]").await;

    // Groups: create one, join a device to it from the device page.
    click(&b, "[data-test=nav-groups]").await;
    click(&b, "[data-test=new-group]").await;
    wait_css(&b, "input[name=name]")
        .await
        .send_keys("Station 4")
        .await
        .unwrap();
    click(&b, "[data-test=save-group]").await;
    wait_text(&b, "[data-test=group-row]", "Station 4").await;
    wait_text(&b, "[data-test=group-devices]", "0 devices").await;

    b.goto(&format!("{}/devices/{}", server.base, devices[0].id))
        .await
        .unwrap();
    wait_text(&b, "h1", "pump-1").await;
    wait_css(&b, "[data-test=join-group] option:nth-child(2)").await;
    click(&b, "[data-test=join-group] option:nth-child(2)").await;
    wait_text(&b, "[data-test=device-group]", "Station 4").await;
    screenshot(&b, "device-overview").await;

    // The command form checks params before sending; an offline device refuses the command.
    click(&b, "[data-test=tab-commands]").await;
    wait_css(&b, "[data-test=rpc-method]")
        .await
        .send_keys("setValve")
        .await
        .unwrap();
    wait_css(&b, "[data-test=rpc-params]")
        .await
        .send_keys("{open: true}")
        .await
        .unwrap();
    click(&b, "[data-test=rpc-send]").await;
    wait_text(&b, "[data-test=error]", "not valid JSON").await;
    let params = wait_css(&b, "[data-test=rpc-params]").await;
    params.clear().await.unwrap();
    params.send_keys("{\"open\": true}").await.unwrap();
    click(&b, "[data-test=rpc-send]").await;
    wait_css(&b, "[data-test=rpc-result][data-status=device_offline]").await;
    // Persistent: queued for when it connects, and listed as such.
    click(&b, "[data-test=rpc-persistent]").await;
    click(&b, "[data-test=rpc-send]").await;
    wait_css(&b, "[data-test=rpc-result][data-status=QUEUED]").await;
    wait_css(&b, "[data-test=rpc-row][data-status=QUEUED]").await;
    wait_css(&b, "[data-test=rpc-polling]").await;
    screenshot(&b, "device-commands").await;

    // The group's link opens the device list filtered by it; an attribute goes to all its devices.
    click(&b, "[data-test=nav-groups]").await;
    wait_text(&b, "[data-test=group-devices]", "1 device").await;
    click(&b, "[data-test=group-set-attribute]").await;
    wait_css(&b, "input[name=attribute_key]")
        .await
        .send_keys("maxPressure")
        .await
        .unwrap();
    wait_css(&b, "textarea[name=attribute_value]")
        .await
        .send_keys("6.5")
        .await
        .unwrap();
    click(&b, "[data-test=save-attribute]").await;
    wait_gone(&b, ".modal").await;
    wait_text(&b, ".toast-success", "Set on 1 device").await;
    screenshot(&b, "groups").await;
    click(&b, "[data-test=group-devices]").await;
    wait_count(&b, "[data-test=device-row]", 1).await;
    wait_text(&b, "[data-test=device-row]", "pump-1").await;
    screenshot(&b, "devices-by-group").await;

    assert_shared(acme, devices[0].id, "maxPressure", serde_json::json!(6.5)).await;
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_tab_sets_rotates_and_revokes_credentials_and_quarantines_the_device() {
    let console = Console::start().await;
    let (server, acme) = (&console.server, &console.acme);
    let created: CreatedDevice = acme
        .admin
        .post("/api/v1/devices", &serde_json::json!({"name": "pump-7"}))
        .await
        .unwrap()
        .ok()
        .unwrap();
    let b = console.sign_in().await;
    b.goto(&format!(
        "{}/devices/{}?tab=credentials",
        server.base, created.device.id
    ))
    .await
    .unwrap();
    wait_text(&b, "[data-test=credentials-type]", "Access token").await;
    wait_text(&b, "[data-test=credentials-expiry]", "Never").await;

    // MQTT user name and password, the password generated and shown once.
    click(&b, "[data-test=set-credentials]").await;
    wait_css(&b, "input[name=mqtt_username]")
        .await
        .send_keys("pump-7-user")
        .await
        .unwrap();
    click(&b, "[data-test=save-credentials]").await;
    wait_text(&b, "[data-test=mqtt-username]", "pump-7-user").await;
    let password = shown_text(&b, "[data-test=mqtt-password]").await;
    assert!(password.trim().len() >= 16, "{password:?}");
    screenshot(&b, "credentials-mqtt").await;
    click(&b, "[data-test=close-token]").await;
    wait_text(&b, "[data-test=credentials-type]", "MQTT user name").await;

    // Rotating keeps the user name and issues a new password.
    click(&b, "[data-test=rotate-token]").await;
    click(&b, "[data-test=confirm]").await;
    let rotated = shown_text(&b, "[data-test=mqtt-password]").await;
    assert_ne!(rotated, password);
    click(&b, "[data-test=close-token]").await;

    // Quarantine: a reason is required; the device page says it is disabled, and why.
    click(&b, "[data-test=disable-device]").await;
    click(&b, "[data-test=confirm]").await;
    wait_text(&b, ".modal [data-test=error]", "Say why").await;
    wait_css(&b, "[data-test=disable-reason]")
        .await
        .send_keys("Tampering alarm")
        .await
        .unwrap();
    click(&b, "[data-test=confirm]").await;
    wait_text(&b, "[data-test=device-status]", "Disabled").await;
    wait_text(&b, "[data-test=disabled-reason]", "Tampering alarm").await;
    wait_css(&b, "header [data-test=disabled-badge]").await;
    screenshot(&b, "credentials-disabled").await;
    click(&b, "[data-test=enable-device]").await;
    wait_text(&b, "[data-test=device-status]", "Enabled").await;

    // Revoked: no credentials at all until new ones are set.
    click(&b, "[data-test=revoke-credentials]").await;
    click(&b, "[data-test=confirm]").await;
    wait_text(&b, "[data-test=credentials-type]", "None (revoked)").await;
    let device: stead_api_types::Device = acme
        .admin
        .get(&format!("/api/v1/devices/{}", created.device.id))
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(
        device.credentials_type,
        stead_api_types::CredentialsType::None
    );
    assert_eq!(device.disabled_reason, None);

    // Credentials that expire soon are flagged on the tab and named on the device list.
    let expires = chrono::Utc::now() + chrono::Duration::days(5);
    let reply = acme
        .admin
        .send(
            reqwest::Method::PUT,
            &format!("/api/v1/devices/{}/credentials", created.device.id),
            Some(&serde_json::json!({"type": "access_token", "expires_at": expires})),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    b.refresh().await.unwrap();
    wait_css(&b, "[data-test=credentials-expiry] [data-status=soon]").await;
    click(&b, "[data-test=nav-devices]").await;
    wait_text(&b, "[data-test=expiring-credentials]", "pump-7").await;
    screenshot(&b, "devices-expiring").await;
    b.close().await.unwrap();
}
