//! `live_updates`: what `GET /api/v1/stream` sends each user, one row per
//! event of theirs at the event's position, its kind and data taken from
//! the event alone:
//!
//! - `bot_status`: a bot's state changed (`bot.start_requested` →
//!   `starting`, `bot.started` → `running`, `bot.stop_requested` →
//!   `stopping`, `bot.stopped` → `stopped`) or it reported an error
//!   (`bot.error`, state unchanged, `error` set);
//! - `trade`: a bot's fill (`bot.trade.executed`);
//! - `position`: the owner's position in the pair after a fill, as the
//!   portfolio's `trade.executed` states it;
//! - `notification` / `notification_read`: a notification raised or read.
//!
//! A batch is one statement. Bot events that do not name the bot's owner
//! find it in the bot's first event (`bot.configured`), read from the log.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use domain::bot::{Bot, BotEvent};
use domain::notification::{Notification, NotificationEvent};
use domain::portfolio::{Portfolio, PortfolioEvent};
use event_log::{RecordedEvent, Subscriber, SubscriberError};
use serde_json::{json, Value};
use sqlx::PgConnection;
use uuid::Uuid;

pub struct LiveUpdatesProjector;

/// The read models whose rows the stream's kinds come from: a row is sent
/// once each of them (and `live_updates`) has handled its position.
pub const SOURCES: [&str; 5] = [
    "live_updates",
    "bot_status",
    "trades",
    "positions",
    "notifications",
];

/// One row, its owner perhaps still to be found.
struct Row {
    owner: Option<Uuid>,
    bot_id: Option<Uuid>,
    event: usize,
    kind: &'static str,
    data: Value,
}

fn bot_status(state: Option<&str>, event: &RecordedEvent, extra: Value) -> Value {
    let mut data = json!({
        "bot_id": event.aggregate_id,
        "state": state,
        "event_type": event.event_type,
        "at": event.recorded_at,
    });
    if let (Some(object), Value::Object(more)) = (data.as_object_mut(), extra) {
        object.extend(more);
    }
    data
}

fn row_of(index: usize, event: &RecordedEvent) -> Result<Option<Row>, SubscriberError> {
    let row = |owner, bot_id, kind, data| {
        Some(Row {
            owner,
            bot_id,
            event: index,
            kind,
            data,
        })
    };
    if event.aggregate_type == Bot::TYPE {
        let bot_id = Some(event.aggregate_uuid()?);
        return Ok(match event.payload_as::<BotEvent>()? {
            BotEvent::BotStartRequested { owner_id, .. } => row(
                Some(owner_id),
                bot_id,
                "bot_status",
                bot_status(Some("starting"), event, Value::Null),
            ),
            BotEvent::BotStarted { .. } => row(
                None,
                bot_id,
                "bot_status",
                bot_status(Some("running"), event, Value::Null),
            ),
            BotEvent::BotStopRequested { reason, .. } => row(
                None,
                bot_id,
                "bot_status",
                bot_status(Some("stopping"), event, json!({ "reason": reason })),
            ),
            BotEvent::BotStopped { reason, .. } => row(
                None,
                bot_id,
                "bot_status",
                bot_status(Some("stopped"), event, json!({ "reason": reason })),
            ),
            BotEvent::BotErrored {
                owner_id, message, ..
            } => row(
                Some(owner_id),
                bot_id,
                "bot_status",
                bot_status(None, event, json!({ "error": message })),
            ),
            BotEvent::TradeExecuted {
                owner_id,
                pair,
                fill,
            } => row(
                Some(owner_id),
                bot_id,
                "trade",
                json!({
                    "bot_id": event.aggregate_id,
                    "pair": pair,
                    "order_id": fill.order_id,
                    "side": fill.side,
                    "quantity": fill.quantity,
                    "price": fill.price,
                    "fee": fill.fee,
                    "executed_at": fill.executed_at,
                }),
            ),
            _ => None,
        });
    }
    if event.aggregate_type == Portfolio::TYPE {
        let PortfolioEvent::TradeRecorded {
            trade,
            realised_pnl,
            position,
        } = event.payload_as()?;
        return Ok(row(
            Some(trade.user_id),
            None,
            "position",
            json!({
                "pair": trade.pair,
                "quantity": position.quantity,
                "cost_basis": position.cost_basis,
                "average_cost": position.average_cost,
                "realised_pnl": position.realised_pnl,
                "fill_realised_pnl": realised_pnl,
                "bot_id": trade.bot_id,
                "order_id": trade.order_id,
                "updated_at": event.recorded_at,
            }),
        ));
    }
    if event.aggregate_type == Notification::TYPE {
        return Ok(match event.payload_as::<NotificationEvent>()? {
            NotificationEvent::Raised {
                notification_id,
                owner_id,
                kind,
                subject,
                message,
                source_event_id,
                source_event_type,
                at,
            } => row(
                Some(owner_id),
                None,
                "notification",
                json!({
                    "notification_id": notification_id,
                    "kind": kind,
                    "bot_id": subject.bot_id,
                    "key_id": subject.key_id,
                    "ticket_id": subject.ticket_id,
                    "message": message,
                    "source_event_id": source_event_id,
                    "source_event_type": source_event_type,
                    "created_at": at,
                }),
            ),
            NotificationEvent::Read { owner_id, at } => row(
                Some(owner_id),
                None,
                "notification_read",
                json!({ "notification_id": event.aggregate_id, "read_at": at }),
            ),
        });
    }
    Ok(None)
}

