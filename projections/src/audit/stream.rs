//! One aggregate's stream as an auditor sees it: its events with their
//! hashes, and the aggregate's state as of a time or a sequence, folded
//! with the domain's own `Aggregate::apply`.

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use domain::bot::Bot;
use domain::exchange_key::ExchangeKey;
use domain::notification::Notification;
use domain::portfolio::Portfolio;
use domain::support_ticket::SupportTicket;
use domain::user::User;
use domain::AggregateType;
use event_log::Position;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgPool;

use crate::audit::chain::{HashedFields, HASHED_COLUMNS};
use crate::audit::AuditError;

/// Where to stop reading a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Until {
    /// Every event.
    #[default]
    End,
    /// Events recorded at or before this time.
    AsOf { as_of: DateTime<Utc> },
    /// Events up to and including this sequence.
    Sequence { sequence: i64 },
}

/// One stored event of a stream, with everything its hash covers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamEvent {
    #[serde(flatten)]
    pub fields: HashedFields,
    pub prev_hash: String,
    pub hash: String,
}

impl StreamEvent {
    pub fn payload_json(&self) -> Result<Value, AuditError> {
        serde_json::from_str(&self.fields.payload).map_err(|e| self.undecodable(e))
    }

    fn undecodable(&self, error: impl std::fmt::Display) -> AuditError {
        AuditError::Undecodable {
            aggregate_type: self.fields.aggregate_type.clone(),
            aggregate_id: self.fields.aggregate_id.clone(),
            sequence: self.fields.sequence,
            reason: error.to_string(),
        }
    }

    /// The event as an auditor reads it: payload and metadata as JSON.
    pub fn to_json(&self) -> Value {
        let parse = |text: &str| {
            serde_json::from_str::<Value>(text).unwrap_or_else(|_| Value::String(text.to_string()))
        };
        serde_json::json!({
            "sequence": self.fields.sequence,
            "event_id": self.fields.event_id,
            "event_type": self.fields.event_type,
            "event_version": self.fields.event_version,
            "global_position": self.fields.global_position,
            "recorded_at": self.fields.recorded_at,
            "payload": parse(&self.fields.payload),
            "metadata": parse(&self.fields.metadata),
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        })
    }
}

/// An aggregate's state after some prefix of its stream.
#[derive(Debug, Clone, Serialize)]
pub struct StreamState {
    pub aggregate_type: AggregateType,
    pub aggregate_id: String,
    pub until: Until,
    /// The sequence of the last event folded in; 0 before the first.
    pub sequence: i64,
    /// The aggregate as the domain serialises it; `null` before the first
    /// event.
    pub state: Value,
    pub events: Vec<StreamEvent>,
}

impl StreamState {
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "aggregate_type": self.aggregate_type,
            "aggregate_id": self.aggregate_id,
            "until": self.until,
            "sequence": self.sequence,
            "state": self.state,
            "events": self.events.iter().map(StreamEvent::to_json).collect::<Vec<_>>(),
        })
    }
}

/// Whether the stream has any event at all.
pub async fn stream_exists(
    pool: &PgPool,
    kind: AggregateType,
    aggregate_id: &str,
) -> Result<bool, AuditError> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM events WHERE aggregate_type = $1 AND aggregate_id = $2)",
    )
    .bind(kind.as_str())
    .bind(aggregate_id)
    .fetch_one(pool)
    .await?)
}

/// The stream's events up to `until`, in sequence order.
pub async fn stream_events(
    pool: &PgPool,
    kind: AggregateType,
    aggregate_id: &str,
    until: Until,
) -> Result<Vec<StreamEvent>, AuditError> {
    stream_events_through(pool, kind, aggregate_id, until, None).await
}

/// The same, and only events at or before the commit position `through`:
/// what a report made when `through` was the head of the log saw, however
/// late the transactions in flight then committed.
pub async fn stream_events_through(
    pool: &PgPool,
    kind: AggregateType,
    aggregate_id: &str,
    until: Until,
    through: Option<Position>,
) -> Result<Vec<StreamEvent>, AuditError> {
    // Bounded by a commit position, the answer is final already (nothing
    // can appear at or before a position the log reader has passed).
    if let (Until::AsOf { as_of }, None) = (until, through) {
        settle(pool, as_of).await?;
    }
    let (as_of, sequence) = match until {
        Until::End => (None, None),
        Until::AsOf { as_of } => (Some(as_of), None),
        Until::Sequence { sequence } => (None, Some(sequence)),
    };
    let query = format!(
        "SELECT {HASHED_COLUMNS} FROM events \
         WHERE aggregate_type = $1 AND aggregate_id = $2 \
           AND ($3::timestamptz IS NULL OR recorded_at <= $3) \
           AND ($4::bigint IS NULL OR sequence <= $4) \
           AND ($5::text IS NULL OR (transaction_id, global_position) <= ($5::text::xid8, $6)) \
         ORDER BY sequence"
    );
    let rows = sqlx::query(&query)
        .bind(kind.as_str())
        .bind(aggregate_id)
        .bind(as_of)
        .bind(sequence)
        .bind(through.map(|p| p.transaction_text()))
        .bind(through.map_or(0, |p| p.global_position))
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|row| {
            use sqlx::Row;
            Ok(StreamEvent {
                fields: HashedFields::from_row(row)?,
                prev_hash: row.try_get("prev_hash")?,
                hash: row.try_get("hash")?,
            })
        })
        .collect()
}

