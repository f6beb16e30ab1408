//! `/api/v1/api-keys`.

use actix_web::{HttpResponse, web};
use stead_api_types::{ApiKey, CreateApiKey};
use uuid::Uuid;

use super::{repo, service};
use crate::app::AppState;
use crate::auth::perm::ApiKeysManage;
use crate::http::{ApiResult, Json, TenantScope};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api-keys", web::get().to(list))
        .route("/api-keys", web::post().to(create))
        .route("/api-keys/{id}", web::get().to(get))
        .route("/api-keys/{id}", web::delete().to(revoke));
}

async fn list(
    state: web::Data<AppState>,
    scope: TenantScope<ApiKeysManage>,
) -> ApiResult<web::Json<Vec<ApiKey>>> {
    Ok(web::Json(repo::list(&state.db, &scope.ctx).await?))
}

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
async fn revoke(
    state: web::Data<AppState>,
    scope: TenantScope<ApiKeysManage>,
    id: web::Path<Uuid>,
) -> ApiResult<web::Json<ApiKey>> {
    Ok(web::Json(
        service::revoke(&state.db, &scope.ctx, &scope.actor, *id).await?,
    ))
}
