//! Device queries, all scoped by `TenantCtx`, except `authenticate` which is how a device proves
//! who it is (the token names the device and so the tenant).

use chrono::Utc;
use sea_orm::TransactionSession as _;
use sea_orm::entity::prelude::*;
use sea_orm::sea_query::{ExprTrait as _, Func, LikeExpr};
use sea_orm::{ActiveValue::Set, Condition, PaginatorTrait, QueryOrder, QuerySelect};
use stead_api_types::EventType;
use stead_api_types::{
    CreateDevice, CredentialsType, DeviceCredentials, SetCredentials, TenantStatus, UpdateDevice,
};

use super::model::{self, Entity as Devices};
use crate::auth::{System, TenantCtx, tokens};
use crate::error::{Error, Result};
use crate::ids::{DeviceId, TenantId};

pub fn credentials_type_of(d: &model::Model) -> CredentialsType {
    match d.credentials_type.as_str() {
        "mqtt_basic" => CredentialsType::MqttBasic,
        "none" => CredentialsType::None,
        _ => CredentialsType::AccessToken,
    }
}

pub fn to_api(d: model::Model) -> stead_api_types::Device {
    stead_api_types::Device {
        credentials_type: credentials_type_of(&d),
        id: d.id,
        name: d.name,
        label: d.label,
        device_type: d.device_type,
        metadata: d.metadata,
        profile_id: d.profile_id.unwrap_or_default(),
        credentials_expire_at: d
            .credentials_expire_at
            .and_then(chrono::DateTime::from_timestamp_millis),
        disabled_reason: d.disabled_reason,
        gateway: d.gateway,
        gateway_id: d.gateway_id,
        created_at: d.created_at,
        updated_at: d.updated_at,
        status: None,
    }
}

pub(crate) fn parse_name(name: &str) -> Result<String> {
    crate::error::parse_name("device", name, 128)
}

