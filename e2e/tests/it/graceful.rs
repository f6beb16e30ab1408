//! Graceful operations, with real processes: SIGTERM under QoS 1 load (MQTT 5 devices are told
//! `0x8B` server shutting down, nothing acknowledged is lost, the process exits 0 within its
//! bound), a rolling restart of a two-node deployment under load (clients reconnect to the other
//! node and resend what was not acknowledged, as real clients do), and a node killed with
//! `kill -9` whose devices the surviving nodes mark offline within the stated bound.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use stead_api_types::{DisconnectReason, TimelineEvent};
use stead_e2e::Client;
use stead_e2e::wire::{self, CONNACK, DISCONNECT, PUBACK};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use uuid::Uuid;

use crate::durability::stored_seqs;
use crate::harness::{Backend, Options, TestServer, psql};
use crate::mqtt::{device, presence};
use crate::mqtt_raw::{Raw, read_packet};
use crate::on_both_backends;

on_both_backends!(sigterm_drains_qos1_load, kill_9_embedded_recovers_presence);

/// QoS 1 messages a client keeps unacknowledged at once.
const WINDOW: usize = 4;
/// A telemetry page holds 10,000 points: no device may send more.
const MAX_PER_DEVICE: u64 = 9_000;
/// `STEAD_SHUTDOWN_TIMEOUT_SECS` in these tests.
const SHUTDOWN_TIMEOUT_SECS: u64 = 10;

/// No rate limit may refuse a message (a refused message is not a lost one, but it would blur
/// the counts), and a short shutdown bound.
fn options() -> Options {
    Options::default()
        .env("STEAD_DEVICE_RATE_MESSAGES", "1000000:1")
        .env("STEAD_DEVICE_RATE_POINTS", "1000000:1")
        .env("STEAD_TENANT_RATE_MESSAGES", "1000000:1")
        .env("STEAD_TENANT_RATE_POINTS", "1000000:1")
        .env(
            "STEAD_SHUTDOWN_TIMEOUT_SECS",
            SHUTDOWN_TIMEOUT_SECS.to_string(),
        )
}

/// A minimal MQTT 5 client on the e2e crate's wire code.
struct V5 {
    stream: TcpStream,
}

impl V5 {
    /// Connects with the access token as user name; `Err` says why not (refused TCP, no
    /// CONNACK, or its reason code).
    async fn connect(addr: &str, token: &str) -> Result<V5, String> {
        let stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
            .await
            .map_err(|_| "TCP connect timed out".to_owned())?
            .map_err(|e| format!("TCP connect: {e}"))?;
        let mut c = V5 { stream };
        let client_id = format!("v5-{}", Uuid::new_v4().simple());
        let connect = wire::Connect {
            v5: true,
            client_id: &client_id,
            username: token,
            password: None,
            keep_alive: 30,
            will: None,
        };
        c.send(&connect.encode()).await;
        match c.read(Duration::from_secs(5)).await {
            Some((CONNACK, body)) if body.len() >= 2 && body[1] == 0 => Ok(c),
            Some((CONNACK, body)) if body.len() >= 2 => {
                Err(format!("CONNACK {}", wire::reason(true, body[1])))
            }
            other => Err(format!("no CONNACK: {other:?}")),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes).await;
    }

