//! What an account does beyond registering and logging in: the email
//! verified by a one-time code, passwords changed or reset by code,
//! disabled and re-enabled accounts, and the per-request account check.
//!
//! One-time codes: 6 digits from the OS's random source, mailed (the
//! [`crate::mail::Mailer`]) and stored only as an HMAC-like SHA-256 digest
//! keyed by a server secret, the user and the purpose; they expire
//! (`EMAIL_CODE_TTL_SECS`), take a bounded number of wrong guesses
//! (`EMAIL_CODE_MAX_ATTEMPTS`) and work once; a new code is sent at most
//! every `EMAIL_CODE_RESEND_SECS`. A code is never in an event, a log line
//! or a response. The endpoints that take an email answer alike whether it
//! is registered or not: the same 202 for a request, the same 400 for a
//! guess, and the same 429 once guesses or requests are too many (unknown
//! emails are counted in memory, [`EmailThrottle`]); mail is sent by a
//! task of its own, so no answer waits for (or times) the mail server.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use domain::bot::{Bot, BotState};
use domain::user::{normalise_email, PasswordChangeKind, UserCommand};
use domain::{Actor, DomainError, SecretString};
use event_log::Position;
use rand::Rng;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::CommandError;
use crate::framework::CommandSide;
use crate::mail::{CodePurpose, Mail, Mailer};
use crate::metadata::CommandMetadata;
use crate::passwords::validate_password;

/// The account settings (`EMAIL_CODE_*`, `REQUIRE_VERIFIED_EMAIL`).
#[derive(Clone)]
pub struct AccountSettings {
    pub code_ttl: Duration,
    pub code_max_attempts: u32,
    pub code_resend_interval: Duration,
    /// Whether trading commands need a verified email (default: in
    /// production yes, in development no).
    pub require_verified_email: bool,
    /// Keys the codes' digests, so the table alone does not give them up
    /// to a search of the million codes.
    pub code_key: [u8; 32],
    pub mailer: Arc<dyn Mailer>,
}

impl AccountSettings {
    /// The defaults (10-minute codes, 5 guesses, one code a minute, no
    /// verified email needed), mail to the outbox directory `outbox`, a
    /// random code key: for tools and tests that build a command side
    /// themselves.
    pub fn development(outbox: std::path::PathBuf) -> Self {
        Self {
            code_ttl: Duration::from_secs(600),
            code_max_attempts: 5,
            code_resend_interval: Duration::from_secs(60),
            require_verified_email: false,
            code_key: rand::random(),
            mailer: Arc::new(crate::mail::OutboxMailer {
                dir: outbox,
                from: "Muckard <no-reply@muckard.local>"
                    .parse()
                    .expect("a valid mailbox"),
            }),
        }
    }
}

impl std::fmt::Debug for AccountSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountSettings")
            .field("code_ttl", &self.code_ttl)
            .field("code_max_attempts", &self.code_max_attempts)
            .field("code_resend_interval", &self.code_resend_interval)
            .field("require_verified_email", &self.require_verified_email)
            .field("mailer", &self.mailer.describe())
            .finish_non_exhaustive()
    }
}

/// What a request's token check needs of its user, read in one statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountStatus {
    pub disabled: bool,
    pub email_verified: bool,
    /// Whether the token's session is live; `true` for a token that names
    /// none.
    pub session_live: bool,
}

/// How many emails [`EmailThrottle`] remembers; the oldest go first.
const MAX_THROTTLED_EMAILS: usize = 10_000;

