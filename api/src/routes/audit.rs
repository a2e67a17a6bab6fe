//! The audit endpoints, for auditors and admins only: one aggregate's
//! events straight from the log, and its state as of a time or a sequence.
//! They read `events` itself (through `projections::audit`), not a read
//! model: an auditor wants what the log says.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::Json;
use chrono::{DateTime, Utc};
use domain::AggregateType;
use projections::audit::stream::{self, StreamEvent, Until};
use projections::audit::AuditError;
use serde::Serialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::caller::Caller;
use crate::error::{ApiError, ErrorResponse};
use crate::extract::{refuse_control_characters, QueryParams};
use crate::openapi::schemas;
use crate::state::AppState;

const PARAMETERS: [&str; 2] = ["as_of", "at_sequence"];

/// Where to stop reading, for the document; [`request`] reads it. At most
/// one of the two.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct AuditPoint {
    /// Events recorded at or before this time (RFC 3339), not after the
    /// database's clock now. The answer is given once it is final: after
    /// every append that was in flight when it was asked has ended, so the
    /// same `as_of` answers the same forever.
    as_of: Option<DateTime<Utc>>,
    /// Events up to and including this sequence.
    #[param(minimum = 0)]
    at_sequence: Option<i64>,
}

/// One aggregate's events straight from the log.
#[derive(Serialize, ToSchema)]
pub struct AuditEvents {
    #[schema(value_type = schemas::AggregateType)]
    aggregate_type: AggregateType,
    aggregate_id: String,
    #[schema(value_type = schemas::Until)]
    until: Until,
    /// In sequence order, each as [`StreamEvent::to_json`] gives it.
    #[schema(value_type = Vec<schemas::AuditEvent>)]
    events: Vec<Value>,
}

/// `GET /api/v1/audit/streams/{aggregate_type}/{id}/events[?as_of|at_sequence]`
#[utoipa::path(
    get,
    path = "/api/v1/audit/streams/{aggregate_type}/{id}/events",
    operation_id = "audit_events",
    tag = "audit",
    summary = "One aggregate's events, with their hashes (auditors, admins)",
    description = "Read from the log itself, not a read model.",
    security(("bearer" = [])),
    params(
        ("aggregate_type" = String, Path, description = "`User`, `ExchangeKey`, `Bot` or `Portfolio` (any case; `exchange_key` and `exchange-key` too)"),
        ("id" = String, Path, description = "The aggregate's id as the log stores it (no control characters)"),
        AuditPoint,
    ),
    responses(
        (status = 200, description = "The events up to the point asked for", body = AuditEvents),
        (status = 400, description = "An unknown aggregate type, an unknown or malformed query parameter, or an `as_of` in the future", body = ErrorResponse),
        (status = 403, description = "The caller is neither an auditor nor an admin", body = ErrorResponse),
        (status = 404, description = "No such stream", body = ErrorResponse),
        (status = 503, description = "Appends in flight when the request came had not ended after 5 s, so an answer as of then is not final yet (retry), or the database is unavailable", body = ErrorResponse),
    ),
)]
pub async fn events(
    State(state): State<AppState>,
    _caller: Caller,
    Path((aggregate_type, aggregate_id)): Path<(String, String)>,
    QueryParams(raw): QueryParams,
) -> Result<Json<AuditEvents>, ApiError> {
    let (kind, until) = request(&aggregate_type, &aggregate_id, &raw)?;
    let events = stream::stream_events(state.pool(), kind, &aggregate_id, until)
        .await
        .map_err(audit_error)?;
    if events.is_empty()
        && !stream::stream_exists(state.pool(), kind, &aggregate_id)
            .await
            .map_err(audit_error)?
    {
        return Err(unknown_stream(kind, &aggregate_id));
    }
    Ok(Json(AuditEvents {
        aggregate_type: kind,
        aggregate_id,
        until,
        events: events.iter().map(StreamEvent::to_json).collect(),
    }))
}

