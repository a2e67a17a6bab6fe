//! Trading data from the exchange adapter (`CommandSide::exchange`, the
//! same one bots trade through), cached briefly per process so that a
//! dashboard polled by many clients costs the exchange little: a ticker for
//! [`TICKER_TTL`], a key's balances for [`BALANCES_TTL`], candles for
//! [`CANDLES_TTL`]. Every answer carries the time it was read from the
//! exchange. A cache holds at most [`MAX_ENTRIES`] entries
//! ([`MAX_CANDLE_ENTRIES`] for candles, whose answers are up to 720
//! candles each and whose keys a client chooses: pair, interval, `since`);
//! past that the expired ones go, and if none had, all of them (each is
//! re-read on the next request). So a client asking for many different
//! candles costs the process at most ~40 MB, not memory without bound.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use domain::Pair;
use exchange::{ApiCredentials, Balances, Candles, Exchange, ExchangeError, Interval, Ticker};
use uuid::Uuid;

pub const TICKER_TTL: Duration = Duration::from_secs(2);
pub const BALANCES_TTL: Duration = Duration::from_secs(10);
pub const CANDLES_TTL: Duration = Duration::from_secs(10);
pub const MAX_ENTRIES: usize = 10_000;
pub const MAX_CANDLE_ENTRIES: usize = 256;

/// A value and when it was read from the exchange.
#[derive(Debug, Clone)]
pub struct Read<T> {
    pub value: T,
    pub read_at: DateTime<Utc>,
    /// Whether it came from the cache.
    pub cached: bool,
}

/// A value, when it was kept, and when it was read from the exchange.
type Entry<V> = (Instant, V, DateTime<Utc>);

struct Cache<K, V> {
    ttl: Duration,
    max_entries: usize,
    entries: Mutex<HashMap<K, Entry<V>>>,
}

impl<K: Eq + Hash + Clone, V: Clone> Cache<K, V> {
    fn new(ttl: Duration, max_entries: usize) -> Self {
        Self {
            ttl,
            max_entries,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn fresh(&self, key: &K) -> Option<Read<V>> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(key)
            .filter(|(at, _, _)| at.elapsed() < self.ttl)
            .map(|(_, value, read_at)| Read {
                value: value.clone(),
                read_at: *read_at,
                cached: true,
            })
    }

    fn keep(&self, key: K, value: V) -> Read<V> {
        let read_at = Utc::now();
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= self.max_entries {
            let ttl = self.ttl;
            entries.retain(|_, (at, _, _)| at.elapsed() < ttl);
            if entries.len() >= self.max_entries {
                entries.clear();
            }
        }
        entries.insert(key, (Instant::now(), value.clone(), read_at));
        Read {
            value,
            read_at,
            cached: false,
        }
    }

    /// The cached value, or `read`'s (kept when it succeeds).
    async fn get_or_read<F>(&self, key: K, read: F) -> Result<Read<V>, ExchangeError>
    where
        F: std::future::Future<Output = Result<V, ExchangeError>>,
    {
        if let Some(hit) = self.fresh(&key) {
            return Ok(hit);
        }
        let value = read.await?;
        Ok(self.keep(key, value))
    }
}

/// The caches of one process.
pub struct MarketData {
    tickers: Cache<Pair, Ticker>,
    balances: Cache<Uuid, Balances>,
    candles: Cache<(Pair, Interval, Option<DateTime<Utc>>), Candles>,
}

impl Default for MarketData {
    fn default() -> Self {
        Self {
            tickers: Cache::new(TICKER_TTL, MAX_ENTRIES),
            balances: Cache::new(BALANCES_TTL, MAX_ENTRIES),
            candles: Cache::new(CANDLES_TTL, MAX_CANDLE_ENTRIES),
        }
    }
}

impl MarketData {
    pub async fn ticker(
        &self,
        exchange: &dyn Exchange,
        pair: &Pair,
    ) -> Result<Read<Ticker>, ExchangeError> {
        self.tickers
            .get_or_read(pair.clone(), exchange.ticker(pair))
            .await
    }

    /// The balances of the key `key_id`, read with `credentials` (opened by
    /// the caller only when the cache has none).
    pub async fn balances<F>(
        &self,
        exchange: &dyn Exchange,
        key_id: Uuid,
        credentials: F,
    ) -> Result<Read<Balances>, ExchangeError>
    where
        F: std::future::Future<Output = Result<ApiCredentials, ExchangeError>>,
    {
        self.balances
            .get_or_read(key_id, async {
                let credentials = credentials.await?;
                exchange.balances(&credentials).await
            })
            .await
    }

    pub async fn candles(
        &self,
        exchange: &dyn Exchange,
        pair: &Pair,
        interval: Interval,
        since: Option<DateTime<Utc>>,
    ) -> Result<Read<Candles>, ExchangeError> {
        self.candles
            .get_or_read(
                (pair.clone(), interval, since),
                exchange.ohlcv(pair, interval, since),
            )
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_fresh_entry_is_served_and_an_expired_one_read_again() {
        let cache: Cache<u32, u32> = Cache::new(Duration::from_secs(60), MAX_ENTRIES);
        let first = cache.get_or_read(1, async { Ok(10) }).await.unwrap();
        assert!(!first.cached);
        let second = cache.get_or_read(1, async { Ok(11) }).await.unwrap();
        assert_eq!((second.value, second.cached), (10, true));
        assert_eq!(second.read_at, first.read_at);
        // With no time to live, every entry has expired.
        let expired: Cache<u32, u32> = Cache::new(Duration::ZERO, MAX_ENTRIES);
        expired.get_or_read(1, async { Ok(10) }).await.unwrap();
        let third = expired.get_or_read(1, async { Ok(12) }).await.unwrap();
        assert_eq!((third.value, third.cached), (12, false));
        // A failure is not kept.
        let failed = cache
            .get_or_read(2, async { Err(ExchangeError::Unavailable("down".into())) })
            .await;
        assert!(failed.is_err());
        assert!(cache.fresh(&2).is_none());
    }

    #[test]
    fn the_cache_stays_bounded() {
        let cache: Cache<usize, usize> = Cache::new(Duration::from_secs(60), MAX_CANDLE_ENTRIES);
        for key in 0..MAX_CANDLE_ENTRIES * 3 {
            cache.keep(key, key);
            assert!(cache.entries.lock().unwrap().len() <= MAX_CANDLE_ENTRIES);
        }
    }
}
