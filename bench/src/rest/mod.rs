//! `muckard-bench api`: the service measured from outside, over TCP.
//!
//! Spawns the release `muckard` binary (every role by default) on a fresh
//! database, makes users, keys and running bots through its REST API, then
//! measures, in one run:
//!
//! - command throughput at each `--clients` level, beside PostgreSQL's
//!   own limit at the same concurrency (single-event INSERT + COMMIT of an
//!   event row's size, into a plain table and through the log's chain
//!   trigger), and their ratios ([`throughput`]);
//! - command latency on a ~10-event stream against a 10,000-event one
//!   ([`stream`]);
//! - the query endpoints under 1,000 `wrk` connections while commands flow
//!   ([`queries`]);
//! - freshness: command accepted → read model updated → Kafka acknowledged
//!   ([`freshness`]);
//! - live: `GET /api/v1/stream` with one connection and with
//!   `--live-connections` while trades are triggered: commit → delivered,
//!   and the server's memory per connection ([`live`]).

mod client;
mod cpu;
mod freshness;
mod live;
mod queries;
mod server;
mod stream;
mod throughput;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use serde::Serialize;
use sqlx::PgPool;
use tokio::time::Instant;
use uuid::Uuid;

use crate::database::BenchDatabase;
use crate::harness::{Report, Run, RunSettings};
use crate::table::{latency_row, Table};
use crate::ServerArgs;
use client::{Api, SessionTimings};
use throughput::{Load, Mix};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Throughput,
    Stream,
    Queries,
    Freshness,
    Live,
}

#[derive(Args, Clone, Debug, Serialize)]
pub struct ApiArgs {
    #[command(flatten)]
    #[serde(skip)]
    pub server: ServerArgs,

    /// The `muckard` binary to spawn (scripts/bench builds it in release).
    #[arg(long, env = "MUCKARD_BIN")]
    pub muckard_bin: PathBuf,

    /// Roles of the spawned server (`muckard serve --roles`); the bots
    /// need the publisher and the runner to start.
    #[arg(long, default_value = "all")]
    pub roles: String,

    /// Roles of the server during the throughput measurement only (e.g.
    /// `api`: the command path without the subscribers and the bot
    /// runner); the server is restarted with them after the set-up, and
    /// with --roles again after. Default: --roles throughout.
    #[arg(long)]
    pub throughput_roles: Option<String>,

    /// Scale-out: this many `--roles api` processes behind the benchmark's
    /// client (each request goes to the next, in turn), and the other
    /// roles of --roles in one more process; all on the same database and
    /// brokers. 1: one process with every role of --roles.
    #[arg(long, default_value_t = 1)]
    pub api_processes: usize,

    /// The server's PostgreSQL pool (DATABASE_MAX_CONNECTIONS).
    #[arg(long, default_value_t = 20)]
    pub server_pool: u32,

    /// More settings for the server, NAME=VALUE (repeatable), e.g.
    /// SNAPSHOT_EVERY=100.
    #[arg(long = "server-env")]
    pub server_env: Vec<String>,

