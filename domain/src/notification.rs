//! The Notification aggregate: one thing a user should be told (a bot
//! error, a bot stopped and why, a key test that failed, a fill, a support
//! reply), and whether they have read it.
//!
//! A notification's id is derived from the event it tells about
//! ([`notification_id_for`]): raising it again for the same event (a
//! redelivered queue message, a log batch handled twice) records nothing,
//! so its raisers may be at-least-once. Only the `System` raises; only the
//! owner reads, and anyone else is told it does not exist.
//!
//! Nothing personal enters its events: a support reply is told by its
//! ticket and number, never its (sealed) body; the other texts are the
//! service's own (an exchange's error, a stop reason the owner chose).

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::common::Actor;
use crate::error::DomainError;

/// The longest text a notification keeps, in characters; longer ones are
/// cut (with `…`).
pub const MAX_MESSAGE_CHARS: usize = 500;

/// The namespace of the notification ids derived from event ids.
const NOTIFICATION_NAMESPACE: Uuid = Uuid::from_u128(0x6d75_636b_6172_642d_6e6f_7469_6679_0001);

/// The id of the notification that tells about the event `event_id`: the
/// first 16 bytes of SHA-256 over a namespace and the event id, as a
/// version 8 (custom) UUID.
pub fn notification_id_for(event_id: Uuid) -> Uuid {
    let digest = Sha256::new()
        .chain_update(NOTIFICATION_NAMESPACE.as_bytes())
        .chain_update(event_id.as_bytes())
        .finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// What a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    BotError,
    BotStopped,
    KeyTestFailed,
    TradeExecuted,
    SupportReply,
}

impl NotificationKind {
    pub const ALL: [NotificationKind; 5] = [
        NotificationKind::BotError,
        NotificationKind::BotStopped,
        NotificationKind::KeyTestFailed,
        NotificationKind::TradeExecuted,
        NotificationKind::SupportReply,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NotificationKind::BotError => "bot_error",
            NotificationKind::BotStopped => "bot_stopped",
            NotificationKind::KeyTestFailed => "key_test_failed",
            NotificationKind::TradeExecuted => "trade_executed",
            NotificationKind::SupportReply => "support_reply",
        }
    }

    /// Whether it tells of something gone wrong (what a user who wants
    /// errors only still gets).
    pub fn is_error(self) -> bool {
        matches!(
            self,
            NotificationKind::BotError | NotificationKind::KeyTestFailed
        )
    }
}

/// Which notifications a user wants in their list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationLevel {
    /// Every kind.
    #[default]
    All,
    /// Bot errors and failed key tests only.
    ErrorsOnly,
    None,
}

impl NotificationLevel {
    /// Whether a user at this level is told about `kind`.
    pub fn wants(self, kind: NotificationKind) -> bool {
        match self {
            NotificationLevel::All => true,
            NotificationLevel::ErrorsOnly => kind.is_error(),
            NotificationLevel::None => false,
        }
    }
}

/// What a notification names, beside its owner.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationSubject {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_id: Option<Uuid>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NotificationCommand {
    /// Records the notification unless it exists already.
    Raise {
        actor: Actor,
        notification_id: Uuid,
        owner_id: Uuid,
        kind: NotificationKind,
        subject: NotificationSubject,
        message: String,
        /// The event it tells about.
        source_event_id: Uuid,
        source_event_type: String,
        at: DateTime<Utc>,
    },
    /// The owner read it; reading it again records nothing.
    MarkRead { actor: Actor, at: DateTime<Utc> },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum NotificationEvent {
    #[serde(rename = "notification.raised")]
    Raised {
        notification_id: Uuid,
        owner_id: Uuid,
        kind: NotificationKind,
        #[serde(default)]
        subject: NotificationSubject,
        message: String,
        source_event_id: Uuid,
        source_event_type: String,
        at: DateTime<Utc>,
    },
    #[serde(rename = "notification.read")]
    Read { owner_id: Uuid, at: DateTime<Utc> },
}

impl DomainEvent for NotificationEvent {
    fn event_type(&self) -> String {
        match self {
            NotificationEvent::Raised { .. } => "notification.raised",
            NotificationEvent::Read { .. } => "notification.read",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        "1.0".to_string()
    }
}

/// A notification's state: who it is for and whether it was read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub notification_id: Option<Uuid>,
    pub owner_id: Option<Uuid>,
    pub read: bool,
}

const NOT_FOUND: DomainError = DomainError::NotFound {
    entity: "notification",
};

/// `text` as a notification keeps it: control characters as spaces, cut
/// to [`MAX_MESSAGE_CHARS`].
pub fn notification_text(text: &str) -> String {
    let clean: String = text
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if clean.chars().count() <= MAX_MESSAGE_CHARS {
        return clean;
    }
    let mut cut: String = clean.chars().take(MAX_MESSAGE_CHARS - 1).collect();
    cut.push('…');
    cut
}

impl Aggregate for Notification {
    const TYPE: &'static str = "Notification";
    type Command = NotificationCommand;
    type Event = NotificationEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let event = match command {
            NotificationCommand::Raise {
                actor,
                notification_id,
                owner_id,
                kind,
                subject,
                message,
                source_event_id,
                source_event_type,
                at,
            } => {
                if actor != Actor::System {
                    return Err(DomainError::forbidden(
                        "only the service raises notifications",
                    ));
                }
                if self.notification_id.is_some() {
                    return Ok(());
                }
                NotificationEvent::Raised {
                    notification_id,
                    owner_id,
                    kind,
                    subject,
                    message: notification_text(&message),
                    source_event_id,
                    source_event_type,
                    at,
                }
            }
            NotificationCommand::MarkRead { actor, at } => {
                let owner_id = self
                    .owner_id
                    .filter(|owner| actor.user_id() == Some(*owner))
                    .ok_or(NOT_FOUND)?;
                if self.read {
                    return Ok(());
                }
                NotificationEvent::Read { owner_id, at }
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            NotificationEvent::Raised {
                notification_id,
                owner_id,
                ..
            } => {
                self.notification_id = Some(notification_id);
                self.owner_id = Some(owner_id);
            }
            NotificationEvent::Read { .. } => self.read = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_derived_from_the_event_and_differ_between_events() {
        let event = Uuid::new_v4();
        assert_eq!(notification_id_for(event), notification_id_for(event));
        assert_ne!(
            notification_id_for(event),
            notification_id_for(Uuid::new_v4())
        );
    }

    #[test]
    fn texts_lose_control_characters_and_are_cut() {
        assert_eq!(notification_text(" a\u{0}b\nc "), "a b c");
        let long = "x".repeat(2 * MAX_MESSAGE_CHARS);
        let cut = notification_text(&long);
        assert_eq!(cut.chars().count(), MAX_MESSAGE_CHARS);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn levels_choose_kinds() {
        for kind in NotificationKind::ALL {
            assert!(NotificationLevel::All.wants(kind));
            assert!(!NotificationLevel::None.wants(kind));
            assert_eq!(NotificationLevel::ErrorsOnly.wants(kind), kind.is_error());
        }
    }
}
