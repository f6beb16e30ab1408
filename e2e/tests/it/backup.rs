//! Backup and restore, as an operator does them: while a server runs and a device publishes, a
//! backup is taken (`stead backup` on SQLite; on PostgreSQL the `pg_dump` command that
//! `stead backup` prints, run as printed), then a new server starts on storage holding only that
//! backup and every device, credential and data point is looked up.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use stead_api_types::{CreatedDevice, Device, Page};

use crate::harness::{Backend, Options, TestServer, pg_base_url, run_stead, storage_env, text};
use crate::mqtt::mosquitto_pub;
use crate::on_both_backends;

on_both_backends!(a_backup_taken_while_devices_publish_restores_everything);

/// Points each device sends before the backup, all acknowledged (QoS 1 = committed).
const POINTS: u64 = 20;

/// How a device logs in over MQTT.
#[derive(Clone)]
enum Login {
    Token(String),
    Basic {
        client_id: String,
        username: String,
        password: String,
    },
}

impl Login {
    fn args(&self) -> Vec<String> {
        match self {
            Login::Token(token) => vec!["-u".into(), token.clone()],
            Login::Basic {
                client_id,
                username,
                password,
            } => vec![
                "-i".into(),
                client_id.clone(),
                "-u".into(),
                username.clone(),
                "-P".into(),
                password.clone(),
            ],
        }
    }
}

