//! Given/when/then tests of the ExchangeKey aggregate, with a fake exchange.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use cqrs_es::test::{AggregateResultValidator, TestFramework};
use cqrs_es::{Aggregate, DomainEvent};
use domain::exchange_key::{
    ExchangeKey, ExchangeKeyCommand, ExchangeKeyEvent, ExchangeKeyServices,
};
use domain::services::{KeyPermission, KeyStatus, KeyVerification, KeyVerifier};
use domain::{Actor, DomainError};
use support::{assert_wire_format, at, at_plus, id};
use uuid::Uuid;

use KeyPermission::{QueryFunds, QueryOrders, Trade, Withdraw};

/// Answers every verification with the configured outcome and counts calls.
struct FakeVerifier {
    outcome: Result<KeyVerification, DomainError>,
    calls: AtomicUsize,
}

#[async_trait]
impl KeyVerifier for FakeVerifier {
    async fn verify(&self, key_id: Uuid) -> Result<KeyVerification, DomainError> {
        assert_eq!(key_id, key(), "the verifier is asked about this key");
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.outcome.clone()
    }
}

fn verifier(outcome: Result<KeyVerification, DomainError>) -> Arc<FakeVerifier> {
    Arc::new(FakeVerifier {
        outcome,
        calls: AtomicUsize::new(0),
    })
}

fn accepting(permissions: &[KeyPermission]) -> Arc<FakeVerifier> {
    verifier(Ok(KeyVerification::Accepted {
        permissions: permissions.to_vec(),
    }))
}

fn rejecting(reason: &str) -> Arc<FakeVerifier> {
    verifier(Ok(KeyVerification::Rejected {
        reason: reason.to_string(),
    }))
}

fn run(
    fake: &Arc<FakeVerifier>,
    given: Vec<ExchangeKeyEvent>,
    command: ExchangeKeyCommand,
) -> AggregateResultValidator<ExchangeKey> {
    let services = ExchangeKeyServices {
        verifier: fake.clone(),
    };
    TestFramework::<ExchangeKey>::with(services)
        .given(given)
        .when(command)
}

fn owner() -> Uuid {
    id(1)
}

fn stranger() -> Uuid {
    id(2)
}

fn key() -> Uuid {
    id(100)
}

fn connect(actor: Actor) -> ExchangeKeyCommand {
    ExchangeKeyCommand::Connect {
        actor,
        key_id: key(),
        label: Some(" main ".to_string()),
        fingerprint: "fp-1".to_string(),
        at: at(),
    }
}

fn connected() -> ExchangeKeyEvent {
    ExchangeKeyEvent::KeyConnected {
        key_id: key(),
        owner_id: owner(),
        exchange: "kraken".to_string(),
        label: Some("main".to_string()),
        fingerprint: "fp-1".to_string(),
        permissions: vec![QueryFunds, Trade],
        at: at(),
    }
}

fn tested() -> ExchangeKeyEvent {
    ExchangeKeyEvent::KeyTested {
        permissions: vec![QueryFunds, Trade],
        at: at_plus(1),
    }
}

fn disconnected() -> ExchangeKeyEvent {
    ExchangeKeyEvent::KeyDisconnected { at: at_plus(2) }
}

fn update(actor: Actor, label: Option<&str>, fingerprint: Option<&str>) -> ExchangeKeyCommand {
    ExchangeKeyCommand::Update {
        actor,
        label: label.map(str::to_string),
        fingerprint: fingerprint.map(str::to_string),
        at: at_plus(10),
    }
}

fn test(actor: Actor) -> ExchangeKeyCommand {
    ExchangeKeyCommand::Test {
        actor,
        at: at_plus(20),
    }
}

fn disconnect(actor: Actor) -> ExchangeKeyCommand {
    ExchangeKeyCommand::Disconnect {
        actor,
        at: at_plus(30),
    }
}

fn state_after(events: Vec<ExchangeKeyEvent>) -> ExchangeKey {
    let mut key = ExchangeKey::default();
    for event in events {
        key.apply(event);
    }
    key
}

fn not_found() -> DomainError {
    DomainError::NotFound {
        entity: "exchange key",
    }
}

