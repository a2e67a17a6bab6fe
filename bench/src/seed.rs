//! Seeding a log of valid domain events with set-based SQL.
//!
//! Every row goes through the events table's trigger (transaction id,
//! timestamp, hash chain), so each stream is inserted in sequence order:
//! within a statement `ORDER BY` puts sequence *n − 1* before *n* (rows
//! inserted earlier in the same statement are visible to the trigger), and
//! later sequences of a stream go in later statements.
//!
//! The mix, with U users, B bots, F fills and P portfolio trades:
//! - `User` u: `user.created` (U events);
//! - `ExchangeKey` of user u: `kraken.key.connected`, `kraken.key.tested`
//!   (2U);
//! - `Bot` b, owned by user b mod U on that user's key: `bot.configured`,
//!   `bot.start_requested`, `bot.started` (3B), then the bulk, fill i on bot
//!   i mod B: `bot.trade.executed` with order id `O<i>-BENCH` (F);
//! - `Portfolio` of user u < min(U, B): `trade.executed`, trade j on user
//!   j mod min(U, B) with the resulting position (P).
//!
//! Ids are `md5('<kind>:<n>')::uuid`, so a plan always yields the same
//! streams. Payloads are written exactly as serde writes the domain enums
//! (`type` tag first, decimals as strings, RFC 3339 times);
//! [`check_payloads`] proves it on a sample of each event type.

use std::time::Instant;

use anyhow::{ensure, Context, Result};
use event_log::RecordedEvent;
use serde::Serialize;
use sqlx::{PgPool, Row};

use crate::decode::AnyEvent;
use crate::stats::rate;

/// Rows per seeding statement (about; fills and portfolio trades split it).
const CHUNK_ROWS: u64 = 50_000;

/// What to seed.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SeedPlan {
    pub users: u64,
    pub bots: u64,
    pub fills: u64,
    pub portfolio_trades: u64,
}

impl SeedPlan {
    /// A plan of exactly `events` events: users, keys and bots first, the
    /// rest split between fills and portfolio trades by `portfolio_share`.
    pub fn new(events: u64, users: u64, bots: u64, portfolio_share: f64) -> Result<Self> {
        ensure!(users >= 1, "--users must be at least 1");
        ensure!(bots >= 1, "--bots must be at least 1");
        ensure!(
            portfolio_share.is_finite() && portfolio_share >= 0.0,
            "--portfolio-share must be a number >= 0"
        );
        let setup = 3 * users + 3 * bots;
        ensure!(
            events > setup,
            "--events {events} leaves no room for fills after {setup} user, key and bot events; \
             raise --events or lower --users/--bots"
        );
        let bulk = events - setup;
        let fills = ((bulk as f64) / (1.0 + portfolio_share)).ceil() as u64;
        let fills = fills.clamp(1, bulk);
        Ok(Self {
            users,
            bots,
            fills,
            portfolio_trades: bulk - fills,
        })
    }

    pub fn events(&self) -> u64 {
        3 * self.users + 3 * self.bots + self.fills + self.portfolio_trades
    }

    /// Users with a portfolio: user u trades through bot u.
    pub fn portfolio_users(&self) -> u64 {
        self.users.min(self.bots)
    }

