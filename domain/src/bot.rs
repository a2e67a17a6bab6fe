//! The Bot aggregate: a trading bot's configuration, its lifecycle
//! (configured → starting → running → stopping → stopped) and what it
//! traded. Users request starts and stops; the bot runner (the `System`
//! actor) records what actually happened.

use std::collections::VecDeque;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::common::{bounded_text, ensure_positive, Actor, Pair, Side, Strategy};
use crate::error::DomainError;
use crate::money::{fill_value, StrategyLimits};
use crate::quotas::TriggerQuotas;
use crate::services::{KeyDirectory, KeyStatus};

#[derive(Debug, Clone, PartialEq)]
pub enum BotCommand {
    Configure {
        actor: Actor,
        bot_id: Uuid,
        key_id: Uuid,
        pair: Pair,
        strategy: Strategy,
        at: DateTime<Utc>,
    },
    RequestStart {
        actor: Actor,
        at: DateTime<Utc>,
    },
    MarkStarted {
        actor: Actor,
        at: DateTime<Utc>,
    },
    RequestStop {
        actor: Actor,
        reason: Option<String>,
        at: DateTime<Utc>,
    },
    MarkStopped {
        actor: Actor,
        reason: Option<String>,
        at: DateTime<Utc>,
    },
    TriggerTrade {
        actor: Actor,
        trigger_id: Uuid,
        at: DateTime<Utc>,
    },
    RecordTradeExecuted {
        actor: Actor,
        fill: Fill,
    },
    RecordTradeSkipped {
        actor: Actor,
        trigger_id: Option<Uuid>,
        reason: String,
        at: DateTime<Utc>,
    },
    RecordError {
        actor: Actor,
        message: String,
        at: DateTime<Utc>,
    },
}

/// An order the exchange filled, with exact decimals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fill {
    pub trigger_id: Option<Uuid>,
    pub order_id: String,
    pub side: Side,
    pub quantity: Decimal,
    pub price: Decimal,
    pub fee: Decimal,
    pub executed_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum BotEvent {
    #[serde(rename = "bot.configured")]
    BotConfigured {
        bot_id: Uuid,
        owner_id: Uuid,
        key_id: Uuid,
        pair: Pair,
        strategy: Strategy,
        at: DateTime<Utc>,
    },
    #[serde(rename = "bot.start_requested")]
    BotStartRequested {
        bot_id: Uuid,
        owner_id: Uuid,
        key_id: Uuid,
        pair: Pair,
        strategy: Strategy,
        requested_by: Option<Uuid>,
        at: DateTime<Utc>,
    },
    #[serde(rename = "bot.started")]
    BotStarted { at: DateTime<Utc> },
    #[serde(rename = "bot.stop_requested")]
    BotStopRequested {
        requested_by: Option<Uuid>,
        reason: Option<String>,
        at: DateTime<Utc>,
    },
    #[serde(rename = "bot.stopped")]
    BotStopped {
        reason: Option<String>,
        at: DateTime<Utc>,
    },
    #[serde(rename = "bot.trade_triggered")]
    TradeTriggered {
        trigger_id: Uuid,
        requested_by: Option<Uuid>,
        at: DateTime<Utc>,
    },
    #[serde(rename = "bot.trade.executed")]
    TradeExecuted {
        owner_id: Uuid,
        pair: Pair,
        fill: Fill,
    },
    #[serde(rename = "bot.trade.skipped")]
    TradeSkipped {
        trigger_id: Option<Uuid>,
        reason: String,
        at: DateTime<Utc>,
    },
    #[serde(rename = "bot.error")]
    BotErrored {
        owner_id: Uuid,
        message: String,
        at: DateTime<Utc>,
    },
}

