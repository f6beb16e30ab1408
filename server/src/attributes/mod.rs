//! Device attributes in three scopes: client (reported by the device), shared (set by people or
//! integrations, pushed to the device when they change, answered to its attribute requests) and
//! server (platform only). Stored one row per (device, scope, key) with a version that counts the
//! key's changes; writing an unchanged value changes nothing.

pub mod http;

use sea_orm::{ConnectionTrait, DatabaseBackend, Statement, TransactionSession as _, Value};
use stead_api_types::{Attribute, AttributeScope, EventType};
use uuid::Uuid;

use crate::auth::TenantCtx;
use crate::db::placeholder as p;
use crate::devices::repo::DeviceIdentity;
use crate::error::{Error, Result};
use crate::ids::DeviceId;

/// Most keys one write may carry.
pub const MAX_KEYS: usize = 500;

/// Checks keys and size of attributes set through the API.
pub fn validate(values: &serde_json::Map<String, serde_json::Value>) -> Result<()> {
    if values.is_empty() {
        return Err(Error::invalid(
            "invalid_attributes",
            "values",
            "give at least one attribute as {\"key\": value}",
        ));
    }
    if values.len() > MAX_KEYS {
        return Err(Error::invalid(
            "invalid_attributes",
            "values",
            format!("at most {MAX_KEYS} attributes per call"),
        ));
    }
    if let Some(bad) = values
        .keys()
        .find(|k| k.trim().is_empty() || k.len() > 256 || k.chars().any(char::is_control))
    {
        return Err(Error::invalid(
            "invalid_attributes",
            "values",
            format!("invalid attribute key {bad:?}: 1 to 256 printable characters"),
        ));
    }
    if serde_json::Value::Object(values.clone()).to_string().len() > 64 * 1024 {
        return Err(Error::invalid(
            "invalid_attributes",
            "values",
            "the attributes are larger than 64 KiB",
        ));
    }
    Ok(())
}

/// Upserts `values` into one scope of each device; a key whose value is unchanged keeps its
/// version. Answers the rows that changed.
async fn upsert(
    db: &impl ConnectionTrait,
    tenant: Uuid,
    devices: &[Uuid],
    scope: AttributeScope,
    values: &serde_json::Map<String, serde_json::Value>,
    now: i64,
) -> Result<u64> {
    if values.is_empty() || devices.is_empty() {
        return Ok(0);
    }
    let b = db.get_database_backend();
    let (cast, distinct) = if b == DatabaseBackend::Postgres {
        ("::jsonb", "IS DISTINCT FROM")
    } else {
        ("", "IS NOT")
    };
    let mut changed = 0;
    // Keep each statement under the backends' parameter limits.
    let per_statement = (2000 / values.len()).max(1);
    for chunk in devices.chunks(per_statement) {
        let mut sql = String::from(
            "INSERT INTO device_attributes (device_id, scope, key, tenant_id, value, updated_at, version) VALUES ",
        );
        let mut params: Vec<Value> = Vec::new();
        let mut n = 0;
        for device in chunk {
            for (key, value) in values {
                if n > 0 {
                    sql.push(',');
                }
                let i = n * 5;
                sql.push_str(&format!(
                    "({}, '{}', {}, {}, {}{cast}, {}, 1)",
                    p(b, i + 1),
                    scope.as_str(),
                    p(b, i + 2),
                    p(b, i + 3),
                    p(b, i + 4),
                    p(b, i + 5)
                ));
                params.extend([
                    (*device).into(),
                    key.clone().into(),
                    tenant.into(),
                    value.to_string().into(),
                    now.into(),
                ]);
                n += 1;
            }
        }
        sql.push_str(&format!(
            " ON CONFLICT (device_id, scope, key) DO UPDATE SET value = excluded.value, \
             updated_at = excluded.updated_at, version = device_attributes.version + 1 \
             WHERE device_attributes.value {distinct} excluded.value"
        ));
        changed += db
            .execute_raw(Statement::from_sql_and_values(b, sql, params))
            .await?
            .rows_affected();
    }
    Ok(changed)
}

