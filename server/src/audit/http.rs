//! `/api/v1/audit`: a tenant's audit log, behind `audit.read`.

use actix_web::{HttpResponse, web};
use stead_api_types::{AuditEntry, AuditQuery, Page};

use super::repo::{self, Filter};
use crate::app::AppState;
use crate::auth::perm::AuditRead;
use crate::http::openapi::{BadQuery, Denied};
use crate::http::{ApiResult, TenantScope};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/audit", web::get().to(list))
        .route("/audit/export.csv", web::get().to(export));
}

#[utoipa::path(
    get,
    path = "/audit",
    tag = "audit",
    operation_id = "list_audit",
    summary = "Read the audit log (`audit.read`)",
    params(AuditQuery),
    responses(
        (status = 200, description = "A page of audit entries, newest first", body = Page<AuditEntry>),
        Denied,
        BadQuery,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn list(
    state: web::Data<AppState>,
    scope: TenantScope<AuditRead>,
    q: web::Query<AuditQuery>,
) -> ApiResult<web::Json<Page<AuditEntry>>> {
    let filter = Filter::parse(&q)?;
    let (page, per_page) = crate::http::paging(q.page, q.per_page)?;
    let (items, total) = repo::list(&state.db, &scope.ctx, &filter, page, per_page).await?;
    Ok(web::Json(Page {
        items: items.into_iter().map(repo::to_api).collect(),
        total,
        page,
        per_page,
    }))
}

const CSV_HEADER: [&str; 12] = [
    "seq",
    "time",
    "actor_kind",
    "actor_email",
    "actor_user_id",
    "source_ip",
    "action",
    "target_type",
    "target_id",
    "detail",
    "prev_hash",
    "hash",
];

/// The filtered log as CSV, newest first, streamed in batches (never built in memory). A database
/// error midway ends the response with an error, so the client never takes a short file for a
/// whole one.
#[utoipa::path(
    get,
    path = "/audit/export.csv",
    tag = "audit",
    operation_id = "export_audit",
    summary = "Export the audit log as CSV (`audit.read`)",
    description = "The filtered log as CSV, newest first, streamed in batches (never built in memory). A database error midway ends the response with an error, so the client never takes a short file for a whole one.",
    params(AuditQuery),
    responses(
        (status = 200, description = "The filtered log as CSV, newest first, streamed", body = String, content_type = "text/csv"),
        Denied,
        BadQuery,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn export(
    state: web::Data<AppState>,
    scope: TenantScope<AuditRead>,
    q: web::Query<AuditQuery>,
) -> ApiResult<HttpResponse> {
    let filter = Filter::parse(&q)?;
    let db = state.db.clone();
    let ctx = scope.ctx;
    enum Next {
        Header,
        After(Option<(chrono::DateTime<chrono::Utc>, uuid::Uuid)>),
        Done,
    }
    let stream = futures_util::stream::unfold(Next::Header, move |next| {
        let db = db.clone();
        let filter = filter.clone();
        let ctx = ctx.clone();
        async move {
            let after = match next {
                Next::Done => return None,
                Next::Header => {
                    return Some((
                        csv_chunk(&[CSV_HEADER.map(String::from)]),
                        Next::After(None),
                    ));
                }
                Next::After(after) => after,
            };
            const BATCH: u64 = 1000;
            let rows = match repo::batch(&db, &ctx, &filter, after, BATCH).await {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(error = %e, "audit CSV export stopped");
                    return Some((
                        Err(actix_web::error::ErrorInternalServerError(
                            "the export stopped: database error",
                        )),
                        Next::Done,
                    ));
                }
            };
            if rows.is_empty() {
                return None;
            }
            let next = if rows.len() as u64 == BATCH {
                Next::After(rows.last().map(|r| (r.created_at, r.id)))
            } else {
                Next::Done
            };
            let records: Vec<[String; 12]> = rows
                .into_iter()
                .map(|m| {
                    let e = repo::to_api(m);
                    let opt = |v: Option<String>| v.unwrap_or_default();
                    [
                        e.seq.to_string(),
                        e.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                        serde_json::to_value(e.actor_kind)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_owned))
                            .unwrap_or_default(),
                        opt(e.actor_email),
                        opt(e.actor_user_id.map(|u| u.to_string())),
                        opt(e.source_ip),
                        e.action,
                        e.target_type,
                        opt(e.target_id.map(|u| u.to_string())),
                        e.detail.to_string(),
                        e.prev_hash,
                        e.hash,
                    ]
                })
                .collect();
            Some((csv_chunk(&records), next))
        }
    });
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header(("Content-Disposition", "attachment; filename=\"audit.csv\""))
        .streaming(stream))
}

fn csv_chunk(records: &[[String; 12]]) -> Result<web::Bytes, actix_web::Error> {
    let mut writer = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    for record in records {
        writer
            .write_record(record)
            .map_err(actix_web::error::ErrorInternalServerError)?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|e| actix_web::error::ErrorInternalServerError(e.to_string()))?;
    Ok(web::Bytes::from(bytes))
}
