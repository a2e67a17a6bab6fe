//! The hash chain: recomputing a row's hash exactly as ARCHITECTURE.md
//! ("The hash chain, precisely") and the insert trigger define it, and
//! verifying every stream of the log, naming each broken row.
//!
//! A row whose content changed no longer matches its own hash; a row
//! changed together with its hash breaks the next row's `prev_hash` link; a
//! deleted row leaves a gap in its stream's sequences; a forged row
//! carries a hash that does not recompute, or repeats an event id, a global
//! position or a sequence. What the chain alone cannot show is a stream
//! whose newest rows were deleted: [`verify_log`] compares each stream with
//! its snapshot, the one other record of how long it was.

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::audit::{AuditError, Progress};

/// The `prev_hash` of every stream's first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The columns of a row that its hash covers, as text exactly as hashed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
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

/// Which rows to verify: those recorded in `[from, to]` (either end open).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct VerifyRange {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// One row (or missing row) found wrong, named exactly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrokenRow {
    pub aggregate_type: String,
    pub aggregate_id: String,
    /// The sequence of the row found wrong; for a gap, the row after it.
    pub sequence: i64,
    pub global_position: Option<i64>,
    pub event_id: Option<Uuid>,
    pub problem: Problem,
}

/// What is wrong with a row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Problem {
    /// The row's columns do not hash to its stored `hash`: its content
    /// (payload, metadata, ids, time, ...) was changed after it was written.
    HashMismatch { stored: String, recomputed: String },
    /// The row's `prev_hash` is not the stored hash of the stream's previous
    /// row: a row before it was replaced (hash and all) or the link forged.
    BrokenLink { prev_hash: String, expected: String },
    /// Sequences `missing_from..=missing_to` of the stream are not in the
    /// log: rows were deleted.
    Gap { missing_from: i64, missing_to: i64 },
    /// Two rows of the stream carry this sequence.
    DuplicateSequence,
    /// Another row carries the same event id.
    DuplicateEventId {
        other_aggregate_type: String,
        other_aggregate_id: String,
        other_sequence: i64,
    },
    /// Another row carries the same global position.
    DuplicateGlobalPosition {
        other_aggregate_type: String,
        other_aggregate_id: String,
        other_sequence: i64,
    },
    /// The row's global position is not after its predecessor's, which
    /// appending never produces.
    OutOfOrder { previous_global_position: i64 },
    /// The stream's snapshot was taken at a later sequence than the log
    /// holds: its newest rows were deleted.
    Truncated {
        snapshot_sequence: i64,
        last_sequence: i64,
    },
}

impl fmt::Display for BrokenRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stream = format!("{}/{}", self.aggregate_type, self.aggregate_id);
        let at = match self.global_position {
            Some(position) => format!(" (global position {position})"),
            None => String::new(),
        };
        match &self.problem {
            Problem::HashMismatch { stored, recomputed } => write!(
                f,
                "{stream} sequence {}{at}: content does not match its hash (stored {stored}, recomputed {recomputed})",
                self.sequence
            ),
            Problem::BrokenLink { prev_hash, expected } => write!(
                f,
                "{stream} sequence {}{at}: prev_hash {prev_hash} is not the previous row's hash {expected}",
                self.sequence
            ),
            Problem::Gap {
                missing_from,
                missing_to,
            } => {
                if missing_from == missing_to {
                    write!(f, "{stream} sequence {missing_from}: missing (deleted) before sequence {}", self.sequence)
                } else {
                    write!(f, "{stream} sequences {missing_from} to {missing_to}: missing (deleted) before sequence {}", self.sequence)
                }
            }
            Problem::DuplicateSequence => {
                write!(f, "{stream} sequence {}{at}: sequence appears twice", self.sequence)
            }
            Problem::DuplicateEventId {
                other_aggregate_type,
                other_aggregate_id,
                other_sequence,
            } => write!(
                f,
                "{stream} sequence {}{at}: event id {} also used by {other_aggregate_type}/{other_aggregate_id} sequence {other_sequence}",
                self.sequence,
                self.event_id.map(|id| id.to_string()).unwrap_or_default()
            ),
            Problem::DuplicateGlobalPosition {
                other_aggregate_type,
                other_aggregate_id,
                other_sequence,
            } => write!(
                f,
                "{stream} sequence {}{at}: global position also used by {other_aggregate_type}/{other_aggregate_id} sequence {other_sequence}",
                self.sequence
            ),
            Problem::OutOfOrder {
                previous_global_position,
            } => write!(
                f,
                "{stream} sequence {}{at}: global position not after the previous row's {previous_global_position}",
                self.sequence
            ),
            Problem::Truncated {
                snapshot_sequence,
                last_sequence,
            } => write!(
                f,
                "{stream}: the log ends at sequence {last_sequence} but a snapshot was taken at sequence {snapshot_sequence} (newest rows deleted)"
            ),
        }
    }
}

