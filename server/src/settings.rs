//! Settings, parsed once from environment variables (see `.env.example`),
//! with defaults that run on one machine.

use std::net::SocketAddr;
use std::path::PathBuf;

use rand::RngCore;
use serde::{Deserialize, Serialize};

/// `.env.example`: every setting with its default and what it does. It is
/// the one description of the settings: `muckard --help` prints it
/// ([`help_text`]), and a test checks that it names exactly the variables
/// [`Settings::from_lookup`] reads.
pub const ENV_EXAMPLE: &str = include_str!("../../.env.example");

/// The settings section of `muckard --help`, made from [`ENV_EXAMPLE`].
pub fn help_text() -> String {
    let mut out = String::from(
        "Settings: environment variables, read once at start-up (scripts/run also reads a \
         .env file), as .env.example documents them with the values it suggests; NAME \
         (unset) has none there:\n",
    );
    // The file's own header, up to its first blank line, is for readers
    // of the file.
    let lines = ENV_EXAMPLE.lines().skip_while(|line| !line.is_empty());
    for line in lines {
        match documented_setting(line) {
            Some((name, "")) => out.push_str(&format!("  {name} (unset)\n")),
            Some((name, default)) => out.push_str(&format!("  {name}={default}\n")),
            None => match line.strip_prefix('#') {
                Some(text) => out.push_str(&format!("      {}\n", text.trim())),
                None => out.push('\n'),
            },
        }
    }
    out
}

/// `NAME=value` or `# NAME=value` (documented, unset by default).
fn documented_setting(line: &str) -> Option<(&str, &str)> {
    let line = line.strip_prefix("# ").unwrap_or(line);
    let (name, value) = line.split_once('=')?;
    let is_name = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    is_name.then_some((name, value))
}

