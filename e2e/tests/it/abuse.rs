//! Abusive clients through real sockets, against the real server: slowloris on HTTP and MQTT,
//! half-open connections, CONNECT floods from one address, malformed and oversized packets at
//! every stage of a session, ten thousand subscriptions on one connection, deeply nested JSON.
//! Each is bounded (a timeout, a per-address bound, a quota, a depth limit) and answered or
//! closed, while a well-behaved device on the same server keeps getting its PUBACKs.
//!
//! The attacks come from other loopback addresses (127.0.0.2 and up, which Linux routes like
//! 127.0.0.1) and the tests exempt only 127.0.0.1 from the per-address bounds, so that the
//! harness and the well-behaved device are not counted with the attackers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reqwest::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

use stead_e2e::wire::{self, packet, put_string};

use crate::harness::{Backend, Options, TestServer};
use crate::mqtt::{device, eventually, timeline};
use crate::mqtt_raw::{CONNACK, PUBACK, Raw, SUBACK, read_packet};

const UNSUBACK: u8 = 11;
const PINGRESP: u8 = 13;

/// A connection to `addr` from the loopback address `source`.
async fn tcp_from(source: &str, addr: &str) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(format!("{source}:0").parse().expect("a source address"))?;
    socket
        .connect(addr.parse().expect("a server address"))
        .await
}

/// `host:port` of the HTTP listener.
fn http_addr(server: &TestServer) -> String {
    server.base.trim_start_matches("http://").to_owned()
}

/// Reads until the server closes the connection: how long that took from `since`, and what it
/// sent meanwhile; `None` when it was still open at `limit` after `since`.
async fn closed(
    stream: &mut (impl AsyncReadExt + Unpin),
    since: Instant,
    limit: Duration,
) -> Option<(Duration, Vec<u8>)> {
    let mut got = Vec::new();
    let deadline = since + limit;
    loop {
        let mut buf = [0u8; 4096];
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some((since.elapsed(), got)),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return None,
        }
    }
}

