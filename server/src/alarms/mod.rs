//! Alarms: rules on device profiles (or one device) evaluated against committed telemetry
//! (`engine`, off the PUBACK path), the alarms they raise, step and clear (one active per device
//! and type, guaranteed by the database), and what people do with them (`service`: acknowledge,
//! clear, assign, comment; each audited in its transaction). Every change writes an outbox event
//! (`alarm.raised`, `alarm.updated`, `alarm.cleared`) and a history entry.

pub mod engine;
pub mod http;
pub mod model;
pub mod progress;
pub mod repo;
pub mod rules;
pub mod service;

use sea_orm::ConnectionTrait;
use stead_api_types::{AlarmSeverity, EventType};

use crate::error::Result;
use crate::ids::{DeviceId, TenantId};

/// What happened to an alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Raised,
    Stepped(AlarmSeverity),
    Acknowledged,
    Cleared,
    Assigned,
    Commented,
}

impl Change {
    fn event_type(self) -> EventType {
        match self {
            Change::Raised => EventType::AlarmRaised,
            Change::Cleared => EventType::AlarmCleared,
            _ => EventType::AlarmUpdated,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Change::Raised => "raised",
            Change::Stepped(_) => "severity_changed",
            Change::Acknowledged => "acknowledged",
            Change::Cleared => "cleared",
            Change::Assigned => "assigned",
            Change::Commented => "commented",
        }
    }
}

/// The outbox event of a change, in the change's transaction.
pub async fn notify_change(
    db: &impl ConnectionTrait,
    alarm: &model::alarm::Model,
    change: Change,
) -> Result<()> {
    let event = crate::events::record(
        db,
        TenantId(alarm.tenant_id),
        change.event_type(),
        Some(DeviceId(alarm.device_id)),
        serde_json::json!({
            "alarm_id": alarm.id,
            "device_id": alarm.device_id,
            "type": alarm.alarm_type,
            "severity": alarm.severity,
            "change": change.as_str(),
            "active": alarm.active,
            "acknowledged": alarm.acknowledged,
            "details": alarm.details,
        }),
    )
    .await?;
    let kind = match change {
        Change::Raised => Some(stead_api_types::AlarmChangeKind::Raised),
        Change::Stepped(_) => Some(stead_api_types::AlarmChangeKind::SeverityChanged),
        Change::Acknowledged => Some(stead_api_types::AlarmChangeKind::Acknowledged),
        Change::Cleared => Some(stead_api_types::AlarmChangeKind::Cleared),
        Change::Assigned | Change::Commented => None,
    };
    if let Some(kind) = kind {
        crate::notifications::record_notice(db, alarm, kind, &event).await?;
    }
    Ok(())
}

/// The device timeline's sentence for a change the rule engine made.
pub fn timeline_text(alarm: &model::alarm::Model, change: Change) -> String {
    match change {
        Change::Raised => format!("Alarm {} raised ({})", alarm.alarm_type, alarm.severity),
        Change::Stepped(from) => format!(
            "Alarm {} went from {} to {}",
            alarm.alarm_type,
            from.as_str(),
            alarm.severity
        ),
        Change::Cleared => format!("Alarm {} cleared", alarm.alarm_type),
        other => format!("Alarm {} {}", alarm.alarm_type, other.as_str()),
    }
}
