//! Import jobs say when their runner was last alive.
//!
//! A job runs as a task inside one API process. If that process dies, the job would stay
//! `running` forever; with several API nodes on one database, a node cannot tell another node's
//! live job from a dead one by its status alone. The runner writes `heartbeat_at` (ms) with its
//! progress, and a job whose heartbeat is old is marked failed (at start-up, or when read).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("ALTER TABLE import_jobs ADD COLUMN heartbeat_at bigint")
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("ALTER TABLE import_jobs DROP COLUMN heartbeat_at")
            .await?;
        Ok(())
    }
}
