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
//!   ask again ([`crate::append_outcome::AppendOutcome`]);
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

use cqrs_es::persist::{
    PersistedEventRepository, PersistenceError, ReplayStream, SerializedEvent, SerializedSnapshot,
};
use cqrs_es::Aggregate;
use postgres_es::PostgresEventRepository;
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};

use crate::append::{append_alone, persistence_error, with_snapshot};
use crate::append_outcome::note_append_outcome;
use crate::batch::AppendBatcher;
use event_log::Position;

const SELECT_LAST_EVENTS: &str = "\
SELECT aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata
  FROM events
 WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence > $3
 ORDER BY sequence";

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
    #[tracing::instrument(name = "append", skip_all, fields(aggregate_type = A::TYPE, events = events.len()))]
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
        note_append_outcome(|outcome| outcome.appended = position);
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
