//! Extractors: JSON bodies with precise errors, the caller's address, and the authenticated,
//! permission-checked principal.

use std::marker::PhantomData;
use std::net::{IpAddr, Ipv4Addr};

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpMessage as _, HttpRequest, web};
use futures_util::StreamExt as _;
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::app::AppState;
use crate::auth::{Actor, Permission, Required, TenantCtx, service};
use crate::error::Error;
use crate::ids::TenantId;

/// A JSON request body. Unlike `web::Json`, its errors name the offending field and use the API's
/// error codes: `invalid_json`, `missing_field`, `unknown_field`, `invalid_field`,
/// `payload_too_large` (413), `unsupported_media_type` (415).
pub struct Json<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = body_limit(req);
        let json_type = req
            .mime_type()
            .ok()
            .flatten()
            .is_some_and(|m| m.subtype() == "json" || m.suffix().is_some_and(|s| s == "json"));
        let declared_len = declared_len(req);
        let payload = payload.take();
        Box::pin(async move {
            if !json_type {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    "send the body as JSON with Content-Type: application/json",
                ));
            }
            let body = read_body(payload, declared_len, limit).await?;
            decode(&body).map(Json)
        })
    }
}

/// Reads a request body of at most `limit` bytes (413 `payload_too_large` beyond).
async fn read_body(
    mut payload: Payload,
    declared_len: Option<usize>,
    limit: usize,
) -> Result<web::Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body is larger than the limit of {limit} bytes"),
        )
    };
    if declared_len.is_some_and(|len| len > limit) {
        return Err(too_large());
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                format!("reading the request body failed: {e}"),
            )
        })?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

fn body_limit(req: &HttpRequest) -> usize {
    req.app_data::<web::Data<AppState>>()
        .map(|s| s.config.max_body_bytes)
        .unwrap_or(1024 * 1024)
}

fn declared_len(req: &HttpRequest) -> Option<usize> {
    req.headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
}

/// A raw request body within the configured size limit (the device API's payloads).
pub struct Body(pub web::Bytes);

impl FromRequest for Body {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        read_limited(req, payload, body_limit(req), Body)
    }
}

/// A raw request body of at most `LIMIT` bytes, for the routes that take files larger than the
/// configured limit (CSV imports).
pub struct BodyUpTo<const LIMIT: usize>(pub web::Bytes);

impl<const LIMIT: usize> FromRequest for BodyUpTo<LIMIT> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        read_limited(req, payload, LIMIT, BodyUpTo)
    }
}

fn read_limited<T: 'static>(
    req: &HttpRequest,
    payload: &mut Payload,
    limit: usize,
    wrap: fn(web::Bytes) -> T,
) -> LocalBoxFuture<'static, Result<T, ApiError>> {
    let declared = declared_len(req);
    let payload = payload.take();
    Box::pin(async move { read_body(payload, declared, limit).await.map(wrap) })
}

