//! The user-facing bot commands, and the bots-per-user quota.
//!
//! The quota is counted in the log itself (a user's `bot.configured`
//! events), never in a read model that may lag, and one user's bot
//! configurations run one at a time: each holds a PostgreSQL advisory lock
//! keyed by the user from before the count until its event is committed.
//! The lock is the database's, so the quota holds across every API
//! instance on it. A lock is held in a transaction, on a pooled connection,
//! while the command appends on another; so at most a quarter of the pool
//! holds such locks at once in one process, and the appends always find a
//! connection.

use std::time::Duration;

use chrono::Utc;
use domain::bot::BotCommand;
use domain::{Actor, DomainError, Pair, Strategy};
use sqlx::{PgConnection, Postgres, Transaction};
use uuid::Uuid;

use crate::error::CommandError;
use crate::framework::CommandSide;
use crate::metadata::CommandMetadata;
use event_log::Position;

impl CommandSide {
    pub async fn configure_bot(
        &self,
        actor: Actor,
        key_id: Uuid,
        pair: Pair,
        strategy: Strategy,
        metadata: &CommandMetadata,
    ) -> Result<(Uuid, Position), CommandError> {
        // An actor that is not a user is refused by the Bot itself.
        let _slot = self
            .configuration_slots
            .acquire()
            .await
            .map_err(|closed| CommandError::Unexpected(closed.into()))?;
        let mut lock = match actor.user_id() {
            Some(user_id) => {
                let mut lock = self.lock_bot_configurations(user_id).await?;
                let configured = count_configured_bots(&mut lock, user_id).await?;
                let limit = self.settings.max_bots_per_user;
                if configured >= i64::from(limit) {
                    return Err(DomainError::conflict(format!(
                        "bots per user: the limit is {limit} bots, and this user has {configured}"
                    ))
                    .into());
                }
                Some(lock)
            }
            None => None,
        };
        let bot_id = Uuid::new_v4();
        let command = BotCommand::Configure {
            actor,
            bot_id,
            key_id,
            pair,
            strategy,
            at: Utc::now(),
        };
        let position = self
            .execute_bot(&bot_id.to_string(), command, metadata)
            .await;
        // Released only now, when the event is committed (or was refused),
        // so the next configuration of this user counts it.
        if let Some(lock) = lock.take() {
            lock.rollback().await?;
        }
        Ok((bot_id, position?))
    }

    /// A transaction holding the advisory lock on `user_id`'s bot
    /// configurations. Waiting is by retrying a try-lock, so a queue of one
    /// user's requests holds no pooled connection while it waits; after
    /// [`CONFIGURATION_LOCK_WAIT`] it is a conflict to retry.
    async fn lock_bot_configurations(
        &self,
        user_id: Uuid,
    ) -> Result<Transaction<'static, Postgres>, CommandError> {
        let deadline = tokio::time::Instant::now() + CONFIGURATION_LOCK_WAIT;
        let mut pause = Duration::from_millis(5);
        loop {
            let mut transaction = self.pool.begin().await?;
            let locked: bool =
                sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0))")
                    .bind(format!("muckard:bot-configurations:{user_id}"))
                    .fetch_one(&mut *transaction)
                    .await?;
            if locked {
                return Ok(transaction);
            }
            transaction.rollback().await?;
            if tokio::time::Instant::now() >= deadline {
                return Err(DomainError::conflict(
                    "another bot configuration of this user is in progress; retry",
                )
                .into());
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    pub async fn request_bot_start(
        &self,
        actor: Actor,
        bot_id: Uuid,
        metadata: &CommandMetadata,
    ) -> Result<Position, CommandError> {
        let command = BotCommand::RequestStart {
            actor,
            at: Utc::now(),
        };
        self.execute_bot(&bot_id.to_string(), command, metadata)
            .await
    }

    pub async fn request_bot_stop(
        &self,
        actor: Actor,
        bot_id: Uuid,
        reason: Option<String>,
        metadata: &CommandMetadata,
    ) -> Result<Position, CommandError> {
        let command = BotCommand::RequestStop {
            actor,
            reason,
            at: Utc::now(),
        };
        self.execute_bot(&bot_id.to_string(), command, metadata)
            .await
    }

    pub async fn trigger_bot_trade(
        &self,
        actor: Actor,
        bot_id: Uuid,
        metadata: &CommandMetadata,
    ) -> Result<(Uuid, Position), CommandError> {
        let trigger_id = Uuid::new_v4();
        let command = BotCommand::TriggerTrade {
            actor,
            trigger_id,
            at: Utc::now(),
        };
        let position = self
            .execute_bot(&bot_id.to_string(), command, metadata)
            .await?;
        Ok((trigger_id, position))
    }
}

/// How long one bot configuration waits for another of the same user.
const CONFIGURATION_LOCK_WAIT: Duration = Duration::from_secs(5);

/// How many bots `user_id` has configured, read from the log (bots are
/// never deleted, so every `bot.configured` counts).
async fn count_configured_bots(
    connection: &mut PgConnection,
    user_id: Uuid,
) -> Result<i64, CommandError> {
    let count = sqlx::query_scalar(
        "SELECT count(*) FROM events \
         WHERE aggregate_type = 'Bot' AND event_type = 'bot.configured' \
           AND (payload::jsonb) ->> 'owner_id' = $1",
    )
    .bind(user_id.to_string())
    .fetch_one(connection)
    .await?;
    Ok(count)
}
