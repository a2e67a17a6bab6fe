//! The `Exchange` trait every exchange adapter implements, and the
//! deterministic paper exchange that is the default.

use async_trait::async_trait;
use base64::Engine;
use domain::services::{KeyPermission, KeyVerification};

use crate::crypto::SecretString;

/// An API credential, decrypted only for the duration of a call.
#[derive(Debug, Clone)]
pub struct ApiCredentials {
    pub api_key: SecretString,
    pub api_secret: SecretString,
}

#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("exchange unavailable: {0}")]
    Unavailable(String),
}

/// What the platform asks of an exchange. The bot runner's market calls
/// (ticker, orders, balances) join this trait with the Kraken adapter.
#[async_trait]
pub trait Exchange: Send + Sync {
    fn name(&self) -> &'static str;

    /// Whether the exchange accepts the credential, and its permissions.
    async fn verify_credentials(
        &self,
        credentials: &ApiCredentials,
    ) -> Result<KeyVerification, ExchangeError>;
}

/// A simulated exchange with fixed, documented rules, so that every outcome
/// can be reproduced without a network:
/// - a secret must be standard base64 of at least 32 bytes (Kraken's
///   secrets are base64 of 64 bytes), otherwise `EAPI:Invalid key`;
/// - a key revoked with [`PaperExchange::revoke_key`] (as a user would on
///   Kraken's site) is rejected as `EAPI:Invalid key` from then on;
/// - an API key containing `withdraw` holds the withdraw permission, as a
///   Kraken key created with "Withdraw Funds" ticked would;
/// - every other key may query funds, query orders and trade.
#[derive(Debug, Default)]
pub struct PaperExchange {
    revoked: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl PaperExchange {
    pub fn new() -> Self {
        Self::default()
    }

    /// Revokes an API key on the simulated exchange.
    pub fn revoke_key(&self, api_key: &str) {
        self.revoked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(api_key.to_string());
    }

    fn is_revoked(&self, api_key: &str) -> bool {
        self.revoked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(api_key)
    }
}

#[async_trait]
impl Exchange for PaperExchange {
    fn name(&self) -> &'static str {
        "paper"
    }

    async fn verify_credentials(
        &self,
        credentials: &ApiCredentials,
    ) -> Result<KeyVerification, ExchangeError> {
        let secret_ok = base64::engine::general_purpose::STANDARD
            .decode(credentials.api_secret.expose())
            .is_ok_and(|bytes| bytes.len() >= 32);
        if !secret_ok || self.is_revoked(credentials.api_key.expose()) {
            return Ok(KeyVerification::Rejected {
                reason: "EAPI:Invalid key".to_string(),
            });
        }
        let mut permissions = vec![
            KeyPermission::QueryFunds,
            KeyPermission::QueryOrders,
            KeyPermission::Trade,
        ];
        if credentials
            .api_key
            .expose()
            .to_ascii_lowercase()
            .contains("withdraw")
        {
            permissions.push(KeyPermission::Withdraw);
        }
        Ok(KeyVerification::Accepted { permissions })
    }
}
