//! The load generator: a fleet of devices on one machine. It owns getting device credentials
//! (a token file, or creating devices through the REST API), connecting them at a bounded pace,
//! publishing telemetry at a set rate or flat out for a fixed time, measuring CONNACK and PUBACK
//! latency, and checking afterwards that every acknowledged message was stored.
//!
//! Each device is one tokio task on its own socket (`conn`). The phases are global:
//! all devices connect first, then all publish from the same instant until the same deadline, then
//! each waits (bounded) for its outstanding PUBACKs and disconnects cleanly. Every loop ends by
//! count or time.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use reqwest::StatusCode;
use serde_json::json;
use stead_api_types::{AggregateSeries, CreatedDevice};
use stead_e2e::Client as Api;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::time::Instant;
use uuid::Uuid;

use crate::mqtt::{Broker, Qos};

mod conn;
use conn::Conn;

pub const TELEMETRY_TOPIC: &str = "v1/devices/me/telemetry";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// MQTT address of the Stead ingress (or any broker), HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:1884")]
    mqtt: Broker,
    /// Speak MQTT 5 instead of 3.1.1.
    #[arg(long)]
    v5: bool,

    /// Devices from a file: one per line, `TOKEN [DEVICE_ID [NAME [PASSWORD]]]` (whitespace
    /// separated; `#` starts a comment). The id is needed only for `--verify`. With a password,
    /// TOKEN is an MQTT user name and NAME the client id.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Stead's HTTP API, to create devices and to verify what was stored.
    #[arg(long)]
    api: Option<String>,
    #[arg(long, env = "STEAD_E2E_EMAIL")]
    email: Option<String>,
    #[arg(long, env = "STEAD_E2E_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// How many devices: created through the API, or the first N of the token file.
    #[arg(long)]
    devices: Option<usize>,
    /// Names of created devices: PREFIX0, PREFIX1, ... (a fresh prefix if one is taken).
    #[arg(long, default_value = "load-")]
    name_prefix: String,
    /// Save the created devices as `TOKEN DEVICE_ID NAME` lines, for `--token-file` next time.
    #[arg(long)]
    write_tokens: Option<PathBuf>,
    /// Device creations in flight at once.
    #[arg(long, default_value_t = 16)]
    create_concurrency: usize,
    /// Create devices with MQTT basic credentials instead of access tokens: a user name, a
    /// generated password and the device name as required client id. A device's first CONNECT
    /// then costs the server a password-hash verification (a reconnect storm's worst case).
    #[arg(long)]
    mqtt_basic: bool,

    /// Connection attempts in flight at once.
    #[arg(long, default_value_t = 200)]
    connect_concurrency: usize,
    /// Seconds allowed for TCP connect plus CONNACK.
    #[arg(long, default_value_t = 10)]
    connect_timeout: u64,
    /// MQTT keep-alive, seconds.
    #[arg(long, default_value_t = 60)]
    keep_alive: u64,
    /// Use random client ids even when device names are known.
    #[arg(long)]
    random_client_id: bool,

    /// Messages per second per device; 0 = as fast as the in-flight window allows. Timers tick
    /// at millisecond resolution: above ~500/s per device prefer 0.
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 60.0)]
    duration: f64,
    /// 0 or 1.
    #[arg(long, default_value_t = 1)]
    qos: u8,
    /// Unacknowledged QoS 1 messages allowed per device.
    #[arg(long, default_value_t = 16)]
    inflight: u16,
    /// Seconds to wait after the run for outstanding PUBACKs (an overloaded server can trail by
    /// many seconds; what is still missing then is reported as unacknowledged).
    #[arg(long, default_value_t = 30.0)]
    drain_timeout: f64,

    /// After the run, check per device that the stored `seq` count equals the acknowledged count
    /// (needs --api, --email, --password, and device ids).
    #[arg(long)]
    verify: bool,
    /// Seconds to wait before the first check.
    #[arg(long, default_value_t = 2.0)]
    verify_wait: f64,
    /// Seconds to keep re-checking devices that are short before calling it a loss.
    #[arg(long, default_value_t = 20.0)]
    verify_timeout: f64,
}

/// One device's credentials: an access token, or an MQTT user name (`token`) with a password.
#[derive(Debug, Clone)]
pub(crate) struct DeviceSpec {
    pub(crate) token: String,
    pub(crate) id: Option<Uuid>,
    pub(crate) name: Option<String>,
    pub(crate) password: Option<String>,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let qos = Qos::from_level(args.qos)?;
    if args.inflight == 0 {
        bail!("--inflight must be at least 1");
    }
    if !(args.duration > 0.0 && args.duration <= 86_400.0) {
        bail!("--duration must be between 0 and 86400 seconds");
    }
    if !(args.rate >= 0.0 && args.rate <= 100_000.0) {
        bail!("--rate must be between 0 (flat out) and 100000");
    }
    if args.connect_concurrency == 0 || args.create_concurrency == 0 {
        bail!("concurrencies must be at least 1");
    }

    let api = match &args.api {
        Some(base) => {
            let (email, password) = credentials(&args)?;
            let (api, _) = Api::new(base.as_str())
                .login(email, password)
                .await
                .with_context(|| format!("logging in to {base} as {email}"))?;
            Some(api)
        }
        None => None,
    };
    if args.verify && api.is_none() {
        bail!("--verify needs --api, --email and --password");
    }

