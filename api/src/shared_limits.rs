//! Rate limits shared by every instance through Redis (`REDIS_URL`): one
//! GCRA state per client, kept and decided atomically by a Lua script on
//! the Redis server (its clock, so instances' clocks do not matter), over
//! the command side's [`RedisLink`]. When Redis gives no answer the
//! limiter decides per process (see [`RedisLink`]): a request is never
//! refused because Redis failed.

use std::sync::Arc;

use command_side::redis_link::RedisLink;

use crate::rate_limit::Decision;

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

pub struct SharedLimits {
    link: Arc<RedisLink>,
    script: redis::Script,
}

impl SharedLimits {
    pub fn new(link: Arc<RedisLink>) -> Self {
        Self {
            link,
            script: redis::Script::new(GCRA),
        }
    }

    pub fn link(&self) -> &RedisLink {
        &self.link
    }

    /// The shared decision for `client`, or `None` when Redis did not give
    /// one (the caller decides per process).
    pub async fn decide(&self, client: &str, per_second: f64, burst: f64) -> Option<Decision> {
        let mut connection = self.link.connection()?;
        let interval = (1_000_000.0 / per_second).round().max(1.0) as i64;
        let tolerance = (interval as f64 * burst).round() as i64;
        let answer: Result<Vec<i64>, redis::RedisError> = self
            .script
            .key(self.link.key(&format!("rl:{client}")))
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
                self.link.failed(error);
                None
            }
        }
    }
}
