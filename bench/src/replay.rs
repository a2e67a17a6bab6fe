//! `muckard-bench replay`: in one run, on a fresh database seeded as the
//! projection benchmark seeds it,
//!
//! 1. baseline: the raw read+decode rate of the whole log through
//!    `LogReader` (the projection benchmark's own baseline);
//! 2. rebuild: `projections::rebuild::rebuild` of all five read models
//!    into a shadow schema from zero to the head, as `muckard-replay
//!    rebuild` runs it, checked against the seed afterwards;
//! 3. verify: `projections::audit::verify::verify_log` over the whole log,
//!    as `muckard-replay verify` runs it, which must find nothing broken;
//!
//! then prints a table and writes the figures as JSON.

use anyhow::{ensure, Context, Result};
use projections::audit::verify::{verify_log, VerifyRange};
use projections::audit::NoProgress;
use projections::rebuild::{self, RebuildPlan, Stop};
use serde::Serialize;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

use crate::harness::{Report, Run, RunSettings};
use crate::projection::{read_and_decode, BaselineReport};
use crate::seed::{ReadModelCounts, SeedPlan, SeedReport};
use crate::table::{phase_row, phase_table, thousands};
use crate::ReplayArgs;

const SHADOW: &str = "bench";

#[derive(Debug, Serialize)]
struct RebuildFigures {
    events: u64,
    seconds: f64,
    events_per_second: f64,
    /// `events_per_second` / the baseline's read+decode rate.
    ratio_to_baseline: f64,
    read_models: ReadModelCounts,
}

#[derive(Debug, Serialize)]
struct VerifyFigures {
    events: u64,
    streams: u64,
    seconds: f64,
    events_per_second: f64,
    broken_rows: usize,
}

#[derive(Debug, Serialize)]
struct Results {
    events: u64,
    batch_size: i64,
    plan: SeedPlan,
    seed: SeedReport,
    baseline: BaselineReport,
    rebuild: RebuildFigures,
    verify: VerifyFigures,
}

pub async fn run(args: ReplayArgs) -> Result<()> {
    let plan = SeedPlan::new(args.events, args.users, args.bots, 1.0)?;
    ensure!(args.batch_size >= 1, "--batch-size must be at least 1");
    let title = format!(
        "muckard-bench replay: {} events, batch size {}",
        thousands(plan.events() as f64),
        args.batch_size
    );
    let settings =
        RunSettings::new(title, &args.server, 16, &args.output).keep_database(args.keep_database);
    crate::harness::run(settings, async |run: &mut Run| {
        measure(&args, &plan, &run.pool).await
    })
    .await
}

async fn measure(args: &ReplayArgs, plan: &SeedPlan, pool: &PgPool) -> Result<Results> {
    eprintln!(
        "seeding {} users, {} keys, {} bots, {} fills, {} portfolio trades",
        plan.users, plan.users, plan.bots, plan.fills, plan.portfolio_trades
    );
    let seed = crate::seed::seed(pool, plan).await?;
    eprintln!(
        "  {:.1} s ({:.0} events/s)",
        seed.seconds, seed.events_per_second
    );

    eprintln!("baseline: read+decode");
    let baseline = read_and_decode(pool, args.batch_size, plan).await?;
    eprintln!(
        "  {:.1} s ({:.0} events/s)",
        baseline.seconds, baseline.events_per_second
    );

    eprintln!("rebuild: five read models into schema replay_{SHADOW}");
    let report = rebuild::rebuild(
        pool,
        &RebuildPlan {
            name: SHADOW.to_string(),
            projections: projections::read_models::all(),
            stop: Stop::Head,
            batch_size: args.batch_size,
        },
        &NoProgress,
    )
    .await
    .context("rebuilding")?;
    ensure!(
        report.events_read == plan.events(),
        "the rebuild read {} events of {}",
        report.events_read,
        plan.events()
    );
    let shadow = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(
            pool.connect_options()
                .as_ref()
                .clone()
                .options([("search_path", format!("replay_{SHADOW},public"))]),
        )
        .await?;
    let read_models = ReadModelCounts::read(&shadow).await?;
    shadow.close().await;
    ensure!(
        read_models == plan.expected_read_models(),
        "the rebuilt read models do not match the seed: {read_models:?}, expected {:?}",
        plan.expected_read_models()
    );
    let rebuild = RebuildFigures {
        events: report.events_read,
        seconds: report.seconds,
        events_per_second: report.events_per_second,
        ratio_to_baseline: report.events_per_second / baseline.events_per_second,
        read_models,
    };
    eprintln!(
        "  {:.1} s ({:.0} events/s)",
        rebuild.seconds, rebuild.events_per_second
    );

    eprintln!("verify: every hash chain");
    let verified = verify_log(pool, VerifyRange::default(), &NoProgress)
        .await
        .context("verifying")?;
    ensure!(
        verified.is_clean(),
        "verify found {} broken rows in a clean log, the first: {}",
        verified.broken_rows.len(),
        verified.broken_rows[0]
    );
    ensure!(
        verified.events_checked == plan.events(),
        "verify checked {} events of {}",
        verified.events_checked,
        plan.events()
    );
    let verify = VerifyFigures {
        events: verified.events_checked,
        streams: verified.streams_checked,
        seconds: verified.seconds,
        events_per_second: verified.events_checked as f64 / verified.seconds.max(1e-9),
        broken_rows: verified.broken_rows.len(),
    };
    eprintln!(
        "  {:.1} s ({:.0} events/s)",
        verify.seconds, verify.events_per_second
    );
    Ok(Results {
        events: plan.events(),
        batch_size: args.batch_size,
        plan: *plan,
        seed,
        baseline,
        rebuild,
        verify,
    })
}

impl Report for Results {
    const BENCHMARK: &'static str = "replay";

    fn print(&self) {
        println!();
        let mut phases = phase_table(44);
        phases
            .row(phase_row(
                "seed (INSERT ... SELECT, trigger)",
                self.seed.events,
                self.seed.seconds,
                self.seed.events_per_second,
            ))
            .row(phase_row(
                &format!("baseline read+decode (batch {})", self.batch_size),
                self.baseline.events,
                self.baseline.seconds,
                self.baseline.events_per_second,
            ))
            .row(phase_row(
                "rebuild, 5 read models into a shadow schema",
                self.rebuild.events,
                self.rebuild.seconds,
                self.rebuild.events_per_second,
            ))
            .row(phase_row(
                &format!("verify, {} streams", thousands(self.verify.streams as f64)),
                self.verify.events,
                self.verify.seconds,
                self.verify.events_per_second,
            ))
            .print();
        println!(
            "rebuild / baseline throughput: {:.3}",
            self.rebuild.ratio_to_baseline
        );
    }
}