fn invalid_field(result: Result<Vec<ExchangeKeyEvent>, DomainError>) -> &'static str {
    match result {
        Err(DomainError::Invalid { field, .. }) => field,
        other => panic!("expected an invalid field, got {other:?}"),
    }
}

// ---- connect ----

#[test]
fn connect_records_sorted_deduplicated_permissions() {
    let fake = accepting(&[Trade, QueryFunds, Trade, QueryOrders]);
    run(&fake, vec![], connect(Actor::user(owner()))).then_expect_events(vec![
        ExchangeKeyEvent::KeyConnected {
            key_id: key(),
            owner_id: owner(),
            exchange: "kraken".to_string(),
            label: Some("main".to_string()),
            fingerprint: "fp-1".to_string(),
            permissions: vec![QueryFunds, QueryOrders, Trade],
            at: at(),
        },
    ]);
    assert_eq!(fake.calls.load(Ordering::SeqCst), 1);
}

#[test]
fn connect_refuses_a_key_that_may_withdraw() {
    let fake = accepting(&[Trade, Withdraw]);
    let result = run(&fake, vec![], connect(Actor::user(owner()))).inspect_result();
    assert_eq!(invalid_field(result), "api_key");
}

#[test]
fn connect_refuses_a_credential_the_exchange_rejected() {
    run(
        &rejecting("EAPI:Invalid key"),
        vec![],
        connect(Actor::user(owner())),
    )
    .then_expect_error_message("api_key: the exchange rejected the credential: EAPI:Invalid key");
}

#[test]
fn connect_reports_an_unreachable_exchange() {
    let down = DomainError::Unavailable {
        reason: "kraken timed out".to_string(),
    };
    run(
        &verifier(Err(down.clone())),
        vec![],
        connect(Actor::user(owner())),
    )
    .then_expect_error(down);
}

#[test]
fn connect_refuses_auditors_and_the_system() {
    let fake = accepting(&[Trade]);
    run(&fake, vec![], connect(Actor::auditor(owner())))
        .then_expect_error_message("forbidden: auditors issue no trading commands");
    run(&fake, vec![], connect(Actor::System))
        .then_expect_error_message("forbidden: a key belongs to a user");
    assert_eq!(fake.calls.load(Ordering::SeqCst), 0);
}

#[test]
fn connect_refuses_an_invalid_label() {
    let command = ExchangeKeyCommand::Connect {
        actor: Actor::user(owner()),
        key_id: key(),
        label: Some("l".repeat(65)),
        fingerprint: "fp-1".to_string(),
        at: at(),
    };
    let result = run(&accepting(&[Trade]), vec![], command).inspect_result();
    assert_eq!(invalid_field(result), "label");
}

#[test]
fn connecting_twice_is_refused() {
    let fake = accepting(&[Trade]);
    run(&fake, vec![connected()], connect(Actor::user(owner())))
        .then_expect_error(DomainError::conflict("key already connected"));
    assert_eq!(fake.calls.load(Ordering::SeqCst), 0);
}

// ---- update ----

#[test]
fn update_changes_the_label_without_asking_the_exchange() {
    let fake = accepting(&[Trade]);
    run(
        &fake,
        vec![connected(), tested()],
        update(Actor::user(owner()), Some(" spare "), None),
    )
    .then_expect_events(vec![ExchangeKeyEvent::KeyUpdated {
        label: Some("spare".to_string()),
        fingerprint: None,
        permissions: None,
        at: at_plus(10),
    }]);
    assert_eq!(fake.calls.load(Ordering::SeqCst), 0);
    let mut events = vec![connected(), tested()];
    events.extend(
        run(
            &fake,
            events.clone(),
            update(Actor::user(owner()), Some("spare"), None),
        )
        .inspect_result()
        .unwrap(),
    );
    let state = state_after(events);
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
        update(Actor::user(owner()), None, None),
    )
    .then_expect_error_message("label: nothing to update");
}

