//! Given/when/then tests of the Bot aggregate, with a fake key directory.

mod support;

use std::collections::HashMap;
use std::sync::Arc;

use cqrs_es::test::{AggregateResultValidator, TestFramework};
use cqrs_es::DomainEvent;
use domain::bot::BotState::{self, *};
use domain::bot::{Bot, BotCommand, BotEvent, BotServices, Fill};
use domain::common::MAX_INTERVAL_SECS;
use domain::services::{KeyFacts, KeyStatus};
use domain::{Actor, DomainError, Pair, Side, Strategy, StrategyLimits};
use support::{assert_wire_format, at, at_plus, dec, id, state_after, FakeDirectory, Outcome};
use uuid::Uuid;

const TESTED: u128 = 100;
const UNTESTED: u128 = 101;
const FAILED: u128 = 102;
const DISCONNECTED: u128 = 103;
const FOREIGN: u128 = 104;
const UNKNOWN: u128 = 105;

const OWNER: Uuid = Uuid::from_u128(1);
const STRANGER: Uuid = Uuid::from_u128(2);
/// The bot's owner as the actor.
fn me() -> Actor {
    Actor::user(OWNER)
}

fn run(given: Vec<BotEvent>, command: BotCommand) -> AggregateResultValidator<Bot> {
    run_within(StrategyLimits::default(), given, command)
}

/// The same, with an operator's own limits.
fn run_within(
    limits: StrategyLimits,
    given: Vec<BotEvent>,
    command: BotCommand,
) -> AggregateResultValidator<Bot> {
    let facts = |owner_id, status| KeyFacts { owner_id, status };
    let keys = FakeDirectory(HashMap::from([
        (id(TESTED), facts(OWNER, KeyStatus::Tested)),
        (id(UNTESTED), facts(OWNER, KeyStatus::Untested)),
        (id(FAILED), facts(OWNER, KeyStatus::TestFailed)),
        (id(DISCONNECTED), facts(OWNER, KeyStatus::Disconnected)),
        (id(FOREIGN), facts(STRANGER, KeyStatus::Tested)),
    ]));
    let services = BotServices {
        keys: Arc::new(keys),
        limits,
        triggers: domain::TriggerQuotas::default(),
    };
    TestFramework::<Bot>::with(services)
        .given(given)
        .when(command)
}

fn pair() -> Pair {
    Pair::parse("XBT/USD").unwrap()
}

fn dca_of(quote_amount: &str, interval_secs: u64) -> Strategy {
    let quote_amount = dec(quote_amount);
    Strategy::Dca {
        quote_amount,
        interval_secs,
    }
}

fn dca() -> Strategy {
    dca_of("25.50", 3600)
}

fn threshold(buy_below: &str, sell_above: &str, quote_amount: &str) -> Strategy {
    Strategy::Threshold {
        buy_below: dec(buy_below),
        sell_above: dec(sell_above),
        quote_amount: dec(quote_amount),
    }
}

fn configure(actor: Actor, key: u128, strategy: Strategy) -> BotCommand {
    BotCommand::Configure {
        actor,
        bot_id: id(50),
        key_id: id(key),
        pair: pair(),
        strategy,
        at: at(),
    }
}

fn configured_with(key: u128) -> BotEvent {
    BotEvent::BotConfigured {
        bot_id: id(50),
        owner_id: OWNER,
        key_id: id(key),
        pair: pair(),
        strategy: dca(),
        at: at(),
    }
}

fn start_requested(requested_by: Option<Uuid>, at: chrono::DateTime<chrono::Utc>) -> BotEvent {
    BotEvent::BotStartRequested {
        bot_id: id(50),
        owner_id: OWNER,
        key_id: id(TESTED),
        pair: pair(),
        strategy: dca(),
        requested_by,
        at,
    }
}

/// The events that bring a bot to `state` along configured → starting →
/// running → stopping → stopped.
fn history(state: BotState) -> Vec<BotEvent> {
    let mut events = vec![
        configured_with(TESTED),
        start_requested(Some(OWNER), at_plus(1)),
        BotEvent::BotStarted { at: at_plus(2) },
        BotEvent::BotStopRequested {
            requested_by: Some(OWNER),
            reason: None,
            at: at_plus(3),
        },
        BotEvent::BotStopped {
            reason: None,
            at: at_plus(4),
        },
    ];
    events.truncate(state as usize + 1);
    events
}

