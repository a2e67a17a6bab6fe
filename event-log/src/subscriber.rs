//! Named subscribers of the log, each with a checkpoint row.
//!
//! A batch is handled inside the transaction that also advances the
//! checkpoint: a projector writes its view rows through that transaction,
//! so a crash never applies an event twice or skips one. A subscriber with
//! effects outside PostgreSQL (a broker, a command) does its work during
//! the batch and is at-least-once; it must be idempotent.
//!
//! One instance of a subscriber is active at a time across every process:
//! the active one holds a session advisory lock keyed by its name, the
//! others wait for it. The checkpoint update also checks that the
//! checkpoint did not move meanwhile, so even a lost lock cannot apply a
//! batch twice.
//!
//! An active instance keeps its checkpoint in memory and reads outside any
//! transaction, through its runner's [`ReadAhead`] (one read of the head
//! of the log for all of the runner's subscribers); only a batch with
//! events to handle opens a transaction, and a transaction that moves a
//! checkpoint does not wait for its WAL flush (see `move_checkpoint`).

use std::collections::VecDeque;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;
use sha2::{Digest, Sha256};
use sqlx::postgres::PgListener;
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::event::RecordedEvent;
use crate::position::Position;
use crate::read_ahead::ReadAhead;
use crate::reader::{LogError, LogReader};

/// While committed events wait behind an older transaction, look again
/// after 10 ms, doubling up to this bound (and never past the poll
/// interval): the event is handled within about this long of the older
/// transaction's commit, which sends no notification.
const HELD_BACK_MAX_PAUSE: Duration = Duration::from_millis(80);

/// Bumped by every subscriber batch this process commits. A subscriber
/// whose events are held back (its snapshot's xmin is an older transaction,
/// most often another subscriber's batch) waits on this as well as on the
/// notifications, since such a commit notifies nobody.
static BATCH_COMMITS: LazyLock<watch::Sender<u64>> = LazyLock::new(|| watch::channel(0).0);

/// The channel the command side notifies after its commits.
pub use crate::notify::EVENTS_CHANNEL;

#[derive(Debug, thiserror::Error)]
pub enum SubscriberError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("event {event_id} ({event_type}) does not decode: {reason}")]
    Undecodable {
        event_id: uuid::Uuid,
        event_type: String,
        reason: String,
    },
    #[error("{0}")]
    Failed(String),
}

impl SubscriberError {
    pub fn undecodable(event: &RecordedEvent, error: impl std::fmt::Display) -> Self {
        SubscriberError::Undecodable {
            event_id: event.event_id,
            event_type: event.event_type.clone(),
            reason: error.to_string(),
        }
    }
}

impl RecordedEvent {
    /// The payload as a domain event, or an error naming this event.
    pub fn payload_as<E: serde::de::DeserializeOwned>(&self) -> Result<E, SubscriberError> {
        self.decode()
            .map_err(|e| SubscriberError::undecodable(self, e))
    }

    /// The payload as `E` when this is an `event_type` event of a stream
    /// of `aggregate_type` (`None` for any other, which is not decoded), or
    /// an error naming this event.
    pub fn payload_if<E: serde::de::DeserializeOwned>(
        &self,
        aggregate_type: &str,
        event_type: &str,
    ) -> Result<Option<E>, SubscriberError> {
        if self.is(aggregate_type, event_type) {
            self.payload_as().map(Some)
        } else {
            Ok(None)
        }
    }

    /// The aggregate id as a UUID, or an error naming this event.
    pub fn aggregate_uuid(&self) -> Result<uuid::Uuid, SubscriberError> {
        self.aggregate_id
            .parse()
            .map_err(|e| SubscriberError::undecodable(self, e))
    }
}

/// What completes a batch a [`PipelinedSubscriber`] started.
pub type InFlight = BoxFuture<'static, Result<(), SubscriberError>>;

/// A subscriber whose effects are outside PostgreSQL (a broker), which the
/// runner pipelines: it reads and starts the next batch while the ones
/// before it are still being acknowledged, at most [`PIPELINE_DEPTH`]
/// batches at once, and moves the checkpoint past a batch only once it
/// and every batch before it completed. When one fails, the runner waits
/// for every batch in flight to settle, then starts again from the
/// checkpoint: at least once, as `handle` is.
pub trait PipelinedSubscriber: Send + Sync {
    /// Starts `events`' effects (e.g. queues the messages) and returns what
    /// completes when they are done (e.g. acknowledged). An error here
    /// means nothing of the batch needs waiting for.
    fn start(&self, events: &[RecordedEvent]) -> Result<InFlight, SubscriberError>;
}

