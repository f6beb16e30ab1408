//! The embedded default and the command line: the real binary in an empty directory.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use stead_api_types::{Me, Role};
use stead_e2e::Client;

use crate::harness::stead_bin;

fn bare_command(dir: &std::path::Path) -> Command {
    let mut c = Command::new(stead_bin());
    c.current_dir(dir).env_clear();
    if let Ok(path) = std::env::var("PATH") {
        c.env("PATH", path);
    }
    c
}

/// Starts `stead serve` with no configuration but ephemeral ports; answers the base URL, the
/// printed credentials and the process.
fn serve_bare(dir: &std::path::Path) -> (String, String, String, std::process::Child) {
    let mut child = bare_command(dir)
        .arg("serve")
        // Tests must not take the machine's real ports; everything else is the default.
        .env("STEAD_HTTP_ADDR", "127.0.0.1:0")
        .env("STEAD_MQTT_ADDR", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (mut email, mut password) = (None, None);
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let trimmed = line.trim();
            if let Some(v) = trimmed.strip_prefix("e-mail:") {
                email = Some(v.trim().to_owned());
            }
            if let Some(v) = trimmed.strip_prefix("password:") {
                password = Some(v.trim().to_owned());
            }
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                && v["message"] == "http listening"
            {
                let _ = tx.send((
                    v["addr"].as_str().unwrap().to_owned(),
                    email.clone(),
                    password.clone(),
                ));
            }
        }
    });
    let (addr, email, password) = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("stead listens");
    (
        format!("http://{addr}"),
        email.expect("first run prints the admin e-mail"),
        password.expect("first run prints the admin password"),
        child,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_directory_no_configuration_reaches_ready_and_prints_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let (base, email, password, mut child) = serve_bare(dir.path());
    let client = Client::new(&base);
    let started = Instant::now();
    loop {
        let r = client.get("/readyz").await.unwrap();
        if r.status == 200 {
            assert_eq!(r.body["checks"]["database"], "ok");
            assert!(
                r.body["checks"].get("redis").is_none(),
                "embedded mode has no Redis"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never ready: {:?}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(email, "admin@stead.local");
    let (admin, _) = client.login(&email, &password).await.unwrap();
    let me: Me = admin.get("/api/v1/me").await.unwrap().ok().unwrap();
    assert_eq!(me.role, Role::PlatformAdmin);
    assert!(
        dir.path().join("data/stead.db").exists(),
        "SQLite under ./data/"
    );
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert!(status.success(), "clean exit on SIGTERM: {status}");

    // A restart keeps the data and prints no new password.
    let mut again = bare_command(dir.path())
        .arg("serve")
        .env("STEAD_HTTP_ADDR", "127.0.0.1:0")
        .env("STEAD_MQTT_ADDR", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = again.stdout.take().unwrap();
    let mut seen = Vec::new();
    let mut addr = String::new();
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
            && v["message"] == "http listening"
        {
            addr = v["addr"].as_str().unwrap().to_owned();
            break;
        }
        seen.push(line);
    }
    assert!(!seen.iter().any(|l| l.contains("password:")), "{seen:?}");
    Client::new(format!("http://{addr}"))
        .login(&email, &password)
        .await
        .unwrap();
    let _ = again.kill();
    let _ = again.wait();
}

#[test]
fn invalid_configuration_names_every_bad_setting() {
    let dir = tempfile::tempdir().unwrap();
    let out = bare_command(dir.path())
        .arg("serve")
        .env("STEAD_HTTP_ADDR", "nowhere")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("STEAD_HTTP_ADDR"), "{err}");

    let out = bare_command(dir.path())
        .arg("serve")
        .env("STEAD_DATABASE_URL", "mysql://user:hunter2@db/x")
        .env("STEAD_ACCESS_TOKEN_TTL_SECS", "3600")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("STEAD_DATABASE_URL") && err.contains("STEAD_ACCESS_TOKEN_TTL_SECS"),
        "{err}"
    );
    assert!(
        !err.contains("hunter2"),
        "a database password is never printed: {err}"
    );

    let out = bare_command(dir.path())
        .args(["serve", "--roles", "api"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("STEAD_REDIS_URL"));

    let out = bare_command(dir.path())
        .arg("serve")
        .env("STEAD_HTTP_ADDR", "127.0.0.1:0")
        .env("STEAD_MQTT_ADDR", "127.0.0.1:0")
        .env("STEAD_REDIS_URL", "redis://127.0.0.1:1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot reach Redis"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_commands_create_tenants_and_reset_passwords() {
    let dir = tempfile::tempdir().unwrap();
    let out = bare_command(dir.path()).arg("migrate").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("data/stead.db").exists());

    let out = bare_command(dir.path())
        .args([
            "admin",
            "create-tenant",
            "--name",
            "Acme",
            "--admin-email",
            "Boss@Acme.io",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let generated = stdout
        .lines()
        .find_map(|l| l.strip_prefix("password (shown only now): "))
        .expect("generated password printed")
        .to_owned();

    let out = bare_command(dir.path())
        .args([
            "admin",
            "reset-password",
            "--email",
            "boss@acme.io",
            "--password",
            "a-reset-password",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = bare_command(dir.path())
        .args(["admin", "reset-password", "--email", "ghost@acme.io"])
        .output()
        .unwrap();
    assert!(!out.status.success());

    let (base, _, _, mut child) = serve_bare(dir.path());
    let client = Client::new(&base);
    assert_eq!(
        client
            .post(
                "/api/v1/auth/login",
                &serde_json::json!({"email": "boss@acme.io", "password": generated})
            )
            .await
            .unwrap()
            .status,
        401,
        "the reset replaced the generated password"
    );
    let (boss, _) = client
        .login("boss@acme.io", "a-reset-password")
        .await
        .unwrap();
    let me: Me = boss.get("/api/v1/me").await.unwrap().ok().unwrap();
    assert_eq!(
        (me.role, me.tenant.unwrap().name.as_str()),
        (Role::TenantAdmin, "Acme")
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_layer_file_under_environment() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("stead.toml"),
        "http_addr = \"127.0.0.1:1\"\nmqtt_addr = \"127.0.0.1:0\"\ndata_dir = \"from-file\"\nbootstrap_admin_email = \"file@stead.local\"\n",
    )
    .unwrap();
    // The environment overrides the file's HTTP address; the file's other settings stay.
    let (base, email, _, mut child) = serve_bare(dir.path());
    assert_eq!(email, "file@stead.local");
    assert!(dir.path().join("from-file/stead.db").exists());
    assert_eq!(
        Client::new(&base).get("/healthz").await.unwrap().status,
        200
    );
    let _ = child.kill();
    let _ = child.wait();

    std::fs::write(
        dir.path().join("stead.toml"),
        "http_adress = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let out = bare_command(dir.path()).arg("serve").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("http_adress"),
        "a misspelt setting is named"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_are_exported_over_otlp_when_configured() {
    use std::io::Read as _;
    // A stand-in collector: it records whether an OTLP/gRPC client opens an HTTP/2 stream to it.
    let collector = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", collector.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        if let Ok((mut socket, _)) = collector.accept() {
            let mut buf = vec![0u8; 4096];
            let n = socket.read(&mut buf).unwrap_or(0);
            let _ = tx.send(buf[..n].to_vec());
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let mut child = bare_command(dir.path())
        .arg("serve")
        .env("STEAD_HTTP_ADDR", "127.0.0.1:0")
        .env("STEAD_MQTT_ADDR", "127.0.0.1:0")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut addr = String::new();
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
            && v["message"] == "http listening"
        {
            addr = v["addr"].as_str().unwrap().to_owned();
            break;
        }
    }
    let client = Client::new(format!("http://{addr}"));
    for _ in 0..3 {
        assert_eq!(client.get("/healthz").await.unwrap().status, 200);
    }
    // Shutdown flushes the batch of spans.
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let first_bytes = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the exporter connects to the collector");
    assert!(
        first_bytes.starts_with(b"PRI * HTTP/2.0"),
        "an HTTP/2 (gRPC) client preface"
    );
    let _ = child.wait();
}
