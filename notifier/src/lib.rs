//! The notifier: consumes the status and alert queues (`bot.started`,
//! `bot.stopped`, `bot.error`, `kraken.key.test.failed`) and raises the
//! notifications their events call for. (Fills and support replies are
//! raised from the log by `notification_raiser`, a process manager of the
//! projector role.)
//!
//! A message names an event; the notifier reads that event from the log
//! and acts on the log's version alone (one the log does not hold, or holds
//! as another type or stream, is dead-lettered), so whoever can publish to
//! a queue still cannot notify a user of anything the log does not say.
//!
//! A delivery is acknowledged only once its notification is stored (or
//! found stored: the notification's id is derived from the event's, so a
//! redelivery records nothing), or once it is known to need none (a
//! `bot.started`, a user whose level leaves the kind out, a user gone). One
//! that cannot be read is published to the queue's dead-letter queue with
//! `x-death-reason`, then acknowledged. A failure to store (the database
//! down) puts the message back after a pause, as often as it takes. So
//! nothing acknowledged is lost, and while the notifier is down the queues'
//! own bounds (`messaging::topology`) keep the broker safe.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use command_side::notifications::{NotificationRequest, Raised};
use command_side::{CommandError, CommandMetadata, CommandSide};
use domain::bot::Bot;
use domain::notification::{NotificationKind, NotificationSubject};
use domain::Actor;
use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection};
use messaging::{MessagingError, Queue, RabbitSettings, StatusMessage, Topology};
use prometheus::IntCounterVec;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The header naming why a message was dead-lettered (as the runner's).
pub use messaging::link::DEATH_REASON_HEADER;

/// The queues the notifier consumes.
pub const QUEUES: [Queue; 4] = [
    Queue::BotStarted,
    Queue::BotStopped,
    Queue::BotError,
    Queue::KeyTestFailed,
];

#[derive(Debug, Clone)]
pub struct NotifierSettings {
    /// Unacknowledged deliveries per queue.
    pub prefetch: u16,
    /// The longest pause between reconnections.
    pub max_backoff: Duration,
    /// How long a message whose notification could not be stored waits
    /// before it is put back.
    pub retry_pause: Duration,
}

impl Default for NotifierSettings {
    fn default() -> Self {
        Self {
            prefetch: 32,
            max_backoff: Duration::from_secs(10),
            retry_pause: Duration::from_secs(1),
        }
    }
}

static MESSAGES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    let counter = IntCounterVec::new(
        prometheus::Opts::new(
            "muckard_notifier_messages_total",
            "Status and alert messages the notifier settled, by queue and outcome \
             (notified, not_wanted, dead_lettered, retried).",
        ),
        &["queue", "outcome"],
    )
    .expect("valid metric definition");
    let _ = prometheus::register(Box::new(counter.clone()));
    counter
});

/// Registers the notifier's metrics (at zero for every queue).
pub fn metrics() -> &'static IntCounterVec {
    for queue in QUEUES {
        for outcome in ["notified", "not_wanted", "dead_lettered", "retried"] {
            MESSAGES.with_label_values(&[queue.base_name(), outcome]);
        }
    }
    &MESSAGES
}

/// What a status or alert message asks of the notifier.
#[derive(Debug, Clone, PartialEq)]
pub enum Wanted {
    /// A notification for this owner.
    Notify(NotificationRequest),
    /// A notification for the owner of this bot (the event does not name
    /// it).
    NotifyBotOwner {
        bot_id: Uuid,
        request: NotificationRequest,
    },
    /// Nothing to tell (`bot.started`).
    Nothing,
}

