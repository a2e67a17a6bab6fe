use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;

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

pub async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".to_string())
}
