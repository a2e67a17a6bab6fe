//! The query endpoints. They read only the read models, and each accepts
//! `min_position=<token from a command response>`: the answer waits, at
//! most `QUERY_WAIT_MAX_MS`, until the read model has handled that
//! position, and is a 503 with `Retry-After` past the bound. A position
//! beyond the head of the log (no event stands there or later, so no
//! command answered it) is a 400 at once.
//!
//! Every list pages: `limit` (1 to [`MAX_PAGE`], default [`DEFAULT_PAGE`])
//! and `cursor`, the `next_cursor` of the previous page (`null` on the
//! last). Trades page by `trade_id`; the other lists, in a fixed order, by
//! offset.
//!
//! A parameter given with no value (`?cursor=`) is a 400 naming it, like
//! any other malformed value: ignoring it would, for `min_position`,
//! silently skip the wait the client asked for.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::Json;
use chrono::{DateTime, Utc};
use domain::Permission;
use event_log::Position;
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use projections::read_models::{self, ReadModel};

use crate::caller::Caller;
use crate::error::{ApiError, ErrorResponse};
use crate::extract::{parse_id, QueryParams};
use crate::openapi::schemas;
use crate::state::AppState;

pub const MAX_PAGE: i64 = 500;
pub const DEFAULT_PAGE: i64 = 100;

/// The parameter every query takes, for the document; [`Params`] reads it.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ReadYourWrites {
    /// A `position` from a command response: the answer waits (at most
    /// `QUERY_WAIT_MAX_MS`) until the read model has handled it, else 503;
    /// a position no command answered (beyond the head of the log) is a 400.
    #[param(value_type = Option<schemas::Position>)]
    min_position: Option<String>,
}

/// Paging, for the document; [`Params`] reads it.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct Page {
    /// Rows per page, 1 to 500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
    /// The `next_cursor` of the previous page (a whole number from 1, as
    /// the previous page wrote it; anything else is a 400).
    #[param(pattern = r"^[1-9][0-9]{0,18}$")]
    cursor: Option<String>,
}

/// The trade filters, for the document; [`Params`] reads them.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct TradeFilter {
    /// Only this bot's trades.
    bot_id: Option<Uuid>,
    /// Only this pair's trades, e.g. `XBT/USD`.
    #[param(value_type = Option<schemas::Pair>)]
    pair: Option<String>,
    /// Executed at or after this time (RFC 3339).
    from: Option<DateTime<Utc>>,
    /// Executed before this time (RFC 3339).
    to: Option<DateTime<Utc>>,
}

/// Query-string parameters, checked against what an endpoint accepts.
pub(crate) struct Params(HashMap<String, String>);

impl Params {
    pub(crate) fn new(raw: HashMap<String, String>, allowed: &[&str]) -> Result<Self, ApiError> {
        if let Some(unknown) = raw
            .keys()
            .find(|name| *name != "min_position" && !allowed.contains(&name.as_str()))
        {
            return Err(ApiError::BadRequest {
                field: Some(unknown.clone()),
                reason: "is not a parameter of this endpoint".to_string(),
            });
        }
        if let Some(empty) = raw
            .iter()
            .find_map(|(name, value)| value.is_empty().then_some(name))
        {
            return Err(ApiError::BadRequest {
                field: Some(empty.clone()),
                reason: "must not be empty (leave the parameter out instead)".to_string(),
            });
        }
        Ok(Params(raw))
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// A pair to filter by, of the documented shape (`Pair`).
    pub(crate) fn pair(&self) -> Result<Option<String>, ApiError> {
        self.get("pair")
            .map(|text| {
                let part = |p: &str| {
                    (2..=10).contains(&p.len())
                        && p.bytes()
                            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
                };
                match text.split_once('/') {
                    Some((base, quote)) if part(base) && part(quote) => Ok(text.to_string()),
                    _ => Err(ApiError::BadRequest {
                        field: Some("pair".to_string()),
                        reason: "must be BASE/QUOTE, each 2 to 10 upper-case letters or digits"
                            .to_string(),
                    }),
                }
            })
            .transpose()
    }

    pub(crate) fn uuid(&self, name: &'static str) -> Result<Option<Uuid>, ApiError> {
        self.get(name).map(|v| parse_id(name, v)).transpose()
    }

    pub(crate) fn time(&self, name: &'static str) -> Result<Option<DateTime<Utc>>, ApiError> {
        self.get(name)
            .map(|v| {
                DateTime::parse_from_rfc3339(v)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|_| ApiError::BadRequest {
                        field: Some(name.to_string()),
                        reason: "must be an RFC 3339 time, e.g. 2026-11-23T08:00:00Z".to_string(),
                    })
            })
            .transpose()
    }

