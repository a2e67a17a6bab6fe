//! The user-facing bot commands.

use chrono::Utc;
use domain::bot::BotCommand;
use domain::{Actor, Pair, Strategy};
use uuid::Uuid;

use crate::error::CommandError;
use crate::framework::CommandSide;
use crate::metadata::CommandMetadata;
use event_log::Position;

impl CommandSide {
    pub async fn configure_bot(
        &self,
        actor: Actor,
        key_id: Uuid,
        pair: Pair,
        strategy: Strategy,
        metadata: &CommandMetadata,
    ) -> Result<(Uuid, Position), CommandError> {
        let bot_id = Uuid::new_v4();
        let command = BotCommand::Configure {
            actor,
            bot_id,
            key_id,
            pair,
            strategy,
            at: Utc::now(),
        };
        let position = self
            .execute_bot(&bot_id.to_string(), command, metadata)
            .await?;
        Ok((bot_id, position))
    }

    pub async fn request_bot_start(
        &self,
        actor: Actor,
        bot_id: Uuid,
        metadata: &CommandMetadata,
    ) -> Result<Position, CommandError> {
        let command = BotCommand::RequestStart {
            actor,
            at: Utc::now(),
        };
        self.execute_bot(&bot_id.to_string(), command, metadata)
            .await
    }

    pub async fn request_bot_stop(
        &self,
        actor: Actor,
        bot_id: Uuid,
        reason: Option<String>,
        metadata: &CommandMetadata,
    ) -> Result<Position, CommandError> {
        let command = BotCommand::RequestStop {
            actor,
            reason,
            at: Utc::now(),
        };
        self.execute_bot(&bot_id.to_string(), command, metadata)
            .await
    }

    pub async fn trigger_bot_trade(
        &self,
        actor: Actor,
        bot_id: Uuid,
        metadata: &CommandMetadata,
    ) -> Result<(Uuid, Position), CommandError> {
        let trigger_id = Uuid::new_v4();
        let command = BotCommand::TriggerTrade {
            actor,
            trigger_id,
            at: Utc::now(),
        };
        let position = self
            .execute_bot(&bot_id.to_string(), command, metadata)
            .await?;
        Ok((trigger_id, position))
    }
}
