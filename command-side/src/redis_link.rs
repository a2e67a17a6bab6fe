//! One connection to the Redis server that holds what every instance must
//! share (`REDIS_URL`): the rate limits' state (`api::shared_limits`) and
//! the log-in back-off of unknown emails ([`crate::login_failures`]).
//!
//! Nothing ever waits for Redis to come back: while no connection is up
//! (Redis down, or not reached yet) [`RedisLink::connection`] answers
//! `None`, its users fall back to what this process knows, the change is
//! logged once and shown in `/ready`, and a background task reconnects
//! once a second.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use redis::aio::MultiplexedConnection;

/// How long a command may wait for Redis before its user falls back.
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(250);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const RECONNECT_EVERY: Duration = Duration::from_secs(1);

/// Where the shared state lives.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// `redis://[user:password@]host:port[/db]` (no TLS built in).
    pub url: String,
    /// Put in front of every key, so deployments (and tests) can share a
    /// server.
    pub key_prefix: String,
}

impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &redacted(&self.url))
            .field("key_prefix", &self.key_prefix)
            .finish()
    }
}

/// Whether `url` is a Redis URL the client can use.
pub fn check_url(url: &str) -> Result<(), String> {
    redis::Client::open(url)
        .map(|_| ())
        .map_err(|e| format!("expected redis://[user:password@]host:port[/db]: {e}"))
}

/// The URL without its password.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://[redacted]@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

/// Whether the shared state is reachable right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkState {
    Connected,
    /// Falling back to this process: why.
    Degraded(String),
}

pub struct RedisLink {
    client: redis::Client,
    settings: RedisSettings,
    connection: Mutex<Option<MultiplexedConnection>>,
    state: Mutex<LinkState>,
    reconnecting: AtomicBool,
}

impl RedisLink {
    /// A link to `settings`' server; it connects at once when made inside
    /// a Tokio runtime, else at its first use.
    pub fn new(settings: RedisSettings) -> Result<std::sync::Arc<Self>, String> {
        let client = redis::Client::open(settings.url.as_str())
            .map_err(|e| format!("REDIS_URL {}: {e}", redacted(&settings.url)))?;
        let link = std::sync::Arc::new(Self {
            client,
            settings,
            connection: Mutex::new(None),
            state: Mutex::new(LinkState::Degraded("not connected yet".to_string())),
            reconnecting: AtomicBool::new(false),
        });
        link.reconnect();
        Ok(link)
    }

    pub fn state(&self) -> LinkState {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// `name` under the configured prefix.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.settings.key_prefix)
    }

    /// The connection, if one is up; else `None` (and a reconnection is
    /// under way).
    pub fn connection(self: &std::sync::Arc<Self>) -> Option<MultiplexedConnection> {
        let connection = self
            .connection
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if connection.is_none() {
            self.reconnect();
        }
        connection
    }

    /// A command on the connection failed: drop it, fall back, reconnect.
    pub fn failed(self: &std::sync::Arc<Self>, error: &redis::RedisError) {
        *self.connection.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.degrade(error.to_string());
        self.reconnect();
    }

    fn degrade(&self, reason: String) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if *state == LinkState::Connected {
            tracing::warn!(
                redis = %redacted(&self.settings.url),
                reason = %reason,
                "Redis unreachable: rate limits and the unknown-email log-in back-off are per \
                 process until it is back"
            );
        }
        *state = LinkState::Degraded(reason);
    }

    fn reconnect(self: &std::sync::Arc<Self>) {
        if self.reconnecting.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.reconnecting.store(false, Ordering::Release);
            return;
        };
        let link = self.clone();
        runtime.spawn(async move {
            let config = redis::AsyncConnectionConfig::new()
                .set_connection_timeout(Some(CONNECT_TIMEOUT))
                .set_response_timeout(Some(RESPONSE_TIMEOUT));
            loop {
                match link
                    .client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                {
                    Ok(connection) => {
                        *link.connection.lock().unwrap_or_else(|e| e.into_inner()) =
                            Some(connection);
                        *link.state.lock().unwrap_or_else(|e| e.into_inner()) =
                            LinkState::Connected;
                        tracing::info!(
                            redis = %redacted(&link.settings.url),
                            "rate limits and the log-in back-off are shared across instances \
                             through Redis"
                        );
                        break;
                    }
                    Err(error) => {
                        link.degrade(format!("connecting: {error}"));
                        tokio::time::sleep(RECONNECT_EVERY).await;
                    }
                }
            }
            link.reconnecting.store(false, Ordering::Release);
        });
    }
}
