//! The `rpc_commands` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "rpc_commands")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub device_id: Uuid,
    pub request_id: i64,
    pub method: String,
    pub params: Json,
    pub oneway: bool,
    pub persistent: bool,
    pub status: String,
    pub timeout_ms: i64,
    pub expires_at: i64,
    pub retries_left: i32,
    pub created_by: String,
    pub created_at: i64,
    pub sent_at: Option<i64>,
    pub delivered_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub response: Option<Json>,
    pub error: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
