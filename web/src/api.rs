//! The REST endpoints the console calls, typed with `stead-api-types`.

use stead_api_types::{
    AggregateSeries, ApiKey, Attribute, AttributeScope, AuditEntry, AuditQuery, BulkAction,
    BulkResult, ChangePassword, ConfirmPassword, ConfirmPasswordReset, ConnectionInfo,
    CreateApiKey, CreateDevice, CreateGroup, CreateInvitation, CreateProfile, CreateRole,
    CreateTenant, CreateUser, CreatedApiKey, CreatedDevice, CustomRole, Device, DeviceCredentials,
    DeviceGroup, DeviceListQuery, DeviceProfile, DisableDevice, EnableTwoFactor, GroupDevices,
    ImportJob, ImportReport, Invitation, InvitationPreview, InvitationToken, LatestTelemetry, Page,
    Presence, RecoveryCodes, RequestPasswordReset, RoleBinding, RpcCommand, SavedProfile, SendRpc,
    SessionInfo, SetCredentials, SetRoleBindings, Tenant, TenantSecurity, TimelineEvent,
    TwoFactorSetup, UpdateDevice, UpdateGroup, UpdateProfile, UpdateRole, UpdateTenant, UpdateUser,
    Usage, User,
};
use stead_api_types::{
    Alarm, AlarmAction, AlarmBulk, AlarmBulkResult, AlarmCounts, AlarmDetail, AlarmPage,
    AlarmPreview, AlarmPreviewRequest, AlarmQuery, AlarmRule, AlarmRuleSpec, AlarmStatusFilter,
    CreateSilence, FleetHealth, NotificationPage, NotificationRule, NotificationRuleSpec, Silence,
};
use stead_api_types::{
    AssignPackage, CreateSigningKey, DeviceOtaTarget, Package, PackageKind, SigningKey,
    UploadPackage, VersionCount,
};
use stead_api_types::{
    Campaign, CampaignAction, CampaignDevice, CampaignProgress, CampaignSpec, CampaignStatus,
    CampaignTarget, OtaState, TargetCount,
};
use stead_api_types::{
    CreateWebhook, CreatedWebhook, DeliveryStatus, EventType, NatsSink, ReplayWebhook, Replayed,
    RotateWebhookSecret, UpdateWebhook, WebhookDelivery, WebhookDeliveryDetail,
    WebhookDeliveryPage, WebhookEndpoint, WebhookSecret,
};
use uuid::Uuid;

use crate::session::{ApiError, Session, post_public, post_public_unit};

/// Deliveries on one page of an endpoint's log.
pub const DELIVERIES_PER_PAGE: u64 = 25;

pub const PER_PAGE: u64 = 20;
/// The most keys one telemetry query may name.
pub const MAX_KEYS: usize = 50;

fn page_query(page: u64) -> Vec<(&'static str, String)> {
    vec![
        ("page", page.to_string()),
        ("per_page", PER_PAGE.to_string()),
    ]
}

/// A page of devices; `q.page` counts from 1, `q.per_page` is always `PER_PAGE`.
pub async fn list_devices(s: Session, q: &DeviceListQuery) -> Result<Page<Device>, ApiError> {
    fn text(v: &Option<String>) -> Option<&str> {
        v.as_deref().map(str::trim).filter(|v| !v.is_empty())
    }
    let mut query = page_query(q.page.unwrap_or(1));
    if let Some(search) = text(&q.search) {
        query.push(("search", search.to_owned()));
    }
    if let Some(sort) = text(&q.sort) {
        query.push(("sort", sort.to_owned()));
    }
    if let Some(label) = text(&q.label) {
        query.push(("label", label.to_owned()));
    }
    if let Some(profile) = q.profile {
        query.push(("profile", profile.to_string()));
    }
    if let Some(group) = q.group {
        query.push(("group", group.to_string()));
    }
    if let Some(online) = q.online {
        query.push(("online", online.to_string()));
    }
    if let Some(severity) = q.alarm_severity {
        query.push(("alarm_severity", severity.as_str().to_owned()));
    }
    if let Some(gateway) = q.gateway {
        query.push(("gateway", gateway.to_string()));
    }
    s.get_query("/api/v1/devices", &query).await
}

/// One action on many devices (a selection or a whole group).
pub async fn bulk(s: Session, body: &BulkAction) -> Result<BulkResult, ApiError> {
    s.post("/api/v1/devices/bulk", body).await
}

pub async fn create_device(s: Session, body: &CreateDevice) -> Result<CreatedDevice, ApiError> {
    s.post("/api/v1/devices", body).await
}

pub async fn get_device(s: Session, id: Uuid) -> Result<Device, ApiError> {
    s.get(&format!("/api/v1/devices/{id}")).await
}

