//! `/api/v1/devices/import`, `/api/v1/devices/bulk` and `/api/v1/imports`.

use actix_web::http::StatusCode;
use actix_web::{HttpMessage as _, HttpRequest, HttpResponse, web};
use stead_api_types::{ApiErrorBody, BulkAction, BulkResult, ImportJob, ImportQuery, ImportReport};
use uuid::Uuid;

use super::{MAX_FILE_BYTES, repo};
use crate::app::AppState;
use crate::audit;
use crate::auth::perm::{DevicesRead, DevicesWrite};
use crate::http::openapi::{BadQuery, Denied, JsonBody, NotFound};
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

#[utoipa::path(
    post,
    path = "/devices/import",
    tag = "imports",
    operation_id = "import_devices",
    summary = "Import devices from CSV (`devices.write`)",
    params(ImportQuery),
    request_body(content = String, content_type = "text/csv", description = "A CSV file: a header line (`name`, `label`, `type`, `profile`, `groups`, credentials columns …), one device per line"),
    responses(
        (status = 200, description = "`dry_run=true`: what the file would do; nothing changed", body = ImportReport),
        (status = 202, description = "The import runs in the background: follow it at `/imports/{id}`", body = ImportJob),
        Denied,
        BadQuery,
        (status = 400, description = "The file is not a CSV this import reads (`invalid_csv`, `field` names the column)", body = ApiErrorBody),
        (status = 413, description = "The file is larger than 10 MiB (`payload_too_large`)", body = ApiErrorBody),
        (status = 415, description = "The body is not CSV (`unsupported_media_type`)", body = ApiErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn import(
    state: web::Data<AppState>,
    scope: TenantScope<DevicesWrite>,
    query: web::Query<ImportQuery>,
    req: HttpRequest,
    BodyUpTo(file): BodyUpTo<MAX_FILE_BYTES>,
) -> ApiResult<HttpResponse> {
    check_content_type(&req)?;
    // No store can keep text with U+0000 (PostgreSQL refuses it).
    if file.contains(&0) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_csv",
            "the file holds a NUL character (U+0000), which text may not",
        ));
    }
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

#[utoipa::path(
    get,
    path = "/imports",
    tag = "imports",
    operation_id = "list_imports",
    summary = "List import runs (`devices.read`)",
    responses(
        (status = 200, description = "The tenant's import runs, newest first", body = Vec<ImportJob>),
        Denied,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn list(
    state: web::Data<AppState>,
    scope: TenantScope<DevicesRead>,
) -> ApiResult<web::Json<Vec<ImportJob>>> {
    let jobs = repo::list(&state.db, &scope.ctx).await?;
    Ok(web::Json(jobs.into_iter().map(repo::to_api).collect()))
}

#[utoipa::path(
    get,
    path = "/imports/{id}",
    tag = "imports",
    operation_id = "get_import",
    summary = "Get an import run (`devices.read`)",
    params(("id" = Uuid, Path, description = "The import run")),
    responses(
        (status = 200, description = "The import run", body = ImportJob),
        Denied,
        NotFound,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn get(
    state: web::Data<AppState>,
    scope: TenantScope<DevicesRead>,
    id: web::Path<Uuid>,
) -> ApiResult<web::Json<ImportJob>> {
    let job = repo::get(&state.db, &scope.ctx, *id).await?;
    Ok(web::Json(repo::to_api(job)))
}

/// The generated tokens of a job, once: the stored copy is deleted as it is handed out.
#[utoipa::path(
    get,
    path = "/imports/{id}/credentials.csv",
    tag = "imports",
    operation_id = "import_credentials",
    summary = "Download an import's generated credentials (once) (`devices.write`)",
    description = "The generated tokens of a job, once: the stored copy is deleted as it is handed out.",
    params(("id" = Uuid, Path, description = "The import run")),
    responses(
        (status = 200, description = "The generated credentials as CSV, once: the stored copy is deleted as it is handed out", body = String, content_type = "text/csv"),
        Denied,
        (status = 404, description = "No such import run, or it generated no credentials (`no_credentials`)", body = ApiErrorBody),
        (status = 409, description = "The import still runs (`import_running`)", body = ApiErrorBody),
        (status = 410, description = "Downloaded already (`credentials_gone`)", body = ApiErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
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

#[utoipa::path(
    post,
    path = "/devices/bulk",
    tag = "imports",
    operation_id = "bulk_action",
    summary = "Apply one action to many devices (`devices.write`)",
    request_body = BulkAction,
    responses(
        (status = 200, description = "How many devices the action changed", body = BulkResult),
        JsonBody,
        Denied,
        (status = 404, description = "The group does not exist", body = ApiErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
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
