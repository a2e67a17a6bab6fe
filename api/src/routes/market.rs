//! Trading data from the exchange: a pair's ticker and candles, a key's
//! balances (see [`crate::market`] for the caching).

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use domain::{Decimal, Pair};
use exchange::{ExchangeError, Interval};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use command_side::credentials::load_credentials;
use projections::read_models;

use crate::caller::Caller;
use crate::error::{ApiError, ErrorResponse};
use crate::extract::QueryParams;
use crate::openapi::schemas;
use crate::routes::queries::{database, Params, ReadYourWrites};
use crate::state::AppState;

/// What an exchange failure is to a client: the exchange down is a 503;
/// a refusal (an unknown pair, a revoked key) a 422 naming `field`.
fn exchange_error(field: &str, error: ExchangeError) -> ApiError {
    match error {
        ExchangeError::Unavailable(reason) => {
            ApiError::Unavailable(format!("the exchange did not answer: {reason}"))
        }
        ExchangeError::Rejected(reason) => {
            ApiError::validation(field, format!("the exchange refused: {reason}"))
        }
    }
}

fn required_pair(params: &Params) -> Result<Pair, ApiError> {
    let text = params.pair()?.ok_or_else(|| ApiError::BadRequest {
        field: Some("pair".to_string()),
        reason: "is required, e.g. XBT/USD".to_string(),
    })?;
    Pair::parse(&text).map_err(|error| ApiError::BadRequest {
        field: Some("pair".to_string()),
        reason: error.to_string(),
    })
}

/// The pair a market query is about.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct PairQuery {
    /// `BASE/QUOTE`, e.g. `XBT/USD`.
    #[param(value_type = schemas::Pair)]
    pair: String,
}

/// A pair's latest price.
#[derive(Serialize, ToSchema)]
pub struct TickerView {
    #[schema(value_type = schemas::Pair)]
    pair: String,
    /// The last trade's price, in the quote currency.
    #[schema(value_type = schemas::ExactDecimal)]
    last: Decimal,
    /// When it was read from the exchange (cached up to 2 s).
    read_at: DateTime<Utc>,
}

/// `GET /api/v1/market/ticker?pair=`.
#[utoipa::path(
    get,
    path = "/api/v1/market/ticker",
    operation_id = "ticker",
    tag = "market",
    summary = "A pair's latest price, from the exchange",
    description = "Read from the exchange the bots trade on, cached up to 2 s per pair.",
    security(("bearer" = [])),
    params(PairQuery),
    responses(
        (status = 200, description = "The price", body = TickerView),
        (status = 400, description = "A missing, malformed or unknown parameter", body = ErrorResponse),
        (status = 422, description = "The exchange refused the pair (e.g. `EQuery:Unknown asset pair`)", body = ErrorResponse),
    ),
)]
pub async fn ticker(
    State(state): State<AppState>,
    _caller: Caller,
    QueryParams(raw): QueryParams,
) -> Result<Json<TickerView>, ApiError> {
    let params = Params::new(raw, &["pair"])?;
    let pair = required_pair(&params)?;
    let read = state
        .market
        .ticker(state.commands.settings.exchange.as_ref(), &pair)
        .await
        .map_err(|e| exchange_error("pair", e))?;
    Ok(Json(TickerView {
        pair: pair.as_str().to_string(),
        last: read.value.last,
        read_at: read.read_at,
    }))
}

/// The candles a query asks for.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct CandleQuery {
    /// `BASE/QUOTE`, e.g. `XBT/USD`.
    #[param(value_type = schemas::Pair)]
    pair: String,
    /// The candles' length.
    #[param(value_type = schemas::CandleInterval)]
    interval: String,
    /// Only candles starting after this time (RFC 3339); without it, the
    /// last 720.
    since: Option<DateTime<Utc>>,
}

/// One candle: the interval starting at `time`.
#[derive(Serialize, ToSchema)]
pub struct CandleView {
    time: DateTime<Utc>,
    #[schema(value_type = schemas::ExactDecimal)]
    open: Decimal,
    #[schema(value_type = schemas::ExactDecimal)]
    high: Decimal,
    #[schema(value_type = schemas::ExactDecimal)]
    low: Decimal,
    #[schema(value_type = schemas::ExactDecimal)]
    close: Decimal,
    /// In the base currency.
    #[schema(value_type = schemas::ExactDecimal)]
    volume: Decimal,
    /// The volume-weighted average price, where the exchange states it.
    #[schema(value_type = Option<schemas::ExactDecimal>)]
    vwap: Option<Decimal>,
    /// How many trades, where the exchange states it.
    trades: Option<u64>,
}

/// A pair's candles, oldest first; the last is the interval in progress.
#[derive(Serialize, ToSchema)]
pub struct CandleList {
    #[schema(value_type = schemas::Pair)]
    pair: String,
    #[schema(value_type = schemas::CandleInterval)]
    interval: &'static str,
    candles: Vec<CandleView>,
    /// When they were read from the exchange (cached up to 10 s).
    read_at: DateTime<Utc>,
}

