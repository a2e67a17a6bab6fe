//! The SQL of an append: a command's events (and its snapshot, if any) in
//! one statement that commits on its own and returns where the events
//! stand in commit order. Used by the repository for a command alone and
//! by the batcher when a shared statement must be retried append by
//! append.

use cqrs_es::persist::{PersistenceError, SerializedEvent};
use event_log::Position;
use serde_json::Value;
use sqlx::PgPool;

/// A command's one event without a snapshot, by far the most common
/// append: a plain INSERT, which PostgreSQL runs at about 1.25 times the
/// rate of the general statement below (BENCHMARKS.md, "api").
const APPEND_ONE: &str = "\
INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
VALUES ($1, $2, $3, $4, $5, ($6::jsonb)::json, ($7::jsonb)::json)
RETURNING transaction_id::text, global_position";

const APPEND: &str = "\
WITH appended AS (
    INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
    SELECT $1, $2, e.sequence, e.event_type, e.event_version, e.payload::json, e.metadata::json
      FROM unnest($3::bigint[], $4::text[], $5::text[], $6::jsonb[], $7::jsonb[])
           AS e(sequence, event_type, event_version, payload, metadata)
     ORDER BY e.sequence
    RETURNING transaction_id, global_position
), snapshot AS (
    INSERT INTO snapshots (aggregate_type, aggregate_id, last_sequence, current_snapshot, payload)
    SELECT $1, $2, $8, $9, ($10::jsonb)::json
     WHERE $10::jsonb IS NOT NULL
    ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE
       SET last_sequence = EXCLUDED.last_sequence,
           current_snapshot = EXCLUDED.current_snapshot,
           payload = EXCLUDED.payload
)
SELECT transaction_id::text, max(global_position)
  FROM appended
 GROUP BY transaction_id";

/// One command's events without a snapshot, in one autocommit statement.
pub(crate) async fn append_alone(
    pool: &PgPool,
    aggregate_type: &str,
    events: &[SerializedEvent],
) -> Result<Option<Position>, PersistenceError> {
    let [event] = events else {
        return with_snapshot(pool, aggregate_type, events, None).await;
    };
    let (transaction, global_position): (String, i64) = sqlx::query_as(APPEND_ONE)
        .bind(aggregate_type)
        .bind(event.aggregate_id.as_str())
        .bind(event.sequence as i64)
        .bind(event.event_type.as_str())
        .bind(event.event_version.as_str())
        .bind(&event.payload)
        .bind(&event.metadata)
        .fetch_one(pool)
        .await
        .map_err(persistence_error)?;
    Ok(Some(position(&transaction, global_position)?))
}

/// Several events of one stream, and a snapshot if any: one statement.
pub(crate) async fn with_snapshot(
    pool: &PgPool,
    aggregate_type: &str,
    events: &[SerializedEvent],
    snapshot: Option<(String, Value, usize)>,
) -> Result<Option<Position>, PersistenceError> {
    let Some(first) = events.first() else {
        return Ok(None);
    };
    let last_sequence = events.last().map_or(0, |e| e.sequence) as i64;
    let (snapshot_number, snapshot_payload) = match snapshot {
        Some((_, payload, number)) => (Some(number as i64), Some(payload)),
        None => (None, None),
    };
    let row: Option<(String, i64)> = sqlx::query_as(APPEND)
        .bind(aggregate_type)
        .bind(first.aggregate_id.as_str())
        .bind(events.iter().map(|e| e.sequence as i64).collect::<Vec<_>>())
        .bind(
            events
                .iter()
                .map(|e| e.event_type.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            events
                .iter()
                .map(|e| e.event_version.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(events.iter().map(|e| &e.payload).collect::<Vec<_>>())
        .bind(events.iter().map(|e| &e.metadata).collect::<Vec<_>>())
        .bind(last_sequence)
        .bind(snapshot_number)
        .bind(snapshot_payload)
        .fetch_optional(pool)
        .await
        .map_err(persistence_error)?;
    row.map(|(transaction, global_position)| position(&transaction, global_position))
        .transpose()
}

/// The position an append returned, or an error naming the bad row.
pub(crate) fn position(
    transaction: &str,
    global_position: i64,
) -> Result<Position, PersistenceError> {
    Position::from_columns(transaction, global_position)
        .map_err(|error| PersistenceError::UnknownError(Box::new(error)))
}

/// As postgres-es maps them: a unique violation (another writer appended
/// the same sequence) is an optimistic-lock conflict; a broken connection
/// is a connection error; anything else is unexpected.
pub(crate) fn persistence_error(error: sqlx::Error) -> PersistenceError {
    match &error {
        sqlx::Error::Database(database) if database.code().as_deref() == Some("23505") => {
            PersistenceError::OptimisticLockError
        }
        _ if connection_lost(&error) => PersistenceError::ConnectionError(Box::new(error)),
        _ => PersistenceError::UnknownError(Box::new(error)),
    }
}

/// Whether `error` is the connection's, not the statement's.
pub(crate) fn connection_lost(error: &sqlx::Error) -> bool {
    matches!(
        error,
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolTimedOut
    )
}
