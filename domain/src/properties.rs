//! Property tests of the domain's money paths over the whole `Decimal`
//! range (see [`crate::arbitrary`]): a configured strategy, a fill recorded
//! on a bot and applied to it, a trade on a portfolio. Each must give a
//! result or a refusal, never a panic, and a result must be exact.
//!
//! They live in the crate (not in `tests/`) because the shared strategies
//! are compiled only for tests and the `proptest` feature.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cqrs_es::test::TestFramework;
use cqrs_es::Aggregate;
use proptest::prelude::*;
use proptest::strategy::Strategy as _;
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::arbitrary::{any_decimal, any_strategy};
use crate::bot::{Bot, BotCommand, BotEvent, BotServices, Fill};
use crate::common::{exact_decimal, Actor, Pair, Side, Strategy, MAX_INTERVAL_SECS};
use crate::error::DomainError;
use crate::money::{decimal_places, StrategyLimits, MAX_THRESHOLD_PRICE};
use crate::portfolio::{Portfolio, PortfolioCommand, PortfolioEvent, Position, TradeFill};
use crate::services::{KeyDirectory, KeyFacts};

const CASES: u32 = 256;
const OWNER: Uuid = Uuid::from_u128(1);
const BOT: Uuid = Uuid::from_u128(50);

/// Recording fills asks no key; configuring one is not under test here.
struct NoKeys;

#[async_trait]
impl KeyDirectory for NoKeys {
    async fn key_facts(&self, _key_id: Uuid) -> Result<Option<KeyFacts>, DomainError> {
        Ok(None)
    }
}

fn services() -> BotServices {
    BotServices {
        keys: Arc::new(NoKeys),
        limits: StrategyLimits::default(),
        triggers: crate::TriggerQuotas::default(),
    }
}

fn at() -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000, 0).expect("valid timestamp")
}

fn pair() -> Pair {
    Pair::parse("XBT/USD").expect("a pair")
}

fn any_side() -> impl proptest::strategy::Strategy<Value = Side> {
    prop_oneof![Just(Side::Buy), Just(Side::Sell)]
}

fn fill(order_id: &str, side: Side, quantity: Decimal, price: Decimal, fee: Decimal) -> Fill {
    Fill {
        trigger_id: None,
        order_id: order_id.to_string(),
        side,
        quantity,
        price,
        fee,
        executed_at: at(),
    }
}

/// A configured bot whose fills so far add up to `holding`: a buy of it,
/// or a sell of its opposite (from zero, neither can overflow).
fn bot_holding(holding: Decimal) -> Vec<BotEvent> {
    let (side, quantity) = if holding.is_sign_negative() {
        (Side::Sell, -holding)
    } else {
        (Side::Buy, holding)
    };
    vec![
        BotEvent::BotConfigured {
            bot_id: BOT,
            owner_id: OWNER,
            key_id: Uuid::from_u128(100),
            pair: pair(),
            strategy: Strategy::Dca {
                quote_amount: Decimal::from(25),
                interval_secs: 3600,
            },
            at: at(),
        },
        BotEvent::TradeExecuted {
            owner_id: OWNER,
            pair: pair(),
            fill: fill("O-EARLIER", side, quantity, Decimal::ONE, Decimal::ZERO),
        },
    ]
}

