//! Signed checkpoints of the log, kept outside the database, and the
//! check of the log against them: what shows a change made by whoever
//! owns the database, which the hash chain alone cannot (a stream cut at
//! its tail, deleted whole or re-hashed from a row to its end is a
//! self-consistent chain).
//!
//! A checkpoint at commit position P (ARCHITECTURE.md, "Checkpoints",
//! specifies it byte for byte):
//! - `digest`: lower-case hex SHA-256 over every stream's head at P (its
//!   last event at or before P in commit order), in the order of
//!   `(aggregate_type, aggregate_id)` by bytes, each written as
//!   `N(aggregate_type) N(aggregate_id) N(sequence) N(hash)` with
//!   `N(x) = <byte length of x> ":" x ","` (the hash chain's encoding);
//! - `events`, `streams`: how many events stand at or before P, and in how
//!   many streams;
//! - `heads`: the heads of the streams that changed since the previous
//!   checkpoint (all of them in the first), so a verifier holding every
//!   checkpoint knows every stream's head at each P and can name what
//!   differs;
//! - `signature`: Ed25519 by the service's audit key over the RFC 8785
//!   (JCS) form of the checkpoint without its `signature` field.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use event_log::Position;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::audit::export::canonical_json;
use crate::audit::signing::{AuditSigner, PublicKey, ALGORITHM};
use crate::audit::AuditError;

pub const CHECKPOINT_FORMAT: &str = "muckard-checkpoint/1";

/// One stream's last event at a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StreamHead {
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub hash: String,
}

/// A signed checkpoint of the log (see the module documentation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub format: String,
    /// `<transaction_id>.<global_position>`, like a command's position.
    pub position: String,
    /// The position of the checkpoint before this one, if any.
    pub previous: Option<String>,
    pub events: i64,
    pub streams: i64,
    pub digest: String,
    pub heads: Vec<StreamHead>,
    pub signed_at: DateTime<Utc>,
    pub algorithm: String,
    pub key_id: String,
    pub public_key: String,
    /// Hex of the Ed25519 signature; absent from the signed bytes.
    #[serde(default)]
    pub signature: String,
}

impl Checkpoint {
    /// The bytes the signature covers: the JCS form without `signature`.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut value = serde_json::to_value(self).expect("a checkpoint serialises");
        if let Value::Object(map) = &mut value {
            map.remove("signature");
        }
        canonical_json(&value).into_bytes()
    }

    pub fn position(&self) -> Result<Position, AuditError> {
        self.position
            .parse()
            .map_err(|reason| AuditError::MalformedReport(format!("checkpoint position: {reason}")))
    }
}

/// Every stream's head at `position`, in digest order.
async fn heads_at(pool: &PgPool, position: Position) -> Result<Vec<StreamHead>, AuditError> {
    let rows: Vec<(String, String, i64, String)> = sqlx::query_as(
        "SELECT DISTINCT ON (aggregate_type COLLATE \"C\", aggregate_id COLLATE \"C\") \
                aggregate_type, aggregate_id, sequence, hash \
           FROM events \
          WHERE (transaction_id, global_position) <= ($1::text::xid8, $2) \
          ORDER BY aggregate_type COLLATE \"C\", aggregate_id COLLATE \"C\", sequence DESC",
    )
    .bind(position.transaction_text())
    .bind(position.global_position)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(aggregate_type, aggregate_id, sequence, hash)| StreamHead {
                aggregate_type,
                aggregate_id,
                sequence,
                hash,
            },
        )
        .collect())
}

fn field(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(format!("{}:", text.len()).as_bytes());
    out.extend_from_slice(text.as_bytes());
    out.push(b',');
}

/// The digest over `heads` (in digest order).
pub fn digest_of_heads(heads: &[StreamHead]) -> String {
    let mut bytes = Vec::new();
    for head in heads {
        field(&mut bytes, &head.aggregate_type);
        field(&mut bytes, &head.aggregate_id);
        field(&mut bytes, &head.sequence.to_string());
        field(&mut bytes, &head.hash);
    }
    hex::encode(Sha256::digest(&bytes))
}

