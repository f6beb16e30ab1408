//! The one error type at the HTTP edge. Every failure answers JSON `{"code","detail","field"?}`
//! with a stable snake_case code. Internal errors are logged with their cause and answered as an
//! opaque 500: the cause may hold details a caller must not see.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use stead_api_types::ApiErrorBody;

use crate::error::Error;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    pub field: Option<String>,
    pub retry_after_secs: Option<u64>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            detail: detail.into(),
            field: None,
            retry_after_secs: None,
        }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> ApiError {
        self.field = Some(field.into());
        self
    }

    fn internal(cause: &dyn std::fmt::Display) -> ApiError {
        tracing::error!(error = %cause, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "something went wrong on our side; it has been logged",
        )
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.detail)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if let Some(secs) = self.retry_after_secs {
            response.insert_header(("Retry-After", secs.to_string()));
        }
        response.json(ApiErrorBody {
            code: self.code.into(),
            detail: self.detail.clone(),
            field: self.field.clone(),
        })
    }
}

impl From<Error> for ApiError {
    fn from(err: Error) -> ApiError {
        match err {
            Error::Invalid {
                code,
                field,
                detail,
            } => ApiError {
                field: field.map(Into::into),
                ..ApiError::new(StatusCode::BAD_REQUEST, code, detail)
            },
            Error::NotFound(what) => ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("{what} not found"),
            ),
            Error::Conflict { code, detail } => ApiError::new(StatusCode::CONFLICT, code, detail),
            Error::Unauthenticated { code, detail } => {
                ApiError::new(StatusCode::UNAUTHORIZED, code, detail)
            }
            Error::Forbidden { code, detail } => ApiError::new(StatusCode::FORBIDDEN, code, detail),
            Error::Gone { code, detail } => ApiError::new(StatusCode::GONE, code, detail),
            Error::TooLarge { code, detail } => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, code, detail)
            }
            Error::Unavailable { code, detail } => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, detail)
            }
            Error::Throttled { retry_after_secs } => ApiError {
                retry_after_secs: Some(retry_after_secs),
                ..ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_attempts",
                    format!("too many attempts: try again in {retry_after_secs} s"),
                )
            },
            Error::Db(e) => ApiError::internal(&e),
            Error::Internal(e) => ApiError::internal(&format!("{e:#}")),
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(err: anyhow::Error) -> ApiError {
        Error::Internal(err).into()
    }
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(err: sea_orm::DbErr) -> ApiError {
        Error::Db(err).into()
    }
}
