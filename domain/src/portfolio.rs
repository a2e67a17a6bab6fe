//! The Portfolio aggregate: one per user (its id is the user id), the
//! ledger of every fill with the resulting position and realised P&L per
//! pair, by the average-cost method. Recording is idempotent by the
//! exchange's order id, within the last [`REMEMBERED_ORDER_IDS`] fills.

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::common::{ensure_positive, Actor, Pair, Side};
use crate::error::DomainError;

#[derive(Debug, Clone, PartialEq)]
pub enum PortfolioCommand {
    RecordTrade { actor: Actor, trade: TradeFill },
}

/// A fill as the process manager forwards it from `bot.trade.executed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TradeFill {
    pub user_id: Uuid,
    pub bot_id: Uuid,
    pub order_id: String,
    pub pair: Pair,
    pub side: Side,
    pub quantity: Decimal,
    pub price: Decimal,
    pub fee: Decimal,
    pub executed_at: DateTime<Utc>,
}

/// A holding in one pair after a fill. `cost_basis` is what the held
/// quantity cost, fees included.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub quantity: Decimal,
    pub cost_basis: Decimal,
    pub average_cost: Decimal,
    pub realised_pnl: Decimal,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum PortfolioEvent {
    #[serde(rename = "trade.executed")]
    TradeRecorded {
        trade: TradeFill,
        /// P&L realised by this fill alone (zero for buys).
        realised_pnl: Decimal,
        /// The position in `trade.pair` after this fill.
        position: Position,
    },
}

impl DomainEvent for PortfolioEvent {
    fn event_type(&self) -> String {
        match self {
            PortfolioEvent::TradeRecorded { .. } => "trade.executed".to_string(),
        }
    }

    fn event_version(&self) -> String {
        "1.0".to_string()
    }
}

/// Decimal places kept for averages and proportional cost.
const PRECISION: u32 = 12;

/// How many of its most recent fills' order ids a portfolio remembers.
///
/// What can repeat here is the trade recorder handling a batch again (it
/// is at-least-once: a batch whose checkpoint did not commit is read
/// again), and a batch holds at most `PROJECTOR_BATCH_SIZE` events, at
/// most 10,000; so a repeated fill is among the last 10,000 this portfolio
/// recorded, well within 16,384. A fill reported twice by the runner never
/// gets here twice: the Bot drops it first (`bot::REMEMBERED_ORDER_IDS`).
pub const REMEMBERED_ORDER_IDS: usize = 16_384;

// Snapshots taken when `order_ids` was an unbounded set still load: a set
// and a deque are both a JSON array.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Portfolio {
    pub user_id: Option<Uuid>,
    pub positions: BTreeMap<Pair, Position>,
    /// The order ids of the last [`REMEMBERED_ORDER_IDS`] fills, oldest
    /// first.
    pub order_ids: VecDeque<String>,
}

impl Portfolio {
    /// The position after `trade` and the P&L it realises. Amounts beyond
    /// what a decimal holds (about 7.9e28) are refused, never a panic.
    pub fn position_after(
        current: &Position,
        trade: &TradeFill,
    ) -> Result<(Position, Decimal), DomainError> {
        let gross = trade
            .quantity
            .checked_mul(trade.price)
            .ok_or_else(Self::amount_too_large)?;
        match trade.side {
            Side::Buy => Self::position_after_buy(current, trade, gross),
            Side::Sell => Self::position_after_sell(current, trade, gross),
        }
    }

    fn amount_too_large() -> DomainError {
        DomainError::invalid("quantity", "amount too large to record")
    }

