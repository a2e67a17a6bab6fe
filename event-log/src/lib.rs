//! The log: the one way anything reads the events table forward, and the
//! runtime of everything that consumes it. Nothing here knows an aggregate
//! or a read model.
//!
//! - [`position`]: [`Position`], where an event stands in commit order,
//!   with its one conversion from and to the database's columns;
//! - [`event`]: [`RecordedEvent`], one committed event as read;
//! - [`reader`]: [`LogReader`]. It returns committed events in commit
//!   order, `(transaction_id, global_position)`, never skipping an event of
//!   a transaction that commits late, and upcasts old event versions;
//! - [`subscriber`]: the [`Subscriber`] trait and its runner. Each named
//!   subscriber has a checkpoint row, one active instance across processes
//!   (a PostgreSQL advisory lock), `LISTEN/NOTIFY` wake-ups with polling as
//!   a fallback, and handles a batch in the same transaction that moves its
//!   checkpoint;
//! - [`read_ahead`]: the head of the log read once for all of a
//!   runner's subscribers;
//! - [`lag`]: how far each subscriber is behind, and read-your-writes waits;
//! - [`data_keys`]: the per-user keys personal data is sealed under;
//! - [`notify`]: [`CommitNotifier`], which wakes the subscribers after the
//!   command side's commits.

pub mod data_keys;
pub mod event;
pub mod lag;
pub mod notify;
pub mod position;
pub mod read_ahead;
pub mod reader;
pub mod subscriber;
pub mod trace;

pub use event::RecordedEvent;
pub use notify::CommitNotifier;
pub use position::{MalformedPosition, Position};
pub use reader::{Batch, LogError, LogReader};
pub use subscriber::{
    checkpoint, InFlight, PipelinedSubscriber, Subscriber, SubscriberError, SubscriberRunner,
    SubscriberSettings, PIPELINE_DEPTH,
};
