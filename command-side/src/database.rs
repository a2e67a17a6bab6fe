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
/// exchange secrets, refresh tokens, the data keys personal data is sealed
/// under) and the idempotency ledger. Every
/// other table the migrations make is a read model
/// (`projections::read_models::READ_MODELS`); `tests/read_models/registry`
/// checks that the three lists cover the schema.
pub const SIDE_TABLES: [&str; 7] = [
    "user_credentials",
    "user_data_keys",
    "exchange_key_secrets",
    "refresh_tokens",
    "idempotency_keys",
    "sessions",
    "email_codes",
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

/// What the connected role may do to the log: whether it owns `events`
/// (and so could disable its triggers, alter or drop it) or is a
/// superuser (and so could do anything, `session_replication_role`
/// included). `muckard serve` should run as neither.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectedRole {
    pub name: String,
    pub superuser: bool,
    /// Whether it owns `events`, or is a member of the role that does.
    pub owns_events: bool,
}

impl ConnectedRole {
    /// Whether this role could change the log behind the triggers' back.
    pub fn can_bypass_the_log_rules(&self) -> bool {
        self.superuser || self.owns_events
    }
}

/// The role `pool` connects as, and what it may do to the log. `events`
/// not existing yet (a database never migrated) reads as not owned.
pub async fn connected_role(pool: &PgPool) -> Result<ConnectedRole, sqlx::Error> {
    let (name, superuser, owns_events): (String, bool, bool) = sqlx::query_as(
        "SELECT current_user::text, \
                (SELECT rolsuper FROM pg_roles WHERE rolname = current_user), \
                coalesce((SELECT pg_has_role(current_user, c.relowner, 'MEMBER') \
                            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                           WHERE n.nspname = 'public' AND c.relname = 'events'), false)",
    )
    .fetch_one(pool)
    .await?;
    Ok(ConnectedRole {
        name,
        superuser,
        owns_events,
    })
}

/// The versions of the compiled-in migrations the database has not
/// applied (all of them on a database never migrated).
pub async fn pending_migrations(pool: &PgPool) -> Result<Vec<i64>, sqlx::Error> {
    let migrated: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_tables \
                         WHERE schemaname = 'public' AND tablename = '_sqlx_migrations')",
    )
    .fetch_one(pool)
    .await?;
    let applied: Vec<i64> = if migrated {
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(pool)
            .await?
    } else {
        Vec::new()
    };
    Ok(MIGRATOR
        .iter()
        .map(|migration| migration.version)
        .filter(|version| !applied.contains(version))
        .collect())
}

/// Grants `role` (`muckard_app` or `muckard_auditor`) to the login role
/// `login`, which the operator created. Run by the owner.
pub async fn grant_role(pool: &PgPool, role: &str, login: &str) -> Result<(), sqlx::Error> {
    let quote = |name: &str| format!("\"{}\"", name.replace('"', "\"\""));
    sqlx::query(&format!("GRANT {} TO {}", quote(role), quote(login)))
        .execute(pool)
        .await
        .map(|_| ())
}

/// Applies pending migrations. sqlx holds a PostgreSQL advisory lock while
/// it migrates, so several instances may start at once.
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await
}
