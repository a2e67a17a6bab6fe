//! The bot command consumers: one per queue (`bot.start`, `bot.stop`,
//! `bot.trigger_trade`), each on a connection and channel of its own with
//! its own prefetch, so a flood on one queue never holds up another.
//!
//! A delivery is inspected first (control characters, the schema): one
//! that fails is dead-lettered at once. The rest go to their bot's lane
//! ([`crate::lanes`]): one bot's messages run in order, different bots'
//! concurrently, within a bound per queue and a share per user. The
//! command runs in a task of its own, so a panic in it is a failure of
//! that message only: like an unexpected error, it is recorded as
//! `bot.error` on the bot and counted as a failed attempt.
//!
//! A message is acknowledged only once the command it leads to is stored
//! (or found already stored, see [`crate::handling`]). One that cannot be
//! carried out is published to the queue's dead-letter queue with
//! `x-death-reason`, then acknowledged. A transient failure (database down,
//! a lost race) puts it back after a second, as often as it takes. An
//! unexpected failure or a panic is tried again, the attempt counted in
//! `x-muckard-attempts` on a copy sent to the back of the queue, and
//! dead-lettered (`failed N times: …`) at `max_attempts`.
//!
//! Each consumer reports when it last served ([`ConsumerHealth`]); the
//! supervisor restarts one that stops and gives up the runner's lock when
//! one cannot serve.

use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection};
use messaging::{MessagingError, Queue, RabbitSettings, Topology};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::handling::{CommandHandler, Refusal};
use crate::lanes::{panic_message, Lanes};
use crate::settings::RunnerSettings;
use crate::wire::{inspect, Inspected};

/// The header naming why a message was dead-lettered.
pub use messaging::link::DEATH_REASON_HEADER;
/// The header counting the failed attempts at a message.
pub const ATTEMPTS_HEADER: &str = "x-muckard-attempts";

/// How often a consumer that is serving says so.
const HEARTBEAT: Duration = Duration::from_millis(500);

/// When a queue's consumer last served (was consuming and alive).
pub struct ConsumerHealth {
    pub queue: Queue,
    last_served: std::sync::Mutex<Instant>,
}

impl ConsumerHealth {
    fn new(queue: Queue) -> Self {
        Self {
            queue,
            last_served: std::sync::Mutex::new(Instant::now()),
        }
    }

    fn beat(&self) {
        *self.last_served.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    /// How long since the consumer last served (since it was created, if
    /// it never has).
    pub fn not_serving_for(&self) -> Duration {
        self.last_served
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed()
    }
}

/// What became of a message.
#[derive(Debug, PartialEq)]
enum Disposition {
    Done,
    DeadLetter(String),
    /// Put back as it is, for another try.
    Retry(String),
    /// Sent again with this many failed attempts counted.
    RetryCounted {
        attempts: u32,
        reason: String,
    },
}

pub(crate) struct QueueConsumer {
    queue: Queue,
    handler: Arc<CommandHandler>,
    rabbit: RabbitSettings,
    topology: Topology,
    settings: RunnerSettings,
    lanes: Arc<Lanes>,
    health: Arc<ConsumerHealth>,
}

/// Where a consumer publishes dead letters and counted retries (a channel
/// in confirm mode).
#[derive(Clone)]
struct Outlet {
    channel: Channel,
    timeout: Duration,
}

impl QueueConsumer {
    pub(crate) fn new(
        queue: Queue,
        handler: Arc<CommandHandler>,
        rabbit: RabbitSettings,
        settings: RunnerSettings,
    ) -> Self {
        Self {
            queue,
            handler,
            topology: rabbit.topology(),
            rabbit,
            lanes: Lanes::new(settings.max_concurrent, settings.per_user_share),
            health: Arc::new(ConsumerHealth::new(queue)),
            settings,
        }
    }

    pub(crate) fn health(&self) -> Arc<ConsumerHealth> {
        self.health.clone()
    }

    /// Consumes until `shutdown`, reconnecting with back-off.
    pub(crate) async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let first_pause = Duration::from_millis(100);
        let mut pause = first_pause;
        while !shutdown.is_cancelled() {
            let consumed = tokio::select! {
                _ = shutdown.cancelled() => return,
                consumed = self.consume(&shutdown, &mut pause) => consumed,
            };
            if let Err(error) = consumed {
                tracing::warn!(queue = self.queue.base_name(), error = %error, retry_in_ms = pause.as_millis() as u64, "bot command consumer lost rabbitmq; reconnecting");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
            }
            pause = (pause * 2).min(self.settings.max_backoff);
        }
    }