/// Bytes or text that must never be printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> std::fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Production,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub environment: Environment,
    /// What `serve` connects as: in production a login role holding only
    /// `muckard_app` (`DATABASE_URL`).
    pub database_url: Secret<String>,
    /// The owner's connection, for migrations (`MIGRATION_DATABASE_URL`):
    /// `migrate` uses it, and `serve` migrates through it first when set.
    /// Unset, both use `DATABASE_URL`, and `serve` migrates only when that
    /// role owns the schema (development).
    pub migration_database_url: Option<Secret<String>>,
    /// Login roles `migrate` grants `muckard_app` to (`MUCKARD_APP_LOGINS`,
    /// comma-separated; the operator creates them).
    pub app_logins: Vec<String>,
    /// Login roles `migrate` grants the read-only `muckard_auditor` to
    /// (`MUCKARD_AUDITOR_LOGINS`).
    pub auditor_logins: Vec<String>,
    pub database_max_connections: u32,
    pub http_addr: SocketAddr,
    pub snapshot_every: usize,
    pub command_max_attempts: u32,
    /// Aggregates of each type the command side keeps in memory.
    pub aggregate_cache_size: usize,
    /// Events at most in one append statement shared by commands.
    pub append_batch_max: usize,
    /// Password hashes at once and how long a log-in waits for a slot.
    pub password_hashing: command_side::passwords::PasswordHashingSettings,
    /// Failed log-ins that close an account's log-ins, and for how long.
    pub login_backoff: domain::user::LoginBackoff,
    pub access_token_ttl: chrono::Duration,
    pub jwt_secret: Secret<Vec<u8>>,
    pub encryption_key: Secret<Vec<u8>>,
    /// The Ed25519 seed the service signs audit reports with
    /// (`AUDIT_SIGNING_KEY`, 64 hex characters): configuration, never in
    /// the database. Its public half is published.
    pub audit_signing_key: Secret<Vec<u8>>,
    /// A directory signed checkpoints of the log are also written into
    /// (`ANCHOR_DIR`); the kafka-mirror role signs one every
    /// `ANCHOR_INTERVAL_SECS` (0: never) to the Kafka topic of checkpoints.
    pub anchor_dir: Option<PathBuf>,
    pub anchor_interval: std::time::Duration,
    pub log_format: LogFormat,
    /// The roles this process runs (`MUCKARD_ROLES`, default all).
    pub roles: Roles,
    pub projector_batch_size: i64,
    pub projector_poll_interval: std::time::Duration,
    /// The Kafka mirror's broker, topics and producer settings.
    pub kafka: kafka_mirror::KafkaSettings,
    /// RabbitMQ (`RABBITMQ_URL`, vhost included) and the prefix of every
    /// queue name (`RABBITMQ_QUEUE_PREFIX`).
    pub rabbitmq_url: Secret<String>,
    pub rabbitmq_queue_prefix: String,
    /// The status and alert queues' bounds
    /// (`RABBITMQ_STATUS_QUEUE_MAX_LENGTH`, `RABBITMQ_STATUS_QUEUE_MAX_AGE_SECS`,
    /// `RABBITMQ_DEAD_LETTER_MAX_LENGTH`, `RABBITMQ_DEAD_LETTER_MAX_AGE_SECS`).
    pub rabbitmq_bounds: messaging::QueueBounds,
    /// The exchange bots trade on and keys are tested against (`EXCHANGE`).
    pub exchange: ExchangeKind,
    pub kraken_api_url: String,
    /// The deadline of one exchange call (`EXCHANGE_TIMEOUT_MS`).
    pub exchange_timeout: std::time::Duration,
    /// The paper exchange's price-feed seed (`PAPER_SEED`).
    pub paper_seed: u64,
    /// How often a threshold bot looks at the price (`RUNNER_TICK_MS`).
    pub runner_tick: std::time::Duration,
    /// What a user may configure on a bot: `BOT_MAX_QUOTE_AMOUNT` (default
    /// 1000000, in the quote currency) and `BOT_MIN_INTERVAL_SECS` (default
    /// 60); the other bounds are `domain::money`'s constants.
    pub bot_limits: domain::StrategyLimits,
    /// How often one bot may be triggered and how many of its triggers
    /// may wait: `BOT_TRIGGERS_PER_MINUTE` (default 6) and
    /// `BOT_MAX_PENDING_TRIGGERS` (default 10), each from 1 to 256.
    pub trigger_quotas: domain::TriggerQuotas,
    /// How many bots one user may configure (`BOT_MAX_PER_USER`, default
    /// 20, from 1 to 10000).
    pub max_bots_per_user: u32,
    /// The bot runner's bounds (`RUNNER_PREFETCH`, `RUNNER_MAX_CONCURRENT`,
    /// `RUNNER_PER_USER_SHARE`, `RUNNER_MAX_ATTEMPTS`,
    /// `RUNNER_SERVE_DEADLINE_MS`); see `bot_runner::RunnerSettings`.
    pub runner_prefetch: u16,
    pub runner_max_concurrent: usize,
    pub runner_per_user_share: usize,
    pub runner_max_attempts: u32,
    pub runner_serve_deadline: std::time::Duration,
    /// What the HTTP layer needs: `REFRESH_TOKEN_TTL_SECS`,
    /// `QUERY_WAIT_MAX_MS`, `MUCKARD_INSTANCE` (default the host name, sent
    /// on every response as `x-muckard-instance` so an operator can tell
    /// which instance behind a gateway answered), `CORS_ALLOWED_ORIGINS`
    /// (comma-separated, `*` for any; empty sends no CORS headers, as
    /// behind the gateway, which answers CORS itself) and the per-client
    /// limits on the `/api` routes (`RATE_LIMIT_*`), and the stream's
    /// (`STREAM_MAX_CONNECTIONS_PER_USER`, `STREAM_HEARTBEAT_SECS`).
    pub http: api::HttpSettings,
    /// `REDIS_URL` and `REDIS_KEY_PREFIX`: where every instance shares the
    /// rate limits and the unknown-email log-in back-off; `None` keeps
    /// them per process.
    pub redis: Option<command_side::redis_link::RedisSettings>,
    /// After SIGTERM, how long requests in flight may take before the
    /// process stops waiting for them (`SHUTDOWN_GRACE_SECS`); workers
    /// then get as long again to finish their batch and flush.
    pub shutdown_grace: std::time::Duration,
    /// The deadline of each dependency check of `/ready`.
    pub ready_check_timeout: std::time::Duration,
    /// Where mail goes: `SMTP_URL` (required in production by `serve` with
    /// the api role; without it in
    /// development, the outbox directory `MAIL_OUTBOX_DIR`, default
    /// `var/outbox`), `MAIL_FROM`, `SMTP_TIMEOUT_SECS`.
    pub mail: command_side::mail::MailSettings,
    /// One-time codes: `EMAIL_CODE_TTL_SECS` (default 600, 1 to 86400),
    /// `EMAIL_CODE_MAX_ATTEMPTS` (default 5, 1 to 20),
    /// `EMAIL_CODE_RESEND_SECS` (default 60, 1 to 3600).
    pub email_code_ttl: std::time::Duration,
    pub email_code_max_attempts: u32,
    pub email_code_resend_interval: std::time::Duration,
    /// Whether trading commands need a verified email
    /// (`REQUIRE_VERIFIED_EMAIL`, `true` or `false`; default `true` in
    /// production, `false` in development).
    pub require_verified_email: bool,
}

/// Which exchange the service trades on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExchangeKind {
    /// The deterministic simulated exchange (the default).
    Paper,
    /// Kraken's REST API at `KRAKEN_API_URL`.
    Kraken,
}

/// Which parts of the service a process runs. Every role can run alone, so
/// each scales out on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    pub api: bool,
    pub projector: bool,
    pub kafka_mirror: bool,
    /// The RabbitMQ publisher subscriber.
    pub publisher: bool,
    /// The bot runner (command consumers and trading loops).
    pub runner: bool,
    /// The notifier: the status and alert queues' consumer.
    pub notifier: bool,
}

impl Roles {
    pub const ALL: Roles = Roles {
        api: true,
        projector: true,
        kafka_mirror: true,
        publisher: true,
        runner: true,
        notifier: true,
    };

    pub const NONE: Roles = Roles {
        api: false,
        projector: false,
        kafka_mirror: false,
        publisher: false,
        runner: false,
        notifier: false,
    };

    /// The role names, as `--roles` and `MUCKARD_ROLES` take them.
    pub const NAMES: &'static str =
        "api, projector, kafka-mirror, publisher, runner, notifier or all";
    /// The same, one by one (what `--help` lists).
    pub const EACH: [&'static str; 7] = [
        "api",
        "projector",
        "kafka-mirror",
        "publisher",
        "runner",
        "notifier",
        "all",
    ];

