//! Two-factor sign-in: a person sets up TOTP (their password again, then a code from the app
//! proves it has the secret), gets ten recovery codes once, and from then on signs in with a
//! code or one recovery code. A tenant admin can require it (`tenants.require_two_factor`) and
//! can turn off a person's second factor when they lost it. Each change is audited.

use chrono::Utc;
use sea_orm::entity::prelude::*;
use sea_orm::{ActiveValue::Set, Condition};
use stead_api_types::{LoginRequest, RecoveryCodes, TwoFactorSetup};

use super::{Actor, TenantCtx, service, totp};
use crate::app::AppState;
use crate::audit;
use crate::error::{Error, Result};
use crate::ids::UserId;
use crate::users::model::{self as users, Column, Entity as Users};

/// Why a sign-in's second factor was refused.
pub struct Refused {
    error: Error,
    /// A wrong code counts towards the account's failed sign-ins; a missing one does not.
    failure: bool,
}

impl Refused {
    pub fn counts_as_failure(&self) -> bool {
        self.failure
    }
}

impl From<Refused> for Error {
    fn from(r: Refused) -> Error {
        r.error
    }
}

impl From<Error> for Refused {
    fn from(error: Error) -> Refused {
        Refused {
            error,
            failure: false,
        }
    }
}

fn wrong_code() -> Refused {
    Refused {
        error: Error::unauthenticated(
            "invalid_two_factor_code",
            "the code is not right, or it was already used: enter the current code from your authenticator app, or a recovery code",
        ),
        failure: true,
    }
}

fn stored_codes(user: &users::Model) -> Vec<String> {
    user.recovery_codes
        .as_ref()
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default()
}

fn tenant_of(user: &users::Model) -> Option<crate::ids::TenantId> {
    user.tenant_id.map(crate::ids::TenantId)
}

/// At sign-in, after the password: nothing to do without a second factor; else the code (or
/// a recovery code, used up) must be right.
pub async fn check_sign_in(
    state: &AppState,
    user: &users::Model,
    body: &LoginRequest,
) -> std::result::Result<(), Refused> {
    let Some(sealed) = &user.totp_secret else {
        return Ok(());
    };
    if let Some(code) = body
        .recovery_code
        .as_deref()
        .filter(|c| !c.trim().is_empty())
    {
        return use_recovery_code(state, user, code).await;
    }
    let Some(code) = body.totp_code.as_deref().filter(|c| !c.trim().is_empty()) else {
        return Err(Refused {
            error: Error::unauthenticated(
                "two_factor_required",
                "enter the 6-digit code from your authenticator app (or one of your recovery codes)",
            ),
            failure: false,
        });
    };
    let secret = state
        .keys
        .sealer
        .open(user.id, sealed)
        .map_err(|e| Refused::from(Error::from(e)))?;
    let now = Utc::now().timestamp().max(0) as u64;
    let step = totp::matching_step(&secret, code, now).ok_or_else(wrong_code)? as i64;
    // Spend the step: a code (and any earlier one) works once, even raced on two nodes.
    let spent = Users::update_many()
        .col_expr(Column::TotpLastStep, Expr::value(step))
        .filter(Column::Id.eq(user.id))
        .filter(
            Condition::any()
                .add(Column::TotpLastStep.is_null())
                .add(Column::TotpLastStep.lt(step)),
        )
        .exec(&state.db)
        .await
        .map_err(Error::from)?;
    if spent.rows_affected != 1 {
        return Err(wrong_code());
    }
    Ok(())
}

