//! Rebuilding read models from the log, with the live projectors' own code,
//! into a shadow schema; comparing them with the live ones; swapping them in.
//!
//! The shadow schema `replay_<name>` holds an empty copy of each chosen
//! read-model table (`CREATE TABLE … (LIKE public.<table> INCLUDING ALL)`)
//! and of `subscriber_checkpoints`. The projectors run on connections whose
//! `search_path` is `replay_<name>, public`: their unqualified table names
//! resolve to the shadow copies, while `events` still resolves to the log.
//! The log is read once, in commit order through [`LogReader`], and each
//! batch goes to every projector, each on its own connection and
//! transaction, which also moves its shadow checkpoint.
//!
//! The rebuild stops at the head of the log as it stood when it began, at
//! `--to-position` (a commit-order prefix), or with `--as-of` applies only
//! events recorded by then (per stream, a prefix of its sequence).

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use event_log::Position;
use serde::Serialize;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};
use tokio::sync::mpsc;

use crate::audit::Progress;
use crate::read_models;
use event_log::{LogError, LogReader, RecordedEvent};
use event_log::{Subscriber, SubscriberError};

mod diff;
mod promote;

pub use diff::{checkpoints, compare, table_digest, Checkpoints, RowDiff, TableDiff};
pub use promote::swap;

/// The read-model tables and their primary keys.

#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("projector {projection}: {source}")]
    Projector {
        projection: &'static str,
        source: SubscriberError,
    },
    #[error("unknown projection {0:?}; expected all or one of {names}", names = read_models::names().join(", "))]
    UnknownProjection(String),
    #[error("invalid shadow name {0:?}: use 1 to 40 lower-case letters, digits or underscores")]
    InvalidName(String),
    #[error("shadow schema {0} does not exist; run a rebuild first")]
    NoShadow(String),
    #[error("{0}")]
    Failed(String),
}

/// Where a rebuild stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(tag = "stop", rename_all = "snake_case")]
pub enum Stop {
    /// The head of the log when the rebuild began.
    #[default]
    Head,
    /// The last event at or before this commit-order position.
    Position {
        #[serde(serialize_with = "position_token")]
        position: Position,
    },
    /// Only events recorded at or before this time.
    AsOf { as_of: DateTime<Utc> },
}

/// A position as its `<transaction>.<global position>` token.
fn position_token<S: serde::Serializer>(
    position: &Position,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_str(position)
}

pub(crate) fn optional_position_token<S: serde::Serializer>(
    position: &Option<Position>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match position {
        Some(position) => serializer.collect_str(position),
        None => serializer.serialize_none(),
    }
}

/// What to rebuild.
#[derive(Clone)]
pub struct RebuildPlan {
    /// The shadow schema is `replay_<name>`.
    pub name: String,
    pub projections: Vec<Arc<dyn Subscriber>>,
    pub stop: Stop,
    pub batch_size: i64,
}

/// The projectors named `name` (`all`, or one read model's name).
pub fn projections_named(name: &str) -> Result<Vec<Arc<dyn Subscriber>>, RebuildError> {
    let all = read_models::all();
    if name == "all" {
        return Ok(all);
    }
    let chosen: Vec<_> = all.into_iter().filter(|p| p.name() == name).collect();
    if chosen.is_empty() {
        return Err(RebuildError::UnknownProjection(name.to_string()));
    }
    Ok(chosen)
}

/// The shadow schema for `name`, checked to be a plain identifier.
pub fn shadow_schema(name: &str) -> Result<String, RebuildError> {
    let plain = !name.is_empty()
        && name.len() <= 40
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !plain {
        return Err(RebuildError::InvalidName(name.to_string()));
    }
    Ok(format!("replay_{name}"))
}

#[derive(Debug, Clone, Serialize)]
pub struct RebuildReport {
    pub schema: String,
    pub projections: Vec<&'static str>,
    #[serde(flatten)]
    pub stop: Stop,
    /// Events read from the log.
    pub events_read: u64,
    /// Events handed to the projectors (fewer than read with `as_of`).
    pub events_applied: u64,
    /// The position of the last event applied.
    #[serde(serialize_with = "position_token")]
    pub position: Position,
    pub seconds: f64,
    pub events_per_second: f64,
}

