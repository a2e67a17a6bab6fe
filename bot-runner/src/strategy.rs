//! The strategies: given the price and what the bot holds, buy, sell or
//! skip (with the reason, which is recorded as `bot.trade.skipped`). A
//! skip's [`SkipKind`] names the decision apart from the numbers in its
//! reason, so a loop records a skip when the decision changes, not on
//! every tick of a moving price.
//!
//! Every computation is checked: a quantity or an order value beyond what
//! a decimal holds is a skip with the reason, never a panic, whatever the
//! stored strategy, the holding or the exchange's price.

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
        kind: SkipKind,
        reason: String,
    },
}

/// Why a strategy did not trade, without the live numbers: two skips of
/// the same kind are the same decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SkipKind {
    /// The exchange's price is zero or negative.
    NoUsablePrice,
    /// A threshold bot holding nothing, the price above `buy_below`.
    AboveBuyBelow,
    /// A threshold bot holding something, the price below `sell_above`.
    BelowSellAbove,
    /// The quote amount buys nothing (or too much) at this price.
    NoQuantity,
    /// The holding is worth more than a decimal holds.
    HoldingTooLarge,
}

impl SkipKind {
    /// A stable code, e.g. for the loop's last note.
    pub fn code(self) -> &'static str {
        match self {
            SkipKind::NoUsablePrice => "no_usable_price",
            SkipKind::AboveBuyBelow => "above_buy_below",
            SkipKind::BelowSellAbove => "below_sell_above",
            SkipKind::NoQuantity => "no_quantity",
            SkipKind::HoldingTooLarge => "holding_too_large",
        }
    }
}

/// What `strategy` does at `price` while the bot holds `holding` of the
/// base currency.
pub fn decide(strategy: &Strategy, price: Decimal, holding: Decimal) -> Decision {
    if price <= Decimal::ZERO {
        return Decision::Skip {
            kind: SkipKind::NoUsablePrice,
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
                    sell(holding, price)
                } else {
                    Decision::Skip {
                        kind: SkipKind::BelowSellAbove,
                        reason: format!(
                            "holding {holding}; price {price} is below sell_above {sell_above}"
                        ),
                    }
                }
            } else if price <= *buy_below {
                buy(*quote_amount, price)
            } else {
                Decision::Skip {
                    kind: SkipKind::AboveBuyBelow,
                    reason: format!("price {price} is above buy_below {buy_below}"),
                }
            }
        }
    }
}

fn buy(quote_amount: Decimal, price: Decimal) -> Decision {
    let Some(quantity) = quote_amount.checked_div(price) else {
        return Decision::Skip {
            kind: SkipKind::NoQuantity,
            reason: format!(
                "quote amount {quote_amount} at price {price} buys more than a decimal holds"
            ),
        };
    };
    let quantity = quantity.round_dp_with_strategy(QUANTITY_DECIMALS, RoundingStrategy::ToZero);
    if quantity <= Decimal::ZERO {
        return Decision::Skip {
            kind: SkipKind::NoQuantity,
            reason: format!("quote amount {quote_amount} buys nothing at price {price}"),
        };
    }
    // A quotient of more than 28 significant digits is rounded, possibly
    // up: a buy never spends more than its quote amount.
    if quantity
        .checked_mul(price)
        .is_none_or(|spent| spent > quote_amount)
    {
        return Decision::Skip {
            kind: SkipKind::NoQuantity,
            reason: format!(
                "quote amount {quote_amount} at price {price} has no quantity within it"
            ),
        };
    }
    Decision::Buy { quantity }
}

/// Sells the whole holding, if what it is worth at `price` is a number.
fn sell(holding: Decimal, price: Decimal) -> Decision {
    if holding.checked_mul(price).is_none() {
        return Decision::Skip {
            kind: SkipKind::HoldingTooLarge,
            reason: format!(
                "holding {holding} at price {price} is worth more than a decimal holds"
            ),
        };
    }
    Decision::Sell { quantity: holding }
}

