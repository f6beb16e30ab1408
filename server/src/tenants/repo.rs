//! Tenant queries. Tenants are platform-level objects: these functions are for the platform
//! admin's routes and for authentication, never reachable by a tenant's own people.

use chrono::Utc;
use sea_orm::entity::prelude::*;
use sea_orm::{ActiveValue::Set, PaginatorTrait, QueryOrder, TransactionTrait};
use stead_api_types::{Role, TenantStatus};

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

pub fn to_api(t: model::Model) -> stead_api_types::Tenant {
    stead_api_types::Tenant {
        id: t.id,
        status: status(&t),
        name: t.name,
        created_at: t.created_at,
    }
}

pub fn parse_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(Error::invalid(
            "invalid_name",
            "name",
            "a tenant name has 1 to 100 characters",
        ));
    }
    Ok(name.to_owned())
}

pub async fn find(db: &impl ConnectionTrait, id: TenantId) -> Result<Option<model::Model>> {
    Ok(Tenants::find_by_id(id.0).one(db).await?)
}

pub async fn list(
    db: &DatabaseConnection,
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
    db: &DatabaseConnection,
    name: &str,
    admin_email: &Email,
    admin_password_hash: String,
) -> Result<model::Model> {
    let name = parse_name(name)?;
    let now = Utc::now();
    let txn = db.begin().await?;
    let tenant = model::ActiveModel {
        id: Set(TenantId::new().0),
        name: Set(name.clone()),
        status: Set("active".into()),
        created_at: Set(now),
        updated_at: Set(now),
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
    db: &DatabaseConnection,
    id: TenantId,
    name: Option<&str>,
    status: Option<TenantStatus>,
) -> Result<model::Model> {
    let tenant = find(db, id).await?.ok_or(Error::NotFound("tenant"))?;
    let mut active: model::ActiveModel = tenant.into();
    if let Some(name) = name {
        active.name = Set(parse_name(name)?);
    }
    if let Some(status) = status {
        active.status = Set(status_str(status).into());
    }
    active.updated_at = Set(Utc::now());
    active.update(db).await.map_err(|e| {
        Error::on_unique_violation(e, "tenant_exists", "a tenant with that name already exists")
    })
}

pub async fn count(db: &DatabaseConnection) -> Result<u64> {
    Ok(Tenants::find().count(db).await?)
}

/// For the CLI: validates the first admin's credentials, hashes the password and creates both.
pub async fn create_with_admin(
    db: &DatabaseConnection,
    name: &str,
    admin_email: &str,
    admin_password: &Password,
) -> Result<model::Model> {
    let email =
        Email::parse(admin_email).map_err(|e| Error::invalid("invalid_email", "admin_email", e))?;
    let hash = crate::auth::password::hash(admin_password).await?;
    create(db, name, &email, hash).await
}
