//! The topic of signed checkpoints of the log (`<prefix>ledger.checkpoints`,
//! one partition, never deleted by retention): the copy of the log's
//! anchors that lives outside the database. The checkpoints themselves
//! are made and checked by `projections::audit::anchor`; this module only
//! carries their JSON text to and from the broker.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::{KafkaContext, KafkaError, KafkaSettings};

/// The topic's name under the layout's prefix.
pub fn topic(settings: &KafkaSettings) -> String {
    format!("{}ledger.checkpoints", settings.layout.prefix)
}

/// Creates the topic if it is missing: one partition, so the checkpoints
/// keep their order, and `retention.ms=-1`, so none is ever deleted.
pub async fn provision(settings: &KafkaSettings, timeout: Duration) -> Result<(), KafkaError> {
    let admin: AdminClient<KafkaContext> =
        settings.client_config().create_with_context(KafkaContext)?;
    let name = topic(settings);
    let new = NewTopic::new(
        &name,
        1,
        TopicReplication::Fixed(settings.replication_factor),
    )
    .set("retention.ms", "-1")
    .set("cleanup.policy", "delete");
    let options = AdminOptions::new().operation_timeout(Some(timeout));
    for result in admin.create_topics([&new], &options).await? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(KafkaError::Topic {
                    topic,
                    reason: code.to_string(),
                })
            }
        }
    }
    Ok(())
}

/// Publishes one checkpoint (its JSON text, keyed by its position) and
/// waits until the broker acknowledged it.
pub async fn publish(
    settings: &KafkaSettings,
    position: &str,
    checkpoint_json: &str,
    timeout: Duration,
) -> Result<(), KafkaError> {
    let producer: FutureProducer<KafkaContext> = settings
        .producer_config()
        .create_with_context(KafkaContext)?;
    let name = topic(settings);
    producer
        .send(
            FutureRecord::to(&name)
                .key(position)
                .payload(checkpoint_json),
            timeout,
        )
        .await
        .map_err(|(error, _)| KafkaError::Other(format!("publishing a checkpoint: {error}")))?;
    Ok(())
}

/// Every checkpoint on the topic, oldest first: the JSON texts from the
/// partition's low to its high watermark.
pub fn read_all(settings: &KafkaSettings, timeout: Duration) -> Result<Vec<String>, KafkaError> {
    let consumer: BaseConsumer<KafkaContext> = settings
        .client_config()
        .set("group.id", format!("muckard-verify-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create_with_context(KafkaContext)?;
    let name = topic(settings);
    let (low, high) = consumer.fetch_watermarks(&name, 0, timeout)?;
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(&name, 0, Offset::Offset(low))?;
    consumer.assign(&assignment)?;
    let deadline = std::time::Instant::now() + timeout;
    let mut texts = Vec::new();
    let mut next = low;
    while next < high {
        if std::time::Instant::now() >= deadline {
            return Err(KafkaError::Other(format!(
                "read {} of {} checkpoints of {name} before the deadline",
                texts.len(),
                high - low
            )));
        }
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(error)) => return Err(error.into()),
            Some(Ok(message)) => {
                next = message.offset() + 1;
                if let Some(Ok(text)) = message.payload_view::<str>() {
                    texts.push(text.to_string());
                }
            }
        }
    }
    Ok(texts)
}

/// One mirrored event's place in its stream's hash chain, as its message's
/// headers carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirroredLink {
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub hash: String,
}

/// How long [`read_mirrored_links`] reads on, after the high watermarks,
/// without a new message before it takes the topics as read.
pub const QUIET: Duration = Duration::from_secs(1);

/// Every mirrored event's link on the event topics, within retention: each
/// partition read from its low to its high watermark, then on until
/// [`QUIET`] passes without a message, since a broker's high watermark can
/// lag what it acknowledged (tansu's did, by most of a partition, right
/// after a burst of produces: the read stopped short). `timeout` bounds each
/// broker call and the time without a new message, not the whole read (a
/// 90-day topic takes longer than any fixed bound).
pub fn read_mirrored_links(
    settings: &KafkaSettings,
    timeout: Duration,
) -> Result<Vec<MirroredLink>, KafkaError> {
    let consumer: BaseConsumer<KafkaContext> = settings
        .client_config()
        .set("group.id", format!("muckard-verify-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create_with_context(KafkaContext)?;
    let mut assignment = TopicPartitionList::new();
    let mut remaining = std::collections::HashMap::new();
    for spec in settings.layout.specs() {
        for partition in 0..spec.partitions {
            let (low, high) = consumer.fetch_watermarks(&spec.name, partition, timeout)?;
            assignment.add_partition_offset(&spec.name, partition, Offset::Offset(low))?;
            if high > low {
                remaining.insert((spec.name.clone(), partition), high);
            }
        }
    }
    consumer.assign(&assignment)?;
    let mut deadline = std::time::Instant::now() + timeout;
    let mut links = Vec::new();
    let mut last_message = std::time::Instant::now();
    loop {
        if remaining.is_empty() && last_message.elapsed() >= QUIET {
            break;
        }
        if std::time::Instant::now() >= deadline {
            return Err(KafkaError::Other(format!(
                "read {} mirrored events, then nothing for {} s; partitions left: {}",
                links.len(),
                timeout.as_secs(),
                remaining.len()
            )));
        }
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message?;
        deadline = std::time::Instant::now() + timeout;
        last_message = std::time::Instant::now();
        let key = (message.topic().to_string(), message.partition());
        if remaining
            .get(&key)
            .is_some_and(|high| message.offset() + 1 >= *high)
        {
            remaining.remove(&key);
        }
        let header = |name: &str| {
            use rdkafka::message::Headers;
            message.headers().and_then(|headers| {
                headers
                    .iter()
                    .find(|h| h.key == name)
                    .and_then(|h| h.value)
                    .map(|v| String::from_utf8_lossy(v).into_owned())
            })
        };
        if let (Some(aggregate_type), Some(aggregate_id), Some(sequence), Some(hash)) = (
            header("aggregate_type"),
            header("aggregate_id"),
            header("sequence").and_then(|s| s.parse().ok()),
            header("hash"),
        ) {
            links.push(MirroredLink {
                aggregate_type,
                aggregate_id,
                sequence,
                hash,
            });
        }
    }
    Ok(links)
}
