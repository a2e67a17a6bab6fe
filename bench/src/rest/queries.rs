//! Queries under load: `wrk` with 1,000 connections GETs the query
//! endpoints as the benchmark's users (bench/wrk/queries.lua) while REST
//! clients keep issuing commands.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::client::{Api, Bot, User};
use super::throughput::{self, Load, Mix};

/// What queries.lua prints at the end.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WrkSummary {
    pub requests: u64,
    pub duration_us: u64,
    pub bytes: u64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p95_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    pub mean_us: f64,
    pub errors_status: u64,
    pub errors_connect: u64,
    pub errors_read: u64,
    pub errors_write: u64,
    pub errors_timeout: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct QueriesUnderLoad {
    pub connections: u32,
    pub wrk_threads: u32,
    pub targets: usize,
    pub queries: WrkSummary,
    pub queries_per_second: f64,
    /// The commands flowing at the same time.
    pub commands: Load,
}

/// Writes the targets file: every user's overview, trades, positions,
/// profile and keys, and each bot's status, with the owner's token.
pub fn write_targets(path: &Path, users: &[User], bots: &[Bot]) -> Result<usize> {
    let mut lines = Vec::new();
    for user in users {
        for endpoint in [
            "/api/v1/bot",
            "/api/v1/trading/trades?limit=20",
            "/api/v1/trading/positions",
            "/api/v1/user/me",
            "/api/v1/kraken/keys",
        ] {
            lines.push(format!("{} {endpoint}", user.token));
        }
    }
    for bot in bots {
        lines.push(format!("{} /api/v1/bot/{}/status", bot.token, bot.id));
    }
    let mut file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    file.write_all((lines.join("\n") + "\n").as_bytes())?;
    Ok(lines.len())
}

#[allow(clippy::too_many_arguments)]
pub async fn measure(
    api: &Api,
    users: &[User],
    bots: &[Bot],
    script: &Path,
    targets_file: &Path,
    connections: u32,
    seconds: Duration,
    command_clients: u32,
) -> Result<QueriesUnderLoad> {
    let targets = write_targets(targets_file, users, bots)?;
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()) as u32;
    let mut wrk = std::process::Command::new("wrk");
    wrk.arg(format!("-t{threads}"))
        .arg(format!("-c{connections}"))
        .arg(format!("-d{}s", seconds.as_secs().max(1)))
        .arg("--timeout")
        .arg("10s")
        .arg("-s")
        .arg(script)
        .arg(&api.base_url)
        .env("WRK_TARGETS", targets_file);
    let wrk = tokio::task::spawn_blocking(move || wrk.output());
    let commands = throughput::rest(
        api,
        users,
        bots,
        command_clients,
        Mix {
            configure_every: u64::MAX,
        },
        Duration::from_secs(1),
        seconds.saturating_sub(Duration::from_secs(2)),
    )
    .await?;
    let output = wrk
        .await
        .context("the wrk task panicked")?
        .context("running wrk (apt-get install wrk; scripts/bench does)")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "wrk failed ({}): {stdout}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let line = stdout
        .lines()
        .find_map(|line| line.strip_prefix("WRK_JSON "))
        .with_context(|| format!("no WRK_JSON line in wrk's output: {stdout}"))?;
    let queries: WrkSummary = serde_json::from_str(line).context("parsing wrk's summary")?;
    let queries_per_second = queries.requests as f64 / (queries.duration_us as f64 / 1e6);
    let _ = std::fs::remove_file(targets_file);
    Ok(QueriesUnderLoad {
        connections,
        wrk_threads: threads,
        targets,
        queries,
        queries_per_second,
        commands,
    })
}

#[cfg(test)]
mod tests {
    use super::WrkSummary;

    /// The fields the Lua script's done() prints: every `"name":%` in it.
    fn fields_printed_by(script: &str) -> Vec<String> {
        let path = format!("{}/wrk/{script}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap();
        text.match_indices("\":%")
            .map(|(end, _)| {
                let start = text[..end].rfind('"').unwrap() + 1;
                text[start..end].to_string()
            })
            .collect()
    }

    #[test]
    fn what_the_lua_scripts_print_is_what_the_bench_reads() {
        for script in ["queries.lua", "commands.lua"] {
            let names = fields_printed_by(script);
            assert_eq!(names.len(), 14, "{script}: {names:?}");
            let json = format!(
                "{{{}}}",
                names
                    .iter()
                    .map(|name| format!("\"{name}\":7"))
                    .collect::<Vec<_>>()
                    .join(",")
            );
            let summary: WrkSummary = serde_json::from_str(&json)
                .unwrap_or_else(|error| panic!("{script}: {error}: {json}"));
            assert_eq!(summary.p95_us, 7);
            assert_eq!(summary.errors_timeout, 7);
        }
    }
}
