//! `/api/v1/alarms` (read: `alarms.read`; acknowledge, clear, assign, comment: `alarms.ack`; both
//! tenant-wide or over device groups, whose devices' alarms they reach) and `/api/v1/alarm-rules`
//! (read: `alarms.read` tenant-wide; change: `alarms.manage`).

use actix_web::{HttpResponse, web};
use stead_api_types::{
    Alarm, AlarmAction, AlarmBulk, AlarmBulkResult, AlarmCountQuery, AlarmCounts, AlarmDetail,
    AlarmPage, AlarmPreview, AlarmPreviewRequest, AlarmQuery, AlarmRule, AlarmRuleQuery,
    AlarmRuleSpec, ApiErrorBody,
};
use uuid::Uuid;

use super::{repo, service};
use crate::app::AppState;
use crate::auth::perm::{AlarmsAck, AlarmsManage, AlarmsRead};
use crate::http::openapi::{BadQuery, Denied, JsonBody, NotFound};
use crate::http::{ApiResult, DeviceScope, Json, TenantScope};

/// Most alarms one bulk action takes.
const MAX_BULK: usize = 500;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/alarms", web::get().to(list))
        .route("/alarms/counts", web::get().to(counts))
        .route("/alarms/bulk", web::post().to(bulk))
        .route("/alarms/stream", web::get().to(stream))
        .route("/alarms/{id}", web::get().to(get))
        .route("/alarms/{id}/actions", web::post().to(act))
        .route("/alarm-rules", web::get().to(list_rules))
        .route("/alarm-rules", web::post().to(create_rule))
        .route("/alarm-rules/preview", web::post().to(preview))
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
    scope: DeviceScope<AlarmsRead>,
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
    scope: DeviceScope<AlarmsRead>,
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
    scope: DeviceScope<AlarmsRead>,
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
    scope: DeviceScope<AlarmsAck>,
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
    scope: DeviceScope<AlarmsAck>,
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

/// How often the live stream looks for changed alarms.
const STREAM_POLL: std::time::Duration = std::time::Duration::from_secs(1);
/// A comment line after this long without an event keeps proxies from closing the stream.
const STREAM_KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(15);

/// The live stream's state between events.
struct Stream {
    state: web::Data<AppState>,
    actor: crate::auth::Actor,
    ctx: crate::auth::TenantCtx,
    /// The newest change sent, and the alarms sent with exactly that time.
    cursor: chrono::DateTime<chrono::Utc>,
    at_cursor: Vec<Uuid>,
    pending: std::collections::VecDeque<web::Bytes>,
    recheck: tokio::time::Interval,
    quiet_since: std::time::Instant,
    ended: bool,
}

fn event(name: &str, data: &impl serde::Serialize) -> web::Bytes {
    web::Bytes::from(format!(
        "event: {name}\ndata: {}\n\n",
        serde_json::to_string(data).unwrap_or_default()
    ))
}

impl Stream {
    /// Reads what changed since the cursor; queues an `alarm` event each, then the counts.
    async fn poll(&mut self) -> crate::error::Result<()> {
        let changed = repo::changed_since(&self.state.db, &self.ctx, self.cursor, 200).await?;
        let fresh: Vec<_> = changed
            .into_iter()
            .filter(|a| !(a.updated_at == self.cursor && self.at_cursor.contains(&a.id)))
            .collect();
        if fresh.is_empty() {
            return Ok(());
        }
        for a in &fresh {
            if a.updated_at > self.cursor {
                self.cursor = a.updated_at;
                self.at_cursor.clear();
            }
            self.at_cursor.push(a.id);
        }
        for alarm in repo::to_api(&self.state.db, &self.ctx, fresh).await? {
            self.pending.push_back(event("alarm", &alarm));
        }
        let counts = repo::counts(&self.state.db, &self.ctx, None, None).await?;
        self.pending.push_back(event("counts", &counts));
        Ok(())
    }

    /// `Err` with a reason when the viewer may no longer see alarms.
    async fn still_allowed(&mut self) -> Result<(), String> {
        let actor = match crate::auth::service::recheck(&self.state, &self.actor).await {
            Ok(actor) => actor,
            Err(crate::error::Error::Unauthenticated { code, .. })
            | Err(crate::error::Error::Forbidden { code, .. }) => return Err(code.to_owned()),
            Err(e) => {
                tracing::warn!(error = %e, "re-checking an alarm stream's access failed");
                return Ok(());
            }
        };
        match (
            actor.tenant_id,
            actor.access.reach(crate::auth::Permission::AlarmsRead),
        ) {
            (Some(tenant), Some(reach)) => {
                self.ctx = crate::auth::TenantCtx::reaching(tenant, reach);
                Ok(())
            }
            _ => Err("permission_denied".to_owned()),
        }
    }
}

