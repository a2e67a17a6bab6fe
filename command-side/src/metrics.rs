//! The command side's Prometheus metrics, registered in the process-wide
//! default registry that `/metrics` renders: commands by type and outcome,
//! their duration, the events they appended by type, and the aggregate
//! cache's hits and misses.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts};

use crate::error::CommandError;

static COMMANDS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(IntCounterVec::new(
        Opts::new(
            "muckard_commands_total",
            "Commands handled, by type and outcome (accepted, rejected, conflict, failed).",
        ),
        &["command_type", "outcome"],
    ))
});

static COMMAND_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    register(HistogramVec::new(
        HistogramOpts::new(
            "muckard_command_duration_seconds",
            "Time from a command reaching the command side to its events committed (or its refusal).",
        )
        .buckets(vec![
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
        ]),
        &["command_type"],
    ))
});

static EVENTS_APPENDED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(IntCounterVec::new(
        Opts::new(
            "muckard_events_appended_total",
            "Events this process appended to the log, by aggregate and event type.",
        ),
        &["aggregate_type", "event_type"],
    ))
});

static CACHE_LOOKUPS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(IntCounterVec::new(
        Opts::new(
            "muckard_aggregate_cache_lookups_total",
            "Aggregates a command needed, by type and whether the cache held them (hit) or the log was read (miss).",
        ),
        &["aggregate_type", "result"],
    ))
});

static APPEND_BATCHES: LazyLock<prometheus::Histogram> = LazyLock::new(|| {
    register(prometheus::Histogram::with_opts(
        HistogramOpts::new(
            "muckard_append_batch_commands",
            "Commands whose events one shared append statement committed (batches of two or more).",
        )
        .buckets(vec![2.0, 4.0, 8.0, 16.0, 32.0, 64.0]),
    ))
});

static PASSWORD_HASHES_REFUSED: LazyLock<prometheus::IntCounter> = LazyLock::new(|| {
    register(prometheus::IntCounter::new(
        "muckard_password_hashes_refused_total",
        "Log-ins and registrations refused (503) because every password hashing slot stayed busy for the wait.",
    ))
});

static LOGINS_BACKED_OFF: LazyLock<prometheus::IntCounter> = LazyLock::new(|| {
    register(prometheus::IntCounter::new(
        "muckard_logins_backed_off_total",
        "Log-ins refused (429) because the account (or unknown email) is in its failed-log-in back-off.",
    ))
});

pub(crate) fn record_password_hash_refused() {
    PASSWORD_HASHES_REFUSED.inc();
}

pub(crate) fn record_login_backed_off() {
    LOGINS_BACKED_OFF.inc();
}

/// Registers `metric` in the process-wide default registry (which
/// `/metrics` renders) and returns it.
pub fn register<M: prometheus::core::Collector + Clone + 'static>(
    metric: Result<M, prometheus::Error>,
) -> M {
    // The names and labels above are constants; a failure here is a bug
    // caught by the first test that touches a metric.
    let metric = metric.expect("valid metric definition");
    // Registering twice (never done) would only keep the first.
    let _ = prometheus::register(Box::new(metric.clone()));
    metric
}

/// Makes every command-side metric appear in `/metrics` before its first
/// use, so dashboards see zeros rather than gaps.
pub fn init() {
    LazyLock::force(&COMMANDS);
    LazyLock::force(&COMMAND_SECONDS);
    LazyLock::force(&EVENTS_APPENDED);
    LazyLock::force(&PASSWORD_HASHES_REFUSED);
    LazyLock::force(&LOGINS_BACKED_OFF);
    LazyLock::force(&CACHE_LOOKUPS);
    LazyLock::force(&APPEND_BATCHES);
}

/// The outcome label of a command's result.
pub fn outcome<T>(result: &Result<T, CommandError>) -> &'static str {
    match result {
        Ok(_) => "accepted",
        Err(CommandError::Conflict { .. }) => "conflict",
        Err(
            CommandError::Refused(_)
            | CommandError::EmailTaken
            | CommandError::InvalidCredentials
            | CommandError::InvalidRefreshToken
            | CommandError::LoginBackoff { .. }
            | CommandError::CodeRefused { .. }
            | CommandError::TooManyAttempts { .. }
            | CommandError::AccountDisabled,
        ) => "rejected",
        Err(
            CommandError::DatabaseUnavailable(_)
            | CommandError::Saturated(_)
            | CommandError::Unexpected(_),
        ) => "failed",
    }
}

pub(crate) fn record_command<T>(
    command_type: &str,
    result: &Result<T, CommandError>,
    elapsed: Duration,
) {
    let command_type = if command_type.is_empty() {
        "unknown"
    } else {
        command_type
    };
    COMMANDS
        .with_label_values(&[command_type, outcome(result)])
        .inc();
    COMMAND_SECONDS
        .with_label_values(&[command_type])
        .observe(elapsed.as_secs_f64());
}

pub(crate) fn record_events_appended(aggregate_type: &str, event_type: &str) {
    EVENTS_APPENDED
        .with_label_values(&[aggregate_type, event_type])
        .inc();
}

pub(crate) fn record_cache_lookup(aggregate_type: &str, hit: bool) {
    CACHE_LOOKUPS
        .with_label_values(&[aggregate_type, if hit { "hit" } else { "miss" }])
        .inc();
}

pub(crate) fn record_append_batch(commands: usize) {
    APPEND_BATCHES.observe(commands as f64);
}
