//! Given/when/then tests of the ExchangeKey aggregate, with a fake exchange.

mod support;

use std::sync::Arc;

use cqrs_es::test::{AggregateResultValidator, TestFramework};
use cqrs_es::DomainEvent;
use domain::exchange_key::{
    ExchangeKey, ExchangeKeyCommand, ExchangeKeyEvent, ExchangeKeyServices,
};
use domain::services::KeyPermission::{self, QueryFunds, QueryOrders, Trade, Withdraw};
use domain::services::KeyStatus;
use domain::{Actor, DomainError};
use support::{assert_wire_format, at, at_plus, state_after, FakeVerifier, Outcome};
use uuid::Uuid;

const OWNER: Uuid = Uuid::from_u128(1);
const STRANGER: Uuid = Uuid::from_u128(2);
const KEY: Uuid = Uuid::from_u128(100);
const NOT_FOUND: DomainError = DomainError::NotFound {
    entity: "exchange key",
};

/// The key's owner as the actor.
fn me() -> Actor {
    Actor::user(OWNER)
}

fn accepting(permissions: &[KeyPermission]) -> Arc<FakeVerifier> {
    Arc::new(FakeVerifier::accepting(permissions))
}

fn rejecting(reason: &str) -> Arc<FakeVerifier> {
    Arc::new(FakeVerifier::rejecting(reason))
}

fn unreachable() -> (Arc<FakeVerifier>, DomainError) {
    let reason = "kraken timed out".to_string();
    let down = DomainError::Unavailable { reason };
    (Arc::new(FakeVerifier::answering(Err(down.clone()))), down)
}

fn run(
    fake: &Arc<FakeVerifier>,
    given: Vec<ExchangeKeyEvent>,
    command: ExchangeKeyCommand,
) -> AggregateResultValidator<ExchangeKey> {
    let verifier = fake.clone();
    TestFramework::<ExchangeKey>::with(ExchangeKeyServices { verifier })
        .given(given)
        .when(command)
}

fn connect(actor: Actor) -> ExchangeKeyCommand {
    ExchangeKeyCommand::Connect {
        actor,
        key_id: KEY,
        label: Some(" main ".to_string()),
        fingerprint: "fp-1".to_string(),
        at: at(),
    }
}

fn connected_with(permissions: Vec<KeyPermission>) -> ExchangeKeyEvent {
    ExchangeKeyEvent::KeyConnected {
        key_id: KEY,
        owner_id: OWNER,
        exchange: "kraken".to_string(),
        label: Some("main".to_string()),
        fingerprint: "fp-1".to_string(),
        permissions,
        at: at(),
    }
}

fn connected() -> ExchangeKeyEvent {
    connected_with(vec![QueryFunds, Trade])
}

fn tested() -> ExchangeKeyEvent {
    let permissions = vec![QueryFunds, Trade];
    ExchangeKeyEvent::KeyTested {
        permissions,
        at: at_plus(1),
    }
}

fn test_failed(reason: &str) -> ExchangeKeyEvent {
    ExchangeKeyEvent::KeyTestFailed {
        key_id: KEY,
        owner_id: OWNER,
        reason: reason.to_string(),
        at: at_plus(20),
    }
}

fn disconnected() -> ExchangeKeyEvent {
    ExchangeKeyEvent::KeyDisconnected { at: at_plus(30) }
}

fn update(actor: Actor, label: Option<&str>, fingerprint: Option<&str>) -> ExchangeKeyCommand {
    let (label, fingerprint) = (label.map(str::to_string), fingerprint.map(str::to_string));
    ExchangeKeyCommand::Update {
        actor,
        label,
        fingerprint,
        at: at_plus(10),
    }
}

fn test(actor: Actor) -> ExchangeKeyCommand {
    let at = at_plus(20);
    ExchangeKeyCommand::Test { actor, at }
}

fn disconnect(actor: Actor) -> ExchangeKeyCommand {
    let at = at_plus(30);
    ExchangeKeyCommand::Disconnect { actor, at }
}

fn status_after(events: Vec<ExchangeKeyEvent>) -> KeyStatus {
    state_after::<ExchangeKey>(events).status
}

// ---- connect ----

#[test]
fn connect_records_sorted_deduplicated_permissions() {
    let fake = accepting(&[Trade, QueryFunds, Trade, QueryOrders]);
    let expected = connected_with(vec![QueryFunds, QueryOrders, Trade]);
    run(&fake, vec![], connect(me())).then_expect_events(vec![expected]);
    assert_eq!(fake.asked(), [KEY], "the exchange checks the new key once");
    assert_eq!(status_after(vec![connected()]), KeyStatus::Untested);
}

#[test]
fn connect_refuses_a_key_that_may_withdraw_or_that_the_exchange_rejected() {
    run(&accepting(&[Trade, Withdraw]), vec![], connect(me())).then_expect_invalid("api_key");
    run(&rejecting("EAPI:Invalid key"), vec![], connect(me())).then_expect_error_message(
        "api_key: the exchange rejected the credential: EAPI:Invalid key",
    );
}

