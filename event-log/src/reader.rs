//! The log reader: committed events in commit order, from a checkpoint.
//!
//! Identity values are assigned at INSERT but become visible at COMMIT, so
//! "every event after the last global position I saw" skips events whose
//! transaction commits late. This reader only returns rows whose
//! transaction is older than the oldest transaction still running
//! (`transaction_id < pg_snapshot_xmin(pg_current_snapshot())`): no event
//! can ever appear before such a row's position. Rows are ordered by
//! `(transaction_id, global_position)` and the pair is the checkpoint.

use std::sync::Arc;

use cqrs_es::persist::{EventUpcaster, SerializedEvent};

use sqlx::{PgConnection, PgPool, Row};

use crate::event::RecordedEvent;
use crate::position::{MalformedPosition, Position};

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("reading the log: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    MalformedPosition(#[from] MalformedPosition),
}

const SELECT_COLUMNS: &str = "transaction_id::text AS transaction_text, global_position, event_id, \
     aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, recorded_at, \
     prev_hash, hash";

/// Whether a committed event stands after `position` in commit order (at
/// or after it when `inclusive`), readable or not yet: one probe of the
/// commit-order index.
///
/// Not `EXISTS (…)`: a prepared statement soon runs on a generic plan,
/// which for `EXISTS` over a row comparison with parameters is a
/// sequential scan of the whole log (the planner guesses a third of the
/// rows match and stops at the first one, and none do), milliseconds per
/// probe that grow with the log. `ORDER BY … LIMIT 1` keeps the index on
/// every plan.
pub async fn any_after<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    position: Position,
    inclusive: bool,
) -> Result<bool, sqlx::Error> {
    let query = if inclusive {
        "SELECT true FROM events WHERE (transaction_id, global_position) >= ($1::text::xid8, $2) \
         ORDER BY transaction_id, global_position LIMIT 1"
    } else {
        "SELECT true FROM events WHERE (transaction_id, global_position) > ($1::text::xid8, $2) \
         ORDER BY transaction_id, global_position LIMIT 1"
    };
    let found: Option<bool> = sqlx::query_scalar(query)
        .bind(position.transaction_text())
        .bind(position.global_position)
        .fetch_optional(executor)
        .await?;
    Ok(found.is_some())
}

/// One read of the log: the events wanted, in commit order, and how far
/// the read went (the position of the last row scanned, wanted or not).
#[derive(Debug, Default)]
pub struct Batch {
    pub events: Vec<RecordedEvent>,
    /// Rows read, wanted or not.
    pub scanned: usize,
    /// The position of the last row read; `None` when nothing was.
    pub last: Option<Position>,
}

/// Reads the log forward. Cheap to clone.
#[derive(Clone, Default)]
pub struct LogReader {
    upcasters: Arc<Vec<Box<dyn EventUpcaster>>>,
}

impl LogReader {
    pub fn new() -> Self {
        Self::default()
    }

    /// A reader that brings old event versions up to date with `upcasters`,
    /// the same ones the event store loads aggregates with.
    pub fn with_upcasters(upcasters: Vec<Box<dyn EventUpcaster>>) -> Self {
        Self {
            upcasters: Arc::new(upcasters),
        }
    }

    /// Up to `limit` committed events after `after`, in commit order.
    pub async fn read_after(
        &self,
        pool: &PgPool,
        after: Position,
        limit: i64,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        let mut connection = pool.acquire().await?;
        self.read_after_on(&mut connection, after, limit).await
    }

    /// The same on a given connection, e.g. the transaction that will also
    /// move a subscriber's checkpoint. Run it before that transaction writes
    /// anything, so it holds no transaction id of its own yet.
    pub async fn read_after_on(
        &self,
        connection: &mut PgConnection,
        after: Position,
        limit: i64,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        Ok(self
            .read_batch_on(connection, after, limit, None)
            .await?
            .events)
    }

    /// The next `limit` committed events after `after`, in commit order, of
    /// which only those of `aggregate_types` (all when `None`) are returned
    /// whole; of the others the batch keeps only the position, so that the
    /// caller's checkpoint moves past them without their payloads ever
    /// leaving the server.
    pub async fn read_batch_on(
        &self,
        connection: &mut PgConnection,
        after: Position,
        limit: i64,
        aggregate_types: Option<&[&str]>,
    ) -> Result<Batch, LogError> {
        let rows = match aggregate_types {
            None => {
                let query = format!(
                    "SELECT true AS wanted, {SELECT_COLUMNS} FROM events \
                     WHERE (transaction_id, global_position) > ($1::text::xid8, $2) \
                       AND transaction_id < pg_snapshot_xmin(pg_current_snapshot()) \
                     ORDER BY events.transaction_id, events.global_position \
                     LIMIT $3"
                );
                sqlx::query(&query)
                    .bind(after.transaction_text())
                    .bind(after.global_position)
                    .bind(limit)
                    .fetch_all(&mut *connection)
                    .await?
            }
            Some(types) => {
                // The other rows are scanned (their position is the
                // order) but nothing of them but the position is sent.
                let query = "SELECT aggregate_type = ANY($4) AS wanted, \
                       transaction_id::text AS transaction_text, global_position, event_id, \
                       aggregate_type, aggregate_id, sequence, event_type, event_version, \
                       CASE WHEN aggregate_type = ANY($4) THEN payload END AS payload, \
                       CASE WHEN aggregate_type = ANY($4) THEN metadata END AS metadata, \
                       recorded_at, prev_hash, hash \
                     FROM events \
                     WHERE (transaction_id, global_position) > ($1::text::xid8, $2) \
                       AND transaction_id < pg_snapshot_xmin(pg_current_snapshot()) \
                     ORDER BY events.transaction_id, events.global_position \
                     LIMIT $3";
                sqlx::query(query)
                    .bind(after.transaction_text())
                    .bind(after.global_position)
                    .bind(limit)
                    .bind(types)
                    .fetch_all(&mut *connection)
                    .await?
            }
        };
        let mut batch = Batch {
            events: Vec::with_capacity(rows.len()),
            scanned: rows.len(),
            last: None,
        };
        for row in &rows {
            let wanted: bool = row.try_get("wanted")?;
            if wanted {
                let event = self.event_from_row(row)?;
                batch.last = Some(event.position);
                batch.events.push(event);
            } else {
                let transaction: String = row.try_get("transaction_text")?;
                let global_position: i64 = row.try_get("global_position")?;
                batch.last = Some(Position::from_columns(&transaction, global_position)?);
            }
        }
        Ok(batch)
    }

