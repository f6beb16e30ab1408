//! Alarm rules, parsed and checked once at the edge (`Rule::parse`), and evaluated without I/O:
//! the engine hands in a message's values and the device's attributes, and keeps each rule's
//! progress (`Progress`) in the live-state store between messages.

use std::collections::BTreeMap;

use chrono::{Datelike, TimeZone, Timelike};
use serde::{Deserialize, Serialize};
use stead_api_types::{
    AlarmRuleSpec, AlarmSchedule, AlarmSeverity, Condition, ConditionKind, Expr, Operator,
    Predicate, ValueSource,
};

use crate::error::{Error, Result};

/// Longest duration or no-data time a condition may name: 30 days.
const MAX_SECS: u32 = 30 * 24 * 3600;
/// Most messages in a row a repeating condition may count.
const MAX_COUNT: u32 = 10_000;
/// Most predicates in one condition, however nested.
const MAX_PREDICATES: usize = 32;

/// A rule checked to hold together: every operator has a value of its kind, every kind has what
/// it needs.
#[derive(Debug, Clone)]
pub struct Rule {
    pub alarm_type: String,
    pub create: Vec<(AlarmSeverity, Condition)>,
    pub clear: Option<Condition>,
    pub clear_after_ms: Option<i64>,
    pub schedule: Option<(chrono_tz::Tz, AlarmSchedule)>,
}

fn bad(field: String, detail: impl Into<String>) -> Error {
    Error::invalid_at("invalid_rule", field, detail)
}

/// An alarm type: letters, digits, `_ - . :`, 1–64 characters.
pub fn check_alarm_type(raw: &str) -> Result<String> {
    let t = raw.trim();
    if t.is_empty()
        || t.len() > 64
        || !t
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.:".contains(c))
    {
        return Err(Error::invalid(
            "invalid_rule",
            "alarm_type",
            "an alarm type is 1–64 letters, digits, `_`, `-`, `.` or `:`, such as `overheat`",
        ));
    }
    Ok(t.to_owned())
}

impl Rule {
    pub fn parse(spec: &AlarmRuleSpec) -> Result<Rule> {
        let alarm_type = check_alarm_type(&spec.alarm_type)?;
        if spec.create.is_empty() {
            return Err(bad(
                "create".into(),
                "a rule needs a create condition for at least one severity",
            ));
        }
        let mut create = Vec::new();
        for (severity, c) in spec.create.iter() {
            check_condition(c, &format!("create.{}", severity.as_str()))?;
            create.push((severity, c.clone()));
        }
        if let Some(c) = &spec.clear {
            check_condition(c, "clear")?;
            if c.kind == ConditionKind::NoData {
                return Err(bad(
                    "clear.kind".into(),
                    "a clear condition cannot be `no_data`: data arriving clears a no-data alarm",
                ));
            }
        }
        if let Some(s) = spec.clear_after_secs
            && !(1..=MAX_SECS).contains(&s)
        {
            return Err(bad(
                "clear_after_secs".into(),
                format!("between 1 and {MAX_SECS} seconds"),
            ));
        }
        let schedule = match &spec.schedule {
            None => None,
            Some(s) => Some((check_schedule(s, "invalid_rule", "schedule")?, s.clone())),
        };
        if let Some(d) = &spec.description
            && d.chars().count() > 500
        {
            return Err(bad(
                "description".into(),
                "a description has at most 500 characters",
            ));
        }
        Ok(Rule {
            alarm_type,
            create,
            clear: spec.clear.clone(),
            clear_after_ms: spec.clear_after_secs.map(|s| i64::from(s) * 1000),
            schedule,
        })
    }

    /// Whether the rule may raise at `ts` (ms since the epoch).
    pub fn in_schedule(&self, ts: i64) -> bool {
        match &self.schedule {
            None => true,
            Some((tz, s)) => schedule_allows(tz, s, ts),
        }
    }

