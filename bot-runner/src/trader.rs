//! One trading loop per running bot, manual triggers, and resuming the
//! running bots after a restart.
//!
//! A loop reads the bot from the event store on every tick and ends as
//! soon as the bot is no longer running, so a stop recorded anywhere ends
//! it. A DCA bot buys an interval after its last scheduled fill, so a
//! resumed loop does not buy early. Each tick: price from the exchange → the strategy decides → a market
//! order through the [`Exchange`] → the fill recorded as
//! `bot.trade.executed`, or `bot.trade.skipped` with the reason, or
//! `bot.error`. A loop records a skip only when its decision's kind
//! ([`SkipKind`](crate::strategy::SkipKind): above `buy_below`, below `sell_above`, …, not the reason's
//! live price) differs from the last it recorded, and an error only when
//! its message does, so an idle threshold bot does not fill the log with a
//! skip every tick; a manual trigger always records its outcome. A stored strategy whose amounts are outside the
//! command side's `StrategyLimits` is not traded (a `bot.error`), and a
//! fill the bot refuses to record (beyond what a decimal holds) is a
//! `bot.error` too: no bot's numbers can fail the runner.
//!
//! A panic in a loop's tick (the strategy, the exchange adapter, a
//! command) is caught and recorded as `bot.error` on that bot; the loop
//! carries on at its next tick, and no other loop notices.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::Utc;
use command_side::credentials::load_credentials;
use command_side::{CommandError, CommandMetadata, CommandSide};
use domain::bot::{Bot, BotCommand, BotState, Fill};
use domain::{Actor, Side};
use exchange::{ApiCredentials, Exchange, ExchangeError, OrderRequest, OrderState, OrderStatus};
use futures::FutureExt;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::lanes::{panic_message, recordable};
use crate::strategy::{decide, interval, wait_before_trading, Decision};

/// How long an order may take to close before the trade is reported as an
/// error.
const ORDER_DEADLINE: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum TradeError {
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error("reading the bot's credential: {0}")]
    Credentials(String),
    #[error("finding running bots: {0}")]
    Database(#[from] sqlx::Error),
}

/// The longest `bot.error` message the Bot records.
const MAX_ERROR_CHARS: usize = 2000;

/// What one decision came to.
enum Outcome {
    /// The exchange filled the order.
    Filled(Fill),
    /// The fill is recorded on the bot.
    Recorded,
    /// Not traded: `note` names the decision (a `SkipKind`'s code, say)
    /// apart from the live numbers in `reason`.
    Skipped {
        note: String,
        reason: String,
    },
    Failed(String),
}

impl Outcome {
    fn skipped(note: &str, reason: String) -> Self {
        Outcome::Skipped {
            note: format!("skip:{note}"),
            reason,
        }
    }
}

pub struct Trader {
    commands: Arc<CommandSide>,
    exchange: Arc<dyn Exchange>,
    tick: Duration,
    shutdown: CancellationToken,
    /// The running loops: bot id → (generation, stop token).
    loops: Mutex<HashMap<Uuid, (u64, CancellationToken)>>,
    generation: std::sync::atomic::AtomicU64,
}

impl Trader {
    pub fn new(
        commands: Arc<CommandSide>,
        exchange: Arc<dyn Exchange>,
        tick: Duration,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        Arc::new(Self {
            commands,
            exchange,
            tick,
            shutdown,
            loops: Mutex::default(),
            generation: Default::default(),
        })
    }

