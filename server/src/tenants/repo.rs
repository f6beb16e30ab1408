//! Tenant queries. Tenants are platform-level objects: these functions are for the platform
//! admin's routes and for authentication, never reachable by a tenant's own people.

use chrono::Utc;
use sea_orm::TransactionSession as _;
use sea_orm::entity::prelude::*;
use sea_orm::{ActiveValue::Set, PaginatorTrait, QueryOrder};
use stead_api_types::{Role, TenantLimits, TenantStatus, UpdateTenant};

use crate::ingress::Rate;

use super::model::{self, Entity as Tenants};
use crate::auth::TenantCtx;
use crate::error::{Error, Result};
use crate::ids::TenantId;
use crate::users::{self, Email, Password};

pub fn status(tenant: &model::Model) -> TenantStatus {
    match tenant.status.as_str() {
        "suspended" => TenantStatus::Suspended,
        _ => TenantStatus::Active,
    }
}

fn status_str(status: TenantStatus) -> &'static str {
    match status {
        TenantStatus::Active => "active",
        TenantStatus::Suspended => "suspended",
    }
}

pub fn limits_of(t: &model::Model) -> TenantLimits {
    t.limits
        .clone()
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default()
}

pub fn to_api(t: model::Model) -> stead_api_types::Tenant {
    stead_api_types::Tenant {
        id: t.id,
        status: status(&t),
        limits: limits_of(&t),
        quotas: super::quotas::overrides_of(&t),
        telemetry_retention_days: t.telemetry_retention_days.map(|d| d.max(0) as u32),
        audit_retention_days: t.audit_retention_days.map(|d| d.max(0) as u32),
        name: t.name,
        created_at: t.created_at,
    }
}

/// The platform's rates with a tenant's overrides applied: what is really enforced.
#[derive(Debug, Clone)]
pub struct EffectiveLimits {
    pub device_messages: Rate,
    pub device_points: Rate,
    pub tenant_messages: Rate,
    pub tenant_points: Rate,
}

impl EffectiveLimits {
    pub fn of(cfg: &crate::config::Config, overrides: &TenantLimits) -> EffectiveLimits {
        // Overrides were validated when stored; an unreadable one falls back to the default.
        let pick = |o: &Option<String>, default: &Rate| {
            o.as_deref()
                .and_then(|s| Rate::parse(s).ok())
                .unwrap_or_else(|| default.clone())
        };
        EffectiveLimits {
            device_messages: pick(&overrides.device_messages, &cfg.device_rate_messages),
            device_points: pick(&overrides.device_data_points, &cfg.device_rate_points),
            tenant_messages: pick(&overrides.tenant_messages, &cfg.tenant_rate_messages),
            tenant_points: pick(&overrides.tenant_data_points, &cfg.tenant_rate_points),
        }
    }
}

pub fn validate_limits(limits: &TenantLimits) -> Result<()> {
    for (field, value) in [
        ("limits.device_messages", &limits.device_messages),
        ("limits.device_data_points", &limits.device_data_points),
        ("limits.tenant_messages", &limits.tenant_messages),
        ("limits.tenant_data_points", &limits.tenant_data_points),
    ] {
        if let Some(value) = value
            && let Err(e) = Rate::parse(value)
        {
            return Err(Error::invalid(
                "invalid_rate",
                field,
                format!("{field}: {e} (write count:seconds[,count:seconds…])"),
            ));
        }
    }
    Ok(())
}

pub fn parse_name(name: &str) -> Result<String> {
    crate::error::parse_name("tenant", name, 100)
}

/// Every tenant, by name (the platform admin's usage overview).
pub async fn all(db: &impl ConnectionTrait) -> Result<Vec<model::Model>> {
    Ok(Tenants::find()
        .order_by_asc(model::Column::Name)
        .all(db)
        .await?)
}

/// A tenant admin's sign-in rule for their own tenant; answers the value before.
pub async fn set_require_two_factor(
    db: &impl ConnectionTrait,
    ctx: &crate::auth::TenantCtx,
    require: bool,
) -> Result<bool> {
    let tenant = find(db, ctx.tenant_id())
        .await?
        .ok_or(Error::NotFound("tenant"))?;
    let before = tenant.require_two_factor;
    let mut active: model::ActiveModel = tenant.into();
    active.require_two_factor = Set(require);
    active.updated_at = Set(Utc::now());
    active.update(db).await?;
    Ok(before)
}

