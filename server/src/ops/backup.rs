//! `stead backup`: a consistent copy of the embedded SQLite database, taken while the server
//! runs. SQLite's `VACUUM INTO` writes the database as one read transaction sees it (in WAL mode
//! it does not block the server's writer), so the copy is a snapshot with every committed, and
//! thus acknowledged, message up to that moment. On PostgreSQL the right tool is `pg_dump`: this
//! command explains that and prints the command, without the password.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use sea_orm::{ConnectionTrait as _, Database, DatabaseBackend, DatabaseConnection, Statement};

use crate::config::Config;

/// What a backup holds, counted in the written file itself (which proves it opens).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Contents {
    pub tenants: i64,
    pub devices: i64,
    pub telemetry_rows: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(
        "{0} already exists: choose another file, or pass --force to replace it (the old file is replaced only once the new backup is complete)"
    )]
    Exists(PathBuf),
    #[error(
        "there is no database at {0}: is STEAD_DATA_DIR (or STEAD_DATABASE_URL) the one the server uses?"
    )]
    NoDatabase(PathBuf),
    #[error("an in-memory SQLite database cannot be backed up: it lives only in its process")]
    InMemory,
    #[error("writing the backup to {path}: {cause}")]
    Write { path: PathBuf, cause: String },
}

/// Writes the backup and prints what it holds, or, on PostgreSQL, explains what to do instead
/// and fails (exit code 1: no backup was written, so a script must not carry on).
pub async fn run(config: &Config, output: &Path, force: bool) -> anyhow::Result<ExitCode> {
    let url = config.database_url();
    if !url.expose().starts_with("sqlite:") {
        println!("stead: {}", pg_dump_advice(url.expose(), output));
        return Ok(ExitCode::FAILURE);
    }
    let source = super::sqlite_file(url.expose()).ok_or(BackupError::InMemory)?;
    // Opening a missing file would create an empty database, and back that up.
    if !source.exists() {
        return Err(BackupError::NoDatabase(source).into());
    }
    if output.exists() && !force {
        return Err(BackupError::Exists(output.to_owned()).into());
    }
    let db = crate::db::connect(config).await?;
    let contents = backup(&db, output, force).await?;
    let bytes = std::fs::metadata(output).map(|m| m.len()).unwrap_or(0);
    println!(
        "stead: backup of {} written to {} ({}): {}, {}, {}",
        source.display(),
        output.display(),
        human_bytes(bytes),
        counted(contents.tenants, "tenant"),
        counted(contents.devices, "device"),
        counted(contents.telemetry_rows, "telemetry row")
    );
    println!(
        "stead: to restore it, stop the server, put the file in place as <data dir>/stead.db (remove any stead.db-wal and stead.db-shm beside it), and start the server"
    );
    Ok(ExitCode::SUCCESS)
}

/// `VACUUM INTO` a file beside `output`, then moves it into place: a half-written backup never
/// carries the final name, and without `force` an existing file is never replaced (a hard link
/// fails when the name is taken, atomically).
pub async fn backup(
    db: &DatabaseConnection,
    output: &Path,
    force: bool,
) -> Result<Contents, BackupError> {
    let write_err = |cause: String| BackupError::Write {
        path: output.to_owned(),
        cause,
    };
    let partial = partial_name(output);
    let _ = std::fs::remove_file(&partial);
    let target = partial.to_str().ok_or_else(|| {
        write_err("the path is not valid UTF-8; choose a plain file name".to_string())
    })?;
    let result = async {
        db.execute_raw(Statement::from_sql_and_values(
            DatabaseBackend::Sqlite,
            "VACUUM INTO ?",
            [target.into()],
        ))
        .await
        .map_err(|e| write_err(e.to_string()))?;
        let contents = count(&partial)
            .await
            .map_err(|e| write_err(format!("the written copy does not open as a database: {e}")))?;
        if force {
            std::fs::rename(&partial, output).map_err(|e| write_err(e.to_string()))?;
        } else {
            std::fs::hard_link(&partial, output).map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    BackupError::Exists(output.to_owned())
                } else {
                    write_err(e.to_string())
                }
            })?;
        }
        Ok(contents)
    }
    .await;
    let _ = std::fs::remove_file(&partial);
    result
}

fn partial_name(output: &Path) -> PathBuf {
    let mut name = output.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".partial-{}", std::process::id()));
    output.with_file_name(name)
}

/// Counts what a database file holds, through a read-only connection of its own.
async fn count(file: &Path) -> Result<Contents, sea_orm::DbErr> {
    let mut options = sea_orm::ConnectOptions::new(format!("sqlite://{}?mode=ro", file.display()));
    options.sqlx_logging(false).max_connections(1);
    let db = Database::connect(options).await?;
    let mut n = [0i64; 3];
    for (slot, table) in n.iter_mut().zip(["tenants", "devices", "telemetry"]) {
        let row = db
            .query_one_raw(Statement::from_string(
                DatabaseBackend::Sqlite,
                format!("SELECT count(*) AS n FROM {table}"),
            ))
            .await?;
        *slot = match row {
            Some(row) => row.try_get::<i64>("", "n")?,
            None => 0,
        };
    }
    db.close().await?;
    Ok(Contents {
        tenants: n[0],
        devices: n[1],
        telemetry_rows: n[2],
    })
}

/// What to run on PostgreSQL instead, with the password left out of the printed URL.
fn pg_dump_advice(url: &str, output: &Path) -> String {
    let safe = super::url_without_password(url);
    format!(
        "the database is PostgreSQL: `stead backup` copies only the embedded SQLite database. \
         Back up PostgreSQL with its own tool, pg_dump, which takes a consistent snapshot while the server runs \
         (give the password in PGPASSWORD or ~/.pgpass; it is not shown here):\n\n  \
         pg_dump --format=custom --no-owner --file '{}' '{safe}'\n\n\
         Restore into an empty database with pg_restore --no-owner --dbname '<url>' '{}', then start the server (it applies newer migrations).",
        output.display(),
        output.display()
    )
}

fn human_bytes(n: u64) -> String {
    const KIB: f64 = 1024.0;
    let n = n as f64;
    if n < KIB {
        format!("{n} bytes")
    } else if n < KIB * KIB {
        format!("{:.1} KiB", n / KIB)
    } else if n < KIB * KIB * KIB {
        format!("{:.1} MiB", n / KIB / KIB)
    } else {
        format!("{:.2} GiB", n / KIB / KIB / KIB)
    }
}

fn counted(n: i64, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}