    fn loops(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, (u64, CancellationToken)>> {
        self.loops.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The bots with a loop in this process.
    pub fn running(&self) -> Vec<Uuid> {
        self.loops().keys().copied().collect()
    }

    /// Starts the bot's trading loop unless it already has one.
    pub fn ensure_loop(self: &Arc<Self>, bot_id: Uuid) {
        let mut loops = self.loops();
        if loops.contains_key(&bot_id) {
            return;
        }
        let generation = self
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let token = self.shutdown.child_token();
        loops.insert(bot_id, (generation, token.clone()));
        let trader = self.clone();
        tokio::spawn(async move {
            // A panic outside a tick (caught there) must still free the
            // bot's place, so a later start gets a loop again.
            let ran = std::panic::AssertUnwindSafe(trader.run_loop(bot_id, token))
                .catch_unwind()
                .await;
            if let Err(panic) = ran {
                tracing::error!(%bot_id, panic = %panic_message(panic.as_ref()), "trading loop panicked");
            }
            let mut loops = trader.loops();
            if loops.get(&bot_id).is_some_and(|(g, _)| *g == generation) {
                loops.remove(&bot_id);
            }
        });
        tracing::info!(%bot_id, "trading loop started");
    }

    /// Ends the bot's trading loop, if it has one here.
    pub fn stop_loop(&self, bot_id: Uuid) {
        if let Some((_, token)) = self.loops().remove(&bot_id) {
            token.cancel();
            tracing::info!(%bot_id, "trading loop stopped");
        }
    }

    /// Starts a loop for every bot whose last lifecycle event is
    /// `bot.started`. Read from the log, not from `bot_status`, which may
    /// lag behind it.
    pub async fn resume_running_bots(self: &Arc<Self>) -> Result<usize, TradeError> {
        let running: Vec<String> = sqlx::query_scalar(
            "SELECT aggregate_id FROM ( \
               SELECT DISTINCT ON (aggregate_id) aggregate_id, event_type FROM events \
               WHERE aggregate_type = 'Bot' AND event_type IN \
                 ('bot.start_requested', 'bot.started', 'bot.stop_requested', 'bot.stopped') \
               ORDER BY aggregate_id, sequence DESC) AS last \
             WHERE event_type = 'bot.started'",
        )
        .fetch_all(&self.commands.pool)
        .await?;
        let mut resumed = 0;
        for bot_id in running.iter().filter_map(|id| id.parse().ok()) {
            self.ensure_loop(bot_id);
            resumed += 1;
        }
        Ok(resumed)
    }

    async fn run_loop(self: &Arc<Self>, bot_id: Uuid, token: CancellationToken) {
        let mut last_note: Option<String> = None;
        loop {
            let pause = match self.commands.load::<Bot>(&bot_id.to_string()).await {
                Ok((bot, _)) if bot.state != BotState::Running => break,
                Ok((bot, _)) => {
                    let Some(strategy) = bot.strategy.clone() else {
                        break;
                    };
                    let wait =
                        wait_before_trading(&strategy, bot.last_scheduled_fill_at, Utc::now());
                    if wait.is_zero() {
                        self.tick(bot_id, &bot, &mut last_note).await;
                        interval(&strategy, self.tick)
                    } else {
                        // Not due yet (a DCA bot resumed within its
                        // interval): look again when it is.
                        wait.min(interval(&strategy, self.tick))
                    }
                }
                Err(error) => {
                    tracing::warn!(%bot_id, error = %error, "cannot load the bot");
                    self.tick
                }
            };
            tokio::select! {
                _ = token.cancelled() => break,
                _ = tokio::time::sleep(pause) => {}
            }
        }
        tracing::info!(%bot_id, "trading loop ended");
    }

    /// One tick of the loop, a panic in it caught and recorded on the bot.
    async fn tick(&self, bot_id: Uuid, bot: &Bot, last_note: &mut Option<String>) {
        let traded = std::panic::AssertUnwindSafe(self.trade(bot_id, bot, None, last_note))
            .catch_unwind()
            .await;
        match traded {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%bot_id, error = %error, "trading tick failed"),
            Err(panic) => {
                let reason = format!("trading tick panicked: {}", panic_message(panic.as_ref()));
                tracing::error!(%bot_id, reason = %reason, "trading tick panicked");
                let reason = recordable(&reason, MAX_ERROR_CHARS);
                if last_note.as_deref() != Some(reason.as_str()) {
                    if let Err(error) = self.record_error(bot_id, &reason).await {
                        tracing::warn!(%bot_id, error = %error, "cannot record the panic");
                    }
                    *last_note = Some(reason);
                }
            }
        }
    }

    /// Records `message` as a `bot.error` on the bot.
    pub(crate) async fn record_error(&self, bot_id: Uuid, message: &str) -> Result<(), TradeError> {
        let metadata = CommandMetadata::new("bot-runner", Some(Actor::System))
            .with_command_type("bot.record_error");
        let command = BotCommand::RecordError {
            actor: Actor::System,
            message: recordable(message, MAX_ERROR_CHARS),
            at: Utc::now(),
        };
        self.commands
            .execute_bot(&bot_id.to_string(), command, &metadata)
            .await?;
        Ok(())
    }

    /// Decides and trades once for `bot`, for `trigger_id` when a user
    /// asked, and records the outcome on the bot.
    pub async fn trade(
        &self,
        bot_id: Uuid,
        bot: &Bot,
        trigger_id: Option<Uuid>,
        last_note: &mut Option<String>,
    ) -> Result<(), TradeError> {
        let outcome = if bot.state != BotState::Running {
            Outcome::skipped(
                "bot_not_running",
                format!("bot is {:?}", bot.state).to_lowercase(),
            )
        } else {
            self.decide_and_order(bot, trigger_id).await?
        };
        let id = bot_id.to_string();
        let metadata = |command_type: &str| {
            let mut metadata = CommandMetadata::new("bot-runner", Some(Actor::System))
                .with_command_type(command_type);
            metadata.correlation_id = trigger_id.map(|id| id.to_string());
            metadata
        };
        let at = Utc::now();
        let outcome = match outcome {
            Outcome::Filled(fill) => {
                let metadata = metadata("bot.record_trade_executed");
                self.record_fill(bot_id, fill, &metadata).await?
            }
            other => other,
        };
        match outcome {
            Outcome::Filled(_) | Outcome::Recorded => *last_note = None,
            Outcome::Skipped { note, reason } => {
                // A loop records a skip when its decision changes: the
                // reason's numbers (the live price) move every tick.
                if trigger_id.is_some() || last_note.as_deref() != Some(note.as_str()) {
                    let command = BotCommand::RecordTradeSkipped {
                        actor: Actor::System,
                        trigger_id,
                        reason,
                        at,
                    };
                    self.commands
                        .execute_bot(&id, command, &metadata("bot.record_trade_skipped"))
                        .await?;
                    *last_note = Some(note);
                }
            }
            Outcome::Failed(message) => {
                // An exchange's text may hold anything; the Bot records
                // only printable text.
                let message = recordable(&message, MAX_ERROR_CHARS);
                tracing::warn!(%bot_id, error = %message, "trade failed");
                if trigger_id.is_some() || last_note.as_deref() != Some(message.as_str()) {
                    let command = BotCommand::RecordError {
                        actor: Actor::System,
                        message: message.clone(),
                        at,
                    };
                    self.commands
                        .execute_bot(&id, command, &metadata("bot.record_error"))
                        .await?;
                    if trigger_id.is_some() {
                        let command = BotCommand::RecordTradeSkipped {
                            actor: Actor::System,
                            trigger_id,
                            reason: message.clone(),
                            at,
                        };
                        self.commands
                            .execute_bot(&id, command, &metadata("bot.record_trade_skipped"))
                            .await?;
                    }
                    *last_note = Some(message);
                }
            }
        }
        Ok(())
    }

    /// Records `fill` on the bot: `Recorded`, or `Failed` when the bot
    /// refuses a fill it cannot hold (its value or the holding after it
    /// beyond what a decimal holds), which is then an error on the bot
    /// rather than a message that fails forever.
    async fn record_fill(
        &self,
        bot_id: Uuid,
        fill: Fill,
        metadata: &CommandMetadata,
    ) -> Result<Outcome, TradeError> {
        tracing::info!(%bot_id, order_id = %fill.order_id, side = ?fill.side, quantity = %fill.quantity, price = %fill.price, "trade executed");
        let order_id = fill.order_id.clone();
        let command = BotCommand::RecordTradeExecuted {
            actor: Actor::System,
            fill,
        };
        match self
            .commands
            .execute_bot(&bot_id.to_string(), command, metadata)
            .await
        {
            Ok(_) => Ok(Outcome::Recorded),
            Err(CommandError::Refused(refusal)) => Ok(Outcome::Failed(format!(
                "fill {order_id} cannot be recorded: {refusal}"
            ))),
            Err(other) => Err(other.into()),
        }
    }

    async fn decide_and_order(
        &self,
        bot: &Bot,
        trigger_id: Option<Uuid>,
    ) -> Result<Outcome, TradeError> {
        let (Some(pair), Some(strategy), Some(key_id)) =
            (bot.pair.clone(), bot.strategy.clone(), bot.key_id)
        else {
            return Ok(Outcome::Failed("bot has no configuration".to_string()));
        };
        // A stored strategy outside today's bounds (written past them, or
        // before an operator lowered them) never reaches the exchange.
        let limits = &self.commands.settings.strategy_limits;
        if let Err(refusal) = limits.check_amounts(&strategy) {
            return Ok(Outcome::Failed(format!(
                "not trading a strategy outside the bounds: {refusal}"
            )));
        }
        let credentials =
            load_credentials(&self.commands.pool, &self.commands.settings.secrets, key_id)
                .await
                .map_err(|e| TradeError::Credentials(e.to_string()))?;
        let Some(credentials) = credentials else {
            return Ok(Outcome::Failed(
                "the bot's exchange key has no stored credential (disconnected?)".to_string(),
            ));
        };
        let ticker = match self.exchange.ticker(&pair).await {
            Ok(ticker) => ticker,
            Err(error) => return Ok(Outcome::Failed(error.to_string())),
        };
        let (side, quantity) = match decide(&strategy, ticker.last, bot.holding) {
            Decision::Skip { kind, reason } => return Ok(Outcome::skipped(kind.code(), reason)),
            Decision::Buy { quantity } => (Side::Buy, quantity),
            Decision::Sell { quantity } => (Side::Sell, quantity),
        };
        let order = OrderRequest {
            pair,
            side,
            quantity,
            client_order_id: trigger_id.unwrap_or_else(Uuid::new_v4),
        };
        let placed = match self.exchange.place_order(&credentials, &order).await {
            Ok(order_id) => self.wait_until_closed(&credentials, &order_id).await,
            Err(error) => Err(error),
        };
        Ok(match placed {
            Ok(state)
                if state.status == OrderStatus::Closed && !state.executed_quantity.is_zero() =>
            {
                Outcome::Filled(Fill {
                    trigger_id,
                    order_id: state.order_id,
                    side,
                    quantity: state.executed_quantity,
                    price: state.average_price,
                    fee: state.fee,
                    executed_at: state.closed_at.unwrap_or_else(Utc::now),
                })
            }
            Ok(state) => Outcome::skipped(
                "order_unfilled",
                format!(
                    "order {} ended {:?} without a fill",
                    state.order_id, state.status
                ),
            ),
            Err(error) => Outcome::Failed(error.to_string()),
        })
    }

    async fn wait_until_closed(
        &self,
        credentials: &ApiCredentials,
        order_id: &str,
    ) -> Result<OrderState, ExchangeError> {
        let deadline = tokio::time::Instant::now() + ORDER_DEADLINE;
        loop {
            let state = self.exchange.query_order(credentials, order_id).await?;
            if !matches!(state.status, OrderStatus::Pending | OrderStatus::Open) {
                return Ok(state);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ExchangeError::Unavailable(format!(
                    "order {order_id} still open after {} s",
                    ORDER_DEADLINE.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}
