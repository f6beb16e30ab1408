//! Builds the process from its configuration: storage, live state, keys, then the roles (api,
//! ingress, worker) on listeners that the caller has already bound.

use std::sync::Arc;

use sea_orm::DatabaseConnection;
use stead_api_types::Role as PersonRole;

use stead_api_types::LiveEvent;

use crate::auth::{self, Keys};
use crate::config::{Config, Role};
use crate::error::Error;
use crate::ingress::{Ingress, Sessions};
use crate::live::LiveStore;
use crate::live::bus::LiveBus;
use crate::live::state::LatestWriter;
use crate::observability::Metrics;
use crate::telemetry::{OnCommit, Row, TelemetryStore};
use crate::timeline::TimelineWriter;
use crate::users::{self, Email, Password};

/// Everything a request handler needs, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub live: LiveStore,
    pub config: Arc<Config>,
    pub keys: Arc<Keys>,
    pub metrics: Metrics,
    pub telemetry: TelemetryStore,
    pub timeline: TimelineWriter,
    pub bus: LiveBus,
    pub sessions: Arc<Sessions>,
    pub mailer: Arc<crate::mail::Mailer>,
    /// Which tenants' events of which types reach an endpoint or sink (telemetry and presence
    /// events are written only for those).
    pub subscriptions: Arc<crate::events::Subscriptions>,
    /// Woken when deliveries were queued on this node (the senders also poll).
    pub deliveries: Arc<tokio::sync::Notify>,
    /// Alarm rule evaluation of committed telemetry, and the node's view of the rules.
    pub alarms: crate::alarms::engine::Engine,
    /// OTA images: a local directory or an S3-compatible bucket.
    pub blobs: crate::blobs::Blobs,
    /// The node's bound on bytes of packages sent to devices.
    pub ota_bandwidth: Arc<crate::ota::delivery::Bandwidth>,
}

impl AppState {
    /// Connects to storage, applies migrations and loads the signing key.
    pub async fn build(config: Config) -> anyhow::Result<AppState> {
        let db = crate::db::connect(&config).await?;
        crate::db::migrate(&db).await?;
        crate::telemetry::retention::prepare(&db).await?;
        let live = LiveStore::from_config(&config).await?;
        let secret = auth::load_or_create_jwt_secret(&config, &db).await?;
        let keys = Keys::new(&secret, config.access_token_ttl_secs)?;
        let metrics = Metrics::new()?;
        if let Some(otlp) = crate::observability::otlp_metrics::Settings::from_env()? {
            crate::observability::otlp_metrics::start(&metrics, otlp)?;
        }
        let sessions: Arc<Sessions> = Arc::default();
        let bus = LiveBus::start(&live, sessions.clone()).await?;
        let subscriptions: Arc<crate::events::Subscriptions> = Arc::default();
        subscriptions
            .refresh(&db, config.nats_url.is_some())
            .await?;
        let telemetry_events = crate::events::telemetry::EventWriter::start(
            crate::db::writer_pool(&config, &db, 1).await?,
            subscriptions.clone(),
            metrics.clone(),
        );
        let timeline = TimelineWriter::start(
            crate::db::writer_pool(&config, &db, 1).await?,
            subscriptions.clone(),
        );
        let alarms = crate::alarms::engine::Engine::start(
            crate::db::writer_pool(&config, &db, 1).await?,
            live.clone(),
            timeline.clone(),
            &metrics.registry,
        )?;
        alarms.rules.refresh(&db).await?;
        let (ota_tracker, ota_reports) = crate::ota::tracker::Tracker::new();
        let telemetry = TelemetryStore::start(
            crate::db::writer_pool(&config, &db, config.telemetry_writers).await?,
            config.telemetry_writers,
            config.telemetry_queue,
            committed_telemetry(
                LatestWriter::start(live.clone()),
                bus.clone(),
                metrics.clone(),
                telemetry_events,
                alarms.clone(),
                crate::fleet::Activity::start(live.clone()),
                ota_tracker,
            ),
        );
        let mailer = Arc::new(crate::mail::Mailer::from_config(&config)?);
        let blobs = crate::blobs::Blobs::from_config(&config)?;
        let ota_bandwidth = Arc::new(crate::ota::delivery::Bandwidth::new(
            config.ota_bytes_per_sec,
        ));
        let state = AppState {
            alarms,
            blobs,
            ota_bandwidth,
            subscriptions,
            deliveries: Arc::default(),
            mailer,
            timeline,
            telemetry,
            bus,
            sessions,
            db,
            live,
            keys: Arc::new(keys),
            config: Arc::new(config),
            metrics,
        };
        // Update reports from committed telemetry, in order, for as long as the process runs.
        tokio::spawn(crate::ota::tracker::run(state.clone(), ota_reports));
        Ok(state)
    }
}

