//! `/api/v1/invitations` (tenant admins) and `/api/v1/auth/invitation` (the invitee's link).

use actix_web::{HttpRequest, HttpResponse, web};
use stead_api_types::{
    AcceptInvitation, ApiErrorBody, CreateInvitation, Invitation, InvitationPreview,
    InvitationToken, Page, PageQuery, TokenResponse,
};
use uuid::Uuid;

use super::{repo, service};
use crate::app::AppState;
use crate::auth::perm::UsersManage;
use crate::http::openapi::{BadQuery, Denied, JsonBody, NotFound};
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

#[utoipa::path(
    get,
    path = "/invitations",
    tag = "invitations",
    operation_id = "list_invitations",
    summary = "List invitations (`users.manage`)",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of invitations, newest first", body = Page<Invitation>),
        Denied,
        BadQuery,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
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

#[utoipa::path(
    get,
    path = "/invitations/{id}",
    tag = "invitations",
    operation_id = "get_invitation",
    summary = "Get an invitation (`users.manage`)",
    params(("id" = Uuid, Path, description = "The invitation")),
    responses(
        (status = 200, description = "The invitation", body = Invitation),
        Denied,
        NotFound,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn get(
    state: web::Data<AppState>,
    scope: TenantScope<UsersManage>,
    id: web::Path<Uuid>,
) -> ApiResult<web::Json<Invitation>> {
    let row = repo::get(&state.db, &scope.ctx, *id).await?;
    Ok(web::Json(repo::to_api(&state.db, &scope.ctx, row).await?))
}

#[utoipa::path(
    post,
    path = "/invitations",
    tag = "invitations",
    operation_id = "create_invitation",
    summary = "Invite a person (`users.manage`)",
    request_body = CreateInvitation,
    responses(
        (status = 201, description = "Created, and mailed when an SMTP server is configured (otherwise `link` carries it)", body = Invitation),
        JsonBody,
        Denied,
        (status = 404, description = "A role or group of `bindings` does not exist", body = ApiErrorBody),
        (status = 409, description = "The address has an account or a pending invitation, or the people quota is used up (`email_taken`, `invitation_pending`, `quota_exceeded`)", body = ApiErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn create(
    state: web::Data<AppState>,
    scope: TenantScope<UsersManage>,
    Json(body): Json<CreateInvitation>,
) -> ApiResult<HttpResponse> {
    let invitation = service::create(&state, &scope.ctx, &scope.actor, body).await?;
    Ok(HttpResponse::Created().json(invitation))
}

#[utoipa::path(
    post,
    path = "/invitations/{id}/resend",
    tag = "invitations",
    operation_id = "resend_invitation",
    summary = "Send an invitation again (`users.manage`)",
    params(("id" = Uuid, Path, description = "The invitation")),
    responses(
        (status = 200, description = "A new link, mailed again (the old one stops working)", body = Invitation),
        Denied,
        NotFound,
        (status = 409, description = "The invitation was accepted or revoked (`invitation_closed`, `invitation_accepted`)", body = ApiErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn resend(
    state: web::Data<AppState>,
    scope: TenantScope<UsersManage>,
    id: web::Path<Uuid>,
) -> ApiResult<web::Json<Invitation>> {
    Ok(web::Json(
        service::resend(&state, &scope.ctx, &scope.actor, *id).await?,
    ))
}

#[utoipa::path(
    delete,
    path = "/invitations/{id}",
    tag = "invitations",
    operation_id = "revoke_invitation",
    summary = "Withdraw an invitation (`users.manage`)",
    params(("id" = Uuid, Path, description = "The invitation")),
    responses(
        (status = 204, description = "Revoked: its link stops working"),
        Denied,
        NotFound,
        (status = 409, description = "The invitation was accepted already (`invitation_closed`, `invitation_accepted`)", body = ApiErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn revoke(
    state: web::Data<AppState>,
    scope: TenantScope<UsersManage>,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    service::revoke(&state, &scope.ctx, &scope.actor, *id).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    post,
    path = "/auth/invitation",
    tag = "auth",
    operation_id = "preview_invitation",
    summary = "What an invitation link is for",
    request_body = InvitationToken,
    responses(
        (status = 200, description = "What the invitee's link is for", body = InvitationPreview),
        JsonBody,
        (status = 400, description = "Not a link of this Stead (`invalid_link`)", body = ApiErrorBody),
        (status = 409, description = "The invitation was accepted already or the link used (`link_used`, `invitation_accepted`, `invitation_closed`)", body = ApiErrorBody),
        (status = 410, description = "The link expired or was revoked (`link_expired`, `link_revoked`)", body = ApiErrorBody),
        (status = 429, description = "Too many attempts from this address (`too_many_attempts`)", body = ApiErrorBody),
    ),
)]
async fn preview(
    state: web::Data<AppState>,
    Json(body): Json<InvitationToken>,
) -> ApiResult<web::Json<InvitationPreview>> {
    Ok(web::Json(service::preview(&state, &body.token).await?))
}

#[utoipa::path(
    post,
    path = "/auth/invitation/accept",
    tag = "auth",
    operation_id = "accept_invitation",
    summary = "Accept an invitation: create the account and sign in",
    request_body = AcceptInvitation,
    responses(
        (status = 200, description = "The account is created and signed in", body = TokenResponse),
        JsonBody,
        (status = 400, description = "Not a link of this Stead (`invalid_link`)", body = ApiErrorBody),
        (status = 409, description = "The invitation was accepted already or the link used (`link_used`, `invitation_accepted`, `invitation_closed`)", body = ApiErrorBody),
        (status = 410, description = "The link expired or was revoked (`link_expired`, `link_revoked`)", body = ApiErrorBody),
        (status = 429, description = "Too many attempts from this address (`too_many_attempts`)", body = ApiErrorBody),
    ),
)]
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
