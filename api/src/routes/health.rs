use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::ready::ReadyReport;
use crate::state::AppState;

/// The process is alive.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// `GET /health`: the process is alive and serving HTTP.
#[utoipa::path(
    get,
    path = "/health",
    tag = "service",
    summary = "Liveness",
    description = "The process is alive and serving HTTP; it asks no dependency.",
    responses((status = 200, description = "Alive", body = Health)),
)]
pub async fn health() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// `GET /ready`: each dependency this process's roles use and each
/// subscriber's lag; 503 while any dependency is down (see
/// [`crate::ready`]).
#[utoipa::path(
    get,
    path = "/ready",
    tag = "service",
    summary = "Readiness",
    description = "Each dependency this process's roles use (PostgreSQL always, Kafka for the \
        kafka-mirror role, RabbitMQ for the publisher and runner roles), checked with a real \
        round trip at most once a second and each within READY_CHECK_TIMEOUT_MS, and every \
        subscriber's lag. 503 while any of them is down. `rate_limit` says whether the rate \
        limits are shared across instances through Redis (REDIS_URL) or kept per process \
        (no Redis configured, or Redis down); it never makes the process unready.",
    responses(
        (status = 200, description = "Every dependency the roles use is up", body = ReadyReport),
        (status = 503, description = "A dependency the roles use is down; the body names it",
            body = ReadyReport),
    ),
)]
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<ReadyReport>) {
    let mut report = state.readiness.report(state.pool()).await;
    report.rate_limit = Some(state.rate_limiter.scope());
    let status = if report.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(report))
}

pub async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".to_string())
}
