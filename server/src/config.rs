//! Configuration: built-in defaults, then an optional `stead.toml`, then `STEAD_*` environment
//! variables. Loaded and validated once at start-up; every problem is reported at once, one line
//! each, naming the setting. There is no global settings static: the `Config` is passed down.

use std::net::SocketAddr;
use std::path::PathBuf;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::{Figment, Provider as _};
use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// The roles one process can play. `stead serve` plays all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Api,
    Ingress,
    Worker,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s.trim() {
            "api" => Some(Role::Api),
            "ingress" => Some(Role::Ingress),
            "worker" => Some(Role::Worker),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// JSON when standard output is not a terminal, human-readable when it is.
    Auto,
    Json,
    Pretty,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// HTTP API and console (`STEAD_HTTP_ADDR`).
    pub http_addr: SocketAddr,
    /// MQTT device ingress (`STEAD_MQTT_ADDR`).
    pub mqtt_addr: SocketAddr,
    /// Where the embedded database and other local state live (`STEAD_DATA_DIR`).
    pub data_dir: PathBuf,
    /// `postgres://…` or `sqlite://…`; default: SQLite in the data directory.
    pub database_url: Option<Secret>,
    /// Redis for live state across nodes; default: in-process (single node only).
    pub redis_url: Option<Secret>,
    /// Prefix of every Redis key, so that several deployments (or tests) can share one Redis.
    pub redis_prefix: String,
    /// Serve the console from this directory instead of the copy built into the binary
    /// (`STEAD_CONSOLE_DIR`, for console development).
    pub console_dir: Option<PathBuf>,
    /// HMAC key for access tokens; default: generated once and kept in the database.
    pub jwt_secret: Option<Secret>,
    pub access_token_ttl_secs: u64,
    pub refresh_token_ttl_secs: u64,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    pub login_max_failures_per_account: u64,
    pub login_failure_window_secs: u64,
    pub login_max_attempts_per_ip: u64,
    pub login_ip_window_secs: u64,
    /// Device provisioning requests per source address per window (MQTT and HTTP together).
    pub provision_max_attempts_per_ip: u64,
    pub provision_ip_window_secs: u64,
    /// Requests per API key per minute (across nodes with Redis).
    pub api_key_requests_per_minute: u64,
    /// How often an open live view checks that its viewer may still see its device.
    pub live_recheck_secs: u64,
    /// Quotas per tenant unless the platform admin sets its own: devices, people, API keys.
    pub quota_devices: u64,
    pub quota_users: u64,
    pub quota_api_keys: u64,
    /// Telemetry data points a tenant may send per UTC day (MQTT and HTTP together).
    pub quota_data_points_per_day: u64,
    /// Bytes of OTA packages a tenant may store.
    pub quota_ota_bytes: u64,
    /// Largest OTA package, in bytes.
    pub ota_max_package_bytes: u64,
    /// Where OTA images are kept: none, a directory `blobs` in the data directory; or an
    /// S3-compatible bucket, `s3://bucket[/prefix]`, with the usual `AWS_*` variables
    /// (`AWS_ENDPOINT`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_ALLOW_HTTP`).
    pub blob_url: Option<String>,
    /// Bytes per second a node sends of packages to devices (MQTT chunks and HTTP together).
    pub ota_bytes_per_sec: u64,
    /// How long a device may stay in one step of an update before it is `TIMED_OUT`.
    pub ota_step_timeout_secs: u64,
    /// Failed downloads of one target before it is withdrawn (the device stops trying).
    pub ota_max_attempts: u32,
    /// Where people reach the console, for the links in e-mails (`STEAD_PUBLIC_URL`, e.g.
    /// `https://iot.example.com`); default: the HTTP address.
    pub public_url: Option<String>,
    /// The SMTP server for invitations and password resets: `smtp://host:25` (plain),
    /// `smtp://user:pass@host:587?tls=required` (STARTTLS) or `smtps://…:465`; none: no e-mail.
    pub smtp_url: Option<Secret>,
    /// The sender of Stead's e-mails.
    pub mail_from: String,
    /// How long an invitation's link works, and a password reset's.
    pub invitation_ttl_secs: u64,
    pub password_reset_ttl_secs: u64,
    pub bootstrap_admin_email: Option<String>,
    pub bootstrap_admin_password: Option<Secret>,
    pub log_format: LogFormat,
    /// Log filter in `tracing` syntax, e.g. `info` or `stead=debug,info`.
    pub log: String,
    /// MQTT over TLS: listen here with this certificate chain and private key (PEM files).
    pub mqtt_tls_addr: Option<SocketAddr>,
    pub mqtt_tls_cert: Option<PathBuf>,
    pub mqtt_tls_key: Option<PathBuf>,
    /// The MQTT host and port devices should use, when not `STEAD_MQTT_ADDR`'s (behind a load
    /// balancer, say): shown in the console's connection instructions.
    pub mqtt_public_host: Option<String>,
    pub mqtt_public_port: Option<u16>,
    /// Threads serving MQTT connections.
    pub mqtt_workers: usize,
    /// Connections accepted at once (per MQTT worker).
    pub mqtt_max_connections: usize,
    /// Largest payload of one PUBLISH; larger ones are refused (and a packet four times larger
    /// ends the connection).
    pub mqtt_max_payload_bytes: usize,
    /// QoS 1 messages a device may have unacknowledged at once (MQTT 5 receive maximum).
    pub mqtt_max_inflight: u16,
    /// Time a new connection has to send CONNECT.
    pub mqtt_connect_timeout_secs: u16,
    /// Bounds on the keep-alive a device may ask for.
    pub mqtt_keep_alive_min_secs: u16,
    pub mqtt_keep_alive_max_secs: u16,
    /// Time a packet that has begun to arrive (after CONNECT) has to arrive whole: a client
    /// that dribbles one is disconnected.
    pub mqtt_packet_timeout_secs: u16,
    /// MQTT connections open at once from one address (0: no bound); see
    /// `connection_limit_exempt`.
    pub mqtt_max_connections_per_address: usize,
    /// New MQTT connections per address, `count:seconds[,count:seconds…]`.
    pub mqtt_connect_rate_per_address: crate::ingress::Rate,
    /// Topic filters one MQTT session may hold (a device needs a handful).
    pub mqtt_max_subscriptions: usize,
    /// Time an HTTP client has to send a request's head (every request of a connection).
    pub http_request_timeout_secs: u64,
    /// How long an idle HTTP connection is kept open for the next request (0: not at all).
    pub http_keep_alive_secs: u64,
    /// HTTP connections open at once, in all.
    pub http_max_connections: usize,
    /// HTTP connections open at once from one address (0: no bound).
    pub http_max_connections_per_address: usize,
    /// Addresses and ranges whose connections are not bounded per address (loopback by
    /// default: load generators, sidecars); `trusted_proxies` are not either.
    pub connection_limit_exempt: crate::http::TrustedProxies,
    /// Per-device rates, `count:seconds[,count:seconds…]`.
    pub device_rate_messages: crate::ingress::Rate,
    pub device_rate_points: crate::ingress::Rate,
    /// Per-tenant rates (counted per ingress node).
    pub tenant_rate_messages: crate::ingress::Rate,
    pub tenant_rate_points: crate::ingress::Rate,
    /// Telemetry write batches queued per writer before producers wait (back-pressure).
    pub telemetry_queue: usize,
    /// Concurrent telemetry writers (group-commit shards) on PostgreSQL; SQLite has one.
    pub telemetry_writers: usize,
    /// Days telemetry is kept, unless a tenant says otherwise.
    pub telemetry_retention_days: u32,
    /// Reverse proxies whose `X-Forwarded-For` names the client (login throttling, provisioning
    /// limits, the audit log's addresses count per client, not per proxy).
    pub trusted_proxies: crate::http::TrustedProxies,
    /// Embedded default: how often the latest values are saved to `<data dir>/latest.json` (when
    /// they changed), so that a restart keeps the keys a device sends rarely.
    pub latest_snapshot_secs: u64,
    /// How far ahead of the server's clock a point's `ts` may be (a device with a wrong clock
    /// is refused, with the reason on its timeline); at most 3 days, the partitions made ahead.
    pub telemetry_max_future_secs: u64,
    /// Days audit entries are kept, unless a tenant says otherwise.
    pub audit_retention_days: u32,
    /// Seconds between retention passes (partitions ahead, expired data out).
    pub retention_interval_secs: u64,
    /// Webhooks may reach private, loopback and link-local addresses (off by default: a tenant's
    /// endpoint must not reach into the platform's own network).
    pub webhook_allow_private_addresses: bool,
    /// Time a webhook request may take before it counts as failed.
    pub webhook_timeout_secs: u64,
    /// Waits before each retry of a failed delivery (`5s,5m,30m,2h,5h,10h,10h`, the Standard
    /// Webhooks schedule); a `Retry-After` answer may ask for longer.
    pub webhook_retry_schedule: crate::webhooks::Schedule,
    /// An endpoint whose every attempt failed for this long is turned off and its owner told.
    pub webhook_disable_after_secs: u64,
    /// Days events and finished deliveries are kept (the delivery log, replays).
    pub event_retention_days: u32,
    /// NATS server for the JetStream sink (`nats://host:4222`); none: no sink.
    pub nats_url: Option<Secret>,
    /// The JetStream stream Stead publishes to (created when missing) and its subject prefix:
    /// `<prefix>.<tenant id>.<event type>`.
    pub nats_stream: String,
    pub nats_subject_prefix: String,
    /// How long SIGTERM may take: each drain (MQTT sessions, HTTP requests) gets this long, and
    /// the process exits when it is over whatever is left (Kubernetes sends SIGKILL after
    /// `terminationGracePeriodSeconds`, 30 by default).
    pub shutdown_timeout_secs: u64,
    /// How often an ingress node renews its liveness key in Redis.
    pub node_heartbeat_secs: u64,
    /// A node whose liveness key is this old is lost: a worker marks its devices offline.
    pub node_timeout_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            http_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            mqtt_addr: SocketAddr::from(([127, 0, 0, 1], 1884)),
            data_dir: PathBuf::from("data"),
            database_url: None,
            redis_url: None,
            redis_prefix: "stead:".into(),
            console_dir: None,
            jwt_secret: None,
            access_token_ttl_secs: 900,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            max_body_bytes: 1024 * 1024,
            login_max_failures_per_account: 5,
            login_failure_window_secs: 15 * 60,
            login_max_attempts_per_ip: 30,
            login_ip_window_secs: 60,
            provision_max_attempts_per_ip: 60,
            provision_ip_window_secs: 60,
            api_key_requests_per_minute: 600,
            live_recheck_secs: 2,
            quota_devices: 100_000,
            quota_users: 1_000,
            quota_api_keys: 100,
            quota_data_points_per_day: 1_000_000_000,
            quota_ota_bytes: 10 * 1024 * 1024 * 1024,
            ota_max_package_bytes: 512 * 1024 * 1024,
            blob_url: None,
            ota_bytes_per_sec: 50 * 1024 * 1024,
            ota_step_timeout_secs: 1800,
            ota_max_attempts: 3,
            public_url: None,
            smtp_url: None,
            mail_from: "Stead <stead@localhost>".into(),
            invitation_ttl_secs: 7 * 24 * 3600,
            password_reset_ttl_secs: 3600,
            bootstrap_admin_email: None,
            bootstrap_admin_password: None,
            log_format: LogFormat::Auto,
            log: "info,ntex_service::cfg=warn".into(),
            mqtt_tls_addr: None,
            mqtt_tls_cert: None,
            mqtt_tls_key: None,
            mqtt_public_host: None,
            mqtt_public_port: None,
            mqtt_workers: 2,
            mqtt_max_connections: 100_000,
            mqtt_max_payload_bytes: 64 * 1024,
            mqtt_max_inflight: 16,
            mqtt_connect_timeout_secs: 10,
            mqtt_keep_alive_min_secs: 1,
            mqtt_keep_alive_max_secs: 3600,
            mqtt_packet_timeout_secs: 20,
            mqtt_max_connections_per_address: 1000,
            mqtt_connect_rate_per_address: rate("100:1,1000:60"),
            mqtt_max_subscriptions: 100,
            http_request_timeout_secs: 5,
            http_keep_alive_secs: 5,
            http_max_connections: 25_000,
            http_max_connections_per_address: 1000,
            connection_limit_exempt: crate::http::TrustedProxies::parse("127.0.0.0/8,::1")
                .unwrap_or_default(),
            device_rate_messages: rate("200:1,6000:60"),
            device_rate_points: rate("2000:1,60000:60"),
            tenant_rate_messages: rate("100000:1"),
            tenant_rate_points: rate("1000000:1"),
            telemetry_queue: 4096,
            telemetry_writers: 2,
            telemetry_retention_days: 30,
            telemetry_max_future_secs: 86_400,
            latest_snapshot_secs: 30,
            trusted_proxies: Default::default(),
            audit_retention_days: 365,
            retention_interval_secs: 3600,
            webhook_allow_private_addresses: false,
            webhook_timeout_secs: 15,
            webhook_retry_schedule: crate::webhooks::Schedule::standard(),
            webhook_disable_after_secs: 5 * 24 * 3600,
            event_retention_days: 7,
            nats_url: None,
            nats_stream: "STEAD_EVENTS".into(),
            nats_subject_prefix: "stead".into(),
            shutdown_timeout_secs: 20,
            node_heartbeat_secs: 5,
            node_timeout_secs: 15,
        }
    }
}

