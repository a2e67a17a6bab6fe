//! Helpers shared by the aggregate tests: fixed clocks, readable ids, exact
//! decimals, in-memory fakes of the services, outcome helpers and the
//! wire-format check every event type must pass.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cqrs_es::test::AggregateResultValidator;
use cqrs_es::{Aggregate, DomainEvent};
use domain::services::{KeyDirectory, KeyFacts, KeyPermission, KeyVerification, KeyVerifier};
use domain::{Decimal, DomainError};
use uuid::Uuid;

/// A fixed instant, so expected events can be written out in full.
pub fn at() -> DateTime<Utc> {
    at_plus(0)
}

/// `at()` moved on by `secs` seconds.
pub fn at_plus(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000 + secs, 0).expect("valid timestamp")
}

/// A deterministic id, readable in failure output.
pub fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

/// An exact decimal from its text, e.g. `dec("1.5")`.
pub fn dec(text: &str) -> Decimal {
    Decimal::from_str_exact(text).expect("valid decimal")
}

/// Assertions on a command's outcome beyond those of cqrs-es, written in
/// the same `then_expect_*` style.
pub trait Outcome<A: Aggregate> {
    /// The events an accepted command recorded; panics on a refusal.
    fn events(self) -> Vec<A::Event>;
    /// Why the command was refused; panics when it was accepted.
    fn refusal(self) -> DomainError;
    /// The command was refused as invalid on `field`.
    fn then_expect_invalid(self, field: &str);
    /// The command was refused as forbidden, whatever the reason.
    fn then_expect_forbidden(self);
}

impl<A: Aggregate<Error = DomainError>> Outcome<A> for AggregateResultValidator<A> {
    fn events(self) -> Vec<A::Event> {
        match self.inspect_result() {
            Ok(events) => events,
            Err(error) => panic!("expected the command to be accepted, got: {error:?}"),
        }
    }

    fn refusal(self) -> DomainError {
        match self.inspect_result() {
            Ok(events) => panic!("expected a refusal, got events: {events:?}"),
            Err(error) => error,
        }
    }

    fn then_expect_invalid(self, expected: &str) {
        match self.refusal() {
            DomainError::Invalid { field, .. } => assert_eq!(field, expected),
            other => panic!("expected invalid `{expected}`, got: {other:?}"),
        }
    }

    fn then_expect_forbidden(self) {
        let refusal = self.refusal();
        assert!(
            matches!(refusal, DomainError::Forbidden { .. }),
            "expected forbidden, got: {refusal:?}"
        );
    }
}

/// The state an aggregate reaches by applying `events` in order.
pub fn state_after<A: Aggregate>(events: impl IntoIterator<Item = A::Event>) -> A {
    let mut aggregate = A::default();
    for event in events {
        aggregate.apply(event);
    }
    aggregate
}

/// Every event serialises to a JSON object whose `type` is its
/// `event_type()` and reads back equal. Versions are each aggregate's
/// test's business (most are "1.0").
pub fn assert_wire_format<E: DomainEvent>(events: &[E]) {
    for event in events {
        let json = serde_json::to_value(event).expect("event serialises");
        assert_eq!(
            json.get("type").and_then(|t| t.as_str()),
            Some(event.event_type().as_str()),
            "`type` field of {json}"
        );
        let back: E = serde_json::from_value(json.clone()).expect("event deserialises");
        assert_eq!(&back, event, "round trip of {json}");
        let text = serde_json::to_string(event).expect("event serialises to text");
        let back: E = serde_json::from_str(&text).expect("event deserialises from text");
        assert_eq!(&back, event, "round trip of {text}");
        assert!(["1.0", "2.0"].contains(&event.event_version().as_str()));
    }
}

/// The exchange, answering every verification with one configured outcome
/// and remembering which keys it was asked about.
pub struct FakeVerifier {
    outcome: Result<KeyVerification, DomainError>,
    asked: Mutex<Vec<Uuid>>,
}

impl FakeVerifier {
    pub fn answering(outcome: Result<KeyVerification, DomainError>) -> Self {
        let asked = Mutex::new(Vec::new());
        FakeVerifier { outcome, asked }
    }

    pub fn accepting(permissions: &[KeyPermission]) -> Self {
        let permissions = permissions.to_vec();
        Self::answering(Ok(KeyVerification::Accepted { permissions }))
    }

    pub fn rejecting(reason: &str) -> Self {
        let reason = reason.to_string();
        Self::answering(Ok(KeyVerification::Rejected { reason }))
    }

    /// The key ids verified so far, in order.
    pub fn asked(&self) -> Vec<Uuid> {
        self.asked.lock().unwrap().clone()
    }
}

#[async_trait]
impl KeyVerifier for FakeVerifier {
    async fn verify(&self, key_id: Uuid) -> Result<KeyVerification, DomainError> {
        self.asked.lock().unwrap().push(key_id);
        self.outcome.clone()
    }
}

/// The exchange keys another aggregate would read, from a fixed map.
pub struct FakeDirectory(pub HashMap<Uuid, KeyFacts>);

#[async_trait]
impl KeyDirectory for FakeDirectory {
    async fn key_facts(&self, key_id: Uuid) -> Result<Option<KeyFacts>, DomainError> {
        Ok(self.0.get(&key_id).copied())
    }
}
