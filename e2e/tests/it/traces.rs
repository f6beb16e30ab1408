//! Traces and OTLP metrics, received by a real OTLP/gRPC receiver (`e2e/python/otlp_receiver.py`,
//! the OpenTelemetry protocol definitions from PyPI): one command sent through node A's API to a
//! device on node B is one trace, continuing the caller's `traceparent`, with node A's HTTP
//! server span, its database and Redis spans, and node B's delivery span as a child across the
//! Redis hop; node A's log lines for the request carry the trace id; the metrics arrive over OTLP
//! under the names `/metrics` shows.
//!
//! The interpreter is `$STEAD_TEST_PYTHON`, else `python3`, with `e2e/python/requirements.txt`.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt as _;

use crate::harness::{Backend, Options, TestServer, workspace_root};
use crate::mqtt::{device, eventually};
use crate::mqtt_raw::{Raw, SUBACK};

/// The receiver process, killed when dropped, and the file it writes.
struct Receiver {
    _child: tokio::process::Child,
    endpoint: String,
    out: PathBuf,
    _dir: tempfile::TempDir,
}

impl Receiver {
    async fn start() -> Receiver {
        let python = crate::sdk::python();
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("otlp.jsonl");
        let mut child = tokio::process::Command::new(&python)
            .arg(workspace_root().join("e2e/python/otlp_receiver.py"))
            .arg(&out)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {python} (set STEAD_TEST_PYTHON): {e}"));
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("the OTLP receiver did not start within 30 s")
            .unwrap()
            .unwrap_or_else(|| {
                panic!(
                    "the OTLP receiver exited: are grpcio and opentelemetry-proto installed for \
                     {python}? pip install -r e2e/python/requirements.txt"
                )
            });
        let port = first
            .strip_prefix("listening ")
            .unwrap_or_else(|| panic!("unexpected receiver output {first:?}"));
        Receiver {
            _child: child,
            endpoint: format!("http://127.0.0.1:{port}"),
            out,
            _dir: dir,
        }
    }

    fn records(&self) -> Vec<Value> {
        read_records(&self.out)
    }

