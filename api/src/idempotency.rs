//! The `Idempotency-Key` middleware: the first response to a key is stored
//! and replayed for every repeat of the same request, which then runs no
//! command and appends nothing.

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use command_side::idempotency::{self, Claim};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::state::AppState;
use crate::tokens::Authentication;

const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What a key may be, as the document states it: 1 to 255 visible ASCII
/// characters (no space: HTTP trims a header value's edges, so a key of
/// spaces would arrive as another key).
pub const KEY_PATTERN: &str = "^[!-~]{1,255}$";

fn valid_key(key: &[u8]) -> bool {
    (1..=255).contains(&key.len()) && key.iter().all(|b| (b'!'..=b'~').contains(b))
}

pub async fn replay_or_record(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    match run(state, request, next).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn run(state: AppState, request: Request, next: Next) -> Result<Response, ApiError> {
    // Only the methods commands use: a GET, TRACE or OPTIONS on a command's
    // path is answered by the router (a 405), and must neither claim the
    // key nor be refused for it.
    let command = matches!(
        *request.method(),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    let Some(key) = request.headers().get("idempotency-key").filter(|_| command) else {
        return Ok(next.run(request).await);
    };
    let key = key
        .to_str()
        .ok()
        .filter(|k| valid_key(k.as_bytes()))
        .ok_or_else(|| ApiError::BadRequest {
            field: Some("Idempotency-Key".to_string()),
            reason: "must be 1 to 255 visible ASCII characters".to_string(),
        })?
        .to_string();
    // Keys are scoped to the caller, so two users' keys never collide. An
    // invalid token is scoped as anonymous; the handler refuses it anyway.
    let scope = Authentication::of(request.extensions())
        .subject()
        .map(|subject| subject.user_id.to_string())
        .unwrap_or_else(|| "anonymous".to_string());
    let (parts, body) = request.into_parts();
    let bytes = to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| ApiError::BadRequest {
            field: None,
            reason: "request body too large".to_string(),
        })?;
    let mut hasher = Sha256::new();
    hasher.update(parts.method.as_str().as_bytes());
    hasher.update(b" ");
    hasher.update(parts.uri.path().as_bytes());
    hasher.update(b"\n");
    hasher.update(&bytes);
    let fingerprint = hex::encode(hasher.finalize());

    match idempotency::claim(state.pool(), &scope, &key, &fingerprint).await? {
        Claim::Replay { status, body } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            let mut response = (status, axum::Json(body)).into_response();
            response
                .headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            Ok(response)
        }
        Claim::InFlight => Err(ApiError::Conflict {
            field: Some("Idempotency-Key".to_string()),
            reason: "a request with this key is still in progress; retry later".to_string(),
        }),
        Claim::Mismatch => Err(ApiError::validation(
            "Idempotency-Key",
            "already used for a different request",
        )),
        Claim::Fresh => {
            let request = Request::from_parts(parts, Body::from(bytes));
            let response = next.run(request).await;
            let status = response.status();
            let (parts, body) = response.into_parts();
            let bytes = to_bytes(body, usize::MAX).await.unwrap_or_default();
            // Conflicts, throttling and server errors are worth retrying with
            // the same key, so they are not remembered.
            let retryable = status == StatusCode::CONFLICT
                || status == StatusCode::TOO_MANY_REQUESTS
                || status.is_server_error();
            let stored = serde_json::from_slice::<serde_json::Value>(&bytes).ok();
            match (retryable, stored) {
                (false, Some(value)) => {
                    idempotency::complete(state.pool(), &scope, &key, status.as_u16(), &value)
                        .await?
                }
                _ => idempotency::release(state.pool(), &scope, &key).await?,
            }
            Ok(Response::from_parts(parts, Body::from(bytes)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::valid_key;

    #[test]
    fn a_key_is_1_to_255_visible_ascii_characters() {
        assert!(valid_key(b"start-1"));
        assert!(valid_key(&[b'~'; 255]));
        for refused in [&b""[..], b"a b", b"tab\there", b"caf\xc3\xa9", &[b'a'; 256]] {
            assert!(!valid_key(refused), "{refused:?}");
        }
    }
}
