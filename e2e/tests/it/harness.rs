//! Starts the real `stead` binary for one test, on ephemeral ports, with its own database
//! (a fresh SQLite file, or a fresh PostgreSQL database) and its own Redis key prefix, and tears
//! all of it down afterwards. Its log lines are kept so tests can assert on them.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use stead_api_types::{Role, Tenant};
use stead_e2e::Client;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded default: SQLite and in-process live state.
    Sqlite,
    /// PostgreSQL and Redis, as a production deployment runs.
    Postgres,
}

/// Generates `mod NAME { sqlite, postgres }` tests that run `NAME(Backend)` on each backend.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::harness::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::harness::Backend::Postgres).await
            }
        }
    )*};
}

pub fn pg_base_url() -> String {
    std::env::var("STEAD_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

pub fn redis_url() -> String {
    std::env::var("STEAD_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// The workspace root (this crate lives in `<root>/e2e`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e has a parent")
        .to_path_buf()
}

/// Cargo's target directory: this test binary is `<target>/<profile>/deps/it-<hash>`.
pub fn target_dir() -> PathBuf {
    profile_dir()
        .parent()
        .expect("the profile directory lives in the target directory")
        .to_path_buf()
}

fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps")
        .to_path_buf()
}

/// The `stead` binary built beside this test binary (`cargo xtask test` builds it first).
pub fn stead_bin() -> PathBuf {
    if let Ok(bin) = std::env::var("STEAD_BIN") {
        return bin.into();
    }
    let bin = profile_dir().join("stead");
    assert!(
        bin.exists(),
        "the stead binary is not built at {}: run `cargo build -p stead` (cargo xtask test does it for you)",
        bin.display()
    );
    bin
}

/// Runs `psql` against the test server's maintenance database.
pub fn psql(database: &str, sql: &str) -> String {
    let url = format!("{}/{database}", pg_base_url());
    let out = Command::new("psql")
        .args([url.as_str(), "-v", "ON_ERROR_STOP=1", "-tAc", sql])
        .output()
        .expect("psql is installed (PostgreSQL client)");
    assert!(
        out.status.success(),
        "psql failed (is PostgreSQL running at {}?): {}",
        pg_base_url(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Runs `sql` against a test's own storage: its PostgreSQL database, or the SQLite database in
/// `data_dir` (through Python's sqlite3, as the tests' Python has it). Answers the rows, one per
/// line, columns separated by `|`.
pub fn sql(database: Option<&str>, data_dir: &Path, sql: &str) -> String {
    if let Some(name) = database {
        return psql(name, sql);
    }
    let python = std::env::var("STEAD_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(&python)
        .args([
            "-c",
            "import sqlite3, sys\n\
             db = sqlite3.connect(sys.argv[1], timeout=30)\n\
             rows = db.execute(sys.argv[2]).fetchall()\n\
             db.commit()\n\
             print('\\n'.join('|'.join('' if v is None else str(v) for v in r) for r in rows))",
        ])
        .arg(data_dir.join("stead.db"))
        .arg(sql)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python} (set STEAD_TEST_PYTHON): {e}"));
    assert!(
        out.status.success(),
        "sqlite3 failed on {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Runs before the server starts, given its (empty) data directory and, on PostgreSQL, the name
/// of its freshly created database: to put an earlier release's database or a backup in place.
pub type Prepare = Arc<dyn Fn(&Path, Option<&str>) + Send + Sync>;

/// A `stead` command with nothing from the developer's own environment (`STEAD_*`, `OTEL_*`),
/// so a test sets exactly the configuration it means.
pub fn stead_command() -> Command {
    command_for(stead_bin())
}

/// `bin` with nothing from the developer's own environment leaking in.
fn command_for(bin: PathBuf) -> Command {
    let mut command = Command::new(bin);
    command.stdin(Stdio::null());
    for (key, _) in std::env::vars() {
        if key.starts_with("STEAD_") || key.starts_with("OTEL_") || key == "RUST_LOG" {
            command.env_remove(key);
        }
    }
    command
}

/// What a test wants to differ from the defaults.
#[derive(Default, Clone)]
pub struct Options {
    /// Prepares the storage before the server starts (see [`Prepare`]).
    pub prepare: Option<Prepare>,
    pub env: Vec<(String, String)>,
    /// Run this binary instead of [`stead_bin`].
    pub bin: Option<PathBuf>,
    /// Start it in this working directory instead of the server's fresh temporary one.
    pub cwd: Option<PathBuf>,
    /// Arguments after `serve` (e.g. `--roles api`).
    pub args: Vec<String>,
    /// Another node of `join`'s deployment: same database, Redis prefix and keys.
    pub join: Option<Shared>,
}

/// What the nodes of one deployment share.
#[derive(Clone)]
pub struct Shared {
    pub database: String,
    pub redis_prefix: String,
    pub jwt_secret: String,
    pub admin_password: String,
}

impl Options {
    pub fn env(mut self, key: &str, value: impl Into<String>) -> Options {
        self.env.push((key.into(), value.into()));
        self
    }
}

pub struct TestServer {
    child: Child,
    pub backend: Backend,
    pub base: String,
    /// `host:port` of the MQTT ingress.
    pub mqtt: String,
    /// `host:port` of the MQTT-over-TLS listener, when configured.
    pub mqtts: String,
    pub admin_email: String,
    pub admin_password: String,
    pub jwt_secret: String,
    /// Every line the server wrote to stdout and stderr so far (of the current process).
    pub logs: Arc<Mutex<Vec<String>>>,
    pub database: Option<String>,
    pub redis_prefix: String,
    /// `STEAD_DATA_DIR` (the SQLite database is `stead.db` in it).
    pub data_dir: PathBuf,
    /// How the process was started, for `restart`: the binary, its working directory, the
    /// arguments after `serve` and the environment.
    bin: PathBuf,
    cwd: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// Holds the data directory until the server is dropped.
    _dir: tempfile::TempDir,
}

/// A started `stead serve` process and what it logged.
struct Launched {
    child: Child,
    logs: Arc<Mutex<Vec<String>>>,
    base: String,
    mqtt: String,
    mqtts: String,
}

/// Starts the binary in `dir` with exactly `env` (nothing of the developer's own leaks in) and
/// waits until it listens.
fn launch(bin: &Path, dir: &Path, args: &[String], env: &[(String, String)]) -> Launched {
    let mut command = command_for(bin.to_path_buf());
    command
        .arg("serve")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("start stead");
    let logs = Arc::new(Mutex::new(Vec::new()));
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    {
        let logs = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                    && let Some(kind) = v["message"]
                        .as_str()
                        .and_then(|m| m.strip_suffix(" listening"))
                {
                    let kind = kind.to_owned();
                    let _ = addr_tx.send((kind, v["addr"].as_str().unwrap_or_default().to_owned()));
                }
                logs.lock().unwrap().push(line);
            }
        });
    }
    {
        let logs = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                logs.lock().unwrap().push(line);
            }
        });
    }
    let started = Instant::now();
    let (mut mqtt, mut mqtts) = (String::new(), String::new());
    let addr = loop {
        match addr_rx.recv_timeout(Duration::from_millis(100)) {
            Ok((kind, addr)) if kind == "mqtt" => mqtt = addr,
            Ok((kind, addr)) if kind == "mqtts" => mqtts = addr,
            Ok((_, addr)) => break addr,
            Err(_) => {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "stead exited with {status} before listening:\n{}",
                        logs.lock().unwrap().join("\n")
                    );
                }
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "stead did not start within 60 s:\n{}",
                    logs.lock().unwrap().join("\n")
                );
            }
        }
    };
    Launched {
        child,
        logs,
        base: format!("http://{addr}"),
        mqtt,
        mqtts,
    }
}