/// How often a bot's trading loop looks at the market: a DCA bot at its
/// interval, a threshold bot every `tick`.
pub fn interval(strategy: &Strategy, tick: Duration) -> Duration {
    match strategy {
        // At least a second: a stored interval of 0 (written past the
        // configuration's bounds) must not spin the loop.
        Strategy::Dca { interval_secs, .. } => Duration::from_secs((*interval_secs).max(1)),
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
            // A stored interval too long for a date (only one written past
            // the configuration's bounds) waits one interval from now.
            let due = i64::try_from(*interval_secs)
                .ok()
                .and_then(chrono::Duration::try_seconds)
                .and_then(|interval| last.checked_add_signed(interval));
            // Never more than one interval from now, even after a last
            // fill dated in the future.
            let interval = Duration::from_secs(*interval_secs);
            match due {
                Some(due) => (due - now).to_std().unwrap_or(Duration::ZERO).min(interval),
                None => interval,
            }
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
        let Decision::Skip { reason, .. } = decide(&dca, dec("60000"), Decimal::ZERO) else {
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
                kind: SkipKind::AboveBuyBelow,
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
                kind: SkipKind::BelowSellAbove,
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
    fn an_idle_threshold_bot_skips_with_one_kind_whatever_the_price() {
        // The reason names the live price, the kind does not: a moving
        // price is the same decision.
        let kinds: std::collections::HashSet<SkipKind> = (0..100)
            .map(
                |n| match decide(&threshold(), dec("61000") + Decimal::from(n), Decimal::ZERO) {
                    Decision::Skip { kind, .. } => kind,
                    other => panic!("expected a skip, got {other:?}"),
                },
            )
            .collect();
        assert_eq!(kinds, [SkipKind::AboveBuyBelow].into());
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
    fn the_attack_amount_is_a_skip_not_a_panic() {
        let attack = Strategy::Dca {
            quote_amount: Decimal::MAX,
            interval_secs: 60,
        };
        // At a price below one the quantity would not fit a decimal.
        let Decision::Skip { reason, .. } = decide(&attack, dec("0.5"), Decimal::ZERO) else {
            panic!("expected a skip");
        };
        assert!(reason.contains("more than a decimal holds"), "{reason}");
        let selling = threshold();
        let Decision::Skip { reason, .. } = decide(&selling, dec("65000"), Decimal::MAX) else {
            panic!("expected a skip");
        };
        assert!(
            reason.contains("worth more than a decimal holds"),
            "{reason}"
        );
    }

    #[test]
    fn a_stored_interval_beyond_any_date_waits_an_interval() {
        let forever = Strategy::Dca {
            quote_amount: dec("1"),
            interval_secs: u64::MAX,
        };
        let last = DateTime::<Utc>::MAX_UTC;
        assert_eq!(
            wait_before_trading(&forever, Some(last), Utc::now()),
            Duration::from_secs(u64::MAX)
        );
        let spin = Strategy::Dca {
            quote_amount: dec("1"),
            interval_secs: 0,
        };
        assert_eq!(
            interval(&spin, Duration::from_millis(5)),
            Duration::from_secs(1)
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

    mod properties {
        use domain::arbitrary::{any_decimal, any_strategy};
        use proptest::prelude::*;
        use proptest::strategy::Strategy as _;

        use super::*;
        use domain::Strategy;

        fn any_time() -> impl proptest::strategy::Strategy<Value = DateTime<Utc>> {
            let (min, max) = (
                DateTime::<Utc>::MIN_UTC.timestamp(),
                DateTime::<Utc>::MAX_UTC.timestamp(),
            );
            (min..=max).prop_map(|secs| DateTime::from_timestamp(secs, 0).expect("in range"))
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            /// Any strategy at any price with any holding decides without a
            /// panic; a buy spends at most the quote amount, a sell sells
            /// exactly the holding, and both are worth a number.
            #[test]
            fn any_strategy_at_any_price_decides(
                strategy in any_strategy(),
                price in any_decimal(),
                holding in any_decimal(),
            ) {
                match decide(&strategy, price, holding) {
                    Decision::Buy { quantity } => {
                        let (Strategy::Dca { quote_amount, .. }
                        | Strategy::Threshold { quote_amount, .. }) = strategy;
                        prop_assert!(quantity > Decimal::ZERO);
                        prop_assert!(quantity.scale() <= QUANTITY_DECIMALS);
                        let spent = quantity.checked_mul(price);
                        prop_assert!(spent.is_some_and(|spent| spent <= quote_amount));
                    }
                    Decision::Sell { quantity } => {
                        prop_assert_eq!(quantity, holding);
                        prop_assert!(quantity.checked_mul(price).is_some());
                    }
                    Decision::Skip { reason, .. } => prop_assert!(!reason.is_empty()),
                }
            }

            /// Any schedule, however far its last fill or long its interval,
            /// waits at most one interval.
            #[test]
            fn any_schedule_waits_at_most_an_interval(
                strategy in any_strategy(),
                last in proptest::option::of(any_time()),
                now in any_time(),
            ) {
                let wait = wait_before_trading(&strategy, last, now);
                if let Strategy::Dca { interval_secs, .. } = strategy {
                    prop_assert!(wait <= Duration::from_secs(interval_secs));
                }
                prop_assert!(interval(&strategy, Duration::from_millis(5)) > Duration::ZERO);
            }
        }
    }
}