/// After each committed batch: latest values on their way to the live state, `device.telemetry`
/// events for the tenants that subscribe to them, live events for watched devices. Runs on the
/// writer's task, so it must not block.
fn committed_telemetry(
    latest: LatestWriter,
    bus: LiveBus,
    metrics: Metrics,
    events: crate::events::telemetry::EventWriter,
    alarms: crate::alarms::engine::Engine,
    activity: crate::fleet::Activity,
    ota: crate::ota::tracker::Tracker,
) -> OnCommit {
    Arc::new(move |rows: Vec<Row>, took: std::time::Duration| {
        metrics.telemetry_rows.inc_by(rows.len() as u64);
        metrics.telemetry_batches.observe(rows.len() as f64);
        metrics.telemetry_commit.observe(took.as_secs_f64());
        events.add(&rows);
        alarms.add(&rows);
        activity.add(&rows);
        ota.add(&rows);
        // Last: the values move into the latest values (copied only for a watched device).
        latest.add_owned(rows.into_iter().map(|row| {
            if bus.is_watched(row.device_id) {
                bus.publish(
                    row.device_id,
                    LiveEvent::Telemetry {
                        ts: row.ts,
                        values: row.values.clone(),
                    },
                );
            }
            (row.device_id, row.ts, row.values)
        }));
    })
}

/// First run: when no platform admin exists, create one. Its password comes from
/// `STEAD_BOOTSTRAP_ADMIN_PASSWORD`, or is generated and printed once.
pub async fn bootstrap_admin(state: &AppState) -> anyhow::Result<()> {
    if users::repo::platform_admin_exists(crate::auth::System::cli(), &state.db).await? {
        return Ok(());
    }
    let email = Email::parse(
        state
            .config
            .bootstrap_admin_email
            .as_deref()
            .unwrap_or("admin@stead.local"),
    )
    .map_err(anyhow::Error::msg)?;
    let (password, generated) = match &state.config.bootstrap_admin_password {
        Some(pw) => (
            Password::parse(pw.expose()).map_err(anyhow::Error::msg)?,
            false,
        ),
        None => (Password::generate(), true),
    };
    let hash = auth::password::hash(&password).await?;
    match users::repo::create(
        &state.db,
        None,
        &email,
        "Platform admin",
        PersonRole::PlatformAdmin,
        hash,
    )
    .await
    {
        Ok(_) => {}
        // Another node created it at the same moment.
        Err(Error::Conflict { .. }) => return Ok(()),
        Err(e) => return Err(anyhow::anyhow!("creating the first platform admin: {e}")),
    }
    tracing::info!(email = email.as_str(), "created the first platform admin");
    if generated {
        let rule = "─".repeat(64);
        println!(
            "\n{rule}\n  Stead first run: a platform admin was created.\n\n    e-mail:    {}\n    password:  {}\n\n  This password is shown only now. Log in at http://{} and keep it safe\n  (`stead admin reset-password --email {}` sets a new one).\n{rule}\n",
            email.as_str(),
            password.expose(),
            state.config.http_addr,
            email.as_str(),
        );
    }
    Ok(())
}

