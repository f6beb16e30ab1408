//! The `events` table: the transactional outbox.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "events")]
pub struct Model {
    /// Commit-ish order: assigned at insert, so two open transactions may commit out of order
    /// (the dispatcher does not rely on it being gap-free).
    #[sea_orm(primary_key)]
    pub seq: i64,
    /// The event's id: the idempotency key receivers deduplicate on.
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub event_type: String,
    pub device_id: Option<Uuid>,
    pub data: Json,
    pub created_at: DateTimeUtc,
    /// Turned into deliveries.
    pub dispatched: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