/// The outcome of [`verify_log`].
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub range: VerifyRange,
    pub events_checked: u64,
    pub streams_checked: u64,
    pub seconds: f64,
    pub broken_rows: Vec<BrokenRow>,
}

impl VerifyReport {
    pub fn is_clean(&self) -> bool {
        self.broken_rows.is_empty()
    }
}

/// The previous row of the stream being scanned.
struct Previous {
    sequence: i64,
    hash: String,
    global_position: i64,
}

/// A stream's first row in the scan, whose predecessor (if any) lies
/// outside the range or is missing; checked after the scan.
struct FirstRow {
    aggregate_type: String,
    aggregate_id: String,
    sequence: i64,
    global_position: i64,
    event_id: Uuid,
    prev_hash: String,
}

/// Where an id was first seen: (stream index, sequence).
type SeenAt = (u32, i64);

/// Verifies every row recorded in `range`: its own hash, its link to the
/// previous row of its stream, contiguous sequences, unique event ids and
/// global positions. Without a range it also checks streams against their
/// snapshots. Reads the log once, in stream order.
pub async fn verify_log(
    pool: &PgPool,
    range: VerifyRange,
    progress: &dyn Progress,
) -> Result<VerifyReport, AuditError> {
    let started = std::time::Instant::now();
    let total: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events \
         WHERE ($1::timestamptz IS NULL OR recorded_at >= $1) \
           AND ($2::timestamptz IS NULL OR recorded_at <= $2)",
    )
    .bind(range.from)
    .bind(range.to)
    .fetch_one(pool)
    .await?;
    progress.start("verify", total.max(0) as u64);

    let query = format!(
        "SELECT {HASHED_COLUMNS} FROM events \
         WHERE ($1::timestamptz IS NULL OR recorded_at >= $1) \
           AND ($2::timestamptz IS NULL OR recorded_at <= $2) \
         ORDER BY aggregate_type, aggregate_id, sequence"
    );
    let mut connection = pool.acquire().await?;
    let mut rows = sqlx::query(&query)
        .bind(range.from)
        .bind(range.to)
        .fetch(&mut *connection);

    let mut broken = Vec::new();
    let mut streams: Vec<(String, String)> = Vec::new();
    let mut event_ids: HashMap<Uuid, SeenAt> = HashMap::new();
    let mut positions: HashMap<i64, SeenAt> = HashMap::new();
    let mut first_rows: Vec<FirstRow> = Vec::new();
    let mut previous: Option<Previous> = None;
    let mut checked = 0u64;

    while let Some(row) = rows.try_next().await? {
        let fields = HashedFields::from_row(&row)?;
        let prev_hash: String = row.try_get("prev_hash")?;
        let hash: String = row.try_get("hash")?;
        let new_stream = streams.last().is_none_or(|(aggregate_type, aggregate_id)| {
            *aggregate_type != fields.aggregate_type || *aggregate_id != fields.aggregate_id
        });
        if new_stream {
            streams.push((fields.aggregate_type.clone(), fields.aggregate_id.clone()));
            previous = None;
        }
        let stream_index = (streams.len() - 1) as u32;
        let name = |problem: Problem| BrokenRow {
            aggregate_type: fields.aggregate_type.clone(),
            aggregate_id: fields.aggregate_id.clone(),
            sequence: fields.sequence,
            global_position: Some(fields.global_position),
            event_id: Some(fields.event_id),
            problem,
        };

        let recomputed = fields.hash(&prev_hash);
        if recomputed != hash {
            broken.push(name(Problem::HashMismatch {
                stored: hash.clone(),
                recomputed,
            }));
        }
        match &previous {
            None if fields.sequence == 1 => {
                if prev_hash != GENESIS_HASH {
                    broken.push(name(Problem::BrokenLink {
                        prev_hash: prev_hash.clone(),
                        expected: GENESIS_HASH.to_string(),
                    }));
                }
            }
            None => first_rows.push(FirstRow {
                aggregate_type: fields.aggregate_type.clone(),
                aggregate_id: fields.aggregate_id.clone(),
                sequence: fields.sequence,
                global_position: fields.global_position,
                event_id: fields.event_id,
                prev_hash: prev_hash.clone(),
            }),
            Some(before) => {
                if fields.sequence == before.sequence {
                    broken.push(name(Problem::DuplicateSequence));
                } else if fields.sequence > before.sequence + 1 {
                    broken.push(name(Problem::Gap {
                        missing_from: before.sequence + 1,
                        missing_to: fields.sequence - 1,
                    }));
                } else if prev_hash != before.hash {
                    broken.push(name(Problem::BrokenLink {
                        prev_hash: prev_hash.clone(),
                        expected: before.hash.clone(),
                    }));
                }
                if fields.global_position <= before.global_position {
                    broken.push(name(Problem::OutOfOrder {
                        previous_global_position: before.global_position,
                    }));
                }
            }
        }
        let here = (stream_index, fields.sequence);
        if let Some(&(other, other_sequence)) = event_ids.get(&fields.event_id) {
            let (other_type, other_id) = streams[other as usize].clone();
            broken.push(name(Problem::DuplicateEventId {
                other_aggregate_type: other_type,
                other_aggregate_id: other_id,
                other_sequence,
            }));
        } else {
            event_ids.insert(fields.event_id, here);
        }
        if let Some(&(other, other_sequence)) = positions.get(&fields.global_position) {
            let (other_type, other_id) = streams[other as usize].clone();
            broken.push(name(Problem::DuplicateGlobalPosition {
                other_aggregate_type: other_type,
                other_aggregate_id: other_id,
                other_sequence,
            }));
        } else {
            positions.insert(fields.global_position, here);
        }
        previous = Some(Previous {
            sequence: fields.sequence,
            hash,
            global_position: fields.global_position,
        });
        checked += 1;
        if checked.is_multiple_of(1024) {
            progress.advance(1024);
        }
    }
    drop(rows);
    drop(connection);
    progress.advance(checked % 1024);

    broken.extend(check_first_rows(pool, &first_rows).await?);
    if range.from.is_none() && range.to.is_none() {
        broken.extend(check_snapshots(pool).await?);
    }
    progress.finish();
    broken.sort_by(|a, b| {
        (&a.aggregate_type, &a.aggregate_id, a.sequence).cmp(&(
            &b.aggregate_type,
            &b.aggregate_id,
            b.sequence,
        ))
    });
    Ok(VerifyReport {
        range,
        events_checked: checked,
        streams_checked: streams.len() as u64,
        seconds: started.elapsed().as_secs_f64(),
        broken_rows: broken,
    })
}

