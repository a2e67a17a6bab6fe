//! The event store every command goes through: postgres-es' snapshotting
//! store for loading, with the aggregates this process last wrote kept in
//! memory, so that a command on a stream it wrote before costs one
//! statement (the append) instead of three (snapshot, events after it,
//! append) and no deserialisation of the snapshot.
//!
//! The log stays the only source of truth; the cache can only make a
//! command cost more, never decide differently:
//!
//! - an entry is **taken out** of the cache by the command that uses it and
//!   put back only after that command's events are committed, with the
//!   state after them. Two commands of this process never share an entry;
//!   the second one loads from the log.
//! - a command **accepted** on a cached state appends at the next sequence.
//!   If any other writer (another instance, another role's process)
//!   appended to the stream meanwhile, that sequence exists and the append
//!   fails as an optimistic-lock conflict, which the command side retries
//!   on the log's state (the entry is gone by then).
//! - a command **refused** on a cached state is decided again on the log's
//!   state (the entry is gone by then), and one accepted with **no
//!   events** is when the stream moved on meanwhile, so a stale entry
//!   cannot refuse what the log allows (`CommandSide` does this, from
//!   the `cached_sequence` the store notes in the command's append-outcome slot).
//!
//! Snapshots are still written every `snapshot_every` events, so a process
//! that starts cold (or an entry that was evicted) loads as before. A
//! snapshot is written when a commit crosses a multiple of
//! `snapshot_every`, with the state after all of that commit's events.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use cqrs_es::persist::{
    EventStoreAggregateContext, PersistedEventStore, PersistenceError, SerializedEvent,
};
use cqrs_es::{Aggregate, AggregateError, EventEnvelope, EventStore};
use hashlink::LruCache;

use event_log::CommitNotifier;

use crate::append_outcome::note_append_outcome;
use crate::repository::LedgerEventRepository;

/// Entries of one aggregate type, least recently used evicted first.
pub struct AggregateCache<A: Aggregate> {
    entries: Option<Mutex<LruCache<String, Entry<A>>>>,
}

struct Entry<A: Aggregate> {
    aggregate: A,
    sequence: usize,
    snapshot: Option<usize>,
}

