//! The console in a real headless Chromium (driven through chromedriver) against the real server.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client as Browser, ClientBuilder, Locator};
use stead_api_types::{Device, Page};

use crate::harness::{Backend, Options, TestServer, TestTenant};

/// chromedriver on a free port, killed on drop.
pub struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    pub fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "chromedriver is installed (Debian package chromium-driver; .ci/run installs it)",
            );
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn browser(driver: &Driver, profile: &std::path::Path) -> Browser {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--window-size=1280,900",
                format!("--user-data-dir={}", profile.display()),
            ]
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a Chromium session")
}

pub async fn screenshot(b: &Browser, name: &str) {
    if let Ok(dir) = std::env::var("STEAD_SCREENSHOT_DIR") {
        let png = b.screenshot().await.unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(std::path::Path::new(&dir).join(format!("{name}.png")), png).unwrap();
    }
}

pub async fn wait_css(b: &Browser, css: &str) -> fantoccini::elements::Element {
    b.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css} on the page: {e}"))
}

/// Fills in and submits the login form.
pub async fn submit_login(b: &Browser, email: &str, password: &str) {
    fill(b, "input[name=email]", email).await;
    fill(b, "input[name=password]", password).await;
    click(b, "button[type=submit]").await;
}

/// How often an action on an element is tried: the console may render the element again
/// between finding it and acting on it (a stale element), which a fresh lookup answers.
const ATTEMPTS: u32 = 5;

