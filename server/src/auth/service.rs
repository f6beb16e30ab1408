//! Logging in, refreshing, logging out, and turning a bearer token into an `Actor`.

use std::net::IpAddr;
use std::time::Duration;

use chrono::Utc;
use sea_orm::entity::prelude::*;
use sea_orm::{ActiveValue::Set, QueryFilter};
use stead_api_types::{Role, TenantStatus, TokenResponse};

use super::refresh_model as refresh;
use super::{Actor, password, tokens};
use crate::app::AppState;
use crate::error::{Error, Result};
use crate::ids::{TenantId, UserId};
use crate::{tenants, users};

/// Password login, throttled per source address (all attempts) and per account (failures).
#[tracing::instrument(skip_all, fields(ip = %ip))]
pub async fn login(
    state: &AppState,
    email: &str,
    password: &str,
    ip: IpAddr,
) -> Result<TokenResponse> {
    let cfg = &state.config;
    let email = email.trim().to_lowercase();
    let ip_key = format!("login:ip:{ip}");
    let account_key = format!("login:account:{email}");

    let (ip_hits, ip_left) = state
        .live
        .hit(&ip_key, Duration::from_secs(cfg.login_ip_window_secs))
        .await?;
    if ip_hits > cfg.login_max_attempts_per_ip {
        tracing::warn!("login throttled for this address");
        return Err(Error::Throttled {
            retry_after_secs: ip_left.as_secs().max(1),
        });
    }
    let (failures, account_left) = state.live.count(&account_key).await?;
    if failures >= cfg.login_max_failures_per_account {
        tracing::warn!("login throttled for this account");
        return Err(Error::Throttled {
            retry_after_secs: account_left.as_secs().max(1),
        });
    }

    let user = users::repo::find_by_email(&state.db, &email).await?;
    let ok = password::verify(password, user.as_ref().map(|u| u.password_hash.clone())).await;
    let user = match (ok, user) {
        (true, Some(user)) => user,
        _ => {
            state
                .live
                .hit(
                    &account_key,
                    Duration::from_secs(cfg.login_failure_window_secs),
                )
                .await?;
            tracing::info!("login refused: wrong e-mail or password");
            return Err(Error::unauthenticated(
                "invalid_credentials",
                "wrong e-mail or password",
            ));
        }
    };
    state.live.reset(&account_key).await?;
    check_can_sign_in(state, &user).await?;

    let mut active: users::model::ActiveModel = user.clone().into();
    active.last_login_at = Set(Some(Utc::now()));
    active.update(&state.db).await?;
    tracing::info!(user = %user.id, "logged in");
    issue(state, UserId(user.id), Uuid::new_v4()).await
}

/// Exchanges a refresh token for a new pair. A token that was already exchanged (or revoked) is
/// evidence of theft: the whole family is revoked, and both holders must log in again.
pub async fn refresh(state: &AppState, presented: &str) -> Result<TokenResponse> {
    let hash = tokens::hash_token(presented);
    let invalid =
        || Error::unauthenticated("invalid_refresh_token", "the refresh token is not valid");
    let Some(row) = refresh::Entity::find()
        .filter(refresh::Column::TokenHash.eq(hash))
        .one(&state.db)
        .await?
    else {
        return Err(invalid());
    };
    if row.used_at.is_some() || row.revoked_at.is_some() {
        revoke_family(state, row.family_id).await?;
        tracing::warn!(user = %row.user_id, "refresh token re-used: session family revoked");
        return Err(Error::unauthenticated(
            "refresh_token_reused",
            "this refresh token was already used; for safety the session has been ended: log in again",
        ));
    }
    if row.expires_at <= Utc::now() {
        return Err(Error::unauthenticated(
            "refresh_token_expired",
            "the session has expired: log in again",
        ));
    }
    // Spend the token; if a concurrent request spent it first, that is re-use too.
    let spent = refresh::Entity::update_many()
        .col_expr(refresh::Column::UsedAt, Expr::value(Utc::now()))
        .filter(refresh::Column::Id.eq(row.id))
        .filter(refresh::Column::UsedAt.is_null())
        .exec(&state.db)
        .await?;
    if spent.rows_affected != 1 {
        revoke_family(state, row.family_id).await?;
        return Err(invalid());
    }
    let user = users::repo::find_by_id(&state.db, UserId(row.user_id))
        .await?
        .ok_or_else(invalid)?;
    check_can_sign_in(state, &user).await?;
    issue(state, UserId(user.id), row.family_id).await
}

