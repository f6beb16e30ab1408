//! The OpenAPI document (`GET /api/v1/openapi.json`) against the real server: every route of the
//! route table is in it (a new route without its `#[utoipa::path]` fails here), every operation it
//! lists is routed, the reference page is served from the binary, and schemathesis (pinned in
//! e2e/python/requirements.txt) finds neither a 5xx nor an answer the document does not describe:
//! an undocumented status, body shape or content type.
//!
//! The route table is read from the server's source: every `.route("<path>", web::<method>()`
//! under `server/src`, all of them inside the `/api/v1` scope except those of `http/mod.rs`
//! (health checks and metrics, outside the API).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use stead_api_types::{CreatedApiKey, CreatedDevice, DeviceGroup, Role, User};

use crate::harness::{Backend, Options, TestServer, workspace_root};
use crate::mail::Mailbox;
use crate::on_both_backends;

/// Routes that are not part of the document, and why.
const UNDOCUMENTED: [(&str, &str); 2] = [
    // The reference page itself (HTML and its assets for people's browsers), not the API.
    ("GET", "/docs"),
    ("GET", "/docs/{file}"),
];

/// `(METHOD, path)` of every route in the `/api/v1` scope, as the server's source registers them.
fn route_table() -> BTreeSet<(String, String)> {
    let src = workspace_root().join("server/src");
    let mut routes = BTreeSet::new();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    for file in files {
        // Outside `/api/v1`: `/healthz`, `/readyz`, `/metrics` and the console's catch-all.
        if file.ends_with("http/mod.rs") || file.ends_with("http/console.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for (method, path) in routes_in(&text) {
            routes.insert((method, normalise(&path)));
        }
    }
    assert!(
        routes.len() > 100,
        "the route table reads as {} routes: did the way routes are registered change?",
        routes.len()
    );
    routes
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `.route("<path>", web::<method>()` of a file, across line breaks.
fn routes_in(text: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(".route(") {
        rest = &rest[at + ".route(".len()..];
        let Some(after_quote) = rest.trim_start().strip_prefix('"') else {
            continue;
        };
        let Some(end) = after_quote.find('"') else {
            continue;
        };
        let path = &after_quote[..end];
        let tail = after_quote[end + 1..].trim_start();
        let Some(tail) = tail.strip_prefix(',') else {
            continue;
        };
        let Some(method) = tail.trim_start().strip_prefix("web::") else {
            continue;
        };
        let method: String = method
            .chars()
            .take_while(|c| c.is_ascii_alphabetic())
            .collect();
        found.push((method.to_uppercase(), path.to_owned()));
    }
    found
}

/// `{file:.*}` → `{file}`: the document names parameters without actix's patterns.
fn normalise(path: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    let mut skipping = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push(c);
            }
            ':' if in_param => skipping = true,
            '}' => {
                in_param = false;
                skipping = false;
                out.push(c);
            }
            _ if skipping => {}
            _ => out.push(c),
        }
    }
    out
}

