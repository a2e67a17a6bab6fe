//! The support ticket commands: the texts checked in clear and sealed under
//! the ticket owner's data key before the command reaches the aggregate.
//!
//! A ticket's texts are its owner's personal data, whoever writes them: a
//! staff reply is sealed with the owner's key too, so erasing the owner
//! makes the whole conversation unreadable. Once the owner is erased their
//! key is gone and nothing more can be written to their tickets; closing,
//! reopening and assigning still work (they carry no text).

use chrono::Utc;
use domain::personal::DataKey;
use domain::support_ticket::{
    check_body, check_subject, is_staff, SupportTicket, SupportTicketCommand,
};
use domain::{Actor, DomainError};
use event_log::Position;
use uuid::Uuid;

use crate::error::CommandError;
use crate::framework::CommandSide;
use crate::metadata::CommandMetadata;
use crate::users::seal;

impl CommandSide {
    /// Opens a ticket of the actor's own; returns its id.
    pub async fn open_support_ticket(
        &self,
        actor: Actor,
        subject: &str,
        body: &str,
        metadata: &CommandMetadata,
    ) -> Result<(Uuid, Position), CommandError> {
        let subject = check_subject(subject)?;
        let body = check_body(body)?;
        // The System is refused by the aggregate; it has no key either.
        let owner_id = actor.user_id().ok_or_else(|| {
            CommandError::Refused(DomainError::forbidden("a support ticket belongs to a user"))
        })?;
        let key = self.data_key_for(owner_id).await?;
        let ticket_id = Uuid::new_v4();
        let command = SupportTicketCommand::Open {
            actor,
            ticket_id,
            subject: seal(&key, owner_id, "subject", &subject),
            body: seal(&key, owner_id, "body", &body),
            at: Utc::now(),
        };
        let position = self
            .execute_support_ticket(&ticket_id.to_string(), command, metadata)
            .await?;
        Ok((ticket_id, position))
    }

    /// Adds a reply by the actor (the owner, or the staff) to a ticket.
    pub async fn reply_to_support_ticket(
        &self,
        actor: Actor,
        ticket_id: Uuid,
        body: &str,
        metadata: &CommandMetadata,
    ) -> Result<Position, CommandError> {
        let body = check_body(body)?;
        let (owner_id, key) = self.ticket_owner_key(&actor, ticket_id).await?;
        let command = SupportTicketCommand::Reply {
            actor,
            body: seal(&key, owner_id, "body", &body),
            at: Utc::now(),
        };
        self.execute_support_ticket(&ticket_id.to_string(), command, metadata)
            .await
    }

    /// Assigns a ticket to a member of the staff (the aggregate checks both
    /// the actor and the assignee).
    pub async fn assign_support_ticket(
        &self,
        actor: Actor,
        ticket_id: Uuid,
        assignee_id: Uuid,
        metadata: &CommandMetadata,
    ) -> Result<Position, CommandError> {
        let command = SupportTicketCommand::Assign {
            actor,
            assignee_id,
            at: Utc::now(),
        };
        self.execute_support_ticket(&ticket_id.to_string(), command, metadata)
            .await
    }

    pub async fn close_support_ticket(
        &self,
        actor: Actor,
        ticket_id: Uuid,
        metadata: &CommandMetadata,
    ) -> Result<Position, CommandError> {
        let command = SupportTicketCommand::Close {
            actor,
            at: Utc::now(),
        };
        self.execute_support_ticket(&ticket_id.to_string(), command, metadata)
            .await
    }

    pub async fn reopen_support_ticket(
        &self,
        actor: Actor,
        ticket_id: Uuid,
        metadata: &CommandMetadata,
    ) -> Result<Position, CommandError> {
        let command = SupportTicketCommand::Reopen {
            actor,
            at: Utc::now(),
        };
        self.execute_support_ticket(&ticket_id.to_string(), command, metadata)
            .await
    }

    /// The owner of a ticket `actor` may see, and the owner's data key to
    /// seal a reply with. A ticket the actor may not see is not found
    /// (before anything else, so an erased owner's ticket does not show
    /// either); an erased owner's ticket takes no more text.
    async fn ticket_owner_key(
        &self,
        actor: &Actor,
        ticket_id: Uuid,
    ) -> Result<(Uuid, DataKey), CommandError> {
        let not_found = || {
            CommandError::Refused(DomainError::NotFound {
                entity: "support ticket",
            })
        };
        let (ticket, _) = self.load::<SupportTicket>(&ticket_id.to_string()).await?;
        let owner_id = ticket
            .owner_id
            .filter(|owner| is_staff(actor) || actor.user_id() == Some(*owner))
            .ok_or_else(not_found)?;
        match self.data_key_for(owner_id).await {
            Ok(key) => Ok((owner_id, key)),
            Err(CommandError::Refused(DomainError::NotFound { .. })) => {
                Err(CommandError::Refused(DomainError::conflict(
                    "the ticket's owner was erased: nothing more can be written to it",
                )))
            }
            Err(other) => Err(other),
        }
    }
}
