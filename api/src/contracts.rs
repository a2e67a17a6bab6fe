//! `/asyncapi.json` and `/schemas/...`: the message contracts of the
//! topics and queues, beside `/openapi.json`. The binary makes them from
//! the workers' definitions (`muckard::contracts`) and hands them in; this
//! module only serves them.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, ErrorResponse};
use crate::state::AppState;

/// The AsyncAPI document and the schema files it references, by their path
/// below `/schemas/` (`kafka/events/bot.started.schema.json`).
#[derive(Debug, Clone, Default)]
pub struct MessageContracts {
    asyncapi: Vec<u8>,
    schemas: BTreeMap<String, Vec<u8>>,
}

impl MessageContracts {
    pub fn new(asyncapi: serde_json::Value, schemas: BTreeMap<String, Vec<u8>>) -> Self {
        Self {
            asyncapi: serde_json::to_vec_pretty(&asyncapi).unwrap_or_default(),
            schemas,
        }
    }

    fn schema(&self, path: &str) -> Response {
        match self.schemas.get(path) {
            Some(bytes) => (
                [(header::CONTENT_TYPE, "application/schema+json")],
                bytes.clone(),
            )
                .into_response(),
            None => ApiError::NotFound(format!("no schema {path}")).into_response(),
        }
    }
}

/// `GET /asyncapi.json`.
#[utoipa::path(
    get,
    path = "/asyncapi.json",
    tag = "service",
    summary = "The AsyncAPI document of the topics and queues",
    description = "The AsyncAPI 3.0 document of every Kafka topic and RabbitMQ queue of this deployment (its names and partitions), generated from the definitions the workers use. Message payloads reference the JSON Schemas served below `/schemas/`, relative to this document.",
    responses(
        (status = 200, description = "The AsyncAPI 3.0 document",
            content_type = "application/json", body = Object),
    ),
)]
pub async fn asyncapi_json(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        state.contracts.asyncapi.clone(),
    )
        .into_response()
}

/// `GET /schemas/{group}/{file}`.
#[utoipa::path(
    get,
    path = "/schemas/{group}/{file}",
    tag = "service",
    summary = "A message schema",
    params(
        ("group" = String, Path, description = "`kafka` or `amqp`"),
        ("file" = String, Path, description = "A schema file, e.g. `envelope.schema.json`"),
    ),
    responses(
        (status = 200, description = "The JSON Schema (draft 2020-12)",
            content_type = "application/schema+json", body = Object),
        (status = 404, description = "No such schema", body = ErrorResponse),
    ),
)]
pub async fn schema_file(
    State(state): State<AppState>,
    Path((group, file)): Path<(String, String)>,
) -> Response {
    state.contracts.schema(&format!("{group}/{file}"))
}

/// `GET /schemas/{group}/events/{file}`.
#[utoipa::path(
    get,
    path = "/schemas/{group}/events/{file}",
    tag = "service",
    summary = "The schema of one event's payload",
    params(
        ("group" = String, Path, description = "`kafka`"),
        ("file" = String, Path, description = "`<wire name>.schema.json`, e.g. `bot.started.schema.json`"),
    ),
    responses(
        (status = 200, description = "The JSON Schema (draft 2020-12)",
            content_type = "application/schema+json", body = Object),
        (status = 404, description = "No such schema", body = ErrorResponse),
    ),
)]
pub async fn event_schema_file(
    State(state): State<AppState>,
    Path((group, file)): Path<(String, String)>,
) -> Response {
    state.contracts.schema(&format!("{group}/events/{file}"))
}
