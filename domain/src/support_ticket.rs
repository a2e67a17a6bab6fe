//! The SupportTicket aggregate: a user's question to the support staff,
//! the replies of either side, who on the staff works it, and whether it
//! is open.
//!
//! The subject and every message body are the owner's personal data. They
//! arrive sealed under the owner's data key ([`PersonalText`]): the command
//! side checks the clear text ([`check_subject`], [`check_body`]) and seals
//! it before the command reaches the aggregate, so no event, snapshot or
//! cached state holds it in clear, and erasing the owner leaves it
//! unreadable in the log. The aggregate remembers none of it.
//!
//! Who may do what: the owner opens the ticket, replies to it, closes and
//! reopens it; the staff (a role holding [`Permission::TicketsStaff`], and
//! the `System`) do all of that on every ticket and assign it. Anyone else
//! is told the ticket does not exist. Every event names the ticket's
//! `owner_id`, so the owner's audit export finds the stream.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::common::{bounded_text, Actor, Role};
use crate::error::DomainError;
use crate::permissions::Permission;
use crate::personal::PersonalText;

/// The longest subject, in characters once trimmed.
pub const MAX_SUBJECT_CHARS: usize = 200;
/// The longest message body, in characters once trimmed.
pub const MAX_BODY_CHARS: usize = 10_000;
/// The most replies one ticket takes; one more is refused (open a new
/// ticket). With [`MAX_BODY_CHARS`], a ticket's stream stays bounded.
pub const MAX_REPLIES_PER_TICKET: u32 = 200;

/// Commands on a support ticket. Texts arrive sealed (see the module).
#[derive(Debug, Clone, PartialEq)]
pub enum SupportTicketCommand {
    Open {
        actor: Actor,
        ticket_id: Uuid,
        subject: PersonalText,
        body: PersonalText,
        at: DateTime<Utc>,
    },
    Reply {
        actor: Actor,
        body: PersonalText,
        at: DateTime<Utc>,
    },
    /// `assignee_id` must hold a staff role now ([`StaffDirectory`]).
    Assign {
        actor: Actor,
        assignee_id: Uuid,
        at: DateTime<Utc>,
    },
    Close {
        actor: Actor,
        at: DateTime<Utc>,
    },
    Reopen {
        actor: Actor,
        at: DateTime<Utc>,
    },
}

/// Events of a support ticket, with their wire names. Each carries the
/// ticket's `owner_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum SupportTicketEvent {
    #[serde(rename = "support.ticket_opened")]
    TicketOpened {
        ticket_id: Uuid,
        owner_id: Uuid,
        subject: PersonalText,
        body: PersonalText,
        at: DateTime<Utc>,
    },
    /// `reply_number` counts the ticket's replies from 1; `from_staff` is
    /// set when someone other than the owner (so, the staff) wrote it.
    #[serde(rename = "support.reply_added")]
    ReplyAdded {
        owner_id: Uuid,
        reply_number: u32,
        author_id: Uuid,
        from_staff: bool,
        body: PersonalText,
        at: DateTime<Utc>,
    },
    /// `assigned_by` is `None` when the service itself assigned it.
    #[serde(rename = "support.ticket_assigned")]
    TicketAssigned {
        owner_id: Uuid,
        assignee_id: Uuid,
        assigned_by: Option<Uuid>,
        at: DateTime<Utc>,
    },
    #[serde(rename = "support.ticket_closed")]
    TicketClosed {
        owner_id: Uuid,
        closed_by: Option<Uuid>,
        at: DateTime<Utc>,
    },
    #[serde(rename = "support.ticket_reopened")]
    TicketReopened {
        owner_id: Uuid,
        reopened_by: Option<Uuid>,
        at: DateTime<Utc>,
    },
}

impl DomainEvent for SupportTicketEvent {
    fn event_type(&self) -> String {
        match self {
            SupportTicketEvent::TicketOpened { .. } => "support.ticket_opened",
            SupportTicketEvent::ReplyAdded { .. } => "support.reply_added",
            SupportTicketEvent::TicketAssigned { .. } => "support.ticket_assigned",
            SupportTicketEvent::TicketClosed { .. } => "support.ticket_closed",
            SupportTicketEvent::TicketReopened { .. } => "support.ticket_reopened",
        }
        .to_string()
    }

