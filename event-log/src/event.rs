//! One committed event as the log reader returns it.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde_json::Value;
use uuid::Uuid;

use crate::position::Position;

/// One committed event as read from the log.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    pub position: Position,
    pub event_id: Uuid,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub payload: Value,
    pub metadata: Value,
    pub recorded_at: DateTime<Utc>,
    /// The stream's hash chain at this event: the previous event's hash
    /// (64 zeros for the first) and this event's own (ARCHITECTURE.md, "The
    /// hash chain, precisely").
    pub prev_hash: String,
    pub hash: String,
}

impl RecordedEvent {
    /// The payload as a domain event type.
    pub fn decode<E: DeserializeOwned>(&self) -> Result<E, serde_json::Error> {
        serde_json::from_value(self.payload.clone())
    }

    /// Whether this is an event of `event_type` in a stream of
    /// `aggregate_type`: the cheap test before decoding a payload.
    pub fn is(&self, aggregate_type: &str, event_type: &str) -> bool {
        self.aggregate_type == aggregate_type && self.event_type == event_type
    }

    pub fn metadata_str(&self, name: &str) -> Option<&str> {
        self.metadata.get(name).and_then(Value::as_str)
    }
}