    let devices = match (&args.token_file, &api) {
        (Some(path), _) => {
            let mut devices = read_token_file(path)?;
            if let Some(n) = args.devices {
                if n > devices.len() {
                    bail!(
                        "--devices {n} but {} has only {} tokens",
                        path.display(),
                        devices.len()
                    );
                }
                devices.truncate(n);
            }
            devices
        }
        (None, Some(api)) => {
            let n = args
                .devices
                .context("--devices N is needed to create devices through the API")?;
            let devices = create_devices(api, n, &args, args.create_concurrency).await?;
            if let Some(path) = &args.write_tokens {
                write_token_file(path, &devices)?;
                eprintln!("wrote {} tokens to {}", devices.len(), path.display());
            }
            devices
        }
        (None, None) => {
            bail!("give either --token-file FILE or --api URL --email E --password P --devices N")
        }
    };
    if devices.is_empty() {
        bail!("no devices");
    }
    if args.random_client_id && devices.iter().any(|d| d.password.is_some()) {
        bail!("MQTT-basic devices connect with their name as client id: drop --random-client-id");
    }
    if args.verify && devices.iter().any(|d| d.id.is_none()) {
        bail!("--verify needs every device's id: the token file must have `TOKEN DEVICE_ID` lines");
    }
    check_os_limits(devices.len())?;

    let outcome = run_load(&args, qos, &devices).await?;
    let mut report = outcome.report(&args, qos);
    let mut code = if outcome.connected == 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    };

    if args.verify {
        // A long run can outlive the access token: log in afresh.
        let (email, password) = credentials(&args)?;
        let base = args.api.clone().unwrap_or_default();
        let (api, _) = Api::new(base).login(email, password).await?;
        let verified = verify(&api, &args, qos, &devices, &outcome).await;
        match verified {
            Ok(v) => {
                print!("{}", v.human(qos));
                if v.lost > 0 && !args.v5 {
                    // Seen against Stead: 3.1.1 has no negative PUBACK, so a message dropped for a
                    // rate limit is acknowledged all the same, and repeated drops end the
                    // connection. Such a "loss" is the limit at work, not the storage.
                    println!(
                        "  note: over MQTT 3.1.1 a message the server drops (rate limit, bad payload) may still be acknowledged, \
                         so rerun with --v5 to see drops as rejected PUBACKs, or stay under the device rate limit"
                    );
                }
                if v.lost > 0 && qos == Qos::AtLeastOnce {
                    code = ExitCode::FAILURE;
                }
                report["verify"] = v.json();
            }
            Err(e) => {
                println!("verification FAILED: {e:#}");
                report["verify"] = json!({"error": format!("{e:#}")});
                code = ExitCode::FAILURE;
            }
        }
    }
    println!("{report}");
    Ok(code)
}

fn credentials(args: &Args) -> anyhow::Result<(&str, &str)> {
    match (&args.email, &args.password) {
        (Some(e), Some(p)) => Ok((e.as_str(), p.as_str())),
        _ => bail!("--api needs --email and --password (or STEAD_E2E_EMAIL / STEAD_E2E_PASSWORD)"),
    }
}

// ---------------------------------------------------------------------------------------------
// Devices

pub(crate) fn read_token_file(path: &PathBuf) -> anyhow::Result<Vec<DeviceSpec>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut devices = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut cols = line.split_whitespace();
        let token = cols.next().unwrap_or_default().to_owned();
        let id =
            match cols.next() {
                Some(id) => Some(Uuid::parse_str(id).with_context(|| {
                    format!("{}:{}: bad device id `{id}`", path.display(), n + 1)
                })?),
                None => None,
            };
        let name = cols.next().map(str::to_owned);
        let password = cols.next().map(str::to_owned);
        devices.push(DeviceSpec {
            token,
            id,
            name,
            password,
        });
    }
    Ok(devices)
}

