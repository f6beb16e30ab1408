//! Faults the platform must survive, through real processes: Redis stopped under QoS 1 load and
//! started again (empty, as a Redis without persistence comes back), with two nodes on it.

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