    /// The no-data conditions (severity, seconds, key), which the worker's sweep evaluates.
    pub fn no_data(&self) -> impl Iterator<Item = (AlarmSeverity, i64, Option<&str>)> {
        self.create
            .iter()
            .filter(|(_, c)| c.kind == ConditionKind::NoData)
            .map(|(s, c)| (*s, i64::from(c.secs.unwrap_or(0)) * 1000, c.key.as_deref()))
    }
}

/// A schedule's time zone, or the field (under `at`) that is wrong. Alarm rules' schedules and
/// campaigns' maintenance windows are checked alike.
pub fn check_schedule(s: &AlarmSchedule, code: &'static str, at: &str) -> Result<chrono_tz::Tz> {
    let bad =
        |field: &str, detail: String| Error::invalid_at(code, format!("{at}.{field}"), detail);
    let tz: chrono_tz::Tz = s.timezone.parse().map_err(|_| {
        bad(
            "timezone",
            format!(
                "{:?} is not an IANA time zone such as Europe/Berlin",
                s.timezone
            ),
        )
    })?;
    if let Some(d) = s.days.iter().find(|d| !(1..=7).contains(*d)) {
        return Err(bad(
            "days",
            format!("{d} is not a day: 1 is Monday, 7 is Sunday"),
        ));
    }
    if s.from_hour > 23 {
        return Err(bad("from_hour", "an hour from 0 to 23".into()));
    }
    if s.to_hour > 24 || s.to_hour == s.from_hour {
        return Err(bad(
            "to_hour",
            "an hour from 1 to 24, other than from_hour".into(),
        ));
    }
    Ok(tz)
}

/// Whether `ts` (ms since the epoch) falls within the schedule.
pub fn schedule_allows(tz: &chrono_tz::Tz, s: &AlarmSchedule, ts: i64) -> bool {
    let Some(t) = tz.timestamp_millis_opt(ts).single() else {
        return true;
    };
    let day = t.weekday().number_from_monday() as u8;
    if !s.days.is_empty() && !s.days.contains(&day) {
        return false;
    }
    let hour = t.hour() as u8;
    if s.from_hour <= s.to_hour {
        (s.from_hour..s.to_hour).contains(&hour)
    } else {
        hour >= s.from_hour || hour < s.to_hour
    }
}

fn check_condition(c: &Condition, at: &str) -> Result<()> {
    let secs = |what: &str| -> Result<()> {
        match c.secs {
            Some(s) if (1..=MAX_SECS).contains(&s) => Ok(()),
            Some(_) => Err(bad(
                format!("{at}.secs"),
                format!("between 1 and {MAX_SECS} seconds"),
            )),
            None => Err(Error::invalid_at(
                "missing_field",
                format!("{at}.secs"),
                format!("a `{what}` condition needs `secs`"),
            )),
        }
    };
    match c.kind {
        ConditionKind::Immediate => {}
        ConditionKind::Duration => secs("duration")?,
        ConditionKind::Repeating => match c.count {
            Some(n) if (2..=MAX_COUNT).contains(&n) => {}
            Some(_) => {
                return Err(bad(
                    format!("{at}.count"),
                    format!("between 2 and {MAX_COUNT} messages"),
                ));
            }
            None => {
                return Err(Error::invalid_at(
                    "missing_field",
                    format!("{at}.count"),
                    "a `repeating` condition needs `count`",
                ));
            }
        },
        ConditionKind::NoData => {
            secs("no_data")?;
            if c.expr.is_some() {
                return Err(bad(
                    format!("{at}.expr"),
                    "a `no_data` condition has no expression: it names a `key`, or none for any telemetry",
                ));
            }
            if let Some(k) = &c.key {
                check_key(k, &format!("{at}.key"))?;
            }
            return Ok(());
        }
    }
    if c.key.is_some() {
        return Err(bad(
            format!("{at}.key"),
            "only a `no_data` condition names a `key` of its own; predicates name theirs",
        ));
    }
    let Some(expr) = &c.expr else {
        return Err(Error::invalid_at(
            "missing_field",
            format!("{at}.expr"),
            "the condition needs an expression (`{\"test\": {...}}`, `{\"all\": [...]}` or `{\"any\": [...]}`)",
        ));
    };
    let mut n = 0;
    check_expr(expr, &format!("{at}.expr"), &mut n)
}