/// Stores the client attributes a device reported, durably; with their event when the tenant
/// subscribes to it (in one transaction).
pub async fn set_client(
    db: &impl crate::db::Db,
    subscriptions: &crate::events::Subscriptions,
    device: &DeviceIdentity,
    values: serde_json::Map<String, serde_json::Value>,
    now: i64,
) -> Result<()> {
    if !subscriptions.wants(device.tenant_id, EventType::ClientAttributesUpdated) {
        return upsert(
            db,
            device.tenant_id.0,
            &[device.device_id.0],
            AttributeScope::Client,
            &values,
            now,
        )
        .await
        .map(|_| ());
    }
    let txn = crate::db::begin_write(db).await?;
    upsert(
        &txn,
        device.tenant_id.0,
        &[device.device_id.0],
        AttributeScope::Client,
        &values,
        now,
    )
    .await?;
    crate::events::record(
        &txn,
        device.tenant_id,
        EventType::ClientAttributesUpdated,
        Some(device.device_id),
        serde_json::json!({"device_id": device.device_id.0, "values": values}),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// Sets shared or server attributes on devices the caller has checked are the tenant's.
/// Answers how many (device, key) rows changed.
pub async fn set(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    devices: &[Uuid],
    scope: AttributeScope,
    values: &serde_json::Map<String, serde_json::Value>,
    now: i64,
) -> Result<u64> {
    if scope == AttributeScope::Client {
        return Err(Error::invalid(
            "read_only_scope",
            "scope",
            "client attributes are reported by the device; set shared or server attributes",
        ));
    }
    validate(values)?;
    let changed = upsert(db, ctx.tenant_id().0, devices, scope, values, now).await?;
    if scope == AttributeScope::Shared {
        for device in devices {
            crate::events::record(
                db,
                ctx.tenant_id(),
                EventType::SharedAttributesUpdated,
                Some(DeviceId(*device)),
                serde_json::json!({"device_id": device, "values": values}),
            )
            .await?;
        }
    }
    Ok(changed)
}

/// Deletes keys of one scope of a device; answers the keys that existed.
pub async fn delete(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    device: DeviceId,
    scope: AttributeScope,
    keys: &[String],
) -> Result<Vec<String>> {
    let existing: Vec<String> = list(db, ctx, device, Some(scope), Some(keys))
        .await?
        .into_iter()
        .map(|a| a.key)
        .collect();
    if existing.is_empty() {
        return Ok(existing);
    }
    let b = db.get_database_backend();
    let marks: Vec<String> = (0..existing.len()).map(|i| p(b, i + 4)).collect();
    let sql = format!(
        "DELETE FROM device_attributes WHERE device_id = {} AND tenant_id = {} AND scope = {} AND key IN ({})",
        p(b, 1),
        p(b, 2),
        p(b, 3),
        marks.join(",")
    );
    let mut params: Vec<Value> = vec![
        Uuid::from(device).into(),
        ctx.tenant_id().0.into(),
        scope.as_str().into(),
    ];
    params.extend(existing.iter().map(|k| Value::from(k.clone())));
    db.execute_raw(Statement::from_sql_and_values(b, sql, params))
        .await?;
    if scope == AttributeScope::Shared {
        crate::events::record(
            db,
            ctx.tenant_id(),
            EventType::SharedAttributesUpdated,
            Some(device),
            serde_json::json!({"device_id": device.0, "deleted": existing}),
        )
        .await?;
    }
    Ok(existing)
}

/// The attributes of some devices (at most a few hundred: one statement), with their device.
async fn rows(
    db: &impl ConnectionTrait,
    tenant: Uuid,
    devices: &[Uuid],
    scope: Option<AttributeScope>,
) -> Result<Vec<(Uuid, Attribute)>> {
    if devices.is_empty() {
        return Ok(Vec::new());
    }
    let b = db.get_database_backend();
    let value = if b == DatabaseBackend::Postgres {
        "value::text"
    } else {
        "value"
    };
    let marks: Vec<String> = (0..devices.len()).map(|i| p(b, i + 2)).collect();
    let mut sql = format!(
        "SELECT device_id, scope, key, {value} AS value, version, updated_at FROM device_attributes WHERE tenant_id = {} AND device_id IN ({})",
        p(b, 1),
        marks.join(","),
    );
    let mut params: Vec<Value> = vec![tenant.into()];
    params.extend(devices.iter().map(|d| Value::from(*d)));
    if let Some(scope) = scope {
        sql.push_str(&format!(" AND scope = {}", p(b, devices.len() + 2)));
        params.push(scope.as_str().into());
    }
    sql.push_str(" ORDER BY scope, key");
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(b, sql, params))
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let scope: String = r.try_get("", "scope")?;
        let raw: String = r.try_get("", "value")?;
        let version: i64 = r.try_get("", "version")?;
        out.push((
            r.try_get("", "device_id")?,
            Attribute {
                scope: AttributeScope::parse(&scope).unwrap_or(AttributeScope::Server),
                key: r.try_get("", "key")?,
                value: serde_json::from_str(&raw).unwrap_or(serde_json::Value::Null),
                version: version as u64,
                updated_at: r.try_get("", "updated_at")?,
            },
        ));
    }
    Ok(out)
}

