//! `/api/v1/ota/campaigns`: campaigns made (`ota.manage`), started (`ota.approve`), steered
//! and read (`ota.read`).

use actix_web::{HttpResponse, web};
use stead_api_types::{
    Campaign, CampaignAction, CampaignDevice, CampaignDeviceQuery, CampaignProgress, CampaignQuery,
    CampaignSpec, CampaignTarget, Page, TargetCount,
};
use uuid::Uuid;

use super::service;
use crate::app::AppState;
use crate::auth::perm::{OtaApprove, OtaManage, OtaRead};
use crate::http::openapi::{BadQuery, Denied, JsonBody, NotFound};
use crate::http::{ApiResult, Json, TenantScope};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/ota/campaigns", web::get().to(list))
        .route("/ota/campaigns", web::post().to(create))
        .route("/ota/campaigns/target-count", web::post().to(target_count))
        .route("/ota/campaigns/{id}", web::get().to(get))
        .route("/ota/campaigns/{id}", web::delete().to(delete))
        .route("/ota/campaigns/{id}/devices", web::get().to(devices))
        .route("/ota/campaigns/{id}/progress", web::get().to(progress))
        .route("/ota/campaigns/{id}/start", web::post().to(start))
        .route("/ota/campaigns/{id}/pause", web::post().to(pause))
        .route("/ota/campaigns/{id}/resume", web::post().to(resume))
        .route("/ota/campaigns/{id}/cancel", web::post().to(cancel));
}