/// How long [`settle`] waits for the appends in flight.
pub const SETTLE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Makes an answer as of `as_of` final: once it returns, every event with
/// `recorded_at <= as_of` that will ever be in the log is visible, so the
/// same `as_of` reads the same events forever.
///
/// `recorded_at` is the clock at the row's INSERT, and a transaction that
/// inserted into `events` holds a `RowExclusiveLock` on it until it ends.
/// Any row recorded by `as_of` (which must not be after the clock now) was
/// inserted by a transaction that either ended already or holds that lock
/// now; this waits, up to [`SETTLE_WAIT`], until each transaction holding
/// it now has ended (committed or rolled back). A transaction that takes
/// the lock later records later than now. Only this database's `events`
/// counts (`pg_locks` is readable by every role, the auditor's included).
pub async fn settle(pool: &PgPool, as_of: DateTime<Utc>) -> Result<(), AuditError> {
    let now: DateTime<Utc> = sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(pool)
        .await?;
    if as_of > now {
        return Err(AuditError::FutureTime { as_of, now });
    }
    let started = std::time::Instant::now();
    let mut writers = appenders(pool, None).await?;
    while !writers.is_empty() {
        if started.elapsed() >= SETTLE_WAIT {
            return Err(AuditError::NotSettled {
                waited_ms: started.elapsed().as_millis() as u64,
            });
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        writers = appenders(pool, Some(&writers)).await?;
    }
    Ok(())
}

/// The transactions holding a `RowExclusiveLock` on this database's
/// `events` now (their virtual transaction ids), or of `among` only those
/// still holding it.
async fn appenders(pool: &PgPool, among: Option<&[String]>) -> Result<Vec<String>, AuditError> {
    Ok(sqlx::query_scalar(
        "SELECT virtualtransaction FROM pg_locks \
         WHERE locktype = 'relation' AND relation = 'events'::regclass \
           AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
           AND mode = 'RowExclusiveLock' AND granted \
           AND ($1::text[] IS NULL OR virtualtransaction = ANY($1))",
    )
    .bind(among)
    .fetch_all(pool)
    .await?)
}

/// The aggregate's state after `events` (a prefix of its stream), folded
/// with the domain's `apply`; `null` when there are none.
pub fn fold_state(kind: AggregateType, events: &[StreamEvent]) -> Result<Value, AuditError> {
    if events.is_empty() {
        return Ok(Value::Null);
    }
    match kind {
        AggregateType::User => fold::<User>(events),
        AggregateType::ExchangeKey => fold::<ExchangeKey>(events),
        AggregateType::Bot => fold::<Bot>(events),
        AggregateType::Portfolio => fold::<Portfolio>(events),
        AggregateType::SupportTicket => fold::<SupportTicket>(events),
        AggregateType::Notification => fold::<Notification>(events),
    }
}

fn fold<A: Aggregate>(events: &[StreamEvent]) -> Result<Value, AuditError> {
    let mut aggregate = A::default();
    for event in events {
        let stored: Value =
            serde_json::from_str(&event.fields.payload).map_err(|e| event.undecodable(e))?;
        // Old versions are read as the command side reads them.
        let current = domain::user::upcast_payload(
            &event.fields.event_type,
            &event.fields.event_version,
            stored,
        );
        let decoded: A::Event =
            serde_json::from_value(current).map_err(|e| event.undecodable(e))?;
        aggregate.apply(decoded);
    }
    serde_json::to_value(&aggregate).map_err(|e| AuditError::Unexpected(e.to_string()))
}

/// The aggregate's state as of `until` with the events that built it, or
/// `None` when the stream has no events at all.
pub async fn state_as_of(
    pool: &PgPool,
    kind: AggregateType,
    aggregate_id: &str,
    until: Until,
) -> Result<Option<StreamState>, AuditError> {
    let events = stream_events(pool, kind, aggregate_id, until).await?;
    if events.is_empty() && !stream_exists(pool, kind, aggregate_id).await? {
        return Ok(None);
    }
    let state = fold_state(kind, &events)?;
    Ok(Some(StreamState {
        aggregate_type: kind,
        aggregate_id: aggregate_id.to_string(),
        until,
        sequence: events.last().map_or(0, |e| e.fields.sequence),
        state,
        events,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregate_types_parse_in_stored_and_snake_case() {
        for (text, kind) in [
            ("User", AggregateType::User),
            ("user", AggregateType::User),
            ("ExchangeKey", AggregateType::ExchangeKey),
            ("exchange_key", AggregateType::ExchangeKey),
            ("exchange-key", AggregateType::ExchangeKey),
            ("BOT", AggregateType::Bot),
            ("portfolio", AggregateType::Portfolio),
        ] {
            assert_eq!(text.parse::<AggregateType>().unwrap(), kind, "{text}");
        }
        assert!("Wallet".parse::<AggregateType>().is_err());
        assert!("".parse::<AggregateType>().is_err());
    }
}
