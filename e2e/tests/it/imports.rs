//! Bulk import from CSV (dry run, background job, credentials once, idempotency) and bulk actions,
//! through the real API.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use stead_api_types::{
    Attribute, AttributeScope, BulkResult, CreatedDevice, Device, DeviceGroup, ImportJob,
    ImportOutcome, ImportReport, ImportStatus, Page, Role, SavedProfile,
};
use stead_e2e::{Client, Reply};

use crate::harness::{Backend, Options, TestServer, psql};
use crate::mqtt::mosquitto_pub;
use crate::on_both_backends;

on_both_backends!(
    dry_run_reports_rows_and_changes_nothing,
    import_creates_once_and_again_changes_nothing,
    jobs_and_bulk_actions_stay_in_their_tenant,
    bulk_actions_on_devices_and_groups,
);

async fn import(c: &Client, csv: impl Into<Vec<u8>>, dry_run: bool) -> Reply {
    let path = if dry_run {
        "/api/v1/devices/import?dry_run=true"
    } else {
        "/api/v1/devices/import"
    };
    c.raw(Method::POST, path, "text/csv", csv.into())
        .await
        .unwrap()
}

/// Starts an import and waits for it to end.
async fn run_import(c: &Client, csv: &str, patience: Duration) -> ImportJob {
    let r = import(c, csv, false).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let job: ImportJob = r.ok().unwrap();
    let started = Instant::now();
    loop {
        let now: ImportJob = c
            .get(&format!("/api/v1/imports/{}", job.id))
            .await
            .unwrap()
            .ok()
            .unwrap();
        if now.status != ImportStatus::Running {
            return now;
        }
        assert!(
            started.elapsed() < patience,
            "the import did not end in time: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn outcomes(report: &ImportReport) -> Vec<(u64, ImportOutcome, Option<&str>)> {
    report
        .rows
        .iter()
        .map(|r| (r.line, r.outcome, r.column.as_deref()))
        .collect()
}

async fn devices_in(c: &Client, query: &str) -> Page<Device> {
    c.get(&format!("/api/v1/devices?per_page=200&{query}"))
        .await
        .unwrap()
        .ok()
        .unwrap()
}

async fn device_named(c: &Client, name: &str) -> Device {
    let page = devices_in(c, &format!("search={name}")).await;
    page.items.into_iter().find(|d| d.name == name).unwrap()
}

async fn groups(c: &Client) -> Vec<DeviceGroup> {
    c.get("/api/v1/groups").await.unwrap().ok().unwrap()
}

async fn attributes(c: &Client, id: uuid::Uuid, scope: &str) -> Vec<Attribute> {
    c.get(&format!("/api/v1/devices/{id}/attributes?scope={scope}"))
        .await
        .unwrap()
        .ok()
        .unwrap()
}

/// Rows of the audit log (PostgreSQL only: the test reads the database).
fn audit_rows(server: &TestServer) -> Option<String> {
    server
        .database
        .as_ref()
        .map(|db| psql(db, "SELECT count(*) FROM audit_log"))
}

async fn dry_run_reports_rows_and_changes_nothing(backend: Backend) {
    let server = TestServer::start(backend).await;
    let acme = server.tenant("Acme").await;
    let c = &acme.admin;
    let audit_before = audit_rows(&server);

    let mut file = b"name,label,type,profile,groups,access_token,shared:fw,server:cfg\n\
        pump-1,Pump,pump,,north;south,,1.2,\"{\"\"a\"\":1}\"\n\
        pump-2,,,nosuch,,,,\n\
        pump-1,,,,,,,\n\
        short,row\n\
        bad-token,,,,,tooshort,,\n"
        .to_vec();
    file.extend_from_slice(b"\xff\xfe,,,,,,,\n\nlast,,,,south,,,\n");
    let r = import(c, file, true).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let report: ImportReport = r.ok().unwrap();
    assert_eq!(
        outcomes(&report),
        vec![
            (2, ImportOutcome::Create, None),
            (3, ImportOutcome::Error, Some("profile")),
            (4, ImportOutcome::Error, Some("name")),
            (5, ImportOutcome::Error, None),
            (6, ImportOutcome::Error, Some("access_token")),
            (7, ImportOutcome::Error, Some("name")),
            (9, ImportOutcome::Create, None),
        ],
        "{report:#?}"
    );
    assert!(report.rows[2].reason.as_deref().unwrap().contains("line 2"));
    assert!(
        report.rows[3]
            .reason
            .as_deref()
            .unwrap()
            .contains("2 fields")
    );
    let counts = report.counts;
    assert_eq!(
        (counts.total, counts.created, counts.failed),
        (7, 2, 5),
        "{counts:?}"
    );

    // Problems with the header stop the whole file, naming the column.
    let r = import(c, "name,colour\nx,red\n", true).await;
    assert_eq!(
        (r.status.as_u16(), r.code(), r.error().field.as_deref()),
        (400, "invalid_csv".into(), Some("colour")),
        "{}",
        r.body
    );
    assert!(r.error().detail.contains("line 1"));
    let r = c
        .raw(
            Method::POST,
            "/api/v1/devices/import?dry_run=true",
            "application/json",
            "{}",
        )
        .await
        .unwrap();
    assert_eq!(r.status, 415);
    // Without a content type, and larger than the general 1 MiB body limit: still a file.
    let mut big = String::from("name,shared:blob\n");
    let blob = "x".repeat(1000);
    for i in 0..1500 {
        big.push_str(&format!("big-{i},{blob}\n"));
    }
    let r = c
        .raw(
            Method::POST,
            "/api/v1/devices/import?dry_run=true",
            "application/octet-stream",
            big,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.ok::<ImportReport>().unwrap().counts.created, 1500);

    // Nothing changed: no devices, groups, attributes, jobs or audit rows.
    assert_eq!(devices_in(c, "").await.total, 0);
    assert!(groups(c).await.is_empty());
    let jobs: Vec<ImportJob> = c.get("/api/v1/imports").await.unwrap().ok().unwrap();
    assert!(jobs.is_empty());
    assert_eq!(audit_rows(&server), audit_before);
}

async fn import_creates_once_and_again_changes_nothing(backend: Backend) {
    let server = TestServer::start(backend).await;
    let acme = server.tenant("Acme").await;
    let c = &acme.admin;
    let sensors: SavedProfile = c
        .post("/api/v1/profiles", &json!({"name": "sensors"}))
        .await
        .unwrap()
        .ok()
        .unwrap();
    let north: DeviceGroup = c
        .post("/api/v1/groups", &json!({"name": "north"}))
        .await
        .unwrap()
        .ok()
        .unwrap();
    let file = "name,label,type,profile,groups,access_token,shared:fw,shared:mode,server:cfg\n\
        t-1,Therm 1,thermo,sensors,north;south,,1.2,eco,\"{\"\"a\"\":1}\"\n\
        t-2,Therm 2,thermo,,south,,1.3,,\n\
        t-3,,,,,explicit-token-0123456789,,,\n";

    let job = run_import(c, file, Duration::from_secs(60)).await;
    assert_eq!(job.status, ImportStatus::Finished, "{job:?}");
    let n = job.counts;
    assert_eq!(
        (
            n.total,
            n.processed,
            n.created,
            n.updated,
            n.unchanged,
            n.failed
        ),
        (3, 3, 3, 0, 0, 0),
        "{job:?}"
    );
    assert!(job.credentials_available && job.errors.is_empty());
    assert!(job.finished_at.is_some());

    let t1 = device_named(c, "t-1").await;
    let t2 = device_named(c, "t-2").await;
    assert_eq!(
        (t1.label.as_deref(), t1.device_type.as_deref()),
        (Some("Therm 1"), Some("thermo"))
    );
    assert_eq!(t1.profile_id, sensors.profile.id);
    assert_ne!(t2.profile_id, sensors.profile.id, "the default profile");
    let in_north = devices_in(c, &format!("group={}", north.id)).await;
    assert_eq!(
        in_north.items.iter().map(|d| &d.name).collect::<Vec<_>>(),
        ["t-1"]
    );
    let south = groups(c)
        .await
        .into_iter()
        .find(|g| g.name == "south")
        .expect("a missing group is created");
    assert_eq!(devices_in(c, &format!("group={}", south.id)).await.total, 2);
    let shared = attributes(c, t1.id, "shared").await;
    let values: Vec<(&str, &serde_json::Value, AttributeScope)> = shared
        .iter()
        .map(|a| (a.key.as_str(), &a.value, a.scope))
        .collect();
    assert_eq!(
        values,
        [
            ("fw", &json!(1.2), AttributeScope::Shared),
            ("mode", &json!("eco"), AttributeScope::Shared)
        ]
    );
    let server_attrs = attributes(c, t1.id, "server").await;
    assert_eq!(server_attrs[0].value, json!({"a": 1}));
    assert!(attributes(c, t2.id, "server").await.is_empty());

    // The generated tokens, once.
    let path = format!("/api/v1/imports/{}/credentials.csv", job.id);
    let r = c.get(&path).await.unwrap();
    assert_eq!(r.status, 200);
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = r.body.as_str().unwrap().to_owned();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert_eq!(lines[0], "name,access_token");
    let token_of = |name: &str| {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(&format!("{name},")))
            .unwrap()
            .to_owned()
    };
    let t1_token = token_of("t-1");
    assert_eq!(t1_token.len(), 43);
    let again = c.get(&path).await.unwrap();
    assert_eq!(
        (again.status.as_u16(), again.code()),
        (410, "credentials_gone".into())
    );
    let job: ImportJob = c
        .get(&format!("/api/v1/imports/{}", job.id))
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert!(!job.credentials_available);
    let publish = |token: &str| {
        mosquitto_pub(
            server.mqtt_port(),
            &[
                "-u",
                token,
                "-t",
                "v1/devices/me/telemetry",
                "-m",
                r#"{"a":1}"#,
                "-q",
                "1",
            ],
        )
    };
    let (ok, out) = publish(&t1_token);
    assert!(ok, "a generated token connects: {out}");
    let (ok, out) = publish("explicit-token-0123456789");
    assert!(ok, "an explicit token connects: {out}");

    // The same file again: every row unchanged, nothing written, no new token.
    let report: ImportReport = import(c, file, true).await.ok().unwrap();
    assert!(
        report
            .rows
            .iter()
            .all(|r| r.outcome == ImportOutcome::Unchanged),
        "{report:?}"
    );
    let before = attributes(c, t1.id, "shared").await;
    let job = run_import(c, file, Duration::from_secs(60)).await;
    assert_eq!(
        (job.status, job.counts.unchanged, job.counts.created),
        (ImportStatus::Finished, 3, 0),
        "{job:?}"
    );
    assert!(!job.credentials_available);
    let r = c
        .get(&format!("/api/v1/imports/{}/credentials.csv", job.id))
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (404, "no_credentials".into())
    );
    assert_eq!(attributes(c, t1.id, "shared").await, before);
    assert_eq!(device_named(c, "t-1").await.updated_at, t1.updated_at);
    let (ok, out) = publish(&t1_token);
    assert!(ok, "the token still works: {out}");

    // One value and the label differ: only those change.
    let changed = file
        .replace("Therm 1,", "Therm One,")
        .replace("1.2,eco", "1.5,eco");
    let report: ImportReport = import(c, changed.as_str(), true).await.ok().unwrap();
    assert_eq!(
        report.rows.iter().map(|r| r.outcome).collect::<Vec<_>>(),
        [
            ImportOutcome::Update,
            ImportOutcome::Unchanged,
            ImportOutcome::Unchanged
        ]
    );
    let job = run_import(c, &changed, Duration::from_secs(60)).await;
    assert_eq!((job.counts.updated, job.counts.unchanged), (1, 2));
    assert_eq!(
        device_named(c, "t-1").await.label.as_deref(),
        Some("Therm One")
    );
    let after = attributes(c, t1.id, "shared").await;
    let versions: Vec<(&str, u64)> = after.iter().map(|a| (a.key.as_str(), a.version)).collect();
    assert_eq!(versions, [("fw", 2), ("mode", 1)]);
    assert_eq!(after[0].value, json!(1.5));

    let jobs: Vec<ImportJob> = c.get("/api/v1/imports").await.unwrap().ok().unwrap();
    assert_eq!(jobs.len(), 3);
    assert_eq!(jobs[0].id, job.id, "newest first");

    // An explicit token that differs replaces the old one, which stops working.
    let rotated = changed.replace("explicit-token-0123456789", "explicit-token-9876543210");
    let job = run_import(c, &rotated, Duration::from_secs(60)).await;
    assert_eq!((job.counts.updated, job.counts.unchanged), (1, 2));
    let (ok, _) = publish("explicit-token-0123456789");
    assert!(!ok, "the replaced token is refused");
    let (ok, out) = publish("explicit-token-9876543210");
    assert!(ok, "the new token connects: {out}");

    // MQTT basic credentials: compared by user name and client id (the password is stored hashed).
    let mqtt = "name,mqtt_username,mqtt_password,mqtt_client_id\nm-1,m-user,m-password-1,\n";
    let job = run_import(c, mqtt, Duration::from_secs(60)).await;
    assert_eq!(job.counts.created, 1, "{job:?}");
    assert!(
        !job.credentials_available,
        "explicit credentials are not offered"
    );
    for (file, want) in [
        (
            mqtt.replace("m-password-1", "another-password"),
            ImportOutcome::Unchanged,
        ),
        (mqtt.replace("m-user", "m-user-2"), ImportOutcome::Update),
        (
            mqtt.replace("m-password-1,", ",client-1"),
            ImportOutcome::Error,
        ),
    ] {
        let report: ImportReport = import(c, file.as_str(), true).await.ok().unwrap();
        assert_eq!(report.rows[0].outcome, want, "{file}: {report:?}");
    }
}

