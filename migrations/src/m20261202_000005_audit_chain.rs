//! The audit log becomes readable and tamper-evident.
//!
//! Each entry now says who acted (kind, e-mail at the time, source address) and carries its place
//! in its tenant's hash chain: `seq` counts the tenant's entries from 1, `prev_hash` is the hash of
//! the entry before it and `hash` covers the entry's own content and `prev_hash`. `audit_heads`
//! holds each chain's last `seq` and `hash`; a writer locks that row in the transaction of the
//! change it records, so entries of one tenant are chained in commit order. Entries written before
//! this migration have no `seq` and stay outside the chain. A tenant may keep its entries for
//! its own number of days (`tenants.audit_retention_days`; null is the platform's default).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for column in [
            "seq bigint",
            "actor_kind varchar(16) NOT NULL DEFAULT 'user'",
            "actor_email varchar(320)",
            "source_ip varchar(64)",
            "prev_hash varchar(64)",
            "hash varchar(64)",
        ] {
            db.execute_unprepared(&format!("ALTER TABLE audit_log ADD COLUMN {column}"))
                .await?;
        }
        db.execute_unprepared("ALTER TABLE tenants ADD COLUMN audit_retention_days integer")
            .await?;
        db.execute_unprepared(
            "CREATE UNIQUE INDEX idx_audit_tenant_seq ON audit_log (tenant_id, seq)",
        )
        .await?;
        db.execute_unprepared(
            "CREATE INDEX idx_audit_tenant_target ON audit_log (tenant_id, target_id)",
        )
        .await?;
        manager
            .create_table(
                Table::create()
                    .table(AuditHeads::Table)
                    .col(
                        ColumnDef::new(AuditHeads::Chain)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(AuditHeads::Seq).big_integer().not_null())
                    .col(ColumnDef::new(AuditHeads::Hash).string_len(64).not_null())
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AuditHeads::Table).to_owned())
            .await?;
        let db = manager.get_connection();
        db.execute_unprepared("DROP INDEX idx_audit_tenant_target")
            .await?;
        db.execute_unprepared("DROP INDEX idx_audit_tenant_seq")
            .await?;
        db.execute_unprepared("ALTER TABLE tenants DROP COLUMN audit_retention_days")
            .await?;
        for column in [
            "hash",
            "prev_hash",
            "source_ip",
            "actor_email",
            "actor_kind",
            "seq",
        ] {
            db.execute_unprepared(&format!("ALTER TABLE audit_log DROP COLUMN {column}"))
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum AuditHeads {
    Table,
    Chain,
    Seq,
    Hash,
}
