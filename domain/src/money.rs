//! The bounds a user may configure on a bot's money, and the checks that
//! keep every amount the platform computes inside what a decimal holds.
//!
//! `rust_decimal` holds about ±7.9e28 with up to 28 decimal places; its
//! plain operators panic beyond that. Every computation on an amount, a
//! price, a fee or a quantity therefore uses the checked operations and
//! turns `None` into a refusal (a `DomainError` here, a skip or an error in
//! the bot runner, a rejected order on the paper exchange). The bounds
//! below keep what a user configures far from the edge, so a refusal for
//! size is what an exchange's unusual numbers or an event written past the
//! edge produce, not an everyday outcome.

use rust_decimal::Decimal;

use crate::common::{Strategy, MAX_INTERVAL_SECS};
use crate::error::DomainError;

/// The largest `quote_amount` by default: 1,000,000 in the quote currency.
pub const DEFAULT_MAX_QUOTE_AMOUNT: Decimal = Decimal::from_parts(1_000_000, 0, 0, false, 0);

/// The shortest DCA interval by default: one minute.
pub const DEFAULT_MIN_INTERVAL_SECS: u64 = 60;

/// The highest maximum quote amount an operator may set: 10^15. With a
/// price of at least 10^-12 a buy's quantity stays below 10^27.
pub const QUOTE_AMOUNT_CEILING: Decimal = Decimal::from_parts(2_764_472_320, 232_830, 0, false, 0);

/// The decimal places a `quote_amount` may have (Kraken's precision).
pub const QUOTE_AMOUNT_DECIMALS: u32 = 8;

/// The highest threshold price (`buy_below`, `sell_above`): 10^12 in the
/// quote currency, above any market price (a bitcoin in Indonesian rupiah
/// is about 10^9).
pub const MAX_THRESHOLD_PRICE: Decimal = Decimal::from_parts(3_567_587_328, 232, 0, false, 0);

/// The decimal places a threshold price may have.
pub const PRICE_DECIMALS: u32 = 12;

/// What an operator allows a user to configure (`BOT_MAX_QUOTE_AMOUNT`,
/// `BOT_MIN_INTERVAL_SECS`); the rest of the bounds are the constants
/// above.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StrategyLimits {
    max_quote_amount: Decimal,
    min_interval_secs: u64,
}

impl Default for StrategyLimits {
    fn default() -> Self {
        Self {
            max_quote_amount: DEFAULT_MAX_QUOTE_AMOUNT,
            min_interval_secs: DEFAULT_MIN_INTERVAL_SECS,
        }
    }
}

impl StrategyLimits {
    /// Limits an operator chose: a maximum quote amount above zero, at
    /// most [`QUOTE_AMOUNT_CEILING`] and with at most
    /// [`QUOTE_AMOUNT_DECIMALS`] places, and a minimum interval of 1 to
    /// [`MAX_INTERVAL_SECS`] seconds. A refusal names `max_quote_amount`
    /// or `min_interval_secs`.
    pub fn new(max_quote_amount: Decimal, min_interval_secs: u64) -> Result<Self, DomainError> {
        let amount_field = "max_quote_amount";
        if max_quote_amount <= Decimal::ZERO || max_quote_amount > QUOTE_AMOUNT_CEILING {
            return Err(DomainError::invalid(
                amount_field,
                format!("must be above 0 and at most {QUOTE_AMOUNT_CEILING}"),
            ));
        }
        if decimal_places(max_quote_amount) > QUOTE_AMOUNT_DECIMALS {
            return Err(DomainError::invalid(
                amount_field,
                format!("must have at most {QUOTE_AMOUNT_DECIMALS} decimal places"),
            ));
        }
        if min_interval_secs == 0 || min_interval_secs > MAX_INTERVAL_SECS {
            return Err(DomainError::invalid(
                "min_interval_secs",
                format!("must be between 1 and {MAX_INTERVAL_SECS} seconds"),
            ));
        }
        Ok(Self {
            max_quote_amount: max_quote_amount.normalize(),
            min_interval_secs,
        })
    }

    pub fn max_quote_amount(&self) -> Decimal {
        self.max_quote_amount
    }

    pub fn min_interval_secs(&self) -> u64 {
        self.min_interval_secs
    }

