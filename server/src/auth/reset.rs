//! Password reset by e-mail: a one-time link (its token stored as SHA-256, valid for
//! `STEAD_PASSWORD_RESET_TTL_SECS`) to a page where the person sets a new password. Asking
//! answers the same whether or not the address has an account, and takes as long (the mail goes
//! out after the answer); using the link ends every session and is audited. A second factor
//! stays as it was: a reset does not sign anyone in.

use std::time::Duration;

use chrono::Utc;
use sea_orm::entity::prelude::*;
use sea_orm::{ActiveValue::Set, Condition};

use super::reset_model as reset;
use super::service::{Origin, account_key, check_can_sign_in, end_sessions};
use super::{password, tokens};
use crate::app::AppState;
use crate::audit;
use crate::error::{Error, Result};
use crate::users::{Email, Password};

/// Mails a reset link to `email`'s account, if there is an active one.
pub async fn request(state: &AppState, email: &str, origin: &Origin) -> Result<()> {
    let cfg = &state.config;
    super::service::throttle_address(state, "reset", origin).await?;
    if !state.mailer.configured() {
        return Err(Error::unavailable(
            "mail_not_configured",
            "this Stead sends no e-mail (no SMTP server is configured): ask your administrator to set a new password",
        ));
    }
    let email = Email::parse(email).map_err(|e| Error::invalid("invalid_email", "email", e))?;
    let Some(user) =
        crate::users::repo::find_by_email(crate::auth::System::auth(), &state.db, email.as_str())
            .await?
    else {
        tracing::info!("password reset asked for an address with no account");
        return Ok(());
    };
    if !user.active {
        tracing::info!(user = %user.id, "password reset asked for a deactivated account");
        return Ok(());
    }
    // At most five links an hour per account, whoever asks.
    let (sent, _) = state
        .live
        .hit(
            &format!("reset:account:{}", user.id),
            Duration::from_secs(3600),
        )
        .await?;
    if sent > 5 {
        tracing::warn!(user = %user.id, "password reset links: hourly limit reached");
        return Ok(());
    }
    let token = tokens::random_token();
    let now = Utc::now();
    let ttl = cfg.password_reset_ttl_secs;
    reset::ActiveModel {
        id: Set(Uuid::new_v4()),
        user_id: Set(user.id),
        token_hash: Set(tokens::hash_token(&token)),
        created_at: Set(now),
        expires_at: Set(now + chrono::Duration::seconds(ttl as i64)),
        used_at: Set(None),
    }
    .insert(&state.db)
    .await?;
    let link = crate::mail::link(cfg, "/reset-password", &token);
    let text = format!(
        "Someone (we hope you) asked to reset the password of the Stead account {}.\n\n\
         Choose a new password here; the link works once, for {}:\n\n{link}\n\n\
         If you did not ask, ignore this message: your password stays as it is.\n",
        user.email,
        crate::mail::duration_words(ttl),
    );
    let state = state.clone();
    let to = user.email.clone();
    tokio::spawn(async move {
        let sent = state
            .mailer
            .send(crate::mail::Mail {
                to: &to,
                subject: "Reset your Stead password".into(),
                text,
            })
            .await;
        match sent {
            Ok(()) => tracing::info!(user = %user.id, "password reset link sent"),
            Err(e) => tracing::warn!(user = %user.id, error = %e, "password reset link not sent"),
        }
    });
    Ok(())
}

/// Sets the new password with the link's token: once, before it expires. Every session of the
/// account ends, and so does every other reset link.
pub async fn confirm(
    state: &AppState,
    token: &str,
    new_password: &str,
    origin: &Origin,
) -> Result<()> {
    let new = Password::parse(new_password)
        .map_err(|e| Error::invalid("weak_password", "new_password", e))?;
    let hash = tokens::hash_token(token.trim());
    let row = reset::Entity::find()
        .filter(reset::Column::TokenHash.eq(hash))
        .one(&state.db)
        .await?
        .ok_or_else(tokens::invalid_link)?;
    tokens::OneTime {
        used: row.used_at.is_some(),
        revoked: false,
        expires_at: row.expires_at,
    }
    .check()?;
    let user = crate::users::repo::find_by_id(
        crate::auth::System::auth(),
        &state.db,
        crate::ids::UserId(row.user_id),
    )
    .await?
    .ok_or_else(tokens::invalid_link)?;
    let mut actor = check_can_sign_in(state, &user).await?;
    actor.address = Some(origin.address);
    let password_hash = password::hash(&new).await?;
    let txn = audit::begin(&state.db, actor.tenant_id).await?;
    // Spend this link (a concurrent use finds it spent), then every other one of the account.
    let spent = reset::Entity::update_many()
        .col_expr(reset::Column::UsedAt, Expr::value(Utc::now()))
        .filter(reset::Column::Id.eq(row.id))
        .filter(reset::Column::UsedAt.is_null())
        .exec(&txn)
        .await?;
    if spent.rows_affected != 1 {
        return Err(tokens::link_used());
    }
    reset::Entity::update_many()
        .col_expr(reset::Column::UsedAt, Expr::value(Utc::now()))
        .filter(reset::Column::UserId.eq(user.id))
        .filter(reset::Column::UsedAt.is_null())
        .exec(&txn)
        .await?;
    let mut active: crate::users::model::ActiveModel = user.clone().into();
    active.password_hash = Set(password_hash);
    active.updated_at = Set(Utc::now());
    active.update(&txn).await?;
    end_sessions(
        &txn,
        Condition::all().add(super::refresh_model::Column::UserId.eq(user.id)),
    )
    .await?;
    audit::record(
        &txn,
        actor.tenant_id,
        &actor,
        "user.password.reset",
        "user",
        Some(user.id),
        serde_json::json!({"password_changed": true, "sessions_ended": true}),
    )
    .await?;
    txn.commit().await?;
    state.live.reset(&account_key(&user.email)).await?;
    tracing::info!(user = %user.id, "password reset with a mailed link; every session ended");
    Ok(())
}
