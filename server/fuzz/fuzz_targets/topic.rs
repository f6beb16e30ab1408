//! The MQTT topic rules (`stead::ingress::topic`): which topics a device may publish to
//! (`PublishTopic::parse`) and which filters a device or a gateway may subscribe to.
//!
//! A parsed topic written out again is the topic it was parsed from (up to leading zeros of a
//! request id, which the parser reads as ThingsBoard does) and parses to the same value; no
//! wildcard ever passes; a device subscribes only to its own platform → device topics.

#![no_main]

use libfuzzer_sys::fuzz_target;
use stead::ingress::topic::{
    self, GatewayTopic, PublishTopic, TopicError, gateway_subscription_allowed,
    subscription_allowed,
};

mod common;

fuzz_target!(|data: &[u8]| {
    // The MQTT codec hands over topics as UTF-8 (it refuses anything else).
    let text = String::from_utf8_lossy(data);
    check(&text);
});

/// The topic a parsed one stands for.
pub fn render(t: &PublishTopic) -> String {
    match t {
        PublishTopic::Telemetry => "v1/devices/me/telemetry".into(),
        PublishTopic::Attributes => "v1/devices/me/attributes".into(),
        PublishTopic::AttributeRequest(id) => format!("v1/devices/me/attributes/request/{id}"),
        PublishTopic::RpcResponse(id) => format!("v1/devices/me/rpc/response/{id}"),
        PublishTopic::RpcRequest(id) => format!("v1/devices/me/rpc/request/{id}"),
        PublishTopic::Claim => "v1/devices/me/claim".into(),
        PublishTopic::Gateway(g) => g.as_str().into(),
        PublishTopic::PackageChunk {
            kind,
            request,
            chunk,
        } => format!("v2/{}/request/{request}/chunk/{chunk}", kind.prefix()),
    }
}

/// `topic` with the leading zeros of its numeric levels dropped (`007` → `7`).
fn canonical(topic: &str) -> String {
    topic
        .split('/')
        .map(|level| {
            if !level.is_empty() && level.bytes().all(|b| b.is_ascii_digit()) {
                let trimmed = level.trim_start_matches('0');
                if trimmed.is_empty() { "0" } else { trimmed }
            } else {
                level
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn check(text: &str) {
    match PublishTopic::parse(text) {
        Ok(parsed) => {
            assert!(!text.contains(['+', '#']), "wildcard topic {text:?} parsed");
            let written = render(&parsed);
            assert_eq!(written, canonical(text), "{text:?} parsed as {parsed:?}");
            assert_eq!(PublishTopic::parse(&written), Ok(parsed));
        }
        Err(TopicError::Wildcard) => assert!(text.contains(['+', '#'])),
        Err(TopicError::Unknown(shown)) => {
            assert!(shown.chars().count() <= 200, "the refusal quotes the whole topic");
            assert!(text.starts_with(&shown));
            common::refusal(&TopicError::Unknown(shown).to_string());
        }
    }

    let device = subscription_allowed(text);
    let gateway = gateway_subscription_allowed(text);
    if device || gateway {
        // Only whole-level `+`, never `#`, never a `$` or empty level: no filter reaches another
        // device's topics or the broker's.
        assert!(!text.contains('#'), "filter {text:?} allowed");
        for level in text.split('/') {
            assert!(
                !level.is_empty() && !level.starts_with('$'),
                "filter {text:?} allowed"
            );
            assert!(level == "+" || !level.contains('+'), "filter {text:?} allowed");
        }
    }
    if device {
        assert!(
            text.starts_with("v1/devices/me/") || text.starts_with("v2/fw/") || text.starts_with("v2/sw/"),
            "device filter {text:?} allowed"
        );
        // Platform → device topics only: never the device's telemetry, nor a gateway's topics.
        assert!(!matches!(
            PublishTopic::parse(text),
            Ok(PublishTopic::Telemetry | PublishTopic::Claim | PublishTopic::Gateway(_))
        ));
    }
    if gateway {
        assert!(
            [
                topic::GATEWAY_ATTRIBUTES,
                topic::GATEWAY_ATTRIBUTES_RESPONSE,
                topic::GATEWAY_RPC,
                topic::GATEWAY_DISCONNECT,
            ]
            .contains(&text),
            "gateway filter {text:?} allowed"
        );
        // What a gateway publishes on (telemetry, connect, …) is not what it subscribes to,
        // except the two topics used both ways (attributes, rpc).
        if let Ok(PublishTopic::Gateway(g)) = PublishTopic::parse(text) {
            assert!(matches!(
                g,
                GatewayTopic::Attributes | GatewayTopic::Rpc | GatewayTopic::Disconnect
            ));
        }
    }
}