    /// Sealed from the first version on: no upcaster.
    fn event_version(&self) -> String {
        "1.0".to_string()
    }
}

/// Whether a ticket waits for work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketStatus {
    #[default]
    Open,
    Closed,
}

impl TicketStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TicketStatus::Open => "open",
            TicketStatus::Closed => "closed",
        }
    }
}

/// The state a ticket's commands are decided against: no text, only who
/// and how many, so it stays the same size whatever was written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SupportTicket {
    pub ticket_id: Option<Uuid>,
    pub owner_id: Option<Uuid>,
    pub status: TicketStatus,
    pub assignee_id: Option<Uuid>,
    /// Replies so far, at most [`MAX_REPLIES_PER_TICKET`].
    pub replies: u32,
}

/// Who may be assigned a ticket: what role a user holds now. The command
/// side reads it from the User aggregate.
#[async_trait]
pub trait StaffDirectory: Send + Sync {
    /// The role `user_id` holds now; `None` for no such user, or an erased
    /// one.
    async fn role_of(&self, user_id: Uuid) -> Result<Option<Role>, DomainError>;
}

/// The services the SupportTicket aggregate needs.
#[derive(Clone)]
pub struct SupportTicketServices {
    pub staff: Arc<dyn StaffDirectory>,
}

const NOT_FOUND: DomainError = DomainError::NotFound {
    entity: "support ticket",
};

/// Whether `actor` works tickets: the service itself, or a user whose
/// role holds `tickets.staff`.
pub fn is_staff(actor: &Actor) -> bool {
    match actor {
        Actor::System => true,
        Actor::User { role, .. } => role.has(Permission::TicketsStaff),
    }
}

/// A subject as it may be recorded: trimmed, 1 to [`MAX_SUBJECT_CHARS`]
/// characters, one line without control characters.
pub fn check_subject(subject: &str) -> Result<String, DomainError> {
    bounded_text("subject", subject, 1, MAX_SUBJECT_CHARS)
}

/// A message body as it may be recorded: trimmed, 1 to [`MAX_BODY_CHARS`]
/// characters, free text whose only control characters are line feeds
/// and tabs.
pub fn check_body(body: &str) -> Result<String, DomainError> {
    let trimmed = body.trim();
    let length = trimmed.chars().count();
    if !(1..=MAX_BODY_CHARS).contains(&length) {
        return Err(DomainError::invalid(
            "body",
            format!("must be 1 to {MAX_BODY_CHARS} characters"),
        ));
    }
    if trimmed
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(DomainError::invalid(
            "body",
            "must not contain control characters other than line feeds and tabs",
        ));
    }
    Ok(trimmed.to_string())
}

impl SupportTicket {
    /// The owner, when `actor` may see this ticket (its owner or the
    /// staff); otherwise the ticket does not exist for them.
    fn owner_seen_by(&self, actor: &Actor) -> Result<Uuid, DomainError> {
        match self.owner_id {
            Some(owner) if is_staff(actor) || actor.user_id() == Some(owner) => Ok(owner),
            _ => Err(NOT_FOUND),
        }
    }

    fn open(
        &self,
        actor: Actor,
        ticket_id: Uuid,
        subject: PersonalText,
        body: PersonalText,
        at: DateTime<Utc>,
    ) -> Result<SupportTicketEvent, DomainError> {
        let owner_id = actor
            .user_id()
            .ok_or_else(|| DomainError::forbidden("a support ticket belongs to a user"))?;
        if self.ticket_id.is_some() {
            return Err(DomainError::conflict("support ticket already opened"));
        }
        Ok(SupportTicketEvent::TicketOpened {
            ticket_id,
            owner_id,
            subject,
            body,
            at,
        })
    }

    fn reply(
        &self,
        actor: Actor,
        body: PersonalText,
        at: DateTime<Utc>,
    ) -> Result<SupportTicketEvent, DomainError> {
        let owner_id = self.owner_seen_by(&actor)?;
        let author_id = actor
            .user_id()
            .ok_or_else(|| DomainError::forbidden("a reply is written by a user"))?;
        if self.status == TicketStatus::Closed {
            return Err(DomainError::conflict(
                "the support ticket is closed; reopen it to reply",
            ));
        }
        if self.replies >= MAX_REPLIES_PER_TICKET {
            return Err(DomainError::conflict(format!(
                "replies per ticket: the limit is {MAX_REPLIES_PER_TICKET} replies, and this \
                 ticket has {}; open a new ticket",
                self.replies
            )));
        }
        Ok(SupportTicketEvent::ReplyAdded {
            owner_id,
            reply_number: self.replies + 1,
            author_id,
            from_staff: author_id != owner_id,
            body,
            at,
        })
    }

