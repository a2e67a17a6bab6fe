//! Argon2id password hashing, off the async runtime's threads and bounded:
//! at most [`PasswordHashingSettings::concurrency`] hashes run at once, so
//! hashing holds at most that many cores and that many times
//! [`ARGON2_MEMORY_BYTES`] (19 MiB) of memory. A caller waits at most
//! [`PasswordHashingSettings::wait`] for a slot, then is refused with
//! [`CommandError::Saturated`] (a 503 with `Retry-After`): there is no
//! unbounded queue of hashes.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use domain::DomainError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::CommandError;
use domain::SecretString;

pub const MIN_PASSWORD_CHARS: usize = 10;
pub const MAX_PASSWORD_CHARS: usize = 256;

/// The memory one argon2id computation takes with argon2's defaults
/// (m = 19456 KiB, t = 2, p = 1).
pub const ARGON2_MEMORY_BYTES: usize = argon2::Params::DEFAULT_M_COST as usize * 1024;

pub fn validate_password(password: &str) -> Result<(), DomainError> {
    let length = password.chars().count();
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&length) {
        return Err(DomainError::invalid(
            "password",
            format!("must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters"),
        ));
    }
    Ok(())
}

/// How much password hashing a process does at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordHashingSettings {
    /// Hashes (or verifications) running at once
    /// (`PASSWORD_HASH_CONCURRENCY`, at least 1).
    pub concurrency: usize,
    /// How long a log-in or registration waits for a free slot before it is
    /// refused (`PASSWORD_HASH_WAIT_MS`).
    pub wait: Duration,
}

impl PasswordHashingSettings {
    /// The default concurrency: one less than the cores this process may
    /// use, at least one, so that a burst of log-ins always leaves a core to
    /// the async runtime (health checks, every other request).
    pub fn default_concurrency() -> usize {
        std::thread::available_parallelism()
            .map(|cores| cores.get())
            .unwrap_or(1)
            .saturating_sub(1)
            .max(1)
    }

    /// The most memory hashing holds at once: `concurrency` × 19 MiB.
    pub fn memory_bound_bytes(&self) -> usize {
        self.concurrency.max(1) * ARGON2_MEMORY_BYTES
    }
}

impl Default for PasswordHashingSettings {
    /// [`Self::default_concurrency`] slots, 250 ms of waiting for one.
    fn default() -> Self {
        Self {
            concurrency: Self::default_concurrency(),
            wait: Duration::from_millis(250),
        }
    }
}

/// The bounded pool of password hashing slots every hash and verification
/// goes through.
pub struct Passwords {
    slots: Arc<Semaphore>,
    settings: PasswordHashingSettings,
}

impl Passwords {
    pub fn new(settings: PasswordHashingSettings) -> Self {
        let settings = PasswordHashingSettings {
            concurrency: settings.concurrency.max(1),
            ..settings
        };
        Self {
            slots: Arc::new(Semaphore::new(settings.concurrency)),
            settings,
        }
    }

    pub fn settings(&self) -> PasswordHashingSettings {
        self.settings
    }

    /// An argon2id PHC string (argon2's defaults: 19 MiB, 2 passes).
    pub async fn hash(&self, password: SecretString) -> Result<String, CommandError> {
        let slot = self.slot().await?;
        let hashed = tokio::task::spawn_blocking(move || {
            // The slot is released when the computation ends, not when the
            // caller stops waiting for it (a client that hangs up).
            let _slot = slot;
            let salt = SaltString::generate(&mut OsRng);
            Argon2::default()
                .hash_password(password.expose().as_bytes(), &salt)
                .map(|hash| hash.to_string())
                .map_err(|e| anyhow::anyhow!("password hashing failed: {e}"))
        })
        .await
        .map_err(|e| anyhow::anyhow!("password hashing task failed: {e}"))??;
        Ok(hashed)
    }

    /// Checks `password` against `stored`; with no stored hash it checks
    /// against a dummy so that unknown emails cost the same time.
    pub async fn verify(
        &self,
        password: SecretString,
        stored: Option<String>,
    ) -> Result<bool, CommandError> {
        let slot = self.slot().await?;
        let matches = tokio::task::spawn_blocking(move || {
            let _slot = slot;
            verify_blocking(&password, stored.as_deref())
        })
        .await
        .unwrap_or(false);
        Ok(matches)
    }

    /// A slot, waiting at most `wait`.
    async fn slot(&self) -> Result<OwnedSemaphorePermit, CommandError> {
        match tokio::time::timeout(self.settings.wait, self.slots.clone().acquire_owned()).await {
            Ok(Ok(slot)) => Ok(slot),
            Ok(Err(closed)) => Err(CommandError::Unexpected(anyhow::anyhow!(
                "password hashing slots closed: {closed}"
            ))),
            Err(_) => {
                crate::metrics::record_password_hash_refused();
                Err(CommandError::Saturated(format!(
                    "password hashing busy ({} at once)",
                    self.settings.concurrency
                )))
            }
        }
    }
}

fn verify_blocking(password: &SecretString, stored: Option<&str>) -> bool {
    let (hash_text, known) = match stored {
        Some(hash) => (hash, true),
        None => (dummy_hash(), false),
    };
    let Ok(hash) = PasswordHash::new(hash_text) else {
        return false;
    };
    let matches = Argon2::default()
        .verify_password(password.expose().as_bytes(), &hash)
        .is_ok();
    matches && known
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(b"not a real password", &salt)
            .map(|hash| hash.to_string())
            .unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_bound_is_the_slots_times_19_mib() {
        assert_eq!(ARGON2_MEMORY_BYTES, 19 * 1024 * 1024);
        let settings = PasswordHashingSettings {
            concurrency: 2,
            wait: Duration::from_millis(1),
        };
        assert_eq!(settings.memory_bound_bytes(), 38 * 1024 * 1024);
    }

    #[tokio::test]
    async fn a_caller_finding_every_slot_taken_is_refused_after_the_wait() {
        let passwords = Passwords::new(PasswordHashingSettings {
            concurrency: 1,
            wait: Duration::from_millis(20),
        });
        let _held = passwords.slots.clone().acquire_owned().await.unwrap();
        let started = std::time::Instant::now();
        let refused = passwords.hash(SecretString::new("x".repeat(12))).await;
        assert!(
            matches!(refused, Err(CommandError::Saturated(_))),
            "{refused:?}"
        );
        assert!(started.elapsed() < Duration::from_millis(500));
    }

    #[tokio::test]
    async fn a_hash_verifies_and_a_wrong_password_or_no_hash_does_not() {
        let passwords = Passwords::new(PasswordHashingSettings::default());
        let hash = passwords
            .hash(SecretString::new("correct horse battery".to_string()))
            .await
            .unwrap();
        let verify = |password: &str, stored: Option<String>| {
            passwords.verify(SecretString::new(password.to_string()), stored)
        };
        assert!(verify("correct horse battery", Some(hash.clone()))
            .await
            .unwrap());
        assert!(!verify("wrong horse battery", Some(hash)).await.unwrap());
        assert!(!verify("not a real password", None).await.unwrap());
    }
}
