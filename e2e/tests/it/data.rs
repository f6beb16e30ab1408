//! Data that stays right: timestamps from a wrong clock are refused with the reason, paging and
//! the CSV export neither skip nor repeat points that share a timestamp, and an export that
//! fails midway ends in an error the client sees.

use std::time::Duration;

use futures_util::StreamExt as _;
use serde_json::json;
use stead_api_types::TelemetrySeries;

use crate::harness::{Backend, Options, TestServer};
use crate::mqtt::{count_stored, device, eventually, timeline};
use crate::mqtt_raw::{PUBACK, Raw};
use crate::on_both_backends;

on_both_backends!(
    timestamps_from_a_wrong_clock_are_refused_with_the_reason,
    pages_and_csv_neither_skip_nor_repeat_points_that_share_a_timestamp,
);

/// The embedded default keeps the keys a device sends rarely in its latest values across a
/// graceful restart and across `kill -9`, though 1,500 newer points hold none of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latest_values_keep_rare_keys_across_embedded_restarts() {
    let mut server = TestServer::start_with(
        Backend::Sqlite,
        Options::default().env("STEAD_LATEST_SNAPSHOT_SECS", "1"),
    )
    .await;
    let acme = server.tenant("Acme").await;
    let token = acme.admin.token().unwrap().to_owned();
    let (id, device_token) = device(&acme.admin, "rarely").await;
    let send_rare = |server: &TestServer, key: &'static str| {
        let (client, path) = (server.client(), format!("/api/v1/{device_token}/telemetry"));
        let ts = chrono::Utc::now().timestamp_millis() - 600_000;
        async move {
            let r = client
                .post(&path, &json!({"ts": ts, "values": {key: 42}}))
                .await
                .unwrap();
            assert_eq!(r.status, 200, "{:?}", r.body);
        }
    };
    let latest = |server: &TestServer| {
        let c = stead_e2e::Client::new(&server.base).with_token(token.clone());
        async move {
            c.get(&format!("/api/v1/devices/{id}/telemetry/latest"))
                .await
                .unwrap()
                .ok::<stead_api_types::LatestTelemetry>()
                .unwrap()
        }
    };

    send_rare(&server, "rare").await;
    store_points(&server, acme.tenant.id, id, 1500, 1);
    // Latest values follow a commit within 200 ms.
    eventually("the rare key in the latest values", || async {
        latest(&server).await.contains_key("rare")
    })
    .await;
    server.sigterm();
    assert!(server.wait_exit(Duration::from_secs(30)).is_some());
    server.restart().await;
    let after = latest(&server).await;
    assert_eq!(
        after.get("rare").map(|v| v.value.clone()),
        Some(json!(42)),
        "{after:?}"
    );
    assert!(after.contains_key("v"));

    // Killed: the snapshot taken every second holds what came before.
    send_rare(&server, "seldom").await;
    store_points(&server, acme.tenant.id, id, 1500, 1);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    server.kill9();
    server.restart().await;
    let after = latest(&server).await;
    assert!(
        after.contains_key("rare") && after.contains_key("seldom"),
        "{after:?}"
    );
}

async fn timestamps_from_a_wrong_clock_are_refused_with_the_reason(backend: Backend) {
    let server = TestServer::start_with(
        backend,
        Options::default().env("STEAD_TELEMETRY_MAX_FUTURE_SECS", "3600"),
    )
    .await;
    let acme = server.tenant("Acme").await;
    let c = &acme.admin;
    let (id, token) = device(c, "clock").await;
    let now = chrono::Utc::now().timestamp_millis();
    let hour = 3_600_000;

    // Over HTTP: refused with the reason, nothing stored.
    for (ts, needle) in [
        (now + 2 * hour, "ahead of the server's clock"),
        (0, "older than the telemetry retention of 30 days"),
    ] {
        let r = server
            .client()
            .post(
                &format!("/api/v1/{token}/telemetry"),
                &json!([{"ts": now, "values": {"ok": 1}}, {"ts": ts, "values": {"bad": 1}}]),
            )
            .await
            .unwrap();
        assert_eq!(r.status, 400, "{:?}", r.body);
        assert!(r.error().detail.contains(needle), "{:?}", r.body);
    }
    // Within the bounds: stored.
    let r = server
        .client()
        .post(
            &format!("/api/v1/{token}/telemetry"),
            &json!([{"ts": now + hour / 2, "values": {"ok": 1}}, {"ts": now - 29 * 24 * hour, "values": {"ok": 2}}]),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);

    // Over MQTT 3.1.1 (which cannot refuse one message): acknowledged, not stored, and the
    // reason is on the device's timeline.
    let (mut raw, code) = Raw::connect(&server.mqtt, &token, 30, None).await;
    assert_eq!(code, 0);
    let far = now + 48 * hour;
    raw.publish(
        "v1/devices/me/telemetry",
        json!({"ts": far, "values": {"bad": 2}})
            .to_string()
            .as_bytes(),
        Some(7),
    )
    .await;
    assert!(matches!(
        raw.read(Duration::from_secs(5)).await,
        Some((PUBACK, _))
    ));
    eventually("the refusal is on the timeline", || async {
        timeline(c, id).await.iter().any(|e| {
            e.kind == "message_rejected" && e.detail.contains("ahead of the server's clock")
        })
    })
    .await;
    assert_eq!(count_stored(c, id, "bad").await, 0);
    assert_eq!(count_stored(c, id, "ok").await, 2);
}

