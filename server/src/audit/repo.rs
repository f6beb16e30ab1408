//! Reading a tenant's audit log: filtered, newest first, paged or in keyset batches for export.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Condition, Expr, ExprTrait, LikeExpr};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Select,
};
use stead_api_types::{ActorKind, AuditEntry};
use uuid::Uuid;

use super::model;
use crate::auth::TenantCtx;
use crate::error::{Error, Result};

/// The filters of `GET /audit`, checked.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub actor: Option<Uuid>,
    pub target: Option<Uuid>,
    pub target_type: Option<String>,
    pub action: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

impl Filter {
    pub fn parse(q: &stead_api_types::AuditQuery) -> Result<Filter> {
        let word = |v: &Option<String>, field: &'static str| -> Result<Option<String>> {
            match v.as_deref().map(str::trim) {
                None | Some("") => Ok(None),
                Some(s)
                    if s.len() <= 100
                        && s.bytes().all(|b| {
                            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_'
                        }) =>
                {
                    Ok(Some(s.to_owned()))
                }
                Some(_) => Err(Error::invalid(
                    "invalid_query",
                    field,
                    format!(
                        "`{field}` is lower-case letters, digits, `_` and `.`, e.g. `device.update`"
                    ),
                )),
            }
        };
        if let (Some(from), Some(to)) = (q.from, q.to)
            && from >= to
        {
            return Err(Error::invalid(
                "invalid_query",
                "to",
                "`to` must be after `from`",
            ));
        }
        Ok(Filter {
            actor: q.actor,
            target: q.target,
            target_type: word(&q.target_type, "target_type")?,
            action: word(&q.action, "action")?,
            from: q.from,
            to: q.to,
        })
    }
}

fn select(ctx: &TenantCtx, f: &Filter) -> Select<model::Entity> {
    let mut query = model::Entity::find().filter(model::Column::TenantId.eq(ctx.tenant_id().0));
    if let Some(actor) = f.actor {
        query = query.filter(model::Column::ActorUserId.eq(actor));
    }
    if let Some(target) = f.target {
        query = query.filter(model::Column::TargetId.eq(target));
    }
    if let Some(t) = &f.target_type {
        query = query.filter(model::Column::TargetType.eq(t.as_str()));
    }
    match &f.action {
        Some(prefix) if prefix.ends_with('.') => {
            // `_` is a wildcard to LIKE: escaped, so the prefix is compared as written.
            let pattern = format!("{}%", prefix.replace('_', "\\_"));
            query = query
                .filter(Expr::col(model::Column::Action).like(LikeExpr::new(pattern).escape('\\')));
        }
        Some(action) => query = query.filter(model::Column::Action.eq(action.as_str())),
        None => {}
    }
    if let Some(from) = f.from {
        query = query.filter(model::Column::CreatedAt.gte(from));
    }
    if let Some(to) = f.to {
        query = query.filter(model::Column::CreatedAt.lt(to));
    }
    query
        .order_by_desc(model::Column::CreatedAt)
        .order_by_desc(model::Column::Id)
}

/// One page, newest first, and how many entries match.
pub async fn list(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    f: &Filter,
    page: u64,
    per_page: u64,
) -> Result<(Vec<model::Model>, u64)> {
    let paginator = select(ctx, f).paginate(db, per_page);
    let total = paginator.num_items().await?;
    Ok((paginator.fetch_page(page - 1).await?, total))
}

/// The next `limit` entries after `after` (the last entry of the batch before), newest first:
/// a cursor on a unique position, so entries sharing a millisecond are neither skipped nor
/// repeated.
pub async fn batch(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    f: &Filter,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: u64,
) -> Result<Vec<model::Model>> {
    let mut query = select(ctx, f);
    if let Some((at, id)) = after {
        query = query.filter(
            Condition::any().add(model::Column::CreatedAt.lt(at)).add(
                Condition::all()
                    .add(model::Column::CreatedAt.eq(at))
                    .add(model::Column::Id.lt(id)),
            ),
        );
    }
    Ok(query.limit(limit).all(db).await?)
}

pub fn to_api(m: model::Model) -> AuditEntry {
    AuditEntry {
        id: m.id,
        seq: m.seq.unwrap_or_default(),
        at: m.created_at,
        actor_kind: match m.actor_kind.as_str() {
            "system" => ActorKind::System,
            "api_key" => ActorKind::ApiKey,
            _ => ActorKind::User,
        },
        actor_user_id: m.actor_user_id,
        actor_email: m.actor_email,
        actor_key_id: m.actor_key_id,
        source_ip: m.source_ip,
        action: m.action,
        target_type: m.target_type,
        target_id: m.target_id,
        detail: m.detail,
        hash: m.hash.unwrap_or_default(),
        prev_hash: m.prev_hash.unwrap_or_default(),
    }
}
