//! The queues' own metrics: how many messages each holds
//! (`muckard_rabbitmq_queue_messages`, sampled by [`spawn_depth_sampler`])
//! and which exist with other arguments than the topology's
//! (`muckard_rabbitmq_queue_arguments_mismatched`, set on every declare).

use std::sync::LazyLock;
use std::time::Duration;

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use prometheus::IntGaugeVec;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::settings::RabbitSettings;
use crate::topology::{Queue, Topology};

/// How often the depth of every queue is read.
pub const DEPTH_INTERVAL: Duration = Duration::from_secs(5);

fn gauge(name: &str, help: &str) -> IntGaugeVec {
    let gauge =
        IntGaugeVec::new(prometheus::Opts::new(name, help), &["queue"]).expect("a valid gauge");
    let _ = prometheus::register(Box::new(gauge.clone()));
    gauge
}

static DEPTH: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    gauge(
        "muckard_rabbitmq_queue_messages",
        "Messages ready on each queue and dead-letter queue, sampled every 5 s.",
    )
});

static MISMATCHED: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    gauge(
        "muckard_rabbitmq_queue_arguments_mismatched",
        "1 for a queue that exists with other arguments than the topology's (used as it is; \
         see the log for how to bring it in line).",
    )
});

/// Registers the gauges (so `/metrics` lists them from the start).
pub fn register() {
    LazyLock::force(&DEPTH);
    LazyLock::force(&MISMATCHED);
}

pub(crate) fn set_mismatch(queue: &str, mismatched: bool) {
    MISMATCHED
        .with_label_values(&[queue])
        .set(i64::from(mismatched));
}

/// Every queue's and dead-letter queue's name.
fn names(topology: &Topology) -> Vec<String> {
    Queue::ALL
        .into_iter()
        .flat_map(|queue| [topology.name(queue), topology.dead_letter_name(queue)])
        .collect()
}

async fn sample(connection: &Connection, topology: &Topology) -> Result<(), lapin::Error> {
    let passive = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let mut channel = connection.create_channel().await?;
    for name in names(topology) {
        match channel
            .queue_declare(name.as_str().into(), passive, FieldTable::default())
            .await
        {
            Ok(queue) => DEPTH
                .with_label_values(&[name.as_str()])
                .set(i64::from(queue.message_count())),
            // Not declared yet (404 closes the channel): nothing to count.
            Err(_) if connection.status().connected() => {
                channel = connection.create_channel().await?;
            }
            Err(error) => return Err(error),
        }
    }
    let _ = channel.close(200, "sampled".into()).await;
    Ok(())
}

/// Reads the depth of every queue every [`DEPTH_INTERVAL`] until `shutdown`,
/// reconnecting after a failure.
pub fn spawn_depth_sampler(
    settings: RabbitSettings,
    topology: Topology,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    register();
    tokio::spawn(async move {
        let mut connection: Option<Connection> = None;
        loop {
            if connection.is_none() {
                let opened = tokio::time::timeout(
                    settings.timeout,
                    Connection::connect(
                        &settings.url,
                        ConnectionProperties::default()
                            .with_connection_name("muckard-queue-depth".into()),
                    ),
                )
                .await;
                match opened {
                    Ok(Ok(opened)) => connection = Some(opened),
                    Ok(Err(error)) => tracing::debug!(%error, "queue depth: cannot connect"),
                    Err(_) => tracing::debug!("queue depth: connecting timed out"),
                }
            }
            if let Some(open) = &connection {
                if let Err(error) = sample(open, &topology).await {
                    tracing::debug!(%error, "queue depth: cannot read the queues");
                    connection = None;
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(DEPTH_INTERVAL) => {}
            }
        }
        if let Some(open) = connection {
            let _ = open.close(200, "shutting down".into()).await;
        }
    })
}
