//! Command rows. Every state change is a conditional update (`WHERE status IN (…)`), so that
//! concurrent nodes agree on what happened.

use sea_orm::entity::prelude::*;
use sea_orm::sea_query::ExprTrait as _;
use sea_orm::{ActiveValue::Set, ConnectionTrait, PaginatorTrait, QueryOrder};
use stead_api_types::{RpcCommand, RpcStatus};

use super::Outgoing;
use super::model::{self, Entity as Commands};
use crate::auth::{System, TenantCtx};
use crate::error::{Error, Result};
use crate::ids::DeviceId;
use crate::telemetry::now_ms;

pub fn status_of(c: &model::Model) -> RpcStatus {
    RpcStatus::parse(&c.status).unwrap_or(RpcStatus::Failed)
}

pub fn to_api(c: model::Model) -> RpcCommand {
    RpcCommand {
        status: status_of(&c),
        id: c.id,
        device_id: c.device_id,
        request_id: c.request_id as u32,
        method: c.method,
        params: c.params,
        oneway: c.oneway,
        persistent: c.persistent,
        timeout_ms: c.timeout_ms as u64,
        expires_at: c.expires_at,
        retries_left: Ord::max(c.retries_left, 0) as u32,
        created_by: c.created_by,
        created_at: c.created_at,
        sent_at: c.sent_at,
        delivered_at: c.delivered_at,
        completed_at: c.completed_at,
        response: c.response,
        error: c.error,
    }
}

/// The command as it goes out, in the current trace.
pub fn outgoing(c: &model::Model) -> Outgoing {
    Outgoing {
        id: c.id,
        device_id: DeviceId(c.device_id),
        request_id: c.request_id as u32,
        method: c.method.clone(),
        params: c.params.clone(),
        oneway: c.oneway,
        timeout_ms: c.timeout_ms as u64,
        trace: crate::observability::trace::current_carrier(),
    }
}

pub struct NewCommand {
    pub method: String,
    pub params: serde_json::Value,
    pub oneway: bool,
    pub persistent: bool,
    pub timeout_ms: i64,
    pub expires_at: i64,
    pub retries: i32,
    pub created_by: String,
}

/// Stores a new QUEUED command with a request id unique for the device.
pub async fn insert(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    device: DeviceId,
    new: NewCommand,
) -> Result<model::Model> {
    let mut last = None;
    for _ in 0..5 {
        // Random ids: unique per device (an index says so), never guessable from the last one.
        let request_id = (rand::random::<u32>() % 0x7fff_ffff) as i64 + 1;
        let result = model::ActiveModel {
            id: Set(Uuid::new_v4()),
            tenant_id: Set(ctx.tenant_id().0),
            device_id: Set(device.0),
            request_id: Set(request_id),
            method: Set(new.method.clone()),
            params: Set(new.params.clone()),
            oneway: Set(new.oneway),
            persistent: Set(new.persistent),
            status: Set(RpcStatus::Queued.as_str().into()),
            timeout_ms: Set(new.timeout_ms),
            expires_at: Set(new.expires_at),
            retries_left: Set(new.retries),
            created_by: Set(new.created_by.clone()),
            created_at: Set(now_ms()),
            sent_at: Set(None),
            delivered_at: Set(None),
            completed_at: Set(None),
            response: Set(None),
            error: Set(None),
        }
        .insert(db)
        .await;
        match result {
            Ok(c) => return Ok(c),
            Err(e) => last = Some(e),
        }
    }
    Err(last.map(Error::from).unwrap_or(Error::NotFound("command")))
}

pub async fn get(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    device: DeviceId,
    id: Uuid,
) -> Result<model::Model> {
    Commands::find_by_id(id)
        .filter(model::Column::TenantId.eq(ctx.tenant_id().0))
        .filter(model::Column::DeviceId.eq(device.0))
        .one(db)
        .await?
        .ok_or(Error::NotFound("command"))
}

/// A device's commands, newest first.
pub async fn history(
    db: &impl ConnectionTrait,
    ctx: &TenantCtx,
    device: DeviceId,
    page: u64,
    per_page: u64,
) -> Result<(Vec<model::Model>, u64)> {
    let paginator = Commands::find()
        .filter(model::Column::TenantId.eq(ctx.tenant_id().0))
        .filter(model::Column::DeviceId.eq(device.0))
        .order_by_desc(model::Column::CreatedAt)
        .order_by_desc(model::Column::Id)
        .paginate(db, per_page);
    let total = paginator.num_items().await?;
    Ok((paginator.fetch_page(page - 1).await?, total))
}

