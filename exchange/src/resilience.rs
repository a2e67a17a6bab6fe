//! Timeouts, retries with exponential back-off and a circuit breaker
//! around every exchange call: [`ResilientExchange`] wraps any
//! [`Exchange`].
//!
//! - each attempt has a deadline; a call that misses it counts as
//!   `Unavailable`;
//! - `Unavailable` is retried (`attempts` in all, pausing `first_backoff`,
//!   then twice as long each time); `Rejected` (the exchange answered and
//!   said no) is final;
//! - after `breaker_threshold` consecutive unavailable calls the breaker
//!   opens: calls fail at once for `breaker_cooldown`, then one trial call
//!   may pass (half-open); its success closes the breaker, its failure
//!   opens it again.
//!
//! Placing an order is retried too: the order's client order id makes the
//! retry the same order on the paper exchange and lets Kraken recognise it.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use crate::{
    ApiCredentials, Balances, Candles, Exchange, ExchangeError, Interval, OrderRequest, OrderState,
    Ticker,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::services::KeyVerification;
use domain::Pair;
use tokio::time::Instant;

#[derive(Debug, Clone)]
pub struct CallPolicy {
    pub timeout: Duration,
    pub attempts: u32,
    pub first_backoff: Duration,
    pub breaker_threshold: u32,
    pub breaker_cooldown: Duration,
}

impl Default for CallPolicy {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            attempts: 3,
            first_backoff: Duration::from_millis(200),
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BreakerState {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen,
}

/// Counts consecutive failures and stops calls for a while after too many.
#[derive(Debug)]
pub struct CircuitBreaker {
    threshold: u32,
    cooldown: Duration,
    state: Mutex<BreakerState>,
}

impl CircuitBreaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown,
            state: Mutex::new(BreakerState::Closed { failures: 0 }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, BreakerState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether a call may go out now.
    pub fn allow(&self) -> Result<(), ExchangeError> {
        let mut state = self.state();
        match *state {
            BreakerState::Closed { .. } => Ok(()),
            BreakerState::Open { until } if Instant::now() >= until => {
                *state = BreakerState::HalfOpen;
                Ok(())
            }
            BreakerState::Open { until } => Err(ExchangeError::Unavailable(format!(
                "circuit open for another {} ms after repeated failures",
                until.saturating_duration_since(Instant::now()).as_millis()
            ))),
            // One trial call is already out.
            BreakerState::HalfOpen => Err(ExchangeError::Unavailable(
                "circuit half-open; a trial call is in flight".to_string(),
            )),
        }
    }

    pub fn record_success(&self) {
        *self.state() = BreakerState::Closed { failures: 0 };
    }

    pub fn record_failure(&self) {
        let mut state = self.state();
        let failures = match *state {
            BreakerState::Closed { failures } => failures + 1,
            BreakerState::HalfOpen | BreakerState::Open { .. } => self.threshold,
        };
        *state = if failures >= self.threshold {
            BreakerState::Open {
                until: Instant::now() + self.cooldown,
            }
        } else {
            BreakerState::Closed { failures }
        };
    }

    pub fn is_open(&self) -> bool {
        matches!(*self.state(), BreakerState::Open { .. })
    }
}

/// Any exchange, with the policy applied to every call.
pub struct ResilientExchange<E> {
    inner: E,
    policy: CallPolicy,
    breaker: CircuitBreaker,
}

impl<E: Exchange> ResilientExchange<E> {
    pub fn new(inner: E, policy: CallPolicy) -> Self {
        Self {
            breaker: CircuitBreaker::new(policy.breaker_threshold, policy.breaker_cooldown),
            inner,
            policy,
        }
    }

    pub fn inner(&self) -> &E {
        &self.inner
    }

    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    async fn call<'a, T, F, Fut>(&'a self, what: &'static str, call: F) -> Result<T, ExchangeError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, ExchangeError>> + 'a,
    {
        let mut pause = self.policy.first_backoff;
        let attempts = self.policy.attempts.max(1);
        for attempt in 1..=attempts {
            self.breaker.allow()?;
            let outcome = match tokio::time::timeout(self.policy.timeout, call()).await {
                Ok(outcome) => outcome,
                Err(_) => Err(ExchangeError::Unavailable(format!(
                    "{what}: no answer within {} ms",
                    self.policy.timeout.as_millis()
                ))),
            };
            match outcome {
                Err(ExchangeError::Unavailable(reason)) => {
                    self.breaker.record_failure();
                    tracing::debug!(call = what, attempt, reason = %reason, "exchange call failed");
                    if attempt == attempts {
                        return Err(ExchangeError::Unavailable(reason));
                    }
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                // The exchange answered, so it is up, whatever it said.
                answered => {
                    self.breaker.record_success();
                    return answered;
                }
            }
        }
        unreachable!("the last attempt returns")
    }
}

#[async_trait]
impl<E: Exchange> Exchange for ResilientExchange<E> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn verify_credentials(
        &self,
        credentials: &ApiCredentials,
    ) -> Result<KeyVerification, ExchangeError> {
        self.call("verify_credentials", || {
            self.inner.verify_credentials(credentials)
        })
        .await
    }

