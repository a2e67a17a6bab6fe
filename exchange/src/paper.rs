//! The deterministic paper exchange, the default [`Exchange`].

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use base64::Engine;
use chrono::Utc;
use domain::services::{KeyPermission, KeyVerification};
use domain::{Pair, Side};
use rust_decimal::{Decimal, RoundingStrategy};
use uuid::Uuid;

use crate::candles::PaperHistory;
use crate::{
    ApiCredentials, Balances, Candles, Exchange, ExchangeError, Interval, OrderRequest, OrderState,
    OrderStatus, Ticker,
};

/// A simulated exchange with fixed, documented rules, so that every outcome
/// can be reproduced without a network:
/// - a secret must be standard base64 of at least 32 bytes (Kraken's
///   secrets are base64 of 64 bytes), otherwise `EAPI:Invalid key`;
/// - a key revoked with [`PaperExchange::revoke_key`] (as a user would on
///   Kraken's site) is rejected as `EAPI:Invalid key` from then on;
/// - an API key containing `withdraw` holds the withdraw permission, as a
///   Kraken key created with "Withdraw Funds" ticked would;
/// - every other key may query funds, query orders and trade.
///
/// The market, in memory (it starts afresh with the process):
/// - prices follow a random walk seeded by [`PaperExchange::with_seed`]:
///   each ticker read of a pair moves its price by -1 % to +1 % in whole
///   basis points, from 60000 for XBT, 3000 for ETH and 100 otherwise,
///   rounded to cents; [`PaperExchange::set_price`] pins a price;
/// - its candles (`ohlcv`) are [`PaperHistory`]'s: a function of the seed,
///   the pair and the time alone, the same on every instance;
/// - a market order fills at once, whole, at the price of the last ticker
///   read (it does not move the price); the fee is
///   0.26 % of the cost (Kraken's base taker fee), in the quote currency;
///   an order whose cost, fee or resulting balance would be beyond what a
///   decimal holds is refused as `EGeneral:Invalid arguments:volume`;
/// - an account starts with 100000 USD and 100000 EUR and nothing else;
///   a buy needs cost plus fee in the quote currency, a sell the quantity
///   in the base currency, otherwise `EOrder:Insufficient funds`;
/// - an order's id derives from its client order id, so placing the same
///   client order id twice is one order.
#[derive(Debug)]
pub struct PaperExchange {
    revoked: Mutex<HashSet<String>>,
    market: Mutex<PaperMarket>,
}

/// The fee rate of the paper exchange: 0.26 %.
pub const PAPER_FEE_RATE: Decimal = Decimal::from_parts(26, 0, 0, false, 4);

#[derive(Debug)]
struct PaperMarket {
    seed: u64,
    /// Price and random state per pair, and whether the price is pinned.
    feeds: HashMap<Pair, (Decimal, u64, bool)>,
    /// Per API key, per asset.
    accounts: HashMap<String, HashMap<String, Decimal>>,
    /// Per API key, per order id.
    orders: HashMap<(String, String), OrderState>,
}

impl Default for PaperExchange {
    fn default() -> Self {
        Self::with_seed(42)
    }
}

impl PaperExchange {
    pub fn new() -> Self {
        Self::default()
    }

    /// A paper exchange whose price feeds follow `seed`.
    pub fn with_seed(seed: u64) -> Self {
        Self {
            revoked: Mutex::default(),
            market: Mutex::new(PaperMarket {
                seed,
                feeds: HashMap::new(),
                accounts: HashMap::new(),
                orders: HashMap::new(),
            }),
        }
    }

    /// Revokes an API key on the simulated exchange.
    pub fn revoke_key(&self, api_key: &str) {
        self.revoked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(api_key.to_string());
    }

    /// Pins the price of `pair` (a ticker read no longer moves it), or
    /// releases it to walk on from there with `None`.
    pub fn set_price(&self, pair: &Pair, price: Option<Decimal>) {
        let mut market = self.market();
        let seed = market.seed;
        let feed = market
            .feeds
            .entry(pair.clone())
            .or_insert_with(|| initial_feed(seed, pair));
        match price {
            Some(price) => *feed = (price, feed.1, true),
            None => feed.2 = false,
        }
    }

