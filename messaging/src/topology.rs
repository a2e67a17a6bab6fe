//! The queues: durable, each with a dead-letter queue `<name>.dlq`, and a
//! priority range on those whose messages may be urgent.
//!
//! The status and alert queues are bounded ([`QueueBounds`]): at most
//! `max_length` messages, none older than `max_age`; past either, the
//! oldest is dead-lettered (`x-overflow: drop-head`, so publishing never
//! stops), and their dead-letter queues are bounded the same way (a dead
//! letter past those bounds is dropped: every status and alert message is
//! a copy of an event the log keeps). The command queues and their
//! dead-letter queues are not bounded: a command is never dropped.

use std::time::Duration;

use lapin::options::QueueDeclareOptions;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ErrorKind};

/// The highest message priority of a priority queue (`x-max-priority`).
pub const MAX_PRIORITY: u8 = 10;

/// Every queue of the topology, by its role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Queue {
    /// Commands to the bot runner.
    BotStart,
    BotStop,
    BotTriggerTrade,
    /// Status and alerts for real-time consumers.
    BotStarted,
    BotStopped,
    BotError,
    KeyTestFailed,
}

impl Queue {
    pub const ALL: [Queue; 7] = [
        Queue::BotStart,
        Queue::BotStop,
        Queue::BotTriggerTrade,
        Queue::BotStarted,
        Queue::BotStopped,
        Queue::BotError,
        Queue::KeyTestFailed,
    ];

    /// The command queues the bot runner consumes.
    pub const COMMANDS: [Queue; 3] = [Queue::BotStart, Queue::BotStop, Queue::BotTriggerTrade];

    /// The queue's name before the prefix.
    pub fn base_name(self) -> &'static str {
        match self {
            Queue::BotStart => "bot.start",
            Queue::BotStop => "bot.stop",
            Queue::BotTriggerTrade => "bot.trigger_trade",
            Queue::BotStarted => "bot.started",
            Queue::BotStopped => "bot.stopped",
            Queue::BotError => "bot.error",
            Queue::KeyTestFailed => "kraken.key.test.failed",
        }
    }

    /// Whether the queue carries status or alerts (bounded), not commands.
    pub fn is_status(self) -> bool {
        !Queue::COMMANDS.contains(&self)
    }

    /// Whether the queue orders its messages by priority.
    pub fn has_priority(self) -> bool {
        matches!(
            self,
            Queue::BotTriggerTrade | Queue::BotError | Queue::KeyTestFailed
        )
    }

    /// The priority its messages are published with (0 on a queue without
    /// priorities).
    pub fn message_priority(self) -> u8 {
        match self {
            Queue::BotError | Queue::KeyTestFailed => 9,
            Queue::BotTriggerTrade => 5,
            _ => 0,
        }
    }
}

/// The bounds of the status and alert queues and of their dead-letter
/// queues (`RABBITMQ_STATUS_QUEUE_MAX_LENGTH`,
/// `RABBITMQ_STATUS_QUEUE_MAX_AGE_SECS`, `RABBITMQ_DEAD_LETTER_MAX_LENGTH`,
/// `RABBITMQ_DEAD_LETTER_MAX_AGE_SECS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueBounds {
    pub max_length: u32,
    pub max_age: Duration,
    pub dead_letter_max_length: u32,
    pub dead_letter_max_age: Duration,
}

impl Default for QueueBounds {
    fn default() -> Self {
        Self {
            max_length: 10_000,
            max_age: Duration::from_secs(3 * 24 * 3600),
            dead_letter_max_length: 100_000,
            dead_letter_max_age: Duration::from_secs(14 * 24 * 3600),
        }
    }
}

/// A queue that exists with other arguments than the topology's: it is
/// used as it is (declaring it again would close the channel with
/// `PRECONDITION_FAILED` on every connect), and the operator is told how
/// to bring it in line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgumentMismatch {
    pub queue: String,
    pub broker_says: String,
}

impl std::fmt::Display for ArgumentMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "queue {} exists with other arguments ({}); it is used as it is. To apply the \
             topology's, drain it and delete it (rabbitmqctl delete_queue {}), or set the same \
             bounds with a RabbitMQ policy",
            self.queue, self.broker_says, self.queue
        )
    }
}

/// Queue names under one prefix, and the bounds of the status queues.
#[derive(Debug, Clone, Default)]
pub struct Topology {
    prefix: String,
    bounds: QueueBounds,
}

