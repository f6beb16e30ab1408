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
}

impl AppState {
    /// Connects to storage, applies migrations and loads the signing key.
    pub async fn build(config: Config) -> anyhow::Result<AppState> {
        let db = crate::db::connect(&config).await?;
        crate::db::migrate(&db).await?;
        crate::telemetry::retention::prepare(&db).await?;
        let live = LiveStore::from_config(&config).await?;
        let secret = auth::load_or_create_jwt_secret(&config, &db).await?;
        let keys = Keys::new(&secret, config.access_token_ttl_secs);
        let metrics = Metrics::new()?;
        if let Some(otlp) = crate::observability::otlp_metrics::Settings::from_env()? {
            crate::observability::otlp_metrics::start(&metrics, otlp)?;
        }
        let sessions: Arc<Sessions> = Arc::default();
        let bus = LiveBus::start(&live, sessions.clone()).await?;
        let telemetry = TelemetryStore::start(
            crate::db::telemetry_pool(&config, &db).await?,
            config.telemetry_writers,
            config.telemetry_queue,
            committed_telemetry(
                LatestWriter::start(live.clone()),
                bus.clone(),
                metrics.clone(),
            ),
        );
        Ok(AppState {
            timeline: TimelineWriter::start(db.clone()),
            telemetry,
            bus,
            sessions,
            db,
            live,
            keys: Arc::new(keys),
            config: Arc::new(config),
            metrics,
        })
    }
}

/// After each committed batch: latest values on their way to the live state, live events for
/// watched devices. Runs on the writer's task, so it must not block.
fn committed_telemetry(latest: LatestWriter, bus: LiveBus, metrics: Metrics) -> OnCommit {
    Arc::new(move |rows: Vec<Row>, took: std::time::Duration| {
        metrics.telemetry_rows.inc_by(rows.len() as u64);
        metrics.telemetry_batches.observe(rows.len() as f64);
        metrics.telemetry_commit.observe(took.as_secs_f64());
        latest.add(rows.iter().map(|r| (r.device_id, r.ts, &r.values)));
        for row in rows {
            if bus.is_watched(row.device_id) {
                bus.publish(
                    row.device_id,
                    LiveEvent::Telemetry {
                        ts: row.ts,
                        values: row.values,
                    },
                );
            }
        }
    })
}

/// First run: when no platform admin exists, create one. Its password comes from
/// `STEAD_BOOTSTRAP_ADMIN_PASSWORD`, or is generated and printed once.
pub async fn bootstrap_admin(state: &AppState) -> anyhow::Result<()> {
    if users::repo::platform_admin_exists(&state.db).await? {
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

/// Runs the given roles until SIGINT or SIGTERM, then stops them gracefully.
pub async fn run(
    state: AppState,
    roles: &[Role],
    http: std::net::TcpListener,
    mqtt: Option<std::net::TcpListener>,
    mqtts: Option<(std::net::TcpListener, Arc<rustls::ServerConfig>)>,
) -> anyhow::Result<()> {
    let shutdown = Shutdown::listen()?;
    let http_addr = http.local_addr()?;
    if roles.contains(&Role::Api) {
        crate::imports::fail_abandoned(&state.db).await;
    }
    // The api role serves the HTTP API and console; the other roles still answer health checks
    // and metrics on the same listener.
    let server = crate::http::server(state.clone(), http, roles.contains(&Role::Api))?;
    let handle = server.handle();
    let http_task = tokio::spawn(server);
    let ingress = match (roles.contains(&Role::Ingress), mqtt) {
        (true, Some(listener)) => Some(Ingress::start(state.clone(), listener, mqtts)?),
        _ => None,
    };
    let worker = roles.contains(&Role::Worker).then(|| {
        let state = state.clone();
        tokio::spawn(async move {
            tokio::join!(
                crate::telemetry::retention::run(state.db.clone(), state.config.clone()),
                crate::rpc::run_sweeper(state.clone()),
                crate::devices::inactivity::run(state.clone()),
            );
        })
    });
    tracing::info!(roles = ?roles, "stead is running");
    // Tests and scripts read this line to find an ephemeral port: it comes once every role runs.
    tracing::info!(addr = %http_addr, "http listening");

    shutdown.wait().await;
    tracing::info!("shutting down");
    if let Some(ingress) = ingress {
        ingress.stop().await;
    }
    if let Some(worker) = worker {
        worker.abort();
    }
    handle.stop(true).await;
    http_task.await??;
    state.db.close_by_ref().await.ok();
    tracing::info!("stopped");
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
