//! Notifications: raising one for an event the user should be told about
//! (as their `in_app` level allows), reading one or all, and
//! `notification_raiser`, the subscriber that raises them for fills and
//! support replies from the log. Bot errors, stops and failed key tests
//! reach the notifier through their RabbitMQ queues instead (the
//! `notifier` crate), and are raised by the same
//! [`CommandSide::raise_notification`]. The projector role runs
//! `notification_raiser` beside the trade recorder.
//!
//! A notification's id is derived from its source event, so every raiser
//! may be at-least-once: raising it again records nothing.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use cqrs_es::Aggregate;
use domain::bot::{Bot, BotEvent};
use domain::notification::{
    notification_id_for, Notification, NotificationCommand, NotificationEvent, NotificationKind,
    NotificationSubject,
};
use domain::support_ticket::{SupportTicket, SupportTicketEvent};
use domain::user::User;
use domain::Actor;
use event_log::{Position, RecordedEvent, Subscriber, SubscriberError};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::CommandError;
use crate::framework::CommandSide;
use crate::metadata::CommandMetadata;

/// The most notifications one "read all" marks; the caller repeats it for
/// more (the answer says how many it marked).
pub const MAX_MARKED_AT_ONCE: i64 = 500;

/// A notification to raise, told by the event `source`.
#[derive(Debug, Clone, PartialEq)]
pub struct NotificationRequest {
    pub owner_id: Uuid,
    pub kind: NotificationKind,
    pub subject: NotificationSubject,
    pub message: String,
    pub source_event_id: Uuid,
    pub source_event_type: String,
}

/// What raising a notification did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Raised {
    /// Recorded now, or found recorded before (same source event).
    Recorded { notification_id: Uuid },
    /// The owner's level leaves this kind out, or the owner is gone.
    NotWanted,
}

impl CommandSide {
    /// Raises the notification `request` describes, unless its owner's
    /// `in_app` level leaves its kind out (or the owner was erased).
    pub async fn raise_notification(
        &self,
        request: NotificationRequest,
        metadata: &CommandMetadata,
    ) -> Result<Raised, CommandError> {
        let (user, _) = self.load::<User>(&request.owner_id.to_string()).await?;
        if user.user_id.is_none() || user.erased {
            return Ok(Raised::NotWanted);
        }
        let level = user
            .notifications
            .map(|preferences| preferences.in_app)
            .unwrap_or_default();
        if !level.wants(request.kind) {
            return Ok(Raised::NotWanted);
        }
        let notification_id = notification_id_for(request.source_event_id);
        let command = NotificationCommand::Raise {
            actor: Actor::System,
            notification_id,
            owner_id: request.owner_id,
            kind: request.kind,
            subject: request.subject,
            message: request.message,
            source_event_id: request.source_event_id,
            source_event_type: request.source_event_type,
            at: Utc::now(),
        };
        self.execute_notification(&notification_id.to_string(), command, metadata)
            .await?;
        Ok(Raised::Recorded { notification_id })
    }

    /// The owner read one notification (reading it again changes nothing).
    pub async fn mark_notification_read(
        &self,
        actor: Actor,
        notification_id: Uuid,
        metadata: &CommandMetadata,
    ) -> Result<Position, CommandError> {
        let command = NotificationCommand::MarkRead {
            actor,
            at: Utc::now(),
        };
        self.execute_notification(&notification_id.to_string(), command, metadata)
            .await
    }

    /// Marks read the actor's unread notifications the read model holds
    /// (the oldest first, at most [`MAX_MARKED_AT_ONCE`]) that are unread
    /// still; returns how many it marked and the position of the last
    /// one's event.
    pub async fn mark_all_notifications_read(
        &self,
        actor: Actor,
        metadata: &CommandMetadata,
    ) -> Result<(usize, Option<Position>), CommandError> {
        let Some(user_id) = actor.user_id() else {
            return Ok((0, None));
        };
        let unread: Vec<(Uuid,)> = sqlx::query_as(
            "SELECT notification_id FROM notifications WHERE user_id = $1 AND read_at IS NULL \
             ORDER BY number LIMIT $2",
        )
        .bind(user_id)
        .bind(MAX_MARKED_AT_ONCE)
        .fetch_all(&self.pool)
        .await
        .map_err(CommandError::from)?;
        // The read model may not have the latest reads yet: the aggregate
        // says which are still unread, and only those are counted.
        let (mut marked, mut last) = (0, None);
        for (notification_id,) in &unread {
            let (notification, _) = self
                .load::<Notification>(&notification_id.to_string())
                .await?;
            if notification.read {
                continue;
            }
            last = Some(
                self.mark_notification_read(actor, *notification_id, metadata)
                    .await?,
            );
            marked += 1;
        }
        Ok((marked, last))
    }
}

/// `notification_raiser`: raises a notification for every fill of a bot
/// (`bot.trade.executed`, to its owner) and every staff reply to a
/// support ticket (`support.reply_added` with `from_staff`, to the
/// ticket's owner, naming the ticket, never the sealed body).
pub struct NotificationRaiser {
    pub commands: Arc<CommandSide>,
}

