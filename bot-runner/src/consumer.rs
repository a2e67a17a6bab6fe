//! The bot command consumers (`bot.start`, `bot.stop`,
//! `bot.trigger_trade`).
//!
//! Each message is turned into the command it calls for, and acknowledged
//! only once that command is stored (or found already stored: the same
//! message twice has one effect, decided from the bot's state and its
//! triggers). A message that cannot be carried out (unreadable, a refused
//! command, an unknown user, bot or trigger) is published to the queue's
//! dead-letter queue with `x-death-reason`, then acknowledged, and the
//! consumer carries on. A transient failure (database down) puts the
//! message back for another try.
//!
//! Messages from the log carry `sequence`: their request is recorded, and
//! the runner carries it out (or ignores it, when the bot has moved on).
//! Messages from external producers carry no `sequence` but a `user_id`:
//! the runner records the request as that user first, with the same
//! checks as REST (the user exists, owns the bot, is no auditor, the bot's
//! state allows it, its key passed a test), and the message that request
//! puts on the queue is then carried out as any other.
//!
//! [`crate::supervisor`] starts it on the active runner only.

use std::sync::Arc;
use std::time::Duration;

use command_side::{CommandError, CommandMetadata, CommandSide};
use domain::bot::{Bot, BotCommand, BotState, TriggerStatus};
use domain::user::User;
use domain::{Actor, DomainError, Role};
use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Confirmation, Connection, ConnectionProperties};
use messaging::{BotCommandMessage, MessagingError, Queue, RabbitSettings, Topology};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::supervisor::RunnerSettings;
use crate::trader::{TradeError, Trader};

/// The header naming why a message was dead-lettered.
pub const DEATH_REASON_HEADER: &str = "x-death-reason";

/// What became of a message.
#[derive(Debug, PartialEq)]
enum Disposition {
    Done,
    DeadLetter(String),
    Retry(String),
}

/// Why a command message could not be carried out.
#[derive(Debug)]
enum Refusal {
    /// Permanent: the message goes to the dead-letter queue.
    Permanent(String),
    /// A dependency is down or a race was lost: worth another try, however
    /// many it takes.
    Transient(String),
    /// Something unforeseen: tried once more, then dead-lettered.
    Unexpected(String),
}

impl From<CommandError> for Refusal {
    fn from(error: CommandError) -> Self {
        match error {
            CommandError::Refused(DomainError::Unavailable { reason }) => {
                Refusal::Transient(reason)
            }
            CommandError::Refused(
                refusal @ (DomainError::Forbidden { .. } | DomainError::NotFound { .. }),
            ) => Refusal::Permanent(format!("unauthorised: {refusal}")),
            CommandError::Refused(refusal) => Refusal::Permanent(format!("refused: {refusal}")),
            CommandError::Unexpected(error) => Refusal::Unexpected(format!("{error:#}")),
            other => Refusal::Transient(other.to_string()),
        }
    }
}

impl From<TradeError> for Refusal {
    fn from(error: TradeError) -> Self {
        match error {
            TradeError::Command(error) => error.into(),
            TradeError::Database(error) => Refusal::Transient(error.to_string()),
            TradeError::Credentials(reason) => Refusal::Unexpected(reason),
        }
    }
}

pub(crate) struct CommandConsumer {
    commands: Arc<CommandSide>,
    trader: Arc<Trader>,
    rabbit: RabbitSettings,
    topology: Topology,
    settings: RunnerSettings,
}

impl CommandConsumer {
    pub(crate) fn new(
        commands: Arc<CommandSide>,
        trader: Arc<Trader>,
        rabbit: RabbitSettings,
        settings: RunnerSettings,
    ) -> Self {
        Self {
            commands,
            trader,
            topology: Topology::new(rabbit.queue_prefix.clone()),
            rabbit,
            settings,
        }
    }