pub async fn update_device(s: Session, id: Uuid, body: &UpdateDevice) -> Result<Device, ApiError> {
    s.patch(&format!("/api/v1/devices/{id}"), body).await
}

pub async fn delete_device(s: Session, id: Uuid) -> Result<(), ApiError> {
    s.delete(&format!("/api/v1/devices/{id}")).await
}

pub async fn rotate_device_token(s: Session, id: Uuid) -> Result<DeviceCredentials, ApiError> {
    s.post(
        &format!("/api/v1/devices/{id}/credentials/rotate"),
        &serde_json::json!({}),
    )
    .await
}

pub async fn list_users(s: Session, page: u64) -> Result<Page<User>, ApiError> {
    s.get_query("/api/v1/users", &page_query(page)).await
}

pub async fn create_user(s: Session, body: &CreateUser) -> Result<User, ApiError> {
    s.post("/api/v1/users", body).await
}

pub async fn update_user(s: Session, id: Uuid, body: &UpdateUser) -> Result<User, ApiError> {
    s.patch(&format!("/api/v1/users/{id}"), body).await
}

pub async fn list_tenants(s: Session, page: u64) -> Result<Page<Tenant>, ApiError> {
    s.get_query("/api/v1/tenants", &page_query(page)).await
}

pub async fn create_tenant(s: Session, body: &CreateTenant) -> Result<Tenant, ApiError> {
    s.post("/api/v1/tenants", body).await
}

pub async fn update_tenant(s: Session, id: Uuid, body: &UpdateTenant) -> Result<Tenant, ApiError> {
    s.patch(&format!("/api/v1/tenants/{id}"), body).await
}

// ---------------------------------------------------------------------------------------------
// A device's life: telemetry, presence, timeline

pub async fn latest_telemetry(s: Session, id: Uuid) -> Result<LatestTelemetry, ApiError> {
    s.get(&format!("/api/v1/devices/{id}/telemetry/latest"))
        .await
}

/// Buckets of `interval_ms` between `from` and `to` (ms), aggregated by `agg` (avg, min, max,
/// sum or count).
pub async fn aggregate_telemetry(
    s: Session,
    id: Uuid,
    keys: &[String],
    (from, to): (i64, i64),
    interval_ms: i64,
    agg: &str,
) -> Result<AggregateSeries, ApiError> {
    let query = vec![
        ("keys", keys.join(",")),
        ("from", from.to_string()),
        ("to", to.to_string()),
        ("interval", interval_ms.to_string()),
        ("agg", agg.to_owned()),
    ];
    s.get_query(&format!("/api/v1/devices/{id}/telemetry/aggregate"), &query)
        .await
}

/// Every key's raw points between `from` and `to` as CSV.
pub async fn telemetry_csv(
    s: Session,
    id: Uuid,
    from: i64,
    to: i64,
) -> Result<web_sys::Blob, ApiError> {
    let query = vec![("from", from.to_string()), ("to", to.to_string())];
    s.get_blob(&format!("/api/v1/devices/{id}/telemetry.csv"), &query)
        .await
}

pub async fn presence(s: Session, id: Uuid) -> Result<Presence, ApiError> {
    s.get(&format!("/api/v1/devices/{id}/presence")).await
}

/// The newest `limit` events of the device's timeline, newest first.
pub async fn timeline(s: Session, id: Uuid, limit: u32) -> Result<Vec<TimelineEvent>, ApiError> {
    s.get_query(
        &format!("/api/v1/devices/{id}/timeline"),
        &[("limit", limit.to_string())],
    )
    .await
}

pub async fn connection_info(s: Session) -> Result<ConnectionInfo, ApiError> {
    s.get("/api/v1/connection-info").await
}

// ---------------------------------------------------------------------------------------------
// Fleet management: profiles, groups, attributes, commands, credentials, import

pub async fn list_profiles(s: Session) -> Result<Vec<DeviceProfile>, ApiError> {
    s.get("/api/v1/profiles").await
}

pub async fn create_profile(s: Session, body: &CreateProfile) -> Result<SavedProfile, ApiError> {
    s.post("/api/v1/profiles", body).await
}

pub async fn update_profile(
    s: Session,
    id: Uuid,
    body: &UpdateProfile,
) -> Result<SavedProfile, ApiError> {
    s.patch(&format!("/api/v1/profiles/{id}"), body).await
}

pub async fn delete_profile(s: Session, id: Uuid) -> Result<(), ApiError> {
    s.delete(&format!("/api/v1/profiles/{id}")).await
}

pub async fn list_groups(s: Session) -> Result<Vec<DeviceGroup>, ApiError> {
    s.get("/api/v1/groups").await
}

pub async fn create_group(s: Session, body: &CreateGroup) -> Result<DeviceGroup, ApiError> {
    s.post("/api/v1/groups", body).await
}

