//! Command throughput through the REST API at a given concurrency, and
//! PostgreSQL's own limit at the same concurrency: single-event INSERT +
//! COMMIT transactions of an event row's size, one connection per client,
//! into a plain copy of the `events` table ([`Table::Plain`]) and into a
//! copy that runs the log's own hash-chain trigger ([`Table::Chain`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use tokio::time::Instant;
use uuid::Uuid;

use super::client::{Api, Bot, User};
use crate::stats::{rate, Percentiles};

/// One measured interval of closed-loop load.
#[derive(Debug, Clone, Serialize)]
pub struct Load {
    pub clients: u32,
    /// Connections the clients share (the baseline's is capped by
    /// PostgreSQL's `max_connections`; REST clients each keep their own).
    pub connections: u32,
    pub seconds: f64,
    /// Requests that succeeded inside the measured interval.
    pub completed: u64,
    pub per_second: f64,
    /// Requests that succeeded from the start of the warm-up to the end
    /// (what the CPU figures divide by).
    pub completed_with_warmup: u64,
    /// Failed requests by status (`"error"`: no answer).
    pub failures: BTreeMap<String, u64>,
    pub latency: Option<Percentiles>,
    pub load_average_after: String,
}

/// What a REST client issues: every `configure_every`th command configures
/// a new bot (a new aggregate, checked against its key's stream); the
/// others trigger a trade on the client's running bots in turn.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Mix {
    pub configure_every: u64,
}

/// The row the baseline inserts: an event row of the same size as the
/// commands' events (payload and metadata copied from a stored
/// `bot.trade_triggered`).
#[derive(Debug, Clone)]
pub struct BaselineRow {
    pub payload: String,
    pub metadata: String,
    pub row_bytes: i64,
}

/// Where a baseline inserts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Table {
    /// `bench_baseline`: the `events` table's columns, defaults, identity
    /// and indexes, without triggers; the hash columns are written as
    /// 64-digit constants. PostgreSQL's own limit for a row of this size.
    Plain,
    /// `bench_chain`: the same, with the log's hash-chain trigger (the
    /// deployed `events_before_insert`, its body copied with its one
    /// lookup pointed at this table), each client appending to its own
    /// stream: the limit of the log itself, before any service code.
    Chain,
}

impl Table {
    fn insert(self) -> &'static str {
        match self {
            Table::Plain => {
                "INSERT INTO bench_baseline (aggregate_type, aggregate_id, sequence, \
                 event_type, event_version, payload, metadata, prev_hash, hash) \
                 VALUES ('Bot', $1, $2, 'bot.trade_triggered', '1.0', $3::json, $4::json, $5, $5)"
            }
            Table::Chain => {
                "INSERT INTO bench_chain (aggregate_type, aggregate_id, sequence, \
                 event_type, event_version, payload, metadata) \
                 VALUES ('Bot', $1, $2, 'bot.trade_triggered', '1.0', $3::json, $4::json)"
            }
        }
    }
}

/// Creates `bench_baseline` and `bench_chain` (see [`Table`]) and picks the
/// row to copy.
pub async fn prepare_baseline(pool: &PgPool) -> Result<BaselineRow> {
    sqlx::query("CREATE TABLE IF NOT EXISTS bench_baseline (LIKE events INCLUDING ALL)")
        .execute(pool)
        .await
        .context("creating bench_baseline")?;
    sqlx::query("CREATE TABLE IF NOT EXISTS bench_chain (LIKE events INCLUDING ALL)")
        .execute(pool)
        .await
        .context("creating bench_chain")?;
    let deployed: String =
        sqlx::query_scalar("SELECT pg_get_functiondef('events_before_insert'::regproc)")
            .fetch_one(pool)
            .await
            .context("reading the deployed chain trigger")?;
    let header = "FUNCTION public.events_before_insert()";
    if deployed.matches(header).count() != 1 || deployed.matches("FROM events").count() != 1 {
        anyhow::bail!(
            "events_before_insert is not shaped as expected (one header, one lookup FROM events): \
             cannot copy it onto bench_chain"
        );
    }
    let copied = deployed
        .replace(header, "FUNCTION public.bench_chain_before_insert()")
        .replace("FROM events", "FROM bench_chain");
    sqlx::raw_sql(&copied)
        .execute(pool)
        .await
        .context("creating bench_chain_before_insert")?;
    sqlx::raw_sql(
        "DROP TRIGGER IF EXISTS bench_chain_chain ON bench_chain; \
         CREATE TRIGGER bench_chain_chain BEFORE INSERT ON bench_chain \
         FOR EACH ROW EXECUTE FUNCTION bench_chain_before_insert()",
    )
    .execute(pool)
    .await
    .context("creating the trigger on bench_chain")?;
    let (payload, metadata, row_bytes): (String, String, i32) = sqlx::query_as(
        "SELECT payload::text, metadata::text, pg_column_size(e.*) FROM events e \
          WHERE event_type = 'bot.trade_triggered' ORDER BY global_position DESC LIMIT 1",
    )
    .fetch_one(pool)
    .await
    .context("reading a stored bot.trade_triggered to copy (did the warm-up run?)")?;
    Ok(BaselineRow {
        payload,
        metadata,
        row_bytes: i64::from(row_bytes),
    })
}

