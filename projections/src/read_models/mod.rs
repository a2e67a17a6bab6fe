//! The projectors behind the query API. Each is a [`Subscriber`] writing
//! its table through the batch's transaction; each table is named after its
//! subscriber, and [`ALL`] lists them for the workers and rebuilds.
//!
//! [`Subscriber`]: crate::subscriber::Subscriber

pub mod bot_status;
pub mod exchange_keys;
pub mod positions;
pub mod trades;
pub mod users;

use std::sync::Arc;

use cqrs_es::Aggregate;
use domain::bot::{Bot, BotEvent, Fill};
use domain::Pair;
use uuid::Uuid;

use crate::log::RecordedEvent;
use crate::subscriber::{Subscriber, SubscriberError};

/// Every read-model projector, by name.
pub fn all() -> Vec<Arc<dyn Subscriber>> {
    vec![
        Arc::new(users::UsersProjector),
        Arc::new(exchange_keys::ExchangeKeysProjector),
        Arc::new(bot_status::BotStatusProjector),
        Arc::new(trades::TradesProjector),
        Arc::new(positions::PositionsProjector),
    ]
}

/// The names of the read models, which are also their tables.
pub const ALL: [&str; 5] = [
    "users",
    "exchange_keys",
    "bot_status",
    "trades",
    "positions",
];

/// A `bot.trade.executed` event, decoded.
pub struct ExecutedFill<'a> {
    pub event: &'a RecordedEvent,
    pub bot_id: Uuid,
    pub owner_id: Uuid,
    pub pair: Pair,
    pub fill: Fill,
}

/// The fills a batch holds, in commit order.
pub fn executed_fills(
    events: &[RecordedEvent],
) -> impl Iterator<Item = Result<ExecutedFill<'_>, SubscriberError>> {
    events
        .iter()
        .filter(|e| e.aggregate_type == Bot::TYPE && e.event_type == "bot.trade.executed")
        .filter_map(|event| {
            let decoded = event
                .payload_as::<BotEvent>()
                .and_then(|decoded| Ok((decoded, event.aggregate_uuid()?)));
            match decoded {
                Ok((
                    BotEvent::TradeExecuted {
                        owner_id,
                        pair,
                        fill,
                    },
                    bot_id,
                )) => Some(Ok(ExecutedFill {
                    event,
                    bot_id,
                    owner_id,
                    pair,
                    fill,
                })),
                Ok(_) => None,
                Err(error) => Some(Err(error)),
            }
        })
}