#[test]
fn updating_the_credential_re_verifies_and_resets_the_test() {
    let fake = accepting(&[QueryOrders, QueryFunds]);
    let events = run(
        &fake,
        vec![connected(), tested()],
        update(Actor::user(owner()), None, Some("fp-2")),
    )
    .inspect_result()
    .expect("update accepted");
    assert_eq!(fake.calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        events,
        vec![ExchangeKeyEvent::KeyUpdated {
            label: None,
            fingerprint: Some("fp-2".to_string()),
            permissions: Some(vec![QueryFunds, QueryOrders]),
            at: at_plus(10),
        }]
    );
    let mut history = vec![connected(), tested()];
    history.extend(events);
    let state = state_after(history.clone());
    assert_eq!(state.status, KeyStatus::Untested);
    assert_eq!(state.fingerprint, "fp-2");
    assert_eq!(state.label.as_deref(), Some("main"));
    assert_eq!(state.permissions, vec![QueryFunds, QueryOrders]);
    // The replaced credential must pass a test again; this one fails.
    run(
        &rejecting("EAPI:Invalid nonce"),
        history,
        test(Actor::user(owner())),
    )
    .then_expect_events(vec![ExchangeKeyEvent::KeyTestFailed {
        key_id: key(),
        owner_id: owner(),
        reason: "EAPI:Invalid nonce".to_string(),
        at: at_plus(20),
    }]);
}

#[test]
fn updating_to_a_credential_that_may_withdraw_is_refused() {
    let result = run(
        &accepting(&[Withdraw]),
        vec![connected()],
        update(Actor::user(owner()), None, Some("fp-2")),
    )
    .inspect_result();
    assert_eq!(invalid_field(result), "api_key");
    let result = run(
        &rejecting("bad"),
        vec![connected()],
        update(Actor::user(owner()), Some("x"), Some("fp-2")),
    )
    .inspect_result();
    assert_eq!(invalid_field(result), "api_key");
}

// ---- test ----

#[test]
fn a_passing_test_records_the_key_as_tested() {
    let fake = accepting(&[Trade, QueryFunds, Trade]);
    run(&fake, vec![connected()], test(Actor::user(owner()))).then_expect_events(vec![
        ExchangeKeyEvent::KeyTested {
            permissions: vec![QueryFunds, Trade],
            at: at_plus(20),
        },
    ]);
    let failed = ExchangeKeyEvent::KeyTestFailed {
        key_id: key(),
        owner_id: owner(),
        reason: "x".to_string(),
        at: at(),
    };
    let events = run(
        &fake,
        vec![connected(), failed.clone()],
        test(Actor::user(owner())),
    )
    .inspect_result()
    .unwrap();
    assert_eq!(
        state_after(vec![connected(), failed]).status,
        KeyStatus::TestFailed
    );
    let mut history = vec![connected()];
    history.extend(events);
    assert_eq!(state_after(history).status, KeyStatus::Tested);
}

#[test]
fn a_rejected_credential_fails_the_test() {
    run(
        &rejecting("EAPI:Invalid key"),
        vec![connected(), tested()],
        test(Actor::user(owner())),
    )
    .then_expect_events(vec![ExchangeKeyEvent::KeyTestFailed {
        key_id: key(),
        owner_id: owner(),
        reason: "EAPI:Invalid key".to_string(),
        at: at_plus(20),
    }]);
}

#[test]
fn a_key_that_may_withdraw_fails_the_test() {
    run(
        &accepting(&[Trade, Withdraw]),
        vec![connected()],
        test(Actor::user(owner())),
    )
    .then_expect_events(vec![ExchangeKeyEvent::KeyTestFailed {
        key_id: key(),
        owner_id: owner(),
        reason: "key has withdrawal permission".to_string(),
        at: at_plus(20),
    }]);
}

#[test]
fn a_test_reports_an_unreachable_exchange() {
    let down = DomainError::Unavailable {
        reason: "kraken timed out".to_string(),
    };
    run(
        &verifier(Err(down.clone())),
        vec![connected()],
        test(Actor::user(owner())),
    )
    .then_expect_error(down);
}

#[test]
fn the_last_test_failure_is_kept_until_a_test_passes() {
    let failed = ExchangeKeyEvent::KeyTestFailed {
        key_id: key(),
        owner_id: owner(),
        reason: "EAPI:Invalid key".to_string(),
        at: at_plus(1),
    };
    let state = state_after(vec![connected(), failed.clone()]);
    assert_eq!(state.last_test_failure.as_deref(), Some("EAPI:Invalid key"));
    assert_eq!(
        state_after(vec![connected(), failed.clone(), tested()]).last_test_failure,
        None
    );
    let replaced = ExchangeKeyEvent::KeyUpdated {
        label: None,
        fingerprint: Some("fp-2".to_string()),
        permissions: Some(vec![Trade]),
        at: at_plus(2),
    };
    let state = state_after(vec![connected(), failed, replaced]);
    assert_eq!(state.status, KeyStatus::Untested);
    // BUG (minor): replacing the credential resets the status to Untested
    // but keeps the failure reason of the old credential (exchange_key.rs,
    // `apply` for `KeyUpdated`); it should clear `last_test_failure`.
    assert_eq!(state.last_test_failure.as_deref(), Some("EAPI:Invalid key"));
}