pub async fn update_group(
    s: Session,
    id: Uuid,
    body: &UpdateGroup,
) -> Result<DeviceGroup, ApiError> {
    s.patch(&format!("/api/v1/groups/{id}"), body).await
}

pub async fn delete_group(s: Session, id: Uuid) -> Result<(), ApiError> {
    s.delete(&format!("/api/v1/groups/{id}")).await
}

/// Puts devices into the group (`join`) or takes them out.
pub async fn group_membership(
    s: Session,
    group: Uuid,
    devices: Vec<Uuid>,
    join: bool,
) -> Result<DeviceGroup, ApiError> {
    let body = GroupDevices {
        device_ids: devices,
    };
    let action = if join { "devices" } else { "devices/remove" };
    s.post(&format!("/api/v1/groups/{group}/{action}"), &body)
        .await
}

pub async fn device_groups(s: Session, id: Uuid) -> Result<Vec<DeviceGroup>, ApiError> {
    s.get(&format!("/api/v1/devices/{id}/groups")).await
}

/// Sets attributes of `scope` on every device of the group.
pub async fn set_group_attributes(
    s: Session,
    group: Uuid,
    scope: AttributeScope,
    values: &serde_json::Map<String, serde_json::Value>,
) -> Result<BulkResult, ApiError> {
    s.post(
        &format!("/api/v1/groups/{group}/attributes/{}", scope.as_str()),
        values,
    )
    .await
}

/// Every attribute of the device, all scopes.
pub async fn attributes(s: Session, id: Uuid) -> Result<Vec<Attribute>, ApiError> {
    s.get(&format!("/api/v1/devices/{id}/attributes")).await
}

pub async fn set_attributes(
    s: Session,
    id: Uuid,
    scope: AttributeScope,
    values: &serde_json::Map<String, serde_json::Value>,
) -> Result<Vec<Attribute>, ApiError> {
    s.post(
        &format!("/api/v1/devices/{id}/attributes/{}", scope.as_str()),
        values,
    )
    .await
}

pub async fn delete_attribute(
    s: Session,
    id: Uuid,
    scope: AttributeScope,
    key: &str,
) -> Result<(), ApiError> {
    s.delete_query(
        &format!("/api/v1/devices/{id}/attributes/{}", scope.as_str()),
        &[("keys", key.to_owned())],
    )
    .await
}

/// Sends a command and waits for its end (two-way, one-way) or its queueing (persistent).
pub async fn send_rpc(s: Session, id: Uuid, body: &SendRpc) -> Result<RpcCommand, ApiError> {
    s.post(&format!("/api/v1/devices/{id}/rpc"), body).await
}

/// The device's commands, newest first.
pub async fn rpc_history(s: Session, id: Uuid, page: u64) -> Result<Page<RpcCommand>, ApiError> {
    s.get_query(&format!("/api/v1/devices/{id}/rpc"), &page_query(page))
        .await
}

/// Devices whose credentials expire within `days` (or have expired).
pub async fn expiring_credentials(s: Session, days: u32) -> Result<Vec<Device>, ApiError> {
    s.get_query(
        "/api/v1/devices/credentials/expiring",
        &[("within_days", days.to_string())],
    )
    .await
}

pub async fn set_credentials(
    s: Session,
    id: Uuid,
    body: &SetCredentials,
) -> Result<DeviceCredentials, ApiError> {
    s.put(&format!("/api/v1/devices/{id}/credentials"), body)
        .await
}

pub async fn revoke_credentials(s: Session, id: Uuid) -> Result<(), ApiError> {
    s.post_unit(
        &format!("/api/v1/devices/{id}/credentials/revoke"),
        &serde_json::json!({}),
    )
    .await
}

pub async fn disable_device(s: Session, id: Uuid, reason: String) -> Result<Device, ApiError> {
    s.post(
        &format!("/api/v1/devices/{id}/disable"),
        &DisableDevice { reason },
    )
    .await
}

pub async fn enable_device(s: Session, id: Uuid) -> Result<Device, ApiError> {
    s.post(
        &format!("/api/v1/devices/{id}/enable"),
        &serde_json::json!({}),
    )
    .await
}

/// What importing `csv` would do (nothing changes), or, with `dry_run` false, the started job.
pub async fn check_import(s: Session, csv: &str) -> Result<ImportReport, ApiError> {
    s.post_text(
        "/api/v1/devices/import",
        &[("dry_run", "true".to_owned())],
        csv,
        "text/csv",
    )
    .await
}

pub async fn start_import(s: Session, csv: &str) -> Result<ImportJob, ApiError> {
    s.post_text("/api/v1/devices/import", &[], csv, "text/csv")
        .await
}

pub async fn import_job(s: Session, id: Uuid) -> Result<ImportJob, ApiError> {
    s.get(&format!("/api/v1/imports/{id}")).await
}

