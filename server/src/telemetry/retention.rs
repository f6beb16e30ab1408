//! Keeping telemetry for as long as each tenant wants, and no longer (the worker role).
//!
//! On PostgreSQL the table is partitioned by day: this task creates the partitions for the days
//! ahead (so rows never pile up in the default partition) and drops whole partitions older than
//! the longest retention; tenants that keep less have their older rows deleted. On SQLite rows
//! are deleted in small batches, so the single writer is never blocked for long.

use std::time::Duration;

use chrono::{Days, NaiveTime, Utc};
use sea_orm::{
    ConnectionTrait, DatabaseBackend, DatabaseConnection, EntityTrait, Statement, Value,
};
use uuid::Uuid;

use crate::config::Config;

const DAY_MS: i64 = 86_400_000;

/// Runs forever: once at start, then every `retention_interval_secs`.
pub async fn run(db: DatabaseConnection, cfg: std::sync::Arc<Config>) {
    loop {
        if let Err(e) = once(&db, &cfg).await {
            tracing::warn!(error = %e, "telemetry retention pass failed; retrying at the next interval");
        }
        tokio::time::sleep(Duration::from_secs(cfg.retention_interval_secs)).await;
    }
}

/// One pass: partitions ahead, expired data out.
pub async fn once(db: &DatabaseConnection, cfg: &Config) -> anyhow::Result<()> {
    let now = Utc::now().timestamp_millis();
    let tenants = crate::tenants::model::Entity::find().all(db).await?;
    let default_days = cfg.telemetry_retention_days as i64;
    let longest = tenants
        .iter()
        .filter_map(|t| t.telemetry_retention_days)
        .map(i64::from)
        .chain([default_days])
        .max()
        .unwrap_or(default_days);
    let b = db.get_database_backend();
    if b == DatabaseBackend::Postgres {
        ensure_partitions(db).await?;
        drop_expired_partitions(db, now - longest * DAY_MS).await?;
    }
    let mut deleted = 0;
    for tenant in &tenants {
        let days = tenant
            .telemetry_retention_days
            .map(i64::from)
            .unwrap_or(default_days);
        deleted += delete_older(db, tenant.id, now - days * DAY_MS).await?;
    }
    if deleted > 0 {
        tracing::info!(rows = deleted, "expired telemetry deleted");
    }
    Ok(())
}

fn day_start_ms(days_from_today: i64) -> Option<(String, i64)> {
    let today = Utc::now().date_naive();
    let day = if days_from_today >= 0 {
        today.checked_add_days(Days::new(days_from_today as u64))?
    } else {
        today.checked_sub_days(Days::new((-days_from_today) as u64))?
    };
    let start = day.and_time(NaiveTime::MIN).and_utc().timestamp_millis();
    Some((day.format("%Y%m%d").to_string(), start))
}

/// Before the first write (PostgreSQL): today's partition must exist before rows for today
/// arrive, or they land in the default partition and the day's partition can no longer be made.
pub async fn prepare(db: &DatabaseConnection) -> anyhow::Result<()> {
    if db.get_database_backend() == DatabaseBackend::Postgres {
        ensure_partitions(db).await?;
    }
    Ok(())
}

/// Today's and the next three days' partitions.
async fn ensure_partitions(db: &DatabaseConnection) -> anyhow::Result<()> {
    for day in 0..4 {
        let Some((name, start)) = day_start_ms(day) else {
            continue;
        };
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS telemetry_p{name} PARTITION OF telemetry FOR VALUES FROM ({start}) TO ({})",
            start + DAY_MS
        );
        if let Err(e) = db.execute_unprepared(&sql).await {
            // Rows for that day already sit in the default partition (the server was down at
            // midnight); they stay there and are found all the same.
            tracing::warn!(partition = %name, error = %e, "could not create a telemetry partition");
        }
    }
    Ok(())
}

async fn drop_expired_partitions(db: &DatabaseConnection, cutoff: i64) -> anyhow::Result<()> {
    let rows = db
        .query_all_raw(Statement::from_string(
            DatabaseBackend::Postgres,
            "SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'telemetry' AND c.relname LIKE 'telemetry_p%'",
        ))
        .await?;
    for row in rows {
        let name: String = row.try_get("", "name")?;
        let Some(day) = name
            .strip_prefix("telemetry_p")
            .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y%m%d").ok())
        else {
            continue;
        };
        let end = day.and_time(NaiveTime::MIN).and_utc().timestamp_millis() + DAY_MS;
        if end <= cutoff {
            db.execute_unprepared(&format!("DROP TABLE IF EXISTS {name}"))
                .await?;
            tracing::info!(partition = %name, "expired telemetry partition dropped");
        }
    }
    Ok(())
}

/// Deletes a tenant's rows older than `cutoff`, in batches; answers how many.
async fn delete_older(db: &DatabaseConnection, tenant: Uuid, cutoff: i64) -> anyhow::Result<u64> {
    let b = db.get_database_backend();
    let sql = match b {
        DatabaseBackend::Postgres => {
            // A ctid is only unique within one partition: pair it with the partition's oid.
            "DELETE FROM telemetry WHERE (tableoid, ctid) IN (SELECT tableoid, ctid FROM telemetry WHERE tenant_id = $1 AND ts < $2 LIMIT 10000)"
        }
        _ => {
            "DELETE FROM telemetry WHERE rowid IN (SELECT rowid FROM telemetry WHERE tenant_id = ? AND ts < ? LIMIT 10000)"
        }
    };
    let mut total = 0;
    loop {
        let values: Vec<Value> = vec![tenant.into(), cutoff.into()];
        let result = db
            .execute_raw(Statement::from_sql_and_values(b, sql, values))
            .await?;
        total += result.rows_affected();
        if result.rows_affected() < 10_000 {
            return Ok(total);
        }
        tokio::task::yield_now().await;
    }
}
