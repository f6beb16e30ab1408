//! The signed-in session and every HTTP call the console makes.
//!
//! The access token lives only in memory; the refresh token is kept in `localStorage` so that a
//! reload stays signed in. Refresh tokens rotate on every use and the server revokes the whole
//! session when an old one is presented again, so refreshes are serialised here (one in flight,
//! the other callers wait for it) and the newest refresh token is always re-read from storage
//! right before use, in case another tab rotated it meanwhile.
//!
//! Every authenticated request refreshes first when the access token is about to expire, and
//! retries once after a refresh when the server still answers 401. When the session cannot be
//! refreshed the state turns to `SignedOut`, which sends the protected pages to `/login`.

use gloo_net::http::{Method, RequestBuilder, Response};
use gloo_timers::callback::Timeout;
use gloo_timers::future::TimeoutFuture;
use leptos::prelude::*;
use leptos::task::spawn_local;
use serde::Serialize;
use serde::de::DeserializeOwned;
use stead_api_types::{
    AcceptInvitation, ApiErrorBody, LoginRequest, Me, Permission, RefreshRequest, Role,
    TokenResponse,
};

const REFRESH_TOKEN_KEY: &str = "stead.refresh_token";
/// Refresh this long before the access token expires, so a request never leaves with a token
/// that dies on the way.
const REFRESH_MARGIN_MS: f64 = 60_000.0;

/// The error codes the console answers differently from others (the server's `code`).
pub mod codes {
    pub const TWO_FACTOR_REQUIRED: &str = "two_factor_required";
    pub const INVALID_TWO_FACTOR_CODE: &str = "invalid_two_factor_code";
    pub const TWO_FACTOR_SETUP_REQUIRED: &str = "two_factor_setup_required";
    pub const MAIL_NOT_CONFIGURED: &str = "mail_not_configured";
    pub const INVALID_LINK: &str = "invalid_link";
    pub const LINK_USED: &str = "link_used";
    pub const LINK_EXPIRED: &str = "link_expired";
    pub const INVITATION_REVOKED: &str = "invitation_revoked";
}

/// An error to show the person: the server's `detail` when it sent one.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    /// HTTP status, 0 when the server could not be reached.
    pub status: u16,
    pub code: String,
    pub detail: String,
    pub field: Option<String>,
}

impl ApiError {
    pub fn network() -> Self {
        ApiError {
            status: 0,
            code: "network_error".into(),
            detail: "Could not reach the Stead server. Check your connection and try again.".into(),
            field: None,
        }
    }

    pub fn session_expired() -> Self {
        ApiError {
            status: 401,
            code: "session_expired".into(),
            detail: "Your session has expired. Please sign in again.".into(),
            field: None,
        }
    }

    pub fn unexpected(detail: impl Into<String>) -> Self {
        ApiError {
            status: 0,
            code: "unexpected_response".into(),
            detail: detail.into(),
            field: None,
        }
    }

    async fn from_response(resp: Response) -> Self {
        let status = resp.status();
        let status_text = resp.status_text();
        let body = resp.text().await.unwrap_or_default();
        ApiError::from_body(status, &status_text, &body)
    }

