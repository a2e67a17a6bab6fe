//! `positions`: per user and pair, as the portfolio's `trade.executed`
//! events state them after each fill.

use async_trait::async_trait;
use cqrs_es::Aggregate;
use domain::portfolio::{Portfolio, PortfolioEvent};
use sqlx::PgConnection;

use event_log::RecordedEvent;
use event_log::{Subscriber, SubscriberError};

pub struct PositionsProjector;

#[async_trait]
impl Subscriber for PositionsProjector {
    fn name(&self) -> &'static str {
        "positions"
    }

    async fn handle(
        &self,
        transaction: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), SubscriberError> {
        for event in events
            .iter()
            .filter(|e| e.aggregate_type == Portfolio::TYPE)
        {
            let PortfolioEvent::TradeRecorded {
                trade, position, ..
            } = event.payload_as()?;
            sqlx::query(
                "INSERT INTO positions (user_id, pair, quantity, cost_basis, average_cost, realised_pnl, \
                 trades, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 1, $7) \
                 ON CONFLICT (user_id, pair) DO UPDATE SET quantity = $3, cost_basis = $4, \
                 average_cost = $5, realised_pnl = $6, trades = positions.trades + 1, updated_at = $7",
            )
            .bind(trade.user_id)
            .bind(trade.pair.as_str())
            .bind(position.quantity)
            .bind(position.cost_basis)
            .bind(position.average_cost)
            .bind(position.realised_pnl)
            .bind(event.recorded_at)
            .execute(&mut *transaction)
            .await?;
        }
        Ok(())
    }
}
