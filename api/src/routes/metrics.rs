use std::fmt::Write;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::error::{ApiError, ErrorResponse};
use crate::state::AppState;

/// `GET /metrics`, in the Prometheus text format: each subscriber's lag
/// and the Kafka mirror's counters.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "service",
    summary = "Metrics for Prometheus",
    description = "`muckard_subscriber_lag_events` and `muckard_subscriber_lag_seconds` per \
        subscriber; `muckard_kafka_published_events_total`, \
        `muckard_kafka_publish_errors_total`, `muckard_kafka_published_batches_total`.",
    responses(
        (status = 200, description = "The Prometheus text exposition format",
            content_type = "text/plain; version=0.0.4", body = String),
        (status = 503, description = "The database is unavailable", body = ErrorResponse,
            headers(("retry-after" = String, description = "Seconds to wait before retrying"))),
    ),
)]
pub async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let lags = projections::lag::all(state.pool())
        .await
        .map_err(|e| ApiError::Unavailable(format!("database unavailable: {e}")))?;
    let mut body = String::new();
    let _ = writeln!(body, "# HELP muckard_subscriber_lag_events Events committed but not yet handled by the subscriber.");
    let _ = writeln!(body, "# TYPE muckard_subscriber_lag_events gauge");
    for lag in &lags {
        let _ = writeln!(
            body,
            "muckard_subscriber_lag_events{{subscriber=\"{}\"}} {}",
            lag.subscriber, lag.events_behind
        );
    }
    let _ = writeln!(body, "# HELP muckard_subscriber_lag_seconds Age of the oldest event the subscriber has not handled.");
    let _ = writeln!(body, "# TYPE muckard_subscriber_lag_seconds gauge");
    for lag in &lags {
        let _ = writeln!(
            body,
            "muckard_subscriber_lag_seconds{{subscriber=\"{}\"}} {:.3}",
            lag.subscriber, lag.seconds_behind
        );
    }
    let mirror = kafka_mirror::metrics();
    let counters = [
        (
            "muckard_kafka_published_events_total",
            "Events the Kafka broker acknowledged.",
            mirror.published.load(Ordering::Relaxed),
        ),
        (
            "muckard_kafka_publish_errors_total",
            "Events the Kafka broker did not acknowledge; their batch is sent again.",
            mirror.failed.load(Ordering::Relaxed),
        ),
        (
            "muckard_kafka_published_batches_total",
            "Batches the Kafka broker acknowledged in full.",
            mirror.batches.load(Ordering::Relaxed),
        ),
    ];
    for (name, help, value) in counters {
        let _ = writeln!(body, "# HELP {name} {help}");
        let _ = writeln!(body, "# TYPE {name} counter");
        let _ = writeln!(body, "{name} {value}");
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body))
}
