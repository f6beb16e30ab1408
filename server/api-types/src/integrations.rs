//! Integrations: the event catalogue, webhook endpoints with their delivery log, and the NATS
//! JetStream sink.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One type of the event catalogue. On the wire, its dotted name (`device.created`); an
/// endpoint's filter lists these names (empty: every type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum EventType {
    #[serde(rename = "device.created")]
    DeviceCreated,
    #[serde(rename = "device.updated")]
    DeviceUpdated,
    #[serde(rename = "device.deleted")]
    DeviceDeleted,
    #[serde(rename = "device.connected")]
    DeviceConnected,
    #[serde(rename = "device.disconnected")]
    DeviceDisconnected,
    /// Points of one committed batch, grouped by device.
    #[serde(rename = "device.telemetry")]
    DeviceTelemetry,
    #[serde(rename = "attributes.client.updated")]
    ClientAttributesUpdated,
    #[serde(rename = "attributes.shared.updated")]
    SharedAttributesUpdated,
    #[serde(rename = "command.created")]
    CommandCreated,
    #[serde(rename = "command.updated")]
    CommandUpdated,
    /// Every entry of the audit log, as it was written.
    #[serde(rename = "audit.entry")]
    AuditEntry,
    /// Sent by "Send test event"; only to the endpoint it was asked for.
    #[serde(rename = "webhook.test")]
    WebhookTest,
    #[serde(rename = "alarm.raised")]
    AlarmRaised,
    /// Severity stepped, acknowledged, assigned or commented.
    #[serde(rename = "alarm.updated")]
    AlarmUpdated,
    #[serde(rename = "alarm.cleared")]
    AlarmCleared,
    /// A device's execution state in an OTA campaign changed.
    #[serde(rename = "ota.execution.updated")]
    OtaExecutionUpdated,
}

impl EventType {
    pub const ALL: [EventType; 16] = [
        EventType::DeviceCreated,
        EventType::DeviceUpdated,
        EventType::DeviceDeleted,
        EventType::DeviceConnected,
        EventType::DeviceDisconnected,
        EventType::DeviceTelemetry,
        EventType::ClientAttributesUpdated,
        EventType::SharedAttributesUpdated,
        EventType::CommandCreated,
        EventType::CommandUpdated,
        EventType::AuditEntry,
        EventType::WebhookTest,
        EventType::AlarmRaised,
        EventType::AlarmUpdated,
        EventType::AlarmCleared,
        EventType::OtaExecutionUpdated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::DeviceCreated => "device.created",
            EventType::DeviceUpdated => "device.updated",
            EventType::DeviceDeleted => "device.deleted",
            EventType::DeviceConnected => "device.connected",
            EventType::DeviceDisconnected => "device.disconnected",
            EventType::DeviceTelemetry => "device.telemetry",
            EventType::ClientAttributesUpdated => "attributes.client.updated",
            EventType::SharedAttributesUpdated => "attributes.shared.updated",
            EventType::CommandCreated => "command.created",
            EventType::CommandUpdated => "command.updated",
            EventType::AuditEntry => "audit.entry",
            EventType::WebhookTest => "webhook.test",
            EventType::AlarmRaised => "alarm.raised",
            EventType::AlarmUpdated => "alarm.updated",
            EventType::AlarmCleared => "alarm.cleared",
            EventType::OtaExecutionUpdated => "ota.execution.updated",
        }
    }

    pub fn parse(s: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// What the console says about it.
    pub fn label(self) -> &'static str {
        match self {
            EventType::DeviceCreated => "A device was created",
            EventType::DeviceUpdated => "A device was changed",
            EventType::DeviceDeleted => "A device was deleted",
            EventType::DeviceConnected => "A device connected",
            EventType::DeviceDisconnected => "A device disconnected (with the reason)",
            EventType::DeviceTelemetry => "Telemetry (batched, as committed)",
            EventType::ClientAttributesUpdated => "A device reported client attributes",
            EventType::SharedAttributesUpdated => "Shared attributes were set or deleted",
            EventType::CommandCreated => "A command was sent to a device",
            EventType::CommandUpdated => "A command changed state",
            EventType::AuditEntry => "An audit log entry",
            EventType::WebhookTest => "Test event (Send test event)",
            EventType::AlarmRaised => "An alarm was raised",
            EventType::AlarmUpdated => {
                "An alarm changed (severity, acknowledged, assigned, comment)"
            }
            EventType::AlarmCleared => "An alarm was cleared",
            EventType::OtaExecutionUpdated => {
                "A device's update in a campaign changed state (queued, notified, downloading … succeeded, failed, rolled back)"
            }
        }
    }

    /// Whether the type is about one device (so an endpoint's device-group filter applies).
    pub fn is_about_a_device(self) -> bool {
        !matches!(self, EventType::AuditEntry | EventType::WebhookTest)
    }
}

/// One entry of the event catalogue (`GET /api/v1/events/types`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventTypeInfo {
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// What it means, in a sentence.
    pub label: String,
}

