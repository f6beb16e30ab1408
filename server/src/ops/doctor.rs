//! `stead doctor`: checks a deployment's configuration and the services it needs, as
//! `stead serve` with the same configuration and roles would use them, and says in words what is
//! wrong: one line per check, `ok`, `warn` or `fail`. Nothing is changed: the database and the
//! data directory are only read (a probe file is written and removed), ports are bound and let
//! go at once. The exit code is 1 when a check fails, so scripts and init containers can gate a
//! start on it.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sea_orm::{ConnectionTrait as _, DatabaseBackend, DatabaseConnection, Statement};

use crate::config::{Config, Role};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Clone)]
pub struct Check {
    pub level: Level,
    pub name: &'static str,
    pub detail: String,
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let level = match self.level {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Fail => "fail",
        };
        write!(f, "{level:<5} {}: {}", self.name, self.detail)
    }
}

fn check(level: Level, name: &'static str, detail: impl Into<String>) -> Check {
    Check {
        level,
        name,
        detail: detail.into(),
    }
}

/// A database or Redis that does not answer within this is reported as unreachable.
const SERVICE_TIMEOUT: Duration = Duration::from_secs(10);
/// Clocks further apart than this (this machine against the database's or Redis's) are
/// reported: telemetry without a timestamp is stamped by whichever node receives it.
const MAX_SKEW_MS: i64 = 2000;

