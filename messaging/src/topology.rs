//! The queues: durable, each with a dead-letter queue `<name>.dlq`, and a
//! priority range on those whose messages may be urgent.

use lapin::options::QueueDeclareOptions;
use lapin::types::{AMQPValue, FieldTable};
use lapin::Channel;

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

/// Queue names under one prefix.
#[derive(Debug, Clone, Default)]
pub struct Topology {
    prefix: String,
}

impl Topology {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
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

    /// Declares every queue and its dead-letter queue. Declaring an
    /// existing queue with the same arguments changes nothing, so this runs
    /// on every connect; a queue that exists with other arguments is an
    /// error (`PRECONDITION_FAILED`) that an operator must resolve.
    pub async fn declare(&self, channel: &Channel) -> Result<(), lapin::Error> {
        let durable = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        for queue in Queue::ALL {
            let dead_letters = self.dead_letter_name(queue);
            channel
                .queue_declare(dead_letters.as_str().into(), durable, FieldTable::default())
                .await?;
            let mut arguments = FieldTable::default();
            // Rejected or expired messages go, through the default
            // exchange, to the dead-letter queue.
            arguments.insert(
                "x-dead-letter-exchange".into(),
                AMQPValue::LongString("".into()),
            );
            arguments.insert(
                "x-dead-letter-routing-key".into(),
                AMQPValue::LongString(dead_letters.as_str().into()),
            );
            if queue.has_priority() {
                arguments.insert(
                    "x-max-priority".into(),
                    AMQPValue::LongInt(i32::from(MAX_PRIORITY)),
                );
            }
            channel
                .queue_declare(self.name(queue).as_str().into(), durable, arguments)
                .await?;
        }
        Ok(())
    }
}