/// `(METHOD, path)` of every operation of the document.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("a path item").keys() {
            ops.insert((method.to_uppercase(), path.clone()));
        }
    }
    ops
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_is_documented() {
    let server = TestServer::start(Backend::Sqlite).await;
    let anonymous = server.client();
    let reply = anonymous.get("/api/v1/openapi.json").await.unwrap();
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let doc = reply.body;
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["servers"][0]["url"], "/api/v1");
    assert!(doc["info"]["title"].as_str().is_some_and(|t| !t.is_empty()));

    let documented = operations(&doc);
    let undocumented: BTreeSet<(String, String)> = UNDOCUMENTED
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    let routes = route_table();
    let missing: Vec<_> = routes
        .difference(&documented)
        .filter(|r| !undocumented.contains(r))
        .collect();
    assert!(
        missing.is_empty(),
        "routes without a #[utoipa::path] in the OpenAPI document (add one, and list the handler \
         in server/src/http/openapi.rs): {missing:#?}"
    );
    let unrouted: Vec<_> = documented.difference(&routes).collect();
    assert!(
        unrouted.is_empty(),
        "documented operations the route table does not have: {unrouted:#?}"
    );

    // Each documented operation reaches a handler of the live server (never the catch-all
    // `route_not_found`): anonymous, with made-up parameters, so nothing changes.
    for (method, path) in &documented {
        let concrete = path
            .replace("{scope}", "client")
            .replace("{token}/rpc/{id}", "no-such-token/rpc/1")
            .replace("{token}", "no-such-token")
            .split('/')
            .map(|segment| {
                if segment.starts_with('{') {
                    uuid::Uuid::new_v4().to_string()
                } else {
                    segment.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let reply = anonymous
            .send(method.clone(), &format!("/api/v1{concrete}"), None::<&()>)
            .await
            .unwrap();
        assert!(
            reply.status != 405 && reply.error().code != "route_not_found",
            "{method} {concrete} is documented but not routed: {} {:?}",
            reply.status,
            reply.body
        );
        // Every secured operation refuses an anonymous caller with a documented 401.
        let op = &doc["paths"][path][method.as_str().to_lowercase()];
        if op.get("security").is_some() {
            assert_eq!(reply.status, 401, "{method} {concrete}: {:?}", reply.body);
            assert!(op["responses"].get("401").is_some(), "{method} {path}");
        }
    }

    // The reference page and its assets come from the binary, and point at the document only.
    let page = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::limited(2))
        .build()
        .unwrap()
        .get(format!("{}/api/v1/docs", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.url().path().ends_with("/api/v1/docs/"),
        "{}",
        page.url()
    );
    let html = page.text().await.unwrap();
    let assets: Vec<&str> = html
        .split(['"', '\''])
        .filter(|s| s.ends_with(".js") || s.ends_with(".css"))
        .collect();
    assert!(assets.len() >= 4, "{html}");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "{html}"
    );
    for asset in assets {
        let name = asset.trim_start_matches("./");
        let reply = anonymous
            .get(&format!("/api/v1/docs/{name}"))
            .await
            .unwrap();
        assert_eq!(reply.status, 200, "{name}");
    }
    let init = anonymous
        .get("/api/v1/docs/swagger-initializer.js")
        .await
        .unwrap();
    let init = init.body.as_str().unwrap_or_default().to_owned();
    assert!(init.contains(r#""url": "/api/v1/openapi.json""#), "{init}");
    assert!(init.contains(r#""validatorUrl": "none""#), "{init}");
}

on_both_backends!(
    schemathesis_finds_nothing,
    nul_characters_are_refused_clearly
);

/// PostgreSQL refuses U+0000 in text: a NUL character anywhere a client can put text is a clear
/// 400 on either backend, never a 500 (nor, on the device API, a lost telemetry batch that holds
/// other devices' points).
async fn nul_characters_are_refused_clearly(backend: Backend) {
    let server = TestServer::start(backend).await;
    let tenant = server.tenant("Nul").await;
    let admin = &tenant.admin;
    let reply = admin
        .raw(
            Method::POST,
            "/api/v1/devices",
            "application/json",
            r#"{"name":"ok","metadata":{"site":"a\u0000b"}}"#,
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 400, "{:?}", reply.body);
    assert_eq!(
        (reply.error().code.as_str(), reply.error().field.as_deref()),
        ("invalid_field", Some("metadata.site"))
    );
    let reply = admin.get("/api/v1/devices?search=a%00b").await.unwrap();
    assert_eq!(reply.status, 400, "{:?}", reply.body);
    assert_eq!(reply.error().code, "invalid_query");
    let reply = admin
        .raw(
            Method::POST,
            "/api/v1/devices/import?dry_run=true",
            "text/csv",
            b"name\nab\0c\n".to_vec(),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 400, "{:?}", reply.body);
    assert_eq!(reply.error().code, "invalid_csv");

    let device: CreatedDevice = admin
        .post("/api/v1/devices", &json!({"name": "nul-http"}))
        .await
        .unwrap()
        .ok()
        .unwrap();
    let token = device.access_token.unwrap();
    let anonymous = server.client();
    for (path, body) in [
        ("telemetry", r#"{"temperature":"2\u00001"}"#),
        ("telemetry", r#"{"ts":1,"values":{"a\u0000":1}}"#),
        ("attributes", r#"{"fw":"1.\u00002"}"#),
    ] {
        let reply = anonymous
            .raw(
                Method::POST,
                &format!("/api/v1/{token}/{path}"),
                "application/json",
                body,
            )
            .await
            .unwrap();
        assert_eq!(reply.status, 400, "{path} {body}: {:?}", reply.body);
        assert_eq!(reply.error().code, "invalid_payload");
    }
    let reply = anonymous
        .post(
            &format!("/api/v1/{token}/telemetry"),
            &json!({"temperature": 21}),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let latest: Value = admin
        .get(&format!(
            "/api/v1/devices/{}/telemetry/latest",
            device.device.id
        ))
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(latest["temperature"]["value"], 21, "{latest}");
    assert!(
        !server.log_text().contains("internal error"),
        "{}",
        server.log_tail(20)
    );
}

/// Fuzzes the whole API with schemathesis, in passes that each hold what their routes need:
/// an API key for the tenant's routes, a person's token for their own account, a device's token
/// for the device API, the platform admin's token for the tenants. Bounded in examples per
/// operation and in time; any finding fails the test with schemathesis' report.
async fn schemathesis_finds_nothing(backend: Backend) {
    let python = crate::sdk::python();
    require_schemathesis(&python).await;
    // Mail configured: without it the password reset answers 503 (rightly: the server cannot).
    let mailbox = Mailbox::start().await;
    let mut options = Options::default()
        // The fuzzer calls the sign-in routes thousands of times from one address, with the
        // addresses it read from `/users` too; the tests' own sign-ins between the passes must
        // still get through.
        .env("STEAD_LOGIN_MAX_ATTEMPTS_PER_IP", "1000000")
        .env("STEAD_LOGIN_MAX_FAILURES_PER_ACCOUNT", "1000000")
        .env("STEAD_API_KEY_REQUESTS_PER_MINUTE", "1000000");
    options.env.extend(mailbox.env());
    let server = TestServer::start_with(backend, options).await;
    let tenant = server.tenant("Fuzz").await;
    let admin = &tenant.admin;

    // Some data, so that listings and lookups answer more than empty pages and 404s.
    let device: CreatedDevice = admin
        .post(
            "/api/v1/devices",
            &json!({"name": "fuzz-1", "label": "Fuzz", "metadata": {"site": "a"}}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    let token_device: CreatedDevice = admin
        .post("/api/v1/devices", &json!({"name": "fuzz-http"}))
        .await
        .unwrap()
        .ok()
        .unwrap();
    let group: DeviceGroup = admin
        .post(
            "/api/v1/groups",
            &json!({"name": "fuzz-group", "description": "fuzzed"}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    admin
        .post(
            &format!("/api/v1/groups/{}/devices", group.id),
            &json!({"device_ids": [device.device.id]}),
        )
        .await
        .unwrap()
        .ok::<Value>()
        .unwrap();
    admin
        .post(
            &format!("/api/v1/devices/{}/attributes/shared", device.device.id),
            &json!({"mode": "eco", "level": 3}),
        )
        .await
        .unwrap()
        .ok::<Value>()
        .unwrap();
    let device_api = server.client();
    let reply = device_api
        .post(
            &format!(
                "/api/v1/{}/telemetry",
                token_device.access_token.as_deref().unwrap()
            ),
            &json!({"temperature": 21.5, "on": true, "mode": "a"}),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let _operator = server.user(&tenant, Role::Operator).await;
    let users: stead_api_types::Page<User> =
        admin.get("/api/v1/users").await.unwrap().ok().unwrap();
    let other_user = users
        .items
        .iter()
        .find(|u| u.role == Role::Operator)
        .map(|u| u.id)
        .unwrap();
    let role: Value = admin
        .post(
            "/api/v1/roles",
            &json!({"name": "fuzz-role", "permissions": ["devices.read"]}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    let profiles: Vec<Value> = admin.get("/api/v1/profiles").await.unwrap().ok().unwrap();
    let key: CreatedApiKey = admin
        .post(
            "/api/v1/api-keys",
            &json!({
                "description": "schemathesis",
                "permissions": [
                    "users.read", "users.manage", "devices.read", "devices.write",
                    "profiles.manage", "commands.send", "audit.read", "roles.manage",
                    "apikeys.manage", "quotas.read", "webhooks.manage"
                ],
            }),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    // Real ids for the `{id}` of the paths, half of the time: beyond the 404s, into the handlers.
    let ids: Vec<String> = [
        device.device.id,
        token_device.device.id,
        group.id,
        other_user,
        role["id"].as_str().unwrap().parse().unwrap(),
        profiles[0]["id"].as_str().unwrap().parse().unwrap(),
        tenant.tenant.id,
    ]
    .iter()
    .map(|id| format!("\"{id}\""))
    .collect();
    let device_token = token_device.access_token.clone().unwrap();
    let config = dir.path().join("schemathesis.toml");
    std::fs::write(
        &config,
        format!(
            "[dictionaries.ids]\nvalues = [{ids}]\n\n\
             [dictionaries.tokens]\nvalues = [\"{device_token}\"]\n\n\
             [parameters]\n\
             \"path.id\" = {{ dictionary = \"ids\", probability = 0.5 }}\n\
             \"path.token\" = {{ dictionary = \"tokens\", probability = 0.7 }}\n",
            ids = ids.join(", ")
        ),
    )
    .unwrap();

    let document = format!("{}/api/v1/openapi.json", server.base);
    let started = std::time::Instant::now();
    // The four passes together: about 100 s on a quiet 2-core machine, up to three times that
    // while the rest of the suite runs beside them; a hang fails the test instead.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(SCHEMATHESIS_BUDGET_SECS);
    let mut reports = Vec::new();

    // 1. The tenant's routes, with an API key: a key cannot end its creator's sessions or be
    // locked out by the tenant's two-factor requirement, which the fuzzer will switch on.
    reports.push(
        schemathesis(
            deadline,
            &python,
            dir.path(),
            &config,
            &document,
            &key.secret,
            30,
            &[
                // Revokes the very key the fuzzer authenticates with.
                "--exclude-operation-id=revoke_api_key",
                // Live streams: they answer 200 and then never end.
                "--exclude-operation-id=live",
                "--exclude-operation-id=alarm_stream",
                // Its own pass below, with a device's token.
                "--exclude-tag=device-api",
            ],
        )
        .await,
    );

    // 2. A person's own account, with a token from a sign-in made now (the first pass may have
    // changed the tenant's sign-in rules, or the person's password: never their session).
    let person = server
        .client()
        .login("admin@fuzz.example.com", "tenant-admin-password")
        .await
        .map(|(client, _)| client);
    let person = person.expect("the tenant admin signs in after the first pass");
    reports.push(
        schemathesis(
            deadline,
            &python,
            dir.path(),
            &config,
            &document,
            person.token().unwrap(),
            30,
            &[
                "--include-tag=account",
                // Ends sessions by id: the fuzzer finds its own in `GET /me/sessions`.
                "--exclude-operation-id=end_session",
            ],
        )
        .await,
    );

    // 3. The device API, with a device's token in the path (and an Authorization header it
    // ignores).
    reports.push(
        schemathesis(
            deadline,
            &python,
            dir.path(),
            &config,
            &document,
            &key.secret,
            40,
            &[
                "--include-tag=device-api",
                // Long-polls for a command, up to 5 minutes by design.
                "--exclude-operation-id=device_poll_command",
            ],
        )
        .await,
    );

    // 4. The platform admin's routes (last: the fuzzer may suspend the tenant).
    let platform = server.admin().await;
    reports.push(
        schemathesis(
            deadline,
            &python,
            dir.path(),
            &config,
            &document,
            platform.token().unwrap(),
            30,
            &["--include-path-regex=^/tenants"],
        )
        .await,
    );

    let failed: Vec<&Run> = reports.iter().filter(|r| !r.passed).collect();
    for report in &reports {
        println!(
            "===== schemathesis {} ({}): {} =====\n{}",
            report.pass,
            backend_name(backend),
            if report.passed { "passed" } else { "FAILED" },
            report.output
        );
    }
    assert!(
        failed.is_empty(),
        "schemathesis found problems in {:?} (reports above); the server log ends with:\n{}",
        failed.iter().map(|r| r.pass.as_str()).collect::<Vec<_>>(),
        server.log_tail(60)
    );
    assert!(
        server.log_text().matches("panicked").count() == 0,
        "the server panicked during the run:\n{}",
        server.log_tail(80)
    );
    println!("schemathesis passes took {:?}", started.elapsed());
    drop(mailbox);
}

fn backend_name(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }
}

struct Run {
    pass: String,
    passed: bool,
    output: String,
}

/// How long the schemathesis passes of one backend may take together.
const SCHEMATHESIS_BUDGET_SECS: u64 = 360;

/// One schemathesis run; stopped at `deadline`, when it counts as failed.
#[allow(clippy::too_many_arguments)]
async fn schemathesis(
    deadline: tokio::time::Instant,
    python: &str,
    dir: &Path,
    config: &Path,
    document: &str,
    token: &str,
    max_examples: u32,
    filters: &[&str],
) -> Run {
    let pass = if filters.is_empty() {
        "all".to_owned()
    } else {
        filters.join(" ")
    };
    let mut command = tokio::process::Command::new(python);
    command
        .args(["-m", "schemathesis.cli", "--config-file"])
        .arg(config)
        .args(["run", document])
        .args([
            "--checks",
            "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance",
            "--max-examples",
            &max_examples.to_string(),
            // One worker: on Python 3.11, `ast.parse` in concurrent threads (hypothesis describing
            // its lambdas) can fail with "AST constructor recursion depth mismatch".
            "--workers",
            "1",
            "--request-timeout",
            "30",
            "--generation-database",
            "none",
            "--no-color",
        ])
        .arg(format!("--header=Authorization: Bearer {token}"))
        .args(filters)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {python} -m schemathesis.cli: {e}"));
    match tokio::time::timeout_at(deadline, child.wait_with_output()).await {
        Ok(Ok(out)) => Run {
            pass,
            passed: out.status.success(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        },
        Ok(Err(e)) => panic!("schemathesis did not run: {e}"),
        Err(_) => Run {
            pass,
            passed: false,
            output: format!(
                "stopped: the passes took longer than their {SCHEMATHESIS_BUDGET_SECS} s together"
            ),
        },
    }
}

/// Fails with the install command when schemathesis is missing.
async fn require_schemathesis(python: &str) {
    let out = tokio::process::Command::new(python)
        .args(["-c", "import schemathesis"])
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {python} (set STEAD_TEST_PYTHON): {e}"));
    assert!(
        out.status.success(),
        "schemathesis is not installed for {python}: `cargo xtask setup` installs \
         e2e/python/requirements.txt into the tests' environment\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
