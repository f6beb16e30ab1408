//! The HTTP device API: the same decoding, limits and durability as MQTT.

use reqwest::Method;
use stead_api_types::{LatestTelemetry, TelemetrySeries, TimelineEvent};

use crate::harness::{Backend, Options, TestServer};
use crate::mqtt::device;
use crate::on_both_backends;

on_both_backends!(http_devices_send_telemetry_and_attributes);

async fn http_devices_send_telemetry_and_attributes(backend: Backend) {
    let server = TestServer::start_with(
        backend,
        Options::default()
            .env("STEAD_DEVICE_RATE_MESSAGES", "6:60")
            .env("STEAD_MQTT_MAX_PAYLOAD_BYTES", "1024"),
    )
    .await;
    let acme = server.tenant("Acme").await;
    let c = &acme.admin;
    let (id, token) = device(c, "http-1").await;
    let anon = server.client();
    let json = "application/json";

    let t0 = crate::mqtt::ts0();
    for body in [
        r#"{"temperature":20.5}"#.to_owned(),
        format!(r#"{{"ts":{t0},"values":{{"temperature":18}}}}"#),
        format!(
            r#"[{{"ts":{},"values":{{"temperature":18.5}}}},{{"humidity":33}}]"#,
            t0 + 1000
        ),
    ] {
        let r = anon
            .raw(
                Method::POST,
                &format!("/api/v1/{token}/telemetry"),
                json,
                body.to_string(),
            )
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{body}: {:?}", r.body);
    }
    let r = anon
        .raw(
            Method::POST,
            &format!("/api/v1/{token}/attributes"),
            json,
            r#"{"fw":"3.1"}"#.to_string(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let r = anon
        .get(&format!("/api/v1/{token}/attributes?clientKeys=fw,missing"))
        .await
        .unwrap();
    assert_eq!(r.body, serde_json::json!({"client": {"fw": "3.1"}}));

    let series: TelemetrySeries = c
        .get(&format!(
            "/api/v1/devices/{id}/telemetry?keys=temperature&from=0&order=asc"
        ))
        .await
        .unwrap()
        .ok()
        .unwrap();
    let ts: Vec<i64> = series.series["temperature"].iter().map(|p| p.ts).collect();
    assert_eq!(&ts[..2], &[t0, t0 + 1000]);
    assert_eq!(ts.len(), 3);
    let latest: LatestTelemetry = c
        .get(&format!("/api/v1/devices/{id}/telemetry/latest"))
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(latest["humidity"].value, serde_json::json!(33));

    // Refusals, each with its status and code.
    let r = anon
        .raw(
            Method::POST,
            "/api/v1/not-a-token/telemetry",
            json,
            "{}".to_string(),
        )
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (401, "invalid_device_token".into())
    );
    let r = anon
        .raw(
            Method::POST,
            &format!("/api/v1/{token}/telemetry"),
            json,
            r#"{"t":"#.to_string(),
        )
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (400, "invalid_payload".into())
    );
    let big = format!(r#"{{"blob":"{}"}}"#, "x".repeat(2000));
    let r = anon
        .raw(
            Method::POST,
            &format!("/api/v1/{token}/telemetry"),
            json,
            big,
        )
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (413, "payload_too_large".into())
    );
    // Six messages a minute: three telemetry and one attribute message so far were accepted
    // (refused messages do not count).
    for n in 1..=2 {
        let r = anon
            .raw(
                Method::POST,
                &format!("/api/v1/{token}/telemetry"),
                json,
                format!(r#"{{"n":{n}}}"#),
            )
            .await
            .unwrap();
        assert_eq!(r.status, 200);
    }
    let r = anon
        .raw(
            Method::POST,
            &format!("/api/v1/{token}/telemetry"),
            json,
            r#"{"n":3}"#.to_string(),
        )
        .await
        .unwrap();
    assert_eq!((r.status.as_u16(), r.code()), (429, "rate_limited".into()));

    let timeline: Vec<TimelineEvent> = c
        .get(&format!("/api/v1/devices/{id}/timeline"))
        .await
        .unwrap()
        .ok()
        .unwrap();
    let mut reasons: Vec<String> = Vec::new();
    for _ in 0..50 {
        let t: Vec<TimelineEvent> = c
            .get(&format!("/api/v1/devices/{id}/timeline"))
            .await
            .unwrap()
            .ok()
            .unwrap();
        reasons = t
            .iter()
            .filter(|e| e.kind == "message_rejected")
            .map(|e| e.data["reason"].as_str().unwrap_or_default().to_owned())
            .collect();
        if reasons.len() == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    reasons.sort();
    assert_eq!(
        reasons,
        ["invalid_payload", "invalid_payload", "rate_limited"],
        "{timeline:?}"
    );
}
