//! What the aggregates ask of the world, as traits. `command-side`
//! implements them against the exchange and the event store; tests use
//! plain in-memory fakes.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::DomainError;

/// A permission an exchange API key holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyPermission {
    QueryFunds,
    QueryOrders,
    Trade,
    Withdraw,
}

/// What the exchange said about a stored credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyVerification {
    /// The exchange accepted the credential and reported these permissions.
    Accepted { permissions: Vec<KeyPermission> },
    /// The exchange rejected the credential.
    Rejected { reason: String },
}

/// Checks the credential stored for `key_id` against the exchange. The
/// secret never reaches the domain: the implementation decrypts it itself.
#[async_trait]
pub trait KeyVerifier: Send + Sync {
    async fn verify(&self, key_id: Uuid) -> Result<KeyVerification, DomainError>;
}

/// The lifecycle of an exchange key as seen by other aggregates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum KeyStatus {
    #[default]
    Untested,
    Tested,
    TestFailed,
    Disconnected,
}

/// The facts about a key that a bot's decisions need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyFacts {
    pub owner_id: Uuid,
    pub status: KeyStatus,
}

/// Reads the current state of an exchange key for the Bot aggregate.
#[async_trait]
pub trait KeyDirectory: Send + Sync {
    async fn key_facts(&self, key_id: Uuid) -> Result<Option<KeyFacts>, DomainError>;
}
