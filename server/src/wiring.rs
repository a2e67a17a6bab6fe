//! How the binary puts the service together: the database, the exchange,
//! the HTTP state with its readiness probes, and the workers of each role.

use std::sync::Arc;
use std::time::Duration;

use api::ready::{DependencyProbe, Readiness};
use api::AppState;
use command_side::crypto::SecretBox;
use command_side::notifications::{NotificationMailer, NotificationRaiser};
use command_side::process_manager::TradeRecorder;
use command_side::{CommandSide, CommandSideSettings};
use event_log::{LogReader, Subscriber, SubscriberRunner, SubscriberSettings};
use exchange::{CallPolicy, Exchange, KrakenExchange, PaperExchange, ResilientExchange};
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::settings::{Environment, ExchangeKind, Settings};

/// Creates the database if it is missing, applies the migrations and
/// returns a pool on it, all through `DATABASE_URL`: for tests and
/// operator commands run as the owner.
pub async fn prepare_database(settings: &Settings) -> anyhow::Result<PgPool> {
    let url = settings.database_url.expose();
    command_side::database::ensure_database_exists(url).await?;
    let pool = command_side::database::connect(url, settings.database_max_connections).await?;
    command_side::database::migrate(&pool).await?;
    Ok(pool)
}

/// `muckard migrate`: as the owner (`MIGRATION_DATABASE_URL`, else
/// `DATABASE_URL`), creates the database if missing, applies the
/// migrations and grants `muckard_app` and `muckard_auditor` to the
/// configured login roles.
pub async fn migrate_database(settings: &Settings) -> anyhow::Result<()> {
    use command_side::database;
    let url = settings
        .migration_database_url
        .as_ref()
        .unwrap_or(&settings.database_url)
        .expose();
    database::ensure_database_exists(url).await?;
    let pool = database::connect(url, 2).await?;
    database::migrate(&pool).await?;
    for login in &settings.app_logins {
        database::grant_role(&pool, "muckard_app", login).await?;
    }
    for login in &settings.auditor_logins {
        database::grant_role(&pool, "muckard_auditor", login).await?;
    }
    pool.close().await;
    Ok(())
}

/// The pool `muckard serve` runs on, checked for least privilege. With
/// `MIGRATION_DATABASE_URL` the owner migrates first. A `DATABASE_URL`
/// role that owns `events` or is a superuser could rewrite the log behind
/// its triggers: in production that refuses to serve; in development it is
/// a loud warning (and, without a migration URL, that role migrates, as a
/// single-user setup expects). A role that cannot migrate refuses a schema
/// behind this build.
pub async fn serving_pool(settings: &Settings) -> anyhow::Result<PgPool> {
    use command_side::database;
    if settings.migration_database_url.is_some() {
        migrate_database(settings).await?;
    }
    let url = settings.database_url.expose();
    if settings.migration_database_url.is_none() {
        // Creating the database needs CREATEDB; a least-privilege role
        // finds it made by `muckard migrate`.
        if let Err(error) = database::ensure_database_exists(url).await {
            tracing::debug!(%error, "cannot check or create the database; connecting anyway");
        }
    }
    let pool = database::connect(url, settings.database_max_connections).await?;
    let role = database::connected_role(&pool).await?;
    if role.can_bypass_the_log_rules() {
        let what = if role.superuser {
            "is a superuser"
        } else {
            "owns the events table"
        };
        if settings.environment == Environment::Production {
            anyhow::bail!(
                "refusing to serve as PostgreSQL role {}: it {what}, so it could disable the \
                 log's triggers and rewrite history. Serve as a login role holding only \
                 muckard_app (MUCKARD_APP_LOGINS) and migrate with MIGRATION_DATABASE_URL",
                role.name
            );
        }
        tracing::warn!(
            role = %role.name,
            "SERVING AS A ROLE THAT {}: it could disable the log's triggers and rewrite \
             history. Fine for development; in production (MUCKARD_ENV=production, where this \
             refuses to start) serve as a login role holding only muckard_app",
            what.to_uppercase()
        );
        if settings.migration_database_url.is_none() {
            database::migrate(&pool).await?;
        }
    }
    let pending = database::pending_migrations(&pool).await?;
    if !pending.is_empty() {
        anyhow::bail!(
            "the database lacks {} migration(s) of this build (first {}); run `muckard migrate` \
             as the owner (MIGRATION_DATABASE_URL), or set MIGRATION_DATABASE_URL for serve",
            pending.len(),
            pending[0]
        );
    }
    Ok(pool)
}

