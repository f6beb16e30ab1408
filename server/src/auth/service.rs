//! Logging in, refreshing, logging out, and turning a bearer token into an `Actor`.

use std::net::IpAddr;
use std::time::Duration;

use chrono::Utc;
use sea_orm::entity::prelude::*;
use sea_orm::{ActiveValue::Set, Condition, QueryFilter, QueryOrder, QuerySelect};
use stead_api_types::{Role, SessionInfo, TenantStatus, TokenResponse};

use super::refresh_model as refresh;
use super::{Actor, System, password, tokens};
use crate::app::AppState;
use crate::error::{Error, Result};
use crate::ids::{TenantId, UserId};
use crate::{tenants, users};

/// Where a sign-in or a refresh comes from, as its session records it.
pub struct Origin {
    pub address: IpAddr,
    /// The `User-Agent` header, if any (kept to its first 256 characters).
    pub user_agent: Option<String>,
}

impl Origin {
    fn user_agent(&self) -> Option<String> {
        self.user_agent
            .as_deref()
            .map(|ua| ua.chars().take(256).collect::<String>())
            .filter(|ua| !ua.trim().is_empty())
    }
}

/// Counts one more attempt at `what` (`login`, `reset`, `invite`) from the origin's address, and
/// refuses it past `STEAD_LOGIN_MAX_ATTEMPTS_PER_IP` in `STEAD_LOGIN_IP_WINDOW_SECS`: the one
/// limit on the routes anyone may call.
pub(crate) async fn throttle_address(state: &AppState, what: &str, origin: &Origin) -> Result<()> {
    let cfg = &state.config;
    let (hits, left) = state
        .live
        .hit(
            &format!("{what}:ip:{}", origin.address),
            Duration::from_secs(cfg.login_ip_window_secs),
        )
        .await?;
    if hits > cfg.login_max_attempts_per_ip {
        tracing::warn!(what, "throttled for this address");
        return Err(Error::Throttled {
            retry_after_secs: left.as_secs().max(1),
        });
    }
    Ok(())
}

pub(crate) fn account_key(email: &str) -> String {
    format!("login:account:{email}")
}

/// Password login, throttled per source address (all attempts) and per account (failures).
#[tracing::instrument(skip_all, fields(ip = %origin.address))]
pub async fn login(
    state: &AppState,
    body: &stead_api_types::LoginRequest,
    origin: &Origin,
) -> Result<TokenResponse> {
    let (email, password) = (body.email.as_str(), body.password.as_str());
    let cfg = &state.config;
    let email = email.trim().to_lowercase();
    let account_key = account_key(&email);
    throttle_address(state, "login", origin).await?;
    let (failures, account_left) = state.live.count(&account_key).await?;
    if failures >= cfg.login_max_failures_per_account {
        tracing::warn!("login throttled for this account");
        return Err(Error::Throttled {
            retry_after_secs: account_left.as_secs().max(1),
        });
    }

    let user = users::repo::find_by_email(crate::auth::System::auth(), &state.db, &email).await?;
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
    check_can_sign_in(state, &user).await?;
    // The second factor, when the person has one: a wrong code counts as a failed sign-in.
    if let Err(refused) = super::two_factor::check_sign_in(state, &user, body).await {
        if refused.counts_as_failure() {
            state
                .live
                .hit(
                    &account_key,
                    Duration::from_secs(cfg.login_failure_window_secs),
                )
                .await?;
        }
        return Err(refused.into());
    }
    state.live.reset(&account_key).await?;

    let mut active: users::model::ActiveModel = user.clone().into();
    active.last_login_at = Set(Some(Utc::now()));
    active.update(&state.db).await?;
    tracing::info!(user = %user.id, "logged in");
    issue(state, UserId(user.id), Uuid::new_v4(), origin).await
}

