//! The message schema of every queue, and which log event becomes which
//! message. ARCHITECTURE.md ("Queue contracts") documents the same.
//!
//! Every message is JSON (`content_type: application/json`), persistent
//! (`delivery_mode: 2`), with `message_id` = the id that makes it unique:
//! the event id for messages from the log, the producer's own id for
//! commands published by others. The bot runner deduplicates commands by
//! the state they act on, so a repeated `message_id` has one effect.

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use domain::bot::{Bot, BotEvent};
use domain::exchange_key::ExchangeKey;
use event_log::{RecordedEvent, SubscriberError};
use lapin::types::{AMQPValue, FieldTable};
use lapin::BasicProperties;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::topology::Queue;

/// The body of `bot.start`, `bot.stop` and `bot.trigger_trade`.
///
/// From the log (the publisher), `sequence` is the bot stream's sequence
/// of the request event and `user_id` who requested it: the request is
/// already recorded, and the runner carries it out. From an external
/// producer, `sequence` is absent and `user_id` required: the runner first
/// records the request as that user, checked exactly as a REST request is
/// (owner, role, bot state, key tested).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BotCommandMessage {
    pub bot_id: Uuid,
    #[serde(default)]
    pub user_id: Option<Uuid>,
    #[serde(default)]
    pub sequence: Option<i64>,
    /// `bot.trigger_trade` only: the trigger's id.
    #[serde(default)]
    pub trigger_id: Option<Uuid>,
    /// `bot.stop` only: why.
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub requested_at: Option<DateTime<Utc>>,
}

/// The body of `bot.started`, `bot.stopped`, `bot.error` and
/// `kraken.key.test.failed`: the event as recorded, with its place in the
/// log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusMessage {
    pub event_id: Uuid,
    pub event_type: String,
    pub event_version: String,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub recorded_at: DateTime<Utc>,
    /// The owning user, when the event names one (bot events name it in
    /// `bot.error`; key events always).
    pub user_id: Option<Uuid>,
    pub correlation_id: Option<String>,
    /// The event's payload exactly as stored (`type` is the wire name).
    pub payload: Value,
}

/// A message ready to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct OutgoingMessage {
    pub queue: Queue,
    pub message_id: String,
    pub message_type: String,
    pub body: Vec<u8>,
    pub correlation_id: Option<String>,
    /// The W3C trace context of the command that caused the event, carried
    /// in the `traceparent` header so a consumer continues the trace.
    pub traceparent: Option<String>,
    pub timestamp: DateTime<Utc>,
}

impl OutgoingMessage {
    /// Persistent, typed, prioritised where the queue has priorities.
    pub fn properties(&self) -> BasicProperties {
        let mut headers = FieldTable::default();
        headers.insert(
            "x-event-type".into(),
            AMQPValue::LongString(self.message_type.as_str().into()),
        );
        if let Some(traceparent) = &self.traceparent {
            headers.insert(
                "traceparent".into(),
                AMQPValue::LongString(traceparent.as_str().into()),
            );
        }
        let mut properties = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_message_id(self.message_id.as_str().into())
            .with_type(self.message_type.as_str().into())
            .with_app_id("muckard".into())
            .with_timestamp(self.timestamp.timestamp().max(0) as u64)
            .with_headers(headers);
        if self.queue.has_priority() {
            properties = properties.with_priority(self.queue.message_priority());
        }
        if let Some(correlation_id) = &self.correlation_id {
            properties = properties.with_correlation_id(correlation_id.as_str().into());
        }
        properties
    }
}

/// The `traceparent` header of a delivery, so the command a consumer
/// issues continues the publisher's trace.
pub fn traceparent_of(properties: &BasicProperties) -> Option<String> {
    let headers = properties.headers().as_ref()?;
    match headers.inner().get("traceparent")? {
        AMQPValue::LongString(value) => {
            let text = String::from_utf8_lossy(value.as_bytes()).into_owned();
            (!text.is_empty() && text.len() <= 256 && text.is_ascii()).then_some(text)
        }
        _ => None,
    }
}

