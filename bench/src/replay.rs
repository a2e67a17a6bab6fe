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
//! 4. verify --anchors kafka (unless `--no-anchors`): the Kafka mirror
//!    publishes the log to the run's own topics and one checkpoint is
//!    signed and published (setup, untimed), then what `muckard-replay
//!    verify --anchors kafka` does beyond the chain is timed: reading the
//!    checkpoints from Kafka, checking them against the log, reading every
//!    mirrored event's `hash` header back and comparing it with the log.
//!    Its throughput is the log's events over the chain's verify time plus
//!    this, the whole command's work; it must find nothing;
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
struct AnchorFigures {
    /// Setup, not timed into the figures below.
    mirror: crate::kafka::Throughput,
    /// Making and signing a checkpoint of the whole log: the anchor
    /// worker's cost each round (every checkpoint reads and digests every
    /// stream's head; it lists only the heads changed since the previous).
    make_checkpoint_seconds: f64,
    checkpoints: usize,
    /// The mirrored events read back (and compared with the log).
    mirrored_links: usize,
    /// Reading the checkpoints and checking them against the log.
    checkpoint_seconds: f64,
    /// Reading every mirrored link back and comparing it with the log.
    kafka_copy_seconds: f64,
    /// The chain's verify plus both of the above: `verify --anchors kafka`.
    total_seconds: f64,
    events_per_second: f64,
    /// `events_per_second` / plain verify's.
    ratio_to_verify: f64,
    findings: usize,
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
    anchors: Option<AnchorFigures>,
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
    let prefix = format!(
        "bench{}.replay.",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let kafka = anchor_settings(&args, &prefix)?;
    crate::harness::run_and_clean_up(
        settings,
        async |run: &mut Run| measure(&args, &plan, &run.pool, &kafka).await,
        delete_topics(kafka.clone()),
    )
    .await
}

fn anchor_settings(args: &ReplayArgs, prefix: &str) -> Result<kafka_mirror::KafkaSettings> {
    let env = std::collections::HashMap::from([
        ("KAFKA_BOOTSTRAP_SERVERS", args.bootstrap_servers.clone()),
        ("KAFKA_TOPIC_PREFIX", prefix.to_string()),
    ]);
    kafka_mirror::KafkaSettings::from_lookup(&|name| env.get(name).cloned())
        .map_err(|e| anyhow::anyhow!("{e}"))
}

async fn delete_topics(settings: kafka_mirror::KafkaSettings) {
    use rdkafka::admin::{AdminClient, AdminOptions};
    use rdkafka::client::DefaultClientContext;
    let Ok(admin) = settings
        .client_config()
        .create::<AdminClient<DefaultClientContext>>()
    else {
        return;
    };
    let mut names: Vec<String> = settings
        .layout
        .specs()
        .into_iter()
        .map(|s| s.name)
        .collect();
    names.push(kafka_mirror::checkpoints::topic(&settings));
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let _ = admin
        .delete_topics(
            &names,
            &AdminOptions::new().operation_timeout(Some(std::time::Duration::from_secs(10))),
        )
        .await;
}

/// Step 4 (see the module documentation).
async fn verify_against_anchors(
    pool: &PgPool,
    kafka: &kafka_mirror::KafkaSettings,
    events: u64,
    verify: &VerifyFigures,
) -> Result<AnchorFigures> {
    use projections::audit::anchor;
    use std::time::{Duration, Instant};
    eprintln!("verify --anchors kafka: mirroring the log (setup)");
    crate::kafka::provision_topics(kafka).await?;
    let mirror = crate::kafka::mirror_catch_up(pool, kafka).await?;
    ensure!(
        mirror.events == events,
        "the mirror published {} events of {events}",
        mirror.events
    );
    kafka_mirror::checkpoints::provision(kafka, Duration::from_secs(15)).await?;
    let signer = projections::audit::signing::AuditSigner::from_seed(&rand::random::<[u8; 32]>())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    // What the service's anchor worker pays each round: every stream's
    // head read and digested, then signed.
    let signing = Instant::now();
    let checkpoint = anchor::make_checkpoint(pool, &signer, None).await?;
    let make_checkpoint_seconds = signing.elapsed().as_secs_f64();
    kafka_mirror::checkpoints::publish(
        kafka,
        &checkpoint.position,
        &serde_json::to_string(&checkpoint)?,
        Duration::from_secs(15),
    )
    .await?;
    let trusted = signer.public_key();

    eprintln!("verify --anchors kafka: checkpoints, then the Kafka copy");
    let started = Instant::now();
    let texts = kafka_mirror::checkpoints::read_all(kafka, Duration::from_secs(30))?;
    let checkpoints = texts
        .iter()
        .map(|text| serde_json::from_str(text))
        .collect::<Result<Vec<anchor::Checkpoint>, _>>()?;
    let checkpoint_count = checkpoints.len();
    let mut report = anchor::verify_against_checkpoints(pool, checkpoints, &trusted).await?;
    let checkpoint_seconds = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let links: Vec<(String, String, i64, String)> =
        kafka_mirror::checkpoints::read_mirrored_links(kafka, Duration::from_secs(60))?
            .into_iter()
            .map(|l| (l.aggregate_type, l.aggregate_id, l.sequence, l.hash))
            .collect();
    report
        .findings
        .extend(anchor::compare_with_mirror(pool, &links).await?);
    let kafka_copy_seconds = started.elapsed().as_secs_f64();
    ensure!(
        report.is_clean(),
        "verify --anchors kafka found {} findings in a clean log, the first: {}",
        report.findings.len(),
        report.findings[0]
    );
    ensure!(
        checkpoint_count == 1,
        "read {checkpoint_count} checkpoints, published 1"
    );
    if links.len() as u64 != events {
        // Seen with tansu's memory engine: a few messages the mirror had
        // acknowledged are not returned when the topics are read back.
        // The comparison checks what is read; the figure is printed.
        eprintln!(
            "  the broker returned {} of the {events} mirrored events",
            links.len()
        );
    }
    let total_seconds = verify.seconds + checkpoint_seconds + kafka_copy_seconds;
    let events_per_second = events as f64 / total_seconds.max(1e-9);
    Ok(AnchorFigures {
        mirror,
        make_checkpoint_seconds,
        checkpoints: checkpoint_count,
        mirrored_links: links.len(),
        checkpoint_seconds,
        kafka_copy_seconds,
        total_seconds,
        events_per_second,
        ratio_to_verify: events_per_second / verify.events_per_second,
        findings: report.findings.len(),
    })
}

async fn measure(
    args: &ReplayArgs,
    plan: &SeedPlan,
    pool: &PgPool,
    kafka: &kafka_mirror::KafkaSettings,
) -> Result<Results> {
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
    let anchors = if args.no_anchors {
        None
    } else {
        let figures = verify_against_anchors(pool, kafka, plan.events(), &verify).await?;
        eprintln!(
            "  {:.1} s ({:.0} events/s)",
            figures.total_seconds, figures.events_per_second
        );
        Some(figures)
    };
    Ok(Results {
        events: plan.events(),
        batch_size: args.batch_size,
        plan: *plan,
        seed,
        baseline,
        rebuild,
        verify,
        anchors,
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
            ));
        if let Some(anchors) = &self.anchors {
            phases.row(phase_row(
                "verify --anchors kafka (chain + anchors)",
                self.verify.events,
                anchors.total_seconds,
                anchors.events_per_second,
            ));
        }
        phases.print();
        if let Some(anchors) = &self.anchors {
            println!(
                "making and signing a checkpoint of the whole log: {:.2} s",
                anchors.make_checkpoint_seconds
            );
            println!(
                "--anchors kafka beyond the chain: checkpoints {:.2} s, Kafka copy ({} links) {:.2} s; \
                 throughput / plain verify: {:.3}",
                anchors.checkpoint_seconds,
                anchors.mirrored_links,
                anchors.kafka_copy_seconds,
                anchors.ratio_to_verify
            );
        }
        println!(
            "rebuild / baseline throughput: {:.3}",
            self.rebuild.ratio_to_baseline
        );
    }
}