fn check_key(k: &str, at: &str) -> Result<()> {
    if k.trim().is_empty() || k.len() > 255 {
        return Err(bad(at.to_owned(), "a key is 1–255 characters"));
    }
    Ok(())
}

fn check_expr(e: &Expr, at: &str, n: &mut usize) -> Result<()> {
    match e {
        Expr::All(list) | Expr::Any(list) => {
            let name = if matches!(e, Expr::All(_)) {
                "all"
            } else {
                "any"
            };
            if list.is_empty() {
                return Err(bad(
                    format!("{at}.{name}"),
                    "a group needs at least one expression",
                ));
            }
            for (i, inner) in list.iter().enumerate() {
                check_expr(inner, &format!("{at}.{name}[{i}]"), n)?;
            }
            Ok(())
        }
        Expr::Test(p) => {
            *n += 1;
            if *n > MAX_PREDICATES {
                return Err(bad(
                    at.to_owned(),
                    format!("a condition has at most {MAX_PREDICATES} tests"),
                ));
            }
            check_predicate(p, &format!("{at}.test"))
        }
    }
}

/// What kind of value an operand must be.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Want {
    Number,
    Text,
    NumberOrBool,
}

fn check_predicate(p: &Predicate, at: &str) -> Result<()> {
    check_key(&p.key, &format!("{at}.key"))?;
    let value_at = format!("{at}.value");
    match p.op {
        Operator::Gt | Operator::Ge | Operator::Lt | Operator::Le => {
            check_operand(&p.value, Want::Number, &value_at)
        }
        Operator::Eq | Operator::Ne => check_operand(&p.value, Want::NumberOrBool, &value_at),
        Operator::Between => match p.value.as_array().map(Vec::as_slice) {
            Some([low, high]) => {
                check_operand(low, Want::Number, &format!("{value_at}[0]"))?;
                check_operand(high, Want::Number, &format!("{value_at}[1]"))?;
                if let (Some(l), Some(h)) = (low.as_f64(), high.as_f64())
                    && l > h
                {
                    return Err(bad(value_at, "`between` takes [low, high] with low ≤ high"));
                }
                Ok(())
            }
            _ => Err(bad(
                value_at,
                "`between` takes a list of two numbers (or thresholds), [low, high]",
            )),
        },
        Operator::Equals | Operator::NotEquals | Operator::Contains => {
            check_operand(&p.value, Want::Text, &value_at)
        }
        Operator::In => match p.value.as_array() {
            Some(list) if !list.is_empty() && list.iter().all(|v| v.is_string()) => Ok(()),
            _ => Err(bad(value_at, "`in` takes a non-empty list of texts")),
        },
    }
}

/// A threshold read from an attribute of the device, with a default when it has none.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Dynamic {
    pub attribute: String,
    #[serde(default = "server_scope")]
    pub scope: ValueSource,
    pub default: serde_json::Value,
}

fn server_scope() -> ValueSource {
    ValueSource::Server
}

fn check_operand(v: &serde_json::Value, want: Want, at: &str) -> Result<()> {
    let fits = |v: &serde_json::Value| match want {
        Want::Number => v.is_number(),
        Want::Text => v.is_string(),
        Want::NumberOrBool => v.is_number() || v.is_boolean(),
    };
    let kind = match want {
        Want::Number => "a number",
        Want::Text => "a text",
        Want::NumberOrBool => "a number or a boolean",
    };
    if v.is_object() {
        let d: Dynamic = serde_json::from_value(v.clone()).map_err(|e| {
            bad(
                at.to_owned(),
                format!(
                    "a threshold from an attribute is {{\"attribute\": \"max_temp\", \"scope\": \"server\", \"default\": 80}}: {e}"
                ),
            )
        })?;
        if d.scope == ValueSource::Telemetry {
            return Err(bad(
                format!("{at}.scope"),
                "a threshold comes from an attribute scope: client, shared or server",
            ));
        }
        check_key(&d.attribute, &format!("{at}.attribute"))?;
        if !fits(&d.default) {
            return Err(bad(
                format!("{at}.default"),
                format!("the default must be {kind}"),
            ));
        }
        return Ok(());
    }
    if !fits(v) {
        return Err(bad(at.to_owned(), format!("the value must be {kind}")));
    }
    Ok(())
}

