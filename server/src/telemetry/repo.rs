//! Reading stored telemetry. Every query names one device that the caller's `TenantCtx` has
//! already been checked to own (`devices::repo::get`), and filters on its tenant as well.

use std::collections::BTreeMap;

use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection, Statement, Value};
use stead_api_types::{AggregatePoint, TsValue};
use uuid::Uuid;

use crate::auth::TenantCtx;
use crate::error::{Error, Result};
use crate::ids::DeviceId;

use crate::db::placeholder as p;

fn parse_data(raw: &str) -> serde_json::Map<String, serde_json::Value> {
    match serde_json::from_str(raw) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    }
}

/// The `data` column as text on either backend.
fn data_text(backend: DatabaseBackend) -> &'static str {
    match backend {
        DatabaseBackend::Postgres => "data::text",
        _ => "data",
    }
}

/// Rows of one device in `[from, to)`, newest first (or oldest first), at most `limit`.
pub async fn rows(
    db: &DatabaseConnection,
    ctx: &TenantCtx,
    device: DeviceId,
    from: i64,
    to: i64,
    limit: u64,
    ascending: bool,
) -> Result<Vec<(i64, serde_json::Map<String, serde_json::Value>)>> {
    let b = db.get_database_backend();
    let sql = format!(
        "SELECT ts, {} AS data FROM telemetry WHERE device_id = {} AND tenant_id = {} AND ts >= {} AND ts < {} ORDER BY ts {} LIMIT {}",
        data_text(b),
        p(b, 1),
        p(b, 2),
        p(b, 3),
        p(b, 4),
        if ascending { "ASC" } else { "DESC" },
        p(b, 5),
    );
    let values: Vec<Value> = vec![
        Uuid::from(device).into(),
        Uuid::from(ctx.tenant_id()).into(),
        from.into(),
        to.into(),
        (limit as i64).into(),
    ];
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(b, sql, values))
        .await?;
    rows.into_iter()
        .map(|r| {
            let ts: i64 = r.try_get("", "ts")?;
            let data: String = r.try_get("", "data")?;
            Ok((ts, parse_data(&data)))
        })
        .collect()
}

/// Where a page of a device's points stops: the timestamp of its last point, and how many
/// points at that timestamp were read so far. Points that share a timestamp (two messages in
/// the same millisecond, or one message's array) are ordered by their values, so that the
/// next page goes on exactly after the last point read, never skipping or repeating one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub ts: i64,
    pub seen: u64,
}

impl Position {
    /// `"{ts}.{seen}"`, as the API hands it out.
    pub fn encode(self) -> String {
        format!("{}.{}", self.ts, self.seen)
    }

    pub fn decode(cursor: &str) -> Option<Position> {
        let (ts, seen) = cursor.split_once('.')?;
        Some(Position {
            ts: ts.parse().ok()?,
            seen: seen.parse().ok()?,
        })
    }
}

/// One page of a device's points in `[from, to)`: at most `limit` after `after` (oldest or
/// newest first), and the position to read the next page from, when more exist.
#[allow(clippy::too_many_arguments)]
pub async fn page(
    db: &DatabaseConnection,
    ctx: &TenantCtx,
    device: DeviceId,
    from: i64,
    to: i64,
    after: Option<Position>,
    limit: u64,
    ascending: bool,
) -> Result<(
    Vec<(i64, serde_json::Map<String, serde_json::Value>)>,
    Option<Position>,
)> {
    let b = db.get_database_backend();
    let (dir, beyond) = if ascending {
        ("ASC", ">=")
    } else {
        ("DESC", "<=")
    };
    let skip = after.map_or(0, |a| a.seen);
    let sql = format!(
        "SELECT ts, {} AS data FROM telemetry WHERE device_id = {} AND tenant_id = {} AND ts >= {} AND ts < {} AND ts {beyond} {} ORDER BY ts {dir}, data {dir} LIMIT {}",
        data_text(b),
        p(b, 1),
        p(b, 2),
        p(b, 3),
        p(b, 4),
        p(b, 5),
        p(b, 6),
    );
    let bound = after.map_or(if ascending { from } else { to - 1 }, |a| a.ts);
    let values: Vec<Value> = vec![
        Uuid::from(device).into(),
        Uuid::from(ctx.tenant_id()).into(),
        from.into(),
        to.into(),
        bound.into(),
        (limit
            .saturating_add(skip)
            .saturating_add(1)
            .min(i64::MAX as u64) as i64)
            .into(),
    ];
    let found = db
        .query_all_raw(Statement::from_sql_and_values(b, sql, values))
        .await?;
    let mut rows = Vec::with_capacity(found.len().min(limit as usize + 1));
    let mut skipped = 0;
    for r in found {
        let ts: i64 = r.try_get("", "ts")?;
        // The points at the cursor's timestamp that earlier pages returned.
        if after.is_some_and(|a| a.ts == ts) && skipped < skip {
            skipped += 1;
            continue;
        }
        let data: String = r.try_get("", "data")?;
        rows.push((ts, parse_data(&data)));
    }
    let more = rows.len() as u64 > limit;
    rows.truncate(limit as usize);
    let next = match rows.last() {
        Some(&(last, _)) if more => {
            let here = rows.iter().rev().take_while(|(ts, _)| *ts == last).count() as u64;
            let before = if after.is_some_and(|a| a.ts == last) {
                skipped
            } else {
                0
            };
            Some(Position {
                ts: last,
                seen: before + here,
            })
        }
        _ => None,
    };
    Ok((rows, next))
}

