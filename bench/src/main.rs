//! `muckard-bench`: benchmarks of the Muckard ledger against a local
//! PostgreSQL. Each subcommand creates its own database, prints a table and
//! writes the same figures as JSON under `bench/results/`: `harness::run`
//! does that for all of them (database, Ctrl-C, JSON), and `table::Table`
//! prints their tables.
//!
//! - `projection`: seeds a log, then measures the log reader's raw
//!   read+decode rate, the read-model projectors' catch-up rate, and the
//!   commit-to-read-model lag under a steady command load.
//! - `kafka`: the Kafka mirror's throughput against a raw rdkafka producer
//!   on the same broker, and its commit-to-acknowledged latency at a steady
//!   rate.
//! - `replay`: seeds a log the same way, then measures the replay tool's
//!   rebuild of every read model and its chain verification against the
//!   raw read+decode rate.
//! - `api`: spawns the `muckard` server and measures it over TCP: command
//!   throughput against PostgreSQL's own INSERT + COMMIT rate, short
//!   against long streams, queries under 1,000 connections (wrk) and
//!   end-to-end freshness.

mod database;
mod decode;
mod harness;
mod kafka;
mod lag;
mod machine;
mod projection;
mod replay;
mod rest;
mod seed;
mod stats;
mod table;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "muckard-bench", about = "Benchmarks of the Muckard ledger")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Seeds a log, then measures read+decode, projector catch-up and
    /// commit-to-read-model lag.
    Projection(ProjectionArgs),
    /// Seeds a log, then measures the Kafka mirror against a raw producer
    /// and its commit-to-acknowledged latency at a steady rate.
    Kafka(kafka::KafkaArgs),
    /// Seeds a log, then measures the replay tool's rebuild and verify
    /// against the raw read+decode rate.
    Replay(ReplayArgs),
    /// Spawns the muckard server on a fresh database and measures it over
    /// TCP: command throughput beside PostgreSQL's INSERT + COMMIT limit,
    /// stream length, queries under 1,000 connections, freshness.
    Api(Box<rest::ApiArgs>),
}

#[derive(Args, Clone, Debug)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub server: ServerArgs,

    /// Events to seed in the log.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,

    /// Users to seed (each with one tested exchange key).
    #[arg(long, default_value_t = 1_000)]
    pub users: u64,

    /// Running bots to seed, owned round-robin by the users.
    #[arg(long, default_value_t = 2_000)]
    pub bots: u64,

    /// Events per log read, for the baseline and the rebuild.
    #[arg(long, default_value_t = 500)]
    pub batch_size: i64,

    /// The Kafka broker `verify --anchors kafka` reads the checkpoints and
    /// the mirrored events from (the run's own topics, deleted after).
    #[arg(
        long,
        env = "KAFKA_BOOTSTRAP_SERVERS",
        default_value = "127.0.0.1:9092"
    )]
    pub bootstrap_servers: String,

    /// Skip `verify --anchors kafka` (no broker needed).
    #[arg(long)]
    pub no_anchors: bool,

    /// Where to write the JSON results.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/results/replay.json"))]
    pub output: PathBuf,

    /// Keep the benchmark database instead of dropping it (for inspection).
    #[arg(long)]
    pub keep_database: bool,
}

/// Where the benchmark's database lives: PostgreSQL's admin URL, used to
/// create and drop the per-run database.
#[derive(Args, Clone, Debug)]
pub struct ServerArgs {
    #[arg(
        long,
        env = "BENCH_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432"
    )]
    pub database_url: String,
}

#[derive(Args, Clone, Debug)]
pub struct ProjectionArgs {
    #[command(flatten)]
    pub server: ServerArgs,

    /// Events to seed in the log.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,

    /// Users to seed (each with one tested exchange key).
    #[arg(long, default_value_t = 1_000)]
    pub users: u64,

    /// Running bots to seed, owned round-robin by the users.
    #[arg(long, default_value_t = 2_000)]
    pub bots: u64,

    /// Portfolio `trade.executed` events per `bot.trade.executed` fill
    /// (1.0: every fill mirrored, as the trade recorder does).
    #[arg(long, default_value_t = 1.0)]
    pub portfolio_share: f64,

    /// Events per log read, for the baseline and every projector.
    #[arg(long, default_value_t = 500)]
    pub batch_size: i64,

    /// Commands per second during the lag measurement.
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,

    /// Seconds of steady command load during the lag measurement.
    #[arg(long, default_value_t = 20.0)]
    pub duration: f64,

    /// Bots the lag load's `trigger_bot_trade` commands are spread over
    /// (two per user, created through the command side).
    #[arg(long, default_value_t = 20)]
    pub lag_bots: u32,

    /// Measure the lag on the seeded database after catch-up (`same`) or on
    /// a second, empty one (`fresh`).
    #[arg(long, value_enum, default_value_t = projection::LagDatabase::Same)]
    pub lag_database: projection::LagDatabase,

    /// Skip the lag measurement.
    #[arg(long)]
    pub no_lag: bool,

    /// Where to write the JSON results.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/results/projection.json"))]
    pub output: PathBuf,

    /// Keep the benchmark database instead of dropping it (for inspection).
    #[arg(long)]
    pub keep_database: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // sqlx warns of every statement over 1 s; seeding is made of them.
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,sqlx::query=error")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("muckard-bench: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Projection(args) => projection::run(args).await,
            Command::Kafka(args) => kafka::run(args).await,
            Command::Replay(args) => replay::run(args).await,
            Command::Api(args) => rest::run(*args).await,
        }
    });
    // Subscriber tasks may still be parked on the database; do not wait.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("muckard-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}
