//! The HTTP edge: the route table, extractors, the one error type, metrics, health and the
//! console's static files.

mod console;
mod error;
mod extract;
mod health;
mod metrics;
pub mod openapi;

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{App, HttpRequest, HttpServer, web};

pub use console::Console;
pub use error::{ApiError, ApiResult};
pub use extract::{
    Authenticated, Body, BodyUpTo, ClientIp, DeviceScope, Json, Person, PlatformScope, TenantScope,
    TrustedProxies, decode,
};

use crate::app::AppState;

/// The public REST API under `/api/v1`, one line per domain.
fn api(cfg: &mut web::ServiceConfig) {
    cfg.configure(crate::auth::http::routes)
        .configure(crate::tenants::http::routes)
        .configure(crate::users::http::routes)
        // Before the devices': `/devices/{id}` would take `/devices/import` and `/devices/bulk`.
        .configure(crate::imports::http::routes)
        .configure(crate::devices::http::routes)
        .configure(crate::profiles::http::routes)
        .configure(crate::groups::http::routes)
        .configure(crate::attributes::http::routes)
        .configure(crate::rpc::http::routes)
        .configure(crate::telemetry::http::routes)
        .configure(crate::audit::http::routes)
        .configure(crate::roles::http::routes)
        .configure(crate::apikeys::http::routes)
        .configure(crate::invitations::http::routes)
        .configure(crate::webhooks::http::routes)
        .configure(crate::alarms::http::routes)
        .configure(crate::notifications::http::routes)
        .configure(crate::fleet::http::routes)
        .configure(crate::ota::http::routes)
        .configure(crate::campaigns::http::routes)
        // The OpenAPI document and its reference page; before `/{token}/…`, which `/docs/x` fits.
        .configure(openapi::routes)
        // Last: its `/{token}/…` patterns are the most general.
        .configure(crate::devices::device_api::routes);
}

/// Serves HTTP on an already-bound listener until the server is stopped.
pub fn server(
    state: AppState,
    listener: std::net::TcpListener,
    serve_api: bool,
) -> anyhow::Result<actix_web::dev::Server> {
    let console = if serve_api {
        console::Console::pick(state.config.console_dir.clone())
    } else {
        None
    };
    match &console {
        Some(console) => tracing::info!(from = %console.describe(), "serving the console"),
        None if !serve_api => {}
        None => tracing::warn!(
            "this binary was built without the console (no web/dist at build time): `cargo xtask run` builds it; the API works without it"
        ),
    }
    let cfg = state.config.clone();
    let shutdown_timeout = cfg.shutdown_timeout_secs;
    // Bounds on what one address holds: a connection over them is shut at once, unread.
    let limits = crate::guard::AddressLimits::new(
        "HTTP",
        cfg.http_max_connections_per_address,
        None,
        vec![
            cfg.connection_limit_exempt.clone(),
            cfg.trusted_proxies.clone(),
        ],
        Some(state.metrics.http_connections_refused.clone()),
    );
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let data = web::Data::new(state);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::QueryConfig::default().error_handler(|err, _| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_query",
                    format!("invalid query string: {err}"),
                )
                .into()
            }))
            .app_data(web::PathConfig::default().error_handler(|_, _| {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such object").into()
            }))
            .wrap(actix_web::middleware::from_fn(refuse_nul_in_query))
            .wrap(actix_web::middleware::from_fn(metrics::record))
            .route("/healthz", web::get().to(health::healthz))
            .route("/readyz", web::get().to(health::readyz))
            .route("/metrics", web::get().to(health::metrics))
            .configure(|cfg| {
                // Nodes without the api role answer health checks and metrics only.
                if serve_api {
                    cfg.service(web::scope("/api/v1").configure(api));
                    console::routes(cfg, console.clone());
                }
            })
            .default_service(web::to(not_found))
    })
    .on_connect(move |conn, extensions| {
        let Some(stream) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() else {
            return;
        };
        match limits.admit(stream.peer_addr().ok().map(|a| a.ip())) {
            // Held by the connection's data: dropped when the connection ends.
            Ok(permit) => {
                extensions.insert(permit);
            }
            Err(_) => {
                let _ = socket2::SockRef::from(stream).shutdown(std::net::Shutdown::Both);
            }
        }
    })
    // Every request's head within the request timeout: the first one's by actix, the next ones'
    // on a kept-alive connection by the patch in server/vendor/actix-http (a client dribbling a
    // head one byte a second is answered 408 and closed).
    .client_request_timeout(Duration::from_secs(cfg.http_request_timeout_secs))
    // A closing connection whose client does not read is dropped after this.
    .client_disconnect_timeout(Duration::from_secs(1))
    .keep_alive(match cfg.http_keep_alive_secs {
        0 => actix_web::http::KeepAlive::Disabled,
        secs => actix_web::http::KeepAlive::Timeout(Duration::from_secs(secs)),
    })
    .workers(workers)
    // actix counts per worker.
    .max_connections(cfg.http_max_connections.div_ceil(workers))
    .listen(listener)?
    .disable_signals()
    .shutdown_timeout(shutdown_timeout)
    .run();
    Ok(server)
}

async fn not_found(req: HttpRequest) -> actix_web::HttpResponse {
    use actix_web::ResponseError as _;
    ApiError::new(
        StatusCode::NOT_FOUND,
        "route_not_found",
        format!("no route for {} {}", req.method(), req.path()),
    )
    .error_response()
}

/// A query parameter with a NUL character (`%00`) is refused before any handler sees it: no
/// store can keep or compare it (PostgreSQL refuses U+0000 in text).
async fn refuse_nul_in_query(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<
    actix_web::dev::ServiceResponse<actix_web::body::EitherBody<impl actix_web::body::MessageBody>>,
    actix_web::Error,
> {
    let query = req.query_string().as_bytes();
    if query.windows(3).any(|w| w.eq_ignore_ascii_case(b"%00")) {
        let error = ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "a query parameter holds a NUL character (%00), which text may not",
        );
        return Ok(req.error_response(error).map_into_right_body());
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// Validated `page` (from 1) and `per_page` (1 to 200, default 20) of a listing.
pub fn paging(page: Option<u64>, per_page: Option<u64>) -> ApiResult<(u64, u64)> {
    let page = page.unwrap_or(1);
    let per_page = per_page.unwrap_or(20);
    if page == 0 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "`page` counts from 1",
        )
        .with_field("page"));
    }
    if !(1..=200).contains(&per_page) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "`per_page` must be between 1 and 200",
        )
        .with_field("per_page"));
    }
    // The offset must fit the database's signed 64-bit OFFSET (and the paginator's arithmetic).
    if page
        .checked_mul(per_page)
        .is_none_or(|end| end > i64::MAX as u64)
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "`page` is beyond any listing",
        )
        .with_field("page"));
    }
    Ok((page, per_page))
}
