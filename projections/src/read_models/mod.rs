//! The projectors behind the query API. Each is a [`Subscriber`] writing
//! its table through the batch's transaction; each table is named after its
//! subscriber, and [`READ_MODELS`] lists them (name, table, primary key,
//! projector) for the workers, the rebuilds and the queries.
//!
//! [`Subscriber`]: event_log::Subscriber

pub mod bot_status;
pub mod daily_pnl;
pub mod exchange_keys;
pub mod live_updates;
pub mod notifications;
pub mod positions;
pub mod support_messages;
pub mod support_tickets;
pub mod trades;
pub mod users;

use std::sync::Arc;

use event_log::Subscriber;

/// A read model: a table the query API reads, kept by one projector.
/// [`READ_MODELS`] is the one list of them; rebuilds, comparisons, the
/// queries' read-your-writes waits and the docs all take it from there.
pub struct ReadModel {
    /// The table's name, which is also its projector's subscriber (and
    /// checkpoint) name.
    pub name: &'static str,
    /// The table's primary key, by which a rebuild is compared with it.
    pub primary_key: &'static [&'static str],
    /// What it holds, for help texts and the docs.
    pub summary: &'static str,
    projector: fn() -> Arc<dyn Subscriber>,
}

impl ReadModel {
    /// A new projector of this read model.
    pub fn projector(&self) -> Arc<dyn Subscriber> {
        (self.projector)()
    }
}

pub const USERS: ReadModel = ReadModel {
    name: "users",
    primary_key: &["user_id"],
    summary: "every user: email, display name, role, onboarding",
    projector: || Arc::new(users::UsersProjector),
};

pub const EXCHANGE_KEYS: ReadModel = ReadModel {
    name: "exchange_keys",
    primary_key: &["key_id"],
    summary: "every connected exchange key: status and permissions, never the secret",
    projector: || Arc::new(exchange_keys::ExchangeKeysProjector),
};

pub const BOT_STATUS: ReadModel = ReadModel {
    name: "bot_status",
    primary_key: &["bot_id"],
    summary: "every bot: configuration, state, last fill and error",
    projector: || Arc::new(bot_status::BotStatusProjector),
};

pub const TRADES: ReadModel = ReadModel {
    name: "trades",
    primary_key: &["trade_id"],
    summary: "every fill, numbered in commit order for stable paging",
    projector: || Arc::new(trades::TradesProjector),
};

pub const POSITIONS: ReadModel = ReadModel {
    name: "positions",
    primary_key: &["user_id", "pair"],
    summary: "each user's position and realised P&L per pair",
    projector: || Arc::new(positions::PositionsProjector),
};

pub const SUPPORT_TICKETS: ReadModel = ReadModel {
    name: "support_tickets",
    primary_key: &["ticket_id"],
    summary: "every support ticket: owner, subject (null once the owner is erased), status, \
              assignee, replies",
    projector: || Arc::new(support_tickets::SupportTicketsProjector),
};

pub const SUPPORT_MESSAGES: ReadModel = ReadModel {
    name: "support_messages",
    primary_key: &["ticket_id", "number"],
    summary: "every message of every ticket, its opening body as number 0 (bodies null once \
              the owner is erased)",
    projector: || Arc::new(support_messages::SupportMessagesProjector),
};

pub const NOTIFICATIONS: ReadModel = ReadModel {
    name: "notifications",
    primary_key: &["notification_id"],
    summary: "what each user should be told (bot errors and stops, failed key tests, fills, \
              support replies), numbered in commit order, and when they read it",
    projector: || Arc::new(notifications::NotificationsProjector),
};

pub const LIVE_UPDATES: ReadModel = ReadModel {
    name: "live_updates",
    primary_key: &["user_id", "transaction_id", "global_position"],
    summary: "what GET /api/v1/stream sends each user (bot status changes, fills, positions, \
              notifications), at each event's position",
    projector: || Arc::new(live_updates::LiveUpdatesProjector),
};

pub const DAILY_PNL: ReadModel = ReadModel {
    name: "daily_pnl",
    primary_key: &["user_id", "day", "quote"],
    summary: "each user's realised P&L, fees and fills per UTC day and quote currency",
    projector: || Arc::new(daily_pnl::DailyPnlProjector),
};

/// Every read model.
pub const READ_MODELS: [ReadModel; 10] = [
    USERS,
    EXCHANGE_KEYS,
    BOT_STATUS,
    TRADES,
    POSITIONS,
    SUPPORT_TICKETS,
    SUPPORT_MESSAGES,
    NOTIFICATIONS,
    LIVE_UPDATES,
    DAILY_PNL,
];

/// Every read-model projector.
pub fn all() -> Vec<Arc<dyn Subscriber>> {
    READ_MODELS.iter().map(ReadModel::projector).collect()
}

/// The read model named `name`.
pub fn named(name: &str) -> Option<&'static ReadModel> {
    READ_MODELS.iter().find(|model| model.name == name)
}

/// The names of the read models, which are also their tables.
pub fn names() -> Vec<&'static str> {
    READ_MODELS.iter().map(|model| model.name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_read_model_is_kept_by_the_projector_of_its_name() {
        for model in &READ_MODELS {
            assert_eq!(model.projector().name(), model.name);
            assert!(!model.primary_key.is_empty());
        }
        let mut names = names();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), READ_MODELS.len(), "names are unique");
    }
}