/// Loads the configuration, runs every check, prints one line each and a summary.
pub async fn main(roles: &[String]) -> ExitCode {
    let checks = run(roles).await;
    for c in &checks {
        println!("{c}");
    }
    let failed = checks.iter().filter(|c| c.level == Level::Fail).count();
    let warned = checks.iter().filter(|c| c.level == Level::Warn).count();
    println!(
        "stead doctor: {} checks, {failed} failed, {warned} warnings",
        checks.len()
    );
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Every check, in the order an operator would fix them.
pub async fn run(roles: &[String]) -> Vec<Check> {
    let config = match Config::load() {
        Ok(config) => config,
        Err(e) => {
            let mut checks: Vec<Check> =
                e.0.iter()
                    .map(|problem| check(Level::Fail, "configuration", problem.clone()))
                    .collect();
            checks.push(check(
                Level::Fail,
                "configuration",
                "the other checks need a valid configuration: fix the settings above first",
            ));
            return checks;
        }
    };
    let mut checks = vec![check(
        Level::Ok,
        "configuration",
        "valid (built-in defaults, then stead.toml or STEAD_CONFIG, then STEAD_* variables)",
    )];
    let mut parsed = Vec::new();
    for role in roles {
        match Role::parse(role) {
            Some(r) => parsed.push(r),
            None => checks.push(check(
                Level::Fail,
                "roles",
                format!("unknown role {role:?}: use api, ingress or worker"),
            )),
        }
    }
    match config.check_roles(&parsed) {
        Ok(()) => checks.push(check(
            Level::Ok,
            "roles",
            roles
                .iter()
                .map(|r| r.trim())
                .collect::<Vec<_>>()
                .join(", "),
        )),
        Err(e) => checks.extend(
            e.0.into_iter()
                .map(|problem| check(Level::Fail, "roles", problem)),
        ),
    }

    let db = database(&config, &mut checks).await;
    let redis_ms = redis(&config, &mut checks).await;
    checks.push(data_dir(&config));
    checks.push(blob_store(&config).await);
    checks.push(address("http address", "STEAD_HTTP_ADDR", config.http_addr));
    if parsed.contains(&Role::Ingress) {
        checks.push(address("mqtt address", "STEAD_MQTT_ADDR", config.mqtt_addr));
        if let Some(addr) = config.mqtt_tls_addr {
            checks.push(address("mqtt tls address", "STEAD_MQTT_TLS_ADDR", addr));
        }
    }
    checks.push(tls(&config));
    checks.push(jwt_secret(&config));
    checks.push(console(&config, &parsed));
    let db_ms = match &db {
        Some(db) => database_clock_ms(db).await,
        None => None,
    };
    checks.push(clock(db_ms, redis_ms));
    if let Some(db) = db {
        let _ = db.close().await;
    }
    checks
}

/// Reachability, then the migrations against this binary's. Answers the connection for the
/// clock check.
async fn database(config: &Config, checks: &mut Vec<Check>) -> Option<DatabaseConnection> {
    let url = config.database_url();
    let sqlite = super::sqlite_file(url.expose());
    let kind = match &sqlite {
        Some(file) => format!("SQLite at {}", file.display()),
        None if url.expose().starts_with("sqlite:") => "SQLite in memory".to_string(),
        None => "PostgreSQL".to_string(),
    };
    if let Some(file) = &sqlite
        && !file.exists()
    {
        // Opening it would create it; the doctor changes nothing.
        checks.push(check(
            Level::Warn,
            "database",
            format!(
                "{kind}: no database there yet; `stead serve` (or `stead migrate`) creates it. If the server has run before, STEAD_DATA_DIR or STEAD_DATABASE_URL points to the wrong place"
            ),
        ));
        return None;
    }
    let db = match tokio::time::timeout(SERVICE_TIMEOUT, crate::db::connect(config)).await {
        Ok(Ok(db)) => db,
        Ok(Err(e)) => {
            checks.push(check(Level::Fail, "database", format!("{e:#}")));
            return None;
        }
        Err(_) => {
            checks.push(check(
                Level::Fail,
                "database",
                format!(
                    "{kind} did not answer within {} s",
                    SERVICE_TIMEOUT.as_secs()
                ),
            ));
            return None;
        }
    };
    checks.push(check(Level::Ok, "database", format!("{kind}, reachable")));
    match stead_migrations::status(&db).await {
        Err(e) => checks.push(check(
            Level::Fail,
            "migrations",
            format!("cannot read the migrations table: {e}"),
        )),
        Ok(status) if !status.unknown.is_empty() => checks.push(check(
            Level::Fail,
            "migrations",
            crate::db::newer_schema(&status.unknown),
        )),
        Ok(status) if !status.pending.is_empty() => checks.push(check(
            Level::Warn,
            "migrations",
            format!(
                "{} applied, {} pending ({}): `stead serve` applies them at start-up, `stead migrate` alone; back up first",
                status.applied.len(),
                status.pending.len(),
                status.pending.join(", ")
            ),
        )),
        Ok(status) => checks.push(check(
            Level::Ok,
            "migrations",
            format!("{} applied, up to date", status.applied.len()),
        )),
    }
    Some(db)
}

/// The database's clock in ms since the epoch (PostgreSQL only: SQLite's is this machine's).
async fn database_clock_ms(db: &DatabaseConnection) -> Option<i64> {
    if db.get_database_backend() != DatabaseBackend::Postgres {
        return None;
    }
    let row = db
        .query_one_raw(Statement::from_string(
            DatabaseBackend::Postgres,
            "SELECT (extract(epoch from clock_timestamp()) * 1000)::bigint AS ms",
        ))
        .await
        .ok()??;
    row.try_get::<i64>("", "ms").ok()
}

/// Reachability and a PING; answers Redis's clock for the clock check.
async fn redis(config: &Config, checks: &mut Vec<Check>) -> Option<i64> {
    let Some(url) = &config.redis_url else {
        checks.push(check(
            Level::Ok,
            "redis",
            "not configured: live state is kept in this process (one node only; set STEAD_REDIS_URL for several)",
        ));
        return None;
    };
    let client = match redis::Client::open(url.expose()) {
        Ok(client) => client,
        Err(e) => {
            checks.push(check(
                Level::Fail,
                "redis",
                format!("STEAD_REDIS_URL is not a valid Redis URL: {e}"),
            ));
            return None;
        }
    };
    let answer = tokio::time::timeout(SERVICE_TIMEOUT, async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        let time: (i64, i64) = redis::cmd("TIME").query_async(&mut conn).await?;
        Ok::<_, redis::RedisError>(time)
    })
    .await;
    match answer {
        Ok(Ok((secs, micros))) => {
            checks.push(check(Level::Ok, "redis", "reachable"));
            Some(secs * 1000 + micros / 1000)
        }
        Ok(Err(e)) => {
            checks.push(check(
                Level::Fail,
                "redis",
                format!("cannot reach Redis (STEAD_REDIS_URL): {e}"),
            ));
            None
        }
        Err(_) => {
            checks.push(check(
                Level::Fail,
                "redis",
                format!(
                    "cannot reach Redis (STEAD_REDIS_URL): no answer within {} s",
                    SERVICE_TIMEOUT.as_secs()
                ),
            ));
            None
        }
    }
}

