//! `simulate-ota`: a fleet of devices taking firmware updates the way ThingsBoard-SDK devices do
//! (`/work/shared/DEVICE_API.md`, Firmware), for campaign tests and the OTA benchmark. It owns
//! each device's update flow (the `fw_*` attributes pushed or asked for at connect, the chunked
//! download on `v2/fw/request/...`, the checksum, the `fw_state` reports, the reboot) and a
//! scripted behaviour per device: `succeed`, `fail` (a flash failure after a good download),
//! `hang` (DOWNLOADING, then silence) or `reboot-loop` (UPDATED, then a reconnect every ~2 s).
//! Behaviours are given as percentages and fixed by a device's index, so a fleet's counts are
//! exact and every run the same.
//!
//! Each device is one task on its own connection (`crate::mqtt`); its final reports are counted
//! when the platform acknowledges them (QoS 1), so "UPDATED" in the summary means stored.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use sha2::Digest as _;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::loadgen::{self, TELEMETRY_TOPIC};
use crate::mqtt::{self, Broker, Event, Qos};

const ATTRIBUTES_TOPIC: &str = "v1/devices/me/attributes";
const ATTRIBUTES_REQUEST_PREFIX: &str = "v1/devices/me/attributes/request/";
const ATTRIBUTES_RESPONSE_FILTER: &str = "v1/devices/me/attributes/response/+";
const ATTRIBUTES_RESPONSE_PREFIX: &str = "v1/devices/me/attributes/response/";
/// What SDK 1.x subscribes to; it matches no chunk topic, and the platform sends chunks anyway.
const FW_RESPONSE_FILTER: &str = "v2/fw/response/+";
const FW_RESPONSE_PREFIX: &str = "v2/fw/response/";
const FW_ERROR_TOPIC: &str = "v2/fw/error";
const FW_KEYS: &str = "fw_title,fw_version,fw_size,fw_checksum,fw_checksum_algorithm";

/// A chunk not answered within this is asked for again, up to `CHUNK_TRIES` times in all.
const CHUNK_TIMEOUT: Duration = Duration::from_secs(60);
const CHUNK_TRIES: u32 = 3;
/// An updated device is down this long while it "reboots" into the new image.
const REBOOT: Duration = Duration::from_secs(1);
/// A reboot-looping device stays up about this long, then down for `LOOP_DOWN`.
const LOOP_UP: Duration = Duration::from_millis(1500);
const LOOP_DOWN: Duration = Duration::from_millis(500);
/// Pause before connecting again after a lost connection or a failed connect.
const RETRY: Duration = Duration::from_secs(2);

#[derive(clap::Args, Debug)]
pub struct Args {
    /// MQTT address of the Stead ingress, HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:1884")]
    mqtt: Broker,
    /// Speak MQTT 5 instead of 3.1.1.
    #[arg(long)]
    v5: bool,
    /// Devices from a file, one per line: `TOKEN [DEVICE_ID [NAME [PASSWORD]]]` as
    /// `loadgen --write-tokens` writes it (`#` starts a comment).
    #[arg(long, conflicts_with = "tokens")]
    token_file: Option<PathBuf>,
    /// Devices' access tokens, comma separated.
    #[arg(long, value_delimiter = ',')]
    tokens: Vec<String>,
    /// Use only the first N devices of the file.
    #[arg(long)]
    devices: Option<usize>,
    /// The firmware every device runs at start (`current_fw_title`).
    #[arg(long, default_value = "sim-fw")]
    title: String,
    /// ... and its version (`current_fw_version`).
    #[arg(long, default_value = "1.0.0")]
    version: String,
    /// Bytes asked for per chunk; the platform refuses chunks above its largest message.
    #[arg(long, default_value_t = 64 * 1024)]
    chunk_size: u64,
    /// Percent of devices that update (download, verify, reboot, UPDATED, telemetry again).
    /// Default: what the other behaviours leave of 100.
    #[arg(long)]
    succeed: Option<u32>,
    /// Percent that download and verify, then report FAILED ("simulated flash failure").
    #[arg(long, default_value_t = 0)]
    fail: u32,
    /// Percent that report DOWNLOADING and then nothing (connected, no telemetry).
    #[arg(long, default_value_t = 0)]
    hang: u32,
    /// Percent that report UPDATED, then disconnect and reconnect every ~2 s, no telemetry.
    #[arg(long, default_value_t = 0)]
    reboot_loop: u32,
    /// Milliseconds between healthy devices' telemetry (`{"temperature":…}`); 0 sends none.
    #[arg(long, default_value_t = 1000)]
    telemetry_ms: u64,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 600.0)]
    duration: f64,
    /// Stop once every device has finished its behaviour for its current target (UPDATED,
    /// FAILED, hung or withdrawn, acknowledged by the platform). Exits 1 if the duration ends
    /// first.
    #[arg(long)]
    exit_when_done: bool,
    /// New connections per second at start.
    #[arg(long, default_value_t = 200.0)]
    connect_rate: f64,
    /// MQTT keep-alive, seconds.
    #[arg(long, default_value_t = 60)]
    keep_alive: u64,
    /// Seconds between progress lines on stderr.
    #[arg(long, default_value_t = 5.0)]
    progress_secs: f64,
    /// Print `INDEX BEHAVIOUR` per device (in token order) and exit without connecting.
    #[arg(long)]
    print_plan: bool,
}

// ---------------------------------------------------------------------------------------------
// Behaviours

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    Succeed,
    Fail,
    Hang,
    RebootLoop,
}

impl Behaviour {
    const ALL: [Behaviour; 4] = [
        Behaviour::Succeed,
        Behaviour::Fail,
        Behaviour::Hang,
        Behaviour::RebootLoop,
    ];

