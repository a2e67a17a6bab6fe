//! `kafka`: the Kafka mirror against the raw producer, and its
//! commit-to-acknowledged latency under a steady load.
//!
//! 1. Seeds N events (as `projection` does) and loads them once into
//!    memory as the mirror would send them (envelope, key, headers).
//! 2. **Raw**: one producer with the mirror's own configuration sends
//!    those N messages as fast as librdkafka takes them and awaits every
//!    acknowledgement: the broker's and the client's limit.
//! 3. **Mirror**: `KafkaMirror` catches up on the same N events from its
//!    checkpoint at zero through `SubscriberRunner::catch_up` (reading the
//!    log, publishing, awaiting the acks, moving the checkpoint).
//! 4. **Latency**: the mirror runs as in production (`run`, woken by
//!    `LISTEN/NOTIFY`) while single-event transactions commit at a fixed
//!    rate, open loop. An event's latency is from its commit returning to
//!    the first poll (every 1 ms) that sees the mirror's checkpoint at or
//!    past it, which moves only after the broker acknowledged: an upper
//!    bound on commit-to-acknowledged.
//!
//! Each part publishes to topics of its own (`bench<random>.<part>.`),
//! deleted at the end.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, ensure, Result};
use chrono::Utc;
use clap::Args;
use event_log::Position;
use event_log::{LogReader, RecordedEvent, SubscriberRunner, SubscriberSettings};
use kafka_mirror::envelope::{headers, Envelope};
use kafka_mirror::{provision, KafkaMirror, KafkaSettings, MIRROR_SUBSCRIBER};
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::Serialize;
use sqlx::PgPool;
use tokio::sync::{mpsc, Mutex, Semaphore};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::harness::{Report, Run, RunSettings};
use crate::seed::SeedPlan;
use crate::stats::{rate, Percentiles};
use crate::table::{latency_row, Table};

#[derive(Args, Clone, Debug)]
pub struct KafkaArgs {
    #[command(flatten)]
    pub server: crate::ServerArgs,

    /// The broker (a local tansu by default; scripts/bench starts it).
    #[arg(
        long,
        env = "KAFKA_BOOTSTRAP_SERVERS",
        default_value = "127.0.0.1:9092"
    )]
    pub bootstrap_servers: String,

    /// Events to seed and publish, raw and through the mirror.
    #[arg(long, default_value_t = 200_000)]
    pub events: u64,

    /// Events per mirror batch (`KAFKA_MIRROR_BATCH_SIZE`).
    #[arg(long, default_value_t = 1_000)]
    pub batch_size: i64,

    /// Events committed per second during the latency measurement.
    #[arg(long, default_value_t = 1_000.0)]
    pub rate: f64,

    /// Seconds of steady load during the latency measurement.
    #[arg(long, default_value_t = 20.0)]
    pub duration: f64,

    /// Where to write the JSON results.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/results/kafka.json"))]
    pub output: PathBuf,
}

#[derive(Debug, Serialize)]
struct Results {
    bootstrap_servers: String,
    events: u64,
    batch_size: i64,
    mean_message_bytes: f64,
    raw: Throughput,
    mirror: Throughput,
    mirror_to_raw_ratio: f64,
    latency: Latency,
}

#[derive(Debug, Serialize)]
pub(crate) struct Throughput {
    pub(crate) events: u64,
    pub(crate) seconds: f64,
    pub(crate) events_per_second: f64,
}

#[derive(Debug, Serialize)]
struct Latency {
    target_rate: f64,
    achieved_rate: f64,
    committed: u64,
    failed: u64,
    commit: Option<Percentiles>,
    commit_to_acknowledged: Option<Percentiles>,
}

