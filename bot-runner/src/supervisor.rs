//! The runner role: one active runner per database and queue prefix.
//!
//! The active runner holds a PostgreSQL session advisory lock (as the
//! active instance of a subscriber does), resumes the running bots' loops
//! from the log and consumes the command queues; other runner processes
//! stand by and take over when its session ends, so each running bot has
//! exactly one trading loop however many runner processes run.

use std::sync::Arc;
use std::time::Duration;

use command_side::CommandSide;
use exchange::Exchange;
use messaging::RabbitSettings;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::consumer::CommandConsumer;
use crate::trader::Trader;

#[derive(Debug, Clone)]
pub struct RunnerSettings {
    /// How often a threshold bot looks at the price.
    pub tick: Duration,
    /// Unacknowledged messages per consumer channel.
    pub prefetch: u16,
    /// The longest pause between reconnection attempts.
    pub max_backoff: Duration,
}

impl Default for RunnerSettings {
    fn default() -> Self {
        Self {
            tick: Duration::from_secs(5),
            prefetch: 16,
            max_backoff: Duration::from_secs(10),
        }
    }
}

/// Starts the runner role. One runner is active per database and queue
/// prefix (it holds a PostgreSQL session advisory lock); others stand by
/// and take over when its session ends. The active one resumes the running
/// bots' loops, then consumes the command queues until `shutdown`. Never
/// blocks: with RabbitMQ down it retries in the background.
pub fn spawn_runner(
    commands: Arc<CommandSide>,
    exchange: Arc<dyn Exchange>,
    rabbit: RabbitSettings,
    settings: RunnerSettings,
    shutdown: CancellationToken,
) -> Vec<JoinHandle<()>> {
    vec![tokio::spawn(supervise(
        commands, exchange, rabbit, settings, shutdown,
    ))]
}

/// How often a standby runner tries to become the active one, and how
/// often the active one checks that its lock's session is alive.
const LOCK_CHECK: Duration = Duration::from_secs(2);

async fn supervise(
    commands: Arc<CommandSide>,
    exchange: Arc<dyn Exchange>,
    rabbit: RabbitSettings,
    settings: RunnerSettings,
    shutdown: CancellationToken,
) {
    let key = runner_lock_key(&rabbit.queue_prefix);
    while !shutdown.is_cancelled() {
        let lock = match take_lock(&commands.pool, key).await {
            Ok(Some(lock)) => lock,
            Ok(None) => {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(LOCK_CHECK) => continue,
                }
            }
            Err(error) => {
                tracing::warn!(error = %error, "cannot reach the database to take the runner lock");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(LOCK_CHECK) => continue,
                }
            }
        };
        tracing::info!("bot runner active");
        let active = shutdown.child_token();
        let tasks = start_active(
            commands.clone(),
            exchange.clone(),
            rabbit.clone(),
            settings.clone(),
            active.clone(),
        );
        hold(lock, &shutdown).await;
        active.cancel();
        futures::future::join_all(tasks).await;
    }
}

/// The advisory lock key of the runner on `queue_prefix`.
pub fn runner_lock_key(queue_prefix: &str) -> i64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("muckard.bot_runner.{queue_prefix}").as_bytes());
    i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

async fn take_lock(
    pool: &sqlx::PgPool,
    key: i64,
) -> Result<Option<sqlx::PgConnection>, sqlx::Error> {
    use sqlx::ConnectOptions;
    let mut connection = pool.connect_options().connect().await?;
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(key)
        .fetch_one(&mut connection)
        .await?;
    Ok(locked.then_some(connection))
}

/// Returns at `shutdown` (releasing the lock) or when the lock's session
/// died, since another runner may then have taken over.
async fn hold(mut lock: sqlx::PgConnection, shutdown: &CancellationToken) {
    use sqlx::Connection;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => {
                let _ = lock.close().await;
                return;
            }
            _ = tokio::time::sleep(LOCK_CHECK) => {
                if lock.ping().await.is_err() {
                    tracing::warn!("lost the runner lock's session; standing by");
                    return;
                }
            }
        }
    }
}

/// The active runner's tasks: resuming the running bots, and the consumer.
fn start_active(
    commands: Arc<CommandSide>,
    exchange: Arc<dyn Exchange>,
    rabbit: RabbitSettings,
    settings: RunnerSettings,
    active: CancellationToken,
) -> Vec<JoinHandle<()>> {
    let trader = Trader::new(commands.clone(), exchange, settings.tick, active.clone());
    let resume = {
        let (trader, active) = (trader.clone(), active.clone());
        tokio::spawn(async move {
            let mut pause = Duration::from_millis(200);
            while !active.is_cancelled() {
                match trader.resume_running_bots().await {
                    Ok(resumed) => {
                        tracing::info!(resumed, "running bots resumed");
                        return;
                    }
                    Err(error) => {
                        tracing::warn!(error = %error, "cannot resume running bots yet");
                        tokio::select! {
                            _ = active.cancelled() => return,
                            _ = tokio::time::sleep(pause) => {}
                        }
                        pause = (pause * 2).min(Duration::from_secs(10));
                    }
                }
            }
        })
    };
    let consumer = Arc::new(CommandConsumer::new(commands, trader, rabbit, settings));
    vec![resume, tokio::spawn(consumer.run(active))]
}
