//! The read models built from the log, and what auditors ask of it.
//!
//! - [`read_models`]: the projectors behind the query API (`users`,
//!   `exchange_keys`, `bot_status`, `trades`, `positions`), each an
//!   [`event_log::Subscriber`], and [`read_models::READ_MODELS`], the one
//!   list of them;
//! - [`audit`]: what auditors ask of the log (hash-chain verification, a
//!   stream's state as of a time or sequence, audit reports), shared by the
//!   replay tool and the REST audit endpoints;
//! - [`rebuild`]: rebuilding read models from the log into a shadow schema
//!   with the live projectors' code, comparing them and swapping them in.
//!
//! The log itself (reader, subscriber runtime, lag) is the `event-log`
//! crate; the process manager that issues commands lives with the
//! commands, in `command-side`.

pub mod audit;
pub mod read_models;
pub mod rebuild;
