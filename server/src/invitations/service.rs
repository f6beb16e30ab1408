//! Making, re-sending, withdrawing and accepting invitations: each change in one transaction with
//! its audit entry; the e-mail goes out after the commit, and its outcome is kept on the
//! invitation (so a failed mail shows, and can be re-sent).

use std::sync::Arc;

use chrono::Utc;
use sea_orm::ActiveValue::Set;
use stead_api_types::{
    CreateInvitation, Invitation, InvitationPreview, MailStatus, NewRoleBinding, Permission, Role,
    RoleRef, TenantStatus, TokenResponse,
};
use uuid::Uuid;

use super::{model, repo};
use crate::app::AppState;
use crate::audit;
use crate::auth::service::Origin;
use crate::auth::{Actor, TenantCtx, password, tokens};
use crate::error::{Error, Result};
use crate::ids::{TenantId, UserId};
use crate::tenants::quotas;
use crate::users::{Email, Password};

fn invitable_role(role: Role) -> Result<Role> {
    match role {
        Role::PlatformAdmin => Err(Error::invalid(
            "invalid_role",
            "role",
            "people of a tenant can be tenant_admin, operator, viewer or member",
        )),
        role => Ok(role),
    }
}

fn new_token(state: &AppState) -> (String, String, chrono::DateTime<Utc>) {
    let token = tokens::random_token();
    let hash = tokens::hash_token(&token);
    let expires = Utc::now() + chrono::Duration::seconds(state.config.invitation_ttl_secs as i64);
    (token, hash, expires)
}

pub async fn create(
    state: &AppState,
    ctx: &TenantCtx,
    actor: &Actor,
    body: CreateInvitation,
) -> Result<Invitation> {
    let email =
        Email::parse(&body.email).map_err(|e| Error::invalid("invalid_email", "email", e))?;
    let role = invitable_role(body.role)?;
    let name = body.name.unwrap_or_default().trim().to_owned();
    if name.chars().count() > 200 {
        return Err(Error::invalid(
            "invalid_name",
            "name",
            "a name has at most 200 characters",
        ));
    }
    // Nobody invites with more than they hold: the role, and each binding over its scope.
    crate::roles::service::check_permissions(actor, &Permission::of_role(role), &[])?;
    let txn = audit::begin(&state.db, Some(ctx.tenant_id())).await?;
    let bindings = crate::roles::service::check_bindings(&txn, ctx, actor, body.bindings).await?;
    if crate::users::repo::find_by_email(crate::auth::System::auth(), &txn, email.as_str())
        .await?
        .is_some()
    {
        return Err(Error::conflict(
            "email_taken",
            format!(
                "an account with the e-mail {} already exists",
                email.as_str()
            ),
        ));
    }
    if repo::open_for(&txn, ctx, email.as_str()).await?.is_some() {
        return Err(Error::conflict(
            "invitation_pending",
            format!(
                "{} already has an invitation waiting: re-send it, or withdraw it first",
                email.as_str()
            ),
        ));
    }
    quotas::check(
        &txn,
        &quotas::Defaults::of(&state.config),
        ctx.tenant_id(),
        quotas::Quota::Users,
        1,
    )
    .await?;
    let (token, hash, expires_at) = new_token(state);
    let stored: Vec<NewRoleBinding> = bindings
        .iter()
        .map(|(role, groups)| NewRoleBinding {
            role: *role,
            groups: groups.clone(),
        })
        .collect();
    let invitation = repo::insert(
        &txn,
        ctx,
        model::ActiveModel {
            id: Set(Uuid::new_v4()),
            tenant_id: Set(ctx.tenant_id().0),
            email: Set(email.as_str().to_owned()),
            name: Set(name),
            role: Set(role.as_str().to_owned()),
            bindings: Set(serde_json::json!(stored)),
            token_hash: Set(hash),
            invited_by: Set(actor.user_id.0),
            created_at: Set(Utc::now()),
            expires_at: Set(expires_at),
            accepted_at: Set(None),
            accepted_user_id: Set(None),
            revoked_at: Set(None),
            mail_status: Set(repo::mail_status_str(MailStatus::NotConfigured).into()),
            mail_error: Set(None),
        },
    )
    .await?;
    audit::record(
        &txn,
        Some(ctx.tenant_id()),
        actor,
        "invitation.create",
        "invitation",
        Some(invitation.id),
        serde_json::json!({"email": invitation.email, "role": invitation.role, "bindings": stored}),
    )
    .await?;
    txn.commit().await?;
    mail(state, ctx, actor, invitation, &token).await
}

