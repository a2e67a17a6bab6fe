//! Failed log-ins of emails that no user holds. A registered user's
//! failures are events in its stream (`user.login_failed`) and its back-off
//! is computed from them; an unknown email has no stream, so its failures
//! are kept here, in memory and bounded, and back off with the same
//! [`LoginBackoff`]: a client learns nothing about which emails exist from
//! when it starts getting 429s.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use domain::user::{LoginBackoff, REMEMBERED_FAILED_LOGINS};

/// Unknown emails remembered at most; past it the least recently failed
/// are forgotten first.
pub const MAX_REMEMBERED_UNKNOWN_EMAILS: usize = 10_000;

pub struct UnknownEmailFailures {
    policy: LoginBackoff,
    capacity: usize,
    failures: Mutex<HashMap<String, Vec<DateTime<Utc>>>>,
}

impl UnknownEmailFailures {
    pub fn new(policy: LoginBackoff, capacity: usize) -> Self {
        Self {
            policy,
            capacity: capacity.max(1),
            failures: Mutex::new(HashMap::new()),
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
