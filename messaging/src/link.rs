//! One AMQP connection and channel, opened on first use and dropped on the
//! first failure, so the next use reconnects. Callers pace their retries
//! (the subscriber runner and the bot runner back off exponentially).

use std::time::Duration;

use lapin::message::Delivery;
use lapin::options::{BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions};
use lapin::types::AMQPValue;
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use tokio::sync::Mutex;

use crate::settings::RabbitSettings;
use crate::topology::{Queue, Topology};

#[derive(Debug, thiserror::Error)]
pub enum MessagingError {
    #[error("rabbitmq: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("rabbitmq: no answer within {0:?}")]
    Timeout(std::time::Duration),
    #[error("rabbitmq: {0}")]
    Closed(&'static str),
    #[error("rabbitmq refused message {message_id} for {queue}")]
    Nacked { queue: String, message_id: String },
}

/// A lazily opened connection and channel with the topology declared and,
/// when asked, publisher confirms on.
pub struct AmqpLink {
    settings: RabbitSettings,
    topology: Topology,
    confirms: bool,
    open: Mutex<Option<(Connection, Channel)>>,
}

impl AmqpLink {
    pub fn new(settings: RabbitSettings, confirms: bool) -> Self {
        Self {
            topology: settings.topology(),
            settings,
            confirms,
            open: Mutex::new(None),
        }
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    pub fn settings(&self) -> &RabbitSettings {
        &self.settings
    }

    /// The open channel, connecting (and declaring the topology) first when
    /// there is none or the last one broke.
    pub async fn channel(&self) -> Result<Channel, MessagingError> {
        let mut open = self.open.lock().await;
        if let Some((connection, channel)) = open.as_ref() {
            if connection.status().connected() && channel.status().connected() {
                return Ok(channel.clone());
            }
        }
        *open = None;
        let (connection, channel) = self.connect().await?;
        *open = Some((connection, channel.clone()));
        Ok(channel)
    }

    /// Forgets the connection after a failure; the next [`Self::channel`]
    /// reconnects.
    pub async fn reset(&self) {
        if let Some((connection, _)) = self.open.lock().await.take() {
            let _ = tokio::time::timeout(
                self.settings.timeout,
                connection.close(200, "reconnecting".into()),
            )
            .await;
        }
    }

    async fn connect(&self) -> Result<(Connection, Channel), MessagingError> {
        let timeout = self.settings.timeout;
        let opened = tokio::time::timeout(timeout, async {
            let connection = Connection::connect(
                &self.settings.url,
                ConnectionProperties::default().with_connection_name("muckard".into()),
            )
            .await?;
            self.topology.declare(&connection).await?;
            let channel = connection.create_channel().await?;
            if self.confirms {
                channel
                    .confirm_select(ConfirmSelectOptions::default())
                    .await?;
            }
            Ok::<_, MessagingError>((connection, channel))
        })
        .await
        .map_err(|_| MessagingError::Timeout(timeout))??;
        tracing::info!(url = %self.settings.redacted_url(), prefix = %self.settings.queue_prefix, "connected to rabbitmq");
        Ok(opened)
    }
}

/// A consumer's connection, named `name`, within `settings.timeout`: the
/// topology declared, a consuming channel with `prefetch` unacknowledged
/// deliveries, and an outlet channel with publisher confirms on (for
/// dead letters and requeues). The bot runner's queues and the notifier
/// open theirs this way.
pub async fn open_consumer(
    settings: &RabbitSettings,
    topology: &Topology,
    name: &str,
    prefetch: u16,
) -> Result<(Connection, Channel, Channel), MessagingError> {
    let timeout = settings.timeout;
    tokio::time::timeout(timeout, async {
        let connection = Connection::connect(
            &settings.url,
            ConnectionProperties::default().with_connection_name(name.into()),
        )
        .await?;
        topology.declare(&connection).await?;
        let channel = connection.create_channel().await?;
        channel
            .basic_qos(prefetch, BasicQosOptions::default())
            .await?;
        let outlet = connection.create_channel().await?;
        outlet
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok::<_, lapin::Error>((connection, channel, outlet))
    })
    .await
    .map_err(|_| MessagingError::Timeout(timeout))?
    .map_err(MessagingError::from)
}

/// The header naming why a message was dead-lettered.
pub const DEATH_REASON_HEADER: &str = "x-death-reason";

/// Publishes `body` persistently to `queue` through the default exchange
/// on `channel` (publisher confirms on) and waits, up to `timeout`, for
/// RabbitMQ's confirm.
pub async fn publish_confirmed(
    channel: &Channel,
    queue: &str,
    body: &[u8],
    properties: BasicProperties,
    timeout: Duration,
) -> Result<(), MessagingError> {
    let confirm = channel
        .basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            body,
            properties.with_delivery_mode(2),
        )
        .await?;
    match tokio::time::timeout(timeout, confirm).await {
        Ok(Ok(Confirmation::Ack(_))) => Ok(()),
        Ok(Ok(_)) => Err(MessagingError::Nacked {
            queue: queue.to_string(),
            message_id: String::new(),
        }),
        Ok(Err(error)) => Err(error.into()),
        Err(_) => Err(MessagingError::Timeout(timeout)),
    }
}

/// Publishes `delivery`, read from `queue`, unchanged but for the headers
/// `x-death-reason` (`reason`), `x-original-queue` and
/// `x-dead-lettered-at`, to the queue's dead-letter queue, and waits for
/// the confirm (see [`publish_confirmed`]). The consumer acknowledges the
/// delivery only after this.
pub async fn dead_letter(
    outlet: &Channel,
    timeout: Duration,
    topology: &Topology,
    queue: Queue,
    delivery: &Delivery,
    reason: &str,
) -> Result<(), MessagingError> {
    let mut headers = delivery.properties.headers().clone().unwrap_or_default();
    headers.insert(
        DEATH_REASON_HEADER.into(),
        AMQPValue::LongString(reason.into()),
    );
    headers.insert(
        "x-original-queue".into(),
        AMQPValue::LongString(topology.name(queue).as_str().into()),
    );
    headers.insert(
        "x-dead-lettered-at".into(),
        AMQPValue::LongString(chrono::Utc::now().to_rfc3339().as_str().into()),
    );
    let properties = delivery.properties.clone().with_headers(headers);
    publish_confirmed(
        outlet,
        &topology.dead_letter_name(queue),
        &delivery.data,
        properties,
        timeout,
    )
    .await
}