pub async fn run(args: KafkaArgs) -> Result<()> {
    ensure!(args.events >= 1_000, "--events must be at least 1000");
    ensure!(args.batch_size >= 1, "--batch-size must be at least 1");
    ensure!(
        args.rate.is_finite() && args.rate > 0.0,
        "--rate must be greater than 0"
    );
    ensure!(
        args.duration.is_finite() && args.duration > 0.0,
        "--duration must be greater than 0"
    );
    let title = format!(
        "muckard-bench kafka: {} events to {}, mirror batch {}",
        args.events, args.bootstrap_servers, args.batch_size
    );
    let settings = RunSettings::new(title, &args.server, 24, &args.output);
    // Each part's topics are named after the run (`bench<random>.<part>.`).
    let run_id = format!("bench{}", &Uuid::new_v4().simple().to_string()[..8]);
    crate::harness::run_and_clean_up(
        settings,
        async |run: &mut Run| measure(&args, &run.pool, &run_id).await,
        delete_topics(&args.bootstrap_servers, &run_id),
    )
    .await
}

fn settings(args: &KafkaArgs, prefix: &str) -> Result<KafkaSettings> {
    let env: HashMap<&str, String> = HashMap::from([
        ("KAFKA_BOOTSTRAP_SERVERS", args.bootstrap_servers.clone()),
        ("KAFKA_TOPIC_PREFIX", prefix.to_string()),
        ("KAFKA_MIRROR_BATCH_SIZE", args.batch_size.to_string()),
    ]);
    KafkaSettings::from_lookup(&|name| env.get(name).cloned()).map_err(|e| anyhow!("{e}"))
}

pub(crate) async fn provision_topics(settings: &KafkaSettings) -> Result<()> {
    let admin: Arc<AdminClient<DefaultClientContext>> =
        Arc::new(settings.client_config().create()?);
    provision(
        &admin,
        &settings.layout.specs(),
        settings.replication_factor,
        Duration::from_secs(15),
    )
    .await
    .map_err(|e| anyhow!("provisioning topics: {e}"))?;
    Ok(())
}

async fn measure(args: &KafkaArgs, pool: &PgPool, run_id: &str) -> Result<Results> {
    // The seed's proportions (users, keys, bots, fills, portfolio trades).
    let plan = SeedPlan::new(
        args.events,
        (args.events / 1000).max(10),
        (args.events / 500).max(20),
        1.0,
    )?;
    eprintln!("seeding {} events", plan.events());
    let seed = crate::seed::seed(pool, &plan).await?;
    eprintln!("  {:.1} s", seed.seconds);

    let events = load_log(pool, args.batch_size).await?;
    ensure!(
        events.len() as u64 == plan.events(),
        "read {} events, seeded {}",
        events.len(),
        plan.events()
    );
    let bytes: usize = events
        .iter()
        .map(|e| {
            serde_json::to_vec(&Envelope::of(e))
                .map(|v| v.len())
                .unwrap_or(0)
        })
        .sum();
    let mean_message_bytes = bytes as f64 / events.len() as f64;

    eprintln!("raw: {} messages through one producer", events.len());
    let raw_settings = settings(args, &format!("{run_id}.raw."))?;
    provision_topics(&raw_settings).await?;
    let raw = raw_publish(&raw_settings, &events).await?;
    eprintln!(
        "  {:.1} s ({:.0} events/s)",
        raw.seconds, raw.events_per_second
    );
    drop(events);

    eprintln!("mirror: catch-up from zero");
    let mirror_settings = settings(args, &format!("{run_id}.mirror."))?;
    provision_topics(&mirror_settings).await?;
    let mirror = mirror_catch_up(pool, &mirror_settings).await?;
    eprintln!(
        "  {:.1} s ({:.0} events/s)",
        mirror.seconds, mirror.events_per_second
    );

    eprintln!("latency: {} events/s for {} s", args.rate, args.duration);
    let latency_settings = settings(args, &format!("{run_id}.latency."))?;
    provision_topics(&latency_settings).await?;
    let latency = steady_latency(pool, &latency_settings, args).await?;

    Ok(Results {
        bootstrap_servers: args.bootstrap_servers.clone(),
        events: plan.events(),
        batch_size: args.batch_size,
        mean_message_bytes,
        mirror_to_raw_ratio: mirror.events_per_second / raw.events_per_second,
        raw,
        mirror,
        latency,
    })
}