    /// The server's refusal from its status and body (`ApiErrorBody` as JSON, or anything else
    /// from a proxy on the way).
    fn from_body(status: u16, status_text: &str, body: &str) -> Self {
        match serde_json::from_str::<ApiErrorBody>(body) {
            Ok(body) => ApiError {
                status,
                code: body.code,
                detail: body.detail,
                field: body.field,
            },
            Err(_) => ApiError {
                status,
                code: format!("http_{status}"),
                detail: format!("The server answered {status} {status_text}. Please try again."),
                field: None,
            },
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum SessionState {
    /// Trading a stored refresh token for a session at start-up.
    Restoring,
    SignedOut,
    SignedIn(Me),
}

#[derive(Clone, Debug, PartialEq)]
struct AccessToken {
    value: String,
    expires_at_ms: f64,
    lifetime_ms: f64,
}

impl AccessToken {
    /// Whether the token will outlive a request: it has some margin left, a quarter of its
    /// lifetime at most so that very short-lived tokens do not force a refresh on every call.
    fn is_fresh(&self) -> bool {
        let margin = (REFRESH_MARGIN_MS / 2.0).min(self.lifetime_ms / 4.0);
        self.expires_at_ms - now_ms() > margin
    }
}

/// The session, shared through context. It is made of signals only, so it is `Copy` and can be
/// moved into any closure or future.
#[derive(Clone, Copy)]
pub struct Session {
    state: RwSignal<SessionState>,
    access: RwSignal<Option<AccessToken>>,
    refreshing: RwSignal<bool>,
    /// Bumped on every new token and on sign-out, so that a scheduled refresh of an older token
    /// does nothing.
    generation: RwSignal<u64>,
    /// A message for the login page, such as why the person was signed out.
    pub notice: RwSignal<Option<String>>,
    /// Where an expired session was (e-mail, path), to return there when the same person signs in
    /// again.
    return_to: RwSignal<Option<(String, String)>>,
}

/// Whether the person's start page is the fleet health dashboard: people of a tenant who may
/// read devices.
pub fn sees_dashboard(me: &Me) -> bool {
    me.tenant.is_some()
        && me.role != Role::PlatformAdmin
        && me.permissions.contains(&Permission::DevicesRead)
}

pub fn use_session() -> Session {
    expect_context::<Session>()
}

fn now_ms() -> f64 {
    js_sys::Date::now()
}

fn storage() -> Option<web_sys::Storage> {
    web_sys::window().and_then(|w| w.local_storage().ok().flatten())
}

fn stored_refresh_token() -> Option<String> {
    storage()
        .and_then(|s| s.get_item(REFRESH_TOKEN_KEY).ok().flatten())
        .filter(|t| !t.is_empty())
}

fn store_refresh_token(token: Option<&str>) {
    if let Some(s) = storage() {
        // Private browsing may refuse storage: the session then simply does not survive reloads.
        let _ = match token {
            Some(t) => s.set_item(REFRESH_TOKEN_KEY, t),
            None => s.remove_item(REFRESH_TOKEN_KEY),
        };
    }
}

fn request(method: Method, path: &str) -> RequestBuilder {
    RequestBuilder::new(path).method(method)
}

/// A request body and its content type.
type Body<'a> = Option<(&'a str, &'static str)>;

const JSON: &str = "application/json";

async fn send(builder: RequestBuilder, body: Body<'_>) -> Result<Response, ApiError> {
    let req = match body {
        Some((b, content_type)) => builder
            .header("Content-Type", content_type)
            .body(b.to_owned()),
        None => builder.build(),
    }
    .map_err(|e| ApiError::unexpected(format!("Could not build the request: {e}")))?;
    req.send().await.map_err(|_| ApiError::network())
}

async fn parse<T: DeserializeOwned>(resp: Response) -> Result<T, ApiError> {
    resp.json::<T>()
        .await
        .map_err(|e| ApiError::unexpected(format!("The server sent an unexpected answer: {e}")))
}

fn to_json<B: Serialize>(body: &B) -> Result<String, ApiError> {
    serde_json::to_string(body)
        .map_err(|e| ApiError::unexpected(format!("Could not encode the request: {e}")))
}

/// A POST to a public route (sign-in, password reset, invitations): no session, no refresh.
pub async fn post_public<B: Serialize, T: DeserializeOwned>(
    path: &str,
    body: &B,
) -> Result<T, ApiError> {
    parse(send_public(path, body).await?).await
}

/// A POST to a public route whose answer has no body (202, 204).
pub async fn post_public_unit<B: Serialize>(path: &str, body: &B) -> Result<(), ApiError> {
    send_public(path, body).await.map(|_| ())
}

async fn send_public<B: Serialize>(path: &str, body: &B) -> Result<Response, ApiError> {
    let body = to_json(body)?;
    let resp = send(request(Method::POST, path), Some((&body, JSON))).await?;
    if !resp.ok() {
        return Err(ApiError::from_response(resp).await);
    }
    Ok(resp)
}

impl Session {
    pub fn new() -> Self {
        Session {
            state: RwSignal::new(SessionState::Restoring),
            access: RwSignal::new(None),
            refreshing: RwSignal::new(false),
            generation: RwSignal::new(0),
            notice: RwSignal::new(None),
            return_to: RwSignal::new(None),
        }
    }

    pub fn state(&self) -> SessionState {
        self.state.get()
    }

    /// The signed-in person, tracked.
    pub fn me(&self) -> Option<Me> {
        match self.state.get() {
            SessionState::SignedIn(me) => Some(me),
            _ => None,
        }
    }

    pub fn can(&self, permission: Permission) -> bool {
        self.state.with(|s| match s {
            SessionState::SignedIn(me) => me.permissions.contains(&permission),
            _ => false,
        })
    }

    /// Whether the caller holds `permission` over the whole tenant, not only over some device
    /// groups: creating devices, imports, bulk actions and group changes need that.
    pub fn can_tenant_wide(&self, permission: Permission) -> bool {
        self.state.with(|s| match s {
            SessionState::SignedIn(me) => {
                me.permissions.contains(&permission) && !me.group_only.contains(&permission)
            }
            _ => false,
        })
    }

    /// Where to go right after signing in: back to where the session expired, if it was this
    /// person's, else their home.
    pub fn after_login(&self) -> String {
        let me = self.me().map(|m| m.email);
        match self.return_to.get_untracked() {
            Some((email, path)) if Some(&email) == me.as_ref() => path,
            _ => self.home().to_owned(),
        }
    }

    /// Where a person lands after signing in: tenants for the platform admin, the fleet health
    /// dashboard for those who may read devices, devices otherwise.
    pub fn home(&self) -> &'static str {
        self.state.with(|s| match s {
            SessionState::SignedIn(me) if me.tenant.is_none() || me.role == Role::PlatformAdmin => {
                "/tenants"
            }
            SessionState::SignedIn(me) if sees_dashboard(me) => "/",
            _ => "/devices",
        })
    }

    /// At start-up: resume the session from a stored refresh token, if any.
    pub fn restore(self) {
        if stored_refresh_token().is_none() {
            self.state.set(SessionState::SignedOut);
            return;
        }
        spawn_local(async move {
            let result = match self.refresh().await {
                Ok(()) => self.get::<Me>("/api/v1/me").await,
                Err(e) => Err(e),
            };
            match result {
                Ok(me) => self.state.set(SessionState::SignedIn(me)),
                Err(e) if e.status == 0 && e.code == "network_error" => {
                    // Keep the refresh token: the server may simply be restarting.
                    self.notice.set(Some(e.detail));
                    self.state.set(SessionState::SignedOut);
                }
                Err(_) => self.clear(None),
            }
        });
    }

    /// Signs in with a password, and the second factor when the person has one (without it the
    /// server answers `two_factor_required`, which the login page turns into a code field).
    pub async fn login(self, body: &LoginRequest) -> Result<(), ApiError> {
        let tokens = post_public::<_, TokenResponse>("/api/v1/auth/login", body).await?;
        self.start(tokens).await
    }

    /// Creates the invited person's account and signs it in.
    pub async fn accept_invitation(self, body: &AcceptInvitation) -> Result<(), ApiError> {
        let tokens =
            post_public::<_, TokenResponse>("/api/v1/auth/invitation/accept", body).await?;
        self.start(tokens).await
    }

    /// Takes a new session's tokens and who it belongs to.
    async fn start(self, tokens: TokenResponse) -> Result<(), ApiError> {
        self.accept(tokens);
        match self.get::<Me>("/api/v1/me").await {
            Ok(me) => {
                self.notice.set(None);
                self.state.set(SessionState::SignedIn(me));
                Ok(())
            }
            Err(e) => {
                self.clear(None);
                Err(e)
            }
        }
    }

    /// Reads the signed-in person again, after a change to what `Me` says (two-factor sign-in
    /// turned on or off, the tenant's rules changed).
    pub async fn reload_me(self) {
        if let Ok(me) = self.get::<Me>("/api/v1/me").await
            && matches!(self.state.get_untracked(), SessionState::SignedIn(_))
        {
            self.state.set(SessionState::SignedIn(me));
        }
    }

    /// Ends the session on the server (best effort) and forgets it here.
    pub async fn logout(self) {
        if let Some(refresh_token) = stored_refresh_token()
            && let Ok(body) = to_json(&RefreshRequest { refresh_token })
        {
            // Whatever the answer, the session is over for this browser.
            let _ = send(
                request(Method::POST, "/api/v1/auth/logout"),
                Some((&body, JSON)),
            )
            .await;
        }
        self.return_to.set(None);
        self.clear(Some("You have signed out.".into()));
    }

    /// Forgets every token and sends the protected pages to the login page.
    fn clear(self, notice: Option<String>) {
        store_refresh_token(None);
        self.generation.update(|g| *g += 1);
        self.access.set(None);
        self.notice.set(notice);
        self.state.set(SessionState::SignedOut);
    }

    fn expire(self) {
        let email = self.state.with_untracked(|s| match s {
            SessionState::SignedIn(me) => Some(me.email.clone()),
            _ => None,
        });
        let path = web_sys::window().and_then(|w| {
            let l = w.location();
            Some(format!("{}{}", l.pathname().ok()?, l.search().ok()?))
        });
        if let (Some(email), Some(path)) = (email, path) {
            self.return_to.set(Some((email, path)));
        }
        self.clear(Some(ApiError::session_expired().detail));
    }

    fn accept(self, tokens: TokenResponse) {
        store_refresh_token(Some(&tokens.refresh_token));
        let lifetime_ms = tokens.expires_in as f64 * 1000.0;
        self.access.set(Some(AccessToken {
            value: tokens.access_token,
            expires_at_ms: now_ms() + lifetime_ms,
            lifetime_ms,
        }));
        self.generation.update(|g| *g += 1);
        let generation = self.generation.get_untracked();
        // Refresh a minute before expiry; short-lived tokens at three quarters of their life.
        let delay_ms = (lifetime_ms - REFRESH_MARGIN_MS)
            .max(lifetime_ms * 0.75)
            .max(1_000.0);
        let delay_ms = delay_ms.min(f64::from(i32::MAX)) as u32;
        Timeout::new(delay_ms, move || {
            if self.generation.try_get_untracked() == Some(generation) {
                spawn_local(async move {
                    // A failure already signed the person out; nothing more to do here.
                    let _ = self.refresh().await;
                });
            }
        })
        .forget();
    }

    /// Trades the refresh token for new tokens. Only one refresh runs at a time; concurrent
    /// callers wait for it and share its outcome.
    async fn refresh(self) -> Result<(), ApiError> {
        if self.refreshing.get_untracked() {
            while self.refreshing.get_untracked() {
                TimeoutFuture::new(25).await;
            }
            return if self.access.with_untracked(|a| a.is_some()) {
                Ok(())
            } else {
                Err(ApiError::session_expired())
            };
        }
        self.refreshing.set(true);
        let result = self.refresh_now().await;
        self.refreshing.set(false);
        result
    }

    async fn refresh_now(self) -> Result<(), ApiError> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let Some(refresh_token) = stored_refresh_token() else {
                self.expire();
                return Err(ApiError::session_expired());
            };
            let body = to_json(&RefreshRequest {
                refresh_token: refresh_token.clone(),
            })?;
            let resp = send(
                request(Method::POST, "/api/v1/auth/refresh"),
                Some((&body, JSON)),
            )
            .await?;
            if resp.ok() {
                let tokens = parse::<TokenResponse>(resp).await?;
                self.accept(tokens);
                return Ok(());
            }
            // Another tab may have rotated the token while ours was in flight: try its one.
            let rotated_elsewhere = stored_refresh_token().is_some_and(|t| t != refresh_token);
            if rotated_elsewhere && attempts < 2 {
                continue;
            }
            let err = ApiError::from_response(resp).await;
            if err.status >= 500 || err.status == 429 {
                return Err(err);
            }
            self.expire();
            return Err(ApiError::session_expired());
        }
    }