fn write_token_file(path: &PathBuf, devices: &[DeviceSpec]) -> anyhow::Result<()> {
    let mut text = String::from("# stead-e2e tokens: TOKEN DEVICE_ID NAME [PASSWORD]\n");
    for d in devices {
        let id = d.id.map(|i| i.to_string()).unwrap_or_default();
        let _ = writeln!(
            text,
            "{} {} {} {}",
            d.token,
            id,
            d.name.as_deref().unwrap_or(""),
            d.password.as_deref().unwrap_or("")
        );
    }
    // Access tokens are credentials: readable by the owner only.
    use std::io::Write as _;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// Creates `n` devices, `concurrency` requests at a time. Names are `{prefix}{i}`; once one is
/// taken (an earlier run), every later device uses a fresh random prefix instead.
async fn create_devices(
    api: &Api,
    n: usize,
    args: &Args,
    concurrency: usize,
) -> anyhow::Result<Vec<DeviceSpec>> {
    let (prefix, basic) = (args.name_prefix.as_str(), args.mqtt_basic);
    let started = Instant::now();
    let fresh = format!("{prefix}{}-", short_id());
    let taken = AtomicBool::new(false);
    let done = AtomicU64::new(1);
    if n == 0 {
        bail!("--devices must be at least 1");
    }
    // The first device alone decides the prefix for the rest, so that one run's names match.
    let first = create_one(api, 0, prefix, &fresh, &taken, basic).await?;
    let results: Vec<anyhow::Result<DeviceSpec>> = futures_util::stream::iter(1..n)
        .map(|i| {
            let (fresh, taken, done) = (&fresh, &taken, &done);
            async move {
                let spec = create_one(api, i, prefix, fresh, taken, basic).await;
                let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                if d % 1000 == 0 {
                    eprintln!("created {d}/{n} devices");
                }
                spec
            }
        })
        .buffered(concurrency)
        .collect()
        .await;
    let mut devices = Vec::with_capacity(n);
    devices.push(first);
    for r in results {
        devices.push(r?);
    }
    eprintln!(
        "created {n} devices in {:.1} s ({:.0}/s)",
        started.elapsed().as_secs_f64(),
        n as f64 / started.elapsed().as_secs_f64().max(1e-9)
    );
    Ok(devices)
}

async fn create_one(
    api: &Api,
    i: usize,
    prefix: &str,
    fresh: &str,
    taken: &AtomicBool,
    mqtt_basic: bool,
) -> anyhow::Result<DeviceSpec> {
    let mut name = if taken.load(Ordering::Relaxed) {
        format!("{fresh}{i}")
    } else {
        format!("{prefix}{i}")
    };
    let mut backoff = Duration::from_millis(200);
    for _attempt in 0..8 {
        let body = if mqtt_basic {
            // User names are unique across tenants: the name plus a random part.
            json!({"name": name, "credentials": {"type": "mqtt_basic", "client_id": name,
                "username": format!("{name}.{}", short_id())}})
        } else {
            json!({"name": name})
        };
        let reply = retry_transport(|| api.post("/api/v1/devices", &body)).await?;
        if reply.status.is_success() {
            let created: CreatedDevice = reply.ok()?;
            let (token, password) = match created.mqtt_basic {
                Some(basic) => (basic.username, Some(basic.password)),
                None => (created.access_token.unwrap_or_default(), None),
            };
            return Ok(DeviceSpec {
                token,
                id: Some(created.device.id),
                name: Some(created.device.name),
                password,
            });
        }
        if reply.status == StatusCode::CONFLICT && reply.code() == "device_name_taken" {
            if name.starts_with(fresh) {
                name = format!("{prefix}{}-{i}", short_id());
            } else {
                taken.store(true, Ordering::Relaxed);
                name = format!("{fresh}{i}");
            }
            continue;
        }
        if reply.status == StatusCode::TOO_MANY_REQUESTS || reply.status.is_server_error() {
            let wait = reply
                .headers
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .map(Duration::from_secs)
                .unwrap_or(backoff)
                .min(Duration::from_secs(10));
            tokio::time::sleep(wait).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
            continue;
        }
        bail!("creating device `{name}`: {} {}", reply.status, reply.body);
    }
    bail!("creating device `{name}`: gave up after 8 attempts")
}

/// Runs a request again when it fails below HTTP (typically a pooled keep-alive connection that
/// the server closed just as it was reused), up to four tries.
async fn retry_transport<F, Fut>(mut request: F) -> anyhow::Result<stead_e2e::Reply>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<stead_e2e::Reply>>,
{
    let mut delay = Duration::from_millis(100);
    let mut tries = 1;
    loop {
        match request().await {
            Ok(reply) => return Ok(reply),
            Err(e) if tries >= 4 => return Err(e.context(format!("after {tries} tries"))),
            Err(_) => {
                tokio::time::sleep(delay).await;
                delay *= 2;
                tries += 1;
            }
        }
    }
}

fn short_id() -> String {
    Uuid::new_v4().simple().to_string()[..6].to_owned()
}

// ---------------------------------------------------------------------------------------------
// The run

/// The publishing window, the same for every device.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    start: Instant,
    deadline: Instant,
    drain_deadline: Instant,
}

/// Counters shared by all devices, sampled once a second by the reporter.
struct Shared {
    connected: AtomicU64,
    published: AtomicU64,
    acked: AtomicU64,
    rejected: AtomicU64,
    errors: AtomicU64,
    /// PUBACK latency in microseconds, from the PUBLISH leaving to its PUBACK arriving.
    latency: Mutex<Histogram<u64>>,
    /// CONNACK latency in microseconds, from starting the TCP connect.
    connect_latency: Mutex<Histogram<u64>>,
    payload_bytes: AtomicU64,
    /// When the last PUBACK arrived, in µs since `epoch`: acks can trail the run by seconds.
    last_ack_us: AtomicU64,
    epoch: Instant,
}

fn histogram() -> anyhow::Result<Histogram<u64>> {
    // 1 µs .. 10 min at 3 significant figures.
    Histogram::new_with_bounds(1, 600_000_000, 3).context("creating a histogram")
}

fn record_all(h: &Mutex<Histogram<u64>>, values: &mut Vec<u64>) {
    if values.is_empty() {
        return;
    }
    if let Ok(mut h) = h.lock() {
        for v in values.iter() {
            h.saturating_record((*v).max(1));
        }
    }
    values.clear();
}

/// What one device did.
#[derive(Debug, Default)]
struct DeviceReport {
    connected: bool,
    connect_error: Option<String>,
    published: u64,
    acked: u64,
    rejected: u64,
    /// Published QoS 1 messages that never got a PUBACK (connection lost, or drain timeout).
    unacked: u64,
    /// Why the connection ended early, if it did.
    run_error: Option<String>,
    reject_reasons: BTreeMap<String, u64>,
}

struct Outcome {
    devices: Vec<DeviceReport>,
    connected: u64,
    connect_secs: f64,
    connect_latency: Histogram<u64>,
    run_secs: f64,
    /// From the start of the run to the last PUBACK (at least `run_secs`).
    ack_secs: f64,
    published: u64,
    acked: u64,
    rejected: u64,
    unacked: u64,
    errors: u64,
    latency: Histogram<u64>,
    per_second: Vec<(u64, u64)>,
    start_ms: i64,
    payload_bytes: u64,
    peak_rss_mb: Option<f64>,
    /// CPU seconds this process used while publishing (to tell whether it was the bottleneck).
    run_cpu_s: Option<f64>,
    /// Wall time over which `run_cpu_s` was measured (the run plus its drain).
    cpu_wall_s: f64,
}