    pub(crate) fn limit(&self) -> Result<i64, ApiError> {
        match self.get("limit") {
            None => Ok(DEFAULT_PAGE),
            Some(text) => match text.parse::<i64>() {
                Ok(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
                _ => Err(ApiError::BadRequest {
                    field: Some("limit".to_string()),
                    reason: format!("must be a whole number from 1 to {MAX_PAGE}"),
                }),
            },
        }
    }

    /// A page cursor, as the previous page gave it: the last row's
    /// `trade_id`, or the offset of the next row. Never 0 or negative.
    /// Of the documented shape: 1 to 19 digits, the first not 0 (beyond
    /// the largest cursor a page can give, it reads as that one).
    pub(crate) fn cursor(&self) -> Result<Option<i64>, ApiError> {
        self.get("cursor")
            .map(|text| match text.as_bytes() {
                [first, rest @ ..]
                    if (b'1'..=b'9').contains(first)
                        && rest.len() <= 18
                        && rest.iter().all(u8::is_ascii_digit) =>
                {
                    // 19 digits always fit a u64.
                    Ok(text
                        .parse::<u64>()
                        .map_or(i64::MAX, |n| i64::try_from(n).unwrap_or(i64::MAX)))
                }
                _ => Err(ApiError::BadRequest {
                    field: Some("cursor".to_string()),
                    reason: "must be a next_cursor from a previous page (a whole number from 1)"
                        .to_string(),
                }),
            })
            .transpose()
    }

    /// The `limit` and the offset (from `cursor`) of an offset-paged list.
    pub(crate) fn offset_page(&self) -> Result<OffsetPage, ApiError> {
        Ok(OffsetPage {
            limit: self.limit()?,
            offset: self.cursor()?.unwrap_or(0),
        })
    }

    /// Waits for `read_model` to reach `min_position`, if one was given.
    pub(crate) async fn wait_for(
        &self,
        state: &AppState,
        read_model: &ReadModel,
    ) -> Result<(), ApiError> {
        let Some(token) = self.get("min_position") else {
            return Ok(());
        };
        let position: Position = token.parse().map_err(|reason| ApiError::BadRequest {
            field: Some("min_position".to_string()),
            reason,
        })?;
        let unavailable =
            |e: sqlx::Error| ApiError::Unavailable(format!("database unavailable: {e}"));
        if event_log::lag::has_reached(state.pool(), read_model.name, position)
            .await
            .map_err(unavailable)?
        {
            return Ok(());
        }
        // Not reached: a position no event stands at or after would never
        // be, and waiting for it would only hold the connection.
        if !event_log::lag::is_in_log(state.pool(), position)
            .await
            .map_err(unavailable)?
        {
            return Err(ApiError::BadRequest {
                field: Some("min_position".to_string()),
                reason: "is beyond the head of the log: not a position a command answered"
                    .to_string(),
            });
        }
        let reached = event_log::lag::wait_until_reached(
            state.pool(),
            read_model.name,
            position,
            state.http.query_wait_max,
        )
        .await
        .map_err(unavailable)?;
        if reached {
            Ok(())
        } else {
            Err(ApiError::Unavailable(format!(
                "the {} read model has not reached position {position} yet; retry",
                read_model.name
            )))
        }
    }
}

/// Where an offset-paged list starts and how many rows it holds.
#[derive(Clone, Copy)]
pub(crate) struct OffsetPage {
    pub(crate) limit: i64,
    pub(crate) offset: i64,
}

impl OffsetPage {
    /// How many rows to read: one more than the page, to know whether
    /// another page follows.
    pub(crate) fn rows_to_read(self) -> i64 {
        self.limit + 1
    }

