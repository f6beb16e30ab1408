//! OTA campaigns in the console, over a simulated fleet (`stead-e2e simulate-ota`): a package
//! uploaded and a group of four devices made through the API; a campaign made in the wizard
//! (the matching devices counted as groups and a profile are chosen, the server's refusal of
//! the waves shown on its field), refused a start by its author (four eyes), started by a second
//! tenant admin, followed live as the devices update (counts per state, the bar, the chart, each
//! device's steps), paused with a reason and seen paused, resumed and seen completed, then
//! deleted. Every step is checked through the API too.

use std::process::Stdio;
use std::time::Duration;

use fantoccini::Client as Browser;
use reqwest::Method;
use serde_json::json;
use stead_api_types::{
    Campaign, CampaignDevice, CampaignStatus, DeviceProfile, OtaState, Package, Page, Role,
    Rollout, User,
};
use stead_e2e::Client;
use uuid::Uuid;

use crate::browser::{
    Console, click, fill, screenshot, submit_login, wait_count, wait_css, wait_gone, wait_text,
};
use crate::harness::TestServer;
use crate::mqtt::device;

const APPROVER: &str = "approver@acme.example.com";
const APPROVER_PASSWORD: &str = "approver-password-123";

/// Simulated devices that take every update well, running `pump-fw 1.0` at first.
fn simulate(server: &TestServer, tokens: &[String]) -> tokio::process::Child {
    let args = [
        "simulate-ota",
        "--mqtt",
        &server.mqtt,
        "--tokens",
        &tokens.join(","),
        "--title",
        "pump-fw",
        "--version",
        "1.0",
        "--telemetry-ms",
        "500",
        "--duration",
        "300",
        "--succeed",
        "100",
    ];
    tokio::process::Command::new(env!("CARGO_BIN_EXE_stead-e2e"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("stead-e2e simulate-ota")
}

async fn campaigns(c: &Client) -> Vec<Campaign> {
    let page: Page<Campaign> = c.get("/api/v1/ota/campaigns").await.unwrap().ok().unwrap();
    page.items
}

async fn campaign(c: &Client, id: Uuid) -> Campaign {
    c.get(&format!("/api/v1/ota/campaigns/{id}"))
        .await
        .unwrap()
        .ok()
        .unwrap()
}

fn n(c: &Campaign, s: OtaState) -> u64 {
    c.counts.get(&s).copied().unwrap_or(0)
}

/// The count of devices in `state` on the campaign page.
fn count(state: &str, n: u64) -> String {
    format!("[data-test=state-count][data-state={state}][data-count='{n}']")
}

/// Waits (up to 60 s) for `css`: a live page, read again by itself.
async fn wait_long(b: &Browser, css: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if b.find(fantoccini::Locator::Css(css)).await.is_ok() {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            screenshot(b, "campaign-timeout").await;
            panic!("never appeared: {css}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_is_made_in_the_wizard_approved_by_another_followed_paused_and_resumed() {
    let console = Console::start().await;
    let (server, c) = (&console.server, &console.acme.admin);

    // Set up through the API: a package, a group of four devices and one device outside it.
    let r = c
        .raw(
            Method::POST,
            "/api/v1/ota/packages?kind=firmware&title=pump-fw&version=2.0",
            "application/octet-stream",
            crate::ota::image(64 * 1024, 2),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    let package: Package = r.ok().unwrap();
    let group: serde_json::Value = c
        .post("/api/v1/groups", &json!({"name": "pumps"}))
        .await
        .unwrap()
        .ok()
        .unwrap();
    let group = Uuid::parse_str(group["id"].as_str().unwrap()).unwrap();
    let mut ids = Vec::new();
    let mut tokens = Vec::new();
    for i in 0..4 {
        let (id, token) = device(c, &format!("pump-{i}")).await;
        ids.push(id);
        tokens.push(token);
    }
    device(c, "spare").await;
    let r = c
        .post(
            &format!("/api/v1/groups/{group}/devices"),
            &json!({"device_ids": ids}),
        )
        .await
        .unwrap();
    assert!(r.status.is_success(), "{}", r.body);
    let profiles: Vec<DeviceProfile> = c.get("/api/v1/profiles").await.unwrap().ok().unwrap();
    let default_profile = profiles.iter().find(|p| p.is_default).unwrap().id;
    let r = c
        .post(
            "/api/v1/users",
            &json!({"email": APPROVER, "password": APPROVER_PASSWORD, "role": Role::TenantAdmin}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    let approver: User = r.ok().unwrap();
    // The fleet is online, running 1.0, before anything starts.
    let _fleet = simulate(server, &tokens);

    // The list, empty; the wizard.
    let b = console.sign_in().await;
    click(&b, "[data-test=nav-firmware]").await;
    click(&b, "[data-test=firmware-tab-campaigns]").await;
    wait_text(&b, "h1", "Campaigns").await;
    wait_css(&b, "[data-test=no-campaigns]").await;
    click(&b, "[data-test=new-campaign]").await;
    wait_text(&b, "h1", "New campaign").await;
    wait_text(&b, "[data-test=target-count]", "Choose groups or a profile").await;
    fill(&b, "input[name=name]", "spring release").await;
    click(
        &b,
        &format!(
            "[data-test=campaign-package-select] option[value='{}']",
            package.id
        ),
    )
    .await;

    // The devices matching, counted as the choice changes.
    click(
        &b,
        &format!("input[data-test=campaign-group][value='{group}']"),
    )
    .await;
    wait_text(&b, "[data-test=target-count]", "4 devices match").await;
    click(
        &b,
        &format!("[data-test=campaign-profile] option[value='{default_profile}']"),
    )
    .await;
    wait_text(&b, "[data-test=target-count]", "5 devices match").await;
    click(&b, "[data-test=campaign-profile] option[value='']").await;
    wait_text(&b, "[data-test=target-count]", "4 devices match").await;
    screenshot(&b, "campaign-wizard").await;

    // Two waves instead of four; a last wave short of 100 is refused on its field.
    click(&b, "[data-test=remove-wave]").await;
    click(&b, "[data-test=remove-wave]").await;
    wait_css(&b, "[data-test=waves]").await;
    let boxes = b
        .find_all(fantoccini::Locator::Css("[data-test=wave-percent]"))
        .await
        .unwrap();
    assert_eq!(boxes.len(), 2);
    for (input, value) in boxes.iter().zip(["25", "90"]) {
        input.clear().await.unwrap();
        input.send_keys(value).await.unwrap();
    }
    click(&b, "[data-test=campaign-health]").await;
    fill(&b, "input[name=health_secs]", "8").await;
    click(&b, "[data-test=save-campaign]").await;
    wait_text(&b, "[data-test=error-field]", "rollout.percents").await;
    wait_text(&b, "[data-test=error]", "Waves").await;
    assert!(campaigns(c).await.is_empty());
    let last = b
        .find_all(fantoccini::Locator::Css("[data-test=wave-percent]"))
        .await
        .unwrap();
    last[1].clear().await.unwrap();
    last[1].send_keys("100").await.unwrap();
    click(&b, "[data-test=save-campaign]").await;

    // Saved as a draft, with what the form said.
    wait_text(&b, "[data-test=campaign-title]", "spring release").await;
    wait_css(&b, "[data-test=campaign-status][data-status=draft]").await;
    let made = campaigns(c).await;
    assert_eq!(made.len(), 1, "{made:?}");
    let id = made[0].id;
    let spec = &made[0].spec;
    assert_eq!(made[0].status, CampaignStatus::Draft);
    assert_eq!(spec.package_id, package.id);
    assert_eq!(spec.target.group_ids, vec![group]);
    assert_eq!(spec.target.profile_id, None);
    assert_eq!(
        spec.rollout,
        Rollout::Waves {
            percents: vec![25, 100]
        }
    );
    assert_eq!(spec.health.as_ref().map(|h| h.secs), Some(8));
    assert!(spec.four_eyes);
    assert!(
        b.current_url()
            .await
            .unwrap()
            .path()
            .ends_with(&format!("/firmware/campaigns/{id}"))
    );
    wait_text(&b, "[data-test=campaign-rollout]", "25, 100").await;
    wait_text(&b, "[data-test=four-eyes-note]", "someone other than you").await;

    // Its author may not start it.
    click(&b, "[data-test=start-campaign]").await;
    wait_text(&b, "[data-test=campaign-action-error]", "second person").await;
    screenshot(&b, "campaign-four-eyes").await;
    let r = c
        .post(&format!("/api/v1/ota/campaigns/{id}/start"), &json!({}))
        .await
        .unwrap();
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.to_string().contains("four_eyes"), "{}", r.body);
    assert_eq!(campaign(c, id).await.status, CampaignStatus::Draft);

    // The second admin starts it.
    // The sidebar's foot lies below the fold of the test's window: clicked by script.
    wait_css(&b, "[data-test=logout]").await;
    b.execute(
        "document.querySelector('[data-test=logout]').click(); return true;",
        vec![],
    )
    .await
    .unwrap();
    wait_css(&b, "input[name=email]").await;
    submit_login(&b, APPROVER, APPROVER_PASSWORD).await;
    wait_text(&b, "[data-test=current-user]", APPROVER).await;
    click(&b, "[data-test=nav-firmware]").await;
    click(&b, "[data-test=firmware-tab-campaigns]").await;
    wait_css(&b, "[data-test=campaign-row][data-status=draft]").await;
    click(&b, "[data-test=campaign-link]").await;
    wait_text(&b, "[data-test=four-eyes-note]", "its author may not").await;
    click(&b, "[data-test=start-campaign]").await;
    wait_css(&b, "[data-test=campaign-status][data-status=running]").await;
    let running = campaign(c, id).await;
    assert_eq!(running.status, CampaignStatus::Running);
    assert_eq!(running.approved_by, Some(approver.id));

    // Followed live: the first wave's device updates and is watched.
    wait_long(&b, "[data-test=state-count][data-state=VERIFYING_HEALTH]").await;
    wait_css(&b, "[data-test=campaign-wave][data-wave='1']").await;
    screenshot(&b, "campaign-running").await;
    let now = campaign(c, id).await;
    assert_eq!(now.devices, 4, "{now:?}");
    assert_eq!(now.status, CampaignStatus::Running);

    // Paused with a reason; the device under watch finishes, no other is notified.
    click(&b, "[data-test=pause-campaign]").await;
    fill(
        &b,
        "[data-test=campaign-action-reason]",
        "waiting for the night shift",
    )
    .await;
    click(&b, "[data-test=confirm]").await;
    wait_css(&b, "[data-test=campaign-status][data-status=paused]").await;
    wait_text(
        &b,
        "[data-test=campaign-reason]",
        "waiting for the night shift",
    )
    .await;
    let paused = campaign(c, id).await;
    assert_eq!(paused.status, CampaignStatus::Paused);
    assert_eq!(
        paused.reason.as_deref(),
        Some("waiting for the night shift")
    );
    wait_long(&b, &count("SUCCEEDED", 1)).await;
    wait_css(&b, &count("QUEUED", 3)).await;
    wait_css(
        &b,
        "[data-test=campaign-progress][data-succeeded='1'][data-total='4']",
    )
    .await;
    screenshot(&b, "campaign-paused").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let still = campaign(c, id).await;
    assert_eq!(still.status, CampaignStatus::Paused);
    assert_eq!(n(&still, OtaState::Queued), 3, "{still:?}");
    assert_eq!(n(&still, OtaState::Succeeded), 1, "{still:?}");

    // The succeeded device's steps, under the state filter.
    click(
        &b,
        "[data-test=device-state-filter] option[value=SUCCEEDED]",
    )
    .await;
    wait_css(&b, "[data-test=campaign-device-row][data-state=SUCCEEDED]").await;
    wait_gone(&b, "[data-test=campaign-device-row][data-state=QUEUED]").await;
    let done: Page<CampaignDevice> = c
        .get(&format!(
            "/api/v1/ota/campaigns/{id}/devices?state=SUCCEEDED"
        ))
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(done.items.len(), 1);
    assert!(ids.contains(&done.items[0].device_id));
    let history: Vec<&str> = done.items[0]
        .history
        .iter()
        .map(|s| s.state.as_str())
        .collect();
    for step in ["NOTIFIED", "VERIFYING_HEALTH", "SUCCEEDED"] {
        assert!(history.contains(&step), "{history:?}");
    }
    // The page lists the same steps as the API.
    click(&b, "[data-test=show-steps]").await;
    wait_count(&b, "[data-test=device-step]", history.len()).await;
    for step in &history {
        wait_css(&b, &format!("[data-test=device-step][data-state={step}]")).await;
    }
    click(&b, "[data-test=device-state-filter] option[value='']").await;
    wait_css(&b, "[data-test=no-failures]").await;

    // Resumed: the second wave, to the end.
    click(&b, "[data-test=resume-campaign]").await;
    wait_css(&b, "[data-test=campaign-status][data-status=running]").await;
    assert_eq!(campaign(c, id).await.status, CampaignStatus::Running);
    wait_long(&b, "[data-test=campaign-status][data-status=completed]").await;
    wait_css(&b, &count("SUCCEEDED", 4)).await;
    wait_text(&b, "[data-test=campaign-progress-text]", "4 succeeded of 4").await;
    wait_css(&b, "[data-test=progress-chart] svg .chart-dot").await;
    screenshot(&b, "campaign-completed").await;
    let completed = campaign(c, id).await;
    assert_eq!(completed.status, CampaignStatus::Completed);
    assert_eq!(n(&completed, OtaState::Succeeded), 4, "{completed:?}");
    assert!(completed.finished_at.is_some());

    // In the list, complete; then deleted.
    click(&b, "[data-test=firmware-tab-campaigns]").await;
    wait_css(
        &b,
        &format!("[data-test=campaign-row][data-id='{id}'][data-status=completed] [data-test=campaign-progress][data-succeeded='4']"),
    )
    .await;
    click(&b, "[data-test=campaign-link]").await;
    click(&b, "[data-test=delete-campaign]").await;
    click(&b, "[data-test=confirm]").await;
    wait_css(&b, "[data-test=no-campaigns]").await;
    let r = c.get(&format!("/api/v1/ota/campaigns/{id}")).await.unwrap();
    assert_eq!(r.status, 404, "{}", r.body);
}