/// Events at or before `position`.
async fn events_up_to(pool: &PgPool, position: Position) -> Result<i64, AuditError> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE (transaction_id, global_position) <= ($1::text::xid8, $2)",
    )
    .bind(position.transaction_text())
    .bind(position.global_position)
    .fetch_one(pool)
    .await?)
}

/// A checkpoint of the log at its head, signed by `signer`; `previous` is
/// the last checkpoint made, whose position bounds the changed heads.
pub async fn make_checkpoint(
    pool: &PgPool,
    signer: &AuditSigner,
    previous: Option<&Checkpoint>,
) -> Result<Checkpoint, AuditError> {
    let position = event_log::LogReader::new()
        .head(pool)
        .await
        .map_err(|e| AuditError::Unexpected(e.to_string()))?;
    let heads = heads_at(pool, position).await?;
    let since = previous.map(Checkpoint::position).transpose()?;
    let changed: Vec<StreamHead> = match since {
        None => heads.clone(),
        Some(since) => {
            let streams: Vec<(String, String)> = sqlx::query_as(
                "SELECT DISTINCT aggregate_type, aggregate_id FROM events \
                  WHERE (transaction_id, global_position) > ($1::text::xid8, $2) \
                    AND (transaction_id, global_position) <= ($3::text::xid8, $4)",
            )
            .bind(since.transaction_text())
            .bind(since.global_position)
            .bind(position.transaction_text())
            .bind(position.global_position)
            .fetch_all(pool)
            .await?;
            heads
                .iter()
                .filter(|h| streams.contains(&(h.aggregate_type.clone(), h.aggregate_id.clone())))
                .cloned()
                .collect()
        }
    };
    let key = signer.public_key();
    let mut checkpoint = Checkpoint {
        format: CHECKPOINT_FORMAT.to_string(),
        position: position.to_string(),
        previous: previous.map(|p| p.position.clone()),
        events: events_up_to(pool, position).await?,
        streams: heads.len() as i64,
        digest: digest_of_heads(&heads),
        heads: changed,
        signed_at: Utc::now(),
        algorithm: key.algorithm,
        key_id: key.key_id,
        public_key: key.public_key,
        signature: String::new(),
    };
    checkpoint.signature = signer.sign(&checkpoint.signed_bytes());
    Ok(checkpoint)
}

/// Writes `checkpoint` into `dir` as `<transaction>.<global position>.json`.
pub fn write_to_dir(dir: &std::path::Path, checkpoint: &Checkpoint) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let name = format!("{}.json", checkpoint.position);
    let text = serde_json::to_string_pretty(checkpoint).map_err(std::io::Error::other)?;
    std::fs::write(dir.join(name), text + "\n")
}

/// Every checkpoint file in `dir` (a missing directory holds none).
pub fn read_dir(dir: &std::path::Path) -> Result<Vec<Checkpoint>, AuditError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => {
            return Err(AuditError::Unexpected(format!(
                "{}: {error}",
                dir.display()
            )))
        }
    };
    let mut checkpoints = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| AuditError::Unexpected(e.to_string()))?
            .path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| AuditError::Unexpected(format!("{}: {e}", path.display())))?;
        let checkpoint = serde_json::from_str(&text).map_err(|e| {
            AuditError::MalformedReport(format!("checkpoint {}: {e}", path.display()))
        })?;
        checkpoints.push(checkpoint);
    }
    Ok(checkpoints)
}

/// The checkpoint of `checkpoints` with the highest position.
pub fn latest(checkpoints: &[Checkpoint]) -> Option<&Checkpoint> {
    checkpoints
        .iter()
        .filter_map(|c| c.position().ok().map(|p| (p, c)))
        .max_by_key(|(p, _)| *p)
        .map(|(_, c)| c)
}

/// What the check of the log against the checkpoints found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AnchorReport {
    pub checkpoints: usize,
    pub streams_checked: usize,
    pub findings: Vec<String>,
}

impl AnchorReport {
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }
}

