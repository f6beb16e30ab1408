//! The domain error: what went wrong, in the domain's words. `http::error` maps each variant to a
//! status and a stable code, once; nothing else decides statuses.

use sea_orm::DbErr;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input that passed JSON decoding: a field with a value the domain refuses.
    #[error("{detail}")]
    Invalid {
        code: &'static str,
        field: Option<std::borrow::Cow<'static, str>>,
        detail: String,
    },
    /// No such object, or it belongs to another tenant (never told apart).
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    /// Authentication failed; `code` says how (`invalid_credentials`, `token_expired`, …).
    #[error("{detail}")]
    Unauthenticated { code: &'static str, detail: String },
    /// Authenticated, but not allowed.
    #[error("{detail}")]
    Forbidden { code: &'static str, detail: String },
    /// It existed, and is over for good (an expired or revoked one-time link).
    #[error("{detail}")]
    Gone { code: &'static str, detail: String },
    /// A body larger than allowed (an OTA package over the size limit).
    #[error("{detail}")]
    TooLarge { code: &'static str, detail: String },
    /// A part of the platform this needs is not set up (no SMTP server, say).
    #[error("{detail}")]
    Unavailable { code: &'static str, detail: String },
    #[error("too many attempts; retry in {retry_after_secs} s")]
    Throttled { retry_after_secs: u64 },
    #[error("database error: {0}")]
    Db(#[from] DbErr),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// A name people give to a `kind` of thing, by the one rule of the wire types (400
/// `invalid_name` on the field `name`).
pub fn parse_name(kind: &str, raw: &str, max: usize) -> Result<String> {
    stead_api_types::check_name(kind, raw, max)
        .map_err(|e| Error::invalid("invalid_name", "name", e))
}

impl Error {
    pub fn invalid(code: &'static str, field: &'static str, detail: impl Into<String>) -> Error {
        Error::Invalid {
            code,
            field: Some(field.into()),
            detail: detail.into(),
        }
    }

    /// The same for a field found at run time (`create.critical.expr.all[1].test.value`).
    pub fn invalid_at(code: &'static str, field: String, detail: impl Into<String>) -> Error {
        Error::Invalid {
            code,
            field: Some(field.into()),
            detail: detail.into(),
        }
    }

    pub fn unauthenticated(code: &'static str, detail: impl Into<String>) -> Error {
        Error::Unauthenticated {
            code,
            detail: detail.into(),
        }
    }

    pub fn forbidden(code: &'static str, detail: impl Into<String>) -> Error {
        Error::Forbidden {
            code,
            detail: detail.into(),
        }
    }

    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Error {
        Error::Conflict {
            code,
            detail: detail.into(),
        }
    }

    pub fn gone(code: &'static str, detail: impl Into<String>) -> Error {
        Error::Gone {
            code,
            detail: detail.into(),
        }
    }

    pub fn unavailable(code: &'static str, detail: impl Into<String>) -> Error {
        Error::Unavailable {
            code,
            detail: detail.into(),
        }
    }

    /// A unique-constraint violation becomes the given conflict; any other error stays as it is.
    pub fn on_unique_violation(err: DbErr, code: &'static str, detail: impl Into<String>) -> Error {
        match err.sql_err() {
            Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => Error::conflict(code, detail),
            _ => Error::Db(err),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