fn publish(port: u16, login: &Login, payload: &str) -> (bool, String) {
    let mut args = login.args();
    args.extend(["-q", "1", "-t", "v1/devices/me/telemetry", "-m", payload].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    mosquitto_pub(port, &args)
}

/// Takes the backup the way the README says for the backend; answers the file.
fn take_backup(server: &TestServer, out_dir: &Path) -> PathBuf {
    let file = out_dir.join("stead-backup");
    let env = storage_env(&server.data_dir, server.database.as_deref());
    let out = run_stead(
        out_dir,
        &["backup", "--output", file.to_str().unwrap()],
        &env,
    );
    let said = text(&out);
    match server.backend {
        Backend::Sqlite => {
            assert!(out.status.success(), "{said}");
            assert!(said.contains("1 tenant, 3 devices"), "{said}");
            assert!(said.contains("to restore it, stop the server"), "{said}");
            // An existing file is not replaced without --force, and is with it.
            let again = run_stead(
                out_dir,
                &["backup", "--output", file.to_str().unwrap()],
                &env,
            );
            assert!(!again.status.success());
            assert!(text(&again).contains("already exists"), "{}", text(&again));
            let forced = run_stead(
                out_dir,
                &["backup", "--output", file.to_str().unwrap(), "--force"],
                &env,
            );
            assert!(forced.status.success(), "{}", text(&forced));
        }
        Backend::Postgres => {
            // Not a backup: the words and the exact command, which is then run as printed.
            assert!(!out.status.success(), "{said}");
            assert!(said.contains("pg_dump"), "{said}");
            let command = said
                .lines()
                .map(str::trim)
                .find(|l| l.starts_with("pg_dump "))
                .unwrap_or_else(|| panic!("no pg_dump command in:\n{said}"));
            let out = Command::new("sh")
                .args(["-c", command])
                .output()
                .expect("sh runs pg_dump");
            assert!(out.status.success(), "{command}: {}", text(&out));
        }
    }
    assert!(file.exists());
    file
}

/// Puts the backup in place as the README says: the file as `<data dir>/stead.db`, or
/// `pg_restore` into an empty database.
fn restore(backend: Backend, backup: &Path, data_dir: &Path, database: Option<&str>) {
    match backend {
        Backend::Sqlite => {
            std::fs::copy(backup, data_dir.join("stead.db")).unwrap();
        }
        Backend::Postgres => {
            let url = format!("{}/{}", pg_base_url(), database.unwrap());
            let out = Command::new("pg_restore")
                .args(["--no-owner", "--exit-on-error", "--dbname", &url])
                .arg(backup)
                .output()
                .expect("pg_restore is installed (PostgreSQL client)");
            assert!(out.status.success(), "pg_restore: {}", text(&out));
        }
    }
}

async fn a_backup_taken_while_devices_publish_restores_everything(backend: Backend) {
    let server = TestServer::start(backend).await;
    let acme = server.tenant("Acme").await;
    let port = server.mqtt_port();
    let mut devices: Vec<(uuid::Uuid, String, Login)> = Vec::new();
    for (name, credentials) in [
        ("token-device", None),
        (
            "basic-device",
            Some(
                serde_json::json!({"type": "mqtt_basic", "username": "basic-user",
                "password": "basic-device-password", "client_id": "basic-client"}),
            ),
        ),
        ("busy-device", None),
    ] {
        let mut body = serde_json::json!({"name": name});
        if let Some(c) = credentials {
            body["credentials"] = c;
        }
        let created: CreatedDevice = acme
            .admin
            .post("/api/v1/devices", &body)
            .await
            .unwrap()
            .ok()
            .unwrap();
        let login = match created.access_token.clone() {
            Some(token) => Login::Token(token),
            None => Login::Basic {
                client_id: "basic-client".into(),
                username: "basic-user".into(),
                password: "basic-device-password".into(),
            },
        };
        devices.push((created.device.id, name.to_string(), login));
    }
    // Recent timestamps: retention on the restored server must not expire them.
    let t0 = chrono::Utc::now().timestamp_millis() - 60_000;
    for (_, name, login) in &devices {
        let lines: String = (0..POINTS)
            .map(|i| format!("{{\"ts\":{},\"values\":{{\"n\":{i}}}}}\n", t0 + i as i64))
            .collect();
        let mut args = login.args();
        args.extend(["-q", "1", "-t", "v1/devices/me/telemetry", "-l"].map(String::from));
        let mut child = Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(&args)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("mosquitto_pub is installed");
        use std::io::Write as _;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(lines.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success(), "{name} published");
    }
    for (id, name, _) in &devices {
        assert_eq!(
            crate::mqtt::count_stored(&acme.admin, *id, "n").await,
            POINTS,
            "{name}"
        );
    }

    // One device keeps publishing, one acknowledged message after another, during the backup.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let busy = devices[2].2.clone();
    let publisher = {
        let (stop, acked) = (stop.clone(), acked.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let n = acked.load(Ordering::Relaxed);
                let (ok, out) = publish(port, &busy, &format!("{{\"live\":{n}}}"));
                assert!(ok, "the busy device's publish failed: {out}");
                acked.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    while acked.load(Ordering::Relaxed) < 3 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let out_dir = tempfile::tempdir().unwrap();
    let acked_before = acked.load(Ordering::Relaxed);
    let backup = take_backup(&server, out_dir.path());
    let acked_after = acked.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    publisher.join().unwrap();
    let tenant_password = "tenant-admin-password";
    let admin_email = format!("admin@{}.example.com", "acme");
    drop(server);

    // A new deployment whose storage holds only the backup.
    let restored = TestServer::start_with(
        backend,
        Options {
            prepare: Some(Arc::new(move |data_dir: &Path, database: Option<&str>| {
                restore(backend, &backup, data_dir, database)
            })),
            ..Options::default()
        },
    )
    .await;
    let admin = restored
        .client()
        .login(&admin_email, tenant_password)
        .await
        .expect("the tenant admin logs in on the restored server")
        .0;
    let list: Page<Device> = admin.get("/api/v1/devices").await.unwrap().ok().unwrap();
    assert_eq!(list.items.len(), devices.len(), "{:?}", list.items);
    for (id, name, login) in &devices {
        assert!(list.items.iter().any(|d| d.id == *id && &d.name == name));
        // Every point acknowledged before the backup.
        assert_eq!(
            crate::mqtt::count_stored(&admin, *id, "n").await,
            POINTS,
            "{name}"
        );
        // Its credentials connect (access token, or MQTT user name, password and client id).
        let (ok, out) = publish(restored.mqtt_port(), login, "{\"restored\":1}");
        assert!(ok, "{name} connects to the restored server: {out}");
        assert_eq!(
            crate::mqtt::count_stored(&admin, *id, "restored").await,
            1,
            "{name}"
        );
    }
    // The busy device: what was acknowledged before the backup began is in it, and nothing
    // more than was acknowledged by the time it ended.
    let live = crate::mqtt::count_stored(&admin, devices[2].0, "live").await;
    assert!(
        (acked_before..=acked_after + 1).contains(&live),
        "{live} live points restored; {acked_before} acknowledged before the backup, {acked_after} after"
    );
    // Wrong MQTT password is still refused: the hash was restored, not a blank.
    let wrong = Login::Basic {
        client_id: "basic-client".into(),
        username: "basic-user".into(),
        password: "not-the-password".into(),
    };
    assert!(!publish(restored.mqtt_port(), &wrong, "{\"x\":1}").0);
}