    /// The page of `rows` (read with [`Self::rows_to_read`]) and the
    /// cursor of the next one, `None` when none follows.
    pub(crate) fn split<T>(self, mut rows: Vec<T>) -> (Vec<T>, Option<String>) {
        let more = rows.len() as i64 > self.limit;
        rows.truncate(self.limit as usize);
        let next = more
            .then(|| self.offset.checked_add(self.limit))
            .flatten()
            .map(|next| next.to_string());
        (rows, next)
    }
}

/// Who holds `trading.read_all` (admins, auditors) reads everyone's data;
/// the others only their own.
fn sees_all(caller: &Caller) -> bool {
    caller.has(Permission::TradingReadAll)
}

/// The rows a list reads: `(true, _)` everyone's, `(false, owner)` one
/// user's. A `user_id` narrows a `trading.read_all` caller's list to that
/// user; another's id narrows anyone else's to nothing.
fn scope(caller: &Caller, params: &Params) -> Result<(bool, Uuid), ApiError> {
    let owner = params.uuid("user_id")?;
    Ok(match (sees_all(caller), owner) {
        (true, None) => (true, caller.user_id),
        (true, Some(owner)) => (false, owner),
        (false, Some(owner)) if owner != caller.user_id => (false, Uuid::nil()),
        (false, _) => (false, caller.user_id),
    })
}

/// The owner filter of the lists, for the document; [`Params`] reads it.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct OwnerFilter {
    /// Only this user's rows: for admins and auditors (`trading.read_all`)
    /// any user's; for anyone else their own id (another's gives nothing).
    user_id: Option<Uuid>,
}

pub(crate) fn database(error: sqlx::Error) -> ApiError {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => {
            ApiError::Unavailable(format!("database unavailable: {error}"))
        }
        other => ApiError::Internal(other.into()),
    }
}

/// A user, from the `users` read model.
#[derive(Serialize, sqlx::FromRow, ToSchema)]
pub struct UserView {
    user_id: Uuid,
    /// `null` once the user is erased.
    email: Option<String>,
    display_name: Option<String>,
    #[schema(value_type = schemas::Role)]
    role: String,
    onboarded: bool,
    #[schema(value_type = Option<schemas::RiskProfile>)]
    risk_profile: Option<String>,
    #[schema(value_type = Option<schemas::Experience>)]
    experience: Option<String>,
    created_at: DateTime<Utc>,
    last_login_at: Option<DateTime<Utc>>,
    /// When the user's personal data was erased (`POST
    /// /api/v1/admin/users/{user_id}/erase`).
    erased_at: Option<DateTime<Utc>>,
    /// Whether the email was verified with its mailed code.
    email_verified: bool,
    /// When an admin disabled the account; `null` while it is enabled.
    disabled_at: Option<DateTime<Utc>>,
    /// An IANA time zone name, once the user set one.
    timezone: Option<String>,
    /// Which notifications the user wants by email, once set.
    #[schema(value_type = Option<schemas::NotificationPreferences>)]
    notifications: Option<Value>,
}

const USER_COLUMNS: &str = "user_id, email, display_name, role, onboarded, risk_profile, \
     experience, created_at, last_login_at, erased_at, email_verified, disabled_at, timezone, \
     notifications";

/// `GET /api/v1/user/me`.
#[utoipa::path(
    get,
    path = "/api/v1/user/me",
    operation_id = "get_me",
    tag = "users",
    summary = "The caller's user",
    security(("bearer" = [])),
    params(ReadYourWrites),
    responses(
        (status = 200, description = "The caller's `users` row", body = UserView),
        (status = 400, description = "An unknown or malformed query parameter", body = ErrorResponse),
        (status = 404, description = "Not in the read model (yet)", body = ErrorResponse),
    ),
)]
pub async fn me(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(raw): QueryParams,
) -> Result<Json<UserView>, ApiError> {
    let params = Params::new(raw, &[])?;
    params.wait_for(&state, &read_models::USERS).await?;
    sqlx::query_as::<_, UserView>(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE user_id = $1"
    ))
    .bind(caller.user_id)
    .fetch_optional(state.pool())
    .await
    .map_err(database)?
    .map(Json)
    .ok_or_else(|| ApiError::NotFound("user not found".to_string()))
}

/// A page of users.
#[derive(Serialize, ToSchema)]
pub struct UserPage {
    users: Vec<UserView>,
    /// The `cursor` of the next page; `null` on the last.
    next_cursor: Option<String>,
}

/// The user search, for the document; [`Params`] reads it.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct UserSearch {
    /// Users whose email or display name contains this text, ignoring
    /// case (1 to 100 characters).
    #[param(min_length = 1, max_length = 100)]
    q: Option<String>,
    /// Only users holding this role.
    #[param(value_type = Option<schemas::Role>)]
    role: Option<String>,
    /// `active` or `disabled`.
    #[param(value_type = Option<schemas::AccountState>)]
    status: Option<String>,
}

