//! The audit log in the console: a tenant admin sees who changed what (with the fields an update
//! changed), filters by kind of change; an operator, who lacks `audit.read`, is not shown it.

use stead_api_types::Role;

use crate::browser::{Console, click, screenshot, submit_login, wait_count, wait_css, wait_text};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_admin_reads_and_filters_the_audit_log() {
    let console = Console::start().await;
    let acme = &console.acme;
    let device = crate::audit::created(&acme.admin, "pump-1").await;
    let reply = acme
        .admin
        .patch(
            &format!("/api/v1/devices/{}", device.device.id),
            &serde_json::json!({"name": "pump-one"}),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let reply = acme
        .admin
        .post(
            "/api/v1/users",
            &serde_json::json!({"email": "olga@acme.example.com", "password": "operator-password", "role": Role::Operator}),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 201, "{:?}", reply.body);

    let b = console.sign_in().await;
    click(&b, "[data-test=nav-audit]").await;
    wait_text(&b, "h1", "Audit log").await;
    // tenant.create, device.create, device.update, user.create: newest first.
    wait_count(&b, "[data-test=audit-row]", 4).await;
    wait_text(
        &b,
        "[data-test=audit-row] [data-test=audit-action]",
        "user.create",
    )
    .await;
    wait_text(
        &b,
        "[data-test=audit-row] [data-test=audit-changes]",
        "name: pump-1 → pump-one",
    )
    .await;
    wait_text(
        &b,
        "[data-test=audit-row] [data-test=audit-actor]",
        "admin@acme.example.com",
    )
    .await;
    screenshot(&b, "audit-log").await;

    // Only device changes, then only people.
    click(&b, "[data-test=audit-kind] option[value='device.']").await;
    wait_count(&b, "[data-test=audit-row]", 2).await;
    click(&b, "[data-test=audit-kind] option[value='user.']").await;
    wait_count(&b, "[data-test=audit-row]", 1).await;
    wait_text(
        &b,
        "[data-test=audit-row] [data-test=audit-changes]",
        "olga@acme.example.com",
    )
    .await;
    click(&b, "[data-test=audit-kind] option[value='profile.']").await;
    wait_css(&b, "[data-test=audit-empty]").await;

    // An operator has no audit log to see: no link, and the page says so.
    click(&b, "[data-test=logout]").await;
    submit_login(&b, "olga@acme.example.com", "operator-password").await;
    wait_text(&b, "[data-test=current-user]", "olga@acme.example.com").await;
    wait_css(&b, "[data-test=nav-devices]").await;
    assert!(
        b.find_all(fantoccini::Locator::Css("[data-test=nav-audit]"))
            .await
            .unwrap()
            .is_empty(),
        "an operator is shown the audit log"
    );
    b.goto(&format!("{}/audit", console.server.base))
        .await
        .unwrap();
    wait_text(&b, "h2", "Not available").await;
}
