//! `rabbitmq_publisher`: the subscriber that sends bot commands, status
//! and alerts from the log to their queues.
//!
//! Each batch is published with publisher confirms, and `handle` returns
//! only after RabbitMQ confirmed every message; the subscriber runner then
//! moves the checkpoint in the same transaction. A failure (broker down, a
//! nack, no confirm in time) fails the batch: the checkpoint stays, the
//! connection is dropped, and the runner retries with exponential back-off
//! from the same place. So every event reaches its queue at least once, in
//! commit order; consumers deduplicate by `message_id` (the event id).

use std::sync::LazyLock;

use prometheus::IntCounter;

use async_trait::async_trait;
use cqrs_es::Aggregate;
use domain::bot::Bot;
use domain::exchange_key::ExchangeKey;
use event_log::{RecordedEvent, Subscriber, SubscriberError};
use futures::future::try_join_all;
use lapin::options::BasicPublishOptions;
use lapin::Confirmation;
use sqlx::PgConnection;

use crate::link::{AmqpLink, MessagingError};
use crate::messages::{outgoing_for, OutgoingMessage};
use crate::settings::RabbitSettings;

pub struct RabbitPublisher {
    link: AmqpLink,
}

/// The publisher's counters, in the process-wide Prometheus registry that
/// `/metrics` renders.
pub struct PublisherMetrics {
    /// Messages RabbitMQ confirmed.
    pub published: IntCounter,
    /// Messages of batches that failed (broker down, nack, no confirm in
    /// time); the batch is published again from the checkpoint.
    pub failed: IntCounter,
}

static METRICS: LazyLock<PublisherMetrics> = LazyLock::new(|| PublisherMetrics {
    published: registered(
        "muckard_rabbitmq_published_messages_total",
        "Messages RabbitMQ confirmed to the publisher.",
    ),
    failed: registered(
        "muckard_rabbitmq_publish_errors_total",
        "Messages of batches RabbitMQ did not confirm; the batch is published again.",
    ),
});

fn registered(name: &str, help: &str) -> IntCounter {
    // The names are constants; a failure is a bug the first test shows.
    let counter = IntCounter::new(name, help).expect("valid metric definition");
    let _ = prometheus::register(Box::new(counter.clone()));
    counter
}

/// This process's publisher counters (registered, at zero, on first call).
pub fn metrics() -> &'static PublisherMetrics {
    &METRICS
}

impl RabbitPublisher {
    pub fn new(settings: RabbitSettings) -> Self {
        Self {
            link: AmqpLink::new(settings, true),
        }
    }

    /// Publishes `messages` and waits until RabbitMQ confirmed all of them.
    pub async fn publish_confirmed(
        &self,
        messages: &[OutgoingMessage],
    ) -> Result<(), MessagingError> {
        if messages.is_empty() {
            return Ok(());
        }
        let channel = self.link.channel().await?;
        let timeout = self.link.settings().timeout;
        let mut confirms = Vec::with_capacity(messages.len());
        for message in messages {
            let queue = self.link.topology().name(message.queue);
            let confirm = channel
                .basic_publish(
                    "".into(),
                    queue.as_str().into(),
                    BasicPublishOptions::default(),
                    &message.body,
                    message.properties(),
                )
                .await?;
            confirms.push(async move {
                match confirm.await? {
                    Confirmation::Ack(_) => Ok(()),
                    _ => Err(MessagingError::Nacked {
                        queue,
                        message_id: message.message_id.clone(),
                    }),
                }
            });
        }
        tokio::time::timeout(timeout, try_join_all(confirms))
            .await
            .map_err(|_| MessagingError::Timeout(timeout))??;
        Ok(())
    }
}

#[async_trait]
impl Subscriber for RabbitPublisher {
    fn name(&self) -> &'static str {
        "rabbitmq_publisher"
    }

    /// The aggregates whose events become messages (`outgoing_for`).
    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        Some(&[Bot::TYPE, ExchangeKey::TYPE])
    }

    async fn handle(
        &self,
        _transaction: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), SubscriberError> {
        let mut messages = Vec::new();
        for event in events {
            if let Some(message) = outgoing_for(event)? {
                messages.push(message);
            }
        }
        if let Err(error) = self.publish_confirmed(&messages).await {
            metrics().failed.inc_by(messages.len() as u64);
            self.link.reset().await;
            return Err(SubscriberError::Failed(format!(
                "publishing {} messages: {error}",
                messages.len()
            )));
        }
        metrics().published.inc_by(messages.len() as u64);
        if !messages.is_empty() {
            tracing::debug!(published = messages.len(), "published to rabbitmq");
        }
        Ok(())
    }
}

/// Runs the publisher as a subscriber of the log until `shutdown`. It never
/// waits for RabbitMQ: while the broker is down its batches fail and are
/// retried with back-off, and the events wait in the log.
pub fn spawn_publisher(
    pool: sqlx::PgPool,
    rabbit: RabbitSettings,
    settings: event_log::SubscriberSettings,
    shutdown: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let runner = event_log::SubscriberRunner::new(
        pool,
        event_log::LogReader::new(),
        settings,
        shutdown.clone(),
    );
    let publisher: std::sync::Arc<dyn Subscriber> =
        std::sync::Arc::new(RabbitPublisher::new(rabbit));
    tokio::spawn(runner.run(publisher, shutdown))
}
