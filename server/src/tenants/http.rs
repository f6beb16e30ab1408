//! `/api/v1/tenants`: the platform admin's routes.

use actix_web::{HttpResponse, web};
use stead_api_types::{
    ApiErrorBody, CreateTenant, Page, PageQuery, Tenant, TenantSecurity, UpdateTenant, Usage,
};
use uuid::Uuid;

use super::repo;
use crate::app::AppState;
use crate::audit;
use crate::auth::perm::{QuotasRead, TenantsManage, UsersManage, UsersRead};
use crate::error::Error;
use crate::http::openapi::{BadQuery, Denied, JsonBody, NotFound};
use crate::http::{ApiResult, Json, PlatformScope, TenantScope};
use crate::ids::TenantId;
use crate::users::Password;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/tenants/usage", web::get().to(all_usage))
        .route("/usage", web::get().to(usage))
        .route("/security", web::get().to(security))
        .route("/security", web::patch().to(set_security))
        .route("/tenants", web::get().to(list))
        .route("/tenants", web::post().to(create))
        .route("/tenants/{id}", web::get().to(get))
        .route("/tenants/{id}", web::patch().to(update));
}

/// The caller's tenant: its use of each quota.
#[utoipa::path(
    get,
    path = "/usage",
    tag = "tenants",
    operation_id = "tenant_usage",
    summary = "The tenant's usage and quotas (`quotas.read`)",
    description = "The caller's tenant: its use of each quota.",
    responses(
        (status = 200, description = "The caller's tenant: its use of each quota", body = Usage),
        Denied,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn usage(
    state: web::Data<AppState>,
    scope: TenantScope<QuotasRead>,
) -> ApiResult<web::Json<Usage>> {
    let tenant = repo::find(&state.db, scope.ctx.tenant_id())
        .await?
        .ok_or(Error::NotFound("tenant"))?;
    let defaults = super::quotas::Defaults::of(&state.config);
    Ok(web::Json(
        super::quotas::usage(&state.db, &state.live, &defaults, &tenant).await?,
    ))
}

/// The caller's tenant's sign-in rules.
#[utoipa::path(
    get,
    path = "/security",
    tag = "tenants",
    operation_id = "get_security",
    summary = "The tenant's sign-in rules (`users.read`)",
    description = "The caller's tenant's sign-in rules.",
    responses(
        (status = 200, description = "The caller's tenant's sign-in rules", body = TenantSecurity),
        Denied,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn security(
    state: web::Data<AppState>,
    scope: TenantScope<UsersRead>,
) -> ApiResult<web::Json<TenantSecurity>> {
    let tenant = repo::find(&state.db, scope.ctx.tenant_id())
        .await?
        .ok_or(Error::NotFound("tenant"))?;
    Ok(web::Json(TenantSecurity {
        require_two_factor: tenant.require_two_factor,
    }))
}

/// A tenant admin requires (or stops requiring) two-factor sign-in: people without it are
/// limited to setting it up from their next request on.
#[utoipa::path(
    patch,
    path = "/security",
    tag = "tenants",
    operation_id = "set_security",
    summary = "Change the tenant's sign-in rules (`users.manage`)",
    description = "A tenant admin requires (or stops requiring) two-factor sign-in: people without it are limited to setting it up from their next request on.",
    request_body = TenantSecurity,
    responses(
        (status = 200, description = "The rules, changed", body = TenantSecurity),
        JsonBody,
        Denied,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn set_security(
    state: web::Data<AppState>,
    scope: TenantScope<UsersManage>,
    Json(body): Json<TenantSecurity>,
) -> ApiResult<web::Json<TenantSecurity>> {
    let txn = audit::begin(&state.db, Some(scope.ctx.tenant_id())).await?;
    let before = repo::set_require_two_factor(&txn, &scope.ctx, body.require_two_factor).await?;
    audit::record(
        &txn,
        Some(scope.ctx.tenant_id()),
        &scope.actor,
        "tenant.security.update",
        "tenant",
        Some(scope.ctx.tenant_id().0),
        audit::diff(
            &TenantSecurity {
                require_two_factor: before,
            },
            &body,
        ),
    )
    .await?;
    txn.commit().await.map_err(Error::from)?;
    Ok(web::Json(body))
}

/// Every tenant's use of its quotas, by name.
#[utoipa::path(
    get,
    path = "/tenants/usage",
    tag = "tenants",
    operation_id = "all_tenants_usage",
    summary = "Every tenant's usage and quotas (`tenants.manage`)",
    description = "Every tenant's use of its quotas, by name.",
    responses(
        (status = 200, description = "Every tenant's use of its quotas (platform admin)", body = Vec<Usage>),
        Denied,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn all_usage(
    state: web::Data<AppState>,
    _scope: PlatformScope<TenantsManage>,
) -> ApiResult<web::Json<Vec<Usage>>> {
    let defaults = super::quotas::Defaults::of(&state.config);
    let mut out = Vec::new();
    for tenant in repo::all(&state.db).await? {
        out.push(super::quotas::usage(&state.db, &state.live, &defaults, &tenant).await?);
    }
    Ok(web::Json(out))
}

#[utoipa::path(
    get,
    path = "/tenants",
    tag = "tenants",
    operation_id = "list_tenants",
    summary = "List tenants (`tenants.manage`)",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of tenants (platform admin)", body = Page<Tenant>),
        Denied,
        BadQuery,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn list(
    state: web::Data<AppState>,
    _scope: PlatformScope<TenantsManage>,
    query: web::Query<PageQuery>,
) -> ApiResult<web::Json<Page<Tenant>>> {
    let (page, per_page) = crate::http::paging(query.page, query.per_page)?;
    let (items, total) = repo::list(&state.db, page, per_page).await?;
    Ok(web::Json(Page {
        items: items.into_iter().map(repo::to_api).collect(),
        total,
        page,
        per_page,
    }))
}

#[utoipa::path(
    post,
    path = "/tenants",
    tag = "tenants",
    operation_id = "create_tenant",
    summary = "Create a tenant with its first admin (`tenants.manage`)",
    request_body = CreateTenant,
    responses(
        (status = 201, description = "Created, with its first tenant admin", body = Tenant),
        JsonBody,
        Denied,
        (status = 409, description = "The name or the admin's e-mail is taken (`tenant_exists`, `email_taken`)", body = ApiErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn create(
    state: web::Data<AppState>,
    scope: PlatformScope<TenantsManage>,
    Json(body): Json<CreateTenant>,
) -> ApiResult<HttpResponse> {
    let password = Password::parse(&body.admin_password)
        .map_err(|e| Error::invalid("weak_password", "admin_password", e))?;
    let txn = audit::begin(&state.db, None).await?;
    let tenant = repo::create_with_admin(&txn, &body.name, &body.admin_email, &password).await?;
    audit::record(
        &txn,
        Some(TenantId(tenant.id)),
        &scope.actor,
        "tenant.create",
        "tenant",
        Some(tenant.id),
        serde_json::json!({"name": tenant.name, "admin_email": body.admin_email.trim().to_lowercase()}),
    )
    .await?;
    txn.commit().await?;
    Ok(HttpResponse::Created().json(repo::to_api(tenant)))
}

#[utoipa::path(
    get,
    path = "/tenants/{id}",
    tag = "tenants",
    operation_id = "get_tenant",
    summary = "Get a tenant (`tenants.manage`)",
    params(("id" = Uuid, Path, description = "The tenant")),
    responses(
        (status = 200, description = "The tenant", body = Tenant),
        Denied,
        NotFound,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn get(
    state: web::Data<AppState>,
    _scope: PlatformScope<TenantsManage>,
    id: web::Path<Uuid>,
) -> ApiResult<web::Json<Tenant>> {
    let tenant = repo::find(&state.db, TenantId(*id))
        .await?
        .ok_or(Error::NotFound("tenant"))?;
    Ok(web::Json(repo::to_api(tenant)))
}

#[utoipa::path(
    patch,
    path = "/tenants/{id}",
    tag = "tenants",
    operation_id = "update_tenant",
    summary = "Change a tenant (`tenants.manage`)",
    params(("id" = Uuid, Path, description = "The tenant")),
    request_body = UpdateTenant,
    responses(
        (status = 200, description = "The tenant, changed", body = Tenant),
        JsonBody,
        Denied,
        NotFound,
        (status = 409, description = "The name is taken (`tenant_exists`)", body = ApiErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn update(
    state: web::Data<AppState>,
    scope: PlatformScope<TenantsManage>,
    id: web::Path<Uuid>,
    Json(body): Json<UpdateTenant>,
) -> ApiResult<web::Json<Tenant>> {
    let txn = audit::begin(&state.db, Some(TenantId(*id))).await?;
    let before = repo::find(&txn, TenantId(*id))
        .await?
        .ok_or(Error::NotFound("tenant"))?;
    let tenant = repo::update(&txn, TenantId(*id), &body).await?;
    audit::record(
        &txn,
        Some(TenantId(tenant.id)),
        &scope.actor,
        "tenant.update",
        "tenant",
        Some(tenant.id),
        audit::diff(&repo::to_api(before), &repo::to_api(tenant.clone())),
    )
    .await?;
    txn.commit().await?;
    // New limits reach connected devices when they next connect; cached identities carry the old.
    state.sessions.forget_tenant(TenantId(tenant.id));
    if body.status == Some(stead_api_types::TenantStatus::Suspended) {
        state.sessions.revoke_tenant(TenantId(tenant.id));
    }
    Ok(web::Json(repo::to_api(tenant)))
}
