//! Invariants the targets share: what every accepted value, key and name must satisfy because
//! the decoders say so (server/src/telemetry/decode.rs, server/src/text.rs), and what a refusal
//! may say.

#![allow(dead_code)]

use serde_json::{Map, Value};
use stead::telemetry::decode::{self, Point};

/// The time the targets decode at (points without `ts` take it).
pub const NOW: i64 = 1_700_000_000_000;

/// A refusal explains itself briefly: it never echoes a payload back whole (it goes on the
/// device's timeline and, shortened, into an MQTT 5 reason string).
pub fn refusal(detail: &str) {
    assert!(!detail.is_empty(), "a refusal without a reason");
    assert!(
        detail.len() <= 4096,
        "a refusal of {} bytes: {:?}…",
        detail.len(),
        detail.chars().take(200).collect::<String>()
    );
}

/// Text every store can keep: no NUL character (PostgreSQL refuses U+0000).
pub fn storable(what: &str, text: &str) {
    assert!(!text.contains('\0'), "{what} {text:?} holds a NUL character");
}

/// One object of values as `decode::checked` lets it through.
pub fn values(values: &Map<String, Value>) {
    assert!(!values.is_empty(), "an accepted object of values is empty");
    for (key, value) in values {
        assert!(
            !key.is_empty() && key.len() <= decode::MAX_KEY_LEN,
            "key of {} bytes accepted",
            key.len()
        );
        storable("key", key);
        assert!(
            !value.is_null() && !value.is_array(),
            "`{key}` accepted as {value}"
        );
        assert_eq!(
            stead::text::nul_in(value),
            None,
            "a NUL character accepted in `{key}`"
        );
    }
}

/// Decoded telemetry: at least one point, each with values, within the message's key limit; and
/// writing the points out again in the `{"ts":…,"values":{…}}` form decodes to the same points.
pub fn points(points: &[Point], now: i64) {
    assert!(!points.is_empty(), "telemetry decoded to no points");
    let keys: usize = points.iter().map(|p| p.values.len()).sum();
    assert!(keys <= decode::MAX_KEYS_PER_MESSAGE, "{keys} keys accepted");
    for p in points {
        assert!(p.ts >= 0, "a point at {} accepted", p.ts);
        values(&p.values);
    }
    let again = Value::Array(
        points
            .iter()
            .map(|p| serde_json::json!({"ts": p.ts, "values": p.values}))
            .collect(),
    );
    let text = again.to_string();
    match decode::telemetry(text.as_bytes(), now + 1) {
        Ok(decoded) => assert_eq!(decoded, points, "decoded points written out: {text}"),
        Err(e) => panic!("decoded points written out are refused ({e}): {text}"),
    }
}

/// Decoded client attributes: one object within the key limit, which decodes again unchanged.
pub fn attributes(map: &Map<String, Value>) {
    assert!(map.len() <= decode::MAX_KEYS_PER_MESSAGE);
    values(map);
    let text = Value::Object(map.clone()).to_string();
    match decode::attributes(text.as_bytes()) {
        Ok(decoded) => assert_eq!(&decoded, map, "decoded attributes written out: {text}"),
        Err(e) => panic!("decoded attributes written out are refused ({e}): {text}"),
    }
}

/// A device name as a gateway's message may use it: what `stead_api_types::check_name` keeps
/// unchanged (1 to 128 characters, no surrounding white space), and storable.
pub fn device_name(name: &str) {
    assert!(
        !name.is_empty() && name.chars().count() <= 128 && name.trim() == name,
        "device name {name:?} accepted"
    );
    storable("device name", name);
}
