//! Alarms: rules on device profiles (or on one device), the alarms they raise, step and clear,
//! and what people do with them (acknowledge, clear, assign, comment).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How bad it is. Ordered from the least to the most severe, so that `max` is the worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AlarmSeverity {
    Indeterminate,
    Warning,
    Minor,
    Major,
    Critical,
}

impl AlarmSeverity {
    /// From the most severe down, as rules are tried and lists are shown.
    pub const ALL: [AlarmSeverity; 5] = [
        AlarmSeverity::Critical,
        AlarmSeverity::Major,
        AlarmSeverity::Minor,
        AlarmSeverity::Warning,
        AlarmSeverity::Indeterminate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlarmSeverity::Critical => "critical",
            AlarmSeverity::Major => "major",
            AlarmSeverity::Minor => "minor",
            AlarmSeverity::Warning => "warning",
            AlarmSeverity::Indeterminate => "indeterminate",
        }
    }

    pub fn parse(s: &str) -> Option<AlarmSeverity> {
        AlarmSeverity::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// Where a predicate reads its value: the device's telemetry (the message being evaluated, else
/// the latest value) or one of its attribute scopes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ValueSource {
    #[default]
    Telemetry,
    Client,
    Shared,
    Server,
}

/// A comparison. Numbers: `>` `>=` `<` `<=` `==` `!=` and `between` (inclusive, `value` is
/// `[low, high]`); text: `equals`, `not_equals`, `contains`, `in` (`value` is a list); booleans:
/// `==` and `!=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Operator {
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = "==")]
    Eq,
    #[serde(rename = "!=")]
    Ne,
    #[serde(rename = "between")]
    Between,
    #[serde(rename = "equals")]
    Equals,
    #[serde(rename = "not_equals")]
    NotEquals,
    #[serde(rename = "contains")]
    Contains,
    #[serde(rename = "in")]
    In,
}

/// One test of a value. `value` is a constant (a number, text, boolean, or a list for `between`
/// and `in`), or a threshold read from an attribute: `{"attribute": "max_temp", "scope":
/// "server", "default": 80}` (the device's attribute, the default when the device has none).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Predicate {
    #[serde(default)]
    pub source: ValueSource,
    pub key: String,
    pub op: Operator,
    pub value: serde_json::Value,
}

/// Predicates combined: `{"all": [...]}` (AND), `{"any": [...]}` (OR), or one `{"test": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Expr {
    #[cfg_attr(feature = "openapi", schema(no_recursion))]
    All(Vec<Expr>),
    #[cfg_attr(feature = "openapi", schema(no_recursion))]
    Any(Vec<Expr>),
    Test(Predicate),
}

/// When a condition counts as met.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ConditionKind {
    /// As soon as one message makes the expression true.
    #[default]
    Immediate,
    /// True without interruption for `secs` seconds (by the messages' timestamps).
    Duration,
    /// True in `count` messages in a row.
    Repeating,
    /// `key` (or, without a key, any telemetry) not seen for `secs` seconds.
    NoData,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Condition {
    #[serde(default)]
    pub kind: ConditionKind,
    /// What must hold; not used by `no_data`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expr: Option<Expr>,
    /// `duration` and `no_data`: how long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secs: Option<u32>,
    /// `repeating`: how many messages in a row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// `no_data`: the key that must keep arriving (any telemetry when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// When a rule may raise: days of the week (1 = Monday … 7 = Sunday) and an hour range
/// (`from_hour` inclusive to `to_hour` exclusive; a range past midnight wraps) in a time zone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AlarmSchedule {
    /// An IANA time zone such as `Europe/Berlin`.
    pub timezone: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub days: Vec<u8>,
    #[serde(default)]
    pub from_hour: u8,
    #[serde(default = "day_end")]
    pub to_hour: u8,
}

fn day_end() -> u8 {
    24
}

