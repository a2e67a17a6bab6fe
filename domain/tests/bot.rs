//! Given/when/then tests of the Bot aggregate, with a fake key directory.

mod support;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use cqrs_es::test::{AggregateResultValidator, TestFramework};
use cqrs_es::{Aggregate, DomainEvent};
use domain::bot::{Bot, BotCommand, BotEvent, BotServices, BotState, Fill};
use domain::common::MAX_INTERVAL_SECS;
use domain::services::{KeyDirectory, KeyFacts, KeyStatus};
use domain::{Actor, Decimal, DomainError, Pair, Side, Strategy};
use support::{assert_wire_format, at, at_plus, dec, id};
use uuid::Uuid;

/// Knows a fixed set of keys: see `directory()`.
struct FakeDirectory(HashMap<Uuid, KeyFacts>);

#[async_trait]
impl KeyDirectory for FakeDirectory {
    async fn key_facts(&self, key_id: Uuid) -> Result<Option<KeyFacts>, DomainError> {
        Ok(self.0.get(&key_id).copied())
    }
}

fn owner() -> Uuid {
    id(1)
}
fn stranger() -> Uuid {
    id(2)
}
fn bot_id() -> Uuid {
    id(50)
}
const TESTED: u128 = 100;
const UNTESTED: u128 = 101;
const FAILED: u128 = 102;
const DISCONNECTED: u128 = 103;
const FOREIGN: u128 = 104;
const UNKNOWN: u128 = 105;

fn directory() -> FakeDirectory {
    let facts = |owner_id, status| KeyFacts { owner_id, status };
    FakeDirectory(HashMap::from([
        (id(TESTED), facts(owner(), KeyStatus::Tested)),
        (id(UNTESTED), facts(owner(), KeyStatus::Untested)),
        (id(FAILED), facts(owner(), KeyStatus::TestFailed)),
        (id(DISCONNECTED), facts(owner(), KeyStatus::Disconnected)),
        (id(FOREIGN), facts(stranger(), KeyStatus::Tested)),
    ]))
}

fn run(given: Vec<BotEvent>, command: BotCommand) -> AggregateResultValidator<Bot> {
    let services = BotServices {
        keys: Arc::new(directory()),
    };
    TestFramework::<Bot>::with(services)
        .given(given)
        .when(command)
}

fn pair() -> Pair {
    Pair::parse("XBT/USD").unwrap()
}

fn dca() -> Strategy {
    Strategy::Dca {
        quote_amount: dec("25.50"),
        interval_secs: 3600,
    }
}

fn configure_with(actor: Actor, key: u128, strategy: Strategy) -> BotCommand {
    BotCommand::Configure {
        actor,
        bot_id: bot_id(),
        key_id: id(key),
        pair: pair(),
        strategy,
        at: at(),
    }
}

fn configured_with(key: u128) -> BotEvent {
    BotEvent::BotConfigured {
        bot_id: bot_id(),
        owner_id: owner(),
        key_id: id(key),
        pair: pair(),
        strategy: dca(),
        at: at(),
    }
}

fn configured() -> Vec<BotEvent> {
    vec![configured_with(TESTED)]
}

fn starting() -> Vec<BotEvent> {
    let mut events = configured();
    events.push(BotEvent::BotStartRequested {
        bot_id: bot_id(),
        owner_id: owner(),
        key_id: id(TESTED),
        pair: pair(),
        strategy: dca(),
        requested_by: Some(owner()),
        at: at_plus(1),
    });
    events
}

fn running() -> Vec<BotEvent> {
    let mut events = starting();
    events.push(BotEvent::BotStarted { at: at_plus(2) });
    events
}

fn stopping() -> Vec<BotEvent> {
    let mut events = running();
    events.push(BotEvent::BotStopRequested {
        requested_by: Some(owner()),
        reason: None,
        at: at_plus(3),
    });
    events
}