    /// Parses a comma-separated list such as `api,projector` or `all`.
    pub fn parse(text: &str) -> Result<Roles, String> {
        let mut roles = Roles::NONE;
        for role in text.split(',').map(str::trim).filter(|r| !r.is_empty()) {
            match role {
                "all" => roles = Roles::ALL,
                "api" => roles.api = true,
                "projector" => roles.projector = true,
                "kafka-mirror" => roles.kafka_mirror = true,
                "publisher" => roles.publisher = true,
                "runner" => roles.runner = true,
                "notifier" => roles.notifier = true,
                other => return Err(format!("unknown role {other}; expected {}", Roles::NAMES)),
            }
        }
        if roles == Roles::NONE {
            return Err("no role given".to_string());
        }
        Ok(roles)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name}: {reason}")]
    Invalid { name: &'static str, reason: String },
    #[error("{name} is required when MUCKARD_ENV=production")]
    Required { name: &'static str },
    #[error("local key file {path}: {reason}")]
    KeyFile { path: String, reason: String },
}

/// The keys created for local use when none are configured.
#[derive(Serialize, Deserialize)]
struct LocalKeys {
    jwt_secret: String,
    secrets_encryption_key: String,
    /// Added after the first two: a file made before it gets one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    audit_signing_key: Option<String>,
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so callers (tests, tools) can supply
    /// their own environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let number = |name: &'static str, default: &str| whole_number(&get, name, default);
        let millis = |name: &'static str, default: &str| {
            number(name, default).map(std::time::Duration::from_millis)
        };
        let seconds = |name: &'static str, default: &str| {
            number(name, default)
                .map(|secs| chrono::Duration::seconds(secs.min(i64::MAX as u64 / 1000) as i64))
        };
        let environment = choice(
            &get,
            "MUCKARD_ENV",
            &[
                ("development", Environment::Development),
                ("production", Environment::Production),
            ],
        )?;
        let (jwt_secret, encryption_key, audit_signing_key) = keys(&get, environment)?;
        Ok(Settings {
            environment,
            database_url: Secret::new(
                get("DATABASE_URL")
                    .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/muckard".to_string()),
            ),
            migration_database_url: get("MIGRATION_DATABASE_URL").map(Secret::new),
            app_logins: role_names(&get, "MUCKARD_APP_LOGINS")?,
            auditor_logins: role_names(&get, "MUCKARD_AUDITOR_LOGINS")?,
            database_max_connections: number("DATABASE_MAX_CONNECTIONS", "20")? as u32,
            http_addr: http_addr(&get)?,
            snapshot_every: number("SNAPSHOT_EVERY", "50")?.max(1) as usize,
            command_max_attempts: number("COMMAND_MAX_ATTEMPTS", "8")?.max(1) as u32,
            aggregate_cache_size: number("AGGREGATE_CACHE_SIZE", "10000")? as usize,
            append_batch_max: number("APPEND_BATCH_MAX", "64")?.min(10_000) as usize,
            password_hashing: command_side::passwords::PasswordHashingSettings {
                concurrency: number(
                    "PASSWORD_HASH_CONCURRENCY",
                    &command_side::passwords::PasswordHashingSettings::default_concurrency()
                        .to_string(),
                )?
                .clamp(1, 1024) as usize,
                wait: millis("PASSWORD_HASH_WAIT_MS", "250")?,
            },
            login_backoff: domain::user::LoginBackoff {
                max_failures: number("LOGIN_BACKOFF_FAILURES", "5")?
                    .clamp(1, domain::user::REMEMBERED_FAILED_LOGINS as u64)
                    as usize,
                window: seconds("LOGIN_BACKOFF_WINDOW_SECS", "900")?,
                backoff: seconds("LOGIN_BACKOFF_SECS", "300")?,
            },
            access_token_ttl: chrono::Duration::seconds(
                number("ACCESS_TOKEN_TTL_SECS", "900")? as i64
            ),
            jwt_secret: Secret::new(jwt_secret),
            encryption_key: Secret::new(encryption_key),
            audit_signing_key: Secret::new(audit_signing_key),
            anchor_dir: get("ANCHOR_DIR").map(PathBuf::from),
            anchor_interval: std::time::Duration::from_secs(number("ANCHOR_INTERVAL_SECS", "60")?),
            log_format: choice(
                &get,
                "LOG_FORMAT",
                &[("text", LogFormat::Text), ("json", LogFormat::Json)],
            )?,
            roles: Roles::parse(&get("MUCKARD_ROLES").unwrap_or_else(|| "all".to_string()))
                .map_err(|reason| ConfigError::Invalid {
                    name: "MUCKARD_ROLES",
                    reason,
                })?,
            projector_batch_size: number("PROJECTOR_BATCH_SIZE", "500")?.clamp(1, 10_000) as i64,
            projector_poll_interval: millis("PROJECTOR_POLL_MS", "500")?,
            kafka: kafka_mirror::KafkaSettings::from_lookup(&get).map_err(|e| {
                ConfigError::Invalid {
                    name: e.name,
                    reason: e.reason,
                }
            })?,
            rabbitmq_url: Secret::new(
                get("RABBITMQ_URL")
                    .unwrap_or_else(|| "amqp://guest:guest@127.0.0.1:5672/%2f".to_string()),
            ),
            rabbitmq_queue_prefix: get("RABBITMQ_QUEUE_PREFIX").unwrap_or_default(),
            rabbitmq_bounds: messaging::QueueBounds {
                max_length: number("RABBITMQ_STATUS_QUEUE_MAX_LENGTH", "10000")?
                    .clamp(1, u64::from(u32::MAX)) as u32,
                max_age: std::time::Duration::from_secs(
                    number("RABBITMQ_STATUS_QUEUE_MAX_AGE_SECS", "259200")?.max(1),
                ),
                dead_letter_max_length: number("RABBITMQ_DEAD_LETTER_MAX_LENGTH", "100000")?
                    .clamp(1, u64::from(u32::MAX)) as u32,
                dead_letter_max_age: std::time::Duration::from_secs(
                    number("RABBITMQ_DEAD_LETTER_MAX_AGE_SECS", "1209600")?.max(1),
                ),
            },
            exchange: choice(
                &get,
                "EXCHANGE",
                &[
                    ("paper", ExchangeKind::Paper),
                    ("kraken", ExchangeKind::Kraken),
                ],
            )?,
            kraken_api_url: get("KRAKEN_API_URL")
                .unwrap_or_else(|| "https://api.kraken.com".to_string()),
            exchange_timeout: millis("EXCHANGE_TIMEOUT_MS", "10000")?.max(MIN_MILLI),
            paper_seed: number("PAPER_SEED", "42")?,
            runner_tick: millis("RUNNER_TICK_MS", "5000")?.max(10 * MIN_MILLI),
            bot_limits: bot_limits(&get)?,
            trigger_quotas: trigger_quotas(&get)?,
            max_bots_per_user: whole_number(&get, "BOT_MAX_PER_USER", "20")?.clamp(1, 10_000)
                as u32,
            runner_prefetch: number("RUNNER_PREFETCH", "256")?.clamp(1, 10_000) as u16,
            runner_max_concurrent: number("RUNNER_MAX_CONCURRENT", "16")?.clamp(1, 1_000) as usize,
            runner_per_user_share: number("RUNNER_PER_USER_SHARE", "4")?.clamp(1, 1_000) as usize,
            runner_max_attempts: number("RUNNER_MAX_ATTEMPTS", "3")?.clamp(1, 100) as u32,
            runner_serve_deadline: millis("RUNNER_SERVE_DEADLINE_MS", "5000")?
                .max(std::time::Duration::from_secs(1)),
            http: http_settings(&get)?,
            redis: match get("REDIS_URL") {
                None => None,
                Some(url) => {
                    command_side::redis_link::check_url(&url).map_err(|reason| {
                        ConfigError::Invalid {
                            name: "REDIS_URL",
                            reason,
                        }
                    })?;
                    Some(command_side::redis_link::RedisSettings {
                        url,
                        key_prefix: get("REDIS_KEY_PREFIX")
                            .unwrap_or_else(|| "muckard:".to_string()),
                    })
                }
            },
            shutdown_grace: std::time::Duration::from_secs(number("SHUTDOWN_GRACE_SECS", "10")?),
            ready_check_timeout: millis("READY_CHECK_TIMEOUT_MS", "2000")?.max(MIN_MILLI),
            mail: mail_settings(&get)?,
            email_code_ttl: std::time::Duration::from_secs(
                number("EMAIL_CODE_TTL_SECS", "600")?.clamp(1, 86_400),
            ),
            email_code_max_attempts: number("EMAIL_CODE_MAX_ATTEMPTS", "5")?.clamp(1, 20) as u32,
            email_code_resend_interval: std::time::Duration::from_secs(
                number("EMAIL_CODE_RESEND_SECS", "60")?.clamp(1, 3_600),
            ),
            require_verified_email: match get("REQUIRE_VERIFIED_EMAIL").as_deref() {
                None => environment == Environment::Production,
                Some("true") => true,
                Some("false") => false,
                Some(other) => {
                    return Err(ConfigError::Invalid {
                        name: "REQUIRE_VERIFIED_EMAIL",
                        reason: format!("expected true or false, got {other}"),
                    })
                }
            },
        })
    }
}

