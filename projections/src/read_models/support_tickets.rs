//! `support_tickets`: one row per ticket, for the ticket lists and the
//! head of a ticket (its messages are `support_messages`).
//!
//! The subject arrives sealed under the owner's data key; it is opened with
//! the key this projector reads in its own transaction ([`owner_keys`]),
//! unless the owner's erasure is in the log by the batch's end. The owner's
//! `user.erased` clears the subject of every ticket of theirs, and nothing
//! writes a subject after it, so a rebuild after an erasure (which opens
//! nothing: the key is gone) equals the live table.
//!
//! A batch is folded per ticket before anything is written: the tickets
//! opened in it are inserted by one statement with all their later events
//! of the batch folded in, every other ticket's changes are one row of one
//! `UPDATE … FROM unnest(…)`, and the batch's erasures one more `UPDATE`.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use domain::personal::DataKey;
use domain::support_ticket::{SupportTicket, SupportTicketEvent, TicketStatus};
use domain::user::User;
use sqlx::PgConnection;
use uuid::Uuid;

use event_log::{Position, RecordedEvent};
use event_log::{Subscriber, SubscriberError};

pub struct SupportTicketsProjector;

/// What a run of one ticket's events does to its row, folded; for a ticket
/// opened in the batch, its whole row.
#[derive(Default)]
struct TicketFold {
    opened: Option<Opened>,
    status: Option<TicketStatus>,
    /// `Some(Some(at))` when closed, `Some(None)` when reopened.
    closed_at: Option<Option<DateTime<Utc>>>,
    assignee_id: Option<Uuid>,
    replies: Option<i32>,
    last_message_at: Option<DateTime<Utc>>,
    updated_at: Option<DateTime<Utc>>,
}

struct Opened {
    owner_id: Uuid,
    subject: domain::personal::PersonalText,
    at: DateTime<Utc>,
}

/// The tickets of the batch in the order they first appear, folded, and
/// the users erased in it.
struct BatchFold {
    order: Vec<Uuid>,
    tickets: HashMap<Uuid, TicketFold>,
    erased: Vec<Uuid>,
}

fn fold(events: &[RecordedEvent]) -> Result<BatchFold, SubscriberError> {
    let mut batch = BatchFold {
        order: Vec::new(),
        tickets: HashMap::new(),
        erased: Vec::new(),
    };
    for event in events {
        if event.is(User::TYPE, ERASED) {
            batch.erased.push(event.aggregate_uuid()?);
            continue;
        }
        if event.aggregate_type != SupportTicket::TYPE {
            continue;
        }
        let decoded: SupportTicketEvent = event.payload_as()?;
        let ticket_id: Uuid = event.aggregate_uuid()?;
        let ticket = batch.tickets.entry(ticket_id).or_insert_with(|| {
            batch.order.push(ticket_id);
            TicketFold::default()
        });
        match decoded {
            SupportTicketEvent::TicketOpened {
                owner_id,
                subject,
                at,
                ..
            } => {
                // A second one is a no-op, as ON CONFLICT DO NOTHING makes
                // it one by one.
                if ticket.opened.is_none() {
                    ticket.opened = Some(Opened {
                        owner_id,
                        subject,
                        at,
                    });
                }
            }
            SupportTicketEvent::ReplyAdded {
                reply_number, at, ..
            } => {
                let number = i32::try_from(reply_number).unwrap_or(i32::MAX);
                ticket.replies = Some(ticket.replies.unwrap_or(0).max(number));
                ticket.last_message_at = Some(at);
            }
            SupportTicketEvent::TicketAssigned { assignee_id, .. } => {
                ticket.assignee_id = Some(assignee_id);
            }
            SupportTicketEvent::TicketClosed { at, .. } => {
                ticket.status = Some(TicketStatus::Closed);
                ticket.closed_at = Some(Some(at));
            }
            SupportTicketEvent::TicketReopened { .. } => {
                ticket.status = Some(TicketStatus::Open);
                ticket.closed_at = Some(None);
            }
        }
        ticket.updated_at = Some(event.recorded_at);
    }
    Ok(batch)
}

const ERASED: &str = "user.erased";

/// The data keys of `owners` that may open their texts: those whose key
/// this transaction sees and whose erasure is not in the log at or before
/// `until` (an erasure records `user.erased` before its key is destroyed,
/// and text opened in between would outlive it).
pub(crate) async fn owner_keys(
    transaction: &mut PgConnection,
    owners: &HashSet<Uuid>,
    until: Position,
) -> Result<HashMap<Uuid, DataKey>, SubscriberError> {
    if owners.is_empty() {
        return Ok(HashMap::new());
    }
    let owners: Vec<Uuid> = owners.iter().copied().collect();
    let rows: Vec<(Uuid, Vec<u8>)> = sqlx::query_as(
        "SELECT k.user_id, k.data_key FROM user_data_keys k \
          WHERE k.user_id = ANY($1) \
            AND NOT EXISTS (SELECT 1 FROM events e \
                WHERE e.aggregate_type = $2 AND e.aggregate_id = k.user_id::text \
                  AND e.event_type = $3 \
                  AND (e.transaction_id, e.global_position) <= ($4::text::xid8, $5))",
    )
    .bind(&owners)
    .bind(User::TYPE)
    .bind(ERASED)
    .bind(until.transaction_text())
    .bind(until.global_position)
    .fetch_all(&mut *transaction)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(user_id, bytes)| DataKey::from_slice(&bytes).map(|key| (user_id, key)))
        .collect())
}

