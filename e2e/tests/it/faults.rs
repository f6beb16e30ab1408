//! Faults the platform must survive, through real processes: Redis stopped under QoS 1 load and
//! started again (empty, as a Redis without persistence comes back), with two nodes on it;
//! PostgreSQL crashed under load; a node killed with devices, live views and commands on it.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use stead_e2e::client::Client;

use crate::credentials::basic_device;
use crate::harness::{Backend, Options, TestServer};
use crate::mqtt::{count_stored, device, eventually, presence};
use crate::mqtt_raw::{Login, PUBACK, Raw};

/// A Redis server of the test's own, on its own port, that the test can stop and start again.
pub struct PrivateRedis {
    pub port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl PrivateRedis {
    pub fn start() -> PrivateRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut redis = PrivateRedis {
            port,
            child: None,
            dir: tempfile::tempdir().expect("temp dir"),
        };
        redis.resume();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again), empty, and waits until it answers.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        self.child = Some(child);
        let started = Instant::now();
        while !self.answers() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server did not answer on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the server (`kill -9`): it loses everything it held.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn answers(&self) -> bool {
        Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "ping"])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "PONG")
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn readyz(server: &TestServer) -> (u16, serde_json::Value) {
    let r = server.client().get("/readyz").await.unwrap();
    (r.status.as_u16(), r.body)
}