async fn run_load(args: &Args, qos: Qos, devices: &[DeviceSpec]) -> anyhow::Result<Outcome> {
    let n = devices.len();
    let shared = Arc::new(Shared {
        connected: AtomicU64::new(0),
        published: AtomicU64::new(0),
        acked: AtomicU64::new(0),
        rejected: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        latency: Mutex::new(histogram()?),
        connect_latency: Mutex::new(histogram()?),
        payload_bytes: AtomicU64::new(0),
        last_ack_us: AtomicU64::new(0),
        epoch: Instant::now(),
    });
    let connect_permits = Arc::new(Semaphore::new(args.connect_concurrency));
    let (go_tx, go_rx) = watch::channel(None::<Schedule>);
    let (connected_tx, mut connected_rx) = mpsc::channel::<bool>(1024);
    let cfg = Arc::new(DeviceCfg {
        qos,
        rate: args.rate,
        inflight: args.inflight,
    });

    eprintln!(
        "connecting {n} devices to {} (MQTT {}, {} at a time)",
        args.mqtt,
        if args.v5 { "5" } else { "3.1.1" },
        args.connect_concurrency
    );
    let connect_started = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for (i, d) in devices.iter().enumerate() {
        let client_id = match (&d.name, args.random_client_id) {
            (Some(name), false) => name.clone(),
            _ => format!("stead-e2e-{}", Uuid::new_v4().simple()),
        };
        let spec = conn::Spec {
            broker: args.mqtt.clone(),
            v5: args.v5,
            client_id,
            username: d.token.clone(),
            password: d.password.clone(),
            keep_alive: Duration::from_secs(args.keep_alive),
            timeout: Duration::from_secs(args.connect_timeout.max(1)),
        };
        tasks.push(tokio::spawn(device(
            i as u64,
            spec,
            cfg.clone(),
            shared.clone(),
            connect_permits.clone(),
            connected_tx.clone(),
            go_rx.clone(),
        )));
    }
    drop(connected_tx);

    // Phase 1: everyone connects (each attempt is bounded by --connect-timeout).
    let mut answered = 0usize;
    let mut ok = 0u64;
    let mut last_print = Instant::now();
    while answered < n {
        match tokio::time::timeout(Duration::from_secs(5), connected_rx.recv()).await {
            Ok(Some(connected)) => {
                answered += 1;
                ok += u64::from(connected);
            }
            Ok(None) => break,
            Err(_) => {}
        }
        if last_print.elapsed() >= Duration::from_secs(5) {
            last_print = Instant::now();
            eprintln!(
                "[connect {:5.1}s] {ok}/{n} connected, {} failed",
                connect_started.elapsed().as_secs_f64(),
                answered as u64 - ok
            );
        }
    }
    let connect_secs = connect_started.elapsed().as_secs_f64();
    eprintln!(
        "connected {ok}/{n} in {connect_secs:.2} s ({} failed)",
        n as u64 - ok
    );

    // Phase 2: publish from one instant to one deadline.
    let start_ms = chrono::Utc::now().timestamp_millis();
    let start = Instant::now();
    let run = Duration::from_secs_f64(args.duration);
    let deadline = start + run;
    let schedule = Schedule {
        start,
        deadline,
        drain_deadline: deadline + Duration::from_secs_f64(args.drain_timeout.max(0.0)),
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let cpu_at_start = cpu_seconds();
    let reporter = tokio::spawn(reporter(shared.clone(), start, stop_rx));
    if ok > 0 {
        eprintln!(
            "publishing for {:.0} s, QoS {}, {}",
            args.duration,
            args.qos,
            if args.rate > 0.0 {
                format!("{} msg/s per device", args.rate)
            } else {
                format!("flat out (in-flight window {})", args.inflight)
            }
        );
    }
    let _ = go_tx.send(Some(schedule));

    // Phase 3: every device task ends by the drain deadline plus a short disconnect.
    let mut reports = Vec::with_capacity(n);
    for t in tasks {
        reports.push(t.await.unwrap_or_else(|e| DeviceReport {
            run_error: Some(format!("task failed: {e}")),
            ..DeviceReport::default()
        }));
    }
    let run_secs = start.elapsed().as_secs_f64().min(args.duration).max(1e-9);
    let _ = stop_tx.send(true);
    let per_second = reporter.await.unwrap_or_default();

    let take = |m: &Mutex<Histogram<u64>>| -> anyhow::Result<Histogram<u64>> {
        match m.lock() {
            Ok(h) => Ok(h.clone()),
            Err(_) => histogram(),
        }
    };
    Ok(Outcome {
        connected: reports.iter().filter(|r| r.connected).count() as u64,
        connect_secs,
        connect_latency: take(&shared.connect_latency)?,
        run_secs,
        ack_secs: {
            let last = Duration::from_micros(shared.last_ack_us.load(Ordering::Relaxed));
            let since_start = last.saturating_sub(start.saturating_duration_since(shared.epoch));
            since_start.as_secs_f64().max(run_secs)
        },
        published: reports.iter().map(|r| r.published).sum(),
        acked: reports.iter().map(|r| r.acked).sum(),
        rejected: reports.iter().map(|r| r.rejected).sum(),
        unacked: reports.iter().map(|r| r.unacked).sum(),
        errors: shared.errors.load(Ordering::Relaxed),
        latency: take(&shared.latency)?,
        per_second,
        start_ms,
        payload_bytes: shared.payload_bytes.load(Ordering::Relaxed),
        peak_rss_mb: peak_rss_mb(),
        cpu_wall_s: start.elapsed().as_secs_f64(),
        run_cpu_s: cpu_seconds()
            .zip(cpu_at_start)
            .map(|(end, begin)| end - begin),
        devices: reports,
    })
}

struct DeviceCfg {
    qos: Qos,
    rate: f64,
    inflight: u16,
}

/// One device from connect to disconnect, in one task: connects (holding a connect permit),
/// waits for the run to start, publishes at `rate` or as fast as the in-flight window allows
/// until the deadline, waits (bounded) for the outstanding PUBACKs and says goodbye.
async fn device(
    index: u64,
    spec: conn::Spec,
    cfg: Arc<DeviceCfg>,
    shared: Arc<Shared>,
    permits: Arc<Semaphore>,
    connected_tx: mpsc::Sender<bool>,
    go: watch::Receiver<Option<Schedule>>,
) -> DeviceReport {
    let mut report = DeviceReport::default();
    let opened = {
        let _permit = permits.acquire().await;
        let began = Instant::now();
        let opened = Conn::open(&spec).await;
        if opened.is_ok()
            && let Ok(mut h) = shared.connect_latency.lock()
        {
            h.saturating_record((began.elapsed().as_micros() as u64).max(1));
        }
        opened
    };
    let mut conn = match opened {
        Ok(conn) => conn,
        Err(e) => {
            report.connect_error = Some(e);
            let _ = connected_tx.send(false).await;
            return report;
        }
    };
    report.connected = true;
    shared.connected.fetch_add(1, Ordering::Relaxed);
    let _ = connected_tx.send(true).await;
    drop(connected_tx);

    if let Err(e) = publish(index, &mut conn, &spec, &cfg, &shared, go, &mut report).await {
        report.run_error = Some(e);
        shared.errors.fetch_add(1, Ordering::Relaxed);
    }
    if cfg.qos == Qos::AtLeastOnce {
        report.unacked = report
            .published
            .saturating_sub(report.acked + report.rejected);
    }
    if report.run_error.is_none() {
        // Clean goodbye, bounded.
        conn.disconnect();
        let _ = tokio::time::timeout(Duration::from_secs(2), conn.flush()).await;
    }
    shared.connected.fetch_sub(1, Ordering::Relaxed);
    report
}

/// The publishing part of `device`. An error is why the connection ended early; running out of
/// drain time is reported in `report` and is not an error of the connection.
async fn publish(
    index: u64,
    conn: &mut Conn,
    spec: &conn::Spec,
    cfg: &DeviceCfg,
    shared: &Shared,
    mut go: watch::Receiver<Option<Schedule>>,
    report: &mut DeviceReport,
) -> Result<(), String> {
    let qos1 = cfg.qos == Qos::AtLeastOnce;
    // The broker's Receive Maximum bounds the window too (MQTT 5).
    let window = cfg.inflight.min(conn.receive_max).max(1);
    // Packet ids 1..=window, each reused only after its PUBACK; the send time sits in its slot.
    let mut sent_at: Vec<Option<Instant>> = vec![None; usize::from(window) + 1];
    let mut free: Vec<u16> = (1..=window).rev().collect();
    let mut latencies: Vec<u64> = Vec::with_capacity(64);
    let mut sensor = Sensor::new(index);
    let period = (cfg.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / cfg.rate));
    let ping_every = (spec.keep_alive / 2).max(Duration::from_millis(500));
    let mut ping_at = Instant::now() + ping_every;
    let mut schedule: Option<Schedule> = None;
    let mut next = Instant::now();

    let result = 'run: loop {
        let now = Instant::now();
        if let Some(s) = schedule {
            if now < s.deadline {
                // As many messages as are due and fit the window.
                let mut budget = window;
                while budget > 0 && (!qos1 || !free.is_empty()) {
                    if let Some(p) = period {
                        if next > now {
                            break;
                        }
                        next += p;
                        // Behind schedule (the window was full): skip the missed ticks, don't burst.
                        if next + p < now {
                            next = now;
                        }
                    }
                    budget -= 1;
                    let pkid = if qos1 { free.pop() } else { None };
                    let payload = sensor.next_payload(report.published + 1);
                    conn.publish(TELEMETRY_TOPIC, pkid, &payload);
                    if let Some(id) = pkid {
                        sent_at[usize::from(id)] = Some(now);
                    }
                    report.published += 1;
                    shared.published.fetch_add(1, Ordering::Relaxed);
                    shared
                        .payload_bytes
                        .fetch_add(payload.len() as u64, Ordering::Relaxed);
                }
            } else if !qos1 || free.len() == usize::from(window) {
                break Ok(());
            } else if now >= s.drain_deadline {
                report.run_error = Some("drain timeout: PUBACKs still outstanding".to_owned());
                break Ok(());
            }
        }
        if now >= ping_at {
            conn.ping();
        }
        if conn.has_queued() {
            if let Err(e) = conn.flush().await {
                break Err(e);
            }
            ping_at = Instant::now() + ping_every;
        }

        // Sleep until the next thing to do, or until the broker says something.
        let mut wake = ping_at;
        let mut again = false;
        if let Some(s) = schedule {
            let now = Instant::now();
            if now < s.deadline {
                let room = !qos1 || !free.is_empty();
                match period {
                    Some(_) if room => wake = wake.min(next.min(s.deadline)),
                    None if room => again = true, // flat out at QoS 0: yield, then go on
                    _ => wake = wake.min(s.deadline),
                }
            } else {
                wake = wake.min(s.drain_deadline);
            }
        }
        tokio::select! {
            biased;
            read = conn.fill() => {
                if let Err(e) = read {
                    break Err(e);
                }
                loop {
                    match conn.next() {
                        Ok(Some(conn::Incoming::PubAck { pkid, refused })) => {
                            let Some(at) = sent_at.get_mut(usize::from(pkid)).and_then(Option::take) else {
                                continue; // not ours (or a duplicate): nothing to count
                            };
                            free.push(pkid);
                            latencies.push(at.elapsed().as_micros() as u64);
                            if latencies.len() >= 64 {
                                record_all(&shared.latency, &mut latencies);
                            }
                            match refused {
                                None => {
                                    report.acked += 1;
                                    shared.acked.fetch_add(1, Ordering::Relaxed);
                                    shared.last_ack_us.fetch_max(
                                        shared.epoch.elapsed().as_micros() as u64,
                                        Ordering::Relaxed,
                                    );
                                }
                                Some(reason) => {
                                    report.rejected += 1;
                                    shared.rejected.fetch_add(1, Ordering::Relaxed);
                                    *report.reject_reasons.entry(reason).or_default() += 1;
                                }
                            }
                        }
                        Ok(Some(conn::Incoming::Disconnect { reason })) => {
                            break 'run Err(format!("broker sent DISCONNECT: {reason}"));
                        }
                        Ok(Some(conn::Incoming::Other)) => {}
                        Ok(None) => break,
                        Err(e) => break 'run Err(e),
                    }
                }
            }
            changed = go.changed(), if schedule.is_none() => {
                if changed.is_err() {
                    break Err("the run was abandoned".to_owned());
                }
                schedule = *go.borrow_and_update();
                if let (Some(s), Some(p)) = (schedule, period) {
                    // Spread the devices over the first period so they do not all fire on the
                    // same tick.
                    next = s.start + p.mul_f64(sensor.unit());
                }
            }
            _ = tokio::task::yield_now(), if again => {}
            _ = tokio::time::sleep_until(wake), if !again => {}
        }
    };
    record_all(&shared.latency, &mut latencies);
    result
}