fn rate(s: &str) -> crate::ingress::Rate {
    crate::ingress::Rate::parse(s).unwrap_or_else(|e| unreachable!("built-in rate {s:?}: {e}"))
}

/// Every problem found, one per line.
#[derive(Debug)]
pub struct ConfigError(pub Vec<String>);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "invalid configuration:")?;
        for problem in &self.0 {
            writeln!(f, "  - {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Defaults → `stead.toml` (or the file named by `STEAD_CONFIG`) → `STEAD_*` environment.
    pub fn load() -> Result<Config, ConfigError> {
        let file = std::env::var_os("STEAD_CONFIG")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("stead.toml"));
        if std::env::var_os("STEAD_CONFIG").is_some() && !file.exists() {
            return Err(ConfigError(vec![format!(
                "STEAD_CONFIG: file {} does not exist",
                file.display()
            )]));
        }
        Self::from_figment(
            Figment::from(Serialized::defaults(Config::default()))
                .merge(Toml::file(&file))
                .merge(Env::prefixed("STEAD_").ignore(&["CONFIG"])),
        )
    }

    fn from_figment(figment: Figment) -> Result<Config, ConfigError> {
        let config: Config = match figment.extract() {
            Ok(config) => config,
            Err(first) => return Err(ConfigError(every_problem(&figment, first))),
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if let Some(url) = &self.database_url {
            let url = url.expose();
            if !(url.starts_with("postgres://")
                || url.starts_with("postgresql://")
                || url.starts_with("sqlite:"))
            {
                problems.push(
                    "STEAD_DATABASE_URL must start with postgres:// or sqlite:// (the value is not shown: it may hold a password)"
                        .to_string(),
                );
            }
        }
        if let Some(url) = &self.redis_url
            && !(url.expose().starts_with("redis://") || url.expose().starts_with("rediss://"))
        {
            problems.push("STEAD_REDIS_URL must start with redis:// or rediss://".to_string());
        }
        if self.access_token_ttl_secs == 0 || self.access_token_ttl_secs > 900 {
            problems.push(format!(
                "STEAD_ACCESS_TOKEN_TTL_SECS must be between 1 and 900 (15 minutes), not {}",
                self.access_token_ttl_secs
            ));
        }
        if self.refresh_token_ttl_secs < 60 {
            problems.push("STEAD_REFRESH_TOKEN_TTL_SECS must be at least 60".to_string());
        }
        if self.max_body_bytes < 1024 {
            problems.push("STEAD_MAX_BODY_BYTES must be at least 1024".to_string());
        }
        if let Some(secret) = &self.jwt_secret
            && secret.expose().len() < 32
        {
            problems.push("STEAD_JWT_SECRET must be at least 32 characters".to_string());
        }
        for (name, value) in [
            (
                "STEAD_LOGIN_MAX_FAILURES_PER_ACCOUNT",
                self.login_max_failures_per_account,
            ),
            (
                "STEAD_LOGIN_FAILURE_WINDOW_SECS",
                self.login_failure_window_secs,
            ),
            (
                "STEAD_LOGIN_MAX_ATTEMPTS_PER_IP",
                self.login_max_attempts_per_ip,
            ),
            ("STEAD_LOGIN_IP_WINDOW_SECS", self.login_ip_window_secs),
            (
                "STEAD_PROVISION_MAX_ATTEMPTS_PER_IP",
                self.provision_max_attempts_per_ip,
            ),
            (
                "STEAD_PROVISION_IP_WINDOW_SECS",
                self.provision_ip_window_secs,
            ),
            (
                "STEAD_API_KEY_REQUESTS_PER_MINUTE",
                self.api_key_requests_per_minute,
            ),
            ("STEAD_LIVE_RECHECK_SECS", self.live_recheck_secs),
            ("STEAD_LATEST_SNAPSHOT_SECS", self.latest_snapshot_secs),
            ("STEAD_QUOTA_DEVICES", self.quota_devices),
            ("STEAD_QUOTA_USERS", self.quota_users),
            ("STEAD_QUOTA_API_KEYS", self.quota_api_keys),
            (
                "STEAD_QUOTA_DATA_POINTS_PER_DAY",
                self.quota_data_points_per_day,
            ),
            ("STEAD_OTA_MAX_PACKAGE_BYTES", self.ota_max_package_bytes),
            ("STEAD_OTA_BYTES_PER_SEC", self.ota_bytes_per_sec),
            ("STEAD_OTA_STEP_TIMEOUT_SECS", self.ota_step_timeout_secs),
            ("STEAD_OTA_MAX_ATTEMPTS", u64::from(self.ota_max_attempts)),
            ("STEAD_INVITATION_TTL_SECS", self.invitation_ttl_secs),
            ("STEAD_WEBHOOK_TIMEOUT_SECS", self.webhook_timeout_secs),
            (
                "STEAD_WEBHOOK_DISABLE_AFTER_SECS",
                self.webhook_disable_after_secs,
            ),
            (
                "STEAD_EVENT_RETENTION_DAYS",
                self.event_retention_days as u64,
            ),
            (
                "STEAD_PASSWORD_RESET_TTL_SECS",
                self.password_reset_ttl_secs,
            ),
        ] {
            if value == 0 {
                problems.push(format!("{name} must be at least 1"));
            }
        }
        if let Some(url) = &self.blob_url
            && crate::blobs::BlobUrl::parse(url).is_err()
            && crate::blobs::directory_of(url).is_none()
        {
            problems.push(format!(
                "STEAD_BLOB_URL must be s3://bucket, s3://bucket/prefix or file:///absolute/directory, not {url:?}"
            ));
        }
        if let Some(url) = &self.nats_url
            && !(url.expose().starts_with("nats://") || url.expose().starts_with("tls://"))
        {
            problems.push(
                "STEAD_NATS_URL must start with nats:// or tls:// (the value is not shown: it may hold a password)"
                    .to_string(),
            );
        }
        let subject_token = |s: &str| {
            !s.is_empty()
                && s.split('.').all(|t| {
                    !t.is_empty()
                        && t.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                })
        };
        if !subject_token(&self.nats_subject_prefix) {
            problems.push(format!(
                "STEAD_NATS_SUBJECT_PREFIX must be dot-separated letters, digits, - and _, not {:?}",
                self.nats_subject_prefix
            ));
        }
        if !subject_token(&self.nats_stream) || self.nats_stream.contains('.') {
            problems.push(format!(
                "STEAD_NATS_STREAM must be letters, digits, - and _, not {:?}",
                self.nats_stream
            ));
        }
        if let Some(url) = &self.public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            problems.push(format!(
                "STEAD_PUBLIC_URL must start with http:// or https://, not {url:?}"
            ));
        }
        if let Some(url) = &self.smtp_url
            && !(url.expose().starts_with("smtp://") || url.expose().starts_with("smtps://"))
        {
            problems.push(
                "STEAD_SMTP_URL must start with smtp:// or smtps:// (the value is not shown: it may hold a password)"
                    .to_string(),
            );
        }
        if let Err(e) = self.mail_from.parse::<lettre::message::Mailbox>() {
            problems.push(format!(
                "STEAD_MAIL_FROM must be an address like `Stead <stead@example.com>`: {e}"
            ));
        }
        if let Some(email) = &self.bootstrap_admin_email
            && let Err(e) = crate::users::Email::parse(email)
        {
            problems.push(format!("STEAD_BOOTSTRAP_ADMIN_EMAIL: {e}"));
        }
        if let Some(pw) = &self.bootstrap_admin_password
            && let Err(e) = crate::users::Password::parse(pw.expose())
        {
            problems.push(format!("STEAD_BOOTSTRAP_ADMIN_PASSWORD: {e}"));
        }
        if self.mqtt_tls_addr.is_some()
            && (self.mqtt_tls_cert.is_none() || self.mqtt_tls_key.is_none())
        {
            problems.push(
                "STEAD_MQTT_TLS_ADDR needs STEAD_MQTT_TLS_CERT and STEAD_MQTT_TLS_KEY (PEM files)"
                    .to_string(),
            );
        }
        if self.mqtt_workers == 0 || self.mqtt_workers > 64 {
            problems.push("STEAD_MQTT_WORKERS must be between 1 and 64".to_string());
        }
        if !(128..=16 * 1024 * 1024).contains(&self.mqtt_max_payload_bytes) {
            problems
                .push("STEAD_MQTT_MAX_PAYLOAD_BYTES must be between 128 and 16777216".to_string());
        }
        if self.mqtt_max_inflight == 0 {
            problems.push("STEAD_MQTT_MAX_INFLIGHT must be at least 1".to_string());
        }
        if self.mqtt_keep_alive_min_secs == 0
            || self.mqtt_keep_alive_min_secs > self.mqtt_keep_alive_max_secs
        {
            problems.push("STEAD_MQTT_KEEP_ALIVE_MIN_SECS must be at least 1 and at most STEAD_MQTT_KEEP_ALIVE_MAX_SECS".to_string());
        }
        if self.mqtt_packet_timeout_secs == 0 {
            problems.push("STEAD_MQTT_PACKET_TIMEOUT_SECS must be at least 1".to_string());
        }
        if self.mqtt_max_subscriptions == 0 {
            problems.push("STEAD_MQTT_MAX_SUBSCRIPTIONS must be at least 1".to_string());
        }
        if self.http_request_timeout_secs == 0 {
            problems.push("STEAD_HTTP_REQUEST_TIMEOUT_SECS must be at least 1".to_string());
        }
        if self.http_max_connections == 0 {
            problems.push("STEAD_HTTP_MAX_CONNECTIONS must be at least 1".to_string());
        }
        if self.telemetry_writers == 0 || self.telemetry_writers > 64 {
            problems.push("STEAD_TELEMETRY_WRITERS must be between 1 and 64".to_string());
        }
        if self.telemetry_queue == 0 {
            problems.push("STEAD_TELEMETRY_QUEUE must be at least 1".to_string());
        }
        if self.retention_interval_secs == 0 {
            problems.push("STEAD_RETENTION_INTERVAL_SECS must be at least 1".to_string());
        }
        if self.telemetry_max_future_secs > 3 * 86_400 {
            problems.push(
                "STEAD_TELEMETRY_MAX_FUTURE_SECS must be at most 259200 (3 days: telemetry \
                 partitions are made 4 days ahead)"
                    .to_string(),
            );
        }
        if self.telemetry_retention_days == 0 {
            problems.push("STEAD_TELEMETRY_RETENTION_DAYS must be at least 1".to_string());
        }
        if self.audit_retention_days == 0 {
            problems.push("STEAD_AUDIT_RETENTION_DAYS must be at least 1".to_string());
        }
        if !(1..=3600).contains(&self.shutdown_timeout_secs) {
            problems.push("STEAD_SHUTDOWN_TIMEOUT_SECS must be between 1 and 3600".to_string());
        }
        if self.node_heartbeat_secs == 0 || self.node_timeout_secs < 2 * self.node_heartbeat_secs {
            problems.push(
                "STEAD_NODE_HEARTBEAT_SECS must be at least 1 and STEAD_NODE_TIMEOUT_SECS at least twice as long (one missed heartbeat must not count as lost)"
                    .to_string(),
            );
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError(problems))
        }
    }

    /// The database to use: the configured URL, or SQLite in the data directory.
    pub fn database_url(&self) -> Secret {
        match &self.database_url {
            Some(url) => url.clone(),
            None => Secret::new(format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("stead.db").display()
            )),
        }
    }

    /// Multi-node roles share state through Redis; refuse to run them without it.
    pub fn check_roles(&self, roles: &[Role]) -> Result<(), ConfigError> {
        let all = [Role::Api, Role::Ingress, Role::Worker]
            .iter()
            .all(|r| roles.contains(r));
        if !all && self.redis_url.is_none() {
            return Err(ConfigError(vec![
                "running only some roles (--roles) means several processes share the work: set STEAD_REDIS_URL so they share live state".to_string(),
            ]));
        }
        Ok(())
    }
}