/// Runs the given roles until SIGINT or SIGTERM, then stops them gracefully (`drain`).
pub async fn run(
    state: AppState,
    roles: &[Role],
    http: std::net::TcpListener,
    mqtt: Option<std::net::TcpListener>,
    mqtts: Option<(std::net::TcpListener, Arc<rustls::ServerConfig>)>,
) -> anyhow::Result<()> {
    let shutdown = Shutdown::listen()?;
    let http_addr = http.local_addr()?;
    // Links in e-mails point at the address actually bound unless STEAD_PUBLIC_URL says where
    // people reach the console.
    let mut state = state;
    if state.config.public_url.is_none() {
        let mut config = (*state.config).clone();
        config.public_url = Some(crate::mail::public_url_of(http_addr));
        state.config = Arc::new(config);
    }
    if roles.contains(&Role::Api) {
        crate::imports::fail_abandoned(&state.db).await;
    }
    crate::alarms::progress::restore(&state.live, &state.config.data_dir);
    crate::live::snapshot::restore(&state.live, &state.config.data_dir).await;
    let snapshots = tokio::spawn(crate::live::snapshot::run(
        state.live.clone(),
        state.config.data_dir.clone(),
        std::time::Duration::from_secs(state.config.latest_snapshot_secs),
    ));
    // The api role serves the HTTP API and console; the other roles still answer health checks
    // and metrics on the same listener.
    let server = crate::http::server(state.clone(), http, roles.contains(&Role::Api))?;
    let handle = server.handle();
    let http_task = tokio::spawn(server);
    let ingress = match (roles.contains(&Role::Ingress), mqtt) {
        (true, Some(listener)) => {
            // Before the first device connects: nothing else will ever mark offline the devices
            // a killed embedded server left online.
            crate::devices::lost::recover_embedded(&state).await?;
            // Alive before holding any session, so that a crash is noticed.
            let ttl_ms = state.config.node_timeout_secs * 1000;
            state
                .live
                .node_heartbeat(state.sessions.node_id, ttl_ms)
                .await?;
            let heartbeat = tokio::spawn({
                let state = state.clone();
                async move {
                    tokio::join!(
                        crate::devices::lost::run_heartbeat(state.clone()),
                        // After a Redis outage: what this node's sessions missed.
                        crate::ingress::resync::run(state),
                    );
                }
            });
            Some((Ingress::start(state.clone(), listener, mqtts)?, heartbeat))
        }
        _ => None,
    };
    // Every role that takes telemetry (MQTT, the HTTP device API) shares its daily counts.
    let daily = tokio::spawn({
        let state = state.clone();
        async move {
            tokio::join!(
                crate::ingress::daily::run(state.clone()),
                crate::ingress::run_tenant_sync(state),
            );
        }
    });
    // Every node writes events (ingress: telemetry and presence): each keeps its view of who
    // subscribes to what.
    let subscriptions = tokio::spawn(crate::events::run_refresh(state.clone()));
    let alarm_rules = tokio::spawn(crate::alarms::engine::run_refresh(
        state.alarms.rules.clone(),
        state.db.clone(),
    ));
    let worker = roles.contains(&Role::Worker).then(|| {
        let state = state.clone();
        tokio::spawn(async move {
            tokio::join!(
                crate::telemetry::retention::run(state.db.clone(), state.config.clone()),
                crate::audit::retention::run(state.db.clone(), state.config.clone()),
                crate::rpc::run_sweeper(state.clone()),
                crate::devices::inactivity::run(state.clone()),
                crate::devices::lost::run_watch(state.clone()),
                crate::events::dispatch::run(state.clone()),
                crate::webhooks::deliver::run(state.clone()),
                crate::events::nats::run(state.clone()),
                crate::alarms::engine::run_no_data(state.clone()),
                crate::notifications::dispatch::run(state.clone()),
                crate::ota::tracker::run_timeouts(state.clone()),
                crate::campaigns::engine::run(state.clone()),
            );
        })
    });
    tracing::info!(roles = ?roles, node = %state.sessions.node_id, "stead is running");
    // Tests and scripts read this line to find an ephemeral port: it comes once every role runs.
    tracing::info!(addr = %http_addr, "http listening");

    shutdown.wait().await;
    let drained = drain(state.clone(), ingress, worker, handle, http_task).await;
    // What was admitted since the last flush counts towards the day on every node.
    daily.abort();
    snapshots.abort();
    subscriptions.abort();
    alarm_rules.abort();
    state.sessions.daily.flush(&state.live).await;
    drained
}

