use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use domain::{Pair, Strategy};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::caller::Caller;
use crate::error::{ApiError, ErrorResponse};
use crate::extract::{parse_id, JsonBody, OptionalJsonBody, RequestContext};
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigureRequest {
    /// A connected key of the caller's.
    key_id: Uuid,
    #[schema(value_type = crate::openapi::schemas::Pair)]
    pair: String,
    #[schema(value_type = crate::openapi::schemas::Strategy)]
    strategy: Strategy,
}

/// A new bot and where its `bot.configured` event stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct BotConfigured {
    pub bot_id: Uuid,
    #[schema(value_type = crate::openapi::schemas::Position)]
    pub position: String,
}

/// A start or stop the bot runner will carry out.
#[derive(Debug, Serialize, ToSchema)]
pub struct BotStateRequested {
    pub bot_id: Uuid,
    /// `starting` or `stopping`.
    #[schema(value_type = crate::openapi::schemas::BotState)]
    pub state: &'static str,
    #[schema(value_type = crate::openapi::schemas::Position)]
    pub position: String,
}

/// A trade trigger the bot runner will carry out once.
#[derive(Debug, Serialize, ToSchema)]
pub struct TradeTriggered {
    pub bot_id: Uuid,
    pub trigger_id: Uuid,
    #[schema(value_type = crate::openapi::schemas::Position)]
    pub position: String,
}

/// `POST /api/v1/bot` `{key_id, pair, strategy}` → 201 `{bot_id, position}`.
#[utoipa::path(
    post,
    path = "/api/v1/bot",
    operation_id = "configure_bot",
    tag = "bots",
    summary = "Configure a bot",
    description = "A user may configure at most `BOT_MAX_PER_USER` bots (20 by default); one \
        more is a 409 naming `bots per user` and the limit. One user's configurations are \
        decided one at a time, so concurrent requests cannot pass the quota together.",
    security(("bearer" = [])),
    request_body = ConfigureRequest,
    responses(
        (status = 201, description = "Configured", body = BotConfigured),
        (status = 400, description = "Unreadable JSON", body = ErrorResponse),
        (status = 403, description = "Not the caller's key, or the caller is an auditor", body = ErrorResponse),
        (status = 404, description = "No such key", body = ErrorResponse),
        (status = 409, description = "The key is disconnected, or the caller has \
            `BOT_MAX_PER_USER` bots already (`bots per user: the limit is …`)", body = ErrorResponse),
        (status = 422, description = "A field is invalid or out of bounds (e.g. `pair`, `strategy.quote_amount` above `BOT_MAX_QUOTE_AMOUNT`, `strategy.interval_secs` below `BOT_MIN_INTERVAL_SECS`; see the `Strategy` schema)", body = ErrorResponse),
    ),
)]
pub async fn configure(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    JsonBody(request): JsonBody<ConfigureRequest>,
) -> Result<(StatusCode, Json<BotConfigured>), ApiError> {
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
        Json(BotConfigured {
            bot_id,
            position: position.to_string(),
        }),
    ))
}

/// `POST /api/v1/bot/{bot_id}/start` → 202: the bot runner does the rest.
#[utoipa::path(
    post,
    path = "/api/v1/bot/{bot_id}/start",
    operation_id = "start_bot",
    tag = "bots",
    summary = "Start a bot",
    description = "Records the request; the bot runner starts the bot and records `bot.started`.",
    security(("bearer" = [])),
    params(("bot_id" = Uuid, Path, description = "The bot")),
    responses(
        (status = 202, description = "Requested", body = BotStateRequested),
        (status = 400, description = "A malformed `bot_id`", body = ErrorResponse),
        (status = 403, description = "Not the caller's bot", body = ErrorResponse),
        (status = 404, description = "No such bot", body = ErrorResponse),
        (status = 409, description = "The bot's state or its key does not allow it (the key must be connected and tested)", body = ErrorResponse),
    ),
)]
pub async fn start(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(bot_id): Path<String>,
) -> Result<(StatusCode, Json<BotStateRequested>), ApiError> {
    let bot_id = parse_id("bot_id", &bot_id)?;
    let metadata = context.metadata(Some(caller.actor()), "bot.request_start");
    let position = state
        .commands
        .request_bot_start(caller.actor(), bot_id, &metadata)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(BotStateRequested {
            bot_id,
            state: "starting",
            position: position.to_string(),
        }),
    ))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StopRequest {
    /// 1 to 500 characters once trimmed.
    #[schema(pattern = "{NON_BLANK_LINE}", min_length = 1, max_length = 500)]
    reason: Option<String>,
}

