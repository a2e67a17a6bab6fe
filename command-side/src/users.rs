//! Registration, log-in and the other user commands.

use chrono::Utc;
use domain::user::{normalise_email, Experience, RiskProfile, User, UserCommand};
use domain::{Actor, DomainError, Role};
use uuid::Uuid;

use crate::error::CommandError;
use crate::framework::CommandSide;
use crate::metadata::CommandMetadata;
use crate::passwords::{hash_password, validate_password, verify_password};
use domain::SecretString;
use event_log::Position;

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
        let password_hash = hash_password(password).await?;
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

    /// Checks the password and records `user.logged_in`.
    pub async fn log_in(
        &self,
        email: &str,
        password: SecretString,
        metadata: &CommandMetadata,
    ) -> Result<Authenticated, CommandError> {
        let email = normalise_email(email).map_err(|_| CommandError::InvalidCredentials)?;
        let stored: Option<(Uuid, String)> =
            sqlx::query_as("SELECT user_id, password_hash FROM user_credentials WHERE email = $1")
                .bind(&email)
                .fetch_optional(&self.pool)
                .await?;
        let (user_id, hash) = match stored {
            Some((user_id, hash)) => (Some(user_id), Some(hash)),
            None => (None, None),
        };
        if !verify_password(password, hash).await {
            return Err(CommandError::InvalidCredentials);
        }
        let user_id = user_id.ok_or(CommandError::InvalidCredentials)?;
        let metadata = CommandMetadata {
            user_id: Some(user_id),
            ..metadata.clone()
        };
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
        let command = UserCommand::AssignRole {
            actor,
            role,
            at: Utc::now(),
        };
        self.execute_user(&user_id.to_string(), command, metadata)
            .await
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