impl DomainEvent for BotEvent {
    fn event_type(&self) -> String {
        match self {
            BotEvent::BotConfigured { .. } => "bot.configured",
            BotEvent::BotStartRequested { .. } => "bot.start_requested",
            BotEvent::BotStarted { .. } => "bot.started",
            BotEvent::BotStopRequested { .. } => "bot.stop_requested",
            BotEvent::BotStopped { .. } => "bot.stopped",
            BotEvent::TradeTriggered { .. } => "bot.trade_triggered",
            BotEvent::TradeExecuted { .. } => "bot.trade.executed",
            BotEvent::TradeSkipped { .. } => "bot.trade.skipped",
            BotEvent::BotErrored { .. } => "bot.error",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        "1.0".to_string()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BotState {
    #[default]
    Configured,
    Starting,
    Running,
    Stopping,
    Stopped,
}

/// How many recent exchange order ids a bot remembers to drop a fill
/// reported twice (the runner records each fill once, right after the
/// exchange closed its order, so a repeat is a retried command, seconds
/// later).
pub const REMEMBERED_ORDER_IDS: usize = 256;

/// How many handled trade triggers a bot remembers, so a redelivered
/// trigger is not traded twice. At `BOT_TRIGGERS_PER_MINUTE` (6 by
/// default) 256 later triggers take at least 42 minutes, far longer than
/// a message is redelivered or retried (three attempts a second apart);
/// and the trigger id is the order's client id, so an order placed again
/// for it is the same order on the exchange.
pub const REMEMBERED_TRIGGERS: usize = 256;

/// How long after the last pending trigger a refused one should retry.
const PENDING_RETRY_AFTER_SECS: u64 = 5;

/// The window of the trigger rate.
const TRIGGER_RATE_WINDOW_SECS: i64 = 60;

/// Where a trade trigger stands on a bot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerStatus {
    /// Requested (`bot.trade_triggered`) and not yet traded or skipped.
    Pending,
    /// Already traded or skipped.
    Handled,
    /// Never requested on this bot (or handled too long ago to remember).
    Unknown,
}

// `serde(default)` keeps snapshots taken before a field existed loadable.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Bot {
    pub bot_id: Option<Uuid>,
    pub owner_id: Option<Uuid>,
    pub key_id: Option<Uuid>,
    pub pair: Option<Pair>,
    pub strategy: Option<Strategy>,
    pub state: BotState,
    pub trades_executed: u64,
    pub trades_skipped: u64,
    pub errors: u64,
    pub recent_order_ids: VecDeque<String>,
    /// Triggers requested and not yet traded or skipped, at most
    /// `BOT_MAX_PENDING_TRIGGERS` (`handle` refuses one more).
    pub pending_triggers: Vec<Uuid>,
    /// The most recent triggers traded or skipped, the last
    /// [`REMEMBERED_TRIGGERS`].
    pub handled_triggers: VecDeque<Uuid>,
    /// When the triggers of the last minute were requested, oldest first
    /// (the trigger rate), at most [`TriggerQuotas::MAX_PER_MINUTE`].
    pub recent_trigger_times: VecDeque<DateTime<Utc>>,
    /// The base quantity the bot's fills add up to (buys minus sells),
    /// which the threshold strategy sells.
    pub holding: Decimal,
    /// When the trading loop's last fill (not a manual trigger's) executed:
    /// a DCA bot's next buy is due an interval after it.
    pub last_scheduled_fill_at: Option<DateTime<Utc>>,
}

#[derive(Clone)]
pub struct BotServices {
    pub keys: Arc<dyn KeyDirectory>,
    /// What a user may configure (the operator's `BOT_*` settings).
    pub limits: StrategyLimits,
    /// How often, and how many at once, a bot may be triggered.
    pub triggers: TriggerQuotas,
}

impl Bot {
    fn owner_for(&self, actor: &Actor) -> Result<Uuid, DomainError> {
        actor.ensure_may_trade()?;
        match self.owner_id {
            Some(owner) if actor.may_act_for(owner) => Ok(owner),
            _ => Err(DomainError::NotFound { entity: "bot" }),
        }
    }

    fn existing_owner(&self) -> Result<Uuid, DomainError> {
        self.owner_id.ok_or(DomainError::NotFound { entity: "bot" })
    }