/// `POST /api/v1/alarm-rules` and `PUT /api/v1/alarm-rules/{id}`: one alarm type on a profile or
/// on one device (a device's own rule of a type wins over its profile's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AlarmRuleSpec {
    /// The alarm type it raises, e.g. `overheat` (letters, digits, `_ - . :`, up to 64).
    pub alarm_type: String,
    /// Exactly one of `profile_id` and `device_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// A condition per severity; the most severe one met wins.
    pub create: CreateConditions,
    /// When the active alarm clears (hysteresis: "clear below 75" beside "raise above 80").
    /// Without one, the alarm clears when no create condition is met any more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clear: Option<Condition>,
    /// Clear when no create condition has been met for this many seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clear_after_secs: Option<u32>,
    /// Raise only within these times (clearing is never held back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<AlarmSchedule>,
}

fn yes() -> bool {
    true
}

/// The create condition of each severity a rule raises (at least one).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateConditions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critical: Option<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub major: Option<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minor: Option<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub indeterminate: Option<Condition>,
}

impl CreateConditions {
    pub fn get(&self, severity: AlarmSeverity) -> Option<&Condition> {
        match severity {
            AlarmSeverity::Critical => self.critical.as_ref(),
            AlarmSeverity::Major => self.major.as_ref(),
            AlarmSeverity::Minor => self.minor.as_ref(),
            AlarmSeverity::Warning => self.warning.as_ref(),
            AlarmSeverity::Indeterminate => self.indeterminate.as_ref(),
        }
    }

    /// From the most severe down.
    pub fn iter(&self) -> impl Iterator<Item = (AlarmSeverity, &Condition)> {
        AlarmSeverity::ALL
            .into_iter()
            .filter_map(|s| self.get(s).map(|c| (s, c)))
    }

    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlarmRule {
    pub id: Uuid,
    #[serde(flatten)]
    pub spec: AlarmRuleSpec,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Query of `GET /api/v1/alarm-rules`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
#[serde(deny_unknown_fields)]
pub struct AlarmRuleQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<Uuid>,
}

/// An alarm: at most one active per (device, type).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Alarm {
    pub id: Uuid,
    pub device_id: Uuid,
    pub device_name: String,
    pub alarm_type: String,
    pub severity: AlarmSeverity,
    /// Raised and not cleared yet.
    pub active: bool,
    pub acknowledged: bool,
    /// The rule that raised it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<Uuid>,
    pub started_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleared_at: Option<DateTime<Utc>>,
    /// When it stopped needing anyone: cleared and acknowledged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<DateTime<Utc>>,
    /// The values that raised it (or last stepped it).
    pub details: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee_email: Option<String>,
    /// A silence holds its notifications back now (it is still recorded and shown).
    #[serde(default)]
    pub silenced: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlarmPage {
    pub items: Vec<Alarm>,
    pub total: u64,
    pub page: u64,
    pub per_page: u64,
}

/// What a bulk action did: the alarms it changed, and why the others were not.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlarmBulkResult {
    pub changed: u64,
    /// By alarm id: not found (or out of reach), or the reason it was refused.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub failed: BTreeMap<Uuid, String>,
}

/// One change of an alarm, and who or what made it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlarmChange {
    pub at: DateTime<Utc>,
    /// `raised`, `severity_changed`, `acknowledged`, `cleared`, `assigned`, `unassigned`,
    /// `commented`.
    pub kind: String,
    pub severity: AlarmSeverity,
    /// A person's e-mail, or `rule` for the rule engine.
    pub actor: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub values: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlarmDetail {
    #[serde(flatten)]
    pub alarm: Alarm,
    pub history: Vec<AlarmChange>,
}

/// `active`, `cleared`, `unacknowledged` or `acknowledged` (the list's status filter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AlarmStatusFilter {
    Active,
    Cleared,
    Unacknowledged,
    Acknowledged,
}

