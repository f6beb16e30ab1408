//! The REST API described as an OpenAPI 3.1 document generated from the code: every handler
//! carries its `#[utoipa::path]` (method, path, parameters, body, every status it answers), every
//! wire type of `stead-api-types` its `ToSchema` (that crate's `openapi` feature). Served at
//! `GET /api/v1/openapi.json`, with a reference page at `GET /api/v1/docs` (Swagger UI, embedded
//! in the binary: the page fetches nothing from elsewhere).
//!
//! The error statuses that come from the extractors rather than from a handler's own logic are
//! the response sets below (`Denied`, `NotFound`, `BadQuery`, `JsonBody`), so that a handler's
//! annotation names them instead of repeating them. The e2e test `openapi::` checks that every
//! route of the route table is in the document, and runs schemathesis against the real server.

use std::sync::{Arc, OnceLock};

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use stead_api_types::ApiErrorBody;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, Server};
use utoipa::{IntoResponses, Modify, OpenApi};

use super::ApiError;

/// Where the document is served, and the reference page that reads it.
pub const DOCUMENT_PATH: &str = "/api/v1/openapi.json";
pub const PAGE_PATH: &str = "/api/v1/docs/";

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/openapi.json", web::get().to(document))
        .route("/docs", web::get().to(page_root))
        .route("/docs/{file:.*}", web::get().to(page_file));
}

/// The document, as JSON; generated once.
pub fn json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        ApiDoc::openapi()
            .to_pretty_json()
            .unwrap_or_else(|e| format!(r#"{{"error": "the document did not serialize: {e}"}}"#))
    })
}

#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "reference",
    operation_id = "openapi_document",
    summary = "This document",
    responses((status = 200, description = "This document (OpenAPI 3.1)", content_type = "application/json", body = Object)),
)]
async fn document() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(json())
}

/// `/api/v1/docs` → `/api/v1/docs/`: the page's assets are relative to it.
async fn page_root() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header(("Location", PAGE_PATH))
        .finish()
}

async fn page_file(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let file = req.match_info().get("file").unwrap_or_default();
    // The online validator's badge would call validator.swagger.io: off.
    let config = Arc::new(
        utoipa_swagger_ui::Config::new([DOCUMENT_PATH])
            .validator_url("none")
            .try_it_out_enabled(true)
            .persist_authorization(false)
            .display_operation_id(true)
            .filter(true),
    );
    match utoipa_swagger_ui::serve(file, config) {
        Ok(Some(found)) => Ok(HttpResponse::Ok()
            .content_type(found.content_type)
            .insert_header(("Cache-Control", "no-cache"))
            .body(found.bytes.into_owned())),
        Ok(None) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such file of the API reference page",
        )),
        Err(e) => Err(anyhow::anyhow!("serving the API reference page: {e}").into()),
    }
}

// ---------------------------------------------------------------------------------------------
// The error statuses the extractors answer, as named response sets (for the document only: their
// values are never built, hence `dead_code`).

/// Any route behind a person's access token or an API key (`Authorization: Bearer …`).
#[allow(dead_code)]
#[derive(IntoResponses)]
pub enum Denied {
    /// `missing_token`, `invalid_token`, `token_expired`, a revoked or expired API key, a
    /// session that ended.
    #[response(
        status = 401,
        description = "No token, or one that is invalid, expired or revoked"
    )]
    Unauthenticated(ApiErrorBody),
    /// `permission_denied`, `tenant_required` (a platform admin on a tenant's route),
    /// `two_factor_setup_required`, `person_required` (an API key on a person's own route).
    #[response(
        status = 403,
        description = "Authenticated, but not allowed here: `permission_denied`, `tenant_required`, `two_factor_setup_required`, `person_required`"
    )]
    Forbidden(ApiErrorBody),
    #[response(
        status = 429,
        description = "An API key over its request rate (`too_many_attempts`); retry after `Retry-After` seconds",
        headers(("Retry-After" = u64, description = "Seconds to wait"))
    )]
    Throttled(ApiErrorBody),
}

/// Routes with an object's id in the path.
#[allow(dead_code)]
#[derive(IntoResponses)]
#[response(
    status = 404,
    description = "No such object within the caller's reach (another tenant's is 404 too), or a malformed id"
)]
pub struct NotFound(ApiErrorBody);

/// Routes with query parameters.
#[allow(dead_code)]
#[derive(IntoResponses)]
#[response(
    status = 400,
    description = "A query parameter is malformed or out of range (`invalid_query`, `field` names it)"
)]
pub struct BadQuery(ApiErrorBody);

