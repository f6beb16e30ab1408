//! The load generator (`stead-e2e loadgen`) against the real server. Its figures go into closing
//! notes, so what it counts is checked against what the server stored: published, acknowledged,
//! rejected with the MQTT 5 reason, refused connects, and `--verify` itself.

use std::time::Duration;

use crate::harness::{Backend, Options, TestServer};
use crate::on_both_backends;

on_both_backends!(loadgen_counts_what_the_server_stored);

/// Runs the load generator as the tenant admin with `args` (split at spaces); answers its exit
/// success and its JSON report (the last line of its output).
async fn loadgen(server: &TestServer, email: &str, args: &str) -> (bool, serde_json::Value) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_stead-e2e"))
        .arg("loadgen")
        .args(["--api", &server.base, "--email", email, "--password"])
        .arg("tenant-admin-password")
        .args(["--mqtt", &server.mqtt])
        .args(args.split_whitespace())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), out)
        .await
        .expect("the load generator ended within 120 s")
        .expect("the load generator ran");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| {
            panic!(
                "no JSON report; stdout:\n{stdout}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    (out.status.success(), report)
}

fn n(report: &serde_json::Value, pointer: &str) -> u64 {
    report
        .pointer(pointer)
        .and_then(serde_json::Value::as_u64)
        .unwrap_or_else(|| panic!("{pointer} missing from {report}"))
}

async fn loadgen_counts_what_the_server_stored(backend: Backend) {
    // The device limit is low enough for the MQTT 5 flood below to cross it and be refused.
    let options = Options::default().env("STEAD_DEVICE_RATE_MESSAGES", "40:1");
    let server = TestServer::start_with(backend, options).await;
    let _tenant = server.tenant("Loadgen").await;
    let email = "admin@loadgen.example.com";
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.txt");
    let tokens_arg = tokens.to_str().unwrap();

    // MQTT 3.1.1, QoS 1 at 10 msg/s, devices created through the API: every message is
    // acknowledged, timed and stored.
    let (ok, r) = loadgen(
        &server,
        email,
        &format!("--devices 3 --rate 10 --duration 2 --verify --write-tokens {tokens_arg}"),
    )
    .await;
    assert!(ok, "{r}");
    assert_eq!(n(&r, "/connected"), 3, "{r}");
    let published = n(&r, "/published");
    assert!(
        (45..=63).contains(&published),
        "about 3 × 10 × 2 published: {r}"
    );
    assert_eq!(n(&r, "/acked"), published, "{r}");
    assert_eq!(n(&r, "/unacked"), 0, "{r}");
    assert_eq!(n(&r, "/puback_ms/samples"), published, "{r}");
    assert_eq!(n(&r, "/verify/stored"), published, "{r}");
    assert_eq!(n(&r, "/verify/lost"), 0, "{r}");

    // MQTT 5 flat out from the token file: past the device limit the server answers PUBACK 0x97,
    // which is counted as rejected with its reason; only acknowledged messages are stored.
    let (ok, r) = loadgen(
        &server,
        email,
        &format!("--token-file {tokens_arg} --v5 --rate 0 --inflight 4 --duration 1.5 --verify"),
    )
    .await;
    assert!(ok, "{r}");
    let (published, acked, rejected) = (n(&r, "/published"), n(&r, "/acked"), n(&r, "/rejected"));
    assert_eq!(acked + rejected, published, "{r}");
    assert!(
        acked >= 3 * 40,
        "each device got its limit's worth through: {r}"
    );
    assert!(rejected > 0, "the flood crossed the limit: {r}");
    assert_eq!(
        n(&r, "/rejected_reasons/PUBACK quota exceeded (0x97)"),
        rejected,
        "{r}"
    );
    assert_eq!(n(&r, "/verify/stored"), acked, "{r}");
    assert_eq!(n(&r, "/verify/lost"), 0, "{r}");

    // QoS 0: nothing to acknowledge, nothing lost.
    let (ok, r) = loadgen(
        &server,
        email,
        &format!("--token-file {tokens_arg} --qos 0 --rate 5 --duration 1 --verify"),
    )
    .await;
    assert!(ok, "{r}");
    let published = n(&r, "/published");
    assert!(published >= 9, "{r}");
    assert_eq!(n(&r, "/acked"), 0, "{r}");
    assert_eq!(n(&r, "/verify/stored"), published, "{r}");

    // A wrong token is refused at CONNECT, with the 3.1.1 return code in words.
    let bad = dir.path().join("bad.txt");
    std::fs::write(&bad, "not-a-real-token\n").unwrap();
    let bad = bad.to_str().unwrap();
    let (ok, r) = loadgen(&server, email, &format!("--token-file {bad} --duration 1")).await;
    assert!(!ok, "no device connected, so the run failed: {r}");
    assert_eq!(n(&r, "/connect_failed"), 1, "{r}");
    let reasons = r["connect_failures"].as_object().unwrap();
    assert!(
        reasons
            .keys()
            .any(|k| k.starts_with("CONNECT refused: bad user name or password (0x04)")),
        "{r}"
    );
}
