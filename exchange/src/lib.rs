//! The exchanges the platform trades through: the [`Exchange`] trait every
//! adapter implements, and the adapters.
//!
//! - [`paper`]: [`PaperExchange`], deterministic and in memory, the default;
//! - [`kraken`]: [`KrakenExchange`], Kraken's REST API (`sign` is the
//!   `API-Sign` computation);
//! - [`candles`]: OHLCV candles ([`Interval`], [`Candles`]) and the paper
//!   market's seeded history;
//! - [`resilience`]: [`ResilientExchange`], a deadline, retries with
//!   back-off and a circuit breaker around every call of any exchange.
//!
//! The command side asks an exchange to test a key; the bot runner asks it
//! for prices, balances and orders. Neither knows which adapter it has.

pub mod candles;
pub mod kraken;
pub mod paper;
pub mod resilience;

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::services::KeyVerification;
use domain::{Pair, SecretString, Side};
use rust_decimal::Decimal;
use uuid::Uuid;

pub use candles::{Candle, Candles, Interval};
pub use kraken::KrakenExchange;
pub use paper::{PaperExchange, PAPER_FEE_RATE};
pub use resilience::{CallPolicy, ResilientExchange};

/// An API credential, decrypted only for the duration of a call.
#[derive(Debug, Clone)]
pub struct ApiCredentials {
    pub api_key: SecretString,
    pub api_secret: SecretString,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExchangeError {
    /// The exchange could not be reached or answered with a transient
    /// failure; the call may succeed later.
    #[error("exchange unavailable: {0}")]
    Unavailable(String),
    /// The exchange answered and refused (e.g. `EOrder:Insufficient funds`).
    #[error("exchange refused: {0}")]
    Rejected(String),
}

/// The latest price of a pair, in the quote currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticker {
    pub pair: Pair,
    pub last: Decimal,
}

/// A market order. `client_order_id` makes placing it idempotent: the same
/// id placed twice is one order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRequest {
    pub pair: Pair,
    pub side: Side,
    /// In the base currency.
    pub quantity: Decimal,
    pub client_order_id: Uuid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderStatus {
    Pending,
    Open,
    Closed,
    Canceled,
    Expired,
}

/// An order as the exchange reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderState {
    pub order_id: String,
    pub status: OrderStatus,
    pub executed_quantity: Decimal,
    /// The average fill price; zero while nothing executed.
    pub average_price: Decimal,
    /// In the quote currency.
    pub fee: Decimal,
    pub closed_at: Option<DateTime<Utc>>,
}

/// Asset code (`USD`, `XBT`) to available amount.
pub type Balances = BTreeMap<String, Decimal>;

/// What the platform asks of an exchange: the key test, and the bot
/// runner's market calls.
#[async_trait]
pub trait Exchange: Send + Sync {
    fn name(&self) -> &'static str;

    /// Whether the exchange accepts the credential, and its permissions.
    async fn verify_credentials(
        &self,
        credentials: &ApiCredentials,
    ) -> Result<KeyVerification, ExchangeError>;

    /// The latest price of `pair` (public).
    async fn ticker(&self, pair: &Pair) -> Result<Ticker, ExchangeError>;

    /// The account's balances.
    async fn balances(&self, credentials: &ApiCredentials) -> Result<Balances, ExchangeError>;

    /// `pair`'s candles of `interval` starting after `since` (public), at
    /// most [`candles::MAX_CANDLES`], oldest first, the last one still
    /// forming. An exchange that offers none (a test double) refuses.
    async fn ohlcv(
        &self,
        pair: &Pair,
        interval: Interval,
        since: Option<DateTime<Utc>>,
    ) -> Result<Candles, ExchangeError> {
        let _ = (pair, interval, since);
        Err(ExchangeError::Rejected(format!(
            "{} offers no candles",
            self.name()
        )))
    }

    /// Places a market order and returns the exchange's order id.
    async fn place_order(
        &self,
        credentials: &ApiCredentials,
        order: &OrderRequest,
    ) -> Result<String, ExchangeError>;

    /// The state of an order placed with these credentials.
    async fn query_order(
        &self,
        credentials: &ApiCredentials,
        order_id: &str,
    ) -> Result<OrderState, ExchangeError>;
}
