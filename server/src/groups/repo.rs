//! Group queries, all scoped by `TenantCtx`.

use std::collections::HashMap;

use sea_orm::entity::prelude::*;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ConnectionTrait, FromQueryResult, QueryOrder, QuerySelect};
use stead_api_types::{CreateGroup, DeviceGroup, UpdateGroup};

use super::model::{group, member};
use crate::auth::TenantCtx;
use crate::devices::model as devices;
use crate::error::{Error, Result};
use crate::telemetry::now_ms;

pub fn to_api(g: group::Model, device_count: u64) -> DeviceGroup {
    DeviceGroup {
        id: g.id,
        name: g.name,
        description: g.description,
        device_count,
        created_at: g.created_at,
        updated_at: g.updated_at,
    }
}

pub(crate) fn parse_name(name: &str) -> Result<String> {
    crate::error::parse_name("group", name, 128)
}

/// An optional description: trimmed, empty means none, at most 1,024 characters.
fn parse_description(d: Option<String>) -> Result<Option<String>> {
    crate::devices::repo::parse_optional(d, "description", 1024)
}

fn name_taken(name: &str) -> impl FnOnce(DbErr) -> Error + '_ {
    move |e| {
        Error::on_unique_violation(
            e,
            "group_name_taken",
            format!("a group named {name:?} already exists"),
        )
    }
}

async fn member_counts(db: &impl ConnectionTrait, ctx: &TenantCtx) -> Result<HashMap<Uuid, u64>> {
    #[derive(FromQueryResult)]
    struct Row {
        group_id: Uuid,
        n: i64,
    }
    let rows = member::Entity::find()
        .select_only()
        .column(member::Column::GroupId)
        .column_as(member::Column::DeviceId.count(), "n")
        .filter(member::Column::TenantId.eq(ctx.tenant_id().0))
        .group_by(member::Column::GroupId)
        .into_model::<Row>()
        .all(db)
        .await?;
    Ok(rows.into_iter().map(|r| (r.group_id, r.n as u64)).collect())
}

/// The tenant's groups that `ctx` reaches: all, or a group-scoped caller's own groups.
fn in_reach(ctx: &TenantCtx) -> sea_orm::Condition {
    let tenant = sea_orm::Condition::all().add(group::Column::TenantId.eq(ctx.tenant_id().0));
    match ctx.reach() {
        crate::auth::access::Reach::All => tenant,
        crate::auth::access::Reach::Groups(groups) => {
            tenant.add(group::Column::Id.is_in(groups.iter().copied()))
        }
    }
}

pub async fn get(db: &impl ConnectionTrait, ctx: &TenantCtx, id: Uuid) -> Result<group::Model> {
    group::Entity::find_by_id(id)
        .filter(in_reach(ctx))
        .one(db)
        .await?
        .ok_or(Error::NotFound("group"))
}

pub async fn find_by_name(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    name: &str,
) -> Result<Option<group::Model>> {
    Ok(group::Entity::find()
        .filter(in_reach(ctx))
        .filter(group::Column::Name.eq(name))
        .one(db)
        .await?)
}

pub async fn api_of(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    g: group::Model,
) -> Result<DeviceGroup> {
    let n = member_counts(db, ctx)
        .await?
        .get(&g.id)
        .copied()
        .unwrap_or(0);
    Ok(to_api(g, n))
}

pub async fn list(db: &impl ConnectionTrait, ctx: &TenantCtx) -> Result<Vec<DeviceGroup>> {
    let counts = member_counts(db, ctx).await?;
    let groups = group::Entity::find()
        .filter(in_reach(ctx))
        .order_by_asc(group::Column::Name)
        .all(db)
        .await?;
    Ok(groups
        .into_iter()
        .map(|g| {
            let n = counts.get(&g.id).copied().unwrap_or(0);
            to_api(g, n)
        })
        .collect())
}