    async fn ticker(&self, pair: &Pair) -> Result<Ticker, ExchangeError> {
        self.call("ticker", || self.inner.ticker(pair)).await
    }

    async fn balances(&self, credentials: &ApiCredentials) -> Result<Balances, ExchangeError> {
        self.call("balances", || self.inner.balances(credentials))
            .await
    }

    async fn ohlcv(
        &self,
        pair: &Pair,
        interval: Interval,
        since: Option<DateTime<Utc>>,
    ) -> Result<Candles, ExchangeError> {
        self.call("ohlcv", || self.inner.ohlcv(pair, interval, since))
            .await
    }

    async fn place_order(
        &self,
        credentials: &ApiCredentials,
        order: &OrderRequest,
    ) -> Result<String, ExchangeError> {
        self.call("place_order", || self.inner.place_order(credentials, order))
            .await
    }

    async fn query_order(
        &self,
        credentials: &ApiCredentials,
        order_id: &str,
    ) -> Result<OrderState, ExchangeError> {
        self.call("query_order", || {
            self.inner.query_order(credentials, order_id)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// An exchange whose ticker fails `failures` times, then answers.
    struct Flaky {
        failures: AtomicU32,
        calls: AtomicU32,
    }

    #[async_trait]
    impl Exchange for Flaky {
        fn name(&self) -> &'static str {
            "flaky"
        }
        async fn verify_credentials(
            &self,
            _: &ApiCredentials,
        ) -> Result<KeyVerification, ExchangeError> {
            Err(ExchangeError::Rejected("EAPI:Invalid key".to_string()))
        }
        async fn ticker(&self, pair: &Pair) -> Result<Ticker, ExchangeError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.failures.load(Ordering::SeqCst) > 0 {
                self.failures.fetch_sub(1, Ordering::SeqCst);
                return Err(ExchangeError::Unavailable("connection refused".to_string()));
            }
            Ok(Ticker {
                pair: pair.clone(),
                last: rust_decimal::Decimal::ONE,
            })
        }
        async fn balances(&self, _: &ApiCredentials) -> Result<Balances, ExchangeError> {
            std::future::pending().await
        }
        async fn place_order(
            &self,
            _: &ApiCredentials,
            _: &OrderRequest,
        ) -> Result<String, ExchangeError> {
            unimplemented!()
        }
        async fn query_order(
            &self,
            _: &ApiCredentials,
            _: &str,
        ) -> Result<OrderState, ExchangeError> {
            unimplemented!()
        }
    }

    fn flaky(failures: u32, policy: CallPolicy) -> ResilientExchange<Flaky> {
        ResilientExchange::new(
            Flaky {
                failures: AtomicU32::new(failures),
                calls: AtomicU32::new(0),
            },
            policy,
        )
    }

    fn quick() -> CallPolicy {
        CallPolicy {
            timeout: Duration::from_millis(50),
            attempts: 3,
            first_backoff: Duration::from_millis(1),
            breaker_threshold: 4,
            breaker_cooldown: Duration::from_millis(200),
        }
    }

    fn xbt() -> Pair {
        Pair::parse("XBT/USD").unwrap()
    }

    fn credentials() -> ApiCredentials {
        ApiCredentials {
            api_key: domain::SecretString::new("k"),
            api_secret: domain::SecretString::new("s"),
        }
    }

    #[tokio::test]
    async fn transient_failures_are_retried() {
        let exchange = flaky(2, quick());
        assert!(exchange.ticker(&xbt()).await.is_ok());
        assert_eq!(exchange.inner().calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_refusal_is_not_retried() {
        let exchange = flaky(0, quick());
        let refused = exchange.verify_credentials(&credentials()).await;
        assert_eq!(
            refused,
            Err(ExchangeError::Rejected("EAPI:Invalid key".to_string()))
        );
    }

    #[tokio::test]
    async fn a_call_past_its_deadline_is_unavailable() {
        let exchange = flaky(0, quick());
        let started = Instant::now();
        let late = exchange.balances(&credentials()).await;
        assert!(matches!(late, Err(ExchangeError::Unavailable(ref r)) if r.contains("no answer")));
        // Three attempts of 50 ms plus the pauses, not forever.
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn the_breaker_opens_after_repeated_failures_and_recovers() {
        let exchange = flaky(4, quick());
        // Two calls of up to three attempts: the fourth failure opens it.
        assert!(exchange.ticker(&xbt()).await.is_err());
        let second = exchange.ticker(&xbt()).await;
        assert!(exchange.breaker().is_open(), "{second:?}");
        let calls = exchange.inner().calls.load(Ordering::SeqCst);
        assert_eq!(calls, 4);
        // Open: fails at once without calling the exchange.
        let refused = exchange.ticker(&xbt()).await;
        assert!(
            matches!(refused, Err(ExchangeError::Unavailable(ref r)) if r.contains("circuit open"))
        );
        assert_eq!(exchange.inner().calls.load(Ordering::SeqCst), calls);
        // After the cool-down a trial call passes and closes it.
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(exchange.ticker(&xbt()).await.is_ok());
        assert!(!exchange.breaker().is_open());
    }
}
