//! `muckard-replay`: the compliance auditor's and operator's instrument.
//!
//! - `main.rs` (this file): the command line (clap) and the exit status;
//! - [`commands`]: one function per command, printing text or `--json`;
//! - [`progress`]: progress bars with rate and ETA on stderr, drawn only
//!   when stderr is a terminal.
//!
//! The work itself is in the `projections` crate (`projections::audit`
//! and `projections::rebuild`), which the REST audit endpoints share.
//! Exit status: 0 all is well, 1 a discrepancy was found (a broken row, a
//! read model that differs, a report that does not check out), 2 the
//! command could not be carried out.

mod commands;
mod progress;

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use domain::AggregateType;
use event_log::Position;
use uuid::Uuid;

#[derive(Parser)]
#[command(
    name = "muckard-replay",
    version,
    about = "Rebuild, reconstruct, verify and export the Muckard event log for audits",
    long_about = "Rebuild, reconstruct, verify and export the Muckard event log for audits.\n\n\
        Reads the events table of DATABASE_URL (default: the service's). Exit status: 0 when \
        all is well, 1 when a discrepancy was found (a broken row, a read model that differs \
        from its rebuild, a report that does not check out), 2 when the command could not run.",
    after_help = environment_help()
)]
pub struct Cli {
    /// PostgreSQL database holding the log (the service's default).
    #[arg(
        long,
        global = true,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/muckard",
        hide_env_values = true
    )]
    pub database_url: String,

    /// Print machine-readable JSON on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Rebuild read models from the log into a shadow schema
    /// (`replay_<name>`), with the same projector code the live workers
    /// run. `--compare` diffs them against the live read models (exit 1 on
    /// any difference); `--swap` promotes them atomically, the live tables
    /// moving to `replay_<name>_retired`.
    Rebuild(RebuildArgs),
    /// Reconstruct one aggregate's state as of a time or a sequence, and
    /// list the events that built it.
    State(StateArgs),
    /// Verify the log: every stream's hash chain, contiguous sequences,
    /// unique event ids and positions. Names each broken row (stream,
    /// sequence, what is wrong); exit 1 if there is any.
    Verify(VerifyArgs),
    /// Write a user's audit report: every event of the user's aggregates
    /// in the range with its hash, the resulting states, and a SHA-256
    /// digest over the canonical content.
    Export(ExportArgs),
    /// Re-check an audit report: its digest, every event's hash and link,
    /// and that it agrees with the log now. Exit 1 if anything differs.
    VerifyExport(VerifyExportArgs),
}

#[derive(clap::Args)]
pub struct RebuildArgs {
    #[arg(long, default_value = "all", help = read_model_help())]
    pub projection: String,
    /// Stop after this commit-order position (a `position` token from a
    /// command response, `<transaction>.<global position>`).
    #[arg(long, value_parser = parse_position, conflicts_with = "as_of")]
    pub to_position: Option<Position>,
    /// Apply only events recorded at or before this RFC 3339 time.
    #[arg(long, value_parser = parse_time)]
    pub as_of: Option<DateTime<Utc>>,
    /// Shadow name: the schema is `replay_<name>` (replaced if it exists).
    #[arg(long, default_value = "shadow")]
    pub name: String,
    /// Events per log read and per projector transaction.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(i64).range(1..=100_000))]
    pub batch_size: i64,
    /// Compare the rebuilt read models with the live ones by primary key
    /// and byte for byte. Meant for live projectors that are caught up:
    /// both sides' checkpoints are printed, so lag is told from drift.
    #[arg(long)]
    pub compare: bool,
    /// Differing rows listed per table by `--compare`.
    #[arg(long, default_value_t = 20)]
    pub diff_limit: i64,
    /// Promote the rebuilt read models in one transaction. Not with
    /// `--as-of`: the live projectors could not resume from a time.
    #[arg(long, conflicts_with = "as_of")]
    pub swap: bool,
}

#[derive(clap::Args)]
pub struct StateArgs {
    #[arg(help = aggregate_type_help())]
    pub aggregate_type: String,
    /// The aggregate's id.
    pub id: String,
    /// The state as of this RFC 3339 time.
    #[arg(long, value_parser = parse_time, conflicts_with = "at_sequence")]
    pub as_of: Option<DateTime<Utc>>,
    /// The state after this sequence number.
    #[arg(long, value_parser = clap::value_parser!(i64).range(0..))]
    pub at_sequence: Option<i64>,
}

