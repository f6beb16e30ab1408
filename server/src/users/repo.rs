//! User queries. Everything a tenant's people can reach takes the `TenantCtx`; the few unscoped
//! lookups (`find_by_email`, `find_by_id`) serve authentication only.

use chrono::Utc;
use sea_orm::entity::prelude::*;
use sea_orm::{ActiveValue::Set, PaginatorTrait, QueryOrder};
use stead_api_types::Role;

use super::Email;
use super::model::{self, Entity as Users};
use crate::auth::{System, TenantCtx};
use crate::error::{Error, Result};
use crate::ids::UserId;

pub fn to_api(u: model::Model) -> stead_api_types::User {
    stead_api_types::User {
        id: u.id,
        role: Role::parse(&u.role).unwrap_or(Role::Viewer),
        email: u.email,
        name: u.name,
        active: u.active,
        two_factor: u.totp_secret.is_some(),
        created_at: u.created_at,
        last_login_at: u.last_login_at,
    }
}

/// Authentication only: the account behind an e-mail, in any tenant.
pub async fn find_by_email(
    _: System,
    db: &impl crate::db::Db,
    email: &str,
) -> Result<Option<model::Model>> {
    Ok(Users::find()
        .filter(model::Column::Email.eq(email.trim().to_lowercase()))
        .one(db)
        .await?)
}

/// Authentication only: the account behind a verified token.
pub async fn find_by_id(
    _: System,
    db: &impl crate::db::Db,
    id: UserId,
) -> Result<Option<model::Model>> {
    Ok(Users::find_by_id(id.0).one(db).await?)
}

pub async fn get(db: &impl crate::db::Db, ctx: &TenantCtx, id: UserId) -> Result<model::Model> {
    Users::find_by_id(id.0)
        .filter(model::Column::TenantId.eq(ctx.tenant_id().0))
        .one(db)
        .await?
        .ok_or(Error::NotFound("user"))
}

pub async fn list(
    db: &impl crate::db::Db,
    ctx: &TenantCtx,
    page: u64,
    per_page: u64,
) -> Result<(Vec<model::Model>, u64)> {
    let paginator = Users::find()
        .filter(model::Column::TenantId.eq(ctx.tenant_id().0))
        .order_by_asc(model::Column::Email)
        .paginate(db, per_page);
    let total = paginator.num_items().await?;
    Ok((paginator.fetch_page(page - 1).await?, total))
}

/// Creates a person in `ctx`'s tenant, or a platform admin when `ctx` is `None`.
pub async fn create(
    db: &impl ConnectionTrait,
    ctx: Option<&TenantCtx>,
    email: &Email,
    name: &str,
    role: Role,
    password_hash: String,
) -> Result<model::Model> {
    let now = Utc::now();
    model::ActiveModel {
        id: Set(UserId::new().0),
        tenant_id: Set(ctx.map(|c| c.tenant_id().0)),
        email: Set(email.as_str().to_owned()),
        name: Set(name.trim().to_owned()),
        password_hash: Set(password_hash),
        role: Set(role.as_str().to_owned()),
        active: Set(true),
        created_at: Set(now),
        updated_at: Set(now),
        last_login_at: Set(None),
        totp_secret: Set(None),
        totp_pending: Set(None),
        totp_last_step: Set(None),
        recovery_codes: Set(None),
    }
    .insert(db)
    .await
    .map_err(|e| {
        Error::on_unique_violation(
            e,
            "email_taken",
            format!(
                "an account with the e-mail {} already exists",
                email.as_str()
            ),
        )
    })
}

pub async fn save(db: &impl crate::db::Db, active: model::ActiveModel) -> Result<model::Model> {
    Ok(active.update(db).await?)
}

pub async fn platform_admin_exists(_: System, db: &impl crate::db::Db) -> Result<bool> {
    Ok(Users::find()
        .filter(model::Column::Role.eq(Role::PlatformAdmin.as_str()))
        .count(db)
        .await?
        > 0)
}

/// Break-glass only (`stead admin reset-password`): sets a password by e-mail, in any tenant.
pub async fn set_password_by_email(
    sys: System,
    db: &impl crate::db::Db,
    email: &Email,
    password_hash: String,
) -> Result<model::Model> {
    let user = find_by_email(sys, db, email.as_str())
        .await?
        .ok_or(Error::NotFound("user"))?;
    let mut active: model::ActiveModel = user.into();
    active.password_hash = Set(password_hash);
    active.active = Set(true);
    active.updated_at = Set(Utc::now());
    Ok(active.update(db).await?)
}
