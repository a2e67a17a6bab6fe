//! The one list of the ledger's aggregates. Everything that enumerates
//! aggregates (the audit streams and exports, the OpenAPI enum, the replay
//! tool's arguments, the Kafka topic routing) is derived from
//! [`AggregateType::ALL`] or checked against it by a test, and the matches
//! on [`AggregateType`] are exhaustive, so a new aggregate added here is a
//! compile error everywhere it must be handled.
//!
//! Adding an aggregate: ARCHITECTURE.md, "How to add an aggregate".

use std::fmt;
use std::str::FromStr;

use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use crate::bot::Bot;
use crate::exchange_key::ExchangeKey;
use crate::notification::Notification;
use crate::portfolio::Portfolio;
use crate::support_ticket::SupportTicket;
use crate::user::User;

/// An aggregate type of the log, named as the log stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AggregateType {
    User,
    ExchangeKey,
    Bot,
    Portfolio,
    SupportTicket,
    Notification,
}

/// How the streams of an aggregate type belong to a user, which is how a
/// user's audit export finds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    /// The stream's id is the user's id (a user, a user's portfolio).
    StreamIdIsUser,
    /// The stream's events name their owner in this payload field.
    OwnerField(&'static str),
}

/// A name that is no aggregate type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown aggregate type {0:?}; expected {names}", names = AggregateType::names())]
pub struct UnknownAggregateType(pub String);

impl AggregateType {
    /// Every aggregate of the ledger.
    pub const ALL: [AggregateType; 6] = [
        AggregateType::User,
        AggregateType::ExchangeKey,
        AggregateType::Bot,
        AggregateType::Portfolio,
        AggregateType::SupportTicket,
        AggregateType::Notification,
    ];

    /// The `aggregate_type` the log stores: the aggregate's own `TYPE`.
    pub fn as_str(self) -> &'static str {
        match self {
            AggregateType::User => User::TYPE,
            AggregateType::ExchangeKey => ExchangeKey::TYPE,
            AggregateType::Bot => Bot::TYPE,
            AggregateType::Portfolio => Portfolio::TYPE,
            AggregateType::SupportTicket => SupportTicket::TYPE,
            AggregateType::Notification => Notification::TYPE,
        }
    }

    /// The first dot-separated segment of every event type this aggregate
    /// records (`user.created` is of the family `user`). The Kafka mirror
    /// routes by family.
    pub fn event_families(self) -> &'static [&'static str] {
        match self {
            AggregateType::User => &["user", "onboarding"],
            AggregateType::ExchangeKey => &["kraken"],
            AggregateType::Bot => &["bot"],
            AggregateType::Portfolio => &["trade"],
            AggregateType::SupportTicket => &["support"],
            AggregateType::Notification => &["notification"],
        }
    }

    /// How its streams belong to a user.
    pub fn ownership(self) -> Ownership {
        match self {
            AggregateType::User | AggregateType::Portfolio => Ownership::StreamIdIsUser,
            AggregateType::ExchangeKey
            | AggregateType::Bot
            | AggregateType::SupportTicket
            | AggregateType::Notification => Ownership::OwnerField("owner_id"),
        }
    }

    /// The aggregate whose events have `event_type`'s family.
    pub fn of_event_type(event_type: &str) -> Option<AggregateType> {
        let family = event_type.split('.').next()?;
        AggregateType::ALL
            .into_iter()
            .find(|kind| kind.event_families().contains(&family))
    }

    /// Every name, for help texts and errors: "User, ExchangeKey, Bot,
    /// Portfolio or SupportTicket".
    pub fn names() -> String {
        let names: Vec<&str> = AggregateType::ALL
            .iter()
            .map(|kind| kind.as_str())
            .collect();
        match names.split_last() {
            Some((last, [])) => last.to_string(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => String::new(),
        }
    }

    /// The snake-case spelling (`exchange_key`), which parsing also takes.
    pub fn snake_case(self) -> String {
        let mut out = String::new();
        for (i, c) in self.as_str().chars().enumerate() {
            if c.is_uppercase() && i > 0 {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        }
        out
    }
}

impl fmt::Display for AggregateType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AggregateType {
    type Err = UnknownAggregateType;

    /// The stored name (`ExchangeKey`) or its snake-case form
    /// (`exchange_key`, `exchange-key`), in any case.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let folded: String = text
            .chars()
            .filter(|c| *c != '_' && *c != '-')
            .flat_map(char::to_lowercase)
            .collect();
        AggregateType::ALL
            .into_iter()
            .find(|kind| kind.as_str().to_lowercase() == folded)
            .ok_or_else(|| UnknownAggregateType(text.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_in_every_spelling() {
        for kind in AggregateType::ALL {
            assert_eq!(kind.as_str().parse::<AggregateType>(), Ok(kind));
            assert_eq!(kind.snake_case().parse::<AggregateType>(), Ok(kind));
            assert_eq!(
                kind.snake_case().replace('_', "-").parse::<AggregateType>(),
                Ok(kind)
            );
            assert_eq!(
                kind.as_str().to_uppercase().parse::<AggregateType>(),
                Ok(kind)
            );
        }
        assert_eq!(
            AggregateType::names(),
            "User, ExchangeKey, Bot, Portfolio, SupportTicket or Notification"
        );
        assert!("Order".parse::<AggregateType>().is_err());
    }

    #[test]
    fn all_holds_every_variant_once() {
        // A new variant breaks this match (and the others in this file);
        // the count beside it is then the reminder that `ALL` grows too.
        let place = |kind: AggregateType| match kind {
            AggregateType::User => 0,
            AggregateType::ExchangeKey => 1,
            AggregateType::Bot => 2,
            AggregateType::Portfolio => 3,
            AggregateType::SupportTicket => 4,
            AggregateType::Notification => 5,
        };
        assert_eq!(AggregateType::ALL.len(), 6);
        for (i, kind) in AggregateType::ALL.iter().enumerate() {
            assert_eq!(place(*kind), i, "{kind} is out of place in ALL");
        }
    }

    #[test]
    fn every_family_belongs_to_one_aggregate() {
        let mut seen = std::collections::HashSet::new();
        for kind in AggregateType::ALL {
            for family in kind.event_families() {
                assert!(seen.insert(*family), "{family} is claimed twice");
                assert_eq!(
                    AggregateType::of_event_type(&format!("{family}.x")),
                    Some(kind)
                );
            }
        }
    }
}