    fn access_token(&self) -> Option<AccessToken> {
        self.access.get_untracked()
    }

    /// Sends an authenticated request, refreshing the session when needed.
    async fn call(
        self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Body<'_>,
    ) -> Result<Response, ApiError> {
        let fresh = self.access_token().is_some_and(|t| t.is_fresh());
        if !fresh {
            self.refresh().await?;
        }
        let mut retried = false;
        loop {
            let Some(token) = self.access_token() else {
                return Err(ApiError::session_expired());
            };
            let builder = request(method.clone(), path)
                .query(query.iter().map(|(k, v)| (*k, v)))
                .header("Authorization", &format!("Bearer {}", token.value));
            let resp = send(builder, body).await?;
            if resp.status() == 401 && !retried {
                retried = true;
                self.refresh().await?;
                continue;
            }
            if resp.status() == 401 {
                self.expire();
                return Err(ApiError::session_expired());
            }
            if !resp.ok() {
                let err = ApiError::from_response(resp).await;
                if err.code == codes::TWO_FACTOR_SETUP_REQUIRED {
                    // The tenant began to require a second factor since `Me` was read: the shell
                    // sends the person to set it up once `Me` says so.
                    spawn_local(self.reload_me());
                }
                return Err(err);
            }
            return Ok(resp);
        }
    }

