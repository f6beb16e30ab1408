//! The `stead` command: CLI → configuration → observability → `app::run`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use stead::app::{self, AppState};
use stead::config::{Config, Role};
use stead::users::Password;

// Every allocation of the server goes through mimalloc: per message, the hot path allocates its
// rows and futures, and neither glibc's nor musl's allocator is made for that across threads.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "stead",
    version,
    about = "Stead: the operations layer for IoT fleets"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (by default every role in one process).
    Serve {
        /// Comma-separated roles: api, ingress, worker. Partial sets need STEAD_REDIS_URL.
        #[arg(long, value_delimiter = ',', default_value = "api,ingress,worker")]
        roles: Vec<String>,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Write a consistent backup of the embedded SQLite database while the server runs.
    Backup {
        /// The backup file to write.
        #[arg(long)]
        output: std::path::PathBuf,
        /// Replace the file when it exists.
        #[arg(long)]
        force: bool,
    },
    /// Check the configuration and the services it needs; exit code 1 when something fails.
    Doctor {
        /// The roles to check for, as for `serve`.
        #[arg(long, value_delimiter = ',', default_value = "api,ingress,worker")]
        roles: Vec<String>,
    },
    /// Exit 0 when a running node answers `/healthz`, 1 otherwise (container health checks).
    Healthcheck {
        /// Default: `/healthz` on STEAD_HTTP_ADDR (through loopback when it is 0.0.0.0 or ::).
        #[arg(long)]
        url: Option<String>,
    },
    /// First-run and break-glass tasks.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create a tenant with its first tenant admin.
    CreateTenant {
        #[arg(long)]
        name: String,
        #[arg(long)]
        admin_email: String,
        /// Generated and printed when omitted.
        #[arg(long, env = "STEAD_ADMIN_PASSWORD", hide_env_values = true)]
        admin_password: Option<String>,
    },
    /// Set a new password for an account (and reactivate it); its sessions end.
    ResetPassword {
        #[arg(long)]
        email: String,
        /// Generated and printed when omitted.
        #[arg(long, env = "STEAD_ADMIN_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
    /// Check every tenant's audit log hash chain; exit code 1 names the first broken link.
    VerifyAudit,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Before the runtime and the log subscriber: a health check runs every few seconds and must
    // neither log nor depend on anything but the node it asks.
    if let Command::Healthcheck { url } = &cli.command {
        return healthcheck(url.as_deref());
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("stead: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config = match (Config::load(), &cli.command) {
        (Ok(config), _) => config,
        // The doctor reports an invalid configuration among its checks.
        (Err(_), Command::Doctor { roles }) => {
            return runtime.block_on(stead::ops::doctor::main(roles));
        }
        (Err(e), _) => {
            eprintln!("stead: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli, config)) {
        Ok(code) => code,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "stead stopped with an error");
            eprintln!("stead: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli, mut config: Config) -> anyhow::Result<ExitCode> {
    let _guard = stead::observability::init(&config)?;
    match cli.command {
        Command::Serve { roles } => {
            let mut parsed = Vec::new();
            for role in &roles {
                match Role::parse(role) {
                    Some(r) => parsed.push(r),
                    None => {
                        eprintln!("stead: unknown role {role:?}: use api, ingress or worker");
                        return Ok(ExitCode::from(2));
                    }
                }
            }
            if let Err(e) = config.check_roles(&parsed) {
                eprintln!("stead: {e}");
                return Ok(ExitCode::from(2));
            }
            let http = listen(config.http_addr, "STEAD_HTTP_ADDR")?;
            let mqtt = if parsed.contains(&Role::Ingress) {
                let listener = listen(config.mqtt_addr, "STEAD_MQTT_ADDR")?;
                // The bound address (an ephemeral port is resolved) is what devices are told.
                config.mqtt_addr = listener.local_addr()?;
                tracing::info!(addr = %listener.local_addr()?, "mqtt listening");
                Some(listener)
            } else {
                None
            };
            let mqtts = match (
                &config.mqtt_tls_addr,
                &config.mqtt_tls_cert,
                &config.mqtt_tls_key,
            ) {
                (Some(addr), Some(cert), Some(key)) if parsed.contains(&Role::Ingress) => {
                    let tls = stead::ingress::tls_config(cert, key)?;
                    let listener = listen(*addr, "STEAD_MQTT_TLS_ADDR")?;
                    tracing::info!(addr = %listener.local_addr()?, "mqtts listening");
                    Some((listener, tls))
                }
                _ => None,
            };
            let state = AppState::build(config).await?;
            app::bootstrap_admin(&state).await?;
            app::run(state, &parsed, http, mqtt, mqtts).await?;
        }
        Command::Migrate => {
            let db = stead::db::connect(&config).await?;
            stead::db::migrate(&db).await?;
            println!("stead: migrations applied");
        }
        Command::Backup { output, force } => {
            return stead::ops::backup::run(&config, &output, force).await;
        }
        Command::Doctor { roles } => return Ok(stead::ops::doctor::main(&roles).await),
        // Answered in `main` before the runtime starts; kept here so the match stays total.
        Command::Healthcheck { url } => return Ok(healthcheck(url.as_deref())),
        Command::Admin {
            command: AdminCommand::VerifyAudit,
        } => return stead::ops::audit::verify(&config).await,
        Command::Admin { command } => {
            let state = AppState::build(config).await?;
            match command {
                AdminCommand::CreateTenant {
                    name,
                    admin_email,
                    admin_password,
                } => {
                    let (password, generated) = password_or_generated(admin_password)?;
                    let tenant = stead::tenants::repo::create_with_admin(
                        &state.db,
                        &name,
                        &admin_email,
                        &password,
                    )
                    .await?;
                    println!("created tenant {:?} ({})", tenant.name, tenant.id);
                    println!("tenant admin: {}", admin_email.trim().to_lowercase());
                    if generated {
                        println!("password (shown only now): {}", password.expose());
                    }
                }
                // Answered above, without the rest of the application state.
                AdminCommand::VerifyAudit => return stead::ops::audit::verify(&state.config).await,
                AdminCommand::ResetPassword { email, password } => {
                    let (password, generated) = password_or_generated(password)?;
                    let email = stead::users::Email::parse(&email).map_err(anyhow::Error::msg)?;
                    let hash = stead::auth::password::hash(&password).await?;
                    let user = stead::users::repo::set_password_by_email(
                        stead::auth::System::cli(),
                        &state.db,
                        &email,
                        hash,
                    )
                    .await?;
                    stead::auth::service::revoke_all_sessions(
                        &state.db,
                        stead::ids::UserId(user.id),
                    )
                    .await?;
                    println!(
                        "password reset for {}; their sessions have ended",
                        user.email
                    );
                    if generated {
                        println!("new password (shown only now): {}", password.expose());
                    }
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn healthcheck(url: Option<&str>) -> ExitCode {
    let url = match url {
        Some(url) => url.to_owned(),
        None => match Config::load() {
            Ok(config) => stead::healthcheck::default_url(config.http_addr),
            Err(e) => {
                eprintln!("stead: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    match stead::healthcheck::check(&url, std::time::Duration::from_secs(3)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stead: unhealthy: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Binds a listener with a deep accept queue: a reconnect storm of thousands of devices must
/// not see its SYNs dropped (the standard library's backlog is 128).
fn listen(addr: std::net::SocketAddr, setting: &str) -> anyhow::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket
        .bind(&addr.into())
        .and_then(|()| socket.listen(4096))
        .map_err(|e| anyhow::anyhow!("cannot listen on {setting} {addr}: {e}"))?;
    Ok(socket.into())
}

fn password_or_generated(given: Option<String>) -> anyhow::Result<(Password, bool)> {
    match given {
        Some(raw) => Ok((Password::parse(&raw).map_err(anyhow::Error::msg)?, false)),
        None => Ok((Password::generate(), true)),
    }
}
