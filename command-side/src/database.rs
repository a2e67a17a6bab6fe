//! Creating the database and applying the migrations.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};

/// The migrations in `migrations/` at the workspace root, compiled in.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// The tables of the log itself: the events, the snapshots, and the
/// subscribers' checkpoints.
pub const LOG_TABLES: [&str; 3] = ["events", "snapshots", "subscriber_checkpoints"];

/// The side tables: what must not enter the log (password hashes, sealed
/// exchange secrets, refresh tokens) and the idempotency ledger. Every
/// other table the migrations make is a read model
/// (`projections::read_models::READ_MODELS`); `tests/read_models/registry`
/// checks that the three lists cover the schema.
pub const SIDE_TABLES: [&str; 4] = [
    "user_credentials",
    "exchange_key_secrets",
    "refresh_tokens",
    "idempotency_keys",
];

/// Creates the database named in `database_url` when it does not exist,
/// connecting to the server's `postgres` database to do so.
pub async fn ensure_database_exists(database_url: &str) -> Result<(), sqlx::Error> {
    let options = PgConnectOptions::from_str(database_url)?;
    let Some(name) = options.get_database().map(str::to_string) else {
        return Ok(());
    };
    let mut admin = options.clone().database("postgres").connect().await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut admin)
            .await?;
    if !exists {
        let statement = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
        if let Err(error) = sqlx::query(&statement).execute(&mut admin).await {
            // Another instance may have created it in the meantime: it
            // says so with 42P04 (duplicate_database), or, when the two
            // CREATE DATABASE statements overlap, with 23505 on the
            // catalogue's unique index.
            let duplicate = error
                .as_database_error()
                .and_then(|e| e.code())
                .is_some_and(|code| code == "42P04" || code == "23505");
            if !duplicate {
                return Err(error);
            }
        }
        tracing::info!(database = %name, "created database");
    }
    admin.close().await?;
    Ok(())
}

/// Connects a pool to `database_url`.
pub async fn connect(database_url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect(database_url)
        .await
}

/// Applies pending migrations. sqlx holds a PostgreSQL advisory lock while
/// it migrates, so several instances may start at once.
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await
}
