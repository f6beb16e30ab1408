//! `/api/v1/webhooks`, `/api/v1/events/types`, `/api/v1/integrations/nats` and the platform
//! admin's `/api/v1/tenants/{id}/nats-sink`.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use stead_api_types::{
    ApiErrorBody, CreateWebhook, CreatedWebhook, DeliveryStatus, EventType, EventTypeInfo,
    NatsSink, ReplayWebhook, Replayed, RotateWebhookSecret, SetNatsSink, UpdateWebhook,
    WebhookDelivery, WebhookDeliveryDetail, WebhookDeliveryPage, WebhookEndpoint, WebhookSecret,
};
use uuid::Uuid;

use super::{repo, service};
use crate::app::AppState;
use crate::auth::perm::{TenantsManage, WebhooksManage};
use crate::error::Error;
use crate::http::openapi::{BadQuery, Denied, JsonBody, NotFound};
use crate::http::{ApiResult, Json, PlatformScope, TenantScope};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/events/types", web::get().to(event_types))
        .route("/webhooks", web::get().to(list))
        .route("/webhooks", web::post().to(create))
        .route("/webhooks/{id}", web::get().to(get))
        .route("/webhooks/{id}", web::patch().to(update))
        .route("/webhooks/{id}", web::delete().to(delete))
        .route("/webhooks/{id}/secret", web::get().to(secret))
        .route("/webhooks/{id}/rotate-secret", web::post().to(rotate))
        .route("/webhooks/{id}/test", web::post().to(test))
        .route("/webhooks/{id}/replay", web::post().to(replay_since))
        .route("/webhooks/{id}/deliveries", web::get().to(deliveries))
        .route(
            "/webhooks/{id}/deliveries/{delivery}",
            web::get().to(delivery),
        )
        .route(
            "/webhooks/{id}/deliveries/{delivery}/replay",
            web::post().to(replay_delivery),
        )
        .route("/integrations/nats", web::get().to(nats))
        .route("/tenants/{id}/nats-sink", web::get().to(platform_nats))
        .route("/tenants/{id}/nats-sink", web::put().to(platform_set_nats));
}

