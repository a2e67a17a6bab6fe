use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::ready::ReadyReport;
use crate::state::AppState;

/// `GET /health`: the process is alive and serving HTTP.
pub async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /ready`: each dependency this process's roles use and each
/// subscriber's lag; 503 while any dependency is down (see
/// [`crate::ready`]).
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<ReadyReport>) {
    let report = state.readiness.report(state.pool()).await;
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
