//! `/api/v1/webhooks`, `/api/v1/events/types`, `/api/v1/integrations/nats` and the platform
//! admin's `/api/v1/tenants/{id}/nats-sink`.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use stead_api_types::{
    CreateWebhook, DeliveryStatus, EventType, NatsSink, ReplayWebhook, Replayed,
    RotateWebhookSecret, SetNatsSink, UpdateWebhook, WebhookDelivery, WebhookDeliveryDetail,
    WebhookDeliveryPage, WebhookEndpoint, WebhookSecret,
};
use uuid::Uuid;

use super::{repo, service};
use crate::app::AppState;
use crate::auth::perm::{TenantsManage, WebhooksManage};
use crate::error::Error;
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
async fn event_types(_scope: TenantScope<WebhooksManage>) -> web::Json<serde_json::Value> {
    web::Json(serde_json::Value::Array(
        EventType::ALL
            .into_iter()
            .map(|t| serde_json::json!({"type": t, "label": t.label()}))
            .collect(),
    ))
}

async fn list(
    state: web::Data<AppState>,
    scope: TenantScope<WebhooksManage>,
) -> ApiResult<web::Json<Vec<WebhookEndpoint>>> {
    Ok(web::Json(repo::list(&state.db, &scope.ctx).await?))
}

async fn create(
    state: web::Data<AppState>,
    scope: TenantScope<WebhooksManage>,
    Json(body): Json<CreateWebhook>,
) -> ApiResult<HttpResponse> {
    let created = service::create(&state, &scope.ctx, &scope.actor, body).await?;
    Ok(HttpResponse::Created().json(created))
}

async fn get(
    state: web::Data<AppState>,
    scope: TenantScope<WebhooksManage>,
    id: web::Path<Uuid>,
) -> ApiResult<web::Json<WebhookEndpoint>> {
    Ok(web::Json(repo::api_of(&state.db, &scope.ctx, *id).await?))
}

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

async fn delete(
    state: web::Data<AppState>,
    scope: TenantScope<WebhooksManage>,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    service::delete(&state, &scope.ctx, &scope.actor, *id).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn secret(
    state: web::Data<AppState>,
    scope: TenantScope<WebhooksManage>,
    id: web::Path<Uuid>,
) -> ApiResult<web::Json<WebhookSecret>> {
    Ok(web::Json(service::secret(&state, &scope.ctx, *id).await?))
}

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

async fn test(
    state: web::Data<AppState>,
    scope: TenantScope<WebhooksManage>,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let d = service::test(&state, &scope.ctx, &scope.actor, *id).await?;
    Ok(HttpResponse::Accepted().json(d))
}

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeliveryQuery {
    status: Option<String>,
    page: Option<u64>,
    per_page: Option<u64>,
}

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

async fn delivery(
    state: web::Data<AppState>,
    scope: TenantScope<WebhooksManage>,
    path: web::Path<(Uuid, Uuid)>,
) -> ApiResult<web::Json<WebhookDeliveryDetail>> {
    let (endpoint, id) = path.into_inner();
    let ep = repo::get(&state.db, &scope.ctx, endpoint).await?;
    let d = repo::delivery(&state.db, &scope.ctx, endpoint, id).await?;
    let request = match repo::event(&state.db, &scope.ctx, d.event_seq).await {
        Ok(ev) => super::deliver::body_of(&ev, repo::format_of(&ep.format), None),
        Err(_) => serde_json::Value::Null,
    };
    let attempts = repo::attempts(&state.db, &scope.ctx, id).await?;
    Ok(web::Json(WebhookDeliveryDetail {
        delivery: repo::delivery_to_api(d),
        request,
        attempts,
    }))
}

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

async fn nats(
    state: web::Data<AppState>,
    scope: TenantScope<WebhooksManage>,
) -> ApiResult<web::Json<NatsSink>> {
    Ok(web::Json(service::nats_sink(&state, &scope.ctx).await?))
}

async fn platform_nats(
    state: web::Data<AppState>,
    scope: PlatformScope<TenantsManage>,
    id: web::Path<Uuid>,
) -> ApiResult<web::Json<NatsSink>> {
    let ctx = scope.tenant(&state.db, *id).await?;
    Ok(web::Json(service::nats_sink(&state, &ctx).await?))
}

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