fn milliseconds(age: Duration) -> AMQPValue {
    AMQPValue::LongLongInt(i64::try_from(age.as_millis()).unwrap_or(i64::MAX))
}

fn is_precondition_failed(error: &lapin::Error) -> bool {
    matches!(error.kind(), ErrorKind::ProtocolError(e) if e.get_id() == 406)
}

impl Topology {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            bounds: QueueBounds::default(),
        }
    }

    pub fn with_bounds(mut self, bounds: QueueBounds) -> Self {
        self.bounds = bounds;
        self
    }

    pub fn bounds(&self) -> QueueBounds {
        self.bounds
    }

    pub fn name(&self, queue: Queue) -> String {
        format!("{}{}", self.prefix, queue.base_name())
    }

    pub fn dead_letter_name(&self, queue: Queue) -> String {
        format!("{}.dlq", self.name(queue))
    }

    /// The queue a (prefixed) name belongs to.
    pub fn queue_named(&self, name: &str) -> Option<Queue> {
        Queue::ALL
            .into_iter()
            .find(|queue| self.name(*queue) == name)
    }

    /// The arguments `queue` is declared with, and those of its
    /// dead-letter queue.
    pub fn arguments(&self, queue: Queue) -> (FieldTable, FieldTable) {
        let mut arguments = FieldTable::default();
        let mut dead_letter_arguments = FieldTable::default();
        // Rejected, expired or overflowing messages go, through the default
        // exchange, to the dead-letter queue.
        arguments.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString("".into()),
        );
        arguments.insert(
            "x-dead-letter-routing-key".into(),
            AMQPValue::LongString(self.dead_letter_name(queue).as_str().into()),
        );
        if queue.has_priority() {
            arguments.insert(
                "x-max-priority".into(),
                AMQPValue::LongInt(i32::from(MAX_PRIORITY)),
            );
        }
        if queue.is_status() {
            let bounds = self.bounds;
            arguments.insert(
                "x-max-length".into(),
                AMQPValue::LongLongInt(i64::from(bounds.max_length)),
            );
            arguments.insert("x-message-ttl".into(), milliseconds(bounds.max_age));
            arguments.insert(
                "x-overflow".into(),
                AMQPValue::LongString("drop-head".into()),
            );
            dead_letter_arguments.insert(
                "x-max-length".into(),
                AMQPValue::LongLongInt(i64::from(bounds.dead_letter_max_length)),
            );
            dead_letter_arguments.insert(
                "x-message-ttl".into(),
                milliseconds(bounds.dead_letter_max_age),
            );
            dead_letter_arguments.insert(
                "x-overflow".into(),
                AMQPValue::LongString("drop-head".into()),
            );
        }
        (arguments, dead_letter_arguments)
    }

    /// Declares every queue and its dead-letter queue. Declaring an
    /// existing queue with the same arguments changes nothing, so this runs
    /// on every connect. A queue that exists with other arguments (a bound
    /// changed, or the queue predates them) is used as it is and returned
    /// as an [`ArgumentMismatch`], logged and counted by
    /// `muckard_rabbitmq_queue_arguments_mismatched`; the broker closes the
    /// channel on such a declaration, so each runs on a channel of its own
    /// when the one before failed.
    pub async fn declare(
        &self,
        connection: &Connection,
    ) -> Result<Vec<ArgumentMismatch>, lapin::Error> {
        let durable = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        let mut mismatches = Vec::new();
        let mut channel = connection.create_channel().await?;
        for queue in Queue::ALL {
            let (arguments, dead_letter_arguments) = self.arguments(queue);
            for (name, arguments) in [
                (self.dead_letter_name(queue), dead_letter_arguments),
                (self.name(queue), arguments),
            ] {
                match channel
                    .queue_declare(name.as_str().into(), durable, arguments)
                    .await
                {
                    Ok(_) => crate::metrics::set_mismatch(&name, false),
                    Err(error) if is_precondition_failed(&error) => {
                        let mismatch = ArgumentMismatch {
                            queue: name.clone(),
                            broker_says: error.to_string(),
                        };
                        tracing::warn!(queue = %name, "{mismatch}");
                        crate::metrics::set_mismatch(&name, true);
                        mismatches.push(mismatch);
                        channel = connection.create_channel().await?;
                    }
                    Err(error) => return Err(error),
                }
            }
        }
        let _ = channel.close(200, "declared".into()).await;
        Ok(mismatches)
    }
}
