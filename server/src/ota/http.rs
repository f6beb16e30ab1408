//! `/api/v1/ota/packages` and `/api/v1/ota/signing-keys`.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt as _;
use stead_api_types::{
    ApiErrorBody, AssignPackage, CreateSigningKey, DeviceOtaTarget, Package, PackageKind,
    PackageQuery, SigningKey, UploadPackage, VersionCount, VersionQuery,
};
use uuid::Uuid;

use super::{repo, service};
use crate::app::AppState;
use crate::auth::perm::{OtaManage, OtaRead};
use crate::blobs::Blobs;
use crate::error::Error;
use crate::http::openapi::{BadQuery, Denied, JsonBody, NotFound};
use crate::http::{ApiResult, Json, TenantScope};
use crate::ids::DeviceId;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/ota/packages", web::get().to(list))
        .route("/ota/packages", web::post().to(upload))
        .route("/ota/packages/{id}", web::get().to(get))
        .route("/ota/packages/{id}", web::delete().to(delete))
        .route("/ota/packages/{id}/image", web::get().to(image))
        .route("/ota/signing-keys", web::get().to(list_keys))
        .route("/ota/signing-keys", web::post().to(create_key))
        .route("/ota/signing-keys/{id}", web::delete().to(delete_key))
        .route("/ota/versions", web::get().to(versions))
        .route("/devices/{id}/ota", web::get().to(targets))
        .route("/devices/{id}/ota/{kind}", web::put().to(assign))
        .route("/devices/{id}/ota/{kind}", web::delete().to(unassign));
}

fn kind_of(raw: &str) -> Result<PackageKind, Error> {
    PackageKind::parse(raw).ok_or(Error::NotFound("update kind"))
}