    async fn connect(&self) -> Result<(Connection, Channel, Outlet), MessagingError> {
        let timeout = self.rabbit.timeout;
        let name = format!("muckard-bot-runner-{}", self.queue.base_name());
        let (connection, channel, outlet) = messaging::link::open_consumer(
            &self.rabbit,
            &self.topology,
            &name,
            self.settings.prefetch,
        )
        .await?;
        Ok((
            connection,
            channel,
            Outlet {
                channel: outlet,
                timeout,
            },
        ))
    }

    /// Consumes until the connection breaks (an error) or `shutdown`.
    async fn consume(
        self: &Arc<Self>,
        shutdown: &CancellationToken,
        pause: &mut Duration,
    ) -> Result<(), MessagingError> {
        let (connection, channel, outlet) = self.connect().await?;
        let mut deliveries = channel
            .basic_consume(
                self.topology.name(self.queue).as_str().into(),
                format!(
                    "muckard-runner-{}-{}",
                    self.queue.base_name(),
                    Uuid::new_v4().simple()
                )
                .as_str()
                .into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        *pause = Duration::from_millis(100);
        self.health.beat();
        tracing::info!(prefix = %self.rabbit.queue_prefix, queue = self.queue.base_name(), "consuming bot commands");
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => {
                    let _ = tokio::time::timeout(
                        self.rabbit.timeout,
                        connection.close(200, "shutting down".into()),
                    )
                    .await;
                    return Ok(());
                }
                _ = heartbeat.tick() => {
                    if !connection.status().connected() {
                        return Err(MessagingError::Closed("the connection closed"));
                    }
                    self.health.beat();
                }
                next = deliveries.next() => match next {
                    Some(Ok(delivery)) => {
                        self.accept(delivery, &outlet).await?;
                        self.health.beat();
                    }
                    Some(Err(error)) => return Err(error.into()),
                    None => return Err(MessagingError::Closed("the consumer was cancelled")),
                },
            }
        }
    }

    /// Dead-letters a delivery that cannot be read, and hands the others to
    /// their bot's lane.
    async fn accept(
        self: &Arc<Self>,
        delivery: Delivery,
        outlet: &Outlet,
    ) -> Result<(), MessagingError> {
        let inspected = match inspect(&delivery.properties, &delivery.data) {
            Ok(inspected) => inspected,
            Err(reason) => {
                tracing::warn!(queue = self.queue.base_name(), reason = %reason, "message dead-lettered");
                self.dead_letter(&delivery, &reason, outlet).await?;
                delivery.ack(BasicAckOptions::default()).await?;
                return Ok(());
            }
        };
        let mut inspected = inspected;
        let bot_id = inspected.message.bot_id;
        let user_id = inspected.message.user_id.unwrap_or(bot_id);
        // A child of the span whose event became this message; the events
        // the command appends carry this span's context on.
        let span = tracing::info_span!(
            "process",
            otel.name = %format!("bot runner {}", self.queue.base_name()),
            otel.kind = "consumer",
            queue = self.queue.base_name(),
            bot_id = %bot_id,
            message_id = tracing::field::Empty,
        );
        event_log::trace::continue_trace(&span, inspected.metadata.traceparent.as_deref());
        if let Some(traceparent) = event_log::trace::traceparent_of(&span) {
            inspected.metadata.traceparent = Some(traceparent);
        }
        let job = self
            .clone()
            .process(delivery, inspected, outlet.clone())
            .instrument(span);
        self.lanes.dispatch(bot_id, user_id, Box::pin(job));
        Ok(())
    }

    async fn process(self: Arc<Self>, delivery: Delivery, inspected: Inspected, outlet: Outlet) {
        let message_id = inspected
            .metadata
            .idempotency_key
            .clone()
            .unwrap_or_default();
        tracing::Span::current().record("message_id", message_id.as_str());
        let disposition = self.dispose(&delivery, inspected).await;
        if let Err(error) = self.settle(&delivery, disposition, &outlet).await {
            // The broker redelivers an unacknowledged message; its command
            // is idempotent.
            tracing::warn!(error = %error, "cannot settle the message; rabbitmq will redeliver it");
        }
    }

    /// Carries the message out in a task of its own, so that a panic in it
    /// is this message's failure, recorded on its bot.
    async fn dispose(&self, delivery: &Delivery, inspected: Inspected) -> Disposition {
        let bot_id = inspected.message.bot_id;
        let (handler, queue) = (self.handler.clone(), self.queue);
        let outcome =
            match tokio::spawn(async move { handler.carry_out(queue, inspected).await }).await {
                Ok(Err(Refusal::Unexpected(reason))) => {
                    let reason = format!("{} failed: {reason}", self.queue.base_name());
                    Err(Refusal::Unexpected(reason))
                }
                Ok(outcome) => outcome,
                Err(error) if error.is_panic() => {
                    let reason = format!(
                        "{} panicked: {}",
                        self.queue.base_name(),
                        panic_message(error.into_panic().as_ref())
                    );
                    tracing::error!(%bot_id, reason = %reason, "a bot command panicked");
                    Err(Refusal::Unexpected(reason))
                }
                Err(error) => Err(Refusal::Transient(error.to_string())),
            };
        match outcome {
            Ok(()) => Disposition::Done,
            Err(Refusal::Permanent(reason)) => Disposition::DeadLetter(reason),
            Err(Refusal::Transient(reason)) => Disposition::Retry(reason),
            Err(Refusal::Unexpected(reason)) => {
                // Each failed attempt shows on the bot, for its owner.
                self.handler.record_failure(bot_id, &reason).await;
                let attempts = attempts_before(delivery) + 1;
                if attempts >= self.settings.max_attempts {
                    Disposition::DeadLetter(format!("failed {attempts} times: {reason}"))
                } else {
                    Disposition::RetryCounted { attempts, reason }
                }
            }
        }
    }

    async fn settle(
        &self,
        delivery: &Delivery,
        disposition: Disposition,
        outlet: &Outlet,
    ) -> Result<(), MessagingError> {
        match disposition {
            Disposition::Done => {
                delivery.ack(BasicAckOptions::default()).await?;
            }
            Disposition::DeadLetter(reason) => {
                tracing::warn!(reason = %reason, "message dead-lettered");
                self.dead_letter(delivery, &reason, outlet).await?;
                delivery.ack(BasicAckOptions::default()).await?;
            }
            Disposition::Retry(reason) => {
                tracing::warn!(reason = %reason, "message put back for another try");
                tokio::time::sleep(Duration::from_secs(1)).await;
                delivery
                    .nack(BasicNackOptions {
                        requeue: true,
                        ..BasicNackOptions::default()
                    })
                    .await?;
            }
            Disposition::RetryCounted { attempts, reason } => {
                tracing::warn!(reason = %reason, attempts, "message failed; trying it again");
                tokio::time::sleep(Duration::from_secs(1)).await;
                let mut headers = delivery.properties.headers().clone().unwrap_or_default();
                headers.insert(ATTEMPTS_HEADER.into(), AMQPValue::LongUInt(attempts));
                let properties = delivery.properties.clone().with_headers(headers);
                let queue = self.topology.name(self.queue);
                outlet.publish(&queue, &delivery.data, properties).await?;
                delivery.ack(BasicAckOptions::default()).await?;
            }
        }
        Ok(())
    }

    /// Publishes the message, unchanged but for the reason headers, to the
    /// queue's dead-letter queue, and waits for RabbitMQ to confirm it.
    async fn dead_letter(
        &self,
        delivery: &Delivery,
        reason: &str,
        outlet: &Outlet,
    ) -> Result<(), MessagingError> {
        messaging::link::dead_letter(
            &outlet.channel,
            outlet.timeout,
            &self.topology,
            self.queue,
            delivery,
            reason,
        )
        .await
    }
}

impl Outlet {
    /// Publishes persistently to `queue` and waits for the confirm.
    async fn publish(
        &self,
        queue: &str,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<(), MessagingError> {
        messaging::link::publish_confirmed(&self.channel, queue, body, properties, self.timeout)
            .await
    }
}

/// The failed attempts before this delivery: counted in its header, or one
/// when the broker redelivers a message never counted (its consumer went
/// away before settling it, maybe because of it).
fn attempts_before(delivery: &Delivery) -> u32 {
    let counted = delivery.properties.headers().as_ref().and_then(|headers| {
        match headers.inner().get(ATTEMPTS_HEADER)? {
            AMQPValue::LongUInt(n) => Some(*n),
            AMQPValue::LongLongInt(n) => u32::try_from(*n).ok(),
            AMQPValue::LongInt(n) => u32::try_from(*n).ok(),
            AMQPValue::ShortUInt(n) => Some(u32::from(*n)),
            AMQPValue::ShortShortUInt(n) => Some(u32::from(*n)),
            _ => None,
        }
    });
    counted.unwrap_or(u32::from(delivery.redelivered))
}