const MIN_MILLI: std::time::Duration = std::time::Duration::from_millis(1);

/// `SMTP_URL`, `MAIL_FROM`, `MAIL_OUTBOX_DIR`, `SMTP_TIMEOUT_SECS`.
///
/// `SMTP_URL` is required in production by the processes that serve the
/// API (they alone send mail): `serve` checks it once its roles are known.
fn mail_settings(
    get: &dyn Fn(&str) -> Option<String>,
) -> Result<command_side::mail::MailSettings, ConfigError> {
    let smtp_url = get("SMTP_URL");
    if let Some(url) = &smtp_url {
        if !(url.starts_with("smtp://") || url.starts_with("smtps://")) {
            return Err(ConfigError::Invalid {
                name: "SMTP_URL",
                reason: "expected smtp://host:port or smtps://host:port".to_string(),
            });
        }
    }
    let from = get("MAIL_FROM").unwrap_or_else(|| "Muckard <no-reply@muckard.local>".to_string());
    if from.parse::<lettre::message::Mailbox>().is_err() {
        return Err(ConfigError::Invalid {
            name: "MAIL_FROM",
            reason: format!(
                "expected an address such as Muckard <no-reply@example.com>, got {from}"
            ),
        });
    }
    let settings = command_side::mail::MailSettings {
        smtp_url: smtp_url.map(domain::SecretString::new),
        from,
        outbox_dir: PathBuf::from(
            get("MAIL_OUTBOX_DIR").unwrap_or_else(|| "var/outbox".to_string()),
        ),
        timeout: std::time::Duration::from_secs(
            whole_number(get, "SMTP_TIMEOUT_SECS", "10")?.clamp(1, 300),
        ),
    };
    settings.mailer().map_err(|error| ConfigError::Invalid {
        name: "SMTP_URL",
        reason: error.to_string(),
    })?;
    Ok(settings)
}

