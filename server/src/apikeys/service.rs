//! Creating, revoking and authenticating API keys.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sea_orm::DatabaseConnection;
use stead_api_types::{CreateApiKey, CreatedApiKey};
use uuid::Uuid;

use super::{PREFIX, model, repo};
use crate::app::AppState;
use crate::audit;
use crate::auth::{Actor, TenantCtx, tokens};
use crate::error::{Error, Result};
use crate::tenants::quotas::Quota;

/// How far ahead a key may expire, and when it does if not told.
const MAX_LIFETIME_DAYS: i64 = 366;
const DEFAULT_LIFETIME_DAYS: i64 = 90;
/// A key's last use is written at most this often (a busy integration does not write per call).
const TOUCH_EVERY_SECS: i64 = 30;

pub async fn create(
    db: &DatabaseConnection,
    ctx: &TenantCtx,
    quotas: &crate::tenants::quotas::Defaults,
    actor: &Actor,
    body: CreateApiKey,
) -> Result<CreatedApiKey> {
    if actor.api_key.is_some() {
        return Err(Error::forbidden(
            "person_required",
            "an API key cannot create API keys: sign in as a person",
        ));
    }
    let description = body.description.trim().to_owned();
    if description.is_empty() || description.chars().count() > 200 {
        return Err(Error::invalid(
            "invalid_field",
            "description",
            "say what the key is for, in 1 to 200 characters",
        ));
    }
    let mut permissions = body.permissions;
    permissions.sort();
    permissions.dedup();
    if permissions.is_empty() {
        return Err(Error::invalid(
            "invalid_field",
            "permissions",
            "a key needs at least one permission",
        ));
    }
    let mut groups = body.groups;
    groups.sort();
    groups.dedup();
    for g in &groups {
        crate::groups::repo::get(db, ctx, *g).await.map_err(|_| {
            Error::invalid(
                "unknown_group",
                "groups",
                format!("there is no device group {g} in this tenant"),
            )
        })?;
    }
    if let Some(p) = actor.access.lacks(&permissions, &groups) {
        return Err(Error::forbidden(
            "exceeds_your_access",
            if !groups.is_empty() && !p.group_scopable() {
                format!(
                    "`{}` acts on the whole tenant and cannot be limited to device groups",
                    p.as_str()
                )
            } else {
                format!(
                    "a key cannot hold `{}`{}: you do not hold it there yourself",
                    p.as_str(),
                    if groups.is_empty() {
                        " over the whole tenant"
                    } else {
                        " over those groups"
                    }
                )
            },
        ));
    }
    let now = Utc::now();
    let expires_at = body
        .expires_at
        .unwrap_or(now + chrono::Duration::days(DEFAULT_LIFETIME_DAYS));
    if expires_at <= now || expires_at > now + chrono::Duration::days(MAX_LIFETIME_DAYS) {
        return Err(Error::invalid(
            "invalid_expiry",
            "expires_at",
            format!("a key expires in the future and within {MAX_LIFETIME_DAYS} days"),
        ));
    }
    let secret = format!("{PREFIX}{}", tokens::random_token());
    let key = model::Model {
        id: Uuid::new_v4(),
        tenant_id: ctx.tenant_id().0,
        user_id: actor.user_id.0,
        description,
        prefix: secret[..PREFIX.len() + 6].to_owned(),
        secret_hash: tokens::hash_token(&secret),
        permissions: serde_json::to_value(&permissions).unwrap_or_default(),
        groups: serde_json::to_value(&groups).unwrap_or_default(),
        created_at: now,
        expires_at,
        last_used_at: None,
        last_used_address: None,
        revoked_at: None,
    };
    let txn = audit::begin(db, Some(ctx.tenant_id())).await?;
    crate::tenants::quotas::check(&txn, quotas, ctx.tenant_id(), Quota::ApiKeys, 1).await?;
    let key = repo::insert(&txn, key).await?;
    let api = repo::to_api(key, actor.email.clone());
    audit::record(
        &txn,
        Some(ctx.tenant_id()),
        actor,
        "apikey.create",
        "api_key",
        Some(api.id),
        serde_json::json!({
            "description": api.description,
            "prefix": api.prefix,
            "permissions": api.permissions,
            "groups": api.groups,
            "expires_at": api.expires_at,
        }),
    )
    .await?;
    txn.commit().await?;
    Ok(CreatedApiKey { key: api, secret })
}

