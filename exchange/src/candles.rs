//! OHLCV candles: the intervals the platform offers, the candle, and the
//! paper exchange's candles, derived from its seed alone.
//!
//! The paper market's history is a walk of one-minute candles that is a
//! pure function of the seed, the pair and the minute: the walk restarts
//! every [`SEGMENT_MINUTES`] from a price within 10 % of the pair's
//! starting price (60000 for XBT, 3000 for ETH, 100 otherwise), and moves
//! by -0.10 % to +0.10 % a minute, in cents. A longer interval's candle is
//! the aggregate of its minutes (first open, last close, highest high,
//! lowest low, summed volume), so every interval tells the same history.
//! Integer arithmetic only: the same seed gives the same candles on any
//! machine.

use chrono::{DateTime, TimeZone, Utc};
use domain::Pair;
use rust_decimal::Decimal;

/// At most this many candles in one answer (Kraken's limit too).
pub const MAX_CANDLES: usize = 720;

/// The paper walk restarts every this many minutes (about 2.8 days).
pub const SEGMENT_MINUTES: i64 = 4096;

/// A candle's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Interval {
    M1,
    M5,
    M15,
    H1,
    H4,
    D1,
}

impl Interval {
    pub const ALL: [Interval; 6] = [
        Interval::M1,
        Interval::M5,
        Interval::M15,
        Interval::H1,
        Interval::H4,
        Interval::D1,
    ];

    pub fn minutes(self) -> i64 {
        match self {
            Interval::M1 => 1,
            Interval::M5 => 5,
            Interval::M15 => 15,
            Interval::H1 => 60,
            Interval::H4 => 240,
            Interval::D1 => 1440,
        }
    }

    /// `1m`, `5m`, `15m`, `1h`, `4h`, `1d`.
    pub fn as_str(self) -> &'static str {
        match self {
            Interval::M1 => "1m",
            Interval::M5 => "5m",
            Interval::M15 => "15m",
            Interval::H1 => "1h",
            Interval::H4 => "4h",
            Interval::D1 => "1d",
        }
    }

    pub fn parse(text: &str) -> Option<Interval> {
        Interval::ALL.into_iter().find(|i| i.as_str() == text)
    }
}

/// One candle: the interval starting at `time`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candle {
    pub time: DateTime<Utc>,
    pub open: Decimal,
    pub high: Decimal,
    pub low: Decimal,
    pub close: Decimal,
    /// In the base currency.
    pub volume: Decimal,
    /// The volume-weighted average price, where the exchange states it.
    pub vwap: Option<Decimal>,
    /// How many trades, where the exchange states it.
    pub trades: Option<u64>,
}

/// The candles of a pair and interval, oldest first. The last one is the
/// interval in progress (its values may still change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candles {
    pub pair: Pair,
    pub interval: Interval,
    pub candles: Vec<Candle>,
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// One minute of the paper walk, in cents and (volume) 1e-8 units.
#[derive(Debug, Clone, Copy)]
struct Minute {
    open: i64,
    high: i64,
    low: i64,
    close: i64,
    volume: i64,
}

/// The paper market's history of one pair under one seed.
pub struct PaperHistory {
    key: u64,
    start_cents: i64,
}

