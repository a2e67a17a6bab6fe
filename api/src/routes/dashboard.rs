//! `GET /api/v1/dashboard`: one read of what a trader's home page shows.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use domain::Decimal;
use serde::Serialize;
use utoipa::ToSchema;

use projections::read_models;

use crate::caller::Caller;
use crate::error::{ApiError, ErrorResponse};
use crate::extract::QueryParams;
use crate::openapi::schemas;
use crate::routes::queries::{database, Params, ReadYourWrites, TradeView};
use crate::state::AppState;

/// How many of the last trades the dashboard shows.
pub const LAST_TRADES: i64 = 5;

/// Realised P&L, fees and fills in one quote currency.
#[derive(Serialize, ToSchema, sqlx::FromRow)]
pub struct PnlView {
    /// The quote currency (`USD`, `EUR`, …).
    quote: String,
    #[schema(value_type = schemas::ExactDecimal)]
    realised_pnl: Decimal,
    #[schema(value_type = schemas::ExactDecimal)]
    fees: Decimal,
    trades: i64,
}

/// The caller's bots by state.
#[derive(Serialize, ToSchema)]
pub struct BotCounts {
    total: i64,
    /// Each state any of the caller's bots is in (`configured`, `starting`,
    /// `running`, `stopping`, `stopped`), with how many.
    by_state: BTreeMap<String, i64>,
}

/// What a trader's home page shows.
#[derive(Serialize, ToSchema)]
pub struct Dashboard {
    bots: BotCounts,
    /// Realised P&L of fills executed today (UTC), per quote currency.
    realised_today: Vec<PnlView>,
    /// Realised P&L of every fill, per quote currency.
    realised_total: Vec<PnlView>,
    /// The last five fills, newest first.
    last_trades: Vec<TradeView>,
    unread_notifications: i64,
    /// The UTC day `realised_today` covers.
    #[schema(value_type = String, format = Date)]
    today: chrono::NaiveDate,
    as_of: DateTime<Utc>,
}

#[utoipa::path(
    get,
    path = "/api/v1/dashboard",
    operation_id = "dashboard",
    tag = "trading",
    summary = "The caller's bots by state, realised P&L today and in total, last trades, unread \
        notifications",
    description = "Read from the `bot_status`, `daily_pnl`, `trades` and `notifications` read \
        models (with `min_position`, once all of them have reached it). Today is the UTC day.",
    security(("bearer" = [])),
    params(ReadYourWrites),
    responses(
        (status = 200, description = "The dashboard", body = Dashboard),
        (status = 400, description = "An unknown or malformed query parameter", body = ErrorResponse),
    ),
)]
pub async fn dashboard(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(raw): QueryParams,
) -> Result<Json<Dashboard>, ApiError> {
    let params = Params::new(raw, &[])?;
    for model in [
        &read_models::BOT_STATUS,
        &read_models::DAILY_PNL,
        &read_models::TRADES,
        &read_models::NOTIFICATIONS,
    ] {
        params.wait_for(&state, model).await?;
    }
    let as_of = Utc::now();
    let today = as_of.date_naive();
    // One snapshot for every part, so the parts agree (the P&L today and
    // in total, the counts and the last trades all as of one moment).
    let mut snapshot = state.pool().begin().await.map_err(database)?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *snapshot)
        .await
        .map_err(database)?;
    let states: Vec<(String, i64)> = sqlx::query_as(
        "SELECT state, count(*) FROM bot_status WHERE owner_id = $1 GROUP BY state ORDER BY state",
    )
    .bind(caller.user_id)
    .fetch_all(&mut *snapshot)
    .await
    .map_err(database)?;
    let pnl = |only_today: bool| {
        sqlx::query_as::<_, PnlView>(
            "SELECT quote, sum(realised_pnl) AS realised_pnl, sum(fees) AS fees, \
                    sum(trades)::int8 AS trades \
               FROM daily_pnl WHERE user_id = $1 AND (NOT $2 OR day = $3) \
              GROUP BY quote ORDER BY quote",
        )
        .bind(caller.user_id)
        .bind(only_today)
        .bind(today)
    };
    let realised_today = pnl(true)
        .fetch_all(&mut *snapshot)
        .await
        .map_err(database)?;
    let realised_total = pnl(false)
        .fetch_all(&mut *snapshot)
        .await
        .map_err(database)?;
    let last_trades = sqlx::query_as::<_, TradeView>(
        "SELECT trade_id, user_id, bot_id, order_id, pair, side, quantity, price, fee, executed_at \
           FROM trades WHERE user_id = $1 ORDER BY trade_id DESC LIMIT $2",
    )
    .bind(caller.user_id)
    .bind(LAST_TRADES)
    .fetch_all(&mut *snapshot)
    .await
    .map_err(database)?;
    let unread_notifications: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM notifications WHERE user_id = $1 AND read_at IS NULL",
    )
    .bind(caller.user_id)
    .fetch_one(&mut *snapshot)
    .await
    .map_err(database)?;
    snapshot.commit().await.map_err(database)?;
    Ok(Json(Dashboard {
        bots: BotCounts {
            total: states.iter().map(|(_, n)| n).sum(),
            by_state: states.into_iter().collect(),
        },
        realised_today,
        realised_total,
        last_trades,
        unread_notifications,
        today,
        as_of,
    }))
}
