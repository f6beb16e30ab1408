//! Telemetry, client attributes and the device timeline.
//!
//! Telemetry is one row per message point: `(tenant, device, ts, data)` where `data` is the JSON
//! object of that point's values. At the write rates Stead aims for (tens of thousands of
//! messages a second) one row per message instead of one per key means a quarter of the rows,
//! index entries and WAL; a per-key series is read back with the backend's JSON operators, and
//! only ever for one device over a time range, which the `(device_id, ts)` index serves.
//! On PostgreSQL the table is partitioned by day (`ts` in milliseconds) so that retention drops
//! whole partitions; a default partition catches timestamps outside the prepared days.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let statements: &[&str] = match manager.get_database_backend() {
            DatabaseBackend::Postgres => &[
                "CREATE TABLE telemetry (
                    tenant_id uuid NOT NULL,
                    device_id uuid NOT NULL,
                    ts bigint NOT NULL,
                    data jsonb NOT NULL
                ) PARTITION BY RANGE (ts)",
                "CREATE TABLE telemetry_default PARTITION OF telemetry DEFAULT",
                "CREATE INDEX idx_telemetry_device_ts ON telemetry (device_id, ts)",
                "CREATE TABLE device_attributes (
                    device_id uuid NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
                    scope text NOT NULL,
                    key text NOT NULL,
                    tenant_id uuid NOT NULL,
                    value jsonb NOT NULL,
                    updated_at bigint NOT NULL,
                    PRIMARY KEY (device_id, scope, key)
                )",
                "CREATE TABLE device_events (
                    id bigserial PRIMARY KEY,
                    tenant_id uuid NOT NULL,
                    device_id uuid NOT NULL,
                    ts bigint NOT NULL,
                    kind text NOT NULL,
                    detail text NOT NULL,
                    data jsonb NOT NULL
                )",
                "CREATE INDEX idx_device_events_device ON device_events (device_id, id)",
                "ALTER TABLE tenants ADD COLUMN telemetry_retention_days integer",
                "ALTER TABLE tenants ADD COLUMN limits jsonb",
            ],
            _ => &[
                "CREATE TABLE telemetry (
                    tenant_id blob NOT NULL,
                    device_id blob NOT NULL,
                    ts integer NOT NULL,
                    data text NOT NULL
                )",
                "CREATE INDEX idx_telemetry_device_ts ON telemetry (device_id, ts)",
                "CREATE TABLE device_attributes (
                    device_id blob NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
                    scope text NOT NULL,
                    key text NOT NULL,
                    tenant_id blob NOT NULL,
                    value text NOT NULL,
                    updated_at integer NOT NULL,
                    PRIMARY KEY (device_id, scope, key)
                )",
                "CREATE TABLE device_events (
                    id integer PRIMARY KEY AUTOINCREMENT,
                    tenant_id blob NOT NULL,
                    device_id blob NOT NULL,
                    ts integer NOT NULL,
                    kind text NOT NULL,
                    detail text NOT NULL,
                    data text NOT NULL
                )",
                "CREATE INDEX idx_device_events_device ON device_events (device_id, id)",
                "ALTER TABLE tenants ADD COLUMN telemetry_retention_days integer",
                "ALTER TABLE tenants ADD COLUMN limits text",
            ],
        };
        for sql in statements {
            db.execute_unprepared(sql).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for sql in [
            "DROP TABLE device_events",
            "DROP TABLE device_attributes",
            "DROP TABLE telemetry",
            "ALTER TABLE tenants DROP COLUMN telemetry_retention_days",
            "ALTER TABLE tenants DROP COLUMN limits",
        ] {
            db.execute_unprepared(sql).await?;
        }
        Ok(())
    }
}
