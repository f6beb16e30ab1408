//! The deployment artefacts in `infra/` against the real server: `stead healthcheck` (the
//! container image's health check) answers for a live node and not for a dead one, and every
//! metric that the Grafana dashboard and the Prometheus alerting rules name exists on a real
//! node's `/metrics`, with the labels they select and group by.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};

use serde::Deserialize;

use crate::harness::{Backend, TestServer, stead_bin, workspace_root};
use crate::mqtt::{device, mosquitto_pub};

/// Runs `stead healthcheck` with nothing of the developer's environment; answers (success, stderr).
fn healthcheck(args: &[&str], env: &[(&str, String)]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(stead_bin());
    command
        .arg("healthcheck")
        .args(args)
        .current_dir(dir.path())
        .stdin(Stdio::null());
    for (key, _) in std::env::vars() {
        if key.starts_with("STEAD_") {
            command.env_remove(key);
        }
    }
    for (key, value) in env {
        command.env(key, value);
    }
    let out = command.output().expect("run stead healthcheck");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_answers_for_a_live_node_only() {
    let server = TestServer::start(Backend::Sqlite).await;
    let port = server.base.rsplit(':').next().unwrap().to_owned();

    let (ok, err) = healthcheck(&["--url", &format!("{}/healthz", server.base)], &[]);
    assert!(ok, "{err}");
    // Without --url it asks its own STEAD_HTTP_ADDR, through loopback for a wildcard address
    // (what the image sets: 0.0.0.0:8080).
    let (ok, err) = healthcheck(&[], &[("STEAD_HTTP_ADDR", format!("0.0.0.0:{port}"))]);
    assert!(ok, "{err}");

    let (ok, err) = healthcheck(
        &["--url", &format!("{}/api/v1/no-such-page", server.base)],
        &[],
    );
    assert!(
        !ok && err.contains("404"),
        "a non-200 answer is unhealthy: {err}"
    );
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let (ok, err) = healthcheck(
        &[],
        &[("STEAD_HTTP_ADDR", format!("0.0.0.0:{closed_port}"))],
    );
    assert!(
        !ok && err.contains("cannot reach"),
        "nothing listening: {err}"
    );
    let (ok, err) = healthcheck(&["--url", "https://127.0.0.1/healthz"], &[]);
    assert!(!ok && err.contains("not an http://"), "{err}");
}

/// A metric family on `/metrics`: its type and, per sample name, the label names seen.
#[derive(Debug, Default)]
struct Exposition {
    types: BTreeMap<String, String>,
    samples: BTreeMap<String, BTreeSet<String>>,
}

impl Exposition {
    fn parse(text: &str) -> Exposition {
        let mut e = Exposition::default();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                e.types.insert(name.to_owned(), kind.trim().to_owned());
                continue;
            }
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let end = line.find(['{', ' ']).unwrap();
            let labels = e.samples.entry(line[..end].to_owned()).or_default();
            if line[end..].starts_with('{') {
                let close = line.rfind('}').unwrap();
                labels.extend(matcher_labels(&line[end + 1..close]));
            }
        }
        e
    }

    /// Where a sample name comes from: a counter or gauge by its own name, a histogram's
    /// `_bucket`/`_sum`/`_count`, a summary's `_sum`/`_count`. Only those suffixes, and only on
    /// families of those types: `stead_mqtt_sessions_bucket` names nothing.
    fn family_of(&self, sample: &str) -> Option<&str> {
        if let Some(kind) = self.types.get(sample)
            && matches!(kind.as_str(), "counter" | "gauge" | "untyped")
        {
            return Some(kind);
        }
        for (suffix, kinds) in [
            ("_bucket", &["histogram"][..]),
            ("_sum", &["histogram", "summary"][..]),
            ("_count", &["histogram", "summary"][..]),
        ] {
            if let Some(base) = sample.strip_suffix(suffix)
                && let Some(kind) = self.types.get(base)
                && kinds.contains(&kind.as_str())
            {
                return Some(kind);
            }
        }
        None
    }
}

/// Label names of a matcher list or a sample's labels: `a="x",b=~"y"` → a, b.
fn matcher_labels(inner: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let name: String =
            std::iter::from_fn(|| chars.next_if(|c| c.is_ascii_alphanumeric() || *c == '_'))
                .collect();
        if name.is_empty() {
            break;
        }
        names.push(name);
        // Skip the operator and the quoted value (which may hold commas and escaped quotes).
        while chars.next_if(|c| *c != '"' && *c != '\'').is_some() {}
        let Some(quote) = chars.next() else { break };
        let mut escaped = false;
        for c in chars.by_ref() {
            match c {
                '\\' if !escaped => escaped = true,
                c if c == quote && !escaped => break,
                _ => escaped = false,
            }
        }
    }
    names
}

