use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use domain::{Pair, Strategy};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::error::ApiError;
use crate::extract::{parse_id, Caller, JsonBody, OptionalJsonBody, RequestContext};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigureRequest {
    key_id: Uuid,
    pair: String,
    strategy: Strategy,
}

/// `POST /api/v1/bot` `{key_id, pair, strategy}` → 201 `{bot_id, position}`.
pub async fn configure(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    JsonBody(request): JsonBody<ConfigureRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let pair = Pair::parse(&request.pair)?;
    let metadata = context.metadata(Some(caller.actor()), "bot.configure");
    let (bot_id, position) = state
        .commands
        .configure_bot(
            caller.actor(),
            request.key_id,
            pair,
            request.strategy,
            &metadata,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "bot_id": bot_id, "position": position.to_string() })),
    ))
}

/// `POST /api/v1/bot/{bot_id}/start` → 202: the bot runner does the rest.
pub async fn start(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(bot_id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let bot_id = parse_id("bot_id", &bot_id)?;
    let metadata = context.metadata(Some(caller.actor()), "bot.request_start");
    let position = state
        .commands
        .request_bot_start(caller.actor(), bot_id, &metadata)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "bot_id": bot_id, "state": "starting", "position": position.to_string() })),
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StopRequest {
    reason: Option<String>,
}

/// `POST /api/v1/bot/{bot_id}/stop` `{reason?}` → 202.
pub async fn stop(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(bot_id): Path<String>,
    OptionalJsonBody(request): OptionalJsonBody<StopRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let bot_id = parse_id("bot_id", &bot_id)?;
    let metadata = context.metadata(Some(caller.actor()), "bot.request_stop");
    let position = state
        .commands
        .request_bot_stop(caller.actor(), bot_id, request.reason, &metadata)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "bot_id": bot_id, "state": "stopping", "position": position.to_string() })),
    ))
}

/// `POST /api/v1/bot/{bot_id}/trigger-trade` → 202 `{bot_id, trigger_id, position}`.
pub async fn trigger_trade(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(bot_id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let bot_id = parse_id("bot_id", &bot_id)?;
    let metadata = context.metadata(Some(caller.actor()), "bot.trigger_trade");
    let (trigger_id, position) = state
        .commands
        .trigger_bot_trade(caller.actor(), bot_id, &metadata)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(
            json!({ "bot_id": bot_id, "trigger_id": trigger_id, "position": position.to_string() }),
        ),
    ))
}