fn stopped() -> Vec<BotEvent> {
    let mut events = stopping();
    events.push(BotEvent::BotStopped {
        reason: None,
        at: at_plus(4),
    });
    events
}

fn request_start(actor: Actor) -> BotCommand {
    BotCommand::RequestStart {
        actor,
        at: at_plus(10),
    }
}
fn mark_started(actor: Actor) -> BotCommand {
    BotCommand::MarkStarted {
        actor,
        at: at_plus(11),
    }
}
fn request_stop(actor: Actor) -> BotCommand {
    BotCommand::RequestStop {
        actor,
        reason: Some(" market closed ".to_string()),
        at: at_plus(12),
    }
}
fn mark_stopped(actor: Actor) -> BotCommand {
    BotCommand::MarkStopped {
        actor,
        reason: Some("runner shut down".to_string()),
        at: at_plus(13),
    }
}
fn trigger(actor: Actor) -> BotCommand {
    BotCommand::TriggerTrade {
        actor,
        trigger_id: id(900),
        at: at_plus(14),
    }
}

fn fill(order_id: &str, quantity: &str, price: &str, fee: &str) -> Fill {
    Fill {
        trigger_id: Some(id(900)),
        order_id: order_id.to_string(),
        side: Side::Buy,
        quantity: dec(quantity),
        price: dec(price),
        fee: dec(fee),
        executed_at: at_plus(15),
    }
}
fn executed(fill: Fill) -> BotEvent {
    BotEvent::TradeExecuted {
        owner_id: owner(),
        pair: pair(),
        fill,
    }
}
fn record_fill(actor: Actor, fill: Fill) -> BotCommand {
    BotCommand::RecordTradeExecuted { actor, fill }
}
fn record_skipped(actor: Actor, reason: &str) -> BotCommand {
    BotCommand::RecordTradeSkipped {
        actor,
        trigger_id: Some(id(900)),
        reason: reason.to_string(),
        at: at_plus(16),
    }
}
fn record_error(actor: Actor, message: &str) -> BotCommand {
    BotCommand::RecordError {
        actor,
        message: message.to_string(),
        at: at_plus(17),
    }
}

fn invalid_field(result: Result<Vec<BotEvent>, DomainError>) -> &'static str {
    match result {
        Err(DomainError::Invalid { field, .. }) => field,
        other => panic!("expected an invalid field, got {other:?}"),
    }
}

fn assert_forbidden(result: Result<Vec<BotEvent>, DomainError>) {
    assert!(
        matches!(result, Err(DomainError::Forbidden { .. })),
        "{result:?}"
    );
}

fn state_after(events: Vec<BotEvent>) -> Bot {
    let mut bot = Bot::default();
    for event in events {
        bot.apply(event);
    }
    bot
}

const NOT_TESTED: &str = "the bot's exchange key has not passed a test; test it first";
const RUNNER_ONLY: &str = "forbidden: only the bot runner records what a bot did";

// ---- configure ----

#[test]
fn configure_records_the_bot() {
    run(vec![], configure_with(Actor::user(owner()), TESTED, dca()))
        .then_expect_events(configured());
    let threshold = Strategy::Threshold {
        buy_below: dec("60000"),
        sell_above: dec("65000.5"),
        quote_amount: dec("100"),
    };
    let events = run(
        vec![],
        configure_with(Actor::user(owner()), UNTESTED, threshold.clone()),
    )
    .inspect_result()
    .expect("an untested key may be configured");
    assert!(
        matches!(&events[..], [BotEvent::BotConfigured { strategy, key_id, .. }]
        if *strategy == threshold && *key_id == id(UNTESTED))
    );
}

#[test]
fn configure_refuses_a_key_that_is_foreign_disconnected_or_unknown() {
    for key in [FOREIGN, DISCONNECTED, UNKNOWN] {
        let result = run(vec![], configure_with(Actor::user(owner()), key, dca())).inspect_result();
        assert_eq!(invalid_field(result), "key_id", "key {key}");
    }
}

