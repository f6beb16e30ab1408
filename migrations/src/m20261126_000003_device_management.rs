//! Device management: profiles, groups, attribute versions, credentials beyond the access token,
//! quarantine, commands (RPC) and bulk-import jobs.
//!
//! Every existing tenant gets a default profile and every existing device joins it, so
//! `devices.profile_id` is always set by the application from here on. Times in the new tables
//! are milliseconds since the epoch, as in the telemetry tables.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

const COMMON: &[&str] = &[
    "CREATE UNIQUE INDEX idx_device_profiles_tenant_name ON device_profiles (tenant_id, name)",
    "CREATE UNIQUE INDEX idx_device_profiles_provision_key ON device_profiles (provision_key)",
    "CREATE UNIQUE INDEX idx_device_groups_tenant_name ON device_groups (tenant_id, name)",
    "CREATE INDEX idx_device_group_members_device ON device_group_members (device_id)",
    "CREATE INDEX idx_devices_profile ON devices (profile_id)",
    "CREATE UNIQUE INDEX idx_devices_mqtt_username ON devices (mqtt_username)",
    "CREATE INDEX idx_devices_credentials_expire ON devices (tenant_id, credentials_expire_at)",
    "CREATE INDEX idx_rpc_device ON rpc_commands (device_id, created_at)",
    "CREATE UNIQUE INDEX idx_rpc_device_request ON rpc_commands (device_id, request_id)",
    "CREATE INDEX idx_rpc_open ON rpc_commands (status, expires_at)",
    "CREATE INDEX idx_import_jobs_tenant ON import_jobs (tenant_id, created_at)",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let pg = manager.get_database_backend() == DatabaseBackend::Postgres;
        // The two dialects differ in a few type names only.
        let (id, json, boolean, new_id, now_ms) = if pg {
            (
                "uuid",
                "jsonb",
                "boolean",
                "gen_random_uuid()",
                "(extract(epoch from now()) * 1000)::bigint",
            )
        } else {
            (
                "blob",
                "text",
                "boolean",
                "randomblob(16)",
                "(strftime('%s','now') * 1000)",
            )
        };
        let statements = vec![
            format!(
                "CREATE TABLE device_profiles (
                    id {id} PRIMARY KEY,
                    tenant_id {id} NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
                    name text NOT NULL,
                    description text,
                    is_default {boolean} NOT NULL DEFAULT false,
                    provision_strategy text NOT NULL DEFAULT 'disabled',
                    provision_key text,
                    provision_secret_hash text,
                    inactivity_timeout_secs bigint,
                    limits {json},
                    created_at bigint NOT NULL,
                    updated_at bigint NOT NULL
                )"
            ),
            format!(
                "CREATE TABLE device_groups (
                    id {id} PRIMARY KEY,
                    tenant_id {id} NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
                    name text NOT NULL,
                    description text,
                    created_at bigint NOT NULL,
                    updated_at bigint NOT NULL
                )"
            ),
            format!(
                "CREATE TABLE device_group_members (
                    group_id {id} NOT NULL REFERENCES device_groups(id) ON DELETE CASCADE,
                    device_id {id} NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
                    tenant_id {id} NOT NULL,
                    PRIMARY KEY (group_id, device_id)
                )"
            ),
            format!("ALTER TABLE devices ADD COLUMN profile_id {id} REFERENCES device_profiles(id)"),
            "ALTER TABLE devices ADD COLUMN credentials_type text NOT NULL DEFAULT 'access_token'"
                .into(),
            "ALTER TABLE devices ADD COLUMN mqtt_client_id text".into(),
            "ALTER TABLE devices ADD COLUMN mqtt_username text".into(),
            "ALTER TABLE devices ADD COLUMN mqtt_password_hash text".into(),
            "ALTER TABLE devices ADD COLUMN credentials_expire_at bigint".into(),
            "ALTER TABLE devices ADD COLUMN disabled_reason text".into(),
            // Mirrors the live presence so that the device list can filter on it.
            format!("ALTER TABLE devices ADD COLUMN online {boolean} NOT NULL DEFAULT false"),
            "ALTER TABLE device_attributes ADD COLUMN version bigint NOT NULL DEFAULT 1".into(),
            format!(
                "CREATE TABLE rpc_commands (
                    id {id} PRIMARY KEY,
                    tenant_id {id} NOT NULL,
                    device_id {id} NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
                    request_id bigint NOT NULL,
                    method text NOT NULL,
                    params {json} NOT NULL,
                    oneway {boolean} NOT NULL,
                    persistent {boolean} NOT NULL,
                    status text NOT NULL,
                    timeout_ms bigint NOT NULL,
                    expires_at bigint NOT NULL,
                    retries_left integer NOT NULL,
                    created_by text NOT NULL,
                    created_at bigint NOT NULL,
                    sent_at bigint,
                    delivered_at bigint,
                    completed_at bigint,
                    response {json},
                    error text
                )"
            ),
            format!(
                "CREATE TABLE import_jobs (
                    id {id} PRIMARY KEY,
                    tenant_id {id} NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
                    status text NOT NULL,
                    total bigint NOT NULL,
                    processed bigint NOT NULL,
                    created bigint NOT NULL,
                    updated bigint NOT NULL,
                    unchanged bigint NOT NULL,
                    failed bigint NOT NULL,
                    report {json} NOT NULL,
                    credentials_csv text,
                    created_by text NOT NULL,
                    created_at bigint NOT NULL,
                    finished_at bigint
                )"
            ),
            // Every tenant has a default profile; every device is in a profile.
            format!(
                "INSERT INTO device_profiles (id, tenant_id, name, description, is_default, created_at, updated_at)
                 SELECT {new_id}, id, 'default', 'Devices that name no other profile', true, {now_ms}, {now_ms} FROM tenants"
            ),
            "UPDATE devices SET profile_id = (SELECT p.id FROM device_profiles p WHERE p.tenant_id = devices.tenant_id AND p.is_default)"
                .into(),
        ];
        for sql in statements
            .iter()
            .map(String::as_str)
            .chain(COMMON.iter().copied())
        {
            db.execute_unprepared(sql).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for sql in [
            "DROP TABLE import_jobs",
            "DROP TABLE rpc_commands",
            "DROP TABLE device_group_members",
            "DROP TABLE device_groups",
            "DROP INDEX idx_devices_profile",
            "DROP INDEX idx_devices_mqtt_username",
            "DROP INDEX idx_devices_credentials_expire",
            "ALTER TABLE devices DROP COLUMN profile_id",
            "ALTER TABLE devices DROP COLUMN credentials_type",
            "ALTER TABLE devices DROP COLUMN mqtt_client_id",
            "ALTER TABLE devices DROP COLUMN mqtt_username",
            "ALTER TABLE devices DROP COLUMN mqtt_password_hash",
            "ALTER TABLE devices DROP COLUMN credentials_expire_at",
            "ALTER TABLE devices DROP COLUMN disabled_reason",
            "ALTER TABLE devices DROP COLUMN online",
            "ALTER TABLE device_attributes DROP COLUMN version",
            "DROP TABLE device_profiles",
        ] {
            db.execute_unprepared(sql).await?;
        }
        Ok(())
    }
}
