//! Stead's database schema, as sea-orm migrations that run unchanged on PostgreSQL and SQLite.
//!
//! The server applies them at start-up (and `stead migrate` alone). A migration, once released,
//! is never edited: add a new one. [`status`] compares what a database has recorded with the
//! migrations this build carries, so that a binary refuses a schema newer than itself.

pub use sea_orm_migration::prelude::*;

mod m20261126_000001_foundation;
mod m20261126_000002_telemetry;
mod m20261126_000003_device_management;
mod m20261127_000004_import_heartbeat;
mod m20261202_000005_audit_chain;
mod m20261202_000006_session_origin;
mod m20261202_000007_roles_and_keys;
mod m20261203_000008_people;
mod m20261206_000009_integrations;
mod m20261207_000010_gateways;
mod m20261207_000011_alarms;
mod m20261207_000012_notifications;
mod m20261207_000013_ota;

pub struct Migrator;

/// A database's schema against this build's migrations, by migration name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    pub applied: Vec<String>,
    /// Known to this build and not yet applied.
    pub pending: Vec<String>,
    /// Recorded as applied but unknown to this build: a newer release migrated the database.
    pub unknown: Vec<String>,
}

/// Reads the migrations table without creating it (an empty database has everything pending).
pub async fn status(db: &sea_orm_migration::sea_orm::DatabaseConnection) -> Result<Status, DbErr> {
    use sea_orm_migration::sea_orm::EntityTrait as _;
    use sea_orm_migration::seaql_migrations;

    let table = Migrator::migration_table_name().to_string();
    let recorded: Vec<String> = if SchemaManager::new(db).has_table(table).await? {
        seaql_migrations::Entity::find()
            .all(db)
            .await?
            .into_iter()
            .map(|m| m.version)
            .collect()
    } else {
        Vec::new()
    };
    let known: Vec<String> = Migrator::migrations()
        .iter()
        .map(|m| m.name().to_owned())
        .collect();
    let (applied, pending) = known.iter().cloned().partition(|m| recorded.contains(m));
    let mut unknown: Vec<String> = recorded
        .into_iter()
        .filter(|m| !known.contains(m))
        .collect();
    unknown.sort();
    Ok(Status {
        applied,
        pending,
        unknown,
    })
}

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261126_000001_foundation::Migration),
            Box::new(m20261126_000002_telemetry::Migration),
            Box::new(m20261126_000003_device_management::Migration),
            Box::new(m20261127_000004_import_heartbeat::Migration),
            Box::new(m20261202_000005_audit_chain::Migration),
            Box::new(m20261202_000006_session_origin::Migration),
            Box::new(m20261202_000007_roles_and_keys::Migration),
            Box::new(m20261203_000008_people::Migration),
            Box::new(m20261206_000009_integrations::Migration),
            Box::new(m20261207_000010_gateways::Migration),
            Box::new(m20261207_000011_alarms::Migration),
            Box::new(m20261207_000012_notifications::Migration),
            Box::new(m20261207_000013_ota::Migration),
        ]
    }
}