pub async fn find(db: &impl ConnectionTrait, id: TenantId) -> Result<Option<model::Model>> {
    Ok(Tenants::find_by_id(id.0).one(db).await?)
}

pub async fn list(
    db: &impl crate::db::Db,
    page: u64,
    per_page: u64,
) -> Result<(Vec<model::Model>, u64)> {
    let paginator = Tenants::find()
        .order_by_asc(model::Column::Name)
        .paginate(db, per_page);
    let total = paginator.num_items().await?;
    let items = paginator.fetch_page(page - 1).await?;
    Ok((items, total))
}

/// Creates a tenant and its first tenant admin, in one transaction.
pub async fn create(
    db: &impl crate::db::Db,
    name: &str,
    admin_email: &Email,
    admin_password_hash: String,
) -> Result<model::Model> {
    let name = parse_name(name)?;
    let now = Utc::now();
    let txn = crate::db::begin_write(db).await?;
    let tenant = model::ActiveModel {
        id: Set(TenantId::new().0),
        name: Set(name.clone()),
        status: Set("active".into()),
        created_at: Set(now),
        updated_at: Set(now),
        telemetry_retention_days: Set(None),
        audit_retention_days: Set(None),
        limits: Set(None),
        quotas: Set(None),
        require_two_factor: Set(false),
    }
    .insert(&txn)
    .await
    .map_err(|e| {
        Error::on_unique_violation(
            e,
            "tenant_exists",
            format!("a tenant named {name:?} already exists"),
        )
    })?;
    let ctx = TenantCtx::new(TenantId(tenant.id));
    crate::profiles::repo::create_default(&txn, &ctx).await?;
    users::repo::create(
        &txn,
        Some(&ctx),
        admin_email,
        "",
        Role::TenantAdmin,
        admin_password_hash,
    )
    .await?;
    txn.commit().await?;
    Ok(tenant)
}

pub async fn update(
    db: &impl crate::db::Db,
    id: TenantId,
    change: &UpdateTenant,
) -> Result<model::Model> {
    let tenant = find(db, id).await?.ok_or(Error::NotFound("tenant"))?;
    let mut active: model::ActiveModel = tenant.into();
    if let Some(name) = &change.name {
        active.name = Set(parse_name(name)?);
    }
    if let Some(status) = change.status {
        active.status = Set(status_str(status).into());
    }
    if let Some(days) = change.telemetry_retention_days {
        active.telemetry_retention_days = Set(retention_days("telemetry_retention_days", days)?);
    }
    if let Some(days) = change.audit_retention_days {
        active.audit_retention_days = Set(retention_days("audit_retention_days", days)?);
    }
    if let Some(quotas) = &change.quotas {
        active.quotas = Set(Some(
            serde_json::to_value(quotas).map_err(anyhow::Error::from)?,
        ));
    }
    if let Some(limits) = &change.limits {
        validate_limits(limits)?;
        active.limits = Set(Some(
            serde_json::to_value(limits).map_err(anyhow::Error::from)?,
        ));
    }
    active.updated_at = Set(Utc::now());
    active.update(db).await.map_err(|e| {
        Error::on_unique_violation(e, "tenant_exists", "a tenant with that name already exists")
    })
}

/// For the CLI: validates the first admin's credentials, hashes the password and creates both.
pub async fn create_with_admin(
    db: &impl crate::db::Db,
    name: &str,
    admin_email: &str,
    admin_password: &Password,
) -> Result<model::Model> {
    let email =
        Email::parse(admin_email).map_err(|e| Error::invalid("invalid_email", "admin_email", e))?;
    let hash = crate::auth::password::hash(admin_password).await?;
    create(db, name, &email, hash).await
}

/// A tenant's retention setting: 1 to 36,500 days, or `None` for the platform default.
fn retention_days(field: &'static str, days: Option<u32>) -> Result<Option<i32>> {
    if days.is_some_and(|d| d == 0 || d > 36_500) {
        return Err(Error::invalid(
            "invalid_field",
            field,
            "between 1 and 36500 days, or null for the platform default",
        ));
    }
    Ok(days.map(|d| d as i32))
}
