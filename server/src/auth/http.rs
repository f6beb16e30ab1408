//! `/api/v1/auth/*` and `/api/v1/me`.

use actix_web::{HttpRequest, HttpResponse, web};
use stead_api_types::{
    ChangePassword, ConfirmPassword, ConfirmPasswordReset, EnableTwoFactor, LoginRequest, Me,
    RecoveryCodes, RefreshRequest, RequestPasswordReset, SessionInfo, TokenResponse,
    TwoFactorSetup,
};
use uuid::Uuid;

use super::{reset, service, two_factor};
use crate::app::AppState;
use crate::http::{ApiResult, Authenticated, ClientIp, Json, Person};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/auth/login", web::post().to(login))
        .route("/auth/refresh", web::post().to(refresh))
        .route("/auth/logout", web::post().to(logout))
        .route("/me", web::get().to(me))
        .route("/me/password", web::post().to(change_password))
        .route("/me/sessions", web::get().to(sessions))
        .route("/me/sessions/{id}", web::delete().to(end_session))
        .route("/auth/password-reset", web::post().to(request_reset))
        .route(
            "/auth/password-reset/confirm",
            web::post().to(confirm_reset),
        )
        .route("/me/two-factor/setup", web::post().to(two_factor_setup))
        .route("/me/two-factor/enable", web::post().to(two_factor_enable))
        .route("/me/two-factor/disable", web::post().to(two_factor_disable))
        .route(
            "/me/two-factor/recovery-codes",
            web::post().to(two_factor_recovery_codes),
        );
}

/// `POST /auth/password-reset`: 202 whether or not the address has an account.
async fn request_reset(
    state: web::Data<AppState>,
    req: HttpRequest,
    ip: ClientIp,
    Json(body): Json<RequestPasswordReset>,
) -> ApiResult<HttpResponse> {
    reset::request(&state, &body.email, &origin(&req, ip)).await?;
    Ok(HttpResponse::Accepted().finish())
}

async fn confirm_reset(
    state: web::Data<AppState>,
    req: HttpRequest,
    ip: ClientIp,
    Json(body): Json<ConfirmPasswordReset>,
) -> ApiResult<HttpResponse> {
    reset::confirm(&state, &body.token, &body.new_password, &origin(&req, ip)).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn two_factor_setup(
    state: web::Data<AppState>,
    auth: Person,
    Json(body): Json<ConfirmPassword>,
) -> ApiResult<web::Json<TwoFactorSetup>> {
    Ok(web::Json(
        two_factor::setup(&state, &auth.actor, &body.password).await?,
    ))
}

async fn two_factor_enable(
    state: web::Data<AppState>,
    auth: Person,
    Json(body): Json<EnableTwoFactor>,
) -> ApiResult<web::Json<RecoveryCodes>> {
    Ok(web::Json(
        two_factor::enable(&state, &auth.actor, &body.code).await?,
    ))
}

async fn two_factor_disable(
    state: web::Data<AppState>,
    auth: Person,
    Json(body): Json<ConfirmPassword>,
) -> ApiResult<HttpResponse> {
    two_factor::disable(&state, &auth.actor, &body.password).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn two_factor_recovery_codes(
    state: web::Data<AppState>,
    auth: Person,
    Json(body): Json<ConfirmPassword>,
) -> ApiResult<web::Json<RecoveryCodes>> {
    Ok(web::Json(
        two_factor::new_recovery_codes(&state, &auth.actor, &body.password).await?,
    ))
}

pub(crate) fn origin(req: &HttpRequest, ip: ClientIp) -> service::Origin {
    service::Origin {
        address: ip.0,
        user_agent: req
            .headers()
            .get(actix_web::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    }
}

async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    ip: ClientIp,
    Json(body): Json<LoginRequest>,
) -> ApiResult<web::Json<TokenResponse>> {
    let origin = origin(&req, ip);
    Ok(web::Json(service::login(&state, &body, &origin).await?))
}

async fn refresh(
    state: web::Data<AppState>,
    req: HttpRequest,
    ip: ClientIp,
    Json(body): Json<RefreshRequest>,
) -> ApiResult<web::Json<TokenResponse>> {
    let origin = origin(&req, ip);
    Ok(web::Json(
        service::refresh(&state, &body.refresh_token, &origin).await?,
    ))
}

/// `POST /me/password`: any signed-in person changes their own password.
async fn change_password(
    state: web::Data<AppState>,
    auth: Person,
    Json(body): Json<ChangePassword>,
) -> ApiResult<HttpResponse> {
    let new = crate::users::Password::parse(&body.new_password)
        .map_err(|e| crate::error::Error::invalid("weak_password", "new_password", e))?;
    service::change_password(&state, &auth.actor, &body.current_password, &new).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn sessions(
    state: web::Data<AppState>,
    auth: Person,
) -> ApiResult<web::Json<Vec<SessionInfo>>> {
    Ok(web::Json(service::sessions(&state, &auth.actor).await?))
}

async fn end_session(
    state: web::Data<AppState>,
    auth: Person,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    service::end_session(&state, &auth.actor, *id).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn logout(
    state: web::Data<AppState>,
    Json(body): Json<RefreshRequest>,
) -> ApiResult<HttpResponse> {
    service::logout(&state, &body.refresh_token).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn me(state: web::Data<AppState>, auth: Authenticated) -> ApiResult<web::Json<Me>> {
    Ok(web::Json(service::me(&state, &auth.actor).await?))
}