/// Decodes a JSON object body, turning serde's message into an error that names the field.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    // Every request body is an object. (serde would also fill a struct from an array, by position.)
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        None => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                "the request body is empty: send a JSON object",
            ));
        }
        Some(b'{') => {}
        Some(_) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                "the request body must be a JSON object",
            ));
        }
    }
    // Before any parser walks it: see `nesting`.
    if crate::nesting::depth_of_text(body) > crate::nesting::MAX_DEPTH {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!(
                "the request body nests deeper than {} levels",
                crate::nesting::MAX_DEPTH
            ),
        ));
    }
    // Text with U+0000 cannot be stored (PostgreSQL refuses it): refused here, naming the field.
    if crate::text::may_hold_nul(body)
        && let Ok(value) = serde_json::from_slice::<serde_json::Value>(body)
        && let Some(field) = crate::text::nul_in(&value)
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_field",
            format!("the field `{field}` holds a NUL character (U+0000), which text may not"),
        )
        .with_field(field));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let result: Result<T, _> = serde_path_to_error::deserialize(&mut de);
    let value = result.map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = strip_position(&inner.to_string());
        if matches!(
            inner.classify(),
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof
        ) {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                format!("the request body is not valid JSON: {message}"),
            );
        }
        let parent = if path == "." {
            String::new()
        } else {
            format!("{path}.")
        };
        if let Some(name) = backticked(&message, "missing field `") {
            let field = format!("{parent}{name}");
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                "missing_field",
                format!("the field `{field}` is required"),
            )
            .with_field(field);
        }
        if let Some(name) = backticked(&message, "unknown field `") {
            // serde_path_to_error already ends the path with the unknown key.
            let field = if path.ends_with(name) {
                path.clone()
            } else {
                format!("{parent}{name}")
            };
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                "unknown_field",
                format!("the field `{field}` is not part of this request: {message}"),
            )
            .with_field(field);
        }
        if path == "." {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                format!("the request body has the wrong shape: {message}"),
            );
        }
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_field",
            format!("the field `{path}` is invalid: {message}"),
        )
        .with_field(path)
    })?;
    de.end().map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!(
                "the request body is not valid JSON: {}",
                strip_position(&e.to_string())
            ),
        )
    })?;
    Ok(value)
}

fn backticked<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    message.strip_prefix(prefix)?.split('`').next()
}

/// serde_json ends its messages with " at line L column C"; the field name says more.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// The address of the client that sent the request: the peer's, or, when the peer is a trusted
/// reverse proxy (`STEAD_TRUSTED_PROXIES`), the nearest address in `X-Forwarded-For` that is not
/// one. Login throttling and provisioning limits count per this address.
pub struct ClientIp(pub IpAddr);

impl FromRequest for ClientIp {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let peer = req
            .peer_addr()
            .map(|a| a.ip())
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let trusted = req
            .app_data::<web::Data<AppState>>()
            .map(|s| &s.config.trusted_proxies);
        let ip = match trusted {
            Some(trusted) => trusted.client_of(
                peer,
                req.headers()
                    .get_all("x-forwarded-for")
                    .filter_map(|v| v.to_str().ok()),
            ),
            None => peer,
        };
        std::future::ready(Ok(ClientIp(ip)))
    }
}

/// Reverse proxies whose `X-Forwarded-For` is believed: addresses and ranges
/// (`10.0.0.0/8,127.0.0.1`); none by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<ipnet::IpNet>);

impl TrustedProxies {
    pub fn parse(s: &str) -> std::result::Result<TrustedProxies, String> {
        s.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                p.parse::<ipnet::IpNet>()
                    .or_else(|_| p.parse::<IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| format!("{p:?} is not an address or a range such as 10.0.0.0/8"))
            })
            .collect::<std::result::Result<_, _>>()
            .map(TrustedProxies)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// Whether `ip` is one of the addresses or in one of the ranges.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.trusts(ip)
    }

    /// The client behind `peer`: from the right of `X-Forwarded-For` (each proxy appends the
    /// address it saw), the first address that is not a trusted proxy. A header from an untrusted
    /// peer, or one that cannot be read, is ignored: anyone can write one.
    pub fn client_of<'a>(&self, peer: IpAddr, forwarded: impl Iterator<Item = &'a str>) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let hops: Vec<&str> = forwarded
            .flat_map(|h| h.split(','))
            .map(str::trim)
            .collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            match hop.parse::<IpAddr>() {
                Ok(ip) => {
                    client = ip;
                    if !self.trusts(ip) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        client
    }
}

impl std::fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|n| n.to_string()).collect();
        f.write_str(&parts.join(","))
    }
}

impl serde::Serialize for TrustedProxies {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for TrustedProxies {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        TrustedProxies::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod proxy_tests {
    use super::*;