/// The credentials the import generated, as CSV; the server hands them out once.
pub async fn import_credentials(s: Session, id: Uuid) -> Result<web_sys::Blob, ApiError> {
    s.get_blob(&format!("/api/v1/imports/{id}/credentials.csv"), &[])
        .await
}

fn audit_query(q: &AuditQuery) -> Vec<(&'static str, String)> {
    let mut query = page_query(q.page.unwrap_or(1));
    if let Some(action) = q.action.as_deref().filter(|a| !a.is_empty()) {
        query.push(("action", action.to_owned()));
    }
    if let Some(from) = q.from {
        query.push(("from", from.to_rfc3339()));
    }
    if let Some(target) = q.target {
        query.push(("target", target.to_string()));
    }
    query
}

/// A page of the tenant's audit log, newest first.
pub async fn list_audit(s: Session, q: &AuditQuery) -> Result<Page<AuditEntry>, ApiError> {
    s.get_query("/api/v1/audit", &audit_query(q)).await
}

/// The audit log with the same filters, as CSV (every page).
pub async fn audit_csv(s: Session, q: &AuditQuery) -> Result<web_sys::Blob, ApiError> {
    let query: Vec<_> = audit_query(q)
        .into_iter()
        .filter(|(k, _)| *k != "page" && *k != "per_page")
        .collect();
    s.get_blob("/api/v1/audit/export.csv", &query).await
}

pub async fn change_password(s: Session, body: &ChangePassword) -> Result<(), ApiError> {
    s.post_unit("/api/v1/me/password", body).await
}

pub async fn my_sessions(s: Session) -> Result<Vec<SessionInfo>, ApiError> {
    s.get("/api/v1/me/sessions").await
}

pub async fn end_session(s: Session, id: Uuid) -> Result<(), ApiError> {
    s.delete(&format!("/api/v1/me/sessions/{id}")).await
}

// Custom roles, bindings and API keys.

pub async fn list_roles(s: Session) -> Result<Vec<CustomRole>, ApiError> {
    s.get("/api/v1/roles").await
}

pub async fn create_role(s: Session, body: &CreateRole) -> Result<CustomRole, ApiError> {
    s.post("/api/v1/roles", body).await
}

pub async fn update_role(s: Session, id: Uuid, body: &UpdateRole) -> Result<CustomRole, ApiError> {
    s.patch(&format!("/api/v1/roles/{id}"), body).await
}

pub async fn delete_role(s: Session, id: Uuid) -> Result<(), ApiError> {
    s.delete(&format!("/api/v1/roles/{id}")).await
}

pub async fn user_bindings(s: Session, user: Uuid) -> Result<Vec<RoleBinding>, ApiError> {
    s.get(&format!("/api/v1/users/{user}/bindings")).await
}

pub async fn set_user_bindings(
    s: Session,
    user: Uuid,
    body: &SetRoleBindings,
) -> Result<Vec<RoleBinding>, ApiError> {
    s.put(&format!("/api/v1/users/{user}/bindings"), body).await
}

pub async fn list_api_keys(s: Session) -> Result<Vec<ApiKey>, ApiError> {
    s.get("/api/v1/api-keys").await
}

pub async fn create_api_key(s: Session, body: &CreateApiKey) -> Result<CreatedApiKey, ApiError> {
    s.post("/api/v1/api-keys", body).await
}

pub async fn revoke_api_key(s: Session, id: Uuid) -> Result<(), ApiError> {
    s.delete(&format!("/api/v1/api-keys/{id}")).await
}

pub async fn usage(s: Session) -> Result<Usage, ApiError> {
    s.get("/api/v1/usage").await
}

pub async fn all_usage(s: Session) -> Result<Vec<Usage>, ApiError> {
    s.get("/api/v1/tenants/usage").await
}

// Two-factor sign-in, the tenant's sign-in rules, password reset and invitations.

/// A new secret for the person's authenticator app, in force once `enable_two_factor` proves it.
pub async fn two_factor_setup(
    s: Session,
    body: &ConfirmPassword,
) -> Result<TwoFactorSetup, ApiError> {
    s.post("/api/v1/me/two-factor/setup", body).await
}

pub async fn enable_two_factor(
    s: Session,
    body: &EnableTwoFactor,
) -> Result<RecoveryCodes, ApiError> {
    s.post("/api/v1/me/two-factor/enable", body).await
}

pub async fn disable_two_factor(s: Session, body: &ConfirmPassword) -> Result<(), ApiError> {
    s.post_unit("/api/v1/me/two-factor/disable", body).await
}

/// A new set of recovery codes; the old ones stop working.
pub async fn new_recovery_codes(
    s: Session,
    body: &ConfirmPassword,
) -> Result<RecoveryCodes, ApiError> {
    s.post("/api/v1/me/two-factor/recovery-codes", body).await
}