/// A device's commands waiting to be sent, oldest first.
pub async fn queued(
    _: System,
    db: &impl ConnectionTrait,
    devices: &[DeviceId],
    now: i64,
) -> Result<Vec<model::Model>> {
    Ok(Commands::find()
        .filter(model::Column::DeviceId.is_in(devices.iter().map(|d| d.0)))
        .filter(model::Column::Status.eq(RpcStatus::Queued.as_str()))
        .filter(model::Column::ExpiresAt.gt(now))
        .order_by_asc(model::Column::CreatedAt)
        .all(db)
        .await?)
}

/// Which time column a transition stamps.
pub enum Stamp {
    Sent,
    Delivered,
}

/// Moves a command from one of `from` to `to`; false when it was in none of them.
pub async fn transition(
    _: System,
    db: &impl ConnectionTrait,
    id: Uuid,
    from: &[RpcStatus],
    to: RpcStatus,
    stamp: Stamp,
) -> Result<bool> {
    let now = now_ms();
    let mut update = Commands::update_many()
        .col_expr(model::Column::Status, Expr::value(to.as_str()))
        .filter(model::Column::Id.eq(id))
        .filter(model::Column::Status.is_in(from.iter().map(|s| s.as_str())));
    update = match stamp {
        Stamp::Sent => update.col_expr(model::Column::SentAt, Expr::value(now)),
        Stamp::Delivered => update.col_expr(model::Column::DeliveredAt, Expr::value(now)),
    };
    let done = update.exec(db).await?.rows_affected == 1;
    if done && to == RpcStatus::Delivered {
        // A one-way command is complete once delivered.
        Commands::update_many()
            .col_expr(model::Column::CompletedAt, Expr::value(now))
            .filter(model::Column::Id.eq(id))
            .filter(model::Column::Oneway.eq(true))
            .exec(db)
            .await?;
    }
    Ok(done)
}

/// Ends a command that is not final yet with `status` and a reason.
pub async fn finish_unless_final(
    _: System,
    db: &impl ConnectionTrait,
    id: Uuid,
    status: RpcStatus,
    why: &str,
) -> Result<bool> {
    Ok(Commands::update_many()
        .col_expr(model::Column::Status, Expr::value(status.as_str()))
        .col_expr(model::Column::Error, Expr::value(why))
        .col_expr(model::Column::CompletedAt, Expr::value(now_ms()))
        .filter(model::Column::Id.eq(id))
        .filter(
            model::Column::Status
                .is_in([RpcStatus::Queued.as_str(), RpcStatus::Sent.as_str()])
                .or(model::Column::Status
                    .eq(RpcStatus::Delivered.as_str())
                    .and(model::Column::Oneway.eq(false))),
        )
        .exec(db)
        .await?
        .rows_affected
        == 1)
}

/// Sending failed: persistent commands go back to the queue, others fail. Answers whether it
/// changed anything.
pub async fn requeue_or_fail(
    _: System,
    db: &impl ConnectionTrait,
    id: Uuid,
    why: &str,
) -> Result<bool> {
    let requeued = Commands::update_many()
        .col_expr(
            model::Column::Status,
            Expr::value(RpcStatus::Queued.as_str()),
        )
        .filter(model::Column::Id.eq(id))
        .filter(model::Column::Persistent.eq(true))
        .filter(model::Column::Status.eq(RpcStatus::Sent.as_str()))
        .exec(db)
        .await?
        .rows_affected;
    let failed = Commands::update_many()
        .col_expr(
            model::Column::Status,
            Expr::value(RpcStatus::Failed.as_str()),
        )
        .col_expr(model::Column::Error, Expr::value(why))
        .col_expr(model::Column::CompletedAt, Expr::value(now_ms()))
        .filter(model::Column::Id.eq(id))
        .filter(model::Column::Persistent.eq(false))
        .filter(model::Column::Status.eq(RpcStatus::Sent.as_str()))
        .exec(db)
        .await?
        .rows_affected;
    Ok(requeued + failed > 0)
}