/// Rebuilds `plan.projections` into a fresh shadow schema (an old one of
/// the same name is dropped first).
pub async fn rebuild(
    pool: &PgPool,
    plan: &RebuildPlan,
    progress: &dyn Progress,
) -> Result<RebuildReport, RebuildError> {
    let schema = shadow_schema(&plan.name)?;
    create_shadow(pool, &schema, &plan.projections).await?;
    let started = Instant::now();
    let end = end_of_rebuild(pool, plan.stop).await?;
    progress.start("rebuild", count_events_up_to(pool, end).await?);
    let Workers { senders, handles } = spawn_workers(pool, &schema, &plan.projections).await?;
    let fed = feed(pool, plan, end, &senders, progress).await;
    drop(senders);
    let failure = first_worker_failure(handles).await;
    progress.finish();
    // A worker's error explains a feed that stopped early, so it comes first.
    if let Some(failure) = failure {
        return Err(failure);
    }
    Ok(report(schema, plan, fed?, started.elapsed().as_secs_f64()))
}

/// The last position to rebuild: the head of the log now, or the stop
/// position if that comes before it.
async fn end_of_rebuild(pool: &PgPool, stop: Stop) -> Result<Position, RebuildError> {
    let reader = LogReader::new();
    let head = reader.head(pool).await?;
    Ok(match stop {
        Stop::Position { position } => position.min(head),
        _ => head,
    })
}

/// How many events the log holds up to `end`, for the progress bar.
async fn count_events_up_to(pool: &PgPool, end: Position) -> Result<u64, RebuildError> {
    let total: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE (transaction_id, global_position) <= ($1::text::xid8, $2)",
    )
    .bind(end.transaction_text())
    .bind(end.global_position)
    .fetch_one(pool)
    .await?;
    Ok(total.max(0) as u64)
}

/// The projector workers of a rebuild and the channels that feed them.
struct Workers {
    senders: Vec<mpsc::Sender<Arc<Vec<RecordedEvent>>>>,
    handles: Vec<tokio::task::JoinHandle<Result<(), RebuildError>>>,
}

/// One worker per projector, each on its own shadow connection; the
/// reader feeds them the same batches.
async fn spawn_workers(
    pool: &PgPool,
    schema: &str,
    projections: &[Arc<dyn Subscriber>],
) -> Result<Workers, RebuildError> {
    let mut senders = Vec::new();
    let mut handles = Vec::new();
    for projector in projections {
        let connection = shadow_connection(pool, schema).await?;
        let (sender, receiver) = mpsc::channel::<Arc<Vec<RecordedEvent>>>(4);
        senders.push(sender);
        handles.push(tokio::spawn(project(
            connection,
            projector.clone(),
            receiver,
        )));
    }
    Ok(Workers { senders, handles })
}

/// Waits for every worker to finish and keeps the first error.
async fn first_worker_failure(
    handles: Vec<tokio::task::JoinHandle<Result<(), RebuildError>>>,
) -> Option<RebuildError> {
    let mut failure = None;
    for worker in handles {
        let outcome = worker.await.unwrap_or_else(|join| {
            Err(RebuildError::Failed(format!(
                "a projector task failed: {join}"
            )))
        });
        if let Err(error) = outcome {
            failure.get_or_insert(error);
        }
    }
    failure
}

fn report(schema: String, plan: &RebuildPlan, fed: Fed, seconds: f64) -> RebuildReport {
    let Fed {
        read: events_read,
        applied: events_applied,
        last_applied: position,
    } = fed;
    RebuildReport {
        schema,
        projections: plan.projections.iter().map(|p| p.name()).collect(),
        stop: plan.stop,
        events_read,
        events_applied,
        position,
        seconds,
        events_per_second: if seconds > 0.0 {
            events_read as f64 / seconds
        } else {
            0.0
        },
    }
}

/// What the reader fed the projectors.
struct Fed {
    read: u64,
    applied: u64,
    /// The position of the last event applied.
    last_applied: Position,
}

/// Reads the log once, in commit order up to `end`, and hands every batch
/// (only events recorded by `as_of`, with that stop) to every worker.
async fn feed(
    pool: &PgPool,
    plan: &RebuildPlan,
    end: Position,
    senders: &[mpsc::Sender<Arc<Vec<RecordedEvent>>>],
    progress: &dyn Progress,
) -> Result<Fed, RebuildError> {
    // The live projectors' reader: old event versions upcast alike.
    let reader = LogReader::with_upcasters(domain::upcasters());
    let mut connection = pool.acquire().await?;
    let mut after = Position::default();
    let mut fed = Fed {
        read: 0,
        applied: 0,
        last_applied: Position::default(),
    };
    while after < end {
        let batch = reader
            .read_after_on(&mut connection, after, plan.batch_size)
            .await?;
        let Some(last) = batch.last() else { break };
        after = last.position;
        let mut events: Vec<RecordedEvent> =
            batch.into_iter().filter(|e| e.position <= end).collect();
        fed.read += events.len() as u64;
        progress.advance(events.len() as u64);
        if let Stop::AsOf { as_of } = plan.stop {
            events.retain(|e| e.recorded_at <= as_of);
        }
        let Some(last) = events.last() else { continue };
        fed.last_applied = last.position;
        fed.applied += events.len() as u64;
        let events = Arc::new(events);
        for sender in senders {
            if sender.send(events.clone()).await.is_err() {
                // A worker stopped on an error, which the caller reports.
                return Ok(fed);
            }
        }
    }
    Ok(fed)
}