pub async fn security(s: Session) -> Result<TenantSecurity, ApiError> {
    s.get("/api/v1/security").await
}

pub async fn set_security(s: Session, body: &TenantSecurity) -> Result<TenantSecurity, ApiError> {
    s.patch("/api/v1/security", body).await
}

/// Turns off a person's second factor (a lost phone): they sign in with their password alone.
pub async fn reset_two_factor(s: Session, user: Uuid) -> Result<(), ApiError> {
    s.delete(&format!("/api/v1/users/{user}/two-factor")).await
}

/// Mails a reset link, if the address has an account (the answer does not say).
pub async fn request_password_reset(body: &RequestPasswordReset) -> Result<(), ApiError> {
    post_public_unit("/api/v1/auth/password-reset", body).await
}

pub async fn confirm_password_reset(body: &ConfirmPasswordReset) -> Result<(), ApiError> {
    post_public_unit("/api/v1/auth/password-reset/confirm", body).await
}

/// What an invitation link is for, before the invitee accepts it.
pub async fn preview_invitation(body: &InvitationToken) -> Result<InvitationPreview, ApiError> {
    post_public("/api/v1/auth/invitation", body).await
}

pub async fn list_invitations(s: Session, page: u64) -> Result<Page<Invitation>, ApiError> {
    s.get_query("/api/v1/invitations", &page_query(page)).await
}

pub async fn create_invitation(
    s: Session,
    body: &CreateInvitation,
) -> Result<Invitation, ApiError> {
    s.post("/api/v1/invitations", body).await
}

pub async fn revoke_invitation(s: Session, id: Uuid) -> Result<(), ApiError> {
    s.delete(&format!("/api/v1/invitations/{id}")).await
}

/// A new link for the invitation (the old one stops working), mailed again.
pub async fn resend_invitation(s: Session, id: Uuid) -> Result<Invitation, ApiError> {
    s.post(
        &format!("/api/v1/invitations/{id}/resend"),
        &serde_json::json!({}),
    )
    .await
}

// ---------------------------------------------------------------------------------------------
// Integrations: webhook endpoints with their delivery log, and the NATS JetStream sink

/// One entry of the event catalogue (`GET /events/types`).
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
pub struct EventTypeInfo {
    #[serde(rename = "type")]
    pub event_type: EventType,
    pub label: String,
}

pub async fn event_types(s: Session) -> Result<Vec<EventTypeInfo>, ApiError> {
    s.get("/api/v1/events/types").await
}

pub async fn list_webhooks(s: Session) -> Result<Vec<WebhookEndpoint>, ApiError> {
    s.get("/api/v1/webhooks").await
}

pub async fn get_webhook(s: Session, id: Uuid) -> Result<WebhookEndpoint, ApiError> {
    s.get(&format!("/api/v1/webhooks/{id}")).await
}

/// The endpoint and its signing secret, which the console shows once.
pub async fn create_webhook(s: Session, body: &CreateWebhook) -> Result<CreatedWebhook, ApiError> {
    s.post("/api/v1/webhooks", body).await
}

pub async fn update_webhook(
    s: Session,
    id: Uuid,
    body: &UpdateWebhook,
) -> Result<WebhookEndpoint, ApiError> {
    s.patch(&format!("/api/v1/webhooks/{id}"), body).await
}

pub async fn delete_webhook(s: Session, id: Uuid) -> Result<(), ApiError> {
    s.delete(&format!("/api/v1/webhooks/{id}")).await
}

pub async fn webhook_secret(s: Session, id: Uuid) -> Result<WebhookSecret, ApiError> {
    s.get(&format!("/api/v1/webhooks/{id}/secret")).await
}

/// A new secret; the old one keeps signing beside it for `overlap_secs`.
pub async fn rotate_webhook_secret(
    s: Session,
    id: Uuid,
    overlap_secs: u64,
) -> Result<WebhookSecret, ApiError> {
    let body = RotateWebhookSecret {
        overlap_secs: Some(overlap_secs),
        secret: None,
    };
    s.post(&format!("/api/v1/webhooks/{id}/rotate-secret"), &body)
        .await
}

/// Queues a `webhook.test` event for this endpoint only.
pub async fn test_webhook(s: Session, id: Uuid) -> Result<WebhookDelivery, ApiError> {
    s.post(
        &format!("/api/v1/webhooks/{id}/test"),
        &serde_json::json!({}),
    )
    .await
}

/// Every event since `since` (that the endpoint's filter takes), to the endpoint again.
pub async fn replay_webhook_since(
    s: Session,
    id: Uuid,
    since: chrono::DateTime<chrono::Utc>,
) -> Result<Replayed, ApiError> {
    s.post(
        &format!("/api/v1/webhooks/{id}/replay"),
        &ReplayWebhook { since },
    )
    .await
}