/// Below this much free space the embedded database soon fails to write.
const DISK_FAIL_BYTES: u64 = 100 * 1024 * 1024;
const DISK_WARN_BYTES: u64 = 1024 * 1024 * 1024;

fn data_dir(config: &Config) -> Check {
    const NAME: &str = "data directory";
    let dir = &config.data_dir;
    let embedded = config.database_url.is_none();
    if !dir.exists() {
        if !embedded {
            return check(
                Level::Ok,
                NAME,
                format!(
                    "{} does not exist; it is not needed: the database is configured by STEAD_DATABASE_URL",
                    dir.display()
                ),
            );
        }
        let parent = dir
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        return match probe_write(parent) {
            Ok(()) => check(
                Level::Ok,
                NAME,
                format!(
                    "{} does not exist yet; the server creates it ({} is writable)",
                    dir.display(),
                    parent.display()
                ),
            ),
            Err(e) => check(
                Level::Fail,
                NAME,
                format!(
                    "{} does not exist and cannot be created in {}: {e}",
                    dir.display(),
                    parent.display()
                ),
            ),
        };
    }
    if let Err(e) = probe_write(dir) {
        return check(
            Level::Fail,
            NAME,
            format!("{} is not writable: {e}", dir.display()),
        );
    }
    let space = match rustix::fs::statvfs(dir.as_path()) {
        Ok(s) => s,
        Err(e) => {
            return check(
                Level::Warn,
                NAME,
                format!(
                    "{} is writable; its free space is unknown: {e}",
                    dir.display()
                ),
            );
        }
    };
    let free = space.f_bavail.saturating_mul(space.f_frsize);
    let total = space.f_blocks.saturating_mul(space.f_frsize).max(1);
    let percent = free as f64 * 100.0 / total as f64;
    let detail = format!(
        "{} is writable; {} free of {} ({percent:.0} %)",
        dir.display(),
        gib(free),
        gib(total)
    );
    if free < DISK_FAIL_BYTES {
        check(
            Level::Fail,
            NAME,
            format!("{detail}: too little for the database to keep writing"),
        )
    } else if free < DISK_WARN_BYTES || percent < 5.0 {
        check(Level::Warn, NAME, format!("{detail}: running low"))
    } else {
        check(Level::Ok, NAME, detail)
    }
}

