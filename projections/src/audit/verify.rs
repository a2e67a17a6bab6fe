//! Verifying the log: every stream's hash chain, contiguous sequences,
//! unique event ids and global positions, naming each broken row.
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
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::audit::chain::{HashedFields, GENESIS_HASH, HASHED_COLUMNS};
use crate::audit::{AuditError, Progress};

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
    let filter = "WHERE ($1::timestamptz IS NULL OR recorded_at >= $1) \
                  AND ($2::timestamptz IS NULL OR recorded_at <= $2)";
    let total: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM events {filter}"))
        .bind(range.from)
        .bind(range.to)
        .fetch_one(pool)
        .await?;
    progress.start("verify", total.max(0) as u64);

    let query = format!(
        "SELECT {HASHED_COLUMNS} FROM events {filter} ORDER BY aggregate_type, aggregate_id, sequence"
    );
    let mut scan = Scan::default();
    let mut connection = pool.acquire().await?;
    let mut rows = sqlx::query(&query)
        .bind(range.from)
        .bind(range.to)
        .fetch(&mut *connection);
    while let Some(row) = rows.try_next().await? {
        scan.row(
            HashedFields::from_row(&row)?,
            row.try_get("prev_hash")?,
            row.try_get("hash")?,
        );
        if scan.checked.is_multiple_of(1024) {
            progress.advance(1024);
        }
    }
    drop(rows);
    drop(connection);
    progress.advance(scan.checked % 1024);

    let mut broken = scan.broken;
    broken.extend(check_first_rows(pool, &scan.first_rows).await?);
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
        events_checked: scan.checked,
        streams_checked: scan.streams.len() as u64,
        seconds: started.elapsed().as_secs_f64(),
        broken_rows: broken,
    })
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

/// The state of a scan of the log in stream order.
#[derive(Default)]
struct Scan {
    broken: Vec<BrokenRow>,
    /// Every stream seen, in order; ids below point into it.
    streams: Vec<(String, String)>,
    event_ids: HashMap<Uuid, SeenAt>,
    positions: HashMap<i64, SeenAt>,
    first_rows: Vec<FirstRow>,
    previous: Option<Previous>,
    checked: u64,
}

impl Scan {
    /// Checks one row against itself, the previous row of its stream and
    /// every id seen so far.
    fn row(&mut self, fields: HashedFields, prev_hash: String, hash: String) {
        let new_stream = self
            .streams
            .last()
            .is_none_or(|(aggregate_type, aggregate_id)| {
                *aggregate_type != fields.aggregate_type || *aggregate_id != fields.aggregate_id
            });
        if new_stream {
            self.streams
                .push((fields.aggregate_type.clone(), fields.aggregate_id.clone()));
            self.previous = None;
        }
        let here = ((self.streams.len() - 1) as u32, fields.sequence);
        let mut problems = Vec::new();

        let recomputed = fields.hash(&prev_hash);
        if recomputed != hash {
            problems.push(Problem::HashMismatch {
                stored: hash.clone(),
                recomputed,
            });
        }
        match &self.previous {
            None if fields.sequence == 1 => {
                if prev_hash != GENESIS_HASH {
                    problems.push(Problem::BrokenLink {
                        prev_hash,
                        expected: GENESIS_HASH.to_string(),
                    });
                }
            }
            None => self.first_rows.push(FirstRow {
                aggregate_type: fields.aggregate_type.clone(),
                aggregate_id: fields.aggregate_id.clone(),
                sequence: fields.sequence,
                global_position: fields.global_position,
                event_id: fields.event_id,
                prev_hash,
            }),
            Some(before) => problems.extend(linked(before, &fields, prev_hash)),
        }
        if let Some(other) = seen_before(&mut self.event_ids, fields.event_id, here) {
            let (other_aggregate_type, other_aggregate_id) = self.streams[other.0 as usize].clone();
            problems.push(Problem::DuplicateEventId {
                other_aggregate_type,
                other_aggregate_id,
                other_sequence: other.1,
            });
        }
        if let Some(other) = seen_before(&mut self.positions, fields.global_position, here) {
            let (other_aggregate_type, other_aggregate_id) = self.streams[other.0 as usize].clone();
            problems.push(Problem::DuplicateGlobalPosition {
                other_aggregate_type,
                other_aggregate_id,
                other_sequence: other.1,
            });
        }
        self.broken
            .extend(problems.into_iter().map(|problem| BrokenRow {
                aggregate_type: fields.aggregate_type.clone(),
                aggregate_id: fields.aggregate_id.clone(),
                sequence: fields.sequence,
                global_position: Some(fields.global_position),
                event_id: Some(fields.event_id),
                problem,
            }));
        self.previous = Some(Previous {
            sequence: fields.sequence,
            hash,
            global_position: fields.global_position,
        });
        self.checked += 1;
    }
}

/// What is wrong between a row and the previous row of its stream.
fn linked(before: &Previous, fields: &HashedFields, prev_hash: String) -> Vec<Problem> {
    let mut problems = Vec::new();
    if fields.sequence == before.sequence {
        problems.push(Problem::DuplicateSequence);
    } else if fields.sequence > before.sequence + 1 {
        problems.push(Problem::Gap {
            missing_from: before.sequence + 1,
            missing_to: fields.sequence - 1,
        });
    } else if prev_hash != before.hash {
        problems.push(Problem::BrokenLink {
            prev_hash,
            expected: before.hash.clone(),
        });
    }
    if fields.global_position <= before.global_position {
        problems.push(Problem::OutOfOrder {
            previous_global_position: before.global_position,
        });
    }
    problems
}

/// Where `key` was seen before, recording `here` if it was not.
fn seen_before<K: std::hash::Hash + Eq>(
    seen: &mut HashMap<K, SeenAt>,
    key: K,
    here: SeenAt,
) -> Option<SeenAt> {
    match seen.entry(key) {
        std::collections::hash_map::Entry::Occupied(entry) => Some(*entry.get()),
        std::collections::hash_map::Entry::Vacant(entry) => {
            entry.insert(here);
            None
        }
    }
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