/// In-memory counts per email: when a code was last asked for, and wrong
/// guesses for emails that have no code (so an unknown email is refused
/// like a known one).
pub struct EmailThrottle {
    entries: Mutex<HashMap<(String, &'static str), Throttled>>,
}

#[derive(Clone, Copy)]
struct Throttled {
    since: Instant,
    count: u32,
}

impl EmailThrottle {
    pub fn new() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one event of `kind` for `email`; refuses once `limit` fall
    /// within `window` of the first.
    fn count(
        &self,
        email: &str,
        kind: &'static str,
        limit: u32,
        window: Duration,
        what: &'static str,
    ) -> Result<(), CommandError> {
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_THROTTLED_EMAILS {
            entries.retain(|_, entry| now.duration_since(entry.since) < window);
            if entries.len() >= MAX_THROTTLED_EMAILS {
                entries.clear();
            }
        }
        let entry = entries
            .entry((email.to_string(), kind))
            .or_insert(Throttled {
                since: now,
                count: 0,
            });
        if now.duration_since(entry.since) >= window {
            *entry = Throttled {
                since: now,
                count: 0,
            };
        }
        if entry.count >= limit {
            let left = window.saturating_sub(now.duration_since(entry.since));
            return Err(CommandError::TooManyAttempts {
                what,
                retry_after_secs: left.as_secs().max(1),
            });
        }
        entry.count += 1;
        Ok(())
    }
}

impl Default for EmailThrottle {
    fn default() -> Self {
        Self::new()
    }
}

/// A new 6-digit code, uniform over 000000–999999.
fn new_code() -> SecretString {
    SecretString::new(format!(
        "{:06}",
        rand::rngs::OsRng.gen_range(0..1_000_000u32)
    ))
}

fn code_digest(key: &[u8; 32], user_id: Uuid, purpose: CodePurpose, code: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(key);
    hasher.update(user_id.as_bytes());
    hasher.update(purpose.as_str().as_bytes());
    hasher.update([0]);
    hasher.update(code.as_bytes());
    hex::encode(hasher.finalize())
}

/// Equal strings, in time that depends only on their length.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// `(user_id, disabled, email_verified)` of a registered email.
type Credentials = (Uuid, bool, bool);

const WRONG: &str = "does not match";
const TOO_MANY_GUESSES: &str = "too many wrong codes; ask for a new one";

impl CommandSide {
    fn accounts(&self) -> &AccountSettings {
        &self.settings.accounts
    }

