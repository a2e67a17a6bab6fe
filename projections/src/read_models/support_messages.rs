//! `support_messages`: every message of every ticket, the opening body as
//! number 0 and each reply under its number, for the view of one ticket.
//!
//! Bodies are opened as `support_tickets` opens subjects
//! ([`owner_keys`]): with the owner's key, unless their erasure is in the
//! log by the batch's end; `user.erased` clears every body of the owner's
//! tickets. A row is written once, so a batch is one `INSERT … SELECT FROM
//! unnest(…)` and, when it holds erasures, one `UPDATE`.

use std::collections::HashSet;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use domain::personal::PersonalText;
use domain::support_ticket::{SupportTicket, SupportTicketEvent};
use domain::user::User;
use sqlx::PgConnection;
use uuid::Uuid;

use event_log::RecordedEvent;
use event_log::{Subscriber, SubscriberError};

use crate::read_models::support_tickets::owner_keys;

pub struct SupportMessagesProjector;

struct Message {
    ticket_id: Uuid,
    number: i32,
    owner_id: Uuid,
    author_id: Uuid,
    from_staff: bool,
    body: PersonalText,
    written_at: DateTime<Utc>,
}

#[async_trait]
impl Subscriber for SupportMessagesProjector {
    fn name(&self) -> &'static str {
        "support_messages"
    }

    /// The tickets, and the users for their erasures.
    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        Some(&[SupportTicket::TYPE, User::TYPE])
    }

    async fn handle(
        &self,
        transaction: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), SubscriberError> {
        let Some(last) = events.last() else {
            return Ok(());
        };
        let mut messages = Vec::new();
        let mut erased = Vec::new();
        for event in events {
            if event.is(User::TYPE, "user.erased") {
                erased.push(event.aggregate_uuid()?);
                continue;
            }
            if event.aggregate_type != SupportTicket::TYPE {
                continue;
            }
            let ticket_id = event.aggregate_uuid()?;
            let message = match event.payload_as::<SupportTicketEvent>()? {
                SupportTicketEvent::TicketOpened {
                    owner_id, body, at, ..
                } => Message {
                    ticket_id,
                    number: 0,
                    owner_id,
                    author_id: owner_id,
                    from_staff: false,
                    body,
                    written_at: at,
                },
                SupportTicketEvent::ReplyAdded {
                    owner_id,
                    reply_number,
                    author_id,
                    from_staff,
                    body,
                    at,
                } => Message {
                    ticket_id,
                    number: i32::try_from(reply_number).unwrap_or(i32::MAX),
                    owner_id,
                    author_id,
                    from_staff,
                    body,
                    written_at: at,
                },
                SupportTicketEvent::TicketAssigned { .. }
                | SupportTicketEvent::TicketClosed { .. }
                | SupportTicketEvent::TicketReopened { .. } => continue,
            };
            messages.push(message);
        }
        insert(transaction, &messages, last.position).await?;
        // Erasures last: a body is written only at insert, and never after
        // its owner's erasure, so their place in the batch does not matter.
        erased.sort();
        erased.dedup();
        if !erased.is_empty() {
            sqlx::query("UPDATE support_messages SET body = NULL WHERE owner_id = ANY($1)")
                .bind(&erased)
                .execute(&mut *transaction)
                .await?;
        }
        Ok(())
    }
}

async fn insert(
    transaction: &mut PgConnection,
    messages: &[Message],
    until: event_log::Position,
) -> Result<(), SubscriberError> {
    if messages.is_empty() {
        return Ok(());
    }
    let owners: HashSet<Uuid> = messages.iter().map(|m| m.owner_id).collect();
    let keys = owner_keys(transaction, &owners, until).await?;
    let bodies: Vec<Option<String>> = messages
        .iter()
        .map(|m| m.body.reveal(keys.get(&m.owner_id), m.owner_id, "body"))
        .collect();
    sqlx::query(
        "INSERT INTO support_messages (ticket_id, number, owner_id, author_id, from_staff, body, \
                                       written_at) \
         SELECT * FROM unnest($1::uuid[], $2::int4[], $3::uuid[], $4::uuid[], $5::bool[], \
                              $6::text[], $7::timestamptz[]) \
         ON CONFLICT (ticket_id, number) DO NOTHING",
    )
    .bind(messages.iter().map(|m| m.ticket_id).collect::<Vec<_>>())
    .bind(messages.iter().map(|m| m.number).collect::<Vec<_>>())
    .bind(messages.iter().map(|m| m.owner_id).collect::<Vec<_>>())
    .bind(messages.iter().map(|m| m.author_id).collect::<Vec<_>>())
    .bind(messages.iter().map(|m| m.from_staff).collect::<Vec<_>>())
    .bind(bodies)
    .bind(messages.iter().map(|m| m.written_at).collect::<Vec<_>>())
    .execute(&mut *transaction)
    .await?;
    Ok(())
}