/// A subscriber that reads only some aggregate types scans this many times
/// its batch size per batch: the rows it does not want cost only their
/// position, and most batches hand it about a batch's worth (all of the
/// scanned rows at most).
pub const FILTERED_SCAN_FACTOR: i64 = 4;

fn scan_limit(batch_size: i64, subscriber: &dyn Subscriber) -> i64 {
    match subscriber.aggregate_types() {
        Some(_) => batch_size.saturating_mul(FILTERED_SCAN_FACTOR),
        None => batch_size,
    }
}

/// How many batches a pipelined subscriber has in flight at most.
pub const PIPELINE_DEPTH: usize = 4;

/// Something that consumes the log.
#[async_trait]
pub trait Subscriber: Send + Sync {
    /// The name of its checkpoint row; stable across releases.
    fn name(&self) -> &'static str;

    /// The aggregate types whose events it handles; `None` (the default)
    /// for all. The runner hands it only those, reads the others' payloads
    /// not at all, and still moves its checkpoint past them.
    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        None
    }

    /// This subscriber as a [`PipelinedSubscriber`], when it is one; the
    /// runner then never calls `handle` while it runs or catches up.
    fn as_pipelined(&self) -> Option<&dyn PipelinedSubscriber> {
        None
    }

    /// Handles a batch, in commit order. `transaction` commits together
    /// with the checkpoint that moves past the batch, without waiting for
    /// its WAL flush: write derived rows through it, never events (a
    /// command goes through the command side, which commits durably).
    async fn handle(
        &self,
        transaction: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), SubscriberError>;
}

#[derive(Debug, Clone)]
pub struct SubscriberSettings {
    pub batch_size: i64,
    /// How long an idle subscriber waits for a notification before it
    /// looks at the log anyway.
    pub poll_interval: Duration,
    /// How often a standby instance tries to become the active one.
    pub standby_retry: Duration,
    /// An idle subscriber woken sooner than this after its last read waits
    /// for the rest of it, so that under load the commits of that time are
    /// handled as one batch (one read, one checkpoint move) instead of one
    /// wake-up each; a wake-up after a quiet spell is handled at once.
    pub min_wake_interval: Duration,
}

impl Default for SubscriberSettings {
    fn default() -> Self {
        Self {
            batch_size: 500,
            poll_interval: Duration::from_millis(500),
            standby_retry: Duration::from_secs(2),
            min_wake_interval: Duration::from_millis(5),
        }
    }
}

/// Runs subscribers against one database.
#[derive(Clone)]
pub struct SubscriberRunner {
    pool: PgPool,
    reader: LogReader,
    /// Shared by the clones: the head of the log, read once for all of
    /// this runner's subscribers.
    read_ahead: Arc<ReadAhead>,
    settings: SubscriberSettings,
    wake: watch::Receiver<u64>,
}

/// The checkpoint of `subscriber`, creating its row on first use.
pub async fn checkpoint(
    connection: &mut PgConnection,
    subscriber: &str,
) -> Result<Position, sqlx::Error> {
    sqlx::query(
        "INSERT INTO subscriber_checkpoints (subscriber) VALUES ($1) ON CONFLICT DO NOTHING",
    )
    .bind(subscriber)
    .execute(&mut *connection)
    .await?;
    let (transaction, global_position): (String, i64) = sqlx::query_as(
        "SELECT transaction_id::text, global_position FROM subscriber_checkpoints WHERE subscriber = $1",
    )
    .bind(subscriber)
    .fetch_one(&mut *connection)
    .await?;
    Ok(Position::from_columns(&transaction, global_position)?)
}