    /// Which measurements to make.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "throughput,stream,queries,freshness,live"
    )]
    pub phases: Vec<Phase>,

    /// Concurrent clients of the throughput measurement, one level each.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32,128")]
    pub clients: Vec<u32>,

    /// Seconds measured per level (after --warmup seconds not counted).
    #[arg(long, default_value_t = 15.0)]
    pub seconds: f64,

    #[arg(long, default_value_t = 3.0)]
    pub warmup: f64,

    /// Users to register (each with one tested key).
    #[arg(long, default_value_t = 64)]
    pub users: usize,

    /// Running bots per user: the aggregates the commands go to.
    #[arg(long, default_value_t = 4)]
    pub bots_per_user: usize,

    /// Every this many commands a client configures a new bot instead of
    /// triggering a trade.
    #[arg(long, default_value_t = 10)]
    pub configure_every: u64,

    /// Connections of the INSERT + COMMIT baseline at most (PostgreSQL's
    /// max_connections, 100 by default, is shared with the server's pool
    /// and everyone else's); more clients share them.
    #[arg(long, default_value_t = 32)]
    pub baseline_max_connections: u32,

    /// Events of the long stream in the stream-length measurement.
    #[arg(long, default_value_t = 10_000)]
    pub long_stream: i64,

    /// Commands measured on each of the short and the long stream.
    #[arg(long, default_value_t = 200)]
    pub stream_samples: usize,

    /// wrk connections of the queries-under-load measurement.
    #[arg(long, default_value_t = 1000)]
    pub query_connections: u32,

    #[arg(long, default_value_t = 30.0)]
    pub query_seconds: f64,

    /// REST command clients running beside the queries.
    #[arg(long, default_value_t = 8)]
    pub query_command_clients: u32,

    /// Commands per second of the freshness measurement (open loop).
    #[arg(long, default_value_t = 100.0)]
    pub freshness_rate: f64,

    #[arg(long, default_value_t = 20.0)]
    pub freshness_seconds: f64,

    /// Server-sent-event streams of the live measurement (spread over the
    /// users; the server is started allowing that many per user).
    #[arg(long, default_value_t = 1000)]
    pub live_connections: usize,

    /// Trades triggered per second while the streams are open.
    #[arg(long, default_value_t = 50.0)]
    pub live_rate: f64,

    #[arg(long, default_value_t = 20.0)]
    pub live_seconds: f64,

    #[arg(
        long,
        env = "KAFKA_BOOTSTRAP_SERVERS",
        default_value = "127.0.0.1:9092"
    )]
    pub bootstrap_servers: String,

    #[arg(
        long,
        env = "BENCH_RABBITMQ_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    #[serde(skip)]
    pub rabbitmq_url: String,

    /// Record the server with `perf record -g` during this throughput
    /// level into --perf-output (0: no profile).
    #[arg(long, default_value_t = 0)]
    pub perf_clients: u32,

    #[arg(long, default_value = "/tmp/muckard-bench-api.perf.data")]
    pub perf_output: PathBuf,

    /// Where to write the JSON results.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/results/api.json"))]
    pub output: PathBuf,

    /// Keep the benchmark database instead of dropping it.
    #[arg(long)]
    pub keep_database: bool,
}

#[derive(Debug, Serialize)]
struct Level {
    clients: u32,
    /// Single-event INSERT + COMMIT transactions/s into a plain table.
    baseline: Load,
    /// The same through the log's hash-chain trigger.
    chain: Load,
    /// REST commands/s.
    rest: Load,
    /// rest.per_second / baseline.per_second.
    ratio: f64,
    /// rest.per_second / chain.per_second.
    chain_ratio: f64,
    /// Transactions committed in the database per REST command during the
    /// REST interval (every role's, the subscribers' included).
    database_transactions_per_command: f64,
    /// Events appended per second in the measured interval by every
    /// source: the REST commands' and what they cause (the bot runner's
    /// fills, the process managers' commands), by `recorded_at`.
    events_per_second: f64,
    /// events_per_second / baseline.per_second.
    events_ratio: f64,
    /// CPU per operation by process, warm-up included (see `cpu`).
    baseline_cpu: cpu::CpuPerOperation,
    chain_cpu: cpu::CpuPerOperation,
    rest_cpu: cpu::CpuPerOperation,
    /// Seconds the subscribers and the bot runner took to settle after
    /// the previous load, before this level started.
    settle_seconds: f64,
}

#[derive(Debug, Serialize)]
struct Results {
    parameters: ApiArgs,
    sessions: Option<SessionTimings>,
    bots: usize,
    baseline_row_bytes: i64,
    throughput: Vec<Level>,
    stream_length: Option<stream::StreamLength>,
    queries_under_load: Option<queries::QueriesUnderLoad>,
    pgbench_queries: Option<queries::PgbenchQueries>,
    open_loop_queries: Option<queries::OpenLoop>,
    freshness: Option<freshness::Freshness>,
    live: Vec<live::LiveLevel>,
    profile: Option<PathBuf>,
    notes: Vec<String>,
}

pub async fn run(mut args: ApiArgs) -> Result<()> {
    if args.phases.contains(&Phase::Live)
        && !args
            .server_env
            .iter()
            .any(|e| e.starts_with("STREAM_MAX_CONNECTIONS_PER_USER="))
    {
        let per_user = args.live_connections.div_ceil(args.users.max(1)) + 1;
        args.server_env
            .push(format!("STREAM_MAX_CONNECTIONS_PER_USER={per_user}"));
    }
    anyhow::ensure!(
        args.users >= 1 && args.bots_per_user >= 1,
        "need a user and a bot"
    );
    anyhow::ensure!(
        args.configure_every >= 1,
        "--configure-every must be at least 1"
    );
    let run_id = format!("bench{}", &Uuid::new_v4().simple().to_string()[..8]);
    let title = format!(
        "muckard-bench api: run {run_id}, server {}",
        args.muckard_bin.display()
    );
    let settings =
        RunSettings::new(title, &args.server, 8, &args.output).keep_database(args.keep_database);
    crate::harness::run_and_clean_up(
        settings,
        async |run: &mut Run| measure(&args, run.database(), &run.pool, &run_id).await,
        clean_up_brokers(&args, &run_id),
    )
    .await
}