#[utoipa::path(
    get,
    path = "/ota/packages",
    tag = "ota",
    operation_id = "list_packages",
    summary = "List firmware and software packages (`ota.read`)",
    params(PackageQuery),
    responses(
        (status = 200, description = "The tenant's packages, by title, newest first", body = Vec<Package>),
        Denied,
        BadQuery,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn list(
    state: web::Data<AppState>,
    scope: TenantScope<OtaRead>,
    query: web::Query<PackageQuery>,
) -> ApiResult<web::Json<Vec<Package>>> {
    Ok(web::Json(repo::list(&state.db, &scope.ctx, &query).await?))
}

/// The image is the request body, streamed to the blob store (never held whole in memory);
/// the checksums are computed on the way.
#[utoipa::path(
    post,
    path = "/ota/packages",
    tag = "ota",
    operation_id = "upload_package",
    summary = "Upload a package: the image is the body (`ota.manage`)",
    params(UploadPackage),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The image"),
    responses(
        (status = 201, description = "Stored, with its checksums", body = Package),
        (status = 400, description = "A bad field, an empty body, a SHA-256 that does not match (`checksum_mismatch`) or a signature no key made (`invalid_signature`)", body = ApiErrorBody),
        Denied,
        (status = 409, description = "The version exists (`package_exists`) or the storage quota is reached (`quota_exceeded`)", body = ApiErrorBody),
        (status = 413, description = "Larger than the package size limit (`package_too_large`)", body = ApiErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn upload(
    state: web::Data<AppState>,
    scope: TenantScope<OtaManage>,
    req: HttpRequest,
    body: web::Payload,
) -> ApiResult<HttpResponse> {
    // Read after the permission check (an extractor's error could come first), so that whoever
    // may not upload hears 403 whatever the query.
    let query = web::Query::<UploadPackage>::from_query(req.query_string()).map_err(|e| {
        Error::Invalid {
            code: "invalid_query",
            field: None,
            detail: format!("invalid query string: {e}"),
        }
    })?;
    let length = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let p = service::upload(
        &state,
        &scope.ctx,
        &scope.actor,
        query.into_inner(),
        length,
        body,
    )
    .await?;
    Ok(HttpResponse::Created().json(p))
}

#[utoipa::path(
    get,
    path = "/ota/packages/{id}",
    tag = "ota",
    operation_id = "get_package",
    summary = "Get a package (`ota.read`)",
    params(("id" = Uuid, Path, description = "The package")),
    responses((status = 200, description = "The package", body = Package), Denied, NotFound),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn get(
    state: web::Data<AppState>,
    scope: TenantScope<OtaRead>,
    id: web::Path<Uuid>,
) -> ApiResult<web::Json<Package>> {
    Ok(web::Json(repo::to_api(
        repo::get(&state.db, &scope.ctx, *id).await?,
    )))
}

#[utoipa::path(
    delete,
    path = "/ota/packages/{id}",
    tag = "ota",
    operation_id = "delete_package",
    summary = "Delete a package (`ota.manage`)",
    params(("id" = Uuid, Path, description = "The package")),
    responses((status = 204, description = "Deleted; its image too when no other package holds it"), Denied, NotFound),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn delete(
    state: web::Data<AppState>,
    scope: TenantScope<OtaManage>,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    service::delete(&state, &scope.ctx, &scope.actor, *id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// What a `Range` header asks of an image.
#[derive(Debug, PartialEq, Eq)]
pub enum Ranged {
    /// No usable header: the whole image.
    Whole,
    Part(std::ops::Range<u64>),
    /// It lies past the end (416).
    Unsatisfiable,
}

/// One byte range of `bytes=first-last`, `bytes=first-` or `bytes=-suffix` within `size` bytes.
/// Written here rather than taken from `actix-files` (which would bring a static-file server for
/// 20 lines): a download resumes with one range; several ranges are answered whole, as RFC 9110
/// allows.
pub fn parse_range(header: Option<&str>, size: u64) -> Ranged {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Ranged::Whole;
    };
    let Some((first, last)) = spec.split_once('-').filter(|_| !spec.contains(',')) else {
        return Ranged::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    let range = if first.is_empty() {
        match last.parse::<u64>() {
            Ok(0) => return Ranged::Unsatisfiable,
            Ok(suffix) => size.saturating_sub(suffix)..size,
            Err(_) => return Ranged::Whole,
        }
    } else {
        let Ok(first) = first.parse::<u64>() else {
            return Ranged::Whole;
        };
        let end = if last.is_empty() {
            size
        } else {
            match last.parse::<u64>() {
                Ok(l) if l >= first => (l + 1).min(size),
                _ => return Ranged::Whole,
            }
        };
        first..end
    };
    if range.start >= size {
        return Ranged::Unsatisfiable;
    }
    Ranged::Part(range)
}

/// The image as a download, whole or one byte range (`Range: bytes=…`), so that an interrupted
/// download resumes. Shared with the device API's firmware download.
pub async fn serve_image(
    state: &AppState,
    req: &HttpRequest,
    tenant: crate::ids::TenantId,
    p: &super::model::package::Model,
) -> ApiResult<HttpResponse> {
    let size = p.size.max(0) as u64;
    let range = req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok());
    let range = match parse_range(range, size) {
        Ranged::Whole => None,
        Ranged::Part(r) => Some(r),
        Ranged::Unsatisfiable => {
            return Ok(HttpResponse::RangeNotSatisfiable()
                .insert_header((header::CONTENT_RANGE, format!("bytes */{size}")))
                .json(ApiErrorBody {
                    code: "range_not_satisfiable".into(),
                    detail: format!("the image has {size} bytes"),
                    field: None,
                }));
        }
    };
    let key = Blobs::key_of(tenant, &p.sha256);
    let stream = state
        .blobs
        .get(&key, range.clone())
        .await
        .map_err(|e| Error::from(anyhow::anyhow!("blob store: {e}")))?;
    // The node's delivery bandwidth bounds downloads too.
    let bandwidth = state.ota_bandwidth.clone();
    let stream = stream.then(move |chunk| {
        let bandwidth = bandwidth.clone();
        async move {
            let chunk =
                chunk.map_err(|e| actix_web::error::ErrorInternalServerError(e.to_string()))?;
            bandwidth.take(chunk.len() as u64).await;
            Ok::<_, actix_web::Error>(chunk)
        }
    });
    let file = format!("{}-{}.bin", p.title, p.version)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect::<String>();
    let mut answer = match &range {
        Some(r) => {
            let mut a = HttpResponse::PartialContent();
            a.insert_header((
                header::CONTENT_RANGE,
                format!("bytes {}-{}/{size}", r.start, r.end - 1),
            ));
            a
        }
        None => HttpResponse::Ok(),
    };
    let length = range.as_ref().map_or(size, |r| r.end - r.start);
    Ok(answer
        .content_type("application/octet-stream")
        .insert_header((header::ACCEPT_RANGES, "bytes"))
        .insert_header((header::ETAG, format!("\"{}\"", p.sha256)))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{file}\""),
        ))
        .no_chunking(length)
        .streaming(stream))
}

#[utoipa::path(
    get,
    path = "/ota/packages/{id}/image",
    tag = "ota",
    operation_id = "download_package",
    summary = "Download a package's image, whole or a byte range (`ota.read`)",
    params(
        ("id" = Uuid, Path, description = "The package"),
        ("Range" = Option<String>, Header, description = "`bytes=first-last`, `bytes=first-` or `bytes=-suffix`"),
    ),
    responses(
        (status = 200, description = "The image", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 206, description = "The range asked for", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 416, description = "The range lies past the end", body = ApiErrorBody),
        Denied,
        NotFound,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn image(
    state: web::Data<AppState>,
    scope: TenantScope<OtaRead>,
    id: web::Path<Uuid>,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    let p = repo::get(&state.db, &scope.ctx, *id).await?;
    serve_image(&state, &req, scope.ctx.tenant_id(), &p).await
}

#[utoipa::path(
    get,
    path = "/ota/signing-keys",
    tag = "ota",
    operation_id = "list_signing_keys",
    summary = "The public keys that sign the tenant's packages (`ota.read`)",
    responses((status = 200, description = "The keys", body = Vec<SigningKey>), Denied),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn list_keys(
    state: web::Data<AppState>,
    scope: TenantScope<OtaRead>,
) -> ApiResult<web::Json<Vec<SigningKey>>> {
    Ok(web::Json(
        repo::keys(&state.db, &scope.ctx)
            .await?
            .into_iter()
            .map(repo::key_to_api)
            .collect(),
    ))
}

#[utoipa::path(
    post,
    path = "/ota/signing-keys",
    tag = "ota",
    operation_id = "create_signing_key",
    summary = "Add a public key that signs packages (`ota.manage`)",
    request_body = CreateSigningKey,
    responses(
        (status = 201, description = "Added", body = SigningKey),
        JsonBody,
        Denied,
        (status = 409, description = "The name is taken (`name_taken`) or the tenant has 20 keys (`quota_exceeded`)", body = ApiErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn create_key(
    state: web::Data<AppState>,
    scope: TenantScope<OtaManage>,
    Json(body): Json<CreateSigningKey>,
) -> ApiResult<HttpResponse> {
    let k = service::create_key(&state, &scope.ctx, &scope.actor, body).await?;
    Ok(HttpResponse::Created().json(k))
}

#[utoipa::path(
    delete,
    path = "/ota/signing-keys/{id}",
    tag = "ota",
    operation_id = "delete_signing_key",
    summary = "Remove a signing key (`ota.manage`)",
    params(("id" = Uuid, Path, description = "The key")),
    responses((status = 204, description = "Removed; packages it signed stay"), Denied, NotFound),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn delete_key(
    state: web::Data<AppState>,
    scope: TenantScope<OtaManage>,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    service::delete_key(&state, &scope.ctx, &scope.actor, *id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// What the fleet runs: devices per reported title and version.
#[utoipa::path(
    get,
    path = "/ota/versions",
    tag = "ota",
    operation_id = "ota_versions",
    summary = "How many devices run each title and version (`ota.read`)",
    description = "From what devices report (`current_fw_title` and `current_fw_version` with their `fw_state`, or the `sw_` ones).",
    params(VersionQuery),
    responses((status = 200, description = "Devices per title and version, most first", body = Vec<VersionCount>), Denied, BadQuery),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn versions(
    state: web::Data<AppState>,
    scope: TenantScope<OtaRead>,
    query: web::Query<VersionQuery>,
) -> ApiResult<web::Json<Vec<VersionCount>>> {
    Ok(web::Json(
        repo::versions(&state.db, &scope.ctx, query.kind).await?,
    ))
}

#[utoipa::path(
    get,
    path = "/devices/{id}/ota",
    tag = "ota",
    operation_id = "device_ota_targets",
    summary = "A device's target packages and where each update stands (`ota.read`)",
    params(("id" = Uuid, Path, description = "The device")),
    responses((status = 200, description = "One per kind that has a target", body = Vec<DeviceOtaTarget>), Denied, NotFound),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn targets(
    state: web::Data<AppState>,
    scope: TenantScope<OtaRead>,
    id: web::Path<Uuid>,
) -> ApiResult<web::Json<Vec<DeviceOtaTarget>>> {
    let device = DeviceId(*id);
    crate::devices::repo::get(&state.db, &scope.ctx, device).await?;
    Ok(web::Json(
        repo::targets_of(&state.db, &scope.ctx, device)
            .await?
            .into_iter()
            .map(|(t, p)| repo::target_to_api(t, &p))
            .collect(),
    ))
}

#[utoipa::path(
    put,
    path = "/devices/{id}/ota/{kind}",
    tag = "ota",
    operation_id = "assign_package",
    summary = "Set the package a device should run (`ota.manage`)",
    description = "Writes and pushes the target's shared attributes (`fw_title`, `fw_version`, `fw_size`, `fw_checksum`, `fw_checksum_algorithm`, or `sw_*`) in one message; the device's SDK downloads it. A device that already runs it is `SKIPPED`.",
    params(
        ("id" = Uuid, Path, description = "The device"),
        ("kind" = PackageKind, Path, description = "`firmware` or `software`"),
    ),
    request_body = AssignPackage,
    responses(
        (status = 200, description = "The target", body = DeviceOtaTarget),
        JsonBody,
        Denied,
        NotFound,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn assign(
    state: web::Data<AppState>,
    scope: TenantScope<OtaManage>,
    path: web::Path<(Uuid, String)>,
    Json(body): Json<AssignPackage>,
) -> ApiResult<web::Json<DeviceOtaTarget>> {
    let (id, kind) = path.into_inner();
    let kind = kind_of(&kind)?;
    Ok(web::Json(
        service::assign(&state, &scope.ctx, &scope.actor, DeviceId(id), kind, body).await?,
    ))
}

#[utoipa::path(
    delete,
    path = "/devices/{id}/ota/{kind}",
    tag = "ota",
    operation_id = "unassign_package",
    summary = "Remove a device's target (`ota.manage`)",
    params(
        ("id" = Uuid, Path, description = "The device"),
        ("kind" = PackageKind, Path, description = "`firmware` or `software`"),
    ),
    responses((status = 204, description = "Removed, with its shared attributes"), Denied, NotFound),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn unassign(
    state: web::Data<AppState>,
    scope: TenantScope<OtaManage>,
    path: web::Path<(Uuid, String)>,
) -> ApiResult<HttpResponse> {
    let (id, kind) = path.into_inner();
    let kind = kind_of(&kind)?;
    service::unassign(&state, &scope.ctx, &scope.actor, DeviceId(id), kind).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::{Ranged, parse_range};

    #[test]
    fn ranges() {
        use Ranged::*;
        assert_eq!(parse_range(None, 100), Whole);
        assert_eq!(parse_range(Some("bytes=0-9"), 100), Part(0..10));
        assert_eq!(parse_range(Some("bytes=90-"), 100), Part(90..100));
        assert_eq!(parse_range(Some("bytes=90-200"), 100), Part(90..100));
        assert_eq!(parse_range(Some("bytes=-10"), 100), Part(90..100));
        assert_eq!(parse_range(Some("bytes=-500"), 100), Part(0..100));
        assert_eq!(parse_range(Some("bytes=100-"), 100), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-0"), 100), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=5-1"), 100), Whole);
        assert_eq!(parse_range(Some("bytes=0-1,5-6"), 100), Whole);
        assert_eq!(parse_range(Some("items=0-1"), 100), Whole);
    }
}