/// What `message`, read from `queue`, asks for; `Err` says why it cannot
/// be read (and is dead-lettered).
pub fn wanted(queue: Queue, message: &StatusMessage) -> Result<Wanted, String> {
    let text = |name: &str| {
        message
            .payload
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let aggregate = || {
        message
            .aggregate_id
            .parse::<Uuid>()
            .map_err(|_| "malformed: aggregate_id is not a UUID".to_string())
    };
    let request = |owner_id: Uuid, kind, subject, text: String| NotificationRequest {
        owner_id,
        kind,
        subject,
        message: text,
        source_event_id: message.event_id,
        source_event_type: message.event_type.clone(),
    };
    let expected = match queue {
        Queue::BotStarted => "bot.started",
        Queue::BotStopped => "bot.stopped",
        Queue::BotError => "bot.error",
        Queue::KeyTestFailed => "kraken.key.test.failed",
        other => {
            return Err(format!(
                "the notifier does not consume {}",
                other.base_name()
            ))
        }
    };
    if message.event_type != expected {
        return Err(format!(
            "malformed: event_type {:?} on the {expected} queue",
            message.event_type
        ));
    }
    Ok(match queue {
        Queue::BotStarted => Wanted::Nothing,
        Queue::BotStopped => {
            let bot_id = aggregate()?;
            let said = match text("reason") {
                Some(reason) => format!("bot stopped: {reason}"),
                None => "bot stopped".to_string(),
            };
            let subject = NotificationSubject {
                bot_id: Some(bot_id),
                ..NotificationSubject::default()
            };
            // Owner unknown until the bot is read: a placeholder the
            // notifier fills in.
            Wanted::NotifyBotOwner {
                bot_id,
                request: request(Uuid::nil(), NotificationKind::BotStopped, subject, said),
            }
        }
        Queue::BotError => {
            let bot_id = aggregate()?;
            let owner_id = message
                .user_id
                .ok_or_else(|| "malformed: bot.error names no user_id".to_string())?;
            let said = text("message").unwrap_or_else(|| "the bot reported an error".to_string());
            Wanted::Notify(request(
                owner_id,
                NotificationKind::BotError,
                NotificationSubject {
                    bot_id: Some(bot_id),
                    ..NotificationSubject::default()
                },
                format!("bot error: {said}"),
            ))
        }
        _ => {
            let key_id = aggregate()?;
            let owner_id = message
                .user_id
                .ok_or_else(|| "malformed: kraken.key.test.failed names no user_id".to_string())?;
            let reason = text("reason").unwrap_or_else(|| "no reason given".to_string());
            Wanted::Notify(request(
                owner_id,
                NotificationKind::KeyTestFailed,
                NotificationSubject {
                    key_id: Some(key_id),
                    ..NotificationSubject::default()
                },
                format!("exchange key test failed: {reason}"),
            ))
        }
    })
}

/// What became of a delivery.
#[derive(Debug, PartialEq)]
enum Disposition {
    Done(&'static str),
    DeadLetter(String),
    Retry(String),
}

struct Consumer {
    commands: Arc<CommandSide>,
    rabbit: RabbitSettings,
    topology: Topology,
    settings: NotifierSettings,
    /// Reads the events the messages name, upcast as the command side
    /// loads them.
    log: event_log::LogReader,
}

/// Starts the notifier's consumer of the status and alert queues. It does
/// not wait for RabbitMQ (it reconnects with back-off) and stops at
/// `shutdown`.
pub fn spawn(
    commands: Arc<CommandSide>,
    rabbit: RabbitSettings,
    settings: NotifierSettings,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    metrics();
    let consumer = Arc::new(Consumer {
        commands,
        topology: rabbit.topology(),
        rabbit,
        settings,
        log: event_log::LogReader::with_upcasters(domain::upcasters()),
    });
    tokio::spawn(consumer.run(shutdown))
}

impl Consumer {
    async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let first_pause = Duration::from_millis(100);
        let mut pause = first_pause;
        while !shutdown.is_cancelled() {
            let consumed = tokio::select! {
                _ = shutdown.cancelled() => return,
                consumed = self.consume(&shutdown, &mut pause) => consumed,
            };
            if let Err(error) = consumed {
                tracing::warn!(%error, retry_in_ms = pause.as_millis() as u64, "notifier lost rabbitmq; reconnecting");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
            }
            pause = (pause * 2).min(self.settings.max_backoff);
        }
    }

    async fn connect(&self) -> Result<(Connection, Channel, Channel), MessagingError> {
        messaging::link::open_consumer(
            &self.rabbit,
            &self.topology,
            "muckard-notifier",
            self.settings.prefetch,
        )
        .await
    }

    async fn consume(
        &self,
        shutdown: &CancellationToken,
        pause: &mut Duration,
    ) -> Result<(), MessagingError> {
        let (connection, channel, outlet) = self.connect().await?;
        let mut streams = Vec::new();
        for queue in QUEUES {
            let consumer = channel
                .basic_consume(
                    self.topology.name(queue).as_str().into(),
                    format!(
                        "muckard-notifier-{}-{}",
                        queue.base_name(),
                        Uuid::new_v4().simple()
                    )
                    .as_str()
                    .into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            streams.push(consumer.map(move |delivery| (queue, delivery)).boxed());
        }
        let mut deliveries = futures::stream::select_all(streams);
        *pause = Duration::from_millis(100);
        tracing::info!(prefix = %self.rabbit.queue_prefix, "notifier consuming the status and alert queues");
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => {
                    let _ = tokio::time::timeout(
                        self.rabbit.timeout,
                        connection.close(200, "shutting down".into()),
                    )
                    .await;
                    return Ok(());
                }
                next = deliveries.next() => match next {
                    Some((queue, Ok(delivery))) => {
                        let disposition = self.dispose(queue, &delivery).await;
                        self.settle(queue, &delivery, disposition, &outlet).await?;
                    }
                    Some((_, Err(error))) => return Err(error.into()),
                    None => return Err(MessagingError::Closed("the consumers were cancelled")),
                },
            }
        }
    }

    async fn dispose(&self, queue: Queue, delivery: &Delivery) -> Disposition {
        let claimed: StatusMessage = match serde_json::from_slice(&delivery.data) {
            Ok(message) => message,
            Err(error) => return Disposition::DeadLetter(format!("malformed: {error}")),
        };
        // The message only names an event: what is told is what the log
        // says, so a message the log did not produce (or one altered on
        // the way) notifies nobody.
        let message = match self.as_logged(&claimed).await {
            Ok(message) => message,
            Err(disposition) => return disposition,
        };
        let wanted = match wanted(queue, &message) {
            Ok(wanted) => wanted,
            Err(reason) => return Disposition::DeadLetter(reason),
        };
        let request = match wanted {
            Wanted::Nothing => return Disposition::Done("not_wanted"),
            Wanted::Notify(request) => request,
            Wanted::NotifyBotOwner {
                bot_id,
                mut request,
            } => match self.commands.load::<Bot>(&bot_id.to_string()).await {
                Ok((bot, _)) => match bot.owner_id {
                    Some(owner_id) => {
                        request.owner_id = owner_id;
                        request
                    }
                    None => return Disposition::DeadLetter(format!("no bot {bot_id}")),
                },
                Err(error @ CommandError::DatabaseUnavailable(_)) => {
                    return Disposition::Retry(error.to_string())
                }
                Err(error) => {
                    return Disposition::DeadLetter(format!("cannot read the bot: {error}"))
                }
            },
        };
        let mut metadata = CommandMetadata::new("rabbitmq", Some(Actor::System))
            .with_command_type("notification.raise");
        metadata.causation_id = Some(message.event_id.to_string());
        // Into the metadata only what the log takes: no control character
        // (PostgreSQL refuses a NUL in JSON), a bounded length.
        let fit = |text: String| {
            (text.len() <= 256 && !text.chars().any(char::is_control)).then_some(text)
        };
        metadata.correlation_id = message.correlation_id.clone().and_then(fit);
        metadata.traceparent =
            messaging::messages::traceparent_of(&delivery.properties).and_then(fit);
        match self.commands.raise_notification(request, &metadata).await {
            Ok(Raised::Recorded { .. }) => Disposition::Done("notified"),
            Ok(Raised::NotWanted) => Disposition::Done("not_wanted"),
            Err(error @ (CommandError::DatabaseUnavailable(_) | CommandError::Conflict { .. })) => {
                Disposition::Retry(error.to_string())
            }
            // Refused by the aggregate, or an error a retry would repeat.
            Err(error) => Disposition::DeadLetter(format!("cannot notify: {error}")),
        }
    }

    /// The message the log's event with `claimed`'s id is published as,
    /// or why there is none to act on.
    async fn as_logged(&self, claimed: &StatusMessage) -> Result<StatusMessage, Disposition> {
        let recorded = self
            .log
            .event_by_id(&self.commands.pool, claimed.event_id)
            .await
            .map_err(|error| match error {
                event_log::LogError::Database(error) => Disposition::Retry(error.to_string()),
                other => Disposition::DeadLetter(format!("cannot read the event: {other}")),
            })?;
        let Some(recorded) = recorded else {
            return Err(Disposition::DeadLetter(format!(
                "unknown event: the log holds no event {}",
                claimed.event_id
            )));
        };
        let logged = messaging::messages::status_message(&recorded);
        if (
            &logged.event_type,
            &logged.aggregate_type,
            &logged.aggregate_id,
        ) != (
            &claimed.event_type,
            &claimed.aggregate_type,
            &claimed.aggregate_id,
        ) {
            return Err(Disposition::DeadLetter(format!(
                "altered: event {} is a {} of {} {} in the log",
                claimed.event_id, logged.event_type, logged.aggregate_type, logged.aggregate_id
            )));
        }
        Ok(StatusMessage {
            correlation_id: claimed.correlation_id.clone(),
            ..logged
        })
    }

    async fn settle(
        &self,
        queue: Queue,
        delivery: &Delivery,
        disposition: Disposition,
        outlet: &Channel,
    ) -> Result<(), MessagingError> {
        let count = |outcome: &str| {
            MESSAGES
                .with_label_values(&[queue.base_name(), outcome])
                .inc();
        };
        match disposition {
            Disposition::Done(outcome) => {
                delivery.ack(BasicAckOptions::default()).await?;
                count(outcome);
            }
            Disposition::DeadLetter(reason) => {
                tracing::warn!(queue = queue.base_name(), reason = %reason, "status message dead-lettered");
                messaging::link::dead_letter(
                    outlet,
                    self.rabbit.timeout,
                    &self.topology,
                    queue,
                    delivery,
                    &reason,
                )
                .await?;
                delivery.ack(BasicAckOptions::default()).await?;
                count("dead_lettered");
            }
            Disposition::Retry(reason) => {
                tracing::warn!(queue = queue.base_name(), reason = %reason, "cannot store the notification; putting the message back");
                tokio::time::sleep(self.settings.retry_pause).await;
                delivery
                    .nack(BasicNackOptions {
                        requeue: true,
                        ..BasicNackOptions::default()
                    })
                    .await?;
                count("retried");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use serde_json::json;

    fn message(
        event_type: &str,
        aggregate_id: Uuid,
        user_id: Option<Uuid>,
        payload: Value,
    ) -> StatusMessage {
        StatusMessage {
            event_id: Uuid::new_v4(),
            event_type: event_type.to_string(),
            event_version: "1.0".to_string(),
            aggregate_type: "Bot".to_string(),
            aggregate_id: aggregate_id.to_string(),
            sequence: 3,
            recorded_at: Utc::now(),
            user_id,
            correlation_id: None,
            payload,
        }
    }

    #[test]
    fn each_queue_asks_for_its_notification() {
        let (bot, owner) = (Uuid::new_v4(), Uuid::new_v4());
        let error = message(
            "bot.error",
            bot,
            Some(owner),
            json!({"type": "bot.error", "owner_id": owner, "message": "exchange down"}),
        );
        match wanted(Queue::BotError, &error).unwrap() {
            Wanted::Notify(request) => {
                assert_eq!(request.owner_id, owner);
                assert_eq!(request.kind, NotificationKind::BotError);
                assert_eq!(request.subject.bot_id, Some(bot));
                assert_eq!(request.source_event_id, error.event_id);
                assert!(request.message.contains("exchange down"));
            }
            other => panic!("{other:?}"),
        }
        let stopped = message(
            "bot.stopped",
            bot,
            None,
            json!({"type": "bot.stopped", "reason": "by its owner"}),
        );
        assert!(matches!(
            wanted(Queue::BotStopped, &stopped).unwrap(),
            Wanted::NotifyBotOwner { bot_id, ref request }
                if bot_id == bot && request.message == "bot stopped: by its owner"
        ));
        let started = message("bot.started", bot, None, json!({"type": "bot.started"}));
        assert_eq!(
            wanted(Queue::BotStarted, &started).unwrap(),
            Wanted::Nothing
        );
    }

    #[test]
    fn a_message_that_does_not_fit_its_queue_is_refused_with_a_reason() {
        let bot = Uuid::new_v4();
        let started = message("bot.started", bot, None, json!({}));
        assert!(wanted(Queue::BotError, &started)
            .unwrap_err()
            .contains("event_type"));
        let nameless = message("bot.error", bot, None, json!({"message": "x"}));
        assert!(wanted(Queue::BotError, &nameless)
            .unwrap_err()
            .contains("user_id"));
        let mut bad_id = message("bot.stopped", bot, None, json!({}));
        bad_id.aggregate_id = "not-a-uuid".to_string();
        assert!(wanted(Queue::BotStopped, &bad_id)
            .unwrap_err()
            .contains("aggregate_id"));
        assert!(wanted(Queue::BotStart, &started).is_err());
    }
}
