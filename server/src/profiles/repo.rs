//! Device profile queries, scoped by `TenantCtx` (except the provisioning-key lookup, where the
//! key names the tenant).

use sea_orm::TransactionSession as _;
use sea_orm::entity::prelude::*;
use sea_orm::{ActiveValue::Set, ConnectionTrait, QueryOrder};
use stead_api_types::{
    CreateProfile, DeviceProfile, ProfileLimits, ProvisionStrategy, TenantLimits, UpdateProfile,
};

use super::model::{self, Entity as Profiles};
use crate::auth::{System, TenantCtx, tokens};
use crate::error::{Error, Result};
use crate::telemetry::now_ms;

pub fn strategy_str(s: ProvisionStrategy) -> &'static str {
    match s {
        ProvisionStrategy::Disabled => "disabled",
        ProvisionStrategy::AllowCreate => "allow_create",
        ProvisionStrategy::PreProvisioned => "pre_provisioned",
    }
}

pub fn strategy_of(p: &model::Model) -> ProvisionStrategy {
    match p.provision_strategy.as_str() {
        "allow_create" => ProvisionStrategy::AllowCreate,
        "pre_provisioned" => ProvisionStrategy::PreProvisioned,
        _ => ProvisionStrategy::Disabled,
    }
}

pub fn limits_of(p: &model::Model) -> ProfileLimits {
    p.limits
        .clone()
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default()
}

pub fn to_api(p: model::Model, device_count: u64) -> DeviceProfile {
    DeviceProfile {
        provision_strategy: strategy_of(&p),
        limits: limits_of(&p),
        id: p.id,
        name: p.name,
        description: p.description,
        is_default: p.is_default,
        provision_key: p.provision_key,
        inactivity_timeout_secs: p.inactivity_timeout_secs.map(|s| s as u64),
        device_count,
        created_at: p.created_at,
        updated_at: p.updated_at,
    }
}

fn parse_name(name: &str) -> Result<String> {
    crate::error::parse_name("profile", name, 128)
}

/// An optional description: trimmed, empty means none, at most 1,024 characters.
fn parse_description(d: Option<String>) -> Result<Option<String>> {
    crate::devices::repo::parse_optional(d, "description", 1024)
}

fn parse_timeout(t: Option<u64>) -> Result<Option<i64>> {
    match t {
        Some(t) if !(1..=30 * 86_400).contains(&t) => Err(Error::invalid(
            "invalid_field",
            "inactivity_timeout_secs",
            "`inactivity_timeout_secs` is between 1 and 2592000 (30 days)",
        )),
        other => Ok(other.map(|t| t as i64)),
    }
}

fn parse_limits(limits: ProfileLimits) -> Result<Option<serde_json::Value>> {
    crate::tenants::repo::validate_limits(&TenantLimits {
        device_messages: limits.device_messages.clone(),
        device_data_points: limits.device_data_points.clone(),
        ..TenantLimits::default()
    })?;
    Ok(Some(serde_json::to_value(limits).unwrap_or_default()))
}

fn name_taken(name: &str) -> impl FnOnce(DbErr) -> Error + '_ {
    move |e| {
        Error::on_unique_violation(
            e,
            "profile_name_taken",
            format!("a profile named {name:?} already exists"),
        )
    }
}

/// A new provisioning pair: the key (public, unique) and the secret (shown once, stored hashed).
fn provisioning_pair() -> (String, String) {
    let key = tokens::random_token();
    (key[..20].to_owned(), tokens::random_token())
}