/// The exchange `settings` names, with timeouts, retries and a circuit
/// breaker around every call.
pub fn exchange_from_settings(settings: &Settings) -> anyhow::Result<Arc<dyn Exchange>> {
    let policy = CallPolicy {
        timeout: settings.exchange_timeout,
        ..CallPolicy::default()
    };
    Ok(match settings.exchange {
        ExchangeKind::Paper => Arc::new(ResilientExchange::new(
            PaperExchange::with_seed(settings.paper_seed),
            policy,
        )),
        ExchangeKind::Kraken => Arc::new(ResilientExchange::new(
            KrakenExchange::new(&settings.kraken_api_url, settings.exchange_timeout)?,
            policy,
        )),
    })
}

/// The command side and the HTTP state on a prepared pool, trading through
/// `exchange`.
pub fn build_state(
    settings: &Settings,
    pool: PgPool,
    exchange: Arc<dyn Exchange>,
) -> anyhow::Result<AppState> {
    let secrets = SecretBox::new(settings.encryption_key.expose())?;
    let commands = CommandSide::new(
        pool,
        CommandSideSettings {
            snapshot_every: settings.snapshot_every,
            max_attempts: settings.command_max_attempts,
            aggregate_cache_size: settings.aggregate_cache_size,
            append_batch_max: settings.append_batch_max,
            password_hashing: settings.password_hashing,
            login_backoff: settings.login_backoff,
            secrets: Arc::new(secrets),
            exchange,
            strategy_limits: settings.bot_limits,
            trigger_quotas: settings.trigger_quotas,
            max_bots_per_user: settings.max_bots_per_user,
            accounts: account_settings(settings)?,
            shared_state: match &settings.redis {
                Some(redis) => Some(
                    command_side::redis_link::RedisLink::new(redis.clone())
                        .map_err(|reason| anyhow::anyhow!(reason))?,
                ),
                None => None,
            },
        },
    );
    init_metrics();
    Ok(AppState::new(
        Arc::new(commands),
        api::tokens::JwtKeys::new(settings.jwt_secret.expose(), settings.access_token_ttl),
        settings.http.clone(),
        readiness(settings),
        projections::audit::signing::AuditSigner::from_seed(settings.audit_signing_key.expose())?,
        message_contracts(settings)?,
    ))
}

/// The command side's account settings: the mailer the settings name, the
/// code limits, and the key the codes' digests are made with (derived from
/// `JWT_SECRET`, so no new secret to configure).
fn account_settings(
    settings: &Settings,
) -> anyhow::Result<command_side::accounts::AccountSettings> {
    use sha2::{Digest, Sha256};
    let mailer = settings.mail.mailer()?;
    tracing::info!(mail = %mailer.describe(), "mail goes to");
    let mut hasher = Sha256::new();
    hasher.update(b"muckard email codes\0");
    hasher.update(settings.jwt_secret.expose());
    Ok(command_side::accounts::AccountSettings {
        code_ttl: settings.email_code_ttl,
        code_max_attempts: settings.email_code_max_attempts,
        code_resend_interval: settings.email_code_resend_interval,
        require_verified_email: settings.require_verified_email,
        code_key: hasher.finalize().into(),
        mailer,
    })
}

/// Registers every metric of this process so that `/metrics` shows zeros
/// before the first request, command or publish.
fn init_metrics() {
    api::metrics::init();
    kafka_mirror::metrics();
    messaging::metrics();
}

/// `/ready` probes the brokers this process's roles use: Kafka for the
/// mirror, RabbitMQ for the publisher and the runner.
fn readiness(settings: &Settings) -> Readiness {
    let roles = settings.roles;
    let kafka = roles.kafka_mirror.then(|| {
        Box::new(KafkaProbe(kafka_mirror::health::BrokerProbe::new(
            &settings.kafka,
        ))) as Box<dyn DependencyProbe>
    });
    let rabbitmq = (roles.publisher || roles.runner || roles.notifier).then(|| {
        Box::new(RabbitProbe(messaging::health::RabbitProbe::new(
            rabbit_settings(settings),
        ))) as Box<dyn DependencyProbe>
    });
    Readiness::new(settings.ready_check_timeout, kafka, rabbitmq)
}

struct KafkaProbe(kafka_mirror::health::BrokerProbe);

#[async_trait::async_trait]
impl DependencyProbe for KafkaProbe {
    async fn check(&self, timeout: Duration) -> Result<(), String> {
        self.0.check(timeout).await.map(|_| ())
    }
}

struct RabbitProbe(messaging::health::RabbitProbe);

