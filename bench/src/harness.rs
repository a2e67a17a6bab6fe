//! The run every benchmark shares, so each subcommand only measures and
//! prints: a fresh database (`muckard_bench_<random>`), the machine's
//! description, the measurement under Ctrl-C, the databases dropped at the
//! end whatever happened, then the benchmark's tables, its JSON under
//! `bench/results/` and the closing line.

use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

use crate::database::BenchDatabase;
use crate::machine::MachineFacts;
use crate::ServerArgs;

/// A benchmark's own figures: written to the JSON after the run's facts,
/// and printed as its tables.
pub trait Report: Serialize {
    /// `benchmark` in the JSON.
    const BENCHMARK: &'static str;

    /// Prints the tables (the machine is already printed).
    fn print(&self);
}

/// Where and how a benchmark runs.
#[derive(Debug)]
pub struct RunSettings<'a> {
    /// The line that opens the report.
    pub title: String,
    /// PostgreSQL's admin URL, to create and drop the run's databases.
    pub admin_url: &'a str,
    /// The pool of the run's database.
    pub max_connections: u32,
    /// Where to write the JSON results.
    pub output: &'a Path,
    /// Keep the databases instead of dropping them (for inspection).
    pub keep_database: bool,
}

impl<'a> RunSettings<'a> {
    pub fn new(
        title: String,
        server: &'a ServerArgs,
        max_connections: u32,
        output: &'a Path,
    ) -> Self {
        Self {
            title,
            admin_url: &server.database_url,
            max_connections,
            output,
            keep_database: false,
        }
    }

    pub fn keep_database(self, keep_database: bool) -> Self {
        Self {
            keep_database,
            ..self
        }
    }
}

/// The databases of a run, the first with a pool, while it measures.
pub struct Run {
    pub pool: PgPool,
    admin_url: String,
    databases: Vec<BenchDatabase>,
}

impl Run {
    /// The database the run made first, the one `pool` connects to.
    pub fn database(&self) -> &BenchDatabase {
        &self.databases[0]
    }

    /// Another empty, migrated database, dropped with the first.
    pub async fn another_database(&mut self) -> Result<&BenchDatabase> {
        let (database, pool) = BenchDatabase::create(&self.admin_url, 2).await?;
        pool.close().await;
        self.databases.push(database);
        Ok(&self.databases[self.databases.len() - 1])
    }
}

/// What every benchmark's JSON holds, its own figures after the run's.
#[derive(Debug, Serialize)]
struct Envelope<'a, R> {
    benchmark: &'static str,
    started_at: DateTime<Utc>,
    finished_at: DateTime<Utc>,
    wall_seconds: f64,
    load_average_at_end: String,
    database: &'a str,
    machine: &'a MachineFacts,
    #[serde(flatten)]
    results: &'a R,
}

/// Runs a benchmark from the fresh database to the closing line:
/// `measure` on the run's database; an error or Ctrl-C drops its future,
/// and with it every task it awaits.
pub async fn run<R: Report>(
    settings: RunSettings<'_>,
    measure: impl AsyncFnOnce(&mut Run) -> Result<R>,
) -> Result<()> {
    run_and_clean_up(settings, measure, async {}).await
}

/// [`run`], then `clean_up` removes what the run made outside its
/// databases (topics, queues), after an error or Ctrl-C too.
pub async fn run_and_clean_up<R: Report>(
    settings: RunSettings<'_>,
    measure: impl AsyncFnOnce(&mut Run) -> Result<R>,
    clean_up: impl Future<Output = ()>,
) -> Result<()> {
    let started_at = Utc::now();
    let wall = Instant::now();
    println!("{}", settings.title);
    let (database, pool) =
        BenchDatabase::create(settings.admin_url, settings.max_connections).await?;
    eprintln!("database {}", database.name);
    let database_name = database.name.clone();
    let mut run = Run {
        pool,
        admin_url: settings.admin_url.to_string(),
        databases: vec![database],
    };

    let describe_and_measure = async {
        let machine = MachineFacts::collect(&run.pool).await?;
        machine.print();
        let results = measure(&mut run).await?;
        Ok((machine, results))
    };
    let outcome: Result<_> = tokio::select! {
        outcome = describe_and_measure => outcome,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
    };
    finish(run, settings.keep_database).await;
    clean_up.await;
    let (machine, results) = outcome?;

    let wall_seconds = wall.elapsed().as_secs_f64();
    let report = Envelope {
        benchmark: R::BENCHMARK,
        started_at,
        finished_at: Utc::now(),
        wall_seconds,
        load_average_at_end: crate::machine::load_average(),
        database: &database_name,
        machine: &machine,
        results: &results,
    };
    results.print();
    write_json(settings.output, &report)?;
    println!(
        "\nwall time {wall_seconds:.1} s; load average {} at the start, \
         {} at the end; JSON in {}",
        machine.load_average_at_start,
        report.load_average_at_end,
        settings.output.display()
    );
    Ok(())
}

/// Closes the pool and drops (or keeps) every database of the run.
async fn finish(run: Run, keep_database: bool) {
    // Tasks of a dropped measurement may still hold connections; the
    // database is dropped WITH (FORCE) after a short wait for them.
    let _ = tokio::time::timeout(Duration::from_secs(2), run.pool.close()).await;
    drop(run.pool);
    for database in &run.databases {
        if keep_database {
            eprintln!("kept database {}", database.name);
        } else if let Err(error) = database.drop_database().await {
            eprintln!("warning: {error:#}");
        }
    }
}

/// Writes a benchmark's results as pretty JSON, making the directory.
fn write_json(path: &Path, results: &impl Serialize) -> Result<()> {
    if let Some(directory) = path.parent() {
        std::fs::create_dir_all(directory)
            .with_context(|| format!("creating {}", directory.display()))?;
    }
    let text = serde_json::to_string_pretty(results).context("serialising the results")?;
    std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
}
