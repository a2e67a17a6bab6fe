use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::state::AppState;

/// `GET /metrics`, in the Prometheus text format (see [`crate::metrics`]).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "service",
    summary = "Metrics for Prometheus",
    description = "HTTP requests and latency by method, route and status; commands by type and \
        outcome; events appended; subscriber lag; Kafka and RabbitMQ publish counts and errors; \
        the connection pool. With the database down the lag series are left out and \
        `muckard_database_up` is 0.",
    responses(
        (status = 200, description = "The Prometheus text exposition format",
            content_type = "text/plain; version=0.0.4", body = String),
    ),
)]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::render(&state).await,
    )
}
