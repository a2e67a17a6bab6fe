//! `users`: one row per user, for `GET /user/me` and the admin listing.
//!
//! Personal data arrives sealed under the user's data key; this projector
//! opens it with the key it finds in `user_data_keys` in its own
//! transaction. Once the key is destroyed (erasure) it opens nothing: a
//! rebuild after an erasure writes no clear text, and `user.erased` clears
//! what the live row held, so the two agree.

use async_trait::async_trait;
use cqrs_es::Aggregate;
use domain::personal::DataKey;
use domain::user::{User, UserEvent};
use sqlx::PgConnection;
use uuid::Uuid;

use event_log::RecordedEvent;
use event_log::{Subscriber, SubscriberError};

pub struct UsersProjector;

#[async_trait]
impl Subscriber for UsersProjector {
    fn name(&self) -> &'static str {
        "users"
    }

    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        Some(&[User::TYPE])
    }

    async fn handle(
        &self,
        transaction: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), SubscriberError> {
        for event in events.iter().filter(|e| e.aggregate_type == User::TYPE) {
            let decoded: UserEvent = event.payload_as()?;
            let user_id: Uuid = event.aggregate_uuid()?;
            let at = event.recorded_at;
            let query = match decoded {
                UserEvent::UserCreated {
                    email,
                    display_name,
                    role,
                    ..
                } => {
                    let key = data_key(transaction, user_id).await?;
                    let email = email.reveal(key.as_ref(), user_id, "email");
                    let display_name = display_name
                        .and_then(|name| name.reveal(key.as_ref(), user_id, "display_name"));
                    sqlx::query(
                    "INSERT INTO users (user_id, email, display_name, role, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (user_id) DO NOTHING",
                )
                    .bind(user_id)
                    .bind(email)
                    .bind(display_name)
                    .bind(role.as_str())
                    .bind(at)
                }
                UserEvent::UserLoggedIn { at: logged_in } => sqlx::query(
                    "UPDATE users SET last_login_at = $2, updated_at = $3 WHERE user_id = $1",
                )
                .bind(user_id)
                .bind(logged_in)
                .bind(at),
                UserEvent::UserUpdated { changes, .. } => {
                    // Each field only when the event changes it; a sealed
                    // name whose key is gone (erased) stays gone.
                    let display_name = match changes.display_name {
                        Some(name) => {
                            let key = data_key(transaction, user_id).await?;
                            Some(name.reveal(key.as_ref(), user_id, "display_name"))
                        }
                        None => None,
                    };
                    sqlx::query(
                        "UPDATE users SET \
                             display_name = CASE WHEN $2 THEN $3 ELSE display_name END, \
                             timezone = coalesce($4, timezone), \
                             notifications = coalesce($5, notifications), \
                             risk_profile = coalesce($6, risk_profile), \
                             updated_at = $7 \
                         WHERE user_id = $1",
                    )
                    .bind(user_id)
                    .bind(display_name.is_some())
                    .bind(display_name.flatten())
                    .bind(changes.timezone)
                    .bind(
                        changes
                            .notifications
                            .and_then(|n| serde_json::to_value(n).ok()),
                    )
                    .bind(
                        changes
                            .risk_profile
                            .and_then(|r| serde_json::to_value(r).ok())
                            .and_then(|v| v.as_str().map(String::from)),
                    )
                    .bind(at)
                }
                UserEvent::EmailVerified { .. } => sqlx::query(
                    "UPDATE users SET email_verified = true, updated_at = $2 WHERE user_id = $1",
                )
                .bind(user_id)
                .bind(at),
                UserEvent::UserDisabled {
                    at: disabled_at, ..
                } => sqlx::query(
                    "UPDATE users SET disabled_at = $2, updated_at = $3 WHERE user_id = $1",
                )
                .bind(user_id)
                .bind(disabled_at)
                .bind(at),
                UserEvent::UserEnabled { .. } => sqlx::query(
                    "UPDATE users SET disabled_at = NULL, updated_at = $2 WHERE user_id = $1",
                )
                .bind(user_id)
                .bind(at),
                // The audit trail's business; the read model shows when the
                // password changed nowhere.
                UserEvent::PasswordChanged { .. } => continue,
                UserEvent::UserErased { at: erased_at, .. } => sqlx::query(
                    "UPDATE users SET email = NULL, display_name = NULL, erased_at = $2, \
                     updated_at = $3 WHERE user_id = $1",
                )
                .bind(user_id)
                .bind(erased_at)
                .bind(at),
                UserEvent::OnboardingCompleted {
                    risk_profile,
                    experience,
                    ..
                } => sqlx::query(
                    "UPDATE users SET onboarded = true, risk_profile = $2, experience = $3, \
                     updated_at = $4 WHERE user_id = $1",
                )
                .bind(user_id)
                .bind(
                    serde_json::to_value(risk_profile)
                        .ok()
                        .and_then(|v| v.as_str().map(String::from)),
                )
                .bind(
                    serde_json::to_value(experience)
                        .ok()
                        .and_then(|v| v.as_str().map(String::from)),
                )
                .bind(at),
                UserEvent::RoleAssigned { role, .. } => {
                    sqlx::query("UPDATE users SET role = $2, updated_at = $3 WHERE user_id = $1")
                        .bind(user_id)
                        .bind(role.as_str())
                        .bind(at)
                }
                // Failed log-ins are the User aggregate's business (its
                // back-off) and the auditors'; the read model shows none.
                UserEvent::LoginFailed { .. } => continue,
            };
            query.execute(&mut *transaction).await?;
        }
        Ok(())
    }
}

/// The user's data key as this transaction sees it.
async fn data_key(
    transaction: &mut PgConnection,
    user_id: Uuid,
) -> Result<Option<DataKey>, SubscriberError> {
    Ok(event_log::data_keys::fetch(&mut *transaction, user_id)
        .await?
        .map(DataKey::from_bytes))
}
