//! Given/when/then tests of the Portfolio aggregate: average cost, realised
//! P&L with exact decimals, idempotency by order id.

mod support;

use cqrs_es::test::{AggregateResultValidator, TestFramework};
use cqrs_es::DomainEvent;
use domain::portfolio::{Portfolio, PortfolioCommand, PortfolioEvent, Position, TradeFill};
use domain::{Actor, Decimal, Pair, Side};
use support::{assert_wire_format, at, dec, id, state_after, Outcome};
use uuid::Uuid;

fn user() -> Uuid {
    id(1)
}

fn xbt() -> Pair {
    Pair::parse("XBT/USD").unwrap()
}

/// A fill of `quantity` at `price` with `fee`, for `user()` on XBT/USD.
fn trade(order_id: &str, side: Side, quantity: &str, price: &str, fee: &str) -> TradeFill {
    TradeFill {
        user_id: user(),
        bot_id: id(50),
        order_id: order_id.to_string(),
        pair: xbt(),
        side,
        quantity: dec(quantity),
        price: dec(price),
        fee: dec(fee),
        executed_at: at(),
    }
}

fn buy(order_id: &str, quantity: &str, price: &str, fee: &str) -> TradeFill {
    trade(order_id, Side::Buy, quantity, price, fee)
}

fn sell(order_id: &str, quantity: &str, price: &str, fee: &str) -> TradeFill {
    trade(order_id, Side::Sell, quantity, price, fee)
}

fn position(quantity: &str, cost_basis: &str, average_cost: &str, realised_pnl: &str) -> Position {
    Position {
        quantity: dec(quantity),
        cost_basis: dec(cost_basis),
        average_cost: dec(average_cost),
        realised_pnl: dec(realised_pnl),
    }
}

fn recorded(trade: TradeFill, realised_pnl: &str, position: Position) -> PortfolioEvent {
    PortfolioEvent::TradeRecorded {
        trade,
        realised_pnl: dec(realised_pnl),
        position,
    }
}

fn record(actor: Actor, trade: TradeFill) -> PortfolioCommand {
    PortfolioCommand::RecordTrade { actor, trade }
}

fn run(given: Vec<PortfolioEvent>, trade: TradeFill) -> AggregateResultValidator<Portfolio> {
    run_as(Actor::System, given, trade)
}

fn run_as(
    actor: Actor,
    given: Vec<PortfolioEvent>,
    trade: TradeFill,
) -> AggregateResultValidator<Portfolio> {
    TestFramework::<Portfolio>::with(())
        .given(given)
        .when(record(actor, trade))
}

/// The single event a command recorded. `Decimal` compares by value, so
/// `dec("106")` equals a computed `106.000`.
fn only_event(validator: AggregateResultValidator<Portfolio>) -> (TradeFill, Decimal, Position) {
    let mut events = validator.events();
    assert_eq!(events.len(), 1, "{events:?}");
    let PortfolioEvent::TradeRecorded {
        trade,
        realised_pnl,
        position,
    } = events.remove(0);
    (trade, realised_pnl, position)
}

fn bought_twice() -> Vec<PortfolioEvent> {
    vec![
        recorded(
            buy("B-1", "1", "100", "1"),
            "0",
            position("1", "101", "101", "0"),
        ),
        recorded(
            buy("B-2", "1", "110", "1"),
            "0",
            position("2", "212", "106", "0"),
        ),
    ]
}

// ---- buys ----

#[test]
fn a_first_buy_opens_a_position_costed_with_its_fee() {
    run(vec![], buy("B-1", "1", "100", "1")).then_expect_events(vec![bought_twice().remove(0)]);
}

#[test]
fn a_second_buy_averages_the_cost_including_fees() {
    let given = bought_twice()[..1].to_vec();
    let (_, realised, after) = only_event(run(given, buy("B-2", "1", "110", "1")));
    assert_eq!(realised, Decimal::ZERO);
    assert_eq!(after, position("2", "212", "106", "0"));
}

#[test]
fn an_average_that_does_not_terminate_is_rounded_to_12_places() {
    let (_, _, after) = only_event(run(vec![], buy("B-1", "3", "10", "1")));
    assert_eq!(after.cost_basis, dec("31"));
    assert_eq!(after.average_cost, dec("10.333333333333"));
}

// ---- sells ----

#[test]
fn a_partial_sell_realises_the_pnl_against_the_average_cost() {
    let (_, realised, after) = only_event(run(bought_twice(), sell("S-1", "1", "120", "1")));
    // 120 proceeds - 1 fee - 106 average cost of the unit sold.
    assert_eq!(realised, dec("13"));
    assert_eq!(after, position("1", "106", "106", "13"));
}

#[test]
fn selling_everything_resets_the_cost_and_accumulates_the_pnl() {
    let mut given = bought_twice();
    given.push(recorded(
        sell("S-1", "1", "120", "1"),
        "13",
        position("1", "106", "106", "13"),
    ));
    let (_, realised, after) = only_event(run(given, sell("S-2", "1", "90", "0.5")));
    assert_eq!(realised, dec("-16.5"));
    assert_eq!(after, position("0", "0", "0", "-3.5"));
    assert!(after.average_cost.is_zero() && after.cost_basis.is_zero());
}

#[test]
fn selling_everything_at_once_realises_proceeds_less_fees_less_cost() {
    let (_, realised, after) = only_event(run(bought_twice(), sell("S-1", "2", "120", "2")));
    assert_eq!(realised, dec("26"));
    assert_eq!(after, position("0", "0", "0", "26"));
}

