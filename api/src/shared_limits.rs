//! Rate limits shared by every instance through Redis (`REDIS_URL`): one
//! GCRA state per client, kept and decided atomically by a Lua script on
//! the Redis server (its clock, so instances' clocks do not matter).
//!
//! A request never waits for Redis to come back: while no connection is
//! up (Redis down, or not reached yet) the limiter decides per process, as
//! without Redis, logs the change once, says so in `/ready`, and a
//! background task reconnects once a second. Decisions are never refused
//! because Redis failed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::MultiplexedConnection;

use crate::rate_limit::Decision;

/// How long a decision may wait for Redis before the request is decided
/// per process instead.
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(250);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const RECONNECT_EVERY: Duration = Duration::from_secs(1);

/// GCRA: `KEYS[1]` holds the client's theoretical arrival time in
/// microseconds; `ARGV[1]` is the emission interval (µs per request),
/// `ARGV[2]` the burst tolerance (burst × interval). Returns `{1,
/// remaining}` or `{0, retry_after_secs}`.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local allow_at = tat + interval - tolerance
if allow_at > now then
  return {0, math.ceil((allow_at - now) / 1000000)}
end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, math.floor((tolerance - (new_tat - now)) / interval)}
";

/// Where the shared limits live.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// `redis://[user:password@]host:port[/db]` (`rediss://` for TLS is
    /// not built in).
    pub url: String,
    /// Put in front of every key, so deployments (and tests) can share a
    /// server: `<prefix>rl:<client>`.
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

/// Whether the limits are shared right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SharedState {
    Connected,
    /// Deciding per process: why.
    Degraded(String),
}

pub struct SharedLimits {
    client: redis::Client,
    settings: RedisSettings,
    script: redis::Script,
    connection: Mutex<Option<MultiplexedConnection>>,
    state: Mutex<SharedState>,
    reconnecting: AtomicBool,
}

impl SharedLimits {
    pub fn new(settings: RedisSettings) -> Result<Self, String> {
        let client = redis::Client::open(settings.url.as_str())
            .map_err(|e| format!("REDIS_URL {}: {e}", redacted(&settings.url)))?;
        Ok(Self {
            client,
            settings,
            script: redis::Script::new(GCRA),
            connection: Mutex::new(None),
            state: Mutex::new(SharedState::Degraded("not connected yet".to_string())),
            reconnecting: AtomicBool::new(false),
        })
    }

    pub fn state(&self) -> SharedState {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Starts connecting in the background (if not already), when called
    /// inside a Tokio runtime.
    pub fn connect(self: &Arc<Self>) {
        if self.reconnecting.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.reconnecting.store(false, Ordering::Release);
            return;
        };
        let shared = self.clone();
        runtime.spawn(async move {
            let config = redis::AsyncConnectionConfig::new()
                .set_connection_timeout(Some(CONNECT_TIMEOUT))
                .set_response_timeout(Some(RESPONSE_TIMEOUT));
            loop {
                match shared
                    .client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                {
                    Ok(connection) => {
                        *shared.connection.lock().unwrap_or_else(|e| e.into_inner()) =
                            Some(connection);
                        *shared.state.lock().unwrap_or_else(|e| e.into_inner()) =
                            SharedState::Connected;
                        tracing::info!(
                            redis = %redacted(&shared.settings.url),
                            "rate limits are shared across instances through Redis"
                        );
                        break;
                    }
                    Err(error) => {
                        shared.degrade(format!("connecting: {error}"));
                        tokio::time::sleep(RECONNECT_EVERY).await;
                    }
                }
            }
            shared.reconnecting.store(false, Ordering::Release);
        });
    }

    fn degrade(&self, reason: String) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if *state == SharedState::Connected {
            tracing::warn!(
                redis = %redacted(&self.settings.url),
                reason = %reason,
                "Redis unreachable: rate limits are per process until it is back"
            );
        }
        *state = SharedState::Degraded(reason);
    }

    /// The shared decision for `client`, or `None` when Redis did not give
    /// one (the caller decides per process).
    pub async fn decide(
        self: &Arc<Self>,
        client: &str,
        per_second: f64,
        burst: f64,
    ) -> Option<Decision> {
        let connection = self
            .connection
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let Some(mut connection) = connection else {
            self.connect();
            return None;
        };
        let interval = (1_000_000.0 / per_second).round().max(1.0) as i64;
        let tolerance = (interval as f64 * burst).round() as i64;
        let key = format!("{}rl:{client}", self.settings.key_prefix);
        let answer: Result<Vec<i64>, redis::RedisError> = self
            .script
            .key(key)
            .arg(interval)
            .arg(tolerance)
            .invoke_async(&mut connection)
            .await;
        match answer.as_deref() {
            Ok([1, remaining]) => Some(Decision::Allowed {
                remaining: (*remaining).max(0) as u64,
            }),
            Ok([0, retry_after]) => Some(Decision::Limited {
                retry_after_secs: (*retry_after).max(1) as u64,
            }),
            Ok(other) => {
                tracing::error!(answer = ?other, "the rate limit script answered nonsense");
                None
            }
            Err(error) => {
                *self.connection.lock().unwrap_or_else(|e| e.into_inner()) = None;
                self.degrade(error.to_string());
                self.connect();
                None
            }
        }
    }
}