/// Where OTA images go answers (a directory that can be made, or a bucket that answers).
async fn blob_store(config: &Config) -> Check {
    if config.blob_url.is_none() {
        // The doctor changes nothing: a directory that is not there yet is made at start.
        let dir = config.data_dir.join("blobs");
        return if dir.is_dir() {
            match probe_write(&dir) {
                Ok(()) => check(
                    Level::Ok,
                    "blob store",
                    format!("directory {}, writable", dir.display()),
                ),
                Err(e) => check(
                    Level::Fail,
                    "blob store",
                    format!("directory {} is not writable: {e}", dir.display()),
                ),
            }
        } else {
            check(
                Level::Ok,
                "blob store",
                format!("directory {} (made at start)", dir.display()),
            )
        };
    }
    let blobs = match crate::blobs::Blobs::from_config(config) {
        Ok(b) => b,
        Err(e) => return check(Level::Fail, "blob store", format!("{e:#}")),
    };
    match tokio::time::timeout(std::time::Duration::from_secs(10), blobs.check()).await {
        Ok(Ok(())) => check(
            Level::Ok,
            "blob store",
            format!("{}, reachable", blobs.describe),
        ),
        Ok(Err(e)) => check(
            Level::Fail,
            "blob store",
            format!("{}: {e} (STEAD_BLOB_URL, AWS_*)", blobs.describe),
        ),
        Err(_) => check(
            Level::Fail,
            "blob store",
            format!("{}: no answer within 10 s", blobs.describe),
        ),
    }
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1024.0 * 1024.0 * 1024.0))
}

/// Creates, writes and removes a probe file: permission bits alone do not tell (read-only
/// mounts, ACLs, another user's directory).
fn probe_write(dir: &Path) -> std::io::Result<()> {
    use std::io::Write as _;
    let probe = dir.join(format!(".stead-doctor-{}", std::process::id()));
    let result = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .and_then(|mut f| f.write_all(b"stead doctor\n").and_then(|()| f.sync_all()));
    let _ = std::fs::remove_file(&probe);
    result
}

fn address(name: &'static str, setting: &str, addr: SocketAddr) -> Check {
    if addr.port() == 0 {
        return check(
            Level::Ok,
            name,
            format!("{setting} {addr}: the system picks a free port at start-up"),
        );
    }
    match std::net::TcpListener::bind(addr) {
        Ok(listener) => {
            drop(listener);
            check(Level::Ok, name, format!("{setting} {addr} is free to bind"))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => check(
            Level::Fail,
            name,
            format!(
                "{setting} {addr} is already in use: another process listens there (a running stead? stop it or choose another address)"
            ),
        ),
        Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => check(
            Level::Fail,
            name,
            format!("{setting} {addr} is not an address of this machine: {e}"),
        ),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => check(
            Level::Fail,
            name,
            format!("{setting} {addr}: permission denied (ports below 1024 need privileges): {e}"),
        ),
        Err(e) => check(
            Level::Fail,
            name,
            format!("{setting} {addr} cannot be bound: {e}"),
        ),
    }
}

/// Certificates expiring within this are reported before devices start failing to connect.
const CERT_WARN_DAYS: i64 = 30;

fn tls(config: &Config) -> Check {
    const NAME: &str = "mqtt tls";
    let (Some(cert), Some(key)) = (&config.mqtt_tls_cert, &config.mqtt_tls_key) else {
        return check(
            Level::Ok,
            NAME,
            "not configured (STEAD_MQTT_TLS_ADDR, _CERT, _KEY): devices connect over plain TCP only",
        );
    };
    if let Err(e) = crate::ingress::tls_config(cert, key) {
        return check(Level::Fail, NAME, format!("{e:#}"));
    }
    match not_after(cert) {
        Err(e) => check(
            Level::Fail,
            NAME,
            format!("STEAD_MQTT_TLS_CERT {}: {e}", cert.display()),
        ),
        Ok(expires) => {
            let now = now_ms() / 1000;
            let days = (expires - now) / 86_400;
            let when = chrono::DateTime::from_timestamp(expires, 0)
                .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                .unwrap_or_else(|| expires.to_string());
            if expires <= now {
                check(
                    Level::Fail,
                    NAME,
                    format!(
                        "the certificate {} expired on {when}: devices refuse it",
                        cert.display()
                    ),
                )
            } else if days < CERT_WARN_DAYS {
                check(
                    Level::Warn,
                    NAME,
                    format!(
                        "certificate and key fit; the certificate expires on {when}, in {days} days: renew it"
                    ),
                )
            } else {
                check(
                    Level::Ok,
                    NAME,
                    format!(
                        "certificate and key readable and fit; the certificate expires on {when} (in {days} days)"
                    ),
                )
            }
        }
    }
}

/// The end of the validity of the first (the server's own) certificate in a PEM file, in
/// seconds since the epoch.
fn not_after(cert: &Path) -> anyhow::Result<i64> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject as _;
    use x509_cert::der::Decode as _;
    let first = CertificateDer::pem_file_iter(cert)?
        .next()
        .ok_or_else(|| anyhow::anyhow!("no certificate in the file"))??;
    let parsed = x509_cert::Certificate::from_der(first.as_ref())
        .map_err(|e| anyhow::anyhow!("not a valid X.509 certificate: {e}"))?;
    Ok(parsed
        .tbs_certificate
        .validity
        .not_after
        .to_unix_duration()
        .as_secs() as i64)
}

