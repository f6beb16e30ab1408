//! A device's MQTT session handling one decoded PUBLISH, up to the point where it would touch
//! storage or the live state: the adapters' size check (`ingest::check_size`), the topic
//! (`PublishTopic::parse`), the gateway-only topics, and per topic the payload reading the
//! session does (`stead::ingress::session::{attribute_request_keys, rpc_request_method,
//! rpc_response, chunk_size}`, the telemetry and attribute decoders, the gateway decoders). What
//! follows (rate limits, the database, replies that need it) is not pure and is not run here; the
//! order of the steps is `DeviceSession::route` / `route_other`'s.
//!
//! The input is structured with `arbitrary`: a flags byte (gateway or not, QoS, the payload
//! limit, and whether the topic is built from a template with arbitrary ids or read as text up
//! to the first newline), then the topic, then the payload.

#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use stead::ingest::{self, Rejection};
use stead::ingress::gateway::{self, AttributeRequest, Connect, Disconnect, RpcReply};
use stead::ingress::session;
use stead::ingress::topic::{GatewayTopic, PublishTopic, subscription_allowed};
use stead::telemetry::decode;

mod common;

#[derive(Debug)]
struct Publish {
    /// The session is a gateway's (`DeviceIdentity::gateway`).
    gateway: bool,
    /// QoS 1 (the session waits for storage; no difference before it).
    qos1: bool,
    /// `mqtt_max_payload_bytes`.
    max_payload: usize,
    topic: String,
    payload: Vec<u8>,
}

/// Topics with ids in them, for the template form.
const TEMPLATES: &[&str] = &[
    "v1/devices/me/telemetry",
    "v1/devices/me/attributes",
    "v1/devices/me/attributes/request/{}",
    "v1/devices/me/rpc/request/{}",
    "v1/devices/me/rpc/response/{}",
    "v1/devices/me/claim",
    "v2/fw/request/{}/chunk/{}",
    "v2/sw/request/{}/chunk/{}",
    "v1/gateway/connect",
    "v1/gateway/disconnect",
    "v1/gateway/telemetry",
    "v1/gateway/attributes",
    "v1/gateway/attributes/request",
    "v1/gateway/rpc",
    "v1/gateway/claim",
];

impl<'a> Arbitrary<'a> for Publish {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let flags = u8::arbitrary(u)?;
        let topic = if flags & 4 != 0 {
            let mut topic = (*u.choose(TEMPLATES)?).to_owned();
            while topic.contains("{}") {
                topic = topic.replacen("{}", &u32::arbitrary(u)?.to_string(), 1);
            }
            topic
        } else {
            let rest = u.peek_bytes(u.len()).unwrap_or_default();
            let end = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
            let topic = String::from_utf8_lossy(u.bytes(end)?).into_owned();
            if !u.is_empty() {
                u.bytes(1)?;
            }
            topic
        };
        Ok(Publish {
            gateway: flags & 1 != 0,
            qos1: flags & 2 != 0,
            max_payload: 16 << (flags >> 4),
            topic,
            payload: u.bytes(u.len())?.to_vec(),
        })
    }
}

/// What a PUBLISH that passed every pure check goes on to do.
#[derive(Debug)]
enum Next {
    StoreTelemetry(usize),
    StoreAttributes(usize),
    AnswerAttributes(String),
    AnswerRpc(String),
    RecordRpcAnswer,
    SendChunk(String),
    ChunkError(String),
    /// A gateway's message: per device, handled or refused.
    Gateway { handled: usize, refused: usize },
}

fuzz_target!(|publish: Publish| {
    match handle(&publish) {
        Ok(next) => accepted(&publish, &next),
        Err(why) => {
            // Nothing was stored or looked up: the refusal is the message's own, short, and one
            // that the adapters answer without closing for lack of storage.
            assert!(
                matches!(
                    why,
                    Rejection::Payload(_) | Rejection::Topic(_) | Rejection::NotSupported(_)
                ),
                "{why:?}"
            );
            common::refusal(why.detail());
            if let Rejection::Topic(_) = why {
                let gateway_topic = matches!(PublishTopic::parse(&publish.topic), Ok(PublishTopic::Gateway(_)));
                assert!(PublishTopic::parse(&publish.topic).is_err() || (gateway_topic && !publish.gateway));
            }
        }
    }
});

