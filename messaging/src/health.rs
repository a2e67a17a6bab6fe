//! Whether RabbitMQ answers, for `/ready`.

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;

use crate::link::AmqpLink;
use crate::settings::RabbitSettings;
use crate::topology::Queue;

/// Keeps one connection and checks it with a real round trip: a passive
/// declare of the first command queue, which also proves the topology is
/// in place.
pub struct RabbitProbe {
    link: AmqpLink,
}

impl RabbitProbe {
    pub fn new(settings: RabbitSettings) -> Self {
        Self {
            link: AmqpLink::new(settings, false),
        }
    }

    pub async fn check(&self, timeout: std::time::Duration) -> Result<(), String> {
        let round_trip = async {
            let channel = self.link.channel().await?;
            let queue = self.link.topology().name(Queue::BotStart);
            channel
                .queue_declare(
                    queue.as_str().into(),
                    QueueDeclareOptions {
                        passive: true,
                        ..QueueDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await?;
            Ok::<_, crate::link::MessagingError>(())
        };
        let result = match tokio::time::timeout(timeout, round_trip).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(error)) => error.to_string(),
            Err(_) => format!("rabbitmq: no answer within {timeout:?}"),
        };
        // The next check reconnects rather than reusing a broken channel.
        self.link.reset().await;
        Err(result)
    }
}
