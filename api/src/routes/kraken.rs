use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use domain::services::KeyStatus;
use domain::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::caller::Caller;
use crate::error::{ApiError, ErrorResponse};
use crate::extract::{parse_id, JsonBody, RequestContext};
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectRequest {
    /// The exchange's API key: 1 to 256 characters, no white space.
    #[schema(pattern = "{NO_SPACE_TEXT}", min_length = 1, max_length = 256)]
    api_key: String,
    /// The exchange's API secret (base64): 1 to 512 characters, no white
    /// space; stored encrypted, never logged.
    #[schema(pattern = "{NO_SPACE_TEXT}", min_length = 1, max_length = 512)]
    api_secret: String,
    /// 1 to 64 characters once trimmed.
    #[schema(pattern = "{NON_BLANK_LINE}", min_length = 1, max_length = 64)]
    label: Option<String>,
}

/// A key's id and where the event that changed it stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyChanged {
    pub key_id: Uuid,
    #[schema(value_type = crate::openapi::schemas::Position)]
    pub position: String,
}

/// `POST /api/v1/kraken/connect` → 201 `{key_id, position}`.
#[utoipa::path(
    post,
    path = "/api/v1/kraken/connect",
    operation_id = "connect_key",
    tag = "kraken",
    summary = "Connect a Kraken API key",
    description = "The secret is encrypted at rest; the log holds only the key's id, a \
        fingerprint and its permissions. A key that may withdraw is refused.",
    security(("bearer" = [])),
    request_body = ConnectRequest,
    responses(
        (status = 201, description = "Connected", body = KeyChanged),
        (status = 400, description = "Unreadable JSON", body = ErrorResponse),
        (status = 403, description = "Auditors cannot connect keys", body = ErrorResponse),
        (status = 422, description = "A field is invalid, or the key may withdraw", body = ErrorResponse),
    ),
)]
pub async fn connect(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    JsonBody(request): JsonBody<ConnectRequest>,
) -> Result<(StatusCode, Json<KeyChanged>), ApiError> {
    let metadata = context.metadata(Some(caller.actor()), "kraken.key.connect");
    let (key_id, position) = state
        .commands
        .connect_key(
            caller.actor(),
            SecretString::new(request.api_key),
            SecretString::new(request.api_secret),
            request.label,
            &metadata,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(KeyChanged {
            key_id,
            position: position.to_string(),
        }),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRequest {
    /// A new label: 1 to 64 characters once trimmed.
    #[schema(pattern = "{NON_BLANK_LINE}", min_length = 1, max_length = 64)]
    label: Option<String>,
    /// A new credential: with `api_secret`; 1 to 256 characters, no white
    /// space.
    #[serde(default, deserialize_with = "present")]
    #[schema(
        nullable = false,
        pattern = "{NO_SPACE_TEXT}",
        min_length = 1,
        max_length = 256
    )]
    api_key: Option<String>,
    /// A new credential: with `api_key`; 1 to 512 characters, no white
    /// space.
    #[serde(default, deserialize_with = "present")]
    #[schema(
        nullable = false,
        pattern = "{NO_SPACE_TEXT}",
        min_length = 1,
        max_length = 512
    )]
    api_secret: Option<String>,
}

/// A credential half is a string when present: `null` is not "absent".
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    String::deserialize(deserializer).map(Some)
}

/// `PATCH /api/v1/kraken/keys/{key_id}` `{label?, api_key?, api_secret?}`;
/// a new credential needs both halves.
#[utoipa::path(
    patch,
    path = "/api/v1/kraken/keys/{key_id}",
    operation_id = "update_key",
    tag = "kraken",
    summary = "Relabel a key or replace its credential",
    security(("bearer" = [])),
    params(("key_id" = Uuid, Path, description = "The key")),
    request_body = UpdateRequest,
    responses(
        (status = 200, description = "Updated", body = KeyChanged),
        (status = 400, description = "Unreadable JSON or a malformed `key_id`", body = ErrorResponse),
        (status = 403, description = "Not the caller's key to change", body = ErrorResponse),
        (status = 404, description = "No such key", body = ErrorResponse),
        (status = 409, description = "The key is disconnected", body = ErrorResponse),
        (status = 422, description = "A field is invalid, or half a credential", body = ErrorResponse),
    ),
)]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(key_id): Path<String>,
    JsonBody(request): JsonBody<UpdateRequest>,
) -> Result<Json<KeyChanged>, ApiError> {
    let key_id = parse_id("key_id", &key_id)?;
    let credentials = match (request.api_key, request.api_secret) {
        (Some(key), Some(secret)) => Some((SecretString::new(key), SecretString::new(secret))),
        (None, None) => None,
        (Some(_), None) => {
            return Err(ApiError::validation(
                "api_secret",
                "is required with api_key",
            ))
        }
        (None, Some(_)) => {
            return Err(ApiError::validation(
                "api_key",
                "is required with api_secret",
            ))
        }
    };
    let metadata = context.metadata(Some(caller.actor()), "kraken.key.update");
    let position = state
        .commands
        .update_key(
            caller.actor(),
            key_id,
            request.label,
            credentials,
            &metadata,
        )
        .await?;
    Ok(Json(KeyChanged {
        key_id,
        position: position.to_string(),
    }))
}

