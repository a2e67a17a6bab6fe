//! Extractors: JSON bodies whose errors name the field, and the request
//! context that becomes event metadata. The caller is [`crate::caller`].

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use command_side::CommandMetadata;
use domain::Actor;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::error::ApiError;
use crate::trace_context::{RequestId, TraceContext};

/// A JSON request body. Unreadable JSON is a 400; JSON of the wrong shape
/// is a 422 naming the field.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_body(request, state).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Like [`JsonBody`], but an empty body means `T::default()`.
pub struct OptionalJsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_body(request, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJsonBody(T::default()));
        }
        parse_json(&bytes).map(OptionalJsonBody)
    }
}

async fn read_body<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(request, state)
        .await
        .map_err(|rejection| ApiError::BadRequest {
            field: None,
            reason: format!("request body: {rejection}"),
        })
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest {
            field: None,
            reason: "request body: expected a JSON object".to_string(),
        });
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let result: Result<T, _> = serde_path_to_error::deserialize(&mut deserializer);
    let value = result.map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                let (field, reason) = field_and_reason(&path, &inner.to_string());
                ApiError::Validation { field, reason }
            }
            _ => ApiError::BadRequest {
                field: None,
                reason: format!("malformed JSON: {inner}"),
            },
        }
    })?;
    deserializer.end().map_err(|error| ApiError::BadRequest {
        field: None,
        reason: format!("malformed JSON: {error}"),
    })?;
    Ok(value)
}

/// serde reports a missing or unknown field at its parent's path with the
/// name in backquotes; name that field instead.
fn field_and_reason(path: &str, message: &str) -> (String, String) {
    let message = message
        .split(" at line ")
        .next()
        .unwrap_or(message)
        .to_string();
    let quoted =
        message.split('`').nth(1).map(str::to_string).filter(|_| {
            message.starts_with("missing field") || message.starts_with("unknown field")
        });
    let parent = if path == "." { None } else { Some(path) };
    let field = match (parent, quoted) {
        // An unknown field's path already ends with its name.
        (Some(parent), Some(name)) if parent == name || parent.ends_with(&format!(".{name}")) => {
            parent.to_string()
        }
        (Some(parent), Some(name)) => format!("{parent}.{name}"),
        (None, Some(name)) => name,
        (Some(parent), None) => parent.to_string(),
        (None, None) => "body".to_string(),
    };
    let reason = if message.starts_with("missing field") {
        "is required".to_string()
    } else if message.starts_with("unknown field") {
        "is not a known field".to_string()
    } else {
        message
    };
    (field, reason)
}

/// Parses a path segment as an id, naming the parameter when it is not one.
pub fn parse_id(name: &'static str, text: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(text).map_err(|_| ApiError::BadRequest {
        field: Some(name.to_string()),
        reason: "must be a UUID".to_string(),
    })
}

/// Tracing and idempotency facts of a request, for event metadata.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    pub request_id: Option<String>,
    pub correlation_id: Option<String>,
    pub traceparent: Option<String>,
    pub idempotency_key: Option<String>,
}

impl RequestContext {
    /// Metadata for a command of `command_type` issued by `actor`.
    pub fn metadata(&self, actor: Option<Actor>, command_type: &str) -> CommandMetadata {
        let mut metadata = CommandMetadata::new("rest", actor).with_command_type(command_type);
        metadata.request_id = self.request_id.clone();
        metadata.correlation_id = self.correlation_id.clone();
        metadata.traceparent = self.traceparent.clone();
        metadata.idempotency_key = self.idempotency_key.clone();
        metadata
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestContext {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty() && v.len() <= 256)
                .map(str::to_string)
        };
        // The request id and the trace context were settled by the
        // request-context layer; the caller's headers are not read again.
        Ok(RequestContext {
            request_id: parts
                .extensions
                .get::<RequestId>()
                .map(|RequestId(id)| id.clone()),
            correlation_id: header("x-correlation-id"),
            traceparent: parts
                .extensions
                .get::<TraceContext>()
                .map(TraceContext::header),
            idempotency_key: header("idempotency-key"),
        })
    }
}