    /// The key must exist, belong to the bot's owner and not be
    /// disconnected; `require_tested` also asks for a passed test.
    async fn check_key(
        services: &BotServices,
        key_id: Uuid,
        owner_id: Uuid,
        require_tested: bool,
    ) -> Result<(), DomainError> {
        let facts = services.keys.key_facts(key_id).await?;
        match facts {
            Some(facts)
                if facts.owner_id == owner_id && facts.status != KeyStatus::Disconnected =>
            {
                if require_tested && facts.status != KeyStatus::Tested {
                    return Err(DomainError::conflict(
                        "the bot's exchange key has not passed a test; test it first",
                    ));
                }
                Ok(())
            }
            _ => Err(DomainError::invalid(
                "key_id",
                "no connected exchange key with this id",
            )),
        }
    }

    /// Whether `trigger_id` waits to be traded, was handled, or is unknown.
    pub fn trigger_status(&self, trigger_id: Uuid) -> TriggerStatus {
        if self.pending_triggers.contains(&trigger_id) {
            TriggerStatus::Pending
        } else if self.handled_triggers.contains(&trigger_id) {
            TriggerStatus::Handled
        } else {
            TriggerStatus::Unknown
        }
    }

    /// Keeps `at` among the last minute's trigger times, forgetting those
    /// that no longer count towards any rate.
    fn remember_trigger_time(&mut self, at: DateTime<Utc>) {
        let window = chrono::Duration::seconds(TRIGGER_RATE_WINDOW_SECS);
        self.recent_trigger_times.push_back(at);
        let newest = self
            .recent_trigger_times
            .iter()
            .max()
            .copied()
            .unwrap_or(at);
        self.recent_trigger_times
            .retain(|time| *time > newest - window);
        while self.recent_trigger_times.len() > TriggerQuotas::MAX_PER_MINUTE as usize {
            self.recent_trigger_times.pop_front();
        }
    }

    fn handle_trigger(&mut self, trigger_id: Option<Uuid>) {
        let Some(trigger_id) = trigger_id else {
            return;
        };
        self.pending_triggers
            .retain(|pending| *pending != trigger_id);
        if !self.handled_triggers.contains(&trigger_id) {
            self.handled_triggers.push_back(trigger_id);
        }
        while self.handled_triggers.len() > REMEMBERED_TRIGGERS {
            self.handled_triggers.pop_front();
        }
    }

    /// Refuses a trigger beyond the bot's pending triggers or its rate, each
    /// naming its limit.
    fn check_trigger_quotas(
        &self,
        at: DateTime<Utc>,
        quotas: &TriggerQuotas,
    ) -> Result<(), DomainError> {
        let max_pending = quotas.max_pending as usize;
        if self.pending_triggers.len() >= max_pending {
            return Err(DomainError::QuotaExceeded {
                limit: "pending triggers per bot",
                reason: format!(
                    "the bot has {} triggers waiting to be traded, the limit is {max_pending}",
                    self.pending_triggers.len()
                ),
                retry_after_secs: PENDING_RETRY_AFTER_SECS,
            });
        }
        let window = chrono::Duration::seconds(TRIGGER_RATE_WINDOW_SECS);
        let in_window: Vec<&DateTime<Utc>> = self
            .recent_trigger_times
            .iter()
            .filter(|time| **time > at - window)
            .collect();
        let per_minute = quotas.per_minute as usize;
        if in_window.len() >= per_minute {
            // The oldest that counts leaves the window first; until then
            // no trigger fits.
            let oldest_counted = in_window[in_window.len() - per_minute];
            let wait = (*oldest_counted + window - at).num_milliseconds().max(0);
            let retry_after_secs = (wait as u64).div_ceil(1000).max(1);
            return Err(DomainError::QuotaExceeded {
                limit: "trigger rate per bot",
                reason: format!("the limit is {per_minute} triggers per minute"),
                retry_after_secs,
            });
        }
        Ok(())
    }

