//! `trades`: every fill, numbered in commit order for stable paging.
//!
//! A batch's fills are inserted by one statement: the fills of the batch
//! that no row holds yet (by bot and order id; the first of a repeated
//! one), numbered on from the highest `trade_id` in their commit order,
//! as inserting them one by one would number them.

use std::collections::HashSet;

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

    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        Some(&[Bot::TYPE])
    }

    async fn handle(
        &self,
        transaction: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), SubscriberError> {
        let mut seen = HashSet::new();
        let mut users = Vec::new();
        let mut bots = Vec::new();
        let mut orders = Vec::new();
        let mut pairs = Vec::new();
        let mut sides = Vec::new();
        let mut quantities = Vec::new();
        let mut prices = Vec::new();
        let mut fees = Vec::new();
        let mut executed_ats = Vec::new();
        let mut event_ids = Vec::new();
        for event in events {
            let Some((owner_id, pair, fill)) = event
                .payload_if::<BotEvent>(Bot::TYPE, BotEvent::TRADE_EXECUTED)?
                .and_then(BotEvent::into_trade_executed)
            else {
                continue;
            };
            let bot_id = event.aggregate_uuid()?;
            if !seen.insert((bot_id, fill.order_id.clone())) {
                continue;
            }
            users.push(owner_id);
            bots.push(bot_id);
            orders.push(fill.order_id);
            pairs.push(pair.as_str().to_string());
            sides.push(match fill.side {
                domain::Side::Buy => "buy",
                domain::Side::Sell => "sell",
            });
            quantities.push(fill.quantity);
            prices.push(fill.price);
            fees.push(fill.fee);
            executed_ats.push(fill.executed_at);
            event_ids.push(event.event_id);
        }
        if bots.is_empty() {
            return Ok(());
        }
        // Only the active instance writes, so max + 1 numbers the fills
        // in the order they committed.
        sqlx::query(
            "WITH fill AS ( \
                 SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], \
                                      $6::numeric[], $7::numeric[], $8::numeric[], \
                                      $9::timestamptz[], $10::uuid[]) WITH ORDINALITY \
                     AS f(user_id, bot_id, order_id, pair, side, quantity, price, fee, executed_at, \
                          event_id, ordinal) \
             ), fresh AS ( \
                 SELECT f.* FROM fill f WHERE NOT EXISTS \
                     (SELECT 1 FROM trades t WHERE t.bot_id = f.bot_id AND t.order_id = f.order_id) \
             ) \
             INSERT INTO trades (trade_id, user_id, bot_id, order_id, pair, side, quantity, price, \
                                 fee, executed_at, event_id) \
             SELECT (SELECT coalesce(max(trade_id), 0) FROM trades) \
                        + row_number() OVER (ORDER BY ordinal), \
                    user_id, bot_id, order_id, pair, side, quantity, price, fee, executed_at, event_id \
             FROM fresh ORDER BY ordinal",
        )
        .bind(users)
        .bind(bots)
        .bind(orders)
        .bind(pairs)
        .bind(sides)
        .bind(quantities)
        .bind(prices)
        .bind(fees)
        .bind(executed_ats)
        .bind(event_ids)
        .execute(&mut *transaction)
        .await?;
        Ok(())
    }
}