impl TestServer {
    pub async fn start(backend: Backend) -> TestServer {
        TestServer::start_with(backend, Options::default()).await
    }

    pub async fn start_with(backend: Backend, options: Options) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let admin_password = options
            .join
            .as_ref()
            .map(|j| j.admin_password.clone())
            .unwrap_or_else(|| format!("admin-{}", Uuid::new_v4().simple()));
        let jwt_secret = options
            .join
            .as_ref()
            .map(|j| j.jwt_secret.clone())
            .unwrap_or_else(|| format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple()));
        let redis_prefix = options
            .join
            .as_ref()
            .map(|j| j.redis_prefix.clone())
            .unwrap_or_else(|| format!("stead-test:{}:", Uuid::new_v4().simple()));
        let data_dir = dir.path().join("data");
        let mut env: Vec<(String, String)> = [
            ("STEAD_HTTP_ADDR", "127.0.0.1:0".to_owned()),
            ("STEAD_MQTT_ADDR", "127.0.0.1:0".to_owned()),
            ("STEAD_DATA_DIR", data_dir.display().to_string()),
            ("STEAD_LOG_FORMAT", "json".to_owned()),
            ("STEAD_LOG", "info,stead=debug".to_owned()),
            ("STEAD_BOOTSTRAP_ADMIN_EMAIL", "admin@test.local".to_owned()),
            ("STEAD_BOOTSTRAP_ADMIN_PASSWORD", admin_password.clone()),
            ("STEAD_JWT_SECRET", jwt_secret.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let mut database = None;
        let shared_db = if let Some(join) = &options.join {
            // Joins an existing deployment; the first node owns (and drops) the database.
            Some(join.database.clone())
        } else if backend == Backend::Postgres {
            let name = format!("stead_t_{}", Uuid::new_v4().simple());
            psql("postgres", &format!("CREATE DATABASE {name}"));
            database = Some(name.clone());
            Some(name)
        } else {
            None
        };
        if let Some(name) = shared_db {
            env.push((
                "STEAD_DATABASE_URL".into(),
                format!("{}/{name}", pg_base_url()),
            ));
            env.push(("STEAD_REDIS_URL".into(), redis_url()));
            env.push(("STEAD_REDIS_PREFIX".into(), redis_prefix.clone()));
        }
        env.extend(options.env.iter().cloned());
        if let Some(prepare) = &options.prepare {
            std::fs::create_dir_all(&data_dir).expect("create the data directory");
            prepare(&data_dir, database.as_deref());
        }
        let bin = options.bin.clone().unwrap_or_else(stead_bin);
        let cwd = options
            .cwd
            .clone()
            .unwrap_or_else(|| dir.path().to_path_buf());
        let launched = launch(&bin, &cwd, &options.args, &env);
        TestServer {
            child: launched.child,
            backend,
            base: launched.base,
            mqtt: launched.mqtt,
            mqtts: launched.mqtts,
            admin_email: "admin@test.local".into(),
            admin_password,
            jwt_secret,
            logs: launched.logs,
            database,
            redis_prefix,
            data_dir,
            bin,
            cwd,
            args: options.args,
            env,
            _dir: dir,
        }
    }

    /// Sends SIGTERM (an orchestrator stopping the node).
    pub fn sigterm(&self) {
        self.signal("-TERM");
    }

    /// `kill -9`: no shutdown hook, no flush, no goodbye to anyone. Waits for the process.
    pub fn kill9(&mut self) {
        self.signal("-KILL");
        let status = self.child.wait().expect("reap the killed server");
        assert!(!status.success(), "killed, yet exited with {status}");
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill is installed");
        assert!(status.success(), "kill {signal} {} failed", self.child.id());
    }

    /// The process's exit status, once it has exited within `timeout`; `None` if it still runs.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("query the server process") {
                return Some(status);
            }
            if started.elapsed() >= timeout {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the server again on the same storage and settings (new ports), after its process
    /// has exited.
    pub async fn restart(&mut self) {
        assert!(
            self.child
                .try_wait()
                .expect("query the server process")
                .is_some(),
            "restart: the server still runs"
        );
        let launched = launch(&self.bin, &self.cwd, &self.args, &self.env);
        self.child = launched.child;
        self.base = launched.base;
        self.mqtt = launched.mqtt;
        self.mqtts = launched.mqtts;
        self.logs = launched.logs;
    }

    /// An anonymous client.
    pub fn client(&self) -> Client {
        Client::new(&self.base)
    }

    /// The platform admin, logged in.
    pub async fn admin(&self) -> Client {
        self.client()
            .login(&self.admin_email, &self.admin_password)
            .await
            .expect("platform admin login")
            .0
    }

    /// A new tenant with its first admin, logged in.
    pub async fn tenant(&self, name: &str) -> TestTenant {
        let admin = self.admin().await;
        let email = format!("admin@{}.example.com", name.to_lowercase());
        let password = "tenant-admin-password".to_string();
        let tenant: Tenant = admin
            .post(
                "/api/v1/tenants",
                &serde_json::json!({"name": name, "admin_email": email, "admin_password": password}),
            )
            .await
            .unwrap()
            .ok()
            .unwrap();
        let client = self.client().login(&email, &password).await.unwrap().0;
        TestTenant {
            tenant,
            admin: client,
        }
    }

    /// A user with `role` in `tenant`, logged in.
    pub async fn user(&self, tenant: &TestTenant, role: Role) -> Client {
        let email = format!(
            "{}-{}@{}.example.com",
            role.as_str(),
            Uuid::new_v4().simple(),
            tenant.tenant.name.to_lowercase()
        );
        let password = "user-password-123";
        let reply = tenant
            .admin
            .post(
                "/api/v1/users",
                &serde_json::json!({"email": email, "password": password, "role": role}),
            )
            .await
            .unwrap();
        assert_eq!(reply.status, 201, "{:?}", reply.body);
        self.client().login(&email, password).await.unwrap().0
    }

    /// What another node needs to join this deployment (PostgreSQL + Redis only).
    pub fn shared(&self) -> Shared {
        Shared {
            database: self.database.clone().expect("a PostgreSQL deployment"),
            redis_prefix: self.redis_prefix.clone(),
            jwt_secret: self.jwt_secret.clone(),
            admin_password: self.admin_password.clone(),
        }
    }

    /// Runs `sql` against this server's database ([`sql`]).
    pub fn sql(&self, statement: &str) -> String {
        sql(self.database.as_deref(), &self.data_dir, statement)
    }

    /// Runs `stead <args>` on this server's storage, as an operator would beside it.
    pub fn stead(&self, args: &[&str]) -> Output {
        let env = storage_env(&self.data_dir, self.database.as_deref());
        run_stead(self.data_dir.parent().unwrap_or(&self.data_dir), args, &env)
    }

    /// The MQTT port.
    pub fn mqtt_port(&self) -> u16 {
        self.mqtt
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("the server logged its MQTT address")
    }

    pub fn log_text(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// The last `lines` log lines of the current process.
    pub fn log_tail(&self, lines: usize) -> String {
        let logs = self.logs.lock().unwrap();
        logs[logs.len().saturating_sub(lines)..].join("\n")
    }
}

pub struct TestTenant {
    pub tenant: Tenant,
    pub admin: Client,
}

/// Drops a test's PostgreSQL database and deletes its Redis keys (a best effort: teardown).
pub fn clean_up(backend: Backend, database: Option<&str>, redis_prefix: &str) {
    if let Some(name) = database {
        let _ = Command::new("psql")
            .args([
                format!("{}/postgres", pg_base_url()).as_str(),
                "-qc",
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            ])
            .output();
    }
    if backend == Backend::Postgres
        && let Ok(client) = redis::Client::open(redis_url())
        && let Ok(mut conn) = client.get_connection()
    {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{redis_prefix}*"))
            .query(&mut conn)
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: Result<(), _> = redis::cmd("DEL").arg(keys).query(&mut conn);
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // A failing test shows what the server said last: its errors name the cause.
        if std::thread::panicking() {
            eprintln!("--- the server's last log lines ---\n{}", self.log_tail(40));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A node that joined another's deployment leaves its storage to the first node.
        let joined = self.backend == Backend::Postgres && self.database.is_none();
        if !joined {
            clean_up(self.backend, self.database.as_deref(), &self.redis_prefix);
        }
    }
}

/// The configuration that points a `stead` command at a test's storage.
pub fn storage_env(data_dir: &Path, database: Option<&str>) -> Vec<(String, String)> {
    let mut env = vec![
        ("STEAD_DATA_DIR".to_string(), data_dir.display().to_string()),
        // Ephemeral ports: a command never collides with another test's server.
        ("STEAD_HTTP_ADDR".to_string(), "127.0.0.1:0".to_string()),
        ("STEAD_MQTT_ADDR".to_string(), "127.0.0.1:0".to_string()),
    ];
    if let Some(name) = database {
        env.push((
            "STEAD_DATABASE_URL".into(),
            format!("{}/{name}", pg_base_url()),
        ));
    }
    env
}

/// Runs `stead <args>` to completion (at most 60 s) with `env`, from `dir`.
pub fn run_stead(dir: &Path, args: &[&str], env: &[(String, String)]) -> Output {
    let mut command = stead_command();
    command
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("STEAD_LOG_FORMAT", "json");
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("start stead");
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("stead {args:?} did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Storage for a test that runs `stead` commands itself: a temporary directory with the data
/// directory in it and, on PostgreSQL, a fresh database; all of it dropped afterwards.
pub struct Scratch {
    pub backend: Backend,
    pub dir: tempfile::TempDir,
    pub data_dir: PathBuf,
    pub database: Option<String>,
}

impl Scratch {
    pub fn new(backend: Backend) -> Scratch {
        let dir = tempfile::tempdir().expect("temp dir");
        let database = (backend == Backend::Postgres).then(|| {
            let name = format!("stead_t_{}", Uuid::new_v4().simple());
            psql("postgres", &format!("CREATE DATABASE {name}"));
            name
        });
        Scratch {
            backend,
            data_dir: dir.path().join("data"),
            dir,
            database,
        }
    }

    /// The configuration pointing at this storage ([`storage_env`]).
    pub fn env(&self) -> Vec<(String, String)> {
        storage_env(&self.data_dir, self.database.as_deref())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        clean_up(self.backend, self.database.as_deref(), "stead-test-unused:");
    }
}

/// A self-signed certificate for localhost and 127.0.0.1 and its key, valid for `days`, written
/// into `dir`: answers their paths.
pub fn certificate(dir: &Path, days: u32) -> (String, String) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args([
            "-nodes",
            "-days",
            &days.to_string(),
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl is installed");
    assert!(out.status.success(), "{}", text(&out));
    (cert.display().to_string(), key.display().to_string())
}
