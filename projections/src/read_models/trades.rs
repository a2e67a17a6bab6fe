//! `trades`: every fill, numbered in commit order for stable paging.

use async_trait::async_trait;
use cqrs_es::Aggregate;
use domain::bot::{Bot, BotEvent};
use event_log::{RecordedEvent, Subscriber, SubscriberError};
use sqlx::PgConnection;

pub struct TradesProjector;

#[async_trait]
impl Subscriber for TradesProjector {
    fn name(&self) -> &'static str {
        "trades"
    }

    async fn handle(
        &self,
        transaction: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), SubscriberError> {
        let mut next_id: Option<i64> = None;
        for event in events {
            let Some((owner_id, pair, fill)) = event
                .payload_if::<BotEvent>(Bot::TYPE, BotEvent::TRADE_EXECUTED)?
                .and_then(BotEvent::into_trade_executed)
            else {
                continue;
            };
            let bot_id = event.aggregate_uuid()?;
            // Only the active instance writes, so max + 1 numbers the fills
            // in the order they committed.
            let trade_id = match next_id {
                Some(id) => id,
                None => {
                    sqlx::query_scalar::<_, i64>(
                        "SELECT coalesce(max(trade_id), 0) + 1 FROM trades",
                    )
                    .fetch_one(&mut *transaction)
                    .await?
                }
            };
            let inserted = sqlx::query(
                "INSERT INTO trades (trade_id, user_id, bot_id, order_id, pair, side, quantity, price, \
                 fee, executed_at, event_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                 ON CONFLICT (bot_id, order_id) DO NOTHING",
            )
            .bind(trade_id)
            .bind(owner_id)
            .bind(bot_id)
            .bind(&fill.order_id)
            .bind(pair.as_str())
            .bind(match fill.side {
                domain::Side::Buy => "buy",
                domain::Side::Sell => "sell",
            })
            .bind(fill.quantity)
            .bind(fill.price)
            .bind(fill.fee)
            .bind(fill.executed_at)
            .bind(event.event_id)
            .execute(&mut *transaction)
            .await?
            .rows_affected();
            next_id = Some(trade_id + inserted as i64);
        }
        Ok(())
    }
}
