//! Helpers shared by the aggregate tests: fixed clocks, readable ids, exact
//! decimals and the wire-format check every event type must pass.
#![allow(dead_code)]

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use domain::Decimal;
use uuid::Uuid;

/// A fixed instant, so expected events can be written out in full.
pub fn at() -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000, 0).expect("valid timestamp")
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

/// Every event serialises to a JSON object whose `type` is its
/// `event_type()`, reads back equal, and is version "1.0".
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
        assert_eq!(event.event_version(), "1.0");
    }
}