pub async fn create(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    body: CreateGroup,
) -> Result<group::Model> {
    let name = parse_name(&body.name)?;
    let now = now_ms();
    group::ActiveModel {
        id: Set(Uuid::new_v4()),
        tenant_id: Set(ctx.tenant_id().0),
        name: Set(name.clone()),
        description: Set(parse_description(body.description)?),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await
    .map_err(name_taken(&name))
}

pub async fn update(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    id: Uuid,
    body: UpdateGroup,
) -> Result<group::Model> {
    let mut active: group::ActiveModel = get(db, ctx, id).await?.into();
    let mut name = String::new();
    if let Some(raw) = &body.name {
        name = parse_name(raw)?;
        active.name = Set(name.clone());
    }
    if let Some(d) = body.description {
        active.description = Set(parse_description(d)?);
    }
    active.updated_at = Set(now_ms());
    active.update(db).await.map_err(name_taken(&name))
}

pub async fn delete(db: &impl ConnectionTrait, ctx: &TenantCtx, id: Uuid) -> Result<()> {
    let result = group::Entity::delete_many()
        .filter(group::Column::Id.eq(id))
        .filter(group::Column::TenantId.eq(ctx.tenant_id().0))
        .exec(db)
        .await?;
    if result.rows_affected == 0 {
        return Err(Error::NotFound("group"));
    }
    Ok(())
}

/// Which of `ids` are devices of the caller's tenant; any other id is an error naming it.
pub async fn own_devices(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    ids: &[Uuid],
) -> Result<Vec<Uuid>> {
    if ids.len() > 10_000 {
        return Err(Error::invalid(
            "too_many_devices",
            "device_ids",
            "at most 10000 devices per call",
        ));
    }
    let mut found = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        found.extend(
            devices::Entity::find()
                .select_only()
                .column(devices::Column::Id)
                .filter(devices::Column::TenantId.eq(ctx.tenant_id().0))
                .filter(devices::Column::Id.is_in(chunk.iter().copied()))
                .into_tuple::<Uuid>()
                .all(db)
                .await?,
        );
    }
    if let Some(missing) = ids.iter().find(|id| !found.contains(id)) {
        return Err(Error::invalid(
            "unknown_device",
            "device_ids",
            format!("no device {missing} in this tenant"),
        ));
    }
    found.sort();
    found.dedup();
    Ok(found)
}

/// Adds devices (already checked to be the tenant's) to a group; members stay members.
pub async fn add(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    group_id: Uuid,
    device_ids: &[Uuid],
) -> Result<()> {
    for chunk in device_ids.chunks(500) {
        if chunk.is_empty() {
            continue;
        }
        member::Entity::insert_many(chunk.iter().map(|d| member::ActiveModel {
            group_id: Set(group_id),
            device_id: Set(*d),
            tenant_id: Set(ctx.tenant_id().0),
        }))
        .on_conflict(
            OnConflict::columns([member::Column::GroupId, member::Column::DeviceId])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    }
    Ok(())
}

pub async fn remove(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    group_id: Uuid,
    device_ids: &[Uuid],
) -> Result<u64> {
    let result = member::Entity::delete_many()
        .filter(member::Column::TenantId.eq(ctx.tenant_id().0))
        .filter(member::Column::GroupId.eq(group_id))
        .filter(member::Column::DeviceId.is_in(device_ids.iter().copied()))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

/// The devices of a group.
pub async fn members(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    group_id: Uuid,
) -> Result<Vec<Uuid>> {
    Ok(member::Entity::find()
        .select_only()
        .column(member::Column::DeviceId)
        .filter(member::Column::TenantId.eq(ctx.tenant_id().0))
        .filter(member::Column::GroupId.eq(group_id))
        .into_tuple::<Uuid>()
        .all(db)
        .await?)
}

/// The groups of one device, by name.
pub async fn of_device(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    device_id: Uuid,
) -> Result<Vec<DeviceGroup>> {
    let ids: Vec<Uuid> = member::Entity::find()
        .select_only()
        .column(member::Column::GroupId)
        .filter(member::Column::TenantId.eq(ctx.tenant_id().0))
        .filter(member::Column::DeviceId.eq(device_id))
        .into_tuple::<Uuid>()
        .all(db)
        .await?;
    Ok(list(db, ctx)
        .await?
        .into_iter()
        .filter(|g| ids.contains(&g.id))
        .collect())
}

/// The `(device, group)` memberships of some devices.
pub async fn memberships(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    device_ids: &[Uuid],
) -> Result<Vec<(Uuid, Uuid)>> {
    let mut out = Vec::new();
    for chunk in device_ids.chunks(500) {
        out.extend(
            member::Entity::find()
                .select_only()
                .column(member::Column::DeviceId)
                .column(member::Column::GroupId)
                .filter(member::Column::TenantId.eq(ctx.tenant_id().0))
                .filter(member::Column::DeviceId.is_in(chunk.iter().copied()))
                .into_tuple::<(Uuid, Uuid)>()
                .all(db)
                .await?,
        );
    }
    Ok(out)
}

/// The `(device, group)` memberships of some devices in any tenant (the event dispatcher, which
/// applies endpoints' group filters across tenants).
pub async fn memberships_across_tenants(
    _: crate::auth::System,
    db: &impl ConnectionTrait,
    device_ids: &[Uuid],
) -> Result<Vec<(Uuid, Uuid)>> {
    let mut out = Vec::new();
    for chunk in device_ids.chunks(500) {
        out.extend(
            member::Entity::find()
                .select_only()
                .column(member::Column::DeviceId)
                .column(member::Column::GroupId)
                .filter(member::Column::DeviceId.is_in(chunk.iter().copied()))
                .into_tuple::<(Uuid, Uuid)>()
                .all(db)
                .await?,
        );
    }
    Ok(out)
}