/// Publishes QoS 1 messages `{"n": i}` one after another until told to stop; counts those the
/// server acknowledged. A message not acknowledged within 5 s is given up (and not counted).
fn publisher(
    addr: String,
    token: String,
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let (mut raw, code) = Raw::connect(&addr, &token, 60, None).await;
        assert_eq!(code, 0);
        let mut n: u16 = 0;
        while !stop.load(Ordering::Acquire) {
            n = n.wrapping_add(1).max(1);
            raw.publish(
                "v1/devices/me/telemetry",
                json!({"seq": n}).to_string().as_bytes(),
                Some(n),
            )
            .await;
            match raw.read(Duration::from_secs(5)).await {
                Some((PUBACK, body)) if body == n.to_be_bytes() => {
                    acked.fetch_add(1, Ordering::AcqRel);
                }
                other => panic!("expected PUBACK {n}, got {other:?}"),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_loses_nothing_and_misses_no_revocation() {
    let mut redis = PrivateRedis::start();
    let a = TestServer::start_with(
        Backend::Postgres,
        Options::default().env("STEAD_REDIS_URL", redis.url()),
    )
    .await;
    let b = TestServer::start_with(
        Backend::Postgres,
        Options {
            join: Some(a.shared()),
            ..Options::default()
        }
        .env("STEAD_REDIS_URL", redis.url()),
    )
    .await;
    let acme = a.tenant("Acme").await;
    let c = &acme.admin;
    let on_b = Client::new(&b.base).with_token(c.token().unwrap());

    // An MQTT-basic device whose login node B verified and cached.
    let (basic_id, basic) = basic_device(
        c,
        "basic",
        json!({"username": "outage-user", "password": "outage-password-1"}),
    )
    .await;
    let login = Login {
        client_id: None,
        username: &basic.username,
        password: Some(&basic.password),
    };
    let (mut raw, code) = Raw::connect_as(&b.mqtt, &login, 30, None).await;
    assert_eq!(code, 0);
    raw.disconnect().await;
    // A device that stays connected to B through the outage, waiting for commands, and one
    // whose credentials are revoked during it.
    let (held_id, held_token) = device(c, "held").await;
    let (mut held, code) = Raw::connect(&b.mqtt, &held_token, 60, None).await;
    assert_eq!(code, 0);
    held.subscribe("v1/devices/me/rpc/request/+", 1).await;
    assert!(held.read(Duration::from_secs(5)).await.is_some(), "SUBACK");
    let (doomed_id, doomed_token) = device(c, "doomed").await;
    let (mut doomed, code) = Raw::connect(&b.mqtt, &doomed_token, 60, None).await;
    assert_eq!(code, 0);
    // QoS 1 load on node A for the whole outage.
    let (load_id, load_token) = device(c, "load").await;
    let (stop, acked) = (Arc::new(AtomicBool::new(false)), Arc::default());
    let load = publisher(a.mqtt.clone(), load_token, stop.clone(), Arc::clone(&acked));
    eventually("node B holds the devices", || async {
        presence(c, held_id).await.online && presence(c, doomed_id).await.online
    })
    .await;

    // Redis goes away.
    redis.kill();
    let down_at = Instant::now();
    for server in [&a, &b] {
        eventually("/readyz reports Redis down", || async {
            let (status, body) = readyz(server).await;
            status == 503 && body["checks"]["redis"].as_str().unwrap_or("ok") != "ok"
        })
        .await;
    }
    // Revocations and a command made through node A while nobody hears anybody.
    let r = c
        .post(
            &format!("/api/v1/devices/{basic_id}/credentials/revoke"),
            &json!({}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = c
        .post(
            &format!("/api/v1/devices/{doomed_id}/credentials/revoke"),
            &json!({}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = c
        .post(
            &format!("/api/v1/devices/{held_id}/rpc"),
            &json!({"method": "afterTheOutage", "persistent": true, "oneway": true}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 202, "{:?}", r.body);
    // Node B does not trust its cached login while it cannot hear node A.
    assert_eq!(
        Raw::connect_as(&b.mqtt, &login, 30, None).await.1,
        4,
        "the login revoked during the outage still connects to node B"
    );
    let before = acked.load(Ordering::Acquire);
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(down_at.elapsed())).await;
    let during = acked.load(Ordering::Acquire) - before;
    assert!(during > 0, "ingest stopped acknowledging during the outage");

    // Redis comes back, empty.
    redis.resume();
    let back_at = Instant::now();
    for server in [&a, &b] {
        for _ in 0..300 {
            if readyz(server).await.0 == 200 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (status, body) = readyz(server).await;
        assert_eq!(status, 200, "not ready 15 s after Redis came back: {body}");
    }
    let recovered = back_at.elapsed();

    // What node B missed is caught up on: the revoked session ends, the command arrives, the
    // revoked login connects nowhere, and the device it kept is online again.
    assert!(
        doomed
            .closed_within(Duration::from_secs(10))
            .await
            .is_some(),
        "the session whose credentials were revoked during the outage was not ended"
    );
    let (topic, _) = held
        .next_publish_acked(Duration::from_secs(10))
        .await
        .expect("the command queued during the outage reached the device");
    assert!(topic.starts_with("v1/devices/me/rpc/request/"), "{topic}");
    for server in [&a, &b] {
        assert_eq!(Raw::connect_as(&server.mqtt, &login, 30, None).await.1, 4);
    }
    eventually("the device held through the outage is online", || async {
        presence(c, held_id).await.online
    })
    .await;
    let p: stead_api_types::Presence = on_b
        .get(&format!("/api/v1/devices/{held_id}/presence"))
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert!(p.online);
    // The nodes hear each other again: a take-over from A ends the session on B.
    let (_, code) = Raw::connect(&a.mqtt, &held_token, 60, None).await;
    assert_eq!(code, 0);
    assert!(
        held.closed_within(Duration::from_secs(5)).await.is_some(),
        "node B did not hear node A's take-over after the outage"
    );

    // Nothing acknowledged was lost.
    stop.store(true, Ordering::Release);
    load.await.unwrap();
    let acked = acked.load(Ordering::Acquire);
    eventually("every acknowledged message is stored", || async {
        count_stored(c, load_id, "seq").await == acked
    })
    .await;
    eprintln!(
        "redis outage: {acked} messages acknowledged ({during} during the 30 s outage), {acked} stored, 0 lost; ready {:.1} s after Redis came back",
        recovered.as_secs_f64()
    );
}

/// A PostgreSQL server of the test's own (initdb in a temporary directory, as the `postgres`
/// user), on its own port, that the test can crash and start again.
pub struct PrivatePostgres {
    pub port: u16,
    dir: tempfile::TempDir,
}

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

fn as_postgres(program: &str, args: &[&str]) -> std::process::Output {
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(format!("{PG_BIN}/{program}"))
        .args(args)
        .output()
        .expect("runuser and PostgreSQL's binaries are installed");
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl PrivatePostgres {
    pub fn start() -> PrivatePostgres {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = tempfile::tempdir().expect("temp dir");
        let uid: u32 = String::from_utf8_lossy(
            &Command::new("id")
                .args(["-u", "postgres"])
                .output()
                .expect("id")
                .stdout,
        )
        .trim()
        .parse()
        .expect("a postgres user");
        std::os::unix::fs::chown(dir.path(), Some(uid), None).expect("chown the data directory");
        let data = dir.path().join("data");
        as_postgres(
            "initdb",
            &[
                "-D",
                &data.display().to_string(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        let pg = PrivatePostgres { port, dir };
        pg.resume();
        pg.psql("postgres", "CREATE DATABASE stead");
        pg
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/stead", self.port)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// Starts the server and waits until it accepts connections.
    pub fn resume(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("log").display().to_string();
        as_postgres(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-o",
                &options,
                "-l",
                &log,
                "-w",
                "start",
            ],
        );
    }

    /// Stops the server as a crash would (`-m immediate`: no checkpoint, clients cut off).
    pub fn crash(&self) {
        as_postgres(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
    }

    pub fn psql(&self, database: &str, sql: &str) -> String {
        let url = format!("postgres://postgres@127.0.0.1:{}/{database}", self.port);
        let out = Command::new("psql")
            .args([url.as_str(), "-v", "ON_ERROR_STOP=1", "-tAc", sql])
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(format!("{PG_BIN}/pg_ctl"))
            .args(["-D", &self.data(), "-m", "immediate", "-w", "stop"])
            .output();
    }
}

/// What a device that resends whatever was not acknowledged saw.
#[derive(Default, Debug)]
struct Resender {
    acked: std::collections::BTreeSet<u64>,
    /// Connections the server closed (or refused) instead of acknowledging.
    closed: u64,
    /// The longest wait for an answer to one PUBLISH (a PUBACK, or the connection closed).
    longest_wait: Duration,
}

/// Publishes `{"seq": n}` at QoS 1 one at a time; when the server closes the connection (it
/// cannot store), reconnects and sends the same message again, as a device does.
fn resender(
    addr: String,
    token: String,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Resender> {
    tokio::spawn(async move {
        let mut out = Resender::default();
        let mut seq = 1u64;
        let mut conn: Option<Raw> = None;
        while !stop.load(Ordering::Acquire) {
            let raw = match conn.as_mut() {
                Some(raw) => raw,
                None => {
                    let connected = tokio::time::timeout(
                        Duration::from_secs(15),
                        Raw::connect(&addr, &token, 60, None),
                    )
                    .await;
                    match connected {
                        Ok((raw, 0)) => conn.insert(raw),
                        _ => {
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            continue;
                        }
                    }
                }
            };
            let id = (seq % 60_000) as u16 + 1;
            let sent = Instant::now();
            raw.publish(
                "v1/devices/me/telemetry",
                json!({"seq": seq}).to_string().as_bytes(),
                Some(id),
            )
            .await;
            let answer = raw.read(Duration::from_secs(30)).await;
            out.longest_wait = out.longest_wait.max(sent.elapsed());
            match answer {
                Some((PUBACK, body)) if body == id.to_be_bytes() => {
                    out.acked.insert(seq);
                    seq += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Some(other) => panic!("expected PUBACK {id}, got {other:?}"),
                None => {
                    assert!(
                        sent.elapsed() < Duration::from_secs(30),
                        "the server neither acknowledged nor closed within 30 s"
                    );
                    out.closed += 1;
                    conn = None;
                }
            }
        }
        out
    })
}

/// Every stored `seq` of a device, page by page.
async fn stored_seqs(c: &Client, id: uuid::Uuid) -> Vec<u64> {
    let mut seqs = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path =
            format!("/api/v1/devices/{id}/telemetry?keys=seq&from=0&limit=10000&order=asc");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page: stead_api_types::TelemetrySeries = c.get(&path).await.unwrap().ok().unwrap();
        seqs.extend(
            page.series
                .get("seq")
                .into_iter()
                .flatten()
                .map(|p| p.value.as_u64().unwrap()),
        );
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return seqs,
        }
    }
}

/// PostgreSQL crashes under QoS 1 load and comes back: nothing acknowledged is lost, the
/// device is told (its connection closed, so it resends) instead of left hanging, and the
/// writers reconnect by themselves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_loses_nothing_acknowledged() {
    let pg = PrivatePostgres::start();
    let server = TestServer::start_with(
        Backend::Postgres,
        Options::default().env("STEAD_DATABASE_URL", pg.url()),
    )
    .await;
    let acme = server.tenant("Acme").await;
    let c = &acme.admin;
    let (id, token) = device(c, "steady").await;
    let stop = Arc::new(AtomicBool::new(false));
    let load = resender(server.mqtt.clone(), token, stop.clone());
    tokio::time::sleep(Duration::from_secs(3)).await;

    pg.crash();
    tokio::time::sleep(Duration::from_secs(5)).await;
    pg.resume();
    let back = Instant::now();
    eventually("/readyz says the database is back", || async {
        server.client().get("/readyz").await.unwrap().status == 200
    })
    .await;
    let ready_after = back.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Release);
    let seen = load.await.unwrap();

    let stored: std::collections::BTreeSet<u64> = stored_seqs(c, id).await.into_iter().collect();
    let lost: Vec<_> = seen.acked.difference(&stored).collect();
    eprintln!(
        "postgres crash: {} acknowledged, {} stored, {} lost; the device was cut off {} times and resent; longest wait for an answer {:?}; ready {:.1} s after PostgreSQL started",
        seen.acked.len(),
        stored.len(),
        lost.len(),
        seen.closed,
        seen.longest_wait,
        ready_after.as_secs_f64()
    );
    assert!(lost.is_empty(), "acknowledged and lost: {lost:?}");
    assert!(seen.closed > 0, "the device never noticed the outage");
    assert!(seen.acked.len() > 100, "too few messages to tell: {seen:?}");
}

/// A node is killed (`kill -9`) with devices, a live view and commands on it: the surviving
/// node's live view shows the device go offline within the stated bound, the command the dead
/// node had sent is sent again when the device reconnects elsewhere, a caller waiting on a
/// command gets its time-out with the reason, and nothing acknowledged is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_s_devices_and_commands_carry_on_elsewhere() {
    const HEARTBEAT: u64 = 1;
    const TIMEOUT: u64 = 3;
    let fast = || {
        Options::default()
            .env("STEAD_NODE_HEARTBEAT_SECS", HEARTBEAT.to_string())
            .env("STEAD_NODE_TIMEOUT_SECS", TIMEOUT.to_string())
    };
    let a = TestServer::start_with(Backend::Postgres, fast()).await;
    let mut b = TestServer::start_with(
        Backend::Postgres,
        Options {
            join: Some(a.shared()),
            ..fast()
        },
    )
    .await;
    let acme = a.tenant("Acme").await;
    let c = &acme.admin;
    let (worker_id, worker_token) = device(c, "worker").await;
    let (load_id, load_token) = device(c, "load").await;

    // On node B: a device waiting for commands, and QoS 1 load.
    let (mut on_b, code) = Raw::connect(&b.mqtt, &worker_token, 60, None).await;
    assert_eq!(code, 0);
    on_b.subscribe("v1/devices/me/rpc/request/+", 1).await;
    assert!(on_b.read(Duration::from_secs(5)).await.is_some(), "SUBACK");
    let (stop, acked) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let load = publisher(b.mqtt.clone(), load_token, stop.clone(), acked.clone());
    // A live view on node A of the device on node B.
    let mut live = reqwest::Client::new()
        .get(format!("{}/api/v1/devices/{worker_id}/live", a.base))
        .bearer_auth(c.token().unwrap())
        .send()
        .await
        .unwrap()
        .bytes_stream();
    crate::access::read_until(&mut live, "event: presence", Duration::from_secs(5)).await;
    // A persistent command, sent by node B and not answered yet (it retries once after 2 s).
    let r = c
        .post(
            &format!("/api/v1/devices/{worker_id}/rpc"),
            &json!({"method": "calibrate", "persistent": true, "timeout_ms": 2000, "retries": 1}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 202, "{:?}", r.body);
    let command = r.body["id"].as_str().unwrap().to_owned();
    let (topic, _) = on_b
        .next_publish_acked(Duration::from_secs(5))
        .await
        .expect("the command reached the device on node B");
    assert!(topic.starts_with("v1/devices/me/rpc/request/"));
    // A caller waiting on node A for a two-way command to the device on node B.
    let waiting = {
        let c = Client::new(&a.base).with_token(c.token().unwrap());
        tokio::spawn(async move {
            c.post(
                &format!("/api/v1/devices/{worker_id}/rpc"),
                &json!({"method": "status", "timeout_ms": 4000}),
            )
            .await
            .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;

    stop.store(true, Ordering::Release);
    b.kill9();
    let killed = Instant::now();
    let acked_before = acked.load(Ordering::Acquire);
    let _ = load.await;

    // The live view on node A sees the device go offline within node timeout + heartbeat.
    let seen = crate::access::read_until(
        &mut live,
        "node_lost",
        Duration::from_secs(TIMEOUT + HEARTBEAT + 2),
    )
    .await;
    let offline_after = killed.elapsed();
    assert!(seen.contains("\"online\":false"), "{seen}");
    // The caller waiting on A gets a time-out, with the reason.
    let answered = waiting.await.unwrap();
    assert_eq!(
        (answered.status.as_u16(), answered.code()),
        (504, "rpc_timeout".to_owned()),
        "{:?}",
        answered.body
    );
    assert_eq!(answered.body["command"]["status"], "TIMEOUT");
    assert!(answered.body["command"]["error"].as_str().is_some());
    // The device reconnects to node A: the command node B had sent comes again.
    let (mut on_a, code) = Raw::connect(&a.mqtt, &worker_token, 60, None).await;
    assert_eq!(code, 0);
    on_a.subscribe("v1/devices/me/rpc/request/+", 1).await;
    let mut resent = false;
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        match on_a.next_publish_acked(Duration::from_secs(1)).await {
            Some((topic, payload)) if topic.starts_with("v1/devices/me/rpc/request/") => {
                let body: serde_json::Value = serde_json::from_slice(&payload).unwrap();
                if body["method"] == "calibrate" {
                    let request = topic.rsplit('/').next().unwrap().to_owned();
                    on_a.publish(
                        &format!("v1/devices/me/rpc/response/{request}"),
                        br#"{"ok":true}"#,
                        Some(9),
                    )
                    .await;
                    resent = true;
                    break;
                }
            }
            _ => {}
        }
    }
    assert!(
        resent,
        "the command in flight on the killed node was not sent again"
    );
    eventually("the resent command is answered", || async {
        let cmd: serde_json::Value = c
            .get(&format!("/api/v1/devices/{worker_id}/rpc/{command}"))
            .await
            .unwrap()
            .body;
        cmd["status"] == "SUCCESSFUL"
    })
    .await;
    // Nothing acknowledged by node B before it died is lost.
    let stored = count_stored(c, load_id, "seq").await;
    assert!(
        stored >= acked_before,
        "{acked_before} acknowledged by the killed node, {stored} stored"
    );
    eprintln!(
        "killed node: {acked_before} messages acknowledged by it, {stored} stored, 0 lost; its device offline in the live view {offline_after:?} after kill -9 (bound {} s)",
        TIMEOUT + HEARTBEAT
    );
}