    fn is_revoked(&self, api_key: &str) -> bool {
        self.revoked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(api_key)
    }

    fn market(&self) -> std::sync::MutexGuard<'_, PaperMarket> {
        self.market.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn check_key(&self, credentials: &ApiCredentials) -> Result<String, ExchangeError> {
        let api_key = credentials.api_key.expose();
        if self.is_revoked(api_key) {
            return Err(ExchangeError::Rejected("EAPI:Invalid key".to_string()));
        }
        Ok(api_key.to_string())
    }
}

fn initial_feed(seed: u64, pair: &Pair) -> (Decimal, u64, bool) {
    let base = pair.as_str().split('/').next().unwrap_or_default();
    let price = match base {
        "XBT" | "BTC" => Decimal::from(60_000),
        "ETH" => Decimal::from(3_000),
        _ => Decimal::from(100),
    };
    // FNV-1a of the pair mixed with the seed: each pair walks on its own.
    let mut state = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for byte in pair.as_str().bytes() {
        state = (state ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    (price, state.max(1), false)
}

fn xorshift(mut state: u64) -> u64 {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    state
}

impl PaperMarket {
    /// The price now, without moving it.
    fn current(&mut self, pair: &Pair) -> Decimal {
        let seed = self.seed;
        self.feeds
            .entry(pair.clone())
            .or_insert_with(|| initial_feed(seed, pair))
            .0
    }

    fn tick(&mut self, pair: &Pair) -> Decimal {
        let seed = self.seed;
        let (price, state, pinned) = self
            .feeds
            .entry(pair.clone())
            .or_insert_with(|| initial_feed(seed, pair));
        if !*pinned {
            *state = xorshift(*state);
            let step_bps = Decimal::from((*state % 201) as i64 - 100);
            // A price pinned near the decimal's edge and then released
            // stays where it is rather than overflow.
            let moved = price
                .checked_mul(Decimal::from(10_000) + step_bps)
                .and_then(|moved| moved.checked_div(Decimal::from(10_000)));
            if let Some(moved) = moved {
                *price = moved.round_dp(2).max(Decimal::new(1, 2));
            }
        }
        *price
    }

    fn account(&mut self, api_key: &str) -> &mut HashMap<String, Decimal> {
        self.accounts.entry(api_key.to_string()).or_insert_with(|| {
            HashMap::from([
                ("USD".to_string(), Decimal::from(100_000)),
                ("EUR".to_string(), Decimal::from(100_000)),
            ])
        })
    }

    fn fill(&mut self, api_key: &str, order: &OrderRequest) -> Result<OrderState, ExchangeError> {
        let (base, quote) = order
            .pair
            .as_str()
            .split_once('/')
            .ok_or_else(|| ExchangeError::Rejected("EQuery:Unknown asset pair".to_string()))?;
        if order.quantity <= Decimal::ZERO {
            return Err(ExchangeError::Rejected(ORDER_TOO_LARGE.to_string()));
        }
        let price = self.current(&order.pair);
        let account = self.account(api_key);
        let balance = |asset: &str| account.get(asset).copied().unwrap_or_default();
        let moves = order_moves(order, price, base, quote)
            .ok_or_else(|| ExchangeError::Rejected(ORDER_TOO_LARGE.to_string()))?;
        if balance(moves.spend_asset) < moves.spend {
            return Err(ExchangeError::Rejected(
                "EOrder:Insufficient funds".to_string(),
            ));
        }
        // Both balances are computed before either changes: an order whose
        // proceeds would not fit the account is refused whole.
        let spent = balance(moves.spend_asset).checked_sub(moves.spend);
        let received = balance(moves.receive_asset).checked_add(moves.receive);
        let (Some(spent), Some(received)) = (spent, received) else {
            return Err(ExchangeError::Rejected(ORDER_TOO_LARGE.to_string()));
        };
        account.insert(moves.spend_asset.to_string(), spent);
        account.insert(moves.receive_asset.to_string(), received);
        Ok(OrderState {
            order_id: paper_order_id(order.client_order_id),
            status: OrderStatus::Closed,
            executed_quantity: order.quantity,
            average_price: price,
            fee: moves.fee,
            closed_at: Some(Utc::now()),
        })
    }
}

/// The paper exchange's refusal of an order volume that is not positive, or
/// whose cost, fee or resulting balance is beyond what a decimal holds (as
/// Kraken refuses a volume it cannot take).
const ORDER_TOO_LARGE: &str = "EGeneral:Invalid arguments:volume";

/// What a filled order takes from and gives to the account.
#[derive(Debug, PartialEq, Eq)]
struct OrderMoves<'a> {
    spend_asset: &'a str,
    spend: Decimal,
    receive_asset: &'a str,
    receive: Decimal,
    fee: Decimal,
}

/// The cost (rounded up to 8 places), the fee on it and what moves where,
/// or `None` when any of them is beyond what a decimal holds.
fn order_moves<'a>(
    order: &OrderRequest,
    price: Decimal,
    base: &'a str,
    quote: &'a str,
) -> Option<OrderMoves<'a>> {
    let cost = order
        .quantity
        .checked_mul(price)?
        .round_dp_with_strategy(8, RoundingStrategy::AwayFromZero);
    let fee = cost
        .checked_mul(PAPER_FEE_RATE)?
        .round_dp_with_strategy(8, RoundingStrategy::AwayFromZero);
    let moves = match order.side {
        Side::Buy => OrderMoves {
            spend_asset: quote,
            spend: cost.checked_add(fee)?,
            receive_asset: base,
            receive: order.quantity,
            fee,
        },
        Side::Sell => OrderMoves {
            spend_asset: base,
            spend: order.quantity,
            receive_asset: quote,
            receive: cost.checked_sub(fee)?,
            fee,
        },
    };
    Some(moves)
}

