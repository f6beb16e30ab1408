//! The audit log: every change made by a person, with who, what and when.

pub mod model;

use chrono::Utc;
use sea_orm::ActiveValue::Set;
use sea_orm::entity::prelude::*;

use crate::auth::Actor;
use crate::error::Result;
use crate::ids::TenantId;

pub async fn record(
    db: &impl ConnectionTrait,
    tenant: Option<TenantId>,
    actor: &Actor,
    action: &str,
    target_type: &str,
    target_id: Option<Uuid>,
    detail: serde_json::Value,
) -> Result<()> {
    model::ActiveModel {
        id: Set(Uuid::new_v4()),
        tenant_id: Set(tenant.map(|t| t.0)),
        actor_user_id: Set(Some(actor.user_id.0)),
        action: Set(action.to_owned()),
        target_type: Set(target_type.to_owned()),
        target_id: Set(target_id),
        detail: Set(detail),
        created_at: Set(Utc::now()),
    }
    .insert(db)
    .await?;
    Ok(())
}