/// A connection whose unqualified names resolve to `schema` first.
pub async fn shadow_connection(pool: &PgPool, schema: &str) -> Result<PgConnection, sqlx::Error> {
    let options: PgConnectOptions = pool
        .connect_options()
        .as_ref()
        .clone()
        .options([("search_path", format!("{schema},public"))]);
    options.connect().await
}

async fn create_shadow(
    pool: &PgPool,
    schema: &str,
    projections: &[Arc<dyn Subscriber>],
) -> Result<(), RebuildError> {
    let mut transaction = pool.begin().await?;
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .execute(&mut *transaction)
        .await?;
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&mut *transaction)
        .await?;
    let tables = projections
        .iter()
        .map(|p| p.name())
        .chain(["subscriber_checkpoints"]);
    for table in tables {
        sqlx::query(&format!(
            "CREATE TABLE {schema}.{table} (LIKE public.{table} INCLUDING ALL)"
        ))
        .execute(&mut *transaction)
        .await?;
    }
    transaction.commit().await?;
    Ok(())
}

/// Applies batches to one projector, each in a transaction that moves its
/// shadow checkpoint, exactly as `SubscriberRunner::step` does live.
async fn project(
    mut connection: PgConnection,
    projector: Arc<dyn Subscriber>,
    mut batches: mpsc::Receiver<Arc<Vec<RecordedEvent>>>,
) -> Result<(), RebuildError> {
    let name = projector.name();
    let fail = |source: SubscriberError| RebuildError::Projector {
        projection: name,
        source,
    };
    event_log::checkpoint(&mut connection, name).await?;
    while let Some(events) = batches.recv().await {
        let Some(last) = events.last() else { continue };
        let mut transaction = connection.begin().await?;
        projector
            .handle(&mut transaction, &events)
            .await
            .map_err(fail)?;
        sqlx::query(
            "UPDATE subscriber_checkpoints \
             SET transaction_id = $2::text::xid8, global_position = $3, \
                 events_handled = events_handled + $4, updated_at = now() \
             WHERE subscriber = $1",
        )
        .bind(name)
        .bind(last.position.transaction_text())
        .bind(last.position.global_position)
        .bind(events.len() as i64)
        .execute(&mut *transaction)
        .await?;
        transaction.commit().await?;
    }
    connection.close().await.ok();
    Ok(())
}

pub(crate) fn primary_key(table: &str) -> Result<&'static [&'static str], RebuildError> {
    read_models::named(table)
        .map(|model| model.primary_key)
        .ok_or_else(|| RebuildError::UnknownProjection(table.to_string()))
}

pub(crate) async fn ensure_shadow(pool: &PgPool, schema: &str) -> Result<(), RebuildError> {
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .bind(schema)
            .fetch_one(pool)
            .await?;
    if !exists {
        return Err(RebuildError::NoShadow(schema.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shadow_names_are_plain_identifiers() {
        assert_eq!(shadow_schema("shadow").unwrap(), "replay_shadow");
        assert_eq!(shadow_schema("audit_2026").unwrap(), "replay_audit_2026");
        for bad in [
            "",
            "Shadow",
            "a-b",
            "x; DROP TABLE events",
            "a b",
            &"a".repeat(41),
        ] {
            assert!(shadow_schema(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn projections_are_chosen_by_name() {
        assert_eq!(
            projections_named("all").unwrap().len(),
            read_models::READ_MODELS.len()
        );
        let trades = projections_named("trades").unwrap();
        assert_eq!(trades.len(), 1);
        assert_eq!(trades[0].name(), "trades");
        assert!(projections_named("wallets").is_err());
        for model in &read_models::READ_MODELS {
            assert_eq!(projections_named(model.name).unwrap()[0].name(), model.name);
        }
    }
}
