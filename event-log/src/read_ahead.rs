//! One read of the head of the log for all of a runner's subscribers.
//!
//! Every commit wakes every subscriber, and each used to read the log for
//! itself: a dozen reads of the same few rows per commit. A
//! [`ReadAhead`] keeps the newest stretch of the log a runner's
//! subscribers read, and serves a subscriber whose checkpoint lies inside
//! it from memory; only a subscriber that reaches its end reads the
//! database, once for all of them.
//!
//! What it holds is final: a read returns the rows after a position whose
//! transactions are older than every transaction still running, in commit
//! order, so no event can ever appear among or before them (the reader's
//! own guarantee, [`crate::reader`]). Rows read from the end of the
//! stretch extend it with nothing between; rows are never changed, only
//! dropped from its front when it is full.
//!
//! It is for the head of the log. A subscriber that is catching up (behind
//! the stretch, or beyond an end that did not reach the head) reads the
//! database itself, as before: subscribers far behind move at their own
//! speeds, and a shared stretch would only hold the faster ones back. When
//! such a read of its own reaches the head, the stretch starts again
//! there. A subscriber that is the only one reading through it always
//! reads for itself.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::PgPool;
use tokio::sync::Mutex;

use crate::event::RecordedEvent;
use crate::position::Position;
use crate::reader::{Batch, LogError, LogReader};

/// At most this many rows are kept.
pub const READ_AHEAD_ROWS: usize = 4096;

/// A read at the end asks for at least this many rows.
const READ_AT_LEAST: i64 = 512;

/// A runner's shared stretch of the head of the log. Cheap to share
/// behind an `Arc`.
#[derive(Default)]
pub struct ReadAhead {
    stretch: Mutex<Stretch>,
    /// How many reads of the database at the end of the stretch began.
    reads_begun: AtomicU64,
}

#[derive(Default)]
struct Stretch {
    /// The subscribers that have read through it. While there is one, it
    /// reads the database itself: a copy of every row it reads would only
    /// cost it (the mirror and the publisher run alone on their runners).
    readers: Vec<&'static str>,
    /// `None` until the first read: then the rows follow this position.
    after: Option<Position>,
    rows: VecDeque<RecordedEvent>,
    /// Whether the last read at the end came back short of its limit:
    /// nothing after the end was readable when it began.
    short_end: bool,
    /// The number (of `reads_begun`) of the read that ended the stretch.
    last_read: u64,
    /// After a short read: whether committed events after the end existed
    /// that it could not return yet (an older transaction was running).
    held_back: bool,
}

/// What [`ReadAhead::read`] found.
#[derive(Debug, Default)]
pub struct Read {
    pub batch: Batch,
    /// Whether nothing more was readable after the batch when a read that
    /// began after the call did; if so, `held_back` says whether committed
    /// events after it were waiting for an older transaction then (`None`:
    /// not known).
    pub drained: bool,
    pub held_back: Option<bool>,
}

impl Stretch {
    fn end(&self) -> Option<Position> {
        self.rows.back().map(|row| row.position).or(self.after)
    }

    /// Whether `at` lies inside the stretch, its end included.
    fn holds(&self, at: Position) -> bool {
        match (self.after, self.end()) {
            (Some(after), Some(end)) => after <= at && at <= end,
            _ => false,
        }
    }

    /// The rows after `at` (which the stretch holds), as a batch of at most
    /// `limit` of them of which only `wanted` types' are returned whole.
    fn serve(&self, at: Position, limit: usize, wanted: Option<&[&str]>) -> Batch {
        let first = self.rows.partition_point(|row| row.position <= at);
        let mut batch = Batch::default();
        for row in self.rows.range(first..).take(limit) {
            batch.scanned += 1;
            batch.last = Some(row.position);
            if wanted.is_none_or(|types| types.contains(&row.aggregate_type.as_str())) {
                batch.events.push(row.clone());
            }
        }
        batch
    }

    fn available_after(&self, at: Position) -> usize {
        self.rows.len() - self.rows.partition_point(|row| row.position <= at)
    }
}

impl ReadAhead {
    pub fn new() -> Self {
        Self::default()
    }

