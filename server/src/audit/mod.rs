//! The audit log: every change made by a person, with who, from where, what and when, written in
//! the transaction of the change itself, so an entry exists exactly when its change committed.
//!
//! Entries of one tenant form a hash chain (`chain`): each carries the hash of the one before, so
//! an entry edited or removed in the database is found by `stead admin verify-audit`. Reading is
//! `repo` (tenant-scoped, filtered, paged) behind `audit.read` (`http`).

pub mod chain;
pub mod head_model;
pub mod http;
pub mod model;
pub mod repo;
pub mod retention;

use chrono::{DateTime, Utc};
use sea_orm::ActiveValue::Set;
use sea_orm::entity::prelude::*;
use sea_orm::{
    DatabaseConnection, DatabaseTransaction, SqliteTransactionMode, TransactionOptions,
    TransactionTrait,
};
use serde::Serialize;

use crate::auth::Actor;
use crate::error::Result;
use crate::ids::TenantId;

/// Begins the transaction of an audited change. On SQLite it is `BEGIN IMMEDIATE`: a write
/// transaction from the start, which waits its turn behind the telemetry writer (a deferred one
/// that reads, then writes, fails with `SQLITE_BUSY` as soon as another writer commits in
/// between). Then it takes `tenant`'s chain head, so that on PostgreSQL every audited change of a
/// tenant takes its locks in the same order (the head, then its rows) and two cannot deadlock.
///
/// SQLite may still answer "database is locked" at once (a pooled connection that holds a read
/// snapshot): nothing has happened yet, so it is tried again, a few times, after a short pause.
pub async fn begin(
    db: &DatabaseConnection,
    tenant: Option<TenantId>,
) -> Result<DatabaseTransaction> {
    let chain = tenant.map(|t| t.0).unwrap_or_else(Uuid::nil);
    let mut attempt = 0u64;
    loop {
        attempt += 1;
        let started = async {
            let txn = db
                .begin_with_options(TransactionOptions {
                    sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                    ..Default::default()
                })
                .await?;
            chain::lock(&txn, chain).await?;
            Ok::<_, sea_orm::DbErr>(txn)
        }
        .await;
        match started {
            Ok(txn) => return Ok(txn),
            Err(e) if attempt < 5 && sqlite_busy(&e) => {
                tracing::debug!(
                    attempt,
                    "SQLite busy at the start of an audited change; trying again"
                );
                tokio::time::sleep(std::time::Duration::from_millis(10 * attempt)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// SQLite's `SQLITE_BUSY` (5) and its extended codes (`SQLITE_BUSY_SNAPSHOT` is 517).
fn sqlite_busy(e: &sea_orm::DbErr) -> bool {
    use sea_orm::{DbErr, RuntimeErr};
    match e {
        DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e)) => e
            .as_database_error()
            .and_then(|d| d.code())
            .and_then(|code| code.parse::<i64>().ok())
            .is_some_and(|code| code & 0xff == 5),
        _ => false,
    }
}

/// Records one change inside the transaction that makes it (the type says so: there is no way to
/// write an entry outside one). Call it last, just before the commit: it locks the tenant's chain
/// head until then, so entries of one tenant are chained in commit order.
pub async fn record(
    txn: &DatabaseTransaction,
    tenant: Option<TenantId>,
    actor: &Actor,
    action: &str,
    target_type: &str,
    target_id: Option<Uuid>,
    detail: serde_json::Value,
) -> Result<()> {
    let chain = tenant.map(|t| t.0).unwrap_or_else(Uuid::nil);
    let (seq, prev_hash) = chain::advance(txn, chain).await?;
    // Millisecond precision: what both databases keep exactly, so the hash can be recomputed.
    let now = Utc::now();
    let at = DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now);
    let mut entry = model::Model {
        id: Uuid::new_v4(),
        tenant_id: tenant.map(|t| t.0),
        actor_user_id: Some(actor.user_id.0),
        action: action.to_owned(),
        target_type: target_type.to_owned(),
        target_id,
        detail,
        created_at: at,
        seq: Some(seq),
        actor_kind: if actor.api_key.is_some() {
            "api_key"
        } else {
            "user"
        }
        .to_owned(),
        actor_key_id: actor.api_key,
        actor_email: Some(actor.email.clone()),
        source_ip: actor.address.map(|a| a.to_string()),
        prev_hash: Some(prev_hash),
        hash: None,
    };
    let hash = chain::hash_of(&entry);
    entry.hash = Some(hash.clone());
    model::ActiveModel {
        id: Set(entry.id),
        tenant_id: Set(entry.tenant_id),
        actor_user_id: Set(entry.actor_user_id),
        action: Set(entry.action.clone()),
        target_type: Set(entry.target_type.clone()),
        target_id: Set(entry.target_id),
        detail: Set(entry.detail.clone()),
        created_at: Set(entry.created_at),
        seq: Set(entry.seq),
        actor_kind: Set(entry.actor_kind.clone()),
        actor_key_id: Set(entry.actor_key_id),
        actor_email: Set(entry.actor_email.clone()),
        source_ip: Set(entry.source_ip.clone()),
        prev_hash: Set(entry.prev_hash.clone()),
        hash: Set(entry.hash.clone()),
    }
    .insert(txn)
    .await?;
    chain::set_head_hash(txn, chain, &hash).await?;
    // Every entry is an `audit.entry` event too, committed with it.
    if let Some(tenant) = tenant {
        crate::events::record(
            txn,
            tenant,
            stead_api_types::EventType::AuditEntry,
            None,
            serde_json::json!({
                "id": entry.id,
                "action": entry.action,
                "target_type": entry.target_type,
                "target_id": entry.target_id,
                "actor_kind": entry.actor_kind,
                "actor_email": entry.actor_email,
                "actor_key_id": entry.actor_key_id,
                "source_ip": entry.source_ip,
                "detail": entry.detail,
                "created_at": entry.created_at,
            }),
        )
        .await?;
    }
    Ok(())
}

/// What an update changed: `{"changes": {"field": {"before": …, "after": …}}}` over the fields of
/// two serialisations of the object (API types, which carry no secrets), only those that differ.
pub fn diff(before: &impl Serialize, after: &impl Serialize) -> serde_json::Value {
    let before = serde_json::to_value(before).unwrap_or_default();
    let after = serde_json::to_value(after).unwrap_or_default();
    let mut changes = serde_json::Map::new();
    if let (Some(b), Some(a)) = (before.as_object(), after.as_object()) {
        for (key, new) in a {
            let old = b.get(key).unwrap_or(&serde_json::Value::Null);
            // Bookkeeping fields change on every update and say nothing.
            if old != new && key != "updated_at" {
                changes.insert(
                    key.clone(),
                    serde_json::json!({"before": old, "after": new}),
                );
            }
        }
        for (key, old) in b {
            if !a.contains_key(key) {
                changes.insert(
                    key.clone(),
                    serde_json::json!({"before": old, "after": null}),
                );
            }
        }
    }
    serde_json::json!({ "changes": changes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_names_only_what_changed() {
        let before = serde_json::json!({"name": "a", "label": "x", "updated_at": 1, "gone": 1});
        let after = serde_json::json!({"name": "b", "label": "x", "updated_at": 2});
        assert_eq!(
            diff(&before, &after),
            serde_json::json!({"changes": {
                "name": {"before": "a", "after": "b"},
                "gone": {"before": 1, "after": null},
            }})
        );
    }
}
