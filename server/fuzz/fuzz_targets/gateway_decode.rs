//! The decoders of ThingsBoard's Gateway API (`stead::ingress::gateway`): messages keyed by
//! device name (telemetry, attributes, claims) and messages about one device (connect,
//! disconnect, attribute request, RPC answer), on any bytes.
//!
//! What a decoder accepts for a device is what the session then stores or looks up for it: a
//! valid, storable device name, values that keep the telemetry decoder's promises, and text
//! without NUL characters. A refusal for one device names that device; a refusal of the whole
//! message is short.

#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use stead::ingest::Rejection;
use stead::ingress::gateway::{self, AttributeRequest, Connect, Disconnect, RpcReply};

mod common;

fuzz_target!(|payload: &[u8]| {
    match gateway::telemetry(payload, common::NOW) {
        Ok(parts) => {
            names(parts.iter().map(|(n, _)| n.as_str()));
            for (name, points) in &parts {
                match points {
                    Ok(points) => {
                        common::device_name(name);
                        common::points(points, common::NOW);
                    }
                    Err(why) => part_refused(why),
                }
            }
        }
        Err(why) => message_refused(&why),
    }

    match gateway::attributes(payload) {
        Ok(parts) => {
            names(parts.iter().map(|(n, _)| n.as_str()));
            for (name, values) in &parts {
                match values {
                    Ok(values) => {
                        common::device_name(name);
                        common::attributes(values);
                    }
                    Err(why) => part_refused(why),
                }
            }
        }
        Err(why) => message_refused(&why),
    }

    match gateway::claims(payload) {
        Ok(claimed) => {
            names(claimed.iter().map(String::as_str));
            claimed.iter().for_each(|n| common::device_name(n));
        }
        Err(why) => message_refused(&why),
    }

    if let Some((name, connect)) = single::<Connect>(payload) {
        assert_eq!(connect.device, name);
        if let Some(t) = &connect.device_type {
            common::storable("device type", t);
        }
    }
    if let Some((name, disconnect)) = single::<Disconnect>(payload) {
        assert_eq!(disconnect.device, name);
    }
    if let Some((name, request)) = single::<AttributeRequest>(payload) {
        assert_eq!(request.device, name);
        match request.wanted() {
            Ok(keys) => {
                assert!(!keys.is_empty());
                for key in &keys {
                    assert!(!key.is_empty());
                    common::storable("attribute key", key);
                }
            }
            Err(why) => part_refused(&why),
        }
        // The answer names the request and the device, and carries what was found.
        let found: Map<String, Value> = request
            .keys
            .iter()
            .flatten()
            .map(|k| (k.clone(), Value::from(k.len())))
            .collect();
        let answer = gateway::attribute_response(request.id, &name, found.clone());
        assert_eq!(answer["id"], Value::from(request.id));
        assert_eq!(answer["device"], Value::from(name.as_str()));
        match found.len() {
            0 => assert!(answer.get("value").is_none() && answer.get("values").is_none()),
            1 => assert_eq!(Some(&answer["value"]), found.values().next()),
            _ => assert_eq!(answer["values"], Value::Object(found)),
        }
    }
    if let Some((name, reply)) = single::<RpcReply>(payload) {
        assert_eq!(reply.device, name);
        assert_eq!(stead::text::nul_in(&reply.data), None, "NUL in an RPC answer");
    }
});

/// A message about one device: when it is accepted for its device, the device's name is valid
/// and storable; a refusal names the device or is short.
fn single<T: serde::de::DeserializeOwned>(payload: &[u8]) -> Option<(String, T)> {
    match gateway::single::<T>(payload, "message") {
        Ok((name, Ok(parsed))) => {
            common::device_name(&name);
            Some((name, parsed))
        }
        Ok((_, Err(why))) => {
            part_refused(&why);
            None
        }
        Err(why) => {
            message_refused(&why);
            None
        }
    }
}

/// The devices a message names: at least one, at most the limit, each once.
fn names<'a>(names: impl Iterator<Item = &'a str>) {
    let names: Vec<&str> = names.collect();
    assert!(!names.is_empty() && names.len() <= gateway::MAX_DEVICES_PER_MESSAGE);
    assert_eq!(names.iter().collect::<HashSet<_>>().len(), names.len());
}

fn part_refused(why: &Rejection) {
    assert_eq!(why.reason(), "invalid_payload", "{why:?}");
    // Names are quoted with `{:?}` and may be long; the part's refusal is about that device.
    assert!(why.detail().starts_with("device "), "{why:?}");
}

fn message_refused(why: &Rejection) {
    assert_eq!(why.reason(), "invalid_payload", "{why:?}");
    common::refusal(why.detail());
}