fn request_start(actor: Actor) -> BotCommand {
    let at = at_plus(10);
    BotCommand::RequestStart { actor, at }
}
fn mark_started(actor: Actor) -> BotCommand {
    let at = at_plus(11);
    BotCommand::MarkStarted { actor, at }
}
fn request_stop(actor: Actor) -> BotCommand {
    let (reason, at) = (Some(" market closed ".to_string()), at_plus(12));
    BotCommand::RequestStop { actor, reason, at }
}
fn mark_stopped(actor: Actor) -> BotCommand {
    let (reason, at) = (Some("runner shut down".to_string()), at_plus(13));
    BotCommand::MarkStopped { actor, reason, at }
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
    let (owner_id, pair) = (OWNER, pair());
    BotEvent::TradeExecuted {
        owner_id,
        pair,
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

const NOT_TESTED: &str = "the bot's exchange key has not passed a test; test it first";
const RUNNER_ONLY: &str = "forbidden: only the bot runner records what a bot did";
const NOT_FOUND: &str = "bot not found";

// ---- configure ----

#[test]
fn configure_records_the_bot() {
    run(vec![], configure(me(), TESTED, dca())).then_expect_events(history(Configured));
    let strategy = threshold("60000", "65000.5", "100");
    let recorded = run(vec![], configure(me(), UNTESTED, strategy.clone())).events();
    assert!(
        matches!(&recorded[..], [BotEvent::BotConfigured { strategy: s, key_id, .. }]
            if *s == strategy && *key_id == id(UNTESTED)),
        "an untested key may be configured: {recorded:?}"
    );
}

#[test]
fn configure_refuses_a_key_that_is_foreign_disconnected_or_unknown() {
    for key in [FOREIGN, DISCONNECTED, UNKNOWN] {
        run(vec![], configure(me(), key, dca())).then_expect_invalid("key_id");
    }
}

#[test]
fn configure_refuses_an_invalid_strategy() {
    for (strategy, expected) in [
        (dca_of("0", 60), "strategy.quote_amount"),
        (dca_of("-1", 60), "strategy.quote_amount"),
        (dca_of("10", 0), "strategy.interval_secs"),
        (
            dca_of("10", MAX_INTERVAL_SECS + 1),
            "strategy.interval_secs",
        ),
        (threshold("100", "100", "10"), "strategy.sell_above"),
        (threshold("101", "100", "10"), "strategy.sell_above"),
        (threshold("0", "100", "10"), "strategy.buy_below"),
        (threshold("90", "100", "0"), "strategy.quote_amount"),
    ] {
        let command = configure(me(), TESTED, strategy.clone());
        run(vec![], command).then_expect_invalid(expected);
    }
    let longest = dca_of("10", MAX_INTERVAL_SECS);
    assert_eq!(
        run(vec![], configure(me(), TESTED, longest)).events().len(),
        1
    );
}

#[test]
fn configure_refuses_money_outside_the_stated_bounds() {
    let max = "79228162514264337593543950335";
    for (strategy, expected, reason) in [
        (
            dca_of(max, 60),
            "strategy.quote_amount",
            "must be at most 1000000",
        ),
        (
            dca_of("1000000.00000001", 60),
            "strategy.quote_amount",
            "must be at most 1000000",
        ),
        (
            dca_of("10.123456789", 60),
            "strategy.quote_amount",
            "must have at most 8 decimal places",
        ),
        (
            dca_of("10", 59),
            "strategy.interval_secs",
            "must be between 60 and 2592000",
        ),
        (
            threshold("90", "100", max),
            "strategy.quote_amount",
            "must be at most 1000000",
        ),
        (
            threshold(max, max, "10"),
            "strategy.buy_below",
            "must be at most 1000000000000",
        ),
        (
            threshold("90", "1000000000000.5", "10"),
            "strategy.sell_above",
            "must be at most 1000000000000",
        ),
        (
            threshold("0.0000000000001", "1", "10"),
            "strategy.buy_below",
            "must have at most 12 decimal places",
        ),
        (
            threshold("-90", "100", "10"),
            "strategy.buy_below",
            "must be greater than zero",
        ),
    ] {
        let refusal = run(vec![], configure(me(), TESTED, strategy)).refusal();
        assert_eq!(refusal, DomainError::invalid(expected, reason));
    }
    // The edges themselves, and trailing zeros beyond 8 places, are fine.
    for strategy in [
        dca_of("1000000", 60),
        dca_of("0.00000001", 60),
        dca_of("25.000000000000", 60),
        threshold("0.000000000001", "1000000000000", "1000000"),
    ] {
        assert_eq!(
            run(vec![], configure(me(), TESTED, strategy))
                .events()
                .len(),
            1
        );
    }
}

#[test]
fn an_operator_s_limits_decide_the_amount_and_the_interval() {
    let limits = StrategyLimits::new(dec("500"), 1).unwrap();
    let quick = configure(me(), TESTED, dca_of("500", 1));
    assert_eq!(run_within(limits, vec![], quick).events().len(), 1);
    let large = configure(me(), TESTED, dca_of("500.01", 1));
    run_within(limits, vec![], large).then_expect_invalid("strategy.quote_amount");
}

#[test]
fn configure_refuses_a_second_configuration_auditors_and_the_system() {
    let again = configure(me(), TESTED, dca());
    run(history(Configured), again).then_expect_error_message("bot already configured");
    let auditor = configure(Actor::auditor(OWNER), TESTED, dca());
    run(vec![], auditor).then_expect_error_message("forbidden: auditors issue no trading commands");
    let system = configure(Actor::System, TESTED, dca());
    run(vec![], system).then_expect_error_message("forbidden: a bot belongs to a user");
}

// ---- start ----

#[test]
fn request_start_with_a_tested_key_is_accepted() {
    let expected = vec![start_requested(Some(OWNER), at_plus(10))];
    run(history(Configured), request_start(me())).then_expect_events(expected.clone());
    run(history(Stopped), request_start(me())).then_expect_events(expected);
}

#[test]
fn request_start_needs_a_tested_key_still_connected() {
    for key in [UNTESTED, FAILED] {
        run(vec![configured_with(key)], request_start(me()))
            .then_expect_error(DomainError::conflict(NOT_TESTED));
    }
    let disconnected = vec![configured_with(DISCONNECTED)];
    run(disconnected, request_start(me())).then_expect_invalid("key_id");
}

#[test]
fn starting_a_bot_already_starting_running_or_stopping_is_refused() {
    let start = || request_start(me());
    run(history(Starting), start()).then_expect_error_message("cannot start: bot is starting");
    run(history(Running), start()).then_expect_error_message("cannot start: bot is running");
    run(history(Stopping), start()).then_expect_error_message("cannot start: bot is stopping");
}

#[test]
fn mark_started_is_for_the_runner_and_only_from_starting() {
    let system = || mark_started(Actor::System);
    run(history(Starting), system())
        .then_expect_events(vec![BotEvent::BotStarted { at: at_plus(11) }]);
    // A redelivered start changes nothing.
    run(history(Running), system()).then_expect_events(vec![]);
    run(history(Configured), system())
        .then_expect_error_message("cannot mark started: bot is configured");
    run(history(Stopped), system())
        .then_expect_error_message("cannot mark started: bot is stopped");
    run(vec![], system()).then_expect_error_message(NOT_FOUND);
    run(history(Starting), mark_started(me())).then_expect_error_message(RUNNER_ONLY);
    run(history(Starting), mark_started(Actor::admin(STRANGER)))
        .then_expect_error_message(RUNNER_ONLY);
}

// ---- stop ----

#[test]
fn request_stop_from_running_or_starting_is_accepted() {
    let expected = vec![BotEvent::BotStopRequested {
        requested_by: Some(OWNER),
        reason: Some("market closed".to_string()),
        at: at_plus(12),
    }];
    run(history(Running), request_stop(me())).then_expect_events(expected.clone());
    run(history(Starting), request_stop(me())).then_expect_events(expected);
}

#[test]
fn stopping_a_bot_not_running_is_refused() {
    let stop = || request_stop(me());
    run(history(Stopped), stop()).then_expect_error_message("cannot stop: bot is stopped");
    run(history(Configured), stop()).then_expect_error_message("cannot stop: bot is configured");
    run(history(Stopping), stop()).then_expect_error_message("cannot stop: bot is stopping");
    let reason = Some("r".repeat(501));
    let too_long = BotCommand::RequestStop {
        actor: me(),
        reason,
        at: at(),
    };
    run(history(Running), too_long).then_expect_invalid("reason");
}

#[test]
fn mark_stopped_records_the_stop() {
    let system = || mark_stopped(Actor::System);
    let reason = Some("runner shut down".to_string());
    let expected = vec![BotEvent::BotStopped {
        reason,
        at: at_plus(13),
    }];
    for given in [history(Stopping), history(Running), history(Starting)] {
        run(given, system()).then_expect_events(expected.clone());
    }
    run(history(Stopped), system()).then_expect_events(vec![]);
    run(history(Configured), system())
        .then_expect_error_message("cannot mark stopped: bot is configured");
    run(history(Stopping), mark_stopped(me())).then_expect_error_message(RUNNER_ONLY);
}

// ---- trades ----

#[test]
fn trigger_trade_only_when_running() {
    run(history(Running), trigger(me())).then_expect_events(vec![BotEvent::TradeTriggered {
        trigger_id: id(900),
        requested_by: Some(OWNER),
        at: at_plus(14),
    }]);
    for (state, name) in [
        (Configured, "configured"),
        (Starting, "starting"),
        (Stopping, "stopping"),
        (Stopped, "stopped"),
    ] {
        run(history(state), trigger(me()))
            .then_expect_error_message(&format!("cannot trigger a trade: bot is {name}"));
    }
}

#[test]
fn record_trade_executed_by_the_runner() {
    let done = fill("O-1", "0.0015", "64000.1", "0.25");
    run(history(Running), record_fill(Actor::System, done.clone()))
        .then_expect_events(vec![executed(done.clone())]);
    // A late fill after the bot stopped is still recorded; a zero fee is fine.
    let free = fill("O-2", "1", "1", "0");
    run(history(Stopped), record_fill(Actor::System, free.clone()))
        .then_expect_events(vec![executed(free)]);
    run(history(Running), record_fill(me(), done.clone())).then_expect_error_message(RUNNER_ONLY);
    run(vec![], record_fill(Actor::System, done)).then_expect_error_message(NOT_FOUND);
}

#[test]
fn a_fill_reported_twice_is_recorded_once() {
    let done = fill("O-1", "0.0015", "64000.1", "0.25");
    let mut given = history(Running);
    given.push(executed(done.clone()));
    run(given, record_fill(Actor::System, done)).then_expect_events(vec![]);
}

#[test]
fn only_the_last_256_order_ids_are_remembered() {
    let mut given = history(Running);
    given.extend((0..257).map(|n| executed(fill(&format!("O-{n}"), "1", "1", "0"))));
    let bot: Bot = state_after(given.clone());
    assert_eq!(bot.trades_executed, 257);
    assert_eq!(bot.recent_order_ids.len(), 256);
    // Documented: the runner reports a fill again only seconds later, when
    // a command is retried; the portfolio's own window is far longer.
    let recent = record_fill(Actor::System, fill("O-1", "1", "1", "0"));
    run(given.clone(), recent).then_expect_events(vec![]);
    let forgotten = record_fill(Actor::System, fill("O-0", "1", "1", "0"));
    assert_eq!(run(given, forgotten).events().len(), 1);
}

#[test]
fn record_trade_executed_refuses_an_invalid_fill() {
    for (bad, expected) in [
        (fill("O-1", "0", "100", "0"), "quantity"),
        (fill("O-1", "-1", "100", "0"), "quantity"),
        (fill("O-1", "1", "0", "0"), "price"),
        (fill("O-1", "1", "100", "-0.01"), "fee"),
        (fill("  ", "1", "100", "0"), "order_id"),
    ] {
        run(history(Running), record_fill(Actor::System, bad)).then_expect_invalid(expected);
    }
    let max = "79228162514264337593543950335";
    // What the fill is worth, and the holding after it, must be
    // representable: the runner reports such a fill as an error instead.
    for (quantity, price, fee) in [(max, "2", "0"), (max, "1", "1"), ("2", max, "0")] {
        let too_large = record_fill(Actor::System, fill("O-1", quantity, price, fee));
        run(history(Running), too_large).then_expect_invalid("quantity");
    }
    let mut given = history(Running);
    given.push(executed(fill("O-1", max, "1", "0")));
    let beyond_the_holding = record_fill(Actor::System, fill("O-2", "1", "1", "0"));
    let refusal = run(given, beyond_the_holding).refusal();
    assert!(refusal.to_string().contains("holding"), "{refusal}");
    let negative_fee = record_fill(Actor::System, fill("O-1", "1", "100", "-1"));
    run(history(Running), negative_fee).then_expect_error_message("fee: must not be negative");
}

#[test]
fn record_trade_skipped_by_the_runner() {
    let skipped = record_skipped(Actor::System, " price above threshold ");
    run(history(Running), skipped).then_expect_events(vec![BotEvent::TradeSkipped {
        trigger_id: Some(id(900)),
        reason: "price above threshold".to_string(),
        at: at_plus(16),
    }]);
    run(history(Running), record_skipped(Actor::System, " ")).then_expect_invalid("reason");
    run(history(Running), record_skipped(me(), "x")).then_expect_error_message(RUNNER_ONLY);
    run(vec![], record_skipped(Actor::System, "x")).then_expect_error_message(NOT_FOUND);
}

#[test]
fn record_error_by_the_runner() {
    let message = "EOrder:Insufficient funds".to_string();
    run(history(Running), record_error(Actor::System, &message)).then_expect_events(vec![
        BotEvent::BotErrored {
            owner_id: OWNER,
            message,
            at: at_plus(17),
        },
    ]);
    let long = "m".repeat(2001);
    run(history(Running), record_error(Actor::System, &long)).then_expect_invalid("message");
    run(history(Running), record_error(Actor::admin(OWNER), "x"))
        .then_expect_error_message(RUNNER_ONLY);
    run(vec![], record_error(Actor::System, "x")).then_expect_error_message(NOT_FOUND);
}

// ---- who may act ----

#[test]
fn auditors_are_refused_every_command() {
    let auditor = Actor::auditor(OWNER);
    for (given, command) in [
        (vec![], configure(auditor, TESTED, dca())),
        (history(Configured), request_start(auditor)),
        (history(Running), request_stop(auditor)),
        (history(Running), trigger(auditor)),
        (history(Starting), mark_started(auditor)),
        (history(Running), mark_stopped(auditor)),
        (
            history(Running),
            record_fill(auditor, fill("O-1", "1", "1", "0")),
        ),
        (history(Running), record_skipped(auditor, "x")),
        (history(Running), record_error(auditor, "x")),
    ] {
        run(given, command).then_expect_forbidden();
    }
    let expected = "forbidden: auditors issue no trading commands";
    run(history(Running), trigger(auditor)).then_expect_error_message(expected);
}

#[test]
fn another_users_bot_reads_as_not_found() {
    let other = Actor::user(STRANGER);
    run(history(Configured), request_start(other)).then_expect_error_message(NOT_FOUND);
    run(history(Running), request_stop(other)).then_expect_error_message(NOT_FOUND);
    run(history(Running), trigger(other)).then_expect_error_message(NOT_FOUND);
    run(vec![], request_start(me())).then_expect_error_message(NOT_FOUND);
}

#[test]
fn an_admin_or_the_system_acts_for_the_owner() {
    run(history(Configured), request_start(Actor::admin(STRANGER)))
        .then_expect_events(vec![start_requested(Some(STRANGER), at_plus(10))]);
    let stop = run(history(Running), request_stop(Actor::System)).events();
    assert!(matches!(
        &stop[..],
        [BotEvent::BotStopRequested {
            requested_by: None,
            ..
        }]
    ));
}

// ---- state and wire format ----

/// One of every event, each recorded by its command.
fn every_event() -> Vec<BotEvent> {
    let system = Actor::System;
    let mut all = history(Stopped);
    all.extend(run(history(Running), trigger(me())).events());
    all.extend(
        run(
            history(Running),
            record_fill(system, fill("O-1", "0.00012345", "64000.10", "0.0123")),
        )
        .events(),
    );
    all.extend(run(history(Running), record_skipped(system, "r")).events());
    all.extend(run(history(Running), record_error(system, "m")).events());
    all
}

#[test]
fn events_drive_the_lifecycle_and_counters() {
    for state in [Configured, Starting, Running, Stopping, Stopped] {
        assert_eq!(state_after::<Bot>(history(state)).state, state);
    }
    let bot: Bot = state_after(every_event());
    assert_eq!((bot.state, bot.pair), (Stopped, Some(pair())));
    let counts = (bot.trades_executed, bot.trades_skipped, bot.errors);
    assert_eq!(counts, (1, 1, 1));
    assert_eq!(bot.recent_order_ids, ["O-1".to_string()]);
}

#[test]
fn every_bot_event_has_its_wire_name_and_round_trips() {
    let all = every_event();
    assert_wire_format(&all);
    let mut with_threshold = configured_with(TESTED);
    if let BotEvent::BotConfigured { strategy, .. } = &mut with_threshold {
        *strategy = threshold("1.5", "2", "10");
    }
    assert_wire_format(&[with_threshold]);
    let names: Vec<String> = all.iter().map(DomainEvent::event_type).collect();
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
        ]
    );
    // Amounts travel as exact decimal strings.
    let json = serde_json::to_value(&all[6]).unwrap();
    assert_eq!(json["fill"]["quantity"], "0.00012345");
    assert_eq!(json["fill"]["price"], "64000.10");
}

