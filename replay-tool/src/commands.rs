//! One function per command: do the work through `projections`, print the
//! outcome as text or JSON, and say whether a discrepancy was found.

use anyhow::{Context, Result};
use domain::AggregateType;
use projections::audit::anchor;
use projections::audit::export::{build_report, verify_report};
use projections::audit::signing::{AuditSigner, PublicKey};
use projections::audit::stream::{state_as_of, Until};
use projections::audit::verify::{verify_log, VerifyRange};
use projections::rebuild::{self, RebuildPlan, Stop};
use serde::Serialize;
use serde_json::json;
use sqlx::PgPool;
use std::time::Duration;

use crate::progress::Bar;
use crate::{
    Cli, Command, ExportArgs, Outcome, RebuildArgs, StateArgs, VerifyArgs, VerifyExportArgs,
};

pub async fn run(cli: Cli) -> Result<Outcome> {
    let pool = command_side::database::connect(&cli.database_url, 8)
        .await
        .context("connecting to the database (DATABASE_URL)")?;
    let json = cli.json;
    let outcome = match cli.command {
        Command::Rebuild(args) => rebuild(&pool, args, json).await,
        Command::State(args) => state(&pool, args, json).await,
        Command::Verify(args) => verify(&pool, args, json).await,
        Command::Export(args) => export(&pool, args, json).await,
        Command::VerifyExport(args) => verify_export(&pool, args, json).await,
    };
    pool.close().await;
    outcome
}