/// A whole number, `default` when unset.
fn whole_number(
    get: &dyn Fn(&str) -> Option<String>,
    name: &'static str,
    default: &str,
) -> Result<u64, ConfigError> {
    let text = get(name).unwrap_or_else(|| default.to_string());
    text.parse().map_err(|_| ConfigError::Invalid {
        name,
        reason: format!("expected a whole number, got {text}"),
    })
}

/// One of `options` by name; the first when unset.
fn choice<T: Copy>(
    get: &dyn Fn(&str) -> Option<String>,
    name: &'static str,
    options: &[(&str, T)],
) -> Result<T, ConfigError> {
    let Some(text) = get(name) else {
        return Ok(options[0].1);
    };
    options
        .iter()
        .find(|(option, _)| *option == text)
        .map(|(_, value)| *value)
        .ok_or_else(|| {
            let names: Vec<&str> = options.iter().map(|(option, _)| *option).collect();
            ConfigError::Invalid {
                name,
                reason: format!("expected {}, got {text}", names.join(" or ")),
            }
        })
}

/// A comma-separated list of PostgreSQL role names (letters, digits, `_`).
fn role_names(
    get: &dyn Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<Vec<String>, ConfigError> {
    let names: Vec<String> = get(name)
        .unwrap_or_default()
        .split(',')
        .map(|role| role.trim().to_string())
        .filter(|role| !role.is_empty())
        .collect();
    match names.iter().find(|role| {
        role.len() > 63 || !role.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    }) {
        Some(bad) => Err(ConfigError::Invalid {
            name,
            reason: format!("expected role names of letters, digits and _, got {bad}"),
        }),
        None => Ok(names),
    }
}

/// `BOT_MAX_QUOTE_AMOUNT` and `BOT_MIN_INTERVAL_SECS`, checked against the
/// bounds `domain::StrategyLimits::new` states.
fn bot_limits(get: &dyn Fn(&str) -> Option<String>) -> Result<domain::StrategyLimits, ConfigError> {
    let name = "BOT_MAX_QUOTE_AMOUNT";
    let text = get(name).unwrap_or_else(|| domain::money::DEFAULT_MAX_QUOTE_AMOUNT.to_string());
    let max_quote_amount =
        text.trim()
            .parse::<domain::Decimal>()
            .map_err(|_| ConfigError::Invalid {
                name,
                reason: format!("expected a decimal number, got {text}"),
            })?;
    let default_interval = domain::money::DEFAULT_MIN_INTERVAL_SECS.to_string();
    let min_interval_secs = whole_number(get, "BOT_MIN_INTERVAL_SECS", &default_interval)?;
    domain::StrategyLimits::new(max_quote_amount, min_interval_secs).map_err(|refusal| {
        let (field, reason) = match refusal {
            domain::DomainError::Invalid { field, reason } => (field, reason),
            other => ("", other.to_string()),
        };
        let name = match field {
            "min_interval_secs" => "BOT_MIN_INTERVAL_SECS",
            _ => name,
        };
        ConfigError::Invalid { name, reason }
    })
}

/// `BOT_TRIGGERS_PER_MINUTE` and `BOT_MAX_PENDING_TRIGGERS`, each from 1
/// to its maximum in `domain::TriggerQuotas`.
fn trigger_quotas(
    get: &dyn Fn(&str) -> Option<String>,
) -> Result<domain::TriggerQuotas, ConfigError> {
    let quota = |name: &'static str, default: u32, max: u32| {
        let value = whole_number(get, name, &default.to_string())?;
        u32::try_from(value)
            .ok()
            .filter(|value| (1..=max).contains(value))
            .ok_or(ConfigError::Invalid {
                name,
                reason: format!("expected a whole number from 1 to {max}, got {value}"),
            })
    };
    let per_minute = quota(
        "BOT_TRIGGERS_PER_MINUTE",
        domain::TriggerQuotas::DEFAULT_PER_MINUTE,
        domain::TriggerQuotas::MAX_PER_MINUTE,
    )?;
    let max_pending = quota(
        "BOT_MAX_PENDING_TRIGGERS",
        domain::TriggerQuotas::DEFAULT_MAX_PENDING,
        domain::TriggerQuotas::MAX_PENDING,
    )?;
    domain::TriggerQuotas::new(per_minute, max_pending).map_err(|reason| ConfigError::Invalid {
        name: "BOT_TRIGGERS_PER_MINUTE",
        reason,
    })
}

