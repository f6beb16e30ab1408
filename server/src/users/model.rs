//! The `users` table: people, with their argon2id password hash.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// `None` only for platform admins.
    pub tenant_id: Option<Uuid>,
    pub email: String,
    pub name: String,
    pub password_hash: String,
    /// A built-in role, as `stead_api_types::Role::as_str`.
    pub role: String,
    pub active: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub last_login_at: Option<DateTimeUtc>,
    /// The TOTP secret in force, sealed (`auth::totp::Sealer`); `None`: no second factor.
    pub totp_secret: Option<String>,
    /// A TOTP secret being set up, sealed, until a code proves the app has it.
    pub totp_pending: Option<String>,
    /// The last time step a code was accepted for: a code works once.
    pub totp_last_step: Option<i64>,
    /// SHA-256 of each unused recovery code (a JSON array).
    pub recovery_codes: Option<Json>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
