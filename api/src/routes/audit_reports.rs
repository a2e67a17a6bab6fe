//! Signed audit reports over REST: a user's report made and signed by the
//! service, its verification against the log, and the public key a
//! verifier needs (which anyone may fetch). Auditors and admins only, but
//! for the key.

use axum::extract::{Path, State};
use axum::Json;
use chrono::{DateTime, Utc};
use projections::audit::export::{build_report, verify_report};
use projections::audit::signing::PublicKey;
use projections::audit::AuditError;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::caller::Caller;
use crate::error::{ApiError, ErrorResponse};
use crate::extract::{parse_id, JsonBody};
use crate::state::AppState;

/// The keys audit reports are signed with.
#[derive(Serialize, ToSchema)]
pub struct AuditKeys {
    pub keys: Vec<AuditKey>,
}

/// One published Ed25519 public key.
#[derive(Serialize, ToSchema)]
pub struct AuditKey {
    #[schema(example = "ed25519")]
    pub algorithm: String,
    /// The first 16 hex characters of SHA-256 of the key.
    pub key_id: String,
    /// Hex of the 32-byte public key.
    pub public_key: String,
}

/// What to report on: events recorded in `[from, to]` (both optional;
/// `to` defaults to now).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportRequest {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// A signed audit report: `content` (format `muckard-audit-report/2`), its
/// SHA-256 `digest` and the Ed25519 `signature`, both over the content's
/// RFC 8785 (JCS) form.
#[derive(Serialize, ToSchema)]
pub struct SignedReport {
    #[schema(value_type = Object)]
    pub content: Value,
    pub digest: ReportDigestBody,
    pub signature: ReportSignatureBody,
}

#[derive(Serialize, ToSchema)]
pub struct ReportDigestBody {
    #[schema(example = "sha256")]
    pub algorithm: String,
    #[schema(example = "RFC 8785 (JCS)")]
    pub canonicalisation: String,
    pub value: String,
}

#[derive(Serialize, ToSchema)]
pub struct ReportSignatureBody {
    #[schema(example = "ed25519")]
    pub algorithm: String,
    pub key_id: String,
    pub public_key: String,
    pub value: String,
}

/// The verdict on a report: clean when `problems` is empty.
#[derive(Serialize, ToSchema)]
pub struct ReportCheck {
    pub clean: bool,
    pub digest_matches: bool,
    /// `valid`, `invalid`, `untrusted_key` or `unsigned`; only `valid` is
    /// clean.
    pub signature: String,
    pub events_checked: u64,
    pub streams_checked: u64,
    pub problems: Vec<String>,
}

/// `GET /api/v1/audit/keys`: the public key audit reports are signed with.
#[utoipa::path(
    get,
    path = "/api/v1/audit/keys",
    tag = "audit",
    summary = "The public keys of signed audit reports",
    responses((status = 200, description = "The published keys", body = AuditKeys)),
)]
pub async fn keys(State(state): State<AppState>) -> Json<AuditKeys> {
    let PublicKey {
        algorithm,
        key_id,
        public_key,
    } = state.audit_signer.public_key();
    Json(AuditKeys {
        keys: vec![AuditKey {
            algorithm,
            key_id,
            public_key,
        }],
    })
}

/// `POST /api/v1/audit/users/{user_id}/export`: a user's signed report.
#[utoipa::path(
    post,
    path = "/api/v1/audit/users/{user_id}/export",
    tag = "audit",
    summary = "Export a user's signed audit report",
    params(("user_id" = uuid::Uuid, Path, description = "The user")),
    request_body = ExportRequest,
    responses(
        (status = 200, description = "The report, signed", body = SignedReport),
        (status = 400, description = "A malformed id or body", body = ErrorResponse),
        (status = 401, description = "No or a bad token", body = ErrorResponse),
        (status = 403, description = "Not an auditor or admin", body = ErrorResponse),
        (status = 422, description = "A field is invalid (e.g. a `to` in the future)", body = ErrorResponse),
        (status = 503, description = "Appends in flight had not ended after 5 s (retry), or the database is unavailable", body = ErrorResponse),
    ),
)]
pub async fn export(
    State(state): State<AppState>,
    _caller: Caller,
    Path(user_id): Path<String>,
    JsonBody(request): JsonBody<ExportRequest>,
) -> Result<Json<Value>, ApiError> {
    let user_id = parse_id("user_id", &user_id)?;
    let report = build_report(
        state.pool(),
        user_id,
        request.from,
        request.to,
        Some(&state.audit_signer),
    )
    .await
    .map_err(report_error)?;
    let value = serde_json::to_value(&report)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("serialising a report: {e}")))?;
    Ok(Json(value))
}

/// `POST /api/v1/audit/verify-export`: checks a report's signature against
/// the service's published key, and its content against the log.
#[utoipa::path(
    post,
    path = "/api/v1/audit/verify-export",
    tag = "audit",
    summary = "Verify an audit report against the published key and the log",
    request_body(content = Object, description = "A report as exported"),
    responses(
        (status = 200, description = "The verdict", body = ReportCheck),
        (status = 400, description = "Not a report", body = ErrorResponse),
        (status = 401, description = "No or a bad token", body = ErrorResponse),
        (status = 403, description = "Not an auditor or admin", body = ErrorResponse),
        (status = 503, description = "Appends in flight had not ended after 5 s (retry), or the database is unavailable", body = ErrorResponse),
    ),
)]
pub async fn verify_export(
    State(state): State<AppState>,
    _caller: Caller,
    body: axum::body::Bytes,
) -> Result<Json<ReportCheck>, ApiError> {
    let text = std::str::from_utf8(&body).map_err(|_| ApiError::BadRequest {
        field: None,
        reason: "request body: expected a JSON report".to_string(),
    })?;
    let trusted = state.audit_signer.public_key();
    let checked = verify_report(state.pool(), text, Some(&trusted))
        .await
        .map_err(report_error)?;
    Ok(Json(ReportCheck {
        clean: checked.is_clean(),
        digest_matches: checked.digest_matches,
        signature: checked.signature.to_string(),
        events_checked: checked.events_checked,
        streams_checked: checked.streams_checked,
        problems: checked.problems,
    }))
}

