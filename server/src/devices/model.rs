//! The `devices` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "devices")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub label: Option<String>,
    pub device_type: Option<String>,
    pub metadata: Json,
    /// SHA-256 (hex) of the access token; the token itself is never stored.
    pub token_hash: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub profile_id: Option<Uuid>,
    /// `access_token`, `mqtt_basic` or `none` (revoked).
    pub credentials_type: String,
    pub mqtt_client_id: Option<String>,
    pub mqtt_username: Option<String>,
    /// argon2id hash of the MQTT basic password.
    pub mqtt_password_hash: Option<String>,
    /// Milliseconds since the epoch.
    pub credentials_expire_at: Option<i64>,
    pub disabled_reason: Option<String>,
    /// Mirrors the live presence, for filtering the device list.
    pub online: bool,
    /// May speak for the devices behind it (ThingsBoard's Gateway API).
    pub gateway: bool,
    /// The gateway a sub-device is behind.
    pub gateway_id: Option<Uuid>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
