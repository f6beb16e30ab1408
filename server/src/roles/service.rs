//! Changes to roles and bindings: each in one transaction with its audit entry.
//!
//! Nobody grants what they do not hold: a role can only be given permissions its author holds over
//! the whole tenant, and a binding can only hand out a role whose permissions the author holds over
//! the scope of the binding. So `roles.manage` cannot be turned into more than its holder has.

use chrono::Utc;
use sea_orm::ActiveValue::Set;
use sea_orm::DatabaseConnection;
use stead_api_types::{
    CreateRole, CustomRole, NewRoleBinding, Permission, Role, RoleBinding, RoleRef,
    SetRoleBindings, UpdateRole,
};
use uuid::Uuid;

use super::repo;
use crate::audit;
use crate::auth::{Actor, TenantCtx};
use crate::error::{Error, Result};
use crate::ids::UserId;

pub(crate) fn check_permissions(
    actor: &Actor,
    permissions: &[Permission],
    groups: &[Uuid],
) -> Result<()> {
    if permissions.contains(&Permission::TenantsManage) {
        return Err(Error::invalid(
            "invalid_permission",
            "permissions",
            "`tenants.manage` belongs to the platform operator and cannot be part of a tenant's role",
        ));
    }
    if let Some(p) = actor.access.lacks(permissions, groups) {
        return Err(Error::forbidden(
            "exceeds_your_access",
            format!(
                "you cannot grant `{}`{}: you do not hold it there yourself",
                p.as_str(),
                if groups.is_empty() {
                    " over the whole tenant"
                } else {
                    " over those groups"
                }
            ),
        ));
    }
    Ok(())
}

fn sorted(mut permissions: Vec<Permission>) -> Vec<Permission> {
    permissions.sort();
    permissions.dedup();
    permissions
}

pub async fn create(
    db: &DatabaseConnection,
    ctx: &TenantCtx,
    actor: &Actor,
    body: CreateRole,
) -> Result<CustomRole> {
    let name = repo::parse_name(&body.name)?;
    let description = body.description.unwrap_or_default().trim().to_owned();
    let permissions = sorted(body.permissions);
    check_permissions(actor, &permissions, &[])?;
    let txn = audit::begin(db, Some(ctx.tenant_id())).await?;
    let role = repo::insert(&txn, ctx, &name, &description, &permissions).await?;
    let created = repo::to_api(role, 0);
    audit::record(
        &txn,
        Some(ctx.tenant_id()),
        actor,
        "role.create",
        "role",
        Some(created.id),
        serde_json::json!({"name": created.name, "permissions": created.permissions}),
    )
    .await?;
    txn.commit().await?;
    Ok(created)
}

pub async fn update(
    db: &DatabaseConnection,
    ctx: &TenantCtx,
    actor: &Actor,
    id: Uuid,
    body: UpdateRole,
) -> Result<CustomRole> {
    let name = body.name.as_deref().map(repo::parse_name).transpose()?;
    let permissions = body.permissions.map(sorted);
    if let Some(p) = &permissions {
        check_permissions(actor, p, &[])?;
    }
    let txn = audit::begin(db, Some(ctx.tenant_id())).await?;
    let role = repo::get(&txn, ctx, id).await?;
    let users = repo::holder_count(&txn, ctx, id).await?;
    let before = repo::to_api(role.clone(), users);
    // Taking permissions away is always allowed; adding needs them, checked above.
    let mut active: super::model::role::ActiveModel = role.into();
    if let Some(name) = name {
        active.name = Set(name);
    }
    if let Some(d) = body.description {
        active.description = Set(d.trim().to_owned());
    }
    if let Some(p) = &permissions {
        active.permissions = Set(serde_json::to_value(p).unwrap_or_default());
    }
    active.updated_at = Set(Utc::now());
    let after = repo::to_api(repo::save(&txn, active).await?, users);
    audit::record(
        &txn,
        Some(ctx.tenant_id()),
        actor,
        "role.update",
        "role",
        Some(id),
        audit::diff(&before, &after),
    )
    .await?;
    txn.commit().await?;
    Ok(after)
}

