//! Commit-to-read-model lag under a steady command load.
//!
//! The projector role runs as in production (`spawn_projectors`, woken by
//! `LISTEN/NOTIFY`, polling every 500 ms otherwise). Commands go through the
//! real `CommandSide` at a fixed rate, open loop: each is its own task, so a
//! slow command does not delay the next. When a command returns its
//! position, it is handed to one poller task that reads
//! `subscriber_checkpoints` every ~2 ms and resolves every pending command
//! whose position a subscriber's checkpoint has reached. The lag of a
//! command is (the poll that saw it reached) − (the command returning):
//! an upper bound, late by at most one poll interval plus the query.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use chrono::Utc;
use command_side::crypto::SecretBox;
use command_side::{CommandMetadata, CommandSide, CommandSideSettings};
use domain::bot::BotCommand;
use domain::services::KeyStatus;
use domain::SecretString;
use domain::{Actor, Decimal, Pair, Strategy};
use event_log::Position;
use event_log::{LogReader, SubscriberSettings};
use exchange::PaperExchange;
use projections::read_models;
use rand::RngCore;
use serde::Serialize;
use sqlx::PgPool;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::stats::{rate, Percentiles};

/// A password the command side accepts.
const PASSWORD: &str = "correct horse battery";
/// A base64 secret of 64 bytes, shaped like Kraken's, that the paper
/// exchange accepts.
const GOOD_SECRET: &str =
    "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg==";
