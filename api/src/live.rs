//! What `GET /api/v1/stream` reads from: the `live_updates` read model,
//! sent once every read model a row concerns has committed its position.
//!
//! [`LiveHub`] is one task per process (started by the first stream). It
//! looks at the checkpoints of [`SOURCES`] every [`POLL`], and when their
//! smallest (the *cut*) moved, reads every user's rows between the old
//! cut and the new one, once, and broadcasts them as a [`Batch`] to the
//! open streams, each of which keeps its own user's (or, for an admin or
//! auditor, everyone's or one user's). Rows at or below the cut are final:
//! `live_updates` writes a batch's rows in the transaction that moves its
//! checkpoint, and commits them in log order.
//!
//! A stream is complete up to a position (`at`): from a `Last-Event-ID`
//! it first reads what it missed from the table, up to the cut; then it
//! takes each broadcast batch that starts where it stands. A batch that
//! starts further on (the stream fell behind the broadcast, or joined
//! between two batches) makes it read the gap from the table first. So a
//! client that reconnects with the id of the last event it saw gets every
//! later event once, in order, and none twice.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use event_log::Position;
use projections::read_models::live_updates::SOURCES;
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::{broadcast, watch};
use uuid::Uuid;

/// How often the hub looks at the checkpoints.
pub const POLL: Duration = Duration::from_millis(50);
/// Rows read from the table at once (a batch holds at most this many).
pub const PAGE: i64 = 500;
/// Batches a stream may fall behind the broadcast before it reads the gap
/// from the table instead.
const BROADCAST_CAPACITY: usize = 256;

/// `STREAM_MAX_CONNECTIONS_PER_USER`, `STREAM_HEARTBEAT_SECS`.
#[derive(Debug, Clone)]
pub struct LiveSettings {
    pub max_connections_per_user: usize,
    pub heartbeat: Duration,
}

impl Default for LiveSettings {
    fn default() -> Self {
        Self {
            max_connections_per_user: 5,
            heartbeat: Duration::from_secs(15),
        }
    }
}

/// One row of `live_updates`: one event of one user's.
#[derive(Debug, Clone, Serialize)]
pub struct Update {
    #[serde(skip)]
    pub position: Position,
    pub user_id: Uuid,
    pub kind: String,
    pub data: Value,
    pub recorded_at: DateTime<Utc>,
}

/// Every user's rows with a position in `(from, to]`, in order.
#[derive(Debug)]
pub struct Batch {
    pub from: Position,
    pub to: Position,
    pub updates: Vec<Update>,
}

pub struct LiveHub {
    pool: PgPool,
    pub settings: LiveSettings,
    sender: broadcast::Sender<Arc<Batch>>,
    cut: watch::Sender<Option<Position>>,
    started: OnceLock<()>,
    connections: Mutex<HashMap<Uuid, usize>>,
}

/// Holds one of a user's stream slots; dropping it frees the slot.
pub struct Admission {
    hub: Arc<LiveHub>,
    user_id: Uuid,
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut connections = self
            .hub
            .connections
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(count) = connections.get_mut(&self.user_id) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                connections.remove(&self.user_id);
            }
        }
    }
}

/// The smallest checkpoint of [`SOURCES`] (a missing one is the start of
/// the log).
pub async fn read_cut(pool: &PgPool) -> Result<Position, sqlx::Error> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT subscriber, transaction_id::text, global_position FROM subscriber_checkpoints \
         WHERE subscriber = ANY($1)",
    )
    .bind(&SOURCES[..])
    .fetch_all(pool)
    .await?;
    if rows.len() < SOURCES.len() {
        return Ok(Position::default());
    }
    let mut cut: Option<Position> = None;
    for (_, transaction, global) in rows {
        let position = Position::from_columns(&transaction, global)?;
        cut = Some(cut.map_or(position, |c| c.min(position)));
    }
    Ok(cut.unwrap_or_default())
}

