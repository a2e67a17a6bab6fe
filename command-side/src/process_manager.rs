//! `trade_recorder`: for every `bot.trade.executed`, records the fill on the
//! owner's Portfolio (`trade.executed`). At-least-once; the Portfolio drops
//! an exchange order id it already holds, so a redelivered batch has one
//! effect. A fill the portfolio refuses is reported on the bot as
//! `bot.error` rather than blocking the log.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use cqrs_es::Aggregate;
use domain::bot::{Bot, BotCommand, BotEvent};
use domain::portfolio::{PortfolioCommand, TradeFill};
use domain::Actor;
use event_log::{RecordedEvent, Subscriber, SubscriberError};
use sqlx::PgConnection;

use crate::error::CommandError;
use crate::framework::CommandSide;
use crate::metadata::CommandMetadata;

pub struct TradeRecorder {
    pub commands: Arc<CommandSide>,
}

/// The metadata of a command a process manager issues because of `event`:
/// the system as actor, `event` as cause, its correlation and trace carried
/// on.
pub fn caused_by(event: &RecordedEvent, command_type: &str) -> CommandMetadata {
    let mut metadata = CommandMetadata::new("process-manager", Some(Actor::System))
        .with_command_type(command_type);
    metadata.causation_id = Some(event.event_id.to_string());
    metadata.correlation_id = event.metadata_str("correlation_id").map(str::to_string);
    metadata.traceparent = event.metadata_str("traceparent").map(str::to_string);
    metadata
}

#[async_trait]
impl Subscriber for TradeRecorder {
    fn name(&self) -> &'static str {
        "trade_recorder"
    }

    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        Some(&[Bot::TYPE])
    }

    async fn handle(
        &self,
        _transaction: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), SubscriberError> {
        for event in events {
            let Some((owner_id, pair, fill)) = event
                .payload_if::<BotEvent>(Bot::TYPE, BotEvent::TRADE_EXECUTED)?
                .and_then(BotEvent::into_trade_executed)
            else {
                continue;
            };
            let bot_id = event.aggregate_uuid()?;
            let order_id = fill.order_id.clone();
            let command = PortfolioCommand::RecordTrade {
                actor: Actor::System,
                trade: TradeFill {
                    user_id: owner_id,
                    bot_id,
                    order_id: fill.order_id,
                    pair,
                    side: fill.side,
                    quantity: fill.quantity,
                    price: fill.price,
                    fee: fill.fee,
                    executed_at: fill.executed_at,
                },
            };
            let metadata = caused_by(event, "portfolio.record_trade");
            match self
                .commands
                .execute_portfolio(&owner_id.to_string(), command, &metadata)
                .await
            {
                Ok(_) => {}
                Err(CommandError::Refused(refusal)) => {
                    tracing::warn!(%bot_id, order_id = %order_id, reason = %refusal, "portfolio refused a fill");
                    let report = BotCommand::RecordError {
                        actor: Actor::System,
                        message: format!("portfolio refused fill {order_id}: {refusal}"),
                        at: Utc::now(),
                    };
                    let metadata = caused_by(event, "bot.record_error");
                    self.commands
                        .execute_bot(&bot_id.to_string(), report, &metadata)
                        .await
                        .map_err(|e| SubscriberError::Failed(e.to_string()))?;
                }
                Err(other) => return Err(SubscriberError::Failed(other.to_string())),
            }
        }
        Ok(())
    }
}
