//! `/api/v1/auth/*` and `/api/v1/me`.

use actix_web::{HttpRequest, HttpResponse, web};
use stead_api_types::{
    ApiErrorBody, ChangePassword, ConfirmPassword, ConfirmPasswordReset, EnableTwoFactor,
    LoginRequest, Me, RecoveryCodes, RefreshRequest, RequestPasswordReset, SessionInfo,
    TokenResponse, TwoFactorSetup,
};
use uuid::Uuid;

use super::{reset, service, two_factor};
use crate::app::AppState;
use crate::http::openapi::{Denied, JsonBody, NotFound};
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
#[utoipa::path(
    post,
    path = "/auth/password-reset",
    tag = "auth",
    operation_id = "request_password_reset",
    summary = "Mail a password reset link",
    description = "`POST /auth/password-reset`: 202 whether or not the address has an account.",
    request_body = RequestPasswordReset,
    responses(
        (status = 202, description = "A reset link is mailed if the address has an active account (the answer is the same either way)"),
        JsonBody,
        (status = 429, description = "Too many attempts from this address (`too_many_attempts`)", body = ApiErrorBody),
        (status = 503, description = "This Stead sends no e-mail: no SMTP server is configured (`mail_not_configured`)", body = ApiErrorBody),
    ),
)]
async fn request_reset(
    state: web::Data<AppState>,
    req: HttpRequest,
    ip: ClientIp,
    Json(body): Json<RequestPasswordReset>,
) -> ApiResult<HttpResponse> {
    reset::request(&state, &body.email, &origin(&req, ip)).await?;
    Ok(HttpResponse::Accepted().finish())
}