/// The rows after `after` up to `upto` (at most `limit`, in order), of
/// `user` or of everyone.
pub async fn updates_between(
    pool: &PgPool,
    user: Option<Uuid>,
    after: Position,
    upto: Position,
    limit: i64,
) -> Result<Vec<Update>, sqlx::Error> {
    let rows: Vec<(Uuid, String, i64, String, Value, DateTime<Utc>)> = sqlx::query_as(
        "SELECT user_id, transaction_id::text, global_position, kind, data, recorded_at \
           FROM live_updates \
          WHERE ($1::uuid IS NULL OR user_id = $1) \
            AND (transaction_id, global_position) > ($2::text::xid8, $3) \
            AND (transaction_id, global_position) <= ($4::text::xid8, $5) \
          ORDER BY transaction_id, global_position LIMIT $6",
    )
    .bind(user)
    .bind(after.transaction_text())
    .bind(after.global_position)
    .bind(upto.transaction_text())
    .bind(upto.global_position)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|(user_id, transaction, global, kind, data, recorded_at)| {
            Ok(Update {
                position: Position::from_columns(&transaction, global)?,
                user_id,
                kind,
                data,
                recorded_at,
            })
        })
        .collect()
}

impl LiveHub {
    pub fn new(pool: PgPool, settings: LiveSettings) -> Self {
        Self {
            pool,
            settings,
            sender: broadcast::channel(BROADCAST_CAPACITY).0,
            cut: watch::channel(None).0,
            started: OnceLock::new(),
            connections: Mutex::new(HashMap::new()),
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Takes one of `user_id`'s stream slots, or `None` when all are held.
    pub fn admit(self: &Arc<Self>, user_id: Uuid) -> Option<Admission> {
        let mut connections = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        let count = connections.entry(user_id).or_insert(0);
        if *count >= self.settings.max_connections_per_user {
            return None;
        }
        *count += 1;
        Some(Admission {
            hub: self.clone(),
            user_id,
        })
    }

    /// Open streams on this instance.
    pub fn open_streams(&self) -> usize {
        self.sender.receiver_count()
    }

    /// The broadcast of new batches and the cut the hub stands at (the
    /// receiver sees every batch after it). Starts the hub on first use.
    pub async fn subscribe(self: &Arc<Self>) -> (broadcast::Receiver<Arc<Batch>>, Position) {
        self.started.get_or_init(|| {
            tokio::spawn(self.clone().run());
        });
        let receiver = self.sender.subscribe();
        let mut cut = self.cut.subscribe();
        let at = loop {
            if let Some(at) = *cut.borrow_and_update() {
                break at;
            }
            if cut.changed().await.is_err() {
                break Position::default();
            }
        };
        (receiver, at)
    }

    async fn run(self: Arc<Self>) {
        let mut last = loop {
            match read_cut(&self.pool).await {
                Ok(cut) => break cut,
                Err(error) => {
                    tracing::warn!(%error, "stream hub cannot read the checkpoints; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        self.cut.send_replace(Some(last));
        let mut ticks = tokio::time::interval(POLL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let now = match read_cut(&self.pool).await {
                Ok(now) if now > last => now,
                Ok(_) => continue,
                Err(error) => {
                    tracing::debug!(%error, "stream hub cannot read the checkpoints");
                    continue;
                }
            };
            if self.sender.receiver_count() > 0 {
                if let Err(error) = self.broadcast(last, now).await {
                    // Nothing moved: the next tick reads the same range.
                    tracing::debug!(%error, "stream hub cannot read live_updates");
                    continue;
                }
            }
            last = now;
            self.cut.send_replace(Some(now));
        }
    }

    async fn broadcast(&self, mut from: Position, now: Position) -> Result<(), sqlx::Error> {
        while from < now {
            let updates = updates_between(&self.pool, None, from, now, PAGE).await?;
            let to = match updates.last() {
                Some(last) if updates.len() as i64 == PAGE => last.position,
                _ => now,
            };
            // No receiver is fine: a stream that joins later reads the table.
            let _ = self.sender.send(Arc::new(Batch { from, to, updates }));
            from = to;
        }
        Ok(())
    }
}
