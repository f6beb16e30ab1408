//! Import jobs and the reads an import plans with, all scoped by `TenantCtx`, except
//! `fail_abandoned` at start-up, which looks after every tenant.

use std::collections::HashMap;

use sea_orm::entity::prelude::*;
use sea_orm::sea_query::{Expr, ExprTrait as _};
use sea_orm::{ActiveValue::Set, Condition, FromQueryResult, QueryOrder, QuerySelect};
use stead_api_types::{ImportCounts, ImportJob, ImportRowReport, ImportStatus};

use super::model::{self, Entity as Jobs};
use crate::auth::{System, TenantCtx};
use crate::devices::model as devices;
use crate::error::{Error, Result};
use crate::telemetry::now_ms;

/// A running job whose runner has not written for this long is taken for dead. Runners write at
/// least every few seconds (`super::PROGRESS_EVERY`).
pub const STALE_AFTER_MS: i64 = 60_000;

/// How many row errors a job keeps (its counts stay exact).
const MAX_STORED_ERRORS: usize = 1000;

fn status_str(s: ImportStatus) -> &'static str {
    match s {
        ImportStatus::Running => "running",
        ImportStatus::Finished => "finished",
        ImportStatus::Failed => "failed",
    }
}

/// Where a job stands, as its runner keeps it.
#[derive(Default)]
pub struct Progress {
    pub counts: ImportCounts,
    pub errors: Vec<ImportRowReport>,
    /// Devices that got a generated token (their `name,access_token` lines are in `csv`).
    pub generated: u64,
    pub csv: Vec<u8>,
}

impl Progress {
    pub fn error(&mut self, row: ImportRowReport) {
        self.counts.failed += 1;
        if self.errors.len() < MAX_STORED_ERRORS {
            self.errors.push(row);
        }
    }

    /// A generated token, for the credentials CSV.
    pub fn credential(&mut self, name: &str, token: &str) {
        if self.generated == 0 {
            csv_line(&mut self.csv, ["name", "access_token"]);
        }
        csv_line(&mut self.csv, [name, token]);
        self.generated += 1;
    }

    fn report(&self, reason: Option<&str>) -> serde_json::Value {
        let mut report = serde_json::json!({"errors": self.errors, "generated": self.generated});
        if let Some(reason) = reason {
            report["reason"] = reason.into();
        }
        report
    }

    fn csv(&self) -> Option<String> {
        (self.generated > 0).then(|| String::from_utf8_lossy(&self.csv).into_owned())
    }
}

fn csv_line(out: &mut Vec<u8>, fields: [&str; 2]) {
    let mut writer = csv::Writer::from_writer(out);
    // Writing to memory does not fail.
    let _ = writer.write_record(fields);
    let _ = writer.flush();
}

/// A job as its readers see it: everything but the credentials themselves, which can be large
/// and are read only to be handed out.
#[derive(Debug, FromQueryResult)]
pub struct Summary {
    pub id: Uuid,
    pub status: String,
    pub total: i64,
    pub processed: i64,
    pub created: i64,
    pub updated: i64,
    pub unchanged: i64,
    pub failed: i64,
    pub report: serde_json::Value,
    pub credentials_available: bool,
    pub created_by: String,
    pub created_at: i64,
    pub finished_at: Option<i64>,
}

impl From<model::Model> for Summary {
    fn from(job: model::Model) -> Summary {
        Summary {
            id: job.id,
            status: job.status,
            total: job.total,
            processed: job.processed,
            created: job.created,
            updated: job.updated,
            unchanged: job.unchanged,
            failed: job.failed,
            report: job.report,
            credentials_available: job.credentials_csv.is_some(),
            created_by: job.created_by,
            created_at: job.created_at,
            finished_at: job.finished_at,
        }
    }
}

/// The tenant's jobs, as `Summary` rows.
fn summaries(ctx: &TenantCtx) -> sea_orm::Select<Jobs> {
    use model::Column as C;
    Jobs::find()
        .select_only()
        .columns([
            C::Id,
            C::Status,
            C::Total,
            C::Processed,
            C::Created,
            C::Updated,
            C::Unchanged,
            C::Failed,
            C::Report,
            C::CreatedBy,
            C::CreatedAt,
            C::FinishedAt,
        ])
        .column_as(
            Expr::col(C::CredentialsCsv).is_not_null(),
            "credentials_available",
        )
        .filter(C::TenantId.eq(ctx.tenant_id().0))
        .order_by_desc(C::CreatedAt)
        .order_by_desc(C::Id)
}

