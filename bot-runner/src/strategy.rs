//! The strategies: given the price and what the bot holds, buy, sell or
//! skip (with the reason, which is recorded as `bot.trade.skipped`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::Strategy;
use rust_decimal::{Decimal, RoundingStrategy};

/// Quantities are rounded down to this many decimals (Kraken's precision
/// for most base assets).
pub const QUANTITY_DECIMALS: u32 = 8;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Buy this quantity of the base currency.
    Buy {
        quantity: Decimal,
    },
    /// Sell this quantity of the base currency.
    Sell {
        quantity: Decimal,
    },
    Skip {
        reason: String,
    },
}

/// What `strategy` does at `price` while the bot holds `holding` of the
/// base currency.
pub fn decide(strategy: &Strategy, price: Decimal, holding: Decimal) -> Decision {
    if price <= Decimal::ZERO {
        return Decision::Skip {
            reason: format!("no usable price ({price})"),
        };
    }
    match strategy {
        Strategy::Dca { quote_amount, .. } => buy(*quote_amount, price),
        Strategy::Threshold {
            buy_below,
            sell_above,
            quote_amount,
        } => {
            if holding > Decimal::ZERO {
                if price >= *sell_above {
                    Decision::Sell { quantity: holding }
                } else {
                    Decision::Skip {
                        reason: format!(
                            "holding {holding}; price {price} is below sell_above {sell_above}"
                        ),
                    }
                }
            } else if price <= *buy_below {
                buy(*quote_amount, price)
            } else {
                Decision::Skip {
                    reason: format!("price {price} is above buy_below {buy_below}"),
                }
            }
        }
    }
}

fn buy(quote_amount: Decimal, price: Decimal) -> Decision {
    let quantity =
        (quote_amount / price).round_dp_with_strategy(QUANTITY_DECIMALS, RoundingStrategy::ToZero);
    if quantity <= Decimal::ZERO {
        Decision::Skip {
            reason: format!("quote amount {quote_amount} buys nothing at price {price}"),
        }
    } else {
        Decision::Buy { quantity }
    }
}

/// How often a bot's trading loop looks at the market: a DCA bot at its
/// interval, a threshold bot every `tick`.
pub fn interval(strategy: &Strategy, tick: Duration) -> Duration {
    match strategy {
        Strategy::Dca { interval_secs, .. } => Duration::from_secs(*interval_secs),
        Strategy::Threshold { .. } => tick,
    }
}

/// How long the loop waits before it trades: a DCA bot buys an interval
/// after its last scheduled fill (at once if it has none, or the interval
/// has passed), so restarting the runner never buys early; a threshold bot
/// looks at every tick.
pub fn wait_before_trading(
    strategy: &Strategy,
    last_scheduled_fill_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Duration {
    match (strategy, last_scheduled_fill_at) {
        (Strategy::Dca { interval_secs, .. }, Some(last)) => {
            let due = last + chrono::Duration::seconds(*interval_secs as i64);
            (due - now).to_std().unwrap_or(Duration::ZERO)
        }
        _ => Duration::ZERO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(text: &str) -> Decimal {
        text.parse().unwrap()
    }

    fn threshold() -> Strategy {
        Strategy::Threshold {
            buy_below: dec("60000"),
            sell_above: dec("65000"),
            quote_amount: dec("300"),
        }
    }

    #[test]
    fn dca_buys_its_quote_amount_whatever_the_price() {
        let dca = Strategy::Dca {
            quote_amount: dec("25.00"),
            interval_secs: 60,
        };
        for (price, quantity) in [
            ("50000", "0.0005"),
            ("3", "8.33333333"),
            ("0.07", "357.14285714"),
        ] {
            assert_eq!(
                decide(&dca, dec(price), dec("1")),
                Decision::Buy {
                    quantity: dec(quantity)
                }
            );
        }
    }

    #[test]
    fn a_quote_amount_too_small_for_the_price_is_a_skip() {
        let dca = Strategy::Dca {
            quote_amount: dec("0.0000001"),
            interval_secs: 60,
        };
        let Decision::Skip { reason } = decide(&dca, dec("60000"), Decimal::ZERO) else {
            panic!("expected a skip");
        };
        assert!(reason.contains("buys nothing"), "{reason}");
    }

    #[test]
    fn threshold_buys_at_or_below_buy_below_when_flat() {
        assert_eq!(
            decide(&threshold(), dec("60000"), Decimal::ZERO),
            Decision::Buy {
                quantity: dec("0.005")
            }
        );
        assert_eq!(
            decide(&threshold(), dec("59000"), Decimal::ZERO),
            Decision::Buy {
                quantity: dec("0.00508474")
            }
        );
        assert_eq!(
            decide(&threshold(), dec("60000.01"), Decimal::ZERO),
            Decision::Skip {
                reason: "price 60000.01 is above buy_below 60000".to_string()
            }
        );
    }

    #[test]
    fn threshold_sells_the_whole_holding_at_or_above_sell_above() {
        assert_eq!(
            decide(&threshold(), dec("65000"), dec("0.005")),
            Decision::Sell {
                quantity: dec("0.005")
            }
        );
        assert_eq!(
            decide(&threshold(), dec("64999.99"), dec("0.005")),
            Decision::Skip {
                reason: "holding 0.005; price 64999.99 is below sell_above 65000".to_string()
            }
        );
        // Holding, a low price does not buy more.
        assert!(matches!(
            decide(&threshold(), dec("50000"), dec("0.005")),
            Decision::Skip { .. }
        ));
    }

    #[test]
    fn no_price_no_trade() {
        assert!(matches!(
            decide(&threshold(), Decimal::ZERO, Decimal::ZERO),
            Decision::Skip { .. }
        ));
    }

    #[test]
    fn dca_waits_its_interval_after_the_last_scheduled_fill() {
        let dca = Strategy::Dca {
            quote_amount: dec("1"),
            interval_secs: 60,
        };
        let last = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let at = |secs| last + chrono::Duration::seconds(secs);
        assert_eq!(wait_before_trading(&dca, None, at(5)), Duration::ZERO);
        assert_eq!(
            wait_before_trading(&dca, Some(last), at(20)),
            Duration::from_secs(40)
        );
        assert_eq!(
            wait_before_trading(&dca, Some(last), at(60)),
            Duration::ZERO
        );
        assert_eq!(
            wait_before_trading(&dca, Some(last), at(3600)),
            Duration::ZERO
        );
        assert_eq!(
            wait_before_trading(&threshold(), Some(last), at(1)),
            Duration::ZERO
        );
    }

    #[test]
    fn the_loop_interval_follows_the_strategy() {
        let tick = Duration::from_millis(250);
        let dca = Strategy::Dca {
            quote_amount: dec("1"),
            interval_secs: 90,
        };
        assert_eq!(interval(&dca, tick), Duration::from_secs(90));
        assert_eq!(interval(&threshold(), tick), tick);
    }
}
