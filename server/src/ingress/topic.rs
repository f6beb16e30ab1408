//! The device topics of the ThingsBoard-compatible API, parsed once into a type. A device can only
//! ever name itself ("me"); anything else is not a topic of ours. A gateway also has the
//! `v1/gateway/...` topics of ThingsBoard's Gateway API, on which it names the devices behind it
//! in the payload (whether this device is a gateway is the session's to check).

/// A topic a device may publish to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishTopic {
    Telemetry,
    Attributes,
    AttributeRequest(u32),
    RpcResponse(u32),
    RpcRequest(u32),
    Claim,
    /// `v1/gateway/...`: only a gateway may publish here.
    Gateway(GatewayTopic),
    /// `v2/fw/request/{request}/chunk/{chunk}` (or `v2/sw/…`): a piece of the device's target
    /// package, answered on `v2/fw/response/{request}/chunk/{chunk}`.
    PackageChunk {
        kind: stead_api_types::PackageKind,
        request: u32,
        chunk: u32,
    },
}

/// A topic of ThingsBoard's Gateway API a gateway publishes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayTopic {
    /// `v1/gateway/connect`: `{"device":"name","type":"..."}`.
    Connect,
    /// `v1/gateway/disconnect`: `{"device":"name"}`.
    Disconnect,
    /// `v1/gateway/telemetry`: `{"name":[{"ts":ms,"values":{...}}, ...], ...}`.
    Telemetry,
    /// `v1/gateway/attributes`: `{"name":{"key":value}, ...}`.
    Attributes,
    /// `v1/gateway/attributes/request`: `{"id":1,"device":"name","client":true,"keys":[...]}`.
    AttributeRequest,
    /// `v1/gateway/rpc`: the answer to a command, `{"device":"name","id":N,"data":{...}}`.
    Rpc,
    /// `v1/gateway/claim`: `{"name":{"secretKey":"...","durationMs":N}}`.
    Claim,
}

impl GatewayTopic {
    pub fn as_str(self) -> &'static str {
        match self {
            GatewayTopic::Connect => "v1/gateway/connect",
            GatewayTopic::Disconnect => "v1/gateway/disconnect",
            GatewayTopic::Telemetry => "v1/gateway/telemetry",
            GatewayTopic::Attributes => "v1/gateway/attributes",
            GatewayTopic::AttributeRequest => "v1/gateway/attributes/request",
            GatewayTopic::Rpc => "v1/gateway/rpc",
            GatewayTopic::Claim => "v1/gateway/claim",
        }
    }
}

/// What the platform publishes to a gateway.
pub const GATEWAY_ATTRIBUTES: &str = "v1/gateway/attributes";
pub const GATEWAY_ATTRIBUTES_RESPONSE: &str = "v1/gateway/attributes/response";
pub const GATEWAY_RPC: &str = "v1/gateway/rpc";
pub const GATEWAY_DISCONNECT: &str = "v1/gateway/disconnect";

/// Why a topic was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("wildcards are not allowed in a publish topic")]
    Wildcard,
    #[error("unknown topic {0:?}")]
    Unknown(String),
}