async fn measure(
    args: &ApiArgs,
    database: &BenchDatabase,
    pool: &PgPool,
    run_id: &str,
) -> Result<Results> {
    let mut servers = Servers {
        args,
        database_url: &database.url,
        run_id,
        current: Vec::new(),
    };
    let outcome = measure_server(args, database, pool, run_id, &mut servers).await;
    if outcome.is_err() {
        eprintln!(
            "the server's logs are in {}",
            server::Server::run_dir(run_id).display()
        );
    }
    servers.stop().await;
    server::forget_keys(run_id);
    let (results, notes) = outcome?;
    Ok(Results { notes, ..results })
}

/// The servers of the run, restarted with other roles when asked.
struct Servers<'a> {
    args: &'a ApiArgs,
    database_url: &'a str,
    run_id: &'a str,
    /// The API processes first, then the workers' process, if any.
    current: Vec<server::Server>,
}

/// `all` spelled out, as `muckard serve --roles` reads it.
const ALL_ROLES: &str = "api,projector,kafka-mirror,publisher,runner,notifier";

impl Servers<'_> {
    /// Stops the running servers, if any, and starts `roles`: in one
    /// process, or with --api-processes above 1, the API role in that many
    /// and the others in one more.
    async fn start(&mut self, roles: &str) -> Result<Api> {
        self.stop().await;
        let expanded = if roles.trim() == "all" {
            ALL_ROLES
        } else {
            roles
        };
        let wanted: Vec<&str> = expanded.split(',').map(str::trim).collect();
        let plan: Vec<String> = if self.args.api_processes > 1 && wanted.contains(&"api") {
            let workers: Vec<&str> = wanted.iter().copied().filter(|r| *r != "api").collect();
            let mut plan = vec!["api".to_string(); self.args.api_processes];
            if !workers.is_empty() {
                plan.push(workers.join(","));
            }
            plan
        } else {
            vec![roles.to_string()]
        };
        let mut api_urls = Vec::new();
        for roles in &plan {
            let server = server::Server::spawn(&server::ServerPlan {
                binary: &self.args.muckard_bin,
                database_url: self.database_url,
                roles,
                pool: self.args.server_pool,
                run_id: self.run_id,
                bootstrap_servers: &self.args.bootstrap_servers,
                rabbitmq_url: &self.args.rabbitmq_url,
                extra_env: &self.args.server_env,
            })
            .await?;
            eprintln!(
                "server ({roles}) pid {} at {} (log {})",
                server.pid,
                server.base_url,
                server.log.display()
            );
            if roles
                .split(',')
                .any(|role| matches!(role.trim(), "api" | "all"))
            {
                api_urls.push(server.base_url.clone());
            }
            self.current.push(server);
        }
        Api::balanced(&api_urls)
    }

    /// The first server's pid (the API process with --api-processes).
    fn pid(&self) -> Option<u32> {
        self.current.first().map(|server| server.pid)
    }

    /// Every server's pid.
    fn pids(&self) -> Vec<u32> {
        self.current.iter().map(|server| server.pid).collect()
    }

    async fn stop(&mut self) {
        for server in self.current.drain(..) {
            server.stop().await;
        }
    }
}

