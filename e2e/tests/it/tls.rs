//! MQTT over TLS with a real certificate chain and third-party clients.

use std::process::Command;

use stead_api_types::LatestTelemetry;

use crate::harness::{Backend, Options, TestServer, certificate};
use crate::mqtt::{device, mosquitto_pub};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_connect_over_tls() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(certs.path(), 1);

    let server = TestServer::start_with(
        Backend::Sqlite,
        Options::default()
            .env("STEAD_MQTT_TLS_ADDR", "127.0.0.1:0")
            .env("STEAD_MQTT_TLS_CERT", &cert)
            .env("STEAD_MQTT_TLS_KEY", &key),
    )
    .await;
    let tls_port: u16 = server
        .mqtts
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .expect("the server logged its TLS address");
    let acme = server.tenant("Acme").await;
    let (id, token) = device(&acme.admin, "secure").await;
    let cafile = cert.clone();

    for (version, n) in [("mqttv311", 1), ("mqttv5", 2)] {
        let payload = format!(r#"{{"secure":{n}}}"#);
        let (ok, out) = mosquitto_pub(
            tls_port,
            &[
                "--cafile",
                &cafile,
                "-V",
                version,
                "-q",
                "1",
                "-u",
                &token,
                "-t",
                "v1/devices/me/telemetry",
                "-m",
                &payload,
            ],
        );
        assert!(ok, "{version} over TLS: {out}");
    }
    let latest: LatestTelemetry = acme
        .admin
        .get(&format!("/api/v1/devices/{id}/telemetry/latest"))
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(latest["secure"].value, serde_json::json!(2));

    // Plain MQTT on the TLS port fails; a client that does not trust the certificate fails.
    let (ok, _) = mosquitto_pub(
        tls_port,
        &[
            "-q",
            "1",
            "-u",
            &token,
            "-t",
            "v1/devices/me/telemetry",
            "-m",
            "{\"x\":1}",
        ],
    );
    assert!(!ok, "no plain MQTT on the TLS port");
    let (ok, out) = mosquitto_pub(
        tls_port,
        &[
            "--capath",
            "/nonexistent",
            "-q",
            "1",
            "-u",
            &token,
            "-t",
            "v1/devices/me/telemetry",
            "-m",
            "{\"x\":1}",
        ],
    );
    assert!(
        !ok,
        "an untrusted certificate is refused by the client: {out}"
    );
    // The plain listener still works beside it, and the server keeps serving.
    let (ok, out) = mosquitto_pub(
        server.mqtt_port(),
        &[
            "-q",
            "1",
            "-u",
            &token,
            "-t",
            "v1/devices/me/telemetry",
            "-m",
            "{\"plain\":1}",
        ],
    );
    assert!(ok, "{out}");

    // Unreadable TLS files stop start-up with a message naming the setting.
    let bad = Command::new(crate::harness::stead_bin())
        .arg("serve")
        .env_clear()
        .env("STEAD_HTTP_ADDR", "127.0.0.1:0")
        .env("STEAD_MQTT_ADDR", "127.0.0.1:0")
        .env("STEAD_DATA_DIR", certs.path().join("data"))
        .env("STEAD_MQTT_TLS_ADDR", "127.0.0.1:0")
        .env("STEAD_MQTT_TLS_CERT", certs.path().join("missing.pem"))
        .env("STEAD_MQTT_TLS_KEY", &key)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("STEAD_MQTT_TLS_CERT"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}
