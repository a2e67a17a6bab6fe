//! `notifications`: what each user should be told, numbered in commit
//! order for stable paging, and when they read it.
//!
//! A batch is two statements: the notifications raised in it, inserted and
//! numbered on from the highest `number` in their commit order (the first
//! of a repeated id), then one update for those read in it.

use std::collections::HashSet;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use domain::notification::{Notification, NotificationEvent};
use event_log::{RecordedEvent, Subscriber, SubscriberError};
use sqlx::PgConnection;
use uuid::Uuid;

pub struct NotificationsProjector;

#[derive(Default)]
struct Raised {
    ids: Vec<Uuid>,
    users: Vec<Uuid>,
    kinds: Vec<&'static str>,
    bots: Vec<Option<Uuid>>,
    keys: Vec<Option<Uuid>>,
    tickets: Vec<Option<Uuid>>,
    messages: Vec<String>,
    sources: Vec<Uuid>,
    source_types: Vec<String>,
    ats: Vec<DateTime<Utc>>,
}

#[async_trait]
impl Subscriber for NotificationsProjector {
    fn name(&self) -> &'static str {
        "notifications"
    }

    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        Some(&[Notification::TYPE])
    }

    async fn handle(
        &self,
        transaction: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), SubscriberError> {
        let mut raised = Raised::default();
        let mut seen = HashSet::new();
        let (mut read_ids, mut read_ats) = (Vec::new(), Vec::new());
        for event in events
            .iter()
            .filter(|e| e.aggregate_type == Notification::TYPE)
        {
            let notification_id = event.aggregate_uuid()?;
            match event.payload_as::<NotificationEvent>()? {
                NotificationEvent::Raised {
                    owner_id,
                    kind,
                    subject,
                    message,
                    source_event_id,
                    source_event_type,
                    at,
                    ..
                } => {
                    if !seen.insert(notification_id) {
                        continue;
                    }
                    raised.ids.push(notification_id);
                    raised.users.push(owner_id);
                    raised.kinds.push(kind.as_str());
                    raised.bots.push(subject.bot_id);
                    raised.keys.push(subject.key_id);
                    raised.tickets.push(subject.ticket_id);
                    raised.messages.push(message);
                    raised.sources.push(source_event_id);
                    raised.source_types.push(source_event_type);
                    raised.ats.push(at);
                }
                NotificationEvent::Read { at, .. } => {
                    read_ids.push(notification_id);
                    read_ats.push(at);
                }
            }
        }
        if !raised.ids.is_empty() {
            // Only the active instance writes, so max + 1 numbers them in
            // the order they committed.
            sqlx::query(
                "WITH raised AS ( \
                     SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::uuid[], \
                                          $5::uuid[], $6::uuid[], $7::text[], $8::uuid[], \
                                          $9::text[], $10::timestamptz[]) WITH ORDINALITY \
                         AS r(notification_id, user_id, kind, bot_id, key_id, ticket_id, message, \
                              source_event_id, source_event_type, created_at, ordinal) \
                 ), fresh AS ( \
                     SELECT r.* FROM raised r WHERE NOT EXISTS \
                         (SELECT 1 FROM notifications n WHERE n.notification_id = r.notification_id) \
                 ) \
                 INSERT INTO notifications (notification_id, number, user_id, kind, bot_id, key_id, \
                                            ticket_id, message, source_event_id, source_event_type, \
                                            created_at) \
                 SELECT notification_id, \
                        (SELECT coalesce(max(number), 0) FROM notifications) \
                            + row_number() OVER (ORDER BY ordinal), \
                        user_id, kind, bot_id, key_id, ticket_id, message, source_event_id, \
                        source_event_type, created_at \
                 FROM fresh ORDER BY ordinal",
            )
            .bind(&raised.ids)
            .bind(&raised.users)
            .bind(&raised.kinds)
            .bind(&raised.bots)
            .bind(&raised.keys)
            .bind(&raised.tickets)
            .bind(&raised.messages)
            .bind(&raised.sources)
            .bind(&raised.source_types)
            .bind(&raised.ats)
            .execute(&mut *transaction)
            .await?;
        }
        if !read_ids.is_empty() {
            // The first read of each counts, as one by one.
            sqlx::query(
                "UPDATE notifications n SET read_at = r.at \
                 FROM (SELECT notification_id, min(at) AS at \
                       FROM unnest($1::uuid[], $2::timestamptz[]) AS u(notification_id, at) \
                       GROUP BY notification_id) r \
                 WHERE n.notification_id = r.notification_id AND n.read_at IS NULL",
            )
            .bind(&read_ids)
            .bind(&read_ats)
            .execute(&mut *transaction)
            .await?;
        }
        Ok(())
    }
}
