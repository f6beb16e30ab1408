//! The `audit_log` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_log")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Option<Uuid>,
    pub actor_user_id: Option<Uuid>,
    pub action: String,
    pub target_type: String,
    pub target_id: Option<Uuid>,
    pub detail: Json,
    pub created_at: DateTimeUtc,
    /// Position in the tenant's chain; `None` for entries written before the chain existed.
    pub seq: Option<i64>,
    /// `user`, `api_key` or `system`.
    pub actor_kind: String,
    pub actor_email: Option<String>,
    pub source_ip: Option<String>,
    pub prev_hash: Option<String>,
    pub hash: Option<String>,
    /// The API key the change was made with (`actor_user_id` is its creator).
    pub actor_key_id: Option<Uuid>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