/// Moves `subscriber`'s checkpoint from `from` to `to` past `scanned`
/// events; 0 rows when it was no longer at `from` (another instance moved
/// it).
///
/// A transaction that moved a checkpoint does not wait for its WAL flush
/// (`synchronous_commit` off for it alone, set once the row is updated).
/// Only a crash of the database server (not of this process) can lose such
/// a commit, and it loses a suffix of the WAL: the checkpoint goes
/// together with the view rows the same transaction wrote, and the batch is
/// handled again from the checkpoint before it, as after a crash before the
/// commit. What a subscriber does outside PostgreSQL is at least once
/// already. Events are never appended in a subscriber's transaction (the
/// command side commits them, synchronously, on connections of its own),
/// so nothing of the log depends on this commit. The win is the time the
/// transaction holds its id: every event committed after a batch began is
/// held back from every reader until the batch's transaction ends.
async fn move_checkpoint<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    subscriber: &str,
    from: Position,
    to: Position,
    scanned: usize,
) -> Result<u64, sqlx::Error> {
    let moved: Option<String> = sqlx::query_scalar(
        "UPDATE subscriber_checkpoints \
         SET transaction_id = $2::text::xid8, global_position = $3, \
             events_handled = events_handled + $4, updated_at = now() \
         WHERE subscriber = $1 AND transaction_id = $5::text::xid8 AND global_position = $6 \
         RETURNING set_config('synchronous_commit', 'off', true)",
    )
    .bind(subscriber)
    .bind(to.transaction_text())
    .bind(to.global_position)
    .bind(scanned as i64)
    .bind(from.transaction_text())
    .bind(from.global_position)
    .fetch_optional(executor)
    .await?;
    Ok(u64::from(moved.is_some()))
}

