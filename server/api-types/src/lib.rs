//! Wire types of Stead's public REST API.
//!
//! The server, the browser console (wasm32) and the end-to-end tests all speak through these
//! types, so a field renamed here is renamed everywhere at once. This crate has no server, database
//! or runtime dependencies; CI builds it for wasm32 to keep it that way.
//!
//! Request bodies reject unknown fields: a misspelt field is an error, never silently ignored.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

mod alarms;
mod integrations;
mod ota;
pub use alarms::*;
pub use integrations::*;
pub use ota::*;

/// Every error the API answers, whatever the status: a stable snake_case `code` for programs and
/// a human `detail`. `field` names the offending request field when there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiErrorBody {
    pub code: String,
    pub detail: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// The rule for every name people give to things (devices, groups, profiles, roles, tenants):
/// trimmed, 1 to `max` characters. Answers the trimmed name, or why it is refused.
pub fn check_name(kind: &str, raw: &str, max: usize) -> Result<String, String> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > max {
        return Err(format!("a {kind} name has 1 to {max} characters"));
    }
    Ok(name.to_owned())
}

/// A page of a listing. `page` counts from 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: u64,
    pub page: u64,
    pub per_page: u64,
}

// ---------------------------------------------------------------------------------------------
// People and sessions

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    PlatformAdmin,
    TenantAdmin,
    Operator,
    Viewer,
    /// Nothing tenant-wide: all their access comes from their role bindings (a tenant's end
    /// customers, bound to the device groups that are theirs).
    Member,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::PlatformAdmin,
        Role::TenantAdmin,
        Role::Operator,
        Role::Viewer,
        Role::Member,
    ];

    /// The built-in roles a tenant's people can hold.
    pub const TENANT: [Role; 4] = [
        Role::TenantAdmin,
        Role::Operator,
        Role::Viewer,
        Role::Member,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::PlatformAdmin => "platform_admin",
            Role::TenantAdmin => "tenant_admin",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
            Role::Member => "member",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// What a person sees in the console.
    pub fn label(self) -> &'static str {
        match self {
            Role::PlatformAdmin => "Platform admin",
            Role::TenantAdmin => "Tenant admin",
            Role::Operator => "Operator",
            Role::Viewer => "Viewer",
            Role::Member => "Member",
        }
    }
}

/// One permission of the catalogue that every check and every role is made of. On the wire, its
/// dotted name (`devices.write`); the console hides what the signed-in person lacks.
/// Ordered as the catalogue lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Permission {
    #[serde(rename = "tenants.manage")]
    TenantsManage,
    #[serde(rename = "users.read")]
    UsersRead,
    #[serde(rename = "users.manage")]
    UsersManage,
    #[serde(rename = "devices.read")]
    DevicesRead,
    #[serde(rename = "devices.write")]
    DevicesWrite,
    #[serde(rename = "profiles.manage")]
    ProfilesManage,
    #[serde(rename = "commands.send")]
    CommandsSend,
    #[serde(rename = "audit.read")]
    AuditRead,
    #[serde(rename = "roles.manage")]
    RolesManage,
    #[serde(rename = "apikeys.manage")]
    ApiKeysManage,
    #[serde(rename = "quotas.read")]
    QuotasRead,
    #[serde(rename = "webhooks.manage")]
    WebhooksManage,
    #[serde(rename = "alarms.read")]
    AlarmsRead,
    #[serde(rename = "alarms.ack")]
    AlarmsAck,
    #[serde(rename = "alarms.manage")]
    AlarmsManage,
    #[serde(rename = "ota.read")]
    OtaRead,
    #[serde(rename = "ota.manage")]
    OtaManage,
    #[serde(rename = "ota.approve")]
    OtaApprove,
}

