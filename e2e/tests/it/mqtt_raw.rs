//! A minimal MQTT 3.1.1 client on `stead_e2e::wire`, so tests can send exactly what they mean,
//! including what well-behaved client libraries refuse to send (wildcard publishes, malformed
//! packets).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use stead_e2e::wire::{self, packet, put_string};
pub use stead_e2e::wire::{CONNACK, PUBACK, PUBLISH, SUBACK, Will};

pub struct Raw {
    stream: TcpStream,
}

/// The credentials of a CONNECT: a random client id when none is given.
#[derive(Default)]
pub struct Login<'a> {
    pub client_id: Option<&'a str>,
    pub username: &'a str,
    pub password: Option<&'a str>,
}

impl Raw {
    /// Connects and answers the client with the CONNACK return code (0 = accepted).
    pub async fn connect(
        addr: &str,
        username: &str,
        keep_alive: u16,
        will: Option<Will<'_>>,
    ) -> (Raw, u8) {
        let login = Login {
            username,
            ..Login::default()
        };
        Raw::connect_as(addr, &login, keep_alive, will).await
    }

    /// Connects with a client id, user name and password.
    pub async fn connect_as(
        addr: &str,
        login: &Login<'_>,
        keep_alive: u16,
        will: Option<Will<'_>>,
    ) -> (Raw, u8) {
        let stream = TcpStream::connect(addr)
            .await
            .expect("TCP connect to the ingress");
        let mut raw = Raw { stream };
        let client_id = match login.client_id {
            Some(id) => id.to_owned(),
            None => format!("raw-{}", uuid::Uuid::new_v4().simple()),
        };
        let connect = wire::Connect {
            v5: false,
            client_id: &client_id,
            username: login.username,
            password: login.password,
            keep_alive,
            will,
        };
        raw.send(&connect.encode()).await;
        let code = match raw.read(Duration::from_secs(10)).await {
            Some((CONNACK, body)) if body.len() == 2 => body[1],
            other => panic!("expected CONNACK, got {other:?}"),
        };
        (raw, code)
    }

    /// The connection, to write to and read from byte by byte.
    pub fn into_stream(self) -> TcpStream {
        self.stream
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes).await;
    }

    pub async fn publish(&mut self, topic: &str, payload: &[u8], packet_id: Option<u16>) {
        let mut out = Vec::new();
        wire::put_publish(&mut out, false, topic, packet_id, payload);
        self.send(&out).await;
    }

    pub async fn subscribe(&mut self, filter: &str, packet_id: u16) {
        let mut body = packet_id.to_be_bytes().to_vec();
        put_string(&mut body, filter.as_bytes());
        body.push(1);
        self.send(&packet(0x82, &body)).await;
    }

    pub async fn disconnect(&mut self) {
        self.send(&wire::DISCONNECT_BYTES).await;
    }

    /// The next packet as (type, body), or `None` when the connection closed or nothing came.
    pub async fn read(&mut self, timeout: Duration) -> Option<(u8, Vec<u8>)> {
        read_packet(&mut self.stream, timeout).await
    }

    /// Waits for a PUBLISH; answers its topic and payload.
    pub async fn next_publish(&mut self, timeout: Duration) -> Option<(String, Vec<u8>)> {
        self.next_publish_at(timeout, false).await
    }

    /// Waits for a PUBLISH sent at QoS 1 (the subscriptions' QoS), acknowledges it, and answers
    /// its topic and payload.
    pub async fn next_publish_acked(&mut self, timeout: Duration) -> Option<(String, Vec<u8>)> {
        self.next_publish_at(timeout, true).await
    }

    async fn next_publish_at(
        &mut self,
        timeout: Duration,
        qos1: bool,
    ) -> Option<(String, Vec<u8>)> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let (kind, body) = self.read(left).await?;
            if kind == PUBLISH {
                let n = u16::from_be_bytes([body[0], body[1]]) as usize;
                let topic = String::from_utf8_lossy(&body[2..2 + n]).into_owned();
                if !qos1 {
                    return Some((topic, body[2 + n..].to_vec()));
                }
                let id = [body[2 + n], body[3 + n]];
                self.send(&[0x40, 0x02, id[0], id[1]]).await;
                return Some((topic, body[4 + n..].to_vec()));
            }
        }
    }

    /// Waits until the server closes the connection; answers how long that took.
    pub async fn closed_within(&mut self, timeout: Duration) -> Option<Duration> {
        let started = tokio::time::Instant::now();
        let deadline = started + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return None;
            }
            let mut buf = [0u8; 256];
            match tokio::time::timeout(left, self.stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
                Ok(Ok(_)) => continue,
                Err(_) => return None,
            }
        }
    }
}

/// The next MQTT packet (either version) on `stream` as (type, body), or `None` when the
/// connection closed or nothing came within `timeout`.
pub async fn read_packet(stream: &mut TcpStream, timeout: Duration) -> Option<(u8, Vec<u8>)> {
    tokio::time::timeout(timeout, async {
        let mut first = [0u8; 1];
        stream.read_exact(&mut first).await.ok()?;
        let (mut len, mut shift) = (0usize, 0);
        loop {
            let mut b = [0u8; 1];
            stream.read_exact(&mut b).await.ok()?;
            len |= ((b[0] & 0x7F) as usize) << shift;
            shift += 7;
            if b[0] & 0x80 == 0 {
                break;
            }
        }
        let mut body = vec![0u8; len];
        stream.read_exact(&mut body).await.ok()?;
        Some((first[0] >> 4, body))
    })
    .await
    .ok()
    .flatten()
}
