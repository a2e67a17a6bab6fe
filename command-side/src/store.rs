//! The cqrs-es frameworks for the four aggregates on postgres-es with
//! snapshots, and the one way commands are executed: bounded retry on a
//! concurrency conflict, metadata on every event, a position token back.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use cqrs_es::persist::PersistedEventStore;
use cqrs_es::{
    Aggregate, AggregateError, CqrsFramework, DomainEvent, EventEnvelope, EventStore, Query,
};
use domain::bot::{Bot, BotServices};
use domain::exchange_key::{ExchangeKey, ExchangeKeyServices};
use domain::portfolio::Portfolio;
use domain::user::User;
use domain::DomainError;
use rand::Rng;
use sqlx::PgPool;

use crate::crypto::SecretBox;
use crate::error::CommandError;
use crate::exchange::Exchange;
use crate::metadata::CommandMetadata;
use crate::repository::{with_appended_position, LedgerEventRepository};
use crate::services::{EventStoreKeyDirectory, StoredKeyVerifier};

pub type Store<A> = PersistedEventStore<LedgerEventRepository, A>;
type Framework<A> = CqrsFramework<A, Store<A>>;

/// How the command side behaves; parsed from the environment by the binary.
#[derive(Clone)]
pub struct CommandSideSettings {
    /// A snapshot is taken every this many events of a stream.
    pub snapshot_every: usize,
    /// Attempts at a command whose stream another writer changed meanwhile.
    pub max_attempts: u32,
    pub secrets: Arc<SecretBox>,
    pub exchange: Arc<dyn Exchange>,
}

/// Where a command's events stand in commit order: the transaction that
/// appended them and the global position of the last one. Rendered as an
/// opaque token `<transaction_id>.<global_position>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Position {
    pub transaction_id: u64,
    pub global_position: i64,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.transaction_id, self.global_position)
    }
}

impl FromStr for Position {
    type Err = String;
    fn from_str(token: &str) -> Result<Self, Self::Err> {
        let (transaction, global) = token
            .split_once('.')
            .ok_or_else(|| "expected a position token from a command response".to_string())?;
        Ok(Position {
            transaction_id: transaction
                .parse()
                .map_err(|_| "malformed position token".to_string())?,
            global_position: global
                .parse()
                .map_err(|_| "malformed position token".to_string())?,
        })
    }
}

/// The command side: one framework per aggregate over a shared pool.
pub struct CommandSide {
    pub pool: PgPool,
    pub settings: CommandSideSettings,
    users: Framework<User>,
    keys: Framework<ExchangeKey>,
    bots: Framework<Bot>,
    portfolios: Framework<Portfolio>,
}

fn store<A: Aggregate>(pool: &PgPool, snapshot_every: usize) -> Store<A> {
    PersistedEventStore::new_snapshot_store(
        LedgerEventRepository::new(pool.clone()),
        snapshot_every,
    )
}

fn framework<A: Aggregate>(
    pool: &PgPool,
    snapshot_every: usize,
    services: A::Services,
) -> Framework<A> {
    CqrsFramework::new(
        store(pool, snapshot_every),
        vec![Box::new(CountAppendedEvents)],
        services,
    )
}

/// Counts the events of every committed command for `/metrics`; cqrs-es
/// calls it only after the events are in the log.
struct CountAppendedEvents;

#[async_trait::async_trait]
impl<A: Aggregate> Query<A> for CountAppendedEvents {
    async fn dispatch(&self, _aggregate_id: &str, events: &[EventEnvelope<A>]) {
        for event in events {
            crate::metrics::record_events_appended(A::TYPE, &event.payload.event_type());
        }
    }
}

impl CommandSide {
    pub fn new(pool: PgPool, settings: CommandSideSettings) -> Self {
        let every = settings.snapshot_every.max(1);
        let key_services = ExchangeKeyServices {
            verifier: Arc::new(StoredKeyVerifier {
                pool: pool.clone(),
                secrets: settings.secrets.clone(),
                exchange: settings.exchange.clone(),
            }),
        };
        let bot_services = BotServices {
            keys: Arc::new(EventStoreKeyDirectory {
                pool: pool.clone(),
                snapshot_every: every,
            }),
        };
        Self {
            users: framework(&pool, every, ()),
            keys: framework(&pool, every, key_services),
            bots: framework(&pool, every, bot_services),
            portfolios: framework(&pool, every, ()),
            pool,
            settings,
        }
    }

    pub async fn execute_user(
        &self,
        user_id: &str,
        command: <User as Aggregate>::Command,
        metadata: &CommandMetadata,
    ) -> Result<Position, CommandError> {
        self.execute(&self.users, user_id, command, metadata).await
    }

    pub async fn execute_key(
        &self,
        key_id: &str,
        command: <ExchangeKey as Aggregate>::Command,
        metadata: &CommandMetadata,
    ) -> Result<Position, CommandError> {
        self.execute(&self.keys, key_id, command, metadata).await
    }