impl Permission {
    pub const ALL: [Permission; 18] = [
        Permission::TenantsManage,
        Permission::UsersRead,
        Permission::UsersManage,
        Permission::DevicesRead,
        Permission::DevicesWrite,
        Permission::ProfilesManage,
        Permission::CommandsSend,
        Permission::AuditRead,
        Permission::RolesManage,
        Permission::ApiKeysManage,
        Permission::QuotasRead,
        Permission::WebhooksManage,
        Permission::AlarmsRead,
        Permission::AlarmsAck,
        Permission::AlarmsManage,
        Permission::OtaRead,
        Permission::OtaManage,
        Permission::OtaApprove,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::TenantsManage => "tenants.manage",
            Permission::UsersRead => "users.read",
            Permission::UsersManage => "users.manage",
            Permission::DevicesRead => "devices.read",
            Permission::DevicesWrite => "devices.write",
            Permission::ProfilesManage => "profiles.manage",
            Permission::CommandsSend => "commands.send",
            Permission::AuditRead => "audit.read",
            Permission::RolesManage => "roles.manage",
            Permission::ApiKeysManage => "apikeys.manage",
            Permission::QuotasRead => "quotas.read",
            Permission::WebhooksManage => "webhooks.manage",
            Permission::AlarmsRead => "alarms.read",
            Permission::AlarmsAck => "alarms.ack",
            Permission::AlarmsManage => "alarms.manage",
            Permission::OtaRead => "ota.read",
            Permission::OtaManage => "ota.manage",
            Permission::OtaApprove => "ota.approve",
        }
    }

    /// What a person sees in the console's permission picker.
    pub fn label(self) -> &'static str {
        match self {
            Permission::TenantsManage => "Manage tenants (platform)",
            Permission::UsersRead => "See people",
            Permission::UsersManage => "Manage people",
            Permission::DevicesRead => "See devices and their data",
            Permission::DevicesWrite => "Change devices",
            Permission::ProfilesManage => "Manage profiles and groups",
            Permission::CommandsSend => "Send commands",
            Permission::AuditRead => "Read the audit log",
            Permission::RolesManage => "Manage roles and bindings",
            Permission::ApiKeysManage => "Create and revoke API keys",
            Permission::QuotasRead => "See the tenant's usage and quotas",
            Permission::WebhooksManage => "Manage webhooks and see their deliveries",
            Permission::AlarmsRead => "See alarms",
            Permission::AlarmsAck => "Acknowledge, clear, assign and comment on alarms",
            Permission::AlarmsManage => "Manage alarm rules",
            Permission::OtaRead => "See firmware packages and update campaigns",
            Permission::OtaManage => "Upload packages and prepare update campaigns",
            Permission::OtaApprove => "Start update campaigns",
        }
    }

    /// Whether a role bound to device groups grants this permission over those groups' devices.
    /// The others act on the tenant as a whole (its people, profiles, audit log) and are granted
    /// only by a binding at tenant scope.
    pub fn group_scopable(self) -> bool {
        matches!(
            self,
            Permission::DevicesRead
                | Permission::DevicesWrite
                | Permission::CommandsSend
                | Permission::AlarmsRead
                | Permission::AlarmsAck
        )
    }

    /// The one place that says which built-in role holds which permission.
    pub fn granted_to(self, role: Role) -> bool {
        use Permission::*;
        match role {
            Role::PlatformAdmin => matches!(self, TenantsManage),
            Role::TenantAdmin => {
                matches!(
                    self,
                    UsersRead
                        | UsersManage
                        | DevicesRead
                        | DevicesWrite
                        | ProfilesManage
                        | CommandsSend
                        | AuditRead
                        | RolesManage
                        | ApiKeysManage
                        | QuotasRead
                        | WebhooksManage
                        | AlarmsRead
                        | AlarmsAck
                        | AlarmsManage
                        | OtaRead
                        | OtaManage
                        | OtaApprove
                )
            }
            Role::Operator => matches!(
                self,
                DevicesRead | DevicesWrite | CommandsSend | AlarmsRead | AlarmsAck | OtaRead
            ),
            Role::Viewer => matches!(self, DevicesRead | AlarmsRead | OtaRead),
            Role::Member => false,
        }
    }

    pub fn of_role(role: Role) -> Vec<Permission> {
        Permission::ALL
            .into_iter()
            .filter(|p| p.granted_to(role))
            .collect()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
    /// The 6-digit code of the person's authenticator app, when they turned two-factor sign-in
    /// on (without it the answer is 401 `two_factor_required`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totp_code: Option<String>,
    /// One of the person's recovery codes instead of `totp_code` (each works once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_code: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenResponse {
    pub access_token: String,
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    pub token_type: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TenantSummary {
    pub id: Uuid,
    pub name: String,
}

/// `GET /api/v1/me`: who the caller is and what they may do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Me {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub tenant: Option<TenantSummary>,
    /// What the caller may do, at any scope, for the console to hide what would be refused.
    pub permissions: Vec<Permission>,
    /// Set when the caller's device access is limited to these device groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<Uuid>>,
    /// The permissions above held only over some device groups, not tenant-wide.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group_only: Vec<Permission>,
    /// Set when the caller is an API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<Uuid>,
    /// Whether the person signs in with a second factor (TOTP).
    #[serde(default)]
    pub two_factor: bool,
    /// Their tenant requires two-factor sign-in and they have not set it up yet: until they do,
    /// every route but their own account answers 403 `two_factor_setup_required`.
    #[serde(default)]
    pub two_factor_setup_required: bool,
}