/// A Kraken-shaped order id (`PXXXXX-XXXXX-XXXXXX`) derived from the
/// client order id (a digest, so any two ids differ in it).
fn paper_order_id(client_order_id: Uuid) -> String {
    use sha2::{Digest, Sha256};
    let hex = hex::encode_upper(Sha256::digest(client_order_id.as_bytes()));
    format!("P{}-{}-{}", &hex[..5], &hex[5..10], &hex[10..16])
}

#[async_trait]
impl Exchange for PaperExchange {
    fn name(&self) -> &'static str {
        "paper"
    }

    async fn verify_credentials(
        &self,
        credentials: &ApiCredentials,
    ) -> Result<KeyVerification, ExchangeError> {
        let secret_ok = base64::engine::general_purpose::STANDARD
            .decode(credentials.api_secret.expose())
            .is_ok_and(|bytes| bytes.len() >= 32);
        if !secret_ok || self.is_revoked(credentials.api_key.expose()) {
            return Ok(KeyVerification::Rejected {
                reason: "EAPI:Invalid key".to_string(),
            });
        }
        let mut permissions = vec![
            KeyPermission::QueryFunds,
            KeyPermission::QueryOrders,
            KeyPermission::Trade,
        ];
        if credentials
            .api_key
            .expose()
            .to_ascii_lowercase()
            .contains("withdraw")
        {
            permissions.push(KeyPermission::Withdraw);
        }
        Ok(KeyVerification::Accepted { permissions })
    }

    async fn ticker(&self, pair: &Pair) -> Result<Ticker, ExchangeError> {
        let last = self.market().tick(pair);
        Ok(Ticker {
            pair: pair.clone(),
            last,
        })
    }

    async fn ohlcv(
        &self,
        pair: &Pair,
        interval: Interval,
        since: Option<chrono::DateTime<Utc>>,
    ) -> Result<Candles, ExchangeError> {
        let seed = self.market().seed;
        Ok(PaperHistory::new(seed, pair).candles(pair, interval, since, Utc::now()))
    }

    async fn balances(&self, credentials: &ApiCredentials) -> Result<Balances, ExchangeError> {
        let api_key = self.check_key(credentials)?;
        let mut market = self.market();
        Ok(market
            .account(&api_key)
            .iter()
            .map(|(asset, amount)| (asset.clone(), *amount))
            .collect())
    }

    async fn place_order(
        &self,
        credentials: &ApiCredentials,
        order: &OrderRequest,
    ) -> Result<String, ExchangeError> {
        let api_key = self.check_key(credentials)?;
        let order_id = paper_order_id(order.client_order_id);
        let mut market = self.market();
        if market
            .orders
            .contains_key(&(api_key.clone(), order_id.clone()))
        {
            return Ok(order_id);
        }
        let filled = market.fill(&api_key, order)?;
        market.orders.insert((api_key, order_id.clone()), filled);
        Ok(order_id)
    }

    async fn query_order(
        &self,
        credentials: &ApiCredentials,
        order_id: &str,
    ) -> Result<OrderState, ExchangeError> {
        let api_key = self.check_key(credentials)?;
        self.market()
            .orders
            .get(&(api_key, order_id.to_string()))
            .cloned()
            .ok_or_else(|| ExchangeError::Rejected("EOrder:Unknown order".to_string()))
    }
}

