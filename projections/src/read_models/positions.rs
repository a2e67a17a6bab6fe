//! `positions`: per user and pair, as the portfolio's `trade.executed`
//! events state them after each fill.
//!
//! A batch is folded per user and pair (the position the last fill left,
//! and how many fills) and written by one upsert.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use domain::portfolio::{Portfolio, PortfolioEvent, Position};
use sqlx::PgConnection;
use uuid::Uuid;

use event_log::RecordedEvent;
use event_log::{Subscriber, SubscriberError};

pub struct PositionsProjector;

#[async_trait]
impl Subscriber for PositionsProjector {
    fn name(&self) -> &'static str {
        "positions"
    }

    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        Some(&[Portfolio::TYPE])
    }

    async fn handle(
        &self,
        transaction: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), SubscriberError> {
        let mut order: Vec<(Uuid, String)> = Vec::new();
        let mut folded: HashMap<(Uuid, String), (Position, i64, DateTime<Utc>)> = HashMap::new();
        for event in events
            .iter()
            .filter(|e| e.aggregate_type == Portfolio::TYPE)
        {
            let PortfolioEvent::TradeRecorded {
                trade, position, ..
            } = event.payload_as()?;
            let key = (trade.user_id, trade.pair.as_str().to_string());
            match folded.get_mut(&key) {
                Some((last, count, at)) => {
                    *last = position;
                    *count += 1;
                    *at = event.recorded_at;
                }
                None => {
                    order.push(key.clone());
                    folded.insert(key, (position, 1, event.recorded_at));
                }
            }
        }
        if order.is_empty() {
            return Ok(());
        }
        let n = order.len();
        let (mut users, mut pairs) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let (mut quantities, mut cost_bases) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let (mut average_costs, mut pnls) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let (mut counts, mut ats) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for key in order {
            let Some((position, count, at)) = folded.remove(&key) else {
                continue;
            };
            users.push(key.0);
            pairs.push(key.1);
            quantities.push(position.quantity);
            cost_bases.push(position.cost_basis);
            average_costs.push(position.average_cost);
            pnls.push(position.realised_pnl);
            counts.push(count);
            ats.push(at);
        }
        sqlx::query(
            "INSERT INTO positions (user_id, pair, quantity, cost_basis, average_cost, realised_pnl, \
             trades, updated_at) \
             SELECT * FROM unnest($1::uuid[], $2::text[], $3::numeric[], $4::numeric[], \
                                  $5::numeric[], $6::numeric[], $7::int8[], $8::timestamptz[]) \
             ON CONFLICT (user_id, pair) DO UPDATE SET quantity = excluded.quantity, \
                 cost_basis = excluded.cost_basis, average_cost = excluded.average_cost, \
                 realised_pnl = excluded.realised_pnl, trades = positions.trades + excluded.trades, \
                 updated_at = excluded.updated_at",
        )
        .bind(users)
        .bind(pairs)
        .bind(quantities)
        .bind(cost_bases)
        .bind(average_costs)
        .bind(pnls)
        .bind(counts)
        .bind(ats)
        .execute(&mut *transaction)
        .await?;
        Ok(())
    }
}