/// `GET /api/v1/me/sessions`: one of the caller's sign-ins that has not ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionInfo {
    pub id: Uuid,
    /// When the person signed in.
    pub started_at: DateTime<Utc>,
    /// The last sign-in or token refresh.
    pub last_active_at: DateTime<Utc>,
    /// When it ends unless refreshed again.
    pub expires_at: DateTime<Utc>,
    /// The address and `User-Agent` of the last sign-in or refresh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// The session this request was made in.
    pub current: bool,
}

/// `POST /api/v1/me/password`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    pub current_password: String,
    pub new_password: String,
}

/// `POST /api/v1/me/two-factor/setup` and `/disable`: the person's password, again.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ConfirmPassword {
    pub password: String,
}

/// A new TOTP secret, not yet in force: it is once the person proves their app has it
/// (`POST /api/v1/me/two-factor/enable` with a code).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TwoFactorSetup {
    /// Base32, for typing into an app by hand.
    pub secret: String,
    /// `otpauth://totp/…`, what the QR code holds.
    pub otpauth_url: String,
    /// The QR code of `otpauth_url`, as an SVG document.
    pub qr_svg: String,
}

/// `POST /api/v1/me/two-factor/enable`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EnableTwoFactor {
    pub code: String,
}

/// Recovery codes: shown this once, stored only hashed; each signs in once instead of a code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecoveryCodes {
    pub recovery_codes: Vec<String>,
}

/// `GET`/`PATCH /api/v1/security`: a tenant's sign-in rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TenantSecurity {
    /// Everyone in the tenant must sign in with a second factor.
    pub require_two_factor: bool,
}

/// `POST /api/v1/auth/password-reset`: mail a reset link (the answer is the same whether or not
/// the address has an account).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RequestPasswordReset {
    pub email: String,
}

/// `POST /api/v1/auth/password-reset/confirm`: the token from the link, and the new password.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ConfirmPasswordReset {
    pub token: String,
    pub new_password: String,
}

// ---------------------------------------------------------------------------------------------
// Invitations

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum InvitationStatus {
    Pending,
    Accepted,
    Expired,
    Revoked,
}

/// Whether the invitation's e-mail went out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MailStatus {
    Sent,
    /// The SMTP server refused or could not be reached (`mail_error` says why); resend later.
    Failed,
    /// No SMTP server is configured: pass the `link` on yourself.
    NotConfigured,
}

/// An invitation to join a tenant: an e-mail with a one-time link where the invitee sets their
/// password, and the role and bindings they get.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Invitation {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub bindings: Vec<RoleBinding>,
    pub status: InvitationStatus,
    pub mail: MailStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mail_error: Option<String>,
    pub invited_by_email: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_at: Option<DateTime<Utc>>,
    /// The link itself: only in the answer that created (or re-sent) the invitation, and only
    /// when no e-mail could carry it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateInvitation {
    pub email: String,
    #[serde(default)]
    pub name: Option<String>,
    /// The built-in role (`member` when all their access comes from `bindings`).
    pub role: Role,
    #[serde(default)]
    pub bindings: Vec<NewRoleBinding>,
}

/// `POST /api/v1/auth/invitation`: what the invitee's link is for.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct InvitationToken {
    pub token: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InvitationPreview {
    pub email: String,
    pub name: String,
    pub tenant_name: String,
    pub invited_by_email: String,
    pub expires_at: DateTime<Utc>,
}

/// `POST /api/v1/auth/invitation/accept`: creates the account and signs it in.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AcceptInvitation {
    pub token: String,
    pub password: String,
    #[serde(default)]
    pub name: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Tenants (platform admin)

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TenantStatus {
    Active,
    Suspended,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Tenant {
    pub id: Uuid,
    pub name: String,
    pub status: TenantStatus,
    pub created_at: DateTime<Utc>,
    /// Days telemetry is kept; `None` means the platform default.
    #[serde(default)]
    pub telemetry_retention_days: Option<u32>,
    /// Days audit entries are kept; `None` means the platform default.
    #[serde(default)]
    pub audit_retention_days: Option<u32>,
    /// Rate-limit overrides; absent ones are the platform defaults.
    #[serde(default)]
    pub limits: TenantLimits,
    /// Quota overrides; absent ones are the platform defaults.
    #[serde(default)]
    pub quotas: TenantQuotas,
}

/// Per-tenant quotas set by the platform admin: how many of each a tenant may have.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TenantQuotas {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devices: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<u64>,
    /// API keys not revoked and not expired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_keys: Option<u64>,
    /// Telemetry data points accepted per UTC day, over MQTT and HTTP together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_points_per_day: Option<u64>,
    /// Bytes of OTA packages stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ota_bytes: Option<u64>,
}

/// One quota: what is used against what is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QuotaUse {
    pub used: u64,
    pub limit: u64,
}

