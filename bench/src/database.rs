//! A throw-away database per benchmark run: created and migrated with the
//! command side's own functions, dropped at the end.

use std::str::FromStr;

use anyhow::{Context, Result};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgPool};
use uuid::Uuid;

/// A database made for this run.
pub struct BenchDatabase {
    pub name: String,
    pub url: String,
    admin_url: String,
}

impl BenchDatabase {
    /// Creates `muckard_bench_<random>` on the server of `admin_url` and
    /// applies the migrations; returns it with a pool of `max_connections`.
    pub async fn create(admin_url: &str, max_connections: u32) -> Result<(Self, PgPool)> {
        let name = format!(
            "muckard_bench_{}",
            &Uuid::new_v4().simple().to_string()[..12]
        );
        let url = url_with_database(admin_url, &name)?;
        let database = BenchDatabase {
            name,
            url,
            admin_url: admin_url.to_string(),
        };
        match database.prepare(max_connections).await {
            Ok(pool) => Ok((database, pool)),
            Err(error) => {
                // Best effort: a half-made database is not left behind.
                let _ = database.drop_database().await;
                Err(error)
            }
        }
    }

    async fn prepare(&self, max_connections: u32) -> Result<PgPool> {
        command_side::database::ensure_database_exists(&self.url)
            .await
            .with_context(|| format!("creating database {}", self.name))?;
        let pool = command_side::database::connect(&self.url, max_connections)
            .await
            .with_context(|| format!("connecting to {}", self.name))?;
        command_side::database::migrate(&pool)
            .await
            .with_context(|| format!("migrating {}", self.name))?;
        Ok(pool)
    }

    /// Drops the database, ending any session still connected to it.
    pub async fn drop_database(&self) -> Result<()> {
        let options = PgConnectOptions::from_str(&self.admin_url)
            .context("parsing the admin database URL")?
            .database("postgres");
        let mut admin = options
            .connect()
            .await
            .context("connecting to drop the benchmark database")?;
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.name
        ))
        .execute(&mut admin)
        .await
        .with_context(|| format!("dropping database {}", self.name))?;
        admin.close().await.ok();
        Ok(())
    }
}

/// `admin_url` with its database path replaced by (or set to) `database`,
/// keeping any query parameters.
pub fn url_with_database(admin_url: &str, database: &str) -> Result<String> {
    let (without_query, query) = match admin_url.split_once('?') {
        Some((url, query)) => (url, Some(query)),
        None => (admin_url, None),
    };
    let scheme_end = without_query
        .find("://")
        .map(|at| at + 3)
        .with_context(|| format!("{admin_url:?} is not a postgres:// URL"))?;
    let authority_end = without_query[scheme_end..]
        .find('/')
        .map_or(without_query.len(), |at| scheme_end + at);
    let mut url = format!("{}/{database}", &without_query[..authority_end]);
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::url_with_database;

    #[test]
    fn the_database_path_is_set_or_replaced() {
        let cases = [
            (
                "postgres://postgres@127.0.0.1:5432",
                "postgres://postgres@127.0.0.1:5432/x",
            ),
            (
                "postgres://postgres@127.0.0.1:5432/",
                "postgres://postgres@127.0.0.1:5432/x",
            ),
            ("postgres://u:p@h/postgres", "postgres://u:p@h/x"),
            (
                "postgres://h/postgres?sslmode=disable",
                "postgres://h/x?sslmode=disable",
            ),
        ];
        for (admin, expected) in cases {
            assert_eq!(url_with_database(admin, "x").unwrap(), expected);
        }
        assert!(url_with_database("localhost", "x").is_err());
    }
}
