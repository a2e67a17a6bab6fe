//! How the binary puts the service together: the database, the exchange,
//! the HTTP state with its readiness probes, and the workers of each role.

use std::sync::Arc;
use std::time::Duration;

use api::ready::{DependencyProbe, Readiness};
use api::AppState;
use command_side::crypto::SecretBox;
use command_side::process_manager::TradeRecorder;
use command_side::{CommandSide, CommandSideSettings};
use event_log::{LogReader, Subscriber, SubscriberRunner, SubscriberSettings};
use exchange::{CallPolicy, Exchange, KrakenExchange, PaperExchange, ResilientExchange};
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::settings::{ExchangeKind, Settings};

/// Creates the database if it is missing, applies the migrations and
/// returns a pool on it.
pub async fn prepare_database(settings: &Settings) -> anyhow::Result<PgPool> {
    let url = settings.database_url.expose();
    command_side::database::ensure_database_exists(url).await?;
    let pool = command_side::database::connect(url, settings.database_max_connections).await?;
    command_side::database::migrate(&pool).await?;
    Ok(pool)
}

/// The exchange `settings` names, with timeouts, retries and a circuit
/// breaker around every call.
pub fn exchange_from_settings(settings: &Settings) -> anyhow::Result<Arc<dyn Exchange>> {
    let policy = CallPolicy {
        timeout: settings.exchange_timeout,
        ..CallPolicy::default()
    };
    Ok(match settings.exchange {
        ExchangeKind::Paper => Arc::new(ResilientExchange::new(
            PaperExchange::with_seed(settings.paper_seed),
            policy,
        )),
        ExchangeKind::Kraken => Arc::new(ResilientExchange::new(
            KrakenExchange::new(&settings.kraken_api_url, settings.exchange_timeout)?,
            policy,
        )),
    })
}

/// The command side and the HTTP state on a prepared pool, trading through
/// `exchange`.
pub fn build_state(
    settings: &Settings,
    pool: PgPool,
    exchange: Arc<dyn Exchange>,
) -> anyhow::Result<AppState> {
    let secrets = SecretBox::new(settings.encryption_key.expose())?;
    let commands = CommandSide::new(
        pool,
        CommandSideSettings {
            snapshot_every: settings.snapshot_every,
            max_attempts: settings.command_max_attempts,
            aggregate_cache_size: settings.aggregate_cache_size,
            append_batch_max: settings.append_batch_max,
            password_hashing: settings.password_hashing,
            login_backoff: settings.login_backoff,
            secrets: Arc::new(secrets),
            exchange,
        },
    );
    init_metrics();
    Ok(AppState::new(
        Arc::new(commands),
        api::caller::JwtKeys::new(settings.jwt_secret.expose(), settings.access_token_ttl),
        settings.http.clone(),
        readiness(settings),
    ))
}

/// Registers every metric of this process so that `/metrics` shows zeros
/// before the first request, command or publish.
fn init_metrics() {
    api::metrics::init();
    kafka_mirror::metrics();
    messaging::metrics();
}

/// `/ready` probes the brokers this process's roles use: Kafka for the
/// mirror, RabbitMQ for the publisher and the runner.
fn readiness(settings: &Settings) -> Readiness {
    let roles = settings.roles;
    let kafka = roles.kafka_mirror.then(|| {
        Box::new(KafkaProbe(kafka_mirror::health::BrokerProbe::new(
            &settings.kafka,
        ))) as Box<dyn DependencyProbe>
    });
    let rabbitmq = (roles.publisher || roles.runner).then(|| {
        Box::new(RabbitProbe(messaging::health::RabbitProbe::new(
            rabbit_settings(settings),
        ))) as Box<dyn DependencyProbe>
    });
    Readiness::new(settings.ready_check_timeout, kafka, rabbitmq)
}

struct KafkaProbe(kafka_mirror::health::BrokerProbe);

#[async_trait::async_trait]
impl DependencyProbe for KafkaProbe {
    async fn check(&self, timeout: Duration) -> Result<(), String> {
        self.0.check(timeout).await.map(|_| ())
    }
}

struct RabbitProbe(messaging::health::RabbitProbe);

#[async_trait::async_trait]
impl DependencyProbe for RabbitProbe {
    async fn check(&self, timeout: Duration) -> Result<(), String> {
        self.0.check(timeout).await.map(|_| ())
    }
}

/// The RabbitMQ settings of this service.
pub fn rabbit_settings(settings: &Settings) -> messaging::RabbitSettings {
    messaging::RabbitSettings::new(
        settings.rabbitmq_url.expose().clone(),
        settings.rabbitmq_queue_prefix.clone(),
    )
}

/// Every subscriber of the projector role: the read models' projectors and
/// the trade process manager.
pub fn projector_role(commands: Arc<CommandSide>) -> Vec<Arc<dyn Subscriber>> {
    let mut subscribers = projections::read_models::all();
    subscribers.push(Arc::new(TradeRecorder { commands }));
    subscribers
}

/// Starts the projector role's subscribers; they stop when `shutdown` is
/// cancelled, finishing the batch in hand.
pub fn spawn_projectors(
    commands: Arc<CommandSide>,
    settings: SubscriberSettings,
    shutdown: CancellationToken,
) -> Vec<JoinHandle<()>> {
    let runner = SubscriberRunner::new(
        commands.pool.clone(),
        LogReader::new(),
        settings,
        shutdown.clone(),
    );
    projector_role(commands)
        .into_iter()
        .map(|subscriber| tokio::spawn(runner.clone().run(subscriber, shutdown.clone())))
        .collect()
}

/// Starts the workers of the roles `settings.roles` asks for (projector,
/// kafka-mirror, publisher, runner); they stop when `shutdown` is
/// cancelled, finishing the batch in hand. None of them waits for a
/// broker: they connect in the background.
pub fn start_workers(
    settings: &Settings,
    state: &AppState,
    shutdown: CancellationToken,
) -> Vec<JoinHandle<()>> {
    let subscriber_settings = SubscriberSettings {
        batch_size: settings.projector_batch_size,
        poll_interval: settings.projector_poll_interval,
        ..SubscriberSettings::default()
    };
    let roles = settings.roles;
    let pool = state.pool().clone();
    let mut workers = Vec::new();
    if roles.projector {
        workers.extend(spawn_projectors(
            state.commands.clone(),
            subscriber_settings.clone(),
            shutdown.clone(),
        ));
    }
    if roles.kafka_mirror {
        workers.push(kafka_mirror::spawn_mirror(
            pool.clone(),
            settings.kafka.clone(),
            subscriber_settings.clone(),
            shutdown.clone(),
        ));
    }
    if roles.publisher {
        workers.push(messaging::publisher::spawn_publisher(
            pool,
            rabbit_settings(settings),
            subscriber_settings,
            shutdown.clone(),
        ));
    }
    if roles.runner {
        workers.extend(bot_runner::spawn_runner(
            state.commands.clone(),
            state.commands.settings.exchange.clone(),
            rabbit_settings(settings),
            bot_runner::RunnerSettings {
                tick: settings.runner_tick,
                ..bot_runner::RunnerSettings::default()
            },
            shutdown,
        ));
    }
    workers
}