/// `GET /api/v1/usage` (a tenant's own) and `GET /api/v1/tenants/usage` (every tenant's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Usage {
    pub tenant: TenantSummary,
    pub devices: QuotaUse,
    pub users: QuotaUse,
    pub api_keys: QuotaUse,
    /// Data points accepted since 00:00 UTC.
    pub data_points_today: QuotaUse,
    /// Bytes of OTA packages stored.
    pub ota_bytes: QuotaUse,
}

/// Per-tenant rate limits as rate strings `count:seconds[,count:seconds…]` (e.g. `200:1,6000:60`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TenantLimits {
    /// Messages per device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_messages: Option<String>,
    /// Telemetry data points per device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_data_points: Option<String>,
    /// Messages of all the tenant's devices together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_messages: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_data_points: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    pub name: String,
    pub admin_email: String,
    pub admin_password: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateTenant {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<TenantStatus>,
    /// `null` returns to the platform default.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "double_option"
    )]
    pub telemetry_retention_days: Option<Option<u32>>,
    /// `null` returns to the platform default.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "double_option"
    )]
    pub audit_retention_days: Option<Option<u32>>,
    /// Replaces all overrides at once (`{}` returns to the defaults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<TenantLimits>,
    /// Replaces all quota overrides at once (`{}` returns to the defaults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quotas: Option<TenantQuotas>,
}

// ---------------------------------------------------------------------------------------------
// Users (tenant admin)

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub active: bool,
    /// Whether they sign in with a second factor.
    #[serde(default)]
    pub two_factor: bool,
    pub created_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    pub email: String,
    pub password: String,
    pub role: Role,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// `false` deactivates the user: their sessions end and they can no longer log in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Custom roles, role bindings and API keys

/// A tenant's own role: a name and a set of permissions from the catalogue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CustomRole {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub permissions: Vec<Permission>,
    /// How many people hold it (at any scope).
    pub users: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateRole {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub permissions: Vec<Permission>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateRole {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Replaces the whole set; takes effect on the next request of everyone holding the role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<Permission>>,
}

/// Which role a binding grants: `{"builtin": "operator"}` or `{"custom": "<role id>"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RoleRef {
    Builtin(Role),
    Custom(Uuid),
}

/// A role a person holds beyond their built-in one: over the whole tenant (`groups` empty) or only
/// over the devices of some device groups.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RoleBinding {
    pub role: RoleRef,
    /// The role's name, for display.
    pub role_name: String,
    /// Empty: the whole tenant.
    pub groups: Vec<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewRoleBinding {
    pub role: RoleRef,
    /// Empty or absent: the whole tenant.
    #[serde(default)]
    pub groups: Vec<Uuid>,
}

/// `PUT /api/v1/users/{id}/bindings`: replaces all of a person's bindings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SetRoleBindings {
    pub bindings: Vec<NewRoleBinding>,
}

/// An API key for an integration. Its secret is shown once, at creation, and stored only hashed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiKey {
    pub id: Uuid,
    pub description: String,
    /// The first characters of the secret (`stead_…`), to recognise it.
    pub prefix: String,
    /// What it may do: never more than its creator may, at the time of each request.
    pub permissions: Vec<Permission>,
    /// Limited to these device groups; empty: as wide as its creator.
    pub groups: Vec<Uuid>,
    pub created_by: Uuid,
    pub created_by_email: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    pub description: String,
    pub permissions: Vec<Permission>,
    /// Limit the key to these device groups (each within the creator's own scope).
    #[serde(default)]
    pub groups: Vec<Uuid>,
    /// At most a year ahead; 90 days when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedApiKey {
    pub key: ApiKey,
    /// `Authorization: Bearer <secret>`. Shown this once.
    pub secret: String,
}

// ---------------------------------------------------------------------------------------------
// Devices

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Device {
    pub id: Uuid,
    pub name: String,
    pub label: Option<String>,
    #[serde(rename = "type")]
    pub device_type: Option<String>,
    pub metadata: serde_json::Value,
    /// The device profile it follows (every tenant has a default one).
    pub profile_id: Uuid,
    pub credentials_type: CredentialsType,
    /// When the credentials stop working, if they expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_expire_at: Option<DateTime<Utc>>,
    /// Set while the device is disabled (quarantined): it cannot connect and its data is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    /// A gateway connects with its own credentials and speaks for the devices behind it
    /// (ThingsBoard's Gateway API, `v1/gateway/...`).
    #[serde(default)]
    pub gateway: bool,
    /// The gateway this device is behind (a sub-device: it has no connection of its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// In device lists: online now, last seen, the most severe active alarm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<DeviceStatus>,
}