/// The owners of `bots`, from each bot's first event.
async fn owners_of(
    transaction: &mut PgConnection,
    bots: &HashSet<Uuid>,
) -> Result<HashMap<Uuid, Uuid>, SubscriberError> {
    if bots.is_empty() {
        return Ok(HashMap::new());
    }
    let ids: Vec<String> = bots.iter().map(Uuid::to_string).collect();
    let found: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT aggregate_id, payload->>'owner_id' FROM events \
         WHERE aggregate_type = $1 AND aggregate_id = ANY($2) AND sequence = 1",
    )
    .bind(Bot::TYPE)
    .bind(&ids)
    .fetch_all(&mut *transaction)
    .await?;
    Ok(found
        .into_iter()
        .filter_map(|(bot, owner)| Some((bot.parse().ok()?, owner?.parse().ok()?)))
        .collect())
}

#[async_trait]
impl Subscriber for LiveUpdatesProjector {
    fn name(&self) -> &'static str {
        "live_updates"
    }

    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        Some(&[Bot::TYPE, Portfolio::TYPE, Notification::TYPE])
    }

    async fn handle(
        &self,
        transaction: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), SubscriberError> {
        let mut rows = Vec::new();
        for (index, event) in events.iter().enumerate() {
            if let Some(row) = row_of(index, event)? {
                rows.push(row);
            }
        }
        if rows.is_empty() {
            return Ok(());
        }
        let unknown: HashSet<Uuid> = rows
            .iter()
            .filter(|row| row.owner.is_none())
            .filter_map(|row| row.bot_id)
            .collect();
        let owners = owners_of(transaction, &unknown).await?;
        let n = rows.len();
        let (mut users, mut transactions) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let (mut positions, mut kinds) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let (mut data, mut ats): (Vec<Value>, Vec<DateTime<Utc>>) =
            (Vec::with_capacity(n), Vec::with_capacity(n));
        for row in rows {
            let owner = row
                .owner
                .or_else(|| row.bot_id.and_then(|bot| owners.get(&bot).copied()));
            let Some(owner) = owner else {
                // A bot with no bot.configured: nobody to tell.
                continue;
            };
            let event = &events[row.event];
            users.push(owner);
            transactions.push(event.position.transaction_text());
            positions.push(event.position.global_position);
            kinds.push(row.kind);
            data.push(row.data);
            ats.push(event.recorded_at);
        }
        sqlx::query(
            "INSERT INTO live_updates (user_id, transaction_id, global_position, kind, data, \
                                       recorded_at) \
             SELECT user_id, transaction_id::xid8, global_position, kind, data, recorded_at \
             FROM unnest($1::uuid[], $2::text[], $3::int8[], $4::text[], $5::jsonb[], \
                         $6::timestamptz[]) \
                  AS u(user_id, transaction_id, global_position, kind, data, recorded_at) \
             ON CONFLICT DO NOTHING",
        )
        .bind(users)
        .bind(transactions)
        .bind(positions)
        .bind(kinds)
        .bind(data)
        .bind(ats)
        .execute(&mut *transaction)
        .await?;
        Ok(())
    }
}