#[test]
fn configure_refuses_an_invalid_strategy() {
    let cases = [
        (
            Strategy::Dca {
                quote_amount: dec("0"),
                interval_secs: 60,
            },
            "strategy.quote_amount",
        ),
        (
            Strategy::Dca {
                quote_amount: dec("-1"),
                interval_secs: 60,
            },
            "strategy.quote_amount",
        ),
        (
            Strategy::Dca {
                quote_amount: dec("10"),
                interval_secs: 0,
            },
            "strategy.interval_secs",
        ),
        (
            Strategy::Dca {
                quote_amount: dec("10"),
                interval_secs: MAX_INTERVAL_SECS + 1,
            },
            "strategy.interval_secs",
        ),
        (
            Strategy::Threshold {
                buy_below: dec("100"),
                sell_above: dec("100"),
                quote_amount: dec("10"),
            },
            "strategy.sell_above",
        ),
        (
            Strategy::Threshold {
                buy_below: dec("101"),
                sell_above: dec("100"),
                quote_amount: dec("10"),
            },
            "strategy.sell_above",
        ),
        (
            Strategy::Threshold {
                buy_below: dec("0"),
                sell_above: dec("100"),
                quote_amount: dec("10"),
            },
            "strategy.buy_below",
        ),
        (
            Strategy::Threshold {
                buy_below: dec("90"),
                sell_above: dec("100"),
                quote_amount: dec("0"),
            },
            "strategy.quote_amount",
        ),
    ];
    for (strategy, field) in cases {
        let result = run(
            vec![],
            configure_with(Actor::user(owner()), TESTED, strategy.clone()),
        )
        .inspect_result();
        assert_eq!(invalid_field(result), field, "{strategy:?}");
    }
    let longest = Strategy::Dca {
        quote_amount: dec("10"),
        interval_secs: MAX_INTERVAL_SECS,
    };
    assert!(run(
        vec![],
        configure_with(Actor::user(owner()), TESTED, longest)
    )
    .inspect_result()
    .is_ok());
}

#[test]
fn configuring_twice_is_refused() {
    run(
        configured(),
        configure_with(Actor::user(owner()), TESTED, dca()),
    )
    .then_expect_error_message("bot already configured");
}

#[test]
fn configure_refuses_auditors_and_the_system() {
    assert_forbidden(
        run(
            vec![],
            configure_with(Actor::auditor(owner()), TESTED, dca()),
        )
        .inspect_result(),
    );
    run(vec![], configure_with(Actor::System, TESTED, dca()))
        .then_expect_error_message("forbidden: a bot belongs to a user");
}

// ---- start ----

#[test]
fn request_start_with_a_tested_key_is_accepted() {
    let expected = BotEvent::BotStartRequested {
        bot_id: bot_id(),
        owner_id: owner(),
        key_id: id(TESTED),
        pair: pair(),
        strategy: dca(),
        requested_by: Some(owner()),
        at: at_plus(10),
    };
    run(configured(), request_start(Actor::user(owner())))
        .then_expect_events(vec![expected.clone()]);
    run(stopped(), request_start(Actor::user(owner()))).then_expect_events(vec![expected]);
}

#[test]
fn request_start_with_an_untested_or_failed_key_is_a_conflict() {
    for key in [UNTESTED, FAILED] {
        run(
            vec![configured_with(key)],
            request_start(Actor::user(owner())),
        )
        .then_expect_error(DomainError::conflict(NOT_TESTED));
    }
}

#[test]
fn request_start_with_a_key_since_disconnected_is_refused() {
    let result = run(
        vec![configured_with(DISCONNECTED)],
        request_start(Actor::user(owner())),
    )
    .inspect_result();
    assert_eq!(invalid_field(result), "key_id");
}

#[test]
fn starting_a_bot_already_starting_running_or_stopping_is_refused() {
    for (given, state) in [
        (starting(), "starting"),
        (running(), "running"),
        (stopping(), "stopping"),
    ] {
        run(given, request_start(Actor::user(owner())))
            .then_expect_error_message(&format!("cannot start: bot is {state}"));
    }
}

