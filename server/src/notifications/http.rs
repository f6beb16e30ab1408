//! `/api/v1/notification-rules` and `/api/v1/silences` (`alarms.manage`), and the signed-in
//! person's own `/api/v1/notifications` (the bell).

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use stead_api_types::{
    CreateSilence, NotificationPage, NotificationQuery, NotificationRule, NotificationRuleSpec,
    Silence,
};
use uuid::Uuid;

use super::{repo, service};
use crate::app::AppState;
use crate::auth::TenantCtx;
use crate::auth::perm::AlarmsManage;
use crate::error::Error;
use crate::http::openapi::{BadQuery, Denied, JsonBody, NotFound};
use crate::http::{ApiResult, Json, Person, TenantScope};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/notification-rules", web::get().to(list_rules))
        .route("/notification-rules", web::post().to(create_rule))
        .route("/notification-rules/{id}", web::get().to(get_rule))
        .route("/notification-rules/{id}", web::put().to(update_rule))
        .route("/notification-rules/{id}", web::delete().to(delete_rule))
        .route("/silences", web::get().to(list_silences))
        .route("/silences", web::post().to(create_silence))
        .route("/silences/{id}", web::delete().to(end_silence))
        .route("/notifications", web::get().to(mine))
        .route("/notifications/read", web::post().to(read_all))
        .route("/notifications/{id}/read", web::post().to(read_one));
}

#[utoipa::path(
    get,
    path = "/notification-rules",
    tag = "alarms",
    operation_id = "list_notification_rules",
    summary = "Notification rules (`alarms.manage`)",
    responses((status = 200, description = "The tenant's notification rules", body = Vec<NotificationRule>), Denied),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn list_rules(
    state: web::Data<AppState>,
    scope: TenantScope<AlarmsManage>,
) -> ApiResult<web::Json<Vec<NotificationRule>>> {
    Ok(web::Json(
        repo::list_rules(&state.db, &scope.ctx)
            .await?
            .into_iter()
            .map(repo::rule_to_api)
            .collect::<Result<_, _>>()?,
    ))
}

