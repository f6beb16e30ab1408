//! The `import_jobs` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "import_jobs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// `running`, `finished` or `failed`.
    pub status: String,
    pub total: i64,
    pub processed: i64,
    pub created: i64,
    pub updated: i64,
    pub unchanged: i64,
    pub failed: i64,
    /// `{"errors": [ImportRowReport…], "generated": n, "reason": "…"?}`.
    pub report: Json,
    /// `name,access_token` of the devices that got generated tokens, until downloaded once.
    pub credentials_csv: Option<String>,
    pub created_by: String,
    /// Milliseconds since the epoch, as every time of this table.
    pub created_at: i64,
    pub finished_at: Option<i64>,
    /// Written with the progress while the job runs; an old one means its runner died.
    pub heartbeat_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
