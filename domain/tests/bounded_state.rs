//! Given/when/then tests of the quotas and of the bounded state the Bot and
//! the Portfolio remember: the trigger rate and the pending triggers of a
//! bot, the windows of handled triggers and order ids (with the duplicate
//! check still holding within them), and snapshots of the old, unbounded
//! shape still loading.

mod support;

use std::collections::HashMap;
use std::sync::Arc;

use cqrs_es::test::{AggregateResultValidator, TestFramework};
use domain::bot::{Bot, BotCommand, BotEvent, BotServices, TriggerStatus, REMEMBERED_TRIGGERS};
use domain::portfolio::{
    Portfolio, PortfolioCommand, PortfolioEvent, Position, TradeFill, REMEMBERED_ORDER_IDS,
};
use domain::services::{KeyFacts, KeyStatus};
use domain::{Actor, DomainError, Pair, Side, Strategy, StrategyLimits, TriggerQuotas};
use support::{at_plus, dec, id, state_after, FakeDirectory, Outcome};
use uuid::Uuid;

const OWNER: Uuid = Uuid::from_u128(1);
const KEY: u128 = 100;

fn pair() -> Pair {
    Pair::parse("XBT/USD").unwrap()
}

fn run_with(
    quotas: TriggerQuotas,
    given: Vec<BotEvent>,
    command: BotCommand,
) -> AggregateResultValidator<Bot> {
    let keys = FakeDirectory(HashMap::from([(
        id(KEY),
        KeyFacts {
            owner_id: OWNER,
            status: KeyStatus::Tested,
        },
    )]));
    let services = BotServices {
        keys: Arc::new(keys),
        limits: StrategyLimits::default(),
        triggers: quotas,
    };
    TestFramework::<Bot>::with(services)
        .given(given)
        .when(command)
}

fn running() -> Vec<BotEvent> {
    let strategy = Strategy::Dca {
        quote_amount: dec("25"),
        interval_secs: 3600,
    };
    vec![
        BotEvent::BotConfigured {
            bot_id: id(50),
            owner_id: OWNER,
            key_id: id(KEY),
            pair: pair(),
            strategy: strategy.clone(),
            at: at_plus(0),
        },
        BotEvent::BotStartRequested {
            bot_id: id(50),
            owner_id: OWNER,
            key_id: id(KEY),
            pair: pair(),
            strategy,
            requested_by: Some(OWNER),
            at: at_plus(1),
        },
        BotEvent::BotStarted { at: at_plus(2) },
    ]
}

fn triggered(n: u128, secs: i64) -> BotEvent {
    BotEvent::TradeTriggered {
        trigger_id: id(1000 + n),
        requested_by: Some(OWNER),
        at: at_plus(secs),
    }
}

fn skipped(n: u128, secs: i64) -> BotEvent {
    BotEvent::TradeSkipped {
        trigger_id: Some(id(1000 + n)),
        reason: "price above buy_below".to_string(),
        at: at_plus(secs),
    }
}

fn trigger(n: u128, secs: i64) -> BotCommand {
    BotCommand::TriggerTrade {
        actor: Actor::user(OWNER),
        trigger_id: id(1000 + n),
        at: at_plus(secs),
    }
}

/// Triggers 0..count, each handled right after it was requested, one every
/// `every` seconds from second 100.
fn handled_triggers(count: u128, every: i64) -> Vec<BotEvent> {
    (0..count)
        .flat_map(|n| {
            let secs = 100 + n as i64 * every;
            [triggered(n, secs), skipped(n, secs)]
        })
        .collect()
}

fn quota_refusal(outcome: AggregateResultValidator<Bot>) -> (&'static str, String, u64) {
    match outcome.refusal() {
        DomainError::QuotaExceeded {
            limit,
            reason,
            retry_after_secs,
        } => (limit, reason, retry_after_secs),
        other => panic!("expected a quota refusal, got {other:?}"),
    }
}

// ---- the trigger rate ----

