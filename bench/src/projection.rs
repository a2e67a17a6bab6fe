//! `muckard-bench projection`: in one run, on a fresh database,
//!
//! 1. seeds N valid domain events with set-based SQL;
//! 2. baseline: reads the whole log through `LogReader::read_after` in
//!    batches and decodes every payload into its domain event type;
//! 3. catch-up: the five read-model projectors from zero, concurrently, one
//!    `SubscriberRunner::catch_up` task each, as the workers run them;
//! 4. lag: commit-to-read-model lag under a steady command load (see
//!    [`crate::lag`]);
//!
//! then prints a table and writes the figures as JSON.

use std::time::{Duration, Instant};

use anyhow::{anyhow, ensure, Context, Result};
use clap::ValueEnum;
use event_log::Position;
use event_log::{LogReader, SubscriberRunner, SubscriberSettings};
use projections::read_models;
use serde::Serialize;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::decode::AnyEvent;
use crate::harness::{Report, Run, RunSettings};
use crate::lag::{LagReport, LagSettings};
use crate::seed::{ReadModelCounts, SeedPlan, SeedReport};
use crate::stats::rate;
use crate::table::{latency_row, phase_row, phase_table, thousands, Table};
use crate::ProjectionArgs;

/// Which database the lag is measured on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LagDatabase {
    /// The seeded database, after the catch-up.
    Same,
    /// A second, empty database.
    Fresh,
}

#[derive(Debug, Serialize)]
struct Parameters {
    events: u64,
    batch_size: i64,
    plan: SeedPlan,
    portfolio_share: f64,
    rate: f64,
    duration_seconds: f64,
    lag_bots: u32,
    lag_database: Option<LagDatabase>,
    poll_interval_ms: u64,
}