/// The latest value of every key seen in the device's most recent points (a bounded scan, for
/// when the live state does not know the device, e.g. after an embedded restart).
pub async fn latest_from_storage(
    db: &DatabaseConnection,
    ctx: &TenantCtx,
    device: DeviceId,
) -> Result<BTreeMap<String, TsValue>> {
    let mut latest = BTreeMap::new();
    for (ts, data) in rows(db, ctx, device, 0, i64::MAX, 1000, false).await? {
        for (key, value) in data {
            latest.entry(key).or_insert(TsValue { ts, value });
        }
    }
    Ok(latest)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agg {
    Avg,
    Min,
    Max,
    Sum,
    Count,
}

impl Agg {
    pub fn parse(s: &str) -> Option<Agg> {
        Some(match s {
            "avg" => Agg::Avg,
            "min" => Agg::Min,
            "max" => Agg::Max,
            "sum" => Agg::Sum,
            "count" => Agg::Count,
            _ => return None,
        })
    }

    fn sql(self) -> &'static str {
        match self {
            Agg::Avg => "AVG",
            Agg::Min => "MIN",
            Agg::Max => "MAX",
            Agg::Sum => "SUM",
            Agg::Count => "COUNT",
        }
    }
}

/// Numeric values of `key`, bucketed by `interval` ms from `from`, aggregated in the database.
#[allow(clippy::too_many_arguments)]
pub async fn aggregate(
    db: &DatabaseConnection,
    ctx: &TenantCtx,
    device: DeviceId,
    key: &str,
    from: i64,
    to: i64,
    interval: i64,
    agg: Agg,
) -> Result<Vec<AggregatePoint>> {
    let b = db.get_database_backend();
    // The key is bound as a parameter on PostgreSQL; SQLite needs it inside a JSON path, so it is
    // quoted there (keys are already limited to 255 bytes; quotes and backslashes are escaped).
    let (value_expr, is_number, mut values): (String, String, Vec<Value>) = match b {
        DatabaseBackend::Postgres => (
            "(data->>$5)::float8".into(),
            "jsonb_typeof(data->$5) = 'number'".into(),
            vec![],
        ),
        _ => {
            let path = format!("$.\"{}\"", key.replace('\\', "\\\\").replace('"', "\\\""));
            let quoted = path.replace('\'', "''");
            (
                format!("CAST(json_extract(data, '{quoted}') AS REAL)"),
                format!("json_type(data, '{quoted}') IN ('integer', 'real')"),
                vec![],
            )
        }
    };
    let sql = format!(
        "SELECT (ts - {from_p}) / {interval_p} AS bucket, {agg}({value_expr}) AS value, COUNT(*) AS n
         FROM telemetry
         WHERE device_id = {dev} AND tenant_id = {tenant} AND ts >= {from_p2} AND ts < {to_p} AND {is_number}
         GROUP BY bucket ORDER BY bucket",
        from_p = p(b, 3),
        interval_p = p(b, 4),
        agg = agg.sql(),
        dev = p(b, 1),
        tenant = p(b, 2),
        from_p2 = p(b, 3),
        to_p = p(b, 6),
    );
    let mut params: Vec<Value> = vec![
        Uuid::from(device).into(),
        Uuid::from(ctx.tenant_id()).into(),
        from.into(),
        interval.into(),
    ];
    match b {
        DatabaseBackend::Postgres => {
            params.push(key.to_owned().into());
            params.push(to.into());
        }
        _ => {
            // SQLite's `?` placeholders are positional: repeat in order of appearance.
            params = vec![
                from.into(),
                interval.into(),
                Uuid::from(device).into(),
                Uuid::from(ctx.tenant_id()).into(),
                from.into(),
                to.into(),
            ];
        }
    }
    params.append(&mut values);
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(b, sql, params))
        .await?;
    rows.into_iter()
        .map(|r| {
            let bucket: i64 = r.try_get("", "bucket")?;
            let n: i64 = r.try_get("", "n")?;
            let value = match agg {
                Agg::Count => n as f64,
                _ => r.try_get::<Option<f64>>("", "value")?.unwrap_or(0.0),
            };
            Ok(AggregatePoint {
                ts: from + bucket * interval,
                value,
                count: n as u64,
            })
        })
        .collect::<std::result::Result<_, sea_orm::DbErr>>()
        .map_err(Error::from)
}
