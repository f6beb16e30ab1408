//! One device's MQTT connection, written straight on the socket with `stead_e2e::wire`.
//!
//! The load generator used a general client library (two tasks and a channel per device); it
//! spent more CPU per message than the server it was measuring, on the same two cores. Here a
//! device is one task that appends PUBLISHes to a buffer, writes it in one call and parses the
//! acknowledgements in place: only what a publishing device needs (CONNECT, PUBLISH at QoS 0/1,
//! PUBACK, PINGREQ, DISCONNECT), in MQTT 3.1.1 and 5.

use std::time::Duration;

use stead_e2e::wire;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::mqtt::Broker;

/// How to open one device's connection.
#[derive(Debug, Clone)]
pub struct Spec {
    pub broker: Broker,
    pub v5: bool,
    pub client_id: String,
    pub username: String,
    pub password: Option<String>,
    pub keep_alive: Duration,
    /// TCP connect plus CONNECT/CONNACK.
    pub timeout: Duration,
}

/// A packet from the broker, as far as a publishing device cares.
#[derive(Debug)]
pub enum Incoming {
    /// `refused` names the MQTT 5 reason when it is not a success.
    PubAck { pkid: u16, refused: Option<String> },
    /// MQTT 5: the broker ends the session, with this reason.
    Disconnect { reason: String },
    /// PINGRESP, or a message the device did not ask for (acknowledged if QoS 1).
    Other,
}

pub struct Conn {
    stream: TcpStream,
    v5: bool,
    read: Vec<u8>,
    /// Bytes of `read` already parsed.
    parsed: usize,
    write: Vec<u8>,
    /// The broker's Receive Maximum (MQTT 5); `u16::MAX` when it announced none.
    pub receive_max: u16,
}

impl Conn {
    /// TCP connect, CONNECT, CONNACK, within `spec.timeout`. The error is a short reason that
    /// groups well ("CONNECT refused: not authorized (0x87)").
    pub async fn open(spec: &Spec) -> Result<Conn, String> {
        let attempt = async {
            let stream = TcpStream::connect((spec.broker.host.as_str(), spec.broker.port))
                .await
                .map_err(|e| format!("I/O: {e}"))?;
            stream.set_nodelay(true).map_err(|e| format!("I/O: {e}"))?;
            let mut conn = Conn {
                stream,
                v5: spec.v5,
                read: Vec::with_capacity(256),
                parsed: 0,
                write: Vec::with_capacity(512),
                receive_max: u16::MAX,
            };
            conn.write = wire::Connect {
                v5: spec.v5,
                client_id: &spec.client_id,
                username: &spec.username,
                password: spec.password.as_deref(),
                keep_alive: u16::try_from(spec.keep_alive.as_secs()).unwrap_or(u16::MAX),
                will: None,
            }
            .encode();
            conn.flush().await?;
            loop {
                if let Some((first, range)) = conn.next_frame()? {
                    let body = &conn.read[range];
                    if first >> 4 != wire::CONNACK || body.len() < 2 {
                        return Err(format!("expected CONNACK, got packet type {}", first >> 4));
                    }
                    let code = body[1];
                    if code != 0 {
                        return Err(format!("CONNECT refused: {}", wire::reason(spec.v5, code)));
                    }
                    if spec.v5
                        && let Some((len, at)) = body.get(2..).and_then(wire::varint)
                        && let Some(props) = body.get(2 + at..2 + at + len)
                    {
                        conn.receive_max = wire::u16_property(props, 0x21).unwrap_or(u16::MAX);
                    }
                    return Ok(conn);
                }
                conn.fill().await?;
            }
        };
        tokio::time::timeout(spec.timeout, attempt)
            .await
            .unwrap_or_else(|_| Err("timeout (TCP connect or CONNACK)".to_owned()))
    }

    /// Queues a PUBLISH; `flush` sends what is queued.
    pub fn publish(&mut self, topic: &str, packet_id: Option<u16>, payload: &[u8]) {
        wire::put_publish(&mut self.write, self.v5, topic, packet_id, payload);
    }

    pub fn ping(&mut self) {
        self.write.extend_from_slice(&wire::PINGREQ_BYTES);
    }

    pub fn disconnect(&mut self) {
        self.write.extend_from_slice(&wire::DISCONNECT_BYTES);
    }

    pub fn has_queued(&self) -> bool {
        !self.write.is_empty()
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> Result<(), String> {
        let result = self.stream.write_all(&self.write).await;
        self.write.clear();
        result.map_err(|e| format!("I/O: {e}"))
    }

    /// Waits for bytes from the broker. Cancel-safe: nothing read is lost if another branch of a
    /// `select!` wins.
    pub async fn fill(&mut self) -> Result<(), String> {
        if self.parsed > 0 {
            self.read.drain(..self.parsed);
            self.parsed = 0;
        }
        self.read.reserve(1024);
        match self.stream.read_buf(&mut self.read).await {
            Ok(0) => Err("connection closed by the broker".to_owned()),
            Ok(_) => Ok(()),
            Err(e) => Err(format!("I/O: {e}")),
        }
    }

    /// The next whole packet already read, if any.
    pub fn next(&mut self) -> Result<Option<Incoming>, String> {
        let v5 = self.v5;
        let Some((first, range)) = self.next_frame()? else {
            return Ok(None);
        };
        let body = &self.read[range];
        let incoming = match first >> 4 {
            wire::PUBACK if body.len() >= 2 => {
                let code = if v5 {
                    body.get(2).copied().unwrap_or(0)
                } else {
                    0
                };
                Incoming::PubAck {
                    pkid: u16::from_be_bytes([body[0], body[1]]),
                    refused: (code >= 0x80).then(|| format!("PUBACK {}", wire::reason(true, code))),
                }
            }
            wire::DISCONNECT => Incoming::Disconnect {
                reason: wire::reason(true, body.first().copied().unwrap_or(0)),
            },
            wire::PUBLISH if first & 0x06 == 0x02 => {
                // An unrequested QoS 1 message: acknowledge it so the broker's window stays open.
                let topic_len = body
                    .get(..2)
                    .map_or(0, |b| usize::from(u16::from_be_bytes([b[0], b[1]])));
                let id = body
                    .get(2 + topic_len..4 + topic_len)
                    .ok_or("malformed PUBLISH from the broker")?;
                let ack = [0x40, 0x02, id[0], id[1]];
                self.write.extend_from_slice(&ack);
                Incoming::Other
            }
            _ => Incoming::Other,
        };
        Ok(Some(incoming))
    }

    /// The next whole frame as (first byte, where its body is in `read`), consuming it.
    fn next_frame(&mut self) -> Result<Option<(u8, std::ops::Range<usize>)>, String> {
        let start = self.parsed;
        match wire::frame(&self.read[start..]).map_err(|e| format!("from the broker: {e}"))? {
            None => Ok(None),
            Some((first, body, end)) => {
                self.parsed += end;
                Ok(Some((first, start + body..start + end)))
            }
        }
    }
}