/// `GET /api/v1/admin/users` (staff): users, oldest first, searched and
/// paged.
#[utoipa::path(
    get,
    path = "/api/v1/admin/users",
    operation_id = "list_users",
    tag = "admin",
    summary = "Users, oldest first, searched (admins and support)",
    security(("bearer" = [])),
    params(UserSearch, Page, ReadYourWrites),
    responses(
        (status = 200, description = "A page of users", body = UserPage),
        (status = 400, description = "An unknown or malformed query parameter", body = ErrorResponse),
    ),
)]
pub async fn admin_users(
    State(state): State<AppState>,
    _caller: Caller,
    QueryParams(raw): QueryParams,
) -> Result<Json<UserPage>, ApiError> {
    let params = Params::new(raw, &["q", "role", "status", "limit", "cursor"])?;
    let search = match params.get("q") {
        Some(q) if (1..=100).contains(&q.chars().count()) && !q.chars().any(char::is_control) => {
            Some(format!(
                "%{}%",
                q.to_lowercase()
                    .replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_")
            ))
        }
        Some(_) => {
            return Err(ApiError::BadRequest {
                field: Some("q".to_string()),
                reason: "must be 1 to 100 characters, none a control character".to_string(),
            })
        }
        None => None,
    };
    let role = match params.get("role") {
        Some(text) => Some(
            domain::Role::parse(text)
                .ok_or_else(|| ApiError::BadRequest {
                    field: Some("role".to_string()),
                    reason: "expected user, support, admin or auditor".to_string(),
                })?
                .as_str(),
        ),
        None => None,
    };
    let disabled = match params.get("status") {
        Some("active") => Some(false),
        Some("disabled") => Some(true),
        Some(_) => {
            return Err(ApiError::BadRequest {
                field: Some("status".to_string()),
                reason: "expected active or disabled".to_string(),
            })
        }
        None => None,
    };
    let page = params.offset_page()?;
    params.wait_for(&state, &read_models::USERS).await?;
    let users = sqlx::query_as::<_, UserView>(&format!(
        "SELECT {USER_COLUMNS} FROM users \
         WHERE ($3::text IS NULL OR lower(email) LIKE $3 OR lower(display_name) LIKE $3) \
           AND ($4::text IS NULL OR role = $4) \
           AND ($5::boolean IS NULL OR (disabled_at IS NOT NULL) = $5) \
         ORDER BY created_at, user_id OFFSET $1 LIMIT $2"
    ))
    .bind(page.offset)
    .bind(page.rows_to_read())
    .bind(search)
    .bind(role)
    .bind(disabled)
    .fetch_all(state.pool())
    .await
    .map_err(database)?;
    let (users, next_cursor) = page.split(users);
    Ok(Json(UserPage { users, next_cursor }))
}

/// `GET /api/v1/admin/users/{user_id}` (staff): one user.
#[utoipa::path(
    get,
    path = "/api/v1/admin/users/{user_id}",
    operation_id = "get_user",
    tag = "admin",
    summary = "One user (admins and support)",
    security(("bearer" = [])),
    params(("user_id" = Uuid, Path, description = "The user"), ReadYourWrites),
    responses(
        (status = 200, description = "The user's `users` row", body = UserView),
        (status = 400, description = "A malformed `user_id`, or an unknown or malformed query parameter", body = ErrorResponse),
        (status = 404, description = "No such user (yet)", body = ErrorResponse),
    ),
)]
pub async fn admin_user(
    State(state): State<AppState>,
    _caller: Caller,
    Path(user_id): Path<String>,
    QueryParams(raw): QueryParams,
) -> Result<Json<UserView>, ApiError> {
    let user_id = parse_id("user_id", &user_id)?;
    let params = Params::new(raw, &[])?;
    params.wait_for(&state, &read_models::USERS).await?;
    sqlx::query_as::<_, UserView>(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE user_id = $1"
    ))
    .bind(user_id)
    .fetch_optional(state.pool())
    .await
    .map_err(database)?
    .map(Json)
    .ok_or_else(|| ApiError::NotFound("user not found".to_string()))
}

