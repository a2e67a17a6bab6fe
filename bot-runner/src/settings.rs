//! The runner's bounds, set by the binary (`RUNNER_*`, see `.env.example`).

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct RunnerSettings {
    /// How often a threshold bot looks at the price.
    pub tick: Duration,
    /// Unacknowledged messages per queue's consumer: what its lanes may
    /// hold, so a flood from one user on a queue delays others on it only
    /// past this many.
    pub prefetch: u16,
    /// The longest pause between reconnection attempts.
    pub max_backoff: Duration,
    /// Commands running at once per queue.
    pub max_concurrent: usize,
    /// Commands of one user running at once per queue.
    pub per_user_share: usize,
    /// Attempts at a message that fails unexpectedly (or panics) before it
    /// is dead-lettered.
    pub max_attempts: u32,
    /// How long a queue's consumer may go without serving before the
    /// active runner gives up its lock.
    pub serve_deadline: Duration,
}

impl Default for RunnerSettings {
    fn default() -> Self {
        Self {
            tick: Duration::from_secs(5),
            prefetch: 256,
            max_backoff: Duration::from_secs(10),
            max_concurrent: 16,
            per_user_share: 4,
            max_attempts: 3,
            serve_deadline: Duration::from_secs(5),
        }
    }
}
