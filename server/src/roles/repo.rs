//! Role and binding queries, all scoped by `TenantCtx`.

use std::collections::HashMap;

use chrono::Utc;
use sea_orm::entity::prelude::*;
use sea_orm::{ActiveValue::Set, ConnectionTrait, QueryOrder, QuerySelect};
use stead_api_types::{CustomRole, Permission, Role, RoleBinding, RoleRef};

use super::model::{binding, role};
use crate::auth::access::Access;
use crate::auth::{System, TenantCtx};
use crate::error::{Error, Result};
use crate::ids::{TenantId, UserId};

/// The permission names stored in a role or key; names this build does not know are skipped.
pub fn permissions_of(json: &serde_json::Value) -> Vec<Permission> {
    let mut out: Vec<Permission> = json
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| serde_json::from_value(v.clone()).ok())
        .collect();
    out.sort();
    out.dedup();
    out
}

pub fn to_api(r: role::Model, users: u64) -> CustomRole {
    CustomRole {
        id: r.id,
        permissions: permissions_of(&r.permissions),
        name: r.name,
        description: r.description,
        users,
        created_at: r.created_at,
        updated_at: r.updated_at,
    }
}

pub fn parse_name(name: &str) -> Result<String> {
    crate::error::parse_name("role", name, 64)
}

fn name_taken(name: &str) -> impl FnOnce(DbErr) -> Error + '_ {
    move |e| {
        Error::on_unique_violation(
            e,
            "role_name_taken",
            format!("a role named {name:?} already exists"),
        )
    }
}

/// How many people hold each role, at any scope.
async fn holders(db: &impl ConnectionTrait, ctx: &TenantCtx) -> Result<HashMap<Uuid, u64>> {
    let rows: Vec<(Uuid, Uuid)> = binding::Entity::find()
        .select_only()
        .column(binding::Column::RoleId)
        .column(binding::Column::UserId)
        .filter(binding::Column::TenantId.eq(ctx.tenant_id().0))
        .filter(binding::Column::RoleId.is_not_null())
        .distinct()
        .into_tuple()
        .all(db)
        .await?;
    let mut counts = HashMap::new();
    for (role, _) in rows {
        *counts.entry(role).or_insert(0) += 1;
    }
    Ok(counts)
}

pub async fn list(db: &impl ConnectionTrait, ctx: &TenantCtx) -> Result<Vec<CustomRole>> {
    let counts = holders(db, ctx).await?;
    Ok(role::Entity::find()
        .filter(role::Column::TenantId.eq(ctx.tenant_id().0))
        .order_by_asc(role::Column::Name)
        .all(db)
        .await?
        .into_iter()
        .map(|r| {
            let n = counts.get(&r.id).copied().unwrap_or(0);
            to_api(r, n)
        })
        .collect())
}

pub async fn get(db: &impl ConnectionTrait, ctx: &TenantCtx, id: Uuid) -> Result<role::Model> {
    role::Entity::find_by_id(id)
        .filter(role::Column::TenantId.eq(ctx.tenant_id().0))
        .one(db)
        .await?
        .ok_or(Error::NotFound("role"))
}

pub async fn holder_count(db: &impl ConnectionTrait, ctx: &TenantCtx, id: Uuid) -> Result<u64> {
    Ok(holders(db, ctx).await?.get(&id).copied().unwrap_or(0))
}