/// How a device is doing, as the device list shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeviceStatus {
    pub online: bool,
    /// Its last message or ping (ms), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_activity: Option<i64>,
    /// The severity of its most severe active alarm, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarm_severity: Option<AlarmSeverity>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateDevice {
    pub name: String,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default, rename = "type")]
    pub device_type: Option<String>,
    #[serde(default)]
    pub metadata: Option<serde_json::Value>,
    /// The tenant's default profile when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_id: Option<Uuid>,
    /// Groups to put the device in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<Uuid>>,
    /// An access token is generated when absent, except for a sub-device (`gateway_id`), which
    /// speaks through its gateway and gets no credentials of its own unless given some.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<SetCredentials>,
    /// Make it a gateway: it may speak for devices behind it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub gateway: bool,
    /// Put it behind this gateway (a device of the tenant marked as gateway).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_id: Option<Uuid>,
}

/// `PATCH /api/v1/devices/{id}`: absent fields stay as they are; `null` clears `label` and `type`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateDevice {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "double_option"
    )]
    pub label: Option<Option<String>>,
    #[serde(
        default,
        rename = "type",
        skip_serializing_if = "Option::is_none",
        with = "double_option"
    )]
    pub device_type: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_id: Option<Uuid>,
    /// Mark or unmark it as a gateway (its session ends, so that it reconnects as what it is now).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<bool>,
    /// Move it behind another gateway of the tenant, or detach it (`null`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "double_option"
    )]
    pub gateway_id: Option<Option<Uuid>>,
}

/// A device just created: its secret (access token or MQTT password) is shown this once and stored
/// only as a hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedDevice {
    pub device: Device,
    /// Set for access-token devices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    /// Set for MQTT-basic devices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mqtt_basic: Option<MqttBasicCredentials>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CredentialsType {
    AccessToken,
    MqttBasic,
    /// Revoked: the device cannot connect until it gets new credentials.
    None,
}

/// MQTT basic credentials: user name and password, and a client id when one is required.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MqttBasicCredentials {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    pub username: String,
    pub password: String,
}

/// `PUT /api/v1/devices/{id}/credentials` (and `credentials` when creating a device): the new
/// credentials. A secret left out is generated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SetCredentials {
    AccessToken {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires_at: Option<DateTime<Utc>>,
    },
    MqttBasic {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
        username: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires_at: Option<DateTime<Utc>>,
    },
}

/// New credentials (rotate, set): the secret is shown this once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeviceCredentials {
    pub credentials_type: CredentialsType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mqtt_basic: Option<MqttBasicCredentials>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

/// `POST /api/v1/devices/{id}/disable`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DisableDevice {
    pub reason: String,
}

/// Query of `GET /api/v1/devices/credentials/expiring`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
#[serde(deny_unknown_fields)]
pub struct ExpiringQuery {
    /// Credentials that expire within this many days (default 30), expired ones included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(maximum = 3650))]
    pub within_days: Option<u32>,
}

/// Query of `GET /api/v1/devices`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
#[serde(deny_unknown_fields)]
pub struct DeviceListQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(minimum = 1))]
    pub page: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 200))]
    pub per_page: Option<u64>,
    /// Case-insensitive substring of the name or the label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<String>,
    /// `name`, `label`, `created_at`, `updated_at`, `online` or `alarm_severity` (the most
    /// severe active alarm); a leading `-` sorts descending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort: Option<String>,
    /// Only devices of this profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<Uuid>,
    /// Only devices in this group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<Uuid>,
    /// Only devices with exactly this label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Only devices online (`true`) or offline (`false`) now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online: Option<bool>,
    /// Only the sub-devices of this gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<Uuid>,
    /// Only devices with an active alarm at least this severe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarm_severity: Option<AlarmSeverity>,
}

/// Query of the other listings (`/users`, `/tenants`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(minimum = 1))]
    pub page: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 200))]
    pub per_page: Option<u64>,
}

