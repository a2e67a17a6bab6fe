use std::fmt::Write;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::error::ApiError;
use crate::state::AppState;

/// `GET /metrics`, in the Prometheus text format: each subscriber's lag.
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
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body))
}
