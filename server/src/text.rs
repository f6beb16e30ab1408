//! Text every store can keep. PostgreSQL's `text` and `jsonb` refuse U+0000 (SQLite keeps it), so
//! a NUL character in a name, a key or any JSON string is refused where it comes in, with a 4xx
//! that is the same on either backend, instead of failing in the database: a 500, or a telemetry
//! batch lost with the other devices' points in it.

use serde_json::Value;

/// Where the first NUL character of a JSON value is, as a path (`name`, `metadata.site`,
/// `items[2]`); `None` when there is none. A NUL in an object's key names that key.
pub fn nul_in(value: &Value) -> Option<String> {
    fn walk(value: &Value, path: &str) -> Option<String> {
        match value {
            Value::String(s) if s.contains('\0') => Some(path.to_owned()),
            Value::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, item)| walk(item, &format!("{path}[{i}]"))),
            Value::Object(map) => map.iter().find_map(|(key, item)| {
                let here = match path {
                    "" => key.replace('\0', "\\u0000"),
                    _ => format!("{path}.{}", key.replace('\0', "\\u0000")),
                };
                if key.contains('\0') {
                    return Some(here);
                }
                walk(item, &here)
            }),
            _ => None,
        }
    }
    walk(value, "")
}

/// Whether a JSON document's bytes may hold a NUL character (it can only be written `\u0000`):
/// the quick test before walking the parsed value.
pub fn may_hold_nul(json: &[u8]) -> bool {
    json.windows(6).any(|w| w == b"\\u0000")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_nul_and_says_where() {
        let v: Value = serde_json::from_str(r#"{"a":"x","b":{"c":["ok","n\u0000"]}}"#).unwrap();
        assert_eq!(nul_in(&v).as_deref(), Some("b.c[1]"));
        let v: Value = serde_json::from_str(r#"{"k\u0000":1}"#).unwrap();
        assert_eq!(nul_in(&v).as_deref(), Some("k\\u0000"));
        let v: Value = serde_json::from_str(r#"{"a":"\\u0000 is text","b":[1,null]}"#).unwrap();
        assert_eq!(nul_in(&v), None);
        assert!(may_hold_nul(br#"{"a":"\u0000"}"#));
        assert!(!may_hold_nul(br#"{"a":"u0000"}"#));
    }
}
