//! Audit reports for one user: every event of the user's aggregates in a
//! time range with its hash, each aggregate's resulting state, a SHA-256
//! digest over the canonical form of all of it and, when the service made
//! it, an Ed25519 signature over the same bytes, so the report can be
//! checked offline with the published public key and re-checked against
//! the log later ([`verify_report`]).
//!
//! The canonical form is RFC 8785, the JSON Canonicalization Scheme
//! (`serde_jcs`), so any JCS implementation reproduces the signed bytes
//! (`scripts/verify_report.py` does, with PyPI's `jcs` and
//! `cryptography`); payload and metadata are kept as the exact stored
//! text, so every event's hash can be recomputed from the report alone.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use crate::audit::chain::GENESIS_HASH;
use crate::audit::signing::{AuditSigner, PublicKey, ALGORITHM};
use crate::audit::stream::{fold_state, stream_events_through, StreamEvent, Until};
use crate::audit::AuditError;
use domain::{AggregateType, Ownership};
use event_log::Position;

pub const REPORT_FORMAT: &str = "muckard-audit-report/2";
pub const CANONICALISATION: &str = "RFC 8785 (JCS)";

/// The report file: its content, the digest over it, and the service's
/// signature over the same bytes (absent when made without a key, e.g. by
/// `muckard-replay export` without `AUDIT_SIGNING_KEY`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditReport {
    pub content: ReportContent,
    pub digest: ReportDigest,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<ReportSignature>,
}

