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

/// Every user's overview, trades, positions, profile and keys, and each
/// bot's status, with the owner's token: what the query phases GET.
fn targets(users: &[User], bots: &[Bot]) -> Vec<(std::sync::Arc<str>, String)> {
    let mut targets = Vec::new();
    for user in users {
        for endpoint in [
            "/api/v1/bot",
            "/api/v1/trading/trades?limit=20",
            "/api/v1/trading/positions",
            "/api/v1/user/me",
            "/api/v1/kraken/keys",
        ] {
            targets.push((user.token.clone(), endpoint.to_string()));
        }
    }
    for bot in bots {
        targets.push((bot.token.clone(), format!("/api/v1/bot/{}/status", bot.id)));
    }
    targets
}

/// Trade triggers from `clients` REST clients for a second's warm-up and
/// then `seconds`, beside a query measurement.
async fn commands_beside(
    api: &Api,
    users: &[User],
    bots: &[Bot],
    clients: u32,
    seconds: Duration,
) -> Result<Load> {
    throughput::rest(
        api,
        users,
        bots,
        clients,
        Mix {
            configure_every: u64::MAX,
        },
        Duration::from_secs(1),
        seconds,
    )
    .await
}

/// Runs `tool` (a load generator lasting `seconds`) with
/// `command_clients` REST clients triggering trades beside it for all but
/// its last two seconds; its output whatever its exit status, and the
/// commands' load.
#[allow(clippy::too_many_arguments)]
async fn run_beside_commands(
    mut tool: std::process::Command,
    what: &str,
    api: &Api,
    users: &[User],
    bots: &[Bot],
    command_clients: u32,
    seconds: Duration,
) -> Result<(std::process::Output, Load)> {
    let run = tokio::task::spawn_blocking(move || tool.output());
    let commands = commands_beside(
        api,
        users,
        bots,
        command_clients,
        seconds.saturating_sub(Duration::from_secs(2)),
    )
    .await?;
    let output = run
        .await
        .with_context(|| format!("the {what} task panicked"))?
        .with_context(|| format!("running {what}"))?;
    Ok((output, commands))
}