// ---------------------------------------------------------------------------------------------
// Health

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Readiness {
    /// `ready` or `not_ready`.
    pub status: String,
    /// Each dependency with `ok` or the reason it failed.
    pub checks: std::collections::BTreeMap<String, String>,
}

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<T: Serialize, S: Serializer>(
        value: &Option<Option<T>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(inner) => inner.serialize(serializer),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(deserializer).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_device_tells_absent_from_null() {
        let absent: UpdateDevice = serde_json::from_str(r#"{"name":"a"}"#).unwrap();
        assert_eq!(absent.label, None);
        let null: UpdateDevice = serde_json::from_str(r#"{"label":null}"#).unwrap();
        assert_eq!(null.label, Some(None));
        let set: UpdateDevice = serde_json::from_str(r#"{"label":"x"}"#).unwrap();
        assert_eq!(set.label, Some(Some("x".into())));
    }

    #[test]
    fn requests_reject_unknown_fields() {
        let err = serde_json::from_str::<LoginRequest>(r#"{"email":"a","password":"b","x":1}"#)
            .unwrap_err();
        assert!(err.to_string().contains("unknown field `x`"), "{err}");
    }

    #[test]
    fn roles_round_trip() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
            let json = serde_json::to_string(&role).unwrap();
            assert_eq!(json, format!("\"{}\"", role.as_str()));
        }
    }
    #[test]
    fn permissions_travel_by_their_dotted_names() {
        for permission in Permission::ALL {
            let json = serde_json::to_value(permission).unwrap();
            assert_eq!(json, serde_json::Value::from(permission.as_str()));
            assert_eq!(
                serde_json::from_value::<Permission>(json).unwrap(),
                permission
            );
        }
        assert!(serde_json::from_str::<Permission>("\"devices.everything\"").is_err());
        // Every built-in role but the platform admin's is a subset of the tenant admin's.
        for role in [Role::Operator, Role::Viewer] {
            for p in Permission::of_role(role) {
                assert!(p.granted_to(Role::TenantAdmin), "{p:?}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Telemetry, presence and the device timeline

/// One stored value with its time (milliseconds since the Unix epoch).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TsValue {
    pub ts: i64,
    /// Integer, float, bool, string or a JSON object, as the device sent it.
    pub value: serde_json::Value,
}

/// `GET /api/v1/devices/{id}/telemetry/latest`: each key's latest value.
pub type LatestTelemetry = std::collections::BTreeMap<String, TsValue>;

/// `GET /api/v1/devices/{id}/telemetry?keys=a,b&from=&to=&limit=&order=`: raw points per key,
/// newest first unless `order=asc`. When more points exist, `next_cursor` says where the next
/// page begins: pass it as `cursor`, with the same `from`, `to` and `order`. Points that share a
/// timestamp are neither skipped nor repeated across pages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TelemetrySeries {
    pub series: std::collections::BTreeMap<String, Vec<TsValue>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// One bucket of an aggregated series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AggregatePoint {
    /// Start of the bucket (ms).
    pub ts: i64,
    /// The aggregate (avg, min, max, sum) or the count.
    pub value: f64,
    /// How many numeric values fell in the bucket.
    pub count: u64,
}

/// `GET /api/v1/devices/{id}/telemetry/aggregate?keys=&from=&to=&interval=&agg=avg|min|max|sum|count`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AggregateSeries {
    pub interval_ms: i64,
    pub agg: String,
    pub series: std::collections::BTreeMap<String, Vec<AggregatePoint>>,
}

/// Why a device's session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DisconnectReason {
    ClientDisconnect,
    KeepAliveTimeout,
    TakenOver,
    CredentialsRevoked,
    ProtocolError,
    ServerShutdown,
    ConnectionLost,
    /// MQTT 3.1.1 only: a QoS 1 message over the rate limit cannot be refused on its own.
    RateLimited,
    /// Silent for longer than its profile's inactivity timeout.
    Inactive,
    /// The device was disabled (quarantined).
    Disabled,
    /// The node that held its session stopped answering (crashed, killed, cut off), or a
    /// restarted embedded server found it marked online from before.
    NodeLost,
    /// A device behind a gateway: the gateway's own connection ended.
    GatewayDisconnected,
    /// Its credentials reached their expiry while it was connected.
    CredentialsExpired,
}

/// `GET /api/v1/devices/{id}/presence`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Presence {
    pub online: bool,
    /// Last message or ping (ms).
    pub last_activity: Option<i64>,
    pub last_connect: Option<i64>,
    pub last_disconnect: Option<i64>,
    pub last_disconnect_reason: Option<DisconnectReason>,
    /// Messages accepted and rejected since the device was created.
    pub messages: u64,
    pub errors: u64,
}

/// One entry of a device's timeline, for support people ("why did my device drop?").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TimelineEvent {
    pub ts: i64,
    /// `connected`, `disconnected`, `connect_refused`, `message_rejected`, …
    pub kind: String,
    /// A sentence a person can read.
    pub detail: String,
    /// Structured facts (reason code, topic, source address, client id, …).
    #[serde(default)]
    pub data: serde_json::Value,
}

/// An event on the live stream `GET /api/v1/devices/{id}/live` (server-sent events; the SSE
/// `event:` field carries `telemetry` or `presence`, the `data:` field this JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LiveEvent {
    Telemetry {
        ts: i64,
        values: serde_json::Map<String, serde_json::Value>,
    },
    Presence(Presence),
}

/// `GET /api/v1/connection-info`: where devices connect, for the console's instructions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConnectionInfo {
    /// The MQTT host devices should use; `None` means "the host this console was loaded from".
    pub mqtt_host: Option<String>,
    pub mqtt_port: u16,
}