/// What one PromQL expression refers to: metric selectors (name and matcher labels) and the
/// labels it groups or matches by.
#[derive(Debug, Default, PartialEq)]
struct References {
    selectors: Vec<(String, Vec<String>)>,
    grouping: Vec<String>,
}

const PROMQL_WORDS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
    "group",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "inf",
    "nan",
];

fn references(expr: &str) -> References {
    let chars: Vec<char> = expr.chars().collect();
    let mut refs = References::default();
    let mut i = 0;
    let skip_ws = |mut j: usize| {
        while j < chars.len() && chars[j].is_whitespace() {
            j += 1;
        }
        j
    };
    let closing = |open: usize, close: char| {
        let mut j = open;
        while j < chars.len() && chars[j] != close {
            if chars[j] == '"' {
                j += 1;
                while j < chars.len() && chars[j] != '"' {
                    j += if chars[j] == '\\' { 2 } else { 1 };
                }
            }
            j += 1;
        }
        j
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' {
            i += 1;
            while i < chars.len() && chars[i] != c {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else if c == '[' {
            i = closing(i, ']') + 1;
        } else if c == '$' || c.is_ascii_digit() || c == '.' {
            // Grafana variables ($__rate_interval, $instance), numbers and durations (5m, 0.99).
            i += 1;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == '.')
            {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = skip_ws(i);
            let paren = next < chars.len() && chars[next] == '(';
            if matches!(
                word.as_str(),
                "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"
            ) {
                if paren {
                    let end = closing(next, ')');
                    let list: String = chars[next + 1..end].iter().collect();
                    refs.grouping.extend(
                        list.split(',')
                            .map(str::trim)
                            .filter(|l| !l.is_empty())
                            .map(str::to_owned),
                    );
                    i = end + 1;
                }
            } else if paren || PROMQL_WORDS.contains(&word.as_str()) {
                // A function or an operator, not a metric.
            } else {
                let mut labels = Vec::new();
                if next < chars.len() && chars[next] == '{' {
                    let end = closing(next, '}');
                    labels = matcher_labels(&chars[next + 1..end].iter().collect::<String>());
                    i = end + 1;
                }
                refs.selectors.push((word, labels));
            }
        } else {
            i += 1;
        }
    }
    refs
}

/// Labels Prometheus adds to every scraped series (they are not on `/metrics` itself).
const TARGET_LABELS: &[&str] = &["instance", "job"];

/// Every problem with `exprs` (from `file`) against the exposition, in words.
fn problems(file: &str, exprs: &[String], metrics: &Exposition) -> Vec<String> {
    let mut found = Vec::new();
    for expr in exprs {
        let refs = references(expr);
        if refs.selectors.is_empty() {
            found.push(format!("{file}: no metric in {expr:?}"));
        }
        let mut known_labels: BTreeSet<&str> = TARGET_LABELS.iter().copied().collect();
        for (name, labels) in &refs.selectors {
            // Prometheus's own series about each scrape.
            if name == "up" {
                continue;
            }
            if metrics.family_of(name).is_none() {
                found.push(format!(
                    "{file}: {name} is not a metric on /metrics (in {expr:?})"
                ));
                continue;
            }
            let Some(seen) = metrics.samples.get(name) else {
                found.push(format!(
                    "{file}: {name} has no series on /metrics after the traffic (in {expr:?})"
                ));
                continue;
            };
            known_labels.extend(seen.iter().map(String::as_str));
            for label in labels {
                if !seen.contains(label) && !TARGET_LABELS.contains(&label.as_str()) {
                    found.push(format!(
                        "{file}: {name} has no label {label:?}, only {seen:?} (in {expr:?})"
                    ));
                }
            }
        }
        for label in &refs.grouping {
            if !known_labels.contains(label.as_str()) {
                found.push(format!(
                    "{file}: groups by {label:?}, which none of its metrics has (in {expr:?})"
                ));
            }
        }
    }
    found
}

/// Every query of the dashboard: panel targets (rows nest panels) and template variables.
fn dashboard_queries(dashboard: &serde_json::Value) -> Vec<String> {
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value) {
                        ("expr", serde_json::Value::String(expr)) => out.push(expr.clone()),
                        _ => walk(value, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    for var in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let query = var["query"]["query"]
            .as_str()
            .or(var["query"].as_str())
            .unwrap_or_default();
        // label_values(SELECTOR, LABEL): the selector's metric must have the label.
        if let Some((selector, label)) = query
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(')'))
            .and_then(|q| q.rsplit_once(','))
        {
            out.push(format!("max by ({}) ({selector})", label.trim()));
        } else if !query.is_empty() {
            out.push(query.to_owned());
        }
    }
    out
}

#[derive(Deserialize)]
struct RuleFile {
    groups: Vec<RuleGroup>,
}

#[derive(Deserialize)]
struct RuleGroup {
    rules: Vec<Rule>,
}

