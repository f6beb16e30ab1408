//! MQTT packets byte by byte, from the specification (3.1.1 and 5): the framing and the few
//! packets this project's tools write themselves. The load generator speaks MQTT through these
//! (a general client library cost more CPU per message than the server it was measuring), and the
//! end-to-end tests use them to send exactly what they mean, including what well-behaved client
//! libraries refuse to send.

pub const CONNECT: u8 = 1;
pub const CONNACK: u8 = 2;
pub const PUBLISH: u8 = 3;
pub const PUBACK: u8 = 4;
pub const SUBACK: u8 = 9;
pub const PINGRESP: u8 = 13;
pub const DISCONNECT: u8 = 14;

pub const PINGREQ_BYTES: [u8; 2] = [0xC0, 0x00];
pub const DISCONNECT_BYTES: [u8; 2] = [0xE0, 0x00];

/// Appends a variable byte integer (the remaining length, MQTT 5 property lengths).
pub fn put_varint(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let mut byte = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if n == 0 {
            return;
        }
    }
}

/// Appends a length-prefixed string (or binary data).
pub fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s);
}

/// A whole packet: fixed header byte, remaining length, body.
pub fn packet(header: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 5);
    out.push(header);
    put_varint(&mut out, body.len());
    out.extend_from_slice(body);
    out
}

/// A Last Will, sent at QoS 1.
pub struct Will<'a> {
    pub topic: &'a str,
    pub payload: &'a [u8],
}

/// What a CONNECT carries. The session is always clean (clean start in MQTT 5).
pub struct Connect<'a> {
    pub v5: bool,
    pub client_id: &'a str,
    /// Empty means no user name.
    pub username: &'a str,
    pub password: Option<&'a str>,
    pub keep_alive: u16,
    pub will: Option<Will<'a>>,
}

impl Connect<'_> {
    pub fn encode(&self) -> Vec<u8> {
        let mut flags = 0x02; // clean session / clean start
        if !self.username.is_empty() {
            flags |= 0x80;
        }
        if self.password.is_some() {
            flags |= 0x40;
        }
        if self.will.is_some() {
            flags |= 0x04 | (1 << 3); // will, QoS 1
        }
        let mut body = Vec::with_capacity(64);
        put_string(&mut body, b"MQTT");
        body.push(if self.v5 { 5 } else { 4 });
        body.push(flags);
        body.extend_from_slice(&self.keep_alive.to_be_bytes());
        if self.v5 {
            body.push(0); // no properties
        }
        put_string(&mut body, self.client_id.as_bytes());
        if let Some(w) = &self.will {
            if self.v5 {
                body.push(0); // no will properties
            }
            put_string(&mut body, w.topic.as_bytes());
            put_string(&mut body, w.payload);
        }
        if !self.username.is_empty() {
            put_string(&mut body, self.username.as_bytes());
        }
        if let Some(p) = self.password {
            put_string(&mut body, p.as_bytes());
        }
        packet(CONNECT << 4, &body)
    }
}

/// Appends a PUBLISH: QoS 1 with a packet id, QoS 0 without.
pub fn put_publish(
    out: &mut Vec<u8>,
    v5: bool,
    topic: &str,
    packet_id: Option<u16>,
    payload: &[u8],
) {
    let len = 2 + topic.len() + packet_id.map_or(0, |_| 2) + usize::from(v5) + payload.len();
    out.push(if packet_id.is_some() { 0x32 } else { 0x30 });
    put_varint(out, len);
    put_string(out, topic.as_bytes());
    if let Some(id) = packet_id {
        out.extend_from_slice(&id.to_be_bytes());
    }
    if v5 {
        out.push(0); // no properties
    }
    out.extend_from_slice(payload);
}

/// One packet at the front of `buf`: its first byte (type and flags), where its body starts and
/// where the packet ends. `Ok(None)` when more bytes are needed.
pub fn frame(buf: &[u8]) -> Result<Option<(u8, usize, usize)>, &'static str> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let (mut len, mut shift) = (0usize, 0);
    for (i, b) in buf.iter().enumerate().skip(1) {
        len |= usize::from(b & 0x7F) << shift;
        if b & 0x80 == 0 {
            let end = i + 1 + len;
            return Ok((buf.len() >= end).then_some((first, i + 1, end)));
        }
        shift += 7;
        if shift > 21 {
            return Err("malformed remaining length");
        }
    }
    Ok(None)
}

/// Reads a variable byte integer; answers it and the bytes it took.
pub fn varint(buf: &[u8]) -> Option<(usize, usize)> {
    let (mut n, mut shift) = (0usize, 0);
    for (i, b) in buf.iter().enumerate().take(4) {
        n |= usize::from(b & 0x7F) << shift;
        if b & 0x80 == 0 {
            return Some((n, i + 1));
        }
        shift += 7;
    }
    None
}

