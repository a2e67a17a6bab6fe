//! The hash chain: a row's hash recomputed exactly as ARCHITECTURE.md
//! ("The hash chain, precisely") and the insert trigger define it, from
//! the row's columns as text. [`crate::audit::verify`] checks the log
//! with it; audit reports carry these fields so their hashes can be
//! recomputed from the report alone.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::Row;
use uuid::Uuid;

/// The `prev_hash` of every stream's first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The columns of a row that its hash covers, as text exactly as hashed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HashedFields {
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    /// `payload::text`, the stored JSON text exactly.
    pub payload: String,
    /// `metadata::text`, the stored JSON text exactly.
    pub metadata: String,
    pub event_id: Uuid,
    pub global_position: i64,
    /// `recorded_at` as `YYYY-MM-DDTHH:MM:SS.ffffffZ` in UTC.
    pub recorded_at: String,
}

/// The SQL expression giving `recorded_at` as the hash formats it.
pub const RECORDED_AT_TEXT: &str =
    "to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')";

/// The columns [`HashedFields::from_row`] reads, plus `prev_hash` and `hash`.
pub const HASHED_COLUMNS: &str = "aggregate_type, aggregate_id, sequence, event_type, event_version, \
     payload::text AS payload_text, metadata::text AS metadata_text, event_id, global_position, \
     to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS recorded_at_text, \
     prev_hash, hash";

impl HashedFields {
    pub fn from_row(row: &sqlx::postgres::PgRow) -> Result<Self, sqlx::Error> {
        Ok(HashedFields {
            aggregate_type: row.try_get("aggregate_type")?,
            aggregate_id: row.try_get("aggregate_id")?,
            sequence: row.try_get("sequence")?,
            event_type: row.try_get("event_type")?,
            event_version: row.try_get("event_version")?,
            payload: row.try_get("payload_text")?,
            metadata: row.try_get("metadata_text")?,
            event_id: row.try_get("event_id")?,
            global_position: row.try_get("global_position")?,
            recorded_at: row.try_get("recorded_at_text")?,
        })
    }

    /// The lower-case hex SHA-256 of this row's hash input after `prev_hash`.
    pub fn hash(&self, prev_hash: &str) -> String {
        let mut hasher = Sha256::new();
        for field in [
            prev_hash,
            &self.aggregate_type,
            &self.aggregate_id,
            &self.sequence.to_string(),
            &self.event_type,
            &self.event_version,
            &self.payload,
            &self.metadata,
            &self.event_id.to_string(),
            &self.global_position.to_string(),
            &self.recorded_at,
        ] {
            hasher.update(field.len().to_string().as_bytes());
            hasher.update(b":");
            hasher.update(field.as_bytes());
            hasher.update(b",");
        }
        hex::encode(hasher.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> HashedFields {
        HashedFields {
            aggregate_type: "User".to_string(),
            aggregate_id: "u-1".to_string(),
            sequence: 1,
            event_type: "user.created".to_string(),
            event_version: "1.0".to_string(),
            payload: r#"{"type":"user.created","naïve":"é"}"#.to_string(),
            metadata: "{}".to_string(),
            event_id: Uuid::nil(),
            global_position: 7,
            recorded_at: "2026-11-23T08:00:00.000001Z".to_string(),
        }
    }

    #[test]
    fn the_hash_input_is_netstrings_of_byte_lengths() {
        let fields = fields();
        let mut input = String::new();
        for field in [
            GENESIS_HASH,
            "User",
            "u-1",
            "1",
            "user.created",
            "1.0",
            fields.payload.as_str(),
            "{}",
            "00000000-0000-0000-0000-000000000000",
            "7",
            "2026-11-23T08:00:00.000001Z",
        ] {
            input.push_str(&format!("{}:{field},", field.len()));
        }
        // Byte lengths, not character counts: the payload has two
        // two-byte characters.
        assert!(input.contains(&format!("{}:{{", fields.payload.chars().count() + 2)));
        assert_eq!(
            fields.hash(GENESIS_HASH),
            hex::encode(Sha256::digest(input.as_bytes()))
        );
    }

    #[test]
    fn every_field_changes_the_hash() {
        let base = fields().hash(GENESIS_HASH);
        let mut changed = fields();
        changed.payload = changed.payload.replace('é', "e");
        assert_ne!(changed.hash(GENESIS_HASH), base);
        let mut changed = fields();
        changed.global_position = 8;
        assert_ne!(changed.hash(GENESIS_HASH), base);
        assert_ne!(fields().hash(&"1".repeat(64)), base);
    }
}