/// The pool size the service runs with by default (`DATABASE_MAX_CONNECTIONS`).
const POOL_SIZE: u32 = 20;
/// The command side's defaults (`SNAPSHOT_EVERY`, `COMMAND_MAX_ATTEMPTS`).
const SNAPSHOT_EVERY: usize = 50;
const MAX_ATTEMPTS: u32 = 8;
/// Commands in flight at most; beyond it the load falls behind its rate
/// (and the achieved rate shows it).
const MAX_IN_FLIGHT: usize = 256;
/// How often the poller reads the checkpoints.
const POLL_EVERY: Duration = Duration::from_millis(2);
/// How long, after the last command, the poller waits for the subscribers.
const DRAIN_BOUND: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct LagSettings {
    pub rate: f64,
    pub duration: Duration,
    pub bots: u32,
    pub batch_size: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LagReport {
    pub command: &'static str,
    pub target_rate: f64,
    pub duration_seconds: f64,
    pub bots: u32,
    pub users: u32,
    /// Events in the log when the load started.
    pub log_events_at_start: i64,
    pub issued: u64,
    pub committed: u64,
    pub failed: u64,
    pub first_failure: Option<String>,
    /// Committed commands per second, from the first command issued to the
    /// last one returned.
    pub achieved_rate: f64,
    pub command_latency: Option<Percentiles>,
    pub poll_interval_ms: f64,
    pub polls: u64,
    pub poll_query: Option<Percentiles>,
    /// Per read model: commit-to-checkpoint lag of every committed command.
    pub subscribers: Vec<SubscriberLag>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SubscriberLag {
    pub subscriber: &'static str,
    pub lag: Option<Percentiles>,
    /// Commands the subscriber had not reached when the poller gave up.
    pub unresolved: usize,
}

/// Runs the load against the database at `database_url`, whose log may
/// already hold events (read models caught up or not: the projectors catch
/// up before the load starts).
pub async fn measure(database_url: &str, settings: &LagSettings) -> Result<LagReport> {
    let pool = command_side::database::connect(database_url, POOL_SIZE)
        .await
        .context("connecting the lag measurement's pool")?;
    start_trade_recorder_at_head(&pool).await?;
    let commands = Arc::new(command_side(pool.clone())?);
    let shutdown = CancellationToken::new();
    let workers = muckard::wiring::spawn_projectors(
        commands.clone(),
        SubscriberSettings {
            batch_size: settings.batch_size,
            ..SubscriberSettings::default()
        },
        shutdown.clone(),
    );
    let result = measure_with(&pool, commands, settings).await;
    shutdown.cancel();
    for worker in workers {
        let _ = tokio::time::timeout(Duration::from_secs(5), worker).await;
    }
    result
}

/// The trade recorder turns fills into portfolio commands. A seeded log
/// already holds the portfolio events its fills would produce, so the
/// recorder starts at the head instead of replaying them as commands.
async fn start_trade_recorder_at_head(pool: &PgPool) -> Result<()> {
    let head = LogReader::new()
        .head(pool)
        .await
        .context("reading the head of the log")?;
    sqlx::query(
        "INSERT INTO subscriber_checkpoints (subscriber, transaction_id, global_position) \
         VALUES ('trade_recorder', $1::text::xid8, $2) \
         ON CONFLICT (subscriber) DO UPDATE \
         SET transaction_id = EXCLUDED.transaction_id, global_position = EXCLUDED.global_position",
    )
    .bind(head.transaction_text())
    .bind(head.global_position)
    .execute(pool)
    .await
    .context("moving the trade recorder's checkpoint to the head")?;
    Ok(())
}

/// A command side as the service builds it: paper exchange, a random
/// 32-byte data key, the default snapshot and retry settings.
pub(crate) fn command_side(pool: PgPool) -> Result<CommandSide> {
    let mut key = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut key);
    let secrets = SecretBox::new(&key).context("making the secret box")?;
    Ok(CommandSide::new(
        pool,
        CommandSideSettings {
            snapshot_every: SNAPSHOT_EVERY,
            max_attempts: MAX_ATTEMPTS,
            aggregate_cache_size: 10_000,
            append_batch_max: 64,
            password_hashing: Default::default(),
            login_backoff: Default::default(),
            secrets: Arc::new(secrets),
            exchange: Arc::new(PaperExchange::new()),
            strategy_limits: domain::StrategyLimits::default(),
            // 200 commands/s over 20 bots for 20 s is 200 triggers a bot:
            // within the highest per-minute quota, which the lag is not about.
            trigger_quotas: domain::TriggerQuotas::new(
                domain::TriggerQuotas::MAX_PER_MINUTE,
                domain::TriggerQuotas::MAX_PENDING,
            )
            .map_err(|reason| anyhow::anyhow!(reason))?,
            max_bots_per_user: 20,
            accounts: command_side::accounts::AccountSettings::development(
                std::env::temp_dir().join("muckard-outbox"),
            ),
            shared_state: None,
        },
    ))
}

pub(crate) fn metadata(actor: Actor, command_type: &str) -> CommandMetadata {
    CommandMetadata::new("bench", Some(actor)).with_command_type(command_type)
}

/// A running bot and its owner.
#[derive(Debug, Clone, Copy)]
struct RunningBot {
    owner: Uuid,
    bot: Uuid,
}

async fn measure_with(
    pool: &PgPool,
    commands: Arc<CommandSide>,
    settings: &LagSettings,
) -> Result<LagReport> {
    let bots = create_running_bots(&commands, settings.bots).await?;
    let users = bots.len().div_ceil(2) as u32;
    wait_for_projectors(pool).await?;
    let log_events_at_start: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(pool)
        .await
        .context("counting events")?;
    eprintln!(
        "  {} bots running; {} commands/s for {:.0} s",
        bots.len(),
        settings.rate,
        settings.duration.as_secs_f64()
    );

    let subscribers: Vec<&'static str> = read_models::names();
    let (positions, pending) = mpsc::unbounded_channel();
    let give_up = CancellationToken::new();
    let poller = tokio::spawn(poll_checkpoints(
        pool.clone(),
        subscribers.clone(),
        pending,
        give_up.clone(),
    ));

    let load = run_load(&commands, &bots, settings, positions).await;
    // The poller ends once every command is resolved (its channel closed
    // with the load); give it a bound in case a subscriber stalls.
    let poller_result = tokio::select! {
        result = poller => result,
        _ = tokio::time::sleep(DRAIN_BOUND) => {
            give_up.cancel();
            bail!("the subscribers did not reach the last command within {DRAIN_BOUND:?}");
        }
    };
    let load = load?;
    let polled = poller_result.context("the checkpoint poller panicked")??;

    ensure!(
        load.committed > 0,
        "no command committed: {:?}",
        load.first_failure
    );
    Ok(LagReport {
        command: "trigger_bot_trade",
        target_rate: settings.rate,
        duration_seconds: settings.duration.as_secs_f64(),
        bots: bots.len() as u32,
        users,
        log_events_at_start,
        issued: load.issued,
        committed: load.committed,
        failed: load.failed,
        first_failure: load.first_failure,
        achieved_rate: rate(load.committed, load.window),
        command_latency: Percentiles::of(&load.latencies),
        poll_interval_ms: POLL_EVERY.as_secs_f64() * 1000.0,
        polls: polled.polls,
        poll_query: Percentiles::of(&polled.query_times),
        subscribers: subscribers
            .iter()
            .map(|name| {
                let lags = polled.lags.get(name).map(Vec::as_slice).unwrap_or_default();
                SubscriberLag {
                    subscriber: name,
                    lag: Percentiles::of(lags),
                    unresolved: polled.unresolved.get(name).copied().unwrap_or(0),
                }
            })
            .collect(),
    })
}

/// Users (two bots each), tested keys and running bots, through the
/// command side as the REST handlers and the bot runner drive it.
async fn create_running_bots(commands: &CommandSide, count: u32) -> Result<Vec<RunningBot>> {
    let mut bots = Vec::new();
    let strategy = Strategy::Dca {
        quote_amount: Decimal::new(2500, 2),
        interval_secs: 60,
    };
    let pair = Pair::parse("XBT/USD").context("parsing the pair")?;
    while bots.len() < count as usize {
        let n = bots.len() / 2;
        let email = format!("bench-{}@example.com", Uuid::new_v4().simple());
        let (user, _) = commands
            .register(
                &email,
                SecretString::new(PASSWORD),
                Some(format!("Bench {n}")),
                &CommandMetadata::new("bench", None).with_command_type("user.register"),
            )
            .await
            .context("registering a user")?;
        let actor = Actor::user(user);
        let (key, _) = commands
            .connect_key(
                actor,
                SecretString::new(format!("paper-key-bench-{n}")),
                SecretString::new(GOOD_SECRET),
                Some("main".to_string()),
                &metadata(actor, "kraken.connect_key"),
            )
            .await
            .context("connecting a key")?;
        let tested = commands
            .test_key(actor, key, &metadata(actor, "kraken.test_key"))
            .await
            .context("testing a key")?;
        ensure!(
            tested.status == KeyStatus::Tested,
            "the paper exchange failed the key test: {:?}",
            tested.failure
        );
        for _ in 0..2 {
            if bots.len() == count as usize {
                break;
            }
            let (bot, _) = commands
                .configure_bot(
                    actor,
                    key,
                    pair.clone(),
                    strategy.clone(),
                    &metadata(actor, "bot.configure"),
                )
                .await
                .context("configuring a bot")?;
            commands
                .request_bot_start(actor, bot, &metadata(actor, "bot.request_start"))
                .await
                .context("requesting a bot start")?;
            commands
                .execute_bot(
                    &bot.to_string(),
                    BotCommand::MarkStarted {
                        actor: Actor::System,
                        at: Utc::now(),
                    },
                    &metadata(Actor::System, "bot.mark_started"),
                )
                .await
                .context("marking a bot started")?;
            bots.push(RunningBot { owner: user, bot });
        }
    }
    Ok(bots)
}

/// Waits until every projector-role subscriber has handled the whole log.
async fn wait_for_projectors(pool: &PgPool) -> Result<()> {
    let head = LogReader::new()
        .head(pool)
        .await
        .context("reading the head of the log")?;
    let mut names: Vec<&str> = read_models::names();
    names.push("trade_recorder");
    for name in names {
        let reached =
            event_log::lag::wait_until_reached(pool, name, head, Duration::from_secs(600))
                .await
                .with_context(|| format!("waiting for {name}"))?;
        ensure!(
            reached,
            "{name} did not catch up with the log before the load"
        );
    }
    Ok(())
}

struct Load {
    issued: u64,
    committed: u64,
    failed: u64,
    first_failure: Option<String>,
    latencies: Vec<Duration>,
    window: Duration,
}

/// A committed command waiting for the subscribers.
#[derive(Debug, Clone, Copy)]
struct Committed {
    position: Position,
    returned: Instant,
}

/// Issues `trigger_bot_trade` round-robin over `bots` at `settings.rate`
/// for `settings.duration`, sending each committed position to the poller.
async fn run_load(
    commands: &Arc<CommandSide>,
    bots: &[RunningBot],
    settings: &LagSettings,
    positions: mpsc::UnboundedSender<Committed>,
) -> Result<Load> {
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / settings.rate));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut tasks = JoinSet::new();
    let started = Instant::now();
    let deadline = started + settings.duration;
    let mut issued = 0u64;
    loop {
        ticker.tick().await;
        if Instant::now() >= deadline {
            break;
        }
        let permit = in_flight
            .clone()
            .acquire_owned()
            .await
            .context("the in-flight limit closed")?;
        let RunningBot { owner, bot } = bots[issued as usize % bots.len()];
        issued += 1;
        let commands = commands.clone();
        let positions = positions.clone();
        tasks.spawn(async move {
            let _permit = permit;
            let actor = Actor::user(owner);
            let sent = Instant::now();
            let result = commands
                .trigger_bot_trade(actor, bot, &metadata(actor, "bot.trigger_trade"))
                .await;
            let returned = Instant::now();
            match result {
                Ok((_, position)) => {
                    let _ = positions.send(Committed { position, returned });
                    Ok((returned - sent, returned))
                }
                Err(error) => Err(error.to_string()),
            }
        });
    }
    drop(positions);

    let mut load = Load {
        issued,
        committed: 0,
        failed: 0,
        first_failure: None,
        latencies: Vec::with_capacity(issued as usize),
        window: Duration::ZERO,
    };
    let mut last_returned = started;
    while let Some(joined) = tasks.join_next().await {
        match joined.context("a command task panicked")? {
            Ok((latency, returned)) => {
                load.committed += 1;
                load.latencies.push(latency);
                last_returned = last_returned.max(returned);
            }
            Err(error) => {
                load.failed += 1;
                load.first_failure.get_or_insert(error);
            }
        }
    }
    load.window = last_returned - started;
    Ok(load)
}