async fn measure_server(
    args: &ApiArgs,
    database: &BenchDatabase,
    pool: &PgPool,
    run_id: &str,
    servers: &mut Servers<'_>,
) -> Result<(Results, Vec<String>)> {
    let mut notes = Vec::new();
    if args.api_processes > 1 {
        notes.push(format!(
            "scale-out: {} `--roles api` processes, each command sent to the next in turn, and the \
             other roles in one more process; \"server\" CPU is all of them together; the wrk \
             query phase and the live streams go to the first API process only",
            args.api_processes
        ));
    }
    let mut api = servers.start(&args.roles).await?;
    eprintln!("registering {} users (argon2id, timed apart)", args.users);
    let (users, sessions) = client::make_users(&api, run_id, args.users, 4).await?;
    eprintln!(
        "  register {:.1}/s, login {:.1}/s; starting {} bots",
        sessions.registers_per_second,
        sessions.logins_per_second,
        users.len() * args.bots_per_user
    );
    let bots = client::make_running_bots(&api, &users, args.bots_per_user).await?;
    let mix = Mix {
        configure_every: args.configure_every,
    };
    let warmup = Duration::from_secs_f64(args.warmup);
    let seconds = Duration::from_secs_f64(args.seconds);
    eprintln!("warm-up: 8 clients for {:.0} s", args.warmup.max(3.0));
    throughput::rest(
        &api,
        &users,
        &bots,
        8,
        mix,
        Duration::ZERO,
        warmup.max(Duration::from_secs(3)),
    )
    .await?;

    let mut levels = Vec::new();
    let mut baseline_row_bytes = 0;
    let mut profile = None;
    if args.phases.contains(&Phase::Throughput) {
        let row = throughput::prepare_baseline(pool).await?;
        if let Some(roles) = &args.throughput_roles {
            settle_if(pool, true).await?;
            api = servers.start(roles).await?;
            notes.push(format!(
                "throughput measured with the server's roles {roles}; the rest with {}",
                args.roles
            ));
        }
        baseline_row_bytes = row.row_bytes;
        // A server without the subscribers leaves their checkpoints
        // behind: then only wait for the log to stop growing.
        let subscribers = args
            .throughput_roles
            .as_deref()
            .is_none_or(|roles| roles.split(',').any(|role| role.trim() != "api"));
        for &clients in &args.clients {
            let settle_seconds = settle_if(pool, subscribers).await?;
            let pids = servers.pids();
            let baseline_at = |table, what: &str| {
                eprintln!("{clients} clients: INSERT + COMMIT {what}");
                throughput::baseline(
                    table,
                    pool,
                    &pids,
                    &database.url,
                    &row,
                    clients,
                    args.baseline_max_connections,
                    warmup,
                    seconds,
                )
            };
            let (baseline, baseline_cpu) =
                baseline_at(throughput::Table::Plain, "baseline").await?;
            let (chain, chain_cpu) =
                baseline_at(throughput::Table::Chain, "through the chain trigger").await?;
            settle_if(pool, subscribers).await?;
            eprintln!("{clients} clients: REST commands");
            let profiler = match servers.pid() {
                Some(pid) if args.perf_clients == clients => {
                    Some(server::Profiler::start(pid, args.perf_output.clone())?)
                }
                _ => None,
            };
            let before = transactions(pool).await?;
            let cpu_before = cpu::sample(pool, &servers.pids()).await?;
            // The measured interval as `throughput::rest` times it (it
            // starts 200 ms from now, then warms up).
            let measured_from = database_now(pool).await?
                + chrono::Duration::milliseconds(200)
                + chrono::Duration::from_std(warmup)?;
            let rest = throughput::rest(&api, &users, &bots, clients, mix, warmup, seconds).await?;
            let cpu_after = cpu::sample(pool, &servers.pids()).await?;
            let after = transactions(pool).await?;
            let events_per_second =
                events_recorded(pool, measured_from, seconds).await? / seconds.as_secs_f64();
            let rest_cpu = cpu::per_operation(&cpu_before, &cpu_after, rest.completed_with_warmup);
            if let Some(profiler) = profiler {
                profile = Some(profiler.stop().await?);
            }
            let ratio = rest.per_second / baseline.per_second.max(1e-9);
            let chain_ratio = rest.per_second / chain.per_second.max(1e-9);
            eprintln!(
                "  baseline {:.0}/s, chain {:.0}/s, REST {:.0}/s, ratio {ratio:.3} (to the chain {chain_ratio:.3})",
                baseline.per_second, chain.per_second, rest.per_second
            );
            levels.push(Level {
                clients,
                database_transactions_per_command: (after - before) as f64
                    / (rest.completed.max(1)) as f64,
                events_per_second,
                events_ratio: events_per_second / baseline.per_second.max(1e-9),
                baseline,
                chain,
                rest,
                ratio,
                chain_ratio,
                baseline_cpu,
                chain_cpu,
                rest_cpu,
                settle_seconds,
            });
        }
        if args.throughput_roles.is_some() {
            api = servers.start(&args.roles).await?;
        }
    }

    // A later phase that fails is noted; the figures already made stay.
    let mut stream_length = None;
    if args.phases.contains(&Phase::Stream) {
        settle_or_note(pool, &mut notes).await;
        eprintln!(
            "stream length: growing a stream to {} events",
            args.long_stream
        );
        let users = &users[0];
        match stream::measure(&api, pool, users, 0, args.long_stream, args.stream_samples).await {
            Ok(measured) => stream_length = Some(measured),
            Err(error) => notes.push(format!("stream length not measured: {error:#}")),
        }
    }

    let mut queries_under_load = None;
    let mut pgbench_queries = None;
    let mut open_loop_queries = None;
    if args.phases.contains(&Phase::Queries) {
        settle_or_note(pool, &mut notes).await;
        eprintln!(
            "queries: wrk with {} connections for {:.0} s, {} command clients beside",
            args.query_connections, args.query_seconds, args.query_command_clients
        );
        let script = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/wrk/queries.lua"));
        let targets = std::env::temp_dir().join(format!("muckard-bench-{run_id}-targets.txt"));
        let measured = queries::measure(
            &api,
            &users,
            &bots,
            &script,
            &targets,
            args.query_connections,
            Duration::from_secs_f64(args.query_seconds),
            args.query_command_clients,
        )
        .await;
        match measured {
            Ok(measured) => queries_under_load = Some(measured),
            Err(error) => notes.push(format!("queries under load not measured: {error:#}")),
        }
        settle_or_note(pool, &mut notes).await;
        eprintln!(
            "queries: the same SELECTs by pgbench, {} clients (the server's pool), {:.0} s, {} command clients beside",
            args.server_pool, args.query_seconds, args.query_command_clients
        );
        match queries::pgbench_same_selects(
            &api,
            pool,
            &database.url,
            &users,
            &bots,
            args.server_pool,
            Duration::from_secs_f64(args.query_seconds),
            args.query_command_clients,
        )
        .await
        {
            Ok(measured) => pgbench_queries = Some(measured),
            Err(error) => notes.push(format!("pgbench queries not measured: {error:#}")),
        }
        if let Some(closed) = &queries_under_load {
            settle_or_note(pool, &mut notes).await;
            let rate = (closed.queries_per_second / 2.0).max(1.0);
            eprintln!(
                "queries: open loop at {rate:.0}/s (half the closed loop's rate) over {} connections, {:.0} s",
                args.query_connections, args.query_seconds
            );
            match queries::open_loop(
                &api,
                &users,
                &bots,
                args.query_connections as usize,
                rate,
                Duration::from_secs_f64(args.query_seconds),
                args.query_command_clients,
            )
            .await
            {
                Ok(measured) => open_loop_queries = Some(measured),
                Err(error) => notes.push(format!("open-loop queries not measured: {error:#}")),
            }
        }
    }

    let mut freshness = None;
    if args.phases.contains(&Phase::Freshness) {
        settle_or_note(pool, &mut notes).await;
        let kafka = mirror_running(pool).await?;
        if !kafka {
            notes.push(format!(
                "the Kafka mirror had no checkpoint ({} down?): freshness to Kafka not measured",
                args.bootstrap_servers
            ));
        }
        eprintln!(
            "freshness: {:.0} commands/s for {:.0} s",
            args.freshness_rate, args.freshness_seconds
        );
        let measured = freshness::measure(
            &api,
            pool,
            &bots,
            args.freshness_rate,
            Duration::from_secs_f64(args.freshness_seconds),
            kafka,
        )
        .await;
        match measured {
            Ok(measured) => freshness = Some(measured),
            Err(error) => notes.push(format!("freshness not measured: {error:#}")),
        }
    }

    let mut live_levels = Vec::new();
    if args.phases.contains(&Phase::Live) {
        for connections in [1, args.live_connections] {
            settle_or_note(pool, &mut notes).await;
            eprintln!(
                "live: {connections} streams, {:.0} trades/s for {:.0} s",
                args.live_rate, args.live_seconds
            );
            match live::measure(
                &api,
                &users,
                &bots,
                servers.pid(),
                connections,
                args.live_rate,
                Duration::from_secs_f64(args.live_seconds),
            )
            .await
            {
                Ok(level) => live_levels.push(level),
                Err(error) => notes.push(format!(
                    "live with {connections} streams not measured: {error:#}"
                )),
            }
        }
    }

    let results = Results {
        parameters: args.clone(),
        sessions: Some(sessions),
        bots: bots.len(),
        baseline_row_bytes,
        throughput: levels,
        stream_length,
        queries_under_load,
        pgbench_queries,
        open_loop_queries,
        freshness,
        live: live_levels,
        profile,
        notes: Vec::new(),
    };
    Ok((results, notes))
}