    /// Whether a user may configure `strategy`, naming the first field that
    /// is out of bounds.
    pub fn check(&self, strategy: &Strategy) -> Result<(), DomainError> {
        self.check_amounts(strategy)?;
        match strategy {
            Strategy::Dca { interval_secs, .. } => {
                let min = self.min_interval_secs;
                if *interval_secs < min || *interval_secs > MAX_INTERVAL_SECS {
                    return Err(DomainError::invalid(
                        "strategy.interval_secs",
                        format!("must be between {min} and {MAX_INTERVAL_SECS}"),
                    ));
                }
                Ok(())
            }
            Strategy::Threshold { .. } => Ok(()),
        }
    }

    /// The money bounds alone: a quote amount above zero and at most the
    /// maximum, threshold prices above zero and at most
    /// [`MAX_THRESHOLD_PRICE`], `buy_below` under `sell_above`, and the
    /// decimal places of each. The bot runner checks a stored strategy
    /// with this before it trades, so a strategy written past the edge
    /// never reaches an exchange.
    pub fn check_amounts(&self, strategy: &Strategy) -> Result<(), DomainError> {
        match strategy {
            Strategy::Dca { quote_amount, .. } => self.check_quote_amount(*quote_amount),
            Strategy::Threshold {
                buy_below,
                sell_above,
                quote_amount,
            } => {
                check_price("strategy.buy_below", *buy_below)?;
                check_price("strategy.sell_above", *sell_above)?;
                self.check_quote_amount(*quote_amount)?;
                if buy_below >= sell_above {
                    return Err(DomainError::invalid(
                        "strategy.sell_above",
                        "must be greater than buy_below",
                    ));
                }
                Ok(())
            }
        }
    }

    fn check_quote_amount(&self, quote_amount: Decimal) -> Result<(), DomainError> {
        let field = "strategy.quote_amount";
        if quote_amount <= Decimal::ZERO {
            return Err(DomainError::invalid(field, "must be greater than zero"));
        }
        if quote_amount > self.max_quote_amount {
            return Err(DomainError::invalid(
                field,
                format!("must be at most {}", self.max_quote_amount),
            ));
        }
        if decimal_places(quote_amount) > QUOTE_AMOUNT_DECIMALS {
            return Err(DomainError::invalid(
                field,
                format!("must have at most {QUOTE_AMOUNT_DECIMALS} decimal places"),
            ));
        }
        Ok(())
    }
}

fn check_price(field: &'static str, price: Decimal) -> Result<(), DomainError> {
    if price <= Decimal::ZERO {
        return Err(DomainError::invalid(field, "must be greater than zero"));
    }
    if price > MAX_THRESHOLD_PRICE {
        return Err(DomainError::invalid(
            field,
            format!("must be at most {MAX_THRESHOLD_PRICE}"),
        ));
    }
    if decimal_places(price) > PRICE_DECIMALS {
        return Err(DomainError::invalid(
            field,
            format!("must have at most {PRICE_DECIMALS} decimal places"),
        ));
    }
    Ok(())
}

/// The decimal places `value` needs: `25.000` needs none.
pub fn decimal_places(value: Decimal) -> u32 {
    value.normalize().scale()
}

/// The value of a fill, `quantity × price + fee`, or `None` beyond what a
/// decimal holds.
pub fn fill_value(quantity: Decimal, price: Decimal, fee: Decimal) -> Option<Decimal> {
    quantity.checked_mul(price)?.checked_add(fee)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_constants_are_what_their_documents_say() {
        assert_eq!(DEFAULT_MAX_QUOTE_AMOUNT, Decimal::from(1_000_000));
        assert_eq!(
            QUOTE_AMOUNT_CEILING,
            Decimal::from(1_000_000_000_000_000u64)
        );
        assert_eq!(MAX_THRESHOLD_PRICE, Decimal::from(1_000_000_000_000u64));
    }

    #[test]
    fn an_operator_s_limits_are_checked() {
        assert!(StrategyLimits::new(Decimal::from(5), 1).is_ok());
        assert!(StrategyLimits::new(Decimal::ZERO, 60).is_err());
        assert!(StrategyLimits::new(QUOTE_AMOUNT_CEILING + Decimal::ONE, 60).is_err());
        assert!(StrategyLimits::new(Decimal::new(1, 9), 60).is_err());
        assert!(StrategyLimits::new(Decimal::ONE, 0).is_err());
        assert!(StrategyLimits::new(Decimal::ONE, MAX_INTERVAL_SECS + 1).is_err());
    }
}