/// The event catalogue: every type with what it means.
#[utoipa::path(
    get,
    path = "/events/types",
    tag = "integrations",
    operation_id = "event_types",
    summary = "The event catalogue (`webhooks.manage`)",
    description = "The event catalogue: every type with what it means.",
    responses(
        (status = 200, description = "Every event type, with what it means", body = Vec<EventTypeInfo>),
        Denied,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn event_types(_scope: TenantScope<WebhooksManage>) -> web::Json<Vec<EventTypeInfo>> {
    web::Json(
        EventType::ALL
            .into_iter()
            .map(|t| EventTypeInfo {
                event_type: t,
                label: t.label().to_owned(),
            })
            .collect(),
    )
}

#[utoipa::path(
    get,
    path = "/webhooks",
    tag = "integrations",
    operation_id = "list_webhooks",
    summary = "List webhook endpoints (`webhooks.manage`)",
    responses(
        (status = 200, description = "The tenant's webhook endpoints", body = Vec<WebhookEndpoint>),
        Denied,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn list(
    state: web::Data<AppState>,
    scope: TenantScope<WebhooksManage>,
) -> ApiResult<web::Json<Vec<WebhookEndpoint>>> {
    Ok(web::Json(repo::list(&state.db, &scope.ctx).await?))
}

#[utoipa::path(
    post,
    path = "/webhooks",
    tag = "integrations",
    operation_id = "create_webhook",
    summary = "Create a webhook endpoint (`webhooks.manage`)",
    request_body = CreateWebhook,
    responses(
        (status = 201, description = "Created, with its signing secret", body = CreatedWebhook),
        JsonBody,
        Denied,
        (status = 409, description = "The tenant has as many endpoints as it may (`quota_exceeded`)", body = ApiErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn create(
    state: web::Data<AppState>,
    scope: TenantScope<WebhooksManage>,
    Json(body): Json<CreateWebhook>,
) -> ApiResult<HttpResponse> {
    let created = service::create(&state, &scope.ctx, &scope.actor, body).await?;
    Ok(HttpResponse::Created().json(created))
}

#[utoipa::path(
    get,
    path = "/webhooks/{id}",
    tag = "integrations",
    operation_id = "get_webhook",
    summary = "Get a webhook endpoint (`webhooks.manage`)",
    params(("id" = Uuid, Path, description = "The webhook endpoint")),
    responses(
        (status = 200, description = "The endpoint", body = WebhookEndpoint),
        Denied,
        NotFound,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn get(
    state: web::Data<AppState>,
    scope: TenantScope<WebhooksManage>,
    id: web::Path<Uuid>,
) -> ApiResult<web::Json<WebhookEndpoint>> {
    Ok(web::Json(repo::api_of(&state.db, &scope.ctx, *id).await?))
}

#[utoipa::path(
    patch,
    path = "/webhooks/{id}",
    tag = "integrations",
    operation_id = "update_webhook",
    summary = "Change a webhook endpoint (`webhooks.manage`)",
    params(("id" = Uuid, Path, description = "The webhook endpoint")),
    request_body = UpdateWebhook,
    responses(
        (status = 200, description = "The endpoint, changed", body = WebhookEndpoint),
        JsonBody,
        Denied,
        NotFound,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn update(
    state: web::Data<AppState>,
    scope: TenantScope<WebhooksManage>,
    id: web::Path<Uuid>,
    Json(body): Json<UpdateWebhook>,
) -> ApiResult<web::Json<WebhookEndpoint>> {
    Ok(web::Json(
        service::update(&state, &scope.ctx, &scope.actor, *id, body).await?,
    ))
}

#[utoipa::path(
    delete,
    path = "/webhooks/{id}",
    tag = "integrations",
    operation_id = "delete_webhook",
    summary = "Delete a webhook endpoint (`webhooks.manage`)",
    params(("id" = Uuid, Path, description = "The webhook endpoint")),
    responses(
        (status = 204, description = "Deleted, with its pending deliveries"),
        Denied,
        NotFound,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn delete(
    state: web::Data<AppState>,
    scope: TenantScope<WebhooksManage>,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    service::delete(&state, &scope.ctx, &scope.actor, *id).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    get,
    path = "/webhooks/{id}/secret",
    tag = "integrations",
    operation_id = "webhook_secret",
    summary = "A webhook endpoint's signing secret (`webhooks.manage`)",
    params(("id" = Uuid, Path, description = "The webhook endpoint")),
    responses(
        (status = 200, description = "The signing secret (and the previous one during a rotation)", body = WebhookSecret),
        Denied,
        NotFound,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn secret(
    state: web::Data<AppState>,
    scope: TenantScope<WebhooksManage>,
    id: web::Path<Uuid>,
) -> ApiResult<web::Json<WebhookSecret>> {
    Ok(web::Json(service::secret(&state, &scope.ctx, *id).await?))
}

#[utoipa::path(
    post,
    path = "/webhooks/{id}/rotate-secret",
    tag = "integrations",
    operation_id = "rotate_webhook_secret",
    summary = "Rotate a webhook endpoint's signing secret (`webhooks.manage`)",
    params(("id" = Uuid, Path, description = "The webhook endpoint")),
    request_body = RotateWebhookSecret,
    responses(
        (status = 200, description = "The new secret; the previous one keeps signing for the overlap", body = WebhookSecret),
        JsonBody,
        Denied,
        NotFound,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn rotate(
    state: web::Data<AppState>,
    scope: TenantScope<WebhooksManage>,
    id: web::Path<Uuid>,
    Json(body): Json<RotateWebhookSecret>,
) -> ApiResult<web::Json<WebhookSecret>> {
    Ok(web::Json(
        service::rotate(&state, &scope.ctx, &scope.actor, *id, body).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/webhooks/{id}/test",
    tag = "integrations",
    operation_id = "test_webhook",
    summary = "Send a test event to an endpoint (`webhooks.manage`)",
    params(("id" = Uuid, Path, description = "The webhook endpoint")),
    responses(
        (status = 202, description = "A `webhook.test` event, queued to this endpoint only", body = WebhookDelivery),
        Denied,
        NotFound,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn test(
    state: web::Data<AppState>,
    scope: TenantScope<WebhooksManage>,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let d = service::test(&state, &scope.ctx, &scope.actor, *id).await?;
    Ok(HttpResponse::Accepted().json(d))
}

#[utoipa::path(
    post,
    path = "/webhooks/{id}/replay",
    tag = "integrations",
    operation_id = "replay_webhook",
    summary = "Replay events since a time to an endpoint (`webhooks.manage`)",
    params(("id" = Uuid, Path, description = "The webhook endpoint")),
    request_body = ReplayWebhook,
    responses(
        (status = 202, description = "Every event since the time, queued to this endpoint again", body = Replayed),
        JsonBody,
        Denied,
        NotFound,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn replay_since(
    state: web::Data<AppState>,
    scope: TenantScope<WebhooksManage>,
    id: web::Path<Uuid>,
    Json(body): Json<ReplayWebhook>,
) -> ApiResult<HttpResponse> {
    let replayed: Replayed =
        service::replay_since(&state, &scope.ctx, &scope.actor, *id, body.since).await?;
    Ok(HttpResponse::Accepted().json(replayed))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct DeliveryQuery {
    /// `pending`, `succeeded` or `failed`; all when absent or empty.
    #[param(pattern = "^(pending|succeeded|failed)?$")]
    status: Option<String>,
    #[param(minimum = 1)]
    page: Option<u64>,
    #[param(minimum = 1, maximum = 200)]
    per_page: Option<u64>,
}

#[utoipa::path(
    get,
    path = "/webhooks/{id}/deliveries",
    tag = "integrations",
    operation_id = "list_webhook_deliveries",
    summary = "A webhook endpoint's deliveries (`webhooks.manage`)",
    params(("id" = Uuid, Path, description = "The webhook endpoint"), DeliveryQuery),
    responses(
        (status = 200, description = "A page of the endpoint's deliveries, newest first", body = WebhookDeliveryPage),
        Denied,
        NotFound,
        BadQuery,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn deliveries(
    state: web::Data<AppState>,
    scope: TenantScope<WebhooksManage>,
    id: web::Path<Uuid>,
    query: web::Query<DeliveryQuery>,
) -> ApiResult<web::Json<WebhookDeliveryPage>> {
    let query = query.into_inner();
    let (page, per_page) = crate::http::paging(query.page, query.per_page)?;
    let status = match query.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(DeliveryStatus::parse(s).ok_or_else(|| {
            Error::invalid(
                "invalid_query",
                "status",
                "status is pending, succeeded or failed",
            )
        })?),
    };
    repo::get(&state.db, &scope.ctx, *id).await?;
    let (items, total) =
        repo::deliveries(&state.db, &scope.ctx, *id, status, page, per_page).await?;
    Ok(web::Json(WebhookDeliveryPage {
        items,
        total,
        page,
        per_page,
    }))
}

#[utoipa::path(
    get,
    path = "/webhooks/{id}/deliveries/{delivery}",
    tag = "integrations",
    operation_id = "get_webhook_delivery",
    summary = "Get a delivery with its attempts (`webhooks.manage`)",
    params(("id" = Uuid, Path, description = "The webhook endpoint"), ("delivery" = Uuid, Path, description = "The delivery")),
    responses(
        (status = 200, description = "The delivery, the request it sends and every attempt", body = WebhookDeliveryDetail),
        Denied,
        NotFound,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn delivery(
    state: web::Data<AppState>,
    scope: TenantScope<WebhooksManage>,
    path: web::Path<(Uuid, Uuid)>,
) -> ApiResult<web::Json<WebhookDeliveryDetail>> {
    let (endpoint, id) = path.into_inner();
    let ep = repo::get(&state.db, &scope.ctx, endpoint).await?;
    let d = repo::delivery(&state.db, &scope.ctx, endpoint, id).await?;
    let request = match repo::event(&state.db, &scope.ctx, d.event_seq).await {
        Ok(ev) => super::deliver::body_of(ev, repo::format_of(&ep.format), None),
        Err(_) => serde_json::Value::Null,
    };
    let attempts = repo::attempts(&state.db, &scope.ctx, id).await?;
    Ok(web::Json(WebhookDeliveryDetail {
        delivery: repo::delivery_to_api(d),
        request,
        attempts,
    }))
}

#[utoipa::path(
    post,
    path = "/webhooks/{id}/deliveries/{delivery}/replay",
    tag = "integrations",
    operation_id = "replay_webhook_delivery",
    summary = "Replay one delivery (`webhooks.manage`)",
    params(("id" = Uuid, Path, description = "The webhook endpoint"), ("delivery" = Uuid, Path, description = "The delivery")),
    responses(
        (status = 202, description = "The event, queued to this endpoint again", body = WebhookDelivery),
        Denied,
        NotFound,
        (status = 410, description = "The event is no longer kept (`event_expired`)", body = ApiErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn replay_delivery(
    state: web::Data<AppState>,
    scope: TenantScope<WebhooksManage>,
    path: web::Path<(Uuid, Uuid)>,
) -> ApiResult<HttpResponse> {
    let (endpoint, id) = path.into_inner();
    let d: WebhookDelivery =
        service::replay_delivery(&state, &scope.ctx, &scope.actor, endpoint, id).await?;
    Ok(HttpResponse::Accepted().json(d))
}

#[utoipa::path(
    get,
    path = "/integrations/nats",
    tag = "integrations",
    operation_id = "nats_sink",
    summary = "The tenant's NATS sink (`webhooks.manage`)",
    responses(
        (status = 200, description = "The tenant's NATS JetStream sink, as the platform admin set it", body = NatsSink),
        Denied,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn nats(
    state: web::Data<AppState>,
    scope: TenantScope<WebhooksManage>,
) -> ApiResult<web::Json<NatsSink>> {
    Ok(web::Json(service::nats_sink(&state, &scope.ctx).await?))
}

#[utoipa::path(
    get,
    path = "/tenants/{id}/nats-sink",
    tag = "integrations",
    operation_id = "get_tenant_nats_sink",
    summary = "A tenant's NATS sink (`tenants.manage`)",
    params(("id" = Uuid, Path, description = "The tenant")),
    responses(
        (status = 200, description = "A tenant's NATS JetStream sink (platform admin)", body = NatsSink),
        Denied,
        NotFound,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn platform_nats(
    state: web::Data<AppState>,
    scope: PlatformScope<TenantsManage>,
    id: web::Path<Uuid>,
) -> ApiResult<web::Json<NatsSink>> {
    let ctx = scope.tenant(&state.db, *id).await?;
    Ok(web::Json(service::nats_sink(&state, &ctx).await?))
}

#[utoipa::path(
    put,
    path = "/tenants/{id}/nats-sink",
    tag = "integrations",
    operation_id = "set_tenant_nats_sink",
    summary = "Set a tenant's NATS sink (`tenants.manage`)",
    params(("id" = Uuid, Path, description = "The tenant")),
    request_body = SetNatsSink,
    responses(
        (status = 200, description = "The sink, set", body = NatsSink),
        JsonBody,
        Denied,
        NotFound,
        (status = 409, description = "This platform has no NATS server (`nats_not_configured`)", body = ApiErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn platform_set_nats(
    state: web::Data<AppState>,
    scope: PlatformScope<TenantsManage>,
    id: web::Path<Uuid>,
    Json(body): Json<SetNatsSink>,
) -> ApiResult<web::Json<NatsSink>> {
    let ctx = scope.tenant(&state.db, *id).await?;
    Ok(web::Json(
        service::set_nats_sink(&state, &ctx, &scope.actor, body).await?,
    ))
}