/// Query of `GET /api/v1/alarms`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
#[serde(deny_unknown_fields)]
pub struct AlarmQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(minimum = 1))]
    pub page: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 200))]
    pub per_page: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<AlarmStatusFilter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<AlarmSeverity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarm_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<Uuid>,
    /// Started at or after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<DateTime<Utc>>,
    /// Started before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<DateTime<Utc>>,
}

/// What to do to an alarm (`POST /api/v1/alarms/{id}/...`) or to a selection
/// (`POST /api/v1/alarms/bulk`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum AlarmAction {
    Acknowledge,
    Clear,
    /// Assign to a person of the tenant, or unassign (`null`).
    Assign {
        user_id: Option<Uuid>,
    },
    Comment {
        text: String,
    },
}

/// (`action` and its fields beside `ids`, as for one alarm.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlarmBulk {
    pub ids: Vec<Uuid>,
    #[serde(flatten)]
    pub action: AlarmAction,
}

/// Active alarms by severity (`GET /api/v1/alarms/counts`), for the tenant, a group or a device.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlarmCounts {
    pub critical: u64,
    pub major: u64,
    pub minor: u64,
    pub warning: u64,
    pub indeterminate: u64,
    /// Active and not acknowledged, whatever the severity.
    pub unacknowledged: u64,
}

impl AlarmCounts {
    pub fn add(&mut self, severity: AlarmSeverity, n: u64) {
        *match severity {
            AlarmSeverity::Critical => &mut self.critical,
            AlarmSeverity::Major => &mut self.major,
            AlarmSeverity::Minor => &mut self.minor,
            AlarmSeverity::Warning => &mut self.warning,
            AlarmSeverity::Indeterminate => &mut self.indeterminate,
        } += n;
    }

    pub fn total(&self) -> u64 {
        self.critical + self.major + self.minor + self.warning + self.indeterminate
    }
}

/// Query of `GET /api/v1/alarms/counts`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
#[serde(deny_unknown_fields)]
pub struct AlarmCountQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<Uuid>,
}

// ---------------------------------------------------------------------------------------------
// Notifications

/// Where a notification goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum NotifyChannel {
    /// The console's bell, per person, read or unread.
    InApp,
    /// E-mail over the platform's SMTP server.
    Email,
    /// The alarm's event to one of the tenant's webhook endpoints (signed, retried).
    Webhook,
}

/// The changes of an alarm a notification rule speaks of (never a repeated message).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AlarmChangeKind {
    Raised,
    SeverityChanged,
    Acknowledged,
    Cleared,
}

