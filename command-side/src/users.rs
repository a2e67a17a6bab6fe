//! Registration, log-in and the other user commands.

use chrono::{DateTime, Utc};
use domain::personal::{DataKey, PersonalText};
use domain::user::{
    check_display_name, check_timezone, login_source, normalise_email, Experience,
    NotificationPreferences, ProfileChanges, RiskProfile, User, UserCommand,
};
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

/// The profile fields a caller asks to change, in clear; absent fields
/// stay as they are.
#[derive(Debug, Clone, Default)]
pub struct ProfileUpdate {
    pub display_name: Option<String>,
    pub timezone: Option<String>,
    pub notifications: Option<NotificationPreferences>,
    pub risk_profile: Option<RiskProfile>,
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
        validate_password("password", password.expose())?;
        let display_name = display_name
            .as_deref()
            .map(check_display_name)
            .transpose()?;
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
        let metadata = CommandMetadata {
            user_id: Some(user_id),
            ..metadata.clone()
        };
        let registered = async {
            let key = self.new_data_key(user_id).await?;
            let command = UserCommand::Register {
                user_id,
                email: seal(&key, user_id, "email", &email),
                display_name: display_name.map(|name| seal(&key, user_id, "display_name", &name)),
                at: Utc::now(),
            };
            self.execute_user(&user_id.to_string(), command, &metadata)
                .await
        }
        .await;
        match registered {
            Ok(position) => {
                self.send_first_verification(user_id, email);
                Ok((user_id, position))
            }
            Err(error) => {
                sqlx::query("DELETE FROM user_credentials WHERE user_id = $1")
                    .bind(user_id)
                    .execute(&self.pool)
                    .await?;
                event_log::data_keys::destroy(&self.pool, user_id).await?;
                Err(error)
            }
        }
    }

    /// A new data key for a user about to be registered.
    async fn new_data_key(&self, user_id: Uuid) -> Result<DataKey, CommandError> {
        let bytes: [u8; 32] = rand::random();
        let stored = event_log::data_keys::create(&self.pool, user_id, &bytes).await?;
        Ok(DataKey::from_bytes(stored))
    }

    /// The data key to seal a registered user's new personal data with. A
    /// user registered before personal data was sealed has none yet and
    /// gets one; an erased (or unknown) user gets none: their command is
    /// refused.
    pub(crate) async fn data_key_for(&self, user_id: Uuid) -> Result<DataKey, CommandError> {
        if let Some(bytes) = event_log::data_keys::fetch(&self.pool, user_id).await? {
            return Ok(DataKey::from_bytes(bytes));
        }
        let (user, _) = self.load::<User>(&user_id.to_string()).await?;
        if !user.exists() || user.erased {
            return Err(CommandError::Refused(DomainError::NotFound {
                entity: "user",
            }));
        }
        self.new_data_key(user_id).await
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
        let stored: Option<(Uuid, String, bool)> = sqlx::query_as(
            "SELECT user_id, password_hash, disabled_at IS NOT NULL \
             FROM user_credentials WHERE email = $1",
        )
        .bind(&email)
        .fetch_optional(&self.pool)
        .await?;
        let Some((user_id, hash, disabled)) = stored else {
            refuse_while_backing_off(
                self.unknown_email_failures
                    .locked_until_shared(&email, now)
                    .await,
                now,
            )?;
            self.passwords.verify(password, None).await?;
            self.unknown_email_failures.record_shared(&email, now).await;
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
        // Only to whoever knows the password: the account is disabled.
        if disabled {
            return Err(CommandError::AccountDisabled);
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
        let key = match self.data_key_for(user_id).await {
            Ok(key) => key,
            Err(CommandError::Refused(DomainError::NotFound { .. })) => return Ok(()),
            Err(other) => return Err(other),
        };
        let command = UserCommand::RecordFailedLogin {
            source: seal(&key, user_id, "source", &login_source(source)),
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
            .filter(|_| !user.erased)
            .ok_or(CommandError::Refused(DomainError::NotFound {
                entity: "user",
            }))
    }

    /// Records `user.updated` with the fields `update` changes, each
    /// checked first (the display name sealed).
    pub async fn update_profile(
        &self,
        actor: Actor,
        user_id: Uuid,
        update: ProfileUpdate,
        metadata: &CommandMetadata,
    ) -> Result<Position, CommandError> {
        let display_name = update
            .display_name
            .as_deref()
            .map(check_display_name)
            .transpose()?;
        let timezone = update.timezone.as_deref().map(check_timezone).transpose()?;
        if !actor.may_act_for(user_id) {
            return Err(CommandError::Refused(DomainError::NotFound {
                entity: "user",
            }));
        }
        let display_name = match display_name {
            Some(name) => {
                let key = self.data_key_for(user_id).await?;
                Some(seal(&key, user_id, "display_name", &name))
            }
            None => None,
        };
        let command = UserCommand::UpdateProfile {
            actor,
            changes: ProfileChanges {
                display_name,
                timezone,
                notifications: update.notifications,
                risk_profile: update.risk_profile,
            },
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

    /// Erases a user's personal data: records `user.erased` (an admin's or
    /// the System's command), then destroys their data key and deletes
    /// what side tables hold of them ([`CommandSide::finish_erasure`]).
    /// Erasing an erased user records nothing and finishes the erasure
    /// again, so a retry after a crash between the two completes it.
    pub async fn erase_user(
        &self,
        actor: Actor,
        user_id: Uuid,
        metadata: &CommandMetadata,
    ) -> Result<Position, CommandError> {
        let command = UserCommand::Erase {
            actor,
            at: Utc::now(),
        };
        let position = self
            .execute_user(&user_id.to_string(), command, metadata)
            .await?;
        self.finish_erasure(user_id).await?;
        Ok(position)
    }

    /// What follows `user.erased`, in one transaction: the data key
    /// destroyed, the credentials (which hold the email in clear) and the
    /// user's snapshot deleted, their refresh tokens revoked. The in-memory
    /// cache holds only sealed text and the erased state, so it is left.
    pub async fn finish_erasure(&self, user_id: Uuid) -> Result<(), CommandError> {
        let mut transaction = self.pool.begin().await?;
        event_log::data_keys::destroy(&mut *transaction, user_id).await?;
        sqlx::query("DELETE FROM user_credentials WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *transaction)
            .await?;
        sqlx::query("DELETE FROM snapshots WHERE aggregate_type = $1 AND aggregate_id = $2")
            .bind(<User as cqrs_es::Aggregate>::TYPE)
            .bind(user_id.to_string())
            .execute(&mut *transaction)
            .await?;
        crate::sessions::revoke_refresh_tokens_on(&mut *transaction, user_id).await?;
        // Their sessions' clients and their codes' digests go too.
        for table in ["sessions", "email_codes"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE user_id = $1"))
                .bind(user_id)
                .execute(&mut *transaction)
                .await?;
        }
        transaction.commit().await?;
        tracing::info!(%user_id, "user erased: data key destroyed");
        Ok(())
    }

    /// Finishes every erasure that a crash interrupted: users whose stream
    /// holds `user.erased` but who still have a data key or credentials.
    /// Run at start-up; returns how many it finished.
    pub async fn finish_interrupted_erasures(&self) -> Result<usize, CommandError> {
        let pending: Vec<Uuid> = sqlx::query_scalar(
            "SELECT subject.user_id FROM ( \
                 SELECT user_id FROM user_data_keys UNION SELECT user_id FROM user_credentials \
             ) AS subject \
             WHERE EXISTS (SELECT 1 FROM events \
                 WHERE aggregate_type = $1 AND aggregate_id = subject.user_id::text \
                   AND event_type = 'user.erased')",
        )
        .bind(<User as cqrs_es::Aggregate>::TYPE)
        .fetch_all(&self.pool)
        .await?;
        for user_id in &pending {
            self.finish_erasure(*user_id).await?;
        }
        Ok(pending.len())
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

/// `plaintext` sealed as `field` of `user_id`'s data, with a random nonce.
pub(crate) fn seal(key: &DataKey, user_id: Uuid, field: &str, plaintext: &str) -> PersonalText {
    key.seal(user_id, field, rand::random(), plaintext)
}
