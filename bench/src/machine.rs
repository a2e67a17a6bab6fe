//! The facts about the machine and the server a result was measured on.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde::Serialize;
use sqlx::PgPool;

#[derive(Debug, Clone, Serialize)]
pub struct MachineFacts {
    /// Logical CPUs this process may run on (what `nproc` prints).
    pub nproc: usize,
    pub cpu_model: String,
    pub memory_total_bytes: u64,
    pub os: String,
    /// `/proc/loadavg` when the run started: other work on the machine
    /// skews every figure.
    pub load_average_at_start: String,
    pub postgres_version: String,
    /// Server settings that move the figures most.
    pub postgres_settings: BTreeMap<String, String>,
}

const SETTINGS: [&str; 6] = [
    "shared_buffers",
    "synchronous_commit",
    "fsync",
    "wal_level",
    "max_connections",
    "work_mem",
];

impl MachineFacts {
    pub async fn collect(pool: &PgPool) -> Result<Self> {
        let postgres_version: String = sqlx::query_scalar("SELECT version()")
            .fetch_one(pool)
            .await
            .context("asking PostgreSQL for its version")?;
        let mut postgres_settings = BTreeMap::new();
        for name in SETTINGS {
            let value: String = sqlx::query_scalar("SELECT current_setting($1)")
                .bind(name)
                .fetch_one(pool)
                .await
                .with_context(|| format!("reading the setting {name}"))?;
            postgres_settings.insert(name.to_string(), value);
        }
        Ok(Self {
            nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model: cpu_model().unwrap_or_else(|| "unknown".to_string()),
            memory_total_bytes: memory_total_bytes().unwrap_or(0),
            os: os_release().unwrap_or_else(|| std::env::consts::OS.to_string()),
            load_average_at_start: load_average(),
            postgres_version,
            postgres_settings,
        })
    }

    pub fn print(&self) {
        println!("Machine");
        println!(
            "  CPU        {} ({} logical CPUs)",
            self.cpu_model, self.nproc
        );
        println!(
            "  memory     {:.1} GiB",
            self.memory_total_bytes as f64 / f64::from(1u32 << 30)
        );
        println!("  OS         {}", self.os);
        println!("  load avg   {}", self.load_average_at_start);
        println!("  PostgreSQL {}", self.postgres_version);
        let settings: Vec<String> = self
            .postgres_settings
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        println!("             {}", settings.join(" "));
    }
}

fn cpu_model() -> Option<String> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    text.lines()
        .find(|line| line.starts_with("model name"))
        .and_then(|line| line.split_once(':'))
        .map(|(_, model)| model.trim().to_string())
}

fn memory_total_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|line| line.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn os_release() -> Option<String> {
    let text = std::fs::read_to_string("/etc/os-release").ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("PRETTY_NAME="))
        .map(|name| name.trim_matches('"').to_string())
}

/// The 1, 5 and 15 minute load averages, as `/proc/loadavg` gives them.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|| "unknown".to_string())
}