    /// A buy adds its gross and its fee to the cost basis and realises
    /// nothing.
    fn position_after_buy(
        current: &Position,
        trade: &TradeFill,
        gross: Decimal,
    ) -> Result<(Position, Decimal), DomainError> {
        let too_large = Self::amount_too_large;
        let quantity = current
            .quantity
            .checked_add(trade.quantity)
            .ok_or_else(too_large)?;
        let cost_basis = current
            .cost_basis
            .checked_add(gross)
            .and_then(|sum| sum.checked_add(trade.fee))
            .ok_or_else(too_large)?;
        let average_cost = cost_basis.checked_div(quantity).ok_or_else(too_large)?;
        Ok((
            Position {
                quantity,
                cost_basis,
                average_cost: average_cost.round_dp(PRECISION),
                realised_pnl: current.realised_pnl,
            },
            Decimal::ZERO,
        ))
    }

    /// A sell takes its share of the cost basis out and realises its net
    /// proceeds minus that cost; it may not sell more than the position holds.
    fn position_after_sell(
        current: &Position,
        trade: &TradeFill,
        gross: Decimal,
    ) -> Result<(Position, Decimal), DomainError> {
        let too_large = Self::amount_too_large;
        if trade.quantity > current.quantity {
            return Err(DomainError::invalid(
                "quantity",
                format!(
                    "sells {} but the position holds {}",
                    trade.quantity, current.quantity
                ),
            ));
        }
        let quantity = current
            .quantity
            .checked_sub(trade.quantity)
            .ok_or_else(too_large)?;
        let cost_sold = if quantity.is_zero() {
            current.cost_basis
        } else {
            current
                .cost_basis
                .checked_mul(trade.quantity)
                .and_then(|product| product.checked_div(current.quantity))
                .ok_or_else(too_large)?
                .round_dp(PRECISION)
        };
        let realised = gross
            .checked_sub(trade.fee)
            .and_then(|net| net.checked_sub(cost_sold))
            .ok_or_else(too_large)?;
        let cost_basis = current
            .cost_basis
            .checked_sub(cost_sold)
            .ok_or_else(too_large)?;
        let realised_pnl = current
            .realised_pnl
            .checked_add(realised)
            .ok_or_else(too_large)?;
        let average_cost = if quantity.is_zero() {
            Decimal::ZERO
        } else {
            cost_basis
                .checked_div(quantity)
                .ok_or_else(too_large)?
                .round_dp(PRECISION)
        };
        Ok((
            Position {
                quantity,
                cost_basis,
                average_cost,
                realised_pnl,
            },
            realised,
        ))
    }
}

impl Aggregate for Portfolio {
    const TYPE: &'static str = "Portfolio";
    type Command = PortfolioCommand;
    type Event = PortfolioEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let PortfolioCommand::RecordTrade { actor, trade } = command;
        actor.ensure_system()?;
        if self.order_ids.contains(&trade.order_id) {
            // The same exchange order recorded twice has one effect.
            return Ok(());
        }
        if let Some(user_id) = self.user_id {
            if user_id != trade.user_id {
                return Err(DomainError::invalid(
                    "user_id",
                    "the trade belongs to another user's portfolio",
                ));
            }
        }
        if trade.order_id.trim().is_empty() {
            return Err(DomainError::invalid("order_id", "must not be empty"));
        }
        ensure_positive("quantity", trade.quantity)?;
        ensure_positive("price", trade.price)?;
        if trade.fee < Decimal::ZERO {
            return Err(DomainError::invalid("fee", "must not be negative"));
        }
        let current = self.positions.get(&trade.pair).cloned().unwrap_or_default();
        let (position, realised_pnl) = Self::position_after(&current, &trade)?;
        sink.write(
            PortfolioEvent::TradeRecorded {
                trade,
                realised_pnl,
                position,
            },
            self,
        )
        .await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            PortfolioEvent::TradeRecorded {
                trade, position, ..
            } => {
                self.user_id = Some(trade.user_id);
                // An event applied twice to one state (as the command side
                // did before it stopped folding a commit's events into the
                // state `handle` had applied them to) is remembered once.
                if !self.order_ids.contains(&trade.order_id) {
                    self.order_ids.push_back(trade.order_id);
                }
                while self.order_ids.len() > REMEMBERED_ORDER_IDS {
                    self.order_ids.pop_front();
                }
                self.positions.insert(trade.pair, position);
            }
        }
    }
}