#[derive(Debug, Serialize)]
pub(crate) struct BaselineReport {
    pub(crate) events: u64,
    batches: u64,
    pub(crate) seconds: f64,
    pub(crate) events_per_second: f64,
    /// Time inside `read_after` (query, transfer, row to `RecordedEvent`).
    read_seconds: f64,
    /// Time decoding payloads into domain events.
    decode_seconds: f64,
    by_aggregate: Vec<(&'static str, u64)>,
}

#[derive(Debug, Serialize)]
struct ProjectorReport {
    name: &'static str,
    events_handled: u64,
    seconds: f64,
    events_per_second: f64,
}

#[derive(Debug, Serialize)]
struct CatchUpReport {
    events: u64,
    wall_seconds: f64,
    /// N / wall time of the slowest projector.
    events_per_second: f64,
    /// `events_per_second` / the baseline's read+decode rate.
    ratio_to_baseline: f64,
    projectors: Vec<ProjectorReport>,
    read_models: ReadModelCounts,
}

#[derive(Debug, Serialize)]
struct Results {
    parameters: Parameters,
    seed: SeedReport,
    seed_checked_event_types: Vec<String>,
    baseline: BaselineReport,
    catch_up: CatchUpReport,
    lag: Option<LagReport>,
}

pub async fn run(args: ProjectionArgs) -> Result<()> {
    let plan = SeedPlan::new(args.events, args.users, args.bots, args.portfolio_share)?;
    ensure!(args.batch_size >= 1, "--batch-size must be at least 1");
    ensure!(
        args.rate.is_finite() && args.rate > 0.0,
        "--rate must be greater than 0"
    );
    ensure!(
        args.duration.is_finite() && args.duration > 0.0,
        "--duration must be greater than 0"
    );
    ensure!(args.lag_bots >= 1, "--lag-bots must be at least 1");
    let title = format!(
        "muckard-bench projection: {} events, batch size {}",
        thousands(plan.events() as f64),
        args.batch_size
    );
    let settings =
        RunSettings::new(title, &args.server, 16, &args.output).keep_database(args.keep_database);
    crate::harness::run(settings, async |run: &mut Run| {
        measure(&args, &plan, run).await
    })
    .await
}

async fn measure(args: &ProjectionArgs, plan: &SeedPlan, run: &mut Run) -> Result<Results> {
    let pool = &run.pool.clone();
    eprintln!(
        "seeding {} users, {} keys, {} bots, {} fills, {} portfolio trades",
        plan.users, plan.users, plan.bots, plan.fills, plan.portfolio_trades
    );
    let seed = crate::seed::seed(pool, plan).await?;
    eprintln!(
        "  {:.1} s ({:.0} events/s), settle {:.1} s",
        seed.seconds, seed.events_per_second, seed.settle_seconds
    );
    let checked = crate::seed::check_payloads(pool).await?;
    eprintln!(
        "  payloads round-trip through the domain types: {}",
        checked.join(", ")
    );

    eprintln!("baseline: read+decode");
    let baseline = read_and_decode(pool, args.batch_size, plan).await?;
    eprintln!(
        "  {:.1} s ({:.0} events/s)",
        baseline.seconds, baseline.events_per_second
    );
    eprintln!("catch-up: five projectors from zero");
    let mut catch_up = run_catch_up(pool, args.batch_size, plan).await?;
    catch_up.ratio_to_baseline = catch_up.events_per_second / baseline.events_per_second;
    eprintln!(
        "  {:.1} s ({:.0} events/s)",
        catch_up.wall_seconds, catch_up.events_per_second
    );
    let lag = if args.no_lag {
        None
    } else {
        let url = match args.lag_database {
            LagDatabase::Same => run.database().url.clone(),
            LagDatabase::Fresh => {
                let fresh = run.another_database().await?;
                eprintln!("database {} (lag)", fresh.name);
                fresh.url.clone()
            }
        };
        eprintln!("lag: steady command load");
        let settings = LagSettings {
            rate: args.rate,
            duration: Duration::from_secs_f64(args.duration),
            bots: args.lag_bots,
            batch_size: args.batch_size,
        };
        Some(crate::lag::measure(&url, &settings).await?)
    };

    Ok(Results {
        parameters: Parameters {
            events: plan.events(),
            batch_size: args.batch_size,
            plan: *plan,
            portfolio_share: args.portfolio_share,
            rate: args.rate,
            duration_seconds: args.duration,
            lag_bots: args.lag_bots,
            lag_database: (!args.no_lag).then_some(args.lag_database),
            poll_interval_ms: SubscriberSettings::default().poll_interval.as_millis() as u64,
        },
        seed,
        seed_checked_event_types: checked,
        baseline,
        catch_up,
        lag,
    })
}

/// Reads the whole log in batches through the log reader and decodes
/// every payload, as a projector would without writing anything.
pub(crate) async fn read_and_decode(
    pool: &PgPool,
    batch_size: i64,
    plan: &SeedPlan,
) -> Result<BaselineReport> {
    let reader = LogReader::new();
    let mut after = Position::default();
    let mut read = Duration::ZERO;
    let mut decode = Duration::ZERO;
    let mut batches = 0u64;
    let mut counts = [0u64; 4];
    let started = Instant::now();
    loop {
        let at = Instant::now();
        let events = reader
            .read_after(pool, after, batch_size)
            .await
            .context("reading the log")?;
        read += at.elapsed();
        let Some(last) = events.last() else {
            break;
        };
        after = last.position;
        batches += 1;
        let at = Instant::now();
        for event in &events {
            let index = match AnyEvent::decode(event)? {
                AnyEvent::User(_) => 0,
                AnyEvent::ExchangeKey(_) => 1,
                AnyEvent::Bot(_) => 2,
                AnyEvent::Portfolio(_) => 3,
            };
            counts[index] += 1;
        }
        decode += at.elapsed();
    }
    let elapsed = started.elapsed();
    let by_aggregate: Vec<(&'static str, u64)> = plan
        .by_aggregate()
        .iter()
        .zip(counts)
        .map(|((name, _), count)| (*name, count))
        .collect();
    ensure!(
        by_aggregate == plan.by_aggregate().to_vec(),
        "the log reader returned {by_aggregate:?}, seeded {:?}",
        plan.by_aggregate()
    );
    let events = counts.iter().sum();
    Ok(BaselineReport {
        events,
        batches,
        seconds: elapsed.as_secs_f64(),
        events_per_second: rate(events, elapsed),
        read_seconds: read.as_secs_f64(),
        decode_seconds: decode.as_secs_f64(),
        by_aggregate,
    })
}

/// Every read-model projector catching up from zero, each in its own task
/// on one runner, as the workers run them.
async fn run_catch_up(pool: &PgPool, batch_size: i64, plan: &SeedPlan) -> Result<CatchUpReport> {
    let shutdown = CancellationToken::new();
    let runner = SubscriberRunner::new(
        pool.clone(),
        LogReader::new(),
        SubscriberSettings {
            batch_size,
            ..SubscriberSettings::default()
        },
        shutdown.clone(),
    );
    let started = Instant::now();
    let tasks: Vec<_> = read_models::all()
        .into_iter()
        .map(|projector| {
            let runner = runner.clone();
            tokio::spawn(async move {
                let at = Instant::now();
                let handled = runner.catch_up(projector.as_ref()).await;
                (projector.name(), handled, at.elapsed())
            })
        })
        .collect();
    let mut projectors = Vec::new();
    let mut failure = None;
    for task in tasks {
        let (name, handled, elapsed) = task.await.context("a projector task panicked")?;
        match handled {
            Ok(handled) => projectors.push(ProjectorReport {
                name,
                events_handled: handled,
                seconds: elapsed.as_secs_f64(),
                events_per_second: rate(handled, elapsed),
            }),
            Err(error) => {
                failure.get_or_insert(anyhow!(error).context(format!("projector {name}")));
            }
        }
    }
    let wall = started.elapsed();
    shutdown.cancel();
    if let Some(failure) = failure {
        return Err(failure);
    }
    for projector in &projectors {
        ensure!(
            projector.events_handled == plan.events(),
            "{} handled {} events of {}",
            projector.name,
            projector.events_handled,
            plan.events()
        );
    }
    let read_models = ReadModelCounts::read(pool).await?;
    ensure!(
        read_models == plan.expected_read_models(),
        "the read models do not match the seed: {read_models:?}, expected {:?}",
        plan.expected_read_models()
    );
    Ok(CatchUpReport {
        events: plan.events(),
        wall_seconds: wall.as_secs_f64(),
        events_per_second: rate(plan.events(), wall),
        ratio_to_baseline: 0.0,
        projectors,
        read_models,
    })
}

impl Report for Results {
    const BENCHMARK: &'static str = "projection";

    fn print(&self) {
        let seed = &self.seed;
        let baseline = &self.baseline;
        let catch_up = &self.catch_up;
        let plan = &self.parameters.plan;
        println!();
        println!(
            "Log: {} events = {} users, {} keys (connected+tested), {} bots (3 events each), \
             {} fills, {} portfolio trades; events table {:.0} MiB",
            thousands(seed.events as f64),
            plan.users,
            plan.users,
            plan.bots,
            thousands(plan.fills as f64),
            thousands(plan.portfolio_trades as f64),
            seed.table_bytes as f64 / f64::from(1u32 << 20),
        );
        println!();
        let mut phases = phase_table(40);
        phases
            .row(phase_row(
                "seed (INSERT ... SELECT, trigger)",
                seed.events,
                seed.seconds,
                seed.events_per_second,
            ))
            .row([
                "  settle (VACUUM ANALYZE, CHECKPOINT)".to_string(),
                String::new(),
                format!("{:.2}", seed.settle_seconds),
            ])
            .row(phase_row(
                &format!(
                    "baseline read+decode (batch {})",
                    self.parameters.batch_size
                ),
                baseline.events,
                baseline.seconds,
                baseline.events_per_second,
            ));
        for (part, seconds) in [
            ("read_after", baseline.read_seconds),
            ("decode", baseline.decode_seconds),
        ] {
            phases.row([
                format!("  of which {part}"),
                String::new(),
                format!("{seconds:.2}"),
                thousands(rate_f(baseline.events, seconds)),
            ]);
        }
        phases.row(phase_row(
            "catch-up, 5 projectors concurrently",
            catch_up.events,
            catch_up.wall_seconds,
            catch_up.events_per_second,
        ));
        for projector in &catch_up.projectors {
            phases.row(phase_row(
                &format!("  {}", projector.name),
                projector.events_handled,
                projector.seconds,
                projector.events_per_second,
            ));
        }
        phases.print();
        println!(
            "catch-up / baseline throughput: {:.3}",
            catch_up.ratio_to_baseline
        );

        if let Some(lag) = &self.lag {
            print_lag(lag, self.parameters.lag_database);
        }
    }
}

fn print_lag(lag: &LagReport, lag_database: Option<LagDatabase>) {
    println!();
    println!(
        "Lag, command returned -> checkpoint reached ({} database, {} events in the log): \
         {} at {}/s target for {:.0} s over {} bots",
        match lag_database {
            Some(LagDatabase::Fresh) => "fresh",
            _ => "seeded",
        },
        thousands(lag.log_events_at_start as f64),
        lag.command,
        lag.target_rate,
        lag.duration_seconds,
        lag.bots,
    );
    println!(
        "  issued {}, committed {}, failed {}; achieved {:.1} commands/s",
        lag.issued, lag.committed, lag.failed, lag.achieved_rate
    );
    if let Some(failure) = &lag.first_failure {
        println!("  first failure: {failure}");
    }
    let mut table = Table::new([
        "",
        "samples",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "unresolved",
    ])
    .widths([26, 8, 9, 9, 9, 9, 10]);
    if let Some(latency) = &lag.command_latency {
        table.row(latency_row("command latency", latency));
    }
    for subscriber in &lag.subscribers {
        let name = format!("lag {}", subscriber.subscriber);
        let mut row = match &subscriber.lag {
            Some(lag) => latency_row(&name, lag),
            None => [name.as_str(), "0", "-", "-", "-", "-"]
                .map(String::from)
                .to_vec(),
        };
        row.push(subscriber.unresolved.to_string());
        table.row(row);
    }
    table.print();
    if let Some(query) = &lag.poll_query {
        println!(
            "  poller: every {} ms, {} polls, checkpoint query p50 {:.2} ms p99 {:.2} ms",
            lag.poll_interval_ms, lag.polls, query.p50_ms, query.p99_ms
        );
    }
}

fn rate_f(events: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        events as f64 / seconds
    } else {
        0.0
    }
}
