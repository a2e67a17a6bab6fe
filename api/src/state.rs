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
}

impl AppState {
    pub fn pool(&self) -> &PgPool {
        &self.commands.pool
    }
}

/// Starts the background roles `settings.roles` asks for (the projectors,
/// the Kafka mirror); they stop when `shutdown` is cancelled.
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
            subscriber_settings,
            shutdown,
        ));
    }
    workers
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
            secrets: Arc::new(secrets),
            exchange,
        },
    );
    Ok(AppState {
        commands: Arc::new(commands),
        jwt: Arc::new(JwtKeys::new(
            settings.jwt_secret.expose(),
            settings.access_token_ttl,
        )),
        settings: Arc::new(settings),
    })
}