fn print_json(value: &impl Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

async fn rebuild(pool: &PgPool, args: RebuildArgs, json: bool) -> Result<Outcome> {
    let stop = match (args.to_position, args.as_of) {
        (Some(position), _) => Stop::Position { position },
        (None, Some(as_of)) => Stop::AsOf { as_of },
        (None, None) => Stop::Head,
    };
    let plan = RebuildPlan {
        name: args.name.clone(),
        projections: rebuild::projections_named(&args.projection)?,
        stop,
        batch_size: args.batch_size,
    };
    let tables: Vec<&'static str> = plan.projections.iter().map(|p| p.name()).collect();
    let report = rebuild::rebuild(pool, &plan, &Bar::new()).await?;
    let mut outcome = Outcome::Clean;
    let diffs = if args.compare {
        let diffs = rebuild::compare(pool, &args.name, &tables, args.diff_limit).await?;
        if diffs.iter().any(|d| !d.is_identical()) {
            outcome = Outcome::Discrepancy;
        }
        Some(diffs)
    } else {
        None
    };
    let checkpoints = rebuild::checkpoints(pool, &args.name, &tables).await?;
    if args.swap {
        rebuild::swap(pool, &args.name, &tables).await?;
    }
    if json {
        print_json(&json!({
            "rebuild": report,
            "checkpoints": checkpoints,
            "compare": diffs,
            "swapped": args.swap,
        }))?;
        return Ok(outcome);
    }
    print_rebuild(&report, &checkpoints, diffs.as_deref(), args.swap);
    Ok(outcome)
}

/// The text form of a rebuild's outcome.
fn print_rebuild(
    report: &rebuild::RebuildReport,
    checkpoints: &[rebuild::Checkpoints],
    diffs: Option<&[rebuild::TableDiff]>,
    swapped: bool,
) {
    println!(
        "rebuilt {} into {} from the log: {} events read, {} applied, up to position {} in {:.2} s ({:.0} events/s)",
        report.projections.join(", "),
        report.schema,
        report.events_read,
        report.events_applied,
        report.position,
        report.seconds,
        report.events_per_second
    );
    for checkpoint in checkpoints {
        let show = |p: Option<event_log::Position>| p.map_or("none".to_string(), |p| p.to_string());
        println!(
            "  {:<14} shadow at {}, live at {}",
            checkpoint.subscriber,
            show(checkpoint.shadow),
            show(checkpoint.live)
        );
    }
    if let Some(diffs) = diffs {
        for diff in diffs {
            let verdict = if diff.is_identical() {
                "identical".to_string()
            } else {
                format!(
                    "DIFFERS: {} only in shadow, {} only in live, {} differing",
                    diff.only_in_shadow, diff.only_in_live, diff.differing
                )
            };
            println!(
                "  {:<14} {} rows shadow, {} rows live: {verdict}",
                diff.table, diff.shadow_rows, diff.live_rows
            );
            for row in &diff.rows {
                println!("    key {}", row.key);
                println!("      shadow: {}", row.shadow);
                println!("      live:   {}", row.live);
            }
        }
    }
    if swapped {
        println!(
            "swapped: the rebuilt tables are live; the old ones are in {}_retired",
            report.schema
        );
    }
}

async fn state(pool: &PgPool, args: StateArgs, json: bool) -> Result<Outcome> {
    let kind: AggregateType = args.aggregate_type.parse()?;
    let until = match (args.as_of, args.at_sequence) {
        (Some(as_of), _) => Until::AsOf { as_of },
        (None, Some(sequence)) => Until::Sequence { sequence },
        (None, None) => Until::End,
    };
    let Some(found) = state_as_of(pool, kind, &args.id, until).await? else {
        anyhow::bail!("no events for {kind}/{}", args.id);
    };
    if json {
        print_json(&found.to_json())?;
        return Ok(Outcome::Clean);
    }
    println!(
        "{kind}/{} after sequence {}:\n{}",
        args.id,
        found.sequence,
        serde_json::to_string_pretty(&found.state)?
    );
    println!("built by {} events:", found.events.len());
    for event in &found.events {
        println!(
            "  #{:<4} {} {:<24} v{} position {} hash {}",
            event.fields.sequence,
            event.fields.recorded_at,
            event.fields.event_type,
            event.fields.event_version,
            event.fields.global_position,
            event.hash
        );
    }
    Ok(Outcome::Clean)
}

async fn verify(pool: &PgPool, args: VerifyArgs, json: bool) -> Result<Outcome> {
    let range = VerifyRange {
        from: args.from,
        to: args.to,
    };
    let report = verify_log(pool, range, &Bar::new()).await?;
    let anchors = match &args.anchors {
        Some(dir) => {
            let key = args
                .public_key
                .as_deref()
                .context("--anchors needs --public-key (or AUDIT_PUBLIC_KEY)")?;
            let trusted = PublicKey::from_hex(key).context("--public-key")?;
            let checkpoints = if dir.as_os_str() == "kafka" {
                kafka_checkpoints()?
            } else {
                anchor::read_dir(dir)?
            };
            Some(anchor::verify_against_checkpoints(pool, checkpoints, &trusted).await?)
        }
        None => None,
    };
    let outcome = if report.is_clean() && anchors.as_ref().is_none_or(|a| a.is_clean()) {
        Outcome::Clean
    } else {
        Outcome::Discrepancy
    };
    if json {
        // The chain's report as before, with the anchors' findings beside
        // it when they were checked.
        let mut printed = serde_json::to_value(&report)?;
        if let (Some(anchors), Some(map)) = (&anchors, printed.as_object_mut()) {
            map.insert("anchors".to_string(), serde_json::to_value(anchors)?);
        }
        print_json(&printed)?;
        return Ok(outcome);
    }
    if let Some(anchors) = &anchors {
        for finding in &anchors.findings {
            println!("ANCHOR {finding}");
        }
        println!(
            "checked {} streams against {} signed checkpoints: {} findings",
            anchors.streams_checked,
            anchors.checkpoints,
            anchors.findings.len()
        );
    }
    for broken in &report.broken_rows {
        println!("BROKEN {broken}");
    }
    println!(
        "verified {} events in {} streams in {:.2} s ({:.0} events/s): {} broken rows",
        report.events_checked,
        report.streams_checked,
        report.seconds,
        report.events_checked as f64 / report.seconds.max(1e-9),
        report.broken_rows.len()
    );
    Ok(outcome)
}

/// The checkpoints on the Kafka topic of checkpoints, with the broker and
/// prefix from the environment (`KAFKA_BOOTSTRAP_SERVERS`,
/// `KAFKA_TOPIC_PREFIX`, the `KAFKA_SECURITY_*` settings), as the service
/// reads them.
fn kafka_checkpoints() -> Result<Vec<anchor::Checkpoint>> {
    let settings = kafka_mirror::KafkaSettings::from_lookup(&|name| std::env::var(name).ok())
        .map_err(|e| anyhow::anyhow!("{}: {}", e.name, e.reason))?;
    let texts = kafka_mirror::checkpoints::read_all(&settings, Duration::from_secs(30))
        .context("reading the checkpoints from Kafka")?;
    texts
        .iter()
        .map(|text| serde_json::from_str(text).context("a checkpoint on Kafka"))
        .collect()
}

async fn export(pool: &PgPool, args: ExportArgs, json: bool) -> Result<Outcome> {
    let signer = args
        .signing_key
        .as_deref()
        .map(|seed| {
            let bytes = hex::decode(seed.trim()).unwrap_or_default();
            AuditSigner::from_seed(&bytes).context("--signing-key")
        })
        .transpose()?;
    let report = build_report(pool, args.user, args.from, args.to, signer.as_ref()).await?;
    if report.content.streams.is_empty() {
        anyhow::bail!(
            "user {} has no events up to {}",
            args.user,
            report.content.to
        );
    }
    let text = serde_json::to_string_pretty(&report)?;
    std::fs::write(&args.out, text + "\n")
        .with_context(|| format!("writing {}", args.out.display()))?;
    if json {
        print_json(&json!({
            "out": args.out,
            "user_id": report.content.user_id,
            "from": report.content.from,
            "to": report.content.to,
            "streams": report.content.streams.len(),
            "events": report.content.event_count,
            "digest": report.digest,
        }))?;
    } else {
        println!(
            "wrote {}: {} events of {} streams of user {}, recorded up to {}; sha256 {}",
            args.out.display(),
            report.content.event_count,
            report.content.streams.len(),
            report.content.user_id,
            report.content.to,
            report.digest.value
        );
    }
    Ok(Outcome::Clean)
}

async fn verify_export(pool: &PgPool, args: VerifyExportArgs, json: bool) -> Result<Outcome> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let trusted = args
        .public_key
        .as_deref()
        .map(|key| PublicKey::from_hex(key).context("--public-key"))
        .transpose()?;
    let verification = verify_report(pool, &text, trusted.as_ref()).await?;
    let outcome = if verification.is_clean() {
        Outcome::Clean
    } else {
        Outcome::Discrepancy
    };
    if json {
        print_json(&verification)?;
        return Ok(outcome);
    }
    for problem in &verification.problems {
        println!("PROBLEM {problem}");
    }
    println!(
        "{}: digest {}, signature {}, {} events in {} streams checked against the log: {} problems",
        args.file.display(),
        if verification.digest_matches {
            "matches"
        } else {
            "DOES NOT MATCH"
        },
        verification.signature,
        verification.events_checked,
        verification.streams_checked,
        verification.problems.len()
    );
    Ok(outcome)
}