    /// A valid access token, for requests that cannot go through `call` (the live stream, whose
    /// body is read as it arrives). `renew` forces a refresh, after the server refused the token.
    pub async fn bearer(self, renew: bool) -> Result<String, ApiError> {
        let fresh = self.access_token().is_some_and(|t| t.is_fresh());
        if renew || !fresh {
            self.refresh().await?;
        }
        self.access_token()
            .map(|t| t.value)
            .ok_or_else(ApiError::session_expired)
    }

    /// A POST of a file (a package's image) through `XMLHttpRequest`, whose upload reports its
    /// progress (fetch's does not): `progress` hears (bytes sent, bytes in all), `started` gets
    /// the request to abort it. Authenticated as `call` is, retried once after a 401.
    pub async fn upload<T: DeserializeOwned>(
        self,
        path: &str,
        query: &[(&str, String)],
        file: &web_sys::Blob,
        progress: impl Fn(f64, f64) + 'static,
        started: impl FnOnce(web_sys::XmlHttpRequest),
    ) -> Result<T, ApiError> {
        let url = with_query(path, query);
        let progress = std::rc::Rc::new(progress);
        let mut started = Some(started);
        let mut renew = false;
        loop {
            let token = self.bearer(renew).await?;
            let xhr = web_sys::XmlHttpRequest::new()
                .map_err(|_| ApiError::unexpected("The browser cannot upload files."))?;
            if let Some(started) = started.take() {
                started(xhr.clone());
            }
            let (status, body) = xhr_send(&xhr, &url, &token, file, progress.clone()).await?;
            if status == 401 && !renew {
                renew = true;
                continue;
            }
            if status == 401 {
                self.expire();
                return Err(ApiError::session_expired());
            }
            if !(200..300).contains(&status) {
                let text = xhr.status_text().unwrap_or_default();
                return Err(ApiError::from_body(status, &text, &body));
            }
            return serde_json::from_str(&body).map_err(|e| {
                ApiError::unexpected(format!("The server sent an unexpected answer: {e}"))
            });
        }
    }

