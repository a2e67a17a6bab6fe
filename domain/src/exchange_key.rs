//! The ExchangeKey aggregate: a Kraken API key a user connected. Its events
//! carry the key id, a fingerprint of the public key and the permissions;
//! the secret stays encrypted in the command side's side table.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::common::{bounded_text, Actor};
use crate::error::DomainError;
use crate::services::{KeyPermission, KeyStatus, KeyVerification, KeyVerifier};

#[derive(Debug, Clone, PartialEq)]
pub enum ExchangeKeyCommand {
    /// The command side stored the encrypted credential under `key_id`
    /// before sending this; the verifier checks it with the exchange.
    Connect {
        actor: Actor,
        key_id: Uuid,
        label: Option<String>,
        fingerprint: String,
        at: DateTime<Utc>,
    },
    /// `fingerprint` is set when the credential itself was replaced.
    Update {
        actor: Actor,
        label: Option<String>,
        fingerprint: Option<String>,
        at: DateTime<Utc>,
    },
    Test {
        actor: Actor,
        at: DateTime<Utc>,
    },
    Disconnect {
        actor: Actor,
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ExchangeKeyEvent {
    #[serde(rename = "kraken.key.connected")]
    KeyConnected {
        key_id: Uuid,
        owner_id: Uuid,
        exchange: String,
        label: Option<String>,
        fingerprint: String,
        permissions: Vec<KeyPermission>,
        at: DateTime<Utc>,
    },
    #[serde(rename = "kraken.key.updated")]
    KeyUpdated {
        label: Option<String>,
        fingerprint: Option<String>,
        permissions: Option<Vec<KeyPermission>>,
        at: DateTime<Utc>,
    },
    /// Not in the original list of wire names: a successful test must be
    /// recorded, because only a tested key may start a bot.
    #[serde(rename = "kraken.key.tested")]
    KeyTested {
        permissions: Vec<KeyPermission>,
        at: DateTime<Utc>,
    },
    #[serde(rename = "kraken.key.test.failed")]
    KeyTestFailed {
        key_id: Uuid,
        owner_id: Uuid,
        reason: String,
        at: DateTime<Utc>,
    },
    #[serde(rename = "kraken.key.disconnected")]
    KeyDisconnected { at: DateTime<Utc> },
}

impl DomainEvent for ExchangeKeyEvent {
    fn event_type(&self) -> String {
        match self {
            ExchangeKeyEvent::KeyConnected { .. } => "kraken.key.connected",
            ExchangeKeyEvent::KeyUpdated { .. } => "kraken.key.updated",
            ExchangeKeyEvent::KeyTested { .. } => "kraken.key.tested",
            ExchangeKeyEvent::KeyTestFailed { .. } => "kraken.key.test.failed",
            ExchangeKeyEvent::KeyDisconnected { .. } => "kraken.key.disconnected",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        "1.0".to_string()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExchangeKey {
    pub key_id: Option<Uuid>,
    pub owner_id: Option<Uuid>,
    pub label: Option<String>,
    pub fingerprint: String,
    pub permissions: Vec<KeyPermission>,
    pub status: KeyStatus,
    pub last_test_failure: Option<String>,
}

/// The services the ExchangeKey aggregate needs: the exchange, through the
/// command side's verifier.
#[derive(Clone)]
pub struct ExchangeKeyServices {
    pub verifier: Arc<dyn KeyVerifier>,
}

fn label_of(label: Option<String>) -> Result<Option<String>, DomainError> {
    label
        .map(|label| bounded_text("label", &label, 1, 64))
        .transpose()
}

impl ExchangeKey {
    /// The owner when `actor` may act on this key; a missing, disconnected or
    /// foreign key reads as not found so its existence does not leak.
    fn owner_for(&self, actor: &Actor) -> Result<Uuid, DomainError> {
        actor.ensure_may_trade()?;
        match self.owner_id {
            Some(owner) if self.status != KeyStatus::Disconnected && actor.may_act_for(owner) => {
                Ok(owner)
            }
            _ => Err(DomainError::NotFound {
                entity: "exchange key",
            }),
        }
    }

    /// Asks the exchange about the stored credential; a key that may
    /// withdraw funds is refused outright.
    async fn verified_permissions(
        services: &ExchangeKeyServices,
        key_id: Uuid,
    ) -> Result<Vec<KeyPermission>, DomainError> {
        match services.verifier.verify(key_id).await? {
            KeyVerification::Accepted { mut permissions } => {
                if permissions.contains(&KeyPermission::Withdraw) {
                    return Err(DomainError::invalid(
                        "api_key",
                        "keys with withdrawal permission are refused; create a key without it",
                    ));
                }
                permissions.sort();
                permissions.dedup();
                Ok(permissions)
            }
            KeyVerification::Rejected { reason } => Err(DomainError::invalid(
                "api_key",
                format!("the exchange rejected the credential: {reason}"),
            )),
        }
    }

    async fn connect_key(
        &self,
        services: &ExchangeKeyServices,
        actor: Actor,
        key_id: Uuid,
        label: Option<String>,
        fingerprint: String,
        at: DateTime<Utc>,
    ) -> Result<ExchangeKeyEvent, DomainError> {
        actor.ensure_may_trade()?;
        let owner_id = actor
            .user_id()
            .ok_or_else(|| DomainError::forbidden("a key belongs to a user"))?;
        if self.key_id.is_some() {
            return Err(DomainError::conflict("key already connected"));
        }
        let label = label_of(label)?;
        let permissions = Self::verified_permissions(services, key_id).await?;
        Ok(ExchangeKeyEvent::KeyConnected {
            key_id,
            owner_id,
            exchange: "kraken".to_string(),
            label,
            fingerprint,
            permissions,
            at,
        })
    }

    async fn update_key(
        &self,
        services: &ExchangeKeyServices,
        actor: Actor,
        label: Option<String>,
        fingerprint: Option<String>,
        at: DateTime<Utc>,
    ) -> Result<ExchangeKeyEvent, DomainError> {
        self.owner_for(&actor)?;
        let label = label_of(label)?;
        if label.is_none() && fingerprint.is_none() {
            return Err(DomainError::invalid("label", "nothing to update"));
        }
        let permissions = match fingerprint {
            Some(_) => {
                let key_id = self.key_id.ok_or(DomainError::NotFound {
                    entity: "exchange key",
                })?;
                Some(Self::verified_permissions(services, key_id).await?)
            }
            None => None,
        };
        Ok(ExchangeKeyEvent::KeyUpdated {
            label,
            fingerprint,
            permissions,
            at,
        })
    }

    /// A failed test is recorded rather than refused: the key's status must
    /// show it.
    async fn test_key(
        &self,
        services: &ExchangeKeyServices,
        actor: Actor,
        at: DateTime<Utc>,
    ) -> Result<ExchangeKeyEvent, DomainError> {
        let owner_id = self.owner_for(&actor)?;
        let key_id = self.key_id.ok_or(DomainError::NotFound {
            entity: "exchange key",
        })?;
        let event = match services.verifier.verify(key_id).await? {
            KeyVerification::Accepted { permissions }
                if permissions.contains(&KeyPermission::Withdraw) =>
            {
                ExchangeKeyEvent::KeyTestFailed {
                    key_id,
                    owner_id,
                    reason: "key has withdrawal permission".to_string(),
                    at,
                }
            }
            KeyVerification::Accepted { mut permissions } => {
                permissions.sort();
                permissions.dedup();
                ExchangeKeyEvent::KeyTested { permissions, at }
            }
            KeyVerification::Rejected { reason } => ExchangeKeyEvent::KeyTestFailed {
                key_id,
                owner_id,
                reason,
                at,
            },
        };
        Ok(event)
    }
}

impl Aggregate for ExchangeKey {
    const TYPE: &'static str = "ExchangeKey";
    type Command = ExchangeKeyCommand;
    type Event = ExchangeKeyEvent;
    type Error = DomainError;
    type Services = ExchangeKeyServices;

    async fn handle(
        &mut self,
        command: Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let event = match command {
            ExchangeKeyCommand::Connect {
                actor,
                key_id,
                label,
                fingerprint,
                at,
            } => {
                self.connect_key(services, actor, key_id, label, fingerprint, at)
                    .await?
            }
            ExchangeKeyCommand::Update {
                actor,
                label,
                fingerprint,
                at,
            } => {
                self.update_key(services, actor, label, fingerprint, at)
                    .await?
            }
            ExchangeKeyCommand::Test { actor, at } => self.test_key(services, actor, at).await?,
            ExchangeKeyCommand::Disconnect { actor, at } => {
                self.owner_for(&actor)?;
                ExchangeKeyEvent::KeyDisconnected { at }
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            ExchangeKeyEvent::KeyConnected {
                key_id,
                owner_id,
                label,
                fingerprint,
                permissions,
                ..
            } => {
                self.key_id = Some(key_id);
                self.owner_id = Some(owner_id);
                self.label = label;
                self.fingerprint = fingerprint;
                self.permissions = permissions;
                self.status = KeyStatus::Untested;
            }
            ExchangeKeyEvent::KeyUpdated {
                label,
                fingerprint,
                permissions,
                ..
            } => {
                if let Some(label) = label {
                    self.label = Some(label);
                }
                if let Some(fingerprint) = fingerprint {
                    // A new credential has not been tested yet, and the old
                    // one's failure no longer says anything.
                    self.fingerprint = fingerprint;
                    self.status = KeyStatus::Untested;
                    self.last_test_failure = None;
                }
                if let Some(permissions) = permissions {
                    self.permissions = permissions;
                }
            }
            ExchangeKeyEvent::KeyTested { permissions, .. } => {
                self.permissions = permissions;
                self.status = KeyStatus::Tested;
                self.last_test_failure = None;
            }
            ExchangeKeyEvent::KeyTestFailed { reason, .. } => {
                self.status = KeyStatus::TestFailed;
                self.last_test_failure = Some(reason);
            }
            ExchangeKeyEvent::KeyDisconnected { .. } => self.status = KeyStatus::Disconnected,
        }
    }
}
