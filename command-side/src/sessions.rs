//! Refresh tokens: random, stored only as SHA-256 digests, used once.

use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::CommandError;
use crate::framework::CommandSide;

/// `(user_id, family_id, expires_at, revoked_at)` of a stored token.
type StoredRefreshToken = (Uuid, Uuid, DateTime<Utc>, Option<DateTime<Utc>>);

fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl CommandSide {
    /// Issues a refresh token for `user_id` in a new family.
    pub async fn issue_refresh_token(
        &self,
        user_id: Uuid,
        ttl: Duration,
    ) -> Result<String, CommandError> {
        let token = new_token();
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, user_id, family_id, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(digest(&token))
        .bind(user_id)
        .bind(Uuid::new_v4())
        .bind(Utc::now() + ttl)
        .execute(&self.pool)
        .await?;
        Ok(token)
    }

    /// Exchanges a refresh token for its successor. A token presented a
    /// second time means it leaked: its whole family is revoked.
    pub async fn rotate_refresh_token(
        &self,
        token: &str,
        ttl: Duration,
    ) -> Result<(Uuid, String), CommandError> {
        let mut tx = self.pool.begin().await?;
        let row: Option<StoredRefreshToken> = sqlx::query_as(
            "SELECT user_id, family_id, expires_at, revoked_at FROM refresh_tokens \
                 WHERE token_hash = $1 FOR UPDATE",
        )
        .bind(digest(token))
        .fetch_optional(&mut *tx)
        .await?;
        let Some((user_id, family_id, expires_at, revoked_at)) = row else {
            return Err(CommandError::InvalidRefreshToken);
        };
        if revoked_at.is_some() {
            sqlx::query(
                "UPDATE refresh_tokens SET revoked_at = now() \
                 WHERE family_id = $1 AND revoked_at IS NULL",
            )
            .bind(family_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            tracing::warn!(%user_id, %family_id, "refresh token reused; family revoked");
            return Err(CommandError::InvalidRefreshToken);
        }
        if expires_at <= Utc::now() {
            return Err(CommandError::InvalidRefreshToken);
        }
        let successor = new_token();
        sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = now(), replaced_by = $2 WHERE token_hash = $1",
        )
        .bind(digest(token))
        .bind(digest(&successor))
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, user_id, family_id, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(digest(&successor))
        .bind(user_id)
        .bind(family_id)
        .bind(Utc::now() + ttl)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((user_id, successor))
    }

    /// Revokes every live refresh token of `user_id` (a role change);
    /// returns how many.
    pub async fn revoke_refresh_tokens_of(&self, user_id: Uuid) -> Result<u64, CommandError> {
        revoke_refresh_tokens_on(&self.pool, user_id).await
    }

    /// Log-out: revokes the whole family of `token` (the token and every
    /// token it was renewed from or into). An unknown token revokes nothing
    /// and is not an error, so the answer tells nothing about it.
    pub async fn revoke_refresh_family(&self, token: &str) -> Result<(), CommandError> {
        sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = now() \
             WHERE revoked_at IS NULL AND family_id = \
               (SELECT family_id FROM refresh_tokens WHERE token_hash = $1)",
        )
        .bind(digest(token))
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// Revokes every live refresh token of `user_id` through `executor` (the
/// pool, or a transaction such as an erasure's); returns how many.
pub(crate) async fn revoke_refresh_tokens_on<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    user_id: Uuid,
) -> Result<u64, CommandError> {
    let revoked = sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = now() \
         WHERE user_id = $1 AND revoked_at IS NULL",
    )
    .bind(user_id)
    .execute(executor)
    .await?
    .rows_affected();
    if revoked > 0 {
        tracing::info!(%user_id, revoked, "refresh tokens revoked");
    }
    Ok(revoked)
}
