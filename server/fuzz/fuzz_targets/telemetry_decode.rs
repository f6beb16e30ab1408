//! The telemetry and client-attribute decoders of the MQTT and HTTP device APIs
//! (`stead::telemetry::decode`), on any bytes: a refusal or a value that keeps every promise the
//! decoder makes (see `common`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use stead::telemetry::decode;

mod common;

fuzz_target!(|payload: &[u8]| {
    match decode::telemetry(payload, common::NOW) {
        Ok(points) => {
            common::points(&points, common::NOW);
            // Points without `ts` take the time they were decoded at.
            let parsed: serde_json::Value =
                serde_json::from_slice(payload).expect("accepted telemetry is JSON");
            let items = match &parsed {
                serde_json::Value::Array(items) => items.len(),
                _ => 1,
            };
            assert_eq!(items, points.len(), "one point per item");
        }
        Err(e) => common::refusal(&e.to_string()),
    }
    match decode::attributes(payload) {
        Ok(map) => common::attributes(&map),
        Err(e) => common::refusal(&e.to_string()),
    }
});