#[async_trait::async_trait]
impl DependencyProbe for RabbitProbe {
    async fn check(&self, timeout: Duration) -> Result<(), String> {
        self.0.check(timeout).await.map(|_| ())
    }
}

/// `/asyncapi.json` and its schemas, with this deployment's names.
pub fn message_contracts(settings: &Settings) -> anyhow::Result<api::contracts::MessageContracts> {
    crate::contracts::message_contracts(
        &settings.kafka.layout,
        &rabbit_settings(settings).topology(),
        &crate::contracts::Brokers {
            kafka_bootstrap: settings.kafka.bootstrap_servers.clone(),
            rabbitmq_url: settings.rabbitmq_url.expose().clone(),
            kafka_replication_factor: settings.kafka.replication_factor,
        },
    )
}

/// The RabbitMQ settings of this service.
pub fn rabbit_settings(settings: &Settings) -> messaging::RabbitSettings {
    let mut rabbit = messaging::RabbitSettings::new(
        settings.rabbitmq_url.expose().clone(),
        settings.rabbitmq_queue_prefix.clone(),
    );
    rabbit.bounds = settings.rabbitmq_bounds;
    rabbit
}

/// Every subscriber of the projector role: the read models' projectors and
/// the process managers (fills onto portfolios, fills and support replies
/// into notifications, errors mailed).
pub fn projector_role(commands: Arc<CommandSide>) -> Vec<Arc<dyn Subscriber>> {
    let mut subscribers = projections::read_models::all();
    subscribers.push(Arc::new(TradeRecorder {
        commands: commands.clone(),
    }));
    subscribers.push(Arc::new(NotificationRaiser {
        commands: commands.clone(),
    }));
    subscribers.push(Arc::new(NotificationMailer { commands }));
    subscribers
}

/// Where a checkpoint goes: the Kafka topic of checkpoints and/or a
/// directory.
#[derive(Debug, Clone, Default)]
pub struct AnchorDestinations {
    pub kafka: bool,
    pub dir: Option<std::path::PathBuf>,
}

/// Signs a checkpoint of the log at its head, after `previous` (else the
/// latest one found at the destinations), and sends it to each destination.
pub async fn anchor_once(
    settings: &Settings,
    pool: &PgPool,
    to: &AnchorDestinations,
    previous: Option<projections::audit::anchor::Checkpoint>,
) -> anyhow::Result<projections::audit::anchor::Checkpoint> {
    use projections::audit::anchor;
    let signer =
        projections::audit::signing::AuditSigner::from_seed(settings.audit_signing_key.expose())?;
    let timeout = settings.kafka.message_timeout;
    let previous = match previous {
        Some(previous) => Some(previous),
        // A first round (or one after a failure) makes sure the topic
        // exists before it reads the latest checkpoint from it; later
        // rounds of the worker chain on the one they signed.
        None => {
            if to.kafka {
                kafka_mirror::checkpoints::provision(&settings.kafka, timeout).await?;
            }
            let mut found = Vec::new();
            if let Some(dir) = &to.dir {
                found.extend(anchor::read_dir(dir)?);
            }
            if to.kafka {
                found.extend(read_kafka_checkpoints(&settings.kafka, timeout).await?);
            }
            anchor::latest(&found).cloned()
        }
    };
    let checkpoint = anchor::make_checkpoint(pool, &signer, previous.as_ref()).await?;
    if let Some(dir) = &to.dir {
        anchor::write_to_dir(dir, &checkpoint)?;
    }
    if to.kafka {
        let text = serde_json::to_string(&checkpoint)?;
        kafka_mirror::checkpoints::publish(&settings.kafka, &checkpoint.position, &text, timeout)
            .await?;
    }
    Ok(checkpoint)
}

/// The checkpoints on the Kafka topic of checkpoints (provisioned first).
pub async fn read_kafka_checkpoints(
    settings: &kafka_mirror::KafkaSettings,
    timeout: std::time::Duration,
) -> anyhow::Result<Vec<projections::audit::anchor::Checkpoint>> {
    let settings = settings.clone();
    let texts = tokio::task::spawn_blocking(move || {
        kafka_mirror::checkpoints::read_all(&settings, timeout)
    })
    .await?;
    texts?
        .iter()
        .map(|text| serde_json::from_str(text).map_err(anyhow::Error::from))
        .collect()
}

