//! `/api/v1/roles` and `/api/v1/users/{id}/bindings`.

use actix_web::{HttpResponse, web};
use stead_api_types::{CreateRole, CustomRole, RoleBinding, SetRoleBindings, UpdateRole};
use uuid::Uuid;

use super::{repo, service};
use crate::app::AppState;
use crate::auth::perm::{RolesManage, UsersRead};
use crate::http::{ApiResult, Json, TenantScope};
use crate::ids::UserId;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/roles", web::get().to(list))
        .route("/roles", web::post().to(create))
        .route("/roles/{id}", web::get().to(get))
        .route("/roles/{id}", web::patch().to(update))
        .route("/roles/{id}", web::delete().to(delete))
        .route("/users/{id}/bindings", web::get().to(bindings))
        .route("/users/{id}/bindings", web::put().to(set_bindings));
}

async fn list(
    state: web::Data<AppState>,
    scope: TenantScope<UsersRead>,
) -> ApiResult<web::Json<Vec<CustomRole>>> {
    Ok(web::Json(repo::list(&state.db, &scope.ctx).await?))
}

async fn get(
    state: web::Data<AppState>,
    scope: TenantScope<UsersRead>,
    id: web::Path<Uuid>,
) -> ApiResult<web::Json<CustomRole>> {
    let role = repo::get(&state.db, &scope.ctx, *id).await?;
    let users = repo::holder_count(&state.db, &scope.ctx, role.id).await?;
    Ok(web::Json(repo::to_api(role, users)))
}

async fn create(
    state: web::Data<AppState>,
    scope: TenantScope<RolesManage>,
    Json(body): Json<CreateRole>,
) -> ApiResult<HttpResponse> {
    let role = service::create(&state.db, &scope.ctx, &scope.actor, body).await?;
    Ok(HttpResponse::Created().json(role))
}

async fn update(
    state: web::Data<AppState>,
    scope: TenantScope<RolesManage>,
    id: web::Path<Uuid>,
    Json(body): Json<UpdateRole>,
) -> ApiResult<web::Json<CustomRole>> {
    Ok(web::Json(
        service::update(&state.db, &scope.ctx, &scope.actor, *id, body).await?,
    ))
}

async fn delete(
    state: web::Data<AppState>,
    scope: TenantScope<RolesManage>,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    service::delete(&state.db, &scope.ctx, &scope.actor, *id).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn bindings(
    state: web::Data<AppState>,
    scope: TenantScope<UsersRead>,
    id: web::Path<Uuid>,
) -> ApiResult<web::Json<Vec<RoleBinding>>> {
    let user = UserId(*id);
    crate::users::repo::get(&state.db, &scope.ctx, user).await?;
    Ok(web::Json(
        repo::bindings_of(&state.db, &scope.ctx, user).await?,
    ))
}

async fn set_bindings(
    state: web::Data<AppState>,
    scope: TenantScope<RolesManage>,
    id: web::Path<Uuid>,
    Json(body): Json<SetRoleBindings>,
) -> ApiResult<web::Json<Vec<RoleBinding>>> {
    Ok(web::Json(
        service::set_bindings(&state.db, &scope.ctx, &scope.actor, UserId(*id), body).await?,
    ))
}