    /// The committed event with this id, if the log holds one.
    pub async fn event_by_id(
        &self,
        pool: &PgPool,
        event_id: uuid::Uuid,
    ) -> Result<Option<RecordedEvent>, LogError> {
        let query = format!("SELECT {SELECT_COLUMNS} FROM events WHERE event_id = $1");
        let row = sqlx::query(&query)
            .bind(event_id)
            .fetch_optional(pool)
            .await?;
        row.map(|row| self.event_from_row(&row)).transpose()
    }

    /// The position of the newest committed, visible event (zero when the
    /// log is empty).
    pub async fn head(&self, pool: &PgPool) -> Result<Position, LogError> {
        let row: Option<(String, i64)> = sqlx::query_as(
            "SELECT transaction_id::text, global_position FROM events \
             WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot()) \
             ORDER BY events.transaction_id DESC, events.global_position DESC LIMIT 1",
        )
        .fetch_optional(pool)
        .await?;
        match row {
            Some((text, global_position)) => Ok(Position::from_columns(&text, global_position)?),
            None => Ok(Position::default()),
        }
    }

    fn event_from_row(&self, row: &sqlx::postgres::PgRow) -> Result<RecordedEvent, LogError> {
        let transaction: String = row.try_get("transaction_text")?;
        let global_position: i64 = row.try_get("global_position")?;
        let event = RecordedEvent {
            position: Position::from_columns(&transaction, global_position)?,
            event_id: row.try_get("event_id")?,
            aggregate_type: row.try_get("aggregate_type")?,
            aggregate_id: row.try_get("aggregate_id")?,
            sequence: row.try_get("sequence")?,
            event_type: row.try_get("event_type")?,
            event_version: row.try_get("event_version")?,
            payload: row.try_get("payload")?,
            metadata: row.try_get("metadata")?,
            recorded_at: row.try_get("recorded_at")?,
            prev_hash: row.try_get("prev_hash")?,
            hash: row.try_get("hash")?,
        };
        Ok(self.upcast(event))
    }

    fn upcast(&self, mut event: RecordedEvent) -> RecordedEvent {
        for upcaster in self.upcasters.iter() {
            if !upcaster.can_upcast(&event.event_type, &event.event_version) {
                continue;
            }
            let serialized = SerializedEvent {
                aggregate_id: event.aggregate_id.clone(),
                sequence: usize::try_from(event.sequence).unwrap_or_default(),
                aggregate_type: event.aggregate_type.clone(),
                event_type: event.event_type.clone(),
                event_version: event.event_version.clone(),
                payload: event.payload.clone(),
                metadata: event.metadata.clone(),
            };
            let upcast = upcaster.upcast(serialized);
            event.event_type = upcast.event_type;
            event.event_version = upcast.event_version;
            event.payload = upcast.payload;
        }
        event
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use cqrs_es::persist::SemanticVersionEventUpcaster;
    use serde_json::{json, Value};
    use uuid::Uuid;

    use super::*;

    #[test]
    fn old_versions_are_upcast_on_read() {
        let upcaster = SemanticVersionEventUpcaster::new(
            "user.created",
            "2.0",
            Box::new(|mut payload: Value| {
                payload["display_name"] = payload["name"].take();
                payload
            }),
        );
        let reader = LogReader::with_upcasters(vec![Box::new(upcaster)]);
        let old = RecordedEvent {
            position: Position::default(),
            event_id: Uuid::nil(),
            aggregate_type: "User".to_string(),
            aggregate_id: "u".to_string(),
            sequence: 1,
            event_type: "user.created".to_string(),
            event_version: "1.0".to_string(),
            payload: json!({ "name": "Ada" }),
            metadata: json!({}),
            recorded_at: Utc::now(),
            prev_hash: "0".repeat(64),
            hash: "f".repeat(64),
        };
        let read = reader.upcast(old.clone());
        assert_eq!(read.event_version, "2.0.0");
        assert_eq!(read.payload["display_name"], "Ada");
        let current = reader.upcast(read.clone());
        assert_eq!(current, read, "a current version is left alone");
    }
}