#[utoipa::path(
    post,
    path = "/auth/password-reset/confirm",
    tag = "auth",
    operation_id = "confirm_password_reset",
    summary = "Set a new password with a reset link",
    request_body = ConfirmPasswordReset,
    responses(
        (status = 204, description = "The password is set; every session of the account ended"),
        JsonBody,
        (status = 409, description = "The link was used already (`link_used`)", body = ApiErrorBody),
        (status = 410, description = "The link expired or was revoked (`link_expired`, `link_revoked`)", body = ApiErrorBody),
        (status = 429, description = "Too many attempts from this address", body = ApiErrorBody),
    ),
)]
async fn confirm_reset(
    state: web::Data<AppState>,
    req: HttpRequest,
    ip: ClientIp,
    Json(body): Json<ConfirmPasswordReset>,
) -> ApiResult<HttpResponse> {
    reset::confirm(&state, &body.token, &body.new_password, &origin(&req, ip)).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    post,
    path = "/me/two-factor/setup",
    tag = "account",
    operation_id = "two_factor_setup",
    summary = "Start setting up two-factor sign-in",
    request_body = ConfirmPassword,
    responses(
        (status = 200, description = "A new TOTP secret, in force once confirmed with `/me/two-factor/enable`", body = TwoFactorSetup),
        JsonBody,
        Denied,
        (status = 409, description = "Two-factor sign-in is on already (`two_factor_already_on`)", body = ApiErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn two_factor_setup(
    state: web::Data<AppState>,
    auth: Person,
    Json(body): Json<ConfirmPassword>,
) -> ApiResult<web::Json<TwoFactorSetup>> {
    Ok(web::Json(
        two_factor::setup(&state, &auth.actor, &body.password).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/me/two-factor/enable",
    tag = "account",
    operation_id = "two_factor_enable",
    summary = "Confirm and turn on two-factor sign-in",
    request_body = EnableTwoFactor,
    responses(
        (status = 200, description = "Two-factor sign-in is on; the recovery codes, shown this once", body = RecoveryCodes),
        JsonBody,
        Denied,
        (status = 409, description = "Already on, or no set-up to confirm (`two_factor_already_on`, `two_factor_not_set_up`)", body = ApiErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn two_factor_enable(
    state: web::Data<AppState>,
    auth: Person,
    Json(body): Json<EnableTwoFactor>,
) -> ApiResult<web::Json<RecoveryCodes>> {
    Ok(web::Json(
        two_factor::enable(&state, &auth.actor, &body.code).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/me/two-factor/disable",
    tag = "account",
    operation_id = "two_factor_disable",
    summary = "Turn off your two-factor sign-in",
    request_body = ConfirmPassword,
    responses(
        (status = 204, description = "Two-factor sign-in is off"),
        JsonBody,
        Denied,
        (status = 409, description = "It is off already, or the tenant requires it (`two_factor_off`, `two_factor_required_by_tenant`)", body = ApiErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn two_factor_disable(
    state: web::Data<AppState>,
    auth: Person,
    Json(body): Json<ConfirmPassword>,
) -> ApiResult<HttpResponse> {
    two_factor::disable(&state, &auth.actor, &body.password).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    post,
    path = "/me/two-factor/recovery-codes",
    tag = "account",
    operation_id = "two_factor_recovery_codes",
    summary = "New recovery codes",
    request_body = ConfirmPassword,
    responses(
        (status = 200, description = "New recovery codes (the old ones stop working), shown this once", body = RecoveryCodes),
        JsonBody,
        Denied,
        (status = 409, description = "Two-factor sign-in is off (`two_factor_off`)", body = ApiErrorBody),
    ),
    security(("bearer" = [])),
)]
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

#[utoipa::path(
    post,
    path = "/auth/login",
    tag = "auth",
    operation_id = "login",
    summary = "Sign in",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in: an access token and a refresh token", body = TokenResponse),
        JsonBody,
        (status = 401, description = "Wrong e-mail or password, a second factor required or wrong, the account deactivated (`invalid_credentials`, `two_factor_required`, `invalid_two_factor_code`, `account_disabled`)", body = ApiErrorBody),
        (status = 403, description = "The tenant is suspended (`tenant_suspended`)", body = ApiErrorBody),
        (status = 429, description = "Too many attempts from this address or at this account (`too_many_attempts`)", body = ApiErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ),
)]
async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    ip: ClientIp,
    Json(body): Json<LoginRequest>,
) -> ApiResult<web::Json<TokenResponse>> {
    let origin = origin(&req, ip);
    Ok(web::Json(service::login(&state, &body, &origin).await?))
}

#[utoipa::path(
    post,
    path = "/auth/refresh",
    tag = "auth",
    operation_id = "refresh",
    summary = "Refresh the tokens",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new token pair (the refresh token presented is spent)", body = TokenResponse),
        JsonBody,
        (status = 401, description = "Unknown, expired or re-used refresh token (re-use ends the session): `invalid_refresh_token`, `refresh_token_expired`, `refresh_token_reused`, `account_disabled`", body = ApiErrorBody),
        (status = 403, description = "The tenant is suspended (`tenant_suspended`)", body = ApiErrorBody),
    ),
)]
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
#[utoipa::path(
    post,
    path = "/me/password",
    tag = "account",
    operation_id = "change_password",
    summary = "Change your password",
    description = "`POST /me/password`: any signed-in person changes their own password.",
    request_body = ChangePassword,
    responses(
        (status = 204, description = "Changed; the person's other sessions ended"),
        JsonBody,
        Denied,
    ),
    security(("bearer" = [])),
)]
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

#[utoipa::path(
    get,
    path = "/me/sessions",
    tag = "account",
    operation_id = "list_sessions",
    summary = "List your sessions",
    responses(
        (status = 200, description = "The caller's sessions that have not ended", body = Vec<SessionInfo>),
        Denied,
    ),
    security(("bearer" = [])),
)]
async fn sessions(
    state: web::Data<AppState>,
    auth: Person,
) -> ApiResult<web::Json<Vec<SessionInfo>>> {
    Ok(web::Json(service::sessions(&state, &auth.actor).await?))
}

#[utoipa::path(
    delete,
    path = "/me/sessions/{id}",
    tag = "account",
    operation_id = "end_session",
    summary = "End one of your sessions",
    params(("id" = Uuid, Path, description = "The session")),
    responses(
        (status = 204, description = "Ended: its refresh and access tokens stop working at once"),
        Denied,
        NotFound,
    ),
    security(("bearer" = [])),
)]
async fn end_session(
    state: web::Data<AppState>,
    auth: Person,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    service::end_session(&state, &auth.actor, *id).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    post,
    path = "/auth/logout",
    tag = "auth",
    operation_id = "logout",
    summary = "Sign out",
    request_body = RefreshRequest,
    responses(
        (status = 204, description = "The session of this refresh token ended (an unknown token changes nothing)"),
        JsonBody,
    ),
)]
async fn logout(
    state: web::Data<AppState>,
    Json(body): Json<RefreshRequest>,
) -> ApiResult<HttpResponse> {
    service::logout(&state, &body.refresh_token).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    get,
    path = "/me",
    tag = "account",
    operation_id = "me",
    summary = "Who you are and what you may do",
    responses(
        (status = 200, description = "Who the caller is and what they may do", body = Me),
        Denied,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn me(state: web::Data<AppState>, auth: Authenticated) -> ApiResult<web::Json<Me>> {
    Ok(web::Json(service::me(&state, &auth.actor).await?))
}
