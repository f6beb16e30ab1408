//! Text every store can keep. PostgreSQL's `text` and `jsonb` refuse U+0000 (SQLite keeps it), so
//! a NUL character in a name, a key or any JSON string is refused where it comes in, with a 4xx
//! that is the same on either backend, instead of failing in the database: a 500, or a telemetry
//! batch lost with the other devices' points in it.

use serde_json::Value;

/// Where the first NUL character of a JSON value is, as a path (`name`, `metadata.site`,
/// `items[2]`); `None` when there is none. A NUL in an object's key names that key.
pub fn nul_in(value: &Value) -> Option<String> {
    enum Step<'a> {
        Key(&'a str),
        Index(usize),
    }
    // The steps to the NUL, innermost first. The path is written only once a NUL is found:
    // writing it out for every value on the way down cost time quadratic in the input (a long
    // key above a long array: minutes for a 1 MB body).
    fn walk(value: &Value) -> Option<Vec<Step<'_>>> {
        match value {
            Value::String(s) if s.contains('\0') => Some(Vec::new()),
            Value::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
                let mut steps = walk(item)?;
                steps.push(Step::Index(i));
                Some(steps)
            }),
            Value::Object(map) => map.iter().find_map(|(key, item)| {
                let mut steps = if key.contains('\0') {
                    Vec::new()
                } else {
                    walk(item)?
                };
                steps.push(Step::Key(key));
                Some(steps)
            }),
            _ => None,
        }
    }
    let steps = walk(value)?;
    let mut path = String::new();
    for step in steps.iter().rev() {
        match step {
            Step::Index(i) => path.push_str(&format!("[{i}]")),
            Step::Key(key) => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(&key.replace('\0', "\\u0000"));
            }
        }
    }
    Some(path)
}

/// Writes each NUL character of `value`'s strings and keys as the text `\u0000`: for what is
/// kept as a record of what a client sent (a timeline entry about a refused message), where
/// refusing is not an option.
pub fn escape_nul(value: &mut Value) {
    match value {
        Value::String(s) if s.contains('\0') => *s = s.replace('\0', "\\u0000"),
        Value::Array(items) => items.iter_mut().for_each(escape_nul),
        Value::Object(map) => {
            if map.keys().any(|k| k.contains('\0')) {
                *map = std::mem::take(map)
                    .into_iter()
                    .map(|(k, v)| (k.replace('\0', "\\u0000"), v))
                    .collect();
            }
            map.values_mut().for_each(escape_nul);
        }
        _ => {}
    }
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
        let v: Value = serde_json::from_str(r#"[{"a":[1,{"b\u0000c":2}]}]"#).unwrap();
        assert_eq!(nul_in(&v).as_deref(), Some("[0].a[1].b\\u0000c"));
        let v: Value = serde_json::from_str(r#"["\u0000"]"#).unwrap();
        assert_eq!(nul_in(&v).as_deref(), Some("[0]"));
    }

    /// Found while writing the fuzz targets (server/fuzz): the path was written out for every
    /// value on the way down, so a long key above a long array cost time quadratic in the body
    /// (any JSON request body with a `\u0000` in it is walked, before authentication on some
    /// routes). Here 256 KiB × 128 Ki elements: 32 GiB of copying before, milliseconds now.
    #[test]
    fn regression_nul_in_is_linear_in_the_input() {
        let key = "k".repeat(256 * 1024);
        let zeros = vec!["0"; 128 * 1024].join(",");
        let body = format!(r#"{{"a":{{"{key}":[{zeros}]}},"z":"\u0000"}}"#);
        let v: Value = serde_json::from_str(&body).unwrap();
        let started = std::time::Instant::now();
        assert_eq!(nul_in(&v).as_deref(), Some("z"));
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn escape_nul_keeps_everything_else() {
        let mut v: Value =
            serde_json::from_str(r#"{"a\u0000":["x\u0000y",1,{"b":"\u0000"}],"c":"ok"}"#).unwrap();
        escape_nul(&mut v);
        assert_eq!(
            v,
            serde_json::json!({"a\\u0000": ["x\\u0000y", 1, {"b": "\\u0000"}], "c": "ok"})
        );
        assert_eq!(nul_in(&v), None);
    }
}