/// A stream's first row in the scan with sequence above 1: its
/// predecessor is either outside the range (then the link is checked
/// against it) or missing (a gap).
async fn check_first_rows(
    pool: &PgPool,
    first_rows: &[FirstRow],
) -> Result<Vec<BrokenRow>, AuditError> {
    let mut broken = Vec::new();
    for chunk in first_rows.chunks(1000) {
        let types: Vec<&str> = chunk.iter().map(|r| r.aggregate_type.as_str()).collect();
        let ids: Vec<&str> = chunk.iter().map(|r| r.aggregate_id.as_str()).collect();
        let sequences: Vec<i64> = chunk.iter().map(|r| r.sequence).collect();
        let found: Vec<(i32, Option<i64>, Option<String>)> = sqlx::query_as(
            "SELECT (k.ordinality - 1)::int, p.sequence, p.hash \
               FROM unnest($1::text[], $2::text[], $3::bigint[]) WITH ORDINALITY \
                    AS k(aggregate_type, aggregate_id, sequence, ordinality) \
               LEFT JOIN LATERAL ( \
                    SELECT e.sequence, e.hash FROM events e \
                     WHERE e.aggregate_type = k.aggregate_type AND e.aggregate_id = k.aggregate_id \
                       AND e.sequence < k.sequence \
                     ORDER BY e.sequence DESC LIMIT 1) p ON true",
        )
        .bind(&types)
        .bind(&ids)
        .bind(&sequences)
        .fetch_all(pool)
        .await?;
        for (index, predecessor_sequence, predecessor_hash) in found {
            let row = &chunk[index as usize];
            let problem = match (predecessor_sequence, predecessor_hash) {
                (Some(sequence), Some(hash)) if sequence == row.sequence - 1 => {
                    if row.prev_hash == hash {
                        continue;
                    }
                    Problem::BrokenLink {
                        prev_hash: row.prev_hash.clone(),
                        expected: hash,
                    }
                }
                (sequence, _) => Problem::Gap {
                    missing_from: sequence.unwrap_or(0) + 1,
                    missing_to: row.sequence - 1,
                },
            };
            broken.push(BrokenRow {
                aggregate_type: row.aggregate_type.clone(),
                aggregate_id: row.aggregate_id.clone(),
                sequence: row.sequence,
                global_position: Some(row.global_position),
                event_id: Some(row.event_id),
                problem,
            });
        }
    }
    Ok(broken)
}

/// Streams that end before the sequence their snapshot was taken at.
async fn check_snapshots(pool: &PgPool) -> Result<Vec<BrokenRow>, AuditError> {
    let rows: Vec<(String, String, i64, Option<i64>)> = sqlx::query_as(
        "SELECT s.aggregate_type, s.aggregate_id, s.last_sequence, \
                (SELECT max(e.sequence) FROM events e \
                  WHERE e.aggregate_type = s.aggregate_type AND e.aggregate_id = s.aggregate_id) \
           FROM snapshots s",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .filter(|(_, _, snapshot, last)| last.unwrap_or(0) < *snapshot)
        .map(
            |(aggregate_type, aggregate_id, snapshot_sequence, last)| BrokenRow {
                aggregate_type,
                aggregate_id,
                sequence: last.unwrap_or(0),
                global_position: None,
                event_id: None,
                problem: Problem::Truncated {
                    snapshot_sequence,
                    last_sequence: last.unwrap_or(0),
                },
            },
        )
        .collect())
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
