//! `bot_status`: each bot's state, configuration, counters, last trade and
//! last error.
//!
//! A batch is folded per bot before anything is written: the bots that
//! were configured in it are inserted by one statement, and every other
//! change becomes one row per bot (the last state, the counters' sums, the
//! last trade, skip and error) applied by one `UPDATE … FROM unnest(…)`.
//! The rows come out as the events applied one by one would leave them.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use domain::bot::{Bot, BotEvent};
use serde_json::{json, Value};
use sqlx::PgConnection;
use uuid::Uuid;

use event_log::RecordedEvent;
use event_log::{Subscriber, SubscriberError};

pub struct BotStatusProjector;

/// A `bot.configured`: the row it inserts (unless the bot has one).
struct Configured {
    bot_id: Uuid,
    owner_id: Uuid,
    key_id: Uuid,
    pair: String,
    strategy: Value,
    at: DateTime<Utc>,
}

/// What a run of one bot's events does to its row, folded.
#[derive(Default)]
struct Change {
    state: Option<&'static str>,
    executed: i64,
    last_trade: Option<Value>,
    skipped: i64,
    last_skip: Option<String>,
    errors: i64,
    last_error: Option<(String, DateTime<Utc>)>,
    updated_at: Option<DateTime<Utc>>,
}

impl Change {
    fn with_state(&mut self, state: &'static str) -> &mut Change {
        self.state = Some(state);
        self
    }

    fn is_empty(&self) -> bool {
        self.updated_at.is_none()
    }
}

/// One bot's events in the batch: what they change before its
/// `bot.configured` (only on a row that already exists, as the
/// statements one by one would do), whether it was configured here, and
/// what they change after.
struct BotFold {
    bot_id: Uuid,
    before: Change,
    configured: Option<Configured>,
    after: Change,
}

impl BotFold {
    fn change(&mut self) -> &mut Change {
        if self.configured.is_some() {
            &mut self.after
        } else {
            &mut self.before
        }
    }
}

fn fold(events: &[RecordedEvent]) -> Result<Vec<BotFold>, SubscriberError> {
    let mut order: Vec<Uuid> = Vec::new();
    let mut bots: HashMap<Uuid, BotFold> = HashMap::new();
    for event in events.iter().filter(|e| e.aggregate_type == Bot::TYPE) {
        let decoded: BotEvent = event.payload_as()?;
        let bot_id: Uuid = event.aggregate_uuid()?;
        let at = event.recorded_at;
        let bot = bots.entry(bot_id).or_insert_with(|| {
            order.push(bot_id);
            BotFold {
                bot_id,
                before: Change::default(),
                configured: None,
                after: Change::default(),
            }
        });
        let change = match decoded {
            BotEvent::BotConfigured {
                owner_id,
                key_id,
                pair,
                strategy,
                ..
            } => {
                // A second one in a batch is a no-op, as ON CONFLICT DO
                // NOTHING makes it one by one.
                if bot.configured.is_none() {
                    bot.configured = Some(Configured {
                        bot_id,
                        owner_id,
                        key_id,
                        pair: pair.to_string(),
                        strategy: serde_json::to_value(strategy).unwrap_or_default(),
                        at,
                    });
                }
                continue;
            }
            BotEvent::TradeTriggered { .. } => continue,
            BotEvent::BotStartRequested { .. } => bot.change().with_state("starting"),
            BotEvent::BotStarted { .. } => bot.change().with_state("running"),
            BotEvent::BotStopRequested { .. } => bot.change().with_state("stopping"),
            BotEvent::BotStopped { .. } => bot.change().with_state("stopped"),
            BotEvent::TradeExecuted { fill, .. } => {
                let change = bot.change();
                change.executed += 1;
                change.last_trade = Some(json!({
                    "order_id": fill.order_id,
                    "side": fill.side,
                    "quantity": fill.quantity.to_string(),
                    "price": fill.price.to_string(),
                    "fee": fill.fee.to_string(),
                    "executed_at": fill.executed_at,
                }));
                change
            }
            BotEvent::TradeSkipped { reason, .. } => {
                let change = bot.change();
                change.skipped += 1;
                change.last_skip = Some(reason);
                change
            }
            BotEvent::BotErrored { message, .. } => {
                let change = bot.change();
                change.errors += 1;
                change.last_error = Some((message, at));
                change
            }
        };
        change.updated_at = Some(at);
    }
    Ok(order
        .into_iter()
        .filter_map(|bot_id| bots.remove(&bot_id))
        .collect())
}

/// The bots' non-empty `part` (before or after their `bot.configured`).
fn changes(bots: &[BotFold], part: fn(&BotFold) -> &Change) -> Vec<(Uuid, &Change)> {
    bots.iter()
        .map(|bot| (bot.bot_id, part(bot)))
        .filter(|(_, change)| !change.is_empty())
        .collect()
}