async fn use_recovery_code(
    state: &AppState,
    user: &users::Model,
    code: &str,
) -> std::result::Result<(), Refused> {
    let hash = totp::hash_recovery_code(code);
    let txn = audit::begin(&state.db, tenant_of(user)).await?;
    // Read again inside the transaction: two sign-ins with one code, only one gets in.
    let user = Users::find_by_id(user.id)
        .one(&txn)
        .await
        .map_err(Error::from)?
        .ok_or(Error::NotFound("user"))?;
    let mut codes = stored_codes(&user);
    let Some(i) = codes.iter().position(|c| *c == hash) else {
        return Err(wrong_code());
    };
    codes.remove(i);
    let left = codes.len();
    let mut active: users::ActiveModel = user.clone().into();
    active.recovery_codes = Set(Some(serde_json::json!(codes)));
    active.update(&txn).await.map_err(Error::from)?;
    let actor = service::check_can_sign_in(state, &user).await?;
    audit::record(
        &txn,
        tenant_of(&user),
        &actor,
        "user.two_factor.recovery_code_used",
        "user",
        Some(user.id),
        serde_json::json!({"recovery_codes_left": left}),
    )
    .await?;
    txn.commit().await.map_err(Error::from)?;
    tracing::info!(user = %user.id, left, "signed in with a recovery code");
    Ok(())
}

/// Starts setting up (or over): a new secret, kept pending until `enable` gets a code for it.
pub async fn setup(state: &AppState, actor: &Actor, password: &str) -> Result<TwoFactorSetup> {
    let user = service::verify_own_password(state, actor, password, "password").await?;
    if user.totp_secret.is_some() {
        return Err(Error::conflict(
            "two_factor_already_on",
            "two-factor sign-in is already on; turn it off first to set up another app",
        ));
    }
    let secret = totp::new_secret();
    let (base32, otpauth_url, qr_svg) = totp::provisioning(&secret, &user.email)?;
    let sealed = state.keys.sealer.seal(actor.user_id.0, &secret)?;
    let txn = audit::begin(&state.db, actor.tenant_id).await?;
    let mut active: users::ActiveModel = user.into();
    active.totp_pending = Set(Some(sealed));
    active.update(&txn).await?;
    audit::record(
        &txn,
        actor.tenant_id,
        actor,
        "user.two_factor.setup",
        "user",
        Some(actor.user_id.0),
        serde_json::json!({"pending": true}),
    )
    .await?;
    txn.commit().await?;
    Ok(TwoFactorSetup {
        secret: base32,
        otpauth_url,
        qr_svg,
    })
}

/// Turns it on, given a code for the pending secret; answers the recovery codes, this once.
pub async fn enable(state: &AppState, actor: &Actor, code: &str) -> Result<RecoveryCodes> {
    let txn = audit::begin(&state.db, actor.tenant_id).await?;
    let user = Users::find_by_id(actor.user_id.0)
        .one(&txn)
        .await?
        .ok_or(Error::NotFound("user"))?;
    if user.totp_secret.is_some() {
        return Err(Error::conflict(
            "two_factor_already_on",
            "two-factor sign-in is already on",
        ));
    }
    let Some(pending) = user.totp_pending.clone() else {
        return Err(Error::conflict(
            "two_factor_not_set_up",
            "start with POST /api/v1/me/two-factor/setup, then send a code from the app",
        ));
    };
    let secret = state.keys.sealer.open(user.id, &pending)?;
    let now = Utc::now().timestamp().max(0) as u64;
    let Some(step) = totp::matching_step(&secret, code, now) else {
        return Err(Error::invalid(
            "invalid_two_factor_code",
            "code",
            "the code is not right: check that the app shows Stead's current code (and that this device's clock is right)",
        ));
    };
    let (codes, hashes) = totp::new_recovery_codes();
    let mut active: users::ActiveModel = user.into();
    active.totp_secret = Set(Some(pending));
    active.totp_pending = Set(None);
    active.totp_last_step = Set(Some(step as i64));
    active.recovery_codes = Set(Some(serde_json::json!(hashes)));
    active.updated_at = Set(Utc::now());
    active.update(&txn).await?;
    audit::record(
        &txn,
        actor.tenant_id,
        actor,
        "user.two_factor.enable",
        "user",
        Some(actor.user_id.0),
        serde_json::json!({"changes": {"two_factor": {"before": false, "after": true}}}),
    )
    .await?;
    txn.commit().await?;
    tracing::info!(user = %actor.user_id.0, "two-factor sign-in turned on");
    Ok(RecoveryCodes {
        recovery_codes: codes,
    })
}