/// Ends the session the refresh token belongs to. Unknown tokens are ignored (idempotent).
pub async fn logout(state: &AppState, presented: &str) -> Result<()> {
    let hash = tokens::hash_token(presented);
    if let Some(row) = refresh::Entity::find()
        .filter(refresh::Column::TokenHash.eq(hash))
        .one(&state.db)
        .await?
    {
        revoke_family(state, row.family_id).await?;
    }
    Ok(())
}

/// Ends every session of a user (password reset, deactivation).
pub async fn revoke_all_sessions(db: &impl ConnectionTrait, user: UserId) -> Result<()> {
    refresh::Entity::update_many()
        .col_expr(refresh::Column::RevokedAt, Expr::value(Utc::now()))
        .filter(refresh::Column::UserId.eq(user.0))
        .filter(refresh::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(())
}

async fn revoke_family(state: &AppState, family: Uuid) -> Result<()> {
    refresh::Entity::update_many()
        .col_expr(refresh::Column::RevokedAt, Expr::value(Utc::now()))
        .filter(refresh::Column::FamilyId.eq(family))
        .filter(refresh::Column::RevokedAt.is_null())
        .exec(&state.db)
        .await?;
    Ok(())
}

async fn issue(state: &AppState, user: UserId, family: Uuid) -> Result<TokenResponse> {
    let access_token = state.keys.issue(user)?;
    let refresh_token = tokens::random_token();
    let now = Utc::now();
    let txn = crate::db::begin_write(&state.db).await?;
    refresh::ActiveModel {
        id: Set(Uuid::new_v4()),
        user_id: Set(user.0),
        family_id: Set(family),
        token_hash: Set(tokens::hash_token(&refresh_token)),
        expires_at: Set(now + chrono::Duration::seconds(state.config.refresh_token_ttl_secs as i64)),
        created_at: Set(now),
        used_at: Set(None),
        revoked_at: Set(None),
    }
    .insert(&txn)
    .await?;
    txn.commit().await?;
    Ok(TokenResponse {
        access_token,
        refresh_token,
        expires_in: state.keys.access_ttl_secs,
        token_type: "Bearer".into(),
    })
}

/// The checks shared by login, refresh and every authenticated request.
async fn check_can_sign_in(state: &AppState, user: &users::model::Model) -> Result<Actor> {
    if !user.active {
        return Err(Error::unauthenticated(
            "account_disabled",
            "this account has been deactivated",
        ));
    }
    let role = Role::parse(&user.role)
        .ok_or_else(|| anyhow::anyhow!("user {} has unknown role {:?}", user.id, user.role))?;
    if let Some(tenant_id) = user.tenant_id {
        let tenant = tenants::repo::find(&state.db, TenantId(tenant_id))
            .await?
            .ok_or(Error::NotFound("tenant"))?;
        if tenants::repo::status(&tenant) == TenantStatus::Suspended {
            return Err(Error::forbidden(
                "tenant_suspended",
                "your organisation's account is suspended; contact the platform operator",
            ));
        }
    }
    Ok(Actor {
        user_id: UserId(user.id),
        tenant_id: user.tenant_id.map(TenantId),
        role,
        email: user.email.clone(),
        address: None,
    })
}

/// The actor behind an access token, as the database says now.
pub async fn authenticate(state: &AppState, bearer: &str) -> Result<Actor> {
    let user_id = state.keys.verify(bearer)?;
    let user = users::repo::find_by_id(&state.db, user_id)
        .await?
        .ok_or_else(|| Error::unauthenticated("invalid_token", "the access token is not valid"))?;
    check_can_sign_in(state, &user).await
}
