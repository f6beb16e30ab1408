//! The audit log: who changed what, from where, readable and exportable by a tenant admin only,
//! written in the transaction of the change (a change whose entry cannot be written does not
//! happen), and hash-chained so that an entry edited or removed in the database is reported by
//! `stead admin verify-audit`.

use stead_api_types::{AuditEntry, CreatedDevice, Me, Page, Role};

use stead_e2e::{Client, Reply};
use uuid::Uuid;

use crate::harness::{Backend, TestServer, text};
use crate::on_both_backends;

on_both_backends!(
    changes_are_audited_readably_and_chained,
    a_change_whose_audit_entry_fails_is_rolled_back,
    retention_removes_the_oldest_entries_and_the_chain_still_verifies
);

/// On the embedded database, an audited change is a write transaction from its first statement:
/// it waits for the telemetry writer instead of failing when a batch commits under it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audited_changes_go_through_while_devices_publish() {
    use std::io::Write as _;
    use std::process::{Command, Stdio};

    // A device that may publish flat out for the whole test.
    let server = TestServer::start_with(
        Backend::Sqlite,
        crate::harness::Options::default()
            .env("STEAD_DEVICE_RATE_MESSAGES", "1000000:1")
            .env("STEAD_DEVICE_RATE_POINTS", "1000000:1"),
    )
    .await;
    let acme = server.tenant("Acme").await;
    let sensor = created(&acme.admin, "sensor").await;
    let pump = created(&acme.admin, "pump").await;
    let token = sensor.access_token.clone().expect("a generated token");
    let mut publisher = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &server.mqtt_port().to_string()])
        .args([
            "-u",
            &token,
            "-t",
            "v1/devices/me/telemetry",
            "-q",
            "1",
            "-l",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto_pub is installed (Debian package mosquitto-clients)");
    let mut stdin = publisher.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        for i in 0..200_000 {
            if writeln!(stdin, "{{\"t\":{i}}}").is_err() {
                break;
            }
        }
    });
    crate::mqtt::eventually("telemetry flowing", || {
        let admin = acme.admin.clone();
        let id = sensor.device.id;
        async move { crate::mqtt::count_stored(&admin, id, "t").await > 100 }
    })
    .await;
    let before = crate::mqtt::count_stored(&acme.admin, sensor.device.id, "t").await;
    for i in 0..40 {
        let reply = acme
            .admin
            .patch(
                &format!("/api/v1/devices/{}", pump.device.id),
                &serde_json::json!({"label": format!("round {i}")}),
            )
            .await
            .unwrap();
        assert_eq!(
            reply.status, 200,
            "update {i} under ingest: {:?}",
            reply.body
        );
    }
    let after = crate::mqtt::count_stored(&acme.admin, sensor.device.id, "t").await;
    let still_publishing = publisher.try_wait().unwrap().is_none();
    let _ = publisher.kill();
    let _ = publisher.wait();
    let _ = feeder.join();
    assert!(
        still_publishing && after > before,
        "the updates did not overlap ingest ({before} then {after} points stored)"
    );
    let log = audit(
        &acme.admin,
        &format!("?action=device.update&target={}", pump.device.id),
    )
    .await;
    assert_eq!(log.total, 40);
    let (ok, said) = verify(&server);
    assert!(ok, "{said}");
}

async fn audit(c: &Client, query: &str) -> Page<AuditEntry> {
    c.get(&format!("/api/v1/audit{query}"))
        .await
        .unwrap()
        .ok()
        .unwrap()
}

/// A new device of `c`'s tenant, with its generated access token.
pub async fn created(c: &Client, name: &str) -> CreatedDevice {
    c.post("/api/v1/devices", &serde_json::json!({"name": name}))
        .await
        .unwrap()
        .ok()
        .unwrap()
}

async fn rotate(c: &Client, device: Uuid) -> Reply {
    c.post(
        &format!("/api/v1/devices/{device}/credentials/rotate"),
        &serde_json::json!({}),
    )
    .await
    .unwrap()
}

fn verify(server: &TestServer) -> (bool, String) {
    let out = server.stead(&["admin", "verify-audit"]);
    (out.status.success(), text(&out))
}