/// A page of the endpoint's deliveries, newest first, of one status or all.
pub async fn webhook_deliveries(
    s: Session,
    id: Uuid,
    status: Option<DeliveryStatus>,
    page: u64,
) -> Result<WebhookDeliveryPage, ApiError> {
    let mut query = vec![
        ("page", page.to_string()),
        ("per_page", DELIVERIES_PER_PAGE.to_string()),
    ];
    if let Some(status) = status {
        query.push(("status", status.as_str().to_owned()));
    }
    s.get_query(&format!("/api/v1/webhooks/{id}/deliveries"), &query)
        .await
}

/// The delivery with the request it sends and every attempt.
pub async fn webhook_delivery(
    s: Session,
    id: Uuid,
    delivery: Uuid,
) -> Result<WebhookDeliveryDetail, ApiError> {
    s.get(&format!("/api/v1/webhooks/{id}/deliveries/{delivery}"))
        .await
}

/// The delivery's event again, as a new delivery with the same `webhook-id`.
pub async fn replay_delivery(
    s: Session,
    id: Uuid,
    delivery: Uuid,
) -> Result<WebhookDelivery, ApiError> {
    s.post(
        &format!("/api/v1/webhooks/{id}/deliveries/{delivery}/replay"),
        &serde_json::json!({}),
    )
    .await
}

/// The tenant's NATS JetStream sink, as the platform admin set it.
pub async fn nats_sink(s: Session) -> Result<NatsSink, ApiError> {
    s.get("/api/v1/integrations/nats").await
}

// ---------------------------------------------------------------------------------------------
// Alarms: the alarms rules raise, what people do with them, and the rules

/// The wire name of a status filter (`status=` of `GET /alarms`).
pub fn alarm_status_name(status: AlarmStatusFilter) -> &'static str {
    match status {
        AlarmStatusFilter::Active => "active",
        AlarmStatusFilter::Cleared => "cleared",
        AlarmStatusFilter::Unacknowledged => "unacknowledged",
        AlarmStatusFilter::Acknowledged => "acknowledged",
    }
}

/// A page of alarms, newest first; `q.page` counts from 1, `q.per_page` is always `PER_PAGE`.
pub async fn list_alarms(s: Session, q: &AlarmQuery) -> Result<AlarmPage, ApiError> {
    let mut query = page_query(q.page.unwrap_or(1));
    if let Some(status) = q.status {
        query.push(("status", alarm_status_name(status).to_owned()));
    }
    if let Some(severity) = q.severity {
        query.push(("severity", severity.as_str().to_owned()));
    }
    if let Some(t) = q
        .alarm_type
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        query.push(("alarm_type", t.to_owned()));
    }
    if let Some(device) = q.device {
        query.push(("device", device.to_string()));
    }
    if let Some(group) = q.group {
        query.push(("group", group.to_string()));
    }
    s.get_query("/api/v1/alarms", &query).await
}

/// Active alarms by severity (and how many are not acknowledged), of the tenant or one device.
pub async fn alarm_counts(s: Session, device: Option<Uuid>) -> Result<AlarmCounts, ApiError> {
    let query: Vec<_> = device
        .map(|d| ("device", d.to_string()))
        .into_iter()
        .collect();
    s.get_query("/api/v1/alarms/counts", &query).await
}

/// The alarm with its history, oldest change first.
pub async fn get_alarm(s: Session, id: Uuid) -> Result<AlarmDetail, ApiError> {
    s.get(&format!("/api/v1/alarms/{id}")).await
}

/// Acknowledges, clears, assigns or comments on one alarm.
pub async fn alarm_action(s: Session, id: Uuid, action: &AlarmAction) -> Result<Alarm, ApiError> {
    s.post(&format!("/api/v1/alarms/{id}/actions"), action)
        .await
}

/// The same action on a selection; the answer says which were refused and why.
pub async fn alarm_bulk(s: Session, body: &AlarmBulk) -> Result<AlarmBulkResult, ApiError> {
    s.post("/api/v1/alarms/bulk", body).await
}

/// The profile's alarm rules, by type.
pub async fn profile_alarm_rules(s: Session, profile: Uuid) -> Result<Vec<AlarmRule>, ApiError> {
    s.get_query("/api/v1/alarm-rules", &[("profile", profile.to_string())])
        .await
}

pub async fn create_alarm_rule(s: Session, body: &AlarmRuleSpec) -> Result<AlarmRule, ApiError> {
    s.post("/api/v1/alarm-rules", body).await
}

pub async fn update_alarm_rule(
    s: Session,
    id: Uuid,
    body: &AlarmRuleSpec,
) -> Result<AlarmRule, ApiError> {
    s.put(&format!("/api/v1/alarm-rules/{id}"), body).await
}

