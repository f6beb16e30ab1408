//! `/api/v1/roles` and `/api/v1/users/{id}/bindings`.

use actix_web::{HttpResponse, web};
use stead_api_types::{
    ApiErrorBody, CreateRole, CustomRole, RoleBinding, SetRoleBindings, UpdateRole,
};
use uuid::Uuid;

use super::{repo, service};
use crate::app::AppState;
use crate::auth::perm::{RolesManage, UsersRead};
use crate::http::openapi::{Denied, JsonBody, NotFound};
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

#[utoipa::path(
    get,
    path = "/roles",
    tag = "roles",
    operation_id = "list_roles",
    summary = "List custom roles (`users.read`)",
    responses(
        (status = 200, description = "The tenant's custom roles", body = Vec<CustomRole>),
        Denied,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn list(
    state: web::Data<AppState>,
    scope: TenantScope<UsersRead>,
) -> ApiResult<web::Json<Vec<CustomRole>>> {
    Ok(web::Json(repo::list(&state.db, &scope.ctx).await?))
}

#[utoipa::path(
    get,
    path = "/roles/{id}",
    tag = "roles",
    operation_id = "get_role",
    summary = "Get a custom role (`users.read`)",
    params(("id" = Uuid, Path, description = "The role")),
    responses(
        (status = 200, description = "The role", body = CustomRole),
        Denied,
        NotFound,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn get(
    state: web::Data<AppState>,
    scope: TenantScope<UsersRead>,
    id: web::Path<Uuid>,
) -> ApiResult<web::Json<CustomRole>> {
    let role = repo::get(&state.db, &scope.ctx, *id).await?;
    let users = repo::holder_count(&state.db, &scope.ctx, role.id).await?;
    Ok(web::Json(repo::to_api(role, users)))
}

#[utoipa::path(
    post,
    path = "/roles",
    tag = "roles",
    operation_id = "create_role",
    summary = "Create a custom role (`roles.manage`)",
    request_body = CreateRole,
    responses(
        (status = 201, description = "Created", body = CustomRole),
        JsonBody,
        Denied,
        (status = 409, description = "The name is taken (`role_name_taken`)", body = ApiErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn create(
    state: web::Data<AppState>,
    scope: TenantScope<RolesManage>,
    Json(body): Json<CreateRole>,
) -> ApiResult<HttpResponse> {
    let role = service::create(&state.db, &scope.ctx, &scope.actor, body).await?;
    Ok(HttpResponse::Created().json(role))
}

#[utoipa::path(
    patch,
    path = "/roles/{id}",
    tag = "roles",
    operation_id = "update_role",
    summary = "Change a custom role (`roles.manage`)",
    params(("id" = Uuid, Path, description = "The role")),
    request_body = UpdateRole,
    responses(
        (status = 200, description = "The role, changed (in force at the next request of everyone holding it)", body = CustomRole),
        JsonBody,
        Denied,
        NotFound,
        (status = 409, description = "The name is taken (`role_name_taken`)", body = ApiErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
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

#[utoipa::path(
    delete,
    path = "/roles/{id}",
    tag = "roles",
    operation_id = "delete_role",
    summary = "Delete a custom role (`roles.manage`)",
    params(("id" = Uuid, Path, description = "The role")),
    responses(
        (status = 204, description = "Deleted"),
        Denied,
        NotFound,
        (status = 409, description = "Someone holds the role (`role_in_use`)", body = ApiErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn delete(
    state: web::Data<AppState>,
    scope: TenantScope<RolesManage>,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    service::delete(&state.db, &scope.ctx, &scope.actor, *id).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    get,
    path = "/users/{id}/bindings",
    tag = "roles",
    operation_id = "list_bindings",
    summary = "A person's role bindings (`users.read`)",
    params(("id" = Uuid, Path, description = "The person")),
    responses(
        (status = 200, description = "The person's role bindings", body = Vec<RoleBinding>),
        Denied,
        NotFound,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
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

#[utoipa::path(
    put,
    path = "/users/{id}/bindings",
    tag = "roles",
    operation_id = "set_bindings",
    summary = "Replace a person's role bindings (`roles.manage`)",
    params(("id" = Uuid, Path, description = "The person")),
    request_body = SetRoleBindings,
    responses(
        (status = 200, description = "The person's role bindings, replaced", body = Vec<RoleBinding>),
        JsonBody,
        Denied,
        NotFound,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
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
