//! Connecting, updating, testing and disconnecting exchange keys. The
//! credential goes to `exchange_key_secrets` encrypted; the events carry a
//! fingerprint and the permissions only.

use chrono::Utc;
use domain::exchange_key::{ExchangeKey, ExchangeKeyCommand};
use domain::services::KeyStatus;
use domain::SecretString;
use domain::{Actor, DomainError};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::credentials::seal;
use crate::error::CommandError;
use crate::framework::CommandSide;
use crate::metadata::CommandMetadata;
use event_log::Position;

/// The outcome of a key test.
#[derive(Debug, Clone)]
pub struct KeyTestOutcome {
    pub status: KeyStatus,
    pub failure: Option<String>,
    pub position: Position,
}

/// A short, stable identifier of an API key that reveals nothing usable.
pub fn fingerprint(api_key: &str) -> String {
    format!(
        "sha256:{}",
        &hex::encode(Sha256::digest(api_key.as_bytes()))[..16]
    )
}

fn validate_credentials(api_key: &str, api_secret: &str) -> Result<(), DomainError> {
    let valid = |text: &str, max: usize| {
        !text.is_empty()
            && text.chars().count() <= max
            && !text.chars().any(|c| c.is_whitespace() || c.is_control())
    };
    if !valid(api_key, 256) {
        return Err(DomainError::invalid(
            "api_key",
            "must be 1 to 256 characters without spaces",
        ));
    }
    if !valid(api_secret, 512) {
        return Err(DomainError::invalid(
            "api_secret",
            "must be 1 to 512 characters without spaces",
        ));
    }
    Ok(())
}

impl CommandSide {
    /// Stores the encrypted credential, then connects the key; a refused
    /// connection deletes the credential again.
    pub async fn connect_key(
        &self,
        actor: Actor,
        api_key: SecretString,
        api_secret: SecretString,
        label: Option<String>,
        metadata: &CommandMetadata,
    ) -> Result<(Uuid, Position), CommandError> {
        actor.ensure_may_trade()?;
        let owner = actor
            .user_id()
            .ok_or_else(|| DomainError::forbidden("a key belongs to a user"))?;
        validate_credentials(api_key.expose(), api_secret.expose())?;
        let key_id = Uuid::new_v4();
        let (nonce, ciphertext) = seal(
            &self.settings.secrets,
            key_id,
            api_key.expose(),
            api_secret.expose(),
        );
        sqlx::query(
            "INSERT INTO exchange_key_secrets (key_id, user_id, encryption_key_id, nonce, ciphertext) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(key_id)
        .bind(owner)
        .bind(self.settings.secrets.key_id())
        .bind(nonce)
        .bind(ciphertext)
        .execute(&self.pool)
        .await?;
        let command = ExchangeKeyCommand::Connect {
            actor,
            key_id,
            label,
            fingerprint: fingerprint(api_key.expose()),
            at: Utc::now(),
        };
        match self
            .execute_exchange_key(&key_id.to_string(), command, metadata)
            .await
        {
            Ok(position) => Ok((key_id, position)),
            Err(error) => {
                self.delete_credentials(key_id).await?;
                Err(error)
            }
        }
    }

    /// Relabels a key and, when a new credential is given, replaces it. The
    /// caller's right to the key is checked before the credential is
    /// touched; a refused update restores the previous credential.
    pub async fn update_key(
        &self,
        actor: Actor,
        key_id: Uuid,
        label: Option<String>,
        credentials: Option<(SecretString, SecretString)>,
        metadata: &CommandMetadata,
    ) -> Result<Position, CommandError> {
        actor.ensure_may_trade()?;
        let (key, _) = self.load::<ExchangeKey>(&key_id.to_string()).await?;
        let may_touch = key.owner_id.is_some_and(|owner| actor.may_act_for(owner))
            && key.status != KeyStatus::Disconnected;
        if !may_touch {
            return Err(DomainError::NotFound {
                entity: "exchange key",
            }
            .into());
        }
        let mut previous = None;
        let mut new_fingerprint = None;
        if let Some((api_key, api_secret)) = &credentials {
            validate_credentials(api_key.expose(), api_secret.expose())?;
            previous = sqlx::query_as::<_, (String, Vec<u8>, Vec<u8>)>(
                "SELECT encryption_key_id, nonce, ciphertext FROM exchange_key_secrets WHERE key_id = $1",
            )
            .bind(key_id)
            .fetch_optional(&self.pool)
            .await?;
            let (nonce, ciphertext) = seal(
                &self.settings.secrets,
                key_id,
                api_key.expose(),
                api_secret.expose(),
            );
            self.store_credentials(key_id, self.settings.secrets.key_id(), &nonce, &ciphertext)
                .await?;
            new_fingerprint = Some(fingerprint(api_key.expose()));
        }
        let command = ExchangeKeyCommand::Update {
            actor,
            label,
            fingerprint: new_fingerprint,
            at: Utc::now(),
        };
        let result = self
            .execute_exchange_key(&key_id.to_string(), command, metadata)
            .await;
        if result.is_err() {
            if let Some((sealed_with, nonce, ciphertext)) = previous {
                self.store_credentials(key_id, &sealed_with, &nonce, &ciphertext)
                    .await?;
            }
        }
        result
    }

    async fn store_credentials(
        &self,
        key_id: Uuid,
        sealed_with: &str,
        nonce: &[u8],
        ciphertext: &[u8],
    ) -> Result<(), CommandError> {
        sqlx::query(
            "UPDATE exchange_key_secrets SET encryption_key_id = $2, nonce = $3, ciphertext = $4, \
             updated_at = now() WHERE key_id = $1",
        )
        .bind(key_id)
        .bind(sealed_with)
        .bind(nonce)
        .bind(ciphertext)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn delete_credentials(&self, key_id: Uuid) -> Result<(), CommandError> {
        sqlx::query("DELETE FROM exchange_key_secrets WHERE key_id = $1")
            .bind(key_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Tests a key with the exchange; the outcome is recorded either way.
    pub async fn test_key(
        &self,
        actor: Actor,
        key_id: Uuid,
        metadata: &CommandMetadata,
    ) -> Result<KeyTestOutcome, CommandError> {
        let command = ExchangeKeyCommand::Test {
            actor,
            at: Utc::now(),
        };
        let position = self
            .execute_exchange_key(&key_id.to_string(), command, metadata)
            .await?;
        let (key, _) = self.load::<ExchangeKey>(&key_id.to_string()).await?;
        Ok(KeyTestOutcome {
            status: key.status,
            failure: key.last_test_failure,
            position,
        })
    }

    /// Disconnects a key and shreds its stored credential.
    pub async fn disconnect_key(
        &self,
        actor: Actor,
        key_id: Uuid,
        metadata: &CommandMetadata,
    ) -> Result<Position, CommandError> {
        let command = ExchangeKeyCommand::Disconnect {
            actor,
            at: Utc::now(),
        };
        let position = self
            .execute_exchange_key(&key_id.to_string(), command, metadata)
            .await?;
        self.delete_credentials(key_id).await?;
        Ok(position)
    }
}