/// An exchange key, from the `exchange_keys` read model; never its secret.
#[derive(Serialize, sqlx::FromRow, ToSchema)]
pub struct KeyView {
    key_id: Uuid,
    owner_id: Uuid,
    #[schema(example = "kraken")]
    exchange: String,
    label: Option<String>,
    /// Identifies the API key without revealing it.
    fingerprint: String,
    #[schema(value_type = Vec<schemas::KeyPermission>)]
    permissions: Value,
    #[schema(value_type = schemas::KeyStatus)]
    status: String,
    last_test_failure: Option<String>,
    connected_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// A page of exchange keys.
#[derive(Serialize, ToSchema)]
pub struct KeyList {
    keys: Vec<KeyView>,
    /// The `cursor` of the next page; `null` on the last.
    next_cursor: Option<String>,
}

/// `GET /api/v1/kraken/keys`: connected keys, never their secrets.
#[utoipa::path(
    get,
    path = "/api/v1/kraken/keys",
    operation_id = "list_keys",
    tag = "kraken",
    summary = "Connected keys",
    description = "The caller's keys not disconnected (admins and auditors: everyone's), oldest \
        first, paged.",
    security(("bearer" = [])),
    params(OwnerFilter, Page, ReadYourWrites),
    responses(
        (status = 200, description = "A page of keys, oldest first", body = KeyList),
        (status = 400, description = "An unknown or malformed query parameter", body = ErrorResponse),
    ),
)]
pub async fn keys(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(raw): QueryParams,
) -> Result<Json<KeyList>, ApiError> {
    let params = Params::new(raw, &["user_id", "limit", "cursor"])?;
    let (everyone, owner) = scope(&caller, &params)?;
    let page = params.offset_page()?;
    params.wait_for(&state, &read_models::EXCHANGE_KEYS).await?;
    let keys = sqlx::query_as::<_, KeyView>(
        "SELECT key_id, owner_id, exchange, label, fingerprint, permissions, status, \
         last_test_failure, connected_at, updated_at FROM exchange_keys \
         WHERE status <> 'disconnected' AND ($1 OR owner_id = $2) ORDER BY connected_at, key_id \
         OFFSET $3 LIMIT $4",
    )
    .bind(everyone)
    .bind(owner)
    .bind(page.offset)
    .bind(page.rows_to_read())
    .fetch_all(state.pool())
    .await
    .map_err(database)?;
    let (keys, next_cursor) = page.split(keys);
    Ok(Json(KeyList { keys, next_cursor }))
}

/// A bot, from the `bot_status` read model.
#[derive(Serialize, sqlx::FromRow, ToSchema)]
pub struct BotView {
    bot_id: Uuid,
    owner_id: Uuid,
    key_id: Uuid,
    #[schema(value_type = schemas::Pair)]
    pair: String,
    #[schema(value_type = schemas::Strategy)]
    strategy: Value,
    #[schema(value_type = schemas::BotState)]
    state: String,
    trades_executed: i64,
    trades_skipped: i64,
    errors: i64,
    #[schema(value_type = Option<LastTrade>)]
    last_trade: Option<Value>,
    last_skip: Option<String>,
    last_error: Option<String>,
    last_error_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

const BOT_COLUMNS: &str = "bot_id, owner_id, key_id, pair, strategy, state, trades_executed, \
     trades_skipped, errors, last_trade, last_skip, last_error, last_error_at, created_at, updated_at";

/// A bot's last fill, as the `bot_status` projector stores it.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct LastTrade {
    order_id: String,
    #[schema(value_type = schemas::Side)]
    side: String,
    #[schema(value_type = schemas::ExactDecimal)]
    quantity: String,
    #[schema(value_type = schemas::ExactDecimal)]
    price: String,
    #[schema(value_type = schemas::ExactDecimal)]
    fee: String,
    executed_at: DateTime<Utc>,
}

/// A page of bots.
#[derive(Serialize, ToSchema)]
pub struct BotList {
    bots: Vec<BotView>,
    /// The `cursor` of the next page; `null` on the last.
    next_cursor: Option<String>,
}