pub async fn delete_alarm_rule(s: Session, id: Uuid) -> Result<(), ApiError> {
    s.delete(&format!("/api/v1/alarm-rules/{id}")).await
}

/// What a rule (saved or not) would have done on a device's stored telemetry.
pub async fn preview_alarm_rule(
    s: Session,
    body: &AlarmPreviewRequest,
) -> Result<AlarmPreview, ApiError> {
    s.post("/api/v1/alarm-rules/preview", body).await
}

/// The tenant's people, as many as one page holds (200), for pickers such as an alarm's
/// assignee.
pub async fn all_users(s: Session) -> Result<Page<User>, ApiError> {
    s.get_query(
        "/api/v1/users",
        &[("page", "1".to_owned()), ("per_page", "200".to_owned())],
    )
    .await
}

// ---------------------------------------------------------------------------------------------
// Notifications: one's own in-app notifications, the tenant's notification rules and silences

/// The newest `per_page` of one's notifications (only the unread ones with `unread`), with the
/// unread count.
pub async fn notifications(
    s: Session,
    unread: bool,
    per_page: u64,
) -> Result<NotificationPage, ApiError> {
    let mut query = vec![("page", "1".to_owned()), ("per_page", per_page.to_string())];
    if unread {
        query.push(("unread", "true".to_owned()));
    }
    s.get_query("/api/v1/notifications", &query).await
}

/// Marks one notification read, or (without `id`) all of them.
pub async fn read_notifications(s: Session, id: Option<Uuid>) -> Result<(), ApiError> {
    let path = match id {
        Some(id) => format!("/api/v1/notifications/{id}/read"),
        None => "/api/v1/notifications/read".to_owned(),
    };
    s.post_unit(&path, &serde_json::json!({})).await
}

pub async fn notification_rules(s: Session) -> Result<Vec<NotificationRule>, ApiError> {
    s.get("/api/v1/notification-rules").await
}

pub async fn create_notification_rule(
    s: Session,
    body: &NotificationRuleSpec,
) -> Result<NotificationRule, ApiError> {
    s.post("/api/v1/notification-rules", body).await
}

pub async fn update_notification_rule(
    s: Session,
    id: Uuid,
    body: &NotificationRuleSpec,
) -> Result<NotificationRule, ApiError> {
    s.put(&format!("/api/v1/notification-rules/{id}"), body)
        .await
}

pub async fn delete_notification_rule(s: Session, id: Uuid) -> Result<(), ApiError> {
    s.delete(&format!("/api/v1/notification-rules/{id}")).await
}

/// The silences in force or to come, newest first.
pub async fn silences(s: Session) -> Result<Vec<Silence>, ApiError> {
    s.get("/api/v1/silences").await
}

pub async fn create_silence(s: Session, body: &CreateSilence) -> Result<Silence, ApiError> {
    s.post("/api/v1/silences", body).await
}

/// Ends a silence now.
pub async fn end_silence(s: Session, id: Uuid) -> Result<(), ApiError> {
    s.delete(&format!("/api/v1/silences/{id}")).await
}

// ---------------------------------------------------------------------------------------------
// Fleet health (the home page)

/// The fleet at a glance, with `hours` of messages per minute (1–24).
pub async fn fleet_health(s: Session, hours: u32) -> Result<FleetHealth, ApiError> {
    s.get_query("/api/v1/fleet/health", &[("hours", hours.to_string())])
        .await
}

// ---------------------------------------------------------------------------------------------
// Over-the-air updates: packages, signing keys, what the fleet runs, a device's targets

/// The tenant's packages (of one kind, when given), by title, newest first.
pub async fn list_packages(
    s: Session,
    kind: Option<PackageKind>,
) -> Result<Vec<Package>, ApiError> {
    let query: Vec<(&str, String)> = kind
        .map(|k| ("kind", k.as_str().to_owned()))
        .into_iter()
        .collect();
    s.get_query("/api/v1/ota/packages", &query).await
}

/// The upload's query: everything but the image, which is the body.
pub fn upload_query(u: &UploadPackage) -> Vec<(&'static str, String)> {
    let mut query = vec![
        ("kind", u.kind.as_str().to_owned()),
        ("title", u.title.clone()),
        ("version", u.version.clone()),
    ];
    let optional = [
        ("description", u.description.clone()),
        ("profile_id", u.profile_id.map(|p| p.to_string())),
        ("sha256", u.sha256.clone()),
        ("signature", u.signature.clone()),
    ];
    query.extend(optional.into_iter().filter_map(|(k, v)| Some((k, v?))));
    query
}

