//! What an auditor asks of the log, shared by the replay tool
//! (`muckard-replay`) and the REST audit endpoints:
//!
//! - [`chain`]: a row's hash recomputed exactly as specified;
//! - [`verify`]: [`verify::verify_log`], which checks every stream's chain,
//!   sequences and ids and names each broken row;
//! - [`stream`]: one aggregate's events and its state as of a time or a
//!   sequence, folded with the domain's own `apply`;
//! - [`export`]: a user's audit report with a SHA-256 digest over its
//!   canonical content, and its re-check against the log.
//!
//! Nothing here writes: these functions only read `events` (and
//! `snapshots`, to catch a stream cut short).

pub mod anchor;
pub mod chain;
pub mod export;
pub mod signing;
pub mod stream;
pub mod verify;

/// Failures of an audit query.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    UnknownAggregateType(#[from] domain::aggregates::UnknownAggregateType),
    #[error("{aggregate_type}/{aggregate_id} sequence {sequence} does not decode: {reason}")]
    Undecodable {
        aggregate_type: String,
        aggregate_id: String,
        sequence: i64,
        reason: String,
    },
    #[error("malformed audit report: {0}")]
    MalformedReport(String),
    #[error("as_of {as_of} is after the database's clock ({now}): the log up to then is not written yet")]
    FutureTime {
        as_of: chrono::DateTime<chrono::Utc>,
        now: chrono::DateTime<chrono::Utc>,
    },
    #[error("appends that began before the answer was asked for are still in flight after {waited_ms} ms; retry")]
    NotSettled { waited_ms: u64 },
    #[error("{0}")]
    Unexpected(String),
}

/// Where long runs report how far they got (the replay tool draws a
/// progress bar; the API and tests pass [`NoProgress`]).
pub trait Progress: Send + Sync {
    /// A phase of `total` units begins.
    fn start(&self, phase: &str, total: u64);
    fn advance(&self, units: u64);
    fn finish(&self);
}

/// Reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _phase: &str, _total: u64) {}
    fn advance(&self, _units: u64) {}
    fn finish(&self) {}
}
