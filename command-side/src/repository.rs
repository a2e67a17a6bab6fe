//! The event repository under every aggregate: postgres-es' own for
//! reading whole streams and snapshots, with two changes on the write
//! path, where a command's round trips to PostgreSQL are its cost:
//!
//! - a command's events and its snapshot are appended by **one statement**
//!   (a plain `INSERT … RETURNING` for one event without a snapshot, the
//!   common case; otherwise an `INSERT … SELECT FROM unnest(…)` and a
//!   snapshot upsert in data-modifying CTEs), sent outside an explicit
//!   transaction, so it commits
//!   on its own: one round trip instead of postgres-es' four (`BEGIN`, an
//!   `INSERT` per event, the snapshot, `COMMIT`). The statement returns
//!   where the events stand in commit order, so the command side does not
//!   ask again ([`CommandTrace`]);
//! - the events after a snapshot are read with the sequence as a bound
//!   parameter, so the statement is prepared once per connection
//!   (postgres-es formats the sequence into the SQL text, and every new
//!   text costs a prepare round trip and a place in the statement cache).
//!
//! What does not change: the rows are byte-for-byte what postgres-es
//! writes (payload and metadata bound as `jsonb`, stored as `json`, in
//! sequence order so the hash-chain trigger links each to the one
//! before), and a concurrent append of the same sequence is a unique
//! violation of the primary key, reported as an optimistic-lock conflict
//! that the command side retries. The snapshot is written in the same
//! statement, so it can only be replaced by a writer whose events were
//! appended after the ones it folds.

use std::cell::Cell;

use cqrs_es::persist::{
    PersistedEventRepository, PersistenceError, ReplayStream, SerializedEvent, SerializedSnapshot,
};
use cqrs_es::Aggregate;
use postgres_es::PostgresEventRepository;
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};

use crate::batch::AppendBatcher;
use crate::store::Position;

/// What the store did for the command running in this task, read by the
/// command side after cqrs-es returns.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CommandTrace {
    /// Where the command's append landed; `None` when it appended nothing.
    pub appended: Option<Position>,
    /// The sequence of the cached state the command was decided on; `None`
    /// when the state was loaded from the log.
    pub cached_sequence: Option<usize>,
}

tokio::task_local! {
    static TRACE: Cell<CommandTrace>;
}

/// Runs `command` (a cqrs-es execution) with a fresh [`CommandTrace`] and
/// gives back both.
pub(crate) async fn traced<T>(command: impl std::future::Future<Output = T>) -> (T, CommandTrace) {
    TRACE
        .scope(Cell::new(CommandTrace::default()), async {
            let outcome = command.await;
            (outcome, TRACE.with(Cell::get))
        })
        .await
}

/// Notes something in the running command's trace; outside [`traced`] it
/// does nothing.
pub(crate) fn record(update: impl FnOnce(&mut CommandTrace)) {
    let _ = TRACE.try_with(|cell| {
        let mut trace = cell.get();
        update(&mut trace);
        cell.set(trace);
    });
}

const SELECT_LAST_EVENTS: &str = "\
SELECT aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata
  FROM events
 WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence > $3
 ORDER BY sequence";

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

/// postgres-es' repository with a one-statement append (see the module
/// documentation).
pub struct LedgerEventRepository {
    pool: PgPool,
    inner: PostgresEventRepository,
    /// Where the appends of commands (without a snapshot) go when set.
    batcher: Option<AppendBatcher>,
}

impl LedgerEventRepository {
    pub fn new(pool: PgPool) -> Self {
        Self {
            inner: PostgresEventRepository::new(pool.clone()),
            pool,
            batcher: None,
        }
    }

    /// The same, appending commands' events through `batcher`.
    pub fn batched(pool: PgPool, batcher: AppendBatcher) -> Self {
        Self {
            batcher: Some(batcher),
            ..Self::new(pool)
        }
    }

    /// Appends `events` (in sequence order, all of one stream) and the
    /// snapshot, if any, and returns where the events stand, or `None` for
    /// no events: with the batcher, in a statement shared with other
    /// commands' appends; otherwise in one autocommit statement of its own.
    pub(crate) async fn append<A: Aggregate>(
        &self,
        events: Vec<SerializedEvent>,
        snapshot: Option<(String, Value, usize)>,
    ) -> Result<Option<Position>, PersistenceError> {
        match (&self.batcher, snapshot) {
            (_, _) if events.is_empty() => Ok(None),
            (Some(batcher), None) => batcher.append(A::TYPE, events).await,
            (None, None) => append_alone(&self.pool, A::TYPE, &events).await,
            (_, Some(snapshot)) => {
                with_snapshot(&self.pool, A::TYPE, &events, Some(snapshot)).await
            }
        }
    }
}

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
    Ok(Some(Position {
        transaction_id: transaction.parse().unwrap_or_default(),
        global_position,
    }))
}

/// Several events of one stream, and a snapshot if any: one statement.
async fn with_snapshot(
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
    Ok(row.map(|(transaction, global_position)| Position {
        transaction_id: transaction.parse().unwrap_or_default(),
        global_position,
    }))
}

impl Clone for LedgerEventRepository {
    fn clone(&self) -> Self {
        Self {
            batcher: self.batcher.clone(),
            ..Self::new(self.pool.clone())
        }
    }
}

impl PersistedEventRepository for LedgerEventRepository {
    async fn get_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        self.inner.get_events::<A>(aggregate_id).await
    }

    async fn get_last_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
        last_sequence: usize,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        let rows = sqlx::query(SELECT_LAST_EVENTS)
            .bind(A::TYPE)
            .bind(aggregate_id)
            .bind(last_sequence as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(persistence_error)?;
        rows.iter().map(serialized_event).collect()
    }

    async fn get_snapshot<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Option<SerializedSnapshot>, PersistenceError> {
        self.inner.get_snapshot::<A>(aggregate_id).await
    }

    async fn persist<A: Aggregate>(
        &self,
        events: &[SerializedEvent],
        snapshot_update: Option<(String, Value, usize)>,
    ) -> Result<(), PersistenceError> {
        let position = self.append::<A>(events.to_vec(), snapshot_update).await?;
        record(|trace| trace.appended = position);
        Ok(())
    }

    async fn stream_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<ReplayStream, PersistenceError> {
        self.inner.stream_events::<A>(aggregate_id).await
    }

    async fn stream_all_events<A: Aggregate>(&self) -> Result<ReplayStream, PersistenceError> {
        self.inner.stream_all_events::<A>().await
    }
}

fn serialized_event(row: &PgRow) -> Result<SerializedEvent, PersistenceError> {
    let read = |error: sqlx::Error| PersistenceError::UnknownError(Box::new(error));
    let sequence: i64 = row.try_get("sequence").map_err(read)?;
    Ok(SerializedEvent::new(
        row.try_get("aggregate_id").map_err(read)?,
        sequence as usize,
        row.try_get("aggregate_type").map_err(read)?,
        row.try_get("event_type").map_err(read)?,
        row.try_get("event_version").map_err(read)?,
        row.try_get("payload").map_err(read)?,
        row.try_get("metadata").map_err(read)?,
    ))
}

/// As postgres-es maps them: a unique violation (another writer appended
/// the same sequence) is an optimistic-lock conflict; a broken connection
/// is a connection error; anything else is unexpected.
fn persistence_error(error: sqlx::Error) -> PersistenceError {
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
