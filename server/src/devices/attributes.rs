//! Device attributes. Client attributes are what the device reports about itself; shared and
//! server scopes come with device management. Stored one row per (device, scope, key).

use std::collections::BTreeMap;

use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection, Statement, Value};
use uuid::Uuid;

use super::repo::DeviceIdentity;
use crate::auth::TenantCtx;
use crate::error::Result;
use crate::ids::DeviceId;

use crate::db::placeholder as p;

/// Stores the client attributes a device reported (upsert per key), durably.
pub async fn set_client(
    db: &DatabaseConnection,
    device: &DeviceIdentity,
    values: serde_json::Map<String, serde_json::Value>,
    now: i64,
) -> Result<()> {
    if values.is_empty() {
        return Ok(());
    }
    let b = db.get_database_backend();
    let cast = if b == DatabaseBackend::Postgres {
        "::jsonb"
    } else {
        ""
    };
    let mut sql = String::from(
        "INSERT INTO device_attributes (device_id, scope, key, tenant_id, value, updated_at) VALUES ",
    );
    let mut params: Vec<Value> = Vec::new();
    for (i, (key, value)) in values.into_iter().enumerate() {
        if i > 0 {
            sql.push(',');
        }
        let n = i * 5;
        sql.push_str(&format!(
            "({}, 'client', {}, {}, {}{cast}, {})",
            p(b, n + 1),
            p(b, n + 2),
            p(b, n + 3),
            p(b, n + 4),
            p(b, n + 5)
        ));
        params.extend([
            Uuid::from(device.device_id).into(),
            key.into(),
            Uuid::from(device.tenant_id).into(),
            value.to_string().into(),
            now.into(),
        ]);
    }
    sql.push_str(" ON CONFLICT (device_id, scope, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at");
    db.execute_raw(Statement::from_sql_and_values(b, sql, params))
        .await?;
    Ok(())
}

async fn scope_values(
    db: &DatabaseConnection,
    tenant: Uuid,
    device: DeviceId,
    scope: &str,
) -> Result<BTreeMap<String, serde_json::Value>> {
    let b = db.get_database_backend();
    let value = if b == DatabaseBackend::Postgres {
        "value::text"
    } else {
        "value"
    };
    let sql = format!(
        "SELECT key, {value} AS value FROM device_attributes WHERE device_id = {} AND tenant_id = {} AND scope = {} ORDER BY key",
        p(b, 1),
        p(b, 2),
        p(b, 3)
    );
    let params: Vec<Value> = vec![Uuid::from(device).into(), tenant.into(), scope.into()];
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(b, sql, params))
        .await?;
    let mut out = BTreeMap::new();
    for r in rows {
        let key: String = r.try_get("", "key")?;
        let raw: String = r.try_get("", "value")?;
        out.insert(
            key,
            serde_json::from_str(&raw).unwrap_or(serde_json::Value::Null),
        );
    }
    Ok(out)
}

/// Answers a device's attribute request: `{"client":{…},"shared":{…}}` with the asked keys (all
/// keys of a scope when its list is absent).
pub async fn answer_request(
    db: &DatabaseConnection,
    device: &DeviceIdentity,
    client_keys: Option<Vec<String>>,
    shared_keys: Option<Vec<String>>,
) -> Result<serde_json::Value> {
    let pick = |all: BTreeMap<String, serde_json::Value>,
                keys: &Option<Vec<String>>|
     -> serde_json::Map<String, serde_json::Value> {
        all.into_iter()
            .filter(|(k, _)| keys.as_ref().is_none_or(|keys| keys.contains(k)))
            .collect()
    };
    let tenant = Uuid::from(device.tenant_id);
    let client = scope_values(db, tenant, device.device_id, "client").await?;
    let shared = scope_values(db, tenant, device.device_id, "shared").await?;
    let mut answer = serde_json::Map::new();
    // As ThingsBoard does: only the scopes that were asked for (both when neither was named).
    let both = client_keys.is_none() && shared_keys.is_none();
    if both || client_keys.is_some() {
        answer.insert(
            "client".into(),
            serde_json::Value::Object(pick(client, &client_keys)),
        );
    }
    if both || shared_keys.is_some() {
        answer.insert(
            "shared".into(),
            serde_json::Value::Object(pick(shared, &shared_keys)),
        );
    }
    Ok(serde_json::Value::Object(answer))
}

/// The client attributes of a device the caller's tenant owns.
pub async fn client_of(
    db: &DatabaseConnection,
    ctx: &TenantCtx,
    device: DeviceId,
) -> Result<BTreeMap<String, serde_json::Value>> {
    scope_values(db, ctx.tenant_id().0, device, "client").await
}
