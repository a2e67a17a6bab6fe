//! `KafkaMirror`: the subscriber that publishes the log to Kafka.
//!
//! A batch is queued as a whole and its acknowledgements awaited: only
//! when the broker has acknowledged every message (`acks=all`) does its
//! future complete, and only then does the runtime move the checkpoint past
//! it. The runner pipelines the mirror (`PipelinedSubscriber`): it reads
//! and queues the next batches while earlier ones are being acknowledged,
//! and moves the checkpoint in order, never past a batch that is not
//! acknowledged along with every batch before it. A batch with any failed
//! delivery fails as a whole and is sent again from the checkpoint, so
//! delivery is at least once: a message acknowledged before a crash or a
//! failed batch can arrive twice, and consumers deduplicate by `event_id`.
//! The idempotent producer keeps its own retries from duplicating or
//! reordering within a partition.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use prometheus::IntCounter;

use async_trait::async_trait;
use event_log::{InFlight, PipelinedSubscriber, RecordedEvent, Subscriber, SubscriberError};
use rdkafka::error::{KafkaError as RdKafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::ClientConfig;
use sqlx::PgConnection;

use crate::context::KafkaContext;
use crate::envelope::{headers, Envelope};
use crate::topics::TopicLayout;

/// The mirror's checkpoint name; stable across releases.
pub const MIRROR_SUBSCRIBER: &str = "kafka_mirror";

/// Counters of the mirror in this process, in the process-wide
/// Prometheus registry that `/metrics` renders.
pub struct MirrorMetrics {
    /// Messages the broker acknowledged.
    pub published: IntCounter,
    /// Messages the broker did not acknowledge (their batch is retried).
    pub failed: IntCounter,
    /// Batches published and acknowledged.
    pub batches: IntCounter,
}

static METRICS: LazyLock<MirrorMetrics> = LazyLock::new(|| MirrorMetrics {
    published: registered(
        "muckard_kafka_published_events_total",
        "Events the Kafka broker acknowledged.",
    ),
    failed: registered(
        "muckard_kafka_publish_errors_total",
        "Events the Kafka broker did not acknowledge; their batch is sent again.",
    ),
    batches: registered(
        "muckard_kafka_published_batches_total",
        "Batches the Kafka broker acknowledged in full.",
    ),
});

fn registered(name: &str, help: &str) -> IntCounter {
    // The names are constants; a failure is a bug the first test shows.
    let counter = IntCounter::new(name, help).expect("valid metric definition");
    let _ = prometheus::register(Box::new(counter.clone()));
    counter
}

/// This process's mirror counters (registered, at zero, on first call).
pub fn metrics() -> &'static MirrorMetrics {
    &METRICS
}

pub struct KafkaMirror {
    slot: Arc<ProducerSlot>,
    layout: TopicLayout,
}

/// The producer in use and how to make another.
struct ProducerSlot {
    config: ClientConfig,
    producer: Mutex<FutureProducer<KafkaContext>>,
    /// Whether the last batch failed, so the first to succeed after it says
    /// so in the log.
    failing: AtomicBool,
}

impl KafkaMirror {
    /// A mirror whose producer is made from `config` (see
    /// `KafkaSettings::producer_config`); no broker is contacted yet.
    pub fn new(config: ClientConfig, layout: TopicLayout) -> Result<Self, RdKafkaError> {
        let producer = config.create_with_context(KafkaContext)?;
        Ok(Self {
            slot: Arc::new(ProducerSlot {
                config,
                producer: Mutex::new(producer),
                failing: AtomicBool::new(false),
            }),
            layout,
        })
    }