    /// Waits until `found` answers something from what was received so far.
    async fn wait_for<T>(&self, what: &str, mut found: impl FnMut(&[Value]) -> Option<T>) -> T {
        for _ in 0..300 {
            if let Some(t) = found(&self.records()) {
                return t;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "the OTLP receiver never got {what}; it got:\n{}",
            self.records()
                .iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

fn read_records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn otlp_node(receiver: &Receiver, join: Option<&TestServer>) -> Options {
    Options {
        join: join.map(|j| j.shared()),
        ..Options::default()
    }
    .env("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint)
    // Export within a fraction of a second: the harness ends a node with SIGKILL, which leaves
    // no chance to flush at exit.
    .env("OTEL_BSP_SCHEDULE_DELAY", "100")
    .env("OTEL_METRIC_EXPORT_INTERVAL", "300")
}

fn attr<'a>(span: &'a Value, key: &str) -> &'a Value {
    &span["attributes"][key]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_across_nodes_is_one_trace() {
    let receiver = Receiver::start().await;
    let a = TestServer::start_with(Backend::Postgres, otlp_node(&receiver, None)).await;
    let b = TestServer::start_with(Backend::Postgres, otlp_node(&receiver, Some(&a))).await;
    let acme = a.tenant("Acme").await;
    let c = acme.admin.clone();
    let (id, token) = device(&c, "far-away").await;
    let (mut raw, code) = Raw::connect(&b.mqtt, &token, 30, None).await;
    assert_eq!(code, 0);
    raw.subscribe("v1/devices/me/rpc/request/+", 1).await;
    assert_eq!(raw.read(Duration::from_secs(5)).await.unwrap().0, SUBACK);
    eventually("online as seen from A", || async {
        crate::mqtt::presence(&c, id).await.online
    })
    .await;

    // The caller's own span: the request must become its child, in its trace.
    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let caller_span = uuid::Uuid::new_v4().simple().to_string()[..16].to_owned();
    let traceparent = format!("00-{trace_id}-{caller_span}-01");
    let call = {
        let url = format!("{}/api/v1/devices/{id}/rpc", a.base);
        let token = c.token().unwrap().to_owned();
        let traceparent = traceparent.clone();
        tokio::spawn(async move {
            let response = reqwest::Client::new()
                .post(url)
                .bearer_auth(token)
                .header("traceparent", traceparent)
                .json(&json!({"method": "ping", "params": 1, "timeout_ms": 10000}))
                .send()
                .await
                .unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        })
    };
    let (topic, _) = raw
        .next_publish_acked(Duration::from_secs(10))
        .await
        .expect("the command crossed to node B");
    let request_id = topic.rsplit('/').next().unwrap().to_owned();
    raw.publish(
        &format!("v1/devices/me/rpc/response/{request_id}"),
        br#""pong""#,
        None,
    )
    .await;
    let (status, body) = call.await.unwrap();
    assert_eq!(status, 200, "{body}");

    // Node A's server span, a child of the caller's, named by the route.
    let route = "/api/v1/devices/{id}/rpc";
    let spans_of_trace = |records: &[Value]| -> Vec<Value> {
        records
            .iter()
            .filter(|r| r["kind"] == "span" && r["trace_id"] == trace_id.as_str())
            .cloned()
            .collect()
    };
    let server_span = receiver
        .wait_for("node A's HTTP server span", |records| {
            spans_of_trace(records)
                .into_iter()
                .find(|s| s["name"] == format!("POST {route}"))
        })
        .await;
    assert_eq!(
        server_span["parent_span_id"],
        caller_span.as_str(),
        "{server_span}"
    );
    assert_eq!(
        server_span["span_kind"], 2,
        "SPAN_KIND_SERVER: {server_span}"
    );
    assert_eq!(attr(&server_span, "http.request.method"), "POST");
    assert_eq!(attr(&server_span, "http.route"), route);
    assert_eq!(
        attr(&server_span, "url.path"),
        format!("/api/v1/devices/{id}/rpc").as_str()
    );
    assert_eq!(attr(&server_span, "http.response.status_code"), 200);
    let server_id = server_span["span_id"].as_str().unwrap().to_owned();
    let node_a = server_span["resource"]["service.instance.id"].clone();
    assert!(node_a.is_string(), "{server_span}");

    // Node B's delivery, a child of A's request span across the Redis hop, with the claim's
    // UPDATE under it.
    let (delivery, claim) = receiver
        .wait_for("node B's delivery span and its UPDATE", |records| {
            let spans = spans_of_trace(records);
            let delivery = spans.iter().find(|s| s["name"] == "rpc deliver")?.clone();
            let claim = spans
                .iter()
                .find(|s| {
                    s["parent_span_id"] == delivery["span_id"]
                        && attr(s, "db.operation.name") == "UPDATE"
                })?
                .clone();
            Some((delivery, claim))
        })
        .await;
    assert_eq!(delivery["parent_span_id"], server_id.as_str(), "{delivery}");
    assert_ne!(
        delivery["resource"]["service.instance.id"], node_a,
        "the delivery span comes from the other node"
    );
    assert_eq!(attr(&delivery, "stead.rpc.method"), "ping");
    assert_eq!(attr(&claim, "db.system.name"), "postgresql");
    assert_eq!(attr(&claim, "db.collection.name"), "rpc_commands");

    // Node A's database and Redis spans, children of the request span, without values.
    let spans = receiver
        .wait_for("node A's database and Redis spans", |records| {
            let spans = spans_of_trace(records);
            let under_request = |pred: &dyn Fn(&Value) -> bool| -> bool {
                spans
                    .iter()
                    .any(|s| s["parent_span_id"] == server_id.as_str() && pred(s))
            };
            let inserted = under_request(&|s: &Value| {
                attr(s, "db.system.name") == "postgresql"
                    && attr(s, "db.operation.name") == "INSERT"
                    && attr(s, "db.collection.name") == "rpc_commands"
                    && s["name"] == "INSERT rpc_commands"
            });
            let selected = under_request(&|s: &Value| {
                attr(s, "db.operation.name") == "SELECT"
                    && attr(s, "db.collection.name") == "devices"
            });
            let redis = under_request(&|s: &Value| {
                attr(s, "db.system.name") == "redis" && attr(s, "db.operation.name") == "HGETALL"
            });
            let published = under_request(&|s: &Value| {
                attr(s, "db.system.name") == "redis" && attr(s, "db.operation.name") == "PUBLISH"
            });
            (inserted && selected && redis && published).then_some(spans)
        })
        .await;
    // One trace: every span of it hangs, through its parents, from the caller's span.
    let parents: HashMap<&str, &str> = spans
        .iter()
        .map(|s| {
            (
                s["span_id"].as_str().unwrap(),
                s["parent_span_id"].as_str().unwrap(),
            )
        })
        .collect();
    for span in &spans {
        let mut at = span["span_id"].as_str().unwrap();
        let mut hops = 0;
        while at != caller_span.as_str() {
            at = *parents
                .get(at)
                .unwrap_or_else(|| panic!("{span} is not under the request"));
            hops += 1;
            assert!(hops < 20, "a cycle at {span}");
        }
        let text = span.to_string();
        assert!(!text.contains("pong") && !text.contains(&token), "{text}");
    }

    // Node A's log lines for the request carry its trace id.
    let logs = a.log_text();
    let traced: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains(&format!(r#""trace_id":"{trace_id}""#)))
        .collect();
    assert!(
        traced
            .iter()
            .any(|l| l.contains(r#""message":"request""#) && l.contains(route)),
        "no log line of the request carries its trace id:\n{logs}"
    );

    // Metrics over OTLP: every family `/metrics` shows, under its name, and the request
    // counted with today's labels.
    let text = reqwest::get(format!("{}/metrics", a.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let families: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    assert!(families.contains("stead_http_requests_total"), "{text}");
    let node_a_service = node_a.clone();
    receiver
        .wait_for("every metric of /metrics over OTLP", |records| {
            let exported: BTreeSet<String> = records
                .iter()
                .filter(|r| {
                    r["kind"] == "metric" && r["resource"]["service.instance.id"] == node_a_service
                })
                .filter_map(|r| r["name"].as_str().map(str::to_owned))
                .collect();
            let counted = records.iter().any(|r| {
                r["kind"] == "metric"
                    && r["name"] == "stead_http_requests_total"
                    && r["type"] == "sum"
                    && r["attributes"] == json!({"method": "POST", "route": route, "status": "200"})
                    && r["value"].as_f64() >= Some(1.0)
            });
            (counted && families.is_subset(&exported)).then_some(())
        })
        .await;
}
