//! How far subscribers are behind, and waiting for one to catch up.

use std::time::Duration;

use crate::position::Position;
use sqlx::PgPool;

/// One subscriber's distance from the head of the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Lag {
    pub subscriber: String,
    pub position: Position,
    pub events_behind: i64,
    /// Age of the oldest event not yet handled; zero when caught up.
    pub seconds_behind: f64,
}

/// The lag of every subscriber that has a checkpoint.
pub async fn all(pool: &PgPool) -> Result<Vec<Lag>, sqlx::Error> {
    let rows: Vec<(String, String, i64, i64, f64)> = sqlx::query_as(
        "SELECT c.subscriber, c.transaction_id::text, c.global_position, \
                count(e.global_position), \
                coalesce(extract(epoch FROM now() - min(e.recorded_at))::float8, 0) \
           FROM subscriber_checkpoints c \
           LEFT JOIN events e \
             ON (e.transaction_id, e.global_position) > (c.transaction_id, c.global_position) \
          GROUP BY c.subscriber, c.transaction_id, c.global_position \
          ORDER BY c.subscriber",
    )
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(
            |(subscriber, transaction, global_position, behind, seconds)| {
                Ok(Lag {
                    subscriber,
                    position: Position::from_columns(&transaction, global_position)?,
                    events_behind: behind,
                    seconds_behind: seconds.max(0.0),
                })
            },
        )
        .collect()
}

/// Whether `subscriber` has handled everything up to `position`.
pub async fn has_reached(
    pool: &PgPool,
    subscriber: &str,
    position: Position,
) -> Result<bool, sqlx::Error> {
    let reached: Option<bool> = sqlx::query_scalar(
        "SELECT (transaction_id, global_position) >= ($2::text::xid8, $3) \
           FROM subscriber_checkpoints WHERE subscriber = $1",
    )
    .bind(subscriber)
    .bind(position.transaction_text())
    .bind(position.global_position)
    .fetch_optional(pool)
    .await?;
    Ok(reached.unwrap_or(false) || position == Position::default())
}

/// Whether an event stands at `position` or after it in commit order: a
/// position a command answered is in the log once the command has
/// answered (it answers after its commit); one beyond the head is not, and
/// no subscriber will ever reach it. One probe of the commit-order index.
pub async fn is_in_log(pool: &PgPool, position: Position) -> Result<bool, sqlx::Error> {
    if position == Position::default() {
        return Ok(true);
    }
    crate::reader::any_after(pool, position, true).await
}

/// Waits until `subscriber` has handled `position`, checking every few
/// milliseconds; false when `bound` passed first.
pub async fn wait_until_reached(
    pool: &PgPool,
    subscriber: &str,
    position: Position,
    bound: Duration,
) -> Result<bool, sqlx::Error> {
    let deadline = tokio::time::Instant::now() + bound;
    let mut pause = Duration::from_millis(2);
    loop {
        if has_reached(pool, subscriber, position).await? {
            return Ok(true);
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(pause.min(deadline - tokio::time::Instant::now())).await;
        pause = (pause * 2).min(Duration::from_millis(25));
    }
}