#[test]
fn mark_started_is_for_the_runner_only() {
    run(starting(), mark_started(Actor::System))
        .then_expect_events(vec![BotEvent::BotStarted { at: at_plus(11) }]);
    for actor in [Actor::user(owner()), Actor::admin(stranger())] {
        run(starting(), mark_started(actor)).then_expect_error_message(RUNNER_ONLY);
    }
}

#[test]
fn mark_started_on_a_running_bot_records_nothing() {
    run(running(), mark_started(Actor::System)).then_expect_events(vec![]);
}

#[test]
fn mark_started_outside_starting_is_refused() {
    run(configured(), mark_started(Actor::System))
        .then_expect_error_message("cannot mark started: bot is configured");
    run(stopped(), mark_started(Actor::System))
        .then_expect_error_message("cannot mark started: bot is stopped");
    run(vec![], mark_started(Actor::System)).then_expect_error_message("bot not found");
}

// ---- stop ----

#[test]
fn request_stop_from_running_or_starting_is_accepted() {
    for given in [running(), starting()] {
        run(given, request_stop(Actor::user(owner()))).then_expect_events(vec![
            BotEvent::BotStopRequested {
                requested_by: Some(owner()),
                reason: Some("market closed".to_string()),
                at: at_plus(12),
            },
        ]);
    }
}

#[test]
fn stopping_a_bot_not_running_is_refused() {
    run(stopped(), request_stop(Actor::user(owner())))
        .then_expect_error_message("cannot stop: bot is stopped");
    run(configured(), request_stop(Actor::user(owner())))
        .then_expect_error_message("cannot stop: bot is configured");
    run(stopping(), request_stop(Actor::user(owner())))
        .then_expect_error_message("cannot stop: bot is stopping");
}

#[test]
fn request_stop_refuses_a_reason_too_long() {
    let command = BotCommand::RequestStop {
        actor: Actor::user(owner()),
        reason: Some("r".repeat(501)),
        at: at(),
    };
    assert_eq!(
        invalid_field(run(running(), command).inspect_result()),
        "reason"
    );
}

#[test]
fn mark_stopped_records_the_stop() {
    let expected = vec![BotEvent::BotStopped {
        reason: Some("runner shut down".to_string()),
        at: at_plus(13),
    }];
    for given in [stopping(), running(), starting()] {
        run(given, mark_stopped(Actor::System)).then_expect_events(expected.clone());
    }
    run(stopped(), mark_stopped(Actor::System)).then_expect_events(vec![]);
    run(configured(), mark_stopped(Actor::System))
        .then_expect_error_message("cannot mark stopped: bot is configured");
    run(stopping(), mark_stopped(Actor::user(owner()))).then_expect_error_message(RUNNER_ONLY);
}

// ---- trades ----

#[test]
fn trigger_trade_only_when_running() {
    run(running(), trigger(Actor::user(owner()))).then_expect_events(vec![
        BotEvent::TradeTriggered {
            trigger_id: id(900),
            requested_by: Some(owner()),
            at: at_plus(14),
        },
    ]);
    for (given, state) in [
        (configured(), "configured"),
        (starting(), "starting"),
        (stopping(), "stopping"),
        (stopped(), "stopped"),
    ] {
        run(given, trigger(Actor::user(owner())))
            .then_expect_error_message(&format!("cannot trigger a trade: bot is {state}"));
    }
}

#[test]
fn record_trade_executed_by_the_runner() {
    let done = fill("O-1", "0.0015", "64000.1", "0.25");
    run(running(), record_fill(Actor::System, done.clone()))
        .then_expect_events(vec![executed(done.clone())]);
    let free = fill("O-2", "1", "1", "0");
    run(stopped(), record_fill(Actor::System, free.clone()))
        .then_expect_events(vec![executed(free)]);
    run(running(), record_fill(Actor::user(owner()), done.clone()))
        .then_expect_error_message(RUNNER_ONLY);
    run(vec![], record_fill(Actor::System, done)).then_expect_error_message("bot not found");
}

