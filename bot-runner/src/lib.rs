//! The bot runner: consumes the bot command queues, runs one trading loop
//! per running bot, and records what happened on the Bot aggregate.
//!
//! - [`supervisor`]: the runner role, active/standby behind a PostgreSQL
//!   advisory lock ([`spawn_runner`] starts it).
//! - [`consumer`]: a consumer per command queue (`bot.start`, `bot.stop`,
//!   `bot.trigger_trade`), each on its own connection. A message is
//!   acknowledged only after the command it leads to is stored; a
//!   malformed or refused message (control characters included) goes to
//!   the queue's dead-letter queue with the reason in `x-death-reason`; one
//!   that keeps failing unexpectedly is dead-lettered after
//!   `max_attempts`. Reconnects with exponential back-off.
//! - [`lanes`]: per-bot serial lanes with a bound per queue and a share
//!   per user; a panic in one bot's work ends that work only.
//! - [`handling`]: what each message leads to (a duplicate has one effect,
//!   decided from the bot's state).
//! - [`wire`]: what a message must be before it is acted on.
//! - [`trader`]: one trading loop per running bot (price → strategy →
//!   order → `bot.trade.executed` / `bot.trade.skipped` / `bot.error`),
//!   manual triggers, and resuming running bots after a restart.
//! - [`strategy`]: dollar-cost averaging and the threshold strategy.
//!
//! It trades through any [`exchange::Exchange`] (the `exchange` crate: the
//! paper exchange, Kraken, and the resilience wrapper around either).

pub mod consumer;
mod handling;
mod lanes;
pub mod settings;
pub mod strategy;
pub mod supervisor;
pub mod trader;
mod wire;

pub use settings::RunnerSettings;
pub use supervisor::spawn_runner;
