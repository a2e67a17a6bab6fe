//! RabbitMQ for the Muckard ledger: the queue topology, the message
//! schemas, the connection with back-off, and the publisher subscriber that
//! sends bot commands, status and alerts from the log.
//!
//! - [`settings`]: the broker URL (vhost included) and the queue-name
//!   prefix, so deployments and tests can share one broker;
//! - [`topology`]: the durable queues, each with its dead-letter queue,
//!   declared idempotently on every (re)connect; the status and alert
//!   queues bounded in length and age;
//! - [`messages`]: the JSON bodies and AMQP properties of every queue, and
//!   which log event becomes which message;
//! - [`link`]: one connection and channel, opened lazily with a timeout,
//!   dropped on failure so the next use reconnects;
//! - [`publisher`]: the `rabbitmq_publisher` subscriber. It publishes each
//!   batch with publisher confirms before its checkpoint moves, so an event
//!   leaves the log at least once and never silently goes missing.
//!
//! - [`metrics`]: each queue's depth and whether it exists with other
//!   arguments than the topology's.
//! - [`health`]: the probe `/ready` uses.
//!
//! The consumer side (the bot runner) lives in the `bot-runner` crate.

pub mod health;
pub mod link;
pub mod messages;
pub mod metrics;
pub mod publisher;
pub mod settings;
pub mod topology;

pub use link::{AmqpLink, MessagingError};
pub use messages::{BotCommandMessage, OutgoingMessage, StatusMessage};
pub use publisher::{metrics, PublisherMetrics, RabbitPublisher};
pub use settings::RabbitSettings;
pub use topology::{ArgumentMismatch, Queue, QueueBounds, Topology};