#[utoipa::path(
    post,
    path = "/notification-rules",
    tag = "alarms",
    operation_id = "create_notification_rule",
    summary = "Create a notification rule (`alarms.manage`)",
    request_body = NotificationRuleSpec,
    responses(
        (status = 201, description = "Created", body = NotificationRule),
        JsonBody,
        Denied,
        (status = 503, description = "The e-mail channel without an SMTP server (`mail_not_configured`)", body = stead_api_types::ApiErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn create_rule(
    state: web::Data<AppState>,
    scope: TenantScope<AlarmsManage>,
    Json(spec): Json<NotificationRuleSpec>,
) -> ApiResult<HttpResponse> {
    let rule = service::create_rule(&state, &scope.ctx, &scope.actor, spec).await?;
    Ok(HttpResponse::Created().json(rule))
}

#[utoipa::path(
    get,
    path = "/notification-rules/{id}",
    tag = "alarms",
    operation_id = "get_notification_rule",
    summary = "One notification rule (`alarms.manage`)",
    params(("id" = Uuid, Path, description = "The rule")),
    responses((status = 200, description = "The rule", body = NotificationRule), Denied, NotFound),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn get_rule(
    state: web::Data<AppState>,
    scope: TenantScope<AlarmsManage>,
    id: web::Path<Uuid>,
) -> ApiResult<web::Json<NotificationRule>> {
    Ok(web::Json(repo::rule_to_api(
        repo::get_rule(&state.db, &scope.ctx, *id).await?,
    )?))
}

#[utoipa::path(
    put,
    path = "/notification-rules/{id}",
    tag = "alarms",
    operation_id = "update_notification_rule",
    summary = "Replace a notification rule (`alarms.manage`)",
    params(("id" = Uuid, Path, description = "The rule")),
    request_body = NotificationRuleSpec,
    responses((status = 200, description = "The rule as it is now", body = NotificationRule), JsonBody, Denied, NotFound),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn update_rule(
    state: web::Data<AppState>,
    scope: TenantScope<AlarmsManage>,
    id: web::Path<Uuid>,
    Json(spec): Json<NotificationRuleSpec>,
) -> ApiResult<web::Json<NotificationRule>> {
    Ok(web::Json(
        service::update_rule(&state, &scope.ctx, &scope.actor, *id, spec).await?,
    ))
}

#[utoipa::path(
    delete,
    path = "/notification-rules/{id}",
    tag = "alarms",
    operation_id = "delete_notification_rule",
    summary = "Delete a notification rule (`alarms.manage`)",
    params(("id" = Uuid, Path, description = "The rule")),
    responses((status = 204, description = "Deleted"), Denied, NotFound),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn delete_rule(
    state: web::Data<AppState>,
    scope: TenantScope<AlarmsManage>,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    service::delete_rule(&state, &scope.ctx, &scope.actor, *id).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct SilenceQuery {
    /// Only those in force or to come (default), or also the ended ones (`false`).
    current: Option<bool>,
}

#[utoipa::path(
    get,
    path = "/silences",
    tag = "alarms",
    operation_id = "list_silences",
    summary = "Silences (`alarms.manage`)",
    params(SilenceQuery),
    responses((status = 200, description = "The tenant's silences, newest first", body = Vec<Silence>), Denied, BadQuery),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn list_silences(
    state: web::Data<AppState>,
    scope: TenantScope<AlarmsManage>,
    query: web::Query<SilenceQuery>,
) -> ApiResult<web::Json<Vec<Silence>>> {
    let current = query.current.unwrap_or(true);
    Ok(web::Json(
        repo::list_silences(&state.db, &scope.ctx, current)
            .await?
            .into_iter()
            .map(repo::silence_to_api)
            .collect(),
    ))
}

#[utoipa::path(
    post,
    path = "/silences",
    tag = "alarms",
    operation_id = "create_silence",
    summary = "Hold back notifications about a device, a group or an alarm type for a while (`alarms.manage`)",
    request_body = CreateSilence,
    responses((status = 201, description = "Created", body = Silence), JsonBody, Denied),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn create_silence(
    state: web::Data<AppState>,
    scope: TenantScope<AlarmsManage>,
    Json(body): Json<CreateSilence>,
) -> ApiResult<HttpResponse> {
    let silence = service::create_silence(&state, &scope.ctx, &scope.actor, body).await?;
    Ok(HttpResponse::Created().json(silence))
}

#[utoipa::path(
    delete,
    path = "/silences/{id}",
    tag = "alarms",
    operation_id = "end_silence",
    summary = "End a silence now (`alarms.manage`)",
    params(("id" = Uuid, Path, description = "The silence")),
    responses((status = 204, description = "Ended"), Denied, NotFound),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn end_silence(
    state: web::Data<AppState>,
    scope: TenantScope<AlarmsManage>,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    service::end_silence(&state, &scope.ctx, &scope.actor, *id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The person's tenant, for their own notifications.
fn own(auth: &Person) -> Result<TenantCtx, Error> {
    auth.actor.tenant_id.map(TenantCtx::new).ok_or_else(|| {
        Error::forbidden(
            "tenant_required",
            "notifications belong to people of a tenant",
        )
    })
}

#[utoipa::path(
    get,
    path = "/notifications",
    tag = "alarms",
    operation_id = "my_notifications",
    summary = "The signed-in person's in-app notifications, newest first, with the unread count",
    params(NotificationQuery),
    responses((status = 200, description = "A page of notifications", body = NotificationPage), Denied, BadQuery),
    security(("bearer" = [])),
)]
async fn mine(
    state: web::Data<AppState>,
    auth: Person,
    query: web::Query<NotificationQuery>,
) -> ApiResult<web::Json<NotificationPage>> {
    let ctx = own(&auth)?;
    let (page, per_page) = crate::http::paging(query.page, query.per_page)?;
    let (items, total, unread) = repo::of_person(
        &state.db,
        &ctx,
        auth.actor.user_id,
        query.unread.unwrap_or(false),
        page,
        per_page,
    )
    .await?;
    Ok(web::Json(NotificationPage {
        items: items.into_iter().map(repo::notification_to_api).collect(),
        total,
        unread,
        page,
        per_page,
    }))
}

#[utoipa::path(
    post,
    path = "/notifications/{id}/read",
    tag = "alarms",
    operation_id = "read_notification",
    summary = "Mark one of one's notifications read",
    params(("id" = Uuid, Path, description = "The notification")),
    responses((status = 204, description = "Read"), Denied, NotFound),
    security(("bearer" = [])),
)]
async fn read_one(
    state: web::Data<AppState>,
    auth: Person,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let ctx = own(&auth)?;
    repo::mark_read(&state.db, &ctx, auth.actor.user_id, Some(*id)).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    post,
    path = "/notifications/read",
    tag = "alarms",
    operation_id = "read_all_notifications",
    summary = "Mark all of one's notifications read",
    responses((status = 204, description = "Read"), Denied),
    security(("bearer" = [])),
)]
async fn read_all(state: web::Data<AppState>, auth: Person) -> ApiResult<HttpResponse> {
    let ctx = own(&auth)?;
    repo::mark_read(&state.db, &ctx, auth.actor.user_id, None).await?;
    Ok(HttpResponse::NoContent().finish())
}
