//! The Kafka message of one event: a JSON envelope as the value, the same
//! facts in headers, the aggregate id as the key. The schemas are in
//! `schemas/kafka/`.
//!
//! The headers make each message a CloudEvent in the Kafka protocol
//! binding's binary mode (CloudEvents 1.0): `ce_specversion`, `ce_id` (the
//! event id), `ce_source` (`/muckard/<aggregate type>`), `ce_type` (the
//! wire name), `ce_time` (when the row was written), `ce_subject` (the
//! aggregate id), with `content-type` naming the value's format, so a
//! standard CloudEvents consumer reads the value (the envelope) as the
//! event's data.

use chrono::{DateTime, SecondsFormat, Utc};
use event_log::RecordedEvent;
use rdkafka::message::{Header, OwnedHeaders};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// The value of every message. Consumers deduplicate by `event_id` and
/// order an aggregate's events by `sequence`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub event_id: Uuid,
    pub event_type: String,
    pub event_version: String,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub global_position: i64,
    /// Where the event stands in commit order (`<transaction>.<global
    /// position>`), the token the REST API's `min_position` takes.
    pub position: String,
    pub recorded_at: DateTime<Utc>,
    pub metadata: Value,
    pub payload: Value,
}

impl Envelope {
    pub fn of(event: &RecordedEvent) -> Envelope {
        Envelope {
            event_id: event.event_id,
            event_type: event.event_type.clone(),
            event_version: event.event_version.clone(),
            aggregate_type: event.aggregate_type.clone(),
            aggregate_id: event.aggregate_id.clone(),
            sequence: event.sequence,
            global_position: event.position.global_position,
            position: event.position.to_string(),
            recorded_at: event.recorded_at,
            metadata: event.metadata.clone(),
            payload: event.payload.clone(),
        }
    }
}

/// Header names, for consumers that route or filter without parsing the
/// value.
pub mod header {
    pub const EVENT_ID: &str = "event_id";
    pub const EVENT_TYPE: &str = "event_type";
    pub const EVENT_VERSION: &str = "event_version";
    pub const AGGREGATE_TYPE: &str = "aggregate_type";
    pub const AGGREGATE_ID: &str = "aggregate_id";
    pub const SEQUENCE: &str = "sequence";
    pub const GLOBAL_POSITION: &str = "global_position";
    pub const POSITION: &str = "position";
    pub const RECORDED_AT: &str = "recorded_at";
    pub const CONTENT_TYPE: &str = "content-type";
    /// The event's link in its stream's hash chain, so a consumer (or an
    /// auditor) holding the topic can check the log against it.
    pub const PREV_HASH: &str = "prev_hash";
    pub const HASH: &str = "hash";
    /// W3C trace context, when the command that caused the event had one.
    pub const TRACEPARENT: &str = "traceparent";
    pub const TRACESTATE: &str = "tracestate";
    /// CloudEvents 1.0, Kafka protocol binding, binary mode.
    pub const CE_SPECVERSION: &str = "ce_specversion";
    pub const CE_ID: &str = "ce_id";
    pub const CE_SOURCE: &str = "ce_source";
    pub const CE_TYPE: &str = "ce_type";
    pub const CE_TIME: &str = "ce_time";
    pub const CE_SUBJECT: &str = "ce_subject";
}

/// The CloudEvents specification version the headers follow.
pub const CLOUDEVENTS_SPEC_VERSION: &str = "1.0";

/// A CloudEvent's `source`: the kind of stream the event belongs to
/// (`source` + `id` is unique, and `id` alone already is).
pub fn cloudevents_source(aggregate_type: &str) -> String {
    format!("/muckard/{aggregate_type}")
}