/// figment stops at the first bad value; to name every bad setting at once, each given value is
/// checked again on its own, over the defaults.
fn every_problem(figment: &Figment, first: figment::Error) -> Vec<String> {
    let describe = |e: figment::Error| -> Vec<String> {
        e.into_iter()
            .map(|e| {
                let key = e
                    .path
                    .last()
                    .map(|k| format!("STEAD_{}", k.to_uppercase()))
                    .unwrap_or_else(|| "configuration".into());
                format!("{key}: {}", e.kind)
            })
            .collect()
    };
    let mut problems = Vec::new();
    if let Ok(data) = figment.data()
        && let Some(values) = data.get(&figment::Profile::Default)
    {
        for (key, value) in values {
            let alone = Figment::from(Serialized::defaults(Config::default()))
                .merge(Serialized::default(key, value));
            if let Err(e) = alone.extract::<Config>() {
                problems.extend(describe(e));
            }
        }
    }
    if problems.is_empty() {
        problems = describe(first);
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(toml: &str) -> Result<Config, ConfigError> {
        Config::from_figment(
            Figment::from(Serialized::defaults(Config::default())).merge(Toml::string(toml)),
        )
    }

    #[test]
    fn defaults_are_valid_and_embedded() {
        let c = load("").unwrap();
        assert_eq!(c.http_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(c.mqtt_addr.to_string(), "127.0.0.1:1884");
        assert!(
            c.database_url()
                .expose()
                .starts_with("sqlite://data/stead.db")
        );
        assert!(c.redis_url.is_none());
    }

    #[test]
    fn each_bad_setting_is_named() {
        let err =
            load("http_addr = \"not-an-address\"\nmax_body_bytes = \"lots\"\nhttp_adress = 1")
                .unwrap_err();
        assert_eq!(err.0.len(), 3, "{err}");
        let text = err.to_string();
        assert!(text.contains("STEAD_HTTP_ADDR"), "{text}");
        assert!(text.contains("STEAD_MAX_BODY_BYTES"), "{text}");
        assert!(text.contains("http_adress"), "{text}");

        let err = load("access_token_ttl_secs = 5000\ndatabase_url = \"mysql://x\"").unwrap_err();
        assert_eq!(err.0.len(), 2, "{err}");
        let text = err.to_string();
        assert!(text.contains("STEAD_ACCESS_TOKEN_TTL_SECS"), "{text}");
        assert!(text.contains("STEAD_DATABASE_URL"), "{text}");
    }

    #[test]
    fn partial_roles_need_redis() {
        let c = load("").unwrap();
        assert!(c.check_roles(&[Role::Api]).is_err());
        assert!(
            c.check_roles(&[Role::Api, Role::Ingress, Role::Worker])
                .is_ok()
        );
    }
}