    async fn publish_qos1(&mut self, packet_id: u16, seq: u64) {
        let mut out = Vec::new();
        wire::put_publish(
            &mut out,
            true,
            "v1/devices/me/telemetry",
            Some(packet_id),
            format!(r#"{{"seq":{seq}}}"#).as_bytes(),
        );
        self.send(&out).await;
    }

    /// The next packet as (type, body), or `None` when the connection closed or nothing came.
    async fn read(&mut self, timeout: Duration) -> Option<(u8, Vec<u8>)> {
        read_packet(&mut self.stream, timeout).await
    }
}

/// What one connection of a publisher saw.
#[derive(Default, Debug)]
struct Connection {
    /// Sequence numbers whose PUBACK (success) arrived.
    acked: Vec<u64>,
    /// Sent, and not acknowledged (no PUBACK, or a negative one): a real client sends these
    /// again.
    unacked: Vec<u64>,
    /// The reason code of the server's DISCONNECT, if one came.
    disconnect: Option<u8>,
    error: Option<String>,
}

/// Publishes `{"seq":N}` at QoS 1 on one connection, `WINDOW` in flight: first `resend`, then new
/// numbers from `next`, until the server ends the connection, or `stop` is set and nothing is in
/// flight (then it disconnects itself).
async fn publish_on(
    c: &mut V5,
    mut resend: Vec<u64>,
    next: &mut u64,
    stop: &AtomicBool,
) -> Connection {
    let mut out = Connection::default();
    let mut in_flight: HashMap<u16, u64> = HashMap::new();
    let mut packet_id: u16 = 0;
    resend.reverse();
    loop {
        // What was not acknowledged goes again even after `stop`; new numbers only before it.
        while in_flight.len() < WINDOW {
            let seq = match resend.pop() {
                Some(seq) => seq,
                None if *next <= MAX_PER_DEVICE && !stop.load(Ordering::Relaxed) => {
                    *next += 1;
                    *next - 1
                }
                None => break,
            };
            packet_id = packet_id % 65_535 + 1;
            c.publish_qos1(packet_id, seq).await;
            in_flight.insert(packet_id, seq);
        }
        if in_flight.is_empty() {
            c.send(&[0xE0, 0x00]).await;
            break;
        }
        match c.read(Duration::from_secs(10)).await {
            Some((PUBACK, body)) if body.len() >= 2 => {
                let id = u16::from_be_bytes([body[0], body[1]]);
                let Some(seq) = in_flight.remove(&id) else {
                    out.error = Some(format!("PUBACK for packet {id}, never sent"));
                    break;
                };
                if body.get(2).is_none_or(|code| *code < 0x80) {
                    out.acked.push(seq);
                } else {
                    out.unacked.push(seq);
                }
            }
            Some((DISCONNECT, body)) => {
                out.disconnect = Some(body.first().copied().unwrap_or(0));
                break;
            }
            Some((kind, body)) => {
                out.error = Some(format!("unexpected packet type {kind}: {body:?}"));
                break;
            }
            // Closed without a DISCONNECT, or silent.
            None => break,
        }
    }
    out.unacked.extend(in_flight.into_values());
    resend.reverse();
    out.unacked.extend(resend);
    out.unacked.sort_unstable();
    out
}

async fn timeline(c: &Client, id: Uuid) -> Vec<TimelineEvent> {
    c.get(&format!("/api/v1/devices/{id}/timeline?limit=1000"))
        .await
        .unwrap()
        .ok()
        .unwrap()
}

fn disconnects_for(events: &[TimelineEvent], reason: DisconnectReason) -> usize {
    let reason = serde_json::to_value(reason).unwrap();
    events
        .iter()
        .filter(|e| e.kind == "disconnected" && e.data["reason"] == reason)
        .count()
}

/// Devices whose `online` column is set, through the device list's filter.
async fn listed_online(c: &Client) -> Vec<Uuid> {
    let page: stead_api_types::Page<stead_api_types::Device> = c
        .get("/api/v1/devices?online=true&per_page=200")
        .await
        .unwrap()
        .ok()
        .unwrap();
    page.items.into_iter().map(|d| d.id).collect()
}

/// Counts over every device: acknowledged, stored (distinct), lost (acknowledged, not stored),
/// and the problems found.
#[derive(Default, Debug)]
struct Tally {
    acked: usize,
    stored: usize,
    lost: usize,
    duplicates: usize,
    problems: Vec<String>,
}

/// Compares what each device's publisher saw with what is stored.
async fn tally(c: &Client, devices: &[(Uuid, BTreeSet<u64>, BTreeSet<u64>)]) -> Tally {
    let mut t = Tally::default();
    for (i, (id, acked, sent)) in devices.iter().enumerate() {
        let stored = stored_seqs(c, *id).await;
        let distinct: BTreeSet<u64> = stored.iter().copied().collect();
        let lost: Vec<u64> = acked.difference(&distinct).copied().collect();
        t.acked += acked.len();
        t.stored += distinct.len();
        t.lost += lost.len();
        t.duplicates += stored.len() - distinct.len();
        if acked.is_empty() {
            t.problems
                .push(format!("device {i}: nothing was acknowledged"));
        }
        if !lost.is_empty() {
            t.problems.push(format!(
                "device {i}: {} acknowledged but not stored, e.g. {:?}",
                lost.len(),
                &lost[..lost.len().min(10)]
            ));
        }
        let unknown: Vec<u64> = distinct.difference(sent).copied().collect();
        if !unknown.is_empty() {
            t.problems
                .push(format!("device {i}: stored but never sent: {unknown:?}"));
        }
    }
    t
}

fn log_has(server: &TestServer, message: &str) -> Option<serde_json::Value> {
    server.logs.lock().unwrap().iter().find_map(|line| {
        serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .filter(|v| v["message"] == message)
    })
}

async fn sigterm_drains_qos1_load(backend: Backend) {
    const DEVICES: usize = 8;
    let mut server = TestServer::start_with(backend, options()).await;
    let acme = server.tenant("Acme").await;
    let c = acme.admin.clone();
    let mut devices = Vec::new();
    for i in 0..DEVICES {
        devices.push(device(&c, &format!("drained-{i}")).await);
    }
    let (v3_id, v3_token) = device(&c, "old-protocol").await;

    let stop = Arc::new(AtomicBool::new(false));
    let mut publishers = Vec::new();
    for (_, token) in &devices {
        let mut client = V5::connect(&server.mqtt, token).await.expect("CONNACK");
        let stop = stop.clone();
        publishers.push(tokio::spawn(async move {
            let mut next = 1;
            publish_on(&mut client, Vec::new(), &mut next, &stop).await
        }));
    }
    let (mut v3, code) = Raw::connect(&server.mqtt, &v3_token, 30, None).await;
    assert_eq!(code, 0);
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let signalled = Instant::now();
    server.sigterm();
    let mut outcomes = Vec::new();
    for publisher in publishers {
        outcomes.push(
            tokio::time::timeout(Duration::from_secs(30), publisher)
                .await
                .expect("each publisher ends after SIGTERM")
                .unwrap(),
        );
    }
    // The listener stopped accepting before the sessions were told to go.
    let late = V5::connect(&server.mqtt, &devices[0].1).await;
    assert!(late.is_err(), "a CONNECT after SIGTERM was accepted");
    // MQTT 3.1.1 has no server DISCONNECT: the connection just closes.
    assert!(
        v3.closed_within(Duration::from_secs(15)).await.is_some(),
        "the MQTT 3.1.1 connection stayed open"
    );
    let status = server
        .wait_exit(Duration::from_secs(SHUTDOWN_TIMEOUT_SECS + 10))
        .unwrap_or_else(|| panic!("still running:\n{}", server.log_text()));
    let exit_after = signalled.elapsed();
    assert!(status.success(), "exit {status}:\n{}", server.log_text());
    let ended = log_has(&server, "shutdown: MQTT sessions ended")
        .unwrap_or_else(|| panic!("no phase log line:\n{}", server.log_text()));
    assert_eq!(ended["sessions"], DEVICES + 1, "{ended}");
    assert_eq!(ended["left"], 0, "{ended}");
    let committed = log_has(&server, "shutdown: telemetry and timelines committed")
        .expect("the commit phase is logged");
    let stopped = log_has(&server, "stopped").expect("the end is logged");
    println!(
        "sigterm {backend:?}: exited 0 after {exit_after:?}; sessions phase {}, commit phase {}, total {} (server's own figures, ms)",
        ended["took_ms"], committed["took_ms"], stopped["took_ms"]
    );

    let mut problems = Vec::new();
    for (i, o) in outcomes.iter().enumerate() {
        if o.disconnect != Some(0x8B) {
            problems.push(format!(
                "device {i}: DISCONNECT {:?}, expected 0x8b",
                o.disconnect
            ));
        }
        if let Some(e) = &o.error {
            problems.push(format!("device {i}: {e}"));
        }
    }
    let first_run = server.log_text();
    server.restart().await;
    let c = Client::new(&server.base).with_token(c.token().unwrap());
    let seen: Vec<_> = devices
        .iter()
        .zip(&outcomes)
        .map(|((id, _), o)| {
            let acked: BTreeSet<u64> = o.acked.iter().copied().collect();
            let sent = acked.iter().chain(&o.unacked).copied().collect();
            (*id, acked, sent)
        })
        .collect();
    let t = tally(&c, &seen).await;
    println!(
        "sigterm {backend:?}: {DEVICES} MQTT 5 devices, acknowledged {}, stored {}, lost {}, stored twice {}",
        t.acked, t.stored, t.lost, t.duplicates
    );
    problems.extend(t.problems);
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // Presence and timelines say why, and the device rows are offline: the restarted server
    // found nothing left online (it would have marked it "node lost").
    for id in [devices[0].0, v3_id] {
        let p = presence(&c, id).await;
        assert!(!p.online);
        let events = timeline(&c, id).await;
        assert_eq!(
            disconnects_for(&events, DisconnectReason::ServerShutdown),
            1,
            "{events:#?}\nthe stopped server's log:\n{first_run}"
        );
        assert_eq!(disconnects_for(&events, DisconnectReason::NodeLost), 0);
        if backend == Backend::Postgres {
            assert_eq!(
                p.last_disconnect_reason,
                Some(DisconnectReason::ServerShutdown)
            );
        }
    }
    assert_eq!(listed_online(&c).await, Vec::<Uuid>::new());
}

/// A lone server after `kill -9`: nothing could say goodbye. Embedded (SQLite, in-process live
/// state), the restarted server marks the devices its previous run left online offline at
/// start-up; with Redis the restarted process is a new node, and its worker finds the old node's
/// liveness expired and does the same (`crashed_node_devices_go_offline` covers several nodes).
async fn kill_9_embedded_recovers_presence(backend: Backend) {
    let mut server = TestServer::start_with(
        backend,
        options()
            .env("STEAD_NODE_HEARTBEAT_SECS", "1")
            .env("STEAD_NODE_TIMEOUT_SECS", "2"),
    )
    .await;
    let acme = server.tenant("Acme").await;
    let (id, token) = device(&acme.admin, "abandoned").await;
    let (_raw, code) = Raw::connect(&server.mqtt, &token, 30, None).await;
    assert_eq!(code, 0);
    let deadline = Instant::now() + Duration::from_secs(5);
    while listed_online(&acme.admin).await != vec![id] {
        assert!(Instant::now() < deadline, "the row never said online");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.kill9();
    server.restart().await;
    let c = Client::new(&server.base).with_token(acme.admin.token().unwrap());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let events = timeline(&c, id).await;
        let offline = listed_online(&c).await.is_empty();
        if offline && disconnects_for(&events, DisconnectReason::NodeLost) == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not marked offline once after the restart: {events:#?}\n{}",
            server.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let p = presence(&c, id).await;
    assert!(!p.online);
    assert_eq!(p.last_disconnect_reason, Some(DisconnectReason::NodeLost));
}

/// One device's publisher across connections: it connects to the node at `nodes[turn]`, and
/// whenever the connection ends, to the other node (or the same one, if the other refuses),
/// first resending what was not acknowledged.
async fn roam(
    token: String,
    nodes: Arc<Mutex<[String; 2]>>,
    mut turn: usize,
    stop: Arc<AtomicBool>,
) -> (BTreeSet<u64>, BTreeSet<u64>, Vec<String>) {
    let (mut acked, mut sent, mut notes) = (BTreeSet::new(), BTreeSet::new(), Vec::new());
    let mut pending: Vec<u64> = Vec::new();
    let mut next = 1u64;
    let give_up = Instant::now() + Duration::from_secs(120);
    loop {
        if stop.load(Ordering::Relaxed) && pending.is_empty() {
            break;
        }
        if Instant::now() > give_up {
            notes.push(format!("gave up with {} unacknowledged", pending.len()));
            break;
        }
        let addr = nodes.lock().unwrap()[turn].clone();
        let mut client = match V5::connect(&addr, &token).await {
            Ok(client) => client,
            Err(_) => {
                turn = 1 - turn;
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let first = next;
        let conn = publish_on(&mut client, std::mem::take(&mut pending), &mut next, &stop).await;
        sent.extend(first..next);
        sent.extend(conn.acked.iter().copied());
        acked.extend(conn.acked.iter().copied());
        pending = conn
            .unacked
            .into_iter()
            .filter(|s| !acked.contains(s))
            .collect();
        if let Some(e) = conn.error {
            notes.push(e);
        }
        if let Some(code) = conn.disconnect
            && code != 0x8B
        {
            notes.push(format!("DISCONNECT {}", wire::reason(true, code)));
        }
        turn = 1 - turn;
    }
    (acked, sent, notes)
}

/// A rolling restart under QoS 1 load: node A gets SIGTERM and is started again, then node B;
/// the clients move to the other node each time and resend what was not acknowledged. At the end
/// not one acknowledged message is missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_restart_loses_no_acknowledged_message() {
    const DEVICES: usize = 8;
    let mut a = TestServer::start_with(Backend::Postgres, options()).await;
    let mut b = TestServer::start_with(
        Backend::Postgres,
        Options {
            join: Some(a.shared()),
            ..options()
        },
    )
    .await;
    let acme = a.tenant("Acme").await;
    let mut devices = Vec::new();
    for i in 0..DEVICES {
        devices.push(device(&acme.admin, &format!("roaming-{i}")).await);
    }
    let nodes = Arc::new(Mutex::new([a.mqtt.clone(), b.mqtt.clone()]));
    let stop = Arc::new(AtomicBool::new(false));
    let roamers: Vec<_> = devices
        .iter()
        .enumerate()
        .map(|(i, (_, token))| {
            tokio::spawn(roam(token.clone(), nodes.clone(), i % 2, stop.clone()))
        })
        .collect();
    let load = Duration::from_millis(1500);
    tokio::time::sleep(load).await;
    for (i, node) in [&mut a, &mut b].into_iter().enumerate() {
        node.sigterm();
        let status = node
            .wait_exit(Duration::from_secs(SHUTDOWN_TIMEOUT_SECS + 10))
            .unwrap_or_else(|| panic!("node {i} still running:\n{}", node.log_text()));
        assert!(
            status.success(),
            "node {i} exit {status}:\n{}",
            node.log_text()
        );
        node.restart().await;
        nodes.lock().unwrap()[i] = node.mqtt.clone();
        tokio::time::sleep(load).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut seen = Vec::new();
    let mut problems = Vec::new();
    for ((id, _), roamer) in devices.iter().zip(roamers) {
        let (acked, sent, notes) = tokio::time::timeout(Duration::from_secs(150), roamer)
            .await
            .expect("each client finishes")
            .unwrap();
        problems.extend(notes.into_iter().map(|n| format!("device {id}: {n}")));
        seen.push((*id, acked, sent));
    }
    let c = Client::new(&a.base).with_token(acme.admin.token().unwrap());
    let t = tally(&c, &seen).await;
    println!(
        "rolling restart: {DEVICES} MQTT 5 devices over two nodes, each restarted once: acknowledged {}, stored {}, lost {}, stored twice (resent after a lost PUBACK) {}",
        t.acked, t.stored, t.lost, t.duplicates
    );
    problems.extend(t.problems);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(t.lost, 0);
}

/// `kill -9` of a node holding devices: the surviving nodes mark them offline within the stated
/// bound (node timeout + heartbeat), once, although two workers look; a device that has
/// reconnected to a surviving node stays online.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashed_node_devices_go_offline() {
    const HEARTBEAT: u64 = 1;
    const TIMEOUT: u64 = 3;
    let fast = || {
        options()
            .env("STEAD_NODE_HEARTBEAT_SECS", HEARTBEAT.to_string())
            .env("STEAD_NODE_TIMEOUT_SECS", TIMEOUT.to_string())
    };
    let a = TestServer::start_with(Backend::Postgres, fast()).await;
    let join = |args: &[&str]| Options {
        join: Some(a.shared()),
        args: args.iter().map(|s| s.to_string()).collect(),
        ..fast()
    };
    let mut b = TestServer::start_with(Backend::Postgres, join(&[])).await;
    // A second worker: the lost node's devices must still be marked offline once.
    let _w = TestServer::start_with(Backend::Postgres, join(&["--roles", "worker"])).await;
    let acme = a.tenant("Acme").await;
    let c = &acme.admin;
    let (stranded, stranded_token) = device(c, "stranded").await;
    let (mover, mover_token) = device(c, "mover").await;
    let (_s, code) = Raw::connect(&b.mqtt, &stranded_token, 60, None).await;
    assert_eq!(code, 0);
    let (_m, code) = Raw::connect(&b.mqtt, &mover_token, 60, None).await;
    assert_eq!(code, 0);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !(presence(c, stranded).await.online && presence(c, mover).await.online) {
        assert!(Instant::now() < deadline, "never online");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    b.kill9();
    let killed = Instant::now();
    // The mover notices and reconnects to the surviving node at once.
    let (_moved, code) = Raw::connect(&a.mqtt, &mover_token, 60, None).await;
    assert_eq!(code, 0);
    let bound = Duration::from_secs(TIMEOUT + HEARTBEAT);
    let offline_after = loop {
        let p = presence(c, stranded).await;
        if !p.online {
            assert_eq!(p.last_disconnect_reason, Some(DisconnectReason::NodeLost));
            break killed.elapsed();
        }
        // One second of slack for the sweep itself and this loop's polling.
        assert!(
            killed.elapsed() < bound + Duration::from_secs(1),
            "still online {:?} after the kill (bound {bound:?}):\n{}",
            killed.elapsed(),
            a.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    println!(
        "crashed node: its device marked offline {offline_after:?} after kill -9 (stated bound {bound:?})"
    );
    // Another sweep or two of both workers changes nothing.
    tokio::time::sleep(Duration::from_secs(2 * HEARTBEAT + 1)).await;
    let p = presence(c, mover).await;
    assert!(
        p.online,
        "the device that reconnected to A was marked offline"
    );
    let db = a.database.clone().unwrap();
    let row = |id: Uuid| {
        psql(
            &db,
            &format!("SELECT online FROM devices WHERE id = '{id}'"),
        )
    };
    assert_eq!(row(stranded), "f");
    assert_eq!(row(mover), "t");
    let events = timeline(c, stranded).await;
    assert_eq!(
        disconnects_for(&events, DisconnectReason::NodeLost),
        1,
        "{events:#?}"
    );
    assert_eq!(
        disconnects_for(&timeline(c, mover).await, DisconnectReason::NodeLost),
        0
    );
}