fn http_addr(get: &dyn Fn(&str) -> Option<String>) -> Result<SocketAddr, ConfigError> {
    let text = get("HTTP_ADDR").unwrap_or_else(|| "127.0.0.1:8080".to_string());
    text.parse().map_err(|_| ConfigError::Invalid {
        name: "HTTP_ADDR",
        reason: format!("expected host:port, got {text}"),
    })
}

/// What the HTTP layer is handed (see [`Settings::http`]).
fn http_settings(get: &dyn Fn(&str) -> Option<String>) -> Result<api::HttpSettings, ConfigError> {
    let number = |name: &'static str, default: &str| whole_number(get, name, default);
    Ok(api::HttpSettings {
        refresh_token_ttl: chrono::Duration::seconds(
            number("REFRESH_TOKEN_TTL_SECS", "2592000")? as i64
        ),
        query_wait_max: std::time::Duration::from_millis(number("QUERY_WAIT_MAX_MS", "2000")?),
        instance: instance_name(get("MUCKARD_INSTANCE"))?,
        cors_allowed_origins: cors_origins(get("CORS_ALLOWED_ORIGINS"))?,
        rate_limit: api::rate_limit::RateLimitSettings {
            per_second: number("RATE_LIMIT_PER_SECOND", "50")? as f64,
            burst: number("RATE_LIMIT_BURST", "100")?.max(1) as f64,
            trusted_proxies: trusted_proxies(get("RATE_LIMIT_TRUSTED_PROXIES"))?,
        },
        live: api::live::LiveSettings {
            max_connections_per_user: number("STREAM_MAX_CONNECTIONS_PER_USER", "5")?.max(1)
                as usize,
            heartbeat: std::time::Duration::from_secs(
                number("STREAM_HEARTBEAT_SECS", "15")?.max(1),
            ),
        },
    })
}

/// Each origin must be `scheme://host[:port]` (what a browser sends in
/// `Origin`), or the list is just `*`.
fn cors_origins(configured: Option<String>) -> Result<Vec<String>, ConfigError> {
    let origins: Vec<String> = configured
        .unwrap_or_default()
        .split(',')
        .map(|origin| origin.trim().trim_end_matches('/').to_string())
        .filter(|origin| !origin.is_empty())
        .collect();
    if origins.iter().any(|o| o == "*") {
        if origins.len() > 1 {
            return Err(ConfigError::Invalid {
                name: "CORS_ALLOWED_ORIGINS",
                reason: "* cannot be combined with other origins".to_string(),
            });
        }
        return Ok(origins);
    }
    for origin in &origins {
        let well_formed = origin.split_once("://").is_some_and(|(scheme, host)| {
            matches!(scheme, "http" | "https")
                && !host.is_empty()
                && !host.contains('/')
                && host.bytes().all(|b| b.is_ascii_graphic())
        });
        if !well_formed {
            return Err(ConfigError::Invalid {
                name: "CORS_ALLOWED_ORIGINS",
                reason: format!("expected origins like https://app.example.com, got {origin}"),
            });
        }
    }
    Ok(origins)
}

fn trusted_proxies(
    configured: Option<String>,
) -> Result<Vec<api::rate_limit::IpNetwork>, ConfigError> {
    configured
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|network| !network.is_empty())
        .map(|network| {
            network.parse().map_err(|reason| ConfigError::Invalid {
                name: "RATE_LIMIT_TRUSTED_PROXIES",
                reason,
            })
        })
        .collect()
}

/// The configured instance name, or the host name, or `muckard`. It goes
/// into a response header, so it must be visible ASCII.
fn instance_name(configured: Option<String>) -> Result<String, ConfigError> {
    let name = configured
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "muckard".to_string());
    if name.len() > 64 || !name.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ConfigError::Invalid {
            name: "MUCKARD_INSTANCE",
            reason: "expected at most 64 visible ASCII characters".to_string(),
        });
    }
    Ok(name)
}

fn decode_jwt_secret(text: &str) -> Result<Vec<u8>, ConfigError> {
    if text.len() < 32 {
        return Err(ConfigError::Invalid {
            name: "JWT_SECRET",
            reason: "must be at least 32 characters".to_string(),
        });
    }
    Ok(text.as_bytes().to_vec())
}

fn decode_encryption_key(text: &str) -> Result<Vec<u8>, ConfigError> {
    match hex::decode(text.trim()) {
        Ok(bytes) if bytes.len() == 32 => Ok(bytes),
        _ => Err(ConfigError::Invalid {
            name: "SECRETS_ENCRYPTION_KEY",
            reason: "must be 64 hex characters (32 bytes)".to_string(),
        }),
    }
}

/// The JWT secret, the encryption key and the audit signing key.
type Keys = (Vec<u8>, Vec<u8>, Vec<u8>);

