//! Registration, log-in and the other user commands.

use chrono::{DateTime, Utc};
use domain::user::{normalise_email, Experience, RiskProfile, User, UserCommand};
use domain::{Actor, DomainError, Role};
use uuid::Uuid;

use crate::error::CommandError;
use crate::framework::CommandSide;
use crate::metadata::CommandMetadata;
use crate::passwords::validate_password;
use domain::SecretString;
use event_log::Position;

/// Refuses with the time left when a back-off runs until `until`.
fn refuse_while_backing_off(
    until: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(), CommandError> {
    let Some(until) = until else {
        return Ok(());
    };
    crate::metrics::record_login_backed_off();
    let millis = (until - now).num_milliseconds().max(0) as u64;
    Err(CommandError::LoginBackoff {
        retry_after_secs: millis.div_ceil(1000).max(1),
    })
}

/// A user who just logged in, with the role their tokens carry.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub user_id: Uuid,
    pub role: Role,
}

impl CommandSide {
    /// Claims the email in `user_credentials` with the password's hash, then
    /// appends `user.created`. If the command fails the claim is undone.
    pub async fn register(
        &self,
        email: &str,
        password: SecretString,
        display_name: Option<String>,
        metadata: &CommandMetadata,
    ) -> Result<(Uuid, Position), CommandError> {
        let email = normalise_email(email)?;
        validate_password(password.expose())?;
        if let Some(name) = &display_name {
            domain::common::bounded_text("display_name", name, 1, 100)?;
        }
        let user_id = Uuid::new_v4();
        let password_hash = self.passwords.hash(password).await?;
        let claimed = sqlx::query(
            "INSERT INTO user_credentials (user_id, email, password_hash) VALUES ($1, $2, $3)",
        )
        .bind(user_id)
        .bind(&email)
        .bind(&password_hash)
        .execute(&self.pool)
        .await;
        if let Err(error) = claimed {
            let taken = error
                .as_database_error()
                .is_some_and(|e| e.constraint() == Some("user_credentials_email_key"));
            return Err(if taken {
                CommandError::EmailTaken
            } else {
                error.into()
            });
        }
        let command = UserCommand::Register {
            user_id,
            email,
            display_name,
            at: Utc::now(),
        };
        let metadata = CommandMetadata {
            user_id: Some(user_id),
            ..metadata.clone()
        };
        match self
            .execute_user(&user_id.to_string(), command, &metadata)
            .await
        {
            Ok(position) => Ok((user_id, position)),
            Err(error) => {
                sqlx::query("DELETE FROM user_credentials WHERE user_id = $1")
                    .bind(user_id)
                    .execute(&self.pool)
                    .await?;
                Err(error)
            }
        }
    }

    /// Checks the password and records `user.logged_in`; a wrong password
    /// of a registered user records `user.login_failed` with `source` (the
    /// client's address). While the account is in its back-off
    /// ([`LoginBackoff`], computed from those events) every log-in is
    /// refused before any hashing, right password or not, and nothing is
    /// recorded; an unknown email backs off the same way (from memory), so
    /// the answers do not tell which emails exist.
    pub async fn log_in(
        &self,
        email: &str,
        password: SecretString,
        source: &str,
        metadata: &CommandMetadata,
    ) -> Result<Authenticated, CommandError> {
        let now = Utc::now();
        let email = normalise_email(email).map_err(|_| CommandError::InvalidCredentials)?;
        let stored: Option<(Uuid, String)> =
            sqlx::query_as("SELECT user_id, password_hash FROM user_credentials WHERE email = $1")
                .bind(&email)
                .fetch_optional(&self.pool)
                .await?;
        let Some((user_id, hash)) = stored else {
            refuse_while_backing_off(self.unknown_email_failures.locked_until(&email, now), now)?;
            self.passwords.verify(password, None).await?;
            self.unknown_email_failures.record(&email, now);
            return Err(CommandError::InvalidCredentials);
        };
        let (user, _) = self.load::<User>(&user_id.to_string()).await?;
        let policy = self.settings.login_backoff;
        refuse_while_backing_off(user.login_locked_until(&policy, now), now)?;
        let metadata = CommandMetadata {
            user_id: Some(user_id),
            ..metadata.clone()
        };
        if !self.passwords.verify(password, Some(hash)).await? {
            self.record_failed_login(user_id, source, &metadata).await?;
            return Err(CommandError::InvalidCredentials);
        }
        // Guesses sent together all pass the check above before any of them
        // is recorded; the right one among them is refused if the wrong ones
        // closed log-ins meanwhile, so a burst gains a guesser nothing.
        let (user, _) = self.load::<User>(&user_id.to_string()).await?;
        refuse_while_backing_off(user.login_locked_until(&policy, Utc::now()), Utc::now())?;
        self.execute_user(
            &user_id.to_string(),
            UserCommand::LogIn { at: Utc::now() },
            &metadata,
        )
        .await
        .map_err(|error| match error {
            CommandError::Refused(DomainError::NotFound { .. }) => CommandError::InvalidCredentials,
            other => other,
        })?;
        let role = self.role_of(user_id).await?;
        Ok(Authenticated { user_id, role })
    }