async fn changes_are_audited_readably_and_chained(backend: Backend) {
    let server = TestServer::start(backend).await;
    let acme = server.tenant("Acme").await;
    let other = server.tenant("Other").await;
    let me: Me = acme.admin.get("/api/v1/me").await.unwrap().ok().unwrap();

    let device = created(&acme.admin, "pump-1").await;
    let d = device.device.id;
    let reply = acme
        .admin
        .patch(
            &format!("/api/v1/devices/{d}"),
            &serde_json::json!({"label": "north hall", "name": "pump-one"}),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let operator = server.user(&acme, Role::Operator).await;
    let rotated = rotate(&acme.admin, d).await;
    assert_eq!(rotated.status, 200, "{:?}", rotated.body);
    let token = rotated.body["access_token"].as_str().unwrap_or_default();
    assert!(!token.is_empty(), "{:?}", rotated.body);

    // Newest first: what happened, by whom, from where, in one chain.
    let log = audit(&acme.admin, "").await;
    let actions: Vec<&str> = log.items.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "device.credentials.rotate",
            "user.create",
            "device.update",
            "device.create",
            "tenant.create"
        ],
        "{:#?}",
        log.items
    );
    assert_eq!(log.total, 5);
    let seqs: Vec<i64> = log.items.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [5, 4, 3, 2, 1]);
    for pair in log.items.windows(2) {
        assert_eq!(
            pair[0].prev_hash, pair[1].hash,
            "each entry links to the one before"
        );
    }
    assert_eq!(log.items[4].prev_hash, "0".repeat(64));
    let created_tenant = &log.items[4];
    assert_eq!(
        created_tenant.actor_email.as_deref(),
        Some(server.admin_email.as_str()),
        "the platform admin created the tenant"
    );
    let update = &log.items[2];
    assert_eq!(update.actor_user_id, Some(me.id));
    assert_eq!(
        update.actor_email.as_deref(),
        Some("admin@acme.example.com")
    );
    assert_eq!(update.source_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(update.target_id, Some(d));
    assert_eq!(
        update.detail["changes"]["name"],
        serde_json::json!({"before": "pump-1", "after": "pump-one"})
    );
    assert_eq!(
        update.detail["changes"]["label"],
        serde_json::json!({"before": null, "after": "north hall"})
    );
    assert!(
        update.detail["changes"].get("online").is_none(),
        "only what changed: {}",
        update.detail
    );
    // No secret in the log: neither the rotated token nor a password.
    let everything = serde_json::to_string(&log.items).unwrap();
    assert!(!everything.contains(token), "a token reached the audit log");
    assert!(!everything.contains("user-password-123"));
    let stored = server.sql("SELECT detail FROM audit_log");
    assert!(!stored.contains(token) && !stored.contains("user-password-123"));

    // Filters: action (exact or a prefix), target, actor, time, paging.
    let by = |q: &'static str| {
        let admin = acme.admin.clone();
        async move { audit(&admin, q).await }
    };
    assert_eq!(by("?action=device.").await.total, 3);
    assert_eq!(by("?action=device.update").await.total, 1);
    assert_eq!(
        by("?action=device").await.total,
        0,
        "a prefix ends with a dot"
    );
    assert_eq!(audit(&acme.admin, &format!("?target={d}")).await.total, 3);
    assert_eq!(by("?target_type=user").await.total, 1);
    let mine = audit(&acme.admin, &format!("?actor={}", me.id)).await;
    assert_eq!(mine.total, 4, "all but the platform admin's");
    assert_eq!(by("?from=2999-01-01T00:00:00Z").await.total, 0);
    let since = update
        .at
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let window = audit(
        &acme.admin,
        &format!("?from={since}&to=2999-01-01T00:00:00Z"),
    )
    .await;
    assert!(window.items.iter().all(|e| e.at >= update.at));
    assert!(window.items.iter().any(|e| e.id == update.id));
    let page = by("?per_page=2&page=3").await;
    assert_eq!((page.total, page.items.len()), (5, 1));
    assert_eq!(page.items[0].action, "tenant.create");
    let bad = acme
        .admin
        .get("/api/v1/audit?action=DROP%20TABLE")
        .await
        .unwrap();
    assert_eq!(
        (bad.status.as_u16(), bad.code(), bad.error().field),
        (400, "invalid_query".into(), Some("action".into()))
    );
    let bad = acme
        .admin
        .get("/api/v1/audit?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z")
        .await
        .unwrap();
    assert_eq!(
        (bad.status.as_u16(), bad.code()),
        (400, "invalid_query".into())
    );
    let bad = acme.admin.get("/api/v1/audit?actor=nobody").await.unwrap();
    assert_eq!(
        (bad.status.as_u16(), bad.code()),
        (400, "invalid_query".into())
    );

    // CSV export, with the same filters.
    let csv = acme.admin.get("/api/v1/audit/export.csv").await.unwrap();
    assert_eq!(csv.status, 200);
    assert!(
        csv.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let body = csv.body.as_str().unwrap_or_default().to_owned();
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.len(), 6, "{body}");
    assert!(lines[0].starts_with("seq,time,actor_kind,actor_email"));
    assert!(lines[1].starts_with("5,") && lines[1].contains("device.credentials.rotate"));
    assert!(lines[3].contains("device.update") && lines[3].contains("127.0.0.1"));
    assert!(
        lines[3].contains("\"{\"\"changes\"\""),
        "detail as quoted JSON: {}",
        lines[3]
    );
    let filtered = acme
        .admin
        .get("/api/v1/audit/export.csv?action=user.create")
        .await
        .unwrap();
    assert_eq!(
        filtered.body.as_str().unwrap_or_default().lines().count(),
        2
    );

    // Only a tenant admin reads it, and only their own tenant's.
    let denied = operator.get("/api/v1/audit").await.unwrap();
    assert_eq!(
        (denied.status.as_u16(), denied.code()),
        (403, "permission_denied".into())
    );
    let theirs = audit(&other.admin, "").await;
    assert_eq!(theirs.total, 1, "{:#?}", theirs.items);
    assert_eq!(theirs.items[0].action, "tenant.create");
    assert_eq!(audit(&other.admin, &format!("?target={d}")).await.total, 0);
    let csv = other.admin.get("/api/v1/audit/export.csv").await.unwrap();
    assert!(!csv.body.as_str().unwrap_or_default().contains("pump"));

    // The chains verify…
    let reply = other
        .admin
        .post("/api/v1/groups", &serde_json::json!({"name": "west"}))
        .await
        .unwrap();
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    let (ok, said) = verify(&server);
    assert!(ok, "{said}");
    assert!(said.contains("ok    tenant \"Acme\""), "{said}");
    assert!(said.contains("5 verified (entries 1 to 5)"), "{said}");
    assert!(said.contains("2 verified (entries 1 to 2)"), "{said}");

    // …until an entry is edited in the database,
    server.sql(
        "UPDATE audit_log SET detail = '{\"name\":\"someone else\"}' WHERE action = 'device.create'",
    );
    // and the newest entry of another tenant is removed.
    server.sql("DELETE FROM audit_log WHERE action = 'group.create'");
    let (ok, said) = verify(&server);
    assert!(!ok, "a tampered log verified:\n{said}");
    assert!(
        said.contains("fail  tenant \"Acme\"")
            && said.contains("breaks at entry 2")
            && said.contains("edited after it was written"),
        "{said}"
    );
    assert!(
        said.contains("fail  tenant \"Other\"") && said.contains("the newest entries were removed"),
        "{said}"
    );
    assert!(said.contains("2 broken"), "{said}");
}