    /// A GET whose answer is a file (CSV export): the body as a `Blob`, to hand to the browser's
    /// download. A link cannot carry the Authorization header, hence the detour.
    pub async fn get_blob(
        self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<web_sys::Blob, ApiError> {
        let resp: web_sys::Response = self.call(Method::GET, path, query, None).await?.into();
        let promise = resp
            .blob()
            .map_err(|_| ApiError::unexpected("The download could not be read."))?;
        wasm_bindgen_futures::JsFuture::from(promise)
            .await
            .map(wasm_bindgen::JsCast::unchecked_into)
            .map_err(|_| ApiError::network())
    }

    pub async fn get<T: DeserializeOwned>(self, path: &str) -> Result<T, ApiError> {
        self.get_query(path, &[]).await
    }

    /// A GET with query parameters, which are encoded here.
    pub async fn get_query<T: DeserializeOwned>(
        self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, ApiError> {
        parse(self.call(Method::GET, path, query, None).await?).await
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(
        self,
        path: &str,
        body: &B,
    ) -> Result<T, ApiError> {
        self.send_json(Method::POST, path, &[], body).await
    }

    /// A POST whose answer has no body (204).
    pub async fn post_unit<B: Serialize>(self, path: &str, body: &B) -> Result<(), ApiError> {
        let body = to_json(body)?;
        self.call(Method::POST, path, &[], Some((&body, JSON)))
            .await
            .map(|_| ())
    }

    /// A POST of plain text (a CSV file) with query parameters.
    pub async fn post_text<T: DeserializeOwned>(
        self,
        path: &str,
        query: &[(&str, String)],
        text: &str,
        content_type: &'static str,
    ) -> Result<T, ApiError> {
        parse(
            self.call(Method::POST, path, query, Some((text, content_type)))
                .await?,
        )
        .await
    }

    pub async fn patch<B: Serialize, T: DeserializeOwned>(
        self,
        path: &str,
        body: &B,
    ) -> Result<T, ApiError> {
        self.send_json(Method::PATCH, path, &[], body).await
    }

    pub async fn put<B: Serialize, T: DeserializeOwned>(
        self,
        path: &str,
        body: &B,
    ) -> Result<T, ApiError> {
        self.send_json(Method::PUT, path, &[], body).await
    }

    async fn send_json<B: Serialize, T: DeserializeOwned>(
        self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: &B,
    ) -> Result<T, ApiError> {
        let body = to_json(body)?;
        parse(self.call(method, path, query, Some((&body, JSON))).await?).await
    }

    pub async fn delete(self, path: &str) -> Result<(), ApiError> {
        self.delete_query(path, &[]).await
    }

    pub async fn delete_query(self, path: &str, query: &[(&str, String)]) -> Result<(), ApiError> {
        self.call(Method::DELETE, path, query, None)
            .await
            .map(|_| ())
    }
}

/// `path?k=v&…`, each part encoded.
fn with_query(path: &str, query: &[(&str, String)]) -> String {
    let encoded: Vec<String> = query
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                js_sys::encode_uri_component(k),
                js_sys::encode_uri_component(v)
            )
        })
        .collect();
    if encoded.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", encoded.join("&"))
    }
}

