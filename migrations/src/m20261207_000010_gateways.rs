//! Gateways: a device marked `gateway` speaks for the devices behind it (ThingsBoard's Gateway
//! API), and each of those sub-devices names its gateway in `gateway_id`.
//!
//! Deleting a gateway leaves its sub-devices (and their data) in place, detached: a fleet behind a
//! replaced gateway is moved to the new one, not lost with the old one.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let id = if manager.get_database_backend() == DatabaseBackend::Postgres {
            "uuid"
        } else {
            "blob"
        };
        for sql in [
            "ALTER TABLE devices ADD COLUMN gateway boolean NOT NULL DEFAULT false".to_owned(),
            format!(
                "ALTER TABLE devices ADD COLUMN gateway_id {id} REFERENCES devices(id) ON DELETE SET NULL"
            ),
            // A gateway's sub-devices are listed, and found on every gateway connect.
            "CREATE INDEX idx_devices_gateway ON devices (gateway_id)".to_owned(),
        ] {
            db.execute_unprepared(&sql).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for sql in [
            "DROP INDEX idx_devices_gateway",
            "ALTER TABLE devices DROP COLUMN gateway_id",
            "ALTER TABLE devices DROP COLUMN gateway",
        ] {
            db.execute_unprepared(sql).await?;
        }
        Ok(())
    }
}
