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
use command_side::Position;
use serde::Serialize;
use serde_json::Value;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};
use tokio::sync::mpsc;

use crate::audit::Progress;
use crate::log::{LogError, LogReader, RecordedEvent};
use crate::read_models;
use crate::subscriber::{Subscriber, SubscriberError};

/// The read-model tables and their primary keys.
pub const PRIMARY_KEYS: [(&str, &[&str]); 5] = [
    ("users", &["user_id"]),
    ("exchange_keys", &["key_id"]),
    ("bot_status", &["bot_id"]),
    ("trades", &["trade_id"]),
    ("positions", &["user_id", "pair"]),
];

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
    #[error("unknown projection {0:?}; expected all or one of users, exchange_keys, bot_status, trades, positions")]
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

fn optional_position_token<S: serde::Serializer>(
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
    let reader = LogReader::new();
    let head = reader.head(pool).await?;
    let end = match plan.stop {
        Stop::Position { position } => position.min(head),
        _ => head,
    };
    let total: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE (transaction_id, global_position) <= ($1::text::xid8, $2)",
    )
    .bind(end.transaction_id.to_string())
    .bind(end.global_position)
    .fetch_one(pool)
    .await?;
    progress.start("rebuild", total.max(0) as u64);

    // One worker per projector, each on its own shadow connection; the
    // reader feeds them the same batches.
    let mut senders = Vec::new();
    let mut workers = Vec::new();
    for projector in &plan.projections {
        let connection = shadow_connection(pool, &schema).await?;
        let (sender, receiver) = mpsc::channel::<Arc<Vec<RecordedEvent>>>(4);
        senders.push(sender);
        workers.push(tokio::spawn(project(
            connection,
            projector.clone(),
            receiver,
        )));
    }

    let feed = async {
        let mut connection = pool.acquire().await?;
        let mut after = Position::default();
        let (mut read, mut applied, mut last_applied) = (0u64, 0u64, Position::default());
        while after < end {
            let batch = reader
                .read_after_on(&mut connection, after, plan.batch_size)
                .await?;
            let Some(last) = batch.last() else { break };
            after = last.position;
            let mut events: Vec<RecordedEvent> =
                batch.into_iter().filter(|e| e.position <= end).collect();
            read += events.len() as u64;
            progress.advance(events.len() as u64);
            if let Stop::AsOf { as_of } = plan.stop {
                events.retain(|e| e.recorded_at <= as_of);
            }
            if let Some(last) = events.last() {
                last_applied = last.position;
            }
            applied += events.len() as u64;
            if events.is_empty() {
                continue;
            }
            let events = Arc::new(events);
            for sender in &senders {
                if sender.send(events.clone()).await.is_err() {
                    // A worker stopped on an error; collect it below.
                    return Ok((read, applied, last_applied));
                }
            }
        }
        Ok::<_, RebuildError>((read, applied, last_applied))
    }
    .await;
    drop(senders);
    let (fed, mut failure) = match feed {
        Ok(fed) => (Some(fed), None),
        Err(error) => (None, Some(error)),
    };
    for worker in workers {
        match worker.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                failure.get_or_insert(error);
            }
            Err(join) => {
                failure.get_or_insert(RebuildError::Failed(format!(
                    "a projector task failed: {join}"
                )));
            }
        }
    }
    progress.finish();
    if let Some(failure) = failure {
        return Err(failure);
    }
    let (events_read, events_applied, position) =
        fed.ok_or_else(|| RebuildError::Failed("the log reader stopped".to_string()))?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(RebuildReport {
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
    })
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
    crate::subscriber::checkpoint(&mut connection, name).await?;
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
        .bind(last.position.transaction_id.to_string())
        .bind(last.position.global_position)
        .bind(events.len() as i64)
        .execute(&mut *transaction)
        .await?;
        transaction.commit().await?;
    }
    connection.close().await.ok();
    Ok(())
}