async fn a_change_whose_audit_entry_fails_is_rolled_back(backend: Backend) {
    let server = TestServer::start(backend).await;
    let acme = server.tenant("Acme").await;
    // The database refuses the audit entries of two kinds of change, as a full disk or a lost
    // connection would at that moment.
    if backend == Backend::Postgres {
        server.sql(
            "CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN IF NEW.action IN ('device.create', 'device.credentials.rotate') THEN \
             RAISE EXCEPTION 'audit refused'; END IF; RETURN NEW; END $$",
        );
    }
    refuse_audit(&server, backend, true);
    let refused = acme
        .admin
        .post("/api/v1/devices", &serde_json::json!({"name": "ghost"}))
        .await
        .unwrap();
    assert_eq!(
        (refused.status.as_u16(), refused.code()),
        (500, "internal_error".into()),
        "{:?}",
        refused.body
    );
    let devices: Page<stead_api_types::Device> = acme
        .admin
        .get("/api/v1/devices?search=ghost")
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(
        devices.total, 0,
        "the device exists without its audit entry"
    );

    // A device made before: its rotation fails whole, the old token still works.
    refuse_audit(&server, backend, false);
    let device = created(&acme.admin, "kept").await;
    let old_token = device.access_token.clone().expect("a generated token");
    refuse_audit(&server, backend, true);
    let d = device.device.id;
    let refused = rotate(&acme.admin, d).await;
    assert_eq!(refused.status, 500, "{:?}", refused.body);
    let still = reqwest::Client::new()
        .post(format!("{}/api/v1/{old_token}/telemetry", server.base))
        .json(&serde_json::json!({"t": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        still.status(),
        200,
        "the old token was revoked by a rolled-back rotation"
    );

    // Nothing half-written: the chain verifies, and it goes on once the database accepts again.
    refuse_audit(&server, backend, false);
    let (ok, said) = verify(&server);
    assert!(ok, "{said}");
    let made = acme
        .admin
        .post("/api/v1/devices", &serde_json::json!({"name": "ghost"}))
        .await
        .unwrap();
    assert_eq!(made.status, 201, "{:?}", made.body);
    let log = audit(&acme.admin, "?action=device.").await;
    let actions: Vec<&str> = log.items.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["device.create", "device.create"]);
    let (ok, said) = verify(&server);
    assert!(ok, "{said}");
    assert!(said.contains("3 verified (entries 1 to 3)"), "{said}");
}

/// Puts in place (or removes) a trigger that makes the database refuse the audit entries of
/// `device.create` and `device.credentials.rotate`.
fn refuse_audit(server: &TestServer, backend: Backend, refuse: bool) {
    let statement = match (backend, refuse) {
        (Backend::Postgres, true) => {
            "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log \
             FOR EACH ROW EXECUTE FUNCTION refuse_audit()"
        }
        (Backend::Sqlite, true) => {
            "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log \
             WHEN NEW.action IN ('device.create', 'device.credentials.rotate') \
             BEGIN SELECT RAISE(ABORT, 'audit refused'); END"
        }
        (Backend::Postgres, false) => "DROP TRIGGER refuse_audit ON audit_log",
        (Backend::Sqlite, false) => "DROP TRIGGER refuse_audit",
    };
    server.sql(statement);
}

/// A tenant that keeps its audit entries for one day loses the older ones at the worker's next
/// pass, oldest first, and its chain still verifies from the oldest entry left; the newest entry
/// of a chain is never removed, whatever its age.
async fn retention_removes_the_oldest_entries_and_the_chain_still_verifies(backend: Backend) {
    let server = TestServer::start_with(
        backend,
        crate::harness::Options::default().env("STEAD_RETENTION_INTERVAL_SECS", "1"),
    )
    .await;
    let admin = server.admin().await;
    let acme = server.tenant("Acme").await;
    let other = server.tenant("Other").await;
    let keep_a_day = |tenant: Uuid| {
        let admin = admin.clone();
        async move {
            let set = admin
                .patch(
                    &format!("/api/v1/tenants/{tenant}"),
                    &serde_json::json!({"audit_retention_days": 1}),
                )
                .await
                .unwrap();
            assert_eq!(set.status, 200, "{:?}", set.body);
            assert_eq!(set.body["audit_retention_days"], 1, "{:?}", set.body);
        }
    };
    let refused = admin
        .patch(
            &format!("/api/v1/tenants/{}", acme.tenant.id),
            &serde_json::json!({"audit_retention_days": 0}),
        )
        .await
        .unwrap();
    assert_eq!(refused.status, 400, "{:?}", refused.body);
    assert_eq!(
        refused.body["field"], "audit_retention_days",
        "{:?}",
        refused.body
    );
    keep_a_day(other.tenant.id).await;
    for name in ["one", "two", "three", "four"] {
        created(&acme.admin, name).await;
        created(&other.admin, name).await;
    }

    // A month ago (the dates are part of the hash: until retention removes them, the chain says
    // they were edited): Acme's first two entries, every one of Other's.
    let month_ago = (chrono::Utc::now() - chrono::Duration::days(30)).to_rfc3339();
    let tenant_is = |id: Uuid| match backend {
        Backend::Postgres => format!("tenant_id = '{id}'"),
        Backend::Sqlite => format!("tenant_id = x'{}'", id.simple()),
    };
    server.sql(&format!(
        "UPDATE audit_log SET created_at = '{month_ago}' WHERE {} AND seq <= 2",
        tenant_is(acme.tenant.id)
    ));
    let (ok, said) = verify(&server);
    assert!(!ok, "{said}");
    assert!(
        said.contains(&format!(
            "tenant \"Acme\" ({}): the chain breaks at entry 1",
            acme.tenant.id
        )),
        "{said}"
    );
    server.sql(&format!(
        "UPDATE audit_log SET created_at = '{month_ago}' WHERE {}",
        tenant_is(other.tenant.id)
    ));
    // Within the platform's default (365 days) they stay: Acme's admin, its four devices. Acme
    // now keeps a day.
    assert_eq!(audit(&acme.admin, "").await.total, 5);
    keep_a_day(acme.tenant.id).await;

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let (left, kept) = loop {
        let left = audit(&acme.admin, "").await;
        let kept = audit(&other.admin, "").await;
        if left.total == 4 && kept.total == 1 {
            break (left, kept);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "retention never removed the old entries: Acme has {}, Other {}",
            left.total,
            kept.total
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let seqs: Vec<i64> = left.items.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [6, 5, 4, 3]);
    assert_eq!(left.items[0].action, "tenant.update");
    // Other's newest entry stays, a month old (and edited: the chain says so).
    assert_eq!(kept.items[0].seq, 6, "{:?}", kept.items);
    let (ok, said) = verify(&server);
    assert!(!ok, "{said}");
    assert!(
        said.contains(&format!(
            "ok    tenant \"Acme\" ({}): 4 verified (entries 3 to 6)",
            acme.tenant.id
        )),
        "{said}"
    );
    assert!(
        said.contains(&format!(
            "tenant \"Other\" ({}): the chain breaks at entry 6",
            other.tenant.id
        )),
        "{said}"
    );
}