/// Exchanges a refresh token for a new pair. A token that was already exchanged (or revoked) is
/// evidence of theft: the whole family is revoked, and both holders must log in again.
pub async fn refresh(state: &AppState, presented: &str, origin: &Origin) -> Result<TokenResponse> {
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
    let user = users::repo::find_by_id(crate::auth::System::auth(), &state.db, UserId(row.user_id))
        .await?
        .ok_or_else(invalid)?;
    check_can_sign_in(state, &user).await?;
    issue(state, UserId(user.id), row.family_id, origin).await
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

/// Ends the sessions whose refresh tokens match `which` (their refresh and access tokens stop
/// working at once): the one way every sign-out, revocation and password change does it.
/// Answers how many tokens it revoked.
pub(crate) async fn end_sessions(db: &impl ConnectionTrait, which: Condition) -> Result<u64> {
    Ok(refresh::Entity::update_many()
        .col_expr(refresh::Column::RevokedAt, Expr::value(Utc::now()))
        .filter(which)
        .filter(refresh::Column::RevokedAt.is_null())
        .exec(db)
        .await?
        .rows_affected)
}

/// Ends every session of a user (password reset, deactivation).
pub async fn revoke_all_sessions(db: &impl ConnectionTrait, user: UserId) -> Result<()> {
    end_sessions(db, Condition::all().add(refresh::Column::UserId.eq(user.0))).await?;
    Ok(())
}

async fn revoke_family(state: &AppState, family: Uuid) -> Result<()> {
    end_sessions(
        &state.db,
        Condition::all().add(refresh::Column::FamilyId.eq(family)),
    )
    .await?;
    Ok(())
}

pub(crate) async fn issue(
    state: &AppState,
    user: UserId,
    family: Uuid,
    origin: &Origin,
) -> Result<TokenResponse> {
    let access_token = state.keys.issue(user, family)?;
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
        address: Set(Some(origin.address.to_string())),
        user_agent: Set(origin.user_agent()),
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

/// The checks shared by login, refresh and every authenticated request (and API keys, for their
/// creator), and what the person may do now.
pub(crate) async fn check_can_sign_in(
    state: &AppState,
    user: &users::model::Model,
) -> Result<Actor> {
    if !user.active {
        return Err(Error::unauthenticated(
            "account_disabled",
            "this account has been deactivated",
        ));
    }
    let role = Role::parse(&user.role)
        .ok_or_else(|| anyhow::anyhow!("user {} has unknown role {:?}", user.id, user.role))?;
    let mut two_factor_pending = false;
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
        two_factor_pending = tenant.require_two_factor && user.totp_secret.is_none();
    }
    let access = match user.tenant_id {
        Some(tenant) => {
            crate::roles::repo::access_of(
                System::auth(),
                &state.db,
                TenantId(tenant),
                UserId(user.id),
                role,
            )
            .await?
        }
        None => crate::auth::access::Access::of_role(role),
    };
    Ok(Actor {
        user_id: UserId(user.id),
        tenant_id: user.tenant_id.map(TenantId),
        role,
        access: std::sync::Arc::new(access),
        api_key: None,
        email: user.email.clone(),
        address: None,
        session: None,
        two_factor_pending,
    })
}

/// The actor behind an access token, as the database says now.
/// An access token of a session that was ended (signed out, revoked from the sessions list, or
/// by a password change) is refused at once, not when it expires.
pub async fn authenticate(state: &AppState, bearer: &str) -> Result<Actor> {
    let (user_id, session) = state.keys.verify(bearer)?;
    person(state, user_id, session).await
}

/// The same caller again, as the database says now: what an open live view asks every few
/// seconds, so that it ends when its viewer is deactivated, their session ended, their tenant
/// suspended, or their key revoked (and the caller re-derives the reach it needs).
pub async fn recheck(state: &AppState, actor: &Actor) -> Result<Actor> {
    match actor.api_key {
        Some(key) => crate::apikeys::service::recheck(state, key, actor.address).await,
        None => {
            let mut again = person(state, actor.user_id, actor.session).await?;
            again.address = actor.address;
            Ok(again)
        }
    }
}

async fn person(state: &AppState, user_id: UserId, session: Option<Uuid>) -> Result<Actor> {
    let user = users::repo::find_by_id(crate::auth::System::auth(), &state.db, user_id)
        .await?
        .ok_or_else(|| Error::unauthenticated("invalid_token", "the access token is not valid"))?;
    let mut actor = check_can_sign_in(state, &user).await?;
    if let Some(session) = session {
        let ended = refresh::Entity::find()
            .filter(refresh::Column::FamilyId.eq(session))
            .filter(refresh::Column::RevokedAt.is_not_null())
            .one(&state.db)
            .await?;
        if ended.is_some() {
            return Err(Error::unauthenticated(
                "session_ended",
                "this session has been ended: log in again",
            ));
        }
    }
    actor.session = session;
    Ok(actor)
}

/// The caller's open sessions (one per sign-in not yet ended or expired), newest first.
pub async fn sessions(state: &AppState, actor: &Actor) -> Result<Vec<SessionInfo>> {
    let now = Utc::now();
    let open = refresh::Entity::find()
        .filter(refresh::Column::UserId.eq(actor.user_id.0))
        .filter(refresh::Column::UsedAt.is_null())
        .filter(refresh::Column::RevokedAt.is_null())
        .filter(refresh::Column::ExpiresAt.gt(now))
        .order_by_desc(refresh::Column::CreatedAt)
        .all(&state.db)
        .await?;
    let families: Vec<Uuid> = open.iter().map(|r| r.family_id).collect();
    let started: std::collections::HashMap<Uuid, chrono::DateTime<Utc>> = refresh::Entity::find()
        .select_only()
        .column(refresh::Column::FamilyId)
        .column_as(refresh::Column::CreatedAt.min(), "started")
        .filter(refresh::Column::FamilyId.is_in(families))
        .group_by(refresh::Column::FamilyId)
        .into_tuple::<(Uuid, chrono::DateTime<Utc>)>()
        .all(&state.db)
        .await?
        .into_iter()
        .collect();
    Ok(open
        .into_iter()
        .map(|r| SessionInfo {
            id: r.family_id,
            started_at: started.get(&r.family_id).copied().unwrap_or(r.created_at),
            last_active_at: r.created_at,
            expires_at: r.expires_at,
            address: r.address,
            user_agent: r.user_agent,
            current: actor.session == Some(r.family_id),
        })
        .collect())
}

/// Ends one of the caller's sessions (another person's, or an unknown one, is 404): its refresh
/// token stops working, and so do its access tokens, at once.
pub async fn end_session(state: &AppState, actor: &Actor, session: Uuid) -> Result<()> {
    let txn = crate::audit::begin(&state.db, actor.tenant_id).await?;
    let ended = end_sessions(
        &txn,
        Condition::all()
            .add(refresh::Column::FamilyId.eq(session))
            .add(refresh::Column::UserId.eq(actor.user_id.0)),
    )
    .await?;
    if ended == 0 {
        return Err(Error::NotFound("session"));
    }
    crate::audit::record(
        &txn,
        actor.tenant_id,
        actor,
        "session.end",
        "session",
        Some(session),
        serde_json::json!({"current": actor.session == Some(session)}),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// The caller's account, once they typed its password again (for changes to how they sign in).
/// Wrong guesses count towards the account's sign-in throttle; `field` names the body's field.
pub(crate) async fn verify_own_password(
    state: &AppState,
    actor: &Actor,
    password: &str,
    field: &'static str,
) -> Result<users::model::Model> {
    let key = account_key(&actor.email);
    let (failures, left) = state.live.count(&key).await?;
    if failures >= state.config.login_max_failures_per_account {
        return Err(Error::Throttled {
            retry_after_secs: left.as_secs().max(1),
        });
    }
    let user = users::repo::find_by_id(crate::auth::System::auth(), &state.db, actor.user_id)
        .await?
        .ok_or(Error::NotFound("user"))?;
    if !password::verify(password, Some(user.password_hash.clone())).await {
        state
            .live
            .hit(
                &key,
                Duration::from_secs(state.config.login_failure_window_secs),
            )
            .await?;
        return Err(Error::invalid(
            "wrong_password",
            field,
            if field == "current_password" {
                "the current password is not right"
            } else {
                "the password is not right"
            },
        ));
    }
    Ok(user)
}

/// Changes the caller's own password, given the current one (wrong guesses count towards the
/// account's sign-in throttle). Every other session ends; the one making the change stays.
pub async fn change_password(
    state: &AppState,
    actor: &Actor,
    current: &str,
    new: &users::Password,
) -> Result<()> {
    let user = verify_own_password(state, actor, current, "current_password").await?;
    if current == new.expose() {
        return Err(Error::invalid(
            "same_password",
            "new_password",
            "the new password must differ from the current one",
        ));
    }
    let hash = password::hash(new).await?;
    let txn = crate::audit::begin(&state.db, actor.tenant_id).await?;
    let mut active: users::model::ActiveModel = user.into();
    active.password_hash = Set(hash);
    active.updated_at = Set(Utc::now());
    active.update(&txn).await?;
    let mut others = Condition::all().add(refresh::Column::UserId.eq(actor.user_id.0));
    if let Some(current) = actor.session {
        others = others.add(refresh::Column::FamilyId.ne(current));
    }
    let ended = end_sessions(&txn, others).await?;
    crate::audit::record(
        &txn,
        actor.tenant_id,
        actor,
        "user.password.change",
        "user",
        Some(actor.user_id.0),
        serde_json::json!({"password_changed": true, "other_sessions_ended": ended > 0}),
    )
    .await?;
    txn.commit().await?;
    tracing::info!(user = %actor.user_id.0, "password changed; other sessions ended");
    Ok(())
}

/// `GET /me`: who the caller is, as the database says now, and what they may do.
pub async fn me(state: &AppState, actor: &Actor) -> Result<stead_api_types::Me> {
    let user = users::repo::find_by_id(System::auth(), &state.db, actor.user_id)
        .await?
        .ok_or(Error::NotFound("user"))?;
    let tenant = match actor.tenant_id {
        Some(id) => {
            tenants::repo::find(&state.db, id)
                .await?
                .map(|t| stead_api_types::TenantSummary {
                    id: t.id,
                    name: t.name,
                })
        }
        None => None,
    };
    Ok(stead_api_types::Me {
        id: user.id,
        email: user.email,
        name: user.name,
        role: actor.role,
        tenant,
        permissions: actor.access.permissions(),
        groups: actor.access.groups(),
        group_only: actor
            .access
            .permissions()
            .into_iter()
            .filter(|p| !actor.access.tenant_wide(*p))
            .collect(),
        api_key: actor.api_key,
        two_factor: user.totp_secret.is_some(),
        two_factor_setup_required: actor.two_factor_pending && actor.api_key.is_none(),
    })
}