/// `publish_v3` / `publish_v5` → `DeviceSession::route` → `route_other`, without the I/O.
fn handle(p: &Publish) -> Result<Next, Rejection> {
    ingest::check_size(p.payload.len(), p.max_payload)?;
    let payload = &p.payload[..];
    let topic = PublishTopic::parse(&p.topic).map_err(|e| Rejection::Topic(e.to_string()))?;
    Ok(match topic {
        PublishTopic::Telemetry => {
            let points = decode::telemetry(payload, common::NOW)
                .map_err(|e| Rejection::Payload(e.to_string()))?;
            common::points(&points, common::NOW);
            Next::StoreTelemetry(points.iter().map(|p| p.values.len()).sum())
        }
        PublishTopic::Attributes => {
            let values = ingest::attributes(payload)?;
            common::attributes(&values);
            Next::StoreAttributes(values.len())
        }
        PublishTopic::AttributeRequest(id) => {
            let (client, shared) = session::attribute_request_keys(payload)?;
            for key in client.iter().chain(shared.iter()).flatten() {
                assert!(!key.is_empty() && key.trim() == key && !key.contains(','), "{key:?}");
            }
            Next::AnswerAttributes(format!("v1/devices/me/attributes/response/{id}"))
        }
        PublishTopic::RpcRequest(id) => {
            let method = session::rpc_request_method(payload)?;
            assert!(method.is_empty() || payload.len() >= method.len());
            Next::AnswerRpc(format!("v1/devices/me/rpc/response/{id}"))
        }
        PublishTopic::RpcResponse(_) => {
            let answer = session::rpc_response(payload)?;
            if let Ok(json) = serde_json::from_slice::<serde_json::Value>(payload) {
                assert_eq!(answer, json);
            }
            assert_eq!(stead::text::nul_in(&answer), None, "NUL in a command's answer");
            Next::RecordRpcAnswer
        }
        PublishTopic::PackageChunk {
            kind,
            request,
            chunk,
        } => match session::chunk_size(payload) {
            Ok(size) => {
                if let Some(size) = size {
                    let text = std::str::from_utf8(payload).expect("a size is text");
                    assert_eq!(text.trim().parse::<u64>(), Ok(size));
                }
                Next::SendChunk(format!("v2/{}/response/{request}/chunk/{chunk}", kind.prefix()))
            }
            Err(why) => {
                assert!(why.len() < 300, "{why:?}");
                Next::ChunkError(format!("v2/{}/error", kind.prefix()))
            }
        },
        PublishTopic::Claim => {
            return Err(Rejection::NotSupported("claiming".into()));
        }
        PublishTopic::Gateway(topic) => {
            if !p.gateway {
                return Err(Rejection::Topic(format!(
                    "only a device marked as gateway may publish to {}",
                    topic.as_str()
                )));
            }
            gateway(topic, payload)?
        }
    })
}

/// `Gateway::publish`, up to the lookups of the devices it names.
fn gateway(topic: GatewayTopic, payload: &[u8]) -> Result<Next, Rejection> {
    fn tally<T>(parts: &[(String, Result<T, Rejection>)]) -> Next {
        let handled = parts.iter().filter(|(_, r)| r.is_ok()).count();
        for (name, part) in parts {
            match part {
                Ok(_) => common::device_name(name),
                Err(why) => assert_eq!(why.reason(), "invalid_payload"),
            }
        }
        Next::Gateway {
            handled,
            refused: parts.len() - handled,
        }
    }
    fn one<T: serde::de::DeserializeOwned>(payload: &[u8], what: &str) -> Result<(String, Result<T, Rejection>), Rejection> {
        let (name, parsed) = gateway::single::<T>(payload, what)?;
        if parsed.is_ok() {
            common::device_name(&name);
        }
        Ok((name, parsed))
    }
    Ok(match topic {
        GatewayTopic::Telemetry => tally(&gateway::telemetry(payload, common::NOW)?),
        GatewayTopic::Attributes => tally(&gateway::attributes(payload)?),
        GatewayTopic::Connect => {
            let (name, connect) = one::<Connect>(payload, "connect message")?;
            tally(&[(name, connect)])
        }
        GatewayTopic::Disconnect => {
            let (name, disconnect) = one::<Disconnect>(payload, "disconnect message")?;
            tally(&[(name, disconnect)])
        }
        GatewayTopic::AttributeRequest => {
            let (name, request) = one::<AttributeRequest>(payload, "attribute request")?;
            let keys = request.and_then(|r| r.wanted());
            tally(&[(name, keys)])
        }
        GatewayTopic::Rpc => {
            let (name, reply) = one::<RpcReply>(payload, "RPC answer")?;
            if let Ok(reply) = &reply {
                assert_eq!(stead::text::nul_in(&reply.data), None, "NUL in a command's answer");
            }
            tally(&[(name, reply)])
        }
        GatewayTopic::Claim => {
            gateway::claims(payload)?;
            return Err(Rejection::NotSupported("claiming".into()));
        }
    })
}

/// An MQTT topic filter with `+` matches `topic`.
fn matches(filter: &str, topic: &str) -> bool {
    let (mut f, mut t) = (filter.split('/'), topic.split('/'));
    loop {
        match (f.next(), t.next()) {
            (None, None) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            _ => return false,
        }
    }
}

/// What a device may subscribe to with a wildcard, as `subscription_allowed` lists it.
const FILTERS: &[&str] = &[
    "v1/devices/me/attributes/response/+",
    "v1/devices/me/rpc/request/+",
    "v1/devices/me/rpc/response/+",
    "v2/fw/response/+/chunk/+",
    "v2/fw/error",
    "v2/sw/response/+/chunk/+",
    "v2/sw/error",
];

fn accepted(p: &Publish, next: &Next) {
    let _ = p.qos1;
    assert!(p.payload.len() <= p.max_payload);
    match next {
        Next::AnswerAttributes(reply)
        | Next::AnswerRpc(reply)
        | Next::SendChunk(reply)
        | Next::ChunkError(reply) => {
            // Replies go where the device may listen: a filter it may subscribe to matches.
            let listened = FILTERS
                .iter()
                .any(|f| subscription_allowed(f) && matches(f, reply));
            assert!(listened, "a reply on {reply:?}, which no allowed filter matches");
        }
        Next::StoreTelemetry(n) | Next::StoreAttributes(n) => assert!(*n >= 1),
        Next::RecordRpcAnswer => {}
        Next::Gateway { handled, refused } => assert!(handled + refused >= 1),
    }
}