    /// The holding after `fill`, or `None` beyond what a decimal holds.
    fn holding_after(&self, fill: &Fill) -> Option<Decimal> {
        match fill.side {
            Side::Buy => self.holding.checked_add(fill.quantity),
            Side::Sell => self.holding.checked_sub(fill.quantity),
        }
    }

    fn state_conflict(&self, wanted: &str) -> DomainError {
        DomainError::conflict(format!(
            "cannot {wanted}: bot is {}",
            serde_json::to_value(self.state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        ))
    }

    // The command handlers below decide what `handle` records. Those that
    // return an `Option` answer `None` for a command already applied (a
    // redelivered message), which records nothing.

    /// The user who configures a new bot; the strategy must be valid. The
    /// key is checked by the caller, which has the services.
    fn owner_of_new_bot(
        &self,
        actor: &Actor,
        strategy: &Strategy,
        limits: &StrategyLimits,
    ) -> Result<Uuid, DomainError> {
        actor.ensure_may_trade()?;
        let owner_id = actor
            .user_id()
            .ok_or_else(|| DomainError::forbidden("a bot belongs to a user"))?;
        if self.bot_id.is_some() {
            return Err(DomainError::conflict("bot already configured"));
        }
        strategy.validate(limits)?;
        Ok(owner_id)
    }

    async fn request_start(
        &self,
        services: &BotServices,
        actor: Actor,
        at: DateTime<Utc>,
    ) -> Result<BotEvent, DomainError> {
        let owner_id = self.owner_for(&actor)?;
        if !matches!(self.state, BotState::Configured | BotState::Stopped) {
            return Err(self.state_conflict("start"));
        }
        let (Some(bot_id), Some(key_id), Some(pair), Some(strategy)) = (
            self.bot_id,
            self.key_id,
            self.pair.clone(),
            self.strategy.clone(),
        ) else {
            return Err(DomainError::NotFound { entity: "bot" });
        };
        Self::check_key(services, key_id, owner_id, true).await?;
        Ok(BotEvent::BotStartRequested {
            bot_id,
            owner_id,
            key_id,
            pair,
            strategy,
            requested_by: actor.user_id(),
            at,
        })
    }

    fn mark_started(
        &self,
        actor: Actor,
        at: DateTime<Utc>,
    ) -> Result<Option<BotEvent>, DomainError> {
        actor.ensure_system()?;
        self.existing_owner()?;
        match self.state {
            BotState::Starting => Ok(Some(BotEvent::BotStarted { at })),
            // A redelivered start message changes nothing.
            BotState::Running => Ok(None),
            _ => Err(self.state_conflict("mark started")),
        }
    }

    fn request_stop(
        &self,
        actor: Actor,
        reason: Option<String>,
        at: DateTime<Utc>,
    ) -> Result<BotEvent, DomainError> {
        self.owner_for(&actor)?;
        if !matches!(self.state, BotState::Starting | BotState::Running) {
            return Err(self.state_conflict("stop"));
        }
        let reason = reason
            .map(|reason| bounded_text("reason", &reason, 1, 500))
            .transpose()?;
        Ok(BotEvent::BotStopRequested {
            requested_by: actor.user_id(),
            reason,
            at,
        })
    }

    fn mark_stopped(
        &self,
        actor: Actor,
        reason: Option<String>,
        at: DateTime<Utc>,
    ) -> Result<Option<BotEvent>, DomainError> {
        actor.ensure_system()?;
        self.existing_owner()?;
        match self.state {
            BotState::Starting | BotState::Running | BotState::Stopping => {
                Ok(Some(BotEvent::BotStopped { reason, at }))
            }
            BotState::Stopped => Ok(None),
            BotState::Configured => Err(self.state_conflict("mark stopped")),
        }
    }

    fn trigger_trade(
        &self,
        actor: Actor,
        trigger_id: Uuid,
        at: DateTime<Utc>,
        quotas: &TriggerQuotas,
    ) -> Result<Option<BotEvent>, DomainError> {
        self.owner_for(&actor)?;
        if self.trigger_status(trigger_id) != TriggerStatus::Unknown {
            // The same trigger sent twice (a redelivered message)
            // trades once.
            return Ok(None);
        }
        if self.state != BotState::Running {
            return Err(self.state_conflict("trigger a trade"));
        }
        self.check_trigger_quotas(at, quotas)?;
        Ok(Some(BotEvent::TradeTriggered {
            trigger_id,
            requested_by: actor.user_id(),
            at,
        }))
    }

    fn record_trade_executed(
        &self,
        actor: Actor,
        fill: Fill,
    ) -> Result<Option<BotEvent>, DomainError> {
        actor.ensure_system()?;
        let owner_id = self.existing_owner()?;
        if self.recent_order_ids.contains(&fill.order_id) {
            // The same fill reported twice is recorded once.
            return Ok(None);
        }
        if fill.order_id.trim().is_empty() {
            return Err(DomainError::invalid("order_id", "must not be empty"));
        }
        ensure_positive("quantity", fill.quantity)?;
        ensure_positive("price", fill.price)?;
        if fill.fee < Decimal::ZERO {
            return Err(DomainError::invalid("fee", "must not be negative"));
        }
        // What `apply` and the portfolio compute from the fill must stay
        // representable, so no stored fill leaves them without a value.
        if fill_value(fill.quantity, fill.price, fill.fee).is_none() {
            return Err(DomainError::invalid(
                "quantity",
                "the fill's value (quantity × price + fee) is beyond what a decimal holds",
            ));
        }
        if self.holding_after(&fill).is_none() {
            return Err(DomainError::invalid(
                "quantity",
                format!(
                    "the bot's holding {} after this fill is beyond what a decimal holds",
                    self.holding
                ),
            ));
        }
        let pair = self
            .pair
            .clone()
            .ok_or(DomainError::NotFound { entity: "bot" })?;
        Ok(Some(BotEvent::TradeExecuted {
            owner_id,
            pair,
            fill,
        }))
    }

    fn record_trade_skipped(
        &self,
        actor: Actor,
        trigger_id: Option<Uuid>,
        reason: String,
        at: DateTime<Utc>,
    ) -> Result<Option<BotEvent>, DomainError> {
        actor.ensure_system()?;
        self.existing_owner()?;
        if trigger_id.is_some_and(|id| self.trigger_status(id) == TriggerStatus::Handled) {
            // A trigger is traded or skipped once.
            return Ok(None);
        }
        Ok(Some(BotEvent::TradeSkipped {
            trigger_id,
            reason: bounded_text("reason", &reason, 1, 500)?,
            at,
        }))
    }

    fn record_error(
        &self,
        actor: Actor,
        message: String,
        at: DateTime<Utc>,
    ) -> Result<BotEvent, DomainError> {
        actor.ensure_system()?;
        let owner_id = self.existing_owner()?;
        Ok(BotEvent::BotErrored {
            owner_id,
            message: bounded_text("message", &message, 1, 2000)?,
            at,
        })
    }
}

impl Aggregate for Bot {
    const TYPE: &'static str = "Bot";
    type Command = BotCommand;
    type Event = BotEvent;
    type Error = DomainError;
    type Services = BotServices;

