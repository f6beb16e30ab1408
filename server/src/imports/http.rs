//! `/api/v1/devices/import`, `/api/v1/devices/bulk` and `/api/v1/imports`.

use actix_web::http::StatusCode;
use actix_web::{HttpMessage as _, HttpRequest, HttpResponse, web};
use stead_api_types::{BulkAction, BulkResult, ImportJob, ImportQuery};
use uuid::Uuid;

use super::{MAX_FILE_BYTES, repo};
use crate::app::AppState;
use crate::audit;
use crate::auth::perm::{DevicesRead, DevicesWrite};
use crate::http::{ApiError, ApiResult, BodyUpTo, Json, TenantScope};

/// Registered before the devices' routes: `/devices/{id}` would take `/devices/import`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/devices/import", web::post().to(import))
        .route("/devices/bulk", web::post().to(bulk))
        .route("/imports", web::get().to(list))
        .route("/imports/{id}", web::get().to(get))
        .route("/imports/{id}/credentials.csv", web::get().to(credentials));
}

/// A CSV file comes as `text/csv` (or `text/plain`), as bytes, or with no content type.
fn check_content_type(req: &HttpRequest) -> ApiResult<()> {
    let Ok(Some(mime)) = req.mime_type() else {
        return Ok(());
    };
    let csv = (mime.type_() == "text" && matches!(mime.subtype().as_str(), "csv" | "plain"))
        || (mime.type_() == "application" && mime.subtype() == "octet-stream");
    if csv {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the file as CSV with Content-Type: text/csv",
        ))
    }
}

async fn import(
    state: web::Data<AppState>,
    scope: TenantScope<DevicesWrite>,
    query: web::Query<ImportQuery>,
    req: HttpRequest,
    BodyUpTo(file): BodyUpTo<MAX_FILE_BYTES>,
) -> ApiResult<HttpResponse> {
    check_content_type(&req)?;
    let lines = web::block(move || super::parse(&file))
        .await
        .map_err(|e| anyhow::anyhow!("parsing an import file: {e}"))?
        .map_err(|e| {
            let error = ApiError::new(StatusCode::BAD_REQUEST, "invalid_csv", e.detail);
            match e.column {
                Some(column) => error.with_field(column),
                None => error,
            }
        })?;
    if query.dry_run {
        let plan = super::plan(&state.db, &scope.ctx, lines).await?;
        return Ok(HttpResponse::Ok().json(plan.report()));
    }
    let txn = audit::begin(&state.db, Some(scope.ctx.tenant_id())).await?;
    let job = repo::create(&txn, &scope.ctx, lines.len() as u64, &scope.actor.email).await?;
    audit::record(
        &txn,
        Some(scope.ctx.tenant_id()),
        &scope.actor,
        "devices.import",
        "import_job",
        Some(job.id),
        serde_json::json!({"rows": lines.len()}),
    )
    .await?;
    txn.commit().await?;
    tokio::spawn(super::run(
        state.get_ref().clone(),
        scope.ctx,
        job.id,
        lines,
    ));
    Ok(HttpResponse::Accepted().json(repo::to_api(job.into())))
}

async fn list(
    state: web::Data<AppState>,
    scope: TenantScope<DevicesRead>,
) -> ApiResult<web::Json<Vec<ImportJob>>> {
    let jobs = repo::list(&state.db, &scope.ctx).await?;
    Ok(web::Json(jobs.into_iter().map(repo::to_api).collect()))
}

async fn get(
    state: web::Data<AppState>,
    scope: TenantScope<DevicesRead>,
    id: web::Path<Uuid>,
) -> ApiResult<web::Json<ImportJob>> {
    let job = repo::get(&state.db, &scope.ctx, *id).await?;
    Ok(web::Json(repo::to_api(job)))
}

/// The generated tokens of a job, once: the stored copy is deleted as it is handed out.
async fn credentials(
    state: web::Data<AppState>,
    scope: TenantScope<DevicesWrite>,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    // Taken and audited together: if the entry cannot be written, the file stays to be taken.
    let txn = audit::begin(&state.db, Some(scope.ctx.tenant_id())).await?;
    let csv = match repo::take_credentials(&txn, &scope.ctx, *id).await? {
        repo::Credentials::Csv(csv) => csv,
        repo::Credentials::Gone => {
            return Err(ApiError::new(
                StatusCode::GONE,
                "credentials_gone",
                "these credentials were downloaded already and are kept nowhere: rotate a device's credentials to get new ones",
            ));
        }
        repo::Credentials::NoneGenerated => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "no_credentials",
                "this import generated no credentials",
            ));
        }
    };
    audit::record(
        &txn,
        Some(scope.ctx.tenant_id()),
        &scope.actor,
        "devices.import.credentials_download",
        "import_job",
        Some(*id),
        serde_json::json!({}),
    )
    .await?;
    txn.commit().await?;
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"import-{id}-credentials.csv\""),
        ))
        .insert_header(("Cache-Control", "no-store"))
        .body(csv))
}

async fn bulk(
    state: web::Data<AppState>,
    scope: TenantScope<DevicesWrite>,
    Json(action): Json<BulkAction>,
) -> ApiResult<web::Json<BulkResult>> {
    let txn = audit::begin(&state.db, Some(scope.ctx.tenant_id())).await?;
    let applied = super::bulk::apply(&txn, &scope.ctx, action).await?;
    audit::record(
        &txn,
        Some(scope.ctx.tenant_id()),
        &scope.actor,
        "devices.bulk",
        "device",
        None,
        applied.detail.clone(),
    )
    .await?;
    txn.commit().await?;
    applied.announce(&state, &scope.ctx, &scope.actor);
    Ok(web::Json(BulkResult {
        devices: applied.ids.len() as u64,
    }))
}