#[derive(clap::Args)]
pub struct VerifyArgs {
    /// Only rows recorded at or after this RFC 3339 time (a row's link to
    /// its predecessor is still checked).
    #[arg(long, value_parser = parse_time)]
    pub from: Option<DateTime<Utc>>,
    /// Only rows recorded at or before this RFC 3339 time.
    #[arg(long, value_parser = parse_time)]
    pub to: Option<DateTime<Utc>>,
    /// Also check the log against signed checkpoints: `kafka` (the topic
    /// `<KAFKA_TOPIC_PREFIX>ledger.checkpoints` at KAFKA_BOOTSTRAP_SERVERS)
    /// or a directory (`ANCHOR_DIR`, `muckard anchor --dir`). Names streams
    /// cut at their tail, deleted whole, re-hashed, or with rows inserted
    /// behind the service's back, and checkpoints whose signature fails.
    #[arg(long)]
    pub anchors: Option<PathBuf>,
    /// The published public key the checkpoints must be signed with
    /// (`muckard keys public`); required with `--anchors`.
    #[arg(long, env = "AUDIT_PUBLIC_KEY", requires = "anchors")]
    pub public_key: Option<String>,
}

#[derive(clap::Args)]
pub struct ExportArgs {
    /// The user whose aggregates (user, keys, bots, portfolio) to export.
    #[arg(long)]
    pub user: Uuid,
    /// Events recorded at or after this RFC 3339 time.
    #[arg(long, value_parser = parse_time)]
    pub from: Option<DateTime<Utc>>,
    /// Events recorded at or before this RFC 3339 time (default: now);
    /// the states are as of it.
    #[arg(long, value_parser = parse_time)]
    pub to: Option<DateTime<Utc>>,
    /// Where to write the report (JSON).
    #[arg(long)]
    pub out: PathBuf,
    /// Sign the report with this Ed25519 seed (64 hex characters, the
    /// service's key); unsigned without it. The service's REST export
    /// (`POST /api/v1/audit/users/{id}/export`) always signs.
    #[arg(long, env = "AUDIT_SIGNING_KEY", hide_env_values = true)]
    pub signing_key: Option<String>,
}

#[derive(clap::Args)]
pub struct VerifyExportArgs {
    /// The report written by `export`.
    pub file: PathBuf,
    /// The published public key (hex, from `GET /api/v1/audit/keys` or
    /// `muckard keys public`): the report must be signed by it. Without it
    /// a signature is checked against the key the report names.
    #[arg(long, env = "AUDIT_PUBLIC_KEY")]
    pub public_key: Option<String>,
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("expected an RFC 3339 time such as 2026-11-23T08:00:00Z: {e}"))
}

fn parse_position(text: &str) -> Result<Position, String> {
    text.parse()
}

/// What a command concluded.
pub enum Outcome {
    Clean,
    Discrepancy,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
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
            eprintln!("muckard-replay: cannot start the async runtime: {error}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(Outcome::Clean) => ExitCode::SUCCESS,
        Ok(Outcome::Discrepancy) => ExitCode::from(1),
        Err(error) => {
            eprintln!("muckard-replay: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// The environment the tool reads, beside the options that name theirs.
fn environment_help() -> String {
    format!(
        "Environment: DATABASE_URL (--database-url), AUDIT_PUBLIC_KEY (verify \
         --public-key, verify-export --public-key), AUDIT_SIGNING_KEY (export --signing-key), \
         RUST_LOG (the log filter on stderr, default warn). verify --anchors kafka reaches \
         the broker with the service's Kafka settings, read from the same variables as \
         `muckard` reads them (see its --help and .env.example): {}.",
        kafka_mirror::KafkaSettings::setting_names().join(", ")
    )
}

/// The `--projection` help, naming every read model of the registry
/// (`projections::read_models::READ_MODELS`).
fn read_model_help() -> String {
    format!(
        "The read model to rebuild: all, {}",
        projections::read_models::names().join(", ")
    )
}

/// The `<AGGREGATE_TYPE>` help, naming every aggregate of the registry
/// (`domain::AggregateType::ALL`).
fn aggregate_type_help() -> String {
    format!(
        "{} (any case; snake case works too)",
        AggregateType::names()
    )
}