pub fn to_api(job: Summary) -> ImportJob {
    let status = match job.status.as_str() {
        "finished" => ImportStatus::Finished,
        "failed" => ImportStatus::Failed,
        _ => ImportStatus::Running,
    };
    let errors = serde_json::from_value(job.report["errors"].clone()).unwrap_or_default();
    let reason = match (status, job.report["reason"].as_str()) {
        (ImportStatus::Failed, Some(reason)) => Some(reason.to_owned()),
        // Marked failed by `fail_abandoned`, which leaves the report as its runner wrote it.
        (ImportStatus::Failed, None) => Some(
            "the server running this import stopped before it finished; import the file again \
             to complete it (rows already imported come out unchanged)"
                .to_owned(),
        ),
        _ => None,
    };
    ImportJob {
        id: job.id,
        status,
        counts: ImportCounts {
            total: job.total as u64,
            processed: job.processed as u64,
            created: job.created as u64,
            updated: job.updated as u64,
            unchanged: job.unchanged as u64,
            failed: job.failed as u64,
        },
        errors,
        credentials_available: job.credentials_available,
        reason,
        created_by: job.created_by,
        created_at: job.created_at,
        finished_at: job.finished_at,
    }
}

pub async fn create(
    db: &impl crate::db::Db,
    ctx: &TenantCtx,
    total: u64,
    created_by: &str,
) -> Result<model::Model> {
    let now = now_ms();
    Ok(model::ActiveModel {
        id: Set(Uuid::new_v4()),
        tenant_id: Set(ctx.tenant_id().0),
        status: Set(status_str(ImportStatus::Running).into()),
        total: Set(total as i64),
        processed: Set(0),
        created: Set(0),
        updated: Set(0),
        unchanged: Set(0),
        failed: Set(0),
        report: Set(Progress::default().report(None)),
        credentials_csv: Set(None),
        created_by: Set(created_by.to_owned()),
        created_at: Set(now),
        finished_at: Set(None),
        heartbeat_at: Set(Some(now)),
    }
    .insert(db)
    .await?)
}

pub async fn get(db: &impl crate::db::Db, ctx: &TenantCtx, id: Uuid) -> Result<Summary> {
    fail_abandoned(db, Some(ctx)).await?;
    summaries(ctx)
        .filter(model::Column::Id.eq(id))
        .into_model::<Summary>()
        .one(db)
        .await?
        .ok_or(Error::NotFound("import job"))
}

/// The tenant's last 50 jobs, newest first.
pub async fn list(db: &impl crate::db::Db, ctx: &TenantCtx) -> Result<Vec<Summary>> {
    fail_abandoned(db, Some(ctx)).await?;
    Ok(summaries(ctx)
        .limit(50)
        .into_model::<Summary>()
        .all(db)
        .await?)
}

/// Writes a running job's progress and heartbeat; false when the job is no longer running
/// (another node took it for dead), so its runner stops.
pub async fn save_progress(
    _: System,
    db: &impl crate::db::Db,
    id: Uuid,
    p: &Progress,
) -> Result<bool> {
    write(db, id, p, ImportStatus::Running, None).await
}

/// Writes a job's last progress and its final status.
pub async fn finish(
    _: System,
    db: &impl crate::db::Db,
    id: Uuid,
    p: &Progress,
    status: ImportStatus,
    reason: Option<&str>,
) -> Result<()> {
    write(db, id, p, status, reason).await.map(|_| ())
}

async fn write(
    db: &impl crate::db::Db,
    id: Uuid,
    p: &Progress,
    status: ImportStatus,
    reason: Option<&str>,
) -> Result<bool> {
    let now = now_ms();
    let c = &p.counts;
    let mut update = Jobs::update_many()
        .col_expr(model::Column::Processed, Expr::value(c.processed as i64))
        .col_expr(model::Column::Created, Expr::value(c.created as i64))
        .col_expr(model::Column::Updated, Expr::value(c.updated as i64))
        .col_expr(model::Column::Unchanged, Expr::value(c.unchanged as i64))
        .col_expr(model::Column::Failed, Expr::value(c.failed as i64))
        .col_expr(model::Column::Report, Expr::value(p.report(reason)))
        .col_expr(model::Column::CredentialsCsv, Expr::value(p.csv()))
        .col_expr(model::Column::HeartbeatAt, Expr::value(now));
    if status != ImportStatus::Running {
        update = update
            .col_expr(model::Column::Status, Expr::value(status_str(status)))
            .col_expr(model::Column::FinishedAt, Expr::value(now));
    }
    let result = update
        .filter(model::Column::Id.eq(id))
        .filter(model::Column::Status.eq(status_str(ImportStatus::Running)))
        .exec(db)
        .await?;
    Ok(result.rows_affected > 0)
}