    fn name(self) -> &'static str {
        match self {
            Behaviour::Succeed => "succeed",
            Behaviour::Fail => "fail",
            Behaviour::Hang => "hang",
            Behaviour::RebootLoop => "reboot_loop",
        }
    }
}

/// Each device's behaviour by index: exact counts (`n·p/100`, the remainder to the largest
/// fractions, ties to the earlier behaviour), spread evenly over the indexes (device `i` takes the
/// behaviour furthest behind its share of the first `i + 1`), so that any prefix of the fleet (a
/// campaign's first batch) holds about the same mix. `percents` sum to 100.
pub fn plan(n: usize, percents: [u32; 4]) -> Vec<Behaviour> {
    let share = |b: usize| n as u128 * u128::from(percents[b]);
    let mut counts: [usize; 4] = std::array::from_fn(|b| (share(b) / 100) as usize);
    let rest = n.saturating_sub(counts.iter().sum());
    let mut by_fraction: Vec<usize> = (0..4).collect();
    by_fraction.sort_by_key(|&b| (std::cmp::Reverse(share(b) % 100), b));
    for &b in by_fraction.iter().take(rest) {
        counts[b] += 1;
    }
    let mut given = [0usize; 4];
    (0..n)
        .map(|i| {
            let deficit = |b: usize| (i as i128 + 1) * counts[b] as i128 - (given[b] * n) as i128;
            let b = (0..4)
                .filter(|&b| given[b] < counts[b])
                .min_by_key(|&b| (std::cmp::Reverse(deficit(b)), b))
                .unwrap_or(0);
            given[b] += 1;
            Behaviour::ALL[b]
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// What the fleet shares: per-device status and outcome, counters, the clock

/// Where a device is, for the progress lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Status {
    Connecting,
    Offline,
    Idle,
    Downloading,
    Rebooting,
    Hung,
    Looping,
    Refused,
}

impl Status {
    const ALL: [Status; 8] = [
        Status::Connecting,
        Status::Offline,
        Status::Idle,
        Status::Downloading,
        Status::Rebooting,
        Status::Hung,
        Status::Looping,
        Status::Refused,
    ];

    fn name(self) -> &'static str {
        match self {
            Status::Connecting => "connecting",
            Status::Offline => "offline",
            Status::Idle => "idle",
            Status::Downloading => "downloading",
            Status::Rebooting => "rebooting",
            Status::Hung => "hung",
            Status::Looping => "looping",
            Status::Refused => "refused",
        }
    }
}

/// How a device's latest target ended, once the platform acknowledged the final report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Outcome {
    NoTarget,
    InProgress,
    Updated,
    Failed,
    Hung,
    Withdrawn,
}

impl Outcome {
    const ALL: [Outcome; 6] = [
        Outcome::NoTarget,
        Outcome::InProgress,
        Outcome::Updated,
        Outcome::Failed,
        Outcome::Hung,
        Outcome::Withdrawn,
    ];

    fn name(self) -> &'static str {
        match self {
            Outcome::NoTarget => "no_target",
            Outcome::InProgress => "in_progress",
            Outcome::Updated => "updated",
            Outcome::Failed => "failed",
            Outcome::Hung => "hung",
            Outcome::Withdrawn => "withdrawn",
        }
    }

    fn finished(self) -> bool {
        !matches!(self, Outcome::NoTarget | Outcome::InProgress)
    }
}

struct Shared {
    epoch: Instant,
    /// `epoch` as Unix milliseconds, so that a script can line our times up with its own.
    epoch_unix_ms: i64,
    status: Vec<AtomicU8>,
    outcome: Vec<AtomicU8>,
    connected_once: AtomicU64,
    connects: AtomicU64,
    connection_errors: AtomicU64,
    publish_errors: AtomicU64,
    bytes: AtomicU64,
    updated_reports: AtomicU64,
    /// Microseconds since `epoch`: the first target any device acted on (`u64::MAX`: none yet),
    /// and the last UPDATED the platform acknowledged (0: none yet).
    first_target_us: AtomicU64,
    last_updated_us: AtomicU64,
    /// `fw_error`s of acknowledged FAILED reports.
    failures: Mutex<BTreeMap<String, u64>>,
}

impl Shared {
    fn new(n: usize) -> Shared {
        Shared {
            epoch: Instant::now(),
            epoch_unix_ms: chrono::Utc::now().timestamp_millis(),
            status: (0..n)
                .map(|_| AtomicU8::new(Status::Connecting as u8))
                .collect(),
            outcome: (0..n)
                .map(|_| AtomicU8::new(Outcome::NoTarget as u8))
                .collect(),
            connected_once: AtomicU64::new(0),
            connects: AtomicU64::new(0),
            connection_errors: AtomicU64::new(0),
            publish_errors: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            updated_reports: AtomicU64::new(0),
            first_target_us: AtomicU64::new(u64::MAX),
            last_updated_us: AtomicU64::new(0),
            failures: Mutex::new(BTreeMap::new()),
        }
    }

