//! OTA packages through the real server: an image streamed in, its checksums, downloads whole and
//! by range, signatures, limits and quotas, another tenant's packages; in the local directory of
//! the embedded default and in a real S3-compatible server (`moto_server`).

use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use ed25519_dalek::Signer as _;
use reqwest::{Method, StatusCode};
use serde_json::json;
use sha2::{Digest, Sha256};
use stead_api_types::{
    ChecksumAlgorithm, DeviceOtaTarget, OtaState, Package, Role, SigningKey, Tenant,
};

use crate::harness::{Backend, Options, TestServer};
use stead_e2e::Client;

/// `n` bytes that do not compress and are the same on every run.
pub fn image(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn sha256_hex(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn upload(c: &Client, query: &str, body: Vec<u8>) -> stead_e2e::client::Reply {
    c.raw(
        Method::POST,
        &format!("/api/v1/ota/packages?{query}"),
        "application/octet-stream",
        body,
    )
    .await
    .unwrap()
}

async fn packages(c: &Client) -> Vec<Package> {
    c.get("/api/v1/ota/packages").await.unwrap().ok().unwrap()
}

/// Upload, checksums, download whole and resumed, duplicates, damage, signatures, limits, other
/// tenants and people without the permission; deleting removes the image from the directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packages_in_the_local_blob_store() {
    let server = TestServer::start_with(
        Backend::Sqlite,
        Options::default().env("STEAD_OTA_MAX_PACKAGE_BYTES", (3 << 20).to_string()),
    )
    .await;
    let acme = server.tenant("Acme").await;
    let c = &acme.admin;
    let fw = image(1 << 20, 7);
    let sha = sha256_hex(&fw);

    let r = upload(
        c,
        &format!(
            "kind=firmware&title=pump-fw&version=1.2.0&description=Spring%20release&sha256={sha}"
        ),
        fw.clone(),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let p: Package = r.ok().unwrap();
    assert_eq!(p.size, fw.len() as u64);
    assert_eq!(p.checksums[&ChecksumAlgorithm::Sha256], sha);
    assert_eq!(p.checksums.len(), 7, "{:?}", p.checksums);
    assert_eq!(p.description, "Spring release");
    assert!(p.signing_key_id.is_none());

    // The image is stored once, under the tenant, by its SHA-256.
    let blob = server
        .data_dir
        .join(format!("blobs/tenants/{}/sha256/{sha}", acme.tenant.id));
    assert_eq!(
        std::fs::read(&blob).expect("the image in the blob directory"),
        fw
    );

    // Whole, and resumed from a byte with Range.
    let (status, headers, whole) = c
        .download(&format!("/api/v1/ota/packages/{}/image", p.id), None)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["accept-ranges"], "bytes");
    assert_eq!(sha256_hex(&whole), sha);
    let cut = 300_001;
    let (status, headers, rest) = c
        .download(
            &format!("/api/v1/ota/packages/{}/image", p.id),
            Some(&format!("bytes={cut}-")),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        headers["content-range"],
        format!("bytes {cut}-{}/{}", fw.len() - 1, fw.len()).as_str()
    );
    let mut resumed = whole[..cut].to_vec();
    resumed.extend(rest);
    assert_eq!(sha256_hex(&resumed), sha);
    let (status, ..) = c
        .download(
            &format!("/api/v1/ota/packages/{}/image", p.id),
            Some("bytes=2000000-"),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE);

    // The same version again; a damaged upload; an empty one; one over the size limit.
    let r = upload(c, "kind=firmware&title=pump-fw&version=1.2.0", fw.clone()).await;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (409, "package_exists".into())
    );
    let r = upload(
        c,
        &format!("kind=firmware&title=pump-fw&version=1.3.0&sha256={sha}"),
        image(1 << 20, 8),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        (r.code(), r.error().field.as_deref()),
        ("checksum_mismatch".into(), Some("sha256"))
    );
    let r = upload(c, "kind=firmware&title=pump-fw&version=1.3.0", Vec::new()).await;
    assert_eq!(r.code(), "empty_package");
    let r = upload(
        c,
        "kind=firmware&title=pump-fw&version=9.9.9",
        image(4 << 20, 9),
    )
    .await;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (413, "package_too_large".into())
    );
    let r = upload(c, "kind=firmware&title=&version=1", fw.clone()).await;
    assert_eq!(r.error().field.as_deref(), Some("title"), "{}", r.body);
    let r = upload(c, "kind=bootloader&title=x&version=1", fw.clone()).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(packages(c).await.len(), 1, "nothing refused was kept");
    let uploads = server
        .data_dir
        .join(format!("blobs/tenants/{}/uploads", acme.tenant.id));
    let left = std::fs::read_dir(&uploads).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "refused uploads leave nothing behind");

    // Signed: by the tenant's key over the image's SHA-256 digest.
    let signer = ed25519_dalek::SigningKey::from_bytes(&[42; 32]);
    let b64 = base64::engine::general_purpose::STANDARD;
    let r = c
        .post(
            "/api/v1/ota/signing-keys",
            &json!({"name": "release", "public_key": b64.encode(signer.verifying_key().as_bytes())}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    let key: SigningKey = r.ok().unwrap();
    let sw = image(200_000, 11);
    let digest = Sha256::digest(&sw);
    let good = b64.encode(signer.sign(&digest).to_bytes());
    let forged = b64.encode(
        ed25519_dalek::SigningKey::from_bytes(&[43; 32])
            .sign(&digest)
            .to_bytes(),
    );
    let r = upload(
        c,
        &format!(
            "kind=software&title=agent&version=2.0&signature={}",
            urlencode(&forged)
        ),
        sw.clone(),
    )
    .await;
    assert_eq!(
        (r.code(), r.error().field.as_deref()),
        ("invalid_signature".into(), Some("signature"))
    );
    let r = upload(
        c,
        &format!(
            "kind=software&title=agent&version=2.0&signature={}",
            urlencode(&good)
        ),
        sw.clone(),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let signed: Package = r.ok().unwrap();
    assert_eq!(signed.signing_key_id, Some(key.id));

    // The storage quota: 1 MiB + 200 kB stored; a 1.5 MiB quota leaves no room for another MiB.
    let platform = server.admin().await;
    let t: Tenant = platform
        .patch(
            &format!("/api/v1/tenants/{}", acme.tenant.id),
            &json!({"quotas": {"ota_bytes": 1_572_864}}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(t.quotas.ota_bytes, Some(1_572_864));
    let r = upload(
        c,
        "kind=firmware&title=pump-fw&version=1.4.0",
        image(1 << 20, 12),
    )
    .await;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (409, "quota_exceeded".into())
    );
    let usage: stead_api_types::Usage = c.get("/api/v1/usage").await.unwrap().ok().unwrap();
    assert_eq!(usage.ota_bytes.used, (1 << 20) + 200_000);
    assert_eq!(usage.ota_bytes.limit, 1_572_864);

    // Another tenant sees none of it; a viewer reads but does not upload or delete.
    let other = server.tenant("Other").await;
    assert!(packages(&other.admin).await.is_empty());
    for path in [
        format!("/api/v1/ota/packages/{}", p.id),
        format!("/api/v1/ota/packages/{}/image", p.id),
    ] {
        let r = other.admin.get(&path).await.unwrap();
        assert_eq!(r.status, 404, "{path}: {}", r.body);
    }
    let r = other
        .admin
        .delete(&format!("/api/v1/ota/packages/{}", p.id))
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    let viewer = server.user(&acme, Role::Viewer).await;
    assert_eq!(packages(&viewer).await.len(), 2);
    let r = upload(&viewer, "kind=firmware&title=x&version=1", fw.clone()).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = viewer
        .delete(&format!("/api/v1/ota/packages/{}", p.id))
        .await
        .unwrap();
    assert_eq!(r.status, 403);

    // Deleting a package removes its image; uploading and deleting are in the audit log.
    let r = c
        .delete(&format!("/api/v1/ota/packages/{}", p.id))
        .await
        .unwrap();
    assert_eq!(r.status, 204, "{}", r.body);
    assert!(!blob.exists(), "the image left the blob directory");
    let audit = c.get("/api/v1/audit?per_page=50").await.unwrap().body;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for action in [
        "ota.package.upload",
        "ota.package.delete",
        "ota.signing_key.create",
    ] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A real S3-compatible server: `moto_server` from the tests' Python environment, on a free
/// port, with a bucket made for the test.
struct S3 {
    _child: tokio::process::Child,
    endpoint: String,
}

impl S3 {
    async fn start(bucket: &str) -> S3 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let python = crate::sdk::python();
        let child = tokio::process::Command::new(&python)
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start moto_server with {python}: {e}"));
        let endpoint = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let mut made = false;
        for _ in 0..200 {
            if let Ok(r) = http.put(format!("{endpoint}/{bucket}")).send().await
                && r.status().is_success()
            {
                made = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            made,
            "moto_server did not answer on {endpoint} within 20 s (is moto installed? `cargo xtask setup`)"
        );
        S3 {
            _child: child,
            endpoint,
        }
    }

    async fn keys(&self, bucket: &str) -> String {
        reqwest::get(format!("{}/{bucket}?list-type=2", self.endpoint))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// The same on an S3-compatible server, with an image large enough for a multipart upload
/// (parts of 5 MiB), on PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packages_in_an_s3_compatible_bucket() {
    let s3 = S3::start("firmware").await;
    let options = [
        ("STEAD_BLOB_URL", "s3://firmware/stead".to_owned()),
        ("AWS_ENDPOINT", s3.endpoint.clone()),
        ("AWS_ALLOW_HTTP", "true".to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
    ]
    .into_iter()
    .fold(Options::default(), |o, (k, v)| o.env(k, v));
    let server = TestServer::start_with(Backend::Postgres, options).await;
    let acme = server.tenant("Acme").await;
    let c = &acme.admin;
    let fw = image(12 << 20, 21);
    let sha = sha256_hex(&fw);
    let r = upload(
        c,
        "kind=firmware&title=gateway-fw&version=4.0.1",
        fw.clone(),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let p: Package = r.ok().unwrap();
    assert_eq!(p.checksums[&ChecksumAlgorithm::Sha256], sha);
    let key = format!("stead/tenants/{}/sha256/{sha}", acme.tenant.id);
    assert!(
        s3.keys("firmware").await.contains(&key),
        "the image is in the bucket"
    );
    assert!(
        !s3.keys("firmware").await.contains("/uploads/"),
        "no upload left behind"
    );
    let (status, _, part) = c
        .download(
            &format!("/api/v1/ota/packages/{}/image", p.id),
            Some("bytes=10485760-"),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(part, fw[10 << 20..]);
    let (_, _, whole) = c
        .download(&format!("/api/v1/ota/packages/{}/image", p.id), None)
        .await
        .unwrap();
    assert_eq!(sha256_hex(&whole), sha);
    let r = c
        .delete(&format!("/api/v1/ota/packages/{}", p.id))
        .await
        .unwrap();
    assert_eq!(r.status, 204);
    assert!(
        !s3.keys("firmware").await.contains(&key),
        "deleted from the bucket"
    );
}

async fn assign(c: &Client, device: uuid::Uuid, package: uuid::Uuid) -> DeviceOtaTarget {
    let r = c
        .put(
            &format!("/api/v1/devices/{device}/ota/firmware"),
            &json!({"package_id": package}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    r.ok().unwrap()
}

async fn target_of(c: &Client, device: uuid::Uuid) -> Option<DeviceOtaTarget> {
    let all: Vec<DeviceOtaTarget> = c
        .get(&format!("/api/v1/devices/{device}/ota"))
        .await
        .unwrap()
        .ok()
        .unwrap();
    all.into_iter().next()
}

async fn wait_state(c: &Client, device: uuid::Uuid, state: OtaState) -> DeviceOtaTarget {
    for _ in 0..300 {
        if let Some(t) = target_of(c, device).await
            && t.state == state
        {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "the target never reached {state:?}: {:?}",
        target_of(c, device).await
    );
}

/// ThingsBoard's Python SDK, its `get_firmware_update` flow unchanged, against the server.
async fn run_sdk_firmware(server: &TestServer, token: &str, chunk: usize) -> serde_json::Value {
    let python = crate::sdk::python();
    let script = crate::harness::workspace_root().join("e2e/python/tb_sdk_firmware.py");
    let child = tokio::process::Command::new(&python)
        .arg(&script)
        .args([
            "127.0.0.1",
            &server.mqtt_port().to_string(),
            token,
            &chunk.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the SDK script");
    let out = tokio::time::timeout(Duration::from_secs(75), child.wait_with_output())
        .await
        .expect("the SDK script ended within 75 s")
        .expect("the SDK script ran");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the SDK session failed ({}):\nstdout: {stdout}\nstderr: {}\nserver log:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        server.log_tail(40)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("the SDK script printed no JSON line ({e}): {stdout}"))
}

/// The SDK downloads a 1 MB image in 32 KiB chunks over MQTT, verifies it and reports UPDATED;
/// the platform shows each step and the device on the new version. An image damaged in storage
/// fails the SDK's check: after three failed downloads the target is withdrawn and the SDK stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_thingsboard_sdk_updates_its_firmware() {
    let server = TestServer::start(Backend::Sqlite).await;
    let acme = server.tenant("Acme").await;
    let c = &acme.admin;
    let fw = image(1 << 20, 31);
    let sha = sha256_hex(&fw);
    let p: Package = upload(c, "kind=firmware&title=pump-fw&version=1.2.0", fw.clone())
        .await
        .ok()
        .unwrap();
    let (id, token) = crate::mqtt::device(c, "pump-1").await;
    let t = assign(c, id, p.id).await;
    assert_eq!(t.state, OtaState::Notified);
    // The five attributes, as one push would carry them.
    let shared = crate::mqtt::attribute_values(c, id, "shared").await;
    assert_eq!(shared["fw_title"], "pump-fw");
    assert_eq!(shared["fw_version"], "1.2.0");
    assert_eq!(shared["fw_size"], 1 << 20);
    assert_eq!(shared["fw_checksum"], sha.as_str());
    assert_eq!(shared["fw_checksum_algorithm"], "SHA256");

    let out = run_sdk_firmware(&server, &token, 32 * 1024).await;
    assert_eq!(out["state"], "UPDATED", "{out}");
    assert_eq!(out["sha256"], sha.as_str(), "{out}");
    assert_eq!(out["failures"], 0, "{out}");
    let done = wait_state(c, id, OtaState::Updated).await;
    assert_eq!(
        done.previous_version.as_deref(),
        None,
        "nothing reported before"
    );
    crate::mqtt::eventually("the device shows the new version", || async {
        let latest = c
            .get(&format!("/api/v1/devices/{id}/telemetry/latest"))
            .await
            .unwrap()
            .body;
        latest["current_fw_version"]["value"] == "1.2.0"
    })
    .await;
    let steps: Vec<String> = crate::mqtt::timeline(c, id)
        .await
        .into_iter()
        .filter(|e| e.kind == "ota")
        .map(|e| e.detail)
        .collect();
    for step in [
        "assigned",
        "DOWNLOADING",
        "DOWNLOADED",
        "VERIFIED",
        "UPDATING",
        "UPDATED",
    ] {
        assert!(
            steps.iter().any(|s| s.contains(step)),
            "{step} on the timeline: {steps:?}"
        );
    }
    // What the fleet runs, from what the devices report.
    let versions: Vec<stead_api_types::VersionCount> = c
        .get("/api/v1/ota/versions?kind=firmware")
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(
        versions,
        [stead_api_types::VersionCount {
            title: "pump-fw".into(),
            version: "1.2.0".into(),
            devices: 1
        }]
    );
    // The same package again: already running it.
    let again = assign(c, id, p.id).await;
    assert_eq!(again.state, OtaState::Skipped);

    // Damaged in storage: the SDK's SHA-256 check fails; three times, then the target goes.
    let bad = image(300_000, 32);
    let q: Package = upload(c, "kind=firmware&title=pump-fw&version=1.3.0", bad.clone())
        .await
        .ok()
        .unwrap();
    let blob = server.data_dir.join(format!(
        "blobs/tenants/{}/sha256/{}",
        acme.tenant.id,
        sha256_hex(&bad)
    ));
    let mut damaged = bad.clone();
    damaged[1000] ^= 0xff;
    std::fs::write(&blob, &damaged).unwrap();
    let (id2, token2) = crate::mqtt::device(c, "pump-2").await;
    assign(c, id2, q.id).await;
    let out = run_sdk_firmware(&server, &token2, 32 * 1024).await;
    assert_eq!(out["withdrawn"], true, "{out}");
    assert!(out["failures"].as_u64().unwrap() >= 3, "{out}");
    let failed = wait_state(c, id2, OtaState::Failed).await;
    assert_eq!(failed.attempts, 3);
    assert_eq!(
        failed.reason.as_deref(),
        Some("Checksum verification failed!")
    );
    let shared = crate::mqtt::attribute_values(c, id2, "shared").await;
    assert!(shared.get("fw_version").is_none(), "withdrawn: {shared}");

    // A package that is a device's target stays until the target goes.
    let r = c
        .delete(&format!("/api/v1/ota/packages/{}", q.id))
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (409, "package_in_use".into())
    );
    let r = c
        .delete(&format!("/api/v1/devices/{id2}/ota/firmware"))
        .await
        .unwrap();
    assert_eq!(r.status, 204);
    let r = c
        .delete(&format!("/api/v1/ota/packages/{}", q.id))
        .await
        .unwrap();
    assert_eq!(r.status, 204, "{}", r.body);
}

/// `mosquitto_rr`: one request on `topic` and the first message the device gets back, as
/// (topic, payload).
fn request(port: u16, token: &str, topic: &str, payload: &str) -> (String, Vec<u8>) {
    let out = std::process::Command::new("mosquitto_rr")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-u", token])
        .args(["-i", &format!("rr-{}", uuid::Uuid::new_v4().simple())])
        // Any answer ends it: the chunk comes whatever the client subscribed to.
        .args(["-q", "1", "-t", topic, "-e", "v2/fw/error", "-m", payload])
        .args(["-W", "10", "-N", "-F", "%t %l %p"])
        .stdin(Stdio::null())
        .output()
        .expect("mosquitto_rr is installed (Debian package mosquitto-clients)");
    assert!(
        out.status.success(),
        "mosquitto_rr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // "topic length payload"
    let mut parts = out.stdout.splitn(3, |b| *b == b' ');
    let topic = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let length: usize = String::from_utf8_lossy(parts.next().unwrap_or_default())
        .parse()
        .unwrap_or_else(|_| {
            panic!(
                "mosquitto_rr printed {:?}",
                String::from_utf8_lossy(&out.stdout)
            )
        });
    let payload = parts.next().unwrap_or_default().to_vec();
    assert_eq!(payload.len(), length, "the whole payload");
    (topic, payload)
}

/// Chunk requests that cannot be served get a reason on `v2/fw/error`, the session goes on;
/// past the end, an empty chunk. The HTTP device API serves the image whole, by chunk and by
/// Range. A device that stops progressing is TIMED_OUT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunk_requests_http_downloads_and_time_outs() {
    let server = TestServer::start_with(
        Backend::Sqlite,
        Options::default().env("STEAD_OTA_STEP_TIMEOUT_SECS", "3"),
    )
    .await;
    let port = server.mqtt_port();
    let acme = server.tenant("Acme").await;
    let c = &acme.admin;
    let fw = image(100_000, 41);
    let p: Package = upload(c, "kind=firmware&title=valve&version=7", fw.clone())
        .await
        .ok()
        .unwrap();
    let (id, token) = crate::mqtt::device(c, "valve-1").await;

    let (topic, why) = request(port, &token, "v2/fw/request/1/chunk/0", "1000");
    assert_eq!(topic, "v2/fw/error");
    assert!(
        String::from_utf8_lossy(&why).contains("no firmware package is assigned"),
        "{}",
        String::from_utf8_lossy(&why)
    );
    assign(c, id, p.id).await;
    let (topic, chunk) = request(port, &token, "v2/fw/request/1/chunk/3", "1000");
    assert_eq!(topic, "v2/fw/response/1/chunk/3");
    assert_eq!(chunk, fw[3000..4000]);
    let (topic, last) = request(port, &token, "v2/fw/request/2/chunk/1", "60000");
    assert_eq!(topic, "v2/fw/response/2/chunk/1");
    assert_eq!(last, fw[60000..]);
    let (topic, past) = request(port, &token, "v2/fw/request/2/chunk/9", "60000");
    assert_eq!(topic, "v2/fw/response/2/chunk/9");
    assert!(past.is_empty(), "past the end: empty");
    for (size, says) in [
        ("70000", "larger than the largest message"),
        ("abc", "decimal text"),
    ] {
        let (topic, why) = request(port, &token, "v2/fw/request/3/chunk/0", size);
        assert_eq!(topic, "v2/fw/error", "{size}");
        assert!(
            String::from_utf8_lossy(&why).contains(says),
            "{size}: {why:?}"
        );
    }
    // A negative index is not a topic of ours: refused, on the timeline.
    // (mosquitto_pub may or may not see its connection end: the refusal is what counts.)
    let _ = crate::mqtt::mosquitto_pub(
        port,
        &[
            "-u",
            &token,
            "-q",
            "1",
            "-t",
            "v2/fw/request/1/chunk/-1",
            "-m",
            "10",
        ],
    );
    crate::mqtt::eventually("the bad topic on the timeline", || async {
        crate::mqtt::timeline(c, id)
            .await
            .iter()
            .any(|e| e.kind == "message_rejected" && e.detail.contains("chunk/-1"))
    })
    .await;

    // HTTP: whole, by chunk, resumed with Range; another version or token is refused.
    let anon = server.client();
    let path = format!("/api/v1/{token}/firmware?title=valve&version=7");
    let (status, _, whole) = anon.download(&path, None).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(whole, fw);
    let (_, _, piece) = anon
        .download(&format!("{path}&size=4096&chunk=2"), None)
        .await
        .unwrap();
    assert_eq!(piece, fw[8192..12288]);
    let (status, _, rest) = anon.download(&path, Some("bytes=99000-")).await.unwrap();
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(rest, fw[99000..]);
    let (status, ..) = anon
        .download(
            &format!("/api/v1/{token}/firmware?title=valve&version=8"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, ..) = anon
        .download("/api/v1/not-a-token/firmware?title=valve&version=7", None)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Nobody reports progress: after 3 s in NOTIFIED, TIMED_OUT (swept every 5 s).
    let timed_out = wait_state(c, id, OtaState::TimedOut).await;
    assert!(
        timed_out
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("no progress from NOTIFIED"),
        "{timed_out:?}"
    );
    // Another tenant's device and package: not found.
    let other = server.tenant("Other").await;
    let r = other
        .admin
        .put(
            &format!("/api/v1/devices/{id}/ota/firmware"),
            &json!({"package_id": p.id}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 404, "{}", r.body);
    let (other_device, _) = crate::mqtt::device(&other.admin, "theirs").await;
    let r = other
        .admin
        .put(
            &format!("/api/v1/devices/{other_device}/ota/firmware"),
            &json!({"package_id": p.id}),
        )
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.error().field.as_deref()),
        (400, Some("package_id")),
        "{}",
        r.body
    );
}