#[test]
fn a_fill_reported_twice_is_recorded_once() {
    let done = fill("O-1", "0.0015", "64000.1", "0.25");
    let mut given = running();
    given.push(executed(done.clone()));
    run(given, record_fill(Actor::System, done)).then_expect_events(vec![]);
}

#[test]
fn only_the_last_256_order_ids_are_remembered() {
    let mut given = running();
    given.extend((0..257).map(|n| executed(fill(&format!("O-{n}"), "1", "1", "0"))));
    let bot = state_after(given.clone());
    assert_eq!(
        (bot.trades_executed, bot.recent_order_ids.len()),
        (257, 256)
    );
    // Documented: the portfolio ledger, not the bot, drops such old repeats.
    run(
        given.clone(),
        record_fill(Actor::System, fill("O-1", "1", "1", "0")),
    )
    .then_expect_events(vec![]);
    assert_eq!(
        run(
            given,
            record_fill(Actor::System, fill("O-0", "1", "1", "0"))
        )
        .inspect_result()
        .unwrap()
        .len(),
        1
    );
}

#[test]
fn record_trade_executed_refuses_an_invalid_fill() {
    for (bad, field) in [
        (fill("O-1", "0", "100", "0"), "quantity"),
        (fill("O-1", "-1", "100", "0"), "quantity"),
        (fill("O-1", "1", "0", "0"), "price"),
        (fill("O-1", "1", "100", "-0.01"), "fee"),
        (fill("  ", "1", "100", "0"), "order_id"),
    ] {
        assert_eq!(
            invalid_field(run(running(), record_fill(Actor::System, bad)).inspect_result()),
            field
        );
    }
    run(
        running(),
        record_fill(Actor::System, fill("O-1", "1", "100", "-1")),
    )
    .then_expect_error_message("fee: must not be negative");
}

#[test]
fn record_trade_skipped_and_errors() {
    run(
        running(),
        record_skipped(Actor::System, " price above threshold "),
    )
    .then_expect_events(vec![BotEvent::TradeSkipped {
        trigger_id: Some(id(900)),
        reason: "price above threshold".to_string(),
        at: at_plus(16),
    }]);
    assert_eq!(
        invalid_field(run(running(), record_skipped(Actor::System, " ")).inspect_result()),
        "reason"
    );
    run(running(), record_skipped(Actor::user(owner()), "x"))
        .then_expect_error_message(RUNNER_ONLY);
    run(
        running(),
        record_error(Actor::System, "EOrder:Insufficient funds"),
    )
    .then_expect_events(vec![BotEvent::BotErrored {
        owner_id: owner(),
        message: "EOrder:Insufficient funds".to_string(),
        at: at_plus(17),
    }]);
    let long = "m".repeat(2001);
    assert_eq!(
        invalid_field(run(running(), record_error(Actor::System, &long)).inspect_result()),
        "message"
    );
    run(running(), record_error(Actor::admin(owner()), "x")).then_expect_error_message(RUNNER_ONLY);
    run(vec![], record_error(Actor::System, "x")).then_expect_error_message("bot not found");
}

// ---- who may act ----

#[test]
fn auditors_are_refused_every_command() {
    let auditor = Actor::auditor(owner());
    assert_forbidden(run(vec![], configure_with(auditor, TESTED, dca())).inspect_result());
    for (given, command) in [
        (configured(), request_start(auditor)),
        (running(), request_stop(auditor)),
        (running(), trigger(auditor)),
        (starting(), mark_started(auditor)),
        (running(), mark_stopped(auditor)),
        (running(), record_fill(auditor, fill("O-1", "1", "1", "0"))),
        (running(), record_skipped(auditor, "x")),
        (running(), record_error(auditor, "x")),
    ] {
        assert_forbidden(run(given, command).inspect_result());
    }
    run(running(), trigger(auditor))
        .then_expect_error_message("forbidden: auditors issue no trading commands");
}