// ---- triggers and holdings (the bot runner's duplicate guard) ----

fn triggered() -> BotEvent {
    BotEvent::TradeTriggered {
        trigger_id: id(900),
        requested_by: Some(OWNER),
        at: at_plus(14),
    }
}

#[test]
fn a_trigger_requested_twice_is_recorded_once() {
    let mut given = history(Running);
    given.push(triggered());
    run(given.clone(), trigger(me())).then_expect_events(vec![]);
    // Once traded, the same trigger id is still not a new trigger.
    given.push(executed(fill("O-1", "1", "100", "0")));
    run(given, trigger(me())).then_expect_events(vec![]);
}

#[test]
fn a_trigger_is_pending_until_traded_or_skipped() {
    use domain::bot::TriggerStatus;
    let mut given = history(Running);
    let bot: Bot = state_after(given.clone());
    assert_eq!(bot.trigger_status(id(900)), TriggerStatus::Unknown);
    given.push(triggered());
    let bot: Bot = state_after(given.clone());
    assert_eq!(bot.trigger_status(id(900)), TriggerStatus::Pending);
    let mut traded = given.clone();
    traded.push(executed(fill("O-1", "1", "100", "0")));
    let bot: Bot = state_after(traded);
    assert_eq!(bot.trigger_status(id(900)), TriggerStatus::Handled);
    given.push(BotEvent::TradeSkipped {
        trigger_id: Some(id(900)),
        reason: "price above threshold".to_string(),
        at: at_plus(16),
    });
    let bot: Bot = state_after(given);
    assert_eq!(bot.trigger_status(id(900)), TriggerStatus::Handled);
    assert!(bot.pending_triggers.is_empty());
}

