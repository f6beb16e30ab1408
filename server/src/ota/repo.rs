//! OTA queries, each scoped to the caller's tenant.

use std::collections::BTreeMap;

use sea_orm::entity::prelude::*;
use sea_orm::{ActiveModelTrait, ConnectionTrait, PaginatorTrait, QueryOrder, QuerySelect};
use stead_api_types::{
    ChecksumAlgorithm, DeviceOtaTarget, OtaState, Package, PackageKind, PackageQuery, SigningKey,
    VersionCount,
};

use super::model::{package, signing_key, target, version};
use crate::auth::TenantCtx;
use crate::error::{Error, Result};
use crate::ids::DeviceId;

pub fn to_api(p: package::Model) -> Package {
    let checksums: BTreeMap<ChecksumAlgorithm, String> =
        serde_json::from_value(p.checksums).unwrap_or_default();
    Package {
        id: p.id,
        kind: PackageKind::parse(&p.kind).unwrap_or(PackageKind::Firmware),
        title: p.title,
        version: p.version,
        description: p.description,
        profile_id: p.profile_id,
        size: p.size.max(0) as u64,
        checksums,
        signing_key_id: p.signing_key_id,
        created_by: p.created_by,
        created_at: p.created_at,
    }
}

pub fn key_to_api(k: signing_key::Model) -> SigningKey {
    SigningKey {
        id: k.id,
        name: k.name,
        public_key: k.public_key,
        created_at: k.created_at,
    }
}

pub async fn list(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    q: &PackageQuery,
) -> Result<Vec<Package>> {
    let mut find = package::Entity::find().filter(package::Column::TenantId.eq(ctx.tenant_id().0));
    if let Some(kind) = q.kind {
        find = find.filter(package::Column::Kind.eq(kind.as_str()));
    }
    if let Some(title) = &q.title {
        find = find.filter(package::Column::Title.eq(title.as_str()));
    }
    if let Some(profile) = q.profile_id {
        find = find.filter(package::Column::ProfileId.eq(profile));
    }
    Ok(find
        .order_by_asc(package::Column::Title)
        .order_by_desc(package::Column::CreatedAt)
        .all(db)
        .await?
        .into_iter()
        .map(to_api)
        .collect())
}

pub async fn get(db: &impl ConnectionTrait, ctx: &TenantCtx, id: Uuid) -> Result<package::Model> {
    package::Entity::find_by_id(id)
        .filter(package::Column::TenantId.eq(ctx.tenant_id().0))
        .one(db)
        .await?
        .ok_or(Error::NotFound("package"))
}

pub async fn insert(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    p: package::Model,
) -> Result<package::Model> {
    debug_assert_eq!(p.tenant_id, ctx.tenant_id().0);
    package::ActiveModel::from(p).insert(db).await.map_err(|e| {
        Error::on_unique_violation(
            e,
            "package_exists",
            "a package of this kind, title and version exists: give the new one another version",
        )
    })
}

pub async fn delete(db: &impl ConnectionTrait, ctx: &TenantCtx, id: Uuid) -> Result<()> {
    package::Entity::delete_many()
        .filter(package::Column::Id.eq(id))
        .filter(package::Column::TenantId.eq(ctx.tenant_id().0))
        .exec(db)
        .await?;
    Ok(())
}

/// Bytes the tenant's packages take (each package counted, even when two share an image).
pub async fn stored_bytes(db: &impl ConnectionTrait, ctx: &TenantCtx) -> Result<u64> {
    let sum: Option<i64> = package::Entity::find()
        .select_only()
        // PostgreSQL's SUM of a bigint is a numeric: cast back to bigint on both backends.
        .column_as(
            sea_orm::sea_query::Expr::cust("CAST(SUM(size) AS BIGINT)"),
            "total",
        )
        .filter(package::Column::TenantId.eq(ctx.tenant_id().0))
        .into_tuple::<Option<i64>>()
        .one(db)
        .await?
        .flatten();
    Ok(sum.unwrap_or(0).max(0) as u64)
}