/// Streams `image` up as a new package; `progress` hears (bytes sent, bytes in all).
pub async fn upload_package(
    s: Session,
    u: &UploadPackage,
    image: &web_sys::Blob,
    progress: impl Fn(f64, f64) + 'static,
    started: impl FnOnce(web_sys::XmlHttpRequest),
) -> Result<Package, ApiError> {
    s.upload(
        "/api/v1/ota/packages",
        &upload_query(u),
        image,
        progress,
        started,
    )
    .await
}

pub async fn delete_package(s: Session, id: Uuid) -> Result<(), ApiError> {
    s.delete(&format!("/api/v1/ota/packages/{id}")).await
}

/// The package's image, as a file to hand to the browser.
pub async fn package_image(s: Session, id: Uuid) -> Result<web_sys::Blob, ApiError> {
    s.get_blob(&format!("/api/v1/ota/packages/{id}/image"), &[])
        .await
}

pub async fn signing_keys(s: Session) -> Result<Vec<SigningKey>, ApiError> {
    s.get("/api/v1/ota/signing-keys").await
}

pub async fn create_signing_key(
    s: Session,
    body: &CreateSigningKey,
) -> Result<SigningKey, ApiError> {
    s.post("/api/v1/ota/signing-keys", body).await
}

pub async fn delete_signing_key(s: Session, id: Uuid) -> Result<(), ApiError> {
    s.delete(&format!("/api/v1/ota/signing-keys/{id}")).await
}

/// Devices per reported title and version of `kind`, most first.
pub async fn ota_versions(s: Session, kind: PackageKind) -> Result<Vec<VersionCount>, ApiError> {
    s.get_query(
        "/api/v1/ota/versions",
        &[("kind", kind.as_str().to_owned())],
    )
    .await
}

/// The device's target per kind, with where each update stands.
pub async fn device_ota(s: Session, id: Uuid) -> Result<Vec<DeviceOtaTarget>, ApiError> {
    s.get(&format!("/api/v1/devices/{id}/ota")).await
}

pub async fn assign_package(
    s: Session,
    id: Uuid,
    kind: PackageKind,
    body: &AssignPackage,
) -> Result<DeviceOtaTarget, ApiError> {
    s.put(&format!("/api/v1/devices/{id}/ota/{}", kind.as_str()), body)
        .await
}

/// Withdraws the device's target of `kind` (and its shared attributes).
pub async fn unassign_package(s: Session, id: Uuid, kind: PackageKind) -> Result<(), ApiError> {
    s.delete(&format!("/api/v1/devices/{id}/ota/{}", kind.as_str()))
        .await
}

// Campaigns: a package rolled out to many devices

/// A page of the tenant's campaigns (of one status, when given), newest first.
pub async fn list_campaigns(
    s: Session,
    status: Option<CampaignStatus>,
    page: u64,
) -> Result<Page<Campaign>, ApiError> {
    let mut query = page_query(page);
    if let Some(status) = status {
        query.push(("status", status.as_str().to_owned()));
    }
    s.get_query("/api/v1/ota/campaigns", &query).await
}

/// Makes a campaign, as a draft.
pub async fn create_campaign(s: Session, body: &CampaignSpec) -> Result<Campaign, ApiError> {
    s.post("/api/v1/ota/campaigns", body).await
}

/// How many devices `target` matches now.
pub async fn campaign_target_count(
    s: Session,
    target: &CampaignTarget,
) -> Result<TargetCount, ApiError> {
    s.post("/api/v1/ota/campaigns/target-count", target).await
}

pub async fn get_campaign(s: Session, id: Uuid) -> Result<Campaign, ApiError> {
    s.get(&format!("/api/v1/ota/campaigns/{id}")).await
}

/// A page of the campaign's devices (in one state, when given), in rollout order.
pub async fn campaign_devices(
    s: Session,
    id: Uuid,
    state: Option<OtaState>,
    page: u64,
) -> Result<Page<CampaignDevice>, ApiError> {
    let mut query = page_query(page);
    if let Some(state) = state {
        query.push(("state", state.as_str().to_owned()));
    }
    s.get_query(&format!("/api/v1/ota/campaigns/{id}/devices"), &query)
        .await
}

/// The campaign's devices per state, one point a minute, oldest first.
pub async fn campaign_progress(s: Session, id: Uuid) -> Result<Vec<CampaignProgress>, ApiError> {
    s.get(&format!("/api/v1/ota/campaigns/{id}/progress")).await
}

/// `start`, `pause`, `resume` or `cancel` (the reason, for pause and cancel).
pub async fn campaign_action(
    s: Session,
    id: Uuid,
    action: &str,
    reason: Option<String>,
) -> Result<Campaign, ApiError> {
    s.post(
        &format!("/api/v1/ota/campaigns/{id}/{action}"),
        &CampaignAction { reason },
    )
    .await
}

pub async fn delete_campaign(s: Session, id: Uuid) -> Result<(), ApiError> {
    s.delete(&format!("/api/v1/ota/campaigns/{id}")).await
}