/// Plausible readings that drift slowly, so charts of a load test look like a building and not
/// like noise. A tiny xorshift keeps it deterministic per device without another dependency.
pub struct Sensor {
    state: u64,
    temperature: f64,
    humidity: f64,
    pressure: f64,
}

impl Sensor {
    pub fn new(seed: u64) -> Sensor {
        let mut s = Sensor {
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            temperature: 0.0,
            humidity: 0.0,
            pressure: 0.0,
        };
        s.temperature = 18.0 + 6.0 * s.unit();
        s.humidity = 35.0 + 25.0 * s.unit();
        s.pressure = 1000.0 + 25.0 * s.unit();
        s
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }

    /// `{"seq":..,"temperature":..,"humidity":..,"pressure":..}`, about 75 bytes.
    pub fn next_payload(&mut self, seq: u64) -> Vec<u8> {
        self.temperature = (self.temperature + (self.unit() - 0.5) * 0.2).clamp(-20.0, 50.0);
        self.humidity = (self.humidity + (self.unit() - 0.5) * 0.5).clamp(5.0, 95.0);
        self.pressure = (self.pressure + (self.unit() - 0.5) * 0.3).clamp(950.0, 1050.0);
        format!(
            "{{\"seq\":{seq},\"temperature\":{:.2},\"humidity\":{:.2},\"pressure\":{:.2}}}",
            self.temperature, self.humidity, self.pressure
        )
        .into_bytes()
    }
}