    /// `None` when the ticket is assigned to `assignee_id` already.
    async fn assign(
        &self,
        services: &SupportTicketServices,
        actor: Actor,
        assignee_id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<Option<SupportTicketEvent>, DomainError> {
        let owner_id = self.owner_seen_by(&actor)?;
        if !is_staff(&actor) {
            return Err(DomainError::forbidden("only support staff assign tickets"));
        }
        if self.status == TicketStatus::Closed {
            return Err(DomainError::conflict(
                "the support ticket is closed; reopen it to assign it",
            ));
        }
        match services.staff.role_of(assignee_id).await? {
            None => return Err(DomainError::invalid("assignee_id", "no such user")),
            Some(role) if !role.has(Permission::TicketsStaff) => {
                return Err(DomainError::invalid(
                    "assignee_id",
                    format!(
                        "must be a user whose role holds {} (the user's role is {})",
                        Permission::TicketsStaff,
                        role.as_str()
                    ),
                ))
            }
            Some(_) => {}
        }
        if self.assignee_id == Some(assignee_id) {
            return Ok(None);
        }
        Ok(Some(SupportTicketEvent::TicketAssigned {
            owner_id,
            assignee_id,
            assigned_by: actor.user_id(),
            at,
        }))
    }

    fn close(&self, actor: Actor, at: DateTime<Utc>) -> Result<SupportTicketEvent, DomainError> {
        let owner_id = self.owner_seen_by(&actor)?;
        if self.status == TicketStatus::Closed {
            return Err(DomainError::conflict(
                "the support ticket is already closed",
            ));
        }
        Ok(SupportTicketEvent::TicketClosed {
            owner_id,
            closed_by: actor.user_id(),
            at,
        })
    }

    fn reopen(&self, actor: Actor, at: DateTime<Utc>) -> Result<SupportTicketEvent, DomainError> {
        let owner_id = self.owner_seen_by(&actor)?;
        if self.status == TicketStatus::Open {
            return Err(DomainError::conflict("the support ticket is already open"));
        }
        Ok(SupportTicketEvent::TicketReopened {
            owner_id,
            reopened_by: actor.user_id(),
            at,
        })
    }
}

impl Aggregate for SupportTicket {
    const TYPE: &'static str = "SupportTicket";
    type Command = SupportTicketCommand;
    type Event = SupportTicketEvent;
    type Error = DomainError;
    type Services = SupportTicketServices;

    async fn handle(
        &mut self,
        command: Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let event = match command {
            SupportTicketCommand::Open {
                actor,
                ticket_id,
                subject,
                body,
                at,
            } => self.open(actor, ticket_id, subject, body, at)?,
            SupportTicketCommand::Reply { actor, body, at } => self.reply(actor, body, at)?,
            SupportTicketCommand::Assign {
                actor,
                assignee_id,
                at,
            } => match self.assign(services, actor, assignee_id, at).await? {
                Some(event) => event,
                None => return Ok(()),
            },
            SupportTicketCommand::Close { actor, at } => self.close(actor, at)?,
            SupportTicketCommand::Reopen { actor, at } => self.reopen(actor, at)?,
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            SupportTicketEvent::TicketOpened {
                ticket_id,
                owner_id,
                ..
            } => {
                self.ticket_id = Some(ticket_id);
                self.owner_id = Some(owner_id);
                self.status = TicketStatus::Open;
            }
            SupportTicketEvent::ReplyAdded { reply_number, .. } => {
                // The stored number, not a count of events: a stream
                // written past the limit stays at its highest number.
                self.replies = self.replies.max(reply_number);
            }
            SupportTicketEvent::TicketAssigned { assignee_id, .. } => {
                self.assignee_id = Some(assignee_id);
            }
            SupportTicketEvent::TicketClosed { .. } => self.status = TicketStatus::Closed,
            SupportTicketEvent::TicketReopened { .. } => self.status = TicketStatus::Open,
        }
    }
}