async fn insert(
    transaction: &mut PgConnection,
    opened: &[(Uuid, &TicketFold)],
    keys: &HashMap<Uuid, DataKey>,
) -> Result<(), sqlx::Error> {
    if opened.is_empty() {
        return Ok(());
    }
    let n = opened.len();
    let mut ids = Vec::with_capacity(n);
    let mut owners = Vec::with_capacity(n);
    let mut subjects = Vec::with_capacity(n);
    let mut statuses = Vec::with_capacity(n);
    let mut assignees = Vec::with_capacity(n);
    let mut replies = Vec::with_capacity(n);
    let mut opened_ats = Vec::with_capacity(n);
    let mut last_message_ats = Vec::with_capacity(n);
    let mut closed_ats = Vec::with_capacity(n);
    let mut updated_ats = Vec::with_capacity(n);
    for (ticket_id, ticket) in opened {
        let Some(head) = &ticket.opened else { continue };
        ids.push(*ticket_id);
        owners.push(head.owner_id);
        subjects.push(
            head.subject
                .reveal(keys.get(&head.owner_id), head.owner_id, "subject"),
        );
        statuses.push(ticket.status.unwrap_or_default().as_str());
        assignees.push(ticket.assignee_id);
        replies.push(ticket.replies.unwrap_or(0));
        opened_ats.push(head.at);
        last_message_ats.push(ticket.last_message_at.unwrap_or(head.at));
        closed_ats.push(ticket.closed_at.flatten());
        updated_ats.push(ticket.updated_at);
    }
    sqlx::query(
        "INSERT INTO support_tickets (ticket_id, owner_id, subject, status, assignee_id, replies, \
                                      opened_at, last_message_at, closed_at, updated_at) \
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::uuid[], \
                              $6::int4[], $7::timestamptz[], $8::timestamptz[], \
                              $9::timestamptz[], $10::timestamptz[]) \
         ON CONFLICT (ticket_id) DO NOTHING",
    )
    .bind(ids)
    .bind(owners)
    .bind(subjects)
    .bind(statuses)
    .bind(assignees)
    .bind(replies)
    .bind(opened_ats)
    .bind(last_message_ats)
    .bind(closed_ats)
    .bind(updated_ats)
    .execute(&mut *transaction)
    .await?;
    Ok(())
}

/// One `UPDATE` for the tickets opened before this batch.
async fn apply(
    transaction: &mut PgConnection,
    changed: &[(Uuid, &TicketFold)],
) -> Result<(), sqlx::Error> {
    if changed.is_empty() {
        return Ok(());
    }
    let n = changed.len();
    let mut ids = Vec::with_capacity(n);
    let mut statuses = Vec::with_capacity(n);
    let mut closes = Vec::with_capacity(n);
    let mut closed_ats = Vec::with_capacity(n);
    let mut assignees = Vec::with_capacity(n);
    let mut replies = Vec::with_capacity(n);
    let mut last_message_ats = Vec::with_capacity(n);
    let mut updated_ats = Vec::with_capacity(n);
    for (ticket_id, ticket) in changed {
        ids.push(*ticket_id);
        statuses.push(ticket.status.map(TicketStatus::as_str));
        closes.push(ticket.closed_at.is_some());
        closed_ats.push(ticket.closed_at.flatten());
        assignees.push(ticket.assignee_id);
        replies.push(ticket.replies.unwrap_or(0));
        last_message_ats.push(ticket.last_message_at);
        updated_ats.push(ticket.updated_at);
    }
    sqlx::query(
        "UPDATE support_tickets t SET \
             status = coalesce(c.status, t.status), \
             closed_at = CASE WHEN c.closes THEN c.closed_at ELSE t.closed_at END, \
             assignee_id = coalesce(c.assignee_id, t.assignee_id), \
             replies = greatest(t.replies, c.replies), \
             last_message_at = coalesce(c.last_message_at, t.last_message_at), \
             updated_at = c.updated_at \
         FROM unnest($1::uuid[], $2::text[], $3::bool[], $4::timestamptz[], $5::uuid[], \
                     $6::int4[], $7::timestamptz[], $8::timestamptz[]) \
              AS c(ticket_id, status, closes, closed_at, assignee_id, replies, last_message_at, \
                   updated_at) \
         WHERE t.ticket_id = c.ticket_id",
    )
    .bind(ids)
    .bind(statuses)
    .bind(closes)
    .bind(closed_ats)
    .bind(assignees)
    .bind(replies)
    .bind(last_message_ats)
    .bind(updated_ats)
    .execute(&mut *transaction)
    .await?;
    Ok(())
}

#[async_trait]
impl Subscriber for SupportTicketsProjector {
    fn name(&self) -> &'static str {
        "support_tickets"
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
        let mut batch = fold(events)?;
        let (mut opened, mut changed) = (Vec::new(), Vec::new());
        for ticket_id in &batch.order {
            let Some(ticket) = batch.tickets.get(ticket_id) else {
                continue;
            };
            if ticket.opened.is_some() {
                opened.push((*ticket_id, ticket));
            } else {
                changed.push((*ticket_id, ticket));
            }
        }
        let owners: HashSet<Uuid> = opened
            .iter()
            .filter_map(|(_, ticket)| ticket.opened.as_ref().map(|head| head.owner_id))
            .collect();
        let keys = owner_keys(transaction, &owners, last.position).await?;
        apply(transaction, &changed).await?;
        insert(transaction, &opened, &keys).await?;
        // Erasures last: only the subject is theirs, which nothing writes
        // after an owner's erasure, so their place in the batch does not
        // matter.
        batch.erased.sort();
        batch.erased.dedup();
        if !batch.erased.is_empty() {
            sqlx::query("UPDATE support_tickets SET subject = NULL WHERE owner_id = ANY($1)")
                .bind(&batch.erased)
                .execute(&mut *transaction)
                .await?;
        }
        Ok(())
    }
}