    fn now_us(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    // `ALL` lists each enum in declaration order, so a discriminant is its index there.
    fn status(&self, i: usize) -> Status {
        let v = self.status[i].load(Ordering::Relaxed);
        Status::ALL[usize::from(v) % Status::ALL.len()]
    }

    fn outcome(&self, i: usize) -> Outcome {
        let v = self.outcome[i].load(Ordering::Relaxed);
        Outcome::ALL[usize::from(v) % Outcome::ALL.len()]
    }

    /// Every device finished with its target (or was refused), and there was a target.
    fn all_done(&self) -> bool {
        self.first_target_us.load(Ordering::Relaxed) != u64::MAX
            && (0..self.status.len())
                .all(|i| self.outcome(i).finished() || self.status(i) == Status::Refused)
    }
}

// ---------------------------------------------------------------------------------------------
// The run

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let others = args.fail + args.hang + args.reboot_loop;
    let succeed = match args.succeed {
        Some(s) => s,
        None => 100u32.checked_sub(others).with_context(|| {
            format!("--fail, --hang and --reboot-loop add up to {others}%, more than 100")
        })?,
    };
    if succeed + others != 100 {
        bail!(
            "the behaviours add up to {}%, not 100 (succeed {succeed}, fail {}, hang {}, reboot-loop {})",
            succeed + others,
            args.fail,
            args.hang,
            args.reboot_loop
        );
    }
    if !(args.duration > 0.0 && args.duration <= 30.0 * 86_400.0) {
        bail!("--duration must be between 0 and 30 days");
    }
    if !(args.connect_rate > 0.0 && args.connect_rate.is_finite()) {
        bail!("--connect-rate must be above 0");
    }
    if args.chunk_size == 0 || args.chunk_size > 16 * 1024 * 1024 {
        bail!("--chunk-size must be between 1 byte and 16 MiB");
    }
    let devices = match &args.token_file {
        Some(path) => {
            let mut devices = loadgen::read_token_file(path)?;
            if let Some(n) = args.devices {
                if n > devices.len() {
                    bail!("--devices {n} but {} has {}", path.display(), devices.len());
                }
                devices.truncate(n);
            }
            devices
        }
        None => args
            .tokens
            .iter()
            .filter(|t| !t.is_empty())
            .map(|t| loadgen::DeviceSpec {
                token: t.clone(),
                id: None,
                name: None,
                password: None,
            })
            .collect(),
    };
    if devices.is_empty() {
        bail!("no devices: give --token-file FILE or --tokens A,B,C");
    }
    let n = devices.len();
    let behaviours = plan(n, [succeed, args.fail, args.hang, args.reboot_loop]);
    if args.print_plan {
        for (i, b) in behaviours.iter().enumerate() {
            println!("{i} {}", b.name());
        }
        return Ok(ExitCode::SUCCESS);
    }
    loadgen::check_os_limits(n)?;

    let shared = Arc::new(Shared::new(n));
    let cfg = Arc::new(Cfg {
        chunk_size: args.chunk_size,
        telemetry: (args.telemetry_ms > 0).then(|| Duration::from_millis(args.telemetry_ms)),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    eprintln!(
        "simulate-ota: {n} devices on {} (MQTT {}), running {} {}; {succeed}% succeed, {}% fail, {}% hang, {}% reboot-loop; connecting {}/s",
        args.mqtt,
        if args.v5 { "5" } else { "3.1.1" },
        args.title,
        args.version,
        args.fail,
        args.hang,
        args.reboot_loop,
        args.connect_rate
    );
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for (i, d) in devices.into_iter().enumerate() {
        let client_id = match (&d.name, &d.password) {
            // MQTT-basic credentials may require the device's name as client id.
            (Some(name), Some(_)) => name.clone(),
            _ => format!("stead-ota-{i}-{}", uuid::Uuid::new_v4().simple()),
        };
        let settings = mqtt::Settings {
            broker: args.mqtt.clone(),
            v5: args.v5,
            client_id,
            username: d.token,
            password: d.password.unwrap_or_default(),
            keep_alive: Duration::from_secs(args.keep_alive),
            inflight: 16,
            channel_capacity: 64,
            // A chunk of `chunk_size` bytes plus its topic and header.
            max_incoming_packet: usize::try_from(args.chunk_size)
                .unwrap_or(usize::MAX)
                .saturating_add(4096)
                .max(64 * 1024),
            max_outgoing_packet: 64 * 1024,
            connect_timeout_secs: 10,
        };
        let device = Device::new(
            i,
            behaviours[i],
            settings,
            Firmware {
                title: args.title.clone(),
                version: args.version.clone(),
            },
            cfg.clone(),
            shared.clone(),
        );
        let at = started + Duration::from_secs_f64(i as f64 / args.connect_rate);
        tasks.push(tokio::spawn(device.run(at, stop_rx.clone())));
    }
    drop(stop_rx);

    let deadline = started + Duration::from_secs_f64(args.duration);
    let all_done = watch_fleet(&shared, &behaviours, &args, deadline).await;
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }

    let report = summary(&shared, &behaviours, started, all_done);
    println!("{report}");
    Ok(
        if shared.connected_once.load(Ordering::Relaxed) == 0 || (args.exit_when_done && !all_done)
        {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        },
    )
}

/// Prints progress until the deadline (or, with `--exit-when-done`, until every device is done);
/// answers whether every device was done at the end.
async fn watch_fleet(
    shared: &Shared,
    behaviours: &[Behaviour],
    args: &Args,
    deadline: Instant,
) -> bool {
    let n = behaviours.len() as u64;
    let every = Duration::from_secs_f64(args.progress_secs.clamp(0.25, 3600.0));
    let mut next_print = Instant::now() + every;
    let mut all_connected = false;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = tokio::time::sleep_until(deadline) => break,
        }
        if !all_connected && shared.connected_once.load(Ordering::Relaxed) >= n {
            all_connected = true;
            eprintln!(
                "all {n} devices connected in {:.1} s",
                shared.epoch.elapsed().as_secs_f64()
            );
        }
        let done = shared.all_done();
        if Instant::now() >= next_print || (done && args.exit_when_done) {
            next_print = Instant::now() + every;
            eprintln!("{}", progress_line(shared, behaviours));
        }
        if done && args.exit_when_done {
            eprintln!("every device is done");
            return true;
        }
    }
    shared.all_done()
}