#[derive(Deserialize)]
struct Rule {
    expr: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_and_alerts_name_only_real_metrics() {
    let root = workspace_root();
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("infra/grafana/dashboards/stead.json")).unwrap(),
    )
    .unwrap();
    let dashboard_exprs = dashboard_queries(&dashboard);
    let rules: RuleFile = serde_saphyr::from_str(
        &std::fs::read_to_string(root.join("infra/prometheus/alerts.yaml")).unwrap(),
    )
    .unwrap();
    let alert_exprs: Vec<String> = rules
        .groups
        .into_iter()
        .flat_map(|g| g.rules)
        .map(|r| r.expr)
        .collect();
    assert!(dashboard_exprs.len() >= 15, "{dashboard_exprs:?}");
    assert!(alert_exprs.len() >= 8, "{alert_exprs:?}");

    // A production-like node (PostgreSQL and Redis), and traffic so that labelled series exist:
    // API requests, a device publishing at QoS 1, a refused connect, a refused message.
    let server = TestServer::start(Backend::Postgres).await;
    let acme = server.tenant("Deploy").await;
    let (_, token) = device(&acme.admin, "meter-1").await;
    let port = server.mqtt_port();
    // `-d` prints the MQTT 5 reason code of each refused PUBLISH.
    let publish = |token: &str, payload: &str| {
        let topic = "v1/devices/me/telemetry";
        let args = [
            "-V", "mqttv5", "-d", "-q", "1", "-u", token, "-t", topic, "-m", payload,
        ];
        mosquitto_pub(port, &args)
    };
    let (ok, out) = publish(&token, r#"{"temperature":21.5}"#);
    assert!(ok, "{out}");
    let (ok, out) = publish("not-a-token", "{}");
    assert!(!ok, "a wrong token is refused: {out}");
    let (_, out) = publish(&token, r#"{"temperature":"#);
    assert!(out.contains("RC:153"), "invalid JSON is refused: {out}");

    let text = reqwest::get(format!("{}/metrics", server.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let metrics = Exposition::parse(&text);
    // The traffic reached the series the checks rely on.
    for sample in [
        "stead_telemetry_rows_total",
        "stead_mqtt_publish_stored_seconds_bucket",
        "stead_mqtt_connect_refused_total",
        "stead_mqtt_messages_rejected_total",
        "stead_telemetry_queue_depth",
        "stead_dependency_up",
    ] {
        assert!(metrics.samples.contains_key(sample), "{sample} in:\n{text}");
    }
    assert!(
        text.contains(r#"stead_dependency_up{dependency="redis"} 1"#)
            && text.contains(r#"stead_dependency_up{dependency="database"} 1"#),
        "{text}"
    );
    assert!(
        text.contains("stead_telemetry_queue_capacity 8192"),
        "2 writers × 4096: {text}"
    );

    let mut found = problems(
        "infra/grafana/dashboards/stead.json",
        &dashboard_exprs,
        &metrics,
    );
    found.extend(problems(
        "infra/prometheus/alerts.yaml",
        &alert_exprs,
        &metrics,
    ));
    assert!(found.is_empty(), "{}", found.join("\n"));

    // The check itself fails on what it exists to catch, against the same /metrics.
    for (bad, why) in [
        ("rate(stead_telemetry_points_total[5m])", "not a metric"),
        ("stead_mqtt_sessions_bucket", "not a metric"),
        (r#"stead_mqtt_connect_refused_total{cause="x"}"#, "no label"),
        ("sum by (route) (stead_mqtt_sessions)", "groups by"),
    ] {
        let found = problems("probe", &[bad.to_owned()], &metrics);
        assert!(
            found.len() == 1 && found[0].contains(why),
            "{bad}: {found:?}"
        );
    }
}

#[test]
fn promql_references_are_found() {
    let refs = references(
        r#"histogram_quantile(0.99, sum by (le, route) (rate(stead_http_request_duration_seconds_bucket{instance=~"$instance", route!="/a,b"}[$__rate_interval])))"#,
    );
    assert_eq!(
        refs,
        References {
            selectors: vec![(
                "stead_http_request_duration_seconds_bucket".into(),
                vec!["instance".into(), "route".into()]
            )],
            grouping: vec!["le".into(), "route".into()],
        }
    );
    let refs = references(
        "sum(rate(stead_telemetry_rows_total[10m])) == 0 and sum(stead_mqtt_sessions) > 0",
    );
    let names: Vec<&str> = refs.selectors.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["stead_telemetry_rows_total", "stead_mqtt_sessions"]);
    let refs = references(r#"count(stead_dependency_up{x="1"} == 0) or vector(0)"#);
    assert_eq!(
        refs.selectors,
        vec![("stead_dependency_up".into(), vec!["x".into()])]
    );
}
