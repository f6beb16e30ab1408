//! The `tenants` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "tenants")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub name: String,
    /// `active` or `suspended`.
    pub status: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub telemetry_retention_days: Option<i32>,
    pub audit_retention_days: Option<i32>,
    /// `stead_api_types::TenantLimits` as JSON.
    pub limits: Option<Json>,
    /// `stead_api_types::TenantQuotas` as JSON.
    pub quotas: Option<Json>,
    /// Everyone in the tenant signs in with a second factor.
    pub require_two_factor: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
