//! Over-the-air updates in the console: a firmware image uploaded through the form (its bytes
//! followed by the progress bar; stored with the right SHA-256, listed with its checksums), the
//! server's refusals shown in the dialog (too large, the version exists); the package assigned on
//! a device's Firmware tab, where the update is followed as the device reports it with
//! `mosquitto_pub` (downloading, updated; another device's failure with its error, withdrawn); the
//! version chart showing what the devices report; deleting a package in use refused with the
//! server's message. A signing key added and removed, and a package signed by it marked signed
//! (a forged signature refused on its field). Every step is checked through the API too.

use fantoccini::Client as Browser;
use serde_json::json;
use sha2::{Digest, Sha256};
use stead_api_types::{ChecksumAlgorithm, DeviceOtaTarget, OtaState, Package};
use stead_e2e::Client;
use uuid::Uuid;

use crate::browser::{Console, click, fill, screenshot, wait_css, wait_gone, wait_text};
use crate::harness::{Options, TestServer};
use crate::mqtt::{device, mosquitto_pub};

/// The size limit the server is started with.
const LIMIT: usize = 2 << 20;

/// `n` bytes, the same on every run.
fn image(n: usize, seed: usize) -> Vec<u8> {
    (0..n).map(|i| ((i * 31 + seed) % 251) as u8).collect()
}