/// An Ed25519 signature over the content's canonical (JCS) bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportSignature {
    pub algorithm: String,
    pub key_id: String,
    /// Hex of the signing key's public half; a verifier compares it with
    /// the published key before trusting it.
    pub public_key: String,
    /// Hex of the 64-byte signature.
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportContent {
    pub format: String,
    pub user_id: Uuid,
    /// Events recorded at or after this time (open when absent).
    pub from: Option<DateTime<Utc>>,
    /// Events recorded at or before this time; the states are as of it.
    pub to: DateTime<Utc>,
    /// The head of the log when the report was made: only events at or
    /// before this commit position are in it, so the report reads the same
    /// forever, whenever the transactions in flight then commit.
    pub to_position: String,
    pub generated_at: DateTime<Utc>,
    pub event_count: u64,
    pub streams: Vec<ReportStream>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportStream {
    pub aggregate_type: AggregateType,
    pub aggregate_id: String,
    /// The stream's events recorded in the range, in sequence order.
    pub events: Vec<StreamEvent>,
    /// The sequence and state after every event up to `to`.
    pub sequence_at_end: i64,
    pub state_at_end: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportDigest {
    pub algorithm: String,
    pub canonicalisation: String,
    pub value: String,
}

/// The streams that belong to `user_id` and have an event by `to`, of
/// every aggregate type ([`AggregateType::ALL`], each by its
/// [`Ownership`]): the user, their portfolio, and the keys and bots created
/// for them.
async fn user_streams(
    pool: &PgPool,
    user_id: Uuid,
    to: DateTime<Utc>,
    through: Position,
) -> Result<Vec<(AggregateType, String)>, AuditError> {
    let rows: Vec<(String, String)> = sqlx::query_as(&user_streams_query())
        .bind(user_id)
        .bind(to)
        .bind(through.transaction_text())
        .bind(through.global_position)
        .fetch_all(pool)
        .await?;
    rows.into_iter()
        .map(|(kind, id)| Ok((kind.parse()?, id)))
        .collect()
}

/// The query behind [`user_streams`]: one condition per aggregate type,
/// made from the registry (the field names are constants of the domain).
fn user_streams_query() -> String {
    let conditions: Vec<String> = AggregateType::ALL
        .iter()
        .map(|kind| match kind.ownership() {
            Ownership::StreamIdIsUser => format!(
                "(aggregate_type = '{}' AND aggregate_id = $1::text)",
                kind.as_str()
            ),
            Ownership::OwnerField(field) => format!(
                "(aggregate_type = '{}' AND payload->>'{field}' = $1::text)",
                kind.as_str()
            ),
        })
        .collect();
    format!(
        "SELECT aggregate_type, aggregate_id FROM events \
          WHERE sequence = 1 AND recorded_at <= $2 \
            AND (transaction_id, global_position) <= ($3::text::xid8, $4) AND ({}) \
          ORDER BY aggregate_type, aggregate_id",
        conditions.join(" OR ")
    )
}

fn in_range(event: &StreamEvent, from: Option<DateTime<Utc>>, to: DateTime<Utc>) -> bool {
    let Ok(at) = DateTime::parse_from_rfc3339(&event.fields.recorded_at) else {
        return false;
    };
    let at = at.with_timezone(&Utc);
    from.is_none_or(|from| at >= from) && at <= to
}

/// Builds the report for `user_id` over `[from, to]`; `to` defaults to
/// the database's clock now.
pub async fn build_report(
    pool: &PgPool,
    user_id: Uuid,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    signer: Option<&AuditSigner>,
) -> Result<AuditReport, AuditError> {
    let now: DateTime<Utc> = sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(pool)
        .await?;
    let to = to.unwrap_or(now);
    let mut streams = Vec::new();
    let mut event_count = 0u64;
    let head = event_log::LogReader::new()
        .head(pool)
        .await
        .map_err(|e| AuditError::Unexpected(e.to_string()))?;
    for (kind, aggregate_id) in user_streams(pool, user_id, to, head).await? {
        let events = stream_events_through(
            pool,
            kind,
            &aggregate_id,
            Until::AsOf { as_of: to },
            Some(head),
        )
        .await?;
        let state_at_end = fold_state(kind, &events)?;
        let sequence_at_end = events.last().map_or(0, |e| e.fields.sequence);
        let events: Vec<StreamEvent> = events
            .into_iter()
            .filter(|e| in_range(e, from, to))
            .collect();
        event_count += events.len() as u64;
        streams.push(ReportStream {
            aggregate_type: kind,
            aggregate_id,
            events,
            sequence_at_end,
            state_at_end,
        });
    }
    let content = ReportContent {
        format: REPORT_FORMAT.to_string(),
        user_id,
        from,
        to,
        to_position: head.to_string(),
        generated_at: now,
        event_count,
        streams,
    };
    let value =
        serde_json::to_value(&content).map_err(|e| AuditError::Unexpected(e.to_string()))?;
    let canonical = canonical_json(&value);
    let signature = signer.map(|signer| {
        let key = signer.public_key();
        ReportSignature {
            algorithm: key.algorithm,
            key_id: key.key_id,
            public_key: key.public_key,
            value: signer.sign(canonical.as_bytes()),
        }
    });
    Ok(AuditReport {
        content,
        digest: digest_of(&value),
        signature,
    })
}

/// The digest of a report's content, as it stands in the file.
pub fn digest_of(content: &Value) -> ReportDigest {
    ReportDigest {
        algorithm: "sha256".to_string(),
        canonicalisation: CANONICALISATION.to_string(),
        value: hex::encode(Sha256::digest(canonical_json(content).as_bytes())),
    }
}

/// `value` in its RFC 8785 (JCS) canonical form.
pub fn canonical_json(value: &Value) -> String {
    // A `Value` holds no non-finite number, the one thing JCS refuses.
    serde_jcs::to_string(value).expect("JSON values canonicalise")
}

/// The outcome of [`verify_report`]: empty `problems` means the report is
/// intact and agrees with the log.
#[derive(Debug, Clone, Serialize)]
pub struct ReportVerification {
    pub digest_matches: bool,
    /// `valid`, `invalid`, `untrusted_key` (valid, but not by the key the
    /// verifier trusts) or `unsigned`.
    pub signature: &'static str,
    pub events_checked: u64,
    pub streams_checked: u64,
    pub problems: Vec<String>,
}

impl ReportVerification {
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Re-checks a report file's text: the digest over its content; every
/// event's hash and link from the report alone; and, against the log, that
/// the user's streams, their events in the range, every hashed field and
/// the resulting states are exactly what the log holds now.
pub async fn verify_report(
    pool: &PgPool,
    text: &str,
    trusted: Option<&PublicKey>,
) -> Result<ReportVerification, AuditError> {
    let file: Value = serde_json::from_str(text)
        .map_err(|e| AuditError::MalformedReport(format!("not JSON: {e}")))?;
    let content_value = file
        .get("content")
        .ok_or_else(|| AuditError::MalformedReport("no content".to_string()))?;
    let stated: ReportDigest = serde_json::from_value(
        file.get("digest")
            .cloned()
            .ok_or_else(|| AuditError::MalformedReport("no digest".to_string()))?,
    )
    .map_err(|e| AuditError::MalformedReport(format!("digest: {e}")))?;
    let content: ReportContent = serde_json::from_value(content_value.clone())
        .map_err(|e| AuditError::MalformedReport(format!("content: {e}")))?;
    if content.format != REPORT_FORMAT {
        return Err(AuditError::MalformedReport(format!(
            "format {:?} is not {REPORT_FORMAT}",
            content.format
        )));
    }

    let mut problems = Vec::new();
    let signed: Option<ReportSignature> = match file.get("signature") {
        None => None,
        Some(value) => Some(
            serde_json::from_value(value.clone())
                .map_err(|e| AuditError::MalformedReport(format!("signature: {e}")))?,
        ),
    };
    let signature = check_signature(content_value, signed.as_ref(), trusted);
    match signature {
        "valid" => {}
        "unsigned" if trusted.is_none() => {}
        "unsigned" => problems.push("signature: the report is not signed".to_string()),
        "untrusted_key" => problems
            .push("signature: valid, but made with a key other than the trusted one".to_string()),
        _ => problems
            .push("signature: does not verify against the report's content and key".to_string()),
    }
    let recomputed = digest_of(content_value);
    let digest_matches = stated.algorithm == "sha256" && stated.value == recomputed.value;
    if !digest_matches {
        problems.push(format!(
            "digest: the file states {} but its content digests to {}",
            stated.value, recomputed.value
        ));
    }

    let mut events_checked = 0u64;
    for stream in &content.streams {
        events_checked += stream.events.len() as u64;
        problems.extend(check_stream_alone(stream));
    }
    let counted: u64 = content.streams.iter().map(|s| s.events.len() as u64).sum();
    if counted != content.event_count {
        problems.push(format!(
            "event_count says {} but the report holds {counted} events",
            content.event_count
        ));
    }

    // Against the log as it stands now.
    let through = to_position(&content)?;
    let expected = user_streams(pool, content.user_id, content.to, through).await?;
    let listed: Vec<(AggregateType, String)> = content
        .streams
        .iter()
        .map(|s| (s.aggregate_type, s.aggregate_id.clone()))
        .collect();
    for (kind, id) in &expected {
        if !listed.contains(&(*kind, id.clone())) {
            problems.push(format!(
                "{kind}/{id}: in the log but missing from the report"
            ));
        }
    }
    for stream in &content.streams {
        let key = (stream.aggregate_type, stream.aggregate_id.clone());
        if !expected.contains(&key) {
            problems.push(format!(
                "{}/{}: in the report but not a stream of user {} in the log",
                key.0, key.1, content.user_id
            ));
            continue;
        }
        problems.extend(check_stream_against_log(pool, &content, stream).await?);
    }
    Ok(ReportVerification {
        digest_matches,
        signature,
        events_checked,
        streams_checked: content.streams.len() as u64,
        problems,
    })
}

/// The signature's verdict (see [`ReportVerification::signature`]).
fn check_signature(
    content: &Value,
    signed: Option<&ReportSignature>,
    trusted: Option<&PublicKey>,
) -> &'static str {
    let Some(signed) = signed else {
        return "unsigned";
    };
    let Ok(key) = PublicKey::from_hex(&signed.public_key) else {
        return "invalid";
    };
    if signed.algorithm != ALGORITHM
        || !key.verifies(canonical_json(content).as_bytes(), &signed.value)
    {
        return "invalid";
    }
    match trusted {
        Some(trusted) if trusted.public_key != key.public_key => "untrusted_key",
        _ => "valid",
    }
}

/// What the report alone shows: each event belongs to its stream, hashes
/// to its stated hash, and links to the event before it.
fn check_stream_alone(stream: &ReportStream) -> Vec<String> {
    let mut problems = Vec::new();
    let name = format!("{}/{}", stream.aggregate_type, stream.aggregate_id);
    let mut previous: Option<&StreamEvent> = None;
    for event in &stream.events {
        let sequence = event.fields.sequence;
        if event.fields.aggregate_type != stream.aggregate_type.as_str()
            || event.fields.aggregate_id != stream.aggregate_id
        {
            problems.push(format!(
                "{name} sequence {sequence}: event belongs to {}/{}",
                event.fields.aggregate_type, event.fields.aggregate_id
            ));
        }
        let recomputed = event.fields.hash(&event.prev_hash);
        if recomputed != event.hash {
            problems.push(format!(
                "{name} sequence {sequence}: content does not match its hash (stated {}, recomputed {recomputed})",
                event.hash
            ));
        }
        match previous {
            Some(before) if before.fields.sequence + 1 != sequence => problems.push(format!(
                "{name} sequence {sequence}: follows sequence {} in the report",
                before.fields.sequence
            )),
            Some(before) if before.hash != event.prev_hash => problems.push(format!(
                "{name} sequence {sequence}: prev_hash is not the hash of sequence {}",
                before.fields.sequence
            )),
            None if sequence == 1 && event.prev_hash != GENESIS_HASH => problems.push(format!(
                "{name} sequence 1: prev_hash is not the genesis hash"
            )),
            _ => {}
        }
        previous = Some(event);
    }
    problems
}

fn to_position(content: &ReportContent) -> Result<Position, AuditError> {
    content
        .to_position
        .parse()
        .map_err(|reason| AuditError::MalformedReport(format!("to_position: {reason}")))
}

async fn check_stream_against_log(
    pool: &PgPool,
    content: &ReportContent,
    stream: &ReportStream,
) -> Result<Vec<String>, AuditError> {
    let name = format!("{}/{}", stream.aggregate_type, stream.aggregate_id);
    let logged = stream_events_through(
        pool,
        stream.aggregate_type,
        &stream.aggregate_id,
        Until::AsOf { as_of: content.to },
        Some(to_position(content)?),
    )
    .await?;
    let mut problems = log_chain_problems(&name, &logged);
    problems.extend(reported_range_problems(&name, content, stream, &logged));
    problems.extend(end_state_problems(&name, stream, &logged)?);
    Ok(problems)
}

/// The log's own stream: every row matches its hash, sequences have no
/// gap and each `prev_hash` links to the row before.
fn log_chain_problems(name: &str, logged: &[StreamEvent]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut previous_hash = GENESIS_HASH.to_string();
    for (index, event) in logged.iter().enumerate() {
        let recomputed = event.fields.hash(&event.prev_hash);
        if recomputed != event.hash {
            problems.push(format!(
                "{name} sequence {}: the log's row does not match its hash",
                event.fields.sequence
            ));
        }
        if event.fields.sequence != index as i64 + 1 {
            problems.push(format!(
                "{name} sequence {}: the log's stream has a gap before it",
                event.fields.sequence
            ));
        } else if event.prev_hash != previous_hash {
            problems.push(format!(
                "{name} sequence {}: the log's prev_hash link is broken",
                event.fields.sequence
            ));
        }
        previous_hash = event.hash.clone();
    }
    problems
}

/// The report's events against the log's events in the report's time
/// range: none missing, none different, none extra.
fn reported_range_problems(
    name: &str,
    content: &ReportContent,
    stream: &ReportStream,
    logged: &[StreamEvent],
) -> Vec<String> {
    let mut problems = Vec::new();
    let in_range: Vec<&StreamEvent> = logged
        .iter()
        .filter(|e| in_range(e, content.from, content.to))
        .collect();
    for logged_event in &in_range {
        match stream
            .events
            .iter()
            .find(|e| e.fields.sequence == logged_event.fields.sequence)
        {
            None => problems.push(format!(
                "{name} sequence {}: in the log but missing from the report",
                logged_event.fields.sequence
            )),
            Some(reported) if reported != *logged_event => problems.push(format!(
                "{name} sequence {}: the report's event differs from the log's (log hash {}, report hash {})",
                logged_event.fields.sequence, logged_event.hash, reported.hash
            )),
            Some(_) => {}
        }
    }
    for reported in &stream.events {
        if !in_range
            .iter()
            .any(|e| e.fields.sequence == reported.fields.sequence)
        {
            problems.push(format!(
                "{name} sequence {}: in the report but not in the log's range",
                reported.fields.sequence
            ));
        }
    }
    problems
}

/// The report's final sequence and state against what the log folds to.
fn end_state_problems(
    name: &str,
    stream: &ReportStream,
    logged: &[StreamEvent],
) -> Result<Vec<String>, AuditError> {
    let mut problems = Vec::new();
    let state = fold_state(stream.aggregate_type, logged)?;
    let sequence = logged.last().map_or(0, |e| e.fields.sequence);
    if sequence != stream.sequence_at_end {
        problems.push(format!(
            "{name}: the report ends at sequence {} but the log at {sequence}",
            stream.sequence_at_end
        ));
    }
    if state != stream.state_at_end {
        problems.push(format!(
            "{name}: the report's resulting state differs from the state the log folds to"
        ));
    }
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn canonical_json_sorts_keys_at_every_depth_and_drops_whitespace() {
        let value: Value = serde_json::from_str(
            r#"{ "b": [ {"z": 1, "a": "x\"y"} ], "a": null, "é": 2, "B": true }"#,
        )
        .unwrap();
        assert_eq!(
            canonical_json(&value),
            r#"{"B":true,"a":null,"b":[{"a":"x\"y","z":1}],"é":2}"#
        );
    }

    #[test]
    fn the_digest_changes_with_any_content_change() {
        let a = digest_of(&json!({ "events": [ { "payload": "{\"q\":\"1\"}" } ] }));
        let b = digest_of(&json!({ "events": [ { "payload": "{\"q\":\"2\"}" } ] }));
        assert_eq!(a.value.len(), 64);
        assert_ne!(a.value, b.value);
        assert_eq!(
            a.value,
            digest_of(&json!({ "events": [ { "payload": "{\"q\":\"1\"}" } ] })).value
        );
    }
}
