//! A what-if copy of the log reader's query, for comparison only.
//!
//! `LogReader::read_after` selects `transaction_id::text AS transaction_id`
//! and then says `ORDER BY transaction_id, global_position`. A bare name in
//! ORDER BY means the output column first, so PostgreSQL sorts by the
//! *text* of the xid: the commit-order index cannot serve the ORDER BY and
//! every batch sorts all the rows after the checkpoint (catch-up is
//! quadratic in the log's length). This copy differs only in naming the
//! text column `transaction_text`, so the ORDER BY is on the xid8 column.
//!
//! [`catch_up`] is likewise a copy of `SubscriberRunner::step`/`catch_up`
//! reading with this query, driving the real projectors' `handle`.

use anyhow::{anyhow, ensure, Context, Result};
use command_side::Position;
use projections::{RecordedEvent, Subscriber};
use sqlx::{PgExecutor, PgPool, Row};

const QUERY: &str = "SELECT transaction_id::text AS transaction_text, global_position, event_id, \
     aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, \
     recorded_at FROM events \
     WHERE (transaction_id, global_position) > ($1::text::xid8, $2) \
       AND transaction_id < pg_snapshot_xmin(pg_current_snapshot()) \
     ORDER BY transaction_id, global_position \
     LIMIT $3";

/// Up to `limit` committed events after `after`, in commit order.
pub async fn read_after(
    executor: impl PgExecutor<'_>,
    after: Position,
    limit: i64,
) -> Result<Vec<RecordedEvent>> {
    let rows = sqlx::query(QUERY)
        .bind(after.transaction_id.to_string())
        .bind(after.global_position)
        .bind(limit)
        .fetch_all(executor)
        .await
        .context("reading the log (what-if query)")?;
    rows.iter().map(event_from_row).collect()
}

/// `SubscriberRunner::step` with the what-if read: the next batch after the
/// checkpoint, handled in the transaction that moves the checkpoint.
async fn step(pool: &PgPool, subscriber: &dyn Subscriber, batch_size: i64) -> Result<usize> {
    let mut transaction = pool.begin().await?;
    let from = projections::subscriber::checkpoint(&mut transaction, subscriber.name()).await?;
    let events = read_after(&mut *transaction, from, batch_size).await?;
    let Some(last) = events.last() else {
        transaction.rollback().await?;
        return Ok(0);
    };
    let to = last.position;
    subscriber
        .handle(&mut transaction, &events)
        .await
        .map_err(|error| anyhow!(error))?;
    let moved = sqlx::query(
        "UPDATE subscriber_checkpoints \
         SET transaction_id = $2::text::xid8, global_position = $3, \
             events_handled = events_handled + $4, updated_at = now() \
         WHERE subscriber = $1 AND transaction_id = $5::text::xid8 AND global_position = $6",
    )
    .bind(subscriber.name())
    .bind(to.transaction_id.to_string())
    .bind(to.global_position)
    .bind(events.len() as i64)
    .bind(from.transaction_id.to_string())
    .bind(from.global_position)
    .execute(&mut *transaction)
    .await?
    .rows_affected();
    ensure!(moved == 1, "the checkpoint of {} moved", subscriber.name());
    transaction.commit().await?;
    Ok(events.len())
}

/// `SubscriberRunner::catch_up` with the what-if read.
pub async fn catch_up(pool: &PgPool, subscriber: &dyn Subscriber, batch_size: i64) -> Result<u64> {
    let mut handled = 0u64;
    loop {
        match step(pool, subscriber, batch_size).await? {
            0 => return Ok(handled),
            n => handled += n as u64,
        }
    }
}

fn event_from_row(row: &sqlx::postgres::PgRow) -> Result<RecordedEvent> {
    let transaction: String = row.try_get("transaction_text")?;
    let global_position: i64 = row.try_get("global_position")?;
    Ok(RecordedEvent {
        position: Position {
            transaction_id: transaction
                .parse()
                .with_context(|| format!("malformed xid {transaction:?}"))?,
            global_position,
        },
        event_id: row.try_get("event_id")?,
        aggregate_type: row.try_get("aggregate_type")?,
        aggregate_id: row.try_get("aggregate_id")?,
        sequence: row.try_get("sequence")?,
        event_type: row.try_get("event_type")?,
        event_version: row.try_get("event_version")?,
        payload: row.try_get("payload")?,
        metadata: row.try_get("metadata")?,
        recorded_at: row.try_get("recorded_at")?,
    })
}
