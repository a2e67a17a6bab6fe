use axum::Json;
use serde_json::{json, Value};

use crate::error::ApiError;

/// `GET /health`: the process is alive and serving HTTP.
pub async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".to_string())
}