fn jwt_secret(config: &Config) -> Check {
    const NAME: &str = "jwt secret";
    match &config.jwt_secret {
        // Config::load refuses fewer than 32 characters, so a set secret is long enough here.
        Some(secret) => check(
            Level::Ok,
            NAME,
            format!(
                "STEAD_JWT_SECRET is set, {} characters (at least 32 needed); every node must have the same",
                secret.expose().chars().count()
            ),
        ),
        None => check(
            Level::Ok,
            NAME,
            "not set: generated once and kept in the database, shared by every node",
        ),
    }
}

fn console(config: &Config, roles: &[Role]) -> Check {
    const NAME: &str = "console";
    if !roles.contains(&Role::Api) {
        return check(Level::Ok, NAME, "not served: these roles serve no API");
    }
    match &config.console_dir {
        Some(dir) if dir.join("index.html").exists() => check(
            Level::Ok,
            NAME,
            format!("served from {} (STEAD_CONSOLE_DIR)", dir.display()),
        ),
        Some(dir) => check(
            Level::Fail,
            NAME,
            format!(
                "STEAD_CONSOLE_DIR {} holds no index.html: build the console (cargo xtask build-console)",
                dir.display()
            ),
        ),
        None if crate::http::Console::pick(None).is_some() => {
            check(Level::Ok, NAME, "embedded in this binary")
        }
        None => check(
            Level::Warn,
            NAME,
            "this binary was built without the console: the API works but no browser console is served (`cargo xtask run` and `cargo xtask dist` build it in)",
        ),
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The date of this binary's newest migration (`mYYYYMMDD_…`) as ms: a clock behind it is
/// certainly wrong.
fn newest_migration_ms() -> Option<i64> {
    use stead_migrations::MigratorTrait as _;
    let newest = stead_migrations::Migrator::migrations()
        .iter()
        .map(|m| m.name().to_owned())
        .max()?;
    let date = chrono::NaiveDate::parse_from_str(newest.get(1..9)?, "%Y%m%d").ok()?;
    Some(date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis())
}

fn clock(db_ms: Option<i64>, redis_ms: Option<i64>) -> Check {
    const NAME: &str = "clock";
    let now = now_ms();
    let shown = chrono::DateTime::from_timestamp_millis(now)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| now.to_string());
    if let Some(floor) = newest_migration_ms()
        && now < floor
    {
        return check(
            Level::Fail,
            NAME,
            format!(
                "this machine's clock says {shown}, before this release was made: set the time (NTP), telemetry is stamped with it"
            ),
        );
    }
    let mut detail = format!("this machine says {shown}");
    let mut level = Level::Ok;
    for (service, theirs) in [("PostgreSQL", db_ms), ("Redis", redis_ms)] {
        let Some(theirs) = theirs else { continue };
        let skew = theirs - now;
        detail.push_str(&format!(
            "; {service}'s clock differs by {:.3} s",
            skew as f64 / 1000.0
        ));
        if skew.abs() > MAX_SKEW_MS {
            level = Level::Warn;
            detail.push_str(" (too much: run NTP on every machine)");
        }
    }
    check(level, NAME, detail)
}
