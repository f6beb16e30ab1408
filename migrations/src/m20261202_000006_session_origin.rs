//! Sessions say where they come from: each refresh token records the address and the browser (or
//! client) that asked for it, so a person's list of sessions can tell them apart.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for column in ["address varchar(64)", "user_agent varchar(256)"] {
            db.execute_unprepared(&format!("ALTER TABLE refresh_tokens ADD COLUMN {column}"))
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for column in ["user_agent", "address"] {
            db.execute_unprepared(&format!("ALTER TABLE refresh_tokens DROP COLUMN {column}"))
                .await?;
        }
        Ok(())
    }
}
