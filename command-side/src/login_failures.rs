//! Failed log-ins of emails that no user holds. A registered user's
//! failures are events in its stream (`user.login_failed`) and its back-off
//! is computed from them; an unknown email has no stream, so its failures
//! are kept here, in memory and bounded, and back off with the same
//! [`LoginBackoff`]: a client learns nothing about which emails exist from
//! when it starts getting 429s.
//!
//! With a shared Redis ([`RedisLink`], `REDIS_URL`) the failures are kept
//! there too, under `<prefix>login:<SHA-256 of the email>` (the email is
//! not stored), so every instance backs off the same; when Redis does not
//! answer, this process's memory decides.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use domain::user::{LoginBackoff, REMEMBERED_FAILED_LOGINS};
use sha2::{Digest, Sha256};

use crate::redis_link::RedisLink;

/// Unknown emails remembered at most; past it the least recently failed
/// are forgotten first.
pub const MAX_REMEMBERED_UNKNOWN_EMAILS: usize = 10_000;

pub struct UnknownEmailFailures {
    policy: LoginBackoff,
    capacity: usize,
    failures: Mutex<HashMap<String, Vec<DateTime<Utc>>>>,
    shared: Option<Arc<RedisLink>>,
}

impl UnknownEmailFailures {
    pub fn new(policy: LoginBackoff, capacity: usize) -> Self {
        Self {
            policy,
            capacity: capacity.max(1),
            failures: Mutex::new(HashMap::new()),
            shared: None,
        }
    }

    /// The same, kept in `shared` too when given.
    pub fn shared_through(self, shared: Option<Arc<RedisLink>>) -> Self {
        Self { shared, ..self }
    }

    fn shared_key(&self, link: &RedisLink, email: &str) -> String {
        link.key(&format!(
            "login:{}",
            hex::encode(Sha256::digest(email.as_bytes()))
        ))
    }

    /// [`locked_until`](Self::locked_until) over every instance's failures
    /// when they are shared and Redis answers, else this process's.
    pub async fn locked_until_shared(
        &self,
        email: &str,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let Some((link, mut connection)) = self
            .shared
            .as_ref()
            .and_then(|link| Some((link, link.connection()?)))
        else {
            return self.locked_until(email, now);
        };
        let key = self.shared_key(link, email);
        let read: Result<Vec<i64>, redis::RedisError> = redis::cmd("LRANGE")
            .arg(&key)
            .arg(0)
            .arg(-1)
            .query_async(&mut connection)
            .await;
        match read {
            Ok(micros) => {
                let times: Vec<DateTime<Utc>> = micros
                    .into_iter()
                    .filter_map(DateTime::from_timestamp_micros)
                    .collect();
                self.policy.locked_until(&times, now)
            }
            Err(error) => {
                link.failed(&error);
                self.locked_until(email, now)
            }
        }
    }

    /// [`record`](Self::record), and into Redis when the failures are
    /// shared (the last [`REMEMBERED_FAILED_LOGINS`], expiring once they no
    /// longer count).
    pub async fn record_shared(&self, email: &str, now: DateTime<Utc>) {
        self.record(email, now);
        let Some((link, mut connection)) = self
            .shared
            .as_ref()
            .and_then(|link| Some((link, link.connection()?)))
        else {
            return;
        };
        let key = self.shared_key(link, email);
        let keep = REMEMBERED_FAILED_LOGINS as i64;
        let horizon = self.policy.window.max(self.policy.backoff);
        let expire_ms = horizon.num_milliseconds().max(1000);
        let written: Result<(), redis::RedisError> = redis::pipe()
            .atomic()
            .cmd("RPUSH")
            .arg(&key)
            .arg(now.timestamp_micros())
            .ignore()
            .cmd("LTRIM")
            .arg(&key)
            .arg(-keep)
            .arg(-1)
            .ignore()
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(expire_ms)
            .ignore()
            .query_async(&mut connection)
            .await;
        if let Err(error) = written {
            link.failed(&error);
        }
    }

    /// When log-ins with `email` open again, if they are closed at `now`.
    pub fn locked_until(&self, email: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let times = failures.get(email)?;
        self.policy.locked_until(times, now)
    }

    /// Notes a failed log-in with `email` at `now`.
    pub fn record(&self, email: &str, now: DateTime<Utc>) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if !failures.contains_key(email) && failures.len() >= self.capacity {
            self.make_room(&mut failures, now);
        }
        let times = failures.entry(email.to_string()).or_default();
        if times.len() >= REMEMBERED_FAILED_LOGINS {
            times.remove(0);
        }
        times.push(now);
    }

    pub fn len(&self) -> usize {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets the emails whose failures no longer count, and if none
    /// qualify, the one that failed least recently.
    fn make_room(&self, failures: &mut HashMap<String, Vec<DateTime<Utc>>>, now: DateTime<Utc>) {
        let horizon = now - self.policy.window.max(self.policy.backoff);
        failures.retain(|_, times| times.last().is_some_and(|last| *last > horizon));
        if failures.len() < self.capacity {
            return;
        }
        let oldest = failures
            .iter()
            .min_by_key(|(_, times)| times.last().copied())
            .map(|(email, _)| email.clone());
        if let Some(oldest) = oldest {
            failures.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn an_unknown_email_backs_off_as_an_account_would() {
        let failures = UnknownEmailFailures::new(LoginBackoff::default(), 10);
        for i in 0..4 {
            failures.record("nobody@example.com", at(i));
        }
        assert_eq!(failures.locked_until("nobody@example.com", at(5)), None);
        failures.record("nobody@example.com", at(5));
        assert_eq!(
            failures.locked_until("nobody@example.com", at(6)),
            Some(at(305))
        );
        assert_eq!(failures.locked_until("other@example.com", at(6)), None);
    }

    #[test]
    fn the_remembered_emails_are_bounded() {
        let failures = UnknownEmailFailures::new(LoginBackoff::default(), 3);
        for i in 0..10 {
            failures.record(&format!("n{i}@example.com"), at(i));
        }
        assert_eq!(failures.len(), 3);
        // The most recent ones are kept.
        failures.record("n9@example.com", at(11));
        assert_eq!(failures.len(), 3);
    }
}
