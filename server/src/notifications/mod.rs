//! Alarm notifications, sent on changes only (raised, severity changed, acknowledged, cleared),
//! never per message: rules pick alarm types, severities and people (by id or role) and the
//! channels (in-app, e-mail, a webhook endpoint); silences hold notifications back (the alarms
//! are still recorded); many devices raising one alarm type within a rule's window make one
//! notification naming them all; an alarm not acknowledged in time is escalated.
//!
//! Each alarm change writes an `alarm_notices` row in its own transaction (`record_notice`), so
//! a notice exists exactly when the change committed; the worker's `dispatch` works through them.

pub mod dispatch;
pub mod http;
pub mod model;
pub mod repo;
pub mod service;

use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::{ActiveModelTrait, ConnectionTrait};
use stead_api_types::AlarmChangeKind;

use crate::error::Result;

/// The notice of an alarm change, in the change's transaction.
pub async fn record_notice(
    db: &impl ConnectionTrait,
    alarm: &crate::alarms::model::alarm::Model,
    change: AlarmChangeKind,
    event: &crate::events::model::Model,
) -> Result<()> {
    model::notice::ActiveModel {
        id: NotSet,
        tenant_id: Set(alarm.tenant_id),
        alarm_id: Set(alarm.id),
        change: Set(change.as_str().to_owned()),
        event_seq: Set(event.seq),
        at: Set(chrono::Utc::now()),
        processed: Set(false),
    }
    .insert(db)
    .await?;
    Ok(())
}