/// The notification an event of the log asks for, if any.
pub fn notification_from_log(
    event: &RecordedEvent,
) -> Result<Option<NotificationRequest>, SubscriberError> {
    if let Some(BotEvent::TradeExecuted {
        owner_id,
        pair,
        fill,
    }) = event.payload_if::<BotEvent>(Bot::TYPE, BotEvent::TRADE_EXECUTED)?
    {
        let side = match fill.side {
            domain::Side::Buy => "bought",
            domain::Side::Sell => "sold",
        };
        return Ok(Some(NotificationRequest {
            owner_id,
            kind: NotificationKind::TradeExecuted,
            subject: NotificationSubject {
                bot_id: Some(event.aggregate_uuid()?),
                ..NotificationSubject::default()
            },
            message: format!(
                "{side} {} {} at {} (fee {})",
                fill.quantity,
                pair.as_str(),
                fill.price,
                fill.fee
            ),
            source_event_id: event.event_id,
            source_event_type: event.event_type.clone(),
        }));
    }
    if let Some(SupportTicketEvent::ReplyAdded {
        owner_id,
        from_staff: true,
        reply_number,
        ..
    }) = event.payload_if::<SupportTicketEvent>(SupportTicket::TYPE, "support.reply_added")?
    {
        return Ok(Some(NotificationRequest {
            owner_id,
            kind: NotificationKind::SupportReply,
            subject: NotificationSubject {
                ticket_id: Some(event.aggregate_uuid()?),
                ..NotificationSubject::default()
            },
            message: format!("support replied to your ticket (reply {reply_number})"),
            source_event_id: event.event_id,
            source_event_type: event.event_type.clone(),
        }));
    }
    Ok(None)
}

#[async_trait]
impl Subscriber for NotificationRaiser {
    fn name(&self) -> &'static str {
        "notification_raiser"
    }

    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        Some(&[Bot::TYPE, SupportTicket::TYPE])
    }

    async fn handle(
        &self,
        _transaction: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), SubscriberError> {
        for event in events {
            let Some(request) = notification_from_log(event)? else {
                continue;
            };
            let metadata = crate::process_manager::caused_by(event, "notification.raise");
            self.commands
                .raise_notification(request, &metadata)
                .await
                .map_err(|e| SubscriberError::Failed(e.to_string()))?;
        }
        Ok(())
    }
}

/// `notification_mailer`: mails each bot error and failed key test raised
/// to its owner, when the owner wants errors by email
/// (`notifications.bot_errors`, or never chose) and their email is
/// verified (an unverified address may be someone else's). The mail names
/// the kind and carries the notification's text, which holds no secret.
/// A batch's mails go out before its checkpoint moves: at least once (a
/// crash between the two sends them again). A mail the server refuses is
/// logged and skipped, so one bad address never holds up the others.
pub struct NotificationMailer {
    pub commands: Arc<CommandSide>,
}

impl NotificationMailer {
    /// The owner's verified email, if they want errors mailed.
    async fn recipient(&self, owner_id: Uuid) -> Result<Option<String>, SubscriberError> {
        let (user, _) = self
            .commands
            .load::<User>(&owner_id.to_string())
            .await
            .map_err(|error| SubscriberError::Failed(error.to_string()))?;
        let wanted = user
            .notifications
            .as_ref()
            .is_none_or(|preferences| preferences.bot_errors);
        if user.user_id.is_none() || user.erased || !wanted {
            return Ok(None);
        }
        let email: Option<String> = sqlx::query_scalar(
            "SELECT email FROM user_credentials WHERE user_id = $1 AND email_verified \
               AND disabled_at IS NULL",
        )
        .bind(owner_id)
        .fetch_optional(&self.commands.pool)
        .await?;
        Ok(email)
    }
}

/// The mail telling of a notification of `kind`.
pub fn notification_mail(to: &str, kind: NotificationKind, message: &str) -> crate::mail::Mail {
    let subject = match kind {
        NotificationKind::BotError => "Muckard: one of your bots reported an error",
        NotificationKind::KeyTestFailed => "Muckard: an exchange key failed its test",
        NotificationKind::BotStopped => "Muckard: one of your bots stopped",
        NotificationKind::TradeExecuted => "Muckard: a bot traded",
        NotificationKind::SupportReply => "Muckard: support replied",
    };
    crate::mail::Mail {
        to: to.to_string(),
        subject: subject.to_string(),
        body: domain::SecretString::new(format!(
            "{message}\r\n\r\nYour notifications are in the app. You get this mail because \
             your notification settings ask for errors by email (notifications.bot_errors).\r\n"
        )),
    }
}

#[async_trait]
impl Subscriber for NotificationMailer {
    fn name(&self) -> &'static str {
        "notification_mailer"
    }

    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        Some(&[Notification::TYPE])
    }

    async fn handle(
        &self,
        _transaction: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), SubscriberError> {
        for event in events {
            let Some(NotificationEvent::Raised {
                owner_id,
                kind,
                message,
                ..
            }) =
                event.payload_if::<NotificationEvent>(Notification::TYPE, "notification.raised")?
            else {
                continue;
            };
            if !kind.is_error() {
                continue;
            }
            let Some(email) = self.recipient(owner_id).await? else {
                continue;
            };
            let mail = notification_mail(&email, kind, &message);
            match self.commands.settings.accounts.mailer.send(mail).await {
                Ok(()) => tracing::info!(%owner_id, kind = kind.as_str(), "notification mailed"),
                Err(error) => {
                    tracing::warn!(%owner_id, kind = kind.as_str(), %error, "mailing a notification failed; skipped")
                }
            }
        }
        Ok(())
    }
}