/// `GET /api/v1/bot`: the caller's bots (an empty list for a new user).
#[utoipa::path(
    get,
    path = "/api/v1/bot",
    operation_id = "list_bots",
    tag = "bots",
    summary = "The caller's bots",
    description = "The caller's bots, oldest first (admins and auditors: everyone's), paged; \
        empty for a new user.",
    security(("bearer" = [])),
    params(OwnerFilter, Page, ReadYourWrites),
    responses(
        (status = 200, description = "A page of bots", body = BotList),
        (status = 400, description = "An unknown or malformed query parameter", body = ErrorResponse),
    ),
)]
pub async fn bots(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(raw): QueryParams,
) -> Result<Json<BotList>, ApiError> {
    let params = Params::new(raw, &["user_id", "limit", "cursor"])?;
    let (everyone, owner) = scope(&caller, &params)?;
    let page = params.offset_page()?;
    params.wait_for(&state, &read_models::BOT_STATUS).await?;
    let bots = sqlx::query_as::<_, BotView>(&format!(
        "SELECT {BOT_COLUMNS} FROM bot_status WHERE $1 OR owner_id = $2 \
          ORDER BY created_at, bot_id OFFSET $3 LIMIT $4"
    ))
    .bind(everyone)
    .bind(owner)
    .bind(page.offset)
    .bind(page.rows_to_read())
    .fetch_all(state.pool())
    .await
    .map_err(database)?;
    let (bots, next_cursor) = page.split(bots);
    Ok(Json(BotList { bots, next_cursor }))
}

/// `GET /api/v1/bot/{bot_id}/status`; another user's bot is a 404.
#[utoipa::path(
    get,
    path = "/api/v1/bot/{bot_id}/status",
    tag = "bots",
    summary = "A bot's status",
    security(("bearer" = [])),
    params(("bot_id" = Uuid, Path, description = "The bot"), ReadYourWrites),
    responses(
        (status = 200, description = "The bot's `bot_status` row", body = BotView),
        (status = 400, description = "A malformed `bot_id`, or an unknown or malformed query parameter", body = ErrorResponse),
        (status = 404, description = "No such bot, or another user's", body = ErrorResponse),
    ),
)]
pub async fn bot_status(
    State(state): State<AppState>,
    caller: Caller,
    Path(bot_id): Path<String>,
    QueryParams(raw): QueryParams,
) -> Result<Json<BotView>, ApiError> {
    let bot_id = parse_id("bot_id", &bot_id)?;
    let params = Params::new(raw, &[])?;
    params.wait_for(&state, &read_models::BOT_STATUS).await?;
    sqlx::query_as::<_, BotView>(&format!(
        "SELECT {BOT_COLUMNS} FROM bot_status WHERE bot_id = $1 AND ($2 OR owner_id = $3)"
    ))
    .bind(bot_id)
    .bind(sees_all(&caller))
    .bind(caller.user_id)
    .fetch_optional(state.pool())
    .await
    .map_err(database)?
    .map(Json)
    .ok_or_else(|| ApiError::NotFound("bot not found".to_string()))
}

/// A fill, from the `trades` read model.
#[derive(Serialize, sqlx::FromRow, ToSchema)]
pub struct TradeView {
    trade_id: i64,
    user_id: Uuid,
    bot_id: Uuid,
    order_id: String,
    #[schema(value_type = schemas::Pair)]
    pair: String,
    #[schema(value_type = schemas::Side)]
    side: String,
    #[schema(value_type = schemas::ExactDecimal)]
    quantity: Decimal,
    #[schema(value_type = schemas::ExactDecimal)]
    price: Decimal,
    #[schema(value_type = schemas::ExactDecimal)]
    fee: Decimal,
    executed_at: DateTime<Utc>,
}

/// A page of trades, newest first.
#[derive(Serialize, ToSchema)]
pub struct TradePage {
    trades: Vec<TradeView>,
    /// The `cursor` of the next page; `null` on the last.
    next_cursor: Option<String>,
}