    /// Events per aggregate type.
    pub fn by_aggregate(&self) -> [(&'static str, u64); 4] {
        [
            ("User", self.users),
            ("ExchangeKey", 2 * self.users),
            ("Bot", 3 * self.bots + self.fills),
            ("Portfolio", self.portfolio_trades),
        ]
    }

    /// The read-model rows a full catch-up must produce.
    pub fn expected_read_models(&self) -> ReadModelCounts {
        ReadModelCounts {
            users: self.users as i64,
            exchange_keys_tested: self.users as i64,
            bots_running: self.bots as i64,
            bot_trades_executed: self.fills as i64,
            trades: self.fills as i64,
            positions: self.portfolio_trades.min(self.portfolio_users()) as i64,
            position_trades: self.portfolio_trades as i64,
        }
    }
}

/// What seeding took.
#[derive(Debug, Clone, Serialize)]
pub struct SeedReport {
    pub events: u64,
    pub statements: u64,
    pub seconds: f64,
    pub events_per_second: f64,
    /// `VACUUM (ANALYZE) events` and `CHECKPOINT` after seeding, so the
    /// measurements neither set hint bits nor wait on a checkpoint.
    pub settle_seconds: f64,
    pub table_bytes: i64,
}

/// Seeds `plan` into the empty log of `pool`.
pub async fn seed(pool: &PgPool, plan: &SeedPlan) -> Result<SeedReport> {
    let existing: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(pool)
        .await
        .context("counting events before seeding")?;
    ensure!(
        existing == 0,
        "the benchmark log is not empty ({existing} events)"
    );

    let started = Instant::now();
    let mut statements = 0u64;
    let mut inserted = 0u64;
    let mut report_progress = |rows: u64, started: Instant| {
        inserted += rows;
        statements += 1;
        eprintln!(
            "  seeded {inserted:>9} / {} events ({:.0} events/s)",
            plan.events(),
            rate(inserted, started.elapsed())
        );
    };

    let rows = execute(pool, &users_sql(), &[plan.users as i64], "users").await?;
    report_progress(rows, started);
    let rows = execute(pool, &keys_sql(), &[plan.users as i64], "exchange keys").await?;
    report_progress(rows, started);
    let rows = execute(
        pool,
        &bots_sql(),
        &[plan.bots as i64, plan.users as i64],
        "bots",
    )
    .await?;
    report_progress(rows, started);

    let bulk = plan.fills + plan.portfolio_trades;
    let chunks = bulk.div_ceil(CHUNK_ROWS).max(1);
    for chunk in 0..chunks {
        let (lo, hi) = slice(plan.fills, chunk, chunks);
        if hi > lo {
            let rows = execute(
                pool,
                &fills_sql(),
                &[lo as i64, hi as i64, plan.bots as i64, plan.users as i64],
                "fills",
            )
            .await?;
            report_progress(rows, started);
        }
        let (lo, hi) = slice(plan.portfolio_trades, chunk, chunks);
        if hi > lo {
            let rows = execute(
                pool,
                &portfolio_sql(),
                &[lo as i64, hi as i64, plan.portfolio_users() as i64],
                "portfolio trades",
            )
            .await?;
            report_progress(rows, started);
        }
    }
    let seeding = started.elapsed();
    ensure!(
        inserted == plan.events(),
        "seeded {inserted} events, planned {}",
        plan.events()
    );

    let settle_started = Instant::now();
    sqlx::raw_sql("VACUUM (ANALYZE) events")
        .execute(pool)
        .await
        .context("vacuuming the seeded log")?;
    sqlx::raw_sql("CHECKPOINT")
        .execute(pool)
        .await
        .context("checkpointing after seeding")?;
    let settle = settle_started.elapsed();
    let table_bytes: i64 = sqlx::query_scalar("SELECT pg_total_relation_size('events')")
        .fetch_one(pool)
        .await
        .context("measuring the events table")?;

    Ok(SeedReport {
        events: inserted,
        statements,
        seconds: seeding.as_secs_f64(),
        events_per_second: rate(inserted, seeding),
        settle_seconds: settle.as_secs_f64(),
        table_bytes,
    })
}

/// The `chunk`th of `chunks` near-equal slices of `0..total`.
fn slice(total: u64, chunk: u64, chunks: u64) -> (u64, u64) {
    let at = |c: u64| (u128::from(total) * u128::from(c) / u128::from(chunks)) as u64;
    (at(chunk), at(chunk + 1))
}

async fn execute(pool: &PgPool, sql: &str, binds: &[i64], what: &str) -> Result<u64> {
    let mut query = sqlx::query(sql);
    for bind in binds {
        query = query.bind(*bind);
    }
    let result = query
        .execute(pool)
        .await
        .with_context(|| format!("seeding {what}"))?;
    Ok(result.rows_affected())
}

/// Checks one stored payload of every event type: it decodes into its
/// domain type, the domain names it with the stored `event_type`, and
/// serialising it again gives the stored JSON. Returns the types checked.
pub async fn check_payloads(pool: &PgPool) -> Result<Vec<String>> {
    let types: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT event_type FROM events ORDER BY event_type")
            .fetch_all(pool)
            .await
            .context("listing seeded event types")?;
    for event_type in &types {
        let row = sqlx::query(
            "SELECT event_id, aggregate_type, aggregate_id, sequence, event_version, payload, \
             metadata, recorded_at, prev_hash, hash FROM events WHERE event_type = $1 LIMIT 1",
        )
        .bind(event_type)
        .fetch_one(pool)
        .await
        .with_context(|| format!("reading a {event_type} event"))?;
        let event = RecordedEvent {
            position: event_log::Position::default(),
            event_id: row.try_get("event_id")?,
            aggregate_type: row.try_get("aggregate_type")?,
            aggregate_id: row.try_get("aggregate_id")?,
            sequence: row.try_get("sequence")?,
            event_type: event_type.clone(),
            event_version: row.try_get("event_version")?,
            payload: row.try_get("payload")?,
            metadata: row.try_get("metadata")?,
            recorded_at: row.try_get("recorded_at")?,
            prev_hash: row.try_get("prev_hash")?,
            hash: row.try_get("hash")?,
        };
        let decoded = AnyEvent::decode(&event)?;
        ensure!(
            decoded.event_type() == *event_type,
            "a stored {event_type} decodes as {}",
            decoded.event_type()
        );
        ensure!(
            decoded.to_payload()? == event.payload,
            "a stored {event_type} is not what serde writes:\n  stored     {}\n  serialised {}",
            event.payload,
            decoded.to_payload()?
        );
    }
    Ok(types)
}

/// Read-model row counts that show a catch-up applied every event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReadModelCounts {
    pub users: i64,
    pub exchange_keys_tested: i64,
    pub bots_running: i64,
    pub bot_trades_executed: i64,
    pub trades: i64,
    pub positions: i64,
    pub position_trades: i64,
}