    /// The next `limit` committed events after `after` (of which only
    /// those of `aggregate_types` whole, all when `None`), from the stretch
    /// when it holds `after`, else from the database; the same batch
    /// [`LogReader::read_batch_on`] returns. Also whether nothing more was
    /// readable after it when a read that began after this call did.
    ///
    /// That second answer is what lets a woken subscriber wait again, so it
    /// is never given on the strength of a read that began before the call:
    /// the commit that woke the caller may be after what that read saw.
    pub async fn read(
        &self,
        subscriber: &'static str,
        pool: &PgPool,
        reader: &LogReader,
        after: Position,
        limit: i64,
        aggregate_types: Option<&[&str]>,
    ) -> Result<Read, LogError> {
        let wanted = usize::try_from(limit).unwrap_or(0).max(1);
        let called = self.reads_begun.load(Ordering::Acquire);
        let mut stretch = self.stretch.lock().await;
        if !stretch.readers.contains(&subscriber) {
            stretch.readers.push(subscriber);
        }
        let alone = stretch.readers.len() < 2;
        loop {
            // Live: its last read reached the head of the log.
            let live = stretch.short_end;
            if !alone && stretch.holds(after) {
                let available = stretch.available_after(after);
                // Whether the end is known to be the end as of after this
                // call.
                let fresh_end = live && stretch.last_read > called;
                if available >= wanted || (available > 0 && live) || fresh_end {
                    let batch = stretch.serve(after, wanted, aggregate_types);
                    let drained = fresh_end && batch.scanned == available;
                    return Ok(Read {
                        batch,
                        drained,
                        held_back: drained.then_some(stretch.held_back),
                    });
                }
                if let (true, Some(end)) = (live, stretch.end()) {
                    // At the end: read on from it, for everyone.
                    self.extend(&mut stretch, end, pool, reader, limit).await?;
                    continue;
                }
            }
            break;
        }
        // Behind the stretch, beyond it, or catching up (its last read
        // did not reach the head, so the others are not waiting at its
        // end): a read of its own, as if alone.
        drop(stretch);
        let number = self.reads_begun.fetch_add(1, Ordering::AcqRel) + 1;
        let mut connection = pool.acquire().await?;
        let batch = reader
            .read_batch_on(&mut connection, after, limit, aggregate_types)
            .await?;
        let drained = (batch.scanned as i64) < limit;
        if !drained || alone {
            return Ok(Read {
                batch,
                drained,
                held_back: None,
            });
        }
        // It reached the head: the stretch starts there again, for the
        // others as they reach it.
        let end = batch.last.unwrap_or(after);
        let held_back = crate::reader::any_after(&mut *connection, end, false).await?;
        drop(connection);
        let mut stretch = self.stretch.lock().await;
        if stretch.end().is_none_or(|current| end >= current) {
            let readers = std::mem::take(&mut stretch.readers);
            *stretch = Stretch {
                readers,
                after: Some(end),
                rows: VecDeque::new(),
                short_end: true,
                last_read: number,
                held_back,
            };
        }
        Ok(Read {
            batch,
            drained,
            held_back: Some(held_back),
        })
    }

    /// Reads on from `end`, the end of `stretch`, which is live, for
    /// everyone.
    async fn extend(
        &self,
        stretch: &mut Stretch,
        end: Position,
        pool: &PgPool,
        reader: &LogReader,
        limit: i64,
    ) -> Result<(), LogError> {
        let number = self.reads_begun.fetch_add(1, Ordering::AcqRel) + 1;
        let read_limit = limit.max(READ_AT_LEAST);
        let mut connection = pool.acquire().await?;
        let read = reader
            .read_batch_on(&mut connection, end, read_limit, None)
            .await?;
        stretch.short_end = (read.scanned as i64) < read_limit;
        if stretch.short_end {
            let end = read.last.unwrap_or(end);
            stretch.held_back = crate::reader::any_after(&mut *connection, end, false).await?;
        }
        drop(connection);
        stretch.last_read = number;
        stretch.rows.extend(read.events);
        while stretch.rows.len() > READ_AHEAD_ROWS {
            if let Some(dropped) = stretch.rows.pop_front() {
                stretch.after = Some(dropped.position);
            }
        }
        Ok(())
    }
}
