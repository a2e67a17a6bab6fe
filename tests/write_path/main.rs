//! The write path end to end against a real PostgreSQL: every command
//! endpoint's success and refusal paths, and the event store's guarantees.

mod accounts;
mod auth;
mod authority;
mod bots;
mod cache;
mod erasure;
mod event_store;
mod hostile_input;
mod keys;
mod login_backoff;
mod quotas;
mod snapshot_state;
mod support_tickets;
mod users;