/// Stores `n` points of `device` straight into its storage, `per_ts` of them at each
/// millisecond, the last one now: `{"v": i}` for i in 0..n.
fn store_points(server: &TestServer, tenant: uuid::Uuid, device: uuid::Uuid, n: u64, per_ts: u64) {
    let base = chrono::Utc::now().timestamp_millis() - (n / per_ts) as i64;
    let statement = match server.backend {
        Backend::Postgres => format!(
            "INSERT INTO telemetry (tenant_id, device_id, ts, data) SELECT '{tenant}'::uuid, '{device}'::uuid, {base} + i / {per_ts}, jsonb_build_object('v', i) FROM generate_series(0, {}) i",
            n - 1
        ),
        Backend::Sqlite => format!(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {}) INSERT INTO telemetry (tenant_id, device_id, ts, data) SELECT X'{}', X'{}', {base} + i / {per_ts}, json_object('v', i) FROM n",
            n - 1,
            tenant.simple(),
            device.simple()
        ),
    };
    server.sql(&statement);
}

/// Every `v` of the device's points, read page by page in `order`.
async fn read_pages(c: &stead_e2e::Client, id: uuid::Uuid, order: &str, limit: u64) -> Vec<i64> {
    let (mut seen, mut cursor, mut pages) = (Vec::new(), None::<String>, 0);
    loop {
        let mut path = format!("/api/v1/devices/{id}/telemetry?from=0&order={order}&limit={limit}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page: TelemetrySeries = c.get(&path).await.unwrap().ok().unwrap();
        pages += 1;
        seen.extend(page.series["v"].iter().map(|p| p.value.as_i64().unwrap()));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
        assert!(pages < 1000, "paging does not end");
    }
    seen
}

async fn pages_and_csv_neither_skip_nor_repeat_points_that_share_a_timestamp(backend: Backend) {
    let server = TestServer::start(backend).await;
    let acme = server.tenant("Acme").await;
    let c = &acme.admin;
    let (id, _) = device(c, "bursty").await;
    // 12,000 points, 7 at each millisecond: page and CSV boundaries fall inside runs of points
    // that share a timestamp.
    let n = 12_000;
    store_points(&server, acme.tenant.id, id, n, 7);
    let all: Vec<i64> = (0..n as i64).collect();
    for (order, limit) in [("asc", 1000), ("desc", 999), ("asc", 33)] {
        let mut seen = read_pages(c, id, order, limit).await;
        assert_eq!(
            seen.len() as u64,
            n,
            "{order} by {limit}: points skipped or repeated"
        );
        seen.sort_unstable();
        assert_eq!(seen, all, "{order} by {limit}");
    }
    let r = c
        .get(&format!("/api/v1/devices/{id}/telemetry?cursor=12"))
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.error().field),
        (400, Some("cursor".into()))
    );

    // The CSV export (5,000 points per page inside) holds each point once.
    let csv = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/devices/{id}/telemetry.csv?keys=v&from=0",
            server.base
        ))
        .bearer_auth(c.token().unwrap())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut values: Vec<i64> = csv
        .lines()
        .skip(1)
        .map(|l| l.rsplit(',').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(values.len() as u64, n, "CSV rows skipped or repeated");
    values.sort_unstable();
    assert_eq!(values, all);

    // An export that fails midway ends in an error the client sees, not a short file. (Large
    // enough that the socket's buffers cannot hold it all before the failure.)
    let (big, _) = device(c, "big").await;
    store_points(&server, acme.tenant.id, big, 300_000, 1);
    let mut body = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/devices/{big}/telemetry.csv?keys=v&from=0",
            server.base
        ))
        .bearer_auth(c.token().unwrap())
        .send()
        .await
        .unwrap()
        .bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    assert!(first.starts_with(b"ts,time,v"));
    server.sql("ALTER TABLE telemetry RENAME TO telemetry_away");
    let mut outcome = Ok(first.len());
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(10), body.next())
        .await
        .expect("the export neither ends nor fails")
    {
        match chunk {
            Ok(bytes) => outcome = outcome.map(|n| n + bytes.len()),
            Err(e) => {
                outcome = Err(e);
                break;
            }
        }
    }
    server.sql("ALTER TABLE telemetry_away RENAME TO telemetry");
    assert!(
        outcome.is_err(),
        "the export failed midway, yet the client got a clean end after {outcome:?} bytes"
    );
}