/// `POST /api/v1/bot/{bot_id}/stop` `{reason?}` → 202.
#[utoipa::path(
    post,
    path = "/api/v1/bot/{bot_id}/stop",
    operation_id = "stop_bot",
    tag = "bots",
    summary = "Stop a bot",
    description = "Records the request; the bot runner stops the bot and records `bot.stopped`. \
        The body is optional.",
    security(("bearer" = [])),
    params(("bot_id" = Uuid, Path, description = "The bot")),
    request_body(content = Option<StopRequest>, description = "Optional; an empty body means no reason"),
    responses(
        (status = 202, description = "Requested", body = BotStateRequested),
        (status = 400, description = "Unreadable JSON or a malformed `bot_id`", body = ErrorResponse),
        (status = 403, description = "Not the caller's bot", body = ErrorResponse),
        (status = 404, description = "No such bot", body = ErrorResponse),
        (status = 409, description = "The bot's state does not allow it", body = ErrorResponse),
        (status = 422, description = "A field is invalid", body = ErrorResponse),
    ),
)]
pub async fn stop(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(bot_id): Path<String>,
    OptionalJsonBody(request): OptionalJsonBody<StopRequest>,
) -> Result<(StatusCode, Json<BotStateRequested>), ApiError> {
    let bot_id = parse_id("bot_id", &bot_id)?;
    let metadata = context.metadata(Some(caller.actor()), "bot.request_stop");
    let position = state
        .commands
        .request_bot_stop(caller.actor(), bot_id, request.reason, &metadata)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(BotStateRequested {
            bot_id,
            state: "stopping",
            position: position.to_string(),
        }),
    ))
}

/// `POST /api/v1/bot/{bot_id}/trigger-trade` → 202 `{bot_id, trigger_id, position}`.
#[utoipa::path(
    post,
    path = "/api/v1/bot/{bot_id}/trigger-trade",
    tag = "bots",
    summary = "Make a running bot trade now",
    description = "Records a trigger; the bot runner trades once for it. A bot accepts at most \
        `BOT_TRIGGERS_PER_MINUTE` triggers (6 by default) within any 60 seconds and holds at \
        most `BOT_MAX_PENDING_TRIGGERS` (10) not yet traded; one more is a 429 naming the \
        limit (`trigger rate per bot`, `pending triggers per bot`), with `Retry-After`.",
    security(("bearer" = [])),
    params(("bot_id" = Uuid, Path, description = "The bot")),
    responses(
        (status = 202, description = "Triggered", body = TradeTriggered),
        (status = 400, description = "A malformed `bot_id`", body = ErrorResponse),
        (status = 403, description = "Not the caller's bot", body = ErrorResponse),
        (status = 404, description = "No such bot", body = ErrorResponse),
        (status = 409, description = "The bot is not running", body = ErrorResponse),
        (status = 429, description = "The bot's trigger rate (`BOT_TRIGGERS_PER_MINUTE`) or \
            its pending triggers (`BOT_MAX_PENDING_TRIGGERS`) are used up (or too many requests \
            from this client); retry after `Retry-After` seconds", body = ErrorResponse,
            headers(("retry-after" = String, description = "Seconds to wait before retrying"))),
    ),
)]
pub async fn trigger_trade(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(bot_id): Path<String>,
) -> Result<(StatusCode, Json<TradeTriggered>), ApiError> {
    let bot_id = parse_id("bot_id", &bot_id)?;
    let metadata = context.metadata(Some(caller.actor()), "bot.trigger_trade");
    let (trigger_id, position) = state
        .commands
        .trigger_bot_trade(caller.actor(), bot_id, &metadata)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(TradeTriggered {
            bot_id,
            trigger_id,
            position: position.to_string(),
        }),
    ))
}
