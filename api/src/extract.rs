//! Extractors: JSON bodies whose errors name the field, and the request
//! context that becomes event metadata. The caller is [`crate::caller`].
//!
//! No text a client sends holds a control character (Unicode's `Cc`:
//! U+0000 to U+001F, U+007F to U+009F), NUL included: names, labels and
//! reasons are one line, so not even `\n` or `\t` is allowed there. The one
//! exception is free text, a support message's `body`, which may hold line
//! feeds and tabs and nothing else of the kind ([`FreeTextJsonBody`]). A
//! JSON string with one is a 422
//! naming the field ([`parse_json`]); a query parameter ([`QueryParams`])
//! or path segment ([`refuse_control_characters`]) with one is a 400
//! naming it; so is a
//! header that reaches event metadata (`crate::request_context`). Nothing
//! of the kind reaches PostgreSQL, which refuses a NUL in `text` and in
//! `jsonb`.

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

/// A request body with fields of free text, [`FreeText::FIELDS`]: in
/// those (and only those) a line feed or a tab is text, not a refusal.
pub trait FreeText {
    /// The top-level fields that hold free text.
    const FIELDS: &'static [&'static str];
}

/// Like [`JsonBody`], for a body whose [`FreeText`] fields may hold line
/// feeds and tabs.
pub struct FreeTextJsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + FreeText> FromRequest<S> for FreeTextJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_body(request, state).await?;
        parse_json_with_free_text(&bytes, T::FIELDS).map(FreeTextJsonBody)
    }
}

/// Like [`JsonBody`], but an empty body, or `null`, means `T::default()`.
pub struct OptionalJsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_body(request, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJsonBody(T::default()));
        }
        parse_json::<Option<T>>(&bytes).map(|body| OptionalJsonBody(body.unwrap_or_default()))
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
    parse_json_with_free_text(bytes, &[])
}

/// [`parse_json`], where the strings at the paths of `free_text` may hold
/// line feeds and tabs.
pub fn parse_json_with_free_text<T: DeserializeOwned>(
    bytes: &[u8],
    free_text: &[&str],
) -> Result<T, ApiError> {
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
    // Well-formed and of the right shape: now no string may hold a
    // control character (read again as a tree, which names the field even
    // where `T` keeps the text as an opaque value).
    let tree: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|error| ApiError::BadRequest {
            field: None,
            reason: format!("malformed JSON: {error}"),
        })?;
    if let Some(field) = control_character_in(&tree, "", free_text) {
        let reason = if free_text.contains(&field.as_str()) {
            FREE_TEXT_CONTROL_CHARACTER
        } else {
            CONTROL_CHARACTER
        };
        return Err(ApiError::validation(field, reason));
    }
    Ok(value)
}

const FREE_TEXT_CONTROL_CHARACTER: &str =
    "must not contain control characters (U+0000 to U+001F, U+007F to U+009F) other than line \
     feeds and tabs";

/// Whether free text holds a control character other than a line feed or
/// a tab.
pub fn has_control_character_in_free_text(text: &str) -> bool {
    text.chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
}

const CONTROL_CHARACTER: &str =
    "must not contain control characters (U+0000 to U+001F, U+007F to U+009F)";

/// Whether `text` holds a character this API refuses in any text.
pub fn has_control_character(text: &str) -> bool {
    text.chars().any(char::is_control)
}

/// The path (as `strategy.kind`, `items[2]`) of the first string or key
/// in `value` that holds a control character (beyond a line feed or tab
/// in the strings at the paths of `free_text`), `prefix` being its own.
fn control_character_in(
    value: &serde_json::Value,
    prefix: &str,
    free_text: &[&str],
) -> Option<String> {
    use serde_json::Value;
    let name = |prefix: &str| {
        if prefix.is_empty() {
            "body".to_string()
        } else {
            prefix.to_string()
        }
    };
    match value {
        Value::String(text) if free_text.contains(&prefix) => {
            has_control_character_in_free_text(text).then(|| name(prefix))
        }
        Value::String(text) => has_control_character(text).then(|| name(prefix)),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(n, item)| control_character_in(item, &format!("{prefix}[{n}]"), free_text)),
        Value::Object(fields) => fields.iter().find_map(|(key, item)| {
            if has_control_character(key) {
                return Some(name(prefix));
            }
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            control_character_in(item, &path, free_text)
        }),
        _ => None,
    }
}

/// A 400 naming `name` (a query parameter, a path segment) when `text`
/// holds a control character.
pub fn refuse_control_characters(name: &str, text: &str) -> Result<(), ApiError> {
    if has_control_character(text) {
        return Err(ApiError::BadRequest {
            field: Some(name.to_string()),
            reason: CONTROL_CHARACTER.to_string(),
        });
    }
    Ok(())
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
    refuse_control_characters(name, text)?;
    Uuid::parse_str(text).map_err(|_| ApiError::BadRequest {
        field: Some(name.to_string()),
        reason: "must be a UUID".to_string(),
    })
}