/// What a predicate may read: the message's values, and the device's attributes by scope.
pub struct Facts<'a> {
    pub telemetry: &'a serde_json::Map<String, serde_json::Value>,
    pub attributes: &'a BTreeMap<(ValueSource, String), serde_json::Value>,
}

impl Facts<'_> {
    fn get(&self, source: ValueSource, key: &str) -> Option<&serde_json::Value> {
        match source {
            ValueSource::Telemetry => self.telemetry.get(key),
            scope => self.attributes.get(&(scope, key.to_owned())),
        }
    }

    fn operand<'v>(&'v self, v: &'v serde_json::Value) -> Option<&'v serde_json::Value> {
        if v.is_object() {
            let d: Dynamic = serde_json::from_value(v.clone()).ok()?;
            // The attribute's value lives in `attributes`; the default in the rule.
            return Some(
                self.attributes
                    .get(&(d.scope, d.attribute))
                    .unwrap_or_else(|| match v.get("default") {
                        Some(default) => default,
                        None => &serde_json::Value::Null,
                    }),
            );
        }
        Some(v)
    }

    /// Whether `expr` holds. A test on a value the message and the device lack is false.
    pub fn holds(&self, expr: &Expr) -> bool {
        match expr {
            Expr::All(list) => list.iter().all(|e| self.holds(e)),
            Expr::Any(list) => list.iter().any(|e| self.holds(e)),
            Expr::Test(p) => self.test(p),
        }
    }

    /// Whether the message carries any key the expression reads from telemetry (a message about
    /// other keys leaves a rule's progress alone).
    pub fn touches(&self, expr: &Expr) -> bool {
        match expr {
            Expr::All(list) | Expr::Any(list) => list.iter().any(|e| self.touches(e)),
            Expr::Test(p) => {
                p.source != ValueSource::Telemetry || self.telemetry.contains_key(&p.key)
            }
        }
    }

    fn test(&self, p: &Predicate) -> bool {
        let Some(actual) = self.get(p.source, &p.key) else {
            return false;
        };
        let number = |v: &serde_json::Value| match v {
            serde_json::Value::Number(n) => n.as_f64(),
            // Devices often send numbers as text; ThingsBoard compares them as numbers too.
            serde_json::Value::String(s) => s.trim().parse::<f64>().ok(),
            serde_json::Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            _ => None,
        };
        let text = |v: &serde_json::Value| match v {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            serde_json::Value::Bool(b) => Some(b.to_string()),
            _ => None,
        };
        let compare = |f: fn(f64, f64) -> bool| -> bool {
            match (number(actual), self.operand(&p.value).and_then(number)) {
                (Some(a), Some(b)) => f(a, b),
                _ => false,
            }
        };
        match p.op {
            Operator::Gt => compare(|a, b| a > b),
            Operator::Ge => compare(|a, b| a >= b),
            Operator::Lt => compare(|a, b| a < b),
            Operator::Le => compare(|a, b| a <= b),
            Operator::Eq | Operator::Ne => {
                let equal = match self.operand(&p.value) {
                    Some(serde_json::Value::Bool(b)) => match actual {
                        serde_json::Value::Bool(a) => a == b,
                        serde_json::Value::String(s) => s.eq_ignore_ascii_case(&b.to_string()),
                        _ => false,
                    },
                    Some(v) => matches!((number(actual), number(v)), (Some(a), Some(b)) if a == b),
                    None => false,
                };
                equal == (p.op == Operator::Eq)
            }
            Operator::Between => {
                let Some([low, high]) = p.value.as_array().map(Vec::as_slice) else {
                    return false;
                };
                match (
                    number(actual),
                    self.operand(low).and_then(number),
                    self.operand(high).and_then(number),
                ) {
                    (Some(a), Some(l), Some(h)) => l <= a && a <= h,
                    _ => false,
                }
            }
            Operator::Equals | Operator::NotEquals | Operator::Contains => {
                match (text(actual), self.operand(&p.value).and_then(text)) {
                    (Some(a), Some(b)) => match p.op {
                        Operator::Equals => a == b,
                        Operator::NotEquals => a != b,
                        _ => a.contains(&b),
                    },
                    _ => false,
                }
            }
            Operator::In => match (text(actual), p.value.as_array()) {
                (Some(a), Some(list)) => list.iter().any(|v| v.as_str() == Some(a.as_str())),
                _ => false,
            },
        }
    }
}