impl ReadModelCounts {
    pub async fn read(pool: &PgPool) -> Result<Self> {
        let row = sqlx::query(
            "SELECT (SELECT count(*) FROM users) AS users, \
                    (SELECT count(*) FROM exchange_keys WHERE status = 'tested') AS keys, \
                    (SELECT count(*) FROM bot_status WHERE state = 'running') AS bots, \
                    (SELECT coalesce(sum(trades_executed), 0)::bigint FROM bot_status) AS bot_trades, \
                    (SELECT count(*) FROM trades) AS trades, \
                    (SELECT count(*) FROM positions) AS positions, \
                    (SELECT coalesce(sum(trades), 0)::bigint FROM positions) AS position_trades",
        )
        .fetch_one(pool)
        .await
        .context("counting read-model rows")?;
        Ok(Self {
            users: row.try_get("users")?,
            exchange_keys_tested: row.try_get("keys")?,
            bots_running: row.try_get("bots")?,
            bot_trades_executed: row.try_get("bot_trades")?,
            trades: row.try_get("trades")?,
            positions: row.try_get("positions")?,
            position_trades: row.try_get("position_trades")?,
        })
    }
}

// ---------------------------------------------------------------------------
// The statements. Every JSON text is built with format() in serde's field
// order; the values are ids, digits and fixed words, never needing escapes.

/// An RFC 3339 UTC timestamp `seconds` after 2026-01-01, as chrono writes
/// whole seconds.
fn at(seconds: &str) -> String {
    format!(
        "to_char(timestamp '2026-01-01 00:00:00' + ({seconds}) * interval '1 second', \
         'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
    )
}

fn id(kind: &str, n: &str) -> String {
    format!("md5('{kind}:' || ({n}))::uuid")
}

/// Bot b's pair; a user's portfolio trades in the pair of bot u.
fn pair(b: &str) -> String {
    format!("(ARRAY['XBT/USD', 'ETH/USD', 'SOL/USD', 'XBT/EUR'])[({b}) % 4 + 1]")
}

/// Metadata of a REST command by `user` (an SQL uuid expression).
fn user_metadata(command_type: &str, user: &str) -> String {
    format!(
        "format('{{\"command_id\":\"%1$s\",\"command_type\":\"%2$s\",\"source\":\"rest\",\
         \"correlation_id\":\"%1$s\",\"causation_id\":\"%3$s\",\"user_id\":\"%4$s\",\"role\":\"user\",\
         \"request_id\":\"%3$s\"}}', gen_random_uuid(), {command_type}, gen_random_uuid(), {user})::json"
    )
}

/// Metadata of a command by the system (bot runner, process manager).
fn system_metadata(command_type: &str, source: &str) -> String {
    format!(
        "format('{{\"command_id\":\"%1$s\",\"command_type\":\"%2$s\",\"source\":\"{source}\",\
         \"correlation_id\":\"%3$s\",\"causation_id\":\"%3$s\",\"role\":\"system\"}}', \
         gen_random_uuid(), '{command_type}', gen_random_uuid())::json"
    )
}

const INSERT: &str = "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
                      event_version, payload, metadata)";

