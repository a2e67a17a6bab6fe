//! The command side: turns commands into events in PostgreSQL through
//! cqrs-es and postgres-es, and keeps what must not enter the log in side
//! tables.
//!
//! - [`database`]: creating the database and applying the migrations;
//! - [`store`]: the cqrs-es frameworks (snapshotting postgres-es stores) for
//!   the four aggregates, the bounded retry on a concurrency conflict and
//!   the [`store::Position`] token a command answers with;
//! - [`batch`]: group commit: concurrent commands' appends in one
//!   statement and transaction;
//! - [`cache`]: the store every command goes through, keeping the
//!   aggregates this process last wrote in memory (the log decides);
//! - [`repository`]: the event repository under them: postgres-es' reads,
//!   and a command's events and snapshot appended in one statement that
//!   returns their position;
//! - [`notify`]: wakes the log's subscribers after commits;
//! - [`metadata`]: the metadata every event carries;
//! - [`metrics`]: commands by type and outcome, events appended, in the
//!   process-wide Prometheus registry;
//! - [`users`], [`exchange_keys`], [`bots`]: the use cases the API calls,
//!   each combining a side-table write with a command;
//! - [`sessions`]: refresh tokens (hashed, rotating);
//! - [`idempotency`]: the ledger that replays the first response to a key;
//! - [`crypto`], [`passwords`]: AES-256-GCM for exchange secrets, argon2id
//!   for passwords;
//! - [`exchange`]: the `Exchange` trait and the deterministic paper
//!   exchange; [`services`] implements the domain's service traits on top.

pub mod batch;
pub mod bots;
pub mod cache;
pub mod crypto;
pub mod database;
pub mod error;
pub mod exchange;
pub mod exchange_keys;
pub mod idempotency;
pub mod metadata;
pub mod metrics;
pub mod notify;
pub mod passwords;
pub mod repository;
pub mod services;
pub mod sessions;
pub mod store;
pub mod users;

pub use error::CommandError;
pub use metadata::CommandMetadata;
pub use store::{CommandSide, CommandSideSettings, Position};
