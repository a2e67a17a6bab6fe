//! Decoding a log row into its aggregate's domain event type, the way the
//! projectors do (`RecordedEvent::decode`), chosen by `aggregate_type`.

use anyhow::{bail, Context, Result};
use cqrs_es::{Aggregate, DomainEvent};
use domain::bot::{Bot, BotEvent};
use domain::exchange_key::{ExchangeKey, ExchangeKeyEvent};
use domain::portfolio::{Portfolio, PortfolioEvent};
use domain::user::{User, UserEvent};
use event_log::RecordedEvent;
use serde_json::Value;

/// Any domain event of the log.
#[derive(Debug)]
pub enum AnyEvent {
    User(UserEvent),
    ExchangeKey(ExchangeKeyEvent),
    Bot(BotEvent),
    Portfolio(PortfolioEvent),
}

impl AnyEvent {
    pub fn decode(event: &RecordedEvent) -> Result<Self> {
        let decoded = match event.aggregate_type.as_str() {
            User::TYPE => event.decode().map(AnyEvent::User),
            ExchangeKey::TYPE => event.decode().map(AnyEvent::ExchangeKey),
            Bot::TYPE => event.decode().map(AnyEvent::Bot),
            Portfolio::TYPE => event.decode().map(AnyEvent::Portfolio),
            other => bail!(
                "event {} has an unknown aggregate type {other:?}",
                event.event_id
            ),
        };
        decoded.with_context(|| {
            format!(
                "event {} ({} {}) does not decode",
                event.event_id, event.aggregate_type, event.event_type
            )
        })
    }

    /// The wire name the domain gives this event.
    pub fn event_type(&self) -> String {
        match self {
            AnyEvent::User(event) => event.event_type(),
            AnyEvent::ExchangeKey(event) => event.event_type(),
            AnyEvent::Bot(event) => event.event_type(),
            AnyEvent::Portfolio(event) => event.event_type(),
        }
    }

    /// The payload the command side would store for this event.
    pub fn to_payload(&self) -> Result<Value> {
        let value = match self {
            AnyEvent::User(event) => serde_json::to_value(event),
            AnyEvent::ExchangeKey(event) => serde_json::to_value(event),
            AnyEvent::Bot(event) => serde_json::to_value(event),
            AnyEvent::Portfolio(event) => serde_json::to_value(event),
        };
        value.context("serialising a domain event")
    }
}
