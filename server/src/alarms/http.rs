//! `/api/v1/alarms` (read: `alarms.read`; acknowledge, clear, assign, comment: `alarms.ack`) and
//! `/api/v1/alarm-rules` (read: `alarms.read`; change: `alarms.manage`).

use actix_web::{HttpResponse, web};
use stead_api_types::{
    Alarm, AlarmAction, AlarmBulk, AlarmBulkResult, AlarmCountQuery, AlarmCounts, AlarmDetail,
    AlarmPage, AlarmQuery, AlarmRule, AlarmRuleQuery, AlarmRuleSpec, ApiErrorBody,
};
use uuid::Uuid;

use super::{repo, service};
use crate::app::AppState;
use crate::auth::perm::{AlarmsAck, AlarmsManage, AlarmsRead};
use crate::http::openapi::{BadQuery, Denied, JsonBody, NotFound};
use crate::http::{ApiResult, Json, TenantScope};

/// Most alarms one bulk action takes.
const MAX_BULK: usize = 500;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/alarms", web::get().to(list))
        .route("/alarms/counts", web::get().to(counts))
        .route("/alarms/bulk", web::post().to(bulk))
        .route("/alarms/{id}", web::get().to(get))
        .route("/alarms/{id}/actions", web::post().to(act))
        .route("/alarm-rules", web::get().to(list_rules))
        .route("/alarm-rules", web::post().to(create_rule))
        .route("/alarm-rules/{id}", web::get().to(get_rule))
        .route("/alarm-rules/{id}", web::put().to(update_rule))
        .route("/alarm-rules/{id}", web::delete().to(delete_rule));
}