/// The tenant's default profile, created with the tenant.
pub async fn create_default(db: &impl ConnectionTrait, ctx: &TenantCtx) -> Result<model::Model> {
    let now = now_ms();
    Ok(model::ActiveModel {
        id: Set(Uuid::new_v4()),
        tenant_id: Set(ctx.tenant_id().0),
        name: Set("default".into()),
        description: Set(Some("Devices that name no other profile".into())),
        is_default: Set(true),
        provision_strategy: Set("disabled".into()),
        provision_key: Set(None),
        provision_secret_hash: Set(None),
        inactivity_timeout_secs: Set(None),
        limits: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await?)
}

pub async fn default_of(db: &impl ConnectionTrait, ctx: &TenantCtx) -> Result<model::Model> {
    match Profiles::find()
        .filter(model::Column::TenantId.eq(ctx.tenant_id().0))
        .filter(model::Column::IsDefault.eq(true))
        .one(db)
        .await?
    {
        Some(p) => Ok(p),
        None => create_default(db, ctx).await,
    }
}

pub async fn get(db: &impl ConnectionTrait, ctx: &TenantCtx, id: Uuid) -> Result<model::Model> {
    Profiles::find_by_id(id)
        .filter(model::Column::TenantId.eq(ctx.tenant_id().0))
        .one(db)
        .await?
        .ok_or(Error::NotFound("profile"))
}

/// The profile a request names (it must be the caller's), or the tenant's default.
pub async fn resolve(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    id: Option<Uuid>,
) -> Result<model::Model> {
    match id {
        Some(id) => get(db, ctx, id).await.map_err(|_| {
            Error::invalid(
                "unknown_profile",
                "profile_id",
                format!("no profile {id} in this tenant"),
            )
        }),
        None => default_of(db, ctx).await,
    }
}

pub async fn find_by_name(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    name: &str,
) -> Result<Option<model::Model>> {
    Ok(Profiles::find()
        .filter(model::Column::TenantId.eq(ctx.tenant_id().0))
        .filter(model::Column::Name.eq(name))
        .one(db)
        .await?)
}

/// How many devices each profile of the tenant has.
async fn device_counts(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
) -> Result<std::collections::HashMap<Uuid, u64>> {
    use crate::devices::model as devices;
    use sea_orm::{FromQueryResult, QuerySelect};
    #[derive(FromQueryResult)]
    struct Row {
        profile_id: Option<Uuid>,
        n: i64,
    }
    let rows = devices::Entity::find()
        .select_only()
        .column(devices::Column::ProfileId)
        .column_as(devices::Column::Id.count(), "n")
        .filter(devices::Column::TenantId.eq(ctx.tenant_id().0))
        .group_by(devices::Column::ProfileId)
        .into_model::<Row>()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| r.profile_id.map(|p| (p, r.n as u64)))
        .collect())
}

pub async fn list(db: &impl ConnectionTrait, ctx: &TenantCtx) -> Result<Vec<DeviceProfile>> {
    let counts = device_counts(db, ctx).await?;
    let profiles = Profiles::find()
        .filter(model::Column::TenantId.eq(ctx.tenant_id().0))
        .order_by_desc(model::Column::IsDefault)
        .order_by_asc(model::Column::Name)
        .all(db)
        .await?;
    Ok(profiles
        .into_iter()
        .map(|p| {
            let n = counts.get(&p.id).copied().unwrap_or(0);
            to_api(p, n)
        })
        .collect())
}

pub async fn api_of(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    p: model::Model,
) -> Result<DeviceProfile> {
    let n = device_counts(db, ctx)
        .await?
        .get(&p.id)
        .copied()
        .unwrap_or(0);
    Ok(to_api(p, n))
}