/// The device's telemetry, as its SDK reports an update's state.
fn report(server: &TestServer, token: &str, payload: serde_json::Value) {
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

async fn packages(c: &Client) -> Vec<Package> {
    c.get("/api/v1/ota/packages").await.unwrap().ok().unwrap()
}

async fn targets(c: &Client, device: Uuid) -> Vec<DeviceOtaTarget> {
    c.get(&format!("/api/v1/devices/{device}/ota"))
        .await
        .unwrap()
        .ok()
        .unwrap()
}

/// Opens the upload dialog and fills it in: the file (written to `dir`), title, version.
async fn upload_form(b: &Browser, dir: &std::path::Path, bytes: &[u8], title: &str, version: &str) {
    let file = dir.join(format!("{title}-{version}.bin"));
    std::fs::write(&file, bytes).unwrap();
    click(b, "[data-test=upload-package]").await;
    wait_css(b, "[data-test=package-file]")
        .await
        .send_keys(file.to_str().unwrap())
        .await
        .unwrap();
    // The file's name suggests a title; the person sets their own.
    wait_text(
        b,
        "[data-test=package-file-size]",
        &format!("{title}-{version}.bin"),
    )
    .await;
    fill(b, "input[name=title]", title).await;
    fill(b, "input[name=version]", version).await;
}

/// The firmware card of the device page, and something in it.
fn firmware(css: &str) -> String {
    format!("[data-test=ota-kind][data-kind=firmware] {css}")
}

/// Opens the device's Firmware tab from the device list.
async fn firmware_tab(b: &Browser, name: &str) {
    click(b, "[data-test=nav-devices]").await;
    click(b, &format!("[data-test=device-row][data-name='{name}']")).await;
    wait_text(b, "h1", name).await;
    click(b, "[data-test=tab-firmware]").await;
    wait_css(b, "[data-test=device-firmware]").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_package_is_uploaded_assigned_followed_and_kept_while_in_use() {
    let console = Console::start_with(
        Options::default().env("STEAD_OTA_MAX_PACKAGE_BYTES", LIMIT.to_string()),
    )
    .await;
    let (server, c) = (&console.server, &console.acme.admin);
    let (pump1, token1) = device(c, "pump-1").await;
    let (pump2, token2) = device(c, "pump-2").await;
    let files = tempfile::tempdir().unwrap();
    let fw = image(3 << 19, 7);
    let sha = format!("{:x}", Sha256::digest(&fw));

    let b = console.sign_in().await;
    click(&b, "[data-test=nav-firmware]").await;
    wait_text(&b, "h1", "Firmware").await;
    wait_css(&b, "[data-test=no-packages]").await;
    wait_text(
        &b,
        "[data-test=version-chart] .chart-empty",
        "No device has reported",
    )
    .await;

    // Uploaded through the form, its bytes followed by the bar to the end.
    upload_form(&b, files.path(), &fw, "pump-fw", "1.2.0").await;
    fill(&b, "textarea[name=description]", "Spring release").await;
    b.execute(
        "window.__progress = [];
         new MutationObserver(() => {
           const t = document.querySelector('[data-test=upload-progress] [data-test=progress-text]');
           if (t && !window.__progress.includes(t.textContent)) window.__progress.push(t.textContent);
         }).observe(document.body, {subtree: true, childList: true, characterData: true});
         return true;",
        vec![],
    )
    .await
    .unwrap();
    click(&b, "[data-test=submit-upload]").await;
    let row = "[data-test=package-row][data-title=pump-fw][data-version='1.2.0']";
    wait_css(&b, row).await;
    wait_gone(&b, "[data-test=upload-form]").await;
    let seen = b
        .execute("return window.__progress;", vec![])
        .await
        .unwrap();
    let seen: Vec<String> = serde_json::from_value(seen).unwrap();
    assert!(
        seen.iter()
            .any(|s| s.starts_with("100 % · 1.5 MiB of 1.5 MiB")),
        "the bar reached the end: {seen:?}"
    );

    // Stored with the image's SHA-256, listed with it.
    let stored = packages(c).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    let p = &stored[0];
    assert_eq!(
        (p.title.as_str(), p.version.as_str(), p.size),
        ("pump-fw", "1.2.0", fw.len() as u64)
    );
    assert_eq!(p.checksums[&ChecksumAlgorithm::Sha256], sha);
    assert_eq!(p.description, "Spring release");
    let listed = wait_css(&b, &format!("{row} [data-test=package-sha256]")).await;
    assert_eq!(
        listed.attr("title").await.unwrap().as_deref(),
        Some(sha.as_str())
    );
    wait_text(&b, &format!("{row} [data-test=package-size]"), "1.5 MiB").await;
    wait_text(&b, &format!("{row} [data-test=package-signed]"), "Unsigned").await;
    click(&b, &format!("{row} [data-test=show-checksums]")).await;
    wait_text(&b, "[data-test=checksum-SHA256]", &sha).await;
    wait_text(
        &b,
        "[data-test=checksum-MD5]",
        &p.checksums[&ChecksumAlgorithm::Md5],
    )
    .await;
    screenshot(&b, "ota-checksums").await;
    click(&b, "[data-test=close-checksums]").await;

    // Refused, with the server's reason in the dialog: too large, then a version that exists.
    upload_form(&b, files.path(), &image(LIMIT + 1, 8), "pump-fw", "2.0.0").await;
    click(&b, "[data-test=submit-upload]").await;
    wait_text(&b, "[data-test=upload-form] [data-test=error]", "at most").await;
    click(&b, "[data-test=cancel-upload]").await;
    upload_form(&b, files.path(), &image(1000, 9), "pump-fw", "1.2.0").await;
    click(&b, "[data-test=submit-upload]").await;
    wait_text(
        &b,
        "[data-test=upload-form] [data-test=error]",
        "give the new one another version",
    )
    .await;
    screenshot(&b, "ota-upload-refused").await;
    click(&b, "[data-test=cancel-upload]").await;
    assert_eq!(packages(c).await.len(), 1);

    // Assigned on the device's Firmware tab; the device reports its way to the new version.
    firmware_tab(&b, "pump-1").await;
    wait_css(&b, &firmware("[data-test=no-ota-target]")).await;
    wait_text(&b, &firmware("[data-test=ota-current]"), "Nothing reported").await;
    click(&b, &firmware("[data-test=assign-package]")).await;
    wait_css(&b, &firmware("[data-test=ota-state][data-state=NOTIFIED]")).await;
    let t = targets(c, pump1).await;
    assert_eq!(t.len(), 1, "{t:?}");
    assert_eq!(
        (t[0].package_id, t[0].state, t[0].title.as_str()),
        (p.id, OtaState::Notified, "pump-fw")
    );
    report(server, &token1, json!({"fw_state": "DOWNLOADING"}));
    wait_css(
        &b,
        &firmware("[data-test=ota-state][data-state=DOWNLOADING]"),
    )
    .await;
    report(
        server,
        &token1,
        json!({"fw_state": "UPDATED", "current_fw_title": "pump-fw", "current_fw_version": "1.2.0"}),
    );
    wait_css(&b, &firmware("[data-test=ota-state][data-state=UPDATED]")).await;
    wait_text(&b, &firmware("[data-test=ota-current]"), "pump-fw 1.2.0").await;
    screenshot(&b, "ota-device-updated").await;

    // Another device runs an older version and fails to download the new one: its error shows;
    // the target is withdrawn.
    report(
        server,
        &token2,
        json!({"fw_state": "IDLE", "current_fw_title": "pump-fw", "current_fw_version": "1.1.0"}),
    );
    firmware_tab(&b, "pump-2").await;
    wait_text(&b, &firmware("[data-test=ota-current]"), "pump-fw 1.1.0").await;
    click(&b, &firmware("[data-test=assign-package]")).await;
    wait_css(&b, &firmware("[data-test=ota-state][data-state=NOTIFIED]")).await;
    report(
        server,
        &token2,
        json!({"fw_state": "FAILED", "fw_error": "Checksum verification failed!"}),
    );
    wait_css(&b, &firmware("[data-test=ota-state][data-state=FAILED]")).await;
    wait_text(
        &b,
        &firmware("[data-test=ota-reason]"),
        "Checksum verification failed!",
    )
    .await;
    screenshot(&b, "ota-device-failed").await;
    click(&b, &firmware("[data-test=withdraw-package]")).await;
    click(&b, "[data-test=confirm]").await;
    wait_css(&b, &firmware("[data-test=no-ota-target]")).await;
    assert!(targets(c, pump2).await.is_empty());

    // What the fleet runs: one device on 1.2.0, one on 1.1.0.
    click(&b, "[data-test=nav-firmware]").await;
    let bar = |version: &str| {
        format!(
            "[data-test=version-chart] [data-test=chart-bar][data-label='pump-fw {version}'][data-value='1']"
        )
    };
    wait_css(&b, &bar("1.2.0")).await;
    wait_css(&b, &bar("1.1.0")).await;
    wait_text(&b, "[data-test=version-total]", "2 devices").await;
    screenshot(&b, "ota-library").await;

    // pump-1 still has it as its target: deleting it is refused, with the server's reason.
    click(&b, &format!("{row} [data-test=delete-package]")).await;
    click(&b, "[data-test=confirm]").await;
    wait_text(
        &b,
        ".modal [data-test=error]",
        "1 device(s) have this package",
    )
    .await;
    screenshot(&b, "ota-delete-refused").await;
    click(&b, "[data-test=cancel]").await;
    assert_eq!(packages(c).await.len(), 1);
    wait_css(&b, row).await;
}

/// A signing key added in the console (a malformed one refused on its field); a software package
/// signed by another key refused on its Signature field, then signed by the tenant's key and
/// marked signed; the kind filter; the key removed, the package still marked signed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signing_key_marks_packages_signed_in_the_console() {
    use base64::Engine as _;
    use ed25519_dalek::Signer as _;

    let console = Console::start().await;
    let c = &console.acme.admin;
    let files = tempfile::tempdir().unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    let signer = ed25519_dalek::SigningKey::from_bytes(&[42; 32]);
    let sw = image(200_000, 11);
    let digest = Sha256::digest(&sw);
    let good = b64.encode(signer.sign(&digest).to_bytes());
    let forged = b64.encode(
        ed25519_dalek::SigningKey::from_bytes(&[43; 32])
            .sign(&digest)
            .to_bytes(),
    );

    let b = console.sign_in().await;
    click(&b, "[data-test=nav-firmware]").await;
    wait_css(&b, "[data-test=no-signing-keys]").await;
    click(&b, "[data-test=add-signing-key]").await;
    fill(&b, "input[name=key_name]", "release").await;
    fill(&b, "input[name=public_key]", "not-a-key").await;
    click(&b, "[data-test=save-signing-key]").await;
    wait_text(&b, ".modal [data-test=error-field]", "public_key").await;
    fill(
        &b,
        "input[name=public_key]",
        &b64.encode(signer.verifying_key().as_bytes()),
    )
    .await;
    click(&b, "[data-test=save-signing-key]").await;
    wait_css(&b, "[data-test=signing-key-row][data-name=release]").await;
    let keys: Vec<stead_api_types::SigningKey> = c
        .get("/api/v1/ota/signing-keys")
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");

    // Signed by a key the tenant does not have: refused on the signature, which unfolds.
    upload_form(&b, files.path(), &sw, "agent", "2.0").await;
    click(&b, "select[name=kind] option[value=software]").await;
    click(&b, "[data-test=upload-verification]").await;
    fill(&b, "input[name=signature]", &forged).await;
    click(&b, "[data-test=submit-upload]").await;
    wait_text(
        &b,
        "[data-test=upload-form] [data-test=error-field]",
        "signature",
    )
    .await;
    wait_text(
        &b,
        "[data-test=upload-form] [data-test=error]",
        "Signature:",
    )
    .await;
    screenshot(&b, "ota-signature-refused").await;
    fill(&b, "input[name=signature]", &good).await;
    click(&b, "[data-test=submit-upload]").await;
    let row = "[data-test=package-row][data-title=agent]";
    wait_text(&b, &format!("{row} [data-test=package-signed]"), "Signed").await;
    wait_text(&b, &format!("{row} [data-test=package-kind]"), "Software").await;
    let stored = packages(c).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0].signing_key_id, Some(keys[0].id));
    assert_eq!(stored[0].kind, stead_api_types::PackageKind::Software);

    // The kind filter.
    click(&b, "[data-test=packages-firmware]").await;
    wait_css(&b, "[data-test=no-packages]").await;
    click(&b, "[data-test=packages-software]").await;
    wait_css(&b, row).await;

    // The key goes; what it signed stays signed.
    click(
        &b,
        "[data-test=signing-key-row][data-name=release] [data-test=delete-signing-key]",
    )
    .await;
    click(&b, "[data-test=confirm]").await;
    wait_css(&b, "[data-test=no-signing-keys]").await;
    wait_text(&b, &format!("{row} [data-test=package-signed]"), "Signed").await;
    screenshot(&b, "ota-signed").await;
    let keys: Vec<stead_api_types::SigningKey> = c
        .get("/api/v1/ota/signing-keys")
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert!(keys.is_empty());
}