/// `GET /api/v1/market/ohlcv?pair=&interval=&since=`.
#[utoipa::path(
    get,
    path = "/api/v1/market/ohlcv",
    operation_id = "ohlcv",
    tag = "market",
    summary = "A pair's OHLCV candles, from the exchange",
    description = "At most 720, oldest first; the last is the interval in progress. The paper \
        exchange derives them from its seed (the same seed gives the same candles on every \
        instance); Kraken's come from its public OHLC endpoint. Cached up to 10 s.",
    security(("bearer" = [])),
    params(CandleQuery),
    responses(
        (status = 200, description = "The candles", body = CandleList),
        (status = 400, description = "A missing, malformed or unknown parameter", body = ErrorResponse),
        (status = 422, description = "The exchange refused the pair", body = ErrorResponse),
    ),
)]
pub async fn ohlcv(
    State(state): State<AppState>,
    _caller: Caller,
    QueryParams(raw): QueryParams,
) -> Result<Json<CandleList>, ApiError> {
    let params = Params::new(raw, &["pair", "interval", "since"])?;
    let pair = required_pair(&params)?;
    let interval = match params.get("interval") {
        Some(text) => Interval::parse(text).ok_or_else(|| ApiError::BadRequest {
            field: Some("interval".to_string()),
            reason: "must be one of 1m, 5m, 15m, 1h, 4h, 1d".to_string(),
        })?,
        None => {
            return Err(ApiError::BadRequest {
                field: Some("interval".to_string()),
                reason: "is required: one of 1m, 5m, 15m, 1h, 4h, 1d".to_string(),
            })
        }
    };
    let since = params.time("since")?;
    let read = state
        .market
        .candles(
            state.commands.settings.exchange.as_ref(),
            &pair,
            interval,
            since,
        )
        .await
        .map_err(|e| exchange_error("pair", e))?;
    Ok(Json(CandleList {
        pair: pair.as_str().to_string(),
        interval: interval.as_str(),
        candles: read
            .value
            .candles
            .into_iter()
            .map(|c| CandleView {
                time: c.time,
                open: c.open,
                high: c.high,
                low: c.low,
                close: c.close,
                volume: c.volume,
                vwap: c.vwap,
                trades: c.trades,
            })
            .collect(),
        read_at: read.read_at,
    }))
}

/// Whose balances.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct BalanceQuery {
    /// One of the caller's keys; without it, the one they tested last.
    key_id: Option<Uuid>,
}

/// One asset's balance.
#[derive(Serialize, ToSchema)]
pub struct BalanceView {
    /// The exchange's asset code (`USD`, `XBT`, `ZUSD`, …).
    asset: String,
    #[schema(value_type = schemas::ExactDecimal)]
    amount: Decimal,
}

/// A key's balances on its exchange.
#[derive(Serialize, ToSchema)]
pub struct BalanceList {
    key_id: Uuid,
    /// The exchange the key belongs to.
    exchange: String,
    /// The adapter that answered: `paper` (simulated) or `kraken`.
    read_from: &'static str,
    balances: Vec<BalanceView>,
    /// When they were read from the exchange (cached up to 10 s per key).
    read_at: DateTime<Utc>,
}

/// `GET /api/v1/trading/balances?key_id=`.
#[utoipa::path(
    get,
    path = "/api/v1/trading/balances",
    operation_id = "balances",
    tag = "trading",
    summary = "A key's balances, from the exchange",
    description = "Read from the exchange with the key's credential (opened only for the \
        call), cached up to 10 s per key. Only the caller's own keys: another's, a \
        disconnected one or none at all is a 404.",
    security(("bearer" = [])),
    params(BalanceQuery, ReadYourWrites),
    responses(
        (status = 200, description = "The balances", body = BalanceList),
        (status = 400, description = "A malformed or unknown parameter", body = ErrorResponse),
        (status = 404, description = "No such key of the caller's, or none connected", body = ErrorResponse),
        (status = 422, description = "The exchange refused the key (e.g. revoked)", body = ErrorResponse),
    ),
)]
pub async fn balances(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(raw): QueryParams,
) -> Result<Json<BalanceList>, ApiError> {
    let params = Params::new(raw, &["key_id"])?;
    let asked = params.uuid("key_id")?;
    params.wait_for(&state, &read_models::EXCHANGE_KEYS).await?;
    let key: Option<(Uuid, String)> = sqlx::query_as(
        "SELECT key_id, exchange FROM exchange_keys \
          WHERE owner_id = $1 AND status <> 'disconnected' \
            AND ($2::uuid IS NULL OR key_id = $2) \
          ORDER BY (status = 'tested') DESC, updated_at DESC LIMIT 1",
    )
    .bind(caller.user_id)
    .bind(asked)
    .fetch_optional(state.pool())
    .await
    .map_err(database)?;
    let Some((key_id, exchange_name)) = key else {
        return Err(ApiError::NotFound(match asked {
            Some(key_id) => format!("no exchange key {key_id} of yours"),
            None => "you have no exchange key connected".to_string(),
        }));
    };
    let commands = state.commands.clone();
    let read = state
        .market
        .balances(commands.settings.exchange.as_ref(), key_id, async {
            match load_credentials(&commands.pool, &commands.settings.secrets, key_id).await {
                Ok(Some(credentials)) => Ok(credentials),
                Ok(None) => Err(ExchangeError::Rejected(
                    "the key's credential is gone (disconnected)".to_string(),
                )),
                Err(error) => Err(ExchangeError::Unavailable(format!(
                    "the key's credential cannot be opened: {error}"
                ))),
            }
        })
        .await
        .map_err(|e| exchange_error("key_id", e))?;
    Ok(Json(BalanceList {
        key_id,
        exchange: exchange_name,
        read_from: commands.settings.exchange.name(),
        balances: read
            .value
            .into_iter()
            .map(|(asset, amount)| BalanceView { asset, amount })
            .collect(),
        read_at: read.read_at,
    }))
}