/// `GET /api/v1/trading/trades?bot_id&pair&from&to&limit&cursor`: newest
/// first. Pages follow `trade_id`, which the projector assigns in commit
/// order, so trades arriving meanwhile never shift a later page.
#[utoipa::path(
    get,
    path = "/api/v1/trading/trades",
    operation_id = "list_trades",
    tag = "trading",
    summary = "Trades, newest first",
    description = "The caller's fills (admins and auditors: everyone's). Pages follow \
        `trade_id`, assigned in commit order, so trades arriving while a client pages never \
        shift a later page.",
    security(("bearer" = [])),
    params(OwnerFilter, TradeFilter, Page, ReadYourWrites),
    responses(
        (status = 200, description = "A page of trades", body = TradePage),
        (status = 400, description = "An unknown or malformed query parameter", body = ErrorResponse),
    ),
)]
pub async fn trades(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(raw): QueryParams,
) -> Result<Json<TradePage>, ApiError> {
    let params = Params::new(
        raw,
        &["user_id", "bot_id", "pair", "from", "to", "limit", "cursor"],
    )?;
    let (everyone, owner) = scope(&caller, &params)?;
    let bot_id = params.uuid("bot_id")?;
    let pair = params.pair()?;
    let from = params.time("from")?;
    let to = params.time("to")?;
    let limit = params.limit()?;
    let before = params.cursor()?;
    params.wait_for(&state, &read_models::TRADES).await?;
    let trades = sqlx::query_as::<_, TradeView>(
        "SELECT trade_id, user_id, bot_id, order_id, pair, side, quantity, price, fee, executed_at \
           FROM trades \
          WHERE ($1 OR user_id = $2) \
            AND ($3::uuid IS NULL OR bot_id = $3) \
            AND ($4::text IS NULL OR pair = $4) \
            AND ($5::timestamptz IS NULL OR executed_at >= $5) \
            AND ($6::timestamptz IS NULL OR executed_at < $6) \
            AND ($7::bigint IS NULL OR trade_id < $7) \
          ORDER BY trade_id DESC LIMIT $8",
    )
    .bind(everyone)
    .bind(owner)
    .bind(bot_id)
    .bind(pair)
    .bind(from)
    .bind(to)
    .bind(before)
    .bind(limit)
    .fetch_all(state.pool())
    .await
    .map_err(database)?;
    let next_cursor = (trades.len() as i64 == limit)
        .then(|| trades.last().map(|t| t.trade_id.to_string()))
        .flatten();
    Ok(Json(TradePage {
        trades,
        next_cursor,
    }))
}

/// A holding in one pair, from the `positions` read model.
#[derive(Serialize, sqlx::FromRow, ToSchema)]
pub struct PositionView {
    user_id: Uuid,
    #[schema(value_type = schemas::Pair)]
    pair: String,
    #[schema(value_type = schemas::ExactDecimal)]
    quantity: Decimal,
    #[schema(value_type = schemas::ExactDecimal)]
    cost_basis: Decimal,
    #[schema(value_type = schemas::ExactDecimal)]
    average_cost: Decimal,
    #[schema(value_type = schemas::ExactDecimal)]
    realised_pnl: Decimal,
    trades: i64,
    updated_at: DateTime<Utc>,
}

/// A page of positions.
#[derive(Serialize, ToSchema)]
pub struct PositionList {
    positions: Vec<PositionView>,
    /// The `cursor` of the next page; `null` on the last.
    next_cursor: Option<String>,
}

/// `GET /api/v1/trading/positions`: per pair, with realised P&L.
#[utoipa::path(
    get,
    path = "/api/v1/trading/positions",
    operation_id = "list_positions",
    tag = "trading",
    summary = "Positions per pair, with realised P&L",
    description = "The caller's positions (admins and auditors: everyone's), by user and pair, \
        paged.",
    security(("bearer" = [])),
    params(OwnerFilter, Page, ReadYourWrites),
    responses(
        (status = 200, description = "A page of positions", body = PositionList),
        (status = 400, description = "An unknown or malformed query parameter", body = ErrorResponse),
    ),
)]
pub async fn positions(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(raw): QueryParams,
) -> Result<Json<PositionList>, ApiError> {
    let params = Params::new(raw, &["user_id", "limit", "cursor"])?;
    let (everyone, owner) = scope(&caller, &params)?;
    let page = params.offset_page()?;
    params.wait_for(&state, &read_models::POSITIONS).await?;
    let positions = sqlx::query_as::<_, PositionView>(
        "SELECT user_id, pair, quantity, cost_basis, average_cost, realised_pnl, trades, updated_at \
           FROM positions WHERE $1 OR user_id = $2 ORDER BY user_id, pair OFFSET $3 LIMIT $4",
    )
    .bind(everyone)
    .bind(owner)
    .bind(page.offset)
    .bind(page.rows_to_read())
    .fetch_all(state.pool())
    .await
    .map_err(database)?;
    let (positions, next_cursor) = page.split(positions);
    Ok(Json(PositionList {
        positions,
        next_cursor,
    }))
}
