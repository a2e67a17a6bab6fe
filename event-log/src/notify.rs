//! Wakes the log's subscribers (`LISTEN muckard_events`) after the command
//! side commits, from one task per process, coalescing the wake-ups of
//! commits that come while one is being sent.
//!
//! Not from a trigger on `events`: a transaction that notifies takes a
//! database-wide lock when it commits and holds it through its WAL flush,
//! so every append that notified committed strictly one after another, with
//! no group commit. On this project's machine that capped single-event
//! appends at about a third of their rate without it (BENCHMARKS.md,
//! "api"). Here the notification is its own small transaction, sent after
//! the events are committed (so a woken reader finds them), with
//! `synchronous_commit` off for that transaction alone: nothing is lost if
//! a notification is, since the subscribers also poll.

use sqlx::PgPool;
use tokio::sync::mpsc;

/// The channel the subscribers listen on.
pub const EVENTS_CHANNEL: &str = "muckard_events";

/// Sends `NOTIFY muckard_events` after commits (see the module
/// documentation). Clones share the task, which ends with the last clone.
#[derive(Clone)]
pub struct CommitNotifier {
    wake: mpsc::Sender<()>,
}

impl CommitNotifier {
    /// Starts the sending task on `pool`; call it inside a Tokio runtime.
    pub fn spawn(pool: PgPool) -> Self {
        let (wake, mut woken) = mpsc::channel(1);
        tokio::spawn(async move {
            // A wake-up queued while a notification is sent makes one
            // more after it: every commit is followed by a notification
            // that started after it.
            while woken.recv().await.is_some() {
                if let Err(error) = notify(&pool).await {
                    tracing::debug!(%error, "cannot notify subscribers; they will poll");
                }
            }
        });
        Self { wake }
    }

    /// Events were committed: wake the subscribers, once for every commit
    /// made since the last wake-up was sent.
    pub fn committed(&self) {
        // Full means a wake-up is queued already, which covers this commit.
        let _ = self.wake.try_send(());
    }
}

/// One notification on [`EVENTS_CHANNEL`], in its own transaction, which
/// does not wait for its WAL flush.
pub async fn notify(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT set_config('synchronous_commit', 'off', true), pg_notify($1, '')")
        .bind(EVENTS_CHANNEL)
        .execute(pool)
        .await
        .map(|_| ())
}