#[cfg(test)]
mod tests {
    use domain::SecretString;

    use super::*;

    fn credentials(api_key: &str) -> ApiCredentials {
        ApiCredentials {
            api_key: SecretString::new(api_key),
            api_secret: SecretString::new("c2VjcmV0"),
        }
    }

    fn xbt() -> Pair {
        Pair::parse("XBT/USD").unwrap()
    }

    #[tokio::test]
    async fn the_same_seed_gives_the_same_prices() {
        let (one, two, other) = (
            PaperExchange::with_seed(7),
            PaperExchange::with_seed(7),
            PaperExchange::with_seed(8),
        );
        let mut walks = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..50 {
            walks.0.push(one.ticker(&xbt()).await.unwrap().last);
            walks.1.push(two.ticker(&xbt()).await.unwrap().last);
            walks.2.push(other.ticker(&xbt()).await.unwrap().last);
        }
        assert_eq!(walks.0, walks.1);
        assert_ne!(walks.0, walks.2);
        assert!(walks.0.windows(2).any(|w| w[0] != w[1]), "the price moves");
        for (before, after) in walks.0.iter().zip(walks.0.iter().skip(1)) {
            let change = ((*after - *before) / *before).abs();
            assert!(change <= Decimal::new(101, 4), "{before} -> {after}");
        }
    }

    #[tokio::test]
    async fn a_market_order_fills_with_the_fee_and_moves_balances() {
        let exchange = PaperExchange::new();
        exchange.set_price(&xbt(), Some(Decimal::from(50_000)));
        let key = credentials("paper-key");
        let order = OrderRequest {
            pair: xbt(),
            side: Side::Buy,
            quantity: Decimal::new(1, 1),
            client_order_id: Uuid::from_u128(1),
        };
        let order_id = exchange.place_order(&key, &order).await.unwrap();
        // Placing the same client order id again is the same order.
        assert_eq!(exchange.place_order(&key, &order).await.unwrap(), order_id);
        let state = exchange.query_order(&key, &order_id).await.unwrap();
        assert_eq!(state.status, OrderStatus::Closed);
        assert_eq!(state.average_price, Decimal::from(50_000));
        assert_eq!(state.fee, Decimal::from(13));
        let balances = exchange.balances(&key).await.unwrap();
        assert_eq!(balances["USD"], Decimal::from(100_000 - 5_000 - 13));
        assert_eq!(balances["XBT"], Decimal::new(1, 1));
        let too_much = OrderRequest {
            side: Side::Sell,
            quantity: Decimal::ONE,
            client_order_id: Uuid::from_u128(2),
            ..order
        };
        assert_eq!(
            exchange.place_order(&key, &too_much).await,
            Err(ExchangeError::Rejected(
                "EOrder:Insufficient funds".to_string()
            ))
        );
    }

