//! API key queries: tenant-scoped ones for people, and the lookup by secret hash for
//! authentication (which knows no tenant until it has found the key).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::entity::prelude::*;
use sea_orm::{ActiveValue::Set, ConnectionTrait, QueryOrder};
use stead_api_types::ApiKey;

use super::model;
use crate::auth::{System, TenantCtx};
use crate::error::{Error, Result};

pub fn groups_of(json: &serde_json::Value) -> Vec<Uuid> {
    serde_json::from_value(json.clone()).unwrap_or_default()
}

pub fn to_api(k: model::Model, created_by_email: String) -> ApiKey {
    ApiKey {
        id: k.id,
        description: k.description,
        prefix: k.prefix,
        permissions: crate::roles::repo::permissions_of(&k.permissions),
        groups: groups_of(&k.groups),
        created_by: k.user_id,
        created_by_email,
        created_at: k.created_at,
        expires_at: k.expires_at,
        last_used_at: k.last_used_at,
        last_used_address: k.last_used_address,
        revoked_at: k.revoked_at,
    }
}

async fn emails(db: &impl ConnectionTrait, ctx: &TenantCtx) -> Result<HashMap<Uuid, String>> {
    use crate::users::model as users;
    Ok(users::Entity::find()
        .filter(users::Column::TenantId.eq(ctx.tenant_id().0))
        .all(db)
        .await?
        .into_iter()
        .map(|u| (u.id, u.email))
        .collect())
}

/// The tenant's keys, newest first, revoked ones included (they say when).
pub async fn list(db: &impl ConnectionTrait, ctx: &TenantCtx) -> Result<Vec<ApiKey>> {
    let emails = emails(db, ctx).await?;
    Ok(model::Entity::find()
        .filter(model::Column::TenantId.eq(ctx.tenant_id().0))
        .order_by_desc(model::Column::CreatedAt)
        .order_by_asc(model::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(|k| {
            let email = emails.get(&k.user_id).cloned().unwrap_or_default();
            to_api(k, email)
        })
        .collect())
}

pub async fn get(db: &impl ConnectionTrait, ctx: &TenantCtx, id: Uuid) -> Result<model::Model> {
    model::Entity::find_by_id(id)
        .filter(model::Column::TenantId.eq(ctx.tenant_id().0))
        .one(db)
        .await?
        .ok_or(Error::NotFound("api key"))
}

pub async fn count_active(db: &impl ConnectionTrait, ctx: &TenantCtx) -> Result<u64> {
    Ok(model::Entity::find()
        .filter(model::Column::TenantId.eq(ctx.tenant_id().0))
        .filter(model::Column::RevokedAt.is_null())
        .filter(model::Column::ExpiresAt.gt(Utc::now()))
        .count(db)
        .await?)
}

pub async fn insert(db: &impl ConnectionTrait, key: model::Model) -> Result<model::Model> {
    let active: model::ActiveModel = key.into();
    Ok(active.reset_all().insert(db).await?)
}

pub async fn revoke(db: &impl ConnectionTrait, key: model::Model) -> Result<model::Model> {
    let mut active: model::ActiveModel = key.into();
    active.revoked_at = Set(Some(Utc::now()));
    Ok(active.update(db).await?)
}

/// A key by id, in any tenant: re-checking a key already authenticated.
pub async fn find_by_id(
    _: System,
    db: &impl ConnectionTrait,
    id: Uuid,
) -> Result<Option<model::Model>> {
    Ok(model::Entity::find_by_id(id).one(db).await?)
}

/// The key whose secret hashes to `hash`, in any tenant: authentication only.
pub async fn find_by_secret_hash(
    _: System,
    db: &impl ConnectionTrait,
    hash: &str,
) -> Result<Option<model::Model>> {
    Ok(model::Entity::find()
        .filter(model::Column::SecretHash.eq(hash))
        .one(db)
        .await?)
}

pub async fn touch(
    _: System,
    db: &impl ConnectionTrait,
    id: Uuid,
    at: DateTime<Utc>,
    address: Option<String>,
) -> Result<()> {
    model::Entity::update_many()
        .col_expr(model::Column::LastUsedAt, Expr::value(at))
        .col_expr(model::Column::LastUsedAddress, Expr::value(address))
        .filter(model::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}