/// $1 = users. Their email and display name are sealed as the command
/// side seals them (version 2.0): here 48 bytes standing for nonce,
/// ciphertext and tag, with no data key kept, as for an erased user (the
/// projector's work per event is the same: a key lookup that finds none).
fn users_sql() -> String {
    format!(
        "{INSERT} SELECT 'User', user_id::text, 1, 'user.created', '2.0', \
           json_build_object('type', 'user.created', 'user_id', user_id, \
             'email', json_build_object('sealed', '1:' || encode( \
                 substring(sha512(convert_to('email ' || user_id, 'UTF8')) for 48), 'base64')), \
             'display_name', json_build_object('sealed', '1:' || encode( \
                 substring(sha512(convert_to('name ' || user_id, 'UTF8')) for 48), 'base64')), \
             'role', 'user', 'at', {at}), \
           {metadata} \
         FROM (SELECT u, {user_id} AS user_id FROM generate_series(0, $1 - 1) AS u) AS s \
         ORDER BY u",
        at = at("u"),
        user_id = id("user", "u"),
        metadata = user_metadata("'user.register'", "user_id"),
    )
}

/// $1 = users. Sequence 1 of every key, then sequence 2.
fn keys_sql() -> String {
    let permissions = r#"["query_funds","query_orders","trade"]"#;
    format!(
        "{INSERT} SELECT 'ExchangeKey', key_id::text, seq, \
           CASE seq WHEN 1 THEN 'kraken.key.connected' ELSE 'kraken.key.tested' END, '1.0', \
           CASE seq \
             WHEN 1 THEN format('{{\"type\":\"kraken.key.connected\",\"key_id\":\"%s\",\"owner_id\":\"%s\",\
                          \"exchange\":\"kraken\",\"label\":\"main\",\"fingerprint\":\"sha256:%s\",\
                          \"permissions\":{permissions},\"at\":\"%s\"}}', \
                          key_id, user_id, left(md5('api-key:' || u), 16), {at}) \
             ELSE format('{{\"type\":\"kraken.key.tested\",\"permissions\":{permissions},\"at\":\"%s\"}}', {at}) \
           END::json, \
           {metadata} \
         FROM generate_series(1, 2) AS seq \
         CROSS JOIN (SELECT u, {user_id} AS user_id, {key_id} AS key_id \
                       FROM generate_series(0, $1 - 1) AS u) AS s \
         ORDER BY seq, u",
        at = at("u + seq * 60"),
        user_id = id("user", "u"),
        key_id = id("key", "u"),
        metadata = user_metadata(
            "CASE seq WHEN 1 THEN 'kraken.connect_key' ELSE 'kraken.test_key' END",
            "user_id"
        ),
    )
}

/// $1 = bots, $2 = users. Configured, start requested (by the owner), then
/// started (by the system); sequence by sequence.
fn bots_sql() -> String {
    let strategy = r#"{"kind":"dca","quote_amount":"25.00","interval_secs":60}"#;
    format!(
        "{INSERT} SELECT 'Bot', bot_id::text, seq, \
           (ARRAY['bot.configured', 'bot.start_requested', 'bot.started'])[seq], '1.0', \
           CASE seq \
             WHEN 1 THEN format('{{\"type\":\"bot.configured\",\"bot_id\":\"%s\",\"owner_id\":\"%s\",\
                          \"key_id\":\"%s\",\"pair\":\"%s\",\"strategy\":{strategy},\"at\":\"%s\"}}', \
                          bot_id, user_id, key_id, pair, {at}) \
             WHEN 2 THEN format('{{\"type\":\"bot.start_requested\",\"bot_id\":\"%s\",\"owner_id\":\"%s\",\
                          \"key_id\":\"%s\",\"pair\":\"%s\",\"strategy\":{strategy},\
                          \"requested_by\":\"%s\",\"at\":\"%s\"}}', \
                          bot_id, user_id, key_id, pair, user_id, {at}) \
             ELSE format('{{\"type\":\"bot.started\",\"at\":\"%s\"}}', {at}) \
           END::json, \
           CASE WHEN seq < 3 THEN {user_metadata} ELSE {system_metadata} END \
         FROM generate_series(1, 3) AS seq \
         CROSS JOIN (SELECT b, {bot_id} AS bot_id, {user_id} AS user_id, {key_id} AS key_id, \
                            {pair} AS pair \
                       FROM generate_series(0, $1 - 1) AS b) AS s \
         ORDER BY seq, b",
        at = at("3600 + b + seq * 60"),
        bot_id = id("bot", "b"),
        user_id = id("user", "b % $2"),
        key_id = id("key", "b % $2"),
        pair = pair("b"),
        user_metadata = user_metadata(
            "CASE seq WHEN 1 THEN 'bot.configure' ELSE 'bot.request_start' END",
            "user_id"
        ),
        system_metadata = system_metadata("bot.mark_started", "bot-runner"),
    )
}

