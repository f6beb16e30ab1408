//! A small REST client for Stead's public API. Every call answers a `Reply` with the status and
//! the JSON body, so tests can assert on both; `ok::<T>()` decodes a success and panics with the
//! server's error body otherwise.

use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use stead_api_types::{ApiErrorBody, TokenResponse};

#[derive(Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
    token: Option<String>,
}

/// A status and whatever body came with it.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: serde_json::Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Reply {
    /// Decodes a 2xx body, or fails with the status and body the server sent.
    pub fn ok<T: DeserializeOwned>(self) -> anyhow::Result<T> {
        if !self.status.is_success() {
            anyhow::bail!("expected success, got {}: {}", self.status, self.body);
        }
        Ok(serde_json::from_value(self.body)?)
    }

    /// The API error body (`code`, `detail`, `field`).
    pub fn error(&self) -> ApiErrorBody {
        serde_json::from_value(self.body.clone()).unwrap_or_else(|_| ApiErrorBody {
            code: format!("<not an API error: {}>", self.body),
            detail: String::new(),
            field: None,
        })
    }

    pub fn code(&self) -> String {
        self.error().code
    }
}

impl Client {
    pub fn new(base: impl Into<String>) -> Client {
        Client {
            base: base.into().trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
            token: None,
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// The same client, sending `token` as its bearer token.
    pub fn with_token(&self, token: impl Into<String>) -> Client {
        Client {
            token: Some(token.into()),
            ..self.clone()
        }
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Logs in and answers a client that carries the access token, with the token pair.
    pub async fn login(
        &self,
        email: &str,
        password: &str,
    ) -> anyhow::Result<(Client, TokenResponse)> {
        let tokens: TokenResponse = self
            .post(
                "/api/v1/auth/login",
                &serde_json::json!({"email": email, "password": password}),
            )
            .await?
            .ok()?;
        Ok((self.with_token(tokens.access_token.clone()), tokens))
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Reply> {
        self.send(Method::GET, path, None::<&()>).await
    }

    pub async fn delete(&self, path: &str) -> anyhow::Result<Reply> {
        self.send(Method::DELETE, path, None::<&()>).await
    }

    pub async fn post<B: Serialize>(&self, path: &str, body: &B) -> anyhow::Result<Reply> {
        self.send(Method::POST, path, Some(body)).await
    }

    pub async fn patch<B: Serialize>(&self, path: &str, body: &B) -> anyhow::Result<Reply> {
        self.send(Method::PATCH, path, Some(body)).await
    }

    pub async fn put<B: Serialize>(&self, path: &str, body: &B) -> anyhow::Result<Reply> {
        self.send(Method::PUT, path, Some(body)).await
    }

    pub async fn send<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> anyhow::Result<Reply> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(body);
        }
        self.finish(request).await
    }

    /// A request with a raw body and content type, for testing what the server makes of bad input.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> anyhow::Result<Reply> {
        let request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        self.finish(request).await
    }

    /// A GET whose answer is bytes (a download), with an optional `Range` header: the status,
    /// the headers and the body as sent.
    pub async fn download(
        &self,
        path: &str,
        range: Option<&str>,
    ) -> anyhow::Result<(StatusCode, reqwest::header::HeaderMap, Vec<u8>)> {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(range) = range {
            request = request.header(reqwest::header::RANGE, range);
        }
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await?;
        let status = response.status();
        let headers = response.headers().clone();
        Ok((status, headers, response.bytes().await?.to_vec()))
    }

    async fn finish(&self, mut request: reqwest::RequestBuilder) -> anyhow::Result<Reply> {
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await?;
        let body = if bytes.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(&bytes).into())
            })
        };
        Ok(Reply {
            status,
            body,
            headers,
        })
    }
}
