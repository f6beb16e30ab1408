//! Device queries, all scoped by `TenantCtx`, except `authenticate` which is how a device proves
//! who it is (the token names the device and so the tenant).

use chrono::Utc;
use sea_orm::entity::prelude::*;
use sea_orm::sea_query::{ExprTrait as _, Func, LikeExpr};
use sea_orm::{ActiveValue::Set, Condition, PaginatorTrait, QueryOrder};
use stead_api_types::{CreateDevice, TenantStatus, UpdateDevice};

use super::model::{self, Entity as Devices};
use crate::auth::{TenantCtx, tokens};
use crate::error::{Error, Result};
use crate::ids::{DeviceId, TenantId};

pub fn to_api(d: model::Model) -> stead_api_types::Device {
    stead_api_types::Device {
        id: d.id,
        name: d.name,
        label: d.label,
        device_type: d.device_type,
        metadata: d.metadata,
        created_at: d.created_at,
        updated_at: d.updated_at,
    }
}

fn parse_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 128 {
        return Err(Error::invalid(
            "invalid_name",
            "name",
            "a device name has 1 to 128 characters",
        ));
    }
    Ok(name.to_owned())
}

fn parse_optional(
    value: Option<String>,
    field: &'static str,
    max: usize,
) -> Result<Option<String>> {
    match value.map(|v| v.trim().to_owned()) {
        Some(v) if v.chars().count() > max => Err(Error::invalid(
            "invalid_field",
            field,
            format!("`{field}` has at most {max} characters"),
        )),
        Some(v) if v.is_empty() => Ok(None),
        other => Ok(other),
    }
}

fn parse_metadata(value: Option<serde_json::Value>) -> Result<serde_json::Value> {
    let value = value.unwrap_or_else(|| serde_json::json!({}));
    if !value.is_object() {
        return Err(Error::invalid(
            "invalid_field",
            "metadata",
            "`metadata` must be a JSON object",
        ));
    }
    if value.to_string().len() > 16 * 1024 {
        return Err(Error::invalid(
            "invalid_field",
            "metadata",
            "`metadata` is larger than 16 KiB",
        ));
    }
    Ok(value)
}

fn name_taken(name: &str) -> impl FnOnce(DbErr) -> Error + '_ {
    move |e| {
        Error::on_unique_violation(
            e,
            "device_name_taken",
            format!("a device named {name:?} already exists"),
        )
    }
}

/// Creates a device; answers it with its access token, which is never stored.
pub async fn create(
    db: &DatabaseConnection,
    ctx: &TenantCtx,
    body: CreateDevice,
) -> Result<(model::Model, String)> {
    let name = parse_name(&body.name)?;
    let token = tokens::random_token();
    let now = Utc::now();
    let device = model::ActiveModel {
        id: Set(DeviceId::new().0),
        tenant_id: Set(ctx.tenant_id().0),
        name: Set(name.clone()),
        label: Set(parse_optional(body.label, "label", 256)?),
        device_type: Set(parse_optional(body.device_type, "type", 64)?),
        metadata: Set(parse_metadata(body.metadata)?),
        token_hash: Set(tokens::hash_token(&token)),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await
    .map_err(name_taken(&name))?;
    Ok((device, token))
}

pub async fn get(db: &DatabaseConnection, ctx: &TenantCtx, id: DeviceId) -> Result<model::Model> {
    Devices::find_by_id(id.0)
        .filter(model::Column::TenantId.eq(ctx.tenant_id().0))
        .one(db)
        .await?
        .ok_or(Error::NotFound("device"))
}

pub struct ListQuery {
    pub page: u64,
    pub per_page: u64,
    pub search: Option<String>,
    pub sort: Option<String>,
}

pub async fn list(
    db: &DatabaseConnection,
    ctx: &TenantCtx,
    q: ListQuery,
) -> Result<(Vec<model::Model>, u64)> {
    let mut select = Devices::find().filter(model::Column::TenantId.eq(ctx.tenant_id().0));
    if let Some(search) = q.search.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        let escaped = search
            .to_lowercase()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        let pattern = format!("%{escaped}%");
        let like = |col: model::Column| {
            Expr::expr(Func::lower(Expr::col(col)))
                .like(LikeExpr::new(pattern.clone()).escape('\\'))
        };
        select = select.filter(
            Condition::any()
                .add(like(model::Column::Name))
                .add(like(model::Column::Label)),
        );
    }
    let sort = q.sort.as_deref().unwrap_or("name");
    let (desc, key) = match sort.strip_prefix('-') {
        Some(key) => (true, key),
        None => (false, sort),
    };
    let column = match key {
        "name" => model::Column::Name,
        "label" => model::Column::Label,
        "created_at" => model::Column::CreatedAt,
        "updated_at" => model::Column::UpdatedAt,
        _ => {
            return Err(Error::invalid(
                "invalid_query",
                "sort",
                format!(
                    "cannot sort by {key:?}: use name, label, created_at or updated_at, with a leading - for descending"
                ),
            ));
        }
    };
    select = if desc {
        select.order_by_desc(column)
    } else {
        select.order_by_asc(column)
    }
    .order_by_asc(model::Column::Id);
    let paginator = select.paginate(db, q.per_page);
    let total = paginator.num_items().await?;
    Ok((paginator.fetch_page(q.page - 1).await?, total))
}

