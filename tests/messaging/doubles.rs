//! An exchange that misbehaves on purpose: it panics placing an order for
//! one API key, or takes its time over every order, and otherwise is the
//! paper exchange; and one whose price moves on every look, counting them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use domain::services::KeyVerification;
use domain::Pair;
use exchange::{
    ApiCredentials, Balances, Exchange, ExchangeError, OrderRequest, OrderState, PaperExchange,
    Ticker,
};
use integration_tests::rabbit::RabbitTest;
use integration_tests::TestApp;

pub struct FaultyExchange {
    pub paper: PaperExchange,
    /// Orders placed with this API key panic.
    pub panic_key: Option<String>,
    /// How long placing an order takes.
    pub order_delay: Duration,
}

impl FaultyExchange {
    pub fn panicking_for(api_key: &str) -> Arc<Self> {
        Arc::new(Self {
            paper: PaperExchange::new(),
            panic_key: Some(api_key.to_string()),
            order_delay: Duration::ZERO,
        })
    }

    pub fn slow(order_delay: Duration) -> Arc<Self> {
        Arc::new(Self {
            paper: PaperExchange::new(),
            panic_key: None,
            order_delay,
        })
    }
}

#[async_trait]
impl Exchange for FaultyExchange {
    fn name(&self) -> &'static str {
        "faulty"
    }

    async fn verify_credentials(
        &self,
        credentials: &ApiCredentials,
    ) -> Result<KeyVerification, ExchangeError> {
        self.paper.verify_credentials(credentials).await
    }

    async fn ticker(&self, pair: &Pair) -> Result<Ticker, ExchangeError> {
        self.paper.ticker(pair).await
    }

    async fn balances(&self, credentials: &ApiCredentials) -> Result<Balances, ExchangeError> {
        self.paper.balances(credentials).await
    }

    async fn place_order(
        &self,
        credentials: &ApiCredentials,
        order: &OrderRequest,
    ) -> Result<String, ExchangeError> {
        if self.panic_key.as_deref() == Some(credentials.api_key.expose()) {
            panic!("injected fault placing an order for {}", order.pair);
        }
        tokio::time::sleep(self.order_delay).await;
        self.paper.place_order(credentials, order).await
    }

    async fn query_order(
        &self,
        credentials: &ApiCredentials,
        order_id: &str,
    ) -> Result<OrderState, ExchangeError> {
        self.paper.query_order(credentials, order_id).await
    }
}

/// The paper exchange, except that every ticker is `start` plus half a
/// unit for each look before it: the price never stands still.
pub struct MovingPriceExchange {
    pub paper: PaperExchange,
    pub start: rust_decimal::Decimal,
    pub looks: AtomicU64,
}

impl MovingPriceExchange {
    pub fn from(start: rust_decimal::Decimal) -> Arc<Self> {
        Arc::new(Self {
            paper: PaperExchange::new(),
            start,
            looks: AtomicU64::new(0),
        })
    }

    /// How many tickers it has quoted.
    pub fn looks(&self) -> u64 {
        self.looks.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Exchange for MovingPriceExchange {
    fn name(&self) -> &'static str {
        "moving-price"
    }

    async fn verify_credentials(
        &self,
        credentials: &ApiCredentials,
    ) -> Result<KeyVerification, ExchangeError> {
        self.paper.verify_credentials(credentials).await
    }

    async fn ticker(&self, pair: &Pair) -> Result<Ticker, ExchangeError> {
        let look = self.looks.fetch_add(1, Ordering::SeqCst);
        let step = rust_decimal::Decimal::new(5, 1) * rust_decimal::Decimal::from(look);
        Ok(Ticker {
            pair: pair.clone(),
            last: self.start + step,
        })
    }

    async fn balances(&self, credentials: &ApiCredentials) -> Result<Balances, ExchangeError> {
        self.paper.balances(credentials).await
    }

    async fn place_order(
        &self,
        credentials: &ApiCredentials,
        order: &OrderRequest,
    ) -> Result<String, ExchangeError> {
        self.paper.place_order(credentials, order).await
    }

    async fn query_order(
        &self,
        credentials: &ApiCredentials,
        order_id: &str,
    ) -> Result<OrderState, ExchangeError> {
        self.paper.query_order(credentials, order_id).await
    }
}

/// A service running every role on the test's own queues, trading
/// through `exchange`.
pub async fn service_on(rabbit: &RabbitTest, exchange: Arc<dyn Exchange>) -> TestApp {
    let env = rabbit.service_env();
    let mut overrides: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    overrides.push(("RUNNER_TICK_MS", "100"));
    overrides.push(("PROJECTOR_POLL_MS", "50"));
    // Loops that trade every second, below the production minimum.
    overrides.push(("BOT_MIN_INTERVAL_SECS", "1"));
    TestApp::spawn_with_exchange(&overrides, exchange).await
}