    async fn credentials_of(&self, email: &str) -> Result<Option<Credentials>, CommandError> {
        let Ok(email) = normalise_email(email) else {
            return Ok(None);
        };
        Ok(sqlx::query_as(
            "SELECT user_id, disabled_at IS NOT NULL, email_verified \
             FROM user_credentials WHERE email = $1",
        )
        .bind(email)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// A request for a code to `email`: counted per email (429 past one per
    /// `EMAIL_CODE_RESEND_SECS` and purpose, registered or not), then, for
    /// a registered email that `wants` it, a code issued and mailed by a
    /// task of its own.
    async fn request_code(
        &self,
        email: &str,
        purpose: CodePurpose,
        wants: impl Fn(bool, bool) -> bool,
    ) -> Result<(), CommandError> {
        let normalised = normalise_email(email)?;
        self.email_throttle.count(
            &normalised,
            purpose.as_str(),
            1,
            self.accounts().code_resend_interval,
            "a code was sent to this email a moment ago",
        )?;
        if let Some((user_id, disabled, verified)) = self.credentials_of(&normalised).await? {
            if wants(disabled, verified) {
                self.spawn_code_mail(user_id, normalised, purpose);
            }
        }
        Ok(())
    }

    /// Issues a code for `user_id` and mails it to `email`, in a task of
    /// its own: its failure is logged (never the code) and the user can
    /// ask again.
    pub(crate) fn spawn_code_mail(&self, user_id: Uuid, email: String, purpose: CodePurpose) {
        let pool = self.pool.clone();
        let settings = self.accounts().clone();
        tokio::spawn(async move {
            match issue_code(&pool, &settings, user_id, purpose).await {
                Ok(Some(code)) => {
                    let mail = Mail::code(&email, purpose, &code, settings.code_ttl);
                    match settings.mailer.send(mail).await {
                        Ok(()) => {
                            tracing::info!(%user_id, purpose = purpose.as_str(), "code mailed")
                        }
                        Err(error) => {
                            tracing::warn!(%user_id, purpose = purpose.as_str(), %error, "mailing a code failed")
                        }
                    }
                }
                Ok(None) => {
                    tracing::info!(%user_id, purpose = purpose.as_str(), "code not sent: one was sent a moment ago")
                }
                Err(error) => {
                    tracing::warn!(%user_id, purpose = purpose.as_str(), %error, "issuing a code failed")
                }
            }
        });
    }

    /// Spends the code `code` of `email` for `purpose`: the user's id when
    /// it matches a live code.
    async fn spend_code(
        &self,
        email: &str,
        purpose: CodePurpose,
        code: &str,
    ) -> Result<Uuid, CommandError> {
        let settings = self.accounts();
        let well_formed = code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit());
        let credentials = self.credentials_of(email).await?;
        // No code can match (no account, a disabled one, no code sent):
        // counted like wrong guesses at one, in memory.
        let no_code = || -> CommandError {
            match self.email_throttle.count(
                &normalise_email(email).unwrap_or_default(),
                purpose.as_str(),
                settings.code_max_attempts,
                settings.code_ttl,
                TOO_MANY_GUESSES,
            ) {
                Ok(()) => CommandError::CodeRefused { reason: WRONG },
                Err(refusal) => refusal,
            }
        };
        let Some((user_id, _, _)) = credentials.filter(|(_, disabled, _)| !disabled) else {
            return Err(no_code());
        };
        let mut transaction = self.pool.begin().await?;
        let row: Option<(String, chrono::DateTime<Utc>, i32, bool)> = sqlx::query_as(
            "SELECT code_hash, expires_at, attempts, used_at IS NOT NULL FROM email_codes \
             WHERE user_id = $1 AND purpose = $2 FOR UPDATE",
        )
        .bind(user_id)
        .bind(purpose.as_str())
        .fetch_optional(&mut *transaction)
        .await?;
        let Some((stored, expires_at, attempts, used)) = row else {
            return Err(no_code());
        };
        if attempts as i64 >= i64::from(settings.code_max_attempts) {
            let left = (expires_at - Utc::now()).num_seconds().max(1) as u64;
            return Err(CommandError::TooManyAttempts {
                what: TOO_MANY_GUESSES,
                retry_after_secs: left.min(settings.code_resend_interval.as_secs().max(1)),
            });
        }
        if used {
            return Err(CommandError::CodeRefused {
                reason: "was already used",
            });
        }
        if expires_at <= Utc::now() {
            return Err(CommandError::CodeRefused {
                reason: "has expired; ask for a new one",
            });
        }
        let offered = code_digest(&settings.code_key, user_id, purpose, code);
        if !well_formed || !same(&offered, &stored) {
            sqlx::query(
                "UPDATE email_codes SET attempts = attempts + 1 \
                 WHERE user_id = $1 AND purpose = $2",
            )
            .bind(user_id)
            .bind(purpose.as_str())
            .execute(&mut *transaction)
            .await?;
            transaction.commit().await?;
            return Err(CommandError::CodeRefused { reason: WRONG });
        }
        sqlx::query("UPDATE email_codes SET used_at = now() WHERE user_id = $1 AND purpose = $2")
            .bind(user_id)
            .bind(purpose.as_str())
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        Ok(user_id)
    }

    /// Mails a new account's first verification code.
    pub(crate) fn send_first_verification(&self, user_id: Uuid, email: String) {
        self.spawn_code_mail(user_id, email, CodePurpose::VerifyEmail);
    }

    /// `POST /auth/verify-email/resend`: a new code for a registered,
    /// unverified, enabled email; the same answer for any other.
    pub async fn resend_verification(&self, email: &str) -> Result<(), CommandError> {
        self.request_code(email, CodePurpose::VerifyEmail, |disabled, verified| {
            !disabled && !verified
        })
        .await
    }

    /// `POST /auth/verify-email`: records `user.email_verified` when the
    /// code matches.
    pub async fn verify_email(
        &self,
        email: &str,
        code: &str,
        metadata: &CommandMetadata,
    ) -> Result<(Uuid, Position), CommandError> {
        let user_id = self
            .spend_code(email, CodePurpose::VerifyEmail, code)
            .await?;
        let metadata = CommandMetadata {
            user_id: Some(user_id),
            ..metadata.clone()
        };
        let position = self
            .execute_user(
                &user_id.to_string(),
                UserCommand::VerifyEmail { at: Utc::now() },
                &metadata,
            )
            .await?;
        sqlx::query("UPDATE user_credentials SET email_verified = true WHERE user_id = $1")
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok((user_id, position))
    }

    /// `POST /auth/password-reset/request`: a reset code for a registered,
    /// enabled email; the same answer, in the same time, for any other.
    pub async fn request_password_reset(&self, email: &str) -> Result<(), CommandError> {
        self.request_code(email, CodePurpose::PasswordReset, |disabled, _| !disabled)
            .await
    }

    /// `POST /auth/password-reset/confirm`: the new password replaces the
    /// old when the code matches; every session ends; records
    /// `user.password_changed` (`by: reset`).
    pub async fn confirm_password_reset(
        &self,
        email: &str,
        code: &str,
        new_password: SecretString,
        metadata: &CommandMetadata,
    ) -> Result<Position, CommandError> {
        validate_password("new_password", new_password.expose())?;
        let user_id = self
            .spend_code(email, CodePurpose::PasswordReset, code)
            .await?;
        self.replace_password(
            user_id,
            new_password,
            None,
            PasswordChangeKind::Reset,
            metadata,
        )
        .await
    }

    /// `POST /user/me/password`: with the current password, a new one;
    /// every other session ends; records `user.password_changed` (`by:
    /// changed`).
    pub async fn change_password(
        &self,
        user_id: Uuid,
        session_id: Option<Uuid>,
        current_password: SecretString,
        new_password: SecretString,
        metadata: &CommandMetadata,
    ) -> Result<Position, CommandError> {
        validate_password("new_password", new_password.expose())?;
        let stored: Option<String> =
            sqlx::query_scalar("SELECT password_hash FROM user_credentials WHERE user_id = $1")
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?;
        let Some(stored) = stored else {
            return Err(DomainError::NotFound { entity: "user" }.into());
        };
        if !self
            .passwords
            .verify(current_password, Some(stored))
            .await?
        {
            return Err(
                DomainError::invalid("current_password", "is not the current password").into(),
            );
        }
        self.replace_password(
            user_id,
            new_password,
            session_id,
            PasswordChangeKind::Changed,
            metadata,
        )
        .await
    }

    /// Stores the new hash and ends every session but `keep`, in one
    /// transaction, then records the change. (A crash between the two
    /// leaves the password changed without its event; the hash is never
    /// in the log either way.)
    async fn replace_password(
        &self,
        user_id: Uuid,
        new_password: SecretString,
        keep: Option<Uuid>,
        by: PasswordChangeKind,
        metadata: &CommandMetadata,
    ) -> Result<Position, CommandError> {
        let hash = self.passwords.hash(new_password).await?;
        let mut transaction = self.pool.begin().await?;
        sqlx::query(
            "UPDATE user_credentials SET password_hash = $2, updated_at = now() WHERE user_id = $1",
        )
        .bind(user_id)
        .bind(&hash)
        .execute(&mut *transaction)
        .await?;
        crate::sessions::revoke_sessions_on(&mut *transaction, user_id, keep).await?;
        transaction.commit().await?;
        let metadata = CommandMetadata {
            user_id: Some(user_id),
            ..metadata.clone()
        }
        .with_command_type("user.change_password");
        self.execute_user(
            &user_id.to_string(),
            UserCommand::RecordPasswordChange { by, at: Utc::now() },
            &metadata,
        )
        .await
    }

    /// An admin disables `user_id`: the account's flag is set first (so
    /// its tokens stop at once), then `user.disabled` is recorded, then its
    /// sessions end and its running bots are stopped through the normal
    /// stop command. A refused command puts the flag back; start-up
    /// ([`CommandSide::reconcile_accounts`]) repairs what a crash
    /// interrupted.
    pub async fn disable_user(
        &self,
        actor: Actor,
        user_id: Uuid,
        reason: Option<String>,
        metadata: &CommandMetadata,
    ) -> Result<Position, CommandError> {
        let was: Option<bool> = sqlx::query_scalar(
            "SELECT disabled_at IS NOT NULL FROM user_credentials WHERE user_id = $1",
        )
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?;
        if actor.is_admin_or_system() && actor.user_id() != Some(user_id) {
            set_disabled(&self.pool, user_id, true).await?;
        }
        let command = UserCommand::Disable {
            actor,
            reason,
            at: Utc::now(),
        };
        let position = match self
            .execute_user(&user_id.to_string(), command, metadata)
            .await
        {
            Ok(position) => position,
            Err(error) => {
                set_disabled(&self.pool, user_id, was.unwrap_or(false)).await?;
                return Err(error);
            }
        };
        self.revoke_refresh_tokens_of(user_id).await?;
        self.stop_bots_of(actor, user_id, metadata).await?;
        Ok(position)
    }

    /// An admin re-enables `user_id`: `user.enabled`, then the flag
    /// cleared. Their sessions stay ended: they log in again.
    pub async fn enable_user(
        &self,
        actor: Actor,
        user_id: Uuid,
        metadata: &CommandMetadata,
    ) -> Result<Position, CommandError> {
        let command = UserCommand::Enable {
            actor,
            at: Utc::now(),
        };
        let position = self
            .execute_user(&user_id.to_string(), command, metadata)
            .await?;
        set_disabled(&self.pool, user_id, false).await?;
        Ok(position)
    }

    /// Requests a stop of every starting or running bot of `owner`, as
    /// `actor`; returns how many.
    async fn stop_bots_of(
        &self,
        actor: Actor,
        owner: Uuid,
        metadata: &CommandMetadata,
    ) -> Result<usize, CommandError> {
        let bots: Vec<String> = sqlx::query_scalar(
            "SELECT aggregate_id FROM events \
             WHERE aggregate_type = 'Bot' AND event_type = 'bot.configured' \
               AND ((payload::jsonb) ->> 'owner_id') = $1",
        )
        .bind(owner.to_string())
        .fetch_all(&self.pool)
        .await?;
        let mut stopped = 0;
        for bot_id in bots {
            let (bot, _) = self.load::<Bot>(&bot_id).await?;
            if !matches!(bot.state, BotState::Starting | BotState::Running) {
                continue;
            }
            let Ok(bot_uuid) = bot_id.parse::<Uuid>() else {
                continue;
            };
            let metadata = metadata.clone().with_command_type("bot.request_stop");
            match self
                .request_bot_stop(
                    actor,
                    bot_uuid,
                    Some("the owner's account was disabled".to_string()),
                    &metadata,
                )
                .await
            {
                Ok(_) => stopped += 1,
                // Stopped meanwhile.
                Err(CommandError::Refused(DomainError::Conflict { .. })) => {}
                Err(other) => return Err(other),
            }
        }
        Ok(stopped)
    }

    /// One statement per request: whether the account is disabled or
    /// verified, and whether the token's session is live. `None` for a user
    /// without credentials (erased, or never registered).
    pub async fn account_status(
        &self,
        user_id: Uuid,
        session_id: Option<Uuid>,
    ) -> Result<Option<AccountStatus>, CommandError> {
        let row: Option<(bool, bool, bool)> = sqlx::query_as(
            "SELECT disabled_at IS NOT NULL, email_verified, \
                    $2::uuid IS NULL OR EXISTS (SELECT 1 FROM refresh_tokens \
                        WHERE family_id = $2 AND user_id = $1 \
                          AND revoked_at IS NULL AND expires_at > now()) \
             FROM user_credentials WHERE user_id = $1",
        )
        .bind(user_id)
        .bind(session_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(
            row.map(|(disabled, email_verified, session_live)| AccountStatus {
                disabled,
                email_verified,
                session_live,
            }),
        )
    }

    /// Start-up: brings every account's flags back to what the log says
    /// (a crash between a flag and its event) and stops the running bots
    /// of disabled accounts (a crash before their stop). Returns how many
    /// accounts it corrected.
    pub async fn reconcile_accounts(&self) -> Result<u64, CommandError> {
        let corrected = sqlx::query(
            "WITH last AS ( \
                 SELECT DISTINCT ON (aggregate_id) aggregate_id, event_type FROM events \
                 WHERE aggregate_type = 'User' AND event_type IN ('user.disabled', 'user.enabled') \
                 ORDER BY aggregate_id, sequence DESC), \
             verified AS ( \
                 SELECT DISTINCT aggregate_id FROM events \
                 WHERE aggregate_type = 'User' AND event_type = 'user.email_verified') \
             UPDATE user_credentials c SET \
                 disabled_at = CASE WHEN last.event_type = 'user.disabled' \
                     THEN coalesce(c.disabled_at, now()) END, \
                 email_verified = verified.aggregate_id IS NOT NULL \
             FROM user_credentials c2 \
             LEFT JOIN last ON last.aggregate_id = c2.user_id::text \
             LEFT JOIN verified ON verified.aggregate_id = c2.user_id::text \
             WHERE c.user_id = c2.user_id \
               AND ((c.disabled_at IS NOT NULL) \
                      IS DISTINCT FROM (last.event_type IS NOT DISTINCT FROM 'user.disabled') \
                    OR c.email_verified IS DISTINCT FROM (verified.aggregate_id IS NOT NULL))",
        )
        .execute(&self.pool)
        .await?
        .rows_affected();
        let disabled: Vec<Uuid> = sqlx::query_scalar(
            "SELECT user_id FROM user_credentials WHERE disabled_at IS NOT NULL",
        )
        .fetch_all(&self.pool)
        .await?;
        let metadata = CommandMetadata::new("reconcile_accounts", Some(Actor::System));
        for user_id in disabled {
            self.stop_bots_of(Actor::System, user_id, &metadata).await?;
        }
        if corrected > 0 {
            tracing::warn!(corrected, "account flags corrected from the log");
        }
        Ok(corrected)
    }

    /// Whether trading needs a verified email here.
    pub fn requires_verified_email(&self) -> bool {
        self.accounts().require_verified_email
    }
}

async fn set_disabled(
    pool: &sqlx::PgPool,
    user_id: Uuid,
    disabled: bool,
) -> Result<(), CommandError> {
    sqlx::query(
        "UPDATE user_credentials SET disabled_at = CASE WHEN $2 THEN coalesce(disabled_at, now()) END \
         WHERE user_id = $1",
    )
    .bind(user_id)
    .bind(disabled)
    .execute(pool)
    .await?;
    Ok(())
}

/// Stores a new code for `user_id` and `purpose`, replacing the last one
/// unless that was sent less than `code_resend_interval` ago (then
/// `None`: nothing is sent).
async fn issue_code(
    pool: &sqlx::PgPool,
    settings: &AccountSettings,
    user_id: Uuid,
    purpose: CodePurpose,
) -> Result<Option<SecretString>, CommandError> {
    let code = new_code();
    let now = Utc::now();
    let resend = chrono::Duration::from_std(settings.code_resend_interval)
        .unwrap_or(chrono::Duration::seconds(60));
    let ttl =
        chrono::Duration::from_std(settings.code_ttl).unwrap_or(chrono::Duration::minutes(10));
    let stored = sqlx::query(
        "INSERT INTO email_codes (user_id, purpose, code_hash, sent_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (user_id, purpose) DO UPDATE SET code_hash = excluded.code_hash, \
             sent_at = excluded.sent_at, expires_at = excluded.expires_at, attempts = 0, \
             used_at = NULL \
         WHERE email_codes.sent_at <= $6",
    )
    .bind(user_id)
    .bind(purpose.as_str())
    .bind(code_digest(
        &settings.code_key,
        user_id,
        purpose,
        code.expose(),
    ))
    .bind(now)
    .bind(now + ttl)
    .bind(now - resend)
    .execute(pool)
    .await?
    .rows_affected();
    Ok((stored > 0).then_some(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits() {
        for _ in 0..1000 {
            let code = new_code();
            assert_eq!(code.expose().len(), 6);
            assert!(code.expose().bytes().all(|b| b.is_ascii_digit()));
        }
    }

    #[test]
    fn a_digest_depends_on_the_key_the_user_and_the_purpose() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let key = [7u8; 32];
        let base = code_digest(&key, a, CodePurpose::VerifyEmail, "123456");
        assert_ne!(
            base,
            code_digest(&[8u8; 32], a, CodePurpose::VerifyEmail, "123456")
        );
        assert_ne!(
            base,
            code_digest(&key, b, CodePurpose::VerifyEmail, "123456")
        );
        assert_ne!(
            base,
            code_digest(&key, a, CodePurpose::PasswordReset, "123456")
        );
        assert!(!base.contains("123456"));
    }

    #[test]
    fn the_throttle_refuses_past_its_limit_for_any_email() {
        let throttle = EmailThrottle::new();
        let window = Duration::from_secs(60);
        for _ in 0..3 {
            throttle
                .count("a@example.com", "x", 3, window, "w")
                .unwrap();
        }
        assert!(matches!(
            throttle.count("a@example.com", "x", 3, window, "w"),
            Err(CommandError::TooManyAttempts { .. })
        ));
        throttle
            .count("b@example.com", "x", 3, window, "w")
            .unwrap();
    }
}