/// The query string as names and values. One that does not decode (bad
/// percent-encoding, bytes that are not UTF-8) is a 400 in the error
/// shape every answer has; a name or value holding a control character is
/// a 400 naming the parameter.
pub struct QueryParams(pub std::collections::HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Query(raw) = axum::extract::Query::<
            std::collections::HashMap<String, String>,
        >::from_request_parts(parts, state)
        .await
        .map_err(|rejection| ApiError::BadRequest {
            field: None,
            reason: format!("query string: {}", rejection.body_text()),
        })?;
        for (name, value) in &raw {
            refuse_control_characters(name, name)?;
            refuse_control_characters(name, value)?;
        }
        Ok(QueryParams(raw))
    }
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
                .filter(|v| !v.is_empty() && v.len() <= 256 && !has_control_character(v))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        strategy: serde_json::Value,
        tags: Option<Vec<String>>,
    }

    fn refusal(json: &str) -> (String, String) {
        match parse_json::<Body>(json.as_bytes()) {
            Err(ApiError::Validation { field, reason }) => (field, reason),
            other => panic!("{json}: expected a 422, got {other:?}"),
        }
    }

    #[test]
    fn a_control_character_in_any_string_is_a_422_naming_its_field() {
        let (field, reason) = refusal(r#"{"name": "a\u0000b", "strategy": {}}"#);
        assert_eq!(field, "name");
        assert!(reason.contains("control characters"), "{reason}");
        let nested = r#"{"name": "n", "strategy": {"kind": "dca", "note": "x\u001b[31m"}}"#;
        assert_eq!(refusal(nested).0, "strategy.note");
        let listed = r#"{"name": "n", "strategy": {}, "tags": ["ok", "tab\there"]}"#;
        assert_eq!(refusal(listed).0, "tags[1]");
        assert_eq!(
            refusal(r#"{"name": "line\nbreak", "strategy": {}}"#).0,
            "name"
        );
        assert_eq!(
            refusal(r#"{"name": "del\u007f", "strategy": {}}"#).0,
            "name"
        );
        assert_eq!(refusal(r#"{"name": "c1\u0085", "strategy": {}}"#).0, "name");
        let key = r#"{"name": "n", "strategy": {"k\u0000": 1}}"#;
        assert_eq!(refusal(key).0, "strategy");
    }

    #[test]
    fn printable_text_passes_and_unreadable_json_stays_a_400() {
        let body: Body =
            parse_json(r#"{"name": "Zoë – ☃ \"quoted\"", "strategy": {"a": [1, "b"]}}"#.as_bytes())
                .unwrap();
        assert_eq!(body.name, "Zoë – ☃ \"quoted\"");
        // A raw control character is not JSON at all.
        assert!(matches!(
            parse_json::<Body>(b"{\"name\": \"a\x00b\", \"strategy\": {}}"),
            Err(ApiError::BadRequest { .. })
        ));
    }

    #[test]
    fn free_text_fields_take_line_feeds_and_tabs_and_nothing_else_of_the_kind() {
        let parse = |json: &str| parse_json_with_free_text::<Body>(json.as_bytes(), &["name"]);
        let body = parse(r#"{"name": "two\nlines\tand a tab", "strategy": {}}"#).unwrap();
        assert_eq!(body.name, "two\nlines\tand a tab");
        for refused in [
            r#"{"name": "carriage\r\nreturn", "strategy": {}}"#,
            r#"{"name": "nul\u0000", "strategy": {}}"#,
        ] {
            match parse(refused) {
                Err(ApiError::Validation { field, reason }) => {
                    assert_eq!(field, "name");
                    assert!(reason.contains("other than line feeds"), "{reason}");
                }
                other => panic!("{refused}: expected a 422, got {other:?}"),
            }
        }
        // Only the named fields are free text.
        let nested = r#"{"name": "ok", "strategy": {"note": "a\nb"}}"#;
        match parse(nested) {
            Err(ApiError::Validation { field, .. }) => assert_eq!(field, "strategy.note"),
            other => panic!("expected a 422, got {other:?}"),
        }
    }

    #[test]
    fn path_and_query_text_with_a_control_character_is_a_400_naming_it() {
        match parse_id("bot_id", "6b9e0f3c-0000-4000-8000-00000000000\0") {
            Err(ApiError::BadRequest { field, reason }) => {
                assert_eq!(field.as_deref(), Some("bot_id"));
                assert!(reason.contains("control"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        assert!(refuse_control_characters("pair", "XBT/USD").is_ok());
        assert!(refuse_control_characters("pair", "XBT\t/USD").is_err());
    }
}
