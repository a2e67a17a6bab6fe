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

use crate::subscriber::Subscriber;

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
