//! The `kafka-mirror` role: provisions the topics, then mirrors the log,
//! without ever holding up the process's start-up.

use std::sync::Arc;
use std::time::Duration;

use event_log::{LogReader, SubscriberRunner, SubscriberSettings};
use rdkafka::admin::AdminClient;
use rdkafka::producer::Producer;
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::context::KafkaContext;
use crate::mirror::KafkaMirror;
use crate::settings::KafkaSettings;
use crate::topics::provision;

/// How long one provisioning attempt may wait on the broker.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown waits for messages still in the producer's queue.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Starts the mirror in the background; it stops when `shutdown` is
/// cancelled, after the batch in hand, and flushes its producer.
pub fn spawn_mirror(
    pool: PgPool,
    kafka: KafkaSettings,
    subscriber: SubscriberSettings,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(error) = run(pool, kafka, subscriber, shutdown).await {
            tracing::error!(error = %error, "the kafka mirror cannot run; events wait in the log");
        }
    })
}

async fn run(
    pool: PgPool,
    kafka: KafkaSettings,
    subscriber: SubscriberSettings,
    shutdown: CancellationToken,
) -> Result<(), crate::KafkaError> {
    // Creating clients does not contact the broker; a bad property (an
    // unknown name, SASL without support) fails here, once.
    let admin: Arc<AdminClient<KafkaContext>> =
        Arc::new(kafka.client_config().create_with_context(KafkaContext)?);
    let mirror = Arc::new(KafkaMirror::new(
        kafka.producer_config(),
        kafka.layout.clone(),
    )?);

    let specs = kafka.layout.specs();
    let mut pause = Duration::from_millis(500);
    let mut failed_attempts = 0u32;
    loop {
        let attempt = provision(&admin, &specs, kafka.replication_factor, ADMIN_TIMEOUT);
        let outcome = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            outcome = attempt => outcome,
        };
        match outcome {
            Ok(changes) => {
                for change in &changes {
                    match change {
                        crate::TopicChange::NotCorrected { .. }
                        | crate::TopicChange::MorePartitionsThanConfigured { .. } => {
                            tracing::warn!(change = %change, "kafka topic not as configured")
                        }
                        _ => tracing::info!(change = %change, "kafka topic provisioned"),
                    }
                }
                if changes.is_empty() {
                    tracing::info!(topics = specs.len(), "kafka topics already as configured");
                }
                tracing::info!(
                    bootstrap = %kafka.bootstrap_servers,
                    failed_attempts,
                    "kafka broker reached; the mirror publishes the log from its checkpoint"
                );
                break;
            }
            Err(error) => {
                failed_attempts += 1;
                tracing::warn!(bootstrap = %kafka.bootstrap_servers, error = %error, retry_in_ms = pause.as_millis() as u64, "kafka broker not reachable; the mirror tries again, events wait in the log");
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(Duration::from_secs(30));
            }
        }
    }

    let settings = SubscriberSettings {
        batch_size: kafka.batch_size,
        ..subscriber
    };
    let runner = SubscriberRunner::new(pool, LogReader::new(), settings, shutdown.clone());
    runner.run(mirror.clone(), shutdown).await;
    let producer = mirror.producer();
    // Whatever is still queued belongs to a batch whose checkpoint did not
    // move; flushing only spares the broker a duplicate.
    let flushed = tokio::task::spawn_blocking(move || producer.flush(FLUSH_TIMEOUT)).await;
    if let Ok(Err(error)) = flushed {
        tracing::warn!(error = %error, "kafka producer not flushed at shutdown");
    }
    Ok(())
}