/// The database's clock, which `recorded_at` is taken from.
async fn database_now(pool: &PgPool) -> Result<chrono::DateTime<chrono::Utc>> {
    Ok(sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(pool)
        .await?)
}

/// Events recorded in `[from, from + length)`, once that interval has
/// passed (appends still in flight at its end are counted by their time).
async fn events_recorded(
    pool: &PgPool,
    from: chrono::DateTime<chrono::Utc>,
    length: Duration,
) -> Result<f64> {
    let to = from + chrono::Duration::from_std(length)?;
    let count: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE recorded_at >= $1 AND recorded_at < $2",
    )
    .bind(from)
    .bind(to)
    .fetch_one(pool)
    .await
    .context("counting the events of the measured interval")?;
    Ok(count as f64)
}

/// Committed plus rolled-back transactions of this database so far.
async fn transactions(pool: &PgPool) -> Result<i64> {
    // The statistics are sent at the end of each transaction, with a
    // short delay; clear this session's snapshot of them first.
    sqlx::query("SELECT pg_stat_clear_snapshot()")
        .execute(pool)
        .await?;
    let count: i64 = sqlx::query_scalar(
        "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(pool)
    .await
    .context("reading pg_stat_database")?;
    Ok(count)
}

/// Whether the Kafka mirror has a checkpoint (it has published).
async fn mirror_running(pool: &PgPool) -> Result<bool> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM subscriber_checkpoints WHERE subscriber = $1)",
        )
        .bind(freshness::MIRROR)
        .fetch_one(pool)
        .await?;
        if found || Instant::now() >= deadline {
            return Ok(found);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Settles, or notes that it could not (the next phase then starts on a
/// busy system, which the note says).
async fn settle_or_note(pool: &PgPool, notes: &mut Vec<String>) {
    if let Err(error) = settle_if(pool, true).await {
        notes.push(format!("did not settle: {error:#}"));
    }
}

/// Waits until the log has stopped growing for a second (the bot runner's
/// fills of earlier triggers included) and, with `subscribers`, every
/// subscriber has handled all of it; returns how long that took.
async fn settle_if(pool: &PgPool, subscribers: bool) -> Result<f64> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(300);
    let mut quiet_since: Option<(Instant, i64)> = None;
    loop {
        let head: i64 = sqlx::query_scalar("SELECT coalesce(max(global_position), 0) FROM events")
            .fetch_one(pool)
            .await?;
        let lags = event_log::lag::all(pool).await?;
        let behind = subscribers && lags.iter().any(|lag| lag.events_behind > 0);
        match quiet_since {
            Some((since, at)) if at == head && !behind => {
                if since.elapsed() >= Duration::from_secs(1) {
                    return Ok(started.elapsed().as_secs_f64());
                }
            }
            _ => quiet_since = Some((Instant::now(), head)),
        }
        if Instant::now() >= deadline {
            let behind: BTreeMap<String, i64> = lags
                .into_iter()
                .map(|lag| (lag.subscriber, lag.events_behind))
                .collect();
            anyhow::bail!("the subscribers did not settle within 300 s: {behind:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Deletes the run's Kafka topics and RabbitMQ queues (best effort).
async fn clean_up_brokers(args: &ApiArgs, run_id: &str) {
    use rdkafka::admin::{AdminClient, AdminOptions};
    use rdkafka::client::DefaultClientContext;
    if let Ok(admin) = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &args.bootstrap_servers)
        .create::<AdminClient<DefaultClientContext>>()
    {
        let names: Vec<String> = [
            "user.events",
            "onboarding.events",
            "kraken.events",
            "trading.events",
            "support.events",
        ]
        .iter()
        .map(|topic| format!("{run_id}.{topic}"))
        .collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let _ = tokio::time::timeout(
            Duration::from_secs(15),
            admin.delete_topics(
                &names,
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
            ),
        )
        .await;
    }
    let topology = messaging::Topology::new(format!("{run_id}."));
    let connect =
        lapin::Connection::connect(&args.rabbitmq_url, lapin::ConnectionProperties::default());
    if let Ok(Ok(connection)) = tokio::time::timeout(Duration::from_secs(10), connect).await {
        if let Ok(channel) = connection.create_channel().await {
            for queue in messaging::Queue::ALL {
                for name in [topology.name(queue), topology.dead_letter_name(queue)] {
                    let _ = channel
                        .queue_delete(
                            name.as_str().into(),
                            lapin::options::QueueDeleteOptions::default(),
                        )
                        .await;
                }
            }
        }
        let _ = connection.close(0, "done".into()).await;
    }
}

impl Report for Results {
    const BENCHMARK: &'static str = "api";

    fn print(&self) {
        println!();
        if let Some(s) = &self.sessions {
            println!(
                "Sessions: {} users; register {:.1}/s, login {:.1}/s (argon2id); {} running bots",
                s.users, s.registers_per_second, s.logins_per_second, self.bots
            );
        }
        if !self.throughput.is_empty() {
            print_throughput(self);
        }
        if let Some(s) = &self.stream_length {
            println!(
                "\nStream length: {} samples each, alternating; long stream {} → {} events (snapshot at {})",
                self.parameters.stream_samples, s.long_events_before, s.long_events_after, s.long_stream_snapshot_at
            );
            let mut table = Table::new(["stream", "p50 ms", "p90 ms", "p99 ms", "max ms"]);
            for (name, p) in [
                (
                    format!("short (≥ {} events)", s.short_events_before),
                    &s.short,
                ),
                (format!("long ({} events)", s.long_events_before), &s.long),
            ] {
                if let Some(p) = p {
                    let mut row = latency_row(&name, p);
                    row.remove(1); // the samples, in the title
                    table.row(row);
                }
            }
            table.print_markdown();
            println!("long / short p50: {:.2}", s.p50_ratio);
        }
        if let Some(q) = &self.queries_under_load {
            let w = &q.queries;
            println!(
                "\nQueries under load: wrk {} connections, {} threads, {} targets; {:.0} queries/s",
                q.connections, q.wrk_threads, q.targets, q.queries_per_second
            );
            println!(
                "  p50 {:.2} ms, p90 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {} requests, \
                 errors: {} status, {} connect, {} read, {} write, {} timeout",
                w.p50_us as f64 / 1e3,
                w.p90_us as f64 / 1e3,
                w.p95_us as f64 / 1e3,
                w.p99_us as f64 / 1e3,
                w.max_us as f64 / 1e3,
                w.requests,
                w.errors_status,
                w.errors_connect,
                w.errors_read,
                w.errors_write,
                w.errors_timeout
            );
            let c = &q.commands;
            println!(
                "  beside: {} command clients, {:.0} commands/s, p95 {:.2} ms, failed {:?}",
                c.clients,
                c.per_second,
                c.latency.as_ref().map_or(0.0, |p| p.p95_ms),
                c.failures
            );
        }
        if let Some(p) = &self.pgbench_queries {
            println!(
                "\nThe same SELECTs by pgbench: {} clients, {:.0} s, {:.0} queries/s, latency average {:.2} ms; \
                 beside: {:.0} commands/s",
                p.clients, p.seconds, p.per_second, p.latency_average_ms, p.commands.per_second
            );
            if let Some(q) = &self.queries_under_load {
                println!(
                    "  service (wrk, closed loop) / pgbench: {:.3}",
                    q.queries_per_second / p.per_second
                );
            }
        }
        if let Some(o) = &self.open_loop_queries {
            println!(
                "\nQueries open loop: {} connections, target {:.0}/s, achieved {:.1}/s, {} sent, {} failed; \
                 beside: {:.0} commands/s, p95 {:.2} ms",
                o.connections,
                o.target_rate,
                o.achieved_rate,
                o.sent,
                o.failed,
                o.commands.per_second,
                o.commands.latency.as_ref().map_or(0.0, |p| p.p95_ms)
            );
            if let Some(p) = &o.latency {
                let mut table = Table::new([
                    "", "samples", "p50 ms", "p90 ms", "p95 ms", "p99 ms", "max ms",
                ]);
                table.row(vec![
                    "query (due → answered)".to_string(),
                    p.samples.to_string(),
                    format!("{:.2}", p.p50_ms),
                    format!("{:.2}", p.p90_ms),
                    format!("{:.2}", p.p95_ms),
                    format!("{:.2}", p.p99_ms),
                    format!("{:.2}", p.max_ms),
                ]);
                table.print_markdown();
            }
        }
        if let Some(f) = &self.freshness {
            println!(
                "\nFreshness: target {:.0}/s, achieved {:.1}/s, {} accepted, {} failed, unresolved: read model {}, Kafka {}",
                f.target_rate, f.achieved_rate, f.accepted, f.failed, f.unresolved_read_model, f.unresolved_kafka
            );
            let mut table = Table::new(["", "samples", "p50 ms", "p90 ms", "p99 ms", "max ms"]);
            for (name, p) in [
                ("command (request → accepted)", &f.command),
                ("accepted → bot_status updated", &f.accepted_to_read_model),
                (
                    "accepted → Kafka acknowledged",
                    &f.accepted_to_kafka_acknowledged,
                ),
            ] {
                if let Some(p) = p {
                    table.row(latency_row(name, p));
                }
            }
            table.print_markdown();
        }
        if !self.live.is_empty() {
            println!(
                "\nLive updates (GET /api/v1/stream): trades triggered at {:.0}/s; every fill, \
                 position and notification delivered to each of its owner's streams; commit = \
                 the event's recorded_at",
                self.parameters.live_rate
            );
            let mut table = Table::new([
                "streams",
                "refused",
                "trades/s",
                "delivered",
                "p50 ms",
                "p90 ms",
                "p99 ms",
                "max ms",
                "server RSS MiB (idle → open)",
                "KiB per stream",
            ]);
            for level in &self.live {
                let mut row = vec![
                    level.connections.to_string(),
                    level.refused.to_string(),
                    format!("{:.1}", level.achieved_rate),
                    level.delivered.to_string(),
                ];
                match &level.commit_to_delivered {
                    Some(p) => row.extend(
                        [p.p50_ms, p.p90_ms, p.p99_ms, p.max_ms].map(|ms| format!("{ms:.2}")),
                    ),
                    None => row.extend(["–".to_string(), "–".into(), "–".into(), "–".into()]),
                }
                row.push(match (level.rss_before_kib, level.rss_open_kib) {
                    (Some(before), Some(open)) => {
                        format!(
                            "{:.1} → {:.1}",
                            before as f64 / 1024.0,
                            open as f64 / 1024.0
                        )
                    }
                    _ => "–".to_string(),
                });
                row.push(
                    level
                        .kib_per_connection
                        .map_or("–".to_string(), |kib| format!("{kib:.1}")),
                );
                table.row(row);
            }
            table.print_markdown();
        }
        for note in &self.notes {
            println!("note: {note}");
        }
    }
}

/// The throughput levels' two tables: rates and latency, then CPU.
fn print_throughput(results: &Results) {
    println!(
        "\nCommand throughput (mix: 1 in {} configures a bot, the rest trigger trades), \
         {:.0} s per level; baseline = single-event INSERT + COMMIT of {} bytes",
        results.parameters.configure_every, results.parameters.seconds, results.baseline_row_bytes
    );
    let mut rates = Table::new([
        "clients",
        "baseline tx/s",
        "chain tx/s",
        "REST commands/s",
        "ratio",
        "to chain",
        "REST p50 ms",
        "p95 ms",
        "p99 ms",
        "failed",
        "db tx/command",
        "events/s, all sources",
        "events ratio",
    ])
    .first_column_right();
    for level in &results.throughput {
        let p = level.rest.latency.as_ref();
        let failed: u64 = level.rest.failures.values().sum();
        rates.row([
            level.clients.to_string(),
            format!("{:.0}", level.baseline.per_second),
            format!("{:.0}", level.chain.per_second),
            format!("{:.0}", level.rest.per_second),
            format!("**{:.3}**", level.ratio),
            format!("{:.3}", level.chain_ratio),
            format!("{:.2}", p.map_or(0.0, |p| p.p50_ms)),
            format!("{:.2}", p.map_or(0.0, |p| p.p95_ms)),
            format!("{:.2}", p.map_or(0.0, |p| p.p99_ms)),
            failed.to_string(),
            format!("{:.2}", level.database_transactions_per_command),
            format!("{:.0}", level.events_per_second),
            format!("**{:.3}**", level.events_ratio),
        ]);
    }
    rates.print_markdown();

    println!("\nCPU ms per operation (warm-up included): server, PostgreSQL backends of the run's database, this process");
    let mut cpu = Table::new([
        "clients",
        "baseline: postgres",
        "client",
        "chain: postgres",
        "client",
        "REST: server",
        "postgres",
        "client",
        "total",
    ])
    .first_column_right();
    for level in &results.throughput {
        let (b, c, r) = (&level.baseline_cpu, &level.chain_cpu, &level.rest_cpu);
        let mut row = vec![level.clients.to_string()];
        row.extend(
            [
                b.postgres_ms,
                b.client_ms,
                c.postgres_ms,
                c.client_ms,
                r.server_ms,
                r.postgres_ms,
                r.client_ms,
                r.server_ms + r.postgres_ms + r.client_ms,
            ]
            .map(|ms| format!("{ms:.3}")),
        );
        cpu.row(row);
    }
    cpu.print_markdown();
}
