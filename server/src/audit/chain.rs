//! The per-tenant hash chain over audit entries, and its verification.
//!
//! An entry's hash is SHA-256 over a canonical JSON array of everything it says (its position, the
//! previous entry's hash, time, actor, source, action, target and detail), so changing any of
//! them, removing an entry or reordering entries breaks a link that `verify` reports. The head row
//! (`audit_heads`) also catches the newest entries being removed. Retention removes the oldest
//! entries of a chain: verification then starts at the oldest one left.

use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{head_model, model};
use crate::error::Result;

/// The `prev_hash` of a chain's first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Takes `chain`'s head row lock now (PostgreSQL; SQLite's transaction holds the write lock
/// already). A head that does not exist yet (a tenant's first entry) is created by `advance`.
pub async fn lock(txn: &DatabaseTransaction, chain: Uuid) -> Result<(), sea_orm::DbErr> {
    head_model::Entity::update_many()
        .col_expr(head_model::Column::Seq, Expr::col(head_model::Column::Seq))
        .filter(head_model::Column::Chain.eq(chain))
        .exec(txn)
        .await?;
    Ok(())
}

/// Takes the next position in `chain` (locking its head row until the transaction ends) and
/// returns it with the hash of the entry before it.
pub async fn advance(txn: &DatabaseTransaction, chain: Uuid) -> Result<(i64, String)> {
    head_model::Entity::insert(head_model::ActiveModel {
        chain: sea_orm::Set(chain),
        seq: sea_orm::Set(0),
        hash: sea_orm::Set(GENESIS.to_owned()),
    })
    .on_conflict(
        OnConflict::column(head_model::Column::Chain)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(txn)
    .await?;
    // The update takes the row lock (PostgreSQL) or the write lock (SQLite) before the read.
    head_model::Entity::update_many()
        .col_expr(
            head_model::Column::Seq,
            Expr::col(head_model::Column::Seq).add(1),
        )
        .filter(head_model::Column::Chain.eq(chain))
        .exec(txn)
        .await?;
    let head = head_model::Entity::find_by_id(chain)
        .one(txn)
        .await?
        .ok_or_else(|| anyhow::anyhow!("audit chain head {chain} vanished"))?;
    Ok((head.seq, head.hash))
}

pub async fn set_head_hash(txn: &DatabaseTransaction, chain: Uuid, hash: &str) -> Result<()> {
    head_model::Entity::update_many()
        .col_expr(head_model::Column::Hash, Expr::value(hash))
        .filter(head_model::Column::Chain.eq(chain))
        .exec(txn)
        .await?;
    Ok(())
}

/// The hash an entry must carry, from its own content and `prev_hash`.
pub fn hash_of(e: &model::Model) -> String {
    let mut content = serde_json::json!([
        "stead-audit-v1",
        e.prev_hash,
        e.seq,
        e.id,
        e.tenant_id,
        e.created_at.timestamp_millis(),
        e.actor_kind,
        e.actor_user_id,
        e.actor_email,
        e.source_ip,
        e.action,
        e.target_type,
        e.target_id,
        e.detail,
    ]);
    // Appended only when set, so that entries written before keys existed hash as they did.
    if let (Some(key), Some(fields)) = (e.actor_key_id, content.as_array_mut()) {
        fields.push(serde_json::json!(key));
    }
    hex::encode(Sha256::digest(content.to_string().as_bytes()))
}

/// What verifying one chain found.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainReport {
    /// The tenant (the nil UUID for platform-level entries).
    pub chain: Uuid,
    /// Entries checked, and the first and last position seen.
    pub verified: u64,
    pub first_seq: Option<i64>,
    pub last_seq: Option<i64>,
    /// The first broken link, in words, with the position where it is.
    pub broken: Option<(i64, String)>,
}

/// Checks every chain, in pages (memory stays bounded however long the log is).
pub async fn verify(db: &impl ConnectionTrait) -> Result<Vec<ChainReport>> {
    let heads = head_model::Entity::find()
        .order_by_asc(head_model::Column::Chain)
        .all(db)
        .await?;
    let mut reports = Vec::with_capacity(heads.len());
    for head in heads {
        reports.push(verify_chain(db, &head).await?);
    }
    Ok(reports)
}

async fn verify_chain(db: &impl ConnectionTrait, head: &head_model::Model) -> Result<ChainReport> {
    let mut report = ChainReport {
        chain: head.chain,
        verified: 0,
        first_seq: None,
        last_seq: None,
        broken: None,
    };
    let tenant = (!head.chain.is_nil()).then_some(head.chain);
    let mut last: Option<(i64, String)> = None;
    loop {
        // Up to the head as read: entries committed meanwhile are the next check's (the head and
        // its entry commit together, so every position up to it is there).
        let mut query = model::Entity::find()
            .filter(model::Column::Seq.is_not_null())
            .filter(model::Column::Seq.lte(head.seq))
            .order_by_asc(model::Column::Seq)
            .limit(1000);
        query = match tenant {
            Some(t) => query.filter(model::Column::TenantId.eq(t)),
            None => query.filter(model::Column::TenantId.is_null()),
        };
        if let Some((seq, _)) = &last {
            query = query.filter(model::Column::Seq.gt(*seq));
        }
        let rows = query.all(db).await?;
        if rows.is_empty() {
            break;
        }
        for row in rows {
            let seq = row.seq.unwrap_or_default();
            let prev = row.prev_hash.clone().unwrap_or_default();
            let problem = match &last {
                None if seq == 1 && prev != GENESIS => Some(
                    "the first entry does not start the chain (its previous hash was changed)"
                        .to_owned(),
                ),
                None => None,
                Some((last_seq, _)) if seq != last_seq + 1 => Some(format!(
                    "entries {} to {} are missing (removed from the database)",
                    last_seq + 1,
                    seq - 1
                )),
                Some((_, last_hash)) if &prev != last_hash => Some(
                    "its previous hash does not match the entry before it (an entry was replaced)"
                        .to_owned(),
                ),
                Some(_) => None,
            };
            let problem = problem.or_else(|| {
                (row.hash.as_deref() != Some(hash_of(&row).as_str())).then(|| {
                    format!(
                        "entry {} ({} at {}) does not match its hash: it was edited after it was written",
                        row.id,
                        row.action,
                        row.created_at.to_rfc3339()
                    )
                })
            });
            if let Some(problem) = problem {
                report.broken = Some((seq, problem));
                return Ok(report);
            }
            report.first_seq.get_or_insert(seq);
            report.last_seq = Some(seq);
            report.verified += 1;
            last = Some((seq, row.hash.unwrap_or_default()));
        }
    }
    match &last {
        Some((seq, hash)) if *seq != head.seq || *hash != head.hash => {
            report.broken = Some((
                seq + 1,
                format!(
                    "the chain ends at entry {seq} but its head says {}: the newest entries were removed",
                    head.seq
                ),
            ));
        }
        None if head.seq > 0 => {
            report.broken = Some((
                1,
                format!(
                    "no entries left, but the head says {}: they were removed",
                    head.seq
                ),
            ));
        }
        _ => {}
    }
    Ok(report)
}