    async fn handle(
        &mut self,
        command: Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        // `None` means the command was already applied (a redelivered
        // message), so nothing is recorded.
        let event = match command {
            BotCommand::Configure {
                actor,
                bot_id,
                key_id,
                pair,
                strategy,
                at,
            } => {
                let owner_id = self.owner_of_new_bot(&actor, &strategy, &services.limits)?;
                Self::check_key(services, key_id, owner_id, false).await?;
                Some(BotEvent::BotConfigured {
                    bot_id,
                    owner_id,
                    key_id,
                    pair,
                    strategy,
                    at,
                })
            }
            BotCommand::RequestStart { actor, at } => {
                Some(self.request_start(services, actor, at).await?)
            }
            BotCommand::MarkStarted { actor, at } => self.mark_started(actor, at)?,
            BotCommand::RequestStop { actor, reason, at } => {
                Some(self.request_stop(actor, reason, at)?)
            }
            BotCommand::MarkStopped { actor, reason, at } => {
                self.mark_stopped(actor, reason, at)?
            }
            BotCommand::TriggerTrade {
                actor,
                trigger_id,
                at,
            } => self.trigger_trade(actor, trigger_id, at, &services.triggers)?,
            BotCommand::RecordTradeExecuted { actor, fill } => {
                self.record_trade_executed(actor, fill)?
            }
            BotCommand::RecordTradeSkipped {
                actor,
                trigger_id,
                reason,
                at,
            } => self.record_trade_skipped(actor, trigger_id, reason, at)?,
            BotCommand::RecordError { actor, message, at } => {
                Some(self.record_error(actor, message, at)?)
            }
        };
        if let Some(event) = event {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            BotEvent::BotConfigured {
                bot_id,
                owner_id,
                key_id,
                pair,
                strategy,
                ..
            } => {
                self.bot_id = Some(bot_id);
                self.owner_id = Some(owner_id);
                self.key_id = Some(key_id);
                self.pair = Some(pair);
                self.strategy = Some(strategy);
                self.state = BotState::Configured;
            }
            BotEvent::BotStartRequested { .. } => self.state = BotState::Starting,
            BotEvent::BotStarted { .. } => self.state = BotState::Running,
            BotEvent::BotStopRequested { .. } => self.state = BotState::Stopping,
            BotEvent::BotStopped { .. } => self.state = BotState::Stopped,
            BotEvent::TradeTriggered { trigger_id, at, .. } => {
                // An event applied twice to one state (as the command side
                // did before it stopped folding a commit's events into the
                // state `handle` had applied them to) counts once.
                if self.trigger_status(trigger_id) == TriggerStatus::Unknown {
                    self.pending_triggers.push(trigger_id);
                    self.remember_trigger_time(at);
                }
            }
            BotEvent::TradeExecuted { fill, .. } => {
                self.trades_executed = self.trades_executed.saturating_add(1);
                self.handle_trigger(fill.trigger_id);
                // `handle` records no fill whose holding would leave the
                // decimal range, so this keeps the previous holding only
                // for an event written past it (by hand, or by a version
                // without the check): apply cannot refuse, a saturated
                // holding would be a quantity nobody holds, and the
                // previous one is the last the log states exactly.
                if let Some(holding) = self.holding_after(&fill) {
                    self.holding = holding;
                }
                if fill.trigger_id.is_none() {
                    self.last_scheduled_fill_at =
                        self.last_scheduled_fill_at.max(Some(fill.executed_at));
                }
                self.recent_order_ids.push_back(fill.order_id);
                while self.recent_order_ids.len() > REMEMBERED_ORDER_IDS {
                    self.recent_order_ids.pop_front();
                }
            }
            BotEvent::TradeSkipped { trigger_id, .. } => {
                self.trades_skipped = self.trades_skipped.saturating_add(1);
                self.handle_trigger(trigger_id);
            }
            BotEvent::BotErrored { .. } => self.errors = self.errors.saturating_add(1),
        }
    }
}

impl BotEvent {
    /// The wire name of [`BotEvent::TradeExecuted`], for readers that pick
    /// fills out of the log before decoding.
    pub const TRADE_EXECUTED: &'static str = "bot.trade.executed";

    /// The owner, pair and fill of a `bot.trade.executed`; `None` for any
    /// other event.
    pub fn into_trade_executed(self) -> Option<(Uuid, Pair, Fill)> {
        match self {
            BotEvent::TradeExecuted {
                owner_id,
                pair,
                fill,
            } => Some((owner_id, pair, fill)),
            _ => None,
        }
    }
}