/// The kafka-mirror role's checkpoints: one every `ANCHOR_INTERVAL_SECS`
/// (0 turns them off) to the Kafka topic of checkpoints, and to
/// `ANCHOR_DIR` when set, until `shutdown`. One signer at a time across
/// processes (a PostgreSQL advisory lock); a failed round is logged and
/// tried again at the next.
fn spawn_anchor(
    settings: &Settings,
    pool: PgPool,
    shutdown: CancellationToken,
) -> Option<JoinHandle<()>> {
    if settings.anchor_interval.is_zero() {
        return None;
    }
    let settings = settings.clone();
    let to = AnchorDestinations {
        kafka: true,
        dir: settings.anchor_dir.clone(),
    };
    Some(tokio::spawn(async move {
        let mut ticks = tokio::time::interval(settings.anchor_interval);
        let mut last = None;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            // The session lock lives on this connection, held for the round.
            let Ok(mut connection) = pool.acquire().await else {
                continue;
            };
            let locked: Result<bool, sqlx::Error> =
                sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext('muckard.anchor'))")
                    .fetch_one(&mut *connection)
                    .await;
            if !matches!(locked, Ok(true)) {
                continue;
            }
            match anchor_once(&settings, &pool, &to, last.take()).await {
                Ok(checkpoint) => {
                    tracing::info!(position = %checkpoint.position, "signed a checkpoint");
                    last = Some(checkpoint);
                }
                Err(error) => tracing::warn!(%error, "could not sign a checkpoint; trying again"),
            }
            let _ = sqlx::query("SELECT pg_advisory_unlock(hashtext('muckard.anchor'))")
                .execute(&mut *connection)
                .await;
        }
    }))
}

/// Starts the projector role's subscribers; they stop when `shutdown` is
/// cancelled, finishing the batch in hand.
pub fn spawn_projectors(
    commands: Arc<CommandSide>,
    settings: SubscriberSettings,
    shutdown: CancellationToken,
) -> Vec<JoinHandle<()>> {
    let runner = SubscriberRunner::new(
        commands.pool.clone(),
        LogReader::with_upcasters(domain::upcasters()),
        settings,
        shutdown.clone(),
    );
    projector_role(commands)
        .into_iter()
        .map(|subscriber| tokio::spawn(runner.clone().run(subscriber, shutdown.clone())))
        .collect()
}

/// Starts the workers of the roles `settings.roles` asks for (projector,
/// kafka-mirror, publisher, runner, notifier); they stop when `shutdown` is
/// cancelled, finishing the batch in hand. None of them waits for a
/// broker: they connect in the background.
pub fn start_workers(
    settings: &Settings,
    state: &AppState,
    shutdown: CancellationToken,
) -> Vec<JoinHandle<()>> {
    let subscriber_settings = SubscriberSettings {
        batch_size: settings.projector_batch_size,
        poll_interval: settings.projector_poll_interval,
        ..SubscriberSettings::default()
    };
    let roles = settings.roles;
    let pool = state.pool().clone();
    let mut workers = Vec::new();
    if roles.projector {
        workers.extend(spawn_projectors(
            state.commands.clone(),
            subscriber_settings.clone(),
            shutdown.clone(),
        ));
    }
    if roles.kafka_mirror {
        workers.extend(spawn_anchor(settings, pool.clone(), shutdown.clone()));
        workers.push(kafka_mirror::spawn_mirror(
            pool.clone(),
            settings.kafka.clone(),
            subscriber_settings.clone(),
            shutdown.clone(),
        ));
    }
    if roles.publisher {
        workers.push(messaging::publisher::spawn_publisher(
            pool,
            rabbit_settings(settings),
            subscriber_settings,
            shutdown.clone(),
        ));
    }
    if roles.runner {
        workers.extend(bot_runner::spawn_runner(
            state.commands.clone(),
            state.commands.settings.exchange.clone(),
            rabbit_settings(settings),
            bot_runner::RunnerSettings {
                tick: settings.runner_tick,
                prefetch: settings.runner_prefetch,
                max_concurrent: settings.runner_max_concurrent,
                per_user_share: settings.runner_per_user_share,
                max_attempts: settings.runner_max_attempts,
                serve_deadline: settings.runner_serve_deadline,
                ..bot_runner::RunnerSettings::default()
            },
            shutdown.clone(),
        ));
    }
    if roles.notifier {
        workers.push(notifier::spawn(
            state.commands.clone(),
            rabbit_settings(settings),
            notifier::NotifierSettings::default(),
            shutdown.clone(),
        ));
    }
    if roles.publisher || roles.runner || roles.notifier {
        let rabbit = rabbit_settings(settings);
        let topology = rabbit.topology();
        workers.push(messaging::metrics::spawn_depth_sampler(
            rabbit, topology, shutdown,
        ));
    }
    workers
}
