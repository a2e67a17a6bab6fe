//! Whether the Kafka cluster answers, for `/ready`.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::ClientConfig;

use crate::context::KafkaContext;
use crate::settings::KafkaSettings;

/// A long-lived client that asks the cluster for its metadata. It is made
/// on the first check, so a process nobody probes (the operator commands,
/// a test) opens no Kafka connection for it; afterwards the one client is
/// reused and librdkafka reconnects it in the background.
pub struct BrokerProbe {
    config: ClientConfig,
    client: OnceLock<Result<Arc<BaseProducer<KafkaContext>>, String>>,
}

impl BrokerProbe {
    pub fn new(settings: &KafkaSettings) -> Self {
        Self {
            config: settings.client_config(),
            client: OnceLock::new(),
        }
    }

    /// The number of brokers the cluster named within `timeout`, or why it
    /// did not answer.
    pub async fn check(&self, timeout: Duration) -> Result<usize, String> {
        let client = self
            .client
            .get_or_init(|| {
                self.config
                    .create_with_context::<_, BaseProducer<KafkaContext>>(KafkaContext)
                    .map(Arc::new)
                    .map_err(|error| format!("kafka client: {error}"))
            })
            .clone()?;
        let metadata = tokio::task::spawn_blocking(move || {
            client
                .client()
                .fetch_metadata(None, timeout)
                .map(|metadata| metadata.brokers().len())
        })
        .await
        .map_err(|e| format!("kafka probe: {e}"))?;
        match metadata {
            Ok(0) => Err("kafka: the cluster named no broker".to_string()),
            Ok(brokers) => Ok(brokers),
            Err(error) => Err(format!("kafka: {error}")),
        }
    }
}
