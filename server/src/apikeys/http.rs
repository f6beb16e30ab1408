//! `/api/v1/api-keys`.

use actix_web::{HttpResponse, web};
use stead_api_types::{ApiErrorBody, ApiKey, CreateApiKey, CreatedApiKey};
use uuid::Uuid;

use super::{repo, service};
use crate::app::AppState;
use crate::auth::perm::ApiKeysManage;
use crate::http::openapi::{Denied, JsonBody, NotFound};
use crate::http::{ApiResult, Json, TenantScope};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api-keys", web::get().to(list))
        .route("/api-keys", web::post().to(create))
        .route("/api-keys/{id}", web::get().to(get))
        .route("/api-keys/{id}", web::delete().to(revoke));
}

#[utoipa::path(
    get,
    path = "/api-keys",
    tag = "api-keys",
    operation_id = "list_api_keys",
    summary = "List API keys (`apikeys.manage`)",
    responses(
        (status = 200, description = "The tenant's API keys, revoked ones included", body = Vec<ApiKey>),
        Denied,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn list(
    state: web::Data<AppState>,
    scope: TenantScope<ApiKeysManage>,
) -> ApiResult<web::Json<Vec<ApiKey>>> {
    Ok(web::Json(repo::list(&state.db, &scope.ctx).await?))
}

#[utoipa::path(
    get,
    path = "/api-keys/{id}",
    tag = "api-keys",
    operation_id = "get_api_key",
    summary = "Get an API key (`apikeys.manage`)",
    params(("id" = Uuid, Path, description = "The key")),
    responses(
        (status = 200, description = "The key", body = ApiKey),
        Denied,
        NotFound,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn get(
    state: web::Data<AppState>,
    scope: TenantScope<ApiKeysManage>,
    id: web::Path<Uuid>,
) -> ApiResult<web::Json<ApiKey>> {
    let key = repo::get(&state.db, &scope.ctx, *id).await?;
    let email = crate::users::repo::get(&state.db, &scope.ctx, crate::ids::UserId(key.user_id))
        .await
        .map(|u| u.email)
        .unwrap_or_default();
    Ok(web::Json(repo::to_api(key, email)))
}

#[utoipa::path(
    post,
    path = "/api-keys",
    tag = "api-keys",
    operation_id = "create_api_key",
    summary = "Create an API key (`apikeys.manage`)",
    request_body = CreateApiKey,
    responses(
        (status = 201, description = "Created: the secret is shown this once", body = CreatedApiKey),
        JsonBody,
        Denied,
        (status = 404, description = "A group of `groups` does not exist", body = ApiErrorBody),
        (status = 409, description = "The tenant's API key quota is used up (`quota_exceeded`)", body = ApiErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn create(
    state: web::Data<AppState>,
    scope: TenantScope<ApiKeysManage>,
    Json(body): Json<CreateApiKey>,
) -> ApiResult<HttpResponse> {
    let created = service::create(
        &state.db,
        &scope.ctx,
        &crate::tenants::quotas::Defaults::of(&state.config),
        &scope.actor,
        body,
    )
    .await?;
    Ok(HttpResponse::Created().json(created))
}

/// Revokes a key (it stays listed, with the time): refused at its next request, on every node.
#[utoipa::path(
    delete,
    path = "/api-keys/{id}",
    tag = "api-keys",
    operation_id = "revoke_api_key",
    summary = "Revoke an API key (`apikeys.manage`)",
    description = "Revokes a key (it stays listed, with the time): refused at its next request, on every node.",
    params(("id" = Uuid, Path, description = "The key")),
    responses(
        (status = 200, description = "Revoked (it stays listed, with the time)", body = ApiKey),
        Denied,
        NotFound,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn revoke(
    state: web::Data<AppState>,
    scope: TenantScope<ApiKeysManage>,
    id: web::Path<Uuid>,
) -> ApiResult<web::Json<ApiKey>> {
    Ok(web::Json(
        service::revoke(&state.db, &scope.ctx, &scope.actor, *id).await?,
    ))
}
