//! The Muckard domain: aggregates, their commands and events, and the rules
//! that decide which commands are accepted. Nothing here does IO.
//!
//! Layout, one file per aggregate with its commands and events beside it:
//! - [`user`]: registration, log-ins, profile, onboarding and roles;
//! - [`exchange_key`]: a connected Kraken API key (never its secret);
//! - [`bot`]: a trading bot's configuration and lifecycle, and what it traded;
//! - [`portfolio`]: a user's trade ledger, positions and realised P&L;
//! - [`support_ticket`]: a user's question to the support staff and its
//!   replies (sealed personal data), assignment and status;
//! - [`notification`]: one thing a user should be told, and whether they
//!   read it.
//!
//! [`aggregates`] is the one list of them ([`AggregateType::ALL`]).
//! Shared vocabulary lives in [`common`] (actors, roles, decimals, pairs,
//! strategies), the bounds on configured money and the checked arithmetic
//! on it in [`money`], the operator's trigger quotas in [`quotas`], and the one error type every aggregate refuses with
//! in [`error`]; personal data as events carry it (sealed under the user's data
//! key, AES-256-GCM, opened with it) in [`personal`]. Calls that leave the process (the exchange, reading another
//! aggregate) are traits in [`services`], implemented by `command-side`.
//!
//! Every event's `event_type()` is its wire name on Kafka and RabbitMQ, and
//! its payload is the event serialised with that name in a `type` field.
//!
//! `properties` holds the property tests of the money paths; `arbitrary`
//! (tests and the `proptest` feature only) the strategies they and the
//! other crates' property tests draw decimals from.

pub mod aggregates;
#[cfg(any(test, feature = "proptest"))]
pub mod arbitrary;
pub mod bot;
pub mod common;
pub mod error;
pub mod exchange_key;
pub mod money;
pub mod notification;
pub mod permissions;
pub mod personal;
pub mod portfolio;
#[cfg(test)]
mod properties;
pub mod quotas;
pub mod secret;
pub mod services;
pub mod support_ticket;
pub mod user;

pub use aggregates::{AggregateType, Ownership};
pub use common::{Actor, Pair, Role, Side, Strategy};
pub use error::DomainError;
pub use money::StrategyLimits;
pub use permissions::Permission;
pub use quotas::TriggerQuotas;
pub use rust_decimal::Decimal;
pub use secret::SecretString;
pub use user::upcasters;
