//! Comparing a shadow schema's read models with the live ones: by primary
//! key (rows only in one, rows that differ) and byte for byte (a SHA-256
//! over every row's text form in key order).

use event_log::Position;
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgConnection, PgPool};

use crate::rebuild::{
    ensure_shadow, optional_position_token, primary_key, shadow_schema, RebuildError,
};

/// One read model's shadow against its live table.
#[derive(Debug, Clone, Serialize)]
pub struct TableDiff {
    pub table: &'static str,
    pub shadow_rows: i64,
    pub live_rows: i64,
    /// SHA-256 over every row's text form in primary-key order: equal
    /// digests mean byte-identical tables.
    pub shadow_digest: String,
    pub live_digest: String,
    pub only_in_shadow: i64,
    pub only_in_live: i64,
    pub differing: i64,
    /// Up to `limit` differing rows: the key, the shadow row and the live
    /// row (`null` where absent).
    pub rows: Vec<RowDiff>,
}

impl TableDiff {
    pub fn is_identical(&self) -> bool {
        self.shadow_digest == self.live_digest
            && self.only_in_shadow == 0
            && self.only_in_live == 0
            && self.differing == 0
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RowDiff {
    pub key: Value,
    pub shadow: Value,
    pub live: Value,
}

/// Where the live projectors stand, for reading a comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Checkpoints {
    pub subscriber: String,
    #[serde(serialize_with = "optional_position_token")]
    pub shadow: Option<Position>,
    #[serde(serialize_with = "optional_position_token")]
    pub live: Option<Position>,
}

/// SHA-256 over the rows of `schema.table` as text, in key order, and the
/// row count.
pub async fn table_digest(
    connection: &mut PgConnection,
    schema: &str,
    table: &str,
) -> Result<(i64, String), RebuildError> {
    let key = primary_key(table)?.join(", ");
    let (rows, digest): (i64, Option<String>) = sqlx::query_as(&format!(
        "SELECT count(*), encode(sha256(convert_to(coalesce(string_agg(t::text, E'\\n' ORDER BY {key}), ''), 'UTF8')), 'hex') \
           FROM {schema}.{table} t"
    ))
    .fetch_one(&mut *connection)
    .await?;
    Ok((rows, digest.unwrap_or_default()))
}

/// Compares each shadow table of `name` with its live table by primary
/// key, listing at most `limit` differing rows per table.
pub async fn compare(
    pool: &PgPool,
    name: &str,
    tables: &[&'static str],
    limit: i64,
) -> Result<Vec<TableDiff>, RebuildError> {
    let schema = shadow_schema(name)?;
    ensure_shadow(pool, &schema).await?;
    let mut connection = pool.acquire().await?;
    let mut diffs = Vec::new();
    for &table in tables {
        let key = primary_key(table)?;
        let on = key
            .iter()
            .map(|column| format!("s.{column} = l.{column}"))
            .collect::<Vec<_>>()
            .join(" AND ");
        let key_json = key
            .iter()
            .map(|column| format!("'{column}', coalesce(s.{column}, l.{column})"))
            .collect::<Vec<_>>()
            .join(", ");
        let order = key
            .iter()
            .map(|column| format!("coalesce(s.{column}, l.{column})"))
            .collect::<Vec<_>>()
            .join(", ");
        let join = format!(
            "FROM {schema}.{table} s FULL JOIN public.{table} l ON {on} \
             WHERE s::text IS DISTINCT FROM l::text"
        );
        let (only_in_shadow, only_in_live, differing): (i64, i64, i64) = sqlx::query_as(&format!(
            "SELECT count(*) FILTER (WHERE l.{k} IS NULL), count(*) FILTER (WHERE s.{k} IS NULL), \
                    count(*) FILTER (WHERE s.{k} IS NOT NULL AND l.{k} IS NOT NULL) {join}",
            k = key[0]
        ))
        .fetch_one(&mut *connection)
        .await?;
        let rows: Vec<(Value, Option<Value>, Option<Value>)> = sqlx::query_as(&format!(
            "SELECT jsonb_build_object({key_json}), to_jsonb(s), to_jsonb(l) {join} ORDER BY {order} LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(&mut *connection)
        .await?;
        let (shadow_rows, shadow_digest) = table_digest(&mut connection, &schema, table).await?;
        let (live_rows, live_digest) = table_digest(&mut connection, "public", table).await?;
        diffs.push(TableDiff {
            table,
            shadow_rows,
            live_rows,
            shadow_digest,
            live_digest,
            only_in_shadow,
            only_in_live,
            differing,
            rows: rows
                .into_iter()
                .map(|(key, shadow, live)| RowDiff {
                    key,
                    shadow: shadow.unwrap_or(Value::Null),
                    live: live.unwrap_or(Value::Null),
                })
                .collect(),
        });
    }
    Ok(diffs)
}

/// The shadow's and the live checkpoints of `tables`' projectors.
pub async fn checkpoints(
    pool: &PgPool,
    name: &str,
    tables: &[&'static str],
) -> Result<Vec<Checkpoints>, RebuildError> {
    let schema = shadow_schema(name)?;
    let mut out = Vec::new();
    for &table in tables {
        let read = |schema: String| async move {
            let row: Option<(String, i64)> = sqlx::query_as(&format!(
                "SELECT transaction_id::text, global_position FROM {schema}.subscriber_checkpoints \
                 WHERE subscriber = $1"
            ))
            .bind(table)
            .fetch_optional(pool)
            .await?;
            row.map(|(transaction, global_position)| {
                Position::from_columns(&transaction, global_position).map_err(sqlx::Error::from)
            })
            .transpose()
        };
        out.push(Checkpoints {
            subscriber: table.to_string(),
            shadow: read(schema.clone()).await?,
            live: read("public".to_string()).await?,
        });
    }
    Ok(out)
}
