//! Upgrades from an earlier release: a database made by an earlier commit's `stead` (the fixture
//! in `e2e/fixtures/upgrade/<commit>/`, see its README) is restored into the test's storage, the
//! current binary starts on it (migrating at start-up), and every tenant, user, device,
//! credential, attribute and data point the earlier release stored is looked up through the
//! API and MQTT. And the other direction: a database migrated by a release newer than the
//! binary makes it refuse to start, saying so.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use serde::Deserialize;
use stead_api_types::{Device, Page, Role, TelemetrySeries, Tenant, TimelineEvent, User};
use stead_e2e::Client;
use uuid::Uuid;

use crate::harness::{
    Backend, Options, Scratch, TestServer, pg_base_url, run_stead, sql, storage_env, text,
    workspace_root,
};
use crate::mqtt::{attribute_values, mosquitto_pub};
use crate::on_both_backends;

on_both_backends!(
    an_earlier_release_upgrades_with_all_its_data,
    a_database_newer_than_the_binary_is_refused
);

/// The earlier release the fixture was made with (`d573a81^`: migrations 1 and 2 only).
const FIXTURE_COMMIT: &str = "7ee8bc0";
/// The migrations that came after it, which the upgrade applies.
const LATER_MIGRATIONS: [&str; 11] = [
    "m20261126_000003_device_management",
    "m20261127_000004_import_heartbeat",
    "m20261202_000005_audit_chain",
    "m20261202_000006_session_origin",
    "m20261202_000007_roles_and_keys",
    "m20261203_000008_people",
    "m20261206_000009_integrations",
    "m20261207_000010_gateways",
    "m20261207_000011_alarms",
    "m20261207_000012_notifications",
    "m20261207_000013_ota",
];

#[derive(Debug, Deserialize)]
pub struct Fixture {
    pub platform_admin: Account,
    pub tenants: Vec<FixtureTenant>,
}

#[derive(Debug, Deserialize)]
pub struct Account {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Deserialize)]
pub struct FixtureTenant {
    pub id: Uuid,
    pub name: String,
    pub admin: Account,
    pub users: Vec<FixtureUser>,
    pub devices: Vec<FixtureDevice>,
}

#[derive(Debug, Deserialize)]
pub struct FixtureUser {
    pub id: Uuid,
    pub email: String,
    pub role: Role,
    pub name: Option<String>,
    pub password: String,
}

#[derive(Debug, Deserialize)]
pub struct FixtureDevice {
    pub id: Uuid,
    pub name: String,
    pub label: Option<String>,
    #[serde(rename = "type")]
    pub device_type: Option<String>,
    pub metadata: Option<serde_json::Value>,
    pub access_token: String,
    pub revoked_token: Option<String>,
    pub telemetry: Vec<FixturePoint>,
    pub client_attributes: Option<serde_json::Value>,
    /// How its points reached the earlier release: `mqtt` or `http`.
    pub via: String,
}

#[derive(Debug, Deserialize)]
pub struct FixturePoint {
    pub ts: i64,
    pub values: serde_json::Map<String, serde_json::Value>,
}

fn fixture_dir() -> PathBuf {
    workspace_root()
        .join("e2e/fixtures/upgrade")
        .join(FIXTURE_COMMIT)
}

fn fixture_name(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }
}

