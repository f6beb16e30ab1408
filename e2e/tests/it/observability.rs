//! Health, readiness, metrics, and no secrets in the logs.

use stead_api_types::CreatedDevice;

use crate::harness::{Backend, TestServer};
use crate::on_both_backends;

on_both_backends!(health_readiness_metrics_and_clean_logs);

async fn health_readiness_metrics_and_clean_logs(backend: Backend) {
    let server = TestServer::start(backend).await;
    let anon = server.client();
    let health = anon.get("/healthz").await.unwrap();
    assert_eq!(
        (health.status.as_u16(), health.body["status"].as_str()),
        (200, Some("ok"))
    );
    let ready = anon.get("/readyz").await.unwrap();
    assert_eq!(ready.status, 200, "{:?}", ready.body);
    assert_eq!(ready.body["status"], "ready");
    assert_eq!(ready.body["checks"]["database"], "ok");
    match backend {
        Backend::Postgres => assert_eq!(ready.body["checks"]["redis"], "ok"),
        Backend::Sqlite => assert!(ready.body["checks"].get("redis").is_none()),
    }

    let acme = server.tenant("Acme").await;
    let device: CreatedDevice = acme
        .admin
        .post("/api/v1/devices", &serde_json::json!({"name": "d1"}))
        .await
        .unwrap()
        .ok()
        .unwrap();
    let (_, tokens) = anon
        .login("admin@acme.example.com", "tenant-admin-password")
        .await
        .unwrap();
    anon.post(
        "/api/v1/auth/login",
        &serde_json::json!({"email": "admin@acme.example.com", "password": "a-wrong-password"}),
    )
    .await
    .unwrap();

    let metrics = reqwest::get(format!("{}/metrics", server.base))
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    assert!(
        metrics.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = metrics.text().await.unwrap();
    let created = text
        .lines()
        .find(|l| {
            l.starts_with("stead_http_requests_total{")
                && l.contains(r#"route="/api/v1/devices""#)
                && l.contains(r#"method="POST""#)
                && l.contains(r#"status="201""#)
        })
        .unwrap_or_else(|| panic!("no counter for POST /api/v1/devices in:\n{text}"));
    assert!(created.ends_with(" 1"), "{created}");
    assert!(
        text.contains("stead_http_request_duration_seconds_bucket{"),
        "{text}"
    );
    assert!(
        !text.contains(&device.device.id.to_string()),
        "route patterns, not raw paths"
    );

    // Nothing secret ever reaches the logs.
    let logs = server.log_text();
    assert!(logs.contains("logged in"), "the log is being captured");
    for secret in [
        server.admin_password.as_str(),
        "tenant-admin-password",
        "a-wrong-password",
        device.access_token.as_deref().unwrap(),
        tokens.refresh_token.as_str(),
        tokens.access_token.as_str(),
        server.jwt_secret.as_str(),
    ] {
        assert!(!logs.contains(secret), "a secret reached the logs");
    }
}
