//! Argon2id password hashing, off the async runtime's threads and bounded:
//! at most [`PasswordHashingSettings::concurrency`] hashes run at once, so
//! hashing holds at most that many cores and that many times
//! [`ARGON2_MEMORY_BYTES`] (19 MiB) of memory. A caller waits at most
//! [`PasswordHashingSettings::wait`] for a slot, then is refused with
//! [`CommandError::Saturated`] (a 503 with `Retry-After`): there is no
//! unbounded queue of hashes.
//!
//! The hashes run on that many threads of their own, not on Tokio's
//! blocking pool: the allocator keeps a freed 19 MiB block in the arena of
//! the thread that used it, so hashes spread over the blocking pool's many
//! threads leave 19 MiB resident per thread (hundreds of MiB after a
//! burst), while a fixed set of threads reuses its blocks.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
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

pub fn validate_password(field: &'static str, password: &str) -> Result<(), DomainError> {
    let length = password.chars().count();
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&length) {
        return Err(DomainError::invalid(
            field,
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

/// A hash or verification, run on a hashing thread.
type Job = Box<dyn FnOnce() + Send>;

/// The bounded pool of password hashing slots every hash and verification
/// goes through, and the threads they run on.
pub struct Passwords {
    slots: Arc<Semaphore>,
    settings: PasswordHashingSettings,
    /// Never holds more jobs than there are slots: a job is sent with its
    /// slot, which it releases when it ends.
    jobs: Mutex<mpsc::Sender<Job>>,
}

impl Passwords {
    /// The slots and `concurrency` hashing threads, which end when this is
    /// dropped.
    pub fn new(settings: PasswordHashingSettings) -> Self {
        let settings = PasswordHashingSettings {
            concurrency: settings.concurrency.max(1),
            ..settings
        };
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        for n in 0..settings.concurrency {
            let receiver = receiver.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("password-hash-{n}"))
                .spawn(move || run_jobs(&receiver));
            if let Err(error) = spawned {
                tracing::error!(error = %error, "could not start a password hashing thread");
            }
        }
        Self {
            slots: Arc::new(Semaphore::new(settings.concurrency)),
            settings,
            jobs: Mutex::new(sender),
        }
    }

    /// Runs `work` on a hashing thread, holding `slot` until it ends (not
    /// until the caller stops waiting: a client that hangs up frees nothing
    /// early).
    async fn run<T: Send + 'static>(
        &self,
        slot: OwnedSemaphorePermit,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, CommandError> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _slot = slot;
            let _ = done.send(work());
        });
        self.jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(job)
            .map_err(|_| anyhow::anyhow!("the password hashing threads are gone"))?;
        result
            .await
            .map_err(|_| CommandError::from(anyhow::anyhow!("a password hashing job failed")))
    }

    pub fn settings(&self) -> PasswordHashingSettings {
        self.settings
    }

    /// Hashes running or handed to a hashing thread now (at most
    /// `concurrency`).
    pub fn in_flight(&self) -> usize {
        self.settings.concurrency - self.slots.available_permits()
    }

    /// An argon2id PHC string (argon2's defaults: 19 MiB, 2 passes).
    pub async fn hash(&self, password: SecretString) -> Result<String, CommandError> {
        let slot = self.slot().await?;
        let hashed = self
            .run(slot, move || {
                let salt = SaltString::generate(&mut OsRng);
                Argon2::default()
                    .hash_password(password.expose().as_bytes(), &salt)
                    .map(|hash| hash.to_string())
                    .map_err(|e| anyhow::anyhow!("password hashing failed: {e}"))
            })
            .await??;
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
        self.run(slot, move || verify_blocking(&password, stored.as_deref()))
            .await
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

/// A hashing thread: runs jobs until the sender is dropped. A job that
/// panics drops its result sender (its caller gets an error) and its slot;
/// the thread goes on.
fn run_jobs(receiver: &Mutex<mpsc::Receiver<Job>>) {
    loop {
        let job = match receiver.lock() {
            Ok(receiver) => receiver.recv(),
            Err(_) => return,
        };
        match job {
            Ok(job) => {
                let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
            }
            Err(_) => return,
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