/// Whether another package of the tenant holds the image with this SHA-256.
pub async fn image_in_use(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    sha256: &str,
) -> Result<bool> {
    Ok(package::Entity::find()
        .filter(package::Column::TenantId.eq(ctx.tenant_id().0))
        .filter(package::Column::Sha256.eq(sha256))
        .count(db)
        .await?
        > 0)
}

pub async fn keys(db: &impl ConnectionTrait, ctx: &TenantCtx) -> Result<Vec<signing_key::Model>> {
    Ok(signing_key::Entity::find()
        .filter(signing_key::Column::TenantId.eq(ctx.tenant_id().0))
        .order_by_asc(signing_key::Column::Name)
        .all(db)
        .await?)
}

pub async fn key(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    id: Uuid,
) -> Result<signing_key::Model> {
    signing_key::Entity::find_by_id(id)
        .filter(signing_key::Column::TenantId.eq(ctx.tenant_id().0))
        .one(db)
        .await?
        .ok_or(Error::NotFound("signing key"))
}

pub async fn insert_key(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    k: signing_key::Model,
) -> Result<signing_key::Model> {
    debug_assert_eq!(k.tenant_id, ctx.tenant_id().0);
    signing_key::ActiveModel::from(k)
        .insert(db)
        .await
        .map_err(|e| {
            Error::on_unique_violation(e, "name_taken", "the tenant has a signing key of that name")
        })
}

pub async fn delete_key(db: &impl ConnectionTrait, ctx: &TenantCtx, id: Uuid) -> Result<()> {
    signing_key::Entity::delete_many()
        .filter(signing_key::Column::Id.eq(id))
        .filter(signing_key::Column::TenantId.eq(ctx.tenant_id().0))
        .exec(db)
        .await?;
    Ok(())
}

pub fn target_to_api(t: target::Model, p: &package::Model) -> DeviceOtaTarget {
    DeviceOtaTarget {
        device_id: t.device_id,
        kind: PackageKind::parse(&t.kind).unwrap_or(PackageKind::Firmware),
        package_id: t.package_id,
        title: p.title.clone(),
        version: p.version.clone(),
        state: OtaState::parse(&t.state).unwrap_or(OtaState::Notified),
        reason: t.reason,
        attempts: t.attempts.max(0) as u32,
        previous_title: t.previous_title,
        previous_version: t.previous_version,
        assigned_at: t.assigned_at,
        state_at: t.state_at,
    }
}

/// A device's targets (one per kind), with their packages.
pub async fn targets_of(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    device: DeviceId,
) -> Result<Vec<(target::Model, package::Model)>> {
    Ok(target::Entity::find()
        .filter(target::Column::TenantId.eq(ctx.tenant_id().0))
        .filter(target::Column::DeviceId.eq(device.0))
        .order_by_asc(target::Column::Kind)
        .find_also_related(package::Entity)
        .all(db)
        .await?
        .into_iter()
        .filter_map(|(t, p)| p.map(|p| (t, p)))
        .collect())
}

/// A device's target of one kind, with its package.
pub async fn target(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    device: DeviceId,
    kind: PackageKind,
) -> Result<Option<(target::Model, package::Model)>> {
    Ok(targets_of(db, ctx, device)
        .await?
        .into_iter()
        .find(|(t, _)| t.kind == kind.as_str()))
}

/// Sets (or replaces) a device's target of one kind.
pub async fn put_target(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    t: target::Model,
) -> Result<()> {
    debug_assert_eq!(t.tenant_id, ctx.tenant_id().0);
    target::Entity::delete_many()
        .filter(target::Column::TenantId.eq(ctx.tenant_id().0))
        .filter(target::Column::DeviceId.eq(t.device_id))
        .filter(target::Column::Kind.eq(t.kind.clone()))
        .exec(db)
        .await?;
    target::ActiveModel::from(t).insert(db).await?;
    Ok(())
}

pub async fn delete_target(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    device: DeviceId,
    kind: PackageKind,
) -> Result<bool> {
    Ok(target::Entity::delete_many()
        .filter(target::Column::TenantId.eq(ctx.tenant_id().0))
        .filter(target::Column::DeviceId.eq(device.0))
        .filter(target::Column::Kind.eq(kind.as_str()))
        .exec(db)
        .await?
        .rows_affected
        > 0)
}