/// Sends `file` with `xhr` and waits for the answer: its status and body. Status 0 (no answer:
/// the network, or an abort) is an error here.
async fn xhr_send(
    xhr: &web_sys::XmlHttpRequest,
    url: &str,
    token: &str,
    file: &web_sys::Blob,
    progress: std::rc::Rc<dyn Fn(f64, f64)>,
) -> Result<(u16, String), ApiError> {
    use wasm_bindgen::JsCast as _;
    use wasm_bindgen::closure::Closure;

    let fail = |_| ApiError::unexpected("The upload could not be started.");
    xhr.open_with_async("POST", url, true).map_err(fail)?;
    xhr.set_request_header("Authorization", &format!("Bearer {token}"))
        .map_err(fail)?;
    xhr.set_request_header("Content-Type", "application/octet-stream")
        .map_err(fail)?;
    let on_progress =
        Closure::<dyn Fn(web_sys::ProgressEvent)>::new(move |ev: web_sys::ProgressEvent| {
            if ev.length_computable() {
                progress(ev.loaded(), ev.total());
            }
        });
    let upload = xhr.upload().map_err(fail)?;
    upload.set_onprogress(Some(on_progress.as_ref().unchecked_ref()));
    // Settled by whichever of load, error, abort and timeout comes first.
    let mut settle = None;
    let done = js_sys::Promise::new(&mut |resolve, _| settle = Some(resolve));
    let settle = settle.ok_or_else(|| ApiError::unexpected("The upload could not be started."))?;
    let on_end = Closure::<dyn Fn()>::new(move || {
        let _ = settle.call0(&wasm_bindgen::JsValue::NULL);
    });
    xhr.set_onloadend(Some(on_end.as_ref().unchecked_ref()));
    xhr.send_with_opt_blob(Some(file)).map_err(fail)?;
    let _ = wasm_bindgen_futures::JsFuture::from(done).await;
    upload.set_onprogress(None);
    xhr.set_onloadend(None);
    drop((on_progress, on_end));
    match xhr.status().unwrap_or(0) {
        0 => Err(ApiError {
            status: 0,
            code: "upload_interrupted".into(),
            detail: "The upload stopped before the server answered (cancelled, or the connection broke).".into(),
            field: None,
        }),
        status => Ok((status, xhr.response_text().ok().flatten().unwrap_or_default())),
    }
}

impl Default for Session {
    fn default() -> Self {
        Self::new()
    }
}