fn progress_line(shared: &Shared, behaviours: &[Behaviour]) -> String {
    let mut statuses = BTreeMap::new();
    let mut outcomes = BTreeMap::new();
    for i in 0..behaviours.len() {
        *statuses.entry(shared.status(i) as u8).or_insert(0u64) += 1;
        *outcomes.entry(shared.outcome(i) as u8).or_insert(0u64) += 1;
    }
    let mut line = format!(
        "[{:7.1}s] connected {}/{} |",
        shared.epoch.elapsed().as_secs_f64(),
        shared.connected_once.load(Ordering::Relaxed),
        behaviours.len()
    );
    for s in Status::ALL {
        if let Some(c) = statuses.get(&(s as u8)) {
            let _ = write!(line, " {} {c}", s.name());
        }
    }
    line.push_str(" |");
    for o in Outcome::ALL {
        if let Some(c) = outcomes.get(&(o as u8)) {
            let _ = write!(line, " {} {c}", o.name());
        }
    }
    let _ = write!(
        line,
        " | {:.1} MiB downloaded",
        shared.bytes.load(Ordering::Relaxed) as f64 / (1024.0 * 1024.0)
    );
    line
}

fn summary(shared: &Shared, behaviours: &[Behaviour], started: Instant, all_done: bool) -> Value {
    let mut per = serde_json::Map::new();
    for b in Behaviour::ALL {
        let mut counts = serde_json::Map::new();
        counts.insert("devices".into(), json!(0));
        for o in Outcome::ALL {
            counts.insert(o.name().into(), json!(0));
        }
        per.insert(b.name().into(), Value::Object(counts));
    }
    let mut refused = 0u64;
    for (i, b) in behaviours.iter().enumerate() {
        if shared.status(i) == Status::Refused {
            refused += 1;
        }
        for key in ["devices", shared.outcome(i).name()] {
            if let Some(v) = per.get_mut(b.name()).and_then(|c| c.get_mut(key)) {
                *v = json!(v.as_u64().unwrap_or(0) + 1);
            }
        }
    }
    let first = shared.first_target_us.load(Ordering::Relaxed);
    let last = shared.last_updated_us.load(Ordering::Relaxed);
    let update_secs = (first != u64::MAX && last >= first).then(|| (last - first) as f64 / 1e6);
    let unix_ms = |us: u64| shared.epoch_unix_ms + i64::try_from(us / 1000).unwrap_or(i64::MAX);
    let failures = shared
        .failures
        .lock()
        .map(|f| f.clone())
        .unwrap_or_default();
    json!({
        "devices": behaviours.len(),
        "connected": shared.connected_once.load(Ordering::Relaxed),
        "refused": refused,
        "connects": shared.connects.load(Ordering::Relaxed),
        "connection_errors": shared.connection_errors.load(Ordering::Relaxed),
        "publish_errors": shared.publish_errors.load(Ordering::Relaxed),
        "behaviours": per,
        "failure_reasons": failures,
        "updated_reports": shared.updated_reports.load(Ordering::Relaxed),
        "bytes_downloaded": shared.bytes.load(Ordering::Relaxed),
        "first_target_to_last_updated_secs": update_secs,
        "first_target_unix_ms": (first != u64::MAX).then(|| unix_ms(first)),
        "last_updated_unix_ms": (last > 0).then(|| unix_ms(last)),
        "all_done": all_done,
        "elapsed_secs": (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
    })
}

// ---------------------------------------------------------------------------------------------
// One device

struct Cfg {
    chunk_size: u64,
    telemetry: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Firmware {
    title: String,
    version: String,
}

/// A target as the `fw_*` shared attributes describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    fw: Firmware,
    size: u64,
    checksum: String,
    algorithm: String,
}

impl Target {
    /// From a push or the `shared` object of an attribute answer; `None` without a target.
    fn from_attributes(v: &Value) -> Option<Target> {
        let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        Some(Target {
            fw: Firmware {
                title: text("fw_title")?,
                version: text("fw_version")?,
            },
            size: v.get("fw_size").and_then(Value::as_u64)?,
            checksum: text("fw_checksum")?.to_ascii_lowercase(),
            algorithm: text("fw_checksum_algorithm").unwrap_or_else(|| "SHA256".into()),
        })
    }
}

/// The checksums a device can verify; the platform's default is SHA256.
enum Hasher {
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
}

impl Hasher {
    fn new(algorithm: &str) -> Option<Hasher> {
        match algorithm.to_ascii_uppercase().as_str() {
            "SHA256" => Some(Hasher::Sha256(sha2::Sha256::new())),
            "SHA384" => Some(Hasher::Sha384(sha2::Sha384::new())),
            "SHA512" => Some(Hasher::Sha512(sha2::Sha512::new())),
            _ => None,
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha384(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
        }
    }

    /// Lowercase hex, as the attribute carries it.
    fn finish(self) -> String {
        let digest = match self {
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Sha384(h) => h.finalize().to_vec(),
            Hasher::Sha512(h) => h.finalize().to_vec(),
        };
        digest.iter().fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
    }
}

struct Download {
    target: Target,
    request: u32,
    chunk: u32,
    received: u64,
    hasher: Hasher,
    /// When the asked chunk is overdue, and how many times it was asked for.
    deadline: Instant,
    tries: u32,
}

enum Phase {
    Idle,
    Downloading(Box<Download>),
    /// Flashed and down; reports UPDATED once connected again.
    Rebooting,
    Hung,
}

/// A final report: published again after each reconnect until the platform acknowledges it.
struct Pending {
    id: u64,
    payload: Vec<u8>,
    outcome: Outcome,
    error: Option<String>,
}

type Connection = (mqtt::Client, mqtt::EventLoop);

struct Device {
    index: usize,
    behaviour: Behaviour,
    settings: mqtt::Settings,
    cfg: Arc<Cfg>,
    shared: Arc<Shared>,
    running: Firmware,
    phase: Phase,
    /// A reboot-loop device that has flashed: it loops whenever idle, whatever it runs.
    looping: bool,
    /// The last target this device gave up on: taken again only when pushed, not from the
    /// attribute answer at a reconnect.
    finished: Option<Firmware>,
    pending: Option<Pending>,
    /// Ids for attribute requests, downloads and final reports.
    next_id: u32,
    conn: Option<Connection>,
    connected: bool,
    ever_connected: bool,
    reconnect_at: Option<Instant>,
    disconnect_at: Option<Instant>,
    next_telemetry: Instant,
    telemetry_seq: u64,
    /// Report ids of the publishes queued but not yet written (in order), and of those written
    /// and awaiting their PUBACK (by packet id); `None` for publishes nobody waits for.
    queued: VecDeque<Option<u64>>,
    unacked: HashMap<u16, u64>,
}

impl Device {
    fn new(
        index: usize,
        behaviour: Behaviour,
        settings: mqtt::Settings,
        running: Firmware,
        cfg: Arc<Cfg>,
        shared: Arc<Shared>,
    ) -> Device {
        Device {
            index,
            behaviour,
            settings,
            cfg,
            shared,
            running,
            phase: Phase::Idle,
            looping: false,
            finished: None,
            pending: None,
            next_id: 0,
            conn: None,
            connected: false,
            ever_connected: false,
            reconnect_at: None,
            disconnect_at: None,
            next_telemetry: Instant::now(),
            telemetry_seq: 0,
            queued: VecDeque::new(),
            unacked: HashMap::new(),
        }
    }

    async fn run(mut self, connect_at: Instant, mut stop: watch::Receiver<bool>) {
        self.reconnect_at = Some(connect_at);
        loop {
            if *stop.borrow() {
                break;
            }
            if self.conn.is_none() && self.reconnect_at.is_some_and(|t| t <= Instant::now()) {
                self.reconnect_at = None;
                self.conn = Some(mqtt::connection(&self.settings));
            }
            let wake = self.next_wake();
            tokio::select! {
                event = poll(&mut self.conn) => self.on_event(event).await,
                _ = tokio::time::sleep_until(wake) => self.on_timer(),
                _ = stop.changed() => break,
            }
        }
        self.disconnect(Duration::from_secs(2)).await;
    }

    fn next_wake(&self) -> Instant {
        let mut wake = Instant::now() + Duration::from_secs(3600);
        let mut at = |t: Instant| wake = wake.min(t);
        if self.conn.is_none() {
            if let Some(t) = self.reconnect_at {
                at(t);
            }
            return wake;
        }
        if self.telemetry_on() {
            at(self.next_telemetry);
        }
        if let Phase::Downloading(d) = &self.phase {
            at(d.deadline);
        }
        if let Some(t) = self.disconnect_at {
            at(t);
        }
        wake
    }

    fn telemetry_on(&self) -> bool {
        self.cfg.telemetry.is_some()
            && self.connected
            && !self.looping
            && matches!(self.phase, Phase::Idle | Phase::Downloading(_))
    }

    fn set_status(&self, s: Status) {
        self.shared.status[self.index].store(s as u8, Ordering::Relaxed);
    }

    fn set_outcome(&self, o: Outcome) {
        self.shared.outcome[self.index].store(o as u8, Ordering::Relaxed);
    }

    /// The status that follows from the phase while connected.
    fn show_phase(&self) {
        self.set_status(match self.phase {
            Phase::Idle if self.looping => Status::Looping,
            Phase::Idle => Status::Idle,
            Phase::Downloading(_) => Status::Downloading,
            Phase::Rebooting => Status::Rebooting,
            Phase::Hung => Status::Hung,
        });
    }

    fn id(&mut self) -> u32 {
        self.next_id = self.next_id.wrapping_add(1);
        self.next_id
    }

    // -- events -------------------------------------------------------------------------------

    async fn on_event(&mut self, event: anyhow::Result<Event>) {
        match event {
            Ok(Event::Connected) => self.on_connected().await,
            Ok(Event::Message { topic, payload }) => self.on_message(&topic, &payload),
            Ok(Event::Published { pkid }) => self.on_written(pkid),
            Ok(Event::PubAck { pkid, refused }) => self.on_acked(pkid, refused),
            Ok(Event::SubAck { refused: Some(_) }) => {
                self.shared.publish_errors.fetch_add(1, Ordering::Relaxed);
            }
            Ok(_) => {}
            Err(e) => self.on_lost(&e.to_string()),
        }
    }

    /// A new connection (clean session): subscribe, say what it runs (or the report that still
    /// waits for an acknowledgement), ask for its target.
    async fn on_connected(&mut self) {
        self.connected = true;
        self.shared.connects.fetch_add(1, Ordering::Relaxed);
        if !self.ever_connected {
            self.ever_connected = true;
            self.shared.connected_once.fetch_add(1, Ordering::Relaxed);
        }
        if let Some((client, _)) = &self.conn {
            // The request channel of a fresh connection is empty: these do not wait.
            for filter in [
                ATTRIBUTES_TOPIC,
                ATTRIBUTES_RESPONSE_FILTER,
                FW_RESPONSE_FILTER,
            ] {
                if client.subscribe(filter, Qos::AtLeastOnce).await.is_err() {
                    self.shared.publish_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        if matches!(self.phase, Phase::Rebooting) {
            // Booted into the new image: its UPDATED is the pending report.
            self.phase = Phase::Idle;
            if self.behaviour == Behaviour::RebootLoop {
                self.looping = true;
            }
        }
        match self.pending.as_ref().map(|p| (p.id, p.payload.clone())) {
            Some((id, payload)) => self.publish(TELEMETRY_TOPIC, payload, Some(id)),
            // Hung: nothing more, even after a dropped connection.
            None if matches!(self.phase, Phase::Hung) => {}
            None => {
                let idle = self.report("IDLE", None);
                self.publish(TELEMETRY_TOPIC, idle, None);
            }
        }
        if !matches!(self.phase, Phase::Hung) {
            let id = self.id();
            let ask = json!({ "sharedKeys": FW_KEYS }).to_string().into_bytes();
            self.publish(&format!("{ATTRIBUTES_REQUEST_PREFIX}{id}"), ask, None);
        }
        if let Some(every) = self.cfg.telemetry {
            // Spread the fleet's telemetry over the interval.
            let offset = every.mul_f64((self.index % 97) as f64 / 97.0);
            self.next_telemetry = Instant::now() + offset;
        }
        self.disconnect_at = self.looping.then(|| {
            Instant::now() + LOOP_UP + Duration::from_millis((self.index % 7) as u64 * 50)
        });
        self.show_phase();
    }

    /// The connection failed or dropped (not one this device ended itself).
    fn on_lost(&mut self, reason: &str) {
        self.conn = None;
        self.connected = false;
        self.queued.clear();
        self.unacked.clear();
        self.disconnect_at = None;
        if reason.starts_with("CONNECT refused") {
            // A bad token stays bad: this device is out of the run.
            eprintln!("device {}: {reason}; giving up on it", self.index);
            self.set_status(Status::Refused);
            return;
        }
        self.shared
            .connection_errors
            .fetch_add(1, Ordering::Relaxed);
        if matches!(self.phase, Phase::Downloading(_)) {
            // The attribute answer at the next connect starts it again.
            self.phase = Phase::Idle;
        }
        self.reconnect_at = Some(Instant::now() + RETRY);
        self.set_status(if self.ever_connected {
            Status::Offline
        } else {
            Status::Connecting
        });
    }

    fn on_message(&mut self, topic: &str, payload: &[u8]) {
        if matches!(self.phase, Phase::Hung) {
            return;
        }
        if topic == ATTRIBUTES_TOPIC {
            let Ok(v) = serde_json::from_slice::<Value>(payload) else {
                return;
            };
            let deleted = v
                .get("deleted")
                .and_then(Value::as_array)
                .is_some_and(|keys| {
                    keys.iter()
                        .any(|k| matches!(k.as_str(), Some("fw_title" | "fw_version")))
                });
            if deleted {
                self.withdrawn();
            } else if let Some(t) = Target::from_attributes(v.get("shared").unwrap_or(&v)) {
                self.on_target(t, true);
            }
        } else if topic.starts_with(ATTRIBUTES_RESPONSE_PREFIX) {
            let Ok(v) = serde_json::from_slice::<Value>(payload) else {
                return;
            };
            match Target::from_attributes(v.get("shared").unwrap_or(&Value::Null)) {
                Some(t) => self.on_target(t, false),
                None if matches!(self.phase, Phase::Downloading(_)) => self.withdrawn(),
                None => {}
            }
        } else if let Some(rest) = topic.strip_prefix(FW_RESPONSE_PREFIX) {
            // `{request}/chunk/{n}`
            let mut parts = rest.split('/');
            if let (Some(Ok(request)), Some("chunk"), Some(Ok(n))) = (
                parts.next().map(str::parse::<u32>),
                parts.next(),
                parts.next().map(str::parse::<u32>),
            ) {
                self.on_chunk(request, n, payload);
            }
        } else if topic == FW_ERROR_TOPIC && matches!(self.phase, Phase::Downloading(_)) {
            let why = String::from_utf8_lossy(payload).into_owned();
            self.fail(if why.is_empty() {
                "the platform refused a chunk".into()
            } else {
                why
            });
        }
    }

    fn on_written(&mut self, pkid: u16) {
        if let Some(Some(id)) = self.queued.pop_front()
            && pkid != 0
        {
            self.unacked.insert(pkid, id);
        }
    }

    fn on_acked(&mut self, pkid: u16, refused: Option<String>) {
        let Some(id) = self.unacked.remove(&pkid) else {
            return;
        };
        if refused.is_some() {
            // Not stored: the next connect sends it again.
            self.shared.publish_errors.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if self.pending.as_ref().is_some_and(|p| p.id == id)
            && let Some(p) = self.pending.take()
        {
            self.set_outcome(p.outcome);
            if p.outcome == Outcome::Updated {
                self.shared.updated_reports.fetch_add(1, Ordering::Relaxed);
                self.shared
                    .last_updated_us
                    .fetch_max(self.shared.now_us(), Ordering::Relaxed);
            }
            if let Some(error) = p.error
                && let Ok(mut f) = self.shared.failures.lock()
            {
                *f.entry(error).or_insert(0) += 1;
            }
        }
    }

    fn on_timer(&mut self) {
        let now = Instant::now();
        if self.conn.is_none() {
            return; // the run loop connects
        }
        if let Some(every) = self.cfg.telemetry
            && self.telemetry_on()
            && now >= self.next_telemetry
        {
            self.telemetry_seq += 1;
            let t = 18.0 + (self.index % 60) as f64 * 0.1 + (self.telemetry_seq % 5) as f64 * 0.1;
            let payload = format!("{{\"temperature\":{t:.1}}}").into_bytes();
            self.publish(TELEMETRY_TOPIC, payload, None);
            self.next_telemetry = (self.next_telemetry + every).max(now);
        }
        let overdue = match &mut self.phase {
            Phase::Downloading(d) if now >= d.deadline => {
                d.tries += 1;
                Some(d.tries >= CHUNK_TRIES)
            }
            _ => None,
        };
        match overdue {
            Some(true) => self.fail(format!(
                "download timed out (no chunk for {} s, {CHUNK_TRIES} tries)",
                CHUNK_TIMEOUT.as_secs()
            )),
            Some(false) => self.ask_chunk(),
            None => {}
        }
        if self.disconnect_at.is_some_and(|t| now >= t) {
            self.disconnect_at = None;
            if self.looping && matches!(self.phase, Phase::Idle) {
                self.reboot(LOOP_DOWN);
            }
        }
    }

    // -- the update flow ----------------------------------------------------------------------

    fn on_target(&mut self, t: Target, pushed: bool) {
        match &self.phase {
            Phase::Hung | Phase::Rebooting => return,
            Phase::Downloading(d) if d.target == t => return,
            _ => {}
        }
        if t.fw == self.running {
            // Already runs it (a rollback that crossed a download): nothing to fetch.
            if matches!(self.phase, Phase::Downloading(_)) {
                self.phase = Phase::Idle;
                self.show_phase();
            }
            return;
        }
        if !pushed && self.finished.as_ref() == Some(&t.fw) {
            return;
        }
        self.finished = None;
        let _ = self
            .shared
            .first_target_us
            .fetch_min(self.shared.now_us(), Ordering::Relaxed);
        self.set_outcome(Outcome::InProgress);
        if self.behaviour == Behaviour::Hang {
            self.phase = Phase::Hung;
            self.show_phase();
            self.final_report("DOWNLOADING", None, Outcome::Hung, true);
            return;
        }
        let Some(hasher) = Hasher::new(&t.algorithm) else {
            let why = format!("unsupported checksum algorithm {}", t.algorithm);
            self.finished = Some(t.fw);
            self.final_report("FAILED", Some(why), Outcome::Failed, true);
            return;
        };
        let request = self.id();
        self.phase = Phase::Downloading(Box::new(Download {
            target: t,
            request,
            chunk: 0,
            received: 0,
            hasher,
            deadline: Instant::now() + CHUNK_TIMEOUT,
            tries: 0,
        }));
        self.show_phase();
        self.progress("DOWNLOADING");
        self.ask_chunk();
    }

    fn ask_chunk(&mut self) {
        let Phase::Downloading(d) = &mut self.phase else {
            return;
        };
        d.deadline = Instant::now() + CHUNK_TIMEOUT;
        let topic = format!("v2/fw/request/{}/chunk/{}", d.request, d.chunk);
        let size = self.cfg.chunk_size.to_string().into_bytes();
        self.publish(&topic, size, None);
    }

    fn on_chunk(&mut self, request: u32, n: u32, payload: &[u8]) {
        let Phase::Downloading(d) = &mut self.phase else {
            return;
        };
        if request != d.request || n != d.chunk {
            return; // an answer to an abandoned request
        }
        self.shared
            .bytes
            .fetch_add(payload.len() as u64, Ordering::Relaxed);
        d.hasher.update(payload);
        d.received += payload.len() as u64;
        if payload.is_empty() || d.received >= d.target.size {
            self.downloaded();
        } else {
            d.chunk += 1;
            d.tries = 0;
            self.ask_chunk();
        }
    }

    /// The image is in: verify it, then what the behaviour says.
    fn downloaded(&mut self) {
        let Phase::Downloading(d) = std::mem::replace(&mut self.phase, Phase::Idle) else {
            return;
        };
        self.show_phase();
        let Download {
            target,
            received,
            hasher,
            ..
        } = *d;
        if received != target.size {
            self.finished = Some(target.fw);
            let why = format!("size mismatch ({received} of {} bytes)", target.size);
            self.final_report("FAILED", Some(why), Outcome::Failed, true);
            return;
        }
        if hasher.finish() != target.checksum {
            self.finished = Some(target.fw);
            self.final_report(
                "FAILED",
                Some("checksum mismatch".into()),
                Outcome::Failed,
                true,
            );
            return;
        }
        self.progress("DOWNLOADED");
        self.progress("VERIFIED");
        self.progress("UPDATING");
        match self.behaviour {
            Behaviour::Fail | Behaviour::Hang => {
                self.finished = Some(target.fw);
                self.final_report(
                    "FAILED",
                    Some("simulated flash failure".into()),
                    Outcome::Failed,
                    true,
                );
            }
            Behaviour::Succeed | Behaviour::RebootLoop => {
                // Flashed: boots into it and says so once back.
                self.running = target.fw;
                self.final_report("UPDATED", None, Outcome::Updated, false);
                self.phase = Phase::Rebooting;
                self.reboot(REBOOT);
            }
        }
    }

    /// The platform removed the target: an update under way stops; the device keeps what it runs.
    fn withdrawn(&mut self) {
        if let Phase::Downloading(d) = std::mem::replace(&mut self.phase, Phase::Idle) {
            self.finished = Some(d.target.fw);
            self.set_outcome(Outcome::Withdrawn);
            self.show_phase();
        }
    }

    /// A real failure of the download (an error from the platform, a timeout).
    fn fail(&mut self, why: String) {
        if let Phase::Downloading(d) = std::mem::replace(&mut self.phase, Phase::Idle) {
            self.finished = Some(d.target.fw);
        }
        self.show_phase();
        self.final_report("FAILED", Some(why), Outcome::Failed, true);
    }

    // -- publishing ---------------------------------------------------------------------------

    /// `current_fw_*` (what it runs now), `fw_state`, and `fw_error` when given.
    fn report(&self, state: &str, error: Option<&str>) -> Vec<u8> {
        let mut v = json!({
            "current_fw_title": self.running.title,
            "current_fw_version": self.running.version,
            "fw_state": state,
        });
        if let Some(error) = error {
            v["fw_error"] = json!(error);
        }
        v.to_string().into_bytes()
    }

    fn progress(&mut self, state: &str) {
        let payload = self.report(state, None);
        self.publish(TELEMETRY_TOPIC, payload, None);
    }

    /// The report that ends this target for the device; `now`: publish it at once (else at the
    /// next connect).
    fn final_report(&mut self, state: &str, error: Option<String>, outcome: Outcome, now: bool) {
        let id = u64::from(self.id());
        let payload = self.report(state, error.as_deref());
        self.pending = Some(Pending {
            id,
            payload: payload.clone(),
            outcome,
            error,
        });
        if now {
            self.publish(TELEMETRY_TOPIC, payload, Some(id));
        }
    }

    /// Queues a QoS 1 PUBLISH without waiting (this task also drains the connection).
    fn publish(&mut self, topic: &str, payload: Vec<u8>, report: Option<u64>) {
        let Some((client, _)) = &self.conn else {
            return;
        };
        if !self.connected {
            return;
        }
        match client.try_publish(topic, Qos::AtLeastOnce, payload) {
            Ok(()) => self.queued.push_back(report),
            Err(_) => {
                self.shared.publish_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    // -- connection ---------------------------------------------------------------------------

    /// Says goodbye and drops the connection (what a reboot looks like from the platform), and
    /// connects again after `down`.
    fn reboot(&mut self, down: Duration) {
        self.reconnect_at = Some(Instant::now() + down);
        self.disconnect_at = None;
        self.set_status(if matches!(self.phase, Phase::Rebooting) {
            Status::Rebooting
        } else {
            Status::Offline
        });
        if let Some(conn) = self.conn.take() {
            let connected = std::mem::replace(&mut self.connected, false);
            // The DISCONNECT follows what is queued; written in the background, bounded.
            tokio::spawn(goodbye(conn, connected, Duration::from_secs(1)));
        }
        self.queued.clear();
        self.unacked.clear();
    }

    /// At the end of the run: DISCONNECT after what is queued, waiting up to `within`.
    async fn disconnect(&mut self, within: Duration) {
        if let Some(conn) = self.conn.take() {
            let connected = std::mem::replace(&mut self.connected, false);
            goodbye(conn, connected, within).await;
        }
    }
}

/// The next event of the connection, if there is one (else never).
async fn poll(conn: &mut Option<Connection>) -> anyhow::Result<Event> {
    match conn {
        Some((_, eventloop)) => eventloop.poll().await,
        None => std::future::pending().await,
    }
}

/// Sends DISCONNECT after whatever is queued and drives the connection until it is written.
async fn goodbye((client, mut eventloop): Connection, connected: bool, within: Duration) {
    if !connected || client.try_disconnect().is_err() {
        return;
    }
    let _ = tokio::time::timeout(within, async {
        while let Ok(event) = eventloop.poll().await {
            if matches!(event, Event::DisconnectSent) {
                break;
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(p: &[Behaviour]) -> [usize; 4] {
        std::array::from_fn(|b| p.iter().filter(|x| **x == Behaviour::ALL[b]).count())
    }

    #[test]
    fn plan_counts_are_exact() {
        assert_eq!(counts(&plan(100, [70, 10, 10, 10])), [70, 10, 10, 10]);
        assert_eq!(counts(&plan(1000, [70, 10, 10, 10])), [700, 100, 100, 100]);
        assert_eq!(counts(&plan(7, [100, 0, 0, 0])), [7, 0, 0, 0]);
        // 3 × 33.3…: the remainder goes to the earlier behaviour.
        assert_eq!(counts(&plan(10, [34, 33, 33, 0])), [4, 3, 3, 0]);
        assert_eq!(counts(&plan(3, [25, 25, 25, 25])), [1, 1, 1, 0]);
        assert!(plan(0, [100, 0, 0, 0]).is_empty());
        for n in 1..300 {
            assert_eq!(counts(&plan(n, [55, 15, 20, 10])).iter().sum::<usize>(), n);
        }
    }

    #[test]
    fn plan_spreads_and_is_stable() {
        let p = plan(100, [70, 10, 10, 10]);
        assert_eq!(p, plan(100, [70, 10, 10, 10]));
        assert_eq!(p[0], Behaviour::Succeed);
        // The first tenth of the fleet already holds one of each.
        assert_eq!(counts(&p[..10]), [7, 1, 1, 1]);
    }

    #[test]
    fn all_lists_in_discriminant_order() {
        assert!(
            Status::ALL
                .iter()
                .enumerate()
                .all(|(i, s)| *s as usize == i)
        );
        assert!(
            Outcome::ALL
                .iter()
                .enumerate()
                .all(|(i, o)| *o as usize == i)
        );
    }

    #[test]
    fn target_from_attributes() {
        let v = json!({"fw_title":"pump","fw_version":"2","fw_size":10,
            "fw_checksum":"ABC","fw_checksum_algorithm":"SHA256"});
        let t = Target::from_attributes(&v).unwrap();
        assert_eq!(t.fw.version, "2");
        assert_eq!(t.checksum, "abc");
        assert_eq!(t.size, 10);
        assert!(Target::from_attributes(&json!({"fw_title":"pump"})).is_none());
        assert!(Target::from_attributes(&json!({})).is_none());
    }

    #[test]
    fn sha256_hex() {
        let mut h = Hasher::new("SHA256").unwrap();
        h.update(b"ab");
        h.update(b"c");
        assert_eq!(
            h.finish(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(Hasher::new("CRC32").is_none());
    }
}