pub async fn delete(
    db: &DatabaseConnection,
    ctx: &TenantCtx,
    actor: &Actor,
    id: Uuid,
) -> Result<()> {
    let txn = audit::begin(db, Some(ctx.tenant_id())).await?;
    let role = repo::get(&txn, ctx, id).await?;
    let users = repo::holder_count(&txn, ctx, id).await?;
    if users > 0 {
        return Err(Error::conflict(
            "role_in_use",
            format!(
                "{users} {} still hold{} the role {:?}: remove it from their bindings first",
                if users == 1 { "person" } else { "people" },
                if users == 1 { "s" } else { "" },
                role.name
            ),
        ));
    }
    repo::delete(&txn, ctx, id).await?;
    audit::record(
        &txn,
        Some(ctx.tenant_id()),
        actor,
        "role.delete",
        "role",
        Some(id),
        serde_json::json!({"name": role.name}),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// The bindings as they will be stored (one entry per role, its groups merged), once each role
/// exists in the tenant, each group too, and the author holds what each binding grants over its
/// scope. Shared by `set_bindings` and invitations.
pub async fn check_bindings(
    db: &impl sea_orm::ConnectionTrait,
    ctx: &TenantCtx,
    actor: &Actor,
    bindings: Vec<NewRoleBinding>,
) -> Result<Vec<(RoleRef, Vec<Uuid>)>> {
    let mut wanted: Vec<(RoleRef, Vec<Uuid>)> = Vec::new();
    for (i, b) in bindings.into_iter().enumerate() {
        let permissions = match b.role {
            RoleRef::Builtin(Role::PlatformAdmin) => {
                return Err(Error::invalid(
                    "invalid_role",
                    "bindings",
                    format!("binding {i}: platform_admin is not a tenant role"),
                ));
            }
            RoleRef::Builtin(r) => Permission::of_role(r),
            RoleRef::Custom(id) => {
                let role = repo::get(db, ctx, id).await.map_err(|_| {
                    Error::invalid(
                        "unknown_role",
                        "bindings",
                        format!("binding {i}: there is no role {id} in this tenant"),
                    )
                })?;
                repo::permissions_of(&role.permissions)
            }
        };
        let mut groups = b.groups;
        groups.sort();
        groups.dedup();
        for g in &groups {
            crate::groups::repo::get(db, ctx, *g).await.map_err(|_| {
                Error::invalid(
                    "unknown_group",
                    "bindings",
                    format!("binding {i}: there is no device group {g} in this tenant"),
                )
            })?;
        }
        // Over groups, only the device permissions count (the rest are not granted there).
        let granted: Vec<Permission> = permissions
            .into_iter()
            .filter(|p| groups.is_empty() || p.group_scopable())
            .collect();
        check_permissions(actor, &granted, &groups)?;
        match wanted.iter_mut().find(|(r, _)| *r == b.role) {
            Some((_, existing)) if existing.is_empty() || groups.is_empty() => existing.clear(),
            Some((_, existing)) => {
                existing.extend(groups);
                existing.sort();
                existing.dedup();
            }
            None => wanted.push((b.role, groups)),
        }
    }
    Ok(wanted)
}

/// Replaces a person's bindings (checked as `check_bindings` says).
pub async fn set_bindings(
    db: &DatabaseConnection,
    ctx: &TenantCtx,
    actor: &Actor,
    user: UserId,
    body: SetRoleBindings,
) -> Result<Vec<RoleBinding>> {
    let txn = audit::begin(db, Some(ctx.tenant_id())).await?;
    crate::users::repo::get(&txn, ctx, user).await?;
    let wanted = check_bindings(&txn, ctx, actor, body.bindings).await?;
    let before = repo::bindings_of(&txn, ctx, user).await?;
    repo::replace_bindings(&txn, ctx, user, &wanted).await?;
    let after = repo::bindings_of(&txn, ctx, user).await?;
    audit::record(
        &txn,
        Some(ctx.tenant_id()),
        actor,
        "user.bindings.set",
        "user",
        Some(user.0),
        serde_json::json!({"changes": {"bindings": {"before": before, "after": after}}}),
    )
    .await?;
    txn.commit().await?;
    Ok(after)
}