/// Samples the counters every second (kept for the report) and prints a progress line every 5 s.
async fn reporter(
    shared: Arc<Shared>,
    start: Instant,
    mut stop: watch::Receiver<bool>,
) -> Vec<(u64, u64)> {
    let mut per_second = Vec::new();
    let mut tick = tokio::time::interval_at(start + Duration::from_secs(1), Duration::from_secs(1));
    let (mut last_pub, mut last_ack) = (0u64, 0u64);
    // Bounded: the run stops it; one day is the backstop.
    for second in 1..=86_400u64 {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => {
                // The part-second at the end (the drain), if anything happened in it.
                let published = shared.published.load(Ordering::Relaxed);
                let acked = shared.acked.load(Ordering::Relaxed);
                if published > last_pub || acked > last_ack {
                    per_second.push((published - last_pub, acked - last_ack));
                }
                break;
            }
        }
        let published = shared.published.load(Ordering::Relaxed);
        let acked = shared.acked.load(Ordering::Relaxed);
        per_second.push((published - last_pub, acked - last_ack));
        (last_pub, last_ack) = (published, acked);
        if second % 5 == 0 {
            let window = per_second.len().saturating_sub(5);
            let recent: (u64, u64) = per_second[window..]
                .iter()
                .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
            let n = (per_second.len() - window).max(1) as u64;
            eprintln!(
                "[{second:4}s] connected {} | published {published} ({}/s) | acked {acked} ({}/s) | rejected {} | errors {}",
                shared.connected.load(Ordering::Relaxed),
                recent.0 / n,
                recent.1 / n,
                shared.rejected.load(Ordering::Relaxed),
                shared.errors.load(Ordering::Relaxed),
            );
        }
    }
    per_second
}

/// The process's peak resident memory, from /proc (Linux only).
/// Each device is one socket: refuse to start a run that would die of EMFILE halfway through, and
/// warn when the ephemeral port range is smaller than the fleet (Linux only; silent elsewhere).
pub(crate) fn check_os_limits(devices: usize) -> anyhow::Result<()> {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let soft = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse::<usize>().ok());
    if let Some(soft) = soft {
        let needed = devices + 64;
        if soft < needed {
            bail!(
                "{devices} devices need about {needed} open files but this process may open only {soft}: \
                 raise the limit in the calling shell first, e.g. `ulimit -n {}`",
                needed.max(1024).next_power_of_two()
            );
        }
    }
    let range =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let ports: Vec<usize> = range
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    if let [low, high] = ports[..]
        && high >= low
        && high - low + 1 < devices
    {
        eprintln!(
            "warning: {devices} devices but only {} ephemeral ports ({low}-{high}) towards one broker address",
            high - low + 1
        );
    }
    Ok(())
}

