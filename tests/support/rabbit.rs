//! RabbitMQ for tests: a queue prefix of the test's own, publishing and
//! reading messages, and deleting the test's queues afterwards.
//!
//! Set `TEST_RABBITMQ_URL` to use another broker (default
//! `amqp://guest:guest@127.0.0.1:5672/%2f`).

use std::time::Duration;

use lapin::message::Delivery;
use lapin::options::{
    BasicGetOptions, BasicPublishOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Confirmation, Connection, ConnectionProperties};
use messaging::{AmqpLink, Queue, QueueBounds, RabbitSettings, Topology};
use uuid::Uuid;

pub fn rabbit_url() -> String {
    std::env::var("TEST_RABBITMQ_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_string())
}

/// A test's own queues on the shared broker.
pub struct RabbitTest {
    pub prefix: String,
    pub topology: Topology,
    settings: RabbitSettings,
    link: AmqpLink,
}

/// A message read off a queue.
#[derive(Debug, Clone)]
pub struct ReadMessage {
    pub body: Vec<u8>,
    pub properties: BasicProperties,
}

impl ReadMessage {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    pub fn message_id(&self) -> Option<String> {
        self.properties
            .message_id()
            .as_ref()
            .map(|id| id.to_string())
    }

    /// A header's text value.
    pub fn header(&self, name: &str) -> Option<String> {
        let headers = self.properties.headers().as_ref()?;
        match headers.inner().get(name)? {
            AMQPValue::LongString(text) => {
                Some(String::from_utf8_lossy(text.as_bytes()).into_owned())
            }
            AMQPValue::ShortString(text) => Some(text.to_string()),
            _ => None,
        }
    }
}

impl From<Delivery> for ReadMessage {
    fn from(delivery: Delivery) -> Self {
        Self {
            body: delivery.data,
            properties: delivery.properties,
        }
    }
}

impl RabbitTest {
    /// A fresh prefix, with its topology declared, so a message published
    /// before the service connects is kept.
    pub async fn new() -> RabbitTest {
        Self::with_bounds(QueueBounds::default()).await
    }

    /// The same, the status queues declared with `bounds` (which
    /// [`Self::service_env`] hands the service too).
    pub async fn with_bounds(bounds: QueueBounds) -> RabbitTest {
        let prefix = format!("test-{}.", &Uuid::new_v4().simple().to_string()[..12]);
        let mut settings = RabbitSettings::new(rabbit_url(), prefix.clone());
        settings.bounds = bounds;
        let link = AmqpLink::new(settings.clone(), true);
        link.channel().await.expect("rabbitmq is up for the test");
        RabbitTest {
            topology: settings.topology(),
            settings,
            prefix,
            link,
        }
    }

    /// These queues' settings (for a worker a test runs itself).
    pub fn settings(&self) -> RabbitSettings {
        self.settings.clone()
    }

    /// The environment a service needs to run every role on these queues.
    pub fn service_env(&self) -> Vec<(&'static str, String)> {
        let bounds = self.topology.bounds();
        vec![
            ("MUCKARD_ROLES", "all".to_string()),
            ("RABBITMQ_URL", rabbit_url()),
            ("RABBITMQ_QUEUE_PREFIX", self.prefix.clone()),
            (
                "RABBITMQ_STATUS_QUEUE_MAX_LENGTH",
                bounds.max_length.to_string(),
            ),
            (
                "RABBITMQ_STATUS_QUEUE_MAX_AGE_SECS",
                bounds.max_age.as_secs().to_string(),
            ),
            (
                "RABBITMQ_DEAD_LETTER_MAX_LENGTH",
                bounds.dead_letter_max_length.to_string(),
            ),
            (
                "RABBITMQ_DEAD_LETTER_MAX_AGE_SECS",
                bounds.dead_letter_max_age.as_secs().to_string(),
            ),
        ]
    }

    /// Every role but the notifier, so the status and alert queues keep
    /// what is published to them for the test to read.
    pub fn service_env_without_notifier(&self) -> Vec<(&'static str, String)> {
        let mut env = self.service_env();
        env[0].1 = "api,projector,kafka-mirror,publisher,runner".to_string();
        env
    }

    /// Publishes `body` to `queue` as an external producer would, and waits
    /// for the broker's confirm.
    pub async fn publish(&self, queue: Queue, body: &[u8], message_id: &str) {
        let properties = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_message_id(message_id.into());
        self.publish_with(queue, body, properties).await;
    }

    /// Publishes `body` to `queue` with exactly `properties`, and waits for
    /// the broker's confirm.
    pub async fn publish_with(&self, queue: Queue, body: &[u8], properties: BasicProperties) {
        let channel = self.link.channel().await.expect("channel");
        let confirm = channel
            .basic_publish(
                "".into(),
                self.topology.name(queue).as_str().into(),
                BasicPublishOptions::default(),
                body,
                properties,
            )
            .await
            .expect("publish")
            .await
            .expect("confirm");
        assert!(matches!(confirm, Confirmation::Ack(_)), "{confirm:?}");
    }

    /// Takes the next message off a queue (by full name), if any.
    pub async fn take(&self, queue_name: &str) -> Option<ReadMessage> {
        let channel = match self.link.channel().await {
            Ok(channel) => channel,
            Err(_) => {
                self.link.reset().await;
                return None;
            }
        };
        match channel
            .basic_get(queue_name.into(), BasicGetOptions { no_ack: true })
            .await
        {
            Ok(message) => message.map(|message| message.delivery.into()),
            Err(_) => {
                self.link.reset().await;
                None
            }
        }
    }

    /// Waits up to `seconds` for a message on `queue_name` that `matches`,
    /// taking (and keeping) every message read on the way.
    pub async fn wait_for(
        &self,
        queue_name: &str,
        seconds: u64,
        seen: &mut Vec<ReadMessage>,
        matches: impl Fn(&ReadMessage) -> bool,
    ) -> ReadMessage {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
        loop {
            if let Some(found) = seen.iter().find(|m| matches(m)) {
                return found.clone();
            }
            match self.take(queue_name).await {
                Some(message) => seen.push(message),
                None => {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "timed out after {seconds} s waiting on {queue_name}; read {:?}",
                        seen.iter()
                            .map(|m| String::from_utf8_lossy(&m.body).into_owned())
                            .collect::<Vec<_>>()
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    /// Messages ready on `queue_name`, as the broker counts them.
    pub async fn depth(&self, queue_name: &str) -> u32 {
        let channel = self.link.channel().await.expect("channel");
        let queue = channel
            .queue_declare(
                queue_name.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("the queue exists");
        queue.message_count()
    }

    /// Every message now on `queue_name`.
    pub async fn drain(&self, queue_name: &str) -> Vec<ReadMessage> {
        let mut messages = Vec::new();
        while let Some(message) = self.take(queue_name).await {
            messages.push(message);
        }
        messages
    }
}

impl Drop for RabbitTest {
    fn drop(&mut self) {
        let topology = self.topology.clone();
        crate::clean_up_outside_the_runtime(async move {
            let Ok(Ok(connection)) = tokio::time::timeout(
                Duration::from_secs(10),
                Connection::connect(&rabbit_url(), ConnectionProperties::default()),
            )
            .await
            else {
                return;
            };
            if let Ok(channel) = connection.create_channel().await {
                for queue in Queue::ALL {
                    for name in [topology.name(queue), topology.dead_letter_name(queue)] {
                        let _ = channel
                            .queue_delete(name.as_str().into(), QueueDeleteOptions::default())
                            .await;
                    }
                }
            }
            let _ = connection.close(200, "test done".into()).await;
        });
    }
}