/// The queue an event of `event_type` on an aggregate of `aggregate_type`
/// is sent to, if any: one queue per event type, the queue's name being
/// the wire name (the request events' without `_requested`).
pub fn queue_for(aggregate_type: &str, event_type: &str) -> Option<Queue> {
    Some(match (aggregate_type, event_type) {
        (Bot::TYPE, "bot.start_requested") => Queue::BotStart,
        (Bot::TYPE, "bot.stop_requested") => Queue::BotStop,
        (Bot::TYPE, "bot.trade_triggered") => Queue::BotTriggerTrade,
        (Bot::TYPE, "bot.started") => Queue::BotStarted,
        (Bot::TYPE, "bot.stopped") => Queue::BotStopped,
        (Bot::TYPE, "bot.error") => Queue::BotError,
        (ExchangeKey::TYPE, "kraken.key.test.failed") => Queue::KeyTestFailed,
        _ => return None,
    })
}

/// The message a log event becomes, if any.
pub fn outgoing_for(event: &RecordedEvent) -> Result<Option<OutgoingMessage>, SubscriberError> {
    let Some(queue) = queue_for(&event.aggregate_type, &event.event_type) else {
        return Ok(None);
    };
    let body = match queue {
        Queue::BotStart | Queue::BotStop | Queue::BotTriggerTrade => {
            serde_json::to_vec(&command_message(event)?)
        }
        _ => serde_json::to_vec(&status_message(event)),
    }
    .map_err(|e| SubscriberError::undecodable(event, e))?;
    Ok(Some(OutgoingMessage {
        queue,
        message_id: event.event_id.to_string(),
        message_type: event.event_type.clone(),
        body,
        correlation_id: event.metadata_str("correlation_id").map(str::to_string),
        traceparent: event.metadata_str("traceparent").map(str::to_string),
        timestamp: event.recorded_at,
    }))
}

fn command_message(event: &RecordedEvent) -> Result<BotCommandMessage, SubscriberError> {
    let bot_id = event.aggregate_uuid()?;
    let mut message = BotCommandMessage {
        bot_id,
        user_id: None,
        sequence: Some(event.sequence),
        trigger_id: None,
        reason: None,
        requested_at: None,
    };
    match event.payload_as::<BotEvent>()? {
        BotEvent::BotStartRequested {
            requested_by, at, ..
        } => {
            message.user_id = requested_by;
            message.requested_at = Some(at);
        }
        BotEvent::BotStopRequested {
            requested_by,
            reason,
            at,
        } => {
            message.user_id = requested_by;
            message.reason = reason;
            message.requested_at = Some(at);
        }
        BotEvent::TradeTriggered {
            trigger_id,
            requested_by,
            at,
        } => {
            message.user_id = requested_by;
            message.trigger_id = Some(trigger_id);
            message.requested_at = Some(at);
        }
        other => {
            return Err(SubscriberError::undecodable(
                event,
                format!("{other:?} is not a bot command"),
            ))
        }
    }
    Ok(message)
}

/// The status or alert message a log event is published as.
pub fn status_message(event: &RecordedEvent) -> StatusMessage {
    let user_id = ["owner_id", "user_id"]
        .iter()
        .find_map(|name| event.payload.get(*name).and_then(Value::as_str))
        .or_else(|| event.metadata_str("user_id"))
        .and_then(|text| text.parse().ok());
    StatusMessage {
        event_id: event.event_id,
        event_type: event.event_type.clone(),
        event_version: event.event_version.clone(),
        aggregate_type: event.aggregate_type.clone(),
        aggregate_id: event.aggregate_id.clone(),
        sequence: event.sequence,
        recorded_at: event.recorded_at,
        user_id,
        correlation_id: event.metadata_str("correlation_id").map(str::to_string),
        payload: event.payload.clone(),
    }
}
