//! Vocabulary shared by the aggregates.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::DomainError;
use crate::money::StrategyLimits;

/// A user's role. A user holds exactly one; granting another replaces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    User,
    /// Support staff: read what a ticket needs (users, their tickets), work
    /// tickets; never secrets, never a change to a user.
    Support,
    Admin,
    Auditor,
}

impl Role {
    /// Every role, in the order the documentation lists them.
    pub const ALL: [Role; 4] = [Role::User, Role::Support, Role::Admin, Role::Auditor];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Support => "support",
            Role::Admin => "admin",
            Role::Auditor => "auditor",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "user" => Some(Role::User),
            "support" => Some(Role::Support),
            "admin" => Some(Role::Admin),
            "auditor" => Some(Role::Auditor),
            _ => None,
        }
    }
}

/// Who issues a command. `System` is the service itself (the bot runner, an
/// operator's CLI), never a REST caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Actor {
    User { user_id: Uuid, role: Role },
    System,
}

impl Actor {
    pub fn user(user_id: Uuid) -> Self {
        Actor::User {
            user_id,
            role: Role::User,
        }
    }

    pub fn admin(user_id: Uuid) -> Self {
        Actor::User {
            user_id,
            role: Role::Admin,
        }
    }

    pub fn auditor(user_id: Uuid) -> Self {
        Actor::User {
            user_id,
            role: Role::Auditor,
        }
    }

    pub fn user_id(&self) -> Option<Uuid> {
        match self {
            Actor::User { user_id, .. } => Some(*user_id),
            Actor::System => None,
        }
    }

    pub fn is_admin_or_system(&self) -> bool {
        matches!(
            self,
            Actor::System
                | Actor::User {
                    role: Role::Admin,
                    ..
                }
        )
    }

    /// Whether this actor may read or change something owned by `owner`.
    pub fn may_act_for(&self, owner: Uuid) -> bool {
        match self {
            Actor::System => true,
            Actor::User {
                role: Role::Admin, ..
            } => true,
            Actor::User { user_id, .. } => *user_id == owner,
        }
    }

    /// Trading commands (keys, bots) are refused to auditors: they read and
    /// replay, they do not trade.
    pub fn ensure_may_trade(&self) -> Result<(), DomainError> {
        match self {
            Actor::User {
                role: Role::Auditor,
                ..
            } => Err(DomainError::forbidden("auditors issue no trading commands")),
            _ => Ok(()),
        }
    }

    pub fn ensure_system(&self) -> Result<(), DomainError> {
        match self {
            Actor::System => Ok(()),
            Actor::User { .. } => Err(DomainError::forbidden(
                "only the bot runner records what a bot did",
            )),
        }
    }
}

/// Buy or sell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Buy,
    Sell,
}

/// A currency pair such as `XBT/USD`: base and quote, each 2 to 10
/// upper-case letters or digits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Pair(String);

impl Pair {
    pub fn parse(text: &str) -> Result<Pair, DomainError> {
        let valid_part = |part: &str| {
            (2..=10).contains(&part.len())
                && part
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        };
        match text.split_once('/') {
            Some((base, quote)) if valid_part(base) && valid_part(quote) && base != quote => {
                Ok(Pair(text.to_string()))
            }
            _ => Err(DomainError::invalid(
                "pair",
                "expected BASE/QUOTE in upper case, e.g. XBT/USD",
            )),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Pair {
    type Error = DomainError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Pair::parse(&value)
    }
}

impl From<Pair> for String {
    fn from(pair: Pair) -> String {
        pair.0
    }
}

impl std::fmt::Display for Pair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a bot decides to trade. Amounts are exact decimals in the quote
/// currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Strategy {
    /// Dollar-cost averaging: buy `quote_amount` every `interval_secs`.
    Dca {
        #[serde(with = "exact_decimal")]
        quote_amount: Decimal,
        interval_secs: u64,
    },
    /// Buy `quote_amount` when the price falls to `buy_below`, sell the
    /// position when it rises to `sell_above`.
    Threshold {
        #[serde(with = "exact_decimal")]
        buy_below: Decimal,
        #[serde(with = "exact_decimal")]
        sell_above: Decimal,
        #[serde(with = "exact_decimal")]
        quote_amount: Decimal,
    },
}

/// The longest DCA interval accepted: 30 days.
pub const MAX_INTERVAL_SECS: u64 = 30 * 24 * 3600;

impl Strategy {
    /// Whether a user may configure this strategy within `limits`, naming
    /// the first field out of bounds (see [`crate::money`]).
    pub fn validate(&self, limits: &StrategyLimits) -> Result<(), DomainError> {
        limits.check(self)
    }
}

pub fn ensure_positive(field: &'static str, value: Decimal) -> Result<(), DomainError> {
    if value > Decimal::ZERO {
        Ok(())
    } else {
        Err(DomainError::invalid(field, "must be greater than zero"))
    }
}

/// Trims `text` and checks its length in characters.
pub fn bounded_text(
    field: &'static str,
    text: &str,
    min: usize,
    max: usize,
) -> Result<String, DomainError> {
    let trimmed = text.trim();
    let length = trimmed.chars().count();
    if length < min || length > max {
        return Err(DomainError::invalid(
            field,
            format!("must be {min} to {max} characters"),
        ));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(trimmed.to_string())
}

/// Decimals as JSON strings only: a JSON number would pass through a
/// binary float on the way in, and money must stay exact.
pub mod exact_decimal {
    use std::str::FromStr;

    use rust_decimal::Decimal;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Decimal, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&value.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Decimal, D::Error> {
        let text = String::deserialize(deserializer).map_err(|_| {
            serde::de::Error::custom("expected a decimal number as a string, e.g. \"25.00\"")
        })?;
        Decimal::from_str(text.trim())
            .map_err(|_| serde::de::Error::custom(format!("{text:?} is not a decimal number")))
    }
}