fn exact_sum(holding: Decimal, side: Side, quantity: Decimal) -> Option<Decimal> {
    match side {
        Side::Buy => holding.checked_add(quantity),
        Side::Sell => holding.checked_sub(quantity),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// Any strategy is accepted or refused with a field; an accepted one
    /// is inside every stated bound.
    #[test]
    fn a_strategy_is_accepted_only_inside_its_bounds(strategy in any_strategy()) {
        let limits = StrategyLimits::default();
        match strategy.validate(&limits) {
            Ok(()) => match strategy {
                Strategy::Dca { quote_amount, interval_secs } => {
                    prop_assert!(quote_amount > Decimal::ZERO);
                    prop_assert!(quote_amount <= limits.max_quote_amount());
                    prop_assert!(decimal_places(quote_amount) <= 8);
                    prop_assert!(interval_secs >= limits.min_interval_secs());
                    prop_assert!(interval_secs <= MAX_INTERVAL_SECS);
                }
                Strategy::Threshold { buy_below, sell_above, quote_amount } => {
                    prop_assert!(Decimal::ZERO < buy_below && buy_below < sell_above);
                    prop_assert!(sell_above <= MAX_THRESHOLD_PRICE);
                    prop_assert!(quote_amount > Decimal::ZERO);
                    prop_assert!(quote_amount <= limits.max_quote_amount());
                }
            },
            Err(DomainError::Invalid { field, .. }) => {
                prop_assert!(field.starts_with("strategy."), "{field}");
            }
            Err(other) => prop_assert!(false, "not a field refusal: {other:?}"),
        }
    }

    /// Any text where a decimal is expected is read or refused.
    #[test]
    fn any_text_is_read_as_a_decimal_or_refused(
        text in prop_oneof![
            ".{0,64}",
            "-?[0-9]{0,40}(\\.[0-9]{0,40})?([eE]-?[0-9]{1,4})?",
        ]
    ) {
        let read = exact_decimal::deserialize(serde_json::Value::String(text.clone()));
        if let Ok(value) = read {
            prop_assert_eq!(text.trim().parse::<Decimal>().ok(), Some(value));
        }
    }

    /// The runner's report of any fill on a bot holding anything is
    /// recorded or refused; once recorded, applying it gives the exact
    /// holding.
    #[test]
    fn any_fill_on_any_holding_is_recorded_exactly_or_refused(
        holding in any_decimal(),
        side in any_side(),
        quantity in any_decimal(),
        price in any_decimal(),
        fee in any_decimal(),
    ) {
        let given = bot_holding(holding);
        let reported = fill("O-NEW", side, quantity, price, fee);
        let command = BotCommand::RecordTradeExecuted { actor: Actor::System, fill: reported };
        let outcome = TestFramework::<Bot>::with(services())
            .given(given.clone())
            .when(command)
            .inspect_result();
        match outcome {
            Ok(events) => {
                prop_assert_eq!(events.len(), 1);
                let mut bot = Bot::default();
                given.into_iter().chain(events).for_each(|event| bot.apply(event));
                prop_assert_eq!(Some(bot.holding), exact_sum(holding, side, quantity));
                prop_assert!(quantity > Decimal::ZERO && price > Decimal::ZERO);
                prop_assert!(fee >= Decimal::ZERO);
            }
            Err(DomainError::Invalid { .. }) => {}
            Err(other) => prop_assert!(false, "not a field refusal: {other:?}"),
        }
    }

    /// Any stored fill applies without a panic: the holding moves exactly,
    /// or stays where it was when the exact one is not representable.
    #[test]
    fn any_stored_fill_applies_to_any_holding(
        holding in any_decimal(),
        side in any_side(),
        quantity in any_decimal(),
        price in any_decimal(),
        fee in any_decimal(),
    ) {
        let mut bot = Bot { holding, trades_executed: u64::MAX, ..Bot::default() };
        bot.apply(BotEvent::TradeExecuted {
            owner_id: OWNER,
            pair: pair(),
            fill: fill("O-STORED", side, quantity, price, fee),
        });
        let expected = exact_sum(holding, side, quantity).unwrap_or(holding);
        prop_assert_eq!(bot.holding, expected);
        prop_assert_eq!(bot.trades_executed, u64::MAX);
    }

    /// Any trade on any position is a new position or a refusal; a new
    /// position moves the quantity exactly and adds up its realised P&L.
    #[test]
    fn any_trade_on_any_position_is_a_position_or_a_refusal(
        current in any_position(),
        trade in any_trade(),
    ) {
        if let Ok((position, realised)) = Portfolio::position_after(&current, &trade) {
            let quantity = exact_sum(current.quantity, trade.side, trade.quantity);
            prop_assert_eq!(Some(position.quantity), quantity);
            prop_assert_eq!(
                Some(position.realised_pnl),
                current.realised_pnl.checked_add(realised)
            );
        }
    }

    /// The portfolio records any trade on any earlier position, or refuses
    /// it with a field.
    #[test]
    fn a_portfolio_records_any_trade_or_refuses_it(
        current in any_position(),
        trade in any_trade(),
    ) {
        let earlier = PortfolioEvent::TradeRecorded {
            trade: TradeFill { order_id: "O-EARLIER".to_string(), ..trade.clone() },
            realised_pnl: Decimal::ZERO,
            position: current,
        };
        let command = PortfolioCommand::RecordTrade { actor: Actor::System, trade };
        let outcome = TestFramework::<Portfolio>::with(())
            .given(vec![earlier])
            .when(command)
            .inspect_result();
        match outcome {
            Ok(events) => prop_assert_eq!(events.len(), 1),
            Err(DomainError::Invalid { .. }) => {}
            Err(other) => prop_assert!(false, "not a field refusal: {other:?}"),
        }
    }
}

fn any_position() -> impl proptest::strategy::Strategy<Value = Position> {
    (any_decimal(), any_decimal(), any_decimal(), any_decimal()).prop_map(
        |(quantity, cost_basis, average_cost, realised_pnl)| Position {
            quantity,
            cost_basis,
            average_cost,
            realised_pnl,
        },
    )
}

fn any_trade() -> impl proptest::strategy::Strategy<Value = TradeFill> {
    (any_side(), any_decimal(), any_decimal(), any_decimal()).prop_map(
        |(side, quantity, price, fee)| TradeFill {
            user_id: OWNER,
            bot_id: BOT,
            order_id: "O-NEW".to_string(),
            pair: pair(),
            side,
            quantity,
            price,
            fee,
            executed_at: at(),
        },
    )
}

#[test]
fn the_attack_amount_is_refused_at_configuration() {
    let attack = Strategy::Dca {
        quote_amount: Decimal::MAX,
        interval_secs: 60,
    };
    let refusal = attack.validate(&StrategyLimits::default());
    assert_eq!(
        refusal,
        Err(DomainError::invalid(
            "strategy.quote_amount",
            "must be at most 1000000"
        ))
    );
}