/// Checks the log against `checkpoints` (any order; signed by `trusted`):
/// each signature, then, in position order, every stream head a checkpoint
/// knows (its own and the earlier ones' heads) against the log's heads at
/// its position, and its digest and counts. Each difference is named.
pub async fn verify_against_checkpoints(
    pool: &PgPool,
    mut checkpoints: Vec<Checkpoint>,
    trusted: &PublicKey,
) -> Result<AnchorReport, AuditError> {
    let mut report = AnchorReport::default();
    let mut positioned = Vec::new();
    for checkpoint in checkpoints.drain(..) {
        let position = checkpoint.position()?;
        let valid = checkpoint.format == CHECKPOINT_FORMAT
            && checkpoint.algorithm == ALGORITHM
            && checkpoint.public_key == trusted.public_key
            && trusted.verifies(&checkpoint.signed_bytes(), &checkpoint.signature);
        if valid {
            positioned.push((position, checkpoint));
        } else {
            report.findings.push(format!(
                "checkpoint at {}: its signature does not verify with the trusted key; ignored",
                checkpoint.position
            ));
        }
    }
    positioned.sort_by_key(|(position, _)| *position);
    // Each checkpoint's own heads are checked at its position, one indexed
    // lookup a stream (a stream tampered with and then appended to again
    // shows there); the whole log is compared once, at the last checkpoint,
    // with every head the checkpoints know by then, its digest and count.
    let mut known: BTreeMap<(String, String), StreamHead> = BTreeMap::new();
    for (position, checkpoint) in &positioned {
        for signed in &checkpoint.heads {
            let actual = head_at(pool, *position, signed).await?;
            report
                .findings
                .extend(compare_head(&checkpoint.position, signed, actual.as_ref()));
            known.insert(
                (signed.aggregate_type.clone(), signed.aggregate_id.clone()),
                signed.clone(),
            );
        }
    }
    if let Some((position, last)) = positioned.last() {
        let actual = heads_at(pool, *position).await?;
        report
            .findings
            .extend(compare_heads(&last.position, &known, &actual));
        if digest_of_heads(&actual) != last.digest {
            report.findings.push(format!(
                "checkpoint at {}: the log's heads there digest differently from the signed digest",
                last.position
            ));
        }
        let events = events_up_to(pool, *position).await?;
        if events != last.events {
            report.findings.push(format!(
                "checkpoint at {}: it counted {} events at or before it, the log holds {events}",
                last.position, last.events
            ));
        }
    }
    // A stream found at several checkpoints is named once per finding.
    let mut seen = std::collections::HashSet::new();
    report
        .findings
        .retain(|finding| seen.insert(finding.clone()));
    report.checkpoints = positioned.len();
    report.streams_checked = known.len();
    Ok(report)
}

/// One stream's head at `position` (its last event at or before it).
async fn head_at(
    pool: &PgPool,
    position: Position,
    stream: &StreamHead,
) -> Result<Option<StreamHead>, AuditError> {
    let row: Option<(i64, String)> = sqlx::query_as(
        "SELECT sequence, hash FROM events \
          WHERE aggregate_type = $1 AND aggregate_id = $2 \
            AND (transaction_id, global_position) <= ($3::text::xid8, $4) \
          ORDER BY sequence DESC LIMIT 1",
    )
    .bind(&stream.aggregate_type)
    .bind(&stream.aggregate_id)
    .bind(position.transaction_text())
    .bind(position.global_position)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(sequence, hash)| StreamHead {
        aggregate_type: stream.aggregate_type.clone(),
        aggregate_id: stream.aggregate_id.clone(),
        sequence,
        hash,
    }))
}

/// What differs between a signed head and the log's head of that stream
/// at the checkpoint's `position`, if anything.
fn compare_head(
    position: &str,
    signed: &StreamHead,
    actual: Option<&StreamHead>,
) -> Option<String> {
    let stream = format!("{}/{}", signed.aggregate_type, signed.aggregate_id);
    match actual {
        None => Some(format!(
            "{stream}: deleted whole (checkpoint at {position} saw it at sequence {})",
            signed.sequence
        )),
        Some(head) if head.sequence < signed.sequence => Some(format!(
            "{stream}: cut at its tail (checkpoint at {position} saw sequence {}, the log ends at {})",
            signed.sequence, head.sequence
        )),
        Some(head) if head.sequence > signed.sequence => Some(format!(
            "{stream}: rows inserted behind the service's back (checkpoint at {position} saw \
             sequence {} as its last, the log has {} at or before that position)",
            signed.sequence, head.sequence
        )),
        Some(head) if head.hash != signed.hash => Some(format!(
            "{stream}: changed or re-hashed up to sequence {} (checkpoint at {position} signed \
             another hash for it)",
            signed.sequence
        )),
        Some(_) => None,
    }
}

