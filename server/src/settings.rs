//! Settings, parsed once from environment variables (see `.env.example`),
//! with defaults that run on one machine.

use std::net::SocketAddr;
use std::path::PathBuf;

use rand::RngCore;
use serde::{Deserialize, Serialize};

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
    pub database_url: Secret<String>,
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
    /// The exchange bots trade on and keys are tested against (`EXCHANGE`).
    pub exchange: ExchangeKind,
    pub kraken_api_url: String,
    /// The deadline of one exchange call (`EXCHANGE_TIMEOUT_MS`).
    pub exchange_timeout: std::time::Duration,
    /// The paper exchange's price-feed seed (`PAPER_SEED`).
    pub paper_seed: u64,
    /// How often a threshold bot looks at the price (`RUNNER_TICK_MS`).
    pub runner_tick: std::time::Duration,
    /// What the HTTP layer needs: `REFRESH_TOKEN_TTL_SECS`,
    /// `QUERY_WAIT_MAX_MS`, `MUCKARD_INSTANCE` (default the host name, sent
    /// on every response as `x-muckard-instance` so an operator can tell
    /// which instance behind a gateway answered), `CORS_ALLOWED_ORIGINS`
    /// (comma-separated, `*` for any; empty sends no CORS headers, as
    /// behind the gateway, which answers CORS itself) and the per-client
    /// limits on the `/api` routes (`RATE_LIMIT_*`).
    pub http: api::HttpSettings,
    /// After SIGTERM, how long requests in flight may take before the
    /// process stops waiting for them (`SHUTDOWN_GRACE_SECS`); workers
    /// then get as long again to finish their batch and flush.
    pub shutdown_grace: std::time::Duration,
    /// The deadline of each dependency check of `/ready`.
    pub ready_check_timeout: std::time::Duration,
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
}

impl Roles {
    pub const ALL: Roles = Roles {
        api: true,
        projector: true,
        kafka_mirror: true,
        publisher: true,
        runner: true,
    };

    pub const NONE: Roles = Roles {
        api: false,
        projector: false,
        kafka_mirror: false,
        publisher: false,
        runner: false,
    };

    /// The role names, as `--roles` and `MUCKARD_ROLES` take them.
    pub const NAMES: &'static str = "api, projector, kafka-mirror, publisher, runner or all";

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
        let (jwt_secret, encryption_key) = keys(&get, environment)?;
        Ok(Settings {
            environment,
            database_url: Secret::new(
                get("DATABASE_URL")
                    .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/muckard".to_string()),
            ),
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
            http: http_settings(&get)?,
            shutdown_grace: std::time::Duration::from_secs(number("SHUTDOWN_GRACE_SECS", "10")?),
            ready_check_timeout: millis("READY_CHECK_TIMEOUT_MS", "2000")?.max(MIN_MILLI),
        })
    }
}

const MIN_MILLI: std::time::Duration = std::time::Duration::from_millis(1);

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

/// The JWT secret and the encryption key: from the environment, or in
/// development from a local key file created on first use.
fn keys(
    get: &dyn Fn(&str) -> Option<String>,
    environment: Environment,
) -> Result<(Vec<u8>, Vec<u8>), ConfigError> {
    let jwt = get("JWT_SECRET");
    let encryption = get("SECRETS_ENCRYPTION_KEY");
    if let (Some(jwt), Some(encryption)) = (&jwt, &encryption) {
        return Ok((decode_jwt_secret(jwt)?, decode_encryption_key(encryption)?));
    }
    if environment == Environment::Production {
        let name = if jwt.is_none() {
            "JWT_SECRET"
        } else {
            "SECRETS_ENCRYPTION_KEY"
        };
        return Err(ConfigError::Required { name });
    }
    let path = PathBuf::from(
        get("MUCKARD_KEY_FILE").unwrap_or_else(|| ".muckard/local-keys.json".to_string()),
    );
    let local = load_or_create_local_keys(&path)?;
    let jwt = match jwt {
        Some(text) => decode_jwt_secret(&text)?,
        None => decode_jwt_secret(&local.jwt_secret)?,
    };
    let encryption = match encryption {
        Some(text) => decode_encryption_key(&text)?,
        None => decode_encryption_key(&local.secrets_encryption_key)?,
    };
    Ok((jwt, encryption))
}

fn load_or_create_local_keys(path: &PathBuf) -> Result<LocalKeys, ConfigError> {
    let error = |reason: String| ConfigError::KeyFile {
        path: path.display().to_string(),
        reason,
    };
    if path.exists() {
        let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
        return serde_json::from_str(&text).map_err(|e| error(e.to_string()));
    }
    let random = |n: usize| {
        let mut bytes = vec![0u8; n];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        hex::encode(bytes)
    };
    let keys = LocalKeys {
        jwt_secret: random(32),
        secrets_encryption_key: random(32),
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| error(e.to_string()))?;
    }
    let text = serde_json::to_string_pretty(&keys).map_err(|e| error(e.to_string()))?;
    write_private(path, &text).map_err(|e| error(e.to_string()))?;
    tracing::warn!(
        path = %path.display(),
        "JWT_SECRET and SECRETS_ENCRYPTION_KEY are not set; created local keys for development. \
         Set both (MUCKARD_ENV=production requires them) before running anywhere else"
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
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let mut env: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.insert("JWT_SECRET".into(), "x".repeat(32));
        env.insert("SECRETS_ENCRYPTION_KEY".into(), "ab".repeat(32));
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
}