/// Replaces the text of the input matching `css` with `text`.
pub async fn fill(b: &Browser, css: &str, text: &str) {
    let mut last = None;
    for _ in 0..ATTEMPTS {
        let input = wait_css(b, css).await;
        match input.clear().await {
            Ok(()) => match input.send_keys(text).await {
                Ok(()) => return,
                Err(e) => last = Some(e),
            },
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("typing into {css}: {}", last.expect("tried at least once"));
}

pub async fn wait_text(b: &Browser, css: &str, text: &str) {
    let started = Instant::now();
    loop {
        let mut found = false;
        for el in b.find_all(Locator::Css(css)).await.unwrap() {
            if el.text().await.unwrap_or_default().contains(text) {
                found = true;
            }
        }
        if found {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no {css} containing {text:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The text of the first element matching `css`.
pub async fn text_of(b: &Browser, css: &str) -> String {
    wait_css(b, css).await.text().await.unwrap()
}

/// The text of the first element matching `css`, once it shows any (a dialog fading in reads
/// as empty).
pub async fn shown_text(b: &Browser, css: &str) -> String {
    let started = Instant::now();
    loop {
        let text = text_of(b, css).await;
        if !text.trim().is_empty() {
            return text;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{css} shows no text"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until no element matches `css`.
pub async fn wait_gone(b: &Browser, css: &str) {
    let started = Instant::now();
    while !b.find_all(Locator::Css(css)).await.unwrap().is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{css} is still on the page"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until exactly `n` elements match `css`.
pub async fn wait_count(b: &Browser, css: &str, n: usize) {
    let started = Instant::now();
    loop {
        let found = b.find_all(Locator::Css(css)).await.unwrap().len();
        if found == n {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{found} elements match {css}, not {n}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Clicks the element, brought to the middle of the window first, as a person would scroll to
/// it (at the edge, a toast may cover it). When the click fails, the toasts are closed, as a
/// person would, and the element looked up again (the console may have rendered it anew) for
/// up to `ATTEMPTS` tries.
pub async fn click(b: &Browser, css: &str) {
    let mut last = None;
    for _ in 0..ATTEMPTS {
        let element = wait_css(b, css).await;
        let arg = serde_json::to_value(&element).unwrap();
        let shown = b
            .execute(
                "arguments[0].scrollIntoView({block: 'center'}); return true;",
                vec![arg],
            )
            .await;
        match shown {
            Ok(_) => match element.click().await {
                Ok(()) => return,
                Err(e) => last = Some(e),
            },
            Err(e) => last = Some(e),
        }
        // A toast may cover it, or the page rendered it again: close the toasts, look again.
        dismiss_toasts(b).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("clicking {css}: {}", last.expect("tried at least once"));
}

/// Closes the toasts, which may cover a button at the bottom right.
pub async fn dismiss_toasts(b: &Browser) {
    b.execute(
        "document.querySelectorAll('.toast-close').forEach(x => x.click()); return true;",
        vec![],
    )
    .await
    .unwrap();
}

/// Asserts, through the API, that the device has the shared attribute `key` = `value`.
pub async fn assert_shared(
    tenant: &TestTenant,
    device: uuid::Uuid,
    key: &str,
    value: serde_json::Value,
) {
    let attrs: Vec<stead_api_types::Attribute> = tenant
        .admin
        .get(&format!("/api/v1/devices/{device}/attributes?scope=shared"))
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert!(
        attrs.iter().any(|a| a.key == key && a.value == value),
        "no shared {key} = {value}: {attrs:?}"
    );
}

/// The console on a fresh embedded server with the tenant "Acme", and chromedriver.
pub struct Console {
    pub server: TestServer,
    pub acme: TestTenant,
    driver: Driver,
    profile: tempfile::TempDir,
}

impl Console {
    pub async fn start() -> Console {
        Console::start_with(Options::default()).await
    }

    /// The same with the server started with `options` (a mail server's environment, say).
    pub async fn start_with(options: Options) -> Console {
        let server = TestServer::start_with(Backend::Sqlite, options).await;
        let acme = server.tenant("Acme").await;
        Console {
            server,
            acme,
            driver: Driver::start(),
            profile: tempfile::tempdir().unwrap(),
        }
    }

    /// A browser with Acme's admin signed in, on the device list.
    pub async fn sign_in(&self) -> Browser {
        let b = browser(&self.driver, self.profile.path()).await;
        b.goto(&format!("{}/devices", self.server.base))
            .await
            .unwrap();
        submit_login(&b, "admin@acme.example.com", "tenant-admin-password").await;
        wait_text(&b, "[data-test=current-user]", "admin@acme.example.com").await;
        // Signing in lands on the fleet health page.
        wait_text(&b, "h1", "Fleet health").await;
        click(&b, "[data-test=nav-devices]").await;
        wait_text(&b, "h1", "Devices").await;
        b
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_in_create_a_device_reload_and_log_out() {
    let server = TestServer::start(Backend::Sqlite).await;
    let acme = server.tenant("Acme").await;
    let driver = Driver::start();
    let profile = tempfile::tempdir().unwrap();
    let b = browser(&driver, profile.path()).await;

    b.goto(&format!("{}/", server.base)).await.unwrap();
    // Not logged in: the console sends us to the login form.
    submit_login(&b, "admin@acme.example.com", "wrong-password-here").await;
    wait_text(&b, "[data-test=error]", "wrong e-mail or password").await;

    let password = wait_css(&b, "input[name=password]").await;
    password.clear().await.unwrap();
    password.send_keys("tenant-admin-password").await.unwrap();
    wait_css(&b, "button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    wait_text(&b, "[data-test=current-user]", "admin@acme.example.com").await;
    wait_css(&b, "[data-test=fleet-health]").await;
    click(&b, "[data-test=nav-devices]").await;
    screenshot(&b, "devices-empty").await;

    wait_css(&b, "[data-test=new-device]")
        .await
        .click()
        .await
        .unwrap();
    wait_css(&b, "input[name=name]")
        .await
        .send_keys("boiler-7")
        .await
        .unwrap();
    wait_css(&b, "input[name=label]")
        .await
        .send_keys("Boiler room")
        .await
        .unwrap();
    screenshot(&b, "device-create").await;
    let form = wait_css(&b, "form input[name=name]").await;
    form.send_keys("\n").await.unwrap();
    let token = shown_text(&b, "[data-test=device-token]").await;
    assert_eq!(
        token.trim().len(),
        43,
        "the one-time token is shown: {token:?}"
    );
    wait_css(&b, "[data-test=copy-token]").await;
    screenshot(&b, "device-token").await;
    wait_css(&b, "[data-test=close-token]")
        .await
        .click()
        .await
        .unwrap();
    wait_text(&b, "[data-test=device-row]", "boiler-7").await;
    screenshot(&b, "devices-list").await;

    // The device really exists, through the API.
    let list: Page<Device> = acme
        .admin
        .get("/api/v1/devices")
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(
        list.items
            .iter()
            .map(|d| d.name.as_str())
            .collect::<Vec<_>>(),
        ["boiler-7"]
    );

    // A reload keeps the session.
    b.refresh().await.unwrap();
    wait_text(&b, "[data-test=device-row]", "boiler-7").await;
    wait_text(&b, "[data-test=current-user]", "admin@acme.example.com").await;
    let token_gone = b
        .find_all(Locator::Css("[data-test=device-token]"))
        .await
        .unwrap();
    assert!(token_gone.is_empty(), "the token is never shown again");

    wait_css(&b, "[data-test=logout]")
        .await
        .click()
        .await
        .unwrap();
    wait_css(&b, "input[name=email]").await;
    // Logged out for real: a reload stays on the login form.
    b.refresh().await.unwrap();
    wait_css(&b, "input[name=email]").await;
    assert!(
        b.find_all(Locator::Css("[data-test=device-row]"))
            .await
            .unwrap()
            .is_empty()
    );
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_page_tabs_edit_shared_attributes_and_show_client_ones_read_only() {
    let console = Console::start().await;
    let (server, acme) = (&console.server, &console.acme);
    let created: stead_api_types::CreatedDevice = acme
        .admin
        .post("/api/v1/devices", &serde_json::json!({"name": "boiler-7"}))
        .await
        .unwrap()
        .ok()
        .unwrap();
    let token = created.access_token.unwrap();
    // The device reports a client attribute over the HTTP device API.
    let reply = server
        .client()
        .post(
            &format!("/api/v1/{token}/attributes"),
            &serde_json::json!({"firmware": "1.4.2"}),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{:?}", reply.body);

    let b = console.sign_in().await;
    click(&b, "[data-test=device-row]").await;
    wait_text(&b, "h1", "boiler-7").await;
    click(&b, "[data-test=tab-attributes]").await;

    // The client attribute is listed, without edit buttons.
    let client = "[data-test=attribute-row][data-scope=client][data-key=firmware]";
    wait_text(
        &b,
        &format!("{client} [data-test=attribute-value]"),
        "1.4.2",
    )
    .await;
    assert!(
        b.find_all(Locator::Css(&format!(
            "{client} [data-test=edit-attribute]"
        )))
        .await
        .unwrap()
        .is_empty(),
        "client attributes are read-only"
    );

    // Add a shared attribute; a value that is not JSON is refused before sending.
    click(&b, "[data-test=add-attribute-shared]").await;
    wait_css(&b, "input[name=attribute_key]")
        .await
        .send_keys("targetTemperature")
        .await
        .unwrap();
    let value = wait_css(&b, "textarea[name=attribute_value]").await;
    value.send_keys("warm").await.unwrap();
    click(&b, "[data-test=save-attribute]").await;
    wait_text(&b, "[data-test=error]", "not valid JSON").await;
    value.clear().await.unwrap();
    value.send_keys("21.5").await.unwrap();
    click(&b, "[data-test=save-attribute]").await;
    let shared = "[data-test=attribute-row][data-scope=shared][data-key=targetTemperature]";
    wait_text(&b, &format!("{shared} [data-test=attribute-value]"), "21.5").await;
    wait_text(&b, shared, "v1").await;

    // Edit it: the version goes up.
    click(&b, &format!("{shared} [data-test=edit-attribute]")).await;
    let value = wait_css(&b, "textarea[name=attribute_value]").await;
    value.clear().await.unwrap();
    value.send_keys("22").await.unwrap();
    click(&b, "[data-test=save-attribute]").await;
    wait_text(&b, &format!("{shared} [data-test=attribute-value]"), "22").await;
    wait_text(&b, shared, "v2").await;
    screenshot(&b, "device-attributes").await;

    // The tab is in the URL: a reload comes back to it.
    b.refresh().await.unwrap();
    wait_text(&b, &format!("{shared} [data-test=attribute-value]"), "22").await;

    let attrs: Vec<stead_api_types::Attribute> = acme
        .admin
        .get(&format!(
            "/api/v1/devices/{}/attributes?scope=shared",
            created.device.id
        ))
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(attrs.len(), 1);
    assert_eq!(attrs[0].value, serde_json::json!(22));
    assert_eq!(attrs[0].version, 2);

    // Delete it.
    click(&b, &format!("{shared} [data-test=delete-attribute]")).await;
    click(&b, "[data-test=confirm]").await;
    wait_gone(&b, shared).await;
    b.close().await.unwrap();
}
