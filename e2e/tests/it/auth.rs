//! Logging in, sessions, token forgery, throttling.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{EncodingKey, Header};
use stead_api_types::{Me, Permission, Role, TokenResponse};

use crate::harness::{Backend, Options, TestServer};
use crate::on_both_backends;

on_both_backends!(
    login_me_refresh_logout,
    refresh_reuse_revokes_the_family,
    forged_and_expired_tokens_are_refused,
    failed_logins_are_throttled_per_account,
    logins_are_throttled_per_address,
    deactivated_users_and_suspended_tenants_are_refused,
);

async fn login_me_refresh_logout(backend: Backend) {
    let server = TestServer::start(backend).await;
    let anon = server.client();

    let wrong = anon
        .post(
            "/api/v1/auth/login",
            &serde_json::json!({"email": server.admin_email, "password": "not-the-password"}),
        )
        .await
        .unwrap();
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.code(), "invalid_credentials");
    let unknown = anon
        .post(
            "/api/v1/auth/login",
            &serde_json::json!({"email": "nobody@test.local", "password": "whatever-password"}),
        )
        .await
        .unwrap();
    assert_eq!(
        (unknown.status.as_u16(), unknown.code()),
        (401, "invalid_credentials".into())
    );

    // E-mail is case-insensitive.
    let (admin, tokens) = anon
        .login(&server.admin_email.to_uppercase(), &server.admin_password)
        .await
        .unwrap();
    assert!(tokens.expires_in > 0 && tokens.expires_in <= 900);
    assert_eq!(tokens.token_type, "Bearer");
    let me: Me = admin.get("/api/v1/me").await.unwrap().ok().unwrap();
    assert_eq!(me.email, server.admin_email);
    assert_eq!(me.role, Role::PlatformAdmin);
    assert_eq!(me.permissions, vec![Permission::TenantsManage]);

    let refreshed: TokenResponse = anon
        .post(
            "/api/v1/auth/refresh",
            &serde_json::json!({"refresh_token": tokens.refresh_token}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_ne!(refreshed.refresh_token, tokens.refresh_token);
    let me2: Me = anon
        .with_token(&refreshed.access_token)
        .get("/api/v1/me")
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(me2.id, me.id);

    let out = anon
        .post(
            "/api/v1/auth/logout",
            &serde_json::json!({"refresh_token": refreshed.refresh_token}),
        )
        .await
        .unwrap();
    assert_eq!(out.status, 204);
    let after = anon
        .post(
            "/api/v1/auth/refresh",
            &serde_json::json!({"refresh_token": refreshed.refresh_token}),
        )
        .await
        .unwrap();
    assert_eq!(after.status, 401, "{:?}", after.body);
}

async fn refresh_reuse_revokes_the_family(backend: Backend) {
    let server = TestServer::start(backend).await;
    let anon = server.client();
    let (_, first) = anon
        .login(&server.admin_email, &server.admin_password)
        .await
        .unwrap();
    // A second, independent session must survive the theft of the first.
    let (_, other_session) = anon
        .login(&server.admin_email, &server.admin_password)
        .await
        .unwrap();

    let second: TokenResponse = anon
        .post(
            "/api/v1/auth/refresh",
            &serde_json::json!({"refresh_token": first.refresh_token}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    // The old token is presented again: theft. The whole family ends, including `second`.
    let reuse = anon
        .post(
            "/api/v1/auth/refresh",
            &serde_json::json!({"refresh_token": first.refresh_token}),
        )
        .await
        .unwrap();
    assert_eq!(
        (reuse.status.as_u16(), reuse.code()),
        (401, "refresh_token_reused".into())
    );
    let revoked = anon
        .post(
            "/api/v1/auth/refresh",
            &serde_json::json!({"refresh_token": second.refresh_token}),
        )
        .await
        .unwrap();
    assert_eq!(revoked.status, 401);

    let other = anon
        .post(
            "/api/v1/auth/refresh",
            &serde_json::json!({"refresh_token": other_session.refresh_token}),
        )
        .await
        .unwrap();
    assert_eq!(
        other.status, 200,
        "another session is untouched: {:?}",
        other.body
    );

    let garbage = anon
        .post(
            "/api/v1/auth/refresh",
            &serde_json::json!({"refresh_token": "made-up"}),
        )
        .await
        .unwrap();
    assert_eq!(
        (garbage.status.as_u16(), garbage.code()),
        (401, "invalid_refresh_token".into())
    );
}

fn sign(claims: &serde_json::Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::default(),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

async fn forged_and_expired_tokens_are_refused(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (admin, tokens) = server
        .client()
        .login(&server.admin_email, &server.admin_password)
        .await
        .unwrap();
    let me: Me = admin.get("/api/v1/me").await.unwrap().ok().unwrap();
    let now = chrono::Utc::now().timestamp();
    let claims = |exp: i64| serde_json::json!({"sub": me.id, "iss": "stead", "aud": "stead-api", "iat": now - 10, "exp": exp});

    // Properly signed with the server's key, but expired an hour ago.
    let expired = sign(&claims(now - 3600), &server.jwt_secret);
    let r = server
        .client()
        .with_token(expired)
        .get("/api/v1/me")
        .await
        .unwrap();
    assert_eq!((r.status.as_u16(), r.code()), (401, "token_expired".into()));

    // Properly signed and valid: the forge itself works, so the refusals below are about the forgery.
    let genuine = sign(&claims(now + 300), &server.jwt_secret);
    assert_eq!(
        server
            .client()
            .with_token(genuine)
            .get("/api/v1/me")
            .await
            .unwrap()
            .status,
        200
    );

    // Another key.
    let other_key = sign(
        &claims(now + 300),
        "some-other-secret-some-other-secret-1234",
    );
    // alg: none, no signature.
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims(now + 300).to_string());
    let alg_none = format!("{header}.{payload}.");
    // A real token with its payload changed (another user id), signature kept.
    let parts: Vec<&str> = tokens.access_token.split('.').collect();
    let mut body: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    body["sub"] = serde_json::json!(uuid::Uuid::new_v4());
    let altered_payload = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(body.to_string()),
        parts[2]
    );
    // A real token with a flipped signature.
    let mut sig = parts[2].to_string();
    let flipped = if sig.ends_with('A') { 'B' } else { 'A' };
    sig.pop();
    sig.push(flipped);
    let altered_sig = format!("{}.{}.{sig}", parts[0], parts[1]);

    for (what, token) in [
        ("another key", other_key),
        ("alg none", alg_none),
        ("altered payload", altered_payload),
        ("altered signature", altered_sig),
        ("garbage", "not-a-token".to_string()),
    ] {
        let r = server
            .client()
            .with_token(token)
            .get("/api/v1/me")
            .await
            .unwrap();
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (401, "invalid_token".into()),
            "{what}: {:?}",
            r.body
        );
    }
    let r = server.client().get("/api/v1/me").await.unwrap();
    assert_eq!((r.status.as_u16(), r.code()), (401, "missing_token".into()));
}

async fn failed_logins_are_throttled_per_account(backend: Backend) {
    let server = TestServer::start(backend).await;
    let anon = server.client();
    server.tenant("Other").await;
    // Default: 5 failures per account per 15 minutes.
    for i in 0..5 {
        let r = anon
            .post("/api/v1/auth/login", &serde_json::json!({"email": server.admin_email, "password": format!("wrong-{i}-password")}))
            .await
            .unwrap();
        assert_eq!(r.status, 401, "attempt {i}");
    }
    // Now even the right password is refused until the window ends.
    let r = anon
        .post(
            "/api/v1/auth/login",
            &serde_json::json!({"email": server.admin_email, "password": server.admin_password}),
        )
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (429, "too_many_attempts".into())
    );
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry > 0 && retry <= 900, "{retry}");
    // Another account is not affected.
    anon.login("admin@other.example.com", "tenant-admin-password")
        .await
        .unwrap();
}

