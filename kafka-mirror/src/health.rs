//! Whether the Kafka cluster answers, for `/ready`.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::producer::{BaseProducer, Producer};

use crate::settings::KafkaSettings;

/// A long-lived client that asks the cluster for its metadata. One client
/// is kept so that a probe reuses its connections instead of opening new
/// ones each time; librdkafka reconnects it in the background.
pub struct BrokerProbe {
    client: Option<Arc<BaseProducer>>,
    error: Option<String>,
}

impl BrokerProbe {
    pub fn new(settings: &KafkaSettings) -> Self {
        match settings.client_config().create::<BaseProducer>() {
            Ok(client) => Self {
                client: Some(Arc::new(client)),
                error: None,
            },
            Err(error) => Self {
                client: None,
                error: Some(format!("kafka client: {error}")),
            },
        }
    }

    /// The number of brokers the cluster named within `timeout`, or why it
    /// did not answer.
    pub async fn check(&self, timeout: Duration) -> Result<usize, String> {
        let Some(client) = self.client.clone() else {
            return Err(self.error.clone().unwrap_or_default());
        };
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