/// Turns it off (the password again), unless the tenant requires it.
pub async fn disable(state: &AppState, actor: &Actor, password: &str) -> Result<()> {
    let user = service::verify_own_password(state, actor, password, "password").await?;
    if user.totp_secret.is_none() {
        return Err(Error::conflict(
            "two_factor_off",
            "two-factor sign-in is not on",
        ));
    }
    if let Some(tenant) = tenant_of(&user)
        && crate::tenants::repo::find(&state.db, tenant)
            .await?
            .is_some_and(|t| t.require_two_factor)
    {
        return Err(Error::conflict(
            "two_factor_required_by_tenant",
            "your organisation requires two-factor sign-in, so it cannot be turned off",
        ));
    }
    turn_off(
        state,
        actor,
        UserId(user.id),
        "user.two_factor.disable",
        None,
    )
    .await
}

/// A new set of recovery codes (the password again); the old ones stop working.
pub async fn new_recovery_codes(
    state: &AppState,
    actor: &Actor,
    password: &str,
) -> Result<RecoveryCodes> {
    let user = service::verify_own_password(state, actor, password, "password").await?;
    if user.totp_secret.is_none() {
        return Err(Error::conflict(
            "two_factor_off",
            "two-factor sign-in is not on",
        ));
    }
    let (codes, hashes) = totp::new_recovery_codes();
    let txn = audit::begin(&state.db, actor.tenant_id).await?;
    let mut active: users::ActiveModel = user.into();
    active.recovery_codes = Set(Some(serde_json::json!(hashes)));
    active.update(&txn).await?;
    audit::record(
        &txn,
        actor.tenant_id,
        actor,
        "user.two_factor.recovery_codes",
        "user",
        Some(actor.user_id.0),
        serde_json::json!({"recovery_codes_replaced": true}),
    )
    .await?;
    txn.commit().await?;
    Ok(RecoveryCodes {
        recovery_codes: codes,
    })
}

/// A tenant admin turns off another person's second factor (a lost phone): their sessions end,
/// and they sign in with their password (and set it up again if the tenant requires it).
pub async fn reset(state: &AppState, ctx: &TenantCtx, actor: &Actor, user: UserId) -> Result<()> {
    let target = crate::users::repo::get(&state.db, ctx, user).await?;
    if target.totp_secret.is_none() {
        return Err(Error::conflict(
            "two_factor_off",
            "this person does not use two-factor sign-in",
        ));
    }
    turn_off(state, actor, user, "user.two_factor.reset", Some(ctx)).await
}

async fn turn_off(
    state: &AppState,
    actor: &Actor,
    user: UserId,
    action: &str,
    ctx: Option<&TenantCtx>,
) -> Result<()> {
    let txn = audit::begin(&state.db, actor.tenant_id).await?;
    let target = match ctx {
        Some(ctx) => crate::users::repo::get(&txn, ctx, user).await?,
        None => Users::find_by_id(user.0)
            .one(&txn)
            .await?
            .ok_or(Error::NotFound("user"))?,
    };
    let mut active: users::ActiveModel = target.into();
    active.totp_secret = Set(None);
    active.totp_pending = Set(None);
    active.totp_last_step = Set(None);
    active.recovery_codes = Set(None);
    active.updated_at = Set(Utc::now());
    active.update(&txn).await?;
    if ctx.is_some() {
        service::revoke_all_sessions(&txn, user).await?;
    }
    audit::record(
        &txn,
        actor.tenant_id,
        actor,
        action,
        "user",
        Some(user.0),
        serde_json::json!({"changes": {"two_factor": {"before": true, "after": false}}}),
    )
    .await?;
    txn.commit().await?;
    tracing::info!(user = %user.0, action, "two-factor sign-in turned off");
    Ok(())
}