async fn load_log(pool: &PgPool, batch_size: i64) -> Result<Vec<RecordedEvent>> {
    let reader = LogReader::new();
    let mut after = Position::default();
    let mut events = Vec::new();
    loop {
        let batch = reader
            .read_after(pool, after, batch_size.max(1_000))
            .await?;
        let Some(last) = batch.last() else {
            return Ok(events);
        };
        after = last.position;
        events.extend(batch);
    }
}

/// Sends every message as fast as the producer's queue takes them, then
/// waits for every acknowledgement.
async fn raw_publish(settings: &KafkaSettings, events: &[RecordedEvent]) -> Result<Throughput> {
    let producer: FutureProducer = settings.producer_config().create()?;
    // Serialised beforehand: this is the producer's and the broker's rate.
    let messages: Vec<(String, Vec<u8>, &RecordedEvent)> = events
        .iter()
        .map(|event| {
            let topic = settings
                .layout
                .topic_for(&event.event_type)
                .ok_or_else(|| anyhow!("no topic for {}", event.event_type))?;
            Ok((topic, serde_json::to_vec(&Envelope::of(event))?, event))
        })
        .collect::<Result<_>>()?;
    let started = Instant::now();
    let mut deliveries = Vec::with_capacity(messages.len());
    for (topic, value, event) in &messages {
        loop {
            let record = FutureRecord::to(topic)
                .key(event.aggregate_id.as_bytes())
                .payload(value)
                .headers(headers(event))
                .timestamp(event.recorded_at.timestamp_millis());
            match producer.send_result(record) {
                Ok(delivery) => {
                    deliveries.push(delivery);
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err((error, _)) => return Err(error.into()),
            }
        }
    }
    let results = futures::future::join_all(deliveries).await;
    let seconds = started.elapsed().as_secs_f64();
    let failed = results.iter().filter(|r| !matches!(r, Ok(Ok(_)))).count();
    ensure!(failed == 0, "{failed} raw messages were not acknowledged");
    Ok(Throughput {
        events: messages.len() as u64,
        seconds,
        events_per_second: rate(messages.len() as u64, started.elapsed()),
    })
}

/// A runner for the mirror, with the role's batch size.
fn mirror_runner(
    pool: &PgPool,
    settings: &KafkaSettings,
    shutdown: &CancellationToken,
) -> SubscriberRunner {
    SubscriberRunner::new(
        pool.clone(),
        LogReader::new(),
        SubscriberSettings {
            batch_size: settings.batch_size,
            ..SubscriberSettings::default()
        },
        shutdown.clone(),
    )
}

pub(crate) async fn mirror_catch_up(pool: &PgPool, settings: &KafkaSettings) -> Result<Throughput> {
    let shutdown = CancellationToken::new();
    let runner = mirror_runner(pool, settings, &shutdown);
    let mirror = KafkaMirror::new(settings.producer_config(), settings.layout.clone())?;
    let started = Instant::now();
    let handled = runner
        .catch_up(&mirror)
        .await
        .map_err(|e| anyhow!("mirror catch-up: {e}"))?;
    let elapsed = started.elapsed();
    shutdown.cancel();
    Ok(Throughput {
        events: handled,
        seconds: elapsed.as_secs_f64(),
        events_per_second: rate(handled, elapsed),
    })
}

/// Streams the latency events are appended to, each a `Bot` aggregate.
const STREAMS: usize = 64;

async fn steady_latency(
    pool: &PgPool,
    settings: &KafkaSettings,
    args: &KafkaArgs,
) -> Result<Latency> {
    // Start the mirror at the head: only the new events are measured.
    let head = LogReader::new().head(pool).await?;
    sqlx::query(
        "INSERT INTO subscriber_checkpoints (subscriber, transaction_id, global_position) \
         VALUES ($1, $2::text::xid8, $3) ON CONFLICT (subscriber) DO UPDATE \
         SET transaction_id = EXCLUDED.transaction_id, global_position = EXCLUDED.global_position",
    )
    .bind(MIRROR_SUBSCRIBER)
    .bind(head.transaction_text())
    .bind(head.global_position)
    .execute(pool)
    .await?;
    let shutdown = CancellationToken::new();
    let runner = mirror_runner(pool, settings, &shutdown);
    let mirror = Arc::new(KafkaMirror::new(
        settings.producer_config(),
        settings.layout.clone(),
    )?);
    // A new producer's first batch waits for its connection, the topics'
    // metadata and its producer id (0.5-1 s against tansu): a start-up
    // cost that is not the steady latency. One event mirrored first pays it.
    let warm_up = Mutex::new((Uuid::new_v4(), 0));
    append_one(pool, &warm_up).await?;
    runner
        .catch_up(mirror.as_ref())
        .await
        .map_err(|e| anyhow!("warming the mirror up: {e}"))?;
    let mirror_task = tokio::spawn(runner.run(mirror, shutdown.clone()));

    let (committed_tx, committed_rx) = mpsc::unbounded_channel::<(Position, Instant)>();
    let poller = tokio::spawn(poll_acknowledged(pool.clone(), committed_rx));

    let streams: Arc<Vec<Mutex<(Uuid, i64)>>> = Arc::new(
        (0..STREAMS)
            .map(|_| Mutex::new((Uuid::new_v4(), 0)))
            .collect(),
    );
    let in_flight = Arc::new(Semaphore::new(256));
    // Wakes the mirror after commits, as the command side does.
    let notifier = event_log::notify::CommitNotifier::spawn(pool.clone());
    let total = (args.rate * args.duration).round() as u64;
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut tasks = tokio::task::JoinSet::new();
    let started = Instant::now();
    for n in 0..total {
        ticker.tick().await;
        let permit = in_flight.clone().acquire_owned().await?;
        let (pool, streams, committed_tx) = (pool.clone(), streams.clone(), committed_tx.clone());
        let notifier = notifier.clone();
        tasks.spawn(async move {
            let _permit = permit;
            let began = Instant::now();
            let appended = append_one(&pool, &streams[n as usize % STREAMS]).await;
            let done = Instant::now();
            if let Ok(position) = &appended {
                notifier.committed();
                let _ = committed_tx.send((*position, done));
            }
            appended.map(|_| done - began)
        });
    }
    drop(committed_tx);
    let mut commit_times = Vec::new();
    let mut failed = 0u64;
    while let Some(outcome) = tasks.join_next().await {
        match outcome {
            Ok(Ok(elapsed)) => commit_times.push(elapsed),
            _ => failed += 1,
        }
    }
    let achieved = rate(commit_times.len() as u64, started.elapsed());
    let acknowledged = poller.await??;
    shutdown.cancel();
    let _ = mirror_task.await;
    Ok(Latency {
        target_rate: args.rate,
        achieved_rate: achieved,
        committed: commit_times.len() as u64,
        failed,
        commit: Percentiles::of(&commit_times),
        commit_to_acknowledged: Percentiles::of(&acknowledged),
    })
}

/// One `bot.trade_triggered` event in its own transaction, as the command
/// side appends one; returns where it stands.
async fn append_one(pool: &PgPool, stream: &Mutex<(Uuid, i64)>) -> Result<Position> {
    let mut stream = stream.lock().await;
    let (bot_id, sequence) = (stream.0, stream.1 + 1);
    let payload = serde_json::json!({
        "type": "bot.trade_triggered",
        "trigger_id": Uuid::new_v4(),
        "requested_by": Uuid::new_v4(),
        "at": Utc::now(),
    });
    let metadata = serde_json::json!({
        "command_id": Uuid::new_v4(), "command_type": "bot.trigger_trade", "source": "bench",
        "correlation_id": Uuid::new_v4(), "causation_id": Uuid::new_v4(),
    });
    let (transaction, global_position): (String, i64) = sqlx::query_as(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         VALUES ('Bot', $1, $2, 'bot.trade_triggered', '1.0', $3, $4) \
         RETURNING transaction_id::text, global_position",
    )
    .bind(bot_id.to_string())
    .bind(sequence)
    .bind(payload)
    .bind(metadata)
    .fetch_one(pool)
    .await?;
    stream.1 = sequence;
    Ok(Position::from_columns(&transaction, global_position)?)
}

/// Resolves committed positions as the mirror's checkpoint passes them.
async fn poll_acknowledged(
    pool: PgPool,
    mut committed: mpsc::UnboundedReceiver<(Position, Instant)>,
) -> Result<Vec<Duration>> {
    let mut pending: Vec<(Position, Instant)> = Vec::new();
    let mut latencies = Vec::new();
    let mut open = true;
    let mut drain_deadline: Option<Instant> = None;
    let mut ticker = tokio::time::interval(Duration::from_millis(1));
    loop {
        ticker.tick().await;
        while open {
            match committed.try_recv() {
                Ok(item) => pending.push(item),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => open = false,
            }
        }
        if !pending.is_empty() {
            let (transaction, global_position): (String, i64) = sqlx::query_as(
                "SELECT transaction_id::text, global_position FROM subscriber_checkpoints WHERE subscriber = $1",
            )
            .bind(MIRROR_SUBSCRIBER)
            .fetch_one(&pool)
            .await?;
            let checkpoint = Position::from_columns(&transaction, global_position)?;
            let now = Instant::now();
            pending.retain(|(position, committed_at)| {
                if *position <= checkpoint {
                    latencies.push(now - *committed_at);
                    false
                } else {
                    true
                }
            });
        }
        if !open {
            if pending.is_empty() {
                return Ok(latencies);
            }
            let deadline = *drain_deadline.get_or_insert(Instant::now() + Duration::from_secs(60));
            ensure!(
                Instant::now() < deadline,
                "{} events were not acknowledged within 60 s of the last commit",
                pending.len()
            );
        }
    }
}

async fn delete_topics(bootstrap: &str, run_id: &str) {
    let Ok(admin) = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create::<AdminClient<DefaultClientContext>>()
    else {
        return;
    };
    let mut names = Vec::new();
    for part in ["raw", "mirror", "latency"] {
        for topic in [
            "user.events",
            "onboarding.events",
            "kraken.events",
            "trading.events",
            "support.events",
        ] {
            names.push(format!("{run_id}.{part}.{topic}"));
        }
    }
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let _ = admin
        .delete_topics(
            &names,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await;
}

impl Report for Results {
    const BENCHMARK: &'static str = "kafka";

    fn print(&self) {
        println!();
        println!(
            "{} events, mean message {:.0} bytes, broker {}",
            self.events, self.mean_message_bytes, self.bootstrap_servers
        );
        let mut publishers = Table::new(["publisher", "events", "seconds", "events/s"]);
        for (name, t) in [
            ("raw rdkafka producer (baseline)", &self.raw),
            ("Kafka mirror (catch-up)", &self.mirror),
        ] {
            publishers.row([
                name.to_string(),
                t.events.to_string(),
                format!("{:.2}", t.seconds),
                format!("{:.0}", t.events_per_second),
            ]);
        }
        publishers.print_markdown();
        println!("mirror / raw: {:.3}", self.mirror_to_raw_ratio);
        let l = &self.latency;
        println!(
            "\nsteady load: target {:.0}/s, achieved {:.1}/s, {} committed, {} failed",
            l.target_rate, l.achieved_rate, l.committed, l.failed
        );
        let mut latencies = Table::new(["", "samples", "p50 ms", "p90 ms", "p99 ms", "max ms"]);
        for (name, p) in [
            ("commit (INSERT + COMMIT)", &l.commit),
            ("commit → acknowledged", &l.commit_to_acknowledged),
        ] {
            if let Some(p) = p {
                latencies.row(latency_row(name, p));
            }
        }
        latencies.print_markdown();
    }
}
