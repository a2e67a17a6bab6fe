//! Refresh tokens: random, stored only as SHA-256 digests, used once. A
//! session is a token family (one log-in and every renewal of it): its
//! `sessions` row says when it began and from which client, and access
//! tokens name it (`sid`), so revoking it ends its access tokens too.

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
    /// Issues a refresh token for `user_id` in a new family: a new session
    /// of `client` (the User-Agent, cut to 200 characters, control
    /// characters dropped). Returns the token and the session's id.
    pub async fn issue_refresh_token(
        &self,
        user_id: Uuid,
        ttl: Duration,
        client: Option<&str>,
    ) -> Result<(String, Uuid), CommandError> {
        let token = new_token();
        let family_id = Uuid::new_v4();
        let client = client.map(|client| {
            client
                .chars()
                .filter(|c| !c.is_control())
                .take(200)
                .collect::<String>()
        });
        let mut transaction = self.pool.begin().await?;
        sqlx::query("INSERT INTO sessions (family_id, user_id, client) VALUES ($1, $2, $3)")
            .bind(family_id)
            .bind(user_id)
            .bind(client)
            .execute(&mut *transaction)
            .await?;
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, user_id, family_id, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(digest(&token))
        .bind(user_id)
        .bind(family_id)
        .bind(Utc::now() + ttl)
        .execute(&mut *transaction)
        .await?;
        transaction.commit().await?;
        Ok((token, family_id))
    }

    /// The user's live sessions (a family with an unrevoked, unexpired
    /// token), the most recently used first.
    pub async fn sessions_of(&self, user_id: Uuid) -> Result<Vec<Session>, CommandError> {
        Ok(sqlx::query_as(
            "SELECT s.family_id AS session_id, s.created_at, s.client, \
                    max(r.issued_at) AS last_used_at, max(r.expires_at) AS expires_at \
             FROM sessions s JOIN refresh_tokens r ON r.family_id = s.family_id \
             WHERE s.user_id = $1 AND r.revoked_at IS NULL AND r.expires_at > now() \
             GROUP BY s.family_id, s.created_at, s.client \
             ORDER BY last_used_at DESC, s.family_id \
             LIMIT 1000",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Revokes one of `user_id`'s sessions; `false` when it has no live
    /// session `session_id` (another user's included).
    pub async fn revoke_session(
        &self,
        user_id: Uuid,
        session_id: Uuid,
    ) -> Result<bool, CommandError> {
        let revoked = sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = now() \
             WHERE family_id = $1 AND user_id = $2 AND revoked_at IS NULL AND expires_at > now()",
        )
        .bind(session_id)
        .bind(user_id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(revoked > 0)
    }

    /// Revokes every live session of `user_id` but `keep` (the caller's
    /// own, after a password change); returns how many tokens.
    pub async fn revoke_other_sessions(
        &self,
        user_id: Uuid,
        keep: Option<Uuid>,
    ) -> Result<u64, CommandError> {
        revoke_sessions_on(&self.pool, user_id, keep).await
    }

    /// Exchanges a refresh token for its successor. A token presented a
    /// second time means it leaked: its whole family is revoked.
    pub async fn rotate_refresh_token(
        &self,
        token: &str,
        ttl: Duration,
    ) -> Result<(Uuid, Uuid, String), CommandError> {
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
        Ok((user_id, family_id, successor))
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
    revoke_sessions_on(executor, user_id, None).await
}

/// A live session, as its user lists it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Session {
    pub session_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub client: Option<String>,
    pub last_used_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Revokes every live refresh token of `user_id` outside the family
/// `keep`; returns how many.
pub(crate) async fn revoke_sessions_on<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    user_id: Uuid,
    keep: Option<Uuid>,
) -> Result<u64, CommandError> {
    let revoked = sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = now() \
         WHERE user_id = $1 AND revoked_at IS NULL AND family_id IS DISTINCT FROM $2",
    )
    .bind(user_id)
    .bind(keep)
    .execute(executor)
    .await?
    .rows_affected();
    if revoked > 0 {
        tracing::info!(%user_id, revoked, "refresh tokens revoked");
    }
    Ok(revoked)
}