    pub async fn execute_bot(
        &self,
        bot_id: &str,
        command: <Bot as Aggregate>::Command,
        metadata: &CommandMetadata,
    ) -> Result<Position, CommandError> {
        self.execute(&self.bots, bot_id, command, metadata).await
    }

    pub async fn execute_portfolio(
        &self,
        user_id: &str,
        command: <Portfolio as Aggregate>::Command,
        metadata: &CommandMetadata,
    ) -> Result<Position, CommandError> {
        self.execute(&self.portfolios, user_id, command, metadata)
            .await
    }

    /// The current state of an aggregate and its last sequence (0 when it
    /// has no events).
    pub async fn load<A>(&self, aggregate_id: &str) -> Result<(A, usize), CommandError>
    where
        A: Aggregate<Error = DomainError>,
    {
        load(&self.pool, self.settings.snapshot_every, aggregate_id).await
    }

    #[tracing::instrument(skip_all, fields(aggregate_type = A::TYPE, aggregate_id = %aggregate_id, command_type = %metadata.command_type))]
    async fn execute<A>(
        &self,
        framework: &Framework<A>,
        aggregate_id: &str,
        command: A::Command,
        metadata: &CommandMetadata,
    ) -> Result<Position, CommandError>
    where
        A: Aggregate<Error = DomainError>,
        A::Command: Clone,
    {
        let started = std::time::Instant::now();
        let result = self
            .execute_with_retries(framework, aggregate_id, command, metadata)
            .await;
        crate::metrics::record_command(&metadata.command_type, &result, started.elapsed());
        result
    }

    async fn execute_with_retries<A>(
        &self,
        framework: &Framework<A>,
        aggregate_id: &str,
        command: A::Command,
        metadata: &CommandMetadata,
    ) -> Result<Position, CommandError>
    where
        A: Aggregate<Error = DomainError>,
        A::Command: Clone,
    {
        let map = metadata.to_map();
        let attempts = self.settings.max_attempts.max(1);
        for attempt in 1..=attempts {
            let (outcome, appended) = with_appended_position(framework.execute_with_metadata(
                aggregate_id,
                command.clone(),
                map.clone(),
            ))
            .await;
            match outcome {
                // The append returned where its events stand; a command
                // that appended nothing answers with the stream's last.
                Ok(()) => match appended {
                    Some(position) => return Ok(position),
                    None => return self.position_of(A::TYPE, aggregate_id).await,
                },
                Err(AggregateError::AggregateConflict) if attempt < attempts => {
                    // Back off with jitter so the racing writers spread out.
                    let ceiling = 5 * u64::from(attempt);
                    let pause = rand::thread_rng().gen_range(1..=ceiling);
                    tracing::debug!(attempt, "concurrency conflict, retrying");
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                }
                Err(error) => return Err(map_aggregate_error::<A>(error, aggregate_id)),
            }
        }
        Err(CommandError::Conflict {
            aggregate_type: A::TYPE,
            aggregate_id: aggregate_id.to_string(),
        })
    }

    /// The position of the last event of a stream, or the zero position for
    /// a stream with none.
    pub async fn position_of(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<Position, CommandError> {
        let row: Option<(String, i64)> = sqlx::query_as(
            "SELECT transaction_id::text, global_position FROM events \
             WHERE aggregate_type = $1 AND aggregate_id = $2 ORDER BY sequence DESC LIMIT 1",
        )
        .bind(aggregate_type)
        .bind(aggregate_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some((transaction, global_position)) => Position {
                transaction_id: transaction.parse().unwrap_or_default(),
                global_position,
            },
            None => Position::default(),
        })
    }
}

/// Loads an aggregate through a snapshotting store on `pool`.
pub async fn load<A>(
    pool: &PgPool,
    snapshot_every: usize,
    aggregate_id: &str,
) -> Result<(A, usize), CommandError>
where
    A: Aggregate<Error = DomainError>,
{
    let context = store::<A>(pool, snapshot_every.max(1))
        .load_aggregate(aggregate_id)
        .await
        .map_err(|error| map_aggregate_error::<A>(error, aggregate_id))?;
    Ok((context.aggregate, context.current_sequence))
}

fn map_aggregate_error<A: Aggregate>(
    error: AggregateError<DomainError>,
    aggregate_id: &str,
) -> CommandError {
    match error {
        AggregateError::UserError(refusal) => CommandError::Refused(refusal),
        AggregateError::AggregateConflict => CommandError::Conflict {
            aggregate_type: A::TYPE,
            aggregate_id: aggregate_id.to_string(),
        },
        AggregateError::DatabaseConnectionError(cause) => {
            CommandError::DatabaseUnavailable(cause.to_string())
        }
        AggregateError::DeserializationError(cause) => CommandError::Unexpected(anyhow::anyhow!(
            "stored {} {aggregate_id} does not deserialize: {cause}",
            A::TYPE
        )),
        AggregateError::UnexpectedError(cause) => CommandError::Unexpected(anyhow::anyhow!(
            "command on {} {aggregate_id} failed: {cause}",
            A::TYPE
        )),
    }
}
