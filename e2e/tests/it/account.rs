//! A person's own account: the list of their sessions (where they signed in, from which client),
//! ending one (its refresh and its access tokens stop working at once), and changing their own
//! password, which ends every other session. All of it audited, none of it reaching another
//! person's sessions.

use stead_api_types::{AuditEntry, Page, SessionInfo, TokenResponse};
use stead_e2e::Client;

use crate::harness::{Backend, TestServer};
use crate::on_both_backends;

on_both_backends!(
    people_see_and_end_their_own_sessions,
    changing_ones_password_ends_the_other_sessions
);

const ADMIN_PASSWORD: &str = "tenant-admin-password";
const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0";

/// Signs in again with a browser's `User-Agent`: a second session of the same person.
async fn sign_in_from_firefox(server: &TestServer, email: &str, password: &str) -> TokenResponse {
    let reply = reqwest::Client::new()
        .post(format!("{}/api/v1/auth/login", server.base))
        .header(reqwest::header::USER_AGENT, FIREFOX)
        .json(&serde_json::json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    reply.json().await.unwrap()
}

async fn sessions(c: &Client) -> Vec<SessionInfo> {
    c.get("/api/v1/me/sessions").await.unwrap().ok().unwrap()
}

async fn refresh(server: &TestServer, refresh_token: &str) -> reqwest::StatusCode {
    server
        .client()
        .post(
            "/api/v1/auth/refresh",
            &serde_json::json!({"refresh_token": refresh_token}),
        )
        .await
        .unwrap()
        .status
}

async fn end(c: &Client, session: uuid::Uuid) -> stead_e2e::Reply {
    c.delete(&format!("/api/v1/me/sessions/{session}"))
        .await
        .unwrap()
}

async fn actions(c: &Client) -> Vec<AuditEntry> {
    let page: Page<AuditEntry> = c.get("/api/v1/audit").await.unwrap().ok().unwrap();
    page.items
}

async fn people_see_and_end_their_own_sessions(backend: Backend) {
    let server = TestServer::start(backend).await;
    let acme = server.tenant("Acme").await;
    let other = server.tenant("Other").await;
    let email = "admin@acme.example.com";
    let firefox = sign_in_from_firefox(&server, email, ADMIN_PASSWORD).await;
    let from_firefox = server.client().with_token(firefox.access_token.clone());

    let list = sessions(&acme.admin).await;
    assert_eq!(list.len(), 2, "{list:#?}");
    let current: Vec<_> = list.iter().filter(|s| s.current).collect();
    assert_eq!(current.len(), 1, "{list:#?}");
    let there = list.iter().find(|s| !s.current).unwrap();
    assert_eq!(there.user_agent.as_deref(), Some(FIREFOX));
    assert_eq!(there.address.as_deref(), Some("127.0.0.1"));
    assert!(there.started_at <= there.last_active_at && there.last_active_at < there.expires_at);
    // The Firefox session sees itself as the current one.
    let seen_there = sessions(&from_firefox).await;
    assert_eq!(
        seen_there.iter().find(|s| s.current).map(|s| s.id),
        Some(there.id)
    );

    // A refresh keeps the session (same id, later activity) and spends the old token.
    let refreshed: TokenResponse = server
        .client()
        .post(
            "/api/v1/auth/refresh",
            &serde_json::json!({"refresh_token": firefox.refresh_token}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    let list = sessions(&acme.admin).await;
    assert_eq!(list.len(), 2, "{list:#?}");
    assert!(list.iter().any(|s| s.id == there.id));

    // Someone else's session is not theirs to end, nor to see.
    assert_eq!(sessions(&other.admin).await.len(), 1);
    let foreign = end(&other.admin, there.id).await;
    assert_eq!(foreign.status, 404, "{:?}", foreign.body);
    assert_eq!(sessions(&acme.admin).await.len(), 2);
    let anonymous = server.client().get("/api/v1/me/sessions").await.unwrap();
    assert_eq!(anonymous.status, 401);

    // Ended from the first session: the Firefox session's tokens stop working at once.
    let ended = end(&acme.admin, there.id).await;
    assert_eq!(ended.status, 204, "{:?}", ended.body);
    let refused = server
        .client()
        .with_token(refreshed.access_token.clone())
        .get("/api/v1/me")
        .await
        .unwrap();
    assert_eq!(refused.status, 401, "{:?}", refused.body);
    assert_eq!(refused.code(), "session_ended");
    assert_eq!(refresh(&server, &refreshed.refresh_token).await, 401);
    let again = end(&acme.admin, there.id).await;
    assert_eq!(again.status, 404, "an ended session is gone");
    let list = sessions(&acme.admin).await;
    assert_eq!(list.len(), 1);
    assert!(list[0].current);
    assert_eq!(acme.admin.get("/api/v1/me").await.unwrap().status, 200);

    let log = actions(&acme.admin).await;
    let entry = log
        .iter()
        .find(|e| e.action == "session.end")
        .expect("audited");
    assert_eq!(entry.target_id, Some(there.id));
    assert_eq!(entry.actor_email.as_deref(), Some(email));
}

async fn changing_ones_password_ends_the_other_sessions(backend: Backend) {
    let server = TestServer::start(backend).await;
    let acme = server.tenant("Acme").await;
    let email = "admin@acme.example.com";
    let firefox = sign_in_from_firefox(&server, email, ADMIN_PASSWORD).await;
    let change = |current: &str, new: &str| {
        let body = serde_json::json!({"current_password": current, "new_password": new});
        let admin = acme.admin.clone();
        async move { admin.post("/api/v1/me/password", &body).await.unwrap() }
    };
    const NEW: &str = "a-brand-new-password-42";

    // Refusals, each with its reason, and nothing changed.
    let wrong = change("not-my-password", NEW).await;
    assert_eq!(wrong.status, 400, "{:?}", wrong.body);
    assert_eq!(wrong.code(), "wrong_password");
    assert_eq!(wrong.body["field"], "current_password");
    let weak = change(ADMIN_PASSWORD, "short").await;
    assert_eq!(weak.status, 400, "{:?}", weak.body);
    assert_eq!(weak.code(), "weak_password");
    assert_eq!(weak.body["field"], "new_password");
    let same = change(ADMIN_PASSWORD, ADMIN_PASSWORD).await;
    assert_eq!(same.code(), "same_password", "{:?}", same.body);
    let unknown = acme
        .admin
        .post(
            "/api/v1/me/password",
            &serde_json::json!({"current_password": ADMIN_PASSWORD, "new_password": NEW, "role": "platform_admin"}),
        )
        .await
        .unwrap();
    assert_eq!(unknown.status, 400, "{:?}", unknown.body);
    assert_eq!(sessions(&acme.admin).await.len(), 2);

    let changed = change(ADMIN_PASSWORD, NEW).await;
    assert_eq!(changed.status, 204, "{:?}", changed.body);
    // This session goes on; the other one ends, access and refresh tokens alike.
    assert_eq!(acme.admin.get("/api/v1/me").await.unwrap().status, 200);
    let there = server
        .client()
        .with_token(firefox.access_token.clone())
        .get("/api/v1/me")
        .await
        .unwrap();
    assert_eq!(there.code(), "session_ended", "{:?}", there.body);
    assert_eq!(refresh(&server, &firefox.refresh_token).await, 401);
    assert_eq!(sessions(&acme.admin).await.len(), 1);
    // The old password no longer signs in; the new one does.
    assert!(server.client().login(email, ADMIN_PASSWORD).await.is_err());
    server
        .client()
        .login(email, NEW)
        .await
        .expect("the new password signs in");

    let log = actions(&acme.admin).await;
    let entry = log
        .iter()
        .find(|e| e.action == "user.password.change")
        .expect("audited");
    assert_eq!(entry.detail["password_changed"], true);
    let stored = server.sql("SELECT detail FROM audit_log");
    assert!(!stored.contains(NEW) && !stored.contains(ADMIN_PASSWORD));
}
