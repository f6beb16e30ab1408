//! The platform admin's tenant management.

use stead_api_types::{Me, Page, Role, Tenant, TenantStatus};

use crate::harness::{Backend, TestServer};
use crate::on_both_backends;

on_both_backends!(platform_admin_manages_tenants);

async fn platform_admin_manages_tenants(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;

    let created = admin
        .post("/api/v1/tenants", &serde_json::json!({"name": "Acme", "admin_email": "Boss@Acme.io", "admin_password": "acme-boss-password"}))
        .await
        .unwrap();
    assert_eq!(created.status, 201, "{:?}", created.body);
    let acme: Tenant = created.ok().unwrap();
    assert_eq!(acme.status, TenantStatus::Active);

    // The first tenant admin can log in (e-mail normalised) and belongs to the tenant.
    let (boss, _) = server
        .client()
        .login("boss@acme.io", "acme-boss-password")
        .await
        .unwrap();
    let me: Me = boss.get("/api/v1/me").await.unwrap().ok().unwrap();
    assert_eq!(me.role, Role::TenantAdmin);
    assert_eq!(me.tenant.unwrap().id, acme.id);

    let dup = admin
        .post("/api/v1/tenants", &serde_json::json!({"name": "Acme", "admin_email": "x@acme2.io", "admin_password": "acme-boss-password"}))
        .await
        .unwrap();
    assert_eq!(
        (dup.status.as_u16(), dup.code()),
        (409, "tenant_exists".into())
    );
    let taken = admin
        .post("/api/v1/tenants", &serde_json::json!({"name": "Acme 2", "admin_email": "boss@acme.io", "admin_password": "acme-boss-password"}))
        .await
        .unwrap();
    assert_eq!(
        (taken.status.as_u16(), taken.code()),
        (409, "email_taken".into())
    );
    // The failed creation left no half-made tenant behind.
    let weak = admin
        .post("/api/v1/tenants", &serde_json::json!({"name": "Weak", "admin_email": "w@weak.io", "admin_password": "short"}))
        .await
        .unwrap();
    assert_eq!(
        (weak.status.as_u16(), weak.code(), weak.error().field),
        (400, "weak_password".into(), Some("admin_password".into()))
    );
    let bad_email = admin
        .post("/api/v1/tenants", &serde_json::json!({"name": "Bad", "admin_email": "not-an-email", "admin_password": "long-enough-pass"}))
        .await
        .unwrap();
    assert_eq!(
        (bad_email.status.as_u16(), bad_email.code()),
        (400, "invalid_email".into())
    );

    admin
        .post("/api/v1/tenants", &serde_json::json!({"name": "Beta", "admin_email": "b@beta.io", "admin_password": "beta-boss-password"}))
        .await
        .unwrap()
        .ok::<Tenant>()
        .unwrap();
    let list: Page<Tenant> = admin.get("/api/v1/tenants").await.unwrap().ok().unwrap();
    let names: Vec<_> = list.items.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, vec!["Acme", "Beta"]);
    assert_eq!(list.total, 2);

    let got: Tenant = admin
        .get(&format!("/api/v1/tenants/{}", acme.id))
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(got, acme);
    let renamed: Tenant = admin
        .patch(
            &format!("/api/v1/tenants/{}", acme.id),
            &serde_json::json!({"name": "Acme Corp", "status": "suspended"}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(
        (renamed.name.as_str(), renamed.status),
        ("Acme Corp", TenantStatus::Suspended)
    );
    let missing = admin
        .get(&format!("/api/v1/tenants/{}", uuid::Uuid::new_v4()))
        .await
        .unwrap();
    assert_eq!(
        (missing.status.as_u16(), missing.code()),
        (404, "not_found".into())
    );
}