// ---------------------------------------------------------------------------------------------
// Device management: profiles, groups, attributes, commands, import

/// How devices of a profile may provision themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ProvisionStrategy {
    /// No provisioning.
    #[default]
    Disabled,
    /// A device with the key and secret may create itself.
    AllowCreate,
    /// Only devices created beforehand (by name) may fetch their credentials.
    PreProvisioned,
}

/// Rate-limit overrides for a profile's devices (`count:seconds[,count:seconds…]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ProfileLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_messages: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_data_points: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeviceProfile {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub is_default: bool,
    pub provision_strategy: ProvisionStrategy,
    /// Public part of the provisioning pair; the secret is shown once when generated.
    pub provision_key: Option<String>,
    /// A device silent for longer is marked offline with reason "inactive".
    pub inactivity_timeout_secs: Option<u64>,
    pub limits: ProfileLimits,
    pub device_count: u64,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateProfile {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provision_strategy: Option<ProvisionStrategy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inactivity_timeout_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<ProfileLimits>,
}

/// `PATCH /api/v1/profiles/{id}`: absent fields stay; `null` clears the nullable ones.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateProfile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "double_option"
    )]
    pub description: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provision_strategy: Option<ProvisionStrategy>,
    /// Issues a new provisioning key and secret (the old pair stops working).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub regenerate_provision_secret: bool,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "double_option"
    )]
    pub inactivity_timeout_secs: Option<Option<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<ProfileLimits>,
    /// Makes this the tenant's default profile.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub make_default: bool,
}

/// A profile just saved; `provision_secret` is set only when a new secret was generated, and is
/// shown this once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SavedProfile {
    pub profile: DeviceProfile,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provision_secret: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeviceGroup {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub device_count: u64,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateGroup {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateGroup {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "double_option"
    )]
    pub description: Option<Option<String>>,
}

/// `POST /api/v1/groups/{id}/devices` and `…/devices/remove`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct GroupDevices {
    pub device_ids: Vec<Uuid>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AttributeScope {
    /// Reported by the device.
    Client,
    /// Set by people or integrations, pushed to the device.
    Shared,
    /// Platform only; the device never sees it.
    Server,
}

impl AttributeScope {
    pub fn as_str(self) -> &'static str {
        match self {
            AttributeScope::Client => "client",
            AttributeScope::Shared => "shared",
            AttributeScope::Server => "server",
        }
    }

    pub fn parse(s: &str) -> Option<AttributeScope> {
        match s {
            "client" => Some(AttributeScope::Client),
            "shared" => Some(AttributeScope::Shared),
            "server" => Some(AttributeScope::Server),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Attribute {
    pub scope: AttributeScope,
    pub key: String,
    pub value: serde_json::Value,
    /// Counts the changes of this key, from 1.
    pub version: u64,
    /// Milliseconds since the epoch.
    pub updated_at: i64,
}

/// Query of `GET /api/v1/devices/{id}/attributes` and of the attribute deletes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
#[serde(deny_unknown_fields)]
pub struct AttributeQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<AttributeScope>,
    /// Comma-separated keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<String>,
}

/// How many devices a bulk action changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BulkResult {
    pub devices: u64,
}

/// The life of a command (RPC), as ThingsBoard names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RpcStatus {
    /// Waiting for the device (offline, or not subscribed yet).
    Queued,
    /// Published to the device.
    Sent,
    /// The device acknowledged it (the last state of a one-way command).
    Delivered,
    /// The device answered (two-way).
    Successful,
    /// No answer in time, retries used up.
    Timeout,
    /// Not delivered before it expired.
    Expired,
    /// Could not be delivered, or the device answered with an error.
    Failed,
}

impl RpcStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RpcStatus::Queued => "QUEUED",
            RpcStatus::Sent => "SENT",
            RpcStatus::Delivered => "DELIVERED",
            RpcStatus::Successful => "SUCCESSFUL",
            RpcStatus::Timeout => "TIMEOUT",
            RpcStatus::Expired => "EXPIRED",
            RpcStatus::Failed => "FAILED",
        }
    }

    pub fn parse(s: &str) -> Option<RpcStatus> {
        [
            RpcStatus::Queued,
            RpcStatus::Sent,
            RpcStatus::Delivered,
            RpcStatus::Successful,
            RpcStatus::Timeout,
            RpcStatus::Expired,
            RpcStatus::Failed,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }

    /// Whether nothing more will happen to the command.
    pub fn is_final(self) -> bool {
        !matches!(self, RpcStatus::Queued | RpcStatus::Sent)
    }
}