impl<A: Aggregate> AggregateCache<A> {
    /// Holds at most `capacity` aggregates; 0 turns the cache off.
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: NonZeroUsize::new(capacity).map(|c| Mutex::new(LruCache::new(c.get()))),
        }
    }

    fn take(&self, aggregate_id: &str) -> Option<EventStoreAggregateContext<A>> {
        let entries = self.entries.as_ref()?;
        let entry = entries.lock().ok()?.remove(aggregate_id)?;
        Some(EventStoreAggregateContext {
            aggregate_id: aggregate_id.to_string(),
            aggregate: entry.aggregate,
            current_sequence: entry.sequence,
            current_snapshot: entry.snapshot,
        })
    }

    /// Keeps `context` unless an entry at a later sequence is there already
    /// (a racing command of this process committed after this one).
    fn put(&self, context: EventStoreAggregateContext<A>) {
        let Some(entries) = self.entries.as_ref() else {
            return;
        };
        let Ok(mut entries) = entries.lock() else {
            return;
        };
        if entries
            .peek(&context.aggregate_id)
            .is_some_and(|held| held.sequence >= context.current_sequence)
        {
            return;
        }
        entries.insert(
            context.aggregate_id,
            Entry {
                aggregate: context.aggregate,
                sequence: context.current_sequence,
                snapshot: context.current_snapshot,
            },
        );
    }

    /// Aggregates held now.
    pub fn len(&self) -> usize {
        self.entries
            .as_ref()
            .and_then(|entries| entries.lock().ok().map(|e| e.len()))
            .unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The store of one aggregate type (see the module documentation).
pub struct CachedEventStore<A: Aggregate> {
    loader: PersistedEventStore<LedgerEventRepository, A>,
    repository: LedgerEventRepository,
    snapshot_every: usize,
    cache: Arc<AggregateCache<A>>,
    notifier: CommitNotifier,
}

impl<A: Aggregate> CachedEventStore<A> {
    pub fn new(
        repository: LedgerEventRepository,
        snapshot_every: usize,
        cache: Arc<AggregateCache<A>>,
        notifier: CommitNotifier,
    ) -> Self {
        let snapshot_every = snapshot_every.max(1);
        Self {
            loader: PersistedEventStore::new_snapshot_store(repository.clone(), snapshot_every)
                .with_upcasters(domain::upcasters()),
            repository,
            snapshot_every,
            cache,
            notifier,
        }
    }
}

/// Whether a stream going from `sequence` to `sequence + appended` crosses a
/// multiple of `every`.
fn crosses_snapshot(sequence: usize, appended: usize, every: usize) -> bool {
    appended > 0 && (sequence + appended) / every > sequence / every
}

impl<A: Aggregate> EventStore<A> for CachedEventStore<A> {
    type AC = EventStoreAggregateContext<A>;

    async fn load_events(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<EventEnvelope<A>>, AggregateError<A::Error>> {
        self.loader.load_events(aggregate_id).await
    }

    async fn load_aggregate(
        &self,
        aggregate_id: &str,
    ) -> Result<EventStoreAggregateContext<A>, AggregateError<A::Error>> {
        if let Some(context) = self.cache.take(aggregate_id) {
            note_append_outcome(|outcome| outcome.cached_sequence = Some(context.current_sequence));
            crate::metrics::record_cache_lookup(A::TYPE, true);
            return Ok(context);
        }
        crate::metrics::record_cache_lookup(A::TYPE, false);
        self.loader.load_aggregate(aggregate_id).await
    }

    async fn commit(
        &self,
        events: Vec<A::Event>,
        mut context: EventStoreAggregateContext<A>,
        metadata: HashMap<String, String>,
    ) -> Result<Vec<EventEnvelope<A>>, AggregateError<A::Error>> {
        if events.is_empty() {
            // Nothing to verify the state against: it is not kept.
            return Ok(Vec::new());
        }
        let first = context.current_sequence + 1;
        let snapshot_due =
            crosses_snapshot(context.current_sequence, events.len(), self.snapshot_every);
        let mut envelopes = Vec::with_capacity(events.len());
        // `handle` has applied these events to `context.aggregate` already
        // (cqrs-es' `EventSink::write` applies each one it records), so
        // applying them again here would fold every commit twice into the
        // cached state and the snapshot: a bot's holding doubled.
        for (sequence, event) in (first..).zip(events) {
            envelopes.push(EventEnvelope {
                aggregate_id: context.aggregate_id.clone(),
                sequence,
                payload: event,
                metadata: metadata.clone(),
            });
        }
        context.current_sequence += envelopes.len();
        let serialized = envelopes
            .iter()
            .map(SerializedEvent::try_from)
            .collect::<Result<Vec<_>, PersistenceError>>()?;
        let snapshot = if snapshot_due {
            let number = context.current_snapshot.map_or(1, |n| n + 1);
            let payload = serde_json::to_value(&context.aggregate)
                .map_err(|error| AggregateError::UnexpectedError(Box::new(error)))?;
            context.current_snapshot = Some(number);
            Some((context.aggregate_id.clone(), payload, number))
        } else {
            None
        };
        let position = self.repository.append::<A>(serialized, snapshot).await?;
        self.notifier.committed();
        note_append_outcome(|outcome| outcome.appended = position);
        self.cache.put(context);
        Ok(envelopes)
    }
}

#[cfg(test)]
mod tests {
    use super::crosses_snapshot;

    #[test]
    fn a_snapshot_is_due_when_a_commit_crosses_a_multiple() {
        assert!(!crosses_snapshot(0, 1, 50));
        assert!(!crosses_snapshot(48, 1, 50));
        assert!(crosses_snapshot(49, 1, 50));
        assert!(!crosses_snapshot(50, 1, 50));
        assert!(crosses_snapshot(48, 3, 50));
        assert!(crosses_snapshot(40, 200, 50));
        assert!(!crosses_snapshot(49, 0, 50));
        assert!(crosses_snapshot(0, 1, 1));
    }
}