pub async fn revoke(
    db: &DatabaseConnection,
    ctx: &TenantCtx,
    actor: &Actor,
    id: Uuid,
) -> Result<stead_api_types::ApiKey> {
    let txn = audit::begin(db, Some(ctx.tenant_id())).await?;
    let key = repo::get(&txn, ctx, id).await?;
    let creator = crate::users::repo::find_by_id(
        crate::auth::System::auth(),
        &txn,
        crate::ids::UserId(key.user_id),
    )
    .await?
    .map(|u| u.email)
    .unwrap_or_default();
    if key.revoked_at.is_some() {
        return Ok(repo::to_api(key, creator));
    }
    let key = repo::revoke(&txn, key).await?;
    audit::record(
        &txn,
        Some(ctx.tenant_id()),
        actor,
        "apikey.revoke",
        "api_key",
        Some(id),
        serde_json::json!({"description": key.description, "prefix": key.prefix}),
    )
    .await?;
    txn.commit().await?;
    Ok(repo::to_api(key, creator))
}

/// The actor behind an API key secret: its creator as the database says now, narrowed to the
/// key. Refused when the key is unknown, revoked, expired or over its rate, or when its creator
/// could not sign in themselves.
#[tracing::instrument(skip_all)]
pub async fn authenticate(
    state: &AppState,
    secret: &str,
    address: Option<std::net::IpAddr>,
) -> Result<Actor> {
    let key = repo::find_by_secret_hash(
        crate::auth::System::auth(),
        &state.db,
        &tokens::hash_token(secret),
    )
    .await?
    .ok_or_else(invalid)?;
    let mut actor = actor_of(state, &key).await?;
    let (hits, left) = state
        .live
        .hit(&format!("apikey:{}", key.id), Duration::from_secs(60))
        .await?;
    if hits > state.config.api_key_requests_per_minute {
        return Err(Error::Throttled {
            retry_after_secs: left.as_secs().max(1),
        });
    }
    actor.address = address;
    let now = Utc::now();
    let address = address.map(|a| a.to_string());
    let stale = key
        .last_used_at
        .is_none_or(|t| (now - t).num_seconds() >= TOUCH_EVERY_SECS);
    if stale || key.last_used_address != address {
        repo::touch(crate::auth::System::auth(), &state.db, key.id, now, address).await?;
    }
    Ok(actor)
}

/// The same key's actor again, as the database says now (a live view checking it may go on).
pub async fn recheck(
    state: &AppState,
    key: Uuid,
    address: Option<std::net::IpAddr>,
) -> Result<Actor> {
    let key = repo::find_by_id(crate::auth::System::auth(), &state.db, key)
        .await?
        .ok_or_else(invalid)?;
    let mut actor = actor_of(state, &key).await?;
    actor.address = address;
    Ok(actor)
}

fn invalid() -> Error {
    Error::unauthenticated("invalid_api_key", "the API key is not valid")
}

async fn actor_of(state: &AppState, key: &model::Model) -> Result<Actor> {
    if key.revoked_at.is_some() {
        return Err(Error::unauthenticated(
            "api_key_revoked",
            "this API key has been revoked",
        ));
    }
    if key.expires_at <= Utc::now() {
        return Err(Error::unauthenticated(
            "api_key_expired",
            "this API key has expired: create a new one",
        ));
    }
    let user = crate::users::repo::find_by_id(
        crate::auth::System::auth(),
        &state.db,
        crate::ids::UserId(key.user_id),
    )
    .await?
    .ok_or_else(invalid)?;
    let mut actor = crate::auth::service::check_can_sign_in(state, &user).await?;
    if actor.tenant_id.map(|t| t.0) != Some(key.tenant_id) {
        return Err(invalid());
    }
    actor.access = Arc::new(actor.access.narrowed(
        &crate::roles::repo::permissions_of(&key.permissions),
        &repo::groups_of(&key.groups),
    ));
    actor.api_key = Some(key.id);
    Ok(actor)
}
