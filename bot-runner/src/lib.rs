//! The bot runner: consumes the bot command queues, runs one trading loop
//! per running bot, and records what happened on the Bot aggregate.
//!
//! - [`supervisor`]: the runner role, active/standby behind a PostgreSQL
//!   advisory lock ([`spawn_runner`] starts it).
//! - [`consumer`]: the `bot.start`, `bot.stop` and `bot.trigger_trade`
//!   consumers. A message is acknowledged only after the command it leads
//!   to is stored; a duplicate has one effect (decided from the bot's
//!   state); a malformed or refused message goes to the queue's
//!   dead-letter queue with the reason in `x-death-reason`, and the
//!   consumer carries on. Reconnects with exponential back-off.
//! - [`trader`]: one trading loop per running bot (price → strategy →
//!   order → `bot.trade.executed` / `bot.trade.skipped` / `bot.error`),
//!   manual triggers, and resuming running bots after a restart.
//! - [`strategy`]: dollar-cost averaging and the threshold strategy.
//!
//! It trades through any [`exchange::Exchange`] (the `exchange` crate: the
//! paper exchange, Kraken, and the resilience wrapper around either).

pub mod consumer;
pub mod strategy;
pub mod supervisor;
pub mod trader;

pub use supervisor::{spawn_runner, RunnerSettings};