/// One `UPDATE` for every bot's folded change (bots without one are left
/// out).
async fn apply(
    transaction: &mut PgConnection,
    changes: &[(Uuid, &Change)],
) -> Result<(), sqlx::Error> {
    if changes.is_empty() {
        return Ok(());
    }
    let n = changes.len();
    let mut ids = Vec::with_capacity(n);
    let mut states = Vec::with_capacity(n);
    let mut executed = Vec::with_capacity(n);
    let mut last_trades = Vec::with_capacity(n);
    let mut skipped = Vec::with_capacity(n);
    let mut last_skips = Vec::with_capacity(n);
    let mut errors = Vec::with_capacity(n);
    let mut last_errors = Vec::with_capacity(n);
    let mut last_error_ats = Vec::with_capacity(n);
    let mut updated_ats = Vec::with_capacity(n);
    for (bot_id, change) in changes {
        ids.push(*bot_id);
        states.push(change.state);
        executed.push(change.executed);
        last_trades.push(change.last_trade.clone());
        skipped.push(change.skipped);
        last_skips.push(change.last_skip.clone());
        errors.push(change.errors);
        last_errors.push(
            change
                .last_error
                .as_ref()
                .map(|(message, _)| message.clone()),
        );
        last_error_ats.push(change.last_error.as_ref().map(|(_, at)| *at));
        updated_ats.push(change.updated_at);
    }
    sqlx::query(
        "UPDATE bot_status b SET \
             state = coalesce(c.state, b.state), \
             trades_executed = b.trades_executed + c.executed, \
             last_trade = coalesce(c.last_trade, b.last_trade), \
             trades_skipped = b.trades_skipped + c.skipped, \
             last_skip = coalesce(c.last_skip, b.last_skip), \
             errors = b.errors + c.errors, \
             last_error = CASE WHEN c.last_error_at IS NULL THEN b.last_error ELSE c.last_error END, \
             last_error_at = coalesce(c.last_error_at, b.last_error_at), \
             updated_at = c.updated_at \
         FROM unnest($1::uuid[], $2::text[], $3::int8[], $4::jsonb[], $5::int8[], $6::text[], \
                     $7::int8[], $8::text[], $9::timestamptz[], $10::timestamptz[]) \
              AS c(bot_id, state, executed, last_trade, skipped, last_skip, errors, last_error, \
                   last_error_at, updated_at) \
         WHERE b.bot_id = c.bot_id",
    )
    .bind(ids)
    .bind(states)
    .bind(executed)
    .bind(last_trades)
    .bind(skipped)
    .bind(last_skips)
    .bind(errors)
    .bind(last_errors)
    .bind(last_error_ats)
    .bind(updated_ats)
    .execute(&mut *transaction)
    .await?;
    Ok(())
}

async fn insert(
    transaction: &mut PgConnection,
    configured: &[&Configured],
) -> Result<(), sqlx::Error> {
    if configured.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO bot_status (bot_id, owner_id, key_id, pair, strategy, state, created_at, updated_at) \
         SELECT bot_id, owner_id, key_id, pair, strategy, 'configured', at, at \
         FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::jsonb[], $6::timestamptz[]) \
              AS c(bot_id, owner_id, key_id, pair, strategy, at) \
         ON CONFLICT (bot_id) DO NOTHING",
    )
    .bind(configured.iter().map(|c| c.bot_id).collect::<Vec<_>>())
    .bind(configured.iter().map(|c| c.owner_id).collect::<Vec<_>>())
    .bind(configured.iter().map(|c| c.key_id).collect::<Vec<_>>())
    .bind(configured.iter().map(|c| c.pair.clone()).collect::<Vec<_>>())
    .bind(configured.iter().map(|c| c.strategy.clone()).collect::<Vec<_>>())
    .bind(configured.iter().map(|c| c.at).collect::<Vec<_>>())
    .execute(&mut *transaction)
    .await?;
    Ok(())
}

#[async_trait]
impl Subscriber for BotStatusProjector {
    fn name(&self) -> &'static str {
        "bot_status"
    }

    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        Some(&[Bot::TYPE])
    }

    async fn handle(
        &self,
        transaction: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), SubscriberError> {
        let bots = fold(events)?;
        // Everything before a bot's `bot.configured` (for a bot not
        // configured in this batch: all of its events) ...
        apply(transaction, &changes(&bots, |bot| &bot.before)).await?;
        // ... then the rows of the bots configured here ...
        let configured: Vec<&Configured> = bots
            .iter()
            .filter_map(|bot| bot.configured.as_ref())
            .collect();
        insert(transaction, &configured).await?;
        // ... then what their later events in the batch changed.
        apply(transaction, &changes(&bots, |bot| &bot.after)).await?;
        Ok(())
    }
}