/// What a delivery carries: the body of a webhook request (Standard Webhooks: `type`,
/// `timestamp`, `data`; the `webhook-id` header is `id`), and of a NATS message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Event {
    /// Unique and stable across retries and replays: the idempotency key.
    pub id: Uuid,
    #[serde(rename = "type")]
    pub event_type: EventType,
    pub tenant_id: Uuid,
    pub timestamp: DateTime<Utc>,
    pub data: serde_json::Value,
}

/// How a webhook request is shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    /// Standard Webhooks: `{"type", "timestamp", "data"}` plus `id` and `tenant_id`.
    #[default]
    Standard,
    /// CloudEvents 1.0 in structured mode (`application/cloudevents+json`), signed the same way.
    Cloudevents,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookEndpoint {
    pub id: Uuid,
    pub url: String,
    pub description: String,
    /// Empty: every event type.
    pub event_types: Vec<EventType>,
    /// Only events about devices of this group (events not about a device still go).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<Uuid>,
    pub format: WebhookFormat,
    /// Deliveries in event order, one at a time: an event waits until the one before it was
    /// delivered or given up.
    pub ordered: bool,
    /// Requests in flight at once to this endpoint (per worker node).
    pub max_concurrency: u32,
    pub enabled: bool,
    /// Why Stead turned it off (it failed for too long, or answered 410 Gone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    /// Since when every attempt has failed (cleared by a success).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<DateTime<Utc>>,
    /// Until when the previous secret still signs too (after a rotation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Deliveries waiting (pending or being retried).
    pub pending: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    pub url: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub event_types: Vec<EventType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<Uuid>,
    #[serde(default)]
    pub format: WebhookFormat,
    #[serde(default)]
    pub ordered: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
    /// A `whsec_…` secret of your own; by default Stead makes one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// Only the fields given change. `group_id: null` removes the group filter.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhook {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_types: Option<Vec<EventType>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::double_option"
    )]
    pub group_id: Option<Option<Uuid>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<WebhookFormat>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordered: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
    /// `true` turns a disabled endpoint on again (its failure clock starts afresh).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// `POST /webhooks` and `GET /webhooks/{id}/secret`: the signing secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookSecret {
    pub secret: String,
    /// During a rotation's overlap: the previous secret, which still signs too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedWebhook {
    pub endpoint: WebhookEndpoint,
    pub secret: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RotateWebhookSecret {
    /// How long the old secret keeps signing beside the new one (default 24 h, at most 7 days).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlap_secs: Option<u64>,
    /// A `whsec_…` secret of your own; by default Stead makes one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its first attempt or for a retry.
    Pending,
    Succeeded,
    /// Given up: retries exhausted, the endpoint answered 410, or it was disabled.
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Succeeded => "succeeded",
            DeliveryStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<DeliveryStatus> {
        match s {
            "pending" => Some(DeliveryStatus::Pending),
            "succeeded" => Some(DeliveryStatus::Succeeded),
            "failed" => Some(DeliveryStatus::Failed),
            _ => None,
        }
    }
}

/// One event on its way to one endpoint, with what its last attempt got.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookDelivery {
    pub id: Uuid,
    pub event_id: Uuid,
    pub event_type: EventType,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status_code: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_latency_ms: Option<u64>,
    /// A replay of an earlier delivery, or of events since a time.
    pub replay: bool,
}

/// One HTTP request of a delivery and what came back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookAttempt {
    pub attempt: u32,
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    /// The response body, cut at 1 KiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_body: Option<String>,
    /// Why there was no answer (timeout, refused connection, address not allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub latency_ms: u64,
}

/// `GET /webhooks/{id}/deliveries/{delivery}`: the delivery, the request it sends, every attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookDeliveryDetail {
    pub delivery: WebhookDelivery,
    /// The request body as sent (the event).
    pub request: serde_json::Value,
    pub attempts: Vec<WebhookAttempt>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookDeliveryPage {
    pub items: Vec<WebhookDelivery>,
    pub total: u64,
    pub page: u64,
    pub per_page: u64,
}

/// `POST /webhooks/{id}/replay`: every event since a time, to this endpoint again.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReplayWebhook {
    pub since: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Replayed {
    /// Deliveries queued.
    pub queued: u64,
}

/// A tenant's NATS JetStream sink, set by the platform admin (`PUT /tenants/{id}/nats-sink`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NatsSink {
    pub enabled: bool,
    /// Empty: every event type.
    pub event_types: Vec<EventType>,
    /// Where events go: `<subject_prefix>.<tenant id>.<event type>`.
    pub subject_prefix: String,
    /// The stream that holds them.
    pub stream: String,
    /// Events published and acknowledged by the stream.
    pub delivered: u64,
    /// Events waiting for the stream.
    pub pending: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_delivered_at: Option<DateTime<Utc>>,
    /// Whether this platform has a NATS server configured (`STEAD_NATS_URL`).
    pub configured: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SetNatsSink {
    pub enabled: bool,
    #[serde(default)]
    pub event_types: Vec<EventType>,
}