/// One scope's values of many devices, by device (an import compares them with its file).
pub async fn values_of(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    devices: &[Uuid],
    scope: AttributeScope,
) -> Result<std::collections::HashMap<Uuid, serde_json::Map<String, serde_json::Value>>> {
    let mut out: std::collections::HashMap<Uuid, serde_json::Map<_, _>> = Default::default();
    for chunk in devices.chunks(500) {
        for (device, a) in rows(db, ctx.tenant_id().0, chunk, Some(scope)).await? {
            out.entry(device).or_default().insert(a.key, a.value);
        }
    }
    Ok(out)
}

/// A device's attributes (one scope or all, some keys or all), for people and integrations.
pub async fn list(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    device: DeviceId,
    scope: Option<AttributeScope>,
    keys: Option<&[String]>,
) -> Result<Vec<Attribute>> {
    let mut all: Vec<Attribute> = rows(db, ctx.tenant_id().0, &[device.0], scope)
        .await?
        .into_iter()
        .map(|(_, a)| a)
        .collect();
    if let Some(keys) = keys {
        all.retain(|a| keys.contains(&a.key));
    }
    Ok(all)
}

/// Answers a device's attribute request: `{"client":{…},"shared":{…}}` with the asked keys (all
/// keys of a scope when its list is absent). Server attributes are never shown to the device.
pub async fn answer_request(
    db: &impl ConnectionTrait,
    device: &DeviceIdentity,
    client_keys: Option<Vec<String>>,
    shared_keys: Option<Vec<String>>,
) -> Result<serde_json::Value> {
    let all = rows(db, device.tenant_id.0, &[device.device_id.0], None).await?;
    let pick = |scope: AttributeScope, keys: &Option<Vec<String>>| {
        all.iter()
            .map(|(_, a)| a)
            .filter(|a| a.scope == scope)
            .filter(|a| keys.as_ref().is_none_or(|keys| keys.contains(&a.key)))
            .map(|a| (a.key.clone(), a.value.clone()))
            .collect::<serde_json::Map<_, _>>()
    };
    let mut answer = serde_json::Map::new();
    // As ThingsBoard does: only the scopes that were asked for (both when neither was named).
    let both = client_keys.is_none() && shared_keys.is_none();
    if both || client_keys.is_some() {
        answer.insert(
            "client".into(),
            serde_json::Value::Object(pick(AttributeScope::Client, &client_keys)),
        );
    }
    if both || shared_keys.is_some() {
        answer.insert(
            "shared".into(),
            serde_json::Value::Object(pick(AttributeScope::Shared, &shared_keys)),
        );
    }
    Ok(serde_json::Value::Object(answer))
}

/// The current shared values of `keys` on a device, to push after a change.
pub async fn shared_values(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    device: DeviceId,
    keys: &[String],
) -> Result<serde_json::Map<String, serde_json::Value>> {
    Ok(
        list(db, ctx, device, Some(AttributeScope::Shared), Some(keys))
            .await?
            .into_iter()
            .map(|a| (a.key, a.value))
            .collect(),
    )
}

/// Splits a comma-separated key list.
pub fn split_keys(s: &str) -> Vec<String> {
    s.split(',')
        .map(|k| k.trim().to_owned())
        .filter(|k| !k.is_empty())
        .collect()
}