pub fn load_fixture(backend: Backend) -> Fixture {
    let path = fixture_dir().join(format!("{}.json", fixture_name(backend)));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("the upgrade fixture {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// Puts the earlier release's database in place: the SQLite file as `<data dir>/stead.db`, or
/// the dump loaded into the (empty) PostgreSQL database.
fn restore_fixture(backend: Backend, data_dir: &Path, database: Option<&str>) {
    match backend {
        Backend::Sqlite => {
            std::fs::copy(fixture_dir().join("sqlite.db"), data_dir.join("stead.db")).unwrap();
        }
        Backend::Postgres => {
            let database = database.expect("a PostgreSQL test has its database");
            let out = Command::new("psql")
                .args([
                    format!("{}/{database}", pg_base_url()).as_str(),
                    "-q",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-f",
                ])
                .arg(fixture_dir().join("postgres.sql"))
                .output()
                .expect("psql is installed");
            assert!(
                out.status.success(),
                "restoring postgres.sql: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// Numbers compare by value (`20` and `20.0` are one reading); everything else exactly.
fn same_value(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

async fn login(server: &TestServer, account: &Account) -> Client {
    server
        .client()
        .login(&account.email, &account.password)
        .await
        .unwrap_or_else(|e| panic!("{} logs in after the upgrade: {e}", account.email))
        .0
}

async fn an_earlier_release_upgrades_with_all_its_data(backend: Backend) {
    let fixture = load_fixture(backend);
    let started_ms = chrono::Utc::now().timestamp_millis();
    let server = TestServer::start_with(
        backend,
        Options {
            prepare: Some(Arc::new(move |data_dir: &Path, database: Option<&str>| {
                restore_fixture(backend, data_dir, database);
                // Before the upgrade, the doctor names the migrations the upgrade will apply.
                let out = run_stead(data_dir, &["doctor"], &storage_env(data_dir, database));
                let report = text(&out);
                let line = report
                    .lines()
                    .find(|l| l.contains("migrations:"))
                    .unwrap_or_else(|| panic!("no migrations line:\n{report}"));
                assert!(line.starts_with("warn"), "{report}");
                let pending = format!("2 applied, {} pending", LATER_MIGRATIONS.len());
                assert!(line.contains(&pending), "{report}");
                for m in LATER_MIGRATIONS {
                    assert!(line.contains(m), "{report}");
                }
            })),
            ..Options::default()
        }
        // The fixture's points are from 2026-11-26: keep them whenever this test runs.
        .env("STEAD_TELEMETRY_RETENTION_DAYS", "36500"),
    )
    .await;

    // Migrated at start-up: the doctor now finds the schema up to date.
    let out = run_stead(
        &server.data_dir,
        &["doctor"],
        &storage_env(&server.data_dir, server.database.as_deref()),
    );
    assert!(
        text(&out).contains("ok    migrations: 13 applied, up to date"),
        "{}",
        text(&out)
    );

    // The platform admin and every tenant.
    let platform = login(&server, &fixture.platform_admin).await;
    let tenants: Page<Tenant> = platform.get("/api/v1/tenants").await.unwrap().ok().unwrap();
    for t in &fixture.tenants {
        let found = tenants
            .items
            .iter()
            .find(|x| x.id == t.id)
            .unwrap_or_else(|| panic!("tenant {} is gone after the upgrade", t.name));
        assert_eq!(found.name, t.name);
    }

    let mut mqtt_checked = 0;
    for t in &fixture.tenants {
        // The tenant admin, every user (with role and name) and their passwords.
        let admin = login(&server, &t.admin).await;
        let users: Page<User> = admin
            .get("/api/v1/users?per_page=100")
            .await
            .unwrap()
            .ok()
            .unwrap();
        assert!(
            users
                .items
                .iter()
                .any(|u| u.email == t.admin.email && u.role == Role::TenantAdmin)
        );
        for u in &t.users {
            let found = users
                .items
                .iter()
                .find(|x| x.id == u.id)
                .unwrap_or_else(|| panic!("user {} is gone after the upgrade", u.email));
            assert_eq!(found.email, u.email);
            assert_eq!(found.role, u.role);
            assert!(found.active);
            if let Some(name) = &u.name {
                assert_eq!(&found.name, name);
            }
            login(
                &server,
                &Account {
                    email: u.email.clone(),
                    password: u.password.clone(),
                },
            )
            .await;
        }

        // Every device, with what it was created with, in the default profile migration 3
        // created for the tenant.
        let devices: Page<Device> = admin
            .get("/api/v1/devices?per_page=100")
            .await
            .unwrap()
            .ok()
            .unwrap();
        assert_eq!(devices.items.len(), t.devices.len(), "{:?}", devices.items);
        let profiles: serde_json::Value =
            admin.get("/api/v1/profiles").await.unwrap().ok().unwrap();
        let default_profile = profiles
            .as_array()
            .or_else(|| profiles["items"].as_array())
            .and_then(|ps| ps.iter().find(|p| p["is_default"] == true))
            .map(|p| p["id"].as_str().unwrap().parse::<Uuid>().unwrap())
            .unwrap_or_else(|| panic!("no default profile after the upgrade: {profiles}"));
        for d in &t.devices {
            let found = devices
                .items
                .iter()
                .find(|x| x.id == d.id)
                .unwrap_or_else(|| panic!("device {} is gone after the upgrade", d.name));
            assert_eq!(found.name, d.name);
            assert_eq!(found.label, d.label);
            assert_eq!(found.device_type, d.device_type);
            if let Some(metadata) = &d.metadata {
                assert_eq!(&found.metadata, metadata);
            }
            assert_eq!(found.profile_id, default_profile, "{}", d.name);

            // Every data point, at its time, with its values.
            let series: TelemetrySeries = admin
                .get(&format!(
                    "/api/v1/devices/{}/telemetry?keys=temperature,seq&from=0&to=99999999999999&limit=1000&order=asc",
                    d.id
                ))
                .await
                .unwrap()
                .ok()
                .unwrap();
            for key in ["temperature", "seq"] {
                let stored = series.series.get(key).cloned().unwrap_or_default();
                assert_eq!(
                    stored.len(),
                    d.telemetry.len(),
                    "{} {key}: {stored:?}",
                    d.name
                );
                for (point, want) in stored.iter().zip(&d.telemetry) {
                    assert_eq!(point.ts, want.ts, "{} {key}", d.name);
                    assert!(
                        same_value(&point.value, &want.values[key]),
                        "{} {key} at {}: {} stored, {} sent",
                        d.name,
                        want.ts,
                        point.value,
                        want.values[key]
                    );
                }
            }

            // Client attributes the device reported to the earlier release.
            if let Some(attributes) = &d.client_attributes {
                assert_eq!(
                    &attribute_values(&admin, d.id, "client").await,
                    attributes,
                    "{}",
                    d.name
                );
            }

            // Its timeline from before the upgrade is still readable (devices on MQTT connected).
            let timeline: Vec<TimelineEvent> = admin
                .get(&format!("/api/v1/devices/{}/timeline?limit=200", d.id))
                .await
                .unwrap()
                .ok()
                .unwrap();
            if d.via == "mqtt" {
                assert!(
                    timeline
                        .iter()
                        .any(|e| e.kind == "connected" && e.ts < started_ms),
                    "{}: no connect from before the upgrade: {timeline:?}",
                    d.name
                );
            }

            // Its access token still connects and publishes; the data is stored.
            let point = format!(r#"{{"ts":{started_ms},"values":{{"after_upgrade":1}}}}"#);
            let (ok, output) = mosquitto_pub(
                server.mqtt_port(),
                &[
                    "-q",
                    "1",
                    "-u",
                    &d.access_token,
                    "-t",
                    "v1/devices/me/telemetry",
                    "-m",
                    &point,
                ],
            );
            assert!(ok, "{}'s token after the upgrade: {output}", d.name);
            let after: TelemetrySeries = admin
                .get(&format!(
                    "/api/v1/devices/{}/telemetry?keys=after_upgrade&from=0&to=99999999999999",
                    d.id
                ))
                .await
                .unwrap()
                .ok()
                .unwrap();
            assert_eq!(
                after.series.get("after_upgrade").map(Vec::len),
                Some(1),
                "{}: {after:?}",
                d.name
            );
            mqtt_checked += 1;

            // A token rotated before the upgrade stays refused.
            if let Some(revoked) = &d.revoked_token {
                let (ok, output) = mosquitto_pub(
                    server.mqtt_port(),
                    &[
                        "-q",
                        "1",
                        "-u",
                        revoked,
                        "-t",
                        "v1/devices/me/telemetry",
                        "-m",
                        "{\"x\":1}",
                    ],
                );
                assert!(!ok, "{}'s rotated token connected: {output}", d.name);
            }
        }
    }
    assert!(mqtt_checked >= 4, "the fixture has devices");

    // Tenancy survived: one tenant's admin does not see another's devices.
    let (acme, globex) = (&fixture.tenants[0], &fixture.tenants[1]);
    let globex_admin = login(&server, &globex.admin).await;
    let reply = globex_admin
        .get(&format!("/api/v1/devices/{}", acme.devices[0].id))
        .await
        .unwrap();
    assert_eq!(reply.status, 404);
}

async fn a_database_newer_than_the_binary_is_refused(backend: Backend) {
    let scratch = Scratch::new(backend);
    let (dir, data_dir, database) = (scratch.dir.path(), &scratch.data_dir, &scratch.database);
    let mut env = scratch.env();
    env.push((
        "STEAD_BOOTSTRAP_ADMIN_PASSWORD".into(),
        "admin-password-123".into(),
    ));
    let out = run_stead(dir, &["migrate"], &env);
    assert!(out.status.success(), "{}", text(&out));

    // What a newer release would have recorded after applying a migration of its own.
    let future = "m20990101_000001_from_a_newer_release";
    let insert = format!(
        "INSERT INTO seaql_migrations (version, applied_at) VALUES ('{future}', 4102444800)"
    );
    sql(database.as_deref(), data_dir, &insert);

    // `serve` stops before listening, naming the unknown migration and what to do.
    let out = run_stead(dir, &["serve"], &env);
    let said = text(&out);
    assert!(
        !out.status.success(),
        "stead served a newer schema:\n{said}"
    );
    assert!(!said.contains("http listening"), "{said}");
    for words in [
        "the database was migrated by a newer Stead",
        future,
        "refusing to run against an unknown schema",
        "restore a backup made before the upgrade",
    ] {
        assert!(said.contains(words), "{words:?} missing from:\n{said}");
    }
    // So does `stead migrate`, and the doctor fails on it.
    let out = run_stead(dir, &["migrate"], &env);
    assert!(!out.status.success());
    assert!(text(&out).contains(future), "{}", text(&out));
    let out = run_stead(dir, &["doctor"], &env);
    let report = text(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        report
            .lines()
            .any(|l| l.starts_with("fail  migrations:") && l.contains(future)),
        "{report}"
    );
}