/// `DELETE /api/v1/kraken/keys/{key_id}`: disconnects and shreds the
/// stored credential.
#[utoipa::path(
    delete,
    path = "/api/v1/kraken/keys/{key_id}",
    operation_id = "disconnect_key",
    tag = "kraken",
    summary = "Disconnect a key",
    description = "Disconnects the key and shreds its stored credential at once, even while \
        bots run on it, so a leaked key can always be revoked: each later trade of those bots \
        fails, recorded as its error (the credential is missing), until the bot is stopped.",
    security(("bearer" = [])),
    params(("key_id" = Uuid, Path, description = "The key")),
    responses(
        (status = 200, description = "Disconnected", body = KeyChanged),
        (status = 400, description = "A malformed `key_id`", body = ErrorResponse),
        (status = 403, description = "Not the caller's key", body = ErrorResponse),
        (status = 404, description = "No such key", body = ErrorResponse),
        (status = 409, description = "Already disconnected", body = ErrorResponse),
    ),
)]
pub async fn disconnect(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(key_id): Path<String>,
) -> Result<Json<KeyChanged>, ApiError> {
    let key_id = parse_id("key_id", &key_id)?;
    let metadata = context.metadata(Some(caller.actor()), "kraken.key.disconnect");
    let position = state
        .commands
        .disconnect_key(caller.actor(), key_id, &metadata)
        .await?;
    Ok(Json(KeyChanged {
        key_id,
        position: position.to_string(),
    }))
}

/// What the exchange said of a key.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyTested {
    pub key_id: Uuid,
    /// `tested`, or `test_failed` with a `reason`.
    #[schema(value_type = crate::openapi::schemas::KeyStatus)]
    pub status: KeyStatus,
    /// Why the test failed; `null` when it passed.
    pub reason: Option<String>,
    #[schema(value_type = crate::openapi::schemas::Position)]
    pub position: String,
}

/// `POST /api/v1/kraken/keys/{key_id}/test`: asks the exchange; a failure
/// is recorded as `kraken.key.test.failed` and reported with its reason.
#[utoipa::path(
    post,
    path = "/api/v1/kraken/keys/{key_id}/test",
    operation_id = "test_key",
    tag = "kraken",
    summary = "Test a key against the exchange",
    description = "A failed test is an answer, not an error: it is recorded as \
        `kraken.key.test.failed` and reported with its reason.",
    security(("bearer" = [])),
    params(("key_id" = Uuid, Path, description = "The key")),
    responses(
        (status = 200, description = "Tested (passed or failed)", body = KeyTested),
        (status = 400, description = "A malformed `key_id`", body = ErrorResponse),
        (status = 403, description = "Not the caller's key", body = ErrorResponse),
        (status = 404, description = "No such key", body = ErrorResponse),
        (status = 409, description = "The key is disconnected", body = ErrorResponse),
    ),
)]
pub async fn test(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(key_id): Path<String>,
) -> Result<Json<KeyTested>, ApiError> {
    let key_id = parse_id("key_id", &key_id)?;
    let metadata = context.metadata(Some(caller.actor()), "kraken.key.test");
    let outcome = state
        .commands
        .test_key(caller.actor(), key_id, &metadata)
        .await?;
    Ok(Json(KeyTested {
        key_id,
        status: outcome.status,
        reason: outcome.failure,
        position: outcome.position.to_string(),
    }))
}