    pub(crate) async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let first_pause = Duration::from_millis(100);
        let mut pause = first_pause;
        while !shutdown.is_cancelled() {
            match self.consume(&shutdown, &mut pause).await {
                Ok(()) => {}
                Err(error) => {
                    tracing::warn!(error = %error, retry_in_ms = pause.as_millis() as u64, "bot command consumer lost rabbitmq; reconnecting")
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
            }
            pause = (pause * 2).min(self.settings.max_backoff);
        }
    }

    /// Consumes until the connection breaks (an error) or `shutdown`.
    async fn consume(
        &self,
        shutdown: &CancellationToken,
        pause: &mut Duration,
    ) -> Result<(), MessagingError> {
        let timeout = self.rabbit.timeout;
        let (connection, channel, dead_letters) = tokio::time::timeout(timeout, async {
            let connection = Connection::connect(
                &self.rabbit.url,
                ConnectionProperties::default().with_connection_name("muckard-bot-runner".into()),
            )
            .await?;
            let channel = connection.create_channel().await?;
            self.topology.declare(&channel).await?;
            channel
                .basic_qos(self.settings.prefetch, BasicQosOptions::default())
                .await?;
            let dead_letters = connection.create_channel().await?;
            dead_letters
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
            Ok::<_, lapin::Error>((connection, channel, dead_letters))
        })
        .await
        .map_err(|_| MessagingError::Timeout(timeout))??;
        let mut streams = Vec::new();
        for queue in Queue::COMMANDS {
            let consumer = channel
                .basic_consume(
                    self.topology.name(queue).as_str().into(),
                    format!(
                        "muckard-runner-{}-{}",
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
        tracing::info!(prefix = %self.rabbit.queue_prefix, "consuming bot commands");
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => {
                    let _ = connection.close(200, "shutting down".into()).await;
                    return Ok(());
                }
                next = deliveries.next() => match next {
                    Some((queue, Ok(delivery))) => self.process(queue, delivery, &dead_letters).await?,
                    Some((_, Err(error))) => return Err(error.into()),
                    None => return Err(MessagingError::Closed("the consumers were cancelled")),
                },
            }
        }
    }

    #[tracing::instrument(skip_all, fields(queue = queue.base_name(), message_id))]
    async fn process(
        &self,
        queue: Queue,
        delivery: Delivery,
        dead_letters: &Channel,
    ) -> Result<(), MessagingError> {
        let message_id = delivery
            .properties
            .message_id()
            .as_ref()
            .map(|id| id.to_string());
        tracing::Span::current().record("message_id", message_id.as_deref().unwrap_or(""));
        match self.dispose(queue, &delivery, message_id).await {
            Disposition::Done => {
                delivery.ack(BasicAckOptions::default()).await?;
            }
            Disposition::DeadLetter(reason) => {
                tracing::warn!(reason = %reason, "message dead-lettered");
                self.dead_letter(queue, &delivery, &reason, dead_letters)
                    .await?;
                delivery.ack(BasicAckOptions::default()).await?;
            }
            Disposition::Retry(reason) => {
                tracing::warn!(reason = %reason, "message put back for another try");
                tokio::time::sleep(Duration::from_secs(1)).await;
                delivery
                    .nack(BasicNackOptions {
                        requeue: true,
                        ..BasicNackOptions::default()
                    })
                    .await?;
            }
        }
        Ok(())
    }

    /// Publishes the message, unchanged but for the reason headers, to the
    /// queue's dead-letter queue, and waits for RabbitMQ to confirm it.
    async fn dead_letter(
        &self,
        queue: Queue,
        delivery: &Delivery,
        reason: &str,
        channel: &Channel,
    ) -> Result<(), MessagingError> {
        let mut headers = delivery.properties.headers().clone().unwrap_or_default();
        headers.insert(
            DEATH_REASON_HEADER.into(),
            AMQPValue::LongString(reason.into()),
        );
        headers.insert(
            "x-original-queue".into(),
            AMQPValue::LongString(self.topology.name(queue).as_str().into()),
        );
        headers.insert(
            "x-dead-lettered-at".into(),
            AMQPValue::LongString(chrono::Utc::now().to_rfc3339().as_str().into()),
        );
        let properties = delivery
            .properties
            .clone()
            .with_headers(headers)
            .with_delivery_mode(2);
        let dead_letter_queue = self.topology.dead_letter_name(queue);
        let confirm = channel
            .basic_publish(
                "".into(),
                dead_letter_queue.as_str().into(),
                BasicPublishOptions::default(),
                &delivery.data,
                properties,
            )
            .await?;
        match tokio::time::timeout(self.rabbit.timeout, confirm).await {
            Ok(Ok(Confirmation::Ack(_))) => Ok(()),
            Ok(Ok(_)) => Err(MessagingError::Nacked {
                queue: dead_letter_queue,
                message_id: String::new(),
            }),
            Ok(Err(error)) => Err(error.into()),
            Err(_) => Err(MessagingError::Timeout(self.rabbit.timeout)),
        }
    }

    async fn dispose(
        &self,
        queue: Queue,
        delivery: &Delivery,
        message_id: Option<String>,
    ) -> Disposition {
        let message: BotCommandMessage = match serde_json::from_slice(&delivery.data) {
            Ok(message) => message,
            Err(error) => return Disposition::DeadLetter(format!("malformed: {error}")),
        };
        let mut metadata = CommandMetadata::new("rabbitmq", Some(Actor::System));
        metadata.idempotency_key = message_id.clone();
        metadata.causation_id = message_id;
        metadata.correlation_id = delivery
            .properties
            .correlation_id()
            .as_ref()
            .map(|id| id.to_string());
        metadata.traceparent = messaging::messages::traceparent_of(&delivery.properties);
        let outcome = match queue {
            Queue::BotStart => self.on_start(&message, metadata).await,
            Queue::BotStop => self.on_stop(&message, metadata).await,
            Queue::BotTriggerTrade => self.on_trigger(&message, metadata).await,
            other => Err(Refusal::Permanent(format!(
                "{} is not a command queue",
                other.base_name()
            ))),
        };
        match outcome {
            Ok(()) => Disposition::Done,
            Err(Refusal::Permanent(reason)) => Disposition::DeadLetter(reason),
            // A message that failed before and fails again for an
            // unexpected reason is not retried forever.
            Err(Refusal::Unexpected(reason)) if delivery.redelivered => {
                Disposition::DeadLetter(format!("failed twice: {reason}"))
            }
            Err(Refusal::Unexpected(reason) | Refusal::Transient(reason)) => {
                Disposition::Retry(reason)
            }
        }
    }

    async fn load_bot(&self, bot_id: Uuid) -> Result<Bot, Refusal> {
        let (bot, _) = self.commands.load::<Bot>(&bot_id.to_string()).await?;
        if bot.owner_id.is_none() {
            return Err(Refusal::Permanent(
                "unauthorised: bot not found".to_string(),
            ));
        }
        Ok(bot)
    }

    /// The user an external producer acts for, with the role the log gives
    /// them.
    async fn actor_for(&self, user_id: Option<Uuid>) -> Result<Actor, Refusal> {
        let user_id = user_id.ok_or_else(|| {
            Refusal::Permanent(
                "unauthorised: a command not from the log must name its user_id".to_string(),
            )
        })?;
        let (user, _) = self.commands.load::<User>(&user_id.to_string()).await?;
        if !user.exists() {
            return Err(Refusal::Permanent("unauthorised: unknown user".to_string()));
        }
        Ok(Actor::User {
            user_id,
            role: user.role.unwrap_or(Role::User),
        })
    }

    async fn execute(
        &self,
        bot_id: Uuid,
        command: BotCommand,
        metadata: CommandMetadata,
        command_type: &str,
    ) -> Result<(), Refusal> {
        let mut metadata = metadata.with_command_type(command_type);
        if let Some(Actor::User { user_id, role }) = command_actor(&command) {
            metadata.user_id = Some(user_id);
            metadata.role = Some(role.as_str().to_string());
        }
        self.commands
            .execute_bot(&bot_id.to_string(), command, &metadata)
            .await?;
        Ok(())
    }

    async fn on_start(
        &self,
        message: &BotCommandMessage,
        metadata: CommandMetadata,
    ) -> Result<(), Refusal> {
        let bot_id = message.bot_id;
        let bot = self.load_bot(bot_id).await?;
        let at = chrono::Utc::now();
        match bot.state {
            BotState::Starting => {
                let command = BotCommand::MarkStarted {
                    actor: Actor::System,
                    at,
                };
                self.execute(bot_id, command, metadata, "bot.mark_started")
                    .await?;
                self.trader.ensure_loop(bot_id);
            }
            BotState::Running => self.trader.ensure_loop(bot_id),
            state if message.sequence.is_some() => {
                tracing::info!(%bot_id, ?state, "start message overtaken by later events; ignored");
            }
            _ => {
                let actor = self.actor_for(message.user_id).await?;
                let command = BotCommand::RequestStart { actor, at };
                self.execute(bot_id, command, metadata, "bot.request_start")
                    .await?;
            }
        }
        Ok(())
    }

    async fn on_stop(
        &self,
        message: &BotCommandMessage,
        metadata: CommandMetadata,
    ) -> Result<(), Refusal> {
        let bot_id = message.bot_id;
        let bot = self.load_bot(bot_id).await?;
        let at = chrono::Utc::now();
        match bot.state {
            BotState::Stopping => {
                self.trader.stop_loop(bot_id);
                let command = BotCommand::MarkStopped {
                    actor: Actor::System,
                    reason: message.reason.clone(),
                    at,
                };
                self.execute(bot_id, command, metadata, "bot.mark_stopped")
                    .await?;
            }
            BotState::Stopped => self.trader.stop_loop(bot_id),
            state if message.sequence.is_some() => {
                tracing::info!(%bot_id, ?state, "stop message overtaken by later events; ignored");
            }
            _ => {
                let actor = self.actor_for(message.user_id).await?;
                let command = BotCommand::RequestStop {
                    actor,
                    reason: message.reason.clone(),
                    at,
                };
                self.execute(bot_id, command, metadata, "bot.request_stop")
                    .await?;
            }
        }
        Ok(())
    }

    async fn on_trigger(
        &self,
        message: &BotCommandMessage,
        metadata: CommandMetadata,
    ) -> Result<(), Refusal> {
        let bot_id = message.bot_id;
        let bot = self.load_bot(bot_id).await?;
        let status = message.trigger_id.map(|id| bot.trigger_status(id));
        match (status, message.trigger_id) {
            (Some(TriggerStatus::Pending), trigger_id) => {
                let mut last_note = None;
                self.trader
                    .trade(bot_id, &bot, trigger_id, &mut last_note)
                    .await?;
            }
            // Traded or skipped already: a duplicate.
            (Some(TriggerStatus::Handled), _) => {}
            _ if message.sequence.is_some() => {
                return Err(Refusal::Permanent(
                    "refused: the bot has no such trigger".to_string(),
                ))
            }
            (_, trigger_id) => {
                let actor = self.actor_for(message.user_id).await?;
                let command = BotCommand::TriggerTrade {
                    actor,
                    trigger_id: trigger_id.unwrap_or_else(Uuid::new_v4),
                    at: chrono::Utc::now(),
                };
                self.execute(bot_id, command, metadata, "bot.trigger_trade")
                    .await?;
            }
        }
        Ok(())
    }
}

fn command_actor(command: &BotCommand) -> Option<Actor> {
    match command {
        BotCommand::RequestStart { actor, .. }
        | BotCommand::RequestStop { actor, .. }
        | BotCommand::TriggerTrade { actor, .. } => Some(*actor),
        _ => None,
    }
}