/// $1..$2 = fill numbers, $3 = bots, $4 = users. Fill i is the
/// (i / bots + 1)th fill of bot i mod bots: sequence 4 + i / bots.
fn fills_sql() -> String {
    format!(
        "{INSERT} SELECT 'Bot', {bot_id}::text, 4 + i / $3, 'bot.trade.executed', '1.0', \
           format('{{\"type\":\"bot.trade.executed\",\"owner_id\":\"%s\",\"pair\":\"%s\",\
                   \"fill\":{{\"trigger_id\":\"%s\",\"order_id\":\"O%s-BENCH\",\"side\":\"%s\",\
                   \"quantity\":\"0.00100000\",\"price\":\"%s\",\"fee\":\"0.05\",\"executed_at\":\"%s\"}}}}', \
                  {user_id}, {pair}, gen_random_uuid(), lpad(i::text, 10, '0'), \
                  CASE WHEN i % 5 = 4 THEN 'sell' ELSE 'buy' END, \
                  (30000 + (i % 5000) * 0.5)::numeric(12, 2), {at})::json, \
           {metadata} \
         FROM (SELECT i, i % $3 AS b FROM generate_series($1::bigint, $2::bigint - 1) AS i) AS s \
         ORDER BY i",
        bot_id = id("bot", "b"),
        user_id = id("user", "b % $4"),
        pair = pair("b"),
        at = at("86400 + i"),
        metadata = system_metadata("bot.record_trade_executed", "bot-runner"),
    )
}

/// $1..$2 = trade numbers, $3 = portfolio users. Trade j is the
/// (j / users + 1)th buy of user j mod users, through bot u, at 30000.00
/// with a 0.05 fee: the position after the kth is k × 0.001 at a cost basis
/// of k × 30.05.
fn portfolio_sql() -> String {
    format!(
        "{INSERT} SELECT 'Portfolio', user_id::text, k, 'trade.executed', '1.0', \
           format('{{\"type\":\"trade.executed\",\"trade\":{{\"user_id\":\"%s\",\"bot_id\":\"%s\",\
                   \"order_id\":\"P%s-BENCH\",\"pair\":\"%s\",\"side\":\"buy\",\"quantity\":\"0.001\",\
                   \"price\":\"30000.00\",\"fee\":\"0.05\",\"executed_at\":\"%s\"}},\"realised_pnl\":\"0\",\
                   \"position\":{{\"quantity\":\"%s\",\"cost_basis\":\"%s\",\"average_cost\":\"30050\",\
                   \"realised_pnl\":\"0\"}}}}', \
                  user_id, {bot_id}, lpad(j::text, 10, '0'), {pair}, {at}, 0.001 * k, 30.05 * k)::json, \
           {metadata} \
         FROM (SELECT j, u, j / $3 + 1 AS k, {user_id} AS user_id \
                 FROM (SELECT j, j % $3 AS u FROM generate_series($1::bigint, $2::bigint - 1) AS j) AS t) AS s \
         ORDER BY j",
        user_id = id("user", "u"),
        bot_id = id("bot", "u"),
        pair = pair("u"),
        at = at("86400 + j"),
        metadata = system_metadata("portfolio.record_trade", "process-manager"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_has_exactly_the_events_asked_for() {
        for events in [12_000, 20_000, 1_000_000, 1_000_001] {
            let plan = SeedPlan::new(events, 1_000, 2_000, 1.0).unwrap();
            assert_eq!(plan.events(), events);
            assert!(plan.fills >= plan.portfolio_trades);
            assert!(plan.fills - plan.portfolio_trades <= 1);
        }
        let plan = SeedPlan::new(10_000, 10, 10, 0.0).unwrap();
        assert_eq!((plan.fills, plan.portfolio_trades), (9_940, 0));
        assert!(SeedPlan::new(9_000, 1_000, 2_000, 1.0).is_err());
    }

    #[test]
    fn slices_cover_the_range_once() {
        let mut next = 0;
        for chunk in 0..7 {
            let (lo, hi) = slice(100, chunk, 7);
            assert_eq!(lo, next);
            next = hi;
        }
        assert_eq!(next, 100);
    }
}
