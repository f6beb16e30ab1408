//! A tenant admin manages their tenant's people; other tenants' people are invisible.

use stead_api_types::{Me, Page, Role, User};

use crate::harness::{Backend, TestServer};
use crate::on_both_backends;

on_both_backends!(
    tenant_admin_manages_users,
    users_of_another_tenant_are_not_found
);

async fn tenant_admin_manages_users(backend: Backend) {
    let server = TestServer::start(backend).await;
    let acme = server.tenant("Acme").await;
    let me: Me = acme.admin.get("/api/v1/me").await.unwrap().ok().unwrap();

    let created = acme
        .admin
        .post("/api/v1/users", &serde_json::json!({"email": "Op@Acme.io", "password": "operator-password", "role": "operator", "name": "Olga"}))
        .await
        .unwrap();
    assert_eq!(created.status, 201, "{:?}", created.body);
    let op: User = created.ok().unwrap();
    assert_eq!(
        (op.email.as_str(), op.role, op.active, op.name.as_str()),
        ("op@acme.io", Role::Operator, true, "Olga")
    );
    server
        .client()
        .login("op@acme.io", "operator-password")
        .await
        .unwrap();

    let dup = acme
        .admin
        .post("/api/v1/users", &serde_json::json!({"email": "op@acme.io", "password": "operator-password", "role": "viewer"}))
        .await
        .unwrap();
    assert_eq!(
        (dup.status.as_u16(), dup.code()),
        (409, "email_taken".into())
    );
    let pa = acme
        .admin
        .post("/api/v1/users", &serde_json::json!({"email": "pa@acme.io", "password": "operator-password", "role": "platform_admin"}))
        .await
        .unwrap();
    assert_eq!(
        (pa.status.as_u16(), pa.code()),
        (400, "invalid_role".into())
    );
    let bad_role = acme
        .admin
        .post("/api/v1/users", &serde_json::json!({"email": "x@acme.io", "password": "operator-password", "role": "god"}))
        .await
        .unwrap();
    assert_eq!(
        (bad_role.status.as_u16(), bad_role.error().field),
        (400, Some("role".into()))
    );

    // Change role, then password: the old password stops working and sessions end.
    let path = format!("/api/v1/users/{}", op.id);
    let (op_client, op_tokens) = server
        .client()
        .login("op@acme.io", "operator-password")
        .await
        .unwrap();
    let viewer: User = acme
        .admin
        .patch(&path, &serde_json::json!({"role": "viewer"}))
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(viewer.role, Role::Viewer);
    let me_op: Me = op_client.get("/api/v1/me").await.unwrap().ok().unwrap();
    assert_eq!(
        me_op.role,
        Role::Viewer,
        "a role change applies to live tokens at once"
    );
    acme.admin
        .patch(
            &path,
            &serde_json::json!({"password": "a-brand-new-password"}),
        )
        .await
        .unwrap()
        .ok::<User>()
        .unwrap();
    let refresh = server
        .client()
        .post(
            "/api/v1/auth/refresh",
            &serde_json::json!({"refresh_token": op_tokens.refresh_token}),
        )
        .await
        .unwrap();
    assert_eq!(refresh.status, 401);
    assert_eq!(
        server
            .client()
            .post(
                "/api/v1/auth/login",
                &serde_json::json!({"email": "op@acme.io", "password": "operator-password"})
            )
            .await
            .unwrap()
            .status,
        401
    );
    server
        .client()
        .login("op@acme.io", "a-brand-new-password")
        .await
        .unwrap();

    // A tenant admin cannot lock themself out.
    let self_path = format!("/api/v1/users/{}", me.id);
    let r = acme
        .admin
        .patch(&self_path, &serde_json::json!({"active": false}))
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (409, "cannot_modify_self".into())
    );
    let r = acme
        .admin
        .patch(&self_path, &serde_json::json!({"role": "viewer"}))
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (409, "cannot_modify_self".into())
    );

    let list: Page<User> = acme.admin.get("/api/v1/users").await.unwrap().ok().unwrap();
    let emails: Vec<_> = list.items.iter().map(|u| u.email.as_str()).collect();
    assert_eq!(emails, vec!["admin@acme.example.com", "op@acme.io"]);
}

async fn users_of_another_tenant_are_not_found(backend: Backend) {
    let server = TestServer::start(backend).await;
    let a = server.tenant("Alpha").await;
    let b = server.tenant("Bravo").await;
    let a_user: User = a
        .admin
        .post("/api/v1/users", &serde_json::json!({"email": "v@alpha.io", "password": "viewer-password", "role": "viewer"}))
        .await
        .unwrap()
        .ok()
        .unwrap();
    let path = format!("/api/v1/users/{}", a_user.id);
    let r = b.admin.get(&path).await.unwrap();
    assert_eq!((r.status.as_u16(), r.code()), (404, "not_found".into()));
    let r = b
        .admin
        .patch(
            &path,
            &serde_json::json!({"active": false, "password": "hijacked-password"}),
        )
        .await
        .unwrap();
    assert_eq!((r.status.as_u16(), r.code()), (404, "not_found".into()));
    // Untouched: still active, still logs in with its own password.
    server
        .client()
        .login("v@alpha.io", "viewer-password")
        .await
        .unwrap();
    let list: Page<User> = b.admin.get("/api/v1/users").await.unwrap().ok().unwrap();
    assert!(
        list.items
            .iter()
            .all(|u| u.email.ends_with("bravo.example.com")),
        "{:?}",
        list.items
    );
    assert_eq!(list.total, 1);
}
