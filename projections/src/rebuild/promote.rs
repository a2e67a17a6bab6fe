//! Promoting a shadow schema's read models to live, atomically.

use sqlx::PgPool;

use crate::rebuild::{ensure_shadow, primary_key, shadow_schema, RebuildError};

/// Promotes the shadow tables of `name` in one transaction: each live
/// table moves to `replay_<name>_retired` (kept for a roll-back by hand),
/// its shadow takes its place with the application role's grants, and the
/// live checkpoint takes the shadow's position, so the live projector goes
/// on from where the rebuild stopped. A live projector's batch in flight
/// waits for the swap, then fails its checkpoint check and is retried on
/// the new table.
pub async fn swap(pool: &PgPool, name: &str, tables: &[&'static str]) -> Result<(), RebuildError> {
    let schema = shadow_schema(name)?;
    ensure_shadow(pool, &schema).await?;
    let retired = format!("{schema}_retired");
    let mut transaction = pool.begin().await?;
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {retired} CASCADE"))
        .execute(&mut *transaction)
        .await?;
    sqlx::query(&format!("CREATE SCHEMA {retired}"))
        .execute(&mut *transaction)
        .await?;
    for &table in tables {
        primary_key(table)?;
        sqlx::query(&format!(
            "LOCK TABLE public.{table}, public.subscriber_checkpoints IN ACCESS EXCLUSIVE MODE"
        ))
        .execute(&mut *transaction)
        .await?;
        sqlx::query(&format!("ALTER TABLE public.{table} SET SCHEMA {retired}"))
            .execute(&mut *transaction)
            .await?;
        sqlx::query(&format!("ALTER TABLE {schema}.{table} SET SCHEMA public"))
            .execute(&mut *transaction)
            .await?;
        let role_exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'muckard_app')",
        )
        .fetch_one(&mut *transaction)
        .await?;
        if role_exists {
            sqlx::query(&format!(
                "GRANT SELECT, INSERT, UPDATE, DELETE ON public.{table} TO muckard_app"
            ))
            .execute(&mut *transaction)
            .await?;
        }
        sqlx::query(&format!(
            "INSERT INTO public.subscriber_checkpoints (subscriber, transaction_id, global_position, events_handled, updated_at) \
             SELECT subscriber, transaction_id, global_position, events_handled, now() \
               FROM {schema}.subscriber_checkpoints WHERE subscriber = $1 \
             ON CONFLICT (subscriber) DO UPDATE SET transaction_id = excluded.transaction_id, \
                 global_position = excluded.global_position, events_handled = excluded.events_handled, \
                 updated_at = now()"
        ))
        .bind(table)
        .execute(&mut *transaction)
        .await?;
    }
    transaction.commit().await?;
    Ok(())
}