/// `output`'s standard output, or an error with both of its streams when
/// `tool` failed.
fn succeeded(output: &std::process::Output, tool: &str) -> Result<String> {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        bail!(
            "{tool} failed ({}): {stdout}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(stdout)
}

/// Writes the targets file: every user's overview, trades, positions,
/// profile and keys, and each bot's status, with the owner's token.
pub fn write_targets(path: &Path, users: &[User], bots: &[Bot]) -> Result<usize> {
    let lines: Vec<String> = targets(users, bots)
        .into_iter()
        .map(|(token, path)| format!("{token} {path}"))
        .collect();
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
    let (output, commands) = run_beside_commands(
        wrk,
        "wrk (apt-get install wrk; scripts/bench does)",
        api,
        users,
        bots,
        command_clients,
        seconds,
    )
    .await?;
    let stdout = succeeded(&output, "wrk")?;
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

/// The same SELECTs as the query endpoints run, in the same mix, run by
/// pgbench straight against the run's database: what PostgreSQL itself
/// does with them, the ceiling of the service's query rate.
#[derive(Debug, Clone, Serialize)]
pub struct PgbenchQueries {
    pub clients: u32,
    pub seconds: f64,
    pub transactions: u64,
    pub per_second: f64,
    pub latency_average_ms: f64,
    /// The commands flowing at the same time, as beside wrk.
    pub commands: Load,
}

/// pgbench scripts (name, SQL): each endpoint's statement as the handler
/// sends it, for a user (or bot) drawn at random from lookup tables of the
/// run's `users` users and `bots` bots.
fn pgbench_scripts(users: usize, bots: usize) -> Vec<(&'static str, String)> {
    let user = "(SELECT user_id FROM bench_query_users WHERE n = :u)";
    let bot_columns = "bot_id, owner_id, key_id, pair, strategy, state, trades_executed, \
        trades_skipped, errors, last_trade, last_skip, last_error, last_error_at, created_at, updated_at";
    let draw_user = format!("\\set u random(1, {users})\n");
    vec![
        (
            "bots",
            format!("{draw_user}SELECT {bot_columns} FROM bot_status WHERE false OR owner_id = {user} \
                     ORDER BY created_at, bot_id OFFSET 0 LIMIT 101;\n"),
        ),
        (
            "trades",
            format!("{draw_user}SELECT trade_id, user_id, bot_id, order_id, pair, side, quantity, price, fee, executed_at \
                     FROM trades WHERE (false OR user_id = {user}) AND (NULL::uuid IS NULL) \
                     AND (NULL::text IS NULL) AND (NULL::timestamptz IS NULL) AND (NULL::timestamptz IS NULL) \
                     AND (NULL::bigint IS NULL) ORDER BY trade_id DESC LIMIT 20;\n"),
        ),
        (
            "positions",
            format!("{draw_user}SELECT user_id, pair, quantity, cost_basis, average_cost, realised_pnl, trades, updated_at \
                     FROM positions WHERE false OR user_id = {user} ORDER BY user_id, pair OFFSET 0 LIMIT 101;\n"),
        ),
        (
            "me",
            format!("{draw_user}SELECT user_id, email, display_name, role, onboarded, risk_profile, experience, \
                     created_at, last_login_at, erased_at FROM users WHERE user_id = {user};\n"),
        ),
        (
            "keys",
            format!("{draw_user}SELECT key_id, owner_id, exchange, label, fingerprint, permissions, status, \
                     last_test_failure, connected_at, updated_at FROM exchange_keys \
                     WHERE status <> 'disconnected' AND (false OR owner_id = {user}) \
                     ORDER BY connected_at, key_id OFFSET 0 LIMIT 101;\n"),
        ),
        (
            "bot_status",
            format!("\\set b random(1, {bots})\nSELECT {bot_columns} FROM bot_status \
                     WHERE bot_id = (SELECT bot_id FROM bench_query_bots WHERE n = :b) AND (false OR owner_id = \
                     (SELECT owner_id FROM bench_query_bots WHERE n = :b));\n"),
        ),
    ]
}

#[allow(clippy::too_many_arguments)]
pub async fn pgbench_same_selects(
    api: &Api,
    pool: &sqlx::PgPool,
    database_url: &str,
    users: &[User],
    bots: &[Bot],
    clients: u32,
    seconds: Duration,
    command_clients: u32,
) -> Result<PgbenchQueries> {
    for statement in [
        "DROP TABLE IF EXISTS bench_query_users, bench_query_bots",
        "CREATE TABLE bench_query_users AS SELECT row_number() OVER (ORDER BY user_id)::int AS n, user_id \
         FROM (SELECT DISTINCT owner_id AS user_id FROM bot_status) u",
        "CREATE TABLE bench_query_bots AS SELECT row_number() OVER (ORDER BY bot_id)::int AS n, bot_id, owner_id \
         FROM bot_status",
        "ALTER TABLE bench_query_users ADD PRIMARY KEY (n)",
        "ALTER TABLE bench_query_bots ADD PRIMARY KEY (n)",
        "ANALYZE bench_query_users, bench_query_bots",
    ] {
        sqlx::query(statement).execute(pool).await?;
    }
    let (user_count, bot_count): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM bench_query_users), (SELECT count(*) FROM bench_query_bots)",
    )
    .fetch_one(pool)
    .await?;
    anyhow::ensure!(user_count > 0 && bot_count > 0, "no bots to query");
    let directory = std::env::temp_dir().join(format!("muckard-pgbench-{}", std::process::id()));
    std::fs::create_dir_all(&directory)?;
    let mut pgbench = std::process::Command::new("pgbench");
    pgbench
        .arg("-n")
        .arg("-M")
        .arg("prepared")
        .arg(format!("-c{clients}"))
        .arg(format!("-j{}", clients.min(2)))
        .arg(format!("-T{}", seconds.as_secs().max(1)));
    for (name, sql) in pgbench_scripts(user_count as usize, bot_count as usize) {
        let path = directory.join(format!("{name}.sql"));
        std::fs::write(&path, sql)?;
        // Weighted as the targets file: five endpoints per user, one per bot.
        let weight = if name == "bot_status" {
            bots.len()
        } else {
            users.len()
        };
        pgbench
            .arg("-f")
            .arg(format!("{}@{}", path.display(), weight.max(1)));
    }
    pgbench.arg(database_url);
    let (output, commands) = run_beside_commands(
        pgbench,
        "pgbench",
        api,
        users,
        bots,
        command_clients,
        seconds,
    )
    .await?;
    let _ = std::fs::remove_dir_all(&directory);
    sqlx::query("DROP TABLE IF EXISTS bench_query_users, bench_query_bots")
        .execute(pool)
        .await?;
    let stdout = succeeded(&output, "pgbench")?;
    let field = |prefix: &str| -> Result<f64> {
        stdout
            .lines()
            .find_map(|line| line.trim().strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|number| number.parse().ok())
            .with_context(|| format!("no {prefix:?} in pgbench's output: {stdout}"))
    };
    let transactions = field("number of transactions actually processed:")? as u64;
    let per_second = field("tps =")?;
    let latency_average_ms = field("latency average =")?;
    Ok(PgbenchQueries {
        clients,
        seconds: seconds.as_secs_f64(),
        transactions,
        per_second,
        latency_average_ms,
        commands,
    })
}

