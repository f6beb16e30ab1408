//! "A QoS 1 PUBLISH is acknowledged only after its batch is committed; nothing acknowledged is
//! lost, not even if the process is killed right after." Tested the only way that means anything:
//! the real binary under load from many devices, SIGKILL in the middle of it, a fresh process on
//! the same storage (`TestServer::restart`), and every acknowledged message looked up.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use stead_api_types::{TelemetrySeries, TimelineEvent};
use stead_e2e::Client;
use uuid::Uuid;

use crate::harness::{Backend, Options, TestServer};
use crate::mqtt::device;
use crate::mqtt_raw::{PUBACK, Raw};
use crate::on_both_backends;

on_both_backends!(acknowledged_messages_survive_kill_9);

const DEVICES: usize = 20;
/// QoS 1 messages a device keeps unacknowledged at once.
const WINDOW: usize = 4;
/// Bounds each device's load; the kill must come long before (a telemetry page holds 10000).
const MAX_PER_DEVICE: u64 = 9_000;
const LOAD_BEFORE_KILL: Duration = Duration::from_millis(1500);

/// What one device's publisher saw.
#[derive(Default)]
struct Outcome {
    /// Sequence numbers whose PUBACK arrived.
    acked: Vec<u64>,
    /// Sent, PUBACK never seen (the server died first).
    in_flight: Vec<u64>,
    /// A PUBACK nobody waited for, or the like.
    error: Option<String>,
}