#[test]
fn a_handled_trigger_is_not_skipped_again() {
    let mut given = history(Running);
    given.push(triggered());
    given.push(executed(fill("O-1", "1", "100", "0")));
    run(given, record_skipped(Actor::System, "late duplicate")).then_expect_events(vec![]);
}

#[test]
fn fills_add_up_to_the_holding() {
    let mut given = history(Running);
    given.push(executed(fill("O-1", "0.5", "100", "0")));
    given.push(executed(fill("O-2", "0.25", "100", "0")));
    let mut sold = fill("O-3", "0.6", "120", "0");
    sold.side = Side::Sell;
    given.push(executed(sold));
    let bot: Bot = state_after(given);
    assert_eq!(bot.holding, dec("0.15"));
}

#[test]
fn a_stored_fill_beyond_the_decimal_range_keeps_the_holding() {
    // Written past `handle` (which refuses it): apply keeps the last exact
    // holding rather than panic.
    let max = "79228162514264337593543950335";
    let mut given = history(Running);
    given.push(executed(fill("O-1", max, "1", "0")));
    given.push(executed(fill("O-2", "1", "1", "0")));
    let bot: Bot = state_after(given);
    assert_eq!(bot.holding, dec(max));
    assert_eq!(bot.trades_executed, 2);
}

#[test]
fn the_loops_last_fill_is_remembered_for_the_dca_schedule() {
    let mut given = history(Running);
    // A manual trigger's fill does not move the schedule.
    given.push(executed(fill("O-1", "1", "100", "0")));
    let bot: Bot = state_after(given.clone());
    assert_eq!(bot.last_scheduled_fill_at, None);
    let mut scheduled = fill("O-2", "1", "100", "0");
    scheduled.trigger_id = None;
    given.push(executed(scheduled));
    let bot: Bot = state_after(given);
    assert_eq!(bot.last_scheduled_fill_at, Some(at_plus(15)));
}