async fn logins_are_throttled_per_address(backend: Backend) {
    let server = TestServer::start_with(
        backend,
        Options::default().env("STEAD_LOGIN_MAX_ATTEMPTS_PER_IP", "6"),
    )
    .await;
    let anon = server.client();
    let mut statuses = Vec::new();
    for i in 0..8 {
        // Different accounts each time: the per-account limit never triggers.
        let r = anon
            .post("/api/v1/auth/login", &serde_json::json!({"email": format!("user{i}@test.local"), "password": "wrong-password-x"}))
            .await
            .unwrap();
        statuses.push(r.status.as_u16());
    }
    assert_eq!(statuses, vec![401, 401, 401, 401, 401, 401, 429, 429]);
}

async fn deactivated_users_and_suspended_tenants_are_refused(backend: Backend) {
    let server = TestServer::start(backend).await;
    let platform = server.admin().await;
    let acme = server.tenant("Acme").await;
    let operator = server.user(&acme, Role::Operator).await;
    let me: Me = operator.get("/api/v1/me").await.unwrap().ok().unwrap();

    // Deactivation takes effect on the very next request, not when the token expires.
    let r = acme
        .admin
        .patch(
            &format!("/api/v1/users/{}", me.id),
            &serde_json::json!({"active": false}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = operator.get("/api/v1/devices").await.unwrap();
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (401, "account_disabled".into())
    );
    let r = server
        .client()
        .post(
            "/api/v1/auth/login",
            &serde_json::json!({"email": me.email, "password": "user-password-123"}),
        )
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (401, "account_disabled".into())
    );

    // Suspension stops the whole tenant; reactivation lets it back in.
    let path = format!("/api/v1/tenants/{}", acme.tenant.id);
    let r = platform
        .patch(&path, &serde_json::json!({"status": "suspended"}))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let r = acme.admin.get("/api/v1/devices").await.unwrap();
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (403, "tenant_suspended".into())
    );
    let r = server.client().post("/api/v1/auth/login", &serde_json::json!({"email": "admin@acme.example.com", "password": "tenant-admin-password"})).await.unwrap();
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (403, "tenant_suspended".into())
    );
    platform
        .patch(&path, &serde_json::json!({"status": "active"}))
        .await
        .unwrap()
        .ok::<serde_json::Value>()
        .unwrap();
    assert_eq!(acme.admin.get("/api/v1/devices").await.unwrap().status, 200);
}