    #[test]
    fn the_client_is_the_nearest_untrusted_forwarded_address() {
        let trusted = TrustedProxies::parse("10.0.0.0/8, 127.0.0.1").unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // Behind one proxy.
        assert_eq!(
            trusted.client_of(ip("10.1.2.3"), ["203.0.113.7"].into_iter()),
            ip("203.0.113.7")
        );
        // A client's own forged entry on the left is not believed.
        assert_eq!(
            trusted.client_of(
                ip("127.0.0.1"),
                ["1.1.1.1, 203.0.113.7, 10.0.0.9"].into_iter()
            ),
            ip("203.0.113.7")
        );
        // From an untrusted peer the header is ignored.
        assert_eq!(
            trusted.client_of(ip("198.51.100.1"), ["1.1.1.1"].into_iter()),
            ip("198.51.100.1")
        );
        assert_eq!(
            TrustedProxies::default().client_of(ip("127.0.0.1"), ["1.1.1.1"].into_iter()),
            ip("127.0.0.1")
        );
        assert!(TrustedProxies::parse("nonsense").is_err());
    }
}

fn bearer(req: &HttpRequest) -> Result<String, ApiError> {
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::from(Error::unauthenticated(
                "missing_token",
                "send an access token as `Authorization: Bearer <token>`",
            ))
        })?;
    match header.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() => {
            Ok(token.trim().to_owned())
        }
        _ => Err(Error::unauthenticated(
            "missing_token",
            "the Authorization header must be `Bearer <token>`",
        )
        .into()),
    }
}

async fn actor_of(req: HttpRequest) -> Result<Actor, ApiError> {
    let token = bearer(&req)?;
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| anyhow::anyhow!("application state missing"))?
        .clone();
    let address = req.peer_addr().map(|a| a.ip());
    if token.starts_with(crate::apikeys::PREFIX) {
        return Ok(crate::apikeys::service::authenticate(&state, &token, address).await?);
    }
    let mut actor = service::authenticate(&state, &token).await?;
    actor.address = address;
    Ok(actor)
}

fn denied(actor: &Actor, permission: Permission, detail: &str) -> ApiError {
    let who = match actor.api_key {
        Some(_) => "this API key".to_owned(),
        None => format!("your role ({})", actor.role.as_str()),
    };
    Error::forbidden(
        "permission_denied",
        format!(
            "{who} lacks the permission `{}`{detail}",
            permission.as_str()
        ),
    )
    .into()
}

/// The tenant a caller acts in, once they may act at all: a person whose tenant requires a second
/// factor they have not set up may only reach their own account (`Authenticated`, `Person`).
fn tenant_of(actor: &Actor) -> Result<TenantId, ApiError> {
    if actor.two_factor_pending && actor.api_key.is_none() {
        return Err(Error::forbidden(
            "two_factor_setup_required",
            "your organisation requires two-factor sign-in: set it up under My account first",
        )
        .into());
    }
    actor.tenant_id.ok_or_else(|| {
        Error::forbidden(
            "tenant_required",
            "this route acts inside a tenant; platform admins manage tenants instead",
        )
        .into()
    })
}

/// Any signed-in person, or an API key.
pub struct Authenticated {
    pub actor: Actor,
}

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            Ok(Authenticated {
                actor: actor_of(req).await?,
            })
        })
    }
}

/// A signed-in person, not an API key (their own account: password, sessions).
pub struct Person {
    pub actor: Actor,
}

impl FromRequest for Person {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let actor = actor_of(req).await?;
            if actor.api_key.is_some() {
                return Err(Error::forbidden(
                    "person_required",
                    "this route is for a signed-in person, not an API key",
                )
                .into());
            }
            Ok(Person { actor })
        })
    }
}

/// A member of a tenant holding permission `P` over the whole tenant, with a `TenantCtx` that
/// reaches all its devices. Tenant-wide work (creating devices, imports, groups, people) takes
/// this one.
pub struct TenantScope<P: Required> {
    pub ctx: TenantCtx,
    pub actor: Actor,
    _permission: PhantomData<P>,
}