/// Queries sent open loop: at a fixed rate, each connection with its share
/// of it, a query's latency counted from when it was due (so a slow
/// answer delays the queries behind it on its connection, and they count
/// it), while commands flow beside.
#[derive(Debug, Clone, Serialize)]
pub struct OpenLoop {
    pub connections: usize,
    pub target_rate: f64,
    pub achieved_rate: f64,
    pub sent: u64,
    pub failed: u64,
    pub latency: Option<crate::stats::Percentiles>,
    pub commands: Load,
}

#[allow(clippy::too_many_arguments)]
pub async fn open_loop(
    api: &Api,
    users: &[User],
    bots: &[Bot],
    connections: usize,
    rate: f64,
    seconds: Duration,
    command_clients: u32,
) -> Result<OpenLoop> {
    use tokio::sync::mpsc;
    use tokio::time::{Instant, MissedTickBehavior};
    let targets: Vec<(std::sync::Arc<str>, String)> = targets(users, bots)
        .into_iter()
        .map(|(token, path)| (token, format!("{}{path}", api.base_url)))
        .collect();
    anyhow::ensure!(!targets.is_empty(), "no targets");
    let targets = std::sync::Arc::new(targets);
    // One client per connection, each opened (one untimed query) before
    // the clock starts.
    let mut senders = Vec::with_capacity(connections);
    let mut workers = tokio::task::JoinSet::new();
    for n in 0..connections {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .http1_only()
            .timeout(Duration::from_secs(30))
            .build()?;
        let (sender, mut due) = mpsc::unbounded_channel::<(Instant, usize)>();
        senders.push(sender);
        let targets = targets.clone();
        workers.spawn(async move {
            let get = |index: usize| {
                let (token, url) = &targets[index % targets.len()];
                client.get(url).bearer_auth(token).send()
            };
            let _ = get(n).await;
            let mut latencies = Vec::new();
            let mut failed = 0u64;
            while let Some((at, index)) = due.recv().await {
                match get(index).await {
                    Ok(answer) if answer.status().is_success() => {
                        let _ = answer.bytes().await;
                        latencies.push(at.elapsed());
                    }
                    _ => failed += 1,
                }
            }
            (latencies, failed)
        });
    }
    let commands = commands_beside(api, users, bots, command_clients, seconds);
    let send = async {
        // The commands' warm-up second first, then the queries.
        tokio::time::sleep(Duration::from_millis(1_200)).await;
        let total = (rate * seconds.as_secs_f64()).round() as u64;
        let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
        ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
        let started = Instant::now();
        for n in 0..total {
            let due = ticker.tick().await;
            let n = n as usize;
            let _ = senders[n % connections].send((due, n.wrapping_mul(7919)));
        }
        senders.clear();
        (total, started)
    };
    let (commands, (sent, started)) = tokio::join!(commands, send);
    let commands = commands?;
    let mut latencies = Vec::new();
    let mut failed = 0u64;
    while let Some(joined) = workers.join_next().await {
        let (mut own, own_failed) = joined.context("an open-loop connection panicked")?;
        latencies.append(&mut own);
        failed += own_failed;
    }
    let elapsed = started.elapsed().as_secs_f64();
    Ok(OpenLoop {
        connections,
        target_rate: rate,
        achieved_rate: latencies.len() as f64 / elapsed,
        sent,
        failed,
        latency: crate::stats::Percentiles::of(&latencies),
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
