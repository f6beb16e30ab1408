//! Stead's database schema, as sea-orm migrations that run unchanged on PostgreSQL and SQLite.
//!
//! The server applies them at start-up (and `stead migrate` alone). A migration, once released,
//! is never edited: add a new one.

pub use sea_orm_migration::prelude::*;

mod m20261126_000001_foundation;
mod m20261126_000002_telemetry;
mod m20261126_000003_device_management;
mod m20261127_000004_import_heartbeat;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261126_000001_foundation::Migration),
            Box::new(m20261126_000002_telemetry::Migration),
            Box::new(m20261126_000003_device_management::Migration),
            Box::new(m20261127_000004_import_heartbeat::Migration),
        ]
    }
}