/// One read model's shadow against its live table.
#[derive(Debug, Clone, Serialize)]
pub struct TableDiff {
    pub table: &'static str,
    pub shadow_rows: i64,
    pub live_rows: i64,
    /// SHA-256 over every row's text form in primary-key order: equal
    /// digests mean byte-identical tables.
    pub shadow_digest: String,
    pub live_digest: String,
    pub only_in_shadow: i64,
    pub only_in_live: i64,
    pub differing: i64,
    /// Up to `limit` differing rows: the key, the shadow row and the live
    /// row (`null` where absent).
    pub rows: Vec<RowDiff>,
}

impl TableDiff {
    pub fn is_identical(&self) -> bool {
        self.shadow_digest == self.live_digest
            && self.only_in_shadow == 0
            && self.only_in_live == 0
            && self.differing == 0
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RowDiff {
    pub key: Value,
    pub shadow: Value,
    pub live: Value,
}

/// Where the live projectors stand, for reading a comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Checkpoints {
    pub subscriber: String,
    #[serde(serialize_with = "optional_position_token")]
    pub shadow: Option<Position>,
    #[serde(serialize_with = "optional_position_token")]
    pub live: Option<Position>,
}

fn primary_key(table: &str) -> Result<&'static [&'static str], RebuildError> {
    PRIMARY_KEYS
        .iter()
        .find(|(name, _)| *name == table)
        .map(|(_, key)| *key)
        .ok_or_else(|| RebuildError::UnknownProjection(table.to_string()))
}

/// SHA-256 over the rows of `schema.table` as text, in key order, and the
/// row count.
pub async fn table_digest(
    connection: &mut PgConnection,
    schema: &str,
    table: &str,
) -> Result<(i64, String), RebuildError> {
    let key = primary_key(table)?.join(", ");
    let (rows, digest): (i64, Option<String>) = sqlx::query_as(&format!(
        "SELECT count(*), encode(sha256(convert_to(coalesce(string_agg(t::text, E'\\n' ORDER BY {key}), ''), 'UTF8')), 'hex') \
           FROM {schema}.{table} t"
    ))
    .fetch_one(&mut *connection)
    .await?;
    Ok((rows, digest.unwrap_or_default()))
}