pub async fn update(
    db: &DatabaseConnection,
    ctx: &TenantCtx,
    id: DeviceId,
    body: UpdateDevice,
) -> Result<model::Model> {
    let device = get(db, ctx, id).await?;
    let mut active: model::ActiveModel = device.into();
    let mut name = String::new();
    if let Some(raw) = &body.name {
        name = parse_name(raw)?;
        active.name = Set(name.clone());
    }
    if let Some(label) = body.label {
        active.label = Set(parse_optional(label, "label", 256)?);
    }
    if let Some(device_type) = body.device_type {
        active.device_type = Set(parse_optional(device_type, "type", 64)?);
    }
    if body.metadata.is_some() {
        active.metadata = Set(parse_metadata(body.metadata)?);
    }
    active.updated_at = Set(Utc::now());
    active.update(db).await.map_err(name_taken(&name))
}

pub async fn delete(db: &DatabaseConnection, ctx: &TenantCtx, id: DeviceId) -> Result<()> {
    let result = Devices::delete_many()
        .filter(model::Column::Id.eq(id.0))
        .filter(model::Column::TenantId.eq(ctx.tenant_id().0))
        .exec(db)
        .await?;
    if result.rows_affected == 0 {
        return Err(Error::NotFound("device"));
    }
    Ok(())
}

/// Issues a new access token; the old one stops working at once.
pub async fn rotate_token(
    db: &DatabaseConnection,
    ctx: &TenantCtx,
    id: DeviceId,
) -> Result<String> {
    let device = get(db, ctx, id).await?;
    let token = tokens::random_token();
    let mut active: model::ActiveModel = device.into();
    active.token_hash = Set(tokens::hash_token(&token));
    active.updated_at = Set(Utc::now());
    active.update(db).await?;
    Ok(token)
}

/// A device that proved who it is.
#[derive(Debug, Clone)]
pub struct DeviceIdentity {
    pub device_id: DeviceId,
    pub tenant_id: TenantId,
    pub name: String,
    /// The tenant's rate-limit overrides, as they were at authentication.
    pub tenant_limits: stead_api_types::TenantLimits,
}

/// The device an access token belongs to, if its tenant is active: one indexed hash lookup.
pub async fn authenticate(db: &DatabaseConnection, token: &str) -> Result<Option<DeviceIdentity>> {
    let Some(device) = Devices::find()
        .filter(model::Column::TokenHash.eq(tokens::hash_token(token)))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let Some(tenant) = crate::tenants::repo::find(db, TenantId(device.tenant_id)).await? else {
        return Ok(None);
    };
    if crate::tenants::repo::status(&tenant) == TenantStatus::Suspended {
        return Ok(None);
    }
    Ok(Some(DeviceIdentity {
        device_id: DeviceId(device.id),
        tenant_id: TenantId(device.tenant_id),
        name: device.name,
        tenant_limits: crate::tenants::repo::limits_of(&tenant),
    }))
}
