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
use serde_json::json;

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

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest { .. } => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::Validation { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict { .. } => (StatusCode::CONFLICT, "conflict"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl From<DomainError> for ApiError {
    fn from(error: DomainError) -> Self {
        match error {
            DomainError::NotFound { entity } => ApiError::NotFound(format!("{entity} not found")),
            DomainError::Forbidden { reason } => ApiError::Forbidden(reason),
            DomainError::Invalid { field, reason } => ApiError::validation(field, reason),
            DomainError::Conflict { reason } => ApiError::conflict(reason),
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
        let body = match &self {
            ApiError::Validation { field, reason } => json!({
                "code": code, "message": self.to_string(), "field": field, "reason": reason,
            }),
            ApiError::BadRequest { field, reason } | ApiError::Conflict { field, reason } => {
                let message = match field {
                    Some(field) => format!("{field}: {reason}"),
                    None => reason.clone(),
                };
                json!({ "code": code, "message": message, "field": field, "reason": reason })
            }
            ApiError::Internal(cause) => {
                tracing::error!(error = ?cause, "request failed unexpectedly");
                json!({ "code": code, "message": "internal error" })
            }
            other => json!({ "code": code, "message": other.to_string() }),
        };
        let mut response = (status, Json(json!({ "error": body }))).into_response();
        match self {
            ApiError::Unavailable(_) => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
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