#[test]
fn rounding_in_partial_sells_leaves_no_residue_once_the_position_is_closed() {
    let bought = recorded(
        buy("B-1", "3", "10", "1"),
        "0",
        position("3", "31", "10.333333333333", "0"),
    );
    let (first, realised, after) =
        only_event(run(vec![bought.clone()], sell("S-1", "1", "12", "0")));
    assert_eq!(realised, dec("1.666666666667"));
    assert_eq!(after.cost_basis, dec("20.666666666667"));
    // 20.666666666667 / 2 = 10.3333333333335, rounded half to even.
    assert_eq!(after.average_cost, dec("10.333333333334"));
    let given = vec![bought, recorded(first, "1.666666666667", after)];
    let (_, realised, closed) = only_event(run(given, sell("S-2", "2", "11", "0")));
    assert_eq!(realised, dec("1.333333333333"));
    // 12 + 22 proceeds - 31 cost: exactly 3 over the life of the position.
    assert_eq!(closed, position("0", "0", "0", "3"));
}

#[test]
fn selling_more_than_held_is_refused_on_quantity() {
    run(bought_twice(), sell("S-1", "2.000001", "120", "0")).then_expect_invalid("quantity");
    run(vec![], sell("S-1", "1", "120", "0"))
        .then_expect_error_message("quantity: sells 1 but the position holds 0");
}

#[test]
fn positions_are_kept_per_pair() {
    let mut eth = sell("S-1", "1", "3000", "0");
    eth.pair = Pair::parse("ETH/USD").unwrap();
    run(bought_twice(), eth.clone()).then_expect_invalid("quantity");
    eth.side = Side::Buy;
    let (_, _, after) = only_event(run(bought_twice(), eth.clone()));
    assert_eq!(after, position("1", "3000", "3000", "0"));
    let state: Portfolio =
        state_after([bought_twice(), vec![recorded(eth, "0", after.clone())]].concat());
    assert_eq!(
        state.positions.get(&xbt()),
        Some(&position("2", "212", "106", "0"))
    );
    assert_eq!(
        state.positions.get(&Pair::parse("ETH/USD").unwrap()),
        Some(&after)
    );
    assert_eq!(state.user_id, Some(user()));
    assert_eq!(state.order_ids.len(), 3);
}

// ---- idempotency, actors, ownership, validation ----

#[test]
fn an_order_recorded_twice_has_one_effect() {
    run(bought_twice(), buy("B-2", "1", "110", "1")).then_expect_events(vec![]);
    // Even if the repeat differs, the order id decides.
    run(bought_twice(), sell("B-1", "5", "1", "0")).then_expect_events(vec![]);
}

#[test]
fn only_the_system_records_trades() {
    for actor in [
        Actor::user(user()),
        Actor::admin(id(9)),
        Actor::auditor(id(9)),
    ] {
        run_as(actor, vec![], buy("B-1", "1", "100", "1")).then_expect_forbidden();
    }
}

#[test]
fn a_trade_for_another_users_portfolio_is_refused() {
    let mut foreign = buy("B-3", "1", "100", "0");
    foreign.user_id = id(2);
    run(bought_twice(), foreign)
        .then_expect_error_message("user_id: the trade belongs to another user's portfolio");
}

#[test]
fn invalid_fills_are_refused() {
    for (bad, field) in [
        (buy("B-1", "0", "100", "0"), "quantity"),
        (buy("B-1", "-1", "100", "0"), "quantity"),
        (buy("B-1", "1", "0", "0"), "price"),
        (buy("B-1", "1", "100", "-0.01"), "fee"),
        (buy(" ", "1", "100", "0"), "order_id"),
    ] {
        run(vec![], bad).then_expect_invalid(field);
    }
}

#[test]
fn position_after_is_usable_on_its_own() {
    let (after, realised) = Portfolio::position_after(
        &position("2", "212", "106", "0"),
        &sell("S-1", "0.5", "120", "0.1"),
    )
    .unwrap();
    // 60 proceeds - 0.1 fee - 53 cost of half a unit.
    assert_eq!(realised, dec("6.9"));
    assert_eq!(after, position("1.5", "159", "106", "6.9"));
    assert_eq!(realised, "6.9".parse::<Decimal>().unwrap());
}

#[test]
fn a_fill_too_large_for_a_decimal_is_refused_not_a_panic() {
    run(
        vec![],
        buy("B-1", "100000000000000000000", "10000000000", "0"),
    )
    .then_expect_invalid("quantity");
}

// ---- wire format ----

#[test]
fn every_portfolio_event_has_its_wire_name_and_round_trips() {
    let mut events = bought_twice();
    events.push(recorded(
        sell("S-1", "1", "120", "1"),
        "13",
        position("1", "106", "106", "13"),
    ));
    events.push(recorded(
        sell("S-2", "1", "90", "0.5"),
        "-16.5",
        position("0", "0", "0", "-3.5"),
    ));
    assert_wire_format(&events);
    assert!(events
        .iter()
        .all(|event| event.event_type() == "trade.executed"));
    let json = serde_json::to_value(&events[3]).unwrap();
    assert_eq!(json["realised_pnl"], "-16.5");
    assert_eq!(json["position"]["realised_pnl"], "-3.5");
    assert_eq!(json["trade"]["side"], "sell");
    assert_eq!(json["trade"]["pair"], "XBT/USD");
}
