//! The cqrs-es frameworks for the six aggregates on postgres-es with
//! snapshots, and the one way commands are executed: bounded retry on a
//! concurrency conflict, metadata on every event, a position token back.

use std::sync::Arc;
use std::time::Duration;

use cqrs_es::{Aggregate, AggregateError, CqrsFramework, DomainEvent, EventEnvelope, Query};
use domain::bot::{Bot, BotServices};
use domain::exchange_key::{ExchangeKey, ExchangeKeyServices};
use domain::notification::Notification;
use domain::portfolio::Portfolio;
use domain::support_ticket::{SupportTicket, SupportTicketServices};
use domain::user::{LoginBackoff, User};
use domain::{DomainError, StrategyLimits, TriggerQuotas};
use rand::Rng;
use sqlx::PgPool;

use crate::append_outcome::with_append_outcome;
use crate::batch::AppendBatcher;
use crate::cache::{AggregateCache, CachedEventStore};
use crate::crypto::SecretBox;
use crate::error::CommandError;
use crate::load::{load, map_aggregate_error};
use crate::login_failures::{UnknownEmailFailures, MAX_REMEMBERED_UNKNOWN_EMAILS};
use crate::metadata::CommandMetadata;
use crate::passwords::{PasswordHashingSettings, Passwords};
use crate::repository::LedgerEventRepository;
use crate::services::{EventStoreKeyDirectory, EventStoreStaffDirectory, StoredKeyVerifier};
use event_log::{CommitNotifier, Position};
use exchange::Exchange;

type Framework<A> = CqrsFramework<A, CachedEventStore<A>>;

/// How the command side behaves; parsed from the environment by the binary.
#[derive(Clone)]
pub struct CommandSideSettings {
    /// A snapshot is taken every this many events of a stream.
    pub snapshot_every: usize,
    /// Attempts at a command whose stream another writer changed meanwhile.
    pub max_attempts: u32,
    /// Aggregates of each type kept in memory between commands
    /// (`AGGREGATE_CACHE_SIZE`); 0 loads every command's from the log.
    pub aggregate_cache_size: usize,
    /// Events at most in one shared append statement (`APPEND_BATCH_MAX`);
    /// 1 (or 0) appends every command's events in a statement of its own.
    pub append_batch_max: usize,
    /// How many password hashes run at once and how long one waits.
    pub password_hashing: PasswordHashingSettings,
    /// When failed log-ins close an account's log-ins, and for how long.
    pub login_backoff: LoginBackoff,
    pub secrets: Arc<SecretBox>,
    pub exchange: Arc<dyn Exchange>,
    /// What a user may configure on a bot (`BOT_MAX_QUOTE_AMOUNT`,
    /// `BOT_MIN_INTERVAL_SECS`); the Bot refuses a configuration outside
    /// them and the bot runner trades no stored strategy outside them.
    pub strategy_limits: StrategyLimits,
    /// How often and how many at once a bot may be triggered
    /// (`BOT_TRIGGERS_PER_MINUTE`, `BOT_MAX_PENDING_TRIGGERS`).
    pub trigger_quotas: TriggerQuotas,
    /// How many bots one user may configure (`BOT_MAX_PER_USER`).
    pub max_bots_per_user: u32,
    /// One-time codes, the mailer, and whether trading needs a verified
    /// email.
    pub accounts: crate::accounts::AccountSettings,
    /// The Redis every instance shares its limits through (`REDIS_URL`):
    /// the unknown-email log-in back-off here, the rate limits in the API.
    /// `None`: per process.
    pub shared_state: Option<Arc<crate::redis_link::RedisLink>>,
}

/// The command side: one framework per aggregate over a shared pool.
pub struct CommandSide {
    pub pool: PgPool,
    pub settings: CommandSideSettings,
    users: Framework<User>,
    keys: Framework<ExchangeKey>,
    bots: Framework<Bot>,
    portfolios: Framework<Portfolio>,
    tickets: Framework<SupportTicket>,
    notifications: Framework<Notification>,
    caches: Caches,
    pub(crate) passwords: Passwords,
    pub(crate) unknown_email_failures: UnknownEmailFailures,
    pub(crate) email_throttle: crate::accounts::EmailThrottle,
    /// Bot configurations that may hold their user's lock (and so a pooled
    /// connection) at once: a quarter of the pool, so their own appends
    /// always find a connection.
    pub(crate) configuration_slots: tokio::sync::Semaphore,
}

struct Caches {
    users: Arc<AggregateCache<User>>,
    keys: Arc<AggregateCache<ExchangeKey>>,
    bots: Arc<AggregateCache<Bot>>,
    portfolios: Arc<AggregateCache<Portfolio>>,
    tickets: Arc<AggregateCache<SupportTicket>>,
    notifications: Arc<AggregateCache<Notification>>,
}