/// The headers of `event`'s message: UTF-8 text values.
pub fn headers(event: &RecordedEvent) -> OwnedHeaders {
    let recorded_at = event
        .recorded_at
        .to_rfc3339_opts(SecondsFormat::Micros, true);
    let mut pairs: Vec<(&str, String)> = vec![
        (header::EVENT_ID, event.event_id.to_string()),
        (header::EVENT_TYPE, event.event_type.clone()),
        (header::EVENT_VERSION, event.event_version.clone()),
        (header::AGGREGATE_TYPE, event.aggregate_type.clone()),
        (header::AGGREGATE_ID, event.aggregate_id.clone()),
        (header::SEQUENCE, event.sequence.to_string()),
        (
            header::GLOBAL_POSITION,
            event.position.global_position.to_string(),
        ),
        (header::POSITION, event.position.to_string()),
        (header::RECORDED_AT, recorded_at.clone()),
        (header::CONTENT_TYPE, "application/json".to_string()),
        (header::PREV_HASH, event.prev_hash.clone()),
        (header::HASH, event.hash.clone()),
        (header::CE_SPECVERSION, CLOUDEVENTS_SPEC_VERSION.to_string()),
        (header::CE_ID, event.event_id.to_string()),
        (header::CE_SOURCE, cloudevents_source(&event.aggregate_type)),
        (header::CE_TYPE, event.event_type.clone()),
        (header::CE_TIME, recorded_at),
        (header::CE_SUBJECT, event.aggregate_id.clone()),
    ];
    for name in [header::TRACEPARENT, header::TRACESTATE] {
        if let Some(value) = event.metadata_str(name) {
            pairs.push((name, value.to_string()));
        }
    }
    pairs.iter().fold(
        OwnedHeaders::new_with_capacity(pairs.len()),
        |headers, (key, value)| {
            headers.insert(Header {
                key,
                value: Some(value.as_bytes()),
            })
        },
    )
}

#[cfg(test)]
mod tests {
    use event_log::Position;
    use rdkafka::message::Headers;
    use serde_json::json;

    use super::*;

    fn event() -> RecordedEvent {
        RecordedEvent {
            position: Position {
                transaction_id: 812,
                global_position: 40,
            },
            event_id: Uuid::new_v4(),
            aggregate_type: "Bot".to_string(),
            aggregate_id: Uuid::new_v4().to_string(),
            sequence: 3,
            event_type: "bot.started".to_string(),
            event_version: "1.0".to_string(),
            payload: json!({ "type": "bot.started", "at": "2026-11-24T10:00:00Z" }),
            metadata: json!({ "command_id": "c", "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" }),
            recorded_at: Utc::now(),
            prev_hash: "a".repeat(64),
            hash: "b".repeat(64),
        }
    }

    #[test]
    fn the_envelope_carries_every_fact_and_round_trips() {
        let event = event();
        let envelope = Envelope::of(&event);
        assert_eq!(envelope.position, "812.40");
        let text = serde_json::to_string(&envelope).unwrap();
        let back: Envelope = serde_json::from_str(&text).unwrap();
        assert_eq!(back, envelope);
        let value: Value = serde_json::from_str(&text).unwrap();
        for field in [
            "event_id",
            "event_type",
            "event_version",
            "aggregate_type",
            "aggregate_id",
            "sequence",
            "global_position",
            "position",
            "recorded_at",
            "metadata",
            "payload",
        ] {
            assert!(value.get(field).is_some(), "{field} missing");
        }
    }

    #[test]
    fn headers_repeat_the_envelope_and_carry_the_trace_context() {
        let event = event();
        let headers = headers(&event);
        let found: Vec<(String, String)> = headers
            .iter()
            .map(|h| {
                (
                    h.key.to_string(),
                    String::from_utf8(h.value.unwrap().to_vec()).unwrap(),
                )
            })
            .collect();
        let get = |name: &str| {
            found
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("event_id"), Some(event.event_id.to_string().as_str()));
        assert_eq!(get("sequence"), Some("3"));
        assert_eq!(get("global_position"), Some("40"));
        assert_eq!(get("position"), Some("812.40"));
        assert_eq!(get("aggregate_type"), Some("Bot"));
        assert_eq!(get("prev_hash"), Some("a".repeat(64).as_str()));
        assert_eq!(get("hash"), Some("b".repeat(64).as_str()));
        assert_eq!(
            get("traceparent"),
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        );
        assert_eq!(get("tracestate"), None);
        assert_eq!(get("ce_specversion"), Some("1.0"));
        assert_eq!(get("ce_id"), get("event_id"));
        assert_eq!(get("ce_source"), Some("/muckard/Bot"));
        assert_eq!(get("ce_type"), Some("bot.started"));
        assert_eq!(get("ce_time"), get("recorded_at"));
        assert_eq!(get("ce_subject"), Some(event.aggregate_id.as_str()));
    }
}
