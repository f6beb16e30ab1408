//! Per-tenant settings: telemetry retention and rate-limit overrides.

use reqwest::Method;
use stead_api_types::Tenant;

use crate::harness::{Backend, Options, TestServer, psql};
use crate::mqtt::device;
use crate::mqtt_raw::{Raw, SUBACK};
use crate::on_both_backends;

on_both_backends!(
    retention_is_per_tenant,
    rate_limit_overrides_are_enforced_and_reported
);

const DAY_MS: i64 = 86_400_000;

async fn stored(c: &stead_e2e::Client, id: uuid::Uuid) -> Vec<i64> {
    let s: stead_api_types::TelemetrySeries = c
        .get(&format!(
            "/api/v1/devices/{id}/telemetry?keys=v&from=0&order=asc"
        ))
        .await
        .unwrap()
        .ok()
        .unwrap();
    s.series
        .get("v")
        .map(|p| p.iter().map(|p| p.ts).collect())
        .unwrap_or_default()
}

async fn retention_is_per_tenant(backend: Backend) {
    let server = TestServer::start_with(
        backend,
        Options::default().env("STEAD_RETENTION_INTERVAL_SECS", "1"),
    )
    .await;
    let platform = server.admin().await;
    let short = server.tenant("Short").await;
    let long = server.tenant("Long").await;
    let bad = platform
        .patch(
            &format!("/api/v1/tenants/{}", short.tenant.id),
            &serde_json::json!({"telemetry_retention_days": 0}),
        )
        .await
        .unwrap();
    assert_eq!(
        (bad.status.as_u16(), bad.error().field.as_deref()),
        (400, Some("telemetry_retention_days"))
    );

    let now = chrono::Utc::now().timestamp_millis();
    let old = now - 3 * DAY_MS;
    let mut ids = Vec::new();
    for tenant in [&short, &long] {
        let (id, token) = device(&tenant.admin, "meter").await;
        let body =
            format!(r#"[{{"ts":{old},"values":{{"v":1}}}},{{"ts":{now},"values":{{"v":2}}}}]"#);
        let r = server
            .client()
            .raw(
                Method::POST,
                &format!("/api/v1/{token}/telemetry"),
                "application/json",
                body,
            )
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        ids.push(id);
    }
    // The short tenant's retention becomes one day once the points are in (a point older than
    // a tenant's retention is refused when it arrives).
    let t: Tenant = platform
        .patch(
            &format!("/api/v1/tenants/{}", short.tenant.id),
            &serde_json::json!({"telemetry_retention_days": 1}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(t.telemetry_retention_days, Some(1));
    // Within a few passes the short tenant's old point is gone; everything else stays.
    let mut left = Vec::new();
    for _ in 0..100 {
        left = stored(&short.admin, ids[0]).await;
        if left == vec![now] {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        left,
        vec![now],
        "the 1-day tenant keeps only the recent point"
    );
    assert_eq!(
        stored(&long.admin, ids[1]).await,
        vec![old, now],
        "the 30-day tenant keeps both"
    );

    if let Some(db) = &server.database {
        let partitions: i64 = psql(db, "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE c.relname LIKE 'telemetry_p%'").parse().unwrap();
        assert!(
            partitions >= 4,
            "daily partitions prepared ahead: {partitions}"
        );
        let in_default: i64 = psql(
            db,
            &format!("SELECT count(*) FROM telemetry_default WHERE ts = {now}"),
        )
        .parse()
        .unwrap();
        assert_eq!(in_default, 0, "today's rows live in today's partition");
    }
}

async fn rate_limit_overrides_are_enforced_and_reported(backend: Backend) {
    let server = TestServer::start(backend).await;
    let platform = server.admin().await;
    let acme = server.tenant("Acme").await;
    let path = format!("/api/v1/tenants/{}", acme.tenant.id);
    let bad = platform
        .patch(
            &path,
            &serde_json::json!({"limits": {"device_messages": "lots"}}),
        )
        .await
        .unwrap();
    assert_eq!(
        (
            bad.status.as_u16(),
            bad.code(),
            bad.error().field.as_deref()
        ),
        (400, "invalid_rate".into(), Some("limits.device_messages"))
    );
    let t: Tenant = platform
        .patch(&path, &serde_json::json!({"limits": {"device_messages": "3:60", "device_data_points": "100:1"}}))
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(t.limits.device_messages.as_deref(), Some("3:60"));

    let (_, token) = device(&acme.admin, "limited").await;
    let (mut raw, code) = Raw::connect(&server.mqtt, &token, 30, None).await;
    assert_eq!(code, 0);
    raw.subscribe("v1/devices/me/rpc/response/+", 1).await;
    assert_eq!(
        raw.read(std::time::Duration::from_secs(5))
            .await
            .map(|p| p.0),
        Some(SUBACK)
    );
    raw.publish(
        "v1/devices/me/rpc/request/1",
        br#"{"method":"getSessionLimits","params":{}}"#,
        None,
    )
    .await;
    let (_, payload) = raw
        .next_publish(std::time::Duration::from_secs(5))
        .await
        .expect("limits");
    let limits: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(limits["rateLimits"]["messages"], "3:60");
    assert_eq!(limits["rateLimits"]["telemetryDataPoints"], "100:1");

    // Enforced over HTTP too: the third message in the minute (the RPC counted) is refused.
    let (_, other) = device(&acme.admin, "limited-http").await;
    let mut statuses = Vec::new();
    for i in 0..4 {
        let r = server
            .client()
            .raw(
                Method::POST,
                &format!("/api/v1/{other}/telemetry"),
                "application/json",
                format!(r#"{{"i":{i}}}"#),
            )
            .await
            .unwrap();
        statuses.push(r.status.as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429]);
}