pub(crate) fn parse_optional(
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

/// The tenant's gateway `id`, for a device to be put behind it.
async fn gateway_of(db: &impl crate::db::Db, ctx: &TenantCtx, id: Uuid) -> Result<Uuid> {
    match get(db, ctx, DeviceId(id)).await {
        Ok(d) if d.gateway => Ok(d.id),
        Ok(_) => Err(Error::invalid(
            "not_a_gateway",
            "gateway_id",
            format!("device {id} is not a gateway: mark it as one first"),
        )),
        Err(Error::NotFound(_)) => Err(Error::invalid(
            "unknown_gateway",
            "gateway_id",
            format!("no gateway {id} in this tenant"),
        )),
        Err(e) => Err(e),
    }
}

/// Gateways do not nest: ThingsBoard's Gateway API has one level, and a device behind a gateway
/// has no connection through which it could speak for others.
fn check_gateway_shape(gateway: bool, gateway_id: Option<Uuid>) -> Result<()> {
    if gateway && gateway_id.is_some() {
        return Err(Error::invalid(
            "gateway_behind_gateway",
            "gateway_id",
            "a gateway cannot be behind another gateway",
        ));
    }
    Ok(())
}

/// Creates a device in its profile (the tenant's default unless named) and groups, within the
/// tenant's device quota (`409 quota_exceeded` beyond it); answers it with its credentials, whose
/// secret is never stored. A sub-device (`gateway_id`) given no credentials gets none: it speaks
/// through its gateway.
pub async fn create(
    db: &impl crate::db::Db,
    ctx: &TenantCtx,
    quotas: &crate::tenants::quotas::Defaults,
    body: CreateDevice,
) -> Result<(model::Model, DeviceCredentials)> {
    let name = parse_name(&body.name)?;
    crate::tenants::quotas::check(
        db,
        quotas,
        ctx.tenant_id(),
        crate::tenants::quotas::Quota::Devices,
        1,
    )
    .await?;
    let label = parse_optional(body.label, "label", 256)?;
    let device_type = parse_optional(body.device_type, "type", 64)?;
    let metadata = parse_metadata(body.metadata)?;
    let gateway_id = match body.gateway_id {
        Some(id) => Some(gateway_of(db, ctx, id).await?),
        None => None,
    };
    check_gateway_shape(body.gateway, gateway_id)?;
    let profile = crate::profiles::repo::resolve(db, ctx, body.profile_id).await?;
    let groups = match &body.groups {
        Some(ids) => {
            let mut found = Vec::with_capacity(ids.len());
            for id in ids {
                found.push(
                    crate::groups::repo::get(db, ctx, *id)
                        .await
                        .map_err(|_| {
                            Error::invalid(
                                "unknown_group",
                                "groups",
                                format!("no group {id} in this tenant"),
                            )
                        })?
                        .id,
                );
            }
            found
        }
        None => Vec::new(),
    };
    let issued = match (body.credentials, gateway_id) {
        (None, Some(_)) => super::credentials::none(),
        (set, _) => super::credentials::issue(set).await?,
    };
    let now = Utc::now();
    let txn = crate::db::begin_write(db).await?;
    let device = model::ActiveModel {
        id: Set(DeviceId::new().0),
        tenant_id: Set(ctx.tenant_id().0),
        name: Set(name.clone()),
        label: Set(label),
        device_type: Set(device_type),
        metadata: Set(metadata),
        token_hash: Set(issued.token_hash),
        created_at: Set(now),
        updated_at: Set(now),
        profile_id: Set(Some(profile.id)),
        credentials_type: Set(issued.credentials_type.into()),
        mqtt_client_id: Set(issued.mqtt_client_id),
        mqtt_username: Set(issued.mqtt_username.clone()),
        mqtt_password_hash: Set(issued.mqtt_password_hash),
        credentials_expire_at: Set(issued.expire_at),
        disabled_reason: Set(None),
        online: Set(false),
        gateway: Set(body.gateway),
        gateway_id: Set(gateway_id),
    }
    .insert(&txn)
    .await
    .map_err(|e| match &issued.mqtt_username {
        Some(_) if e.to_string().contains("mqtt_username") => super::credentials::username_taken(e),
        _ => name_taken(&name)(e),
    })?;
    for group in groups {
        crate::groups::repo::add(&txn, ctx, group, &[device.id]).await?;
    }
    device_event(&txn, ctx, EventType::DeviceCreated, &device).await?;
    txn.commit().await?;
    Ok((device, issued.shown))
}

/// The tenant's devices that `ctx` reaches: all of them, or those of some groups. Every finder
/// here filters with it, so a group-scoped caller meets no other device (404, not in lists).
pub(crate) fn in_reach(ctx: &TenantCtx) -> Condition {
    let tenant = Condition::all().add(model::Column::TenantId.eq(ctx.tenant_id().0));
    match ctx.reach() {
        crate::auth::access::Reach::All => tenant,
        crate::auth::access::Reach::Groups(groups) => {
            use crate::groups::model::member;
            use sea_orm::sea_query::Query;
            tenant.add(
                model::Column::Id.in_subquery(
                    Query::select()
                        .column(member::Column::DeviceId)
                        .from(member::Entity)
                        .and_where(member::Column::GroupId.is_in(groups.iter().copied()))
                        .and_where(member::Column::TenantId.eq(ctx.tenant_id().0))
                        .to_owned(),
                ),
            )
        }
    }
}

pub async fn get(db: &impl crate::db::Db, ctx: &TenantCtx, id: DeviceId) -> Result<model::Model> {
    Devices::find_by_id(id.0)
        .filter(in_reach(ctx))
        .one(db)
        .await?
        .ok_or(Error::NotFound("device"))
}

pub struct ListQuery {
    pub page: u64,
    pub per_page: u64,
    pub search: Option<String>,
    pub sort: Option<String>,
    pub profile: Option<Uuid>,
    pub group: Option<Uuid>,
    pub label: Option<String>,
    pub online: Option<bool>,
    /// Only the sub-devices of this gateway.
    pub gateway: Option<Uuid>,
    /// Only devices with an active alarm at least this severe.
    pub alarm_severity: Option<stead_api_types::AlarmSeverity>,
}

pub async fn list(
    db: &impl crate::db::Db,
    ctx: &TenantCtx,
    q: ListQuery,
) -> Result<(Vec<model::Model>, u64)> {
    let mut select = Devices::find().filter(in_reach(ctx));
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
    if let Some(profile) = q.profile {
        select = select.filter(model::Column::ProfileId.eq(profile));
    }
    if let Some(label) = q.label.as_deref().map(str::trim) {
        select = select.filter(model::Column::Label.eq(label));
    }
    if let Some(online) = q.online {
        select = select.filter(model::Column::Online.eq(online));
    }
    if let Some(gateway) = q.gateway {
        select = select.filter(model::Column::GatewayId.eq(gateway));
    }
    if let Some(least) = q.alarm_severity {
        select = select.filter(crate::alarms::repo::devices_alarmed_at_least(ctx, least));
    }
    if let Some(group) = q.group {
        use crate::groups::model::member;
        use sea_orm::sea_query::Query;
        select = select.filter(
            model::Column::Id.in_subquery(
                Query::select()
                    .column(member::Column::DeviceId)
                    .from(member::Entity)
                    .and_where(member::Column::GroupId.eq(group))
                    .and_where(member::Column::TenantId.eq(ctx.tenant_id().0))
                    .to_owned(),
            ),
        );
    }
    let sort = q.sort.as_deref().unwrap_or("name");
    let (desc, key) = match sort.strip_prefix('-') {
        Some(key) => (true, key),
        None => (false, sort),
    };
    let order = sea_orm::sea_query::SimpleExpr::from;
    let by = match key {
        "name" => order(Expr::col(model::Column::Name)),
        "label" => order(Expr::col(model::Column::Label)),
        "created_at" => order(Expr::col(model::Column::CreatedAt)),
        "updated_at" => order(Expr::col(model::Column::UpdatedAt)),
        "online" => order(Expr::col(model::Column::Online)),
        "alarm_severity" => crate::alarms::repo::worst_active_rank(),
        _ => {
            return Err(Error::invalid(
                "invalid_query",
                "sort",
                format!(
                    "cannot sort by {key:?}: use name, label, created_at, updated_at, online or alarm_severity, with a leading - for descending"
                ),
            ));
        }
    };
    select = if desc {
        select.order_by_desc(by)
    } else {
        select.order_by_asc(by)
    }
    .order_by_asc(model::Column::Name)
    .order_by_asc(model::Column::Id);
    let paginator = select.paginate(db, q.per_page);
    let total = paginator.num_items().await?;
    Ok((paginator.fetch_page(q.page - 1).await?, total))
}

pub async fn update(
    db: &impl crate::db::Db,
    ctx: &TenantCtx,
    id: DeviceId,
    body: UpdateDevice,
) -> Result<model::Model> {
    let device = get(db, ctx, id).await?;
    let (mut gateway, mut gateway_id) = (device.gateway, device.gateway_id);
    if let Some(flag) = body.gateway {
        if device.gateway && !flag && has_sub_devices(db, ctx, id).await? {
            return Err(Error::conflict(
                "gateway_has_sub_devices",
                "devices are behind this gateway: move or detach them (`gateway_id`) first",
            ));
        }
        gateway = flag;
    }
    if let Some(target) = body.gateway_id {
        gateway_id = match target {
            Some(target) if target == id.0 => {
                return Err(Error::invalid(
                    "gateway_behind_gateway",
                    "gateway_id",
                    "a device cannot be behind itself",
                ));
            }
            Some(target) => Some(gateway_of(db, ctx, target).await?),
            None => None,
        };
    }
    check_gateway_shape(gateway, gateway_id)?;
    let mut active: model::ActiveModel = device.into();
    active.gateway = Set(gateway);
    active.gateway_id = Set(gateway_id);
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
    if let Some(profile) = body.profile_id {
        active.profile_id = Set(Some(
            crate::profiles::repo::resolve(db, ctx, Some(profile))
                .await?
                .id,
        ));
    }
    active.updated_at = Set(Utc::now());
    let txn = crate::db::begin_write(db).await?;
    let device = active.update(&txn).await.map_err(name_taken(&name))?;
    device_event(&txn, ctx, EventType::DeviceUpdated, &device).await?;
    txn.commit().await?;
    Ok(device)
}

/// Whether any device is behind the gateway `id`.
async fn has_sub_devices(db: &impl crate::db::Db, ctx: &TenantCtx, id: DeviceId) -> Result<bool> {
    Ok(Devices::find()
        .filter(model::Column::TenantId.eq(ctx.tenant_id().0))
        .filter(model::Column::GatewayId.eq(id.0))
        .one(db)
        .await?
        .is_some())
}

pub async fn delete(db: &impl crate::db::Db, ctx: &TenantCtx, id: DeviceId) -> Result<()> {
    let txn = crate::db::begin_write(db).await?;
    let device = get(&txn, ctx, id).await?;
    let result = Devices::delete_many()
        .filter(model::Column::Id.eq(id.0))
        .filter(in_reach(ctx))
        .exec(&txn)
        .await?;
    if result.rows_affected == 0 {
        return Err(Error::NotFound("device"));
    }
    device_event(&txn, ctx, EventType::DeviceDeleted, &device).await?;
    txn.commit().await?;
    Ok(())
}

/// The outbox event of a device's creation, change or deletion, in the change's transaction.
async fn device_event(
    txn: &impl sea_orm::ConnectionTrait,
    ctx: &TenantCtx,
    event_type: EventType,
    device: &model::Model,
) -> Result<()> {
    crate::events::record(
        txn,
        ctx.tenant_id(),
        event_type,
        Some(DeviceId(device.id)),
        serde_json::json!({ "device": to_api(device.clone()) }),
    )
    .await?;
    Ok(())
}

/// Replaces a device's credentials; the old ones stop working at once (the caller ends its
/// session).
pub async fn set_credentials(
    db: &impl crate::db::Db,
    ctx: &TenantCtx,
    id: DeviceId,
    set: SetCredentials,
) -> Result<DeviceCredentials> {
    let device = get(db, ctx, id).await?;
    let issued = super::credentials::issue(Some(set)).await?;
    let mut active: model::ActiveModel = device.into();
    active.credentials_type = Set(issued.credentials_type.into());
    active.token_hash = Set(issued.token_hash);
    active.mqtt_client_id = Set(issued.mqtt_client_id);
    active.mqtt_username = Set(issued.mqtt_username);
    active.mqtt_password_hash = Set(issued.mqtt_password_hash);
    active.credentials_expire_at = Set(issued.expire_at);
    active.updated_at = Set(Utc::now());
    active
        .update(db)
        .await
        .map_err(super::credentials::username_taken)?;
    Ok(issued.shown)
}

/// Issues a new secret of the same kind (a new access token, or a new MQTT password for the same
/// user name and client id); the expiry stays.
pub async fn rotate_credentials(
    db: &impl crate::db::Db,
    ctx: &TenantCtx,
    id: DeviceId,
) -> Result<DeviceCredentials> {
    let device = get(db, ctx, id).await?;
    let expires_at = device
        .credentials_expire_at
        .filter(|t| *t > Utc::now().timestamp_millis())
        .and_then(chrono::DateTime::from_timestamp_millis);
    let set = match (credentials_type_of(&device), device.mqtt_username) {
        (CredentialsType::MqttBasic, Some(username)) => SetCredentials::MqttBasic {
            client_id: device.mqtt_client_id,
            username,
            password: None,
            expires_at,
        },
        _ => SetCredentials::AccessToken {
            token: None,
            expires_at,
        },
    };
    set_credentials(db, ctx, id, set).await
}

/// Mirrors the live presence in the device rows (for filtering the list). Internal: the device
/// ids come from authenticated sessions. Only rows that change are written.
pub async fn set_online(
    _: System,
    db: &impl crate::db::Db,
    devices: &[DeviceId],
    online: bool,
) -> Result<()> {
    if devices.is_empty() {
        return Ok(());
    }
    Devices::update_many()
        .col_expr(model::Column::Online, Expr::value(online))
        .filter(model::Column::Id.is_in(devices.iter().map(|d| d.0)))
        .filter(model::Column::Online.ne(online))
        .exec(db)
        .await?;
    Ok(())
}

/// The tenant of each device that exists among `devices`, or of every device whose `online`
/// column is set when `devices` is `None`: for the system-wide sweeps of the worker and of
/// start-up (node lost, a previous run killed), which write to the devices' timelines.
pub async fn tenants_of(
    _: System,
    db: &impl crate::db::Db,
    devices: Option<&[DeviceId]>,
) -> Result<Vec<(DeviceId, TenantId)>> {
    let mut select = Devices::find()
        .select_only()
        .column(model::Column::Id)
        .column(model::Column::TenantId);
    select = match devices {
        Some(ids) => select.filter(model::Column::Id.is_in(ids.iter().map(|d| d.0))),
        None => select.filter(model::Column::Online.eq(true)),
    };
    let rows: Vec<(Uuid, Uuid)> = select.into_tuple().all(db).await?;
    Ok(rows
        .into_iter()
        .map(|(d, t)| (DeviceId(d), TenantId(t)))
        .collect())
}

/// A device that proved who it is.
#[derive(Debug, Clone)]
pub struct DeviceIdentity {
    pub device_id: DeviceId,
    pub tenant_id: TenantId,
    pub name: String,
    /// The tenant's rate-limit overrides, as they were at authentication.
    pub tenant_limits: stead_api_types::TenantLimits,
    /// The tenant's quota overrides, as they were at authentication.
    pub tenant_quotas: stead_api_types::TenantQuotas,
    /// Set while the device is disabled: it proved who it is, and is refused anyway.
    pub disabled_reason: Option<String>,
    /// When its credentials stop working (ms since the epoch).
    pub credentials_expire_at: Option<i64>,
    /// The device profile's overrides of the per-device limits (they win over the tenant's).
    pub profile_limits: stead_api_types::ProfileLimits,
    /// May speak for the devices behind it (`v1/gateway/...`).
    pub gateway: bool,
    /// A digest of the credentials it proved (`stamp_of`): a session whose stamp no longer
    /// matches the device's row was revoked, even if this node missed the word.
    pub stamp: String,
    /// The tenant's telemetry retention (days), when it has its own.
    pub telemetry_retention_days: Option<i32>,
}

impl DeviceIdentity {
    /// The per-device and per-tenant limits that apply to this device.
    pub fn limits(&self, cfg: &crate::config::Config) -> crate::tenants::repo::EffectiveLimits {
        let mut overrides = self.tenant_limits.clone();
        if let Some(m) = &self.profile_limits.device_messages {
            overrides.device_messages = Some(m.clone());
        }
        if let Some(p) = &self.profile_limits.device_data_points {
            overrides.device_data_points = Some(p.clone());
        }
        crate::tenants::repo::EffectiveLimits::of(cfg, &overrides)
    }
}

/// The identity of a device whose tenant is active (a suspended tenant's devices are unknown).
/// A digest of a device's credentials: any change to them (a new token, user name, password,
/// client id or type) changes it.
fn stamp_of(device: &model::Model) -> String {
    tokens::hash_token(&format!(
        "{}\n{}\n{:?}\n{:?}\n{:?}",
        device.credentials_type,
        device.token_hash,
        device.mqtt_username,
        device.mqtt_client_id,
        device.mqtt_password_hash
    ))
}

/// Why sessions held on this node should end now, checked against the database after the node
/// missed the other nodes' word (see `ingress::resync`): the device is gone, disabled, its
/// tenant suspended, its credentials changed (`stamp`, for its own connection) or expired.
/// Sessions still valid are not in the answer.
pub async fn no_longer_admitted(
    _: System,
    db: &impl crate::db::Db,
    held: &[(DeviceId, Option<String>)],
) -> Result<Vec<(DeviceId, stead_api_types::DisconnectReason)>> {
    use stead_api_types::DisconnectReason as Why;
    let now = Utc::now().timestamp_millis();
    let mut ended = Vec::new();
    for chunk in held.chunks(1000) {
        let rows: std::collections::HashMap<Uuid, model::Model> = Devices::find()
            .filter(model::Column::Id.is_in(chunk.iter().map(|(d, _)| d.0)))
            .all(db)
            .await?
            .into_iter()
            .map(|d| (d.id, d))
            .collect();
        let tenants: std::collections::HashSet<Uuid> = rows.values().map(|d| d.tenant_id).collect();
        let mut suspended = std::collections::HashSet::new();
        for tenant in tenants {
            let active = crate::tenants::repo::find(db, TenantId(tenant))
                .await?
                .is_some_and(|t| crate::tenants::repo::status(&t) != TenantStatus::Suspended);
            if !active {
                suspended.insert(tenant);
            }
        }
        for (device, stamp) in chunk {
            let why = match rows.get(&device.0) {
                None => Some(Why::CredentialsRevoked),
                Some(d) if suspended.contains(&d.tenant_id) => Some(Why::CredentialsRevoked),
                Some(d) if d.disabled_reason.is_some() => Some(Why::Disabled),
                Some(d) if stamp.as_ref().is_some_and(|s| *s != stamp_of(d)) => {
                    Some(Why::CredentialsRevoked)
                }
                Some(d)
                    if stamp.is_some() && d.credentials_expire_at.is_some_and(|at| at <= now) =>
                {
                    Some(Why::CredentialsExpired)
                }
                Some(_) => None,
            };
            if let Some(why) = why {
                ended.push((*device, why));
            }
        }
    }
    Ok(ended)
}

async fn identity_of(
    db: &impl crate::db::Db,
    device: model::Model,
) -> Result<Option<DeviceIdentity>> {
    Ok(identities_of(db, vec![device]).await?.pop())
}

/// The identities of these devices, with their tenants and profiles read in one query each
/// (whatever the number of devices); devices of a suspended tenant are left out.
async fn identities_of(
    db: &impl crate::db::Db,
    devices: Vec<model::Model>,
) -> Result<Vec<DeviceIdentity>> {
    use std::collections::{HashMap, HashSet};
    if devices.is_empty() {
        return Ok(Vec::new());
    }
    let tenant_ids: HashSet<Uuid> = devices.iter().map(|d| d.tenant_id).collect();
    let tenants: HashMap<Uuid, crate::tenants::model::Model> =
        crate::tenants::model::Entity::find()
            .filter(crate::tenants::model::Column::Id.is_in(tenant_ids))
            .all(db)
            .await?
            .into_iter()
            .filter(|t| crate::tenants::repo::status(t) != TenantStatus::Suspended)
            .map(|t| (t.id, t))
            .collect();
    let profile_ids: HashSet<Uuid> = devices.iter().filter_map(|d| d.profile_id).collect();
    let profiles: HashMap<Uuid, stead_api_types::ProfileLimits> = if profile_ids.is_empty() {
        HashMap::new()
    } else {
        crate::profiles::model::Entity::find()
            .filter(crate::profiles::model::Column::Id.is_in(profile_ids))
            .all(db)
            .await?
            .into_iter()
            .map(|p| (p.id, crate::profiles::repo::limits_of(&p)))
            .collect()
    };
    Ok(devices
        .into_iter()
        .filter_map(|device| {
            let tenant = tenants.get(&device.tenant_id)?;
            let profile_limits = device
                .profile_id
                .and_then(|id| profiles.get(&id).cloned())
                .unwrap_or_default();
            Some(identity_from(device, tenant, profile_limits))
        })
        .collect())
}

/// What a session needs to know of its device, from the device, its tenant and its profile.
fn identity_from(
    device: model::Model,
    tenant: &crate::tenants::model::Model,
    profile_limits: stead_api_types::ProfileLimits,
) -> DeviceIdentity {
    DeviceIdentity {
        stamp: stamp_of(&device),
        telemetry_retention_days: tenant.telemetry_retention_days,
        device_id: DeviceId(device.id),
        tenant_id: TenantId(device.tenant_id),
        name: device.name,
        tenant_limits: crate::tenants::repo::limits_of(tenant),
        tenant_quotas: crate::tenants::quotas::overrides_of(tenant),
        disabled_reason: device.disabled_reason,
        credentials_expire_at: device.credentials_expire_at,
        profile_limits,
        gateway: device.gateway,
    }
}

/// The access-token devices behind these token hashes, as (hash, identity): a reconnect
/// storm's lookups, gathered, in one statement and one round trip, the tenant and profile
/// joined (on PostgreSQL the hashes travel as one array: one statement, prepared once per
/// connection, whatever the number). Devices of a suspended tenant are left out. Whether each
/// may connect now is `credentials::admissible`.
pub async fn authenticate_hashes(
    _: System,
    db: &impl crate::db::Db,
    hashes: &[String],
) -> Result<Vec<(String, DeviceIdentity)>> {
    use sea_orm::{DatabaseBackend, FromQueryResult, Iterable, Statement, Value};
    if hashes.is_empty() {
        return Ok(Vec::new());
    }
    // Each table's columns under a prefix, as `FromQueryResult` reads them back.
    fn columns<C: Iterable + sea_orm::IdenStatic>(table: &str) -> String {
        C::iter()
            .map(|c| format!("{table}.\"{0}\" AS \"{table}_{0}\"", c.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    }
    let backend = db.get_database_backend();
    let (matching, values) = if backend == DatabaseBackend::Postgres {
        let hashes = hashes.iter().map(|h| Value::from(h.as_str())).collect();
        (
            "d.token_hash = ANY($1)".to_owned(),
            vec![Value::Array(
                sea_orm::sea_query::ArrayType::String,
                Some(Box::new(hashes)),
            )],
        )
    } else {
        (
            format!("d.token_hash IN ({})", vec!["?"; hashes.len()].join(",")),
            hashes.iter().map(|h| Value::from(h.as_str())).collect(),
        )
    };
    let sql = format!(
        "SELECT {}, {}, {} FROM devices d \
         JOIN tenants t ON t.id = d.tenant_id \
         LEFT JOIN device_profiles p ON p.id = d.profile_id \
         WHERE {matching} AND d.credentials_type = 'access_token'",
        columns::<model::Column>("d"),
        columns::<crate::tenants::model::Column>("t"),
        columns::<crate::profiles::model::Column>("p"),
    );
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?;
    let mut found = Vec::with_capacity(rows.len());
    for row in rows {
        let device = model::Model::from_query_result(&row, "d_")?;
        let tenant = crate::tenants::model::Model::from_query_result(&row, "t_")?;
        if crate::tenants::repo::status(&tenant) == TenantStatus::Suspended {
            continue;
        }
        let profile_limits = crate::profiles::model::Model::from_query_result_optional(&row, "p_")?
            .map(|p| crate::profiles::repo::limits_of(&p))
            .unwrap_or_default();
        let hash = device.token_hash.clone();
        found.push((hash, identity_from(device, &tenant, profile_limits)));
    }
    Ok(found)
}

/// An MQTT-basic device, found by its user name, with what its login is checked against.
pub struct MqttBasicDevice {
    pub identity: DeviceIdentity,
    pub client_id: Option<String>,
    pub password_hash: String,
}

/// The MQTT-basic device with this user name (unique across tenants), if its tenant is active.
pub async fn find_mqtt_basic(
    _: System,
    db: &impl crate::db::Db,
    username: &str,
) -> Result<Option<MqttBasicDevice>> {
    let Some(device) = Devices::find()
        .filter(model::Column::MqttUsername.eq(username))
        .filter(model::Column::CredentialsType.eq("mqtt_basic"))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let (client_id, hash) = (
        device.mqtt_client_id.clone(),
        device.mqtt_password_hash.clone(),
    );
    let (Some(identity), Some(password_hash)) = (identity_of(db, device).await?, hash) else {
        return Ok(None);
    };
    Ok(Some(MqttBasicDevice {
        identity,
        client_id,
        password_hash,
    }))
}

/// Takes the device's credentials away (type `none`): no token, user name or password works
/// until it is given new ones. The caller ends its session.
pub async fn revoke_credentials(
    db: &impl crate::db::Db,
    ctx: &TenantCtx,
    id: DeviceId,
) -> Result<model::Model> {
    let device = get(db, ctx, id).await?;
    let mut active: model::ActiveModel = device.into();
    active.credentials_type = Set("none".into());
    // The hash of a token nobody knows: the column stays unique and non-null.
    active.token_hash = Set(tokens::hash_token(&tokens::random_token()));
    active.mqtt_client_id = Set(None);
    active.mqtt_username = Set(None);
    active.mqtt_password_hash = Set(None);
    active.credentials_expire_at = Set(None);
    active.updated_at = Set(Utc::now());
    Ok(active.update(db).await?)
}

/// Disables the device with a reason (quarantine), or enables it again (`None`).
pub async fn set_disabled(
    db: &impl crate::db::Db,
    ctx: &TenantCtx,
    id: DeviceId,
    reason: Option<String>,
) -> Result<model::Model> {
    let reason = reason
        .map(|r| match parse_optional(Some(r), "reason", 512)? {
            Some(r) => Ok(r),
            None => Err(Error::invalid(
                "invalid_field",
                "reason",
                "say why the device is disabled (1 to 512 characters)",
            )),
        })
        .transpose()?;
    let device = get(db, ctx, id).await?;
    let mut active: model::ActiveModel = device.into();
    active.disabled_reason = Set(reason);
    active.updated_at = Set(Utc::now());
    Ok(active.update(db).await?)
}

/// Devices whose credentials expire within `within_days` days, expired ones included, soonest
/// first (at most 1,000).
/// How many devices `ctx` reaches, and how many of them are online.
pub async fn count_online(db: &impl crate::db::Db, ctx: &TenantCtx) -> Result<(u64, u64)> {
    let total = Devices::find().filter(in_reach(ctx)).count(db).await?;
    let online = Devices::find()
        .filter(in_reach(ctx))
        .filter(model::Column::Online.eq(true))
        .count(db)
        .await?;
    Ok((total, online))
}

/// The names of those of `ids` that `ctx` reaches.
pub async fn names_of(
    db: &impl crate::db::Db,
    ctx: &TenantCtx,
    ids: &[Uuid],
) -> Result<std::collections::HashMap<Uuid, String>> {
    if ids.is_empty() {
        return Ok(Default::default());
    }
    Ok(Devices::find()
        .select_only()
        .column(model::Column::Id)
        .column(model::Column::Name)
        .filter(in_reach(ctx))
        .filter(model::Column::Id.is_in(ids.to_vec()))
        .into_tuple::<(Uuid, String)>()
        .all(db)
        .await?
        .into_iter()
        .collect())
}

pub async fn expiring(
    db: &impl crate::db::Db,
    ctx: &TenantCtx,
    within_days: u32,
) -> Result<Vec<model::Model>> {
    if within_days > 3650 {
        return Err(Error::invalid(
            "invalid_query",
            "within_days",
            "`within_days` is between 0 and 3650",
        ));
    }
    let until = Utc::now().timestamp_millis() + i64::from(within_days) * 86_400_000;
    Ok(Devices::find()
        .filter(in_reach(ctx))
        .filter(model::Column::CredentialsExpireAt.is_not_null())
        .filter(model::Column::CredentialsExpireAt.lte(until))
        .order_by_asc(model::Column::CredentialsExpireAt)
        .order_by_asc(model::Column::Id)
        .limit(1000)
        .all(db)
        .await?)
}

/// The tenant's device with this name.
pub async fn by_name(
    db: &impl sea_orm::ConnectionTrait,
    ctx: &TenantCtx,
    name: &str,
) -> Result<Option<model::Model>> {
    Ok(Devices::find()
        .filter(in_reach(ctx))
        .filter(model::Column::Name.eq(name.trim()))
        .one(db)
        .await?)
}

/// Why a gateway may not speak for a device it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotBehind {
    /// The gateway named itself.
    Itself,
    /// A device of the tenant that is not behind this gateway (connected directly, or behind
    /// another gateway): a gateway must not speak for it. A person moves it (`gateway_id`).
    Elsewhere(DeviceId),
}

/// A device behind a gateway, as the gateway's session holds it.
pub struct SubDevice {
    pub identity: DeviceIdentity,
    /// Created by this lookup: the gateway named it for the first time.
    pub created: bool,
}

/// The device named `name` behind `gateway`, looked up in the gateway's tenant only (another
/// tenant's devices cannot be named at all). A name the tenant does not know is created on first
/// sight, through `create` (so the device quota and the `device.created` event apply), behind the
/// gateway and without credentials of its own, in the profile named like `device_type` (the
/// tenant's default when no profile has that name: a gateway does not create profiles).
pub async fn sub_device(
    db: &impl crate::db::Db,
    ctx: &TenantCtx,
    quotas: &crate::tenants::quotas::Defaults,
    gateway: DeviceId,
    name: &str,
    device_type: Option<&str>,
) -> Result<std::result::Result<SubDevice, NotBehind>> {
    let name = parse_name(name)?;
    let (device, created) = match by_name(db, ctx, &name).await? {
        Some(device) => (device, false),
        None => {
            let profile_id = match device_type.map(str::trim).filter(|t| !t.is_empty()) {
                Some(t) => crate::profiles::repo::find_by_name(db, ctx, t)
                    .await?
                    .map(|p| p.id),
                None => None,
            };
            let body = CreateDevice {
                name: name.clone(),
                label: None,
                device_type: device_type.map(str::to_owned),
                metadata: None,
                profile_id,
                groups: None,
                credentials: None,
                gateway: false,
                gateway_id: Some(gateway.0),
            };
            match create(db, ctx, quotas, body).await {
                Ok((device, _)) => (device, true),
                // Named by two messages at once: the other one created it.
                Err(Error::Conflict {
                    code: "device_name_taken",
                    ..
                }) => (
                    by_name(db, ctx, &name)
                        .await?
                        .ok_or(Error::NotFound("device"))?,
                    false,
                ),
                Err(e) => return Err(e),
            }
        }
    };
    if device.id == gateway.0 {
        return Ok(Err(NotBehind::Itself));
    }
    if device.gateway_id != Some(gateway.0) {
        return Ok(Err(NotBehind::Elsewhere(DeviceId(device.id))));
    }
    match identity_of(db, device).await? {
        Some(identity) => Ok(Ok(SubDevice { identity, created })),
        // Its tenant was suspended meanwhile; the gateway's session is being ended.
        None => Err(Error::NotFound("device")),
    }
}