/// Publishes `{"seq":N}` at QoS 1, `WINDOW` in flight, as fast as PUBACKs come back, until the
/// connection dies, `stop` is set or `MAX_PER_DEVICE` were sent.
async fn publish_until_killed(mut raw: Raw, stop: Arc<AtomicBool>) -> Outcome {
    let mut out = Outcome::default();
    let mut in_flight: HashMap<u16, u64> = HashMap::new();
    let mut seq = 0u64;
    loop {
        while in_flight.len() < WINDOW && seq < MAX_PER_DEVICE && !stop.load(Ordering::Relaxed) {
            seq += 1;
            let packet_id = (seq % 65_535) as u16 + 1;
            raw.publish(
                "v1/devices/me/telemetry",
                format!(r#"{{"seq":{seq}}}"#).as_bytes(),
                Some(packet_id),
            )
            .await;
            in_flight.insert(packet_id, seq);
        }
        if in_flight.is_empty() {
            break;
        }
        match raw.read(Duration::from_secs(5)).await {
            Some((PUBACK, body)) if body.len() >= 2 => {
                let packet_id = u16::from_be_bytes([body[0], body[1]]);
                match in_flight.remove(&packet_id) {
                    Some(seq) => out.acked.push(seq),
                    None => {
                        out.error = Some(format!("PUBACK for packet {packet_id}, never sent"));
                        break;
                    }
                }
            }
            Some((kind, body)) => {
                out.error = Some(format!("unexpected packet type {kind}: {body:?}"));
                break;
            }
            // The connection ended (the kill) or went silent.
            None => break,
        }
    }
    out.in_flight = in_flight.into_values().collect();
    out
}

/// Every stored `seq` of a device, in storage order, duplicates kept.
pub async fn stored_seqs(c: &Client, id: Uuid) -> Vec<u64> {
    let series: TelemetrySeries = c
        .get(&format!(
            "/api/v1/devices/{id}/telemetry?keys=seq&from=0&to=99999999999999&limit=10000&order=asc"
        ))
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert!(
        series.next_cursor.is_none(),
        "more than one page of telemetry for a device that sent at most {MAX_PER_DEVICE}"
    );
    series
        .series
        .get("seq")
        .map(|points| {
            points
                .iter()
                .map(|p| p.value.as_u64().expect("seq is an integer"))
                .collect()
        })
        .unwrap_or_default()
}

async fn acknowledged_messages_survive_kill_9(backend: Backend) {
    // No rate limit may drop a message: over MQTT 3.1.1 a refused message is still acknowledged
    // (there is no negative PUBACK), which would look like loss here.
    let options = Options::default()
        .env("STEAD_DEVICE_RATE_MESSAGES", "1000000:1")
        .env("STEAD_DEVICE_RATE_POINTS", "1000000:1")
        .env("STEAD_TENANT_RATE_MESSAGES", "1000000:1")
        .env("STEAD_TENANT_RATE_POINTS", "1000000:1");
    let mut server = TestServer::start_with(backend, options).await;
    let c = server.tenant("Acme").await.admin;
    let mut devices = Vec::new();
    for i in 0..DEVICES {
        devices.push(device(&c, &format!("durable-{i}")).await);
    }

    // All connected before the load starts, so the kill lands on publishing, not connecting.
    let stop = Arc::new(AtomicBool::new(false));
    let mut publishers = Vec::new();
    for (_, token) in &devices {
        let (raw, code) = Raw::connect(&server.mqtt, token, 60, None).await;
        assert_eq!(code, 0, "CONNACK");
        publishers.push(tokio::spawn(publish_until_killed(raw, stop.clone())));
    }
    tokio::time::sleep(LOAD_BEFORE_KILL).await;
    server.kill9();
    stop.store(true, Ordering::Relaxed);
    let first_log = server.log_tail(40);
    let mut outcomes = Vec::new();
    for publisher in publishers {
        outcomes.push(
            tokio::time::timeout(Duration::from_secs(15), publisher)
                .await
                .expect("each publisher ends within 15 s of the kill")
                .expect("publisher task"),
        );
    }

    // A fresh process on the same storage.
    server.restart().await;
    let c = Client::new(&server.base).with_token(c.token().unwrap());
    let (mut total_acked, mut total_in_flight, mut total_stored) = (0usize, 0usize, 0usize);
    let mut failures = Vec::new();
    for (i, ((id, _), outcome)) in devices.iter().zip(&outcomes).enumerate() {
        let stored = stored_seqs(&c, *id).await;
        let stored_set: BTreeSet<u64> = stored.iter().copied().collect();
        let acked: BTreeSet<u64> = outcome.acked.iter().copied().collect();
        let in_flight: BTreeSet<u64> = outcome.in_flight.iter().copied().collect();
        println!(
            "durability {backend:?} device {i:2}: acknowledged {:5}, in flight at the kill {}, stored {:5}",
            acked.len(),
            in_flight.len(),
            stored.len()
        );
        total_acked += acked.len();
        total_in_flight += in_flight.len();
        total_stored += stored.len();
        if let Some(error) = &outcome.error {
            failures.push(format!("device {i}: {error}"));
        }
        if acked.is_empty() {
            failures.push(format!(
                "device {i}: nothing was acknowledged in {LOAD_BEFORE_KILL:?}"
            ));
        }
        if acked.len() as u64 + in_flight.len() as u64 >= MAX_PER_DEVICE {
            failures.push(format!(
                "device {i}: sent all {MAX_PER_DEVICE} before the kill: raise MAX_PER_DEVICE"
            ));
        }
        let lost: Vec<u64> = acked.difference(&stored_set).copied().collect();
        if !lost.is_empty() {
            let rejected: Vec<TimelineEvent> = c
                .get(&format!("/api/v1/devices/{id}/timeline?limit=1000"))
                .await
                .unwrap()
                .ok::<Vec<TimelineEvent>>()
                .unwrap()
                .into_iter()
                .filter(|e| e.kind == "message_rejected")
                .collect();
            failures.push(format!(
                "device {i}: {} acknowledged but not stored, e.g. seq {:?}; rejections on its timeline: {rejected:?}",
                lost.len(),
                &lost[..lost.len().min(10)]
            ));
        }
        // More than acknowledged is fine (committed, PUBACK lost with the process), but only
        // what was sent, and each message once.
        let unknown: Vec<u64> = stored_set
            .iter()
            .filter(|s| !acked.contains(s) && !in_flight.contains(s))
            .copied()
            .collect();
        if !unknown.is_empty() {
            failures.push(format!("device {i}: stored seq never sent: {unknown:?}"));
        }
        if stored.len() != stored_set.len() {
            failures.push(format!(
                "device {i}: {} rows for {} distinct seq: a message was stored twice",
                stored.len(),
                stored_set.len()
            ));
        }
    }
    println!(
        "durability {backend:?}: {DEVICES} devices, acknowledged {total_acked}, in flight at the kill {total_in_flight}, stored {total_stored}"
    );
    assert!(
        failures.is_empty(),
        "{}\nfirst server's last log lines:\n{first_log}\nsecond server:\n{}",
        failures.join("\n"),
        server.log_tail(40)
    );

    // The restarted server takes QoS 1 again, on the storage it recovered.
    let (id, token) = &devices[0];
    let before = stored_seqs(&c, *id).await.len();
    let (mut raw, code) = Raw::connect(&server.mqtt, token, 30, None).await;
    assert_eq!(code, 0);
    raw.publish("v1/devices/me/telemetry", br#"{"seq":0}"#, Some(1))
        .await;
    assert_eq!(
        raw.read(Duration::from_secs(5)).await.map(|p| p.0),
        Some(PUBACK)
    );
    raw.disconnect().await;
    assert_eq!(stored_seqs(&c, *id).await.len(), before + 1);
}

/// Slow storage: while PostgreSQL holds a lock on the telemetry table, QoS 1 messages are not
/// acknowledged (nothing is stored yet), the ingress stops taking more from the device once its
/// in-flight window is full, and when storage comes back every message is stored and
/// acknowledged, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_storage_holds_acknowledgements_back() {
    use crate::mqtt_raw::{PUBACK, Raw};
    let server = crate::harness::TestServer::start(Backend::Postgres).await;
    let acme = server.tenant("Acme").await;
    let (id, token) = crate::mqtt::device(&acme.admin, "patient").await;
    let db = server.database.clone().unwrap();

    // Hold an exclusive lock on the table for three seconds from another session.
    let url = format!("{}/{db}", crate::harness::pg_base_url());
    let mut locker = std::process::Command::new("psql")
        .args([
            url.as_str(),
            "-c",
            "BEGIN; LOCK TABLE telemetry IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(3); COMMIT;",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;

    let (mut raw, code) = Raw::connect(&server.mqtt, &token, 30, None).await;
    assert_eq!(code, 0);
    for seq in 1..=40u16 {
        raw.publish(
            "v1/devices/me/telemetry",
            format!(r#"{{"seq":{seq}}}"#).as_bytes(),
            Some(seq),
        )
        .await;
    }
    // While storage is locked, nothing is acknowledged.
    assert_eq!(
        raw.read(std::time::Duration::from_millis(1500)).await,
        None,
        "no PUBACK while nothing is stored"
    );
    let mut acked = Vec::new();
    while acked.len() < 40 {
        match raw.read(std::time::Duration::from_secs(15)).await {
            Some((PUBACK, body)) => acked.push(u16::from_be_bytes([body[0], body[1]])),
            other => panic!(
                "expected every PUBACK once storage is back, got {other:?} after {}",
                acked.len()
            ),
        }
    }
    assert_eq!(acked, (1..=40).collect::<Vec<_>>(), "acknowledged in order");
    assert!(locker.wait().unwrap().success());
    let series: stead_api_types::TelemetrySeries = acme
        .admin
        .get(&format!(
            "/api/v1/devices/{id}/telemetry?keys=seq&from=0&order=asc"
        ))
        .await
        .unwrap()
        .ok()
        .unwrap();
    // (Points read in the same millisecond share a timestamp, so storage order is not asserted.)
    let mut stored: Vec<u64> = series.series["seq"]
        .iter()
        .map(|p| p.value.as_u64().unwrap())
        .collect();
    stored.sort_unstable();
    assert_eq!(
        stored,
        (1..=40).collect::<Vec<u64>>(),
        "every message stored once"
    );
}