fn report_error(error: AuditError) -> ApiError {
    match error {
        AuditError::MalformedReport(reason) => ApiError::BadRequest {
            field: None,
            reason: format!("not an audit report: {reason}"),
        },
        AuditError::FutureTime { .. } => ApiError::validation("to", error.to_string()),
        AuditError::NotSettled { .. } => ApiError::Unavailable(error.to_string()),
        AuditError::Database(sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut) => {
            ApiError::Unavailable("database unavailable".to_string())
        }
        other => ApiError::Internal(anyhow::anyhow!(other)),
    }
}

/// What part of the log to verify: the rows recorded in `[from, to]`
/// (either end open). Without either, the whole log, each stream also
/// checked against its snapshot (the one other record of its length).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyLogRequest {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// The verdict on the log: clean when `broken_rows` is empty.
#[derive(Serialize, ToSchema)]
pub struct LogVerification {
    pub clean: bool,
    pub events_checked: u64,
    pub streams_checked: u64,
    pub seconds: f64,
    /// Each row (or missing row) found wrong, in stream order.
    pub broken_rows: Vec<BrokenRowBody>,
}

/// One row found wrong, named exactly.
#[derive(Serialize, ToSchema)]
pub struct BrokenRowBody {
    pub aggregate_type: String,
    pub aggregate_id: String,
    /// The sequence of the row found wrong; for a gap, the row after it.
    pub sequence: i64,
    pub global_position: Option<i64>,
    pub event_id: Option<uuid::Uuid>,
    /// What is wrong: `kind` (`hash_mismatch`, `broken_link`, `gap`,
    /// `duplicate_sequence`, `duplicate_event_id`,
    /// `duplicate_global_position`, `out_of_order`, `truncated`) and its
    /// details.
    #[schema(value_type = Object)]
    pub problem: Value,
    /// The finding in one sentence, as `muckard-replay verify` prints it.
    pub description: String,
}

/// One verification at a time per process: each reads the whole range of
/// the log, so a second one waits for none and is told to retry.
static VERIFYING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// `POST /api/v1/audit/verify`: every row's hash, its link to the row
/// before it, contiguous sequences, unique ids and positions, as
/// `muckard-replay verify` checks them.
#[utoipa::path(
    post,
    path = "/api/v1/audit/verify",
    tag = "audit",
    summary = "Verify the log's hash chains and name each broken row",
    description = "Reads the rows recorded in the range once, in stream order. This checks the \
        log against itself; checking it against checkpoints signed outside the database (which \
        an owner who rewrites every hash cannot forge) is `muckard-replay verify --anchors`.",
    request_body = VerifyLogRequest,
    responses(
        (status = 200, description = "The verdict, each broken row named", body = LogVerification),
        (status = 400, description = "A malformed body", body = ErrorResponse),
        (status = 401, description = "No or a bad token", body = ErrorResponse),
        (status = 403, description = "Not an auditor or admin", body = ErrorResponse),
        (status = 422, description = "`to` is before `from`", body = ErrorResponse),
        (status = 429, description = "A verification is already running in this instance", body = ErrorResponse),
        (status = 503, description = "The database is unavailable", body = ErrorResponse),
    ),
)]
pub async fn verify_log(
    State(state): State<AppState>,
    _caller: Caller,
    JsonBody(request): JsonBody<VerifyLogRequest>,
) -> Result<Json<LogVerification>, ApiError> {
    if let (Some(from), Some(to)) = (request.from, request.to) {
        if to < from {
            return Err(ApiError::validation("to", "must not be before from"));
        }
    }
    let _running = VERIFYING
        .try_acquire()
        .map_err(|_| ApiError::TooManyRequests {
            reason: "a verification is already running in this instance; retry when it ends"
                .to_string(),
            retry_after_secs: 5,
        })?;
    let range = projections::audit::verify::VerifyRange {
        from: request.from,
        to: request.to,
    };
    let report = projections::audit::verify::verify_log(
        state.pool(),
        range,
        &projections::audit::NoProgress,
    )
    .await
    .map_err(report_error)?;
    let broken_rows = report
        .broken_rows
        .iter()
        .map(|row| BrokenRowBody {
            aggregate_type: row.aggregate_type.clone(),
            aggregate_id: row.aggregate_id.clone(),
            sequence: row.sequence,
            global_position: row.global_position,
            event_id: row.event_id,
            problem: serde_json::to_value(&row.problem).unwrap_or(Value::Null),
            description: row.to_string(),
        })
        .collect();
    Ok(Json(LogVerification {
        clean: report.is_clean(),
        events_checked: report.events_checked,
        streams_checked: report.streams_checked,
        seconds: report.seconds,
        broken_rows,
    }))
}