/// `GET /api/v1/audit/streams/{aggregate_type}/{id}/state[?as_of|at_sequence]`:
/// the aggregate folded from its events up to then, with those events.
///
/// The body is `projections::audit::stream::StreamState::to_json`, which the
/// replay tool prints too; [`schemas::AuditState`] describes it, and the
/// `openapi` test checks real answers against that description.
#[utoipa::path(
    get,
    path = "/api/v1/audit/streams/{aggregate_type}/{id}/state",
    operation_id = "audit_state",
    tag = "audit",
    summary = "One aggregate's state as of a time or sequence (auditors, admins)",
    description = "The aggregate folded with the domain's own `apply` from its events up to \
        then, with those events.",
    security(("bearer" = [])),
    params(
        ("aggregate_type" = String, Path, description = "`User`, `ExchangeKey`, `Bot` or `Portfolio` (any case; `exchange_key` and `exchange-key` too)"),
        ("id" = String, Path, description = "The aggregate's id as the log stores it (no control characters)"),
        AuditPoint,
    ),
    responses(
        (status = 200, description = "The state and the events it was folded from", body = schemas::AuditState),
        (status = 400, description = "An unknown aggregate type, an unknown or malformed query parameter, or an `as_of` in the future", body = ErrorResponse),
        (status = 403, description = "The caller is neither an auditor nor an admin", body = ErrorResponse),
        (status = 404, description = "No such stream", body = ErrorResponse),
        (status = 503, description = "Appends in flight when the request came had not ended after 5 s, so an answer as of then is not final yet (retry), or the database is unavailable", body = ErrorResponse),
    ),
)]
pub async fn state(
    State(state): State<AppState>,
    _caller: Caller,
    Path((aggregate_type, aggregate_id)): Path<(String, String)>,
    QueryParams(raw): QueryParams,
) -> Result<Json<Value>, ApiError> {
    let (kind, until) = request(&aggregate_type, &aggregate_id, &raw)?;
    match stream::state_as_of(state.pool(), kind, &aggregate_id, until)
        .await
        .map_err(audit_error)?
    {
        Some(found) => Ok(Json(found.to_json())),
        None => Err(unknown_stream(kind, &aggregate_id)),
    }
}

/// Reads the path and query (the permission layer checked the caller).
fn request(
    aggregate_type: &str,
    aggregate_id: &str,
    raw: &HashMap<String, String>,
) -> Result<(AggregateType, Until), ApiError> {
    refuse_control_characters("id", aggregate_id)?;
    if let Some(unknown) = raw.keys().find(|name| !PARAMETERS.contains(&name.as_str())) {
        return Err(bad(unknown, "is not a parameter of this endpoint"));
    }
    let kind: AggregateType = aggregate_type.parse().map_err(|_| {
        let names: Vec<&str> = AggregateType::ALL.iter().map(|k| k.as_str()).collect();
        bad(
            "aggregate_type",
            &format!("must be one of {}", names.join(", ")),
        )
    })?;
    let as_of = raw.get("as_of").map(|text| parse_time(text)).transpose()?;
    let at_sequence = raw
        .get("at_sequence")
        .map(|text| match text.parse::<i64>() {
            Ok(n) if n >= 0 => Ok(n),
            _ => Err(bad("at_sequence", "must be a whole number, 0 or more")),
        })
        .transpose()?;
    let until = match (as_of, at_sequence) {
        (Some(_), Some(_)) => {
            return Err(bad("at_sequence", "give as_of or at_sequence, not both"));
        }
        (Some(as_of), None) => Until::AsOf { as_of },
        (None, Some(sequence)) => Until::Sequence { sequence },
        (None, None) => Until::End,
    };
    Ok((kind, until))
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            bad(
                "as_of",
                "must be an RFC 3339 time, e.g. 2026-11-23T08:00:00Z",
            )
        })
}

fn bad(field: &str, reason: &str) -> ApiError {
    ApiError::BadRequest {
        field: Some(field.to_string()),
        reason: reason.to_string(),
    }
}

fn unknown_stream(kind: AggregateType, aggregate_id: &str) -> ApiError {
    ApiError::NotFound(format!("no events for {kind}/{aggregate_id}"))
}

fn audit_error(error: AuditError) -> ApiError {
    match error {
        AuditError::FutureTime { .. } => bad("as_of", &error.to_string()),
        AuditError::NotSettled { .. } => ApiError::Unavailable(error.to_string()),
        AuditError::Database(sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut) => {
            ApiError::Unavailable("database unavailable".to_string())
        }
        other => ApiError::Internal(anyhow::anyhow!(other)),
    }
}
