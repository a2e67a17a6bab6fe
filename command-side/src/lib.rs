//! The command side: turns commands into events in PostgreSQL through
//! cqrs-es and postgres-es, and keeps what must not enter the log in side
//! tables.
//!
//! - [`database`]: creating the database and applying the migrations;
//! - [`framework`]: [`CommandSide`], the cqrs-es frameworks for the six
//!   aggregates, the bounded retry on a concurrency conflict and the
//!   [`event_log::Position`] a command answers with;
//! - [`load`]: an aggregate's state from the log without the cache;
//! - [`cache`]: [`cache::CachedEventStore`], the store every command goes
//!   through, keeping the aggregates this process last wrote in memory
//!   (the log decides);
//! - [`repository`]: the event repository under it: postgres-es' reads,
//!   and appends through [`append`] (one statement that returns the
//!   events' position) or [`batch`] (group commit: concurrent commands'
//!   appends in one statement and transaction);
//! - [`append_outcome`]: where the running command's append landed, read
//!   back after cqrs-es returns;
//! - [`metadata`]: the metadata every event carries;
//! - [`metrics`]: commands by type and outcome, events appended, in the
//!   process-wide Prometheus registry;
//! - [`users`], [`exchange_keys`], [`bots`], [`support_tickets`]: the use
//!   cases the API calls, each combining a side-table write (or a data key)
//!   with a command;
//! - [`notifications`]: raising a notification (as the owner's level
//!   allows), reading them, and `notification_raiser`, which raises them for
//!   fills and support replies from the log;
//! - [`process_manager`]: [`process_manager::TradeRecorder`], the
//!   subscriber that turns `bot.trade.executed` into
//!   `Portfolio::RecordTrade`;
//! - [`sessions`]: refresh tokens (hashed, rotating);
//! - [`idempotency`]: the ledger that replays the first response to a key;
//! - [`crypto`], [`credentials`], [`passwords`]: AES-256-GCM, exchange
//!   credentials sealed with it, argon2id for passwords;
//! - [`services`]: the domain's service traits, implemented on the log and
//!   an [`exchange::Exchange`].

pub mod accounts;
pub mod append;
pub mod append_outcome;
pub mod batch;
pub mod bots;
pub mod cache;
pub mod credentials;
pub mod crypto;
pub mod database;
pub mod error;
pub mod exchange_keys;
pub mod framework;
pub mod idempotency;
pub mod load;
pub mod login_failures;
pub mod mail;
pub mod metadata;
pub mod metrics;
pub mod notifications;
pub mod passwords;
pub mod process_manager;
pub mod redis_link;
pub mod repository;
pub mod services;
pub mod sessions;
pub mod support_tickets;
pub mod users;

pub use error::CommandError;
pub use framework::{CommandSide, CommandSideSettings};
pub use metadata::CommandMetadata;
