//! The command endpoints, one module per resource.

pub mod admin;
pub mod audit;
pub mod audit_reports;
pub mod bots;
pub mod health;
pub mod kraken;
pub mod metrics;
pub mod queries;
pub mod support;
pub mod users;
