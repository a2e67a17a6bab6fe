//! Group commit in the service: the events of commands that reach the
//! append at the same moment are inserted by one statement, in one
//! transaction, instead of one transaction each.
//!
//! A command's append (its events, no snapshot: appends that carry a
//! snapshot go alone) is queued; up to `LANES` statements run at once, and
//! each takes every append waiting when it starts, up to `max_rows` events.
//! Nothing waits for a batch to fill: alone, an append is sent at once;
//! under load, the appends that queued behind a statement in flight go
//! together in the next, which spreads PostgreSQL's per-statement and
//! per-commit costs over them.
//!
//! A command still commits all or nothing, and only after its events are
//! in: its answer comes after the batch's transaction commits. If the
//! batch's statement fails for any reason but a lost connection (a
//! conflict on a sequence another writer took, the chain trigger's check,
//! or one command's value that PostgreSQL refuses, such as a `\u0000` in
//! a string bound as `jsonb`), every append of the batch is retried on its
//! own, so each command gets its own outcome and none fails for another's
//! input. A lost connection fails the whole batch as a connection error:
//! the pool's problem, which the caller may retry.

use std::collections::HashMap;
use std::sync::Arc;

use cqrs_es::persist::{PersistenceError, SerializedEvent};
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot, Semaphore};

use event_log::{MalformedPosition, Position};

use crate::append::{append_alone, connection_lost};

/// Statements in flight at once.
const LANES: usize = 4;

const APPEND_BATCH: &str = "\
INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
SELECT e.aggregate_type, e.aggregate_id, e.sequence, e.event_type, e.event_version, e.payload::json, e.metadata::json
  FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::jsonb[], $7::jsonb[])
       WITH ORDINALITY AS e(aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, n)
 ORDER BY e.n
RETURNING aggregate_type, aggregate_id, transaction_id::text, global_position";

type Reply = Result<Option<Position>, PersistenceError>;

struct Append {
    aggregate_type: &'static str,
    events: Vec<SerializedEvent>,
    reply: oneshot::Sender<Reply>,
}

/// Queues appends for the batching task (see the module documentation).
#[derive(Clone)]
pub struct AppendBatcher {
    queue: mpsc::UnboundedSender<Append>,
}

impl AppendBatcher {
    /// Starts the batching task on `pool`, with at most `max_rows` events
    /// a statement; call it inside a Tokio runtime. The task ends with the
    /// last clone.
    pub fn spawn(pool: PgPool, max_rows: usize) -> Self {
        let (queue, waiting) = mpsc::unbounded_channel();
        tokio::spawn(run(pool, waiting, max_rows.max(1)));
        Self { queue }
    }

    /// Appends `events` (one stream's, in sequence order) and answers where
    /// they stand once they are committed.
    pub async fn append(
        &self,
        aggregate_type: &'static str,
        events: Vec<SerializedEvent>,
    ) -> Reply {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Append {
                aggregate_type,
                events,
                reply,
            })
            .map_err(|_| unavailable())?;
        answer.await.map_err(|_| unavailable())?
    }
}

fn unavailable() -> PersistenceError {
    PersistenceError::ConnectionError("the append batcher has stopped".into())
}

async fn run(pool: PgPool, mut waiting: mpsc::UnboundedReceiver<Append>, max_rows: usize) {
    let lanes = Arc::new(Semaphore::new(LANES));
    while let Some(first) = waiting.recv().await {
        // While every lane is busy, appends queue up behind `first`.
        let Ok(lane) = lanes.clone().acquire_owned().await else {
            return;
        };
        let mut rows = first.events.len();
        let mut batch = vec![first];
        while rows < max_rows {
            match waiting.try_recv() {
                Ok(next) => {
                    rows += next.events.len();
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        let pool = pool.clone();
        tokio::spawn(async move {
            append_batch(&pool, batch).await;
            drop(lane);
        });
    }
}

async fn append_batch(pool: &PgPool, mut batch: Vec<Append>) {
    if batch.len() == 1 {
        let append = batch.remove(0);
        let outcome = append_alone(pool, append.aggregate_type, &append.events).await;
        let _ = append.reply.send(outcome);
        return;
    }
    crate::metrics::record_append_batch(batch.len());
    match insert(pool, &batch).await.map(stored) {
        Ok(Err(malformed)) => {
            // Committed, but a row came back unreadable: no append may be
            // sent again (it would append twice), so each command fails.
            for append in batch {
                let cause = format!("reading a committed batch's positions: {malformed}");
                let _ = append
                    .reply
                    .send(Err(PersistenceError::UnknownError(cause.into())));
            }
        }
        Ok(Ok(stored)) => {
            for append in batch {
                let position = append.events.first().and_then(|event| {
                    stored
                        .get(&(
                            append.aggregate_type.to_string(),
                            event.aggregate_id.clone(),
                        ))
                        .copied()
                });
                let _ = append.reply.send(Ok(position));
            }
        }
        Err(error) if !connection_lost(&error) => {
            // Whatever one append did wrong failed them all: each alone,
            // one after the other (as many statements as the batch held,
            // on one connection at a time).
            tracing::debug!(error = %error, appends = batch.len(), "a shared append failed; appending each alone");
            for append in batch {
                let outcome = append_alone(pool, append.aggregate_type, &append.events).await;
                let _ = append.reply.send(outcome);
            }
        }
        Err(error) => {
            let message = error.to_string();
            for append in batch {
                let cause = format!("appending a batch of commands' events: {message}");
                let _ = append
                    .reply
                    .send(Err(PersistenceError::ConnectionError(cause.into())));
            }
        }
    }
}

/// Where each stream's events of a batch stand: a stream has one append
/// in a batch that commits (two appends of one stream at once would need
/// the same sequence, and the batch would fail on it).
type Stored = HashMap<(String, String), Position>;

/// A row the batch statement returns: aggregate type and id, transaction
/// id as text, global position.
type Row = (String, String, String, i64);

async fn insert(pool: &PgPool, batch: &[Append]) -> Result<Vec<Row>, sqlx::Error> {
    let events = || {
        batch.iter().flat_map(|append| {
            append
                .events
                .iter()
                .map(move |e| (append.aggregate_type, e))
        })
    };
    sqlx::query_as(APPEND_BATCH)
        .bind(events().map(|(t, _)| t).collect::<Vec<_>>())
        .bind(
            events()
                .map(|(_, e)| e.aggregate_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(events().map(|(_, e)| e.sequence as i64).collect::<Vec<_>>())
        .bind(
            events()
                .map(|(_, e)| e.event_type.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            events()
                .map(|(_, e)| e.event_version.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(events().map(|(_, e)| &e.payload).collect::<Vec<_>>())
        .bind(events().map(|(_, e)| &e.metadata).collect::<Vec<_>>())
        .fetch_all(pool)
        .await
}

fn stored(rows: Vec<Row>) -> Result<Stored, MalformedPosition> {
    let mut stored = Stored::new();
    for (aggregate_type, aggregate_id, transaction, global_position) in rows {
        let position = Position::from_columns(&transaction, global_position)?;
        let last = stored
            .entry((aggregate_type, aggregate_id))
            .or_insert(position);
        *last = (*last).max(position);
    }
    Ok(stored)
}
