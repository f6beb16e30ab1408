//! `/api/v1/profiles`.

use actix_web::{HttpResponse, web};
use stead_api_types::{ApiErrorBody, CreateProfile, DeviceProfile, SavedProfile, UpdateProfile};
use uuid::Uuid;

use super::repo;
use crate::app::AppState;
use crate::audit;
use crate::auth::perm::{DevicesRead, ProfilesManage};
use crate::http::openapi::{Denied, JsonBody, NotFound};
use crate::http::{ApiResult, DeviceScope, Json, TenantScope};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/profiles", web::get().to(list))
        .route("/profiles", web::post().to(create))
        .route("/profiles/{id}", web::get().to(get))
        .route("/profiles/{id}", web::patch().to(update))
        .route("/profiles/{id}", web::delete().to(delete));
}

#[utoipa::path(
    get,
    path = "/profiles",
    tag = "profiles",
    operation_id = "list_profiles",
    summary = "List device profiles (`devices.read` tenant-wide or over device groups)",
    responses(
        (status = 200, description = "The tenant's device profiles", body = Vec<DeviceProfile>),
        Denied,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn list(
    state: web::Data<AppState>,
    scope: DeviceScope<DevicesRead>,
) -> ApiResult<web::Json<Vec<DeviceProfile>>> {
    Ok(web::Json(repo::list(&state.db, &scope.ctx).await?))
}

#[utoipa::path(
    get,
    path = "/profiles/{id}",
    tag = "profiles",
    operation_id = "get_profile",
    summary = "Get a device profile (`devices.read` tenant-wide or over device groups)",
    params(("id" = Uuid, Path, description = "The profile")),
    responses(
        (status = 200, description = "The profile", body = DeviceProfile),
        Denied,
        NotFound,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn get(
    state: web::Data<AppState>,
    scope: DeviceScope<DevicesRead>,
    id: web::Path<Uuid>,
) -> ApiResult<web::Json<DeviceProfile>> {
    let profile = repo::get(&state.db, &scope.ctx, *id).await?;
    Ok(web::Json(
        repo::api_of(&state.db, &scope.ctx, profile).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/profiles",
    tag = "profiles",
    operation_id = "create_profile",
    summary = "Create a device profile (`profiles.manage`)",
    request_body = CreateProfile,
    responses(
        (status = 201, description = "Created; `provision_secret` is shown this once when provisioning is on", body = SavedProfile),
        JsonBody,
        Denied,
        (status = 409, description = "The name is taken (`profile_name_taken`)", body = ApiErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn create(
    state: web::Data<AppState>,
    scope: TenantScope<ProfilesManage>,
    Json(body): Json<CreateProfile>,
) -> ApiResult<HttpResponse> {
    let txn = audit::begin(&state.db, Some(scope.ctx.tenant_id())).await?;
    let (profile, provision_secret) = repo::create(&txn, &scope.ctx, body).await?;
    audit::record(
        &txn,
        Some(scope.ctx.tenant_id()),
        &scope.actor,
        "profile.create",
        "profile",
        Some(profile.id),
        serde_json::json!({"name": profile.name}),
    )
    .await?;
    txn.commit().await?;
    Ok(HttpResponse::Created().json(SavedProfile {
        profile: repo::to_api(profile, 0),
        provision_secret,
    }))
}

#[utoipa::path(
    patch,
    path = "/profiles/{id}",
    tag = "profiles",
    operation_id = "update_profile",
    summary = "Change a device profile (`profiles.manage`)",
    params(("id" = Uuid, Path, description = "The profile")),
    request_body = UpdateProfile,
    responses(
        (status = 200, description = "The profile, changed; `provision_secret` is shown this once when a new one was generated", body = SavedProfile),
        JsonBody,
        Denied,
        NotFound,
        (status = 409, description = "The name is taken (`profile_name_taken`)", body = ApiErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn update(
    state: web::Data<AppState>,
    scope: TenantScope<ProfilesManage>,
    id: web::Path<Uuid>,
    Json(body): Json<UpdateProfile>,
) -> ApiResult<web::Json<SavedProfile>> {
    let txn = audit::begin(&state.db, Some(scope.ctx.tenant_id())).await?;
    let before = repo::to_api(repo::get(&txn, &scope.ctx, *id).await?, 0);
    let (profile, provision_secret) = repo::update(&txn, &scope.ctx, *id, body).await?;
    let mut detail = audit::diff(&before, &repo::to_api(profile.clone(), 0));
    if provision_secret.is_some() {
        // Said, never written: the secret is shown once, to the caller.
        detail["provision_secret_regenerated"] = true.into();
    }
    audit::record(
        &txn,
        Some(scope.ctx.tenant_id()),
        &scope.actor,
        "profile.update",
        "profile",
        Some(profile.id),
        detail,
    )
    .await?;
    txn.commit().await?;
    // Sessions pick up new limits and timeouts when they next authenticate.
    state.sessions.forget_tenant(scope.ctx.tenant_id());
    Ok(web::Json(SavedProfile {
        profile: repo::api_of(&state.db, &scope.ctx, profile).await?,
        provision_secret,
    }))
}

#[utoipa::path(
    delete,
    path = "/profiles/{id}",
    tag = "profiles",
    operation_id = "delete_profile",
    summary = "Delete a device profile (`profiles.manage`)",
    params(("id" = Uuid, Path, description = "The profile")),
    responses(
        (status = 204, description = "Deleted"),
        Denied,
        NotFound,
        (status = 409, description = "It is the tenant's default profile, or devices follow it (`profile_is_default`, `profile_in_use`)", body = ApiErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn delete(
    state: web::Data<AppState>,
    scope: TenantScope<ProfilesManage>,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let txn = audit::begin(&state.db, Some(scope.ctx.tenant_id())).await?;
    let before = repo::get(&txn, &scope.ctx, *id).await?;
    repo::delete(&txn, &scope.ctx, *id).await?;
    audit::record(
        &txn,
        Some(scope.ctx.tenant_id()),
        &scope.actor,
        "profile.delete",
        "profile",
        Some(*id),
        serde_json::json!({"name": before.name}),
    )
    .await?;
    txn.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}