impl AlarmChangeKind {
    pub const ALL: [AlarmChangeKind; 4] = [
        AlarmChangeKind::Raised,
        AlarmChangeKind::SeverityChanged,
        AlarmChangeKind::Acknowledged,
        AlarmChangeKind::Cleared,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlarmChangeKind::Raised => "raised",
            AlarmChangeKind::SeverityChanged => "severity_changed",
            AlarmChangeKind::Acknowledged => "acknowledged",
            AlarmChangeKind::Cleared => "cleared",
        }
    }

    pub fn parse(s: &str) -> Option<AlarmChangeKind> {
        AlarmChangeKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Who is told: people of the tenant by id, and everyone holding a built-in role.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Recipients {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<Uuid>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<crate::Role>,
}

fn all_changes() -> Vec<AlarmChangeKind> {
    AlarmChangeKind::ALL.to_vec()
}

fn least_severe() -> AlarmSeverity {
    AlarmSeverity::Indeterminate
}

/// `POST /api/v1/notification-rules`, `PUT /api/v1/notification-rules/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NotificationRuleSpec {
    pub name: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The alarm types it speaks of; every type when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alarm_types: Vec<String>,
    /// The least severity it speaks of.
    #[serde(default = "least_severe")]
    pub min_severity: AlarmSeverity,
    /// Which changes (all four when absent).
    #[serde(default = "all_changes")]
    pub changes: Vec<AlarmChangeKind>,
    pub channels: Vec<NotifyChannel>,
    pub recipients: Recipients,
    /// The endpoint of the `webhook` channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_id: Option<Uuid>,
    /// Changes of one alarm type within this many seconds of the first make one notification
    /// naming every device ("312 devices: offline raised"); 0 sends each alone.
    #[serde(default)]
    pub group_window_secs: u32,
    /// Not acknowledged within this many seconds: `escalate_to` are told.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalate_after_secs: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalate_to: Option<Recipients>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NotificationRule {
    pub id: Uuid,
    #[serde(flatten)]
    pub spec: NotificationRuleSpec,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `POST /api/v1/silences`: notifications about a device, a group's devices or an alarm type
/// (any combination; at least one) held back until `ends_at`. Alarms are still recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateSilence {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarm_type: Option<String>,
    /// Now when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Silence {
    pub id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarm_type: Option<String>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// One in-app notification of the signed-in person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Notification {
    pub id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarm_id: Option<Uuid>,
    pub title: String,
    pub body: String,
    pub severity: AlarmSeverity,
    pub created_at: DateTime<Utc>,
    pub read: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NotificationPage {
    pub items: Vec<Notification>,
    pub total: u64,
    /// Unread, of all (not only this page).
    pub unread: u64,
    pub page: u64,
    pub per_page: u64,
}

/// Query of `GET /api/v1/notifications`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
#[serde(deny_unknown_fields)]
pub struct NotificationQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unread: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(minimum = 1))]
    pub page: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 200))]
    pub per_page: Option<u64>,
}

/// `POST /api/v1/alarm-rules/preview`: what a rule would have done on a device's stored data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AlarmPreviewRequest {
    pub rule: AlarmRuleSpec,
    pub device_id: Uuid,
    /// How far back (1–168 hours, default 24).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours: Option<u32>,
}

/// One thing the rule would have done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PreviewStep {
    /// The message's time (ms).
    pub ts: i64,
    /// `raised`, `severity_changed` or `cleared`.
    pub change: AlarmChangeKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<AlarmSeverity>,
    pub values: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlarmPreview {
    /// Stored messages the rule was run over, oldest first.
    pub messages: u64,
    /// More messages were stored than a preview reads (the newest were left out).
    pub truncated: bool,
    pub steps: Vec<PreviewStep>,
    /// The severity active at the end, if the alarm would still be active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_at_end: Option<AlarmSeverity>,
}

// ---------------------------------------------------------------------------------------------
// Fleet health (the console's home page)

/// Acknowledged (stored) messages in one minute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MinuteCount {
    /// The minute's start (ms).
    pub minute: i64,
    pub messages: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BusyDevice {
    pub device_id: Uuid,
    pub name: String,
    /// Messages stored in the last 10–20 minutes.
    pub messages: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExpiringCredentials {
    pub device_id: Uuid,
    pub name: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RefusedConnect {
    pub device_id: Uuid,
    pub name: String,
    pub ts: i64,
    pub detail: String,
}

/// `GET /api/v1/fleet/health`: the tenant's fleet at a glance (what the caller reaches).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FleetHealth {
    pub devices: u64,
    pub online: u64,
    pub offline: u64,
    /// Every minute of the last `hours`, oldest first (the whole tenant's traffic).
    pub messages_per_minute: Vec<MinuteCount>,
    pub alarms: AlarmCounts,
    /// The busiest devices of the last minutes.
    pub noisiest: Vec<BusyDevice>,
    /// Credentials that expire within 7 days (or have), soonest first.
    pub expiring: Vec<ExpiringCredentials>,
    /// The latest refused connects of known devices, newest first.
    pub refused_connects: Vec<RefusedConnect>,
}

/// Query of `GET /api/v1/fleet/health`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
#[serde(deny_unknown_fields)]
pub struct FleetHealthQuery {
    /// How many hours of messages per minute (1–24, default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 24))]
    pub hours: Option<u32>,
}