impl PaperHistory {
    pub fn new(seed: u64, pair: &Pair) -> Self {
        let base = pair.as_str().split('/').next().unwrap_or_default();
        let start_cents = match base {
            "XBT" | "BTC" => 6_000_000,
            "ETH" => 300_000,
            _ => 10_000,
        };
        // FNV-1a of the pair mixed with the seed.
        let mut key = 0xcbf2_9ce4_8422_2325u64 ^ splitmix(seed);
        for byte in pair.as_str().bytes() {
            key = (key ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
        Self { key, start_cents }
    }

    fn draw(&self, minute: i64, salt: u64) -> u64 {
        splitmix(self.key ^ splitmix((minute as u64) ^ salt.rotate_left(32)))
    }

    /// The minutes `from..=to` (minute numbers since the Unix epoch).
    fn minutes(&self, from: i64, to: i64, mut each: impl FnMut(i64, Minute)) {
        let mut minute = from - from.rem_euclid(SEGMENT_MINUTES);
        let mut close = 0;
        while minute <= to {
            if minute.rem_euclid(SEGMENT_MINUTES) == 0 {
                // 90 % to 110 % of the starting price.
                let permille = 900 + (self.draw(minute, 1) % 201) as i64;
                close = self.start_cents * permille / 1000;
            }
            let open = close;
            let step_bps = (self.draw(minute, 2) % 21) as i64 - 10;
            close = (open + open * step_bps / 10_000).max(1);
            let up = (self.draw(minute, 3) % 6) as i64;
            let down = (self.draw(minute, 4) % 6) as i64;
            let high = open.max(close) + open.max(close) * up / 10_000;
            let low = (open.min(close) - open.min(close) * down / 10_000).max(1);
            let volume = (self.draw(minute, 5) % 500_000_000) as i64;
            if minute >= from {
                each(
                    minute,
                    Minute {
                        open,
                        high,
                        low,
                        close,
                        volume,
                    },
                );
            }
            minute += 1;
        }
    }

    /// The candles of `interval` whose start is after `since` (all of the
    /// last [`MAX_CANDLES`] without it) up to the one `now` is in.
    pub fn candles(
        &self,
        pair: &Pair,
        interval: Interval,
        since: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Candles {
        let length = interval.minutes();
        let now_minute = now.timestamp().div_euclid(60);
        let current = now_minute - now_minute.rem_euclid(length);
        let oldest = current - (MAX_CANDLES as i64 - 1) * length;
        let first = match since {
            // The first candle starting after `since`.
            Some(since) => {
                let minute = since.timestamp().div_euclid(60);
                (minute - minute.rem_euclid(length) + length).max(oldest)
            }
            None => oldest,
        };
        let mut candles: Vec<Candle> = Vec::new();
        if first <= current {
            let mut open: Option<(i64, Minute)> = None;
            let mut flush = |start: i64, m: Minute| {
                candles.push(Candle {
                    time: Utc
                        .timestamp_opt(start * 60, 0)
                        .single()
                        .unwrap_or_default(),
                    open: Decimal::new(m.open, 2),
                    high: Decimal::new(m.high, 2),
                    low: Decimal::new(m.low, 2),
                    close: Decimal::new(m.close, 2),
                    volume: Decimal::new(m.volume, 8),
                    vwap: None,
                    trades: None,
                })
            };
            self.minutes(first, now_minute, |minute, m| {
                let start = minute - minute.rem_euclid(length);
                open = Some(match open.take() {
                    Some((at, mut so_far)) if at == start => {
                        so_far.high = so_far.high.max(m.high);
                        so_far.low = so_far.low.min(m.low);
                        so_far.close = m.close;
                        so_far.volume += m.volume;
                        (at, so_far)
                    }
                    Some((at, done)) => {
                        flush(at, done);
                        (start, m)
                    }
                    None => (start, m),
                });
            });
            if let Some((at, done)) = open {
                flush(at, done);
            }
        }
        Candles {
            pair: pair.clone(),
            interval,
            candles,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xbt() -> Pair {
        Pair::parse("XBT/USD").unwrap()
    }

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn the_same_seed_and_interval_give_the_same_candles() {
        let now = at("2026-12-03T10:17:31Z");
        for interval in Interval::ALL {
            let one = PaperHistory::new(42, &xbt()).candles(&xbt(), interval, None, now);
            let again = PaperHistory::new(42, &xbt()).candles(&xbt(), interval, None, now);
            let other = PaperHistory::new(43, &xbt()).candles(&xbt(), interval, None, now);
            assert_eq!(one, again, "{interval:?}");
            assert_ne!(one, other, "{interval:?}");
            assert_eq!(one.candles.len(), MAX_CANDLES, "{interval:?}");
            // Oldest first, one interval apart, the last holding now.
            for pair in one.candles.windows(2) {
                assert_eq!(
                    (pair[1].time - pair[0].time).num_minutes(),
                    interval.minutes()
                );
            }
            let last = one.candles.last().unwrap();
            assert!(
                last.time <= now && now < last.time + chrono::Duration::minutes(interval.minutes())
            );
            for candle in &one.candles {
                assert!(candle.low <= candle.open.min(candle.close), "{candle:?}");
                assert!(candle.high >= candle.open.max(candle.close), "{candle:?}");
                assert!(candle.low > Decimal::ZERO);
            }
        }
    }

    #[test]
    fn every_interval_tells_the_same_history() {
        let now = at("2026-12-03T10:17:31Z");
        let history = PaperHistory::new(7, &xbt());
        let minutes = history.candles(&xbt(), Interval::M1, None, now);
        let fives = history.candles(&xbt(), Interval::M5, None, now);
        // The last complete 5-minute candles, from their minutes.
        for five in &fives.candles[fives.candles.len() - 20..fives.candles.len() - 1] {
            let inside: Vec<&Candle> = minutes
                .candles
                .iter()
                .filter(|m| {
                    m.time >= five.time && m.time < five.time + chrono::Duration::minutes(5)
                })
                .collect();
            assert_eq!(inside.len(), 5);
            assert_eq!(five.open, inside[0].open);
            assert_eq!(five.close, inside[4].close);
            assert_eq!(five.high, inside.iter().map(|m| m.high).max().unwrap());
            assert_eq!(five.low, inside.iter().map(|m| m.low).min().unwrap());
            assert_eq!(
                five.volume,
                inside.iter().map(|m| m.volume).sum::<Decimal>()
            );
        }
    }

    #[test]
    fn since_returns_only_later_candles() {
        let now = at("2026-12-03T10:17:31Z");
        let history = PaperHistory::new(42, &xbt());
        let since = at("2026-12-03T09:00:00Z");
        let hours = history.candles(&xbt(), Interval::H1, Some(since), now);
        let times: Vec<String> = hours.candles.iter().map(|c| c.time.to_rfc3339()).collect();
        assert_eq!(times, ["2026-12-03T10:00:00+00:00"]);
        let future = history.candles(&xbt(), Interval::H1, Some(now), now);
        assert!(future.candles.is_empty());
        // A long-ago `since` is the last 720.
        let old = history.candles(&xbt(), Interval::D1, Some(at("2001-01-01T00:00:00Z")), now);
        assert_eq!(old.candles.len(), MAX_CANDLES);
    }

    #[test]
    fn intervals_are_named_as_the_api_names_them() {
        for interval in Interval::ALL {
            assert_eq!(Interval::parse(interval.as_str()), Some(interval));
        }
        assert_eq!(Interval::parse("2h"), None);
        assert_eq!(Interval::parse("1M"), None);
    }
}