// ---- disconnect ----

#[test]
fn disconnect_records_the_key_as_disconnected() {
    run(
        &accepting(&[Trade]),
        vec![connected(), tested()],
        disconnect(Actor::user(owner())),
    )
    .then_expect_events(vec![ExchangeKeyEvent::KeyDisconnected { at: at_plus(30) }]);
    assert_eq!(
        state_after(vec![connected(), disconnected()]).status,
        KeyStatus::Disconnected
    );
}

// ---- who may act, and on what ----

#[test]
fn every_command_on_a_disconnected_key_reads_as_not_found() {
    let fake = accepting(&[Trade]);
    let actor = Actor::user(owner());
    for command in [
        update(actor, Some("x"), None),
        update(actor, None, Some("fp-2")),
        test(actor),
        disconnect(actor),
    ] {
        run(&fake, vec![connected(), disconnected()], command).then_expect_error(not_found());
    }
    assert_eq!(fake.calls.load(Ordering::SeqCst), 0);
}

#[test]
fn every_command_on_a_key_never_connected_reads_as_not_found() {
    let actor = Actor::admin(owner());
    for command in [
        update(actor, Some("x"), None),
        test(actor),
        disconnect(actor),
    ] {
        run(&accepting(&[Trade]), vec![], command).then_expect_error(not_found());
    }
}

#[test]
fn another_users_key_reads_as_not_found() {
    let fake = accepting(&[Trade]);
    let actor = Actor::user(stranger());
    for command in [
        update(actor, Some("x"), None),
        test(actor),
        disconnect(actor),
    ] {
        run(&fake, vec![connected()], command).then_expect_error_message("exchange key not found");
    }
    assert_eq!(fake.calls.load(Ordering::SeqCst), 0);
}

#[test]
fn auditors_are_forbidden_every_command() {
    let actor = Actor::auditor(owner());
    for command in [
        update(actor, Some("x"), None),
        test(actor),
        disconnect(actor),
    ] {
        let result = run(&accepting(&[Trade]), vec![connected()], command).inspect_result();
        assert!(
            matches!(result, Err(DomainError::Forbidden { .. })),
            "{result:?}"
        );
    }
}

#[test]
fn an_admin_or_the_system_may_act_on_any_key() {
    let fake = accepting(&[Trade]);
    for actor in [Actor::admin(stranger()), Actor::System] {
        let events = run(&fake, vec![connected()], update(actor, Some("ops"), None))
            .inspect_result()
            .unwrap();
        assert_eq!(events.len(), 1);
        run(&fake, vec![connected()], test(actor)).then_expect_events(vec![
            ExchangeKeyEvent::KeyTested {
                permissions: vec![Trade],
                at: at_plus(20),
            },
        ]);
        run(&fake, vec![connected()], disconnect(actor))
            .then_expect_events(vec![ExchangeKeyEvent::KeyDisconnected { at: at_plus(30) }]);
    }
}

// ---- wire format ----

#[test]
fn every_exchange_key_event_has_its_wire_name_and_round_trips() {
    let events = vec![
        connected(),
        ExchangeKeyEvent::KeyUpdated {
            label: Some("spare".to_string()),
            fingerprint: Some("fp-2".to_string()),
            permissions: Some(vec![QueryOrders]),
            at: at(),
        },
        ExchangeKeyEvent::KeyUpdated {
            label: None,
            fingerprint: None,
            permissions: None,
            at: at(),
        },
        tested(),
        ExchangeKeyEvent::KeyTestFailed {
            key_id: key(),
            owner_id: owner(),
            reason: "EAPI:Invalid key".to_string(),
            at: at(),
        },
        disconnected(),
    ];
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