/// The attributes a rule reads (for predicates and thresholds), so the engine fetches only
/// devices whose rules need them.
pub fn needs_attributes(rule: &Rule) -> bool {
    fn expr(e: &Expr) -> bool {
        match e {
            Expr::All(l) | Expr::Any(l) => l.iter().any(expr),
            Expr::Test(p) => {
                p.source != ValueSource::Telemetry
                    || p.value.is_object()
                    || p.value
                        .as_array()
                        .is_some_and(|l| l.iter().any(serde_json::Value::is_object))
            }
        }
    }
    rule.create
        .iter()
        .map(|(_, c)| c)
        .chain(rule.clear.as_ref())
        .filter_map(|c| c.expr.as_ref())
        .any(expr)
}

/// How far a condition has come, kept between messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// When the expression became true without interruption since (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<i64>,
    /// Messages in a row that made it true.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub count: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Progress {
    /// Takes one message at `ts` (whether the expression held) and answers whether the condition
    /// is met now.
    pub fn step(&mut self, c: &Condition, held: bool, ts: i64) -> bool {
        if !held {
            *self = Progress::default();
            return false;
        }
        // Only what the kind needs is kept, so that a message that changes nothing writes nothing
        // back to the live store (an immediate condition keeps no progress at all).
        match c.kind {
            ConditionKind::Immediate => true,
            ConditionKind::Duration => {
                let since = self.since.map_or(ts, |s| s.min(ts));
                self.since = Some(since);
                ts - since >= i64::from(c.secs.unwrap_or(0)) * 1000
            }
            ConditionKind::Repeating => {
                let needed = c.count.unwrap_or(1);
                // Counting past the threshold would change the state on every message.
                self.count = self.count.saturating_add(1).min(needed);
                self.count >= needed
            }
            ConditionKind::NoData => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: serde_json::Value) -> AlarmRuleSpec {
        serde_json::from_value(v).unwrap()
    }

    fn facts_holds(expr: serde_json::Value, telemetry: serde_json::Value) -> bool {
        let expr: Expr = serde_json::from_value(expr).unwrap();
        let telemetry = telemetry.as_object().unwrap().clone();
        let attributes = BTreeMap::from([((ValueSource::Server, "max".to_owned()), json!(50))]);
        Facts {
            telemetry: &telemetry,
            attributes: &attributes,
        }
        .holds(&expr)
    }

    #[test]
    fn operators_compare_as_documented() {
        let t = json!({"t": 81.5, "s": "door open", "b": true, "n": "12"});
        assert!(facts_holds(
            json!({"test": {"key": "t", "op": ">", "value": 80}}),
            t.clone()
        ));
        assert!(!facts_holds(
            json!({"test": {"key": "t", "op": "<=", "value": 80}}),
            t.clone()
        ));
        assert!(facts_holds(
            json!({"test": {"key": "t", "op": "between", "value": [80, 90]}}),
            t.clone()
        ));
        assert!(facts_holds(
            json!({"test": {"key": "n", "op": "==", "value": 12}}),
            t.clone()
        ));
        assert!(facts_holds(
            json!({"test": {"key": "b", "op": "==", "value": true}}),
            t.clone()
        ));
        assert!(facts_holds(
            json!({"test": {"key": "s", "op": "contains", "value": "open"}}),
            t.clone()
        ));
        assert!(facts_holds(
            json!({"test": {"key": "s", "op": "in", "value": ["door open", "x"]}}),
            t.clone()
        ));
        assert!(facts_holds(
            json!({"any": [{"test": {"key": "missing", "op": ">", "value": 1}}, {"test": {"key": "t", "op": ">", "value": {"attribute": "max", "default": 100}}}]}),
            t.clone()
        ));
        // The default stands in for a missing attribute.
        assert!(!facts_holds(
            json!({"test": {"key": "t", "op": ">", "value": {"attribute": "other", "default": 100}}}),
            t.clone()
        ));
        assert!(!facts_holds(
            json!({"all": [{"test": {"key": "t", "op": ">", "value": 80}}, {"test": {"key": "missing", "op": "<", "value": 1}}]}),
            t
        ));
    }

    #[test]
    fn bad_rules_name_their_field() {
        let field = |v: serde_json::Value| match Rule::parse(&spec(v)) {
            Err(Error::Invalid { field, .. }) => field.unwrap_or_default().into_owned(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            field(
                json!({"alarm_type": "hot", "create": {"critical": {"expr": {"test": {"key": "t", "op": ">", "value": "x"}}}}})
            ),
            "create.critical.expr.test.value"
        );
        assert_eq!(
            field(
                json!({"alarm_type": "hot", "create": {"major": {"kind": "duration", "expr": {"test": {"key": "t", "op": ">", "value": 1}}}}})
            ),
            "create.major.secs"
        );
        assert_eq!(
            field(
                json!({"alarm_type": "hot", "create": {"major": {"expr": {"all": [{"test": {"key": "t", "op": ">", "value": 1}}, {"test": {"key": "u", "op": "between", "value": [3, 1]}}]}}}})
            ),
            "create.major.expr.all[1].test.value"
        );
        assert_eq!(field(json!({"alarm_type": "hot", "create": {}})), "create");
        assert_eq!(
            field(
                json!({"alarm_type": "hot", "create": {"minor": {"expr": {"test": {"key": "t", "op": ">", "value": 1}}}}, "schedule": {"timezone": "Mars/Base"}})
            ),
            "schedule.timezone"
        );
    }

    #[test]
    fn duration_and_repeating_progress() {
        let duration: Condition = serde_json::from_value(json!({"kind": "duration", "secs": 10, "expr": {"test": {"key": "t", "op": ">", "value": 1}}})).unwrap();
        let mut p = Progress::default();
        assert!(!p.step(&duration, true, 0));
        assert!(!p.step(&duration, true, 9_999));
        assert!(p.step(&duration, true, 10_000));
        assert!(!p.step(&duration, false, 11_000));
        assert!(!p.step(&duration, true, 12_000));
        let repeating: Condition = serde_json::from_value(json!({"kind": "repeating", "count": 3, "expr": {"test": {"key": "t", "op": ">", "value": 1}}})).unwrap();
        let mut p = Progress::default();
        assert!(!p.step(&repeating, true, 0));
        assert!(!p.step(&repeating, true, 1));
        assert!(p.step(&repeating, true, 2));
        assert!(!p.step(&repeating, false, 3));
    }

    #[test]
    fn schedules_wrap_past_midnight() {
        let rule = Rule::parse(&spec(json!({"alarm_type": "night", "create": {"minor": {"expr": {"test": {"key": "t", "op": ">", "value": 1}}}}, "schedule": {"timezone": "UTC", "from_hour": 22, "to_hour": 6, "days": [1, 2, 3, 4, 5]}}))).unwrap();
        // Monday 2026-12-07 23:00 UTC, Monday 12:00, Saturday 23:00.
        let at = |s: &str| {
            chrono::DateTime::parse_from_rfc3339(s)
                .unwrap()
                .timestamp_millis()
        };
        assert!(rule.in_schedule(at("2026-12-07T23:00:00Z")));
        assert!(!rule.in_schedule(at("2026-12-07T12:00:00Z")));
        assert!(!rule.in_schedule(at("2026-12-12T23:00:00Z")));
    }
}
