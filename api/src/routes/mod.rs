//! The command endpoints, one module per resource.

pub mod admin;
pub mod audit;
pub mod audit_reports;
pub mod bots;
pub mod dashboard;
pub mod health;
pub mod kraken;
pub mod market;
pub mod metrics;
pub mod notifications;
pub mod queries;
pub mod stream;
pub mod support;
pub mod users;