#[test]
fn another_users_bot_reads_as_not_found() {
    let other = Actor::user(stranger());
    for (given, command) in [
        (configured(), request_start(other)),
        (running(), request_stop(other)),
        (running(), trigger(other)),
    ] {
        run(given, command).then_expect_error_message("bot not found");
    }
    run(vec![], request_start(Actor::user(owner()))).then_expect_error_message("bot not found");
}

#[test]
fn an_admin_acts_for_the_owner() {
    let admin = Actor::admin(stranger());
    let events = run(configured(), request_start(admin))
        .inspect_result()
        .unwrap();
    assert!(
        matches!(&events[..], [BotEvent::BotStartRequested { owner_id, requested_by, .. }]
        if *owner_id == owner() && *requested_by == Some(stranger()))
    );
    run(running(), request_stop(Actor::System)).then_expect_events(vec![
        BotEvent::BotStopRequested {
            requested_by: None,
            reason: Some("market closed".to_string()),
            at: at_plus(12),
        },
    ]);
}

// ---- state and wire format ----

#[test]
fn events_drive_the_lifecycle_and_counters() {
    let states: Vec<BotState> = [configured(), starting(), running(), stopping(), stopped()]
        .into_iter()
        .map(|events| state_after(events).state)
        .collect();
    use BotState::*;
    assert_eq!(states, [Configured, Starting, Running, Stopping, Stopped]);
    let mut events = running();
    events.push(executed(fill("O-1", "1", "1", "0")));
    events.push(BotEvent::TradeSkipped {
        trigger_id: None,
        reason: "r".to_string(),
        at: at(),
    });
    events.push(BotEvent::BotErrored {
        owner_id: owner(),
        message: "m".to_string(),
        at: at(),
    });
    let bot = state_after(events);
    assert_eq!(
        (bot.trades_executed, bot.trades_skipped, bot.errors),
        (1, 1, 1)
    );
    assert_eq!(bot.recent_order_ids, ["O-1".to_string()]);
    assert_eq!(bot.pair, Some(pair()));
}

#[test]
fn every_bot_event_has_its_wire_name_and_round_trips() {
    let mut events = stopped();
    events.push(BotEvent::TradeTriggered {
        trigger_id: id(900),
        requested_by: None,
        at: at(),
    });
    events.push(executed(fill("O-1", "0.00012345", "64000.10", "0.0123")));
    events.push(BotEvent::TradeSkipped {
        trigger_id: None,
        reason: "r".to_string(),
        at: at(),
    });
    events.push(BotEvent::BotErrored {
        owner_id: owner(),
        message: "m".to_string(),
        at: at(),
    });
    events.push(BotEvent::BotConfigured {
        bot_id: bot_id(),
        owner_id: owner(),
        key_id: id(TESTED),
        pair: pair(),
        strategy: Strategy::Threshold {
            buy_below: dec("1.5"),
            sell_above: dec("2"),
            quote_amount: dec("10"),
        },
        at: at(),
    });
    assert_wire_format(&events);
    let names: Vec<String> = events.iter().map(DomainEvent::event_type).collect();
    assert_eq!(
        names,
        [
            "bot.configured",
            "bot.start_requested",
            "bot.started",
            "bot.stop_requested",
            "bot.stopped",
            "bot.trade_triggered",
            "bot.trade.executed",
            "bot.trade.skipped",
            "bot.error",
            "bot.configured"
        ]
    );
    // Amounts travel as exact decimal strings.
    let json = serde_json::to_value(&events[6]).unwrap();
    assert_eq!(json["fill"]["quantity"], "0.00012345");
    assert_eq!(dec("0.00012345"), "0.00012345".parse::<Decimal>().unwrap());
}