#[utoipa::path(
    get,
    path = "/alarms",
    tag = "alarms",
    operation_id = "list_alarms",
    summary = "List alarms, newest first, with filters (`alarms.read`)",
    params(AlarmQuery),
    responses(
        (status = 200, description = "A page of alarms", body = AlarmPage),
        Denied,
        BadQuery,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn list(
    state: web::Data<AppState>,
    scope: TenantScope<AlarmsRead>,
    query: web::Query<AlarmQuery>,
) -> ApiResult<web::Json<AlarmPage>> {
    let q = query.into_inner();
    let (page, per_page) = crate::http::paging(q.page, q.per_page)?;
    let (alarms, total) = repo::list(&state.db, &scope.ctx, &q, page, per_page).await?;
    Ok(web::Json(AlarmPage {
        items: repo::to_api(&state.db, &scope.ctx, alarms).await?,
        total,
        page,
        per_page,
    }))
}

#[utoipa::path(
    get,
    path = "/alarms/counts",
    tag = "alarms",
    operation_id = "count_alarms",
    summary = "Active alarms by severity, for the tenant, a group or a device (`alarms.read`)",
    params(AlarmCountQuery),
    responses(
        (status = 200, description = "Active alarms by severity", body = AlarmCounts),
        Denied,
        BadQuery,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn counts(
    state: web::Data<AppState>,
    scope: TenantScope<AlarmsRead>,
    query: web::Query<AlarmCountQuery>,
) -> ApiResult<web::Json<AlarmCounts>> {
    Ok(web::Json(
        repo::counts(&state.db, &scope.ctx, query.device, query.group).await?,
    ))
}

#[utoipa::path(
    get,
    path = "/alarms/{id}",
    tag = "alarms",
    operation_id = "get_alarm",
    summary = "One alarm with its history (`alarms.read`)",
    params(("id" = Uuid, Path, description = "The alarm")),
    responses(
        (status = 200, description = "The alarm and every change of it", body = AlarmDetail),
        Denied,
        NotFound,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn get(
    state: web::Data<AppState>,
    scope: TenantScope<AlarmsRead>,
    id: web::Path<Uuid>,
) -> ApiResult<web::Json<AlarmDetail>> {
    let a = repo::get(&state.db, &scope.ctx, *id).await?;
    let history = repo::history_of(&state.db, &scope.ctx, a.id).await?;
    let alarm = one(&state, &scope.ctx, a).await?;
    Ok(web::Json(AlarmDetail { alarm, history }))
}

async fn one(
    state: &AppState,
    ctx: &crate::auth::TenantCtx,
    a: super::model::alarm::Model,
) -> ApiResult<Alarm> {
    Ok(repo::to_api(&state.db, ctx, vec![a])
        .await?
        .pop()
        .ok_or(crate::error::Error::NotFound("alarm"))?)
}

#[utoipa::path(
    post,
    path = "/alarms/{id}/actions",
    tag = "alarms",
    operation_id = "act_on_alarm",
    summary = "Acknowledge, clear, assign or comment on an alarm (`alarms.ack`)",
    params(("id" = Uuid, Path, description = "The alarm")),
    request_body = AlarmAction,
    responses(
        (status = 200, description = "The alarm as it is now (unchanged when it already was so)", body = Alarm),
        JsonBody,
        Denied,
        NotFound,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn act(
    state: web::Data<AppState>,
    scope: TenantScope<AlarmsAck>,
    id: web::Path<Uuid>,
    Json(action): Json<AlarmAction>,
) -> ApiResult<web::Json<Alarm>> {
    let a = service::act(&state, &scope.ctx, &scope.actor, *id, &action).await?;
    Ok(web::Json(one(&state, &scope.ctx, a).await?))
}

#[utoipa::path(
    post,
    path = "/alarms/bulk",
    tag = "alarms",
    operation_id = "act_on_alarms",
    summary = "The same action on a selection of alarms (`alarms.ack`)",
    request_body = AlarmBulk,
    responses(
        (status = 200, description = "How many changed, and why the others did not", body = AlarmBulkResult),
        JsonBody,
        Denied,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn bulk(
    state: web::Data<AppState>,
    scope: TenantScope<AlarmsAck>,
    Json(body): Json<AlarmBulk>,
) -> ApiResult<web::Json<AlarmBulkResult>> {
    if body.ids.is_empty() || body.ids.len() > MAX_BULK {
        return Err(crate::error::Error::invalid(
            "invalid_field",
            "ids",
            format!("between 1 and {MAX_BULK} alarms at once"),
        )
        .into());
    }
    let mut result = AlarmBulkResult::default();
    for id in body.ids {
        match service::act(&state, &scope.ctx, &scope.actor, id, &body.action).await {
            Ok(_) => result.changed += 1,
            Err(e) => {
                result.failed.insert(id, e.to_string());
            }
        }
    }
    Ok(web::Json(result))
}

#[utoipa::path(
    get,
    path = "/alarm-rules",
    tag = "alarms",
    operation_id = "list_alarm_rules",
    summary = "Alarm rules, of a profile or a device or all (`alarms.read`)",
    params(AlarmRuleQuery),
    responses(
        (status = 200, description = "The rules", body = Vec<AlarmRule>),
        Denied,
        BadQuery,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn list_rules(
    state: web::Data<AppState>,
    scope: TenantScope<AlarmsRead>,
    query: web::Query<AlarmRuleQuery>,
) -> ApiResult<web::Json<Vec<AlarmRule>>> {
    let rules = repo::list_rules(&state.db, &scope.ctx, query.profile, query.device).await?;
    Ok(web::Json(
        rules
            .into_iter()
            .map(repo::rule_to_api)
            .collect::<Result<_, _>>()?,
    ))
}

#[utoipa::path(
    post,
    path = "/alarm-rules",
    tag = "alarms",
    operation_id = "create_alarm_rule",
    summary = "Create an alarm rule on a profile or a device (`alarms.manage`)",
    request_body = AlarmRuleSpec,
    responses(
        (status = 201, description = "Created", body = AlarmRule),
        JsonBody,
        Denied,
        (status = 409, description = "The profile or device has a rule of this type already (`alarm_rule_exists`)", body = ApiErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn create_rule(
    state: web::Data<AppState>,
    scope: TenantScope<AlarmsManage>,
    Json(spec): Json<AlarmRuleSpec>,
) -> ApiResult<HttpResponse> {
    let rule = service::create_rule(&state, &scope.ctx, &scope.actor, spec).await?;
    Ok(HttpResponse::Created().json(rule))
}

#[utoipa::path(
    get,
    path = "/alarm-rules/{id}",
    tag = "alarms",
    operation_id = "get_alarm_rule",
    summary = "One alarm rule (`alarms.read`)",
    params(("id" = Uuid, Path, description = "The rule")),
    responses(
        (status = 200, description = "The rule", body = AlarmRule),
        Denied,
        NotFound,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn get_rule(
    state: web::Data<AppState>,
    scope: TenantScope<AlarmsRead>,
    id: web::Path<Uuid>,
) -> ApiResult<web::Json<AlarmRule>> {
    let rule = repo::get_rule(&state.db, &scope.ctx, *id).await?;
    Ok(web::Json(repo::rule_to_api(rule)?))
}

#[utoipa::path(
    put,
    path = "/alarm-rules/{id}",
    tag = "alarms",
    operation_id = "update_alarm_rule",
    summary = "Replace an alarm rule (`alarms.manage`)",
    params(("id" = Uuid, Path, description = "The rule")),
    request_body = AlarmRuleSpec,
    responses(
        (status = 200, description = "The rule as it is now", body = AlarmRule),
        JsonBody,
        Denied,
        NotFound,
        (status = 409, description = "The profile or device has a rule of this type already (`alarm_rule_exists`)", body = ApiErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn update_rule(
    state: web::Data<AppState>,
    scope: TenantScope<AlarmsManage>,
    id: web::Path<Uuid>,
    Json(spec): Json<AlarmRuleSpec>,
) -> ApiResult<web::Json<AlarmRule>> {
    Ok(web::Json(
        service::update_rule(&state, &scope.ctx, &scope.actor, *id, spec).await?,
    ))
}

#[utoipa::path(
    delete,
    path = "/alarm-rules/{id}",
    tag = "alarms",
    operation_id = "delete_alarm_rule",
    summary = "Delete an alarm rule; its alarms stay (`alarms.manage`)",
    params(("id" = Uuid, Path, description = "The rule")),
    responses(
        (status = 204, description = "Deleted"),
        Denied,
        NotFound,
    ),
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
