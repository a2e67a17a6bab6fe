//! Everything that reads the log forward, and the read models built from it.
//!
//! - [`log`]: the one log reader. It returns committed events in commit
//!   order, `(transaction_id, global_position)`, never skipping an event of
//!   a transaction that commits late, and upcasts old event versions.
//! - [`subscriber`]: the runtime for named subscribers. Each has a
//!   checkpoint row, one active instance across processes (a PostgreSQL
//!   advisory lock), `LISTEN/NOTIFY` wake-ups with polling as a fallback,
//!   and handles a batch in the same transaction that moves its checkpoint.
//! - [`read_models`]: the projectors behind the query API (`users`,
//!   `exchange_keys`, `bot_status`, `trades`, `positions`).
//! - [`process_manager`]: turns `bot.trade.executed` into
//!   `Portfolio::RecordTrade`.
//! - [`lag`]: how far each subscriber is behind, and read-your-writes waits.
//! - [`workers`]: starts the projector role's subscribers.
//! - [`audit`]: what auditors ask of the log (hash-chain verification, a
//!   stream's state as of a time or sequence, audit reports), shared by the
//!   replay tool and the REST audit endpoints.
//! - [`rebuild`]: rebuilding read models from the log into a shadow schema
//!   with the live projectors' code, comparing them and swapping them in.

pub mod audit;
pub mod lag;
pub mod log;
pub mod process_manager;
pub mod read_models;
pub mod rebuild;
pub mod subscriber;
pub mod workers;

pub use log::{LogReader, RecordedEvent};
pub use subscriber::{Subscriber, SubscriberError, SubscriberRunner, SubscriberSettings};
