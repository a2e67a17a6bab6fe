//! The runner role: one active runner per database and queue prefix.
//!
//! The active runner holds a PostgreSQL session advisory lock (as the
//! active instance of a subscriber does), resumes the running bots' loops
//! from the log and consumes the command queues; other runner processes
//! stand by and take over when its session ends, so each running bot has
//! exactly one trading loop however many runner processes run.
//!
//! Each queue's consumer runs in a task the supervisor restarts, with
//! back-off, whenever it ends. An active runner whose consumer has not
//! served for `serve_deadline` (it cannot reach RabbitMQ, or it is stuck)
//! stops its loops and gives the lock up, then waits `RETAKE_PAUSE` before
//! trying to take it again, so a standby that can serve takes over: within
//! `serve_deadline` + `HEALTH_CHECK` + 2 × `STOP_GRACE` (its tasks, then the
//! lock's session) + `LOCK_CHECK` + the standby's connect, 10 s with the
//! defaults. A runner whose supervisor dies drops the lock's
//! session with it, and its tasks stop with it.

use std::sync::Arc;
use std::time::Duration;

use command_side::CommandSide;
use exchange::Exchange;
use messaging::{Queue, RabbitSettings};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::consumer::{ConsumerHealth, QueueConsumer};
use crate::handling::CommandHandler;
use crate::settings::RunnerSettings;
use crate::trader::Trader;

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
/// How often the active runner looks at its consumers' health.
const HEALTH_CHECK: Duration = Duration::from_millis(250);
/// How long an active runner that stands down waits for its tasks before
/// it releases the lock anyway.
const STOP_GRACE: Duration = Duration::from_secs(1);
/// How long a runner that gave up its lock waits before it tries to take
/// it again: longer than `LOCK_CHECK`, so a standby gets it first.
const RETAKE_PAUSE: Duration = Duration::from_secs(5);

/// Why the active runner let its lock go.
#[derive(Debug, PartialEq)]
enum Release {
    Shutdown,
    LostSession,
    NotServing,
}

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
        // Dropped with this future (the supervisor aborted): its tasks stop.
        let _stop_active = active.clone().drop_guard();
        let (tasks, health) = start_active(
            commands.clone(),
            exchange.clone(),
            rabbit.clone(),
            settings.clone(),
            active.clone(),
        );
        let release = hold(lock, &shutdown, &health, settings.serve_deadline, || {
            active.cancel();
            tasks
        })
        .await;
        if release == Release::NotServing {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(RETAKE_PAUSE) => {}
            }
        }
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

/// Holds the lock until `shutdown`, until its session dies (another runner
/// may then have taken over), or until a consumer has not served for
/// `serve_deadline`. Then stops the active tasks (`stop` cancels them and
/// hands them over), waits up to `STOP_GRACE` for them, and only then
/// releases the lock, so two runners' loops do not overlap.
async fn hold(
    mut lock: sqlx::PgConnection,
    shutdown: &CancellationToken,
    health: &[Arc<ConsumerHealth>],
    serve_deadline: Duration,
    stop: impl FnOnce() -> Vec<JoinHandle<()>>,
) -> Release {
    use sqlx::Connection;
    let mut last_ping = tokio::time::Instant::now();
    let release = loop {
        tokio::select! {
            _ = shutdown.cancelled() => break Release::Shutdown,
            _ = tokio::time::sleep(HEALTH_CHECK) => {}
        }
        if let Some(stuck) = health
            .iter()
            .find(|consumer| consumer.not_serving_for() > serve_deadline)
        {
            tracing::error!(
                queue = stuck.queue.base_name(),
                not_serving_ms = stuck.not_serving_for().as_millis() as u64,
                "a bot command consumer cannot serve; giving up the runner lock"
            );
            break Release::NotServing;
        }
        if last_ping.elapsed() >= LOCK_CHECK {
            last_ping = tokio::time::Instant::now();
            if lock.ping().await.is_err() {
                tracing::warn!("lost the runner lock's session; standing by");
                break Release::LostSession;
            }
        }
    };
    let tasks = stop();
    let _ = tokio::time::timeout(STOP_GRACE, futures::future::join_all(tasks)).await;
    let _ = tokio::time::timeout(STOP_GRACE, lock.close()).await;
    release
}

/// The active runner's tasks (resuming the running bots, and a supervised
/// consumer per command queue), and the consumers' health.
fn start_active(
    commands: Arc<CommandSide>,
    exchange: Arc<dyn Exchange>,
    rabbit: RabbitSettings,
    settings: RunnerSettings,
    active: CancellationToken,
) -> (Vec<JoinHandle<()>>, Vec<Arc<ConsumerHealth>>) {
    let trader = Trader::new(commands.clone(), exchange, settings.tick, active.clone());
    let mut tasks = vec![tokio::spawn(resume(trader.clone(), active.clone()))];
    let handler = Arc::new(CommandHandler::new(commands, trader));
    let mut health = Vec::new();
    for queue in Queue::COMMANDS {
        let consumer = Arc::new(QueueConsumer::new(
            queue,
            handler.clone(),
            rabbit.clone(),
            settings.clone(),
        ));
        health.push(consumer.health());
        tasks.push(tokio::spawn(supervise_consumer(
            consumer,
            settings.max_backoff,
            active.clone(),
        )));
    }
    (tasks, health)
}

async fn resume(trader: Arc<Trader>, active: CancellationToken) {
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
}

/// Runs a queue's consumer, restarting it with back-off whenever it ends
/// (a panic included) before `active` is cancelled.
async fn supervise_consumer(
    consumer: Arc<QueueConsumer>,
    max_backoff: Duration,
    active: CancellationToken,
) {
    let first_pause = Duration::from_millis(100);
    let mut pause = first_pause;
    loop {
        let started = tokio::time::Instant::now();
        let mut run = tokio::spawn(consumer.clone().run(active.clone()));
        let ended = tokio::select! {
            _ = active.cancelled() => {
                // The consumer stops on the same token; a stuck one is cut off.
                if tokio::time::timeout(STOP_GRACE, &mut run).await.is_err() {
                    run.abort();
                }
                return;
            }
            ended = &mut run => ended,
        };
        if active.is_cancelled() {
            return;
        }
        match ended {
            Err(error) if error.is_panic() => tracing::error!(
                panic = %crate::lanes::panic_message(error.into_panic().as_ref()),
                "a bot command consumer panicked; restarting it"
            ),
            _ => tracing::error!("a bot command consumer ended; restarting it"),
        }
        if started.elapsed() > Duration::from_secs(30) {
            pause = first_pause;
        }
        tokio::select! {
            _ = active.cancelled() => return,
            _ = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(max_backoff);
    }
}