#[test]
fn a_trigger_beyond_the_rate_is_refused_naming_the_limit_until_the_window_passes() {
    let quotas = TriggerQuotas::new(3, 10).unwrap();
    // Given three triggers handled at seconds 100, 110 and 120,
    let mut given = running();
    given.extend(handled_triggers(3, 10));
    // when a fourth comes at second 130, it is refused: the first leaves
    // the window at 160, 30 seconds on;
    let (limit, reason, retry_after) =
        quota_refusal(run_with(quotas, given.clone(), trigger(3, 130)));
    assert_eq!(limit, "trigger rate per bot");
    assert!(reason.contains("3 triggers per minute"), "{reason}");
    assert_eq!(retry_after, 30);
    // at second 160 the first no longer counts, and it is accepted.
    assert_eq!(
        run_with(quotas, given.clone(), trigger(3, 160))
            .events()
            .len(),
        1
    );
    // A trigger already recorded is still no new trigger, quota or not.
    let mut repeated = given;
    repeated.push(triggered(3, 125));
    run_with(quotas, repeated, trigger(3, 130)).then_expect_events(vec![]);
}

#[test]
fn the_default_rate_is_six_a_minute() {
    let mut given = running();
    given.extend(handled_triggers(6, 5));
    let (limit, _, retry_after) = quota_refusal(run_with(
        TriggerQuotas::default(),
        given.clone(),
        trigger(6, 135),
    ));
    assert_eq!(limit, "trigger rate per bot");
    assert_eq!(retry_after, 25);
    let bot: Bot = state_after(given);
    assert_eq!(bot.recent_trigger_times.len(), 6);
}

#[test]
fn only_the_last_minute_of_trigger_times_is_remembered() {
    let mut given = running();
    // One trigger every 5 seconds for 50 minutes: 600 of them.
    given.extend(handled_triggers(600, 5));
    let bot: Bot = state_after(given);
    // The newest at second 3095; those after 3035 are in its minute.
    assert_eq!(bot.recent_trigger_times.len(), 12);
    assert!(bot.recent_trigger_times.len() <= TriggerQuotas::MAX_PER_MINUTE as usize);
}

// ---- pending triggers ----

#[test]
fn a_trigger_beyond_the_pending_limit_is_refused_until_one_is_handled() {
    let quotas = TriggerQuotas::new(100, 2).unwrap();
    // Given two triggers the runner has not handled yet,
    let mut given = running();
    given.extend([triggered(0, 100), triggered(1, 101)]);
    // when a third is asked for, it is refused naming the limit;
    let (limit, reason, retry_after) =
        quota_refusal(run_with(quotas, given.clone(), trigger(2, 102)));
    assert_eq!(limit, "pending triggers per bot");
    assert!(reason.contains("the limit is 2"), "{reason}");
    assert!(retry_after >= 1);
    // once the runner handled one, it is accepted.
    given.push(skipped(0, 103));
    assert_eq!(run_with(quotas, given, trigger(2, 104)).events().len(), 1);
}

// ---- the handled-trigger window ----

#[test]
fn handled_triggers_are_a_window_of_the_most_recent_256() {
    let mut given = running();
    let count = REMEMBERED_TRIGGERS as u128 + 44;
    given.extend(handled_triggers(count, 20));
    let bot: Bot = state_after(given.clone());
    assert_eq!(bot.handled_triggers.len(), REMEMBERED_TRIGGERS);
    assert!(bot.pending_triggers.is_empty());
    // The newest 256 are still known, so a redelivered one trades nothing,
    let newest = count - 1;
    let oldest_remembered = count - REMEMBERED_TRIGGERS as u128;
    for n in [newest, oldest_remembered] {
        assert_eq!(bot.trigger_status(id(1000 + n)), TriggerStatus::Handled);
        run_with(TriggerQuotas::default(), given.clone(), trigger(n, 100_000))
            .then_expect_events(vec![]);
    }
    // and one older than that is forgotten (the exchange's client order
    // id, which is the trigger id, is what then makes its order the same).
    assert_eq!(
        bot.trigger_status(id(1000 + oldest_remembered - 1)),
        TriggerStatus::Unknown
    );
}

// ---- the portfolio's order-id window ----

fn fill(order: usize) -> TradeFill {
    TradeFill {
        user_id: OWNER,
        bot_id: id(50),
        order_id: format!("O-{order}"),
        pair: pair(),
        side: Side::Buy,
        quantity: dec("1"),
        price: dec("1"),
        fee: dec("0"),
        executed_at: at_plus(order as i64),
    }
}

fn recorded(order: usize) -> PortfolioEvent {
    PortfolioEvent::TradeRecorded {
        trade: fill(order),
        realised_pnl: dec("0"),
        position: Position {
            quantity: dec("1"),
            cost_basis: dec("1"),
            average_cost: dec("1"),
            realised_pnl: dec("0"),
        },
    }
}

