//! The domain's service traits, implemented against the side tables, the
//! exchange and the event store.

use std::sync::Arc;

use async_trait::async_trait;
use domain::exchange_key::ExchangeKey;
use domain::services::{KeyDirectory, KeyFacts, KeyVerification, KeyVerifier};
use domain::support_ticket::StaffDirectory;
use domain::user::User;
use domain::{DomainError, Role};
use sqlx::PgPool;
use uuid::Uuid;

use crate::crypto::SecretBox;
use exchange::{Exchange, ExchangeError};

use crate::credentials::load_credentials;
use crate::load::load;

/// Verifies a stored credential: decrypts it from `exchange_key_secrets`
/// and asks the exchange.
pub struct StoredKeyVerifier {
    pub pool: PgPool,
    pub secrets: Arc<SecretBox>,
    pub exchange: Arc<dyn Exchange>,
}

#[async_trait]
impl KeyVerifier for StoredKeyVerifier {
    async fn verify(&self, key_id: Uuid) -> Result<KeyVerification, DomainError> {
        let credentials = load_credentials(&self.pool, &self.secrets, key_id)
            .await
            .map_err(|error| DomainError::Unavailable {
                reason: format!("credential store: {error}"),
            })?;
        let Some(credentials) = credentials else {
            return Ok(KeyVerification::Rejected {
                reason: "no stored credential for this key".to_string(),
            });
        };
        self.exchange
            .verify_credentials(&credentials)
            .await
            .or_else(|error| match error {
                ExchangeError::Unavailable(reason) => Err(DomainError::Unavailable { reason }),
                // The exchange answered and refused the credential: the
                // test failed, with the exchange's words as the reason.
                ExchangeError::Rejected(reason) => Ok(KeyVerification::Rejected { reason }),
            })
    }
}

/// Reads exchange keys' state from the event store for the Bot aggregate.
pub struct EventStoreKeyDirectory {
    pub pool: PgPool,
    pub snapshot_every: usize,
}

#[async_trait]
impl KeyDirectory for EventStoreKeyDirectory {
    async fn key_facts(&self, key_id: Uuid) -> Result<Option<KeyFacts>, DomainError> {
        let (key, _) = load::<ExchangeKey>(&self.pool, self.snapshot_every, &key_id.to_string())
            .await
            .map_err(|error| DomainError::Unavailable {
                reason: format!("event store: {error}"),
            })?;
        Ok(key.owner_id.map(|owner_id| KeyFacts {
            owner_id,
            status: key.status,
        }))
    }
}

/// Reads users' current roles from the event store for the SupportTicket
/// aggregate (who may be assigned a ticket).
pub struct EventStoreStaffDirectory {
    pub pool: PgPool,
    pub snapshot_every: usize,
}

#[async_trait]
impl StaffDirectory for EventStoreStaffDirectory {
    async fn role_of(&self, user_id: Uuid) -> Result<Option<Role>, DomainError> {
        let (user, _) = load::<User>(&self.pool, self.snapshot_every, &user_id.to_string())
            .await
            .map_err(|error| DomainError::Unavailable {
                reason: format!("event store: {error}"),
            })?;
        Ok(user.role.filter(|_| !user.erased))
    }
}