/// A new link (the old one stops working) and a new expiry, mailed again.
pub async fn resend(
    state: &AppState,
    ctx: &TenantCtx,
    actor: &Actor,
    id: Uuid,
) -> Result<Invitation> {
    let txn = audit::begin(&state.db, Some(ctx.tenant_id())).await?;
    let invitation = repo::get(&txn, ctx, id).await?;
    if invitation.accepted_at.is_some() || invitation.revoked_at.is_some() {
        return Err(Error::conflict(
            "invitation_closed",
            "this invitation was accepted or withdrawn: make a new one",
        ));
    }
    let (token, hash, expires_at) = new_token(state);
    let mut active: model::ActiveModel = invitation.into();
    active.token_hash = Set(hash);
    active.expires_at = Set(expires_at);
    let invitation = repo::save(&txn, active).await?;
    audit::record(
        &txn,
        Some(ctx.tenant_id()),
        actor,
        "invitation.resend",
        "invitation",
        Some(id),
        serde_json::json!({"email": invitation.email, "expires_at": expires_at}),
    )
    .await?;
    txn.commit().await?;
    mail(state, ctx, actor, invitation, &token).await
}

/// Withdraws an invitation: its link stops working.
pub async fn revoke(state: &AppState, ctx: &TenantCtx, actor: &Actor, id: Uuid) -> Result<()> {
    let txn = audit::begin(&state.db, Some(ctx.tenant_id())).await?;
    let invitation = repo::get(&txn, ctx, id).await?;
    if invitation.accepted_at.is_some() {
        return Err(Error::conflict(
            "invitation_accepted",
            "this invitation was accepted: deactivate the person instead",
        ));
    }
    if invitation.revoked_at.is_some() {
        return Ok(());
    }
    let email = invitation.email.clone();
    let mut active: model::ActiveModel = invitation.into();
    active.revoked_at = Set(Some(Utc::now()));
    repo::save(&txn, active).await?;
    audit::record(
        &txn,
        Some(ctx.tenant_id()),
        actor,
        "invitation.revoke",
        "invitation",
        Some(id),
        serde_json::json!({"email": email}),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// Sends the invitation's e-mail (after its transaction committed) and keeps the outcome.
async fn mail(
    state: &AppState,
    ctx: &TenantCtx,
    actor: &Actor,
    invitation: model::Model,
    token: &str,
) -> Result<Invitation> {
    let link = crate::mail::link(&state.config, "/invite", token);
    let (status, error) = if state.mailer.configured() {
        let tenant = crate::tenants::repo::find(&state.db, ctx.tenant_id())
            .await?
            .map(|t| t.name)
            .unwrap_or_default();
        let text = format!(
            "{} invited you to join {tenant} on Stead, as {}.\n\n\
             Choose your password and sign in here; the link works once, for {}:\n\n{link}\n\n\
             If you did not expect this invitation, ignore this message.\n",
            actor.email,
            invitation.email,
            crate::mail::duration_words(state.config.invitation_ttl_secs),
        );
        match state
            .mailer
            .send(crate::mail::Mail {
                to: &invitation.email,
                subject: format!("You are invited to {tenant} on Stead"),
                text,
            })
            .await
        {
            Ok(()) => (MailStatus::Sent, None),
            Err(e) => (MailStatus::Failed, Some(e)),
        }
    } else {
        (MailStatus::NotConfigured, None)
    };
    let mut active: model::ActiveModel = invitation.into();
    active.mail_status = Set(repo::mail_status_str(status).into());
    active.mail_error = Set(error);
    let invitation = repo::save(&state.db, active).await?;
    let mut out = repo::to_api(&state.db, ctx, invitation).await?;
    if status == MailStatus::NotConfigured {
        out.link = Some(link);
    }
    Ok(out)
}

/// The invitation behind a link, if it can still be accepted.
async fn by_link(state: &AppState, token: &str) -> Result<model::Model> {
    let invitation = repo::find_by_token(
        crate::auth::System::auth(),
        &state.db,
        &tokens::hash_token(token.trim()),
    )
    .await?
    .ok_or_else(tokens::invalid_link)?;
    tokens::OneTime {
        used: invitation.accepted_at.is_some(),
        revoked: invitation.revoked_at.is_some(),
        expires_at: invitation.expires_at,
    }
    .check()?;
    Ok(invitation)
}

/// What the invitee's page shows before they accept.
pub async fn preview(state: &AppState, token: &str) -> Result<InvitationPreview> {
    let invitation = by_link(state, token).await?;
    let tenant = crate::tenants::repo::find(&state.db, TenantId(invitation.tenant_id))
        .await?
        .ok_or_else(tokens::invalid_link)?;
    let invited_by_email = crate::users::repo::find_by_id(
        crate::auth::System::auth(),
        &state.db,
        UserId(invitation.invited_by),
    )
    .await?
    .map(|u| u.email)
    .unwrap_or_default();
    Ok(InvitationPreview {
        email: invitation.email,
        name: invitation.name,
        tenant_name: tenant.name,
        invited_by_email,
        expires_at: invitation.expires_at,
    })
}

/// Creates the invitee's account with the invitation's role and bindings (those whose role and
/// groups still exist), spends the link, and signs them in.
pub async fn accept(
    state: &AppState,
    token: &str,
    password: &str,
    name: Option<&str>,
    origin: &Origin,
) -> Result<TokenResponse> {
    crate::auth::service::throttle_address(state, "invite", origin).await?;
    let password =
        Password::parse(password).map_err(|e| Error::invalid("weak_password", "password", e))?;
    let invitation = by_link(state, token).await?;
    let tenant_id = TenantId(invitation.tenant_id);
    let tenant = crate::tenants::repo::find(&state.db, tenant_id)
        .await?
        .ok_or_else(tokens::invalid_link)?;
    if crate::tenants::repo::status(&tenant) == TenantStatus::Suspended {
        return Err(Error::forbidden(
            "tenant_suspended",
            "this organisation's account is suspended; contact the platform operator",
        ));
    }
    let hash = password::hash(&password).await?;
    let ctx = TenantCtx::new(tenant_id);
    let role = repo::role_of(&invitation);
    let email = Email::parse(&invitation.email).map_err(anyhow::Error::msg)?;
    let name = name
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .unwrap_or(&invitation.name)
        .to_owned();
    let txn = audit::begin(&state.db, Some(tenant_id)).await?;
    quotas::check(
        &txn,
        &quotas::Defaults::of(&state.config),
        tenant_id,
        quotas::Quota::Users,
        1,
    )
    .await?;
    let user = crate::users::repo::create(&txn, Some(&ctx), &email, &name, role, hash).await?;
    if !repo::spend(crate::auth::System::auth(), &txn, invitation.id, user.id).await? {
        return Err(tokens::link_used());
    }
    let mut bindings = Vec::new();
    for (role_ref, groups) in repo::bindings_of(&invitation) {
        if let RoleRef::Custom(id) = role_ref
            && crate::roles::repo::get(&txn, &ctx, id).await.is_err()
        {
            continue;
        }
        let mut kept = Vec::new();
        for g in &groups {
            if crate::groups::repo::get(&txn, &ctx, *g).await.is_ok() {
                kept.push(*g);
            }
        }
        // A binding over groups that are all gone grants nothing (not the whole tenant).
        if !groups.is_empty() && kept.is_empty() {
            continue;
        }
        bindings.push((role_ref, kept));
    }
    crate::roles::repo::replace_bindings(&txn, &ctx, UserId(user.id), &bindings).await?;
    let newcomer = Actor {
        user_id: UserId(user.id),
        tenant_id: Some(tenant_id),
        role,
        access: Arc::new(crate::auth::access::Access::of_role(role)),
        api_key: None,
        email: user.email.clone(),
        address: Some(origin.address),
        session: None,
        two_factor_pending: false,
    };
    audit::record(
        &txn,
        Some(tenant_id),
        &newcomer,
        "invitation.accept",
        "invitation",
        Some(invitation.id),
        serde_json::json!({"user_id": user.id, "email": user.email, "role": user.role}),
    )
    .await?;
    txn.commit().await?;
    tracing::info!(user = %user.id, tenant = %tenant_id.0, "invitation accepted");
    crate::auth::service::issue(state, UserId(user.id), Uuid::new_v4(), origin).await
}