/// The JWT secret, the encryption key and the audit signing key: from the
/// environment, or in development from a local key file created on first
/// use (and completed when an older file lacks a key).
fn keys(
    get: &dyn Fn(&str) -> Option<String>,
    environment: Environment,
) -> Result<Keys, ConfigError> {
    let jwt = get("JWT_SECRET");
    let encryption = get("SECRETS_ENCRYPTION_KEY");
    let audit = get("AUDIT_SIGNING_KEY");
    if let (Some(jwt), Some(encryption), Some(audit)) = (&jwt, &encryption, &audit) {
        return Ok((
            decode_jwt_secret(jwt)?,
            decode_encryption_key(encryption)?,
            decode_audit_key(audit)?,
        ));
    }
    if environment == Environment::Production {
        let name = if jwt.is_none() {
            "JWT_SECRET"
        } else if encryption.is_none() {
            "SECRETS_ENCRYPTION_KEY"
        } else {
            "AUDIT_SIGNING_KEY"
        };
        return Err(ConfigError::Required { name });
    }
    let path = PathBuf::from(
        get("MUCKARD_KEY_FILE").unwrap_or_else(|| ".muckard/local-keys.json".to_string()),
    );
    let local = load_or_create_local_keys(&path)?;
    let jwt = decode_jwt_secret(jwt.as_deref().unwrap_or(&local.jwt_secret))?;
    let encryption = decode_encryption_key(
        encryption
            .as_deref()
            .unwrap_or(&local.secrets_encryption_key),
    )?;
    let local_audit = local.audit_signing_key.unwrap_or_default();
    let audit = decode_audit_key(audit.as_deref().unwrap_or(&local_audit))?;
    Ok((jwt, encryption, audit))
}

fn decode_audit_key(text: &str) -> Result<Vec<u8>, ConfigError> {
    match hex::decode(text.trim()) {
        Ok(bytes) if bytes.len() == 32 => Ok(bytes),
        _ => Err(ConfigError::Invalid {
            name: "AUDIT_SIGNING_KEY",
            reason: "must be 64 hex characters (a 32-byte Ed25519 seed)".to_string(),
        }),
    }
}

fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buffer);
    hex::encode(buffer)
}

fn load_or_create_local_keys(path: &PathBuf) -> Result<LocalKeys, ConfigError> {
    let error = |reason: String| ConfigError::KeyFile {
        path: path.display().to_string(),
        reason,
    };
    if path.exists() {
        let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
        let mut keys: LocalKeys = serde_json::from_str(&text).map_err(|e| error(e.to_string()))?;
        if keys.audit_signing_key.is_none() {
            keys.audit_signing_key = Some(random_hex(32));
            let text = serde_json::to_string_pretty(&keys).map_err(|e| error(e.to_string()))?;
            std::fs::remove_file(path).map_err(|e| error(e.to_string()))?;
            write_private(path, &text).map_err(|e| error(e.to_string()))?;
            tracing::warn!(path = %path.display(), "added an audit signing key to the local key file");
        }
        return Ok(keys);
    }
    let keys = LocalKeys {
        jwt_secret: random_hex(32),
        secrets_encryption_key: random_hex(32),
        audit_signing_key: Some(random_hex(32)),
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| error(e.to_string()))?;
    }
    let text = serde_json::to_string_pretty(&keys).map_err(|e| error(e.to_string()))?;
    write_private(path, &text).map_err(|e| error(e.to_string()))?;
    tracing::warn!(
        path = %path.display(),
        "JWT_SECRET, SECRETS_ENCRYPTION_KEY and AUDIT_SIGNING_KEY are not set; created local keys \
         for development. Set all three (MUCKARD_ENV=production requires them) before running \
         anywhere else"
    );
    Ok(keys)
}