#[test]
fn connect_reports_an_unreachable_exchange() {
    let (fake, down) = unreachable();
    run(&fake, vec![], connect(me())).then_expect_error(down);
}

#[test]
fn connect_refuses_auditors_and_the_system() {
    let fake = accepting(&[Trade]);
    run(&fake, vec![], connect(Actor::auditor(OWNER)))
        .then_expect_error_message("forbidden: auditors issue no trading commands");
    run(&fake, vec![], connect(Actor::System))
        .then_expect_error_message("forbidden: a key belongs to a user");
    assert!(fake.asked().is_empty(), "the exchange was not asked");
}

#[test]
fn connect_refuses_an_invalid_label() {
    let command = ExchangeKeyCommand::Connect {
        actor: me(),
        key_id: KEY,
        label: Some("l".repeat(65)),
        fingerprint: "fp-1".to_string(),
        at: at(),
    };
    run(&accepting(&[Trade]), vec![], command).then_expect_invalid("label");
}

#[test]
fn connecting_twice_is_refused() {
    let fake = accepting(&[Trade]);
    run(&fake, vec![connected()], connect(me()))
        .then_expect_error(DomainError::conflict("key already connected"));
    assert!(fake.asked().is_empty(), "the exchange was not asked");
}

// ---- update ----

#[test]
fn update_changes_the_label_without_asking_the_exchange() {
    let fake = accepting(&[Trade]);
    let given = vec![connected(), tested()];
    let events = run(&fake, given.clone(), update(me(), Some(" spare "), None)).events();
    let expected = ExchangeKeyEvent::KeyUpdated {
        label: Some("spare".to_string()),
        fingerprint: None,
        permissions: None,
        at: at_plus(10),
    };
    assert_eq!(events, [expected]);
    assert!(fake.asked().is_empty(), "the exchange was not asked");
    let state: ExchangeKey = state_after(given.into_iter().chain(events));
    assert_eq!(state.label.as_deref(), Some("spare"));
    assert_eq!(
        state.status,
        KeyStatus::Tested,
        "a new label keeps the test"
    );
}

#[test]
fn update_with_nothing_to_change_is_refused() {
    run(
        &accepting(&[Trade]),
        vec![connected()],
        update(me(), None, None),
    )
    .then_expect_error_message("label: nothing to update");
}

#[test]
fn updating_the_credential_re_verifies_and_resets_the_test() {
    let fake = accepting(&[QueryOrders, QueryFunds]);
    let mut history = vec![connected(), tested()];
    let events = run(&fake, history.clone(), update(me(), None, Some("fp-2"))).events();
    assert_eq!(fake.asked(), [KEY]);
    let expected = ExchangeKeyEvent::KeyUpdated {
        label: None,
        fingerprint: Some("fp-2".to_string()),
        permissions: Some(vec![QueryFunds, QueryOrders]),
        at: at_plus(10),
    };
    assert_eq!(events, [expected]);
    history.extend(events);
    let state: ExchangeKey = state_after(history.clone());
    assert_eq!(state.status, KeyStatus::Untested);
    assert_eq!(state.fingerprint, "fp-2");
    assert_eq!(state.label.as_deref(), Some("main"));
    assert_eq!(state.permissions, [QueryFunds, QueryOrders]);
    // The replaced credential must pass a test again; this one fails.
    run(&rejecting("EAPI:Invalid nonce"), history, test(me()))
        .then_expect_events(vec![test_failed("EAPI:Invalid nonce")]);
}

#[test]
fn updating_to_a_credential_refused_by_the_rules_or_the_exchange_fails() {
    let may_withdraw = accepting(&[Withdraw]);
    run(
        &may_withdraw,
        vec![connected()],
        update(me(), None, Some("fp-2")),
    )
    .then_expect_invalid("api_key");
    run(
        &rejecting("bad"),
        vec![connected()],
        update(me(), Some("x"), Some("fp-2")),
    )
    .then_expect_invalid("api_key");
    let (fake, down) = unreachable();
    run(&fake, vec![connected()], update(me(), None, Some("fp-2"))).then_expect_error(down);
}

// ---- test ----

#[test]
fn a_passing_test_records_the_key_as_tested() {
    let fake = accepting(&[Trade, QueryFunds, Trade]);
    let expected = ExchangeKeyEvent::KeyTested {
        permissions: vec![QueryFunds, Trade],
        at: at_plus(20),
    };
    run(&fake, vec![connected()], test(me())).then_expect_events(vec![expected.clone()]);
    // A key that failed before may pass now.
    let failed = vec![connected(), test_failed("x")];
    assert_eq!(status_after(failed.clone()), KeyStatus::TestFailed);
    run(&fake, failed.clone(), test(me())).then_expect_events(vec![expected.clone()]);
    assert_eq!(
        status_after([failed, vec![expected]].concat()),
        KeyStatus::Tested
    );
    assert_eq!(fake.asked(), [KEY, KEY]);
}

