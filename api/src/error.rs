//! `ApiError`: every failure's HTTP status and JSON body.
//!
//! Bad input is a 400 (unreadable) or 422 (readable but invalid) naming the
//! field; refusals map by kind; anything unexpected is a 500 whose cause is
//! logged and never shown.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use command_side::CommandError;
use domain::DomainError;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{reason}")]
    BadRequest {
        field: Option<String>,
        reason: String,
    },
    #[error("{field}: {reason}")]
    Validation { field: String, reason: String },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{reason}")]
    Conflict {
        field: Option<String>,
        reason: String,
    },
    /// 429 with `Retry-After`: this client (or account) must wait.
    #[error("{reason}")]
    TooManyRequests {
        reason: String,
        retry_after_secs: u64,
    },
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn validation(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ApiError::Validation {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub fn conflict(reason: impl Into<String>) -> Self {
        ApiError::Conflict {
            field: None,
            reason: reason.into(),
        }
    }

    fn status_and_code(&self) -> (StatusCode, ErrorCode) {
        match self {
            ApiError::BadRequest { .. } => (StatusCode::BAD_REQUEST, ErrorCode::BadRequest),
            ApiError::Validation { .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::ValidationFailed,
            ),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, ErrorCode::Forbidden),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, ErrorCode::NotFound),
            ApiError::Conflict { .. } => (StatusCode::CONFLICT, ErrorCode::Conflict),
            ApiError::TooManyRequests { .. } => {
                (StatusCode::TOO_MANY_REQUESTS, ErrorCode::RateLimited)
            }
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unavailable),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal),
        }
    }
}

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorResponse {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    /// For people; the field and reason, when there are, in one sentence.
    pub message: String,
    /// The request field, query parameter or path parameter at fault
    /// (nested fields as `strategy.quote_amount`); present on 400, 409 and
    /// 422, `null` when the fault is not one field's.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub field: Option<Option<String>>,
    /// Why the field is at fault; present with `field`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What kind of failure, one per status.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: unreadable JSON, a malformed path id or query parameter.
    BadRequest,
    /// 422: readable, but a field is invalid.
    ValidationFailed,
    /// 401.
    Unauthorized,
    /// 403.
    Forbidden,
    /// 404.
    NotFound,
    /// 409.
    Conflict,
    /// 429, with `Retry-After`: too many requests from this client, too
    /// many failed log-ins of this account, or a bot's trigger quota used
    /// up.
    RateLimited,
    /// 503, with `Retry-After`.
    Unavailable,
    /// 500.
    Internal,
}

impl From<DomainError> for ApiError {
    fn from(error: DomainError) -> Self {
        match error {
            DomainError::NotFound { entity } => ApiError::NotFound(format!("{entity} not found")),
            DomainError::Forbidden { reason } => ApiError::Forbidden(reason),
            DomainError::Invalid { field, reason } => ApiError::validation(field, reason),
            DomainError::Conflict { reason } => ApiError::conflict(reason),
            DomainError::QuotaExceeded {
                limit,
                reason,
                retry_after_secs,
            } => ApiError::TooManyRequests {
                reason: format!("{limit}: {reason}"),
                retry_after_secs,
            },
            DomainError::Unavailable { reason } => ApiError::Unavailable(reason),
        }
    }
}

impl From<CommandError> for ApiError {
    fn from(error: CommandError) -> Self {
        match error {
            CommandError::Refused(refusal) => refusal.into(),
            CommandError::Conflict { .. } => ApiError::conflict(error.to_string()),
            CommandError::EmailTaken => ApiError::Conflict {
                field: Some("email".to_string()),
                reason: "already registered".to_string(),
            },
            CommandError::InvalidCredentials | CommandError::InvalidRefreshToken => {
                ApiError::Unauthorized(error.to_string())
            }
            CommandError::LoginBackoff { retry_after_secs } => ApiError::TooManyRequests {
                reason: error.to_string(),
                retry_after_secs,
            },
            CommandError::CodeRefused { reason } => ApiError::BadRequest {
                field: Some("code".to_string()),
                reason: reason.to_string(),
            },
            CommandError::TooManyAttempts {
                retry_after_secs, ..
            } => ApiError::TooManyRequests {
                reason: error.to_string(),
                retry_after_secs,
            },
            CommandError::AccountDisabled => ApiError::Forbidden(error.to_string()),
            CommandError::Saturated(reason) => ApiError::Unavailable(reason),
            CommandError::DatabaseUnavailable(reason) => {
                ApiError::Unavailable(format!("database unavailable: {reason}"))
            }
            CommandError::Unexpected(cause) => ApiError::Internal(cause),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let detail =
            |message: String, field: Option<Option<String>>, reason: Option<String>| ErrorDetail {
                code,
                message,
                field,
                reason,
            };
        let body = match &self {
            ApiError::Validation { field, reason } => detail(
                self.to_string(),
                Some(Some(field.clone())),
                Some(reason.clone()),
            ),
            ApiError::BadRequest { field, reason } | ApiError::Conflict { field, reason } => {
                let message = match field {
                    Some(field) => format!("{field}: {reason}"),
                    None => reason.clone(),
                };
                detail(message, Some(field.clone()), Some(reason.clone()))
            }
            ApiError::Internal(cause) => {
                tracing::error!(error = ?cause, "request failed unexpectedly");
                detail("internal error".to_string(), None, None)
            }
            other => detail(other.to_string(), None, None),
        };
        let mut response = (status, Json(ErrorResponse { error: body })).into_response();
        match self {
            ApiError::Unavailable(_) => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ApiError::TooManyRequests {
                retry_after_secs, ..
            } => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            }
            ApiError::Unauthorized(_) => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}