/// Moves a target to `state` only from `from` (a conditional update: two nodes reporting the
/// same step change it once). Answers whether it moved.
pub async fn move_target(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    t: &target::Model,
    state: OtaState,
    reason: Option<String>,
    attempts: i32,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<bool> {
    use sea_orm::sea_query::Expr;
    Ok(target::Entity::update_many()
        .col_expr(target::Column::State, Expr::value(state.as_str()))
        .col_expr(target::Column::Reason, Expr::value(reason))
        .col_expr(target::Column::Attempts, Expr::value(attempts))
        .col_expr(target::Column::StateAt, Expr::value(at))
        .filter(target::Column::TenantId.eq(ctx.tenant_id().0))
        .filter(target::Column::DeviceId.eq(t.device_id))
        .filter(target::Column::Kind.eq(t.kind.clone()))
        .filter(target::Column::PackageId.eq(t.package_id))
        .filter(target::Column::State.eq(t.state.clone()))
        .exec(db)
        .await?
        .rows_affected
        > 0)
}

/// How many devices have this package as their target.
pub async fn devices_targeting(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    package: Uuid,
) -> Result<u64> {
    Ok(target::Entity::find()
        .filter(target::Column::TenantId.eq(ctx.tenant_id().0))
        .filter(target::Column::PackageId.eq(package))
        .count(db)
        .await?)
}

/// Targets of every tenant stuck in a step since before `before` (the worker's time-out sweep).
pub async fn stale_targets(
    db: &impl ConnectionTrait,
    _: crate::auth::System,
    before: chrono::DateTime<chrono::Utc>,
    limit: u64,
) -> Result<Vec<target::Model>> {
    let waiting = [
        OtaState::Notified,
        OtaState::Downloading,
        OtaState::Downloaded,
        OtaState::Verified,
        OtaState::Updating,
    ]
    .map(OtaState::as_str);
    Ok(target::Entity::find()
        .filter(target::Column::State.is_in(waiting))
        .filter(target::Column::StateAt.lt(before))
        .limit(limit)
        .all(db)
        .await?)
}

/// Records what a device reports running (one row per device and kind, replaced).
pub async fn note_version(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    device: DeviceId,
    kind: PackageKind,
    title: &str,
    running: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    use sea_orm::sea_query::OnConflict;
    version::Entity::insert(version::ActiveModel::from(version::Model {
        device_id: device.0,
        kind: kind.as_str().to_owned(),
        tenant_id: ctx.tenant_id().0,
        title: title.to_owned(),
        version: running.to_owned(),
        reported_at: at,
    }))
    .on_conflict(
        OnConflict::columns([version::Column::DeviceId, version::Column::Kind])
            .update_columns([
                version::Column::Title,
                version::Column::Version,
                version::Column::ReportedAt,
            ])
            .to_owned(),
    )
    .exec(db)
    .await?;
    Ok(())
}

/// How many of the tenant's devices report each title and version, most devices first.
pub async fn versions(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    kind: PackageKind,
) -> Result<Vec<VersionCount>> {
    let rows: Vec<(String, String, i64)> = version::Entity::find()
        .select_only()
        .column(version::Column::Title)
        .column(version::Column::Version)
        .column_as(version::Column::DeviceId.count(), "devices")
        .filter(version::Column::TenantId.eq(ctx.tenant_id().0))
        .filter(version::Column::Kind.eq(kind.as_str()))
        .group_by(version::Column::Title)
        .group_by(version::Column::Version)
        .into_tuple()
        .all(db)
        .await?;
    let mut out: Vec<VersionCount> = rows
        .into_iter()
        .map(|(title, version, n)| VersionCount {
            title,
            version,
            devices: n.max(0) as u64,
        })
        .collect();
    out.sort_by(|a, b| {
        b.devices
            .cmp(&a.devices)
            .then_with(|| a.title.cmp(&b.title))
    });
    Ok(out)
}