async fn jobs_and_bulk_actions_stay_in_their_tenant(backend: Backend) {
    let server = TestServer::start(backend).await;
    let acme = server.tenant("Acme").await;
    let globex = server.tenant("Globex").await;
    let job = run_import(
        &acme.admin,
        "name,groups\na-1,ag\n",
        Duration::from_secs(60),
    )
    .await;
    let d = device_named(&acme.admin, "a-1").await;
    let ag = groups(&acme.admin).await.remove(0);
    let g = &globex.admin;

    for path in [
        format!("/api/v1/imports/{}", job.id),
        format!("/api/v1/imports/{}/credentials.csv", job.id),
    ] {
        let r = g.get(&path).await.unwrap();
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (404, "not_found".into()),
            "{path}"
        );
    }
    let jobs: Vec<ImportJob> = g.get("/api/v1/imports").await.unwrap().ok().unwrap();
    assert!(jobs.is_empty());

    let r = g
        .post(
            "/api/v1/devices/bulk",
            &json!({"device_ids": [d.id], "action": {"type": "delete"}}),
        )
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (400, "unknown_device".into())
    );
    assert!(r.error().detail.contains(&d.id.to_string()));
    let r = g
        .post(
            "/api/v1/devices/bulk",
            &json!({"group_id": ag.id, "action": {"type": "delete"}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    let own: CreatedDevice = g
        .post("/api/v1/devices", &json!({"name": "g-1"}))
        .await
        .unwrap()
        .ok()
        .unwrap();
    let r = g
        .post(
            "/api/v1/devices/bulk",
            &json!({"device_ids": [own.device.id], "action": {"type": "add_to_group", "group_id": ag.id}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    let r = g
        .post(
            "/api/v1/devices/bulk",
            &json!({"device_ids": [own.device.id], "group_id": ag.id, "action": {"type": "enable"}}),
        )
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (400, "invalid_target".into())
    );
    // Acme's device is untouched.
    assert_eq!(device_named(&acme.admin, "a-1").await.id, d.id);

    // A viewer reads jobs, but neither imports nor acts.
    let viewer = server.user(&acme, Role::Viewer).await;
    assert_eq!(viewer.get("/api/v1/imports").await.unwrap().status, 200);
    let r = import(&viewer, "name\nv-1\n", true).await;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (403, "permission_denied".into())
    );
    let r = viewer
        .post(
            "/api/v1/devices/bulk",
            &json!({"device_ids": [d.id], "action": {"type": "enable"}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 403);
}

async fn bulk_actions_on_devices_and_groups(backend: Backend) {
    let server = TestServer::start(backend).await;
    let acme = server.tenant("Acme").await;
    let c = &acme.admin;
    let (mut ids, mut tokens) = (Vec::new(), Vec::new());
    for name in ["a", "b", "c"] {
        let d: CreatedDevice = c
            .post("/api/v1/devices", &json!({"name": name}))
            .await
            .unwrap()
            .ok()
            .unwrap();
        ids.push(d.device.id);
        tokens.push(d.access_token.unwrap());
    }
    let connects = |token: &str| {
        mosquitto_pub(
            server.mqtt_port(),
            &[
                "-u",
                token,
                "-t",
                "v1/devices/me/telemetry",
                "-m",
                "{}",
                "-q",
                "1",
            ],
        )
        .0
    };
    let g: DeviceGroup = c
        .post("/api/v1/groups", &json!({"name": "g"}))
        .await
        .unwrap()
        .ok()
        .unwrap();
    let bulk = |body: serde_json::Value| async move {
        c.post("/api/v1/devices/bulk", &body)
            .await
            .unwrap()
            .ok::<BulkResult>()
            .unwrap()
            .devices
    };
    let (a, b, cc) = (ids[0], ids[1], ids[2]);
    assert_eq!(
        bulk(json!({"device_ids": [a, b], "action": {"type": "add_to_group", "group_id": g.id}}))
            .await,
        2
    );
    assert_eq!(
        bulk(json!({"group_id": g.id, "action": {"type": "set_attributes", "scope": "shared", "values": {"fw": "2.0"}}}))
            .await,
        2
    );
    assert_eq!(attributes(c, a, "shared").await[0].value, json!("2.0"));
    assert!(attributes(c, cc, "shared").await.is_empty());
    assert_eq!(
        bulk(json!({"device_ids": [a, cc], "action": {"type": "disable", "reason": "stolen"}}))
            .await,
        2
    );
    let get = |id: uuid::Uuid| async move {
        c.get(&format!("/api/v1/devices/{id}"))
            .await
            .unwrap()
            .ok::<Device>()
            .unwrap()
    };
    assert_eq!(get(a).await.disabled_reason.as_deref(), Some("stolen"));
    assert_eq!(get(b).await.disabled_reason, None);
    assert!(!connects(&tokens[0]), "a disabled device is refused");
    assert!(connects(&tokens[1]));
    assert_eq!(
        bulk(json!({"group_id": g.id, "action": {"type": "enable"}})).await,
        2
    );
    assert_eq!(get(a).await.disabled_reason, None);
    assert_eq!(get(cc).await.disabled_reason.as_deref(), Some("stolen"));
    assert!(connects(&tokens[0]), "enabled again");
    assert_eq!(
        bulk(json!({"group_id": g.id, "action": {"type": "delete"}})).await,
        2
    );
    for id in [a, b] {
        let r = c.get(&format!("/api/v1/devices/{id}")).await.unwrap();
        assert_eq!(r.status, 404);
    }
    assert_eq!(devices_in(c, "").await.total, 1);
}

/// A job whose server died is not left `running`: marked failed when read, and at start-up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_jobs_are_marked_failed() {
    let server = TestServer::start(Backend::Postgres).await;
    let acme = server.tenant("Acme").await;
    let db = server.database.clone().unwrap();
    let insert = |id: uuid::Uuid| {
        psql(
            &db,
            &format!(
                "INSERT INTO import_jobs (id, tenant_id, status, total, processed, created, updated, \
                 unchanged, failed, report, created_by, created_at, heartbeat_at) VALUES ('{id}', \
                 '{}', 'running', 10, 4, 4, 0, 0, 0, '{{\"errors\":[],\"generated\":0}}', 'x', 1, 1)",
                acme.tenant.id
            ),
        )
    };
    let read = uuid::Uuid::new_v4();
    insert(read);
    let job: ImportJob = acme
        .admin
        .get(&format!("/api/v1/imports/{read}"))
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(job.status, ImportStatus::Failed);
    assert_eq!(job.counts.processed, 4);
    assert!(job.reason.unwrap().contains("stopped"));

    let at_start = uuid::Uuid::new_v4();
    insert(at_start);
    let _second = TestServer::start_with(
        Backend::Postgres,
        Options {
            join: Some(server.shared()),
            ..Options::default()
        },
    )
    .await;
    let status = psql(
        &db,
        &format!("SELECT status FROM import_jobs WHERE id = '{at_start}'"),
    );
    assert_eq!(status, "failed");
}

/// 10,000 rows through the real API on PostgreSQL: all created, counted and stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_rows_on_postgres() {
    let server = TestServer::start(Backend::Postgres).await;
    let acme = server.tenant("Acme").await;
    let c = &acme.admin;
    let mut file = String::from("name,label,type,groups,shared:fw,server:site\n");
    for i in 0..10_000 {
        file.push_str(&format!(
            "dev-{i:05},Device {i},meter,fleet;batch-{},1.{},\"site {}\"\n",
            i % 10,
            i % 3,
            i % 7
        ));
    }
    let started = Instant::now();
    let job = run_import(c, &file, Duration::from_secs(600)).await;
    let elapsed = started.elapsed();
    eprintln!(
        "imported 10,000 rows in {:.1} s ({:.0} rows/s)",
        elapsed.as_secs_f64(),
        10_000.0 / elapsed.as_secs_f64()
    );
    assert_eq!(job.status, ImportStatus::Finished, "{job:?}");
    assert_eq!(
        (
            job.counts.total,
            job.counts.processed,
            job.counts.created,
            job.counts.failed
        ),
        (10_000, 10_000, 10_000, 0)
    );
    assert_eq!(devices_in(c, "").await.total, 10_000);
    let db = server.database.clone().unwrap();
    assert_eq!(psql(&db, "SELECT count(*) FROM devices"), "10000");
    assert_eq!(psql(&db, "SELECT count(*) FROM device_attributes"), "20000");
    let r = c
        .get(&format!("/api/v1/imports/{}/credentials.csv", job.id))
        .await
        .unwrap();
    assert_eq!(r.body.as_str().unwrap().lines().count(), 10_001);
}