#[utoipa::path(
    get,
    path = "/ota/campaigns",
    tag = "ota",
    operation_id = "list_campaigns",
    summary = "The tenant's campaigns, newest first (`ota.read`)",
    params(CampaignQuery),
    responses((status = 200, description = "A page of campaigns with their devices per state", body = Page<Campaign>), Denied, BadQuery),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn list(
    state: web::Data<AppState>,
    scope: TenantScope<OtaRead>,
    query: web::Query<CampaignQuery>,
) -> ApiResult<web::Json<Page<Campaign>>> {
    let q = query.into_inner();
    let (page, per_page) = crate::http::paging(q.page, q.per_page)?;
    Ok(web::Json(
        service::list(&state, &scope.ctx, &q, page, per_page).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/ota/campaigns",
    tag = "ota",
    operation_id = "create_campaign",
    summary = "Make a campaign, as a draft (`ota.manage`)",
    description = "A package, a target (groups, a profile, devices; a snapshot or dynamic), a start time and maintenance window, a rollout (waves or a rate) under a cap on updates in flight, a gate between waves, a health watch, an auto-stop and retries. Someone with `ota.approve` starts it.",
    request_body = CampaignSpec,
    responses(
        (status = 201, description = "The draft", body = Campaign),
        JsonBody,
        Denied,
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn create(
    state: web::Data<AppState>,
    scope: TenantScope<OtaManage>,
    Json(body): Json<CampaignSpec>,
) -> ApiResult<HttpResponse> {
    let c = service::create(&state, &scope.ctx, &scope.actor, body).await?;
    Ok(HttpResponse::Created().json(c))
}

#[utoipa::path(
    post,
    path = "/ota/campaigns/target-count",
    tag = "ota",
    operation_id = "campaign_target_count",
    summary = "How many devices a target matches now (`ota.manage`)",
    request_body = CampaignTarget,
    responses((status = 200, description = "The count", body = TargetCount), JsonBody, Denied),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn target_count(
    state: web::Data<AppState>,
    scope: TenantScope<OtaManage>,
    Json(body): Json<CampaignTarget>,
) -> ApiResult<web::Json<TargetCount>> {
    Ok(web::Json(TargetCount {
        devices: service::target_count(&state, &scope.ctx, &body).await?,
    }))
}

#[utoipa::path(
    get,
    path = "/ota/campaigns/{id}",
    tag = "ota",
    operation_id = "get_campaign",
    summary = "One campaign with its devices per state (`ota.read`)",
    params(("id" = Uuid, Path, description = "The campaign")),
    responses((status = 200, description = "The campaign", body = Campaign), Denied, NotFound),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn get(
    state: web::Data<AppState>,
    scope: TenantScope<OtaRead>,
    id: web::Path<Uuid>,
) -> ApiResult<web::Json<Campaign>> {
    Ok(web::Json(service::get(&state, &scope.ctx, *id).await?))
}

#[utoipa::path(
    delete,
    path = "/ota/campaigns/{id}",
    tag = "ota",
    operation_id = "delete_campaign",
    summary = "Delete a draft, or a campaign that is over (`ota.manage`)",
    params(("id" = Uuid, Path, description = "The campaign")),
    responses(
        (status = 204, description = "Deleted with its record"),
        Denied,
        NotFound,
        (status = 409, description = "Still running or paused (`wrong_status`)", body = stead_api_types::ApiErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn delete(
    state: web::Data<AppState>,
    scope: TenantScope<OtaManage>,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    service::delete(&state, &scope.ctx, &scope.actor, *id).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    get,
    path = "/ota/campaigns/{id}/devices",
    tag = "ota",
    operation_id = "campaign_devices",
    summary = "A campaign's devices with their execution state, reason and steps (`ota.read`)",
    params(("id" = Uuid, Path, description = "The campaign"), CampaignDeviceQuery),
    responses((status = 200, description = "A page of devices in rollout order", body = Page<CampaignDevice>), Denied, NotFound, BadQuery),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn devices(
    state: web::Data<AppState>,
    scope: TenantScope<OtaRead>,
    id: web::Path<Uuid>,
    query: web::Query<CampaignDeviceQuery>,
) -> ApiResult<web::Json<Page<CampaignDevice>>> {
    let q = query.into_inner();
    let (page, per_page) = crate::http::paging(q.page, q.per_page)?;
    Ok(web::Json(
        service::devices(&state, &scope.ctx, *id, &q, page, per_page).await?,
    ))
}

#[utoipa::path(
    get,
    path = "/ota/campaigns/{id}/progress",
    tag = "ota",
    operation_id = "campaign_progress",
    summary = "A campaign's devices per state over time, one point a minute (`ota.read`)",
    params(("id" = Uuid, Path, description = "The campaign")),
    responses((status = 200, description = "Oldest first", body = Vec<CampaignProgress>), Denied, NotFound),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn progress(
    state: web::Data<AppState>,
    scope: TenantScope<OtaRead>,
    id: web::Path<Uuid>,
) -> ApiResult<web::Json<Vec<CampaignProgress>>> {
    Ok(web::Json(service::progress(&state, &scope.ctx, *id).await?))
}

#[utoipa::path(
    post,
    path = "/ota/campaigns/{id}/start",
    tag = "ota",
    operation_id = "start_campaign",
    summary = "Approve and start a draft (`ota.approve`; with four eyes, not by its author)",
    params(("id" = Uuid, Path, description = "The campaign")),
    responses(
        (status = 200, description = "Running (it waits for its start time)", body = Campaign),
        Denied,
        NotFound,
        (status = 409, description = "Not a draft (`wrong_status`)", body = stead_api_types::ApiErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn start(
    state: web::Data<AppState>,
    scope: TenantScope<OtaApprove>,
    id: web::Path<Uuid>,
) -> ApiResult<web::Json<Campaign>> {
    Ok(web::Json(
        service::start(&state, &scope.ctx, &scope.actor, *id).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/ota/campaigns/{id}/pause",
    tag = "ota",
    operation_id = "pause_campaign",
    summary = "Pause a running campaign: no new devices are notified (`ota.manage`)",
    params(("id" = Uuid, Path, description = "The campaign")),
    request_body = CampaignAction,
    responses(
        (status = 200, description = "Paused", body = Campaign),
        JsonBody,
        Denied,
        NotFound,
        (status = 409, description = "Not running (`wrong_status`)", body = stead_api_types::ApiErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn pause(
    state: web::Data<AppState>,
    scope: TenantScope<OtaManage>,
    id: web::Path<Uuid>,
    Json(body): Json<CampaignAction>,
) -> ApiResult<web::Json<Campaign>> {
    Ok(web::Json(
        service::pause(&state, &scope.ctx, &scope.actor, *id, body).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/ota/campaigns/{id}/resume",
    tag = "ota",
    operation_id = "resume_campaign",
    summary = "Resume a paused campaign (`ota.manage`)",
    params(("id" = Uuid, Path, description = "The campaign")),
    responses(
        (status = 200, description = "Running again", body = Campaign),
        Denied,
        NotFound,
        (status = 409, description = "Not paused (`wrong_status`)", body = stead_api_types::ApiErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn resume(
    state: web::Data<AppState>,
    scope: TenantScope<OtaManage>,
    id: web::Path<Uuid>,
) -> ApiResult<web::Json<Campaign>> {
    Ok(web::Json(
        service::resume(&state, &scope.ctx, &scope.actor, *id).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/ota/campaigns/{id}/cancel",
    tag = "ota",
    operation_id = "cancel_campaign",
    summary = "Cancel a campaign: waiting devices are canceled, updates under way withdrawn (`ota.manage`)",
    params(("id" = Uuid, Path, description = "The campaign")),
    request_body = CampaignAction,
    responses(
        (status = 200, description = "Canceled", body = Campaign),
        JsonBody,
        Denied,
        NotFound,
        (status = 409, description = "Already over (`wrong_status`)", body = stead_api_types::ApiErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
async fn cancel(
    state: web::Data<AppState>,
    scope: TenantScope<OtaManage>,
    id: web::Path<Uuid>,
    Json(body): Json<CampaignAction>,
) -> ApiResult<web::Json<Campaign>> {
    Ok(web::Json(
        service::cancel(&state, &scope.ctx, &scope.actor, *id, body).await?,
    ))
}