/// Names each stream whose head at `position` differs from the signed one.
fn compare_heads(
    position: &str,
    known: &BTreeMap<(String, String), StreamHead>,
    actual: &[StreamHead],
) -> Vec<String> {
    let mut findings = Vec::new();
    let in_log: BTreeMap<(String, String), &StreamHead> = actual
        .iter()
        .map(|h| ((h.aggregate_type.clone(), h.aggregate_id.clone()), h))
        .collect();
    for (key, signed) in known {
        findings.extend(compare_head(position, signed, in_log.get(key).copied()));
    }
    for (key, head) in &in_log {
        if !known.contains_key(key) {
            findings.push(format!(
                "{}/{}: rows inserted behind the service's back (no checkpoint up to {position} \
                 knows the stream, the log has it at sequence {})",
                key.0, key.1, head.sequence
            ));
        }
    }
    findings
}

/// Compares the log with the links the Kafka mirror published (its
/// messages' `hash` headers, within retention): a mirrored event whose row
/// is gone or holds another hash is named. (A row never mirrored is not:
/// retention drops old messages, so absence from Kafka proves nothing.)
pub async fn compare_with_mirror(
    pool: &PgPool,
    links: &[(String, String, i64, String)],
) -> Result<Vec<String>, AuditError> {
    let mut findings = Vec::new();
    let rows: Vec<(String, String, i64, String)> = sqlx::query_as(
        "SELECT e.aggregate_type, e.aggregate_id, e.sequence, e.hash FROM events e \
           JOIN subscriber_checkpoints c ON c.subscriber = 'kafka_mirror' \
          WHERE (e.transaction_id, e.global_position) <= (c.transaction_id, c.global_position)",
    )
    .fetch_all(pool)
    .await?;
    let in_log: BTreeMap<(String, String, i64), String> = rows
        .into_iter()
        .map(|(t, id, sequence, hash)| ((t, id, sequence), hash))
        .collect();
    let mut mirrored = std::collections::BTreeSet::new();
    for (aggregate_type, aggregate_id, sequence, hash) in links {
        let key = (aggregate_type.clone(), aggregate_id.clone(), *sequence);
        mirrored.insert(key.clone());
        match in_log.get(&key) {
            None => {
                // Not at or before the checkpoint: look at the whole log.
                let present: Option<String> = sqlx::query_scalar(
                    "SELECT hash FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 \
                       AND sequence = $3",
                )
                .bind(aggregate_type)
                .bind(aggregate_id)
                .bind(sequence)
                .fetch_optional(pool)
                .await?;
                match present {
                    None => findings.push(format!(
                        "{aggregate_type}/{aggregate_id} sequence {sequence}: mirrored to Kafka, gone from the log"
                    )),
                    Some(logged) if &logged != hash => findings.push(format!(
                        "{aggregate_type}/{aggregate_id} sequence {sequence}: the log's hash differs from the one mirrored to Kafka"
                    )),
                    Some(_) => {}
                }
            }
            Some(logged) if logged != hash => findings.push(format!(
                "{aggregate_type}/{aggregate_id} sequence {sequence}: the log's hash differs from the one mirrored to Kafka"
            )),
            Some(_) => {}
        }
    }
    Ok(findings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_encodes_each_field_with_its_length() {
        let head = StreamHead {
            aggregate_type: "Bot".to_string(),
            aggregate_id: "b".to_string(),
            sequence: 12,
            hash: "ab".to_string(),
        };
        let expected = hex::encode(Sha256::digest(b"3:Bot,1:b,2:12,2:ab,"));
        assert_eq!(digest_of_heads(&[head]), expected);
        assert_eq!(digest_of_heads(&[]), hex::encode(Sha256::digest(b"")));
    }
}