/// The shutdown sequence, each phase logged with what it drained and how long it took: stop
/// accepting (HTTP and MQTT at once), end the MQTT sessions (DISCONNECT 0x8B), let HTTP requests
/// finish, commit what was accepted, mark this node's remaining devices offline and forget the
/// node. Each wait is bounded by `shutdown_timeout_secs` from the signal.
async fn drain(
    state: AppState,
    ingress: Option<(Ingress, tokio::task::JoinHandle<()>)>,
    worker: Option<tokio::task::JoinHandle<()>>,
    http: actix_web::dev::ServerHandle,
    http_task: tokio::task::JoinHandle<std::io::Result<()>>,
) -> anyhow::Result<()> {
    let since = std::time::Instant::now();
    let timeout = std::time::Duration::from_secs(state.config.shutdown_timeout_secs);
    let deadline = since + timeout;
    let rows_before = state.metrics.telemetry_rows.get();
    tracing::info!(
        timeout_secs = timeout.as_secs(),
        "shutting down: no new connections, draining"
    );
    // HTTP stops accepting now; requests under way get until the deadline. Live views end.
    state.bus.close();
    let http_stopped = tokio::spawn(http.stop(true));
    let held = ingress.is_some();
    if let Some((ingress, heartbeat)) = ingress {
        let drained = ingress.stop(since).await;
        heartbeat.abort();
        tracing::info!(
            sessions = drained.told,
            left = drained.left,
            took_ms = drained.took.as_millis() as u64,
            "shutdown: MQTT sessions ended"
        );
    }
    if let Some(worker) = worker {
        worker.abort();
    }
    let phase = std::time::Instant::now();
    let left = deadline.saturating_duration_since(phase) + std::time::Duration::from_secs(1);
    match tokio::time::timeout(left, async {
        let _ = http_stopped.await;
        http_task.await
    })
    .await
    {
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "the HTTP server stopped with an error"),
        Ok(_) => tracing::info!(
            took_ms = phase.elapsed().as_millis() as u64,
            "shutdown: HTTP requests drained"
        ),
        Err(_) => tracing::warn!("shutdown: HTTP requests still running at the deadline"),
    }
    let phase = std::time::Instant::now();
    // What is left of this node's sessions in the shared presence (none, unless time ran out).
    let mut released = 0;
    if held {
        match crate::devices::lost::release(
            &state,
            state.sessions.node_id,
            stead_api_types::DisconnectReason::ServerShutdown,
        )
        .await
        {
            Ok(n) => released = n,
            Err(e) => tracing::warn!(error = %e, "shutdown: forgetting this node in Redis failed"),
        }
    }
    // Everything accepted so far is committed: telemetry queued without an acknowledgement
    // (QoS 0, HTTP), and the timeline entries of the ended sessions.
    let left = deadline.saturating_duration_since(phase) + std::time::Duration::from_secs(1);
    let committed = tokio::time::timeout(left, async {
        state.telemetry.flush().await;
        state.timeline.flush().await;
    })
    .await;
    if committed.is_err() {
        tracing::warn!("shutdown: storage did not commit the last writes before the deadline");
    }
    // The alarm engine evaluates what committed; the embedded store's rule progress is then
    // saved for the next start.
    if state.live.is_in_process() {
        let left = deadline.saturating_duration_since(std::time::Instant::now())
            + std::time::Duration::from_secs(1);
        if !state.alarms.settle(left).await {
            tracing::warn!(
                "shutdown: the alarm engine had not evaluated everything by the deadline"
            );
        }
        crate::alarms::progress::save(&state.live, &state.config.data_dir);
        if crate::live::snapshot::save(&state.live, &state.config.data_dir).is_some() {
            tracing::info!("shutdown: latest values saved");
        }
    }
    tracing::info!(
        rows = state.metrics.telemetry_rows.get() - rows_before,
        released,
        took_ms = phase.elapsed().as_millis() as u64,
        "shutdown: telemetry and timelines committed"
    );
    state.db.close_by_ref().await.ok();
    tracing::info!(took_ms = since.elapsed().as_millis() as u64, "stopped");
    Ok(())
}

/// Listens for SIGINT and SIGTERM from the moment it is created, so that a signal during
/// start-up also ends in an orderly shutdown (and not in the default, immediate death).
struct Shutdown {
    #[cfg(unix)]
    signals: (tokio::signal::unix::Signal, tokio::signal::unix::Signal),
}

impl Shutdown {
    fn listen() -> anyhow::Result<Shutdown> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Shutdown {
                signals: (
                    signal(SignalKind::interrupt())?,
                    signal(SignalKind::terminate())?,
                ),
            })
        }
        #[cfg(not(unix))]
        Ok(Shutdown {})
    }

    async fn wait(self) {
        #[cfg(unix)]
        {
            let (mut int, mut term) = self.signals;
            tokio::select! {
                _ = int.recv() => {},
                _ = term.recv() => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