    async fn record_failed_login(
        &self,
        user_id: Uuid,
        source: &str,
        metadata: &CommandMetadata,
    ) -> Result<(), CommandError> {
        let command = UserCommand::RecordFailedLogin {
            source: source.to_string(),
            at: Utc::now(),
        };
        let metadata = metadata
            .clone()
            .with_command_type("user.record_failed_login");
        match self
            .execute_user(&user_id.to_string(), command, &metadata)
            .await
        {
            Ok(_) => Ok(()),
            // Credentials without a stream: a registration whose event never
            // committed. It cannot log in either way.
            Err(CommandError::Refused(DomainError::NotFound { .. })) => Ok(()),
            Err(other) => Err(other),
        }
    }

    /// Password hashes running now (for tests and diagnostics).
    pub fn password_hashes_in_flight(&self) -> usize {
        self.passwords.in_flight()
    }

    /// The role a user holds now, from the event store.
    pub async fn role_of(&self, user_id: Uuid) -> Result<Role, CommandError> {
        let (user, _) = self.load::<User>(&user_id.to_string()).await?;
        user.role
            .ok_or(CommandError::Refused(DomainError::NotFound {
                entity: "user",
            }))
    }

    pub async fn update_profile(
        &self,
        actor: Actor,
        user_id: Uuid,
        display_name: String,
        metadata: &CommandMetadata,
    ) -> Result<Position, CommandError> {
        let command = UserCommand::UpdateProfile {
            actor,
            display_name,
            at: Utc::now(),
        };
        self.execute_user(&user_id.to_string(), command, metadata)
            .await
    }

    pub async fn complete_onboarding(
        &self,
        actor: Actor,
        user_id: Uuid,
        risk_profile: RiskProfile,
        experience: Experience,
        terms_version: String,
        metadata: &CommandMetadata,
    ) -> Result<Position, CommandError> {
        let command = UserCommand::CompleteOnboarding {
            actor,
            risk_profile,
            experience,
            terms_version,
            at: Utc::now(),
        };
        self.execute_user(&user_id.to_string(), command, metadata)
            .await
    }

    pub async fn assign_role(
        &self,
        actor: Actor,
        user_id: Uuid,
        role: Role,
        metadata: &CommandMetadata,
    ) -> Result<Position, CommandError> {
        let changes = self.role_of(user_id).await.ok() != Some(role);
        let command = UserCommand::AssignRole {
            actor,
            role,
            at: Utc::now(),
        };
        // A role change ends the user's sessions: their refresh tokens are
        // revoked before the event (so a crash after it leaves none alive)
        // and again after it (so none renewed meanwhile with the old role
        // survives). Their access tokens' claims above `user` are checked
        // against the log on every request (`api::caller`).
        if changes && actor.is_admin_or_system() {
            self.revoke_refresh_tokens_of(user_id).await?;
        }
        let position = self
            .execute_user(&user_id.to_string(), command, metadata)
            .await?;
        if changes {
            self.revoke_refresh_tokens_of(user_id).await?;
        }
        Ok(position)
    }

    pub async fn user_id_by_email(&self, email: &str) -> Result<Option<Uuid>, CommandError> {
        let email = normalise_email(email)?;
        Ok(
            sqlx::query_scalar("SELECT user_id FROM user_credentials WHERE email = $1")
                .bind(email)
                .fetch_optional(&self.pool)
                .await?,
        )
    }
}
