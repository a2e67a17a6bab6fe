//! Exchange credentials at rest: sealed with AES-256-GCM into
//! `exchange_key_secrets`, opened only for the duration of a call.

use domain::SecretString;
use exchange::ApiCredentials;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use crate::crypto::SecretBox;

#[derive(Serialize, Deserialize)]
struct SealedCredentials {
    api_key: String,
    api_secret: String,
}

/// Seals a credential for `key_id` under the configured key: `(nonce,
/// ciphertext)`.
pub(crate) fn seal(
    secrets: &SecretBox,
    key_id: Uuid,
    api_key: &str,
    api_secret: &str,
) -> (Vec<u8>, Vec<u8>) {
    let plaintext = serde_json::to_vec(&SealedCredentials {
        api_key: api_key.to_string(),
        api_secret: api_secret.to_string(),
    })
    .expect("two strings serialise");
    secrets.seal(key_id, &plaintext)
}

/// Decrypts the credential stored for `key_id`, if any.
pub async fn load_credentials(
    pool: &PgPool,
    secrets: &SecretBox,
    key_id: Uuid,
) -> anyhow::Result<Option<ApiCredentials>> {
    let row: Option<(String, Vec<u8>, Vec<u8>)> = sqlx::query_as(
        "SELECT encryption_key_id, nonce, ciphertext FROM exchange_key_secrets WHERE key_id = $1",
    )
    .bind(key_id)
    .fetch_optional(pool)
    .await?;
    let Some((sealed_with, nonce, ciphertext)) = row else {
        return Ok(None);
    };
    let plaintext = secrets.open(key_id, &sealed_with, &nonce, &ciphertext)?;
    let sealed: SealedCredentials = serde_json::from_slice(&plaintext)?;
    Ok(Some(ApiCredentials {
        api_key: SecretString::new(sealed.api_key),
        api_secret: SecretString::new(sealed.api_secret),
    }))
}
