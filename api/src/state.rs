//! What every handler shares.

use std::sync::Arc;

use command_side::crypto::SecretBox;
use command_side::exchange::Exchange;
use command_side::{CommandSide, CommandSideSettings};
use sqlx::PgPool;

use crate::auth::JwtKeys;
use crate::config::Settings;

#[derive(Clone)]
pub struct AppState {
    pub commands: Arc<CommandSide>,
    pub jwt: Arc<JwtKeys>,
    pub settings: Arc<Settings>,
    pub readiness: Arc<crate::ready::Readiness>,
    pub rate_limiter: Arc<crate::rate_limit::RateLimiter>,
}

impl AppState {
    pub fn pool(&self) -> &PgPool {
        &self.commands.pool
    }
}

/// Starts the workers of the roles `settings.roles` asks for (projector,
/// kafka-mirror, publisher, runner); they stop when `shutdown` is
/// cancelled. None of them waits for a broker: they connect in the
/// background.
pub fn start_workers(
    state: &AppState,
    shutdown: tokio_util::sync::CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    let subscriber_settings = projections::SubscriberSettings {
        batch_size: state.settings.projector_batch_size,
        poll_interval: state.settings.projector_poll_interval,
        ..projections::SubscriberSettings::default()
    };
    let mut workers = Vec::new();
    if state.settings.roles.projector {
        workers.extend(projections::workers::spawn_projectors(
            state.commands.clone(),
            subscriber_settings.clone(),
            shutdown.clone(),
        ));
    }
    if state.settings.roles.kafka_mirror {
        workers.push(kafka_mirror::spawn_mirror(
            state.pool().clone(),
            state.settings.kafka.clone(),
            subscriber_settings.clone(),
            shutdown.clone(),
        ));
    }
    workers.extend(start_messaging_workers(
        state,
        subscriber_settings,
        shutdown,
    ));
    workers
}

/// The RabbitMQ settings of this service.
pub fn rabbit_settings(settings: &Settings) -> messaging::RabbitSettings {
    messaging::RabbitSettings::new(
        settings.rabbitmq_url.expose().clone(),
        settings.rabbitmq_queue_prefix.clone(),
    )
}

/// The publisher and runner roles.
fn start_messaging_workers(
    state: &AppState,
    subscriber_settings: projections::SubscriberSettings,
    shutdown: tokio_util::sync::CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    let roles = state.settings.roles;
    let mut workers = Vec::new();
    if roles.publisher {
        workers.push(messaging::publisher::spawn_publisher(
            state.commands.pool.clone(),
            rabbit_settings(&state.settings),
            subscriber_settings,
            shutdown.clone(),
        ));
    }
    if roles.runner {
        workers.extend(bot_runner::spawn_runner(
            state.commands.clone(),
            state.commands.settings.exchange.clone(),
            rabbit_settings(&state.settings),
            bot_runner::RunnerSettings {
                tick: state.settings.runner_tick,
                ..bot_runner::RunnerSettings::default()
            },
            shutdown,
        ));
    }
    workers
}

/// The exchange `settings` names, with timeouts, retries and a circuit
/// breaker around every call.
pub fn exchange_from_settings(settings: &Settings) -> anyhow::Result<Arc<dyn Exchange>> {
    use bot_runner::resilience::{CallPolicy, ResilientExchange};
    let policy = CallPolicy {
        timeout: settings.exchange_timeout,
        ..CallPolicy::default()
    };
    Ok(match settings.exchange {
        crate::config::ExchangeKind::Paper => Arc::new(ResilientExchange::new(
            command_side::exchange::PaperExchange::with_seed(settings.paper_seed),
            policy,
        )),
        crate::config::ExchangeKind::Kraken => Arc::new(ResilientExchange::new(
            bot_runner::kraken::KrakenExchange::new(
                &settings.kraken_api_url,
                settings.exchange_timeout,
            )?,
            policy,
        )),
    })
}

/// Creates the database if it is missing, applies the migrations and
/// returns a pool on it.
pub async fn prepare_database(settings: &Settings) -> anyhow::Result<PgPool> {
    let url = settings.database_url.expose();
    command_side::database::ensure_database_exists(url).await?;
    let pool = command_side::database::connect(url, settings.database_max_connections).await?;
    command_side::database::migrate(&pool).await?;
    Ok(pool)
}

/// Builds the state on a prepared pool, trading through `exchange`.
pub fn build_state(
    settings: Settings,
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
            secrets: Arc::new(secrets),
            exchange,
        },
    );
    crate::metrics::init();
    Ok(AppState {
        readiness: Arc::new(crate::ready::Readiness::new(&settings)),
        rate_limiter: Arc::new(crate::rate_limit::RateLimiter::new(
            settings.rate_limit.clone(),
        )),
        commands: Arc::new(commands),
        jwt: Arc::new(JwtKeys::new(
            settings.jwt_secret.expose(),
            settings.access_token_ttl,
        )),
        settings: Arc::new(settings),
    })
}