/// Creates a profile; answers the provisioning secret when provisioning is on.
pub async fn create(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    body: CreateProfile,
) -> Result<(model::Model, Option<String>)> {
    let name = parse_name(&body.name)?;
    let strategy = body.provision_strategy.unwrap_or_default();
    let (key, secret) = match strategy {
        ProvisionStrategy::Disabled => (None, None),
        _ => {
            let (k, s) = provisioning_pair();
            (Some(k), Some(s))
        }
    };
    let now = now_ms();
    let profile = model::ActiveModel {
        id: Set(Uuid::new_v4()),
        tenant_id: Set(ctx.tenant_id().0),
        name: Set(name.clone()),
        description: Set(parse_description(body.description)?),
        is_default: Set(false),
        provision_strategy: Set(strategy_str(strategy).into()),
        provision_key: Set(key),
        provision_secret_hash: Set(secret.as_deref().map(tokens::hash_token)),
        inactivity_timeout_secs: Set(parse_timeout(body.inactivity_timeout_secs)?),
        limits: Set(parse_limits(body.limits.unwrap_or_default())?),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await
    .map_err(name_taken(&name))?;
    Ok((profile, secret))
}

pub async fn update(
    db: &impl crate::db::Db,
    ctx: &TenantCtx,
    id: Uuid,
    body: UpdateProfile,
) -> Result<(model::Model, Option<String>)> {
    let current = get(db, ctx, id).await?;
    let was_disabled = strategy_of(&current) == ProvisionStrategy::Disabled;
    let mut active: model::ActiveModel = current.into();
    let mut name = String::new();
    if let Some(raw) = &body.name {
        name = parse_name(raw)?;
        active.name = Set(name.clone());
    }
    if let Some(d) = body.description {
        active.description = Set(parse_description(d)?);
    }
    if let Some(t) = body.inactivity_timeout_secs {
        active.inactivity_timeout_secs = Set(parse_timeout(t)?);
    }
    if let Some(limits) = body.limits {
        active.limits = Set(parse_limits(limits)?);
    }
    let mut secret = None;
    if let Some(strategy) = body.provision_strategy {
        active.provision_strategy = Set(strategy_str(strategy).into());
        if strategy == ProvisionStrategy::Disabled {
            active.provision_key = Set(None);
            active.provision_secret_hash = Set(None);
        } else if was_disabled {
            secret = Some(());
        }
    }
    let enabled = match body.provision_strategy {
        Some(s) => s != ProvisionStrategy::Disabled,
        None => !was_disabled,
    };
    if body.regenerate_provision_secret && !enabled {
        return Err(Error::invalid(
            "provisioning_disabled",
            "regenerate_provision_secret",
            "provisioning is disabled for this profile: choose a provision_strategy first",
        ));
    }
    let secret = if secret.is_some() || body.regenerate_provision_secret {
        let (k, s) = provisioning_pair();
        active.provision_key = Set(Some(k));
        active.provision_secret_hash = Set(Some(tokens::hash_token(&s)));
        Some(s)
    } else {
        None
    };
    active.updated_at = Set(now_ms());
    let txn = crate::db::begin_write(db).await?;
    if body.make_default {
        Profiles::update_many()
            .col_expr(model::Column::IsDefault, Expr::value(false))
            .filter(model::Column::TenantId.eq(ctx.tenant_id().0))
            .exec(&txn)
            .await?;
        active.is_default = Set(true);
    }
    let saved = active.update(&txn).await.map_err(name_taken(&name))?;
    txn.commit().await?;
    Ok((saved, secret))
}

/// Deletes a profile no device uses; the default profile stays.
pub async fn delete(db: &impl ConnectionTrait, ctx: &TenantCtx, id: Uuid) -> Result<()> {
    let profile = get(db, ctx, id).await?;
    if profile.is_default {
        return Err(Error::conflict(
            "profile_is_default",
            "the default profile cannot be deleted: make another profile the default first",
        ));
    }
    if let Some(n) = device_counts(db, ctx).await?.get(&id).filter(|n| **n > 0) {
        return Err(Error::conflict(
            "profile_in_use",
            format!("{n} device(s) use this profile: move them to another profile first"),
        ));
    }
    Profiles::delete_by_id(id).exec(db).await?;
    Ok(())
}

/// The profile a provisioning key belongs to (the key names the tenant).
pub async fn by_provision_key(
    _: System,
    db: &impl ConnectionTrait,
    key: &str,
) -> Result<Option<model::Model>> {
    Ok(Profiles::find()
        .filter(model::Column::ProvisionKey.eq(key))
        .one(db)
        .await?)
}
