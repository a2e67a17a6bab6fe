//! Where the broker is and how the queues are named.

use std::time::Duration;

use crate::topology::{QueueBounds, Topology};

/// The broker and naming settings, parsed by the binary
/// (`RABBITMQ_URL`, `RABBITMQ_QUEUE_PREFIX`).
#[derive(Clone)]
pub struct RabbitSettings {
    /// `amqp://user:password@host:port/vhost`; the vhost is percent-encoded
    /// (`%2f` is `/`).
    pub url: String,
    /// Put in front of every queue name, e.g. `staging.` gives
    /// `staging.bot.start`; empty by default.
    pub queue_prefix: String,
    /// How long a connection attempt or a publisher confirm may take.
    pub timeout: Duration,
    /// The bounds of the status and alert queues.
    pub bounds: QueueBounds,
}

impl RabbitSettings {
    pub fn new(url: impl Into<String>, queue_prefix: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            queue_prefix: queue_prefix.into(),
            timeout: Duration::from_secs(5),
            bounds: QueueBounds::default(),
        }
    }

    /// The queues these settings name and bound.
    pub fn topology(&self) -> Topology {
        Topology::new(self.queue_prefix.clone()).with_bounds(self.bounds)
    }

    /// The URL without its password, for logs.
    pub fn redacted_url(&self) -> String {
        match (self.url.find("://"), self.url.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                format!(
                    "{}://[redacted]@{}",
                    &self.url[..scheme],
                    &self.url[at + 1..]
                )
            }
            _ => self.url.clone(),
        }
    }
}

impl std::fmt::Debug for RabbitSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitSettings")
            .field("url", &self.redacted_url())
            .field("queue_prefix", &self.queue_prefix)
            .field("timeout", &self.timeout)
            .field("bounds", &self.bounds)
            .finish()
    }
}
