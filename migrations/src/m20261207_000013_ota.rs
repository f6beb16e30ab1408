//! Over-the-air updates, first part: the tenants' packages (the image itself is in the blob store,
//! addressed by its SHA-256 under the tenant) and the public keys that sign them.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let pg = manager.get_database_backend() == DatabaseBackend::Postgres;
        let (id, ts, json) = if pg {
            ("uuid", "timestamptz", "jsonb")
        } else {
            ("blob", "timestamp_with_timezone_text", "json_text")
        };
        for sql in [
            format!(
                "CREATE TABLE ota_signing_keys (
                    id {id} PRIMARY KEY,
                    tenant_id {id} NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
                    name varchar(100) NOT NULL,
                    public_key varchar(64) NOT NULL,
                    created_at {ts} NOT NULL
                )"
            ),
            "CREATE UNIQUE INDEX idx_ota_signing_keys_name ON ota_signing_keys (tenant_id, name)"
                .into(),
            format!(
                "CREATE TABLE ota_packages (
                    id {id} PRIMARY KEY,
                    tenant_id {id} NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
                    kind varchar(16) NOT NULL,
                    title varchar(64) NOT NULL,
                    version varchar(64) NOT NULL,
                    description text NOT NULL,
                    profile_id {id} REFERENCES device_profiles(id) ON DELETE SET NULL,
                    size bigint NOT NULL,
                    sha256 varchar(64) NOT NULL,
                    checksums {json} NOT NULL,
                    signing_key_id {id} REFERENCES ota_signing_keys(id) ON DELETE SET NULL,
                    created_by {id},
                    created_at {ts} NOT NULL
                )"
            ),
            "CREATE UNIQUE INDEX idx_ota_packages_version ON ota_packages (tenant_id, kind, title, version)"
                .into(),
            "CREATE INDEX idx_ota_packages_blob ON ota_packages (tenant_id, sha256)".into(),
        ] {
            db.execute_unprepared(&sql).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for table in ["ota_packages", "ota_signing_keys"] {
            db.execute_unprepared(&format!("DROP TABLE {table}"))
                .await?;
        }
        Ok(())
    }
}