/// Sends `bytes` one a second on `stream` until the server closes it: how long that took, and
/// what the server sent; `None` when it was still open after `limit`.
async fn dribble(
    stream: TcpStream,
    bytes: Vec<u8>,
    limit: Duration,
) -> Option<(Duration, Vec<u8>)> {
    let started = Instant::now();
    let (mut rd, mut wr) = stream.into_split();
    let writer = tokio::spawn(async move {
        for b in bytes {
            if wr.write_all(&[b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        // Out of bytes: hold the connection open without a word.
        tokio::time::sleep(Duration::from_secs(3600)).await;
        drop(wr);
    });
    let outcome = closed(&mut rd, started, limit).await;
    writer.abort();
    outcome
}

/// The CONNECT of a device (MQTT 3.1.1 unless `v5`).
fn connect_packet(v5: bool, token: &str, keep_alive: u16) -> Vec<u8> {
    wire::Connect {
        v5,
        client_id: &format!("abuse-{}", uuid::Uuid::new_v4().simple()),
        username: token,
        password: None,
        keep_alive,
        will: None,
    }
    .encode()
}

/// Connects a device from `source` (MQTT 3.1.1 unless `v5`); answers the connection and the
/// CONNACK's code.
async fn connect_from(source: &str, addr: &str, v5: bool, token: &str) -> (TcpStream, u8) {
    let mut stream = tcp_from(source, addr).await.expect("TCP connect");
    stream
        .write_all(&connect_packet(v5, token, 60))
        .await
        .expect("send CONNECT");
    let code = match read_packet(&mut stream, Duration::from_secs(10)).await {
        Some((CONNACK, body)) if body.len() >= 2 => body[1],
        other => panic!("expected CONNACK, got {other:?}"),
    };
    (stream, code)
}

/// A SUBSCRIBE for `filters` at QoS 1.
fn subscribe_packet(v5: bool, id: u16, filters: &[String]) -> Vec<u8> {
    let mut body = id.to_be_bytes().to_vec();
    if v5 {
        body.push(0); // no properties
    }
    for f in filters {
        put_string(&mut body, f.as_bytes());
        body.push(1);
    }
    packet(0x82, &body)
}

/// The return codes of a SUBACK's body.
fn suback_codes(v5: bool, body: &[u8]) -> Vec<u8> {
    if !v5 {
        return body[2..].to_vec();
    }
    let (props, n) = wire::varint(&body[2..]).expect("SUBACK properties");
    body[2 + n + props..].to_vec()
}

/// A device that publishes QoS 1 telemetry at a steady 20 messages a second and times each
/// PUBACK, until told to stop.
struct Steady {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<Duration>>,
}

impl Steady {
    async fn start(server: &TestServer, token: &str) -> Steady {
        let (mut raw, code) = Raw::connect(&server.mqtt, token, 30, None).await;
        assert_eq!(code, 0, "the well-behaved device connects");
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut id: u16 = 0;
            while !stopped.load(Ordering::Relaxed) {
                id = id % 60_000 + 1;
                let sent = Instant::now();
                raw.publish(
                    "v1/devices/me/telemetry",
                    format!(r#"{{"steady":{id}}}"#).as_bytes(),
                    Some(id),
                )
                .await;
                loop {
                    match raw.read(Duration::from_secs(10)).await {
                        Some((PUBACK, body)) if body[..2] == id.to_be_bytes() => break,
                        Some(_) => continue,
                        None => panic!(
                            "the well-behaved device got no PUBACK for message {id} (its connection \
                             closed, or nothing within 10 s; after {} acknowledged)",
                            latencies.len()
                        ),
                    }
                }
                latencies.push(sent.elapsed());
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            raw.disconnect().await;
            latencies
        });
        Steady { stop, task }
    }

    /// Stops it; every message was acknowledged (else the task failed), none later than 2 s.
    async fn finish(self, what: &str) -> Vec<Duration> {
        self.stop.store(true, Ordering::Relaxed);
        let mut latencies = self.task.await.expect("the well-behaved device's task");
        assert!(!latencies.is_empty(), "{what}: the device published");
        latencies.sort();
        let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
        let (p50, p99, max) = (at(0.5), at(0.99), at(1.0));
        eprintln!(
            "{what}: well-behaved device, {} QoS 1 messages, every one acknowledged; PUBACK p50 \
             {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            latencies.len(),
            p50.as_secs_f64() * 1000.0,
            p99.as_secs_f64() * 1000.0,
            max.as_secs_f64() * 1000.0,
        );
        assert!(
            max < Duration::from_secs(2),
            "{what}: a PUBACK took {max:?}"
        );
        latencies
    }
}

async fn metrics(server: &TestServer) -> String {
    reqwest::get(format!("{}/metrics", server.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of a counter line of `/metrics` (0 when absent).
fn counter(metrics: &str, line_start: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(line_start))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// The server's log lines that contain every one of `words`.
fn log_lines(server: &TestServer, words: &[&str]) -> usize {
    server
        .log_text()
        .lines()
        .filter(|l| words.iter().all(|w| l.contains(w)))
        .count()
}

// ---------------------------------------------------------------------------------------------
// 1. HTTP slowloris

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_slowloris_is_cut_off() {
    let server = TestServer::start_with(
        Backend::Sqlite,
        Options::default()
            .env("STEAD_HTTP_REQUEST_TIMEOUT_SECS", "2")
            .env("STEAD_HTTP_KEEP_ALIVE_SECS", "5"),
    )
    .await;
    let addr = http_addr(&server);
    fn endless() -> Vec<u8> {
        let mut bytes = b"GET /healthz HTTP/1.1\r\nHost: stead\r\nX-Slow: ".to_vec();
        bytes.extend([b'a'; 60]);
        bytes
    }

    // The first request's head, one byte a second: 408 and closed at the request timeout.
    let first = tokio::spawn({
        let addr = addr.clone();
        async move {
            let stream = TcpStream::connect(&addr).await.unwrap();
            dribble(stream, endless(), Duration::from_secs(10)).await
        }
    });

    // A well-formed request, then the next head on the same kept-alive connection one byte a
    // second: actix alone gives the second head no deadline (the keep-alive timer ends with its
    // first byte); the patched actix-http gives it the request timeout again.
    let second = tokio::spawn({
        let addr = addr.clone();
        async move {
            let mut stream = TcpStream::connect(&addr).await.unwrap();
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: stead\r\n\r\n")
                .await
                .unwrap();
            let mut answer = Vec::new();
            while !String::from_utf8_lossy(&answer).contains("\r\n\r\n") {
                let mut buf = [0u8; 1024];
                let n = stream.read(&mut buf).await.unwrap();
                assert!(n > 0, "the first request is answered");
                answer.extend_from_slice(&buf[..n]);
            }
            assert!(
                String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"),
                "{}",
                String::from_utf8_lossy(&answer)
            );
            dribble(stream, endless(), Duration::from_secs(12)).await
        }
    });

    // Meanwhile the API answers as usual.
    let client = server.client();
    for _ in 0..10 {
        let started = Instant::now();
        assert_eq!(client.get("/healthz").await.unwrap().status, 200);
        assert!(started.elapsed() < Duration::from_secs(1));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    let (took, answer) = first
        .await
        .unwrap()
        .expect("a dribbled first request head is cut off");
    eprintln!("HTTP slowloris, first request: closed after {took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 408"),
        "answered 408: {}",
        String::from_utf8_lossy(&answer)
    );
    let (took, answer) = second
        .await
        .unwrap()
        .expect("a dribbled second request head on a kept-alive connection is cut off");
    eprintln!("HTTP slowloris, second request on a kept-alive connection: closed after {took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 408"),
        "answered 408: {}",
        String::from_utf8_lossy(&answer)
    );
    assert_eq!(client.get("/healthz").await.unwrap().status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_connections_per_address_are_bounded() {
    let server = TestServer::start_with(
        Backend::Sqlite,
        Options::default()
            .env("STEAD_CONNECTION_LIMIT_EXEMPT", "127.0.0.1/32")
            .env("STEAD_HTTP_MAX_CONNECTIONS_PER_ADDRESS", "20")
            .env("STEAD_HTTP_REQUEST_TIMEOUT_SECS", "30"),
    )
    .await;
    let addr = http_addr(&server);
    // Twenty idle connections from one address hold its places.
    let mut idle = Vec::new();
    for _ in 0..20 {
        idle.push(tcp_from("127.0.0.2", &addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The next ones from that address are shut at once, unanswered.
    for _ in 0..5 {
        let mut stream = tcp_from("127.0.0.2", &addr).await.unwrap();
        let _ = stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: stead\r\n\r\n")
            .await;
        let (took, answer) = closed(&mut stream, Instant::now(), Duration::from_secs(3))
            .await
            .expect("a connection over the per-address bound is shut");
        assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
        assert!(took < Duration::from_secs(1), "{took:?}");
    }
    // Another address, and the exempt one, are served.
    let mut other = tcp_from("127.0.0.3", &addr).await.unwrap();
    other
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: stead\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (_, answer) = closed(&mut other, Instant::now(), Duration::from_secs(3))
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
    assert_eq!(server.client().get("/healthz").await.unwrap().status, 200);
    // The idle ones go: the address has its places back.
    drop(idle);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut again = tcp_from("127.0.0.2", &addr).await.unwrap();
    again
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: stead\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (_, answer) = closed(&mut again, Instant::now(), Duration::from_secs(3))
        .await
        .unwrap();
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    let m = metrics(&server).await;
    assert_eq!(
        counter(
            &m,
            r#"stead_http_connections_refused_total{reason="too many connections from one address"}"#
        ),
        5,
        "{m}"
    );
    // Logged once for the five (once per interval).
    assert_eq!(
        log_lines(
            &server,
            &["HTTP connection refused", "too many connections"]
        ),
        1
    );
}

// ---------------------------------------------------------------------------------------------
// 2. MQTT slowloris, 3. half-open connections

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_slowloris_and_half_open_connections_are_cut_off() {
    let server = TestServer::start_with(
        Backend::Sqlite,
        Options::default()
            .env("STEAD_MQTT_CONNECT_TIMEOUT_SECS", "3")
            .env("STEAD_MQTT_PACKET_TIMEOUT_SECS", "2"),
    )
    .await;
    let acme = server.tenant("Acme").await;
    let (id, token) = device(&acme.admin, "dribbler").await;
    let (_, steady_token) = device(&acme.admin, "steady").await;
    let (_, fresh_token) = device(&acme.admin, "fresh").await;
    let steady = Steady::start(&server, &steady_token).await;
    let addr = server.mqtt.clone();
    let connect = connect_packet(false, &token, 60);

    // A CONNECT one byte a second from its first byte: closed when its first bytes (the protocol
    // header) are not in within the connect timeout.
    let whole = tokio::spawn({
        let (addr, connect) = (addr.clone(), connect.clone());
        async move {
            let stream = TcpStream::connect(&addr).await.unwrap();
            dribble(stream, connect, Duration::from_secs(15)).await
        }
    });
    // Its protocol header at once, the rest one byte a second: closed at the connect timeout.
    let rest = tokio::spawn({
        let (addr, connect) = (addr.clone(), connect.clone());
        async move {
            let mut stream = TcpStream::connect(&addr).await.unwrap();
            stream.write_all(&connect[..10]).await.unwrap();
            dribble(stream, connect[10..].to_vec(), Duration::from_secs(15)).await
        }
    });
    // Two hundred connections that never send a byte.
    let half_open = tokio::spawn({
        let addr = addr.clone();
        async move {
            let mut streams = Vec::new();
            for _ in 0..200 {
                streams.push(TcpStream::connect(&addr).await.unwrap());
            }
            let started = Instant::now();
            let mut slowest = Duration::ZERO;
            for mut s in streams {
                let (took, _) = closed(&mut s, started, Duration::from_secs(15))
                    .await
                    .expect("a half-open connection is closed");
                slowest = slowest.max(took);
            }
            slowest
        }
    });
    // While they wait, a device connects as usual.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let (mut fresh, code) = Raw::connect(&addr, &fresh_token, 30, None).await;
    assert_eq!(code, 0);
    assert!(started.elapsed() < Duration::from_secs(2));
    fresh.disconnect().await;

    // A device connected with a keep-alive of 60 s (a 90 s grace) dribbles a PUBLISH: closed at
    // the packet timeout, not the keep-alive.
    let (mut raw, code) = Raw::connect(&addr, &token, 60, None).await;
    assert_eq!(code, 0);
    let mut publish = Vec::new();
    wire::put_publish(
        &mut publish,
        false,
        "v1/devices/me/telemetry",
        Some(1),
        br#"{"slow":1}"#,
    );
    raw.publish("v1/devices/me/telemetry", br#"{"fast":1}"#, Some(9))
        .await;
    assert!(matches!(
        raw.read(Duration::from_secs(5)).await,
        Some((PUBACK, _))
    ));
    let (took, _) = dribble(raw.into_stream(), publish, Duration::from_secs(15))
        .await
        .expect("a dribbled PUBLISH is cut off");
    eprintln!("MQTT slowloris, a PUBLISH after CONNECT: closed after {took:?}");
    assert!(took < Duration::from_secs(4), "{took:?}");

    let (took, _) = whole
        .await
        .unwrap()
        .expect("a CONNECT dribbled from its first byte is cut off");
    eprintln!("MQTT slowloris, CONNECT from its first byte: closed after {took:?}");
    assert!(took < Duration::from_secs(4), "{took:?}");
    let (took, _) = rest
        .await
        .unwrap()
        .expect("a CONNECT dribbled after its header is cut off");
    eprintln!("MQTT slowloris, CONNECT after its header: closed after {took:?}");
    assert!(took < Duration::from_secs(4), "{took:?}");
    let slowest = half_open.await.unwrap();
    eprintln!("200 half-open MQTT connections: the last closed after {slowest:?}");
    assert!(slowest < Duration::from_secs(5), "{slowest:?}");

    // Said in the log (the reasons, not per connection) and on the device's timeline.
    assert!(
        log_lines(
            &server,
            &["MQTT session ended: protocol error", "Read frame timeout"]
        ) >= 1,
        "{}",
        server.log_tail(40)
    );
    assert!(
        log_lines(&server, &["MQTT connection closed", "no CONNECT within"]) >= 1,
        "{}",
        server.log_tail(40)
    );
    eventually("the cut-off session is on the timeline", || async {
        timeline(&acme.admin, id)
            .await
            .iter()
            .any(|e| e.kind == "disconnected" && e.data["reason"] == "protocol_error")
    })
    .await;
    steady.finish("slowloris and half-open").await;
}

// ---------------------------------------------------------------------------------------------
// 4. CONNECT floods from one address

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_floods_from_one_address_are_bounded() {
    let server = TestServer::start_with(
        Backend::Sqlite,
        Options::default()
            .env("STEAD_CONNECTION_LIMIT_EXEMPT", "127.0.0.1/32")
            .env("STEAD_MQTT_MAX_CONNECTIONS_PER_ADDRESS", "50")
            .env("STEAD_MQTT_CONNECT_RATE_PER_ADDRESS", "50:60"),
    )
    .await;
    let acme = server.tenant("Acme").await;
    let (_, token) = device(&acme.admin, "flooded").await;
    let (_, steady_token) = device(&acme.admin, "steady").await;
    let steady = Steady::start(&server, &steady_token).await;
    let addr = server.mqtt.clone();

    // Fifty connections open at once from 127.0.0.2 (waiting to send CONNECT) hold its places;
    // the next one is closed before a byte of it is read, though its CONNECT is valid.
    let mut held = Vec::new();
    for _ in 0..50 {
        held.push(tcp_from("127.0.0.2", &addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut over = tcp_from("127.0.0.2", &addr).await.unwrap();
    let _ = over.write_all(&connect_packet(false, &token, 30)).await;
    let (took, answer) = closed(&mut over, Instant::now(), Duration::from_secs(3))
        .await
        .expect("a connection over the per-address bound is closed");
    assert!(answer.is_empty(), "no CONNACK: {answer:?}");
    assert!(took < Duration::from_secs(1), "{took:?}");
    // Another address connects.
    let (_, code) = connect_from("127.0.0.3", &addr, false, &token).await;
    assert_eq!(code, 0);
    drop(held);
    tokio::time::sleep(Duration::from_millis(500)).await;

    // A flood of CONNECTs from 127.0.0.4, as fast as it goes: 50 a minute are let in (and
    // refused for their credentials), the rest closed unread.
    let started = Instant::now();
    let mut answered = 0;
    let mut shut = 0;
    for _ in 0..600 {
        let mut stream = tcp_from("127.0.0.4", &addr).await.unwrap();
        let _ = stream
            .write_all(&connect_packet(false, "not-a-token", 30))
            .await;
        match read_packet(&mut stream, Duration::from_secs(5)).await {
            Some((CONNACK, body)) => {
                assert_eq!(body[1], 4, "bad user name or password");
                answered += 1;
            }
            None => shut += 1,
            other => panic!("{other:?}"),
        }
    }
    eprintln!(
        "CONNECT flood from one address: 600 in {:?}, {answered} answered, {shut} closed unread",
        started.elapsed()
    );
    assert_eq!(answered, 50);
    assert_eq!(shut, 550);
    // Other addresses are not held back by it.
    let (_, code) = connect_from("127.0.0.5", &addr, true, &token).await;
    assert_eq!(code, 0);

    let m = metrics(&server).await;
    assert_eq!(
        counter(
            &m,
            r#"stead_mqtt_connect_refused_total{reason="too many connections from one address"}"#
        ),
        1,
        "{m}"
    );
    assert_eq!(
        counter(
            &m,
            r#"stead_mqtt_connect_refused_total{reason="connecting too often from one address"}"#
        ),
        550,
        "{m}"
    );
    // Logged once per interval, not once per connection.
    let lines = log_lines(
        &server,
        &["MQTT connection refused", "connecting too often"],
    );
    assert!((1..=2).contains(&lines), "{lines} log lines");
    steady.finish("CONNECT flood").await;
}

// ---------------------------------------------------------------------------------------------
// 5. Malformed and oversized packets at every stage of a session

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_packets_at_every_stage_are_closed() {
    let server = TestServer::start_with(
        Backend::Sqlite,
        Options::default().env("STEAD_MQTT_MAX_PAYLOAD_BYTES", "1024"),
    )
    .await;
    let acme = server.tenant("Acme").await;
    let (_, token) = device(&acme.admin, "broken").await;
    let (_, steady_token) = device(&acme.admin, "steady").await;
    let steady = Steady::start(&server, &steady_token).await;
    let addr = server.mqtt.clone();
    // The largest packet is 4 × 1024 + 1024 bytes.
    let max_packet = 5 * 1024;

    let connect_with = |name: &[u8], level: u8, flags: u8, password: &[u8]| {
        let mut body = Vec::new();
        put_string(&mut body, name);
        body.push(level);
        body.push(flags);
        body.extend_from_slice(&30u16.to_be_bytes());
        if level == 5 {
            body.push(0);
        }
        put_string(&mut body, b"abuse");
        put_string(&mut body, token.as_bytes());
        if flags & 0x40 != 0 {
            put_string(&mut body, password);
        }
        packet(0x10, &body)
    };
    let mut remaining_over_max = vec![0x10];
    wire::put_varint(&mut remaining_over_max, 200 * 1024 * 1024);
    remaining_over_max.extend_from_slice(b"\x00\x04MQTT\x04\xC2\x00\x1E");
    let before: Vec<(&str, Vec<u8>)> = vec![
        (
            "a PUBLISH first",
            packet(0x30, b"\x00\x17v1/devices/me/telemetry{}"),
        ),
        ("garbage", b"GET / HTTP/1.1\r\nHost: stead\r\n\r\n".to_vec()),
        ("a remaining length over the maximum", remaining_over_max),
        (
            "a remaining length of five bytes",
            vec![0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F],
        ),
        (
            "a protocol name that is not MQTT",
            connect_with(b"MQTX", 4, 0x82, b""),
        ),
        ("protocol level 9", connect_with(b"MQTT", 9, 0x82, b"")),
        (
            "a CONNECT with its reserved flag set",
            connect_with(b"MQTT", 4, 0x83, b""),
        ),
        (
            "an oversized CONNECT",
            connect_with(b"MQTT", 4, 0xC2, &vec![b'p'; max_packet + 100]),
        ),
        (
            "an oversized MQTT 5 CONNECT",
            connect_with(b"MQTT", 5, 0xC2, &vec![b'p'; max_packet + 100]),
        ),
    ];
    for (what, bytes) in before {
        let mut stream = TcpStream::connect(&addr).await.unwrap();
        let _ = stream.write_all(&bytes).await;
        let (took, answer) = closed(&mut stream, Instant::now(), Duration::from_secs(8))
            .await
            .unwrap_or_else(|| panic!("{what}: the connection is closed"));
        // Closed at once, without a session: at most a refusing CONNACK.
        if let Some(&first) = answer.first() {
            assert_eq!(first >> 4, CONNACK, "{what}: {answer:?}");
            assert_ne!(answer[3], 0, "{what}: refused, not accepted: {answer:?}");
        }
        eprintln!("{what}: closed after {took:?}, answered {answer:?}");
        assert!(took < Duration::from_secs(2), "{what}: {took:?}");
    }

    // After CONNECT: each in a session of its own, each ends only that session.
    let mut oversized = Vec::new();
    wire::put_publish(
        &mut oversized,
        false,
        "v1/devices/me/telemetry",
        Some(1),
        &vec![b' '; max_packet + 10],
    );
    let mut bad_utf8 = vec![0x32];
    let mut body = Vec::new();
    put_string(&mut body, b"v1/devices/me/\xFF\xFEtelemetry");
    body.extend_from_slice(&[0, 1]);
    body.extend_from_slice(b"{}");
    wire::put_varint(&mut bad_utf8, body.len());
    bad_utf8.extend_from_slice(&body);
    let mut no_filters = Vec::new();
    no_filters.extend_from_slice(&packet(0x82, &[0, 5]));
    let mut qos3 = Vec::new();
    let mut body = 7u16.to_be_bytes().to_vec();
    put_string(&mut body, b"v1/devices/me/attributes");
    body.push(3);
    qos3.extend_from_slice(&packet(0x82, &body));
    let mut bad_flags = Vec::new();
    let mut body = 8u16.to_be_bytes().to_vec();
    put_string(&mut body, b"v1/devices/me/attributes");
    body.push(1);
    bad_flags.extend_from_slice(&packet(0x80, &body));
    let after: Vec<(&str, bool, Vec<u8>)> = vec![
        ("an oversized PUBLISH", false, oversized.clone()),
        ("an oversized MQTT 5 PUBLISH", true, {
            let mut p = Vec::new();
            wire::put_publish(
                &mut p,
                true,
                "v1/devices/me/telemetry",
                Some(1),
                &vec![b' '; max_packet + 10],
            );
            p
        }),
        ("a topic that is not UTF-8", false, bad_utf8),
        ("a SUBSCRIBE without filters", false, no_filters),
        ("a SUBSCRIBE asking for QoS 3", false, qos3),
        ("a SUBSCRIBE with wrong header flags", false, bad_flags),
        ("a PUBLISH at QoS 3", false, {
            let mut p = Vec::new();
            wire::put_publish(&mut p, false, "v1/devices/me/telemetry", Some(2), b"{}");
            p[0] = 0x36;
            p
        }),
    ];
    for (what, v5, bytes) in after {
        let (mut stream, code) = connect_from("127.0.0.1", &addr, v5, &token).await;
        assert_eq!(code, 0, "{what}");
        let _ = stream.write_all(&bytes).await;
        let (took, answer) = closed(&mut stream, Instant::now(), Duration::from_secs(8))
            .await
            .unwrap_or_else(|| panic!("{what}: the connection is closed"));
        // MQTT 5 may say why first: a DISCONNECT with an error reason code.
        if let Some(&first) = answer.first() {
            assert!(v5, "{what}: MQTT 3.1.1 just closes: {answer:?}");
            assert_eq!(first >> 4, wire::DISCONNECT, "{what}: {answer:?}");
            assert!(answer[2] >= 0x80, "{what}: {answer:?}");
        }
        eprintln!("{what}: closed after {took:?}, answered {answer:?}");
    }

    // A second CONNECT is a protocol violation the codec lets through: ntex-mqtt drops what a
    // server never expects (a CONNECT, a CONNACK), on either version. It is read within the
    // packet size bound and costs nothing more; the session goes on.
    for v5 in [false, true] {
        let (mut stream, code) = connect_from("127.0.0.1", &addr, v5, &token).await;
        assert_eq!(code, 0);
        stream
            .write_all(&connect_packet(v5, &token, 30))
            .await
            .unwrap();
        stream.write_all(&wire::PINGREQ_BYTES).await.unwrap();
        assert!(
            matches!(
                read_packet(&mut stream, Duration::from_secs(5)).await,
                Some((PINGRESP, _))
            ),
            "v5 {v5}: a second CONNECT is dropped"
        );
    }

    // The reasons are in the log (before the session: once per interval per reason).
    for words in [
        &["MQTT connection closed", "malformed or oversized packet"][..],
        &["MQTT session ended: protocol error"][..],
    ] {
        assert!(
            log_lines(&server, words) >= 1,
            "{words:?} in the log:\n{}",
            server.log_tail(60)
        );
    }
    let m = metrics(&server).await;
    assert!(
        counter(
            &m,
            r#"stead_mqtt_connect_refused_total{reason="malformed or oversized packet before the session"}"#
        ) >= 5,
        "{m}"
    );
    steady.finish("malformed packets").await;
    assert_eq!(server.client().get("/healthz").await.unwrap().status, 200);
}

// ---------------------------------------------------------------------------------------------
// 6. 10,000 subscriptions on one connection

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_subscriptions_on_one_connection_are_bounded() {
    let server = TestServer::start_with(
        Backend::Sqlite,
        Options::default().env("STEAD_MQTT_MAX_SUBSCRIPTIONS", "100"),
    )
    .await;
    let acme = server.tenant("Acme").await;
    let (id, token) = device(&acme.admin, "subscriber").await;
    let (_, steady_token) = device(&acme.admin, "steady").await;
    let steady = Steady::start(&server, &steady_token).await;
    let addr = server.mqtt.clone();

    for v5 in [false, true] {
        let (mut stream, code) = connect_from("127.0.0.1", &addr, v5, &token).await;
        assert_eq!(code, 0);
        // 10,000 filters in ten packets: every other one the device's own (a command topic),
        // the others not.
        let mut granted = Vec::new();
        let mut codes_seen = Vec::new();
        for p in 0..10u16 {
            let filters: Vec<String> = (0..1000)
                .map(|i| {
                    let n = u32::from(p) * 1000 + i;
                    if n % 2 == 0 {
                        format!("v1/devices/me/rpc/request/{n}")
                    } else {
                        format!("not/its/own/{n}")
                    }
                })
                .collect();
            stream
                .write_all(&subscribe_packet(v5, p + 1, &filters))
                .await
                .unwrap();
            let (kind, body) = loop {
                match read_packet(&mut stream, Duration::from_secs(10)).await {
                    Some((SUBACK, body)) => break (SUBACK, body),
                    Some(_) => continue,
                    None => panic!("v5 {v5}: no SUBACK for packet {p}"),
                }
            };
            assert_eq!(kind, SUBACK);
            let codes = suback_codes(v5, &body);
            assert_eq!(codes.len(), 1000, "a code per filter");
            for (f, c) in filters.iter().zip(codes) {
                if c < 0x80 {
                    granted.push(f.clone());
                }
                codes_seen.push(c);
            }
        }
        assert_eq!(granted.len(), 100, "v5 {v5}: the quota's worth granted");
        assert!(granted.iter().all(|f| f.starts_with("v1/devices/me/rpc")));
        let over = if v5 { 0x97 } else { 0x80 };
        assert_eq!(
            codes_seen.iter().filter(|c| **c == over).count(),
            if v5 { 9_801 } else { 9_900 },
            "v5 {v5}: refused as over the quota (MQTT 3.1.1 has only 0x80)"
        );
        // Still served: PINGREQ, a QoS 1 publish.
        stream.write_all(&wire::PINGREQ_BYTES).await.unwrap();
        assert!(matches!(
            read_packet(&mut stream, Duration::from_secs(5)).await,
            Some((PINGRESP, _))
        ));
        let mut publish = Vec::new();
        wire::put_publish(
            &mut publish,
            v5,
            "v1/devices/me/telemetry",
            Some(77),
            br#"{"s":1}"#,
        );
        stream.write_all(&publish).await.unwrap();
        assert!(matches!(
            read_packet(&mut stream, Duration::from_secs(5)).await,
            Some((PUBACK, body)) if body[..2] == 77u16.to_be_bytes()
        ));
        // An UNSUBSCRIBE frees a place (and no longer ends a 3.1.1 session).
        let mut body = 500u16.to_be_bytes().to_vec();
        if v5 {
            body.push(0);
        }
        put_string(&mut body, granted[0].as_bytes());
        stream.write_all(&packet(0xA2, &body)).await.unwrap();
        assert!(matches!(
            read_packet(&mut stream, Duration::from_secs(5)).await,
            Some((UNSUBACK, _))
        ));
        let fresh = vec![
            "v1/devices/me/attributes".to_owned(),
            "v1/devices/me/rpc/request/+".to_owned(),
        ];
        stream
            .write_all(&subscribe_packet(v5, 501, &fresh))
            .await
            .unwrap();
        let (_, body) = read_packet(&mut stream, Duration::from_secs(5))
            .await
            .expect("SUBACK");
        assert_eq!(
            suback_codes(v5, &body),
            vec![1, over],
            "one place, one filter"
        );
        stream.write_all(&wire::DISCONNECT_BYTES).await.unwrap();

        // The refusals did not write ten thousand timeline entries: the refusals within the
        // quota, and one entry saying the quota was reached, per session.
        let sessions = if v5 { 2 } else { 1 };
        eventually("the quota is on the timeline", || async {
            timeline(&acme.admin, id)
                .await
                .iter()
                .filter(|e| {
                    e.kind == "subscription_refused" && e.data["reason"] == "quota_exceeded"
                })
                .count()
                == sessions
        })
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let all: Vec<stead_api_types::TimelineEvent> = acme
            .admin
            .get(&format!("/api/v1/devices/{id}/timeline?limit=1000"))
            .await
            .unwrap()
            .ok()
            .unwrap();
        let refused = all
            .iter()
            .filter(|e| e.kind == "subscription_refused")
            .count();
        assert_eq!(refused, sessions * 100, "timeline entries");
    }
    steady.finish("10,000 subscriptions").await;
}

// ---------------------------------------------------------------------------------------------
// 7. Deeply nested JSON

fn nested_arrays(depth: usize) -> String {
    format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
}

fn nested_objects(depth: usize) -> String {
    format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_json_is_refused_everywhere() {
    let server = TestServer::start(Backend::Sqlite).await;
    let acme = server.tenant("Acme").await;
    let c = &acme.admin;
    let (id, token) = device(c, "deep").await;
    let (_, steady_token) = device(c, "steady").await;
    let steady = Steady::start(&server, &steady_token).await;
    let addr = server.mqtt.clone();

    // Ten thousand levels (serde_json's own limit of 128 refuses it) and a hundred (under that
    // limit, over Stead's 32), as a value and as the whole payload.
    let payloads: Vec<(String, String)> = vec![
        ("10,000 nested arrays".into(), nested_arrays(10_000)),
        ("10,000 nested objects".into(), nested_objects(10_000)),
        (
            "a value of 10,000 nested objects".into(),
            format!(r#"{{"v":{}}}"#, nested_objects(10_000)),
        ),
        (
            "a value of 100 nested objects".into(),
            format!(r#"{{"v":{}}}"#, nested_objects(100)),
        ),
        (
            "a timestamped value of 100 nested objects".into(),
            format!(
                r#"{{"ts":{},"values":{{"v":{}}}}}"#,
                crate::mqtt::ts0(),
                nested_objects(100)
            ),
        ),
    ];

    // MQTT 5: each refused with "payload format invalid" (0x99) and a reason.
    let (mut stream, code) = connect_from("127.0.0.1", &addr, true, &token).await;
    assert_eq!(code, 0);
    let mut packet_id = 0u16;
    for topic in [
        "v1/devices/me/telemetry",
        "v1/devices/me/attributes",
        "v1/devices/me/rpc/request/1",
    ] {
        for (what, payload) in &payloads {
            // A command request is read for its method only, and kept nowhere: the bound there
            // is serde_json's.
            if topic.contains("rpc") && !what.contains("10,000") {
                continue;
            }
            packet_id += 1;
            let mut p = Vec::new();
            wire::put_publish(&mut p, true, topic, Some(packet_id), payload.as_bytes());
            stream.write_all(&p).await.unwrap();
            let body = loop {
                match read_packet(&mut stream, Duration::from_secs(10)).await {
                    Some((PUBACK, body)) => break body,
                    Some(_) => continue,
                    None => panic!("{topic}, {what}: no PUBACK"),
                }
            };
            assert_eq!(body[..2], packet_id.to_be_bytes());
            let reason = body.get(2).copied().unwrap_or(0);
            assert!(reason >= 0x80, "{topic}, {what}: refused, got {body:?}");
            let text = String::from_utf8_lossy(&body);
            assert!(
                text.contains("recursion limit") || text.contains("deeper than 32"),
                "{topic}, {what}: a clear reason: {text}"
            );
        }
    }
    drop(stream);

    // A gateway speaking for a device behind it: refused for that device, with the reason.
    let created: stead_api_types::CreatedDevice = c
        .post(
            "/api/v1/devices",
            &serde_json::json!({"name": "gw", "gateway": true}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    let gateway_token = created.access_token.unwrap();
    let (mut stream, code) = connect_from("127.0.0.1", &addr, true, &gateway_token).await;
    assert_eq!(code, 0);
    for (what, message) in [
        ("10,000 nested arrays", nested_arrays(10_000)),
        (
            "a value of 100 nested objects",
            format!(r#"{{"Sensor A":[{{"v":{}}}]}}"#, nested_objects(100)),
        ),
    ] {
        for topic in ["v1/gateway/telemetry", "v1/gateway/attributes"] {
            let message = if topic.ends_with("attributes") && what.contains("100") {
                format!(r#"{{"Sensor A":{{"v":{}}}}}"#, nested_objects(100))
            } else {
                message.clone()
            };
            packet_id += 1;
            let mut p = Vec::new();
            wire::put_publish(&mut p, true, topic, Some(packet_id), message.as_bytes());
            stream.write_all(&p).await.unwrap();
            let body = loop {
                match read_packet(&mut stream, Duration::from_secs(10)).await {
                    Some((PUBACK, body)) => break body,
                    Some(_) => continue,
                    None => panic!("{topic}, {what}: no PUBACK"),
                }
            };
            let text = String::from_utf8_lossy(&body);
            assert!(
                body.get(2).copied().unwrap_or(0) >= 0x80
                    && (text.contains("recursion limit") || text.contains("deeper than 32")),
                "{topic}, {what}: refused with the reason: {body:?}"
            );
        }
    }
    drop(stream);

    // The HTTP device API: 400 with the reason.
    let anon = server.client();
    for path in ["telemetry", "attributes"] {
        for (what, payload) in &payloads {
            let r = anon
                .raw(
                    Method::POST,
                    &format!("/api/v1/{token}/{path}"),
                    "application/json",
                    payload.clone(),
                )
                .await
                .unwrap();
            assert_eq!(r.status, 400, "{path}, {what}: {:?}", r.body);
            let detail = r.body.to_string();
            assert!(
                detail.contains("recursion limit") || detail.contains("deeper than 32"),
                "{path}, {what}: {detail}"
            );
        }
    }

    // The REST API: bodies nested too deep are refused before anything reads them.
    for (path, body) in [
        (
            "/api/v1/devices".to_owned(),
            format!(r#"{{"name":"x","label":{}}}"#, nested_arrays(10_000)),
        ),
        (
            format!("/api/v1/devices/{id}/attributes/server"),
            format!(r#"{{"v":{}}}"#, nested_objects(100)),
        ),
        (
            format!("/api/v1/devices/{id}/rpc"),
            format!(
                r#"{{"method":"m","persistent":true,"params":{}}}"#,
                nested_objects(10_000)
            ),
        ),
    ] {
        let r = c
            .raw(Method::POST, &path, "application/json", body)
            .await
            .unwrap();
        assert_eq!(r.status, 400, "{path}: {:?}", r.body);
        assert_eq!(r.code(), "invalid_json", "{path}");
        assert!(
            r.error().detail.contains("deeper than 32"),
            "{path}: {:?}",
            r.body
        );
    }

    // A device's answer to a command nested too deep is kept as its text, as an answer that is
    // not JSON is: never as a value that other JSON could not carry.
    let (mut raw, code) = Raw::connect(&addr, &token, 30, None).await;
    assert_eq!(code, 0);
    raw.subscribe("v1/devices/me/rpc/request/+", 1).await;
    assert!(matches!(
        raw.read(Duration::from_secs(5)).await,
        Some((SUBACK, _))
    ));
    let command: stead_api_types::RpcCommand = c
        .post(
            &format!("/api/v1/devices/{id}/rpc"),
            &serde_json::json!({"method": "dump", "persistent": true, "timeout_ms": 60_000}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    let (topic, _) = raw
        .next_publish_acked(Duration::from_secs(10))
        .await
        .expect("the command reaches the device");
    let request_id = topic.rsplit('/').next().unwrap().to_owned();
    let deep = nested_objects(100);
    raw.publish(
        &format!("v1/devices/me/rpc/response/{request_id}"),
        deep.as_bytes(),
        Some(3),
    )
    .await;
    eventually("the answer is kept", || async {
        let got: stead_api_types::RpcCommand = c
            .get(&format!("/api/v1/devices/{id}/rpc/{}", command.id))
            .await
            .unwrap()
            .ok()
            .unwrap();
        got.response == Some(serde_json::Value::String(deep.clone()))
    })
    .await;

    // Nothing of it was stored, and the server serves on.
    let latest: serde_json::Value = c
        .get(&format!("/api/v1/devices/{id}/telemetry/latest"))
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert!(!latest.to_string().contains("\"v\""), "{latest}");
    steady.finish("deeply nested JSON").await;
    assert_eq!(server.client().get("/healthz").await.unwrap().status, 200);
}

// ---------------------------------------------------------------------------------------------
// 8. All of it at once, against one well-behaved device

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_keeps_its_puback_latency_under_abuse() {
    let server = TestServer::start_with(
        Backend::Sqlite,
        Options::default()
            .env("STEAD_CONNECTION_LIMIT_EXEMPT", "127.0.0.1/32")
            .env("STEAD_MQTT_CONNECT_TIMEOUT_SECS", "3")
            .env("STEAD_MQTT_PACKET_TIMEOUT_SECS", "3")
            .env("STEAD_HTTP_REQUEST_TIMEOUT_SECS", "3"),
    )
    .await;
    let acme = server.tenant("Acme").await;
    let c = &acme.admin;
    let (_, steady_token) = device(c, "steady").await;
    let (_, abuser_token) = device(c, "abuser").await;
    let (_, subscriber_token) = device(c, "subscriber").await;
    let steady = Steady::start(&server, &steady_token).await;
    let mqtt = server.mqtt.clone();
    let http = http_addr(&server);
    let run_for = Duration::from_secs(15);
    let until = Instant::now() + run_for;
    let mut attacks = Vec::new();

    // HTTP slowloris: 50 heads dribbled from 127.0.0.2, each new one as the last is cut off.
    for _ in 0..50 {
        let http = http.clone();
        attacks.push(tokio::spawn(async move {
            while Instant::now() < until {
                if let Ok(s) = tcp_from("127.0.0.2", &http).await {
                    let bytes = b"GET /healthz HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa".to_vec();
                    let _ = dribble(s, bytes, Duration::from_secs(10)).await;
                }
            }
        }));
    }
    // MQTT slowloris: 50 CONNECTs dribbled from 127.0.0.3.
    for _ in 0..50 {
        let mqtt = mqtt.clone();
        let token = abuser_token.clone();
        attacks.push(tokio::spawn(async move {
            while Instant::now() < until {
                if let Ok(s) = tcp_from("127.0.0.3", &mqtt).await {
                    let _ = dribble(
                        s,
                        connect_packet(false, &token, 30),
                        Duration::from_secs(10),
                    )
                    .await;
                }
            }
        }));
    }
    // 200 half-open connections from 127.0.0.4, opened again as they are closed.
    for _ in 0..200 {
        let mqtt = mqtt.clone();
        attacks.push(tokio::spawn(async move {
            while Instant::now() < until {
                match tcp_from("127.0.0.4", &mqtt).await {
                    Ok(mut s) => {
                        let _ = closed(&mut s, Instant::now(), Duration::from_secs(10)).await;
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        }));
    }
    // A CONNECT flood from 127.0.0.5 (bad credentials), four connections at a time.
    for _ in 0..4 {
        let mqtt = mqtt.clone();
        attacks.push(tokio::spawn(async move {
            while Instant::now() < until {
                if let Ok(mut s) = tcp_from("127.0.0.5", &mqtt).await {
                    let _ = s.write_all(&connect_packet(false, "not-a-token", 30)).await;
                    let _ = read_packet(&mut s, Duration::from_secs(5)).await;
                }
            }
        }));
    }
    // Malformed packets from 127.0.0.6, over and over.
    {
        let mqtt = mqtt.clone();
        attacks.push(tokio::spawn(async move {
            let mut over = vec![0x10];
            wire::put_varint(&mut over, 200 * 1024 * 1024);
            let garbage: [&[u8]; 3] = [
                b"GET / HTTP/1.1\r\n\r\n",
                &[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF],
                &over,
            ];
            let mut i = 0;
            while Instant::now() < until {
                if let Ok(mut s) = tcp_from("127.0.0.6", &mqtt).await {
                    let _ = s.write_all(garbage[i % 3]).await;
                    let _ = closed(&mut s, Instant::now(), Duration::from_secs(5)).await;
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    // 10,000 subscriptions, again and again, on one connection.
    {
        let mqtt = mqtt.clone();
        let token = subscriber_token.clone();
        attacks.push(tokio::spawn(async move {
            let (mut s, code) = connect_from("127.0.0.1", &mqtt, false, &token).await;
            assert_eq!(code, 0);
            let mut id = 0u16;
            while Instant::now() < until {
                id = id % 60_000 + 1;
                let filters: Vec<String> = (0..1000)
                    .map(|i| format!("v1/devices/me/rpc/request/{}", u32::from(id) * 1000 + i))
                    .collect();
                if s.write_all(&subscribe_packet(false, id, &filters))
                    .await
                    .is_err()
                {
                    break;
                }
                let _ = read_packet(&mut s, Duration::from_secs(10)).await;
            }
        }));
    }
    // Deeply nested JSON over MQTT 5 and the HTTP device API.
    {
        let mqtt = mqtt.clone();
        let token = abuser_token.clone();
        attacks.push(tokio::spawn(async move {
            let (mut s, code) = connect_from("127.0.0.1", &mqtt, true, &token).await;
            assert_eq!(code, 0);
            let payload = nested_arrays(10_000);
            let mut id = 0u16;
            while Instant::now() < until {
                id = id % 60_000 + 1;
                let mut p = Vec::new();
                wire::put_publish(
                    &mut p,
                    true,
                    "v1/devices/me/telemetry",
                    Some(id),
                    payload.as_bytes(),
                );
                if s.write_all(&p).await.is_err() {
                    break;
                }
                let _ = read_packet(&mut s, Duration::from_secs(10)).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
        let anon = server.client();
        let token = abuser_token.clone();
        attacks.push(tokio::spawn(async move {
            let payload = nested_objects(10_000);
            while Instant::now() < until {
                let _ = anon
                    .raw(
                        Method::POST,
                        &format!("/api/v1/{token}/telemetry"),
                        "application/json",
                        payload.clone(),
                    )
                    .await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }

    // Meanwhile the API answers.
    let client = server.client();
    let mut slowest_api = Duration::ZERO;
    while Instant::now() < until {
        let started = Instant::now();
        assert_eq!(client.get("/healthz").await.unwrap().status, 200);
        slowest_api = slowest_api.max(started.elapsed());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!("under abuse: the slowest of the API's answers took {slowest_api:?}");
    let latencies = steady.finish("all abuse at once").await;
    assert!(latencies.len() > 100, "{} messages", latencies.len());
    for attack in attacks {
        attack.abort();
    }
    let m = metrics(&server).await;
    eprintln!(
        "under abuse: MQTT connections refused per address {} (rate) + {} (open), closed before \
         a session {} (no CONNECT) + {} (malformed)",
        counter(
            &m,
            r#"stead_mqtt_connect_refused_total{reason="connecting too often from one address"}"#
        ),
        counter(
            &m,
            r#"stead_mqtt_connect_refused_total{reason="too many connections from one address"}"#
        ),
        counter(
            &m,
            r#"stead_mqtt_connect_refused_total{reason="no CONNECT within the connect timeout"}"#
        ),
        counter(
            &m,
            r#"stead_mqtt_connect_refused_total{reason="malformed or oversized packet before the session"}"#
        ),
    );
}