fn record(order: usize) -> PortfolioCommand {
    PortfolioCommand::RecordTrade {
        actor: Actor::System,
        trade: fill(order),
    }
}

#[test]
fn the_portfolio_remembers_the_order_ids_of_its_last_16384_fills() {
    let count = REMEMBERED_ORDER_IDS + 100;
    let given: Vec<PortfolioEvent> = (0..count).map(recorded).collect();
    let portfolio: Portfolio = state_after(given.clone());
    assert_eq!(portfolio.order_ids.len(), REMEMBERED_ORDER_IDS);
    assert_eq!(portfolio.order_ids.front(), Some(&"O-100".to_string()));
    // A redelivered batch (at most PROJECTOR_BATCH_SIZE ≤ 10,000 fills)
    // repeats only fills within the window: each has no effect.
    for repeated in [count - 1, count - 10_000, 100] {
        TestFramework::<Portfolio>::with(())
            .given(given.clone())
            .when(record(repeated))
            .then_expect_events(vec![]);
    }
    // A new order is recorded.
    let new = TestFramework::<Portfolio>::with(())
        .given(given)
        .when(record(count))
        .inspect_result()
        .expect("a new order is recorded");
    assert_eq!(new.len(), 1);
}

// ---- snapshots of the old shape ----

#[test]
fn an_old_portfolio_snapshot_with_a_set_of_order_ids_still_loads() {
    // Taken when `order_ids` was a `BTreeSet`: a JSON array, sorted.
    let payload = serde_json::json!({
        "user_id": OWNER,
        "positions": {
            "XBT/USD": {
                "quantity": "2", "cost_basis": "2", "average_cost": "1", "realised_pnl": "0"
            }
        },
        "order_ids": ["O-1", "O-2", "O-3"]
    });
    let portfolio: Portfolio = serde_json::from_value(payload).expect("old snapshot loads");
    assert_eq!(portfolio.order_ids.len(), 3);
    assert_eq!(portfolio.positions[&pair()].quantity, dec("2"));
    // New fills join the window after the old ones.
    let mut loaded = portfolio.clone();
    cqrs_es::Aggregate::apply(&mut loaded, recorded(4));
    assert_eq!(
        loaded.order_ids.iter().collect::<Vec<_>>(),
        ["O-1", "O-2", "O-3", "O-4"]
    );
    // The new shape serialises as the same kind of array.
    let again = serde_json::to_value(&portfolio).unwrap();
    assert_eq!(again["order_ids"], serde_json::json!(["O-1", "O-2", "O-3"]));
}

#[test]
fn an_old_bot_snapshot_without_trigger_times_still_loads() {
    let payload = serde_json::json!({
        "bot_id": id(50), "owner_id": OWNER, "key_id": id(KEY),
        "pair": "XBT/USD",
        "strategy": {"kind": "dca", "quote_amount": "25", "interval_secs": 3600},
        "state": "running",
        "trades_executed": 1, "trades_skipped": 0, "errors": 0,
        "recent_order_ids": ["O-1"],
        "pending_triggers": [id(1001)],
        "handled_triggers": [id(1000)],
        "holding": "0.001",
        "last_scheduled_fill_at": null
    });
    let bot: Bot = serde_json::from_value(payload).expect("old snapshot loads");
    assert!(bot.recent_trigger_times.is_empty());
    assert_eq!(bot.trigger_status(id(1001)), TriggerStatus::Pending);
    assert_eq!(bot.trigger_status(id(1000)), TriggerStatus::Handled);
}

#[test]
fn an_event_applied_twice_to_one_state_is_remembered_once() {
    // As the command side did before it stopped folding a commit's events
    // into the state `handle` had applied them to: what the quotas count
    // must not double.
    let mut given = running();
    given.extend([triggered(0, 100), triggered(0, 100)]);
    let bot: Bot = state_after(given.clone());
    assert_eq!(bot.pending_triggers.len(), 1);
    assert_eq!(bot.recent_trigger_times.len(), 1);
    let quotas = TriggerQuotas::new(2, 10).unwrap();
    assert_eq!(run_with(quotas, given, trigger(1, 110)).events().len(), 1);
    let portfolio: Portfolio = state_after([recorded(1), recorded(1)]);
    assert_eq!(portfolio.order_ids.len(), 1);
}