impl<P: Required + 'static> FromRequest for TenantScope<P> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let actor = actor_of(req).await?;
            let tenant_id = tenant_of(&actor)?;
            if !actor.access.tenant_wide(P::PERMISSION) {
                let detail = match actor.access.reach(P::PERMISSION) {
                    Some(_) => " over the whole tenant (only over some device groups)",
                    None => "",
                };
                return Err(denied(&actor, P::PERMISSION, detail));
            }
            Ok(TenantScope {
                ctx: TenantCtx::new(tenant_id),
                actor,
                _permission: PhantomData,
            })
        })
    }
}

/// A member of a tenant holding permission `P` over all its devices or over some device groups'
/// devices: the `TenantCtx` reaches just those, so the device finders answer 404 for the others.
/// Routes about existing devices (reading them, their data, their commands) take this one.
pub struct DeviceScope<P: Required> {
    pub ctx: TenantCtx,
    pub actor: Actor,
    _permission: PhantomData<P>,
}

impl<P: Required + 'static> FromRequest for DeviceScope<P> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let actor = actor_of(req).await?;
            let tenant_id = tenant_of(&actor)?;
            let Some(reach) = actor.access.reach(P::PERMISSION) else {
                return Err(denied(&actor, P::PERMISSION, ""));
            };
            Ok(DeviceScope {
                ctx: TenantCtx::reaching(tenant_id, reach),
                actor,
                _permission: PhantomData,
            })
        })
    }
}

/// A platform-level operator holding permission `P`.
pub struct PlatformScope<P: Required> {
    pub actor: Actor,
    _permission: PhantomData<P>,
}

impl<P: Required + 'static> FromRequest for PlatformScope<P> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let actor = actor_of(req).await?;
            if !actor.access.tenant_wide(P::PERMISSION) {
                return Err(denied(&actor, P::PERMISSION, ""));
            }
            Ok(PlatformScope {
                actor,
                _permission: PhantomData,
            })
        })
    }
}

impl<P: Required> PlatformScope<P> {
    /// The context of one tenant, for the platform admin's work inside it (its NATS sink, say):
    /// 404 when there is no such tenant.
    pub async fn tenant(
        &self,
        db: &sea_orm::DatabaseConnection,
        id: uuid::Uuid,
    ) -> Result<TenantCtx, crate::error::Error> {
        let tenant = crate::tenants::repo::find(db, crate::ids::TenantId(id))
            .await?
            .ok_or(crate::error::Error::NotFound("tenant"))?;
        Ok(TenantCtx::new(crate::ids::TenantId(tenant.id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        count: u32,
    }

    #[test]
    fn errors_name_the_field() {
        let e = decode::<Body>(br#"{"name":"a"}"#).unwrap_err();
        assert_eq!(
            (e.code, e.field.as_deref()),
            ("missing_field", Some("count"))
        );
        let e = decode::<Body>(br#"{"name":5,"count":1}"#).unwrap_err();
        assert_eq!(
            (e.code, e.field.as_deref()),
            ("invalid_field", Some("name"))
        );
        let e = decode::<Body>(br#"{"name":"a","count":1,"extra":1}"#).unwrap_err();
        assert_eq!(
            (e.code, e.field.as_deref()),
            ("unknown_field", Some("extra"))
        );
        let e = decode::<Body>(br#"{"name":"a","#).unwrap_err();
        assert_eq!(e.code, "invalid_json");
        let e = decode::<Body>(br#"[1,2]"#).unwrap_err();
        assert_eq!(e.code, "invalid_body");
        let e = decode::<Body>(br#"{"name":"a\u0000b","count":1}"#).unwrap_err();
        assert_eq!(
            (e.code, e.field.as_deref()),
            ("invalid_field", Some("name"))
        );
        assert!(decode::<Body>(br#"{"name":"a","count":1}"#).is_ok());
    }
}