struct Polled {
    lags: HashMap<&'static str, Vec<Duration>>,
    unresolved: HashMap<&'static str, usize>,
    polls: u64,
    query_times: Vec<Duration>,
}

/// The one poller: every `POLL_EVERY` it takes in newly committed
/// commands, reads the subscribers' checkpoints, and records the lag of
/// every pending command a checkpoint has reached. Ends when the command
/// channel is closed and nothing is pending, or on `give_up`.
async fn poll_checkpoints(
    pool: PgPool,
    subscribers: Vec<&'static str>,
    mut committed: mpsc::UnboundedReceiver<Committed>,
    give_up: CancellationToken,
) -> Result<Polled> {
    let names: Vec<String> = subscribers.iter().map(|name| name.to_string()).collect();
    let mut pending: HashMap<&'static str, Vec<Committed>> =
        subscribers.iter().map(|name| (*name, Vec::new())).collect();
    let mut polled = Polled {
        lags: subscribers.iter().map(|name| (*name, Vec::new())).collect(),
        unresolved: HashMap::new(),
        polls: 0,
        query_times: Vec::new(),
    };
    let mut ticker = tokio::time::interval(POLL_EVERY);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut closed = false;
    while !give_up.is_cancelled() {
        ticker.tick().await;
        loop {
            match committed.try_recv() {
                Ok(command) => {
                    for list in pending.values_mut() {
                        list.push(command);
                    }
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    closed = true;
                    break;
                }
            }
        }
        let waiting = pending.values().any(|list| !list.is_empty());
        if !waiting {
            if closed {
                break;
            }
            continue;
        }
        let asked = Instant::now();
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT subscriber, transaction_id::text, global_position \
               FROM subscriber_checkpoints WHERE subscriber = ANY($1)",
        )
        .bind(&names)
        .fetch_all(&pool)
        .await
        .context("reading the checkpoints")?;
        let seen = Instant::now();
        polled.polls += 1;
        polled.query_times.push(seen - asked);
        let mut checkpoints = HashMap::new();
        for (name, transaction, global_position) in rows {
            let transaction_id = transaction
                .parse()
                .with_context(|| format!("checkpoint of {name} has xid {transaction:?}"))?;
            checkpoints.insert(
                name,
                Position {
                    transaction_id,
                    global_position,
                },
            );
        }
        for name in &subscribers {
            let (Some(checkpoint), Some(list)) = (checkpoints.get(*name), pending.get_mut(name))
            else {
                continue;
            };
            let lags = polled.lags.entry(name).or_default();
            list.retain(|command| {
                if command.position <= *checkpoint {
                    lags.push(seen - command.returned);
                    false
                } else {
                    true
                }
            });
        }
    }
    polled.unresolved = pending
        .into_iter()
        .map(|(name, list)| (name, list.len()))
        .collect();
    Ok(polled)
}