fn framework<A: Aggregate>(
    pool: &PgPool,
    settings: &CommandSideSettings,
    cache: &Arc<AggregateCache<A>>,
    notifier: &CommitNotifier,
    batcher: &Option<AppendBatcher>,
    services: A::Services,
) -> Framework<A> {
    let repository = match batcher {
        Some(batcher) => LedgerEventRepository::batched(pool.clone(), batcher.clone()),
        None => LedgerEventRepository::new(pool.clone()),
    };
    CqrsFramework::new(
        CachedEventStore::new(
            repository,
            settings.snapshot_every,
            cache.clone(),
            notifier.clone(),
        ),
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
    /// The command side on `pool`; starts its commit notifier, so call it
    /// inside a Tokio runtime.
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
            limits: settings.strategy_limits,
            triggers: settings.trigger_quotas,
        };
        let ticket_services = SupportTicketServices {
            staff: Arc::new(EventStoreStaffDirectory {
                pool: pool.clone(),
                snapshot_every: every,
            }),
        };
        let settings = CommandSideSettings {
            snapshot_every: every,
            ..settings
        };
        let size = settings.aggregate_cache_size;
        let caches = Caches {
            users: Arc::new(AggregateCache::new(size)),
            keys: Arc::new(AggregateCache::new(size)),
            bots: Arc::new(AggregateCache::new(size)),
            portfolios: Arc::new(AggregateCache::new(size)),
            tickets: Arc::new(AggregateCache::new(size)),
            notifications: Arc::new(AggregateCache::new(size)),
        };
        let notifier = CommitNotifier::spawn(pool.clone());
        let batcher = (settings.append_batch_max > 1)
            .then(|| AppendBatcher::spawn(pool.clone(), settings.append_batch_max));
        let (n, b) = (&notifier, &batcher);
        Self {
            users: framework(&pool, &settings, &caches.users, n, b, ()),
            keys: framework(&pool, &settings, &caches.keys, n, b, key_services),
            bots: framework(&pool, &settings, &caches.bots, n, b, bot_services),
            portfolios: framework(&pool, &settings, &caches.portfolios, n, b, ()),
            tickets: framework(&pool, &settings, &caches.tickets, n, b, ticket_services),
            notifications: framework(&pool, &settings, &caches.notifications, n, b, ()),
            caches,
            passwords: Passwords::new(settings.password_hashing),
            unknown_email_failures: UnknownEmailFailures::new(
                settings.login_backoff,
                MAX_REMEMBERED_UNKNOWN_EMAILS,
            )
            .shared_through(settings.shared_state.clone()),
            email_throttle: crate::accounts::EmailThrottle::new(),
            configuration_slots: tokio::sync::Semaphore::new(
                (pool.options().get_max_connections() as usize / 4).max(1),
            ),
            pool,
            settings,
        }
    }

    /// The Redis link the instances share their limits through, if any.
    pub fn shared_state(&self) -> Option<Arc<crate::redis_link::RedisLink>> {
        self.settings.shared_state.clone()
    }

    pub async fn execute_user(
        &self,
        user_id: &str,
        command: <User as Aggregate>::Command,
        metadata: &CommandMetadata,
    ) -> Result<Position, CommandError> {
        self.execute(&self.users, user_id, command, metadata).await
    }

    pub async fn execute_exchange_key(
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

    pub async fn execute_support_ticket(
        &self,
        ticket_id: &str,
        command: <SupportTicket as Aggregate>::Command,
        metadata: &CommandMetadata,
    ) -> Result<Position, CommandError> {
        self.execute(&self.tickets, ticket_id, command, metadata)
            .await
    }

    pub async fn execute_notification(
        &self,
        notification_id: &str,
        command: <Notification as Aggregate>::Command,
        metadata: &CommandMetadata,
    ) -> Result<Position, CommandError> {
        self.execute(&self.notifications, notification_id, command, metadata)
            .await
    }

    /// Aggregates of every type held in the cache now.
    pub fn cached_aggregates(&self) -> usize {
        self.caches.users.len()
            + self.caches.keys.len()
            + self.caches.bots.len()
            + self.caches.portfolios.len()
            + self.caches.tickets.len()
            + self.caches.notifications.len()
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
            let (outcome, trace) = with_append_outcome(framework.execute_with_metadata(
                aggregate_id,
                command.clone(),
                map.clone(),
            ))
            .await;
            // A state taken from the cache is the log's as of the sequence
            // it was cached at; whatever the command decided on it that
            // the append did not check is decided again on the log's when
            // the stream has moved on (or, for a refusal, always: the
            // entry is gone and the log tells).
            let decide_again = attempt < attempts;
            match outcome {
                // The append returned where its events stand; a command
                // that appended nothing answers with the stream's last.
                Ok(()) => match trace.appended {
                    Some(position) => return Ok(position),
                    None => {
                        let (position, sequence) =
                            self.last_event_of(A::TYPE, aggregate_id).await?;
                        match trace.cached_sequence {
                            Some(cached) if cached != sequence && decide_again => {
                                tracing::debug!(
                                    attempt,
                                    "no events from a stale cached state, deciding again"
                                );
                            }
                            _ => return Ok(position),
                        }
                    }
                },
                Err(AggregateError::UserError(_))
                    if trace.cached_sequence.is_some() && decide_again =>
                {
                    tracing::debug!(
                        attempt,
                        "refused on a cached state, deciding again on the log's"
                    );
                }
                Err(AggregateError::AggregateConflict) if decide_again => {
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
        Ok(self.last_event_of(aggregate_type, aggregate_id).await?.0)
    }

    /// The position and sequence of the last event of a stream (zero for a
    /// stream with none).
    async fn last_event_of(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<(Position, usize), CommandError> {
        let row: Option<(String, i64, i64)> = sqlx::query_as(
            "SELECT transaction_id::text, global_position, sequence FROM events \
             WHERE aggregate_type = $1 AND aggregate_id = $2 ORDER BY sequence DESC LIMIT 1",
        )
        .bind(aggregate_type)
        .bind(aggregate_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some((transaction, global_position, sequence)) => (
                Position::from_columns(&transaction, global_position).map_err(sqlx::Error::from)?,
                sequence as usize,
            ),
            None => (Position::default(), 0),
        })
    }
}
