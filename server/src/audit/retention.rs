//! Keeping audit entries for as long as each tenant wants, and no longer (the worker role).
//!
//! A pass deletes, per chain, the entries older than the tenant's `audit_retention_days` (the
//! platform's `STEAD_AUDIT_RETENTION_DAYS` unless the tenant says otherwise; platform-level
//! entries always keep the platform's), as a prefix of the chain: by position, oldest first, in
//! batches, and never the newest entry, so the chain left starts at its oldest entry and still
//! ends at its head, which is what `chain::verify` checks.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect};
use uuid::Uuid;

use super::{head_model, model};
use crate::config::Config;

/// Entries deleted per statement: SQLite's single writer is never held for long.
const BATCH: i64 = 1000;

/// Runs forever: once at start, then every `retention_interval_secs`.
pub async fn run(db: DatabaseConnection, cfg: Arc<Config>) {
    loop {
        if let Err(e) = once(&db, &cfg).await {
            tracing::warn!(error = %e, "audit retention pass failed; retrying at the next interval");
        }
        tokio::time::sleep(Duration::from_secs(cfg.retention_interval_secs)).await;
    }
}

/// One pass over every chain; answers how many entries it deleted.
pub async fn once(db: &DatabaseConnection, cfg: &Config) -> anyhow::Result<u64> {
    let tenants = crate::tenants::model::Entity::find().all(db).await?;
    let default_days = i64::from(cfg.audit_retention_days);
    let chains = tenants
        .iter()
        .map(|t| {
            let days = t
                .audit_retention_days
                .map(i64::from)
                .unwrap_or(default_days);
            (t.id, Some(t.id), days)
        })
        .chain([(Uuid::nil(), None, default_days)]);
    let mut deleted = 0;
    for (chain, tenant, days) in chains {
        let cutoff = Utc::now() - chrono::Duration::days(days);
        deleted += expire(db, chain, tenant, cutoff).await?;
    }
    if deleted > 0 {
        tracing::info!(entries = deleted, "expired audit entries deleted");
    }
    Ok(deleted)
}

/// Deletes `chain`'s entries up to the newest one written before `cutoff` (but not its head),
/// and the unchained entries (written before the chain existed) older than `cutoff`.
async fn expire(
    db: &DatabaseConnection,
    chain: Uuid,
    tenant: Option<Uuid>,
    cutoff: chrono::DateTime<Utc>,
) -> anyhow::Result<u64> {
    let of_chain = || match tenant {
        Some(t) => model::Column::TenantId.eq(t),
        None => model::Column::TenantId.is_null(),
    };
    let mut deleted = model::Entity::delete_many()
        .filter(of_chain())
        .filter(model::Column::Seq.is_null())
        .filter(model::Column::CreatedAt.lt(cutoff))
        .exec(db)
        .await?
        .rows_affected;
    let Some(head) = head_model::Entity::find_by_id(chain).one(db).await? else {
        return Ok(deleted);
    };
    let span: Option<(Option<i64>, Option<i64>)> = model::Entity::find()
        .select_only()
        .column_as(model::Column::Seq.min(), "first")
        .column_as(model::Column::Seq.max(), "last")
        .filter(of_chain())
        .filter(model::Column::Seq.lt(head.seq))
        .filter(model::Column::CreatedAt.lt(cutoff))
        .into_tuple()
        .one(db)
        .await?;
    let Some((Some(first), Some(last))) = span else {
        return Ok(deleted);
    };
    let mut from = first;
    while from <= last {
        let to = (from + BATCH - 1).min(last);
        deleted += model::Entity::delete_many()
            .filter(of_chain())
            .filter(model::Column::Seq.between(from, to))
            .exec(db)
            .await?
            .rows_affected;
        from = to + 1;
    }
    Ok(deleted)
}