    /// The producer in use (a cheap handle).
    pub fn producer(&self) -> FutureProducer<KafkaContext> {
        self.slot
            .producer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl ProducerSlot {
    /// A failed batch is retried on a new producer. The old one may hold
    /// idempotence state (producer id, epoch, sequence numbers) that the
    /// broker no longer shares: a broker restarted without it answers
    /// every message with an error (tansu 0.6's SQLite engine even stops
    /// serving produce requests), and librdkafka may have failed fatally.
    /// A new producer registers a new producer id with whatever broker
    /// answers next. The old one holds nothing undelivered: its messages
    /// timed out or failed, and the batch is sent again from the log.
    fn replace_after(&self, producer: &FutureProducer<KafkaContext>, broker_answered: bool) {
        self.failing.store(true, Ordering::Relaxed);
        let fatal = producer.client().fatal_error();
        tracing::warn!(fatal = ?fatal, broker_answered, "kafka batch failed; retrying it on a new producer");
        match self
            .config
            .create_with_context::<_, FutureProducer<KafkaContext>>(KafkaContext)
        {
            Ok(fresh) => {
                *self
                    .producer
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
            }
            Err(error) => tracing::error!(error = %error, "cannot create a kafka producer"),
        }
    }
}

#[async_trait]
impl Subscriber for KafkaMirror {
    fn name(&self) -> &'static str {
        MIRROR_SUBSCRIBER
    }

    fn as_pipelined(&self) -> Option<&dyn PipelinedSubscriber> {
        Some(self)
    }

    /// The batch sent and awaited in one go (the runner pipelines it
    /// through [`PipelinedSubscriber::start`] instead).
    async fn handle(
        &self,
        _transaction: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), SubscriberError> {
        self.start(events)?.await
    }
}

impl PipelinedSubscriber for KafkaMirror {
    /// Queues every message of the batch on the producer and returns what
    /// completes once the broker acknowledged them all. A batch that stops
    /// short (an event without a route, a message the producer refuses)
    /// fails only after what it queued has settled, so that nothing of it
    /// is still being delivered when it is sent again.
    fn start(&self, events: &[RecordedEvent]) -> Result<InFlight, SubscriberError> {
        let producer = self.producer();
        let total = events.len() as u64;
        let mut deliveries = Vec::with_capacity(events.len());
        let mut stopped = None;
        for event in events {
            let Some(topic) = self.layout.topic_for(&event.event_type) else {
                // Publishing it anywhere would hide it; skipping it would
                // lose it. Stop here so an operator adds its route.
                tracing::error!(event_id = %event.event_id, event_type = %event.event_type, "no topic for this event type; the mirror is stopped at it");
                stopped = Some(SubscriberError::Failed(format!(
                    "no kafka topic for event type {} (event {})",
                    event.event_type, event.event_id
                )));
                break;
            };
            let value = match serde_json::to_vec(&Envelope::of(event)) {
                Ok(value) => value,
                Err(error) => {
                    stopped = Some(SubscriberError::undecodable(event, error));
                    break;
                }
            };
            let record = FutureRecord::to(&topic)
                .key(event.aggregate_id.as_bytes())
                .payload(&value)
                .headers(headers(event))
                .timestamp(event.recorded_at.timestamp_millis());
            match producer.send_result(record) {
                Ok(delivery) => deliveries.push(delivery),
                Err((error, _)) => {
                    // Nothing after this event may be sent before it, so
                    // the batch ends here; what was queued is awaited and
                    // the whole batch is sent again from the checkpoint.
                    stopped = Some(SubscriberError::Failed(format!(
                        "kafka producer refused event {}: {}",
                        event.event_id,
                        describe(&error)
                    )));
                    break;
                }
            }
        }
        let slot = self.slot.clone();
        let queued = std::time::Instant::now();
        Ok(Box::pin(async move {
            let results = futures::future::join_all(deliveries).await;
            tracing::debug!(
                events = total,
                acknowledged_in_ms = queued.elapsed().as_secs_f64() * 1e3,
                "kafka batch settled"
            );
            let acknowledged = count_acknowledged(&results);
            let failed = total - acknowledged;
            if failed > 0 {
                metrics().failed.inc_by(failed);
            }
            if let Some(error) = stopped {
                if matches!(error, SubscriberError::Failed(_)) {
                    slot.replace_after(&producer, answered_with_errors(&results));
                }
                return Err(error);
            }
            if failed > 0 {
                slot.replace_after(&producer, answered_with_errors(&results));
                let first_error = results
                    .iter()
                    .find_map(|result| match result {
                        Ok(Err((error, _))) => Some(describe(error)),
                        Err(_) => Some("producer closed before delivery".to_string()),
                        Ok(Ok(_)) => None,
                    })
                    .unwrap_or_default();
                return Err(SubscriberError::Failed(format!(
                    "kafka acknowledged {acknowledged} of {total} events; the batch will be sent again: {first_error}"
                )));
            }
            metrics().published.inc_by(acknowledged);
            metrics().batches.inc();
            if slot.failing.swap(false, Ordering::Relaxed) {
                tracing::info!(events = acknowledged, "kafka acknowledges the mirror's batches again; it catches up from its checkpoint");
            }
            Ok(())
        }))
    }
}

type DeliveryOutcome = Result<
    rdkafka::producer::future_producer::OwnedDeliveryResult,
    futures::channel::oneshot::Canceled,
>;

fn count_acknowledged(results: &[DeliveryOutcome]) -> u64 {
    results
        .iter()
        .filter(|result| matches!(result, Ok(Ok(_))))
        .count() as u64
}

/// Whether the broker rejected a message (rather than never answering).
fn answered_with_errors(results: &[DeliveryOutcome]) -> bool {
    results.iter().any(|result| {
        matches!(result, Ok(Err((error, _)))
            if error.rdkafka_error_code() != Some(RDKafkaErrorCode::MessageTimedOut))
    })
}

fn describe(error: &RdKafkaError) -> String {
    match error.rdkafka_error_code() {
        Some(RDKafkaErrorCode::MessageTimedOut) => {
            "message timed out: the broker is unreachable or not acknowledging".to_string()
        }
        Some(RDKafkaErrorCode::QueueFull) => "the producer queue is full".to_string(),
        _ => error.to_string(),
    }
}
