//! The CSV import parser (`stead::imports::parse`) on any file: a refusal of the file (its
//! header), or one line per non-empty record, each a checked row or an error with its line.
//!
//! Lines count from 2 (line 1 is the header), never go back, and stay within the file; a row's
//! name, groups, label and attributes are what the devices API would accept, and hold no NUL
//! character (PostgreSQL cannot store one, SQLite can: the import must refuse it on both).

#![no_main]

use libfuzzer_sys::fuzz_target;
use stead::imports::{self, Line};

mod common;

fuzz_target!(|file: &[u8]| {
    let lines = match imports::parse(file) {
        Ok(lines) => lines,
        Err(e) => {
            common::refusal(&e.detail);
            return;
        }
    };
    assert!(lines.len() <= imports::MAX_ROWS + 1);
    // Lines as people count them: "\n", "\r\n", or a lone "\r" (old Mac files) each end one.
    let text_lines = 1 + file
        .iter()
        .enumerate()
        .filter(|(i, b)| **b == b'\n' || (**b == b'\r' && file.get(i + 1) != Some(&b'\n')))
        .count() as u64;
    let mut last = 1;
    for line in &lines {
        let at = match line {
            Ok(row) => row.line,
            Err(e) => e.line,
        };
        assert!(at >= 2, "a data line numbered {at}: {line:?}");
        assert!(at >= last, "line {at} after line {last}");
        assert!(at <= text_lines, "line {at} of a file of {text_lines} lines");
        last = at;
        check(line);
    }
});

fn check(line: &Line) {
    let row = match line {
        Ok(row) => row,
        Err(e) => {
            // The job's report keeps these (JSON in PostgreSQL).
            assert!(!e.reason.is_empty());
            common::storable("refused row's name", &e.name);
            common::storable("refusal", &e.reason);
            return;
        }
    };
    common::device_name(&row.name);
    for (what, text) in [("label", &row.label), ("type", &row.device_type), ("profile", &row.profile)] {
        if let Some(text) = text {
            assert!(!text.is_empty() && text.trim() == text, "{what} {text:?}");
            common::storable(what, text);
        }
    }
    for (i, group) in row.groups.iter().enumerate() {
        assert!(!group.is_empty() && group.trim() == group, "group {group:?}");
        assert!(!row.groups[..i].contains(group), "group {group:?} twice");
        common::storable("group", group);
    }
    for values in [&row.shared, &row.server] {
        for (key, value) in values {
            assert!(!key.trim().is_empty() && key.len() <= 256, "attribute key {key:?}");
            common::storable("attribute key", key);
            assert_eq!(stead::text::nul_in(value), None, "NUL in attribute {key:?}");
        }
    }
    if let Some(credentials) = &row.credentials {
        let text = format!("{credentials:?}");
        assert!(!text.contains("\\0"), "NUL in credentials {text}");
    }
}
