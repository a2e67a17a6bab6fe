//! The `muckard` binary's parts: everything that knows how the service is
//! put together. The HTTP API (`api`), the command side, the log and the
//! workers know nothing of each other's configuration; this crate reads it
//! and wires them.
//!
//! - [`settings`]: [`settings::Settings`], parsed once from the environment
//!   (see `.env.example`), secrets included;
//! - [`wiring`]: the database, the exchange, the HTTP state with its
//!   readiness probes, and the workers of each role (projector,
//!   kafka-mirror, publisher, runner, notifier);
//! - [`telemetry`]: the tracing subscriber, installed only by binaries;
//! - [`operator`]: commands for operators (granting the first admin).
//!
//! `src/main.rs` is the command line: `serve`, `migrate`, `grant-role`.

pub mod contracts;
pub mod operator;
pub mod settings;
pub mod telemetry;
pub mod wiring;