#[test]
fn a_rejected_credential_fails_the_test() {
    run(
        &rejecting("EAPI:Invalid key"),
        vec![connected(), tested()],
        test(me()),
    )
    .then_expect_events(vec![test_failed("EAPI:Invalid key")]);
}

#[test]
fn a_key_that_may_withdraw_fails_the_test() {
    run(
        &accepting(&[Trade, Withdraw]),
        vec![connected()],
        test(me()),
    )
    .then_expect_events(vec![test_failed("key has withdrawal permission")]);
}

#[test]
fn a_test_reports_an_unreachable_exchange() {
    let (fake, down) = unreachable();
    run(&fake, vec![connected()], test(me())).then_expect_error(down);
}

#[test]
fn the_last_test_failure_is_kept_until_a_test_passes_or_the_credential_changes() {
    let failed = vec![connected(), test_failed("EAPI:Invalid key")];
    let state: ExchangeKey = state_after(failed.clone());
    assert_eq!(state.last_test_failure.as_deref(), Some("EAPI:Invalid key"));
    let passed: ExchangeKey = state_after([failed.clone(), vec![tested()]].concat());
    assert_eq!(passed.last_test_failure, None);
    let replaced = ExchangeKeyEvent::KeyUpdated {
        label: None,
        fingerprint: Some("fp-2".to_string()),
        permissions: Some(vec![Trade]),
        at: at_plus(40),
    };
    let state: ExchangeKey = state_after([failed, vec![replaced]].concat());
    assert_eq!(state.status, KeyStatus::Untested);
    // The old credential's failure says nothing about the new one.
    assert_eq!(state.last_test_failure, None);
}

// ---- disconnect ----

#[test]
fn disconnect_records_the_key_as_disconnected() {
    run(
        &accepting(&[Trade]),
        vec![connected(), tested()],
        disconnect(me()),
    )
    .then_expect_events(vec![disconnected()]);
    assert_eq!(
        status_after(vec![connected(), disconnected()]),
        KeyStatus::Disconnected
    );
}

// ---- who may act, and on what ----

/// Every command but Connect, issued by `actor`.
fn commands_on_a_key(actor: Actor) -> [ExchangeKeyCommand; 4] {
    [
        update(actor, Some("x"), None),
        update(actor, None, Some("fp-2")),
        test(actor),
        disconnect(actor),
    ]
}

#[test]
fn every_command_on_a_disconnected_key_reads_as_not_found() {
    let fake = accepting(&[Trade]);
    for command in commands_on_a_key(me()) {
        run(&fake, vec![connected(), disconnected()], command).then_expect_error(NOT_FOUND);
    }
    assert!(fake.asked().is_empty(), "the exchange was not asked");
}

#[test]
fn every_command_on_a_key_never_connected_reads_as_not_found() {
    for command in commands_on_a_key(Actor::admin(OWNER)) {
        run(&accepting(&[Trade]), vec![], command).then_expect_error(NOT_FOUND);
    }
}

#[test]
fn another_users_key_reads_as_not_found() {
    let fake = accepting(&[Trade]);
    for command in commands_on_a_key(Actor::user(STRANGER)) {
        run(&fake, vec![connected()], command).then_expect_error_message("exchange key not found");
    }
    assert!(fake.asked().is_empty(), "the exchange was not asked");
}

#[test]
fn auditors_are_forbidden_every_command() {
    let fake = accepting(&[Trade]);
    for command in commands_on_a_key(Actor::auditor(OWNER)) {
        run(&fake, vec![connected()], command).then_expect_forbidden();
    }
    assert!(fake.asked().is_empty(), "the exchange was not asked");
}

#[test]
fn an_admin_or_the_system_may_act_on_any_key() {
    let fake = accepting(&[Trade]);
    for actor in [Actor::admin(STRANGER), Actor::System] {
        for command in commands_on_a_key(actor) {
            assert_eq!(run(&fake, vec![connected()], command).events().len(), 1);
        }
    }
}

// ---- wire format ----

#[test]
fn every_exchange_key_event_has_its_wire_name_and_round_trips() {
    let nothing_changed = ExchangeKeyEvent::KeyUpdated {
        label: None,
        fingerprint: None,
        permissions: None,
        at: at(),
    };
    let mut events = vec![connected()];
    events.extend(
        run(
            &accepting(&[Trade]),
            vec![connected()],
            update(me(), Some("x"), Some("fp-2")),
        )
        .events(),
    );
    events.extend([
        nothing_changed,
        tested(),
        test_failed("EAPI:Invalid key"),
        disconnected(),
    ]);
    assert_wire_format(&events);
    let names: Vec<String> = events.iter().map(DomainEvent::event_type).collect();
    assert_eq!(
        names,
        [
            "kraken.key.connected",
            "kraken.key.updated",
            "kraken.key.updated",
            "kraken.key.tested",
            "kraken.key.test.failed",
            "kraken.key.disconnected"
        ]
    );
}
