//! Device CRUD, listing, token handling and tenant isolation.

use sha2_free::sha256_hex;
use stead_api_types::{CreatedDevice, Device, DeviceCredentials, Page};

use crate::harness::{Backend, TestServer, psql};
use crate::on_both_backends;

on_both_backends!(
    device_lifecycle,
    listing_pages_searches_and_sorts,
    another_tenants_devices_are_not_found,
);

async fn device_lifecycle(backend: Backend) {
    let server = TestServer::start(backend).await;
    let acme = server.tenant("Acme").await;
    let c = &acme.admin;

    let r = c
        .post("/api/v1/devices", &serde_json::json!({"name": "pump-1", "label": "Basement pump", "type": "pump", "metadata": {"site": "north"}}))
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{:?}", r.body);
    let created: CreatedDevice = r.ok().unwrap();
    assert_eq!(
        created.access_token.clone().unwrap().len(),
        43,
        "256 bits, base64url"
    );
    let d = &created.device;
    assert_eq!(
        (
            d.name.as_str(),
            d.label.as_deref(),
            d.device_type.as_deref()
        ),
        ("pump-1", Some("Basement pump"), Some("pump"))
    );
    assert_eq!(d.metadata, serde_json::json!({"site": "north"}));

    // The token is shown once: never again in a read.
    let path = format!("/api/v1/devices/{}", d.id);
    let read = c.get(&path).await.unwrap();
    assert_eq!(read.status, 200);
    assert!(
        !read
            .body
            .to_string()
            .contains(&created.access_token.clone().unwrap())
    );
    assert!(read.body.get("access_token").is_none());

    let dup = c
        .post("/api/v1/devices", &serde_json::json!({"name": "pump-1"}))
        .await
        .unwrap();
    assert_eq!(
        (dup.status.as_u16(), dup.code()),
        (409, "device_name_taken".into())
    );
    let empty = c
        .post("/api/v1/devices", &serde_json::json!({"name": "  "}))
        .await
        .unwrap();
    assert_eq!(
        (empty.status.as_u16(), empty.code(), empty.error().field),
        (400, "invalid_name".into(), Some("name".into()))
    );
    let meta = c
        .post(
            "/api/v1/devices",
            &serde_json::json!({"name": "x", "metadata": [1]}),
        )
        .await
        .unwrap();
    assert_eq!(
        (meta.status.as_u16(), meta.error().field),
        (400, Some("metadata".into()))
    );

    // PATCH: absent fields stay, null clears.
    let patched: Device = c
        .patch(
            &path,
            &serde_json::json!({"label": null, "metadata": {"site": "south"}}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(
        (patched.label, patched.device_type.as_deref()),
        (None, Some("pump"))
    );
    assert_eq!(patched.metadata, serde_json::json!({"site": "south"}));
    assert!(patched.updated_at >= d.updated_at);
    c.post("/api/v1/devices", &serde_json::json!({"name": "pump-2"}))
        .await
        .unwrap()
        .ok::<CreatedDevice>()
        .unwrap();
    let clash = c
        .patch(&path, &serde_json::json!({"name": "pump-2"}))
        .await
        .unwrap();
    assert_eq!(
        (clash.status.as_u16(), clash.code()),
        (409, "device_name_taken".into())
    );

    // Rotation: a new token, and the old one is gone from storage.
    let rotated: DeviceCredentials = c
        .post(
            &format!("{path}/credentials/rotate"),
            &serde_json::json!({}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_ne!(
        rotated.access_token.clone().unwrap(),
        created.access_token.clone().unwrap()
    );
    if let Some(db) = &server.database {
        let stored = psql(
            db,
            &format!("SELECT token_hash FROM devices WHERE id = '{}'", d.id),
        );
        assert_eq!(
            stored,
            sha256_hex(&rotated.access_token.clone().unwrap()),
            "stored as SHA-256 of the new token"
        );
        let dump = psql(db, "SELECT string_agg(token_hash, ',') FROM devices");
        assert!(
            !dump.contains(&sha256_hex(&created.access_token.clone().unwrap())),
            "the old token no longer exists"
        );
        assert!(
            !dump.contains(&rotated.access_token.clone().unwrap()),
            "never stored in clear"
        );
    }

    let del = c.delete(&path).await.unwrap();
    assert_eq!(del.status, 204);
    assert_eq!(c.get(&path).await.unwrap().status, 404);
    assert_eq!(c.delete(&path).await.unwrap().status, 404);
    // The name is free again.
    c.post("/api/v1/devices", &serde_json::json!({"name": "pump-1"}))
        .await
        .unwrap()
        .ok::<CreatedDevice>()
        .unwrap();
}

async fn listing_pages_searches_and_sorts(backend: Backend) {
    let server = TestServer::start(backend).await;
    let acme = server.tenant("Acme").await;
    let c = &acme.admin;
    for (name, label) in [
        ("sensor-03", "Roof"),
        ("sensor-01", "Kitchen"),
        ("gateway-a", "Main Hall"),
        ("sensor-02", "Cellar 50%"),
        ("meter_9", "kitchen meter"),
    ] {
        c.post(
            "/api/v1/devices",
            &serde_json::json!({"name": name, "label": label}),
        )
        .await
        .unwrap()
        .ok::<CreatedDevice>()
        .unwrap();
    }
    let names = |page: &Page<Device>| {
        page.items
            .iter()
            .map(|d| d.name.clone())
            .collect::<Vec<_>>()
    };

    let all: Page<Device> = c.get("/api/v1/devices").await.unwrap().ok().unwrap();
    assert_eq!(
        names(&all),
        [
            "gateway-a",
            "meter_9",
            "sensor-01",
            "sensor-02",
            "sensor-03"
        ]
    );
    assert_eq!((all.total, all.page, all.per_page), (5, 1, 20));

    let p2: Page<Device> = c
        .get("/api/v1/devices?per_page=2&page=2")
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(names(&p2), ["sensor-01", "sensor-02"]);
    assert_eq!(p2.total, 5);
    let past: Page<Device> = c
        .get("/api/v1/devices?per_page=2&page=9")
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert!(past.items.is_empty());

    let desc: Page<Device> = c
        .get("/api/v1/devices?sort=-name&per_page=2")
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(names(&desc), ["sensor-03", "sensor-02"]);
    let newest: Page<Device> = c
        .get("/api/v1/devices?sort=-created_at&per_page=1")
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(names(&newest), ["meter_9"]);

    // Search: name or label, case-insensitive; LIKE wildcards are literal.
    let kitchen: Page<Device> = c
        .get("/api/v1/devices?search=KITCHEN")
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(names(&kitchen), ["meter_9", "sensor-01"]);
    let pct: Page<Device> = c
        .get("/api/v1/devices?search=50%25")
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(names(&pct), ["sensor-02"]);
    let underscore: Page<Device> = c
        .get("/api/v1/devices?search=r_9")
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(names(&underscore), ["meter_9"]);
    let none: Page<Device> = c
        .get("/api/v1/devices?search=r_1")
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(none.total, 0, "`_` must not match any character");

    for bad in [
        "sort=colour",
        "per_page=0",
        "per_page=201",
        "page=0",
        "page=abc",
        "bogus=1",
    ] {
        let r = c.get(&format!("/api/v1/devices?{bad}")).await.unwrap();
        assert_eq!(r.status, 400, "{bad}: {:?}", r.body);
        assert_eq!(r.code(), "invalid_query", "{bad}");
    }
}

async fn another_tenants_devices_are_not_found(backend: Backend) {
    let server = TestServer::start(backend).await;
    let a = server.tenant("Alpha").await;
    let b = server.tenant("Bravo").await;
    let a_dev: CreatedDevice = a
        .admin
        .post(
            "/api/v1/devices",
            &serde_json::json!({"name": "alpha-secret"}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    // The same name is fine in another tenant.
    b.admin
        .post(
            "/api/v1/devices",
            &serde_json::json!({"name": "alpha-secret"}),
        )
        .await
        .unwrap()
        .ok::<CreatedDevice>()
        .unwrap();

    let path = format!("/api/v1/devices/{}", a_dev.device.id);
    for (what, reply) in [
        ("GET", b.admin.get(&path).await.unwrap()),
        (
            "PATCH",
            b.admin
                .patch(&path, &serde_json::json!({"label": "pwned"}))
                .await
                .unwrap(),
        ),
        (
            "rotate",
            b.admin
                .post(
                    &format!("{path}/credentials/rotate"),
                    &serde_json::json!({}),
                )
                .await
                .unwrap(),
        ),
        ("DELETE", b.admin.delete(&path).await.unwrap()),
    ] {
        assert_eq!(
            (reply.status.as_u16(), reply.code()),
            (404, "not_found".into()),
            "{what}: {:?}",
            reply.body
        );
        assert!(
            !reply.body.to_string().contains("alpha"),
            "{what} leaks nothing"
        );
    }
    // Nothing changed for A.
    let still: Device = a.admin.get(&path).await.unwrap().ok().unwrap();
    assert_eq!(still, a_dev.device);
    let b_list: Page<Device> = b
        .admin
        .get("/api/v1/devices?search=alpha")
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(b_list.total, 1);
    assert_ne!(b_list.items[0].id, a_dev.device.id);
}

mod sha2_free {
    /// SHA-256 via the system's `sha256sum`, so the test checks the server's hashing independently.
    pub fn sha256_hex(s: &str) -> String {
        use std::io::Write;
        let mut child = std::process::Command::new("sha256sum")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned()
    }
}
