//! `/api/v1/invitations` (tenant admins) and `/api/v1/auth/invitation` (the invitee's link).

use actix_web::{HttpRequest, HttpResponse, web};
use stead_api_types::{
    AcceptInvitation, CreateInvitation, Invitation, InvitationPreview, InvitationToken, Page,
    PageQuery, TokenResponse,
};
use uuid::Uuid;

use super::{repo, service};
use crate::app::AppState;
use crate::auth::perm::UsersManage;
use crate::http::{ApiResult, ClientIp, Json, TenantScope};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/invitations", web::get().to(list))
        .route("/invitations", web::post().to(create))
        .route("/invitations/{id}", web::get().to(get))
        .route("/invitations/{id}", web::delete().to(revoke))
        .route("/invitations/{id}/resend", web::post().to(resend))
        .route("/auth/invitation", web::post().to(preview))
        .route("/auth/invitation/accept", web::post().to(accept));
}

async fn list(
    state: web::Data<AppState>,
    scope: TenantScope<UsersManage>,
    query: web::Query<PageQuery>,
) -> ApiResult<web::Json<Page<Invitation>>> {
    let (page, per_page) = crate::http::paging(query.page, query.per_page)?;
    let (rows, total) = repo::list(&state.db, &scope.ctx, page, per_page).await?;
    let mut items = Vec::with_capacity(rows.len());
    for row in rows {
        items.push(repo::to_api(&state.db, &scope.ctx, row).await?);
    }
    Ok(web::Json(Page {
        items,
        total,
        page,
        per_page,
    }))
}

async fn get(
    state: web::Data<AppState>,
    scope: TenantScope<UsersManage>,
    id: web::Path<Uuid>,
) -> ApiResult<web::Json<Invitation>> {
    let row = repo::get(&state.db, &scope.ctx, *id).await?;
    Ok(web::Json(repo::to_api(&state.db, &scope.ctx, row).await?))
}

async fn create(
    state: web::Data<AppState>,
    scope: TenantScope<UsersManage>,
    Json(body): Json<CreateInvitation>,
) -> ApiResult<HttpResponse> {
    let invitation = service::create(&state, &scope.ctx, &scope.actor, body).await?;
    Ok(HttpResponse::Created().json(invitation))
}

async fn resend(
    state: web::Data<AppState>,
    scope: TenantScope<UsersManage>,
    id: web::Path<Uuid>,
) -> ApiResult<web::Json<Invitation>> {
    Ok(web::Json(
        service::resend(&state, &scope.ctx, &scope.actor, *id).await?,
    ))
}

async fn revoke(
    state: web::Data<AppState>,
    scope: TenantScope<UsersManage>,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    service::revoke(&state, &scope.ctx, &scope.actor, *id).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn preview(
    state: web::Data<AppState>,
    Json(body): Json<InvitationToken>,
) -> ApiResult<web::Json<InvitationPreview>> {
    Ok(web::Json(service::preview(&state, &body.token).await?))
}

async fn accept(
    state: web::Data<AppState>,
    req: HttpRequest,
    ip: ClientIp,
    Json(body): Json<AcceptInvitation>,
) -> ApiResult<web::Json<TokenResponse>> {
    let origin = crate::auth::http::origin(&req, ip);
    Ok(web::Json(
        service::accept(
            &state,
            &body.token,
            &body.password,
            body.name.as_deref(),
            &origin,
        )
        .await?,
    ))
}
