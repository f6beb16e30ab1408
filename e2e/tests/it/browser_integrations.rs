//! Integrations in the console, against the real Standard Webhooks receiver of `webhooks.rs`: a
//! tenant admin creates an endpoint, hands its secret (read from the one-time dialog) to the
//! receiver, and watches the delivery of a new device appear in the endpoint's log without a
//! reload; a replay carries the same `webhook-id` again, and "Send test event" arrives too.

use fantoccini::Locator;
use stead_api_types::WebhookEndpoint;

use crate::browser::{
    Driver, browser, click, fill, screenshot, shown_text, submit_login, text_of, wait_count,
    wait_css, wait_text,
};
use crate::harness::Backend;
use crate::mqtt::device;
use crate::webhooks::{Receiver, server};

/// A delivery row of the log, of one event type and status.
fn row(event: &str, status: &str) -> String {
    format!("[data-test=delivery-row][data-event='{event}'][data-status={status}]")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_made_in_the_console_shows_its_deliveries_live() {
    let s = server(Backend::Sqlite, &[]).await;
    let acme = s.tenant("Acme").await;
    let receiver = Receiver::start().await;
    let driver = Driver::start();
    let profile = tempfile::tempdir().unwrap();
    let b = browser(&driver, profile.path()).await;
    b.goto(&format!("{}/devices", s.base)).await.unwrap();
    submit_login(&b, "admin@acme.example.com", "tenant-admin-password").await;

    click(&b, "[data-test=nav-integrations]").await;
    wait_text(&b, "h1", "Integrations").await;
    wait_css(&b, "[data-test=no-endpoints]").await;
    wait_css(&b, "[data-test=nats-not-configured]").await;
    let docs = wait_css(&b, "[data-test=api-docs]").await;
    assert_eq!(
        docs.attr("href").await.unwrap().as_deref(),
        Some("/api/v1/docs")
    );
    screenshot(&b, "integrations-empty").await;

    // A new endpoint for the receiver, taking only device.created.
    click(&b, "[data-test=new-endpoint]").await;
    let url = receiver.url("console");
    fill(&b, "input[name=url]", &url).await;
    fill(&b, "input[name=description]", "Receiver of the test").await;
    wait_text(&b, "fieldset", "A device was created").await;
    click(&b, "input[data-test=event-type][value='device.created']").await;
    screenshot(&b, "integrations-new-endpoint").await;
    click(&b, "[data-test=save-endpoint]").await;
    let secret = shown_text(&b, "[data-test=webhook-secret]").await;
    let secret = secret.trim().to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    wait_css(&b, "[data-test=copy-webhook-secret]").await;
    screenshot(&b, "integrations-secret").await;
    receiver
        .control("console", serde_json::json!({"secrets": [secret]}))
        .await;
    click(&b, "[data-test=close-token]").await;
    wait_text(&b, "[data-test=endpoint-row]", &url).await;
    wait_text(&b, "[data-test=endpoint-events]", "device.created").await;
    wait_text(&b, "[data-test=endpoint-status]", "Enabled").await;
    let endpoints: Vec<WebhookEndpoint> = acme
        .admin
        .get("/api/v1/webhooks")
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(endpoints.len(), 1);
    assert_eq!(endpoints[0].url, url);
    assert_eq!(
        endpoints[0].event_types,
        [stead_api_types::EventType::DeviceCreated]
    );
    screenshot(&b, "integrations").await;

    // The endpoint's page: its secret on request, an empty log.
    click(&b, "[data-test=endpoint-link]").await;
    wait_text(&b, "[data-test=endpoint-title]", "Receiver of the test").await;
    wait_css(&b, "[data-test=no-deliveries]").await;
    click(&b, "[data-test=show-secret]").await;
    assert_eq!(
        shown_text(&b, "[data-test=shown-secret]").await.trim(),
        secret
    );

    // A device made through the API: its delivery shows up without a reload.
    device(&acme.admin, "pump-1").await;
    wait_css(&b, &row("device.created", "succeeded")).await;
    let got = receiver
        .wait("console", 20, "the device.created webhook", |g| {
            !g.is_empty()
        })
        .await;
    assert_eq!(got.len(), 1);
    assert!(got[0].verified, "signed with the secret the console showed");
    assert_eq!(got[0].event_type(), "device.created");
    assert_eq!(got[0].body["data"]["device"]["name"], "pump-1");

    // Its detail: the request as sent, and the attempt with the receiver's answer.
    click(
        &b,
        &format!(
            "{} [data-test=delivery-event]",
            row("device.created", "succeeded")
        ),
    )
    .await;
    wait_text(&b, "[data-test=delivery-request]", "pump-1").await;
    wait_text(&b, "[data-test=attempt-answer]", "200").await;
    wait_text(&b, "[data-test=attempt-row]", "\"ok\": true").await;
    assert_eq!(
        text_of(&b, "[data-test=delivery-event-id]").await.trim(),
        got[0].id.as_deref().unwrap()
    );
    screenshot(&b, "integrations-delivery").await;
    click(
        &b,
        "[data-test=delivery-detail] ~ .modal-actions .button-secondary",
    )
    .await;
    wait_count(&b, "[data-test=delivery-detail]", 0).await;

    // Replay: a second delivery, the same webhook-id at the receiver.
    click(&b, "[data-test=replay-delivery]").await;
    wait_count(&b, &row("device.created", "succeeded"), 2).await;
    wait_css(&b, "[data-test=delivery-replay]").await;
    let got = receiver
        .wait("console", 20, "the replay", |g| g.len() >= 2)
        .await;
    assert_eq!(got.len(), 2);
    assert!(got[1].verified);
    assert_eq!(
        got[1].id, got[0].id,
        "a replay carries the event's webhook-id"
    );

    // The test event, which the filter does not take, goes to this endpoint all the same.
    click(&b, "[data-test=send-test]").await;
    wait_css(&b, &row("webhook.test", "succeeded")).await;
    let got = receiver
        .wait("console", 20, "the test event", |g| {
            g.iter().any(|r| r.event_type() == "webhook.test")
        })
        .await;
    assert!(got.iter().all(|r| r.verified));
    wait_count(&b, "[data-test=delivery-row]", 3).await;
    screenshot(&b, "integrations-endpoint").await;

    // The status filter.
    click(&b, "[data-test=delivery-filter-failed]").await;
    wait_text(&b, "[data-test=no-deliveries]", "No failed deliveries").await;
    click(&b, "[data-test=delivery-filter-succeeded]").await;
    wait_count(&b, "[data-test=delivery-row]", 3).await;

    // Turned off from its page; the list says so.
    click(&b, "[data-test=toggle-endpoint]").await;
    wait_text(&b, "[data-test=endpoint-status]", "Off").await;
    click(&b, "[data-test=nav-integrations]").await;
    wait_text(
        &b,
        "[data-test=endpoint-row] [data-test=endpoint-status]",
        "Off",
    )
    .await;
    assert!(
        b.find_all(Locator::Css("[data-test=webhook-secret]"))
            .await
            .unwrap()
            .is_empty()
    );
    b.close().await.unwrap();
}