/// Stores a device's answer to a two-way command it was sent; answers the command's id.
pub async fn answer(
    _: System,
    db: &impl ConnectionTrait,
    device: DeviceId,
    request_id: u32,
    response: serde_json::Value,
) -> Result<Option<Uuid>> {
    let Some(command) = Commands::find()
        .filter(model::Column::DeviceId.eq(device.0))
        .filter(model::Column::RequestId.eq(request_id as i64))
        .filter(model::Column::Oneway.eq(false))
        .filter(
            model::Column::Status.is_in([RpcStatus::Sent.as_str(), RpcStatus::Delivered.as_str()]),
        )
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let now = now_ms();
    let updated = Commands::update_many()
        .col_expr(
            model::Column::Status,
            Expr::value(RpcStatus::Successful.as_str()),
        )
        .col_expr(model::Column::Response, Expr::value(response))
        .col_expr(model::Column::CompletedAt, Expr::value(now))
        .filter(model::Column::Id.eq(command.id))
        .filter(
            model::Column::Status.is_in([RpcStatus::Sent.as_str(), RpcStatus::Delivered.as_str()]),
        )
        .exec(db)
        .await?
        .rows_affected;
    Ok((updated == 1).then_some(command.id))
}

/// Marks queued commands past their expiry EXPIRED; answers their ids.
pub async fn expire(_: System, db: &impl ConnectionTrait, now: i64) -> Result<Vec<Uuid>> {
    let ids: Vec<Uuid> = Commands::find()
        .filter(model::Column::Status.eq(RpcStatus::Queued.as_str()))
        .filter(model::Column::ExpiresAt.lte(now))
        .all(db)
        .await?
        .into_iter()
        .map(|c| c.id)
        .collect();
    let mut expired = Vec::new();
    for id in ids {
        let n = Commands::update_many()
            .col_expr(
                model::Column::Status,
                Expr::value(RpcStatus::Expired.as_str()),
            )
            .col_expr(
                model::Column::Error,
                Expr::value("not delivered before it expired"),
            )
            .col_expr(model::Column::CompletedAt, Expr::value(now))
            .filter(model::Column::Id.eq(id))
            .filter(model::Column::Status.eq(RpcStatus::Queued.as_str()))
            .exec(db)
            .await?
            .rows_affected;
        if n == 1 {
            expired.push(id);
        }
    }
    Ok(expired)
}

/// Commands sent but not answered within their timeout: resent (back to QUEUED) while retries
/// last and they have not expired, TIMEOUT otherwise. Answers each with whether to resend.
pub async fn overdue(
    sys: System,
    db: &impl ConnectionTrait,
    now: i64,
) -> Result<Vec<(model::Model, bool)>> {
    let waiting = Commands::find()
        .filter(
            model::Column::Status
                .eq(RpcStatus::Sent.as_str())
                .or(model::Column::Status
                    .eq(RpcStatus::Delivered.as_str())
                    .and(model::Column::Oneway.eq(false))),
        )
        .all(db)
        .await?;
    let mut out = Vec::new();
    for c in waiting {
        let Some(sent) = c.sent_at else { continue };
        if sent + c.timeout_ms > now {
            continue;
        }
        let resend = c.persistent && c.retries_left > 0 && c.expires_at > now;
        let changed = if resend {
            Commands::update_many()
                .col_expr(
                    model::Column::Status,
                    Expr::value(RpcStatus::Queued.as_str()),
                )
                .col_expr(model::Column::RetriesLeft, Expr::value(c.retries_left - 1))
                .filter(model::Column::Id.eq(c.id))
                .filter(model::Column::Status.eq(c.status.clone()))
                .exec(db)
                .await?
                .rows_affected
                == 1
        } else {
            finish_unless_final(sys, db, c.id, RpcStatus::Timeout, "no answer in time").await?
        };
        if changed {
            out.push((c, resend));
        }
    }
    Ok(out)
}

/// Writes a `command.updated` event for each command whose state just changed, on the
/// connection (transaction) that changed it.
pub async fn record_changes(_: System, db: &impl ConnectionTrait, ids: &[Uuid]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    for c in Commands::find()
        .filter(model::Column::Id.is_in(ids.iter().copied()))
        .all(db)
        .await?
    {
        crate::events::record(
            db,
            crate::ids::TenantId(c.tenant_id),
            stead_api_types::EventType::CommandUpdated,
            Some(DeviceId(c.device_id)),
            serde_json::json!({"device_id": c.device_id, "command": to_api(c)}),
        )
        .await?;
    }
    Ok(())
}
