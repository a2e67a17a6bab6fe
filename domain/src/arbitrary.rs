//! Proptest strategies over the whole `Decimal` range, shared by the
//! property tests of every money path (the `proptest` feature, which only
//! dev-dependencies turn on).
//!
//! A value is one of: an edge (zero, ±1, `Decimal::MAX` and `MIN`, the
//! smallest steps at 28 places), any 96-bit mantissa with either sign at
//! any scale from 0 to 28, any `i64` at any scale, or an everyday amount
//! (a positive mantissa up to 10^24 with up to 12 places), so that both the
//! refusals and the ordinary results are exercised.

use proptest::prelude::*;
use rust_decimal::Decimal;

use crate::common::Strategy as BotStrategy;

/// The edges of the range that every money path must survive.
pub fn edges() -> Vec<Decimal> {
    vec![
        Decimal::ZERO,
        Decimal::ONE,
        Decimal::NEGATIVE_ONE,
        Decimal::MAX,
        Decimal::MIN,
        Decimal::new(1, 28),
        Decimal::new(-1, 28),
        Decimal::from_parts(u32::MAX, u32::MAX, u32::MAX, false, 28),
        Decimal::from_parts(u32::MAX, u32::MAX, u32::MAX, true, 28),
        Decimal::new(1, 8),
        Decimal::from(1_000_000),
    ]
}

/// Any decimal, edges and everyday amounts included.
pub fn any_decimal() -> impl Strategy<Value = Decimal> {
    prop_oneof![
        1 => prop::sample::select(edges()),
        2 => (any::<u32>(), any::<u32>(), any::<u32>(), any::<bool>(), 0..=28u32).prop_map(
            |(lo, mid, hi, negative, scale)| Decimal::from_parts(lo, mid, hi, negative, scale)
        ),
        1 => (any::<i64>(), 0..=28u32).prop_map(|(mantissa, scale)| Decimal::new(mantissa, scale)),
        2 => everyday_amount(),
    ]
}

/// A positive amount such as users and exchanges state: a mantissa from 1
/// to 10^24 with 0 to 12 decimal places.
pub fn everyday_amount() -> impl Strategy<Value = Decimal> {
    (1..=1_000_000_000_000_000_000_000_000i128, 0..=12u32).prop_map(|(mantissa, scale)| {
        Decimal::try_from_i128_with_scale(mantissa, scale).expect("below 2^96")
    })
}

/// Any bot strategy, with any amounts and any interval.
pub fn any_strategy() -> impl Strategy<Value = BotStrategy> {
    prop_oneof![
        (any_decimal(), prop_oneof![any::<u64>(), 0..=3_000_000u64]).prop_map(
            |(quote_amount, interval_secs)| {
                BotStrategy::Dca {
                    quote_amount,
                    interval_secs,
                }
            }
        ),
        (any_decimal(), any_decimal(), any_decimal()).prop_map(
            |(buy_below, sell_above, quote_amount)| BotStrategy::Threshold {
                buy_below,
                sell_above,
                quote_amount,
            }
        ),
    ]
}
