//! Connecting to the relational database (PostgreSQL, or SQLite for the embedded default) and
//! applying the migrations.

use std::time::Duration;

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};
use stead_migrations::{Migrator, MigratorTrait as _};

use crate::config::Config;

/// Opens the pool. For SQLite, creates the data directory first and turns on WAL and foreign keys.
pub async fn connect(config: &Config) -> anyhow::Result<DatabaseConnection> {
    open(config, None).await
}

/// A background writer's own connections on PostgreSQL (`size` of them, opened now, on this
/// runtime): the telemetry writers, one each, so that a burst of other work on the main pool
/// (thousands of devices disconnecting at once, say) never makes a commit of acknowledged
/// telemetry wait for a connection; the timeline writer, because a main-pool connection may have
/// been opened by an HTTP worker, and fails once that worker's runtime stops (at shutdown, just
/// when the last timeline entries are written). SQLite has one writer: the main pool.
pub async fn writer_pool(
    config: &Config,
    main: &DatabaseConnection,
    size: usize,
) -> anyhow::Result<DatabaseConnection> {
    if main.get_database_backend() != sea_orm::DatabaseBackend::Postgres {
        return Ok(main.clone());
    }
    open(config, Some(size.max(1) as u32)).await
}

/// Opens a pool of `size` connections, or the default size.
async fn open(config: &Config, size: Option<u32>) -> anyhow::Result<DatabaseConnection> {
    let url = config.database_url();
    let sqlite = url.expose().starts_with("sqlite:");
    if sqlite && config.database_url.is_none() {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            anyhow::anyhow!(
                "cannot create the data directory {}: {e}",
                config.data_dir.display()
            )
        })?;
    }
    let mut options = ConnectOptions::new(url.expose().to_owned());
    options
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(10))
        .sqlx_logging(false)
        // No ping before every query: a broken connection shows as that query's error (and is
        // replaced), while the ping cost a round trip on each of them.
        .test_before_acquire(false);
    match size {
        Some(n) => {
            options.max_connections(n).min_connections(n);
        }
        // SQLite allows one writer; a small pool avoids lock contention storms.
        None if sqlite => {
            options.max_connections(4).min_connections(1);
        }
        None => {
            options.max_connections(20).min_connections(2);
        }
    }
    let mut db = Database::connect(options).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot connect to the database ({}): {e}",
            if sqlite { "SQLite" } else { "PostgreSQL" }
        )
    })?;
    crate::observability::trace::trace_statements(&mut db);
    if sqlite {
        // Persistent in the file: readers no longer block the writer. (sqlx already turns on
        // foreign keys and a busy timeout on every connection.)
        db.execute_unprepared("PRAGMA journal_mode = WAL").await?;
    }
    Ok(db)
}

/// Applies the pending migrations, after refusing a database that a newer release migrated:
/// running against a schema this binary does not know could corrupt data, and sea-orm's own
/// message for it ("migration file … is missing") suggests a broken build instead.
pub async fn migrate(db: &DatabaseConnection) -> anyhow::Result<()> {
    let status = stead_migrations::status(db)
        .await
        .map_err(|e| anyhow::anyhow!("reading the database's migrations: {e}"))?;
    if !status.unknown.is_empty() {
        anyhow::bail!("{}", newer_schema(&status.unknown));
    }
    Migrator::up(db, None)
        .await
        .map_err(|e| anyhow::anyhow!("applying database migrations: {e}"))
}

/// Why a binary refuses a database migrated by a newer release, and what to do.
pub fn newer_schema(unknown: &[String]) -> String {
    format!(
        "the database was migrated by a newer Stead: it has {} this binary (stead {}) does not know ({}); \
         refusing to run against an unknown schema: run that newer release, or restore a backup made before the upgrade",
        if unknown.len() == 1 {
            "a migration"
        } else {
            "migrations"
        },
        env!("CARGO_PKG_VERSION"),
        unknown.join(", ")
    )
}

/// `SELECT 1`, for `/readyz`.
pub async fn ping(db: &DatabaseConnection) -> Result<(), sea_orm::DbErr> {
    db.ping().await
}

/// Placeholder `n` (1-based) of a raw statement in the backend's syntax (`$n` or `?`).
pub fn placeholder(backend: sea_orm::DatabaseBackend, n: usize) -> String {
    match backend {
        sea_orm::DatabaseBackend::Postgres => format!("${n}"),
        _ => "?".into(),
    }
}

/// A connection or a transaction: repository functions take either, so that a change and its
/// audit entry run in one transaction (a repository that needs its own transaction gets a
/// savepoint inside the caller's).
pub trait Db: sea_orm::ConnectionTrait + sea_orm::TransactionTrait {}

impl<T: sea_orm::ConnectionTrait + sea_orm::TransactionTrait> Db for T {}

/// Begins a write transaction: `BEGIN IMMEDIATE` on SQLite (it waits its turn for the write lock
/// instead of failing with `SQLITE_BUSY` when it later writes after another writer committed),
/// a savepoint inside an open transaction, plain `BEGIN` on PostgreSQL.
pub async fn begin_write<C: Db>(db: &C) -> Result<C::Transaction, sea_orm::DbErr> {
    db.begin_with_options(sea_orm::TransactionOptions {
        sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Immediate),
        ..Default::default()
    })
    .await
}
