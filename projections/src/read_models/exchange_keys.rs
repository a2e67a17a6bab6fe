//! `exchange_keys`: each key's label, fingerprint, permissions and status.

use async_trait::async_trait;
use cqrs_es::Aggregate;
use domain::exchange_key::{ExchangeKey, ExchangeKeyEvent};
use sqlx::PgConnection;
use uuid::Uuid;

use event_log::RecordedEvent;
use event_log::{Subscriber, SubscriberError};

pub struct ExchangeKeysProjector;

#[async_trait]
impl Subscriber for ExchangeKeysProjector {
    fn name(&self) -> &'static str {
        "exchange_keys"
    }

    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        Some(&[ExchangeKey::TYPE])
    }

    async fn handle(
        &self,
        transaction: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), SubscriberError> {
        for event in events
            .iter()
            .filter(|e| e.aggregate_type == ExchangeKey::TYPE)
        {
            let decoded: ExchangeKeyEvent = event.payload_as()?;
            let key_id: Uuid = event.aggregate_uuid()?;
            let at = event.recorded_at;
            let query = match decoded {
                ExchangeKeyEvent::KeyConnected {
                    owner_id,
                    exchange,
                    label,
                    fingerprint,
                    permissions,
                    ..
                } => sqlx::query(
                    "INSERT INTO exchange_keys (key_id, owner_id, exchange, label, fingerprint, \
                     permissions, status, connected_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, 'untested', $7, $7) ON CONFLICT (key_id) DO NOTHING",
                )
                .bind(key_id)
                .bind(owner_id)
                .bind(exchange)
                .bind(label)
                .bind(fingerprint)
                .bind(serde_json::to_value(permissions).unwrap_or_default())
                .bind(at),
                ExchangeKeyEvent::KeyUpdated {
                    label,
                    fingerprint,
                    permissions,
                    ..
                } => sqlx::query(
                    "UPDATE exchange_keys SET label = coalesce($2, label), \
                     fingerprint = coalesce($3, fingerprint), \
                     permissions = coalesce($4, permissions), \
                     status = CASE WHEN $3 IS NULL THEN status ELSE 'untested' END, \
                     last_test_failure = CASE WHEN $3 IS NULL THEN last_test_failure END, \
                     updated_at = $5 WHERE key_id = $1",
                )
                .bind(key_id)
                .bind(label)
                .bind(fingerprint)
                .bind(permissions.map(|p| serde_json::to_value(p).unwrap_or_default()))
                .bind(at),
                ExchangeKeyEvent::KeyTested { permissions, .. } => sqlx::query(
                    "UPDATE exchange_keys SET status = 'tested', permissions = $2, \
                     last_test_failure = NULL, updated_at = $3 WHERE key_id = $1",
                )
                .bind(key_id)
                .bind(serde_json::to_value(permissions).unwrap_or_default())
                .bind(at),
                ExchangeKeyEvent::KeyTestFailed { reason, .. } => sqlx::query(
                    "UPDATE exchange_keys SET status = 'test_failed', last_test_failure = $2, \
                     updated_at = $3 WHERE key_id = $1",
                )
                .bind(key_id)
                .bind(reason)
                .bind(at),
                ExchangeKeyEvent::KeyDisconnected { .. } => sqlx::query(
                    "UPDATE exchange_keys SET status = 'disconnected', updated_at = $2 WHERE key_id = $1",
                )
                .bind(key_id)
                .bind(at),
            };
            query.execute(&mut *transaction).await?;
        }
        Ok(())
    }
}