    /// The order of issue 15's attack (`Decimal::MAX` of quote at 60000):
    /// its cost and fee overflowed `cost + fee` and panicked.
    #[tokio::test]
    async fn an_order_beyond_the_decimal_range_is_refused_not_a_panic() {
        let exchange = PaperExchange::new();
        let price = Decimal::from(60_000);
        exchange.set_price(&xbt(), Some(price));
        let key = credentials("paper-key");
        let order = OrderRequest {
            pair: xbt(),
            side: Side::Buy,
            quantity: (Decimal::MAX / price).trunc_with_scale(8),
            client_order_id: Uuid::from_u128(3),
        };
        assert_eq!(
            exchange.place_order(&key, &order).await,
            Err(ExchangeError::Rejected(ORDER_TOO_LARGE.to_string()))
        );
        let balances = exchange.balances(&key).await.unwrap();
        assert_eq!(balances["USD"], Decimal::from(100_000));
    }

    mod properties {
        use domain::arbitrary::any_decimal;
        use proptest::prelude::*;

        use super::*;

        fn runtime() -> tokio::runtime::Runtime {
            tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("a runtime")
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            /// Any order of any quantity at any price fills with balances
            /// moved exactly, or is refused with the balances untouched.
            #[test]
            fn any_order_at_any_price_fills_exactly_or_is_refused(
                price in any_decimal(),
                quantity in any_decimal(),
                buy in any::<bool>(),
                holding in any_decimal(),
            ) {
                let exchange = PaperExchange::new();
                exchange.set_price(&xbt(), Some(price));
                let key = credentials("paper-key");
                let api_key = key.api_key.expose().to_string();
                exchange.market().account(&api_key).insert("XBT".to_string(), holding);
                let side = if buy { Side::Buy } else { Side::Sell };
                let order = OrderRequest {
                    pair: xbt(),
                    side,
                    quantity,
                    client_order_id: Uuid::from_u128(1),
                };
                let runtime = runtime();
                let before = runtime.block_on(exchange.balances(&key)).unwrap();
                let placed = runtime.block_on(exchange.place_order(&key, &order));
                let after = runtime.block_on(exchange.balances(&key)).unwrap();
                match placed {
                    Ok(order_id) => {
                        let state = runtime.block_on(exchange.query_order(&key, &order_id)).unwrap();
                        let cost = quantity.checked_mul(price).unwrap()
                            .round_dp_with_strategy(8, RoundingStrategy::AwayFromZero);
                        let (usd, xbt) = match side {
                            Side::Buy => (before["USD"] - (cost + state.fee), before["XBT"] + quantity),
                            Side::Sell => (before["USD"] + (cost - state.fee), before["XBT"] - quantity),
                        };
                        prop_assert_eq!(after["USD"], usd);
                        prop_assert_eq!(after["XBT"], xbt);
                        prop_assert_eq!(state.executed_quantity, quantity);
                        prop_assert_eq!(state.average_price, price);
                    }
                    Err(refusal) => {
                        prop_assert!(matches!(refusal, ExchangeError::Rejected(_)));
                        prop_assert_eq!(after, before);
                    }
                }
            }

            /// A pinned price anywhere in the range, released, walks on or
            /// stays without a panic, and stays at least a cent once it moves.
            #[test]
            fn any_released_price_walks_on(price in any_decimal()) {
                let exchange = PaperExchange::new();
                exchange.set_price(&xbt(), Some(price));
                exchange.set_price(&xbt(), None);
                let runtime = runtime();
                for _ in 0..3 {
                    let last = runtime.block_on(exchange.ticker(&xbt())).unwrap().last;
                    prop_assert!(last == price || last >= Decimal::new(1, 2));
                }
            }
        }
    }
}
