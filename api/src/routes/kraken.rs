use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use command_side::crypto::SecretString;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::extract::{parse_id, Caller, JsonBody, RequestContext};
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectRequest {
    api_key: String,
    api_secret: String,
    label: Option<String>,
}

/// `POST /api/v1/kraken/connect` → 201 `{key_id, position}`.
pub async fn connect(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    JsonBody(request): JsonBody<ConnectRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
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
        Json(json!({ "key_id": key_id, "position": position.to_string() })),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateRequest {
    label: Option<String>,
    api_key: Option<String>,
    api_secret: Option<String>,
}

/// `PATCH /api/v1/kraken/keys/{key_id}` `{label?, api_key?, api_secret?}`;
/// a new credential needs both halves.
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(key_id): Path<String>,
    JsonBody(request): JsonBody<UpdateRequest>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(
        json!({ "key_id": key_id, "position": position.to_string() }),
    ))
}

/// `DELETE /api/v1/kraken/keys/{key_id}`: disconnects and shreds the
/// stored credential.
pub async fn disconnect(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(key_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let key_id = parse_id("key_id", &key_id)?;
    let metadata = context.metadata(Some(caller.actor()), "kraken.key.disconnect");
    let position = state
        .commands
        .disconnect_key(caller.actor(), key_id, &metadata)
        .await?;
    Ok(Json(
        json!({ "key_id": key_id, "position": position.to_string() }),
    ))
}

/// `POST /api/v1/kraken/keys/{key_id}/test`: asks the exchange; a failure
/// is recorded as `kraken.key.test.failed` and reported with its reason.
pub async fn test(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(key_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let key_id = parse_id("key_id", &key_id)?;
    let metadata = context.metadata(Some(caller.actor()), "kraken.key.test");
    let outcome = state
        .commands
        .test_key(caller.actor(), key_id, &metadata)
        .await?;
    Ok(Json(json!({
        "key_id": key_id,
        "status": outcome.status,
        "reason": outcome.failure,
        "position": outcome.position.to_string(),
    })))
}