/// An MQTT 5 property list (without its length prefix): the value of the two-byte property `id`,
/// if present. `None` as well when the list is malformed.
pub fn u16_property(mut props: &[u8], id: u8) -> Option<u16> {
    while let Some((&key, rest)) = props.split_first() {
        let skip = match key {
            0x01 | 0x17 | 0x19 | 0x24 | 0x25 | 0x28 | 0x29 | 0x2A => 1,
            0x13 | 0x21 | 0x22 | 0x23 => {
                let v = u16::from_be_bytes([*rest.first()?, *rest.get(1)?]);
                if key == id {
                    return Some(v);
                }
                2
            }
            0x02 | 0x11 | 0x18 | 0x27 => 4,
            0x0B => varint(rest)?.1,
            0x03 | 0x08 | 0x09 | 0x12 | 0x15 | 0x16 | 0x1A | 0x1C | 0x1F => {
                2 + usize::from(u16::from_be_bytes([*rest.first()?, *rest.get(1)?]))
            }
            0x26 => {
                let k = 2 + usize::from(u16::from_be_bytes([*rest.first()?, *rest.get(1)?]));
                let v = u16::from_be_bytes([*rest.get(k)?, *rest.get(k + 1)?]);
                k + 2 + usize::from(v)
            }
            _ => return None,
        };
        props = rest.get(skip..)?;
    }
    None
}

/// A CONNACK return code (3.1.1), or any MQTT 5 reason code when `v5`, in words with its value.
pub fn reason(v5: bool, code: u8) -> String {
    let name = if v5 {
        reason_name(code)
    } else {
        match code {
            0 => "accepted",
            1 => "unacceptable protocol version",
            2 => "identifier rejected",
            3 => "server unavailable",
            4 => "bad user name or password",
            5 => "not authorized",
            _ => "unknown return code",
        }
    };
    format!("{name} (0x{code:02x})")
}

/// An MQTT 5 reason code in words (the ones a broker sends in CONNACK, PUBACK and DISCONNECT).
pub fn reason_name(code: u8) -> &'static str {
    match code {
        0x00 => "success",
        0x04 => "disconnect with will message",
        0x10 => "no matching subscribers",
        0x80 => "unspecified error",
        0x81 => "malformed packet",
        0x82 => "protocol error",
        0x83 => "implementation specific error",
        0x84 => "unsupported protocol version",
        0x85 => "client identifier not valid",
        0x86 => "bad user name or password",
        0x87 => "not authorized",
        0x88 => "server unavailable",
        0x89 => "server busy",
        0x8A => "banned",
        0x8B => "server shutting down",
        0x8D => "keep alive timeout",
        0x8E => "session taken over",
        0x90 => "topic name invalid",
        0x91 => "packet identifier in use",
        0x93 => "receive maximum exceeded",
        0x95 => "packet too large",
        0x96 => "message rate too high",
        0x97 => "quota exceeded",
        0x98 => "administrative action",
        0x99 => "payload format invalid",
        0x9F => "connection rate exceeded",
        _ => "other reason",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_and_wait_for_more() {
        let mut buf = packet(0x40, &[0, 7]);
        buf.extend(packet(0xD0, &[]));
        assert_eq!(frame(&buf), Ok(Some((0x40, 2, 4))));
        assert_eq!(frame(&buf[4..]), Ok(Some((0xD0, 2, 2))));
        assert_eq!(frame(&buf[..3]), Ok(None));
        assert_eq!(frame(&[0x30, 0x80]), Ok(None));
        assert!(frame(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]).is_err());
    }

    #[test]
    fn long_remaining_lengths_round_trip() {
        for n in [0usize, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152] {
            let mut out = Vec::new();
            put_varint(&mut out, n);
            assert_eq!(varint(&out), Some((n, out.len())), "{n}");
        }
    }

    #[test]
    fn publish_layout() {
        let mut v3 = Vec::new();
        put_publish(&mut v3, false, "a/b", Some(258), b"{}");
        assert_eq!(v3, [0x32, 9, 0, 3, b'a', b'/', b'b', 1, 2, b'{', b'}']);
        let mut v5 = Vec::new();
        put_publish(&mut v5, true, "a", None, b"x");
        assert_eq!(v5, [0x30, 5, 0, 1, b'a', 0, b'x']);
    }

    #[test]
    fn finds_a_property_among_others() {
        // Reason string "ok", user property ("k","v"), receive maximum 7.
        let props = [
            0x1F, 0, 2, b'o', b'k', 0x26, 0, 1, b'k', 0, 1, b'v', 0x21, 0, 7,
        ];
        assert_eq!(u16_property(&props, 0x21), Some(7));
        assert_eq!(u16_property(&props[..14], 0x21), None);
        assert_eq!(u16_property(&[0xFF], 0x21), None);
    }
}
