//! `/api/v1/auth/*` and `/api/v1/me`.

use actix_web::{HttpResponse, web};
use stead_api_types::{LoginRequest, Me, RefreshRequest, TenantSummary, TokenResponse};

use super::{Permission, service};
use crate::app::AppState;
use crate::http::{ApiResult, Authenticated, ClientIp, Json};
use crate::tenants;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/auth/login", web::post().to(login))
        .route("/auth/refresh", web::post().to(refresh))
        .route("/auth/logout", web::post().to(logout))
        .route("/me", web::get().to(me));
}

async fn login(
    state: web::Data<AppState>,
    ip: ClientIp,
    Json(body): Json<LoginRequest>,
) -> ApiResult<web::Json<TokenResponse>> {
    Ok(web::Json(
        service::login(&state, &body.email, &body.password, ip.0).await?,
    ))
}

async fn refresh(
    state: web::Data<AppState>,
    Json(body): Json<RefreshRequest>,
) -> ApiResult<web::Json<TokenResponse>> {
    Ok(web::Json(
        service::refresh(&state, &body.refresh_token).await?,
    ))
}

async fn logout(
    state: web::Data<AppState>,
    Json(body): Json<RefreshRequest>,
) -> ApiResult<HttpResponse> {
    service::logout(&state, &body.refresh_token).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn me(state: web::Data<AppState>, auth: Authenticated) -> ApiResult<web::Json<Me>> {
    let actor = auth.actor;
    let user = crate::users::repo::find_by_id(&state.db, actor.user_id)
        .await?
        .ok_or(crate::error::Error::NotFound("user"))?;
    let tenant = match actor.tenant_id {
        Some(id) => tenants::repo::find(&state.db, id)
            .await?
            .map(|t| TenantSummary {
                id: t.id,
                name: t.name,
            }),
        None => None,
    };
    Ok(web::Json(Me {
        id: user.id,
        email: user.email,
        name: user.name,
        role: actor.role,
        tenant,
        permissions: Permission::of_role(actor.role),
    }))
}