const HASH_SIZED: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// `clients` tasks, each inserting one row per transaction (autocommit:
/// INSERT + COMMIT) into `table` for `warmup + seconds`; only the last
/// `seconds` count.
#[allow(clippy::too_many_arguments)]
pub async fn baseline(
    table: Table,
    monitor: &PgPool,
    servers: &[u32],
    database_url: &str,
    row: &BaselineRow,
    clients: u32,
    max_connections: u32,
    warmup: Duration,
    seconds: Duration,
) -> Result<(Load, super::cpu::CpuPerOperation)> {
    let connections = clients.min(max_connections).max(1);
    // Sampled before the pool closes, while its backends still exist.
    let cpu_before = super::cpu::sample(monitor, servers).await?;
    let pool = PgPoolOptions::new()
        .max_connections(connections)
        .acquire_timeout(Duration::from_secs(30))
        .connect(database_url)
        .await
        .context("connecting the baseline's pool")?;
    let row = Arc::new(row.clone());
    let start = Instant::now() + Duration::from_millis(200);
    let measure_from = start + warmup;
    let end = measure_from + seconds;
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let pool = pool.clone();
        let row = row.clone();
        tasks.push(tokio::spawn(async move {
            let stream = Uuid::new_v4().to_string();
            let mut sequence: i64 = 0;
            let mut samples = Vec::new();
            let mut failures = 0u64;
            let mut first_error = None;
            let mut all = 0u64;
            tokio::time::sleep_until(start).await;
            loop {
                let now = Instant::now();
                if now >= end {
                    break;
                }
                sequence += 1;
                let query = sqlx::query(table.insert())
                    .bind(&stream)
                    .bind(sequence)
                    .bind(&row.payload)
                    .bind(&row.metadata);
                // The chain's columns at their size (64 hex digits) where
                // no trigger computes them.
                let query = match table {
                    Table::Plain => query.bind(HASH_SIZED),
                    Table::Chain => query,
                };
                let result = query.execute(&pool).await;
                let done = Instant::now();
                match &result {
                    Ok(_) => all += 1,
                    Err(error) => {
                        first_error.get_or_insert_with(|| error.to_string());
                    }
                }
                if now >= measure_from && done <= end {
                    match result {
                        Ok(_) => samples.push(done - now),
                        Err(_) => failures += 1,
                    }
                }
            }
            (samples, failures, first_error, all)
        }));
    }
    let mut samples = Vec::new();
    let mut failures = BTreeMap::new();
    let mut first_error = None;
    let mut all = 0;
    for task in tasks {
        let (mut s, f, error, a) = task.await.context("a baseline client panicked")?;
        all += a;
        samples.append(&mut s);
        if f > 0 {
            *failures.entry("error".to_string()).or_default() += f;
        }
        first_error = first_error.or(error);
    }
    let cpu_after = super::cpu::sample(monitor, servers).await?;
    pool.close().await;
    if samples.is_empty() {
        anyhow::bail!(
            "no baseline INSERT succeeded: {}",
            first_error.unwrap_or_else(|| "none finished in time".to_string())
        );
    }
    let cpu = super::cpu::per_operation(&cpu_before, &cpu_after, all);
    Ok((
        summarise(clients, connections, seconds, samples, failures, all),
        cpu,
    ))
}

/// `clients` REST clients, closed loop, each on its own bots (so clients
/// never race each other for a stream; the bot runner's fills may).
pub async fn rest(
    api: &Api,
    users: &[User],
    bots: &[Bot],
    clients: u32,
    mix: Mix,
    warmup: Duration,
    seconds: Duration,
) -> Result<Load> {
    let start = Instant::now() + Duration::from_millis(200);
    let measure_from = start + warmup;
    let end = measure_from + seconds;
    let mut tasks = Vec::new();
    for client in 0..clients as usize {
        let mine: Vec<Bot> = bots
            .iter()
            .skip(client % bots.len())
            .step_by(clients as usize)
            .cloned()
            .collect();
        let mine = if mine.is_empty() {
            vec![bots[client % bots.len()].clone()]
        } else {
            mine
        };
        let owner = &users[mine[0].owner];
        let (token, key_id) = (owner.token.clone(), owner.key_id);
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut failures: BTreeMap<String, u64> = BTreeMap::new();
            let mut issued: u64 = 0;
            let mut all = 0u64;
            tokio::time::sleep_until(start).await;
            loop {
                let now = Instant::now();
                if now >= end {
                    break;
                }
                issued += 1;
                let result = if issued.is_multiple_of(mix.configure_every) {
                    api.configure(&token, key_id).await
                } else {
                    let bot = &mine[issued as usize % mine.len()];
                    api.trigger(&bot.token, bot.id).await
                };
                let done = Instant::now();
                if result.as_ref().is_ok_and(|answer| answer.ok()) {
                    all += 1;
                }
                if now >= measure_from && done <= end {
                    match result {
                        Ok(answer) if answer.ok() => samples.push(done - now),
                        Ok(answer) => *failures.entry(answer.status.to_string()).or_default() += 1,
                        Err(_) => *failures.entry("error".to_string()).or_default() += 1,
                    }
                }
            }
            (samples, failures, all)
        }));
    }
    let mut samples = Vec::new();
    let mut failures = BTreeMap::new();
    let mut all = 0;
    for task in tasks {
        let (mut s, f, a) = task.await.context("a REST client panicked")?;
        all += a;
        samples.append(&mut s);
        for (status, count) in f {
            *failures.entry(status).or_default() += count;
        }
    }
    Ok(summarise(clients, clients, seconds, samples, failures, all))
}

fn summarise(
    clients: u32,
    connections: u32,
    seconds: Duration,
    samples: Vec<Duration>,
    failures: BTreeMap<String, u64>,
    completed_with_warmup: u64,
) -> Load {
    Load {
        completed_with_warmup,
        clients,
        connections,
        seconds: seconds.as_secs_f64(),
        completed: samples.len() as u64,
        per_second: rate(samples.len() as u64, seconds),
        failures,
        latency: Percentiles::of(&samples),
        load_average_after: crate::machine::load_average(),
    }
}
