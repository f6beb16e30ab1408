//! `stead doctor` against real services: a healthy deployment passes (embedded, and PostgreSQL
//! with Redis), and a deployment with an unreachable Redis, a missing database, a port already
//! taken, a broken TLS certificate or an invalid setting fails, naming each problem in words.

use std::net::TcpListener;

use uuid::Uuid;

use crate::harness::{Backend, Scratch, certificate, pg_base_url, redis_url, run_stead, text};
use crate::on_both_backends;

on_both_backends!(doctor_passes_a_healthy_deployment);

/// A port nobody listens on (the listener is closed again at once).
fn free_addr() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

fn line<'a>(report: &'a str, name: &str) -> &'a str {
    report
        .lines()
        .find(|l| {
            l.get(6..)
                .is_some_and(|rest| rest.starts_with(&format!("{name}:")))
        })
        .unwrap_or_else(|| panic!("no {name:?} line in:\n{report}"))
}

async fn doctor_passes_a_healthy_deployment(backend: Backend) {
    let scratch = Scratch::new(backend);
    let dir = scratch.dir.path();
    let (cert, key) = certificate(dir, 400);
    let mut env = scratch.env();
    // Real free ports, so that "free to bind" is checked for real (0 is always free).
    env.retain(|(k, _)| !k.ends_with("_ADDR"));
    env.extend([
        ("STEAD_HTTP_ADDR".to_string(), free_addr()),
        ("STEAD_MQTT_ADDR".to_string(), free_addr()),
        ("STEAD_MQTT_TLS_ADDR".to_string(), free_addr()),
        ("STEAD_MQTT_TLS_CERT".to_string(), cert),
        ("STEAD_MQTT_TLS_KEY".to_string(), key),
        (
            "STEAD_JWT_SECRET".to_string(),
            "a-jwt-secret-of-forty-characters-long-xx".to_string(),
        ),
    ]);
    if backend == Backend::Postgres {
        env.push(("STEAD_REDIS_URL".to_string(), redis_url()));
    }
    let out = run_stead(dir, &["migrate"], &env);
    assert!(out.status.success(), "{}", text(&out));

    let out = run_stead(dir, &["doctor"], &env);
    let report = text(&out);
    assert_eq!(out.status.code(), Some(0), "{report}");
    for l in report.lines().filter(|l| !l.starts_with("stead doctor:")) {
        assert!(
            l.starts_with("ok ") || l.starts_with("warn "),
            "a healthy deployment has no failing check: {l}\n{report}"
        );
    }
    assert!(line(&report, "configuration").starts_with("ok"));
    assert!(line(&report, "database").starts_with("ok"), "{report}");
    assert_eq!(
        line(&report, "migrations"),
        "ok    migrations: 13 applied, up to date"
    );
    assert!(
        line(&report, "blob store").starts_with("ok    blob store: directory"),
        "{report}"
    );
    assert!(line(&report, "http address").contains("is free to bind"));
    assert!(line(&report, "mqtt address").contains("is free to bind"));
    assert!(line(&report, "mqtt tls address").contains("is free to bind"));
    let tls = line(&report, "mqtt tls");
    assert!(tls.starts_with("ok") && tls.contains("expires on"), "{tls}");
    let data_dir = line(&report, "data directory");
    match backend {
        Backend::Sqlite => assert!(data_dir.contains("is writable"), "{data_dir}"),
        // Nothing lives there on PostgreSQL; a missing one is fine.
        Backend::Postgres => assert!(data_dir.contains("it is not needed"), "{data_dir}"),
    }
    assert!(line(&report, "jwt secret").contains("40 characters"));
    // The secret itself is never shown.
    assert!(!report.contains("a-jwt-secret-of-forty"), "{report}");
    let clock = line(&report, "clock");
    assert!(clock.starts_with("ok"), "{clock}");
    if backend == Backend::Postgres {
        assert_eq!(line(&report, "redis"), "ok    redis: reachable");
        assert!(clock.contains("PostgreSQL's clock differs by"), "{clock}");
        assert!(clock.contains("Redis's clock differs by"), "{clock}");
    } else {
        assert!(line(&report, "redis").contains("not configured"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_names_each_problem() {
    let dir = tempfile::tempdir().unwrap();
    // A port already taken, an unreachable Redis, a database that does not exist (with a
    // password in its URL, which must not be shown), a certificate that is not one.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap().to_string();
    let missing = format!("stead_doctor_missing_{}", Uuid::new_v4().simple());
    let url = pg_base_url().replacen("://postgres@", "://postgres:doctor-secret-pw@", 1);
    let (_, key) = certificate(dir.path(), 1);
    std::fs::write(dir.path().join("cert.pem"), "not a certificate\n").unwrap();
    let env = vec![
        (
            "STEAD_DATA_DIR".to_string(),
            dir.path().join("data").display().to_string(),
        ),
        ("STEAD_DATABASE_URL".to_string(), format!("{url}/{missing}")),
        (
            "STEAD_REDIS_URL".to_string(),
            "redis://127.0.0.1:1".to_string(),
        ),
        ("STEAD_HTTP_ADDR".to_string(), taken_addr.clone()),
        ("STEAD_MQTT_ADDR".to_string(), free_addr()),
        ("STEAD_MQTT_TLS_ADDR".to_string(), free_addr()),
        (
            "STEAD_MQTT_TLS_CERT".to_string(),
            dir.path().join("cert.pem").display().to_string(),
        ),
        ("STEAD_MQTT_TLS_KEY".to_string(), key),
        // A bucket behind an address where nothing listens.
        ("STEAD_BLOB_URL".to_string(), "s3://firmware".to_string()),
        ("AWS_ENDPOINT".to_string(), "http://127.0.0.1:1".to_string()),
        ("AWS_ALLOW_HTTP".to_string(), "true".to_string()),
        ("AWS_REGION".to_string(), "us-east-1".to_string()),
        ("AWS_ACCESS_KEY_ID".to_string(), "doctor".to_string()),
        (
            "AWS_SECRET_ACCESS_KEY".to_string(),
            "doctor-secret".to_string(),
        ),
    ];
    let out = run_stead(dir.path(), &["doctor"], &env);
    let report = text(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(!report.contains("doctor-secret-pw"), "{report}");

    let database = line(&report, "database");
    assert!(database.starts_with("fail"), "{report}");
    assert!(
        database.contains("cannot connect to the database (PostgreSQL)"),
        "{database}"
    );
    assert!(
        database.contains(&missing) && database.contains("does not exist"),
        "{database}"
    );
    let redis = line(&report, "redis");
    assert!(
        redis.starts_with("fail") && redis.contains("cannot reach Redis"),
        "{redis}"
    );
    let blobs = line(&report, "blob store");
    assert!(
        blobs.starts_with("fail  blob store: s3://firmware/"),
        "{blobs}"
    );
    assert!(!report.contains("doctor-secret"), "{report}");
    let http = line(&report, "http address");
    assert!(http.starts_with("fail"), "{http}");
    assert!(
        http.contains(&taken_addr) && http.contains("already in use"),
        "{http}"
    );
    assert!(line(&report, "mqtt address").starts_with("ok"));
    let tls = line(&report, "mqtt tls");
    assert!(
        tls.starts_with("fail") && tls.contains("STEAD_MQTT_TLS_CERT"),
        "{tls}"
    );
    assert!(
        report
            .lines()
            .last()
            .is_some_and(|l| l.contains("5 failed")),
        "{report}"
    );
    drop(taken);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_reports_an_invalid_configuration_and_roles() {
    let dir = tempfile::tempdir().unwrap();
    let env = vec![
        (
            "STEAD_DATA_DIR".to_string(),
            dir.path().join("data").display().to_string(),
        ),
        ("STEAD_ACCESS_TOKEN_TTL_SECS".to_string(), "0".to_string()),
        (
            "STEAD_REDIS_URL".to_string(),
            "http://redis.internal".to_string(),
        ),
    ];
    let out = run_stead(dir.path(), &["doctor"], &env);
    let report = text(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        report
            .contains("fail  configuration: STEAD_ACCESS_TOKEN_TTL_SECS must be between 1 and 900"),
        "{report}"
    );
    assert!(
        report.contains("fail  configuration: STEAD_REDIS_URL must start with redis://"),
        "{report}"
    );

    // Valid settings, but a partial set of roles without Redis.
    let env = vec![
        (
            "STEAD_DATA_DIR".to_string(),
            dir.path().join("data").display().to_string(),
        ),
        ("STEAD_HTTP_ADDR".to_string(), free_addr()),
    ];
    let out = run_stead(dir.path(), &["doctor", "--roles", "api"], &env);
    let report = text(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(line(&report, "roles").starts_with("fail"), "{report}");
    assert!(
        line(&report, "roles").contains("STEAD_REDIS_URL"),
        "{report}"
    );
    // An ingress-less node binds no MQTT port: not checked.
    assert!(!report.contains("mqtt address"), "{report}");
    // Nothing was created by the check.
    assert!(line(&report, "database").starts_with("warn"), "{report}");
    assert!(!dir.path().join("data/stead.db").exists());
}
