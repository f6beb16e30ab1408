//! The `device_profiles` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "device_profiles")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub is_default: bool,
    /// `disabled`, `allow_create` or `pre_provisioned`.
    pub provision_strategy: String,
    pub provision_key: Option<String>,
    /// SHA-256 (hex) of the provisioning secret.
    pub provision_secret_hash: Option<String>,
    pub inactivity_timeout_secs: Option<i64>,
    pub limits: Option<Json>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