pub async fn insert(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    name: &str,
    description: &str,
    permissions: &[Permission],
) -> Result<role::Model> {
    let now = Utc::now();
    role::ActiveModel {
        id: Set(Uuid::new_v4()),
        tenant_id: Set(ctx.tenant_id().0),
        name: Set(name.to_owned()),
        description: Set(description.to_owned()),
        permissions: Set(serde_json::to_value(permissions).unwrap_or_default()),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await
    .map_err(name_taken(name))
}

pub async fn save(db: &impl ConnectionTrait, active: role::ActiveModel) -> Result<role::Model> {
    let name = match &active.name {
        sea_orm::ActiveValue::Set(n) | sea_orm::ActiveValue::Unchanged(n) => n.clone(),
        sea_orm::ActiveValue::NotSet => String::new(),
    };
    active.update(db).await.map_err(name_taken(&name))
}

pub async fn delete(db: &impl ConnectionTrait, ctx: &TenantCtx, id: Uuid) -> Result<()> {
    role::Entity::delete_many()
        .filter(role::Column::Id.eq(id))
        .filter(role::Column::TenantId.eq(ctx.tenant_id().0))
        .exec(db)
        .await?;
    Ok(())
}

/// A person's bindings, one per role with the groups it covers (none: the whole tenant).
pub async fn bindings_of(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    user: UserId,
) -> Result<Vec<RoleBinding>> {
    let rows = binding::Entity::find()
        .filter(binding::Column::TenantId.eq(ctx.tenant_id().0))
        .filter(binding::Column::UserId.eq(user.0))
        .order_by_asc(binding::Column::CreatedAt)
        .order_by_asc(binding::Column::Id)
        .all(db)
        .await?;
    let mut merged: Vec<(RoleRef, Vec<Uuid>)> = Vec::new();
    for row in rows {
        let Some(role) = role_ref(&row) else { continue };
        match merged.iter_mut().find(|(r, _)| *r == role) {
            Some((_, groups)) => groups.extend(row.group_id),
            None => merged.push((role, row.group_id.into_iter().collect())),
        }
    }
    named(db, ctx, merged).await
}

/// Bindings with their roles' names, for display.
pub async fn named(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    bindings: Vec<(RoleRef, Vec<Uuid>)>,
) -> Result<Vec<RoleBinding>> {
    let custom: HashMap<Uuid, String> = role::Entity::find()
        .filter(role::Column::TenantId.eq(ctx.tenant_id().0))
        .all(db)
        .await?
        .into_iter()
        .map(|r| (r.id, r.name))
        .collect();
    Ok(bindings
        .into_iter()
        .map(|(role, groups)| RoleBinding {
            role,
            role_name: match role {
                RoleRef::Builtin(r) => r.label().to_owned(),
                RoleRef::Custom(id) => custom.get(&id).cloned().unwrap_or_default(),
            },
            groups,
        })
        .collect())
}

fn role_ref(row: &binding::Model) -> Option<RoleRef> {
    match (&row.builtin_role, row.role_id) {
        (Some(name), None) => Role::parse(name).map(RoleRef::Builtin),
        (None, Some(id)) => Some(RoleRef::Custom(id)),
        _ => None,
    }
}

/// Replaces a person's bindings: one row per (role, group), or per role for the whole tenant.
pub async fn replace_bindings(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    user: UserId,
    bindings: &[(RoleRef, Vec<Uuid>)],
) -> Result<()> {
    binding::Entity::delete_many()
        .filter(binding::Column::TenantId.eq(ctx.tenant_id().0))
        .filter(binding::Column::UserId.eq(user.0))
        .exec(db)
        .await?;
    let now = Utc::now();
    let mut rows = Vec::new();
    for (role, groups) in bindings {
        let (builtin, custom) = match role {
            RoleRef::Builtin(r) => (Some(r.as_str().to_owned()), None),
            RoleRef::Custom(id) => (None, Some(*id)),
        };
        let scopes: Vec<Option<Uuid>> = if groups.is_empty() {
            vec![None]
        } else {
            groups.iter().copied().map(Some).collect()
        };
        for group in scopes {
            rows.push(binding::ActiveModel {
                id: Set(Uuid::new_v4()),
                tenant_id: Set(ctx.tenant_id().0),
                user_id: Set(user.0),
                builtin_role: Set(builtin.clone()),
                role_id: Set(custom),
                group_id: Set(group),
                created_at: Set(now),
            });
        }
    }
    if !rows.is_empty() {
        binding::Entity::insert_many(rows).exec(db).await?;
    }
    Ok(())
}

/// Everything a tenant's person may do now: their built-in role over the tenant, and each binding.
pub async fn access_of(
    _: System,
    db: &impl ConnectionTrait,
    tenant: TenantId,
    user: UserId,
    role: Role,
) -> Result<Access> {
    let mut access = Access::of_role(role);
    let rows = binding::Entity::find()
        .filter(binding::Column::TenantId.eq(tenant.0))
        .filter(binding::Column::UserId.eq(user.0))
        .all(db)
        .await?;
    if rows.is_empty() {
        return Ok(access);
    }
    let custom_ids: Vec<Uuid> = rows.iter().filter_map(|r| r.role_id).collect();
    let custom: HashMap<Uuid, Vec<Permission>> = if custom_ids.is_empty() {
        HashMap::new()
    } else {
        role::Entity::find()
            .filter(role::Column::TenantId.eq(tenant.0))
            .filter(role::Column::Id.is_in(custom_ids))
            .all(db)
            .await?
            .into_iter()
            .map(|r| (r.id, permissions_of(&r.permissions)))
            .collect()
    };
    for row in rows {
        let groups: Vec<Uuid> = row.group_id.into_iter().collect();
        match role_ref(&row) {
            Some(RoleRef::Builtin(r)) => access.grant(Permission::of_role(r), &groups),
            Some(RoleRef::Custom(id)) => {
                access.grant(custom.get(&id).cloned().unwrap_or_default(), &groups)
            }
            None => {}
        }
    }
    Ok(access)
}