/// Routes that take a JSON body (`Content-Type: application/json`, a JSON object).
#[allow(dead_code)]
#[derive(IntoResponses)]
pub enum JsonBody {
    /// `invalid_json`, `invalid_body`, `missing_field`, `unknown_field`, `invalid_field`, and the
    /// route's own validation codes.
    #[response(
        status = 400,
        description = "The body is not the JSON object this route takes, or a value is refused (`field` names it)"
    )]
    Invalid(ApiErrorBody),
    #[response(
        status = 413,
        description = "The body is larger than the limit (`payload_too_large`, STEAD_MAX_BODY_BYTES)"
    )]
    TooLarge(ApiErrorBody),
    #[response(
        status = 415,
        description = "The body is not sent as `application/json` (`unsupported_media_type`)"
    )]
    NotJson(ApiErrorBody),
}

// ---------------------------------------------------------------------------------------------
// The document

/// The two ways to authenticate, both as `Authorization: Bearer …`.
struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A person's access token from `POST /auth/login` (or `/auth/refresh`)",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("stead_…")
                    .description(Some(
                        "An API key's secret (`stead_…`, shown once by `POST /api-keys`), for integrations",
                    ))
                    .build(),
            ),
        );
        // Relative: the document describes the server it is fetched from.
        doc.servers = Some(vec![Server::new("/api/v1")]);
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Stead REST API",
        description = "The REST API of Stead, the operations layer for IoT fleets: tenants, people, \
            roles and API keys; devices, their credentials, profiles, groups, attributes, commands \
            and telemetry; imports, the audit log, webhooks and the NATS sink; and the HTTP device \
            API (`/{token}/…`, ThingsBoard-compatible).\n\n\
            Authenticate with `Authorization: Bearer <token>`: a person's access token from \
            `POST /auth/login`, or an API key's `stead_…` secret. Every error answers \
            `{\"code\", \"detail\", \"field\"?}` with a stable snake_case `code`. Listings page \
            with `page` (from 1) and `per_page` (1 to 200). Request bodies reject unknown fields.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    modifiers(&Security),
    tags(
        (name = "auth", description = "Signing in and out, refreshing tokens, password resets, invitation links"),
        (name = "account", description = "The signed-in person's own account: sessions, password, two-factor sign-in"),
        (name = "tenants", description = "Tenants (the platform admin's), and a tenant's usage and sign-in rules"),
        (name = "users", description = "A tenant's people"),
        (name = "invitations", description = "Inviting people by e-mail"),
        (name = "roles", description = "Custom roles and role bindings (tenant-wide or over device groups)"),
        (name = "api-keys", description = "API keys for integrations"),
        (name = "devices", description = "Devices and their credentials"),
        (name = "imports", description = "CSV imports and bulk actions on devices"),
        (name = "profiles", description = "Device profiles: provisioning, inactivity timeout, rate limits"),
        (name = "groups", description = "Device groups"),
        (name = "attributes", description = "Client, shared and server attributes of devices"),
        (name = "commands", description = "Commands (RPC) to devices"),
        (name = "telemetry", description = "Telemetry, presence, the timeline and the live stream of a device"),
        (name = "audit", description = "The tenant's audit log"),
        (name = "alarms", description = "Alarm rules on profiles and devices, the alarms they raise, and acknowledging, clearing, assigning and commenting on them"),
        (name = "ota", description = "Over-the-air updates: firmware and software packages, signing keys, campaigns"),
        (name = "integrations", description = "The event catalogue, webhooks with their deliveries, the NATS JetStream sink"),
        (name = "device-api", description = "The HTTP device API: the device's access token in the path, no Authorization header"),
        (name = "reference", description = "This document"),
    ),
    paths(
        document,
        crate::auth::http::login,
        crate::auth::http::refresh,
        crate::auth::http::logout,
        crate::auth::http::request_reset,
        crate::auth::http::confirm_reset,
        crate::auth::http::me,
        crate::auth::http::change_password,
        crate::auth::http::sessions,
        crate::auth::http::end_session,
        crate::auth::http::two_factor_setup,
        crate::auth::http::two_factor_enable,
        crate::auth::http::two_factor_disable,
        crate::auth::http::two_factor_recovery_codes,
        crate::invitations::http::preview,
        crate::invitations::http::accept,
        crate::invitations::http::list,
        crate::invitations::http::create,
        crate::invitations::http::get,
        crate::invitations::http::revoke,
        crate::invitations::http::resend,
        crate::tenants::http::all_usage,
        crate::tenants::http::usage,
        crate::tenants::http::security,
        crate::tenants::http::set_security,
        crate::tenants::http::list,
        crate::tenants::http::create,
        crate::tenants::http::get,
        crate::tenants::http::update,
        crate::users::http::list,
        crate::users::http::create,
        crate::users::http::get,
        crate::users::http::update,
        crate::users::http::reset_two_factor,
        crate::roles::http::list,
        crate::roles::http::create,
        crate::roles::http::get,
        crate::roles::http::update,
        crate::roles::http::delete,
        crate::roles::http::bindings,
        crate::roles::http::set_bindings,
        crate::apikeys::http::list,
        crate::apikeys::http::create,
        crate::apikeys::http::get,
        crate::apikeys::http::revoke,
        crate::devices::http::list,
        crate::devices::http::sub_devices,
        crate::devices::http::create,
        crate::devices::http::expiring,
        crate::devices::http::get,
        crate::devices::http::update,
        crate::devices::http::delete,
        crate::devices::http::set_credentials,
        crate::devices::http::rotate,
        crate::devices::http::revoke,
        crate::devices::http::disable,
        crate::devices::http::enable,
        crate::imports::http::import,
        crate::imports::http::bulk,
        crate::imports::http::list,
        crate::imports::http::get,
        crate::imports::http::credentials,
        crate::profiles::http::list,
        crate::profiles::http::create,
        crate::profiles::http::get,
        crate::profiles::http::update,
        crate::profiles::http::delete,
        crate::groups::http::list,
        crate::groups::http::create,
        crate::groups::http::get,
        crate::groups::http::update,
        crate::groups::http::delete,
        crate::groups::http::add,
        crate::groups::http::remove,
        crate::groups::http::of_device,
        crate::attributes::http::list,
        crate::attributes::http::set,
        crate::attributes::http::delete,
        crate::attributes::http::set_group,
        crate::rpc::http::send,
        crate::rpc::http::history,
        crate::rpc::http::get,
        crate::telemetry::http::latest,
        crate::telemetry::http::aggregate,
        crate::telemetry::http::csv,
        crate::telemetry::http::series,
        crate::telemetry::http::presence,
        crate::telemetry::http::timeline,
        crate::telemetry::http::live,
        crate::telemetry::http::connection_info,
        crate::audit::http::list,
        crate::audit::http::export,
        crate::webhooks::http::event_types,
        crate::webhooks::http::list,
        crate::webhooks::http::create,
        crate::webhooks::http::get,
        crate::webhooks::http::update,
        crate::webhooks::http::delete,
        crate::webhooks::http::secret,
        crate::webhooks::http::rotate,
        crate::webhooks::http::test,
        crate::webhooks::http::replay_since,
        crate::webhooks::http::deliveries,
        crate::webhooks::http::delivery,
        crate::webhooks::http::replay_delivery,
        crate::webhooks::http::nats,
        crate::webhooks::http::platform_nats,
        crate::webhooks::http::platform_set_nats,
        crate::alarms::http::list,
        crate::alarms::http::counts,
        crate::alarms::http::get,
        crate::alarms::http::act,
        crate::alarms::http::bulk,
        crate::alarms::http::stream,
        crate::alarms::http::list_rules,
        crate::alarms::http::create_rule,
        crate::alarms::http::preview,
        crate::alarms::http::get_rule,
        crate::alarms::http::update_rule,
        crate::alarms::http::delete_rule,
        crate::fleet::http::health,
        crate::notifications::http::list_rules,
        crate::notifications::http::create_rule,
        crate::notifications::http::get_rule,
        crate::notifications::http::update_rule,
        crate::notifications::http::delete_rule,
        crate::notifications::http::list_silences,
        crate::notifications::http::create_silence,
        crate::notifications::http::end_silence,
        crate::notifications::http::mine,
        crate::notifications::http::read_one,
        crate::notifications::http::read_all,
        crate::ota::http::list,
        crate::ota::http::upload,
        crate::ota::http::get,
        crate::ota::http::delete,
        crate::ota::http::image,
        crate::ota::http::list_keys,
        crate::ota::http::create_key,
        crate::ota::http::delete_key,
        crate::ota::http::versions,
        crate::ota::http::targets,
        crate::ota::http::assign,
        crate::ota::http::unassign,
        crate::campaigns::http::list,
        crate::campaigns::http::create,
        crate::campaigns::http::target_count,
        crate::campaigns::http::get,
        crate::campaigns::http::delete,
        crate::campaigns::http::devices,
        crate::campaigns::http::progress,
        crate::campaigns::http::start,
        crate::campaigns::http::pause,
        crate::campaigns::http::resume,
        crate::campaigns::http::cancel,
        crate::devices::device_api::provision,
        crate::devices::device_api::telemetry,
        crate::devices::device_api::post_attributes,
        crate::devices::device_api::get_attributes,
        crate::devices::device_api::poll_rpc,
        crate::devices::device_api::answer_rpc,
        crate::devices::device_api::firmware,
        crate::devices::device_api::software,
    ),
    // `LiveEvent`: the `data:` of the live stream's events (the path documents it as text).
    components(schemas(ApiErrorBody, stead_api_types::LiveEvent)),
)]
pub struct ApiDoc;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_openapi_3_1_with_unique_operation_ids() {
        let doc: serde_json::Value = serde_json::from_str(json()).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(doc["servers"][0]["url"], "/api/v1");
        let mut ids = std::collections::BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let id = op["operationId"].as_str().unwrap_or_default().to_owned();
                assert!(
                    ids.insert(id.clone()),
                    "{method} {path}: operationId {id} twice"
                );
                assert!(
                    op["tags"].as_array().is_some_and(|t| !t.is_empty()),
                    "{method} {path}: no tag"
                );
            }
        }
    }
}
