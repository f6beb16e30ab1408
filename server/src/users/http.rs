//! `/api/v1/users`: a tenant admin manages the people of their tenant.

use actix_web::{HttpResponse, web};
use chrono::Utc;
use sea_orm::ActiveValue::Set;
use stead_api_types::{ApiErrorBody, CreateUser, Page, PageQuery, Role, UpdateUser, User};
use uuid::Uuid;

use super::{Email, Password, repo};
use crate::app::AppState;
use crate::audit;
use crate::auth::perm::{UsersManage, UsersRead};
use crate::auth::{password, service};
use crate::error::Error;
use crate::http::openapi::{BadQuery, Denied, JsonBody, NotFound};
use crate::http::{ApiResult, Json, TenantScope};
use crate::ids::UserId;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/users", web::get().to(list))
        .route("/users", web::post().to(create))
        .route("/users/{id}", web::get().to(get))
        .route("/users/{id}", web::patch().to(update))
        .route("/users/{id}/two-factor", web::delete().to(reset_two_factor));
}

/// A tenant admin turns off a person's second factor (they lost their phone); their sessions end.
#[utoipa::path(
    delete,
    path = "/users/{id}/two-factor",
    tag = "users",
    operation_id = "reset_user_two_factor",
    summary = "Turn off a person's two-factor sign-in (`users.manage`)",
    description = "A tenant admin turns off a person's second factor (they lost their phone); their sessions end.",
    params(("id" = Uuid, Path, description = "The person")),
    responses(
        (status = 204, description = "Two-factor sign-in is off for them; their sessions ended"),
        Denied,
        NotFound,
        (status = 409, description = "They have no second factor (`two_factor_off`)", body = ApiErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn reset_two_factor(
    state: web::Data<AppState>,
    scope: TenantScope<UsersManage>,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    crate::auth::two_factor::reset(&state, &scope.ctx, &scope.actor, UserId(*id)).await?;
    Ok(HttpResponse::NoContent().finish())
}

fn tenant_role(role: Role) -> Result<Role, Error> {
    match role {
        Role::PlatformAdmin => Err(Error::invalid(
            "invalid_role",
            "role",
            "tenant users can be tenant_admin, operator or viewer",
        )),
        role => Ok(role),
    }
}

fn parse_password(raw: &str) -> Result<Password, Error> {
    Password::parse(raw).map_err(|e| Error::invalid("weak_password", "password", e))
}

#[utoipa::path(
    get,
    path = "/users",
    tag = "users",
    operation_id = "list_users",
    summary = "List people (`users.read`)",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of the tenant's people", body = Page<User>),
        Denied,
        BadQuery,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn list(
    state: web::Data<AppState>,
    scope: TenantScope<UsersRead>,
    query: web::Query<PageQuery>,
) -> ApiResult<web::Json<Page<User>>> {
    let (page, per_page) = crate::http::paging(query.page, query.per_page)?;
    let (items, total) = repo::list(&state.db, &scope.ctx, page, per_page).await?;
    Ok(web::Json(Page {
        items: items.into_iter().map(repo::to_api).collect(),
        total,
        page,
        per_page,
    }))
}

#[utoipa::path(
    get,
    path = "/users/{id}",
    tag = "users",
    operation_id = "get_user",
    summary = "Get a person (`users.read`)",
    params(("id" = Uuid, Path, description = "The person")),
    responses(
        (status = 200, description = "The person", body = User),
        Denied,
        NotFound,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn get(
    state: web::Data<AppState>,
    scope: TenantScope<UsersRead>,
    id: web::Path<Uuid>,
) -> ApiResult<web::Json<User>> {
    let user = repo::get(&state.db, &scope.ctx, UserId(*id)).await?;
    Ok(web::Json(repo::to_api(user)))
}

#[utoipa::path(
    post,
    path = "/users",
    tag = "users",
    operation_id = "create_user",
    summary = "Create a person (`users.manage`)",
    request_body = CreateUser,
    responses(
        (status = 201, description = "Created", body = User),
        JsonBody,
        Denied,
        (status = 409, description = "The e-mail has an account already, or the tenant's people quota is used up (`email_taken`, `quota_exceeded`)", body = ApiErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn create(
    state: web::Data<AppState>,
    scope: TenantScope<UsersManage>,
    Json(body): Json<CreateUser>,
) -> ApiResult<HttpResponse> {
    let email =
        Email::parse(&body.email).map_err(|e| Error::invalid("invalid_email", "email", e))?;
    let role = tenant_role(body.role)?;
    let hash = password::hash(&parse_password(&body.password)?).await?;
    let name = body.name.as_deref().unwrap_or("");
    let txn = audit::begin(&state.db, Some(scope.ctx.tenant_id())).await?;
    crate::tenants::quotas::check(
        &txn,
        &crate::tenants::quotas::Defaults::of(&state.config),
        scope.ctx.tenant_id(),
        crate::tenants::quotas::Quota::Users,
        1,
    )
    .await?;
    let user = repo::create(&txn, Some(&scope.ctx), &email, name, role, hash).await?;
    audit::record(
        &txn,
        Some(scope.ctx.tenant_id()),
        &scope.actor,
        "user.create",
        "user",
        Some(user.id),
        serde_json::json!({"email": user.email, "role": user.role}),
    )
    .await?;
    txn.commit().await?;
    Ok(HttpResponse::Created().json(repo::to_api(user)))
}

#[utoipa::path(
    patch,
    path = "/users/{id}",
    tag = "users",
    operation_id = "update_user",
    summary = "Change a person (`users.manage`)",
    params(("id" = Uuid, Path, description = "The person")),
    request_body = UpdateUser,
    responses(
        (status = 200, description = "The person, changed", body = User),
        JsonBody,
        Denied,
        NotFound,
        (status = 409, description = "Deactivating yourself or giving up your own admin role (`cannot_modify_self`)", body = ApiErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn update(
    state: web::Data<AppState>,
    scope: TenantScope<UsersManage>,
    id: web::Path<Uuid>,
    Json(body): Json<UpdateUser>,
) -> ApiResult<web::Json<User>> {
    // Hashed before the transaction: argon2 takes a while and holds nothing.
    let new_hash = match &body.password {
        Some(raw) => Some(password::hash(&parse_password(raw)?).await?),
        None => None,
    };
    let txn = audit::begin(&state.db, Some(scope.ctx.tenant_id())).await?;
    let user = repo::get(&txn, &scope.ctx, UserId(*id)).await?;
    let before = repo::to_api(user.clone());
    let is_self = user.id == scope.actor.user_id.0;
    if is_self && (body.active == Some(false) || body.role.is_some_and(|r| r != Role::TenantAdmin))
    {
        return Err(Error::conflict(
            "cannot_modify_self",
            "you cannot deactivate yourself or give up your own admin role; ask another tenant admin",
        )
        .into());
    }
    let mut end_sessions = false;
    let mut active: super::model::ActiveModel = user.into();
    if let Some(name) = &body.name {
        active.name = Set(name.trim().to_owned());
    }
    if let Some(role) = body.role {
        active.role = Set(tenant_role(role)?.as_str().to_owned());
    }
    if let Some(is_active) = body.active {
        active.active = Set(is_active);
        end_sessions |= !is_active;
    }
    if let Some(hash) = new_hash {
        active.password_hash = Set(hash);
        end_sessions = true;
    }
    active.updated_at = Set(Utc::now());
    let user = repo::save(&txn, active).await?;
    if end_sessions {
        service::revoke_all_sessions(&txn, UserId(user.id)).await?;
    }
    // The API type carries no password; a new one is said, never written, even hashed.
    let mut detail = audit::diff(&before, &repo::to_api(user.clone()));
    if body.password.is_some() {
        detail["password_changed"] = true.into();
    }
    audit::record(
        &txn,
        Some(scope.ctx.tenant_id()),
        &scope.actor,
        "user.update",
        "user",
        Some(user.id),
        detail,
    )
    .await?;
    txn.commit().await?;
    Ok(web::Json(repo::to_api(user)))
}