/// Marks failed the running jobs whose runner stopped writing (its process died): of one tenant
/// when reading its jobs, of every tenant at start-up.
pub async fn fail_abandoned(db: &impl crate::db::Db, tenant: Option<&TenantCtx>) -> Result<u64> {
    let stale = Condition::all()
        .add(model::Column::Status.eq(status_str(ImportStatus::Running)))
        .add(
            Condition::any()
                .add(model::Column::HeartbeatAt.lt(now_ms() - STALE_AFTER_MS))
                .add(model::Column::HeartbeatAt.is_null()),
        )
        .add_option(tenant.map(|ctx| model::Column::TenantId.eq(ctx.tenant_id().0)));
    // Readers poll: look before writing (an UPDATE takes SQLite's one write lock, even for nothing).
    let ids: Vec<Uuid> = Jobs::find()
        .select_only()
        .column(model::Column::Id)
        .filter(stale.clone())
        .into_tuple()
        .all(db)
        .await?;
    if ids.is_empty() {
        return Ok(0);
    }
    let result = Jobs::update_many()
        .col_expr(
            model::Column::Status,
            Expr::value(status_str(ImportStatus::Failed)),
        )
        .col_expr(model::Column::FinishedAt, Expr::value(now_ms()))
        .filter(stale)
        .filter(model::Column::Id.is_in(ids))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

/// What `take_credentials` found.
pub enum Credentials {
    /// The CSV, now deleted from storage.
    Csv(String),
    /// Downloaded before.
    Gone,
    /// The job generated no credentials.
    NoneGenerated,
}

/// Hands out a job's generated credentials once: whoever clears the column gets the CSV.
pub async fn take_credentials(
    db: &impl crate::db::Db,
    ctx: &TenantCtx,
    id: Uuid,
) -> Result<Credentials> {
    fail_abandoned(db, Some(ctx)).await?;
    let job = Jobs::find_by_id(id)
        .filter(model::Column::TenantId.eq(ctx.tenant_id().0))
        .one(db)
        .await?
        .ok_or(Error::NotFound("import job"))?;
    if job.status == status_str(ImportStatus::Running) {
        return Err(Error::conflict(
            "import_running",
            "the import is still running: download its credentials once it has finished",
        ));
    }
    let Some(csv) = job.credentials_csv else {
        return Ok(if job.report["generated"].as_u64().unwrap_or(0) > 0 {
            Credentials::Gone
        } else {
            Credentials::NoneGenerated
        });
    };
    let taken = Jobs::update_many()
        .col_expr(
            model::Column::CredentialsCsv,
            Expr::value(Option::<String>::None),
        )
        .filter(model::Column::Id.eq(job.id))
        .filter(model::Column::TenantId.eq(ctx.tenant_id().0))
        .filter(model::Column::CredentialsCsv.is_not_null())
        .exec(db)
        .await?;
    Ok(if taken.rows_affected == 1 {
        Credentials::Csv(csv)
    } else {
        Credentials::Gone
    })
}

/// The tenant's devices with these names.
pub async fn devices_named(
    db: &impl crate::db::Db,
    ctx: &TenantCtx,
    names: &[String],
) -> Result<Vec<devices::Model>> {
    let mut out = Vec::with_capacity(names.len());
    for chunk in names.chunks(500) {
        out.extend(
            devices::Entity::find()
                .filter(devices::Column::TenantId.eq(ctx.tenant_id().0))
                .filter(devices::Column::Name.is_in(chunk.iter().cloned()))
                .all(db)
                .await?,
        );
    }
    Ok(out)
}

/// Which of the tenant's devices hold these values of a credentials column (token hash, MQTT
/// user name): value → device name.
pub async fn credential_owners(
    db: &impl crate::db::Db,
    ctx: &TenantCtx,
    column: devices::Column,
    values: &[String],
) -> Result<HashMap<String, String>> {
    let mut out = HashMap::new();
    for chunk in values.chunks(500) {
        out.extend(
            devices::Entity::find()
                .select_only()
                .column(column)
                .column(devices::Column::Name)
                .filter(devices::Column::TenantId.eq(ctx.tenant_id().0))
                .filter(column.is_in(chunk.iter().cloned()))
                .into_tuple::<(String, String)>()
                .all(db)
                .await?,
        );
    }
    Ok(out)
}
