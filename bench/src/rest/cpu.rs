//! Where the CPU goes: user + system time of the server, of this process
//! (the clients) and of the PostgreSQL backends connected to the run's
//! database, read from `/proc/<pid>/stat` before and after an interval.
//! PostgreSQL's shared background processes (WAL writer, checkpointer) and
//! other databases' work are not counted.

use std::collections::HashMap;

use anyhow::Result;
use serde::Serialize;
use sqlx::PgPool;

#[derive(Debug, Clone, Default)]
pub struct CpuSample {
    server: f64,
    client: f64,
    /// Per backend pid, so a backend that ended is counted up to its last sample.
    backends: HashMap<i32, f64>,
}

/// CPU milliseconds per operation, by process.
#[derive(Debug, Clone, Serialize)]
pub struct CpuPerOperation {
    pub server_ms: f64,
    pub postgres_ms: f64,
    pub client_ms: f64,
}

fn ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100.0)
}

/// User + system seconds of `pid` (`self` for this process).
fn cpu_seconds(pid: &str, ticks: f64) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name in parentheses: state is the 3rd
    // field of the line, utime the 14th and stime the 15th.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / ticks)
}

pub async fn sample(pool: &PgPool, servers: &[u32]) -> Result<CpuSample> {
    let ticks = ticks_per_second();
    let pids: Vec<i32> =
        sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
            .fetch_all(pool)
            .await?;
    Ok(CpuSample {
        server: servers
            .iter()
            .filter_map(|pid| cpu_seconds(&pid.to_string(), ticks))
            .sum(),
        client: cpu_seconds("self", ticks).unwrap_or(0.0),
        backends: pids
            .into_iter()
            .filter_map(|pid| Some((pid, cpu_seconds(&pid.to_string(), ticks)?)))
            .collect(),
    })
}

/// The CPU spent between `before` and `after` per one of `operations`.
pub fn per_operation(before: &CpuSample, after: &CpuSample, operations: u64) -> CpuPerOperation {
    let n = operations.max(1) as f64;
    let postgres: f64 = after
        .backends
        .iter()
        .map(|(pid, seconds)| seconds - before.backends.get(pid).copied().unwrap_or(0.0))
        .sum();
    CpuPerOperation {
        server_ms: (after.server - before.server) * 1000.0 / n,
        postgres_ms: postgres * 1000.0 / n,
        client_ms: (after.client - before.client) * 1000.0 / n,
    }
}
