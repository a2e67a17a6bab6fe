//! `daily_pnl`: each user's realised P&L, fees and fills per UTC day (of
//! the fill's execution) and quote currency, from the portfolio's
//! `trade.executed` events.
//!
//! A batch is folded per user, day and quote (sums checked: a sum beyond
//! what a decimal holds stops the projector with the event named, as any
//! undecodable event does) and written by one upsert that adds to the
//! stored sums.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::NaiveDate;
use cqrs_es::Aggregate;
use domain::portfolio::{Portfolio, PortfolioEvent};
use domain::Decimal;
use event_log::{RecordedEvent, Subscriber, SubscriberError};
use sqlx::PgConnection;
use uuid::Uuid;

pub struct DailyPnlProjector;

#[derive(Default)]
struct Sums {
    realised_pnl: Decimal,
    fees: Decimal,
    trades: i64,
}

#[async_trait]
impl Subscriber for DailyPnlProjector {
    fn name(&self) -> &'static str {
        "daily_pnl"
    }

    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        Some(&[Portfolio::TYPE])
    }

    async fn handle(
        &self,
        transaction: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), SubscriberError> {
        let mut order: Vec<(Uuid, NaiveDate, String)> = Vec::new();
        let mut sums: HashMap<(Uuid, NaiveDate, String), Sums> = HashMap::new();
        for event in events
            .iter()
            .filter(|e| e.aggregate_type == Portfolio::TYPE)
        {
            let PortfolioEvent::TradeRecorded {
                trade,
                realised_pnl,
                ..
            } = event.payload_as()?;
            let quote = trade
                .pair
                .as_str()
                .split_once('/')
                .map(|(_, quote)| quote.to_string())
                .unwrap_or_default();
            let key = (trade.user_id, trade.executed_at.date_naive(), quote);
            let entry = sums.entry(key.clone()).or_insert_with(|| {
                order.push(key);
                Sums::default()
            });
            let overflow = || SubscriberError::undecodable(event, "daily P&L beyond a decimal");
            entry.realised_pnl = entry
                .realised_pnl
                .checked_add(realised_pnl)
                .ok_or_else(overflow)?;
            entry.fees = entry.fees.checked_add(trade.fee).ok_or_else(overflow)?;
            entry.trades += 1;
        }
        if order.is_empty() {
            return Ok(());
        }
        let n = order.len();
        let (mut users, mut days, mut quotes) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut pnls, mut fees, mut trades) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for key in order {
            let sum = &sums[&key];
            pnls.push(sum.realised_pnl);
            fees.push(sum.fees);
            trades.push(sum.trades);
            users.push(key.0);
            days.push(key.1);
            quotes.push(key.2);
        }
        sqlx::query(
            "INSERT INTO daily_pnl (user_id, day, quote, realised_pnl, fees, trades) \
             SELECT * FROM unnest($1::uuid[], $2::date[], $3::text[], $4::numeric[], \
                                  $5::numeric[], $6::int8[]) \
             ON CONFLICT (user_id, day, quote) DO UPDATE SET \
                 realised_pnl = daily_pnl.realised_pnl + EXCLUDED.realised_pnl, \
                 fees = daily_pnl.fees + EXCLUDED.fees, \
                 trades = daily_pnl.trades + EXCLUDED.trades",
        )
        .bind(users)
        .bind(days)
        .bind(quotes)
        .bind(pnls)
        .bind(fees)
        .bind(trades)
        .execute(&mut *transaction)
        .await?;
        Ok(())
    }
}
