//! Invitation queries. Everything takes the `TenantCtx`, except `find_by_token`, which serves the
//! invitee's link (they are not signed in; the token is the proof).

use chrono::Utc;
use sea_orm::entity::prelude::*;
use sea_orm::{ActiveValue::Set, PaginatorTrait, QueryOrder};
use stead_api_types::{Invitation, InvitationStatus, MailStatus, NewRoleBinding, Role, RoleRef};

use super::model::{self, Entity as Invitations};
use crate::auth::{System, TenantCtx};
use crate::error::{Error, Result};

pub fn status(i: &model::Model) -> InvitationStatus {
    if i.accepted_at.is_some() {
        InvitationStatus::Accepted
    } else if i.revoked_at.is_some() {
        InvitationStatus::Revoked
    } else if i.expires_at <= Utc::now() {
        InvitationStatus::Expired
    } else {
        InvitationStatus::Pending
    }
}

pub fn mail_status(i: &model::Model) -> MailStatus {
    match i.mail_status.as_str() {
        "sent" => MailStatus::Sent,
        "failed" => MailStatus::Failed,
        _ => MailStatus::NotConfigured,
    }
}

pub fn mail_status_str(status: MailStatus) -> &'static str {
    match status {
        MailStatus::Sent => "sent",
        MailStatus::Failed => "failed",
        MailStatus::NotConfigured => "not_configured",
    }
}

pub fn role_of(i: &model::Model) -> Role {
    Role::parse(&i.role).unwrap_or(Role::Member)
}

/// The bindings as stored: (role, groups) pairs.
pub fn bindings_of(i: &model::Model) -> Vec<(RoleRef, Vec<Uuid>)> {
    serde_json::from_value::<Vec<NewRoleBinding>>(i.bindings.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|b| (b.role, b.groups))
        .collect()
}

/// The API form, with the bindings' role names and the inviter's e-mail.
pub async fn to_api(
    db: &impl crate::db::Db,
    ctx: &TenantCtx,
    i: model::Model,
) -> Result<Invitation> {
    let bindings = crate::roles::repo::named(db, ctx, bindings_of(&i)).await?;
    let invited_by_email = crate::users::repo::get(db, ctx, crate::ids::UserId(i.invited_by))
        .await
        .map(|u| u.email)
        .unwrap_or_default();
    Ok(Invitation {
        id: i.id,
        status: status(&i),
        mail: mail_status(&i),
        role: role_of(&i),
        bindings,
        invited_by_email,
        email: i.email,
        name: i.name,
        mail_error: i.mail_error,
        created_at: i.created_at,
        expires_at: i.expires_at,
        accepted_at: i.accepted_at,
        link: None,
    })
}

pub async fn get(db: &impl ConnectionTrait, ctx: &TenantCtx, id: Uuid) -> Result<model::Model> {
    Invitations::find_by_id(id)
        .filter(model::Column::TenantId.eq(ctx.tenant_id().0))
        .one(db)
        .await?
        .ok_or(Error::NotFound("invitation"))
}

/// Newest first.
pub async fn list(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    page: u64,
    per_page: u64,
) -> Result<(Vec<model::Model>, u64)> {
    let paginator = Invitations::find()
        .filter(model::Column::TenantId.eq(ctx.tenant_id().0))
        .order_by_desc(model::Column::CreatedAt)
        .order_by_desc(model::Column::Id)
        .paginate(db, per_page);
    let total = paginator.num_items().await?;
    Ok((paginator.fetch_page(page - 1).await?, total))
}

/// An invitation to `email` in the tenant that can still be accepted.
pub async fn open_for(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    email: &str,
) -> Result<Option<model::Model>> {
    Ok(Invitations::find()
        .filter(model::Column::TenantId.eq(ctx.tenant_id().0))
        .filter(model::Column::Email.eq(email))
        .filter(model::Column::AcceptedAt.is_null())
        .filter(model::Column::RevokedAt.is_null())
        .filter(model::Column::ExpiresAt.gt(Utc::now()))
        .one(db)
        .await?)
}

/// The invitee's link: any tenant, by the token's hash.
pub async fn find_by_token(
    _: System,
    db: &impl ConnectionTrait,
    hash: &str,
) -> Result<Option<model::Model>> {
    Ok(Invitations::find()
        .filter(model::Column::TokenHash.eq(hash))
        .one(db)
        .await?)
}

pub async fn save(db: &impl ConnectionTrait, active: model::ActiveModel) -> Result<model::Model> {
    Ok(active.update(db).await?)
}

/// Spends the invitation once: answers whether this call did (a concurrent one finds it spent).
pub async fn spend(_: System, db: &impl ConnectionTrait, id: Uuid, user: Uuid) -> Result<bool> {
    let done = Invitations::update_many()
        .col_expr(model::Column::AcceptedAt, Expr::value(Utc::now()))
        .col_expr(model::Column::AcceptedUserId, Expr::value(user))
        .filter(model::Column::Id.eq(id))
        .filter(model::Column::AcceptedAt.is_null())
        .filter(model::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(done.rows_affected == 1)
}

pub async fn insert(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    new: model::ActiveModel,
) -> Result<model::Model> {
    let mut new = new;
    new.tenant_id = Set(ctx.tenant_id().0);
    Ok(new.insert(db).await?)
}