/// Compares each shadow table of `name` with its live table by primary
/// key, listing at most `limit` differing rows per table.
pub async fn compare(
    pool: &PgPool,
    name: &str,
    tables: &[&'static str],
    limit: i64,
) -> Result<Vec<TableDiff>, RebuildError> {
    let schema = shadow_schema(name)?;
    ensure_shadow(pool, &schema).await?;
    let mut connection = pool.acquire().await?;
    let mut diffs = Vec::new();
    for &table in tables {
        let key = primary_key(table)?;
        let on = key
            .iter()
            .map(|column| format!("s.{column} = l.{column}"))
            .collect::<Vec<_>>()
            .join(" AND ");
        let key_json = key
            .iter()
            .map(|column| format!("'{column}', coalesce(s.{column}, l.{column})"))
            .collect::<Vec<_>>()
            .join(", ");
        let order = key
            .iter()
            .map(|column| format!("coalesce(s.{column}, l.{column})"))
            .collect::<Vec<_>>()
            .join(", ");
        let join = format!(
            "FROM {schema}.{table} s FULL JOIN public.{table} l ON {on} \
             WHERE s::text IS DISTINCT FROM l::text"
        );
        let (only_in_shadow, only_in_live, differing): (i64, i64, i64) = sqlx::query_as(&format!(
            "SELECT count(*) FILTER (WHERE l.{k} IS NULL), count(*) FILTER (WHERE s.{k} IS NULL), \
                    count(*) FILTER (WHERE s.{k} IS NOT NULL AND l.{k} IS NOT NULL) {join}",
            k = key[0]
        ))
        .fetch_one(&mut *connection)
        .await?;
        let rows: Vec<(Value, Option<Value>, Option<Value>)> = sqlx::query_as(&format!(
            "SELECT jsonb_build_object({key_json}), to_jsonb(s), to_jsonb(l) {join} ORDER BY {order} LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(&mut *connection)
        .await?;
        let (shadow_rows, shadow_digest) = table_digest(&mut connection, &schema, table).await?;
        let (live_rows, live_digest) = table_digest(&mut connection, "public", table).await?;
        diffs.push(TableDiff {
            table,
            shadow_rows,
            live_rows,
            shadow_digest,
            live_digest,
            only_in_shadow,
            only_in_live,
            differing,
            rows: rows
                .into_iter()
                .map(|(key, shadow, live)| RowDiff {
                    key,
                    shadow: shadow.unwrap_or(Value::Null),
                    live: live.unwrap_or(Value::Null),
                })
                .collect(),
        });
    }
    Ok(diffs)
}

/// The shadow's and the live checkpoints of `tables`' projectors.
pub async fn checkpoints(
    pool: &PgPool,
    name: &str,
    tables: &[&'static str],
) -> Result<Vec<Checkpoints>, RebuildError> {
    let schema = shadow_schema(name)?;
    let mut out = Vec::new();
    for &table in tables {
        let read = |schema: String| async move {
            let row: Option<(String, i64)> = sqlx::query_as(&format!(
                "SELECT transaction_id::text, global_position FROM {schema}.subscriber_checkpoints \
                 WHERE subscriber = $1"
            ))
            .bind(table)
            .fetch_optional(pool)
            .await?;
            Ok::<_, sqlx::Error>(row.map(|(transaction, global_position)| Position {
                transaction_id: transaction.parse().unwrap_or_default(),
                global_position,
            }))
        };
        out.push(Checkpoints {
            subscriber: table.to_string(),
            shadow: read(schema.clone()).await?,
            live: read("public".to_string()).await?,
        });
    }
    Ok(out)
}

async fn ensure_shadow(pool: &PgPool, schema: &str) -> Result<(), RebuildError> {
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

/// Promotes the shadow tables of `name` in one transaction: each live
/// table moves to `replay_<name>_retired` (kept for a roll-back by hand),
/// its shadow takes its place with the application role's grants, and the
/// live checkpoint takes the shadow's position, so the live projector goes
/// on from where the rebuild stopped. A live projector's batch in flight
/// waits for the swap, then fails its checkpoint check and is retried on
/// the new table.
pub async fn swap(pool: &PgPool, name: &str, tables: &[&'static str]) -> Result<(), RebuildError> {
    let schema = shadow_schema(name)?;
    ensure_shadow(pool, &schema).await?;
    let retired = format!("{schema}_retired");
    let mut transaction = pool.begin().await?;
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {retired} CASCADE"))
        .execute(&mut *transaction)
        .await?;
    sqlx::query(&format!("CREATE SCHEMA {retired}"))
        .execute(&mut *transaction)
        .await?;
    for &table in tables {
        primary_key(table)?;
        sqlx::query(&format!(
            "LOCK TABLE public.{table}, public.subscriber_checkpoints IN ACCESS EXCLUSIVE MODE"
        ))
        .execute(&mut *transaction)
        .await?;
        sqlx::query(&format!("ALTER TABLE public.{table} SET SCHEMA {retired}"))
            .execute(&mut *transaction)
            .await?;
        sqlx::query(&format!("ALTER TABLE {schema}.{table} SET SCHEMA public"))
            .execute(&mut *transaction)
            .await?;
        let role_exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'muckard_app')",
        )
        .fetch_one(&mut *transaction)
        .await?;
        if role_exists {
            sqlx::query(&format!(
                "GRANT SELECT, INSERT, UPDATE, DELETE ON public.{table} TO muckard_app"
            ))
            .execute(&mut *transaction)
            .await?;
        }
        sqlx::query(&format!(
            "INSERT INTO public.subscriber_checkpoints (subscriber, transaction_id, global_position, events_handled, updated_at) \
             SELECT subscriber, transaction_id, global_position, events_handled, now() \
               FROM {schema}.subscriber_checkpoints WHERE subscriber = $1 \
             ON CONFLICT (subscriber) DO UPDATE SET transaction_id = excluded.transaction_id, \
                 global_position = excluded.global_position, events_handled = excluded.events_handled, \
                 updated_at = now()"
        ))
        .bind(table)
        .execute(&mut *transaction)
        .await?;
    }
    transaction.commit().await?;
    Ok(())
}
