//! The per-user data keys that personal data in the log is sealed under
//! (`user_data_keys`, a side table): created at registration, read to seal
//! and to open, deleted at erasure. Deleting a key is the erasure: every
//! sealed field of that user's events becomes unreadable, and the events,
//! their hashes and the chain stay exactly as they were.
//!
//! The keys are as good as the database's access control: whoever can read
//! this table can read personal data, and a backup taken before an erasure
//! still holds the key (ARCHITECTURE.md says so).

use sqlx::PgExecutor;
use uuid::Uuid;

/// 32 random bytes.
pub type KeyBytes = [u8; 32];

/// Stores `key` as `user_id`'s data key unless they have one; returns the
/// key in force (the stored one if there was one).
pub async fn create<'e>(
    executor: impl PgExecutor<'e> + Copy,
    user_id: Uuid,
    key: &KeyBytes,
) -> Result<KeyBytes, sqlx::Error> {
    sqlx::query("INSERT INTO user_data_keys (user_id, data_key) VALUES ($1, $2) ON CONFLICT (user_id) DO NOTHING")
        .bind(user_id)
        .bind(key.as_slice())
        .execute(executor)
        .await?;
    fetch(executor, user_id)
        .await?
        .ok_or(sqlx::Error::RowNotFound)
}

/// `user_id`'s data key, `None` if they have none (never had one, or
/// erased). A stored value of the wrong length counts as none.
pub async fn fetch<'e>(
    executor: impl PgExecutor<'e>,
    user_id: Uuid,
) -> Result<Option<KeyBytes>, sqlx::Error> {
    let stored: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT data_key FROM user_data_keys WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(executor)
            .await?;
    Ok(stored.and_then(|bytes| KeyBytes::try_from(bytes.as_slice()).ok()))
}

/// Deletes `user_id`'s data key; true if there was one.
pub async fn destroy<'e>(
    executor: impl PgExecutor<'e>,
    user_id: Uuid,
) -> Result<bool, sqlx::Error> {
    let deleted = sqlx::query("DELETE FROM user_data_keys WHERE user_id = $1")
        .bind(user_id)
        .execute(executor)
        .await?;
    Ok(deleted.rows_affected() > 0)
}
