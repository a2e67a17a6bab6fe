//! The idempotency ledger: the first response to an `Idempotency-Key` is
//! stored and returned for every repeat, which appends nothing.

use serde_json::Value;
use sqlx::PgPool;

use crate::error::CommandError;

/// What to do with a request that carries an idempotency key.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// First time: run it, then `complete` or `release` the claim.
    Fresh,
    /// Seen and finished: answer with the stored response.
    Replay { status: u16, body: Value },
    /// Seen and still running.
    InFlight,
    /// The key was used for a different request.
    Mismatch,
}

pub async fn claim(
    pool: &PgPool,
    scope: &str,
    key: &str,
    request_fingerprint: &str,
) -> Result<Claim, CommandError> {
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (scope, idempotency_key, request_fingerprint) \
         VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(scope)
    .bind(key)
    .bind(request_fingerprint)
    .execute(pool)
    .await?
    .rows_affected();
    if inserted == 1 {
        return Ok(Claim::Fresh);
    }
    let row: Option<(String, Option<i32>, Option<Value>)> = sqlx::query_as(
        "SELECT request_fingerprint, status_code, response_body FROM idempotency_keys \
         WHERE scope = $1 AND idempotency_key = $2",
    )
    .bind(scope)
    .bind(key)
    .fetch_optional(pool)
    .await?;
    Ok(match row {
        // Released between our insert and select: the caller may retry.
        None => Claim::InFlight,
        Some((fingerprint, _, _)) if fingerprint != request_fingerprint => Claim::Mismatch,
        Some((_, Some(status), body)) => Claim::Replay {
            status: u16::try_from(status).unwrap_or(500),
            body: body.unwrap_or(Value::Null),
        },
        Some((_, None, _)) => Claim::InFlight,
    })
}

/// Stores the response to a fresh claim.
pub async fn complete(
    pool: &PgPool,
    scope: &str,
    key: &str,
    status: u16,
    body: &Value,
) -> Result<(), CommandError> {
    sqlx::query(
        "UPDATE idempotency_keys SET status_code = $3, response_body = $4, completed_at = now() \
         WHERE scope = $1 AND idempotency_key = $2",
    )
    .bind(scope)
    .bind(key)
    .bind(i32::from(status))
    .bind(body)
    .execute(pool)
    .await?;
    Ok(())
}

/// Forgets a claim whose request failed in a way worth retrying.
pub async fn release(pool: &PgPool, scope: &str, key: &str) -> Result<(), CommandError> {
    sqlx::query("DELETE FROM idempotency_keys WHERE scope = $1 AND idempotency_key = $2")
        .bind(scope)
        .bind(key)
        .execute(pool)
        .await?;
    Ok(())
}
