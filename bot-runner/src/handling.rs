//! What each command message leads to: the command it calls for, decided
//! from the bot's state, so the same message twice has one effect.
//!
//! Messages from the log carry `sequence`: their request is recorded, and
//! the runner carries it out (or ignores it, when the bot has moved on).
//! Messages from external producers carry no `sequence` but a `user_id`:
//! the runner records the request as that user first, with the same
//! checks as REST (the user exists, owns the bot, is no auditor, the bot's
//! state allows it, its key passed a test), and the message that request
//! puts on the queue is then carried out as any other.

use std::sync::Arc;

use command_side::{CommandError, CommandMetadata, CommandSide};
use domain::bot::{Bot, BotCommand, BotState, TriggerStatus};
use domain::user::User;
use domain::{Actor, DomainError, Role};
use messaging::{BotCommandMessage, Queue};
use uuid::Uuid;

use crate::trader::{TradeError, Trader};
use crate::wire::Inspected;

/// Why a command message could not be carried out.
#[derive(Debug)]
pub(crate) enum Refusal {
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

/// Carries out command messages; shared by the three queues' consumers.
pub(crate) struct CommandHandler {
    commands: Arc<CommandSide>,
    trader: Arc<Trader>,
}

impl CommandHandler {
    pub(crate) fn new(commands: Arc<CommandSide>, trader: Arc<Trader>) -> Self {
        Self { commands, trader }
    }

    /// Does what `inspected` calls for on `queue`.
    pub(crate) async fn carry_out(
        &self,
        queue: Queue,
        inspected: Inspected,
    ) -> Result<(), Refusal> {
        let Inspected { message, metadata } = inspected;
        match queue {
            Queue::BotStart => self.on_start(&message, metadata).await,
            Queue::BotStop => self.on_stop(&message, metadata).await,
            Queue::BotTriggerTrade => self.on_trigger(&message, metadata).await,
            other => Err(Refusal::Permanent(format!(
                "{} is not a command queue",
                other.base_name()
            ))),
        }
    }

    /// Records on the bot that its work failed in a way nothing foresaw
    /// (a panic): a `bot.error` with `reason`, for its owner to see.
    pub(crate) async fn record_failure(&self, bot_id: Uuid, reason: &str) {
        if let Err(error) = self.trader.record_error(bot_id, reason).await {
            tracing::warn!(%bot_id, error = %error, "cannot record the bot's failure");
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