/// User plus system CPU time of this process, from /proc (Linux; USER_HZ is 100 there).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may contain spaces: fields are counted after its closing parenthesis.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn top_reasons<'a>(reasons: impl Iterator<Item = &'a str>) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for r in reasons {
        *m.entry(r.to_owned()).or_insert(0u64) += 1;
    }
    m
}

impl Outcome {
    /// Prints the human summary and answers the machine-readable one.
    fn report(&self, args: &Args, qos: Qos) -> serde_json::Value {
        let n = self.devices.len() as u64;
        let connect_failures = top_reasons(
            self.devices
                .iter()
                .filter_map(|d| d.connect_error.as_deref()),
        );
        let run_errors = top_reasons(self.devices.iter().filter_map(|d| d.run_error.as_deref()));
        let mut rejects: BTreeMap<String, u64> = BTreeMap::new();
        for d in &self.devices {
            for (k, v) in &d.reject_reasons {
                *rejects.entry(k.clone()).or_default() += v;
            }
        }
        let c = &self.connect_latency;
        let l = &self.latency;
        let pub_rate = self.published as f64 / self.run_secs;
        let ack_rate = self.acked as f64 / self.ack_secs;
        let mean_payload = if self.published > 0 {
            self.payload_bytes as f64 / self.published as f64
        } else {
            0.0
        };

        let mut out = String::new();
        let _ = writeln!(
            out,
            "== stead-e2e loadgen: {} MQTT {} ==",
            args.mqtt,
            if args.v5 { "5" } else { "3.1.1" }
        );
        let _ = writeln!(
            out,
            "connect: {}/{n} devices in {:.2} s ({:.0}/s), CONNACK latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            self.connected,
            self.connect_secs,
            self.connected as f64 / self.connect_secs.max(1e-9),
            ms(c.value_at_quantile(0.5)),
            ms(c.value_at_quantile(0.99)),
            ms(c.max())
        );
        for (reason, count) in &connect_failures {
            let _ = writeln!(out, "  connect failed x{count}: {reason}");
        }
        let _ = writeln!(
            out,
            "run: {:.1} s, QoS {}, {}, payload {:.0} bytes",
            self.run_secs,
            args.qos,
            if args.rate > 0.0 {
                format!(
                    "{} msg/s per device (target {:.0} msg/s)",
                    args.rate,
                    args.rate * self.connected as f64
                )
            } else {
                format!("flat out, in-flight window {}", args.inflight)
            },
            mean_payload
        );
        let _ = writeln!(
            out,
            "published {} ({pub_rate:.0} msg/s), acknowledged {} ({ack_rate:.0} msg/s over {:.1} s), rejected {}, unacknowledged {}, errors {}",
            self.published, self.acked, self.ack_secs, self.rejected, self.unacked, self.errors
        );
        if qos == Qos::AtLeastOnce && self.published > 0 {
            let _ = writeln!(
                out,
                "PUBACK latency: p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms ({} samples)",
                ms(l.value_at_quantile(0.5)),
                ms(l.value_at_quantile(0.99)),
                ms(l.value_at_quantile(0.999)),
                ms(l.max()),
                l.len()
            );
        }
        for (reason, count) in &rejects {
            let _ = writeln!(out, "  rejected x{count}: {reason}");
        }
        for (reason, count) in &run_errors {
            let _ = writeln!(out, "  connection ended early x{count}: {reason}");
        }
        let per_pub: Vec<String> = self.per_second.iter().map(|p| p.0.to_string()).collect();
        let per_ack: Vec<String> = self.per_second.iter().map(|p| p.1.to_string()).collect();
        if self.published > 0 {
            let _ = writeln!(out, "published per second: {}", per_pub.join(" "));
        }
        if qos == Qos::AtLeastOnce && self.published > 0 {
            let _ = writeln!(out, "acknowledged per second: {}", per_ack.join(" "));
        }
        if let Some(cpu) = self.run_cpu_s.filter(|_| self.published > 0) {
            let _ = writeln!(
                out,
                "load generator CPU while publishing: {cpu:.1} s ({:.2} cores of {}), {:.1} µs per message",
                cpu / self.cpu_wall_s.max(1e-9),
                std::thread::available_parallelism()
                    .map(usize::from)
                    .unwrap_or(1),
                if self.published > 0 {
                    cpu * 1e6 / self.published as f64
                } else {
                    0.0
                }
            );
        }
        if let Some(rss) = self.peak_rss_mb {
            let _ = writeln!(out, "load generator peak RSS: {rss:.0} MB");
        }
        print!("{out}");

        json!({
            "kind": "stead-e2e-loadgen",
            "mqtt": args.mqtt.to_string(),
            "protocol": if args.v5 { "5" } else { "3.1.1" },
            "qos": args.qos,
            "rate_per_device": args.rate,
            "inflight": args.inflight,
            "duration_s": args.duration,
            "devices": n,
            "connected": self.connected,
            "connect_failed": n - self.connected,
            "connect_failures": connect_failures,
            "connect_s": self.connect_secs,
            "connack_ms": {
                "p50": ms(c.value_at_quantile(0.5)),
                "p99": ms(c.value_at_quantile(0.99)),
                "max": ms(c.max()),
            },
            "run_s": self.run_secs,
            "start_ms": self.start_ms,
            "published": self.published,
            "acked": self.acked,
            "rejected": self.rejected,
            "rejected_reasons": rejects,
            "unacked": self.unacked,
            "errors": self.errors,
            "run_errors": run_errors,
            "published_per_s": pub_rate,
            "acked_per_s": ack_rate,
            "ack_s": self.ack_secs,
            "puback_ms": {
                "p50": ms(l.value_at_quantile(0.5)),
                "p99": ms(l.value_at_quantile(0.99)),
                "p999": ms(l.value_at_quantile(0.999)),
                "max": ms(l.max()),
                "samples": l.len(),
            },
            "per_second_published": self.per_second.iter().map(|p| p.0).collect::<Vec<_>>(),
            "per_second_acked": self.per_second.iter().map(|p| p.1).collect::<Vec<_>>(),
            "payload_bytes_mean": mean_payload,
            "peak_rss_mb": self.peak_rss_mb,
            "run_cpu_s": self.run_cpu_s,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Verification

struct Verified {
    devices: u64,
    stored: u64,
    acked: u64,
    published: u64,
    /// Sum over devices of acknowledged minus stored, where that is positive.
    lost: u64,
    short_devices: Vec<(Uuid, u64, u64)>,
}

impl Verified {
    fn human(&self, qos: Qos) -> String {
        let mut out = String::new();
        let verdict = if self.lost == 0 {
            "OK"
        } else if qos == Qos::AtLeastOnce {
            "LOSS"
        } else {
            "QoS 0 losses (allowed)"
        };
        let _ = writeln!(
            out,
            "verify: {verdict}: stored {} vs acknowledged {} (published {}) over {} devices; missing {}",
            self.stored, self.acked, self.published, self.devices, self.lost
        );
        for (id, stored, expected) in self.short_devices.iter().take(10) {
            let _ = writeln!(out, "  device {id}: stored {stored}, expected {expected}");
        }
        out
    }

    fn json(&self) -> serde_json::Value {
        json!({
            "devices": self.devices,
            "stored": self.stored,
            "acked": self.acked,
            "published": self.published,
            "lost": self.lost,
            "short_devices": self.short_devices.len(),
        })
    }
}

async fn verify(
    api: &Api,
    args: &Args,
    qos: Qos,
    devices: &[DeviceSpec],
    outcome: &Outcome,
) -> anyhow::Result<Verified> {
    tokio::time::sleep(Duration::from_secs_f64(args.verify_wait.max(0.0))).await;
    // What each device should have stored: its PUBACKs for QoS 1, its publishes for QoS 0.
    let expected: Vec<(Uuid, u64, u64)> = devices
        .iter()
        .zip(&outcome.devices)
        .filter_map(|(d, r)| {
            let want = if qos == Qos::AtLeastOnce {
                r.acked
            } else {
                r.published
            };
            d.id.map(|id| (id, want, r.published))
        })
        .collect();
    let mut stored: BTreeMap<Uuid, u64> = BTreeMap::new();
    let mut pending: Vec<(Uuid, u64)> = expected.iter().map(|(id, want, _)| (*id, *want)).collect();
    let until = Instant::now() + Duration::from_secs_f64(args.verify_timeout.max(0.0));
    eprintln!("verifying {} devices", pending.len());
    // Bounded: at most one round a second until the timeout, and at least one round.
    for round in 0..=86_400u64 {
        let to_ms = chrono::Utc::now().timestamp_millis();
        let counts: Vec<anyhow::Result<(Uuid, u64)>> =
            futures_util::stream::iter(pending.iter().copied())
                .map(|(id, _)| async move {
                    stored_count(api, id, outcome.start_ms, to_ms)
                        .await
                        .map(|c| (id, c))
                })
                .buffer_unordered(16)
                .collect()
                .await;
        for c in counts {
            let (id, count) = c?;
            stored.insert(id, count);
        }
        pending.retain(|(id, want)| stored.get(id).copied().unwrap_or(0) < *want);
        if pending.is_empty() || Instant::now() >= until {
            break;
        }
        if round == 0 {
            eprintln!(
                "{} devices short of their count; re-checking until the verify timeout",
                pending.len()
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let mut v = Verified {
        devices: expected.len() as u64,
        stored: 0,
        acked: outcome.acked,
        published: outcome.published,
        lost: 0,
        short_devices: Vec::new(),
    };
    for (id, want, _) in &expected {
        let got = stored.get(id).copied().unwrap_or(0);
        v.stored += got;
        if got < *want {
            v.lost += want - got;
            v.short_devices.push((*id, got, *want));
        }
    }
    Ok(v)
}

/// How many `seq` values the device has stored in [from, to].
async fn stored_count(api: &Api, id: Uuid, from: i64, to: i64) -> anyhow::Result<u64> {
    let interval = to - from + 1;
    let path = format!(
        "/api/v1/devices/{id}/telemetry/aggregate?keys=seq&from={from}&to={to}&interval={interval}&agg=count"
    );
    // Busy servers answer 429/5xx now and then: a few tries before calling it an error.
    let mut reply = retry_transport(|| api.get(&path)).await?;
    let mut delay = Duration::from_millis(200);
    for _ in 0..4 {
        if reply.status != StatusCode::TOO_MANY_REQUESTS && !reply.status.is_server_error() {
            break;
        }
        tokio::time::sleep(delay).await;
        delay *= 2;
        reply = retry_transport(|| api.get(&path)).await?;
    }
    if reply.status == StatusCode::NOT_FOUND && reply.code() == "route_not_found" {
        bail!(
            "this server has no telemetry aggregate endpoint yet (GET {path} answered {} {}), so stored data cannot be counted",
            reply.status,
            reply.body
        );
    }
    if reply.status == StatusCode::NOT_FOUND || reply.status == StatusCode::METHOD_NOT_ALLOWED {
        bail!(
            "GET {path} answered {} {}: the device is unknown to this account, or the server has no aggregate endpoint",
            reply.status,
            reply.body
        );
    }
    let series: AggregateSeries = reply.ok().with_context(|| format!("GET {path}"))?;
    Ok(series
        .series
        .get("seq")
        .map(|points| points.iter().map(|p| p.count).sum())
        .unwrap_or(0))
}
