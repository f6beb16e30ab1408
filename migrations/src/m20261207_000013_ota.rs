//! Over-the-air updates: the tenants' packages (the image itself is in the blob store, addressed
//! by its SHA-256 under the tenant), the public keys that sign them, each device's target
//! package per kind with the state of its update, what each device last said it runs, and
//! campaigns: their devices with each one's execution state, and their progress over time.

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
            format!(
                "CREATE TABLE ota_device_targets (
                    device_id {id} NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
                    kind varchar(16) NOT NULL,
                    tenant_id {id} NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
                    package_id {id} NOT NULL REFERENCES ota_packages(id),
                    state varchar(24) NOT NULL,
                    reason text,
                    attempts integer NOT NULL,
                    previous_title varchar(64),
                    previous_version varchar(64),
                    assigned_by {id},
                    assigned_at {ts} NOT NULL,
                    state_at {ts} NOT NULL,
                    PRIMARY KEY (device_id, kind)
                )"
            ),
            "CREATE INDEX idx_ota_device_targets_package ON ota_device_targets (tenant_id, package_id)"
                .into(),
            "CREATE INDEX idx_ota_device_targets_state ON ota_device_targets (state, state_at)"
                .into(),
            format!(
                "CREATE TABLE ota_device_versions (
                    device_id {id} NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
                    kind varchar(16) NOT NULL,
                    tenant_id {id} NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
                    title varchar(64) NOT NULL,
                    version varchar(64) NOT NULL,
                    reported_at {ts} NOT NULL,
                    PRIMARY KEY (device_id, kind)
                )"
            ),
            "CREATE INDEX idx_ota_device_versions_tenant ON ota_device_versions (tenant_id, kind, title, version)"
                .into(),
            format!(
                "CREATE TABLE ota_campaigns (
                    id {id} PRIMARY KEY,
                    tenant_id {id} NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
                    name varchar(100) NOT NULL,
                    package_id {id} NOT NULL REFERENCES ota_packages(id),
                    kind varchar(16) NOT NULL,
                    spec {json} NOT NULL,
                    status varchar(16) NOT NULL,
                    reason text,
                    wave integer NOT NULL,
                    enrolled boolean NOT NULL,
                    created_by {id},
                    approved_by {id},
                    created_at {ts} NOT NULL,
                    started_at {ts},
                    finished_at {ts},
                    lease_owner {id},
                    lease_until {ts},
                    progress_at {ts}
                )"
            ),
            "CREATE INDEX idx_ota_campaigns_tenant ON ota_campaigns (tenant_id, created_at)".into(),
            "CREATE INDEX idx_ota_campaigns_status ON ota_campaigns (status)".into(),
            format!(
                "CREATE TABLE ota_campaign_devices (
                    campaign_id {id} NOT NULL REFERENCES ota_campaigns(id) ON DELETE CASCADE,
                    device_id {id} NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
                    tenant_id {id} NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
                    position bigint NOT NULL,
                    state varchar(24) NOT NULL,
                    reason text,
                    attempts integer NOT NULL,
                    next_at {ts},
                    notified_at {ts},
                    updated_at {ts},
                    previous_title varchar(64),
                    previous_version varchar(64),
                    state_at {ts} NOT NULL,
                    history {json} NOT NULL,
                    PRIMARY KEY (campaign_id, device_id)
                )"
            ),
            "CREATE INDEX idx_ota_campaign_devices_state ON ota_campaign_devices (campaign_id, state, position)"
                .into(),
            "CREATE INDEX idx_ota_campaign_devices_device ON ota_campaign_devices (device_id)".into(),
            format!(
                "CREATE TABLE ota_campaign_progress (
                    campaign_id {id} NOT NULL REFERENCES ota_campaigns(id) ON DELETE CASCADE,
                    at {ts} NOT NULL,
                    counts {json} NOT NULL,
                    PRIMARY KEY (campaign_id, at)
                )"
            ),
        ] {
            db.execute_unprepared(&sql).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for table in [
            "ota_campaign_progress",
            "ota_campaign_devices",
            "ota_campaigns",
            "ota_device_versions",
            "ota_device_targets",
            "ota_packages",
            "ota_signing_keys",
        ] {
            db.execute_unprepared(&format!("DROP TABLE {table}"))
                .await?;
        }
        Ok(())
    }
}
