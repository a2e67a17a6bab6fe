//! `bot_status`: each bot's state, configuration, counters, last trade and
//! last error.

use async_trait::async_trait;
use cqrs_es::Aggregate;
use domain::bot::{Bot, BotEvent};
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use event_log::RecordedEvent;
use event_log::{Subscriber, SubscriberError};

pub struct BotStatusProjector;

fn set_state(
    bot_id: Uuid,
    state: &'static str,
    at: chrono::DateTime<chrono::Utc>,
) -> sqlx::query::Query<'static, sqlx::Postgres, sqlx::postgres::PgArguments> {
    sqlx::query("UPDATE bot_status SET state = $2, updated_at = $3 WHERE bot_id = $1")
        .bind(bot_id)
        .bind(state)
        .bind(at)
}

#[async_trait]
impl Subscriber for BotStatusProjector {
    fn name(&self) -> &'static str {
        "bot_status"
    }

    async fn handle(
        &self,
        transaction: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), SubscriberError> {
        for event in events.iter().filter(|e| e.aggregate_type == Bot::TYPE) {
            let decoded: BotEvent = event.payload_as()?;
            let bot_id: Uuid = event.aggregate_uuid()?;
            let at = event.recorded_at;
            let query = match decoded {
                BotEvent::BotConfigured {
                    owner_id,
                    key_id,
                    pair,
                    strategy,
                    ..
                } => sqlx::query(
                    "INSERT INTO bot_status (bot_id, owner_id, key_id, pair, strategy, state, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, 'configured', $6, $6) ON CONFLICT (bot_id) DO NOTHING",
                )
                .bind(bot_id)
                .bind(owner_id)
                .bind(key_id)
                .bind(pair.to_string())
                .bind(serde_json::to_value(strategy).unwrap_or_default())
                .bind(at),
                BotEvent::BotStartRequested { .. } => set_state(bot_id, "starting", at),
                BotEvent::BotStarted { .. } => set_state(bot_id, "running", at),
                BotEvent::BotStopRequested { .. } => set_state(bot_id, "stopping", at),
                BotEvent::BotStopped { .. } => set_state(bot_id, "stopped", at),
                BotEvent::TradeTriggered { .. } => continue,
                BotEvent::TradeExecuted { fill, .. } => sqlx::query(
                    "UPDATE bot_status SET trades_executed = trades_executed + 1, last_trade = $2, \
                     updated_at = $3 WHERE bot_id = $1",
                )
                .bind(bot_id)
                .bind(json!({
                    "order_id": fill.order_id,
                    "side": fill.side,
                    "quantity": fill.quantity.to_string(),
                    "price": fill.price.to_string(),
                    "fee": fill.fee.to_string(),
                    "executed_at": fill.executed_at,
                }))
                .bind(at),
                BotEvent::TradeSkipped { reason, .. } => sqlx::query(
                    "UPDATE bot_status SET trades_skipped = trades_skipped + 1, last_skip = $2, \
                     updated_at = $3 WHERE bot_id = $1",
                )
                .bind(bot_id)
                .bind(reason)
                .bind(at),
                BotEvent::BotErrored { message, .. } => sqlx::query(
                    "UPDATE bot_status SET errors = errors + 1, last_error = $2, last_error_at = $3, \
                     updated_at = $3 WHERE bot_id = $1",
                )
                .bind(bot_id)
                .bind(message)
                .bind(at),
            };
            query.execute(&mut *transaction).await?;
        }
        Ok(())
    }
}
