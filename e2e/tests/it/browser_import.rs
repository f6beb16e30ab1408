//! Importing devices from CSV in the console: paste a file, check it (a dry run with a per-row
//! report), import it while the progress bar follows the job, then find the devices in the
//! device list filtered by their group.

use fantoccini::{Client as Browser, Locator};
use stead_api_types::{Device, DeviceGroup, Page};

use crate::browser::{
    Console, assert_shared, click, screenshot, text_of, wait_count, wait_css, wait_text,
};

const CSV: &str = "name,label,type,groups,shared:targetTemperature
imp-boiler-1,Boiler room,thermostat,Building A,21.5
imp-boiler-2,Boiler room,thermostat,Building A,22
imp-boiler-3,Roof,thermostat,Building A,19.5
imp-boiler-4,Roof,thermostat,Building A,20
imp-meter-1,Basement,meter,,";

/// The number on the count tile `key` (`total`, `created`, `failed`, …) of the card `card`.
async fn count(b: &Browser, card: &str, key: &str) -> u64 {
    let text = text_of(
        b,
        &format!("{card} [data-test=count][data-key={key}] .stat-value"),
    )
    .await;
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("count {key}: {text:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_a_csv_watch_it_run_and_find_the_devices_by_group() {
    let console = Console::start().await;
    let acme = &console.acme;
    let group: DeviceGroup = acme
        .admin
        .post("/api/v1/groups", &serde_json::json!({"name": "Building A"}))
        .await
        .unwrap()
        .ok()
        .unwrap();

    let b = console.sign_in().await;

    click(&b, "[data-test=nav-import]").await;
    wait_text(&b, "h1", "Import devices").await;
    wait_css(&b, "[data-test=import-csv]")
        .await
        .send_keys(CSV)
        .await
        .unwrap();

    // The check changes nothing and says what each row would do.
    click(&b, "[data-test=import-check]").await;
    wait_css(&b, "[data-test=import-report]").await;
    wait_count(&b, "[data-test=import-report] [data-test=import-row]", 5).await;
    wait_count(
        &b,
        "[data-test=import-report] [data-test=import-row][data-outcome=create]",
        5,
    )
    .await;
    assert_eq!(count(&b, "[data-test=import-report]", "total").await, 5);
    assert_eq!(count(&b, "[data-test=import-report]", "created").await, 5);
    assert_eq!(count(&b, "[data-test=import-report]", "failed").await, 0);
    screenshot(&b, "import-check").await;
    let before: Page<Device> = acme
        .admin
        .get("/api/v1/devices")
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(before.total, 0, "a check imports nothing");

    // The import runs as a job: the progress bar follows it to the end.
    click(&b, "[data-test=import-start]").await;
    wait_css(&b, "[data-test=import-job] [data-test=progress]").await;
    wait_css(&b, "[data-test=import-status] [data-status=finished]").await;
    let progress = text_of(&b, "[data-test=progress-text]").await;
    assert!(progress.starts_with("100 %"), "{progress}");
    assert!(progress.contains("5 of 5"), "{progress}");
    assert_eq!(count(&b, "[data-test=import-job]", "created").await, 5);
    assert_eq!(count(&b, "[data-test=import-job]", "failed").await, 0);
    screenshot(&b, "import-finished").await;

    // Generated tokens are offered once.
    click(&b, "[data-test=download-credentials]").await;
    wait_css(&b, "[data-test=credentials-downloaded]").await;

    // The device list, filtered by the group, shows the four devices of Building A.
    click(&b, "[data-test=open-devices]").await;
    wait_count(&b, "[data-test=device-row]", 5).await;
    click(
        &b,
        &format!("[data-test=filter-group] option[value='{}']", group.id),
    )
    .await;
    wait_count(&b, "[data-test=device-row]", 4).await;
    for row in b
        .find_all(Locator::Css("[data-test=device-row]"))
        .await
        .unwrap()
    {
        let text = row.text().await.unwrap();
        assert!(text.contains("imp-boiler-"), "{text}");
    }
    let url = b.current_url().await.unwrap();
    assert!(
        url.query()
            .unwrap_or_default()
            .contains(&group.id.to_string()),
        "the filter is in the URL: {url}"
    );
    screenshot(&b, "import-devices-by-group").await;

    // A reload keeps the filter (it lives in the URL).
    b.refresh().await.unwrap();
    wait_count(&b, "[data-test=device-row]", 4).await;

    // Bulk actions on the selection: disable the group's devices with a reason, enable them again.
    click(&b, "[data-test=select-all]").await;
    wait_text(&b, "[data-test=selection-count]", "4 devices selected").await;
    click(&b, "[data-test=bulk-disable]").await;
    click(&b, "[data-test=confirm]").await;
    wait_text(&b, ".modal [data-test=error]", "Say why").await;
    wait_css(&b, "[data-test=disable-reason]")
        .await
        .send_keys("Firmware recall")
        .await
        .unwrap();
    click(&b, "[data-test=confirm]").await;
    wait_count(&b, "[data-test=disabled-badge]", 4).await;
    screenshot(&b, "import-bulk-disabled").await;
    click(&b, "[data-test=select-all]").await;
    click(&b, "[data-test=bulk-enable]").await;
    wait_count(&b, "[data-test=disabled-badge]", 0).await;

    // The meter, found by its label, joins the group through the bulk "add to group".
    click(&b, "[data-test=clear-filters]").await;
    wait_count(&b, "[data-test=device-row]", 5).await;
    wait_css(&b, "[data-test=filter-label]")
        .await
        .send_keys("Basement")
        .await
        .unwrap();
    wait_count(&b, "[data-test=device-row]", 1).await;
    wait_text(&b, "[data-test=device-row]", "imp-meter-1").await;
    click(&b, "[data-test=select-device]").await;
    wait_text(&b, "[data-test=selection-count]", "1 device selected").await;
    click(&b, "[data-test=bulk-add-to-group]").await;
    click(
        &b,
        &format!("[data-test=bulk-group] option[value='{}']", group.id),
    )
    .await;
    click(&b, "[data-test=confirm]").await;
    wait_text(&b, ".toast-success", "added to the group").await;

    // The shared attribute came along.
    let in_group: Page<Device> = acme
        .admin
        .get(&format!("/api/v1/devices?group={}", group.id))
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(in_group.total, 5);
    let boiler = in_group
        .items
        .iter()
        .find(|d| d.name == "imp-boiler-2")
        .unwrap();
    assert_shared(acme, boiler.id, "targetTemperature", serde_json::json!(22)).await;
    b.close().await.unwrap();
}