fn request_id(s: &str) -> Option<u32> {
    // Decimal ids only, as the SDKs send them; no sign, no leading '+'.
    if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl PublishTopic {
    pub fn parse(topic: &str) -> Result<PublishTopic, TopicError> {
        if topic.contains(['+', '#']) {
            return Err(TopicError::Wildcard);
        }
        let unknown = || TopicError::Unknown(topic.chars().take(200).collect());
        match topic {
            "v1/devices/me/telemetry" => return Ok(PublishTopic::Telemetry),
            "v1/devices/me/attributes" => return Ok(PublishTopic::Attributes),
            "v1/devices/me/claim" => return Ok(PublishTopic::Claim),
            "v1/gateway/connect" => return Ok(PublishTopic::Gateway(GatewayTopic::Connect)),
            "v1/gateway/disconnect" => return Ok(PublishTopic::Gateway(GatewayTopic::Disconnect)),
            "v1/gateway/telemetry" => return Ok(PublishTopic::Gateway(GatewayTopic::Telemetry)),
            "v1/gateway/attributes" => return Ok(PublishTopic::Gateway(GatewayTopic::Attributes)),
            "v1/gateway/attributes/request" => {
                return Ok(PublishTopic::Gateway(GatewayTopic::AttributeRequest));
            }
            "v1/gateway/rpc" => return Ok(PublishTopic::Gateway(GatewayTopic::Rpc)),
            "v1/gateway/claim" => return Ok(PublishTopic::Gateway(GatewayTopic::Claim)),
            _ => {}
        }
        for (prefix, kind) in [
            ("v2/fw/request/", stead_api_types::PackageKind::Firmware),
            ("v2/sw/request/", stead_api_types::PackageKind::Software),
        ] {
            if let Some(rest) = topic.strip_prefix(prefix) {
                let (request, chunk) = rest.split_once("/chunk/").ok_or_else(unknown)?;
                return match (request_id(request), request_id(chunk)) {
                    (Some(request), Some(chunk)) => Ok(PublishTopic::PackageChunk {
                        kind,
                        request,
                        chunk,
                    }),
                    _ => Err(unknown()),
                };
            }
        }
        if let Some(id) = topic.strip_prefix("v1/devices/me/attributes/request/") {
            return request_id(id)
                .map(PublishTopic::AttributeRequest)
                .ok_or_else(unknown);
        }
        if let Some(id) = topic.strip_prefix("v1/devices/me/rpc/response/") {
            return request_id(id)
                .map(PublishTopic::RpcResponse)
                .ok_or_else(unknown);
        }
        if let Some(id) = topic.strip_prefix("v1/devices/me/rpc/request/") {
            return request_id(id)
                .map(PublishTopic::RpcRequest)
                .ok_or_else(unknown);
        }
        Err(unknown())
    }
}

/// Whether a device may subscribe to `filter`: only the platform → device topics of its own.
pub fn subscription_allowed(filter: &str) -> bool {
    matches!(
        filter,
        "v1/devices/me/attributes"
            | "v1/devices/me/attributes/response/+"
            | "v1/devices/me/rpc/request/+"
            | "v1/devices/me/rpc/response/+"
            | "v2/fw/response/+"
            | "v2/fw/response/+/chunk/+"
            | "v2/fw/error"
            | "v2/sw/response/+"
            | "v2/sw/response/+/chunk/+"
            | "v2/sw/error"
    ) || [
        "v1/devices/me/attributes/response/",
        "v1/devices/me/rpc/request/",
        "v1/devices/me/rpc/response/",
    ]
    .iter()
    .any(|prefix| {
        filter
            .strip_prefix(prefix)
            .is_some_and(|id| request_id(id).is_some())
    })
}

/// Whether a gateway may subscribe to `filter` beyond its own device topics: what the platform
/// sends it for the devices behind it.
pub fn gateway_subscription_allowed(filter: &str) -> bool {
    matches!(
        filter,
        GATEWAY_ATTRIBUTES | GATEWAY_ATTRIBUTES_RESPONSE | GATEWAY_RPC | GATEWAY_DISCONNECT
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_gateway_topics() {
        for (topic, expected) in [
            ("v1/gateway/connect", GatewayTopic::Connect),
            ("v1/gateway/disconnect", GatewayTopic::Disconnect),
            ("v1/gateway/telemetry", GatewayTopic::Telemetry),
            ("v1/gateway/attributes", GatewayTopic::Attributes),
            (
                "v1/gateway/attributes/request",
                GatewayTopic::AttributeRequest,
            ),
            ("v1/gateway/rpc", GatewayTopic::Rpc),
            ("v1/gateway/claim", GatewayTopic::Claim),
        ] {
            assert_eq!(
                PublishTopic::parse(topic),
                Ok(PublishTopic::Gateway(expected))
            );
        }
        for bad in [
            "v1/gateway/",
            "v1/gateway/telemetry/",
            "v1/gateway/attributes/response",
            "v1/gateway/rpc/response",
            "v1/gateways/telemetry",
        ] {
            assert!(
                matches!(PublishTopic::parse(bad), Err(TopicError::Unknown(_))),
                "{bad}"
            );
        }
        assert_eq!(
            PublishTopic::parse("v1/gateway/#"),
            Err(TopicError::Wildcard)
        );
        assert!(gateway_subscription_allowed("v1/gateway/rpc"));
        assert!(gateway_subscription_allowed(
            "v1/gateway/attributes/response"
        ));
        for bad in ["v1/gateway/#", "v1/gateway/+", "v1/gateway/telemetry"] {
            assert!(!gateway_subscription_allowed(bad), "{bad}");
            assert!(!subscription_allowed(bad), "{bad}");
        }
    }

    #[test]
    fn parses_the_device_topics() {
        assert_eq!(
            PublishTopic::parse("v1/devices/me/telemetry"),
            Ok(PublishTopic::Telemetry)
        );
        assert_eq!(
            PublishTopic::parse("v1/devices/me/attributes"),
            Ok(PublishTopic::Attributes)
        );
        assert_eq!(
            PublishTopic::parse("v1/devices/me/attributes/request/17"),
            Ok(PublishTopic::AttributeRequest(17))
        );
        assert_eq!(
            PublishTopic::parse("v1/devices/me/rpc/request/3"),
            Ok(PublishTopic::RpcRequest(3))
        );
        assert_eq!(
            PublishTopic::parse("v1/devices/me/rpc/response/9"),
            Ok(PublishTopic::RpcResponse(9))
        );
        assert_eq!(
            PublishTopic::parse("v1/devices/me/telemetry/#"),
            Err(TopicError::Wildcard)
        );
        assert_eq!(
            PublishTopic::parse("v1/devices/+/telemetry"),
            Err(TopicError::Wildcard)
        );
        for bad in [
            "",
            "v1/devices/other/telemetry",
            "v1/devices/me/telemetry/",
            "v1/devices/me/attributes/request/",
            "v1/devices/me/attributes/request/-1",
            "v1/devices/me/attributes/request/99999999999",
            "/v1/devices/me/telemetry",
        ] {
            assert!(
                matches!(PublishTopic::parse(bad), Err(TopicError::Unknown(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn devices_subscribe_only_to_their_own_topics() {
        for ok in [
            "v1/devices/me/attributes",
            "v1/devices/me/attributes/response/+",
            "v1/devices/me/rpc/request/+",
            "v1/devices/me/rpc/response/+",
            "v1/devices/me/rpc/response/5",
            "v2/fw/response/+/chunk/+",
        ] {
            assert!(subscription_allowed(ok), "{ok}");
        }
        for bad in [
            "#",
            "+/+",
            "v1/devices/#",
            "v1/devices/other/attributes",
            "v1/devices/me/telemetry",
            "$SYS/#",
        ] {
            assert!(!subscription_allowed(bad), "{bad}");
        }
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(5000))]

            #[test]
            fn any_topic_parses_without_panic(topic in "\\PC{0,80}") {
                let _ = PublishTopic::parse(&topic);
                let _ = subscription_allowed(&topic);
            }

            #[test]
            fn only_me_topics_are_accepted(prefix in "[a-z0-9/+#]{0,30}", id in any::<u32>()) {
                let topic = format!("{prefix}v1/devices/me/rpc/request/{id}");
                let parsed = PublishTopic::parse(&topic);
                if prefix.is_empty() {
                    prop_assert_eq!(parsed, Ok(PublishTopic::RpcRequest(id)));
                } else {
                    prop_assert!(parsed.is_err());
                }
            }

            #[test]
            fn wildcards_never_pass(topic in "[a-z/]{0,20}[+#][a-z/]{0,20}") {
                prop_assert!(PublishTopic::parse(&topic).is_err());
            }
        }
    }

    #[test]
    fn parses_package_chunk_requests() {
        use stead_api_types::PackageKind;
        assert_eq!(
            PublishTopic::parse("v2/fw/request/3/chunk/17"),
            Ok(PublishTopic::PackageChunk {
                kind: PackageKind::Firmware,
                request: 3,
                chunk: 17
            })
        );
        assert_eq!(
            PublishTopic::parse("v2/sw/request/1/chunk/0"),
            Ok(PublishTopic::PackageChunk {
                kind: PackageKind::Software,
                request: 1,
                chunk: 0
            })
        );
        for bad in [
            "v2/fw/request/1/chunk/-1",
            "v2/fw/request/1/chunk/99999999999",
            "v2/fw/request/x/chunk/1",
            "v2/fw/request/1",
            "v2/fw/request/1/chunk/",
        ] {
            assert!(
                matches!(PublishTopic::parse(bad), Err(TopicError::Unknown(_))),
                "{bad}"
            );
        }
    }
}