#[cfg(unix)]
fn write_private(path: &PathBuf, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &PathBuf, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

#[cfg(test)]
mod messaging_settings_tests {
    use std::cell::RefCell;
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn env_example_documents_exactly_the_settings_that_are_read() {
        let asked = RefCell::new(BTreeSet::new());
        let keys = std::env::temp_dir().join(format!("muckard-keys-{}.json", std::process::id()));
        // Once with the secrets set, once without (then the key file is
        // read): together every name is asked for.
        for secrets in [true, false] {
            Settings::from_lookup(|name| {
                asked.borrow_mut().insert(name.to_string());
                match name {
                    "JWT_SECRET" if secrets => Some("x".repeat(32)),
                    "SECRETS_ENCRYPTION_KEY" if secrets => Some("ab".repeat(32)),
                    // Its prefix is read only with it.
                    "REDIS_URL" if secrets => Some("redis://127.0.0.1:6379".to_string()),
                    "MUCKARD_KEY_FILE" => Some(keys.display().to_string()),
                    _ => None,
                }
            })
            .expect("the defaults are valid");
        }
        let _ = std::fs::remove_file(&keys);
        let asked = asked.into_inner();
        let documented: BTreeSet<String> = ENV_EXAMPLE
            .lines()
            .filter_map(documented_setting)
            .map(|(name, _)| name.to_string())
            .collect();
        let undocumented: Vec<&String> = asked.difference(&documented).collect();
        assert!(
            undocumented.is_empty(),
            "read but not in .env.example: {undocumented:?}"
        );
        // RUST_LOG and OTEL_* are read by the telemetry, not by the settings.
        let unread: Vec<&String> = documented
            .difference(&asked)
            .filter(|name| !crate::telemetry::READ_BY_TELEMETRY.contains(&name.as_str()))
            .collect();
        assert!(
            unread.is_empty(),
            "in .env.example but never read: {unread:?}"
        );
        let help = help_text();
        for name in &documented {
            assert!(help.contains(name.as_str()), "--help does not name {name}");
        }
    }

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let mut env: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.insert("JWT_SECRET".into(), "x".repeat(32));
        env.insert("SECRETS_ENCRYPTION_KEY".into(), "ab".repeat(32));
        env.insert("AUDIT_SIGNING_KEY".into(), "cd".repeat(32));
        Settings::from_lookup(|name| env.get(name).cloned())
    }

    #[test]
    fn roles_include_the_publisher_and_the_runner() {
        assert_eq!(Roles::parse("all"), Ok(Roles::ALL));
        let some = Roles::parse("publisher, runner").unwrap();
        assert!(some.publisher && some.runner && !some.api && !some.projector);
        assert!(Roles::parse("rabbit")
            .unwrap_err()
            .contains("publisher, runner"));
    }

    #[test]
    fn rabbitmq_and_exchange_settings_have_defaults_and_are_checked() {
        let defaults = settings(&[]).unwrap();
        assert_eq!(
            defaults.rabbitmq_url.expose(),
            "amqp://guest:guest@127.0.0.1:5672/%2f"
        );
        assert_eq!(defaults.rabbitmq_queue_prefix, "");
        assert_eq!(defaults.exchange, ExchangeKind::Paper);
        let kraken = settings(&[
            ("EXCHANGE", "kraken"),
            ("KRAKEN_API_URL", "http://127.0.0.1:9"),
            ("RABBITMQ_QUEUE_PREFIX", "staging."),
        ])
        .unwrap();
        assert_eq!(kraken.exchange, ExchangeKind::Kraken);
        assert_eq!(kraken.kraken_api_url, "http://127.0.0.1:9");
        assert_eq!(kraken.rabbitmq_queue_prefix, "staging.");
        let wrong = settings(&[("EXCHANGE", "binance")]).unwrap_err();
        assert_eq!(
            wrong.to_string(),
            "EXCHANGE: expected paper or kraken, got binance"
        );
    }

    #[test]
    fn bot_limits_have_defaults_and_are_checked() {
        let defaults = settings(&[]).unwrap().bot_limits;
        assert_eq!(defaults, domain::StrategyLimits::default());
        assert_eq!(
            defaults.max_quote_amount(),
            domain::Decimal::from(1_000_000)
        );
        assert_eq!(defaults.min_interval_secs(), 60);
        let chosen = settings(&[
            ("BOT_MAX_QUOTE_AMOUNT", "2500.50"),
            ("BOT_MIN_INTERVAL_SECS", "1"),
        ])
        .unwrap()
        .bot_limits;
        assert_eq!(chosen.max_quote_amount(), domain::Decimal::new(250_050, 2));
        assert_eq!(chosen.min_interval_secs(), 1);
        for (name, value) in [
            ("BOT_MAX_QUOTE_AMOUNT", "0"),
            ("BOT_MAX_QUOTE_AMOUNT", "-5"),
            ("BOT_MAX_QUOTE_AMOUNT", "79228162514264337593543950335"),
            ("BOT_MAX_QUOTE_AMOUNT", "0.000000001"),
            ("BOT_MAX_QUOTE_AMOUNT", "lots"),
            ("BOT_MIN_INTERVAL_SECS", "0"),
            ("BOT_MIN_INTERVAL_SECS", "2592001"),
        ] {
            let wrong = settings(&[(name, value)]).unwrap_err();
            assert!(
                wrong.to_string().starts_with(name),
                "{name}={value}: {wrong}"
            );
        }
    }

    #[test]
    fn quotas_have_defaults_and_are_checked() {
        let defaults = settings(&[]).unwrap();
        assert_eq!(defaults.trigger_quotas, domain::TriggerQuotas::default());
        assert_eq!(defaults.trigger_quotas.per_minute, 6);
        assert_eq!(defaults.trigger_quotas.max_pending, 10);
        assert_eq!(defaults.max_bots_per_user, 20);
        let chosen = settings(&[
            ("BOT_TRIGGERS_PER_MINUTE", "2"),
            ("BOT_MAX_PENDING_TRIGGERS", "3"),
            ("BOT_MAX_PER_USER", "4"),
        ])
        .unwrap();
        assert_eq!(chosen.trigger_quotas.per_minute, 2);
        assert_eq!(chosen.trigger_quotas.max_pending, 3);
        assert_eq!(chosen.max_bots_per_user, 4);
        for (name, value) in [
            ("BOT_TRIGGERS_PER_MINUTE", "0"),
            ("BOT_TRIGGERS_PER_MINUTE", "257"),
            ("BOT_MAX_PENDING_TRIGGERS", "0"),
            ("BOT_MAX_PENDING_TRIGGERS", "many"),
            ("BOT_MAX_PER_USER", "-1"),
        ] {
            let wrong = settings(&[(name, value)]).unwrap_err();
            assert!(
                wrong.to_string().starts_with(name),
                "{name}={value}: {wrong}"
            );
        }
    }

    #[test]
    fn an_unknown_exchange_is_refused() {
        let wrong = settings(&[("EXCHANGE", "binance")]).unwrap_err();
        assert_eq!(
            wrong.to_string(),
            "EXCHANGE: expected paper or kraken, got binance"
        );
    }
}
