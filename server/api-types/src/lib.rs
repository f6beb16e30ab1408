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

/// Every error the API answers, whatever the status: a stable snake_case `code` for programs and
/// a human `detail`. `field` names the offending request field when there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiErrorBody {
    pub code: String,
    pub detail: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// A page of a listing. `page` counts from 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: u64,
    pub page: u64,
    pub per_page: u64,
}

// ---------------------------------------------------------------------------------------------
// People and sessions

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    PlatformAdmin,
    TenantAdmin,
    Operator,
    Viewer,
}

impl Role {
    pub const ALL: [Role; 4] = [
        Role::PlatformAdmin,
        Role::TenantAdmin,
        Role::Operator,
        Role::Viewer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::PlatformAdmin => "platform_admin",
            Role::TenantAdmin => "tenant_admin",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
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
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    pub token_type: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantSummary {
    pub id: Uuid,
    pub name: String,
}

/// `GET /api/v1/me`: who the caller is and what they may do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Me {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub tenant: Option<TenantSummary>,
    /// Permission names such as `devices.write`, for the console to hide what would be refused.
    pub permissions: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// Tenants (platform admin)

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TenantStatus {
    Active,
    Suspended,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tenant {
    pub id: Uuid,
    pub name: String,
    pub status: TenantStatus,
    pub created_at: DateTime<Utc>,
    /// Days telemetry is kept; `None` means the platform default.
    #[serde(default)]
    pub telemetry_retention_days: Option<u32>,
    /// Rate-limit overrides; absent ones are the platform defaults.
    #[serde(default)]
    pub limits: TenantLimits,
}

/// Per-tenant rate limits as rate strings `count:seconds[,count:seconds…]` (e.g. `200:1,6000:60`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
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
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    pub name: String,
    pub admin_email: String,
    pub admin_password: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
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
    /// Replaces all overrides at once (`{}` returns to the defaults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<TenantLimits>,
}

// ---------------------------------------------------------------------------------------------
// Users (tenant admin)

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    pub email: String,
    pub password: String,
    pub role: Role,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
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
// Devices

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Device {
    pub id: Uuid,
    pub name: String,
    pub label: Option<String>,
    #[serde(rename = "type")]
    pub device_type: Option<String>,
    pub metadata: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateDevice {
    pub name: String,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default, rename = "type")]
    pub device_type: Option<String>,
    #[serde(default)]
    pub metadata: Option<serde_json::Value>,
}

/// `PATCH /api/v1/devices/{id}`: absent fields stay as they are; `null` clears `label` and `type`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
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
}

/// A device just created: its access token is shown this once and stored only as a hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreatedDevice {
    pub device: Device,
    pub access_token: String,
}

/// `POST /api/v1/devices/{id}/credentials/rotate`: the new token, shown this once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceCredentials {
    pub access_token: String,
}

/// Query of `GET /api/v1/devices`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceListQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_page: Option<u64>,
    /// Case-insensitive substring of the name or the label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<String>,
    /// `name`, `label`, `created_at` or `updated_at`; a leading `-` sorts descending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort: Option<String>,
}

/// Query of the other listings (`/users`, `/tenants`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_page: Option<u64>,
}

// ---------------------------------------------------------------------------------------------
// Health

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
}

// ---------------------------------------------------------------------------------------------
// Telemetry, presence and the device timeline

/// One stored value with its time (milliseconds since the Unix epoch).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TsValue {
    pub ts: i64,
    /// Integer, float, bool, string or a JSON object, as the device sent it.
    pub value: serde_json::Value,
}

/// `GET /api/v1/devices/{id}/telemetry/latest`: each key's latest value.
pub type LatestTelemetry = std::collections::BTreeMap<String, TsValue>;

/// `GET /api/v1/devices/{id}/telemetry?keys=a,b&from=&to=&limit=&order=`: raw points per key,
/// newest first unless `order=asc`. When more points exist, `next_cursor` is the bound for the
/// next page: pass it as `to` (descending) or `from` (ascending).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TelemetrySeries {
    pub series: std::collections::BTreeMap<String, Vec<TsValue>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<i64>,
}

/// One bucket of an aggregated series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
pub struct AggregateSeries {
    pub interval_ms: i64,
    pub agg: String,
    pub series: std::collections::BTreeMap<String, Vec<AggregatePoint>>,
}

/// Why a device's session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
}

/// `GET /api/v1/devices/{id}/presence`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
pub struct ConnectionInfo {
    /// The MQTT host devices should use; `None` means "the host this console was loaded from".
    pub mqtt_host: Option<String>,
    pub mqtt_port: u16,
}
