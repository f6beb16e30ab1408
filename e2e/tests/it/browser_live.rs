//! The device page follows a device live: telemetry published with the real third-party client
//! (`mosquitto_pub`) shows up in the browser without a reload, with presence, chart and timeline.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use stead_api_types::CreatedDevice;

use crate::browser::{
    Driver, browser, screenshot, submit_login, text_of, wait_css, wait_gone, wait_text,
};
use crate::harness::{Backend, Options, TestServer};

/// The MQTT port, from the server's `{"message":"mqtt listening","addr":...}` log line.
async fn mqtt_port(server: &TestServer) -> u16 {
    let started = Instant::now();
    loop {
        let port = server.logs.lock().unwrap().iter().find_map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).ok()?;
            if v["message"] != "mqtt listening" {
                return None;
            }
            v["addr"].as_str()?.rsplit(':').next()?.parse().ok()
        });
        if let Some(port) = port {
            return port;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no \"mqtt listening\" log line:\n{}",
            server.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A `mosquitto_pub -l` session: stays connected, publishing each line written to it.
struct LinePublisher(Child);

impl LinePublisher {
    fn start(port: u16, token: &str) -> LinePublisher {
        let child = Command::new("mosquitto_pub")
            .args(["-V", "mqttv311", "-h", "127.0.0.1", "-p", &port.to_string()])
            .args(["-u", token, "-t", "v1/devices/me/telemetry", "-l"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mosquitto_pub is installed (Debian package mosquitto-clients)");
        LinePublisher(child)
    }

    fn publish(&mut self, line: &str) {
        let stdin = self.0.stdin.as_mut().expect("stdin is open");
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Ends the input: mosquitto_pub disconnects cleanly and exits.
    fn finish(mut self) {
        drop(self.0.stdin.take());
        let started = Instant::now();
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                let mut err = String::new();
                if let Some(mut e) = self.0.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                assert!(status.success(), "mosquitto_pub -l failed: {err}");
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "mosquitto_pub -l did not exit"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for LinePublisher {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telemetry_from_mosquitto_appears_live_on_the_device_page() {
    // A fixed MQTT port rather than port 0: the page shows the port the server is configured
    // with, and a person pastes what the page shows.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = TestServer::start_with(
        Backend::Sqlite,
        Options::default().env("STEAD_MQTT_ADDR", format!("127.0.0.1:{free}")),
    )
    .await;
    let port = mqtt_port(&server).await;
    let acme = server.tenant("Acme").await;
    let created: CreatedDevice = acme
        .admin
        .post(
            "/api/v1/devices",
            &serde_json::json!({"name": "boiler-7", "label": "Boiler room"}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    let token = created.access_token.clone().unwrap().clone();

    let driver = Driver::start();
    let profile = tempfile::tempdir().unwrap();
    let b = browser(&driver, profile.path()).await;

    // Sign in through the form, then open the device from the list.
    b.goto(&format!("{}/devices", server.base)).await.unwrap();
    submit_login(&b, "admin@acme.example.com", "tenant-admin-password").await;
    wait_css(&b, "[data-test=fleet-health]").await;
    crate::browser::click(&b, "[data-test=nav-devices]").await;
    wait_text(&b, "[data-test=device-row]", "boiler-7").await;
    wait_css(&b, "[data-test=device-row]")
        .await
        .click()
        .await
        .unwrap();
    wait_text(&b, "h1", "boiler-7").await;
    wait_text(&b, "[data-test=presence]", "Offline").await;
    wait_css(&b, "[data-test=no-telemetry]").await;
    // Everything below must happen without a reload: a reload would drop this marker.
    b.execute("window.steadNoReload = 'kept'; return true;", vec![])
        .await
        .unwrap();

    // The page's instructions carry the real MQTT port and work when pasted into a shell.
    let started = Instant::now();
    let shown = loop {
        let shown = text_of(&b, "[data-test=mqtt-port]").await;
        if shown.trim().parse::<u16>().is_ok() || started.elapsed() > Duration::from_secs(20) {
            break shown;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        shown.trim(),
        port.to_string(),
        "GET /api/v1/connection-info must answer the port MQTT listens on"
    );
    let command = text_of(&b, "[data-test=mqtt-command]").await;
    assert!(
        command.starts_with("mosquitto_pub ")
            && command.contains(&format!("-p {port} "))
            && command.contains("-h 127.0.0.1 ")
            && command.contains("\"$TOKEN\""),
        "{command}"
    );
    screenshot(&b, "live-empty").await;
    let out = Command::new("sh")
        .args(["-c", &command])
        .env("TOKEN", &token)
        .output()
        .expect("sh runs");
    assert!(
        out.status.success(),
        "the page's mosquitto_pub line failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log_text()
    );

    let value = "[data-test=latest-value][data-key=temperature] [data-test=value]";
    let chart_line = "[data-test=chart][data-key=temperature] path.chart-line";
    wait_text(&b, value, "21.5").await;
    assert_eq!(text_of(&b, value).await.trim(), "21.5");
    let line = wait_css(&b, chart_line).await;
    let d = line.attr("d").await.unwrap().unwrap_or_default();
    assert!(d.starts_with('M'), "the chart draws the value: {d:?}");
    wait_gone(&b, "[data-test=no-telemetry]").await;
    screenshot(&b, "live-first-value").await;

    // A device that stays connected is online, and its next value replaces the first.
    let mut device = LinePublisher::start(port, &token);
    device.publish(r#"{"temperature":22.75}"#);
    wait_text(&b, value, "22.75").await;
    wait_text(&b, "[data-test=presence]", "Online").await;
    wait_css(&b, chart_line).await;
    // The chart took the new value in too, without loading anything again.
    let chart_max = "[data-test=chart][data-key=temperature] [data-test=chart-max]";
    wait_text(&b, chart_max, "22.75").await;
    wait_css(&b, "[data-test=timeline-event][data-kind=connected]").await;
    screenshot(&b, "live-online").await;

    // It leaves: offline again, with the disconnection on the timeline.
    device.finish();
    wait_text(&b, "[data-test=presence]", "Offline").await;
    wait_css(&b, "[data-test=timeline-event][data-kind=disconnected]").await;
    screenshot(&b, "live-offline").await;

    // The page's curl line (HTTP device API) works when pasted too.
    let curl = text_of(&b, "[data-test=http-command]").await;
    assert!(
        curl.starts_with("curl ") && curl.contains(&server.base),
        "{curl}"
    );
    let out = Command::new("sh")
        .args(["-c", &curl])
        .env("TOKEN", &token)
        .output()
        .expect("sh runs");
    let answer = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && !answer.contains("\"code\""),
        "the page's curl line failed: {answer} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_text(&b, value, "21.5").await;
    assert_eq!(text_of(&b, value).await.trim(), "21.5");

    let marker = b
        .execute("return window.steadNoReload || null;", vec![])
        .await
        .unwrap();
    assert_eq!(marker, serde_json::json!("kept"), "the page was reloaded");
    b.close().await.unwrap();
}