/// `POST /api/v1/devices/{id}/rpc`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SendRpc {
    pub method: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<serde_json::Value>,
    /// One-way: no answer expected; done once the device acknowledges it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub oneway: bool,
    /// Persistent: queued while the device is offline, delivered when it connects; the call
    /// answers at once (202) with the queued command.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub persistent: bool,
    /// How long to wait for the device's answer (default 10 s, at most 10 min).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Persistent commands: how long they may wait for the device (default 1 day, at most 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_ms: Option<u64>,
    /// Persistent commands: how many times to resend after a timeout (default 0, at most 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RpcCommand {
    pub id: Uuid,
    pub device_id: Uuid,
    /// The id on the device's topic `v1/devices/me/rpc/request/{request_id}`.
    pub request_id: u32,
    pub method: String,
    pub params: serde_json::Value,
    pub oneway: bool,
    pub persistent: bool,
    pub status: RpcStatus,
    pub timeout_ms: u64,
    pub expires_at: i64,
    pub retries_left: u32,
    pub created_by: String,
    pub created_at: i64,
    pub sent_at: Option<i64>,
    pub delivered_at: Option<i64>,
    pub completed_at: Option<i64>,
    /// The device's answer (two-way).
    pub response: Option<serde_json::Value>,
    pub error: Option<String>,
}

/// What one CSV row would do, or did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ImportOutcome {
    Create,
    Update,
    Unchanged,
    Error,
}

/// One row of an import report. `line` counts the CSV's lines from 1 (the header is line 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImportRowReport {
    pub line: u64,
    pub name: String,
    pub outcome: ImportOutcome,
    /// For errors: the column at fault, when one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImportCounts {
    pub total: u64,
    pub processed: u64,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub failed: u64,
}

/// `POST /api/v1/devices/import?dry_run=true`: what the file would do; nothing is changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImportReport {
    pub counts: ImportCounts,
    pub rows: Vec<ImportRowReport>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ImportStatus {
    Running,
    Finished,
    Failed,
}

/// An import run (`POST /api/v1/devices/import` answers it at once; it runs in the background).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImportJob {
    pub id: Uuid,
    pub status: ImportStatus,
    pub counts: ImportCounts,
    /// Rows that were not imported, with the reason.
    pub errors: Vec<ImportRowReport>,
    /// Whether generated credentials are waiting at `…/credentials.csv` (downloadable once).
    pub credentials_available: bool,
    /// Why a failed job stopped (e.g. its server stopped while it ran).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub created_by: String,
    pub created_at: i64,
    pub finished_at: Option<i64>,
}

/// Query of `POST /api/v1/devices/import`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
#[serde(deny_unknown_fields)]
pub struct ImportQuery {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

/// `POST /api/v1/devices/bulk`: one action on a selection of devices or on a whole group.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BulkAction {
    /// The devices, or…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_ids: Option<Vec<Uuid>>,
    /// …every device of this group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<Uuid>,
    pub action: BulkOperation,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum BulkOperation {
    SetAttributes {
        scope: AttributeScope,
        values: serde_json::Map<String, serde_json::Value>,
    },
    AddToGroup {
        group_id: Uuid,
    },
    Disable {
        reason: String,
    },
    Enable,
    Delete,
}

// ---------------------------------------------------------------------------------------------
// Audit log

/// Who made a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// A person, signed in.
    User,
    /// An integration, with an API key (`actor_user_id` is the key's creator).
    ApiKey,
    /// Stead itself (a worker, start-up), on nobody's request.
    System,
}

/// One entry of `GET /api/v1/audit`: a change, who made it, from where, and what changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    pub id: Uuid,
    /// Position in the tenant's hash chain, from 1.
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor_kind: ActorKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_user_id: Option<Uuid>,
    /// The actor's e-mail when they acted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_email: Option<String>,
    /// The API key the change was made with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_key_id: Option<Uuid>,
    /// The address the request came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
    /// `device.update`, `user.create`, …
    pub action: String,
    /// `device`, `user`, `profile`, `group`, `tenant`, …
    pub target_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_id: Option<Uuid>,
    /// What changed: for updates `{"changes": {"field": {"before": …, "after": …}}}`, otherwise
    /// what was created or done. Never a secret.
    pub detail: serde_json::Value,
    /// This entry's hash, and the hash of the entry before it in the chain.
    pub hash: String,
    pub prev_hash: String,
}

/// Query of `GET /api/v1/audit` and `GET /api/v1/audit/export.csv`; newest first.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only entries by this user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<Uuid>,
    /// Only entries about this object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Uuid>,
    /// Only entries about this kind of object (`device`, `user`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_type: Option<String>,
    /// An action (`device.update`), or a prefix of one ending in a dot (`device.`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// From this time (inclusive, RFC 3339)…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<DateTime<Utc>>,
    /// …to this time (exclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(minimum = 1))]
    pub page: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 200))]
    pub per_page: Option<u64>,
}
