//! How deep JSON may nest where it comes in: request bodies, and every value a device sends that
//! is kept (telemetry, attributes, command answers). serde_json already stops at 128 levels with
//! an error (a body of ten thousand `[` is refused, never a stack overflow); this bound is lower
//! because what is kept is later sent inside other JSON (a page of values, a live event), and a
//! value of 120 levels in an envelope of ten would be more than any client's parser takes (the
//! console's and the SDKs' serde_json stop at 128 too). Real data nests a few levels.

use serde_json::Value;

/// The deepest JSON accepted: a request body, or a value kept (`{"a":{"b":1}}` is 2 deep).
pub const MAX_DEPTH: usize = 32;

/// How deep a JSON text nests (arrays and objects; a scalar is 0), read without parsing it, so
/// that a body is measured before a parser walks it. Brackets inside strings do not count.
pub fn depth_of_text(json: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &b in json {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// How deep a value nests (a scalar is 0, `[]` and `{}` are 1), without recursion.
pub fn depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 0usize)];
    while let Some((value, above)) = stack.pop() {
        match value {
            Value::Array(items) => {
                deepest = deepest.max(above + 1);
                stack.extend(items.iter().map(|v| (v, above + 1)));
            }
            Value::Object(map) => {
                deepest = deepest.max(above + 1);
                stack.extend(map.values().map(|v| (v, above + 1)));
            }
            _ => {}
        }
    }
    deepest
}

/// Whether a value nests deeper than `MAX_DEPTH`.
pub fn too_deep(value: &Value) -> bool {
    depth(value) > MAX_DEPTH
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_text_and_values_alike() {
        for (text, expected) in [
            ("1", 0),
            ("[]", 1),
            (r#"{"a":{"b":[1,2]}}"#, 3),
            (r#"{"a":"[[[[{{{{","b":["\"[["]}"#, 2),
            (r#"[{"a":1},{"b":{"c":{}}}]"#, 4),
        ] {
            assert_eq!(depth_of_text(text.as_bytes()), expected, "{text}");
            let value: Value = serde_json::from_str(text).unwrap();
            assert_eq!(depth(&value), expected, "{text}");
        }
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(depth_of_text(deep.as_bytes()), 10_000);
        // serde_json refuses it (no stack overflow): the error is the refusal.
        assert!(serde_json::from_str::<Value>(&deep).is_err());
        let just: Value = serde_json::from_str(&format!(
            "{}1{}",
            "[".repeat(MAX_DEPTH),
            "]".repeat(MAX_DEPTH)
        ))
        .unwrap();
        assert!(!too_deep(&just));
        assert!(too_deep(&Value::Array(vec![just])));
    }
}