fn lock_key(subscriber: &str) -> i64 {
    let digest = Sha256::digest(format!("muckard.subscriber.{subscriber}").as_bytes());
    i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

impl SubscriberRunner {
    /// A runner whose subscribers are woken by `LISTEN muckard_events`
    /// (started here, reconnecting in the background until `shutdown`).
    pub fn new(
        pool: PgPool,
        reader: LogReader,
        settings: SubscriberSettings,
        shutdown: CancellationToken,
    ) -> Self {
        let (sender, wake) = watch::channel(0u64);
        tokio::spawn(listen_for_commits(pool.clone(), sender, shutdown));
        Self {
            pool,
            reader,
            read_ahead: Arc::new(ReadAhead::new()),
            settings,
            wake,
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// `subscriber`'s next batch after `after`, and whether nothing more
    /// was readable (see [`ReadAhead::read`]). It is read outside any
    /// transaction: a read holds no transaction id, so it holds back
    /// nobody's events.
    async fn read_next(
        &self,
        subscriber: &dyn Subscriber,
        after: Position,
    ) -> Result<crate::read_ahead::Read, LogError> {
        self.read_ahead
            .read(
                subscriber.name(),
                &self.pool,
                &self.reader,
                after,
                scan_limit(self.settings.batch_size, subscriber),
                subscriber.aggregate_types(),
            )
            .await
    }

    /// Handles the next batch after the checkpoint, if any, and returns how
    /// many events it handled.
    pub async fn step(&self, subscriber: &dyn Subscriber) -> Result<usize, SubscriberError> {
        Ok(self.step_from(subscriber, &mut None, &mut None).await?.0)
    }

    /// [`step`](Self::step) from `at`, this instance's copy of the
    /// checkpoint (read from the table when `None`), which it moves with
    /// the checkpoint. A stale copy costs nothing: the checkpoint moves
    /// only from where it is, so a batch read from elsewhere is discarded
    /// with an error, after which the caller starts again from the table.
    ///
    /// The batch is read outside any transaction (a read holds no
    /// transaction id, so it holds back nobody's events); only a batch
    /// with events to handle opens one, for the handler's writes and the
    /// checkpoint. A batch of rows the subscriber does not want moves the
    /// checkpoint in one statement.
    ///
    /// Also returns whether nothing more was readable after the batch as
    /// of a read that began after this call ([`ReadAhead::read`]), so the
    /// caller can wait for a notification (a commit after that read sends
    /// one) without reading again first.
    async fn step_from(
        &self,
        subscriber: &dyn Subscriber,
        at: &mut Option<Position>,
        held_back: &mut Option<bool>,
    ) -> Result<(usize, bool), SubscriberError> {
        let name = subscriber.name();
        loop {
            let (from, cached) = match *at {
                Some(position) => (position, true),
                None => {
                    let mut connection = self.pool.acquire().await?;
                    (checkpoint(&mut connection, name).await?, false)
                }
            };
            *at = Some(from);
            let read = self.read_next(subscriber, from).await?;
            *held_back = read.held_back;
            let (batch, drained) = (read.batch, read.drained);
            let Some(to) = batch.last else {
                return Ok((0, drained));
            };
            let _spans = crate::trace::event_spans(name, &batch.events);
            let scanned = batch.scanned;
            let moved = if batch.events.is_empty() {
                move_checkpoint(&self.pool, name, from, to, scanned).await?
            } else {
                let mut transaction = self.pool.begin().await?;
                subscriber.handle(&mut transaction, &batch.events).await?;
                let moved = move_checkpoint(&mut *transaction, name, from, to, scanned).await?;
                if moved == 1 {
                    transaction.commit().await?;
                } else {
                    transaction.rollback().await?;
                }
                moved
            };
            if moved == 1 {
                *at = Some(to);
                BATCH_COMMITS.send_modify(|count| *count = count.wrapping_add(1));
                return Ok((scanned, drained));
            }
            *at = None;
            if cached {
                // The checkpoint was moved by someone else since this
                // instance last moved it (a rebuild's promotion sets it):
                // once more from where it is now.
                tracing::debug!(
                    subscriber = name,
                    "checkpoint moved elsewhere; reading it again"
                );
                continue;
            }
            return Err(SubscriberError::Failed(format!(
                "checkpoint of {name} moved under this instance; batch discarded"
            )));
        }
    }

    /// Handles batches until nothing committed is left; returns the count.
    pub async fn catch_up(&self, subscriber: &dyn Subscriber) -> Result<u64, SubscriberError> {
        let mut pipeline = Pipeline::default();
        let mut wake = self.wake.clone();
        let mut handled = 0u64;
        loop {
            match self.next(subscriber, &mut pipeline, &mut wake).await {
                Ok(Progress::Idle) => return Ok(handled),
                Ok(Progress::Handled(n) | Progress::Drained(n)) => handled += n as u64,
                Ok(Progress::Started) => {}
                Err(error) => {
                    pipeline.settle().await;
                    return Err(error);
                }
            }
        }
    }

    /// One step of `subscriber`: [`step`](Self::step), or for a pipelined
    /// one a step of its pipeline.
    async fn next(
        &self,
        subscriber: &dyn Subscriber,
        pipeline: &mut Pipeline,
        wake: &mut watch::Receiver<u64>,
    ) -> Result<Progress, SubscriberError> {
        match subscriber.as_pipelined() {
            None => {
                let result = self
                    .step_from(subscriber, &mut pipeline.read_to, &mut pipeline.held_back)
                    .await;
                if result.is_err() {
                    // The commit may or may not have happened.
                    pipeline.read_to = None;
                }
                Ok(match result? {
                    (0, _) => Progress::Idle,
                    (n, true) => Progress::Drained(n),
                    (n, false) => Progress::Handled(n),
                })
            }
            Some(pipelined) => {
                self.pipelined_step(subscriber, pipelined, pipeline, wake)
                    .await
            }
        }
    }

    /// Reads and starts the next batch while fewer than [`PIPELINE_DEPTH`]
    /// are in flight. When the pipeline is full, it waits for the oldest
    /// batch; when nothing more is readable, for the oldest batch or a
    /// commit notification, whichever comes first (so that events
    /// committed meanwhile are read and sent without waiting for the
    /// acknowledgements before them). Once the oldest batch completed, the
    /// checkpoint moves past it and every completed batch behind it, in one
    /// statement.
    async fn pipelined_step(
        &self,
        subscriber: &dyn Subscriber,
        pipelined: &dyn PipelinedSubscriber,
        pipeline: &mut Pipeline,
        wake: &mut watch::Receiver<u64>,
    ) -> Result<Progress, SubscriberError> {
        use futures::FutureExt;
        let name = subscriber.name();
        let read_to = match pipeline.read_to {
            Some(position) => position,
            None => {
                let mut connection = self.pool.acquire().await?;
                let position = checkpoint(&mut connection, name).await?;
                pipeline.read_to = Some(position);
                position
            }
        };
        let mut readable = false;
        if pipeline.in_flight.len() < PIPELINE_DEPTH {
            // Notifications until now are answered by this read.
            wake.borrow_and_update();
            let batch = self.read_next(subscriber, read_to).await?.batch;
            if let Some(to) = batch.last {
                let spans = crate::trace::event_spans(name, &batch.events);
                let done = if batch.events.is_empty() {
                    Box::pin(async { Ok(()) }) as InFlight
                } else {
                    pipelined.start(&batch.events)?
                };
                pipeline.in_flight.push_back(Started {
                    from: read_to,
                    to,
                    scanned: batch.scanned,
                    done,
                    _spans: spans,
                });
                pipeline.read_to = Some(to);
                if pipeline.in_flight.len() < PIPELINE_DEPTH {
                    return Ok(Progress::Started);
                }
                readable = true;
            }
        }
        let Some(oldest) = pipeline.in_flight.front_mut() else {
            return Ok(Progress::Idle);
        };
        let done = if readable {
            (&mut oldest.done).await
        } else {
            tokio::select! {
                done = &mut oldest.done => done,
                _ = wake.changed() => return Ok(Progress::Started),
            }
        };
        // Completed: out of the pipeline before anything else, so that a
        // failure's `settle` never polls it again.
        let Some(first) = pipeline.in_flight.pop_front() else {
            return Ok(Progress::Idle);
        };
        done?;
        let (from, mut to, mut scanned) = (first.from, first.to, first.scanned);
        // Batches behind it that completed meanwhile move with it.
        while let Some(next) = pipeline.in_flight.front_mut() {
            match (&mut next.done).now_or_never() {
                Some(Ok(())) => {
                    to = next.to;
                    scanned += next.scanned;
                    pipeline.in_flight.pop_front();
                }
                Some(Err(error)) => {
                    pipeline.in_flight.pop_front();
                    return Err(error);
                }
                None => break,
            }
        }
        let moved = move_checkpoint(&self.pool, name, from, to, scanned).await?;
        if moved != 1 {
            return Err(SubscriberError::Failed(format!(
                "checkpoint of {name} moved under this instance; batches in flight discarded"
            )));
        }
        BATCH_COMMITS.send_modify(|count| *count = count.wrapping_add(1));
        Ok(Progress::Handled(scanned))
    }

    /// Runs `subscriber` until `shutdown`: waits to become the active
    /// instance, then handles batches as events commit. Errors are logged
    /// and retried with back-off; nothing is skipped.
    pub async fn run(self, subscriber: Arc<dyn Subscriber>, shutdown: CancellationToken) {
        let name = subscriber.name();
        while !shutdown.is_cancelled() {
            let lock = match self.become_active(name).await {
                Ok(Some(lock)) => lock,
                Ok(None) => {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(self.settings.standby_retry) => continue,
                    }
                }
                Err(error) => {
                    tracing::warn!(subscriber = name, error = %error, "cannot reach the database to take the subscriber lock");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(self.settings.standby_retry) => continue,
                    }
                }
            };
            tracing::info!(subscriber = name, "active");
            self.run_active(subscriber.as_ref(), lock, &shutdown).await;
        }
    }

    /// Whether committed events after `read_to` (where this instance has
    /// read to; its checkpoint when `None`) exist that the reader cannot
    /// return yet (an older transaction is still running).
    async fn held_back(
        &self,
        subscriber: &str,
        read_to: Option<Position>,
    ) -> Result<bool, SubscriberError> {
        let after = match read_to {
            Some(position) => position,
            None => checkpoint(&mut *self.pool.acquire().await?, subscriber).await?,
        };
        Ok(crate::reader::any_after(&self.pool, after, false).await?)
    }

    async fn become_active(&self, name: &str) -> Result<Option<PgConnection>, sqlx::Error> {
        let mut connection = self.pool.connect_options().connect().await?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(lock_key(name))
            .fetch_one(&mut connection)
            .await?;
        Ok(locked.then_some(connection))
    }

    async fn run_active(
        &self,
        subscriber: &dyn Subscriber,
        mut lock: PgConnection,
        shutdown: &CancellationToken,
    ) {
        let name = subscriber.name();
        let mut wake = self.wake.clone();
        let mut batch_commits = BATCH_COMMITS.subscribe();
        let mut pipeline = Pipeline::default();
        let mut failures = 0u32;
        let mut held_back_pause = Duration::from_millis(10);
        let mut lock_checked = tokio::time::Instant::now();
        loop {
            if shutdown.is_cancelled() {
                // Batches still in flight did not move the checkpoint; the
                // next active instance sends them again.
                let _ = lock.close().await;
                return;
            }
            // The lock lives as long as its session: a dead session means
            // another instance may have taken over.
            if lock_checked.elapsed() > Duration::from_secs(5) {
                if lock.ping().await.is_err() {
                    tracing::warn!(
                        subscriber = name,
                        "lost the subscriber lock's session; standing by"
                    );
                    return;
                }
                lock_checked = tokio::time::Instant::now();
            }
            // A batch committed after this point may have been holding
            // back what the step below cannot read yet, and wakes it.
            batch_commits.borrow_and_update();
            let stepped = tokio::time::Instant::now();
            match self.next(subscriber, &mut pipeline, &mut wake).await {
                Ok(progress @ (Progress::Idle | Progress::Drained(_))) => {
                    failures = 0;
                    if matches!(progress, Progress::Drained(_)) {
                        held_back_pause = Duration::from_millis(10);
                    }
                    // Nothing readable. Committed events may still wait
                    // behind an older transaction (often another
                    // subscriber's batch) that holds back the snapshot
                    // xmin; its commit sends no notification, so look
                    // again soon while that is so.
                    let held_back = match pipeline.held_back.take() {
                        Some(known) => known,
                        None => matches!(self.held_back(name, pipeline.read_to).await, Ok(true)),
                    };
                    let pause = if held_back {
                        let pause = held_back_pause.min(self.settings.poll_interval);
                        held_back_pause = (held_back_pause * 2).min(HELD_BACK_MAX_PAUSE);
                        pause
                    } else {
                        held_back_pause = Duration::from_millis(10);
                        self.settings.poll_interval
                    };
                    let woken = tokio::select! {
                        _ = shutdown.cancelled() => false,
                        _ = wake.changed() => true,
                        _ = batch_commits.changed(), if held_back => true,
                        _ = tokio::time::sleep(pause) => false,
                    };
                    // Commits during the rest of the interval wake it no
                    // further: the next read takes them all.
                    let next_read = stepped + self.settings.min_wake_interval;
                    if woken && tokio::time::Instant::now() < next_read {
                        tokio::select! {
                            _ = shutdown.cancelled() => {}
                            _ = tokio::time::sleep_until(next_read) => {}
                        }
                    }
                }
                Ok(_) => {
                    failures = 0;
                    held_back_pause = Duration::from_millis(10);
                }
                Err(error) => {
                    pipeline.settle().await;
                    failures += 1;
                    let pause = Duration::from_millis(100 * 2u64.pow(failures.min(6)));
                    tracing::warn!(subscriber = name, error = %error, retry_in_ms = pause.as_millis() as u64, "batch failed");
                    tokio::select! {
                        _ = shutdown.cancelled() => {}
                        _ = tokio::time::sleep(pause) => {}
                    }
                }
            }
        }
    }
}

/// What one step did.
enum Progress {
    /// Nothing readable and nothing in flight.
    Idle,
    /// Batches of this many events handled and their checkpoint moved.
    Handled(usize),
    /// The same, and the read came back short: nothing more was readable.
    Drained(usize),
    /// A batch read and started, or a notification to read again.
    Started,
}

/// A pipelined subscriber's batches in flight, oldest first; for any
/// other, only where it stands.
#[derive(Default)]
struct Pipeline {
    /// Where the next read starts; `None`: at the checkpoint (as the table
    /// holds it). For a subscriber that is not pipelined, its checkpoint as
    /// this instance last read or moved it.
    read_to: Option<Position>,
    /// What the last read found of events held back after it, if known.
    held_back: Option<bool>,
    in_flight: VecDeque<Started>,
}

struct Started {
    from: Position,
    to: Position,
    scanned: usize,
    done: InFlight,
    /// The batch's events' spans, ended when it is acknowledged.
    _spans: Vec<tracing::Span>,
}

impl Pipeline {
    /// Waits for every batch in flight to complete or fail, so that none
    /// is still being delivered when they are sent again, and starts over
    /// from the checkpoint.
    async fn settle(&mut self) {
        while let Some(started) = self.in_flight.pop_front() {
            let _ = started.done.await;
        }
        self.read_to = None;
    }
}

/// Bumps `sender` on every commit notification, reconnecting with back-off.
async fn listen_for_commits(pool: PgPool, sender: watch::Sender<u64>, shutdown: CancellationToken) {
    let mut pause = Duration::from_millis(100);
    while !shutdown.is_cancelled() {
        let listener = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.listen(EVENTS_CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let mut listener = match listener.await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::debug!(error = %error, "cannot listen for commits; polling meanwhile");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        pause = Duration::from_millis(100);
        // Commits made while nobody listened sent their notifications to
        // no one: have every subscriber look once now.
        sender.send_modify(|count| *count = count.wrapping_add(1));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                notification = listener.recv() => match notification {
                    Ok(_) => {
                        sender.send_modify(|count| *count = count.wrapping_add(1));
                    }
                    Err(error) => {
                        tracing::debug!(error = %error, "commit listener dropped; reconnecting");
                        break;
                    }
                },
            }
        }
    }
}
