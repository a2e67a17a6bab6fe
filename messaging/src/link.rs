//! One AMQP connection and channel, opened on first use and dropped on the
//! first failure, so the next use reconnects. Callers pace their retries
//! (the subscriber runner and the bot runner back off exponentially).

use lapin::options::ConfirmSelectOptions;
use lapin::{Channel, Connection, ConnectionProperties};
use tokio::sync::Mutex;

use crate::settings::RabbitSettings;
use crate::topology::Topology;

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