#[utoipa::path(
    get,
    path = "/alarms/stream",
    tag = "alarms",
    operation_id = "alarm_stream",
    summary = "Alarm changes as server-sent events (`alarms.read`)",
    description = "Server-sent events: `counts` first (active alarms by severity, an `AlarmCounts`), then for every change an `alarm` event (an `Alarm`) followed by the new `counts`. Access is read again every `STEAD_LIVE_RECHECK_SECS`; when the viewer may no longer see alarms the stream sends `ended` and closes.",
    responses(
        (status = 200, description = "Server-sent events: `counts`, `alarm`, `ended`", body = String, content_type = "text/event-stream"),
        Denied,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn stream(
    state: web::Data<AppState>,
    scope: TenantScope<AlarmsRead>,
) -> ApiResult<HttpResponse> {
    let counts = repo::counts(&state.db, &scope.ctx, None, None).await?;
    let mut recheck = tokio::time::interval(std::time::Duration::from_secs(
        state.config.live_recheck_secs,
    ));
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    recheck.reset();
    let first = Stream {
        state: state.clone(),
        actor: scope.actor,
        ctx: scope.ctx,
        cursor: chrono::Utc::now(),
        at_cursor: Vec::new(),
        pending: std::collections::VecDeque::from([event("counts", &counts)]),
        recheck,
        quiet_since: std::time::Instant::now(),
        ended: false,
    };
    let closing = Box::pin(state.bus.closing());
    let body = futures_util::stream::unfold((first, closing), |(mut s, mut closing)| async move {
        loop {
            if let Some(next) = s.pending.pop_front() {
                s.quiet_since = std::time::Instant::now();
                return Some((Ok::<_, actix_web::Error>(next), (s, closing)));
            }
            if s.ended {
                return None;
            }
            if s.quiet_since.elapsed() >= STREAM_KEEP_ALIVE {
                s.quiet_since = std::time::Instant::now();
                return Some((
                    Ok(web::Bytes::from_static(b": keep-alive\n\n")),
                    (s, closing),
                ));
            }
            tokio::select! {
                _ = &mut closing => return None,
                _ = s.recheck.tick() => {
                    if let Err(reason) = s.still_allowed().await {
                        s.pending.push_back(event("ended", &serde_json::json!({"reason": reason})));
                        s.ended = true;
                    }
                }
                _ = tokio::time::sleep(STREAM_POLL) => {
                    if let Err(e) = s.poll().await {
                        tracing::warn!(error = %e, "reading alarm changes for a stream failed");
                    }
                }
            }
        }
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body))
}

/// Most stored messages one preview reads.
const PREVIEW_MESSAGES: u64 = 50_000;

#[utoipa::path(
    post,
    path = "/alarm-rules/preview",
    tag = "alarms",
    operation_id = "preview_alarm_rule",
    summary = "Run a rule over a device's stored data: when it would have raised, stepped and cleared (`alarms.manage`)",
    request_body = AlarmPreviewRequest,
    responses(
        (status = 200, description = "What the rule would have done, oldest first", body = AlarmPreview),
        JsonBody,
        Denied,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn preview(
    state: web::Data<AppState>,
    scope: TenantScope<AlarmsManage>,
    Json(body): Json<AlarmPreviewRequest>,
) -> ApiResult<web::Json<AlarmPreview>> {
    use crate::error::Error;
    let rule = super::rules::Rule::parse(&body.rule).map_err(|e| match e {
        Error::Invalid {
            code,
            field,
            detail,
        } => Error::Invalid {
            code,
            field: field.map(|f| format!("rule.{f}").into()),
            detail,
        },
        other => other,
    })?;
    let hours = body.hours.unwrap_or(24);
    if !(1..=168).contains(&hours) {
        return Err(Error::invalid("invalid_field", "hours", "between 1 and 168 hours").into());
    }
    let device = crate::ids::DeviceId(body.device_id);
    crate::devices::repo::get(&state.db, &scope.ctx, device)
        .await
        .map_err(|_| {
            Error::invalid(
                "unknown_device",
                "device_id",
                format!("there is no device {} in this tenant", body.device_id),
            )
        })?;
    let to = chrono::Utc::now().timestamp_millis() + 1;
    let from = to - i64::from(hours) * 3_600_000;
    let messages = crate::telemetry::repo::rows(
        &state.db,
        &scope.ctx,
        device,
        from,
        to,
        PREVIEW_MESSAGES + 1,
        true,
    )
    .await?;
    let truncated = messages.len() as u64 > PREVIEW_MESSAGES;
    let messages = &messages[..messages.len().min(PREVIEW_MESSAGES as usize)];
    let attributes = super::engine::attributes_of(&state.db, &scope.ctx, device).await?;
    let (steps, active_at_end) = super::engine::preview(&rule, messages, &attributes);
    Ok(web::Json(AlarmPreview {
        messages: messages.len() as u64,
        truncated,
        steps,
        active_at_end,
    }))
}
