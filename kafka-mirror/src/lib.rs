//! The Kafka mirror: every committed event, published to its Kafka topic
//! for analytics consumers, in commit order, at least once.
//!
//! - [`settings`]: `KafkaSettings` (bootstrap servers, security, topic
//!   layout, producer tuning), read from the environment by the binary, and
//!   the librdkafka client configuration built from them;
//! - [`topics`]: which topic an event type goes to (`TopicLayout`) and
//!   start-up provisioning (`provision`): topics created with their
//!   partition counts, retention and cleanup policy corrected, every change
//!   reported;
//! - [`envelope`]: the JSON value and the headers of a Kafka message;
//! - [`mirror`]: `KafkaMirror`, the log subscriber that publishes each
//!   batch with an idempotent, `acks=all` producer and returns only once the
//!   broker acknowledged all of it, so its checkpoint never passes an event
//!   the broker does not hold; and the mirror's counters;
//! - [`worker`]: the `kafka-mirror` role: provision in the background with
//!   back-off (start-up never waits for the broker), then run the
//!   subscriber until shutdown and flush the producer;
//! - [`health`]: the probe `/ready` uses;
//! - [`context`]: `KafkaContext`, every client's librdkafka context: a
//!   broker that does not answer is logged once per retry by the mirror,
//!   not at every connection attempt by librdkafka.
//!
//! The code speaks only the Kafka protocol through rdkafka: development and
//! CI use a local `tansu` broker, production a Kafka cluster.

pub mod checkpoints;
pub mod context;
pub mod envelope;
pub mod health;
pub mod mirror;
pub mod settings;
pub mod topics;
pub mod worker;

pub use context::KafkaContext;
pub use mirror::{metrics, KafkaMirror, MirrorMetrics, MIRROR_SUBSCRIBER};
pub use settings::{KafkaSettings, KafkaSettingsError};
pub use topics::{provision, TopicChange, TopicLayout, TopicSpec};
pub use worker::spawn_mirror;

/// Everything that can go wrong talking to Kafka.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    #[error("kafka client: {0}")]
    Client(#[from] rdkafka::error::KafkaError),
    #[error("topic {topic}: {reason}")]
    Topic { topic: String, reason: String },
    #[error("{0}")]
    Other(String),
}
