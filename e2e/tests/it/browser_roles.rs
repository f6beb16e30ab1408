//! Roles and API keys in the console: a tenant admin makes a custom role, gives it to a person
//! over one device group, and that person, signed in, sees only that group's devices and none of
//! the pages their role does not allow; an API key is made (its secret shown once) and revoked.

use fantoccini::Locator;
use serde_json::json;
use stead_api_types::{DeviceGroup, RoleBinding, RoleRef, User};

use crate::browser::{
    Console, click, screenshot, shown_text, submit_login, wait_count, wait_css, wait_gone,
    wait_text,
};
use crate::mqtt::device;

const SUPPORT: &str = "support@acme.example.com";
const SUPPORT_PASSWORD: &str = "support-password-1";

async fn type_into(b: &fantoccini::Client, css: &str, text: &str) {
    let field = wait_css(b, css).await;
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_role_over_one_group_shows_only_that_groups_devices() {
    let console = Console::start().await;
    let admin = &console.acme.admin;
    let (pump, _) = device(admin, "pump-1").await;
    device(admin, "valve-9").await;
    let north: DeviceGroup = admin
        .post("/api/v1/groups", &json!({"name": "north"}))
        .await
        .unwrap()
        .ok()
        .unwrap();
    admin
        .post(
            &format!("/api/v1/groups/{}/devices", north.id),
            &json!({"device_ids": [pump]}),
        )
        .await
        .unwrap()
        .ok::<serde_json::Value>()
        .unwrap();
    let support: User = admin
        .post(
            "/api/v1/users",
            &json!({"email": SUPPORT, "password": SUPPORT_PASSWORD, "role": "member"}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();

    let b = console.sign_in().await;
    // The custom role, with the permission picker.
    click(&b, "[data-test=nav-roles]").await;
    wait_text(&b, "h1", "Roles").await;
    wait_count(&b, "[data-test=builtin-role]", 4).await;
    click(&b, "[data-test=new-role]").await;
    type_into(&b, "input[name=name]", "Support").await;
    click(&b, "input[data-test=permission][value='devices.read']").await;
    click(&b, "input[data-test=permission][value='commands.send']").await;
    click(&b, "[data-test=save-role]").await;
    wait_text(&b, "[data-test=role-row]", "Support").await;
    wait_text(&b, "[data-test=role-row]", "commands.send").await;
    screenshot(&b, "roles").await;

    // Given to the support person over the group `north` only.
    click(&b, "[data-test=nav-users]").await;
    wait_count(&b, "[data-test=user-row]", 2).await;
    let rows = b
        .find_all(Locator::Css("[data-test=user-row]"))
        .await
        .unwrap();
    let mut opened = false;
    for row in rows {
        if row.text().await.unwrap().contains(SUPPORT) {
            row.find(Locator::Css("[data-test=user-access]"))
                .await
                .unwrap()
                .click()
                .await
                .unwrap();
            opened = true;
        }
    }
    assert!(opened, "the support person's row has an Access button");
    click(&b, "[data-test=add-binding]").await;
    let roles: Vec<stead_api_types::CustomRole> =
        admin.get("/api/v1/roles").await.unwrap().ok().unwrap();
    let role = roles.iter().find(|r| r.name == "Support").unwrap();
    wait_css(&b, "[data-test=binding-role]")
        .await
        .select_by_value(&role.id.to_string())
        .await
        .unwrap();
    click(
        &b,
        &format!("input[data-test=binding-group][value='{}']", north.id),
    )
    .await;
    wait_text(&b, "[data-test=binding]", "Only over the ticked groups").await;
    screenshot(&b, "user-access").await;
    click(&b, "[data-test=save-access]").await;
    wait_text(&b, ".toast", "access is saved").await;
    let bindings: Vec<RoleBinding> = admin
        .get(&format!("/api/v1/users/{}/bindings", support.id))
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(bindings.len(), 1);
    assert_eq!(bindings[0].role, RoleRef::Custom(role.id));
    assert_eq!(bindings[0].groups, vec![north.id]);

    // Signed in as them: one device, no way to add any, no people or roles pages.
    click(&b, "[data-test=logout]").await;
    submit_login(&b, SUPPORT, SUPPORT_PASSWORD).await;
    wait_text(&b, "[data-test=current-user]", SUPPORT).await;
    click(&b, "[data-test=nav-devices]").await;
    wait_count(&b, "[data-test=device-row]", 1).await;
    wait_text(&b, "[data-test=device-row]", "pump-1").await;
    screenshot(&b, "group-scoped-devices").await;
    for hidden in [
        "[data-test=new-device]",
        "[data-test=nav-users]",
        "[data-test=nav-roles]",
        "[data-test=nav-import]",
        "[data-test=nav-api-keys]",
        "[data-test=nav-audit]",
    ] {
        assert!(
            b.find_all(Locator::Css(hidden)).await.unwrap().is_empty(),
            "{hidden} is not shown"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_key_is_shown_once_and_revoked() {
    let console = Console::start().await;
    let b = console.sign_in().await;
    click(&b, "[data-test=nav-api-keys]").await;
    wait_text(&b, "h1", "API keys").await;
    wait_css(&b, "[data-test=no-api-keys]").await;
    click(&b, "[data-test=new-api-key]").await;
    type_into(&b, "input[name=description]", "ERP sync").await;
    click(&b, "[data-test=create-api-key]").await;
    let secret = shown_text(&b, "[data-test=api-key-secret]").await;
    assert!(secret.starts_with("stead_"), "{secret}");
    screenshot(&b, "api-key-created").await;
    let key = console.server.client().with_token(&secret);
    assert_eq!(key.get("/api/v1/devices").await.unwrap().status, 200);
    click(&b, "[data-test=close-token]").await;
    wait_text(&b, "[data-test=api-key-row]", "ERP sync").await;
    wait_text(&b, "[data-test=api-key-prefix]", &secret[..12]).await;
    assert!(
        !b.source().await.unwrap().contains(&secret),
        "the secret is gone from the page once closed"
    );
    click(&b, "[data-test=revoke-api-key]").await;
    click(&b, "[data-test=confirm]").await;
    wait_text(&b, "[data-test=api-key-row]", "Revoked").await;
    wait_gone(&b, "[data-test=revoke-api-key]").await;
    assert_eq!(key.get("/api/v1/devices").await.unwrap().status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_usage_page_shows_each_quota() {
    let console = Console::start().await;
    let platform = console.server.admin().await;
    platform
        .patch(
            &format!("/api/v1/tenants/{}", console.acme.tenant.id),
            &json!({"quotas": {"devices": 4, "data_points_per_day": 100}}),
        )
        .await
        .unwrap()
        .ok::<serde_json::Value>()
        .unwrap();
    let (_, token) = device(&console.acme.admin, "pump-1").await;
    // Three data points today, counted once the node shares them (within a second).
    let sent = console
        .server
        .client()
        .raw(
            reqwest::Method::POST,
            &format!("/api/v1/{token}/telemetry"),
            "application/json",
            r#"{"a":1,"b":2,"c":3}"#.to_string(),
        )
        .await
        .unwrap();
    assert_eq!(sent.status, 200);
    crate::mqtt::eventually("the day's data points are counted", || async {
        let u: stead_api_types::Usage = console
            .acme
            .admin
            .get("/api/v1/usage")
            .await
            .unwrap()
            .ok()
            .unwrap();
        u.data_points_today.used == 3
    })
    .await;
    let b = console.sign_in().await;
    click(&b, "[data-test=nav-usage]").await;
    wait_text(&b, "h1", "Usage").await;
    wait_text(&b, "[data-test=quota-devices]", "25 % · 1 of 4").await;
    wait_text(&b, "[data-test=quota-users]", "1 of 1000").await;
    wait_text(&b, "[data-test=quota-data-points]", "3 of 100").await;
    screenshot(&b, "usage").await;
}
