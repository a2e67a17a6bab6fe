//! Command latency on a short stream against a long one: the command side
//! loads an aggregate from its latest snapshot plus the events after it, so
//! the length of the stream should not show.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Serialize;
use sqlx::PgPool;
use tokio::time::Instant;

use super::client::{start_bot, wait_running, Api, Bot, User};
use crate::stats::Percentiles;

#[derive(Debug, Clone, Serialize)]
pub struct StreamLength {
    pub short_bots: usize,
    /// Events of each short stream before the measurement (the fewest).
    pub short_events_before: i64,
    pub long_events_before: i64,
    pub long_events_after: i64,
    /// How long growing the long stream took, and its rate (one client).
    pub grow_seconds: f64,
    pub grow_commands: u64,
    pub short: Option<Percentiles>,
    pub long: Option<Percentiles>,
    /// long p50 / short p50.
    pub p50_ratio: f64,
    /// Samples answered 409 after the command side's retries (racing the
    /// bot runner's fills), left out of the percentiles.
    pub conflicts: u64,
    pub long_stream_snapshot_at: i64,
}

async fn stream_length(pool: &PgPool, bot: &Bot) -> Result<i64> {
    sqlx::query_scalar(
        "SELECT coalesce(max(sequence), 0) FROM events \
          WHERE aggregate_type = 'Bot' AND aggregate_id = $1",
    )
    .bind(bot.id.to_string())
    .fetch_one(pool)
    .await
    .context("reading a stream's length")
}

/// Triggers trades on `bot`, one at a time, until its stream holds at
/// least `events` events (each trigger adds its own event and, soon after,
/// the fill the bot runner records); returns the commands sent.
async fn grow(api: &Api, pool: &PgPool, bot: &Bot, events: i64) -> Result<u64> {
    let mut commands = 0;
    loop {
        let length = stream_length(pool, bot).await?;
        if length >= events {
            return Ok(commands);
        }
        // Half of what is missing, as each trigger brings its fill.
        for _ in 0..((events - length) / 2).clamp(1, 500) {
            let answer = api.trigger(&bot.token, bot.id).await?;
            // 409: the bot runner's fills kept winning the race for the
            // stream through every retry; a client sends it again.
            if !answer.ok() && answer.status != 409 {
                bail!("growing a stream: {} {}", answer.status, answer.body);
            }
            commands += 1;
        }
    }
}

/// Grows `bot`'s stream to `events` events with fills recorded through a
/// command side of the benchmark's own on the same database, as the bot
/// runner records them (`Actor::System`, one at a time, each with its own
/// order id, so the bot's and its portfolio's windows of remembered order
/// ids fill up as a long-running bot's do). Triggers through the API would
/// take 5,000 commands at the quota's 256 a minute, 20 minutes.
async fn grow_by_fills(pool: &PgPool, bot: &Bot, events: i64) -> Result<u64> {
    use domain::bot::{BotCommand, Fill};
    let commands = crate::lag::command_side(pool.clone())?;
    let metadata = crate::lag::metadata(domain::Actor::System, "bench.grow");
    let mut length = stream_length(pool, bot).await?;
    let mut sent = 0u64;
    while length < events {
        let fill = Fill {
            trigger_id: None,
            order_id: format!("GROW-{}-{sent}", bot.id),
            side: domain::Side::Buy,
            quantity: rust_decimal::Decimal::new(1, 4),
            price: rust_decimal::Decimal::new(100, 0),
            fee: rust_decimal::Decimal::ZERO,
            executed_at: chrono::Utc::now(),
        };
        let command = BotCommand::RecordTradeExecuted {
            actor: domain::Actor::System,
            fill,
        };
        commands
            .execute_bot(&bot.id.to_string(), command, &metadata)
            .await
            .map_err(|error| anyhow::anyhow!("growing the long stream: {error}"))?;
        sent += 1;
        length += 1;
    }
    Ok(sent)
}

pub async fn measure(
    api: &Api,
    pool: &PgPool,
    user: &User,
    owner: usize,
    long_events: i64,
    samples: usize,
) -> Result<StreamLength> {
    // Short streams: bots at ~10 events, each measured a few times.
    let short_bots = (samples / 5).max(1);
    let mut shorts = Vec::new();
    for _ in 0..short_bots {
        shorts.push(start_bot(api, owner, user).await?);
    }
    let long = start_bot(api, owner, user).await?;
    let mut all = shorts.clone();
    all.push(long.clone());
    wait_running(api, &all, Duration::from_secs(120)).await?;
    for bot in &shorts {
        grow(api, pool, bot, 10).await?;
    }
    let started = Instant::now();
    let grow_commands = grow_by_fills(pool, &long, long_events).await?;
    let grow_seconds = started.elapsed().as_secs_f64();
    let mut short_events_before = i64::MAX;
    for bot in &shorts {
        short_events_before = short_events_before.min(stream_length(pool, bot).await?);
    }
    let long_events_before = stream_length(pool, &long).await?;

    // Alternate short and long, one command at a time, so both see the
    // same machine. Each command waits until the bot runner has answered
    // the previous one on its bot (its fill or skip is in the stream), so
    // that neither kind races a fill on its stream: the one bot of 10,000
    // events would otherwise race its runner far more often than the 40
    // short bots taken in turn, and measure that instead of its length.
    let mut short_samples = Vec::new();
    let mut long_samples = Vec::new();
    let mut conflicts = 0;
    for i in 0..samples {
        let short = &shorts[i % shorts.len()];
        for (bot, into) in [(short, &mut short_samples), (&long, &mut long_samples)] {
            let before = stream_length(pool, bot).await?;
            let sent = Instant::now();
            let answer = api.trigger(&bot.token, bot.id).await?;
            if answer.status == 409 {
                conflicts += 1;
                continue;
            }
            if !answer.ok() {
                bail!("stream-length command: {} {}", answer.status, answer.body);
            }
            into.push(sent.elapsed());
            let deadline = Instant::now() + Duration::from_secs(5);
            while stream_length(pool, bot).await? < before + 2 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
    let long_events_after = stream_length(pool, &long).await?;
    let long_stream_snapshot_at: i64 = sqlx::query_scalar(
        "SELECT coalesce(max(last_sequence), 0) FROM snapshots \
          WHERE aggregate_type = 'Bot' AND aggregate_id = $1",
    )
    .bind(long.id.to_string())
    .fetch_one(pool)
    .await
    .unwrap_or(0);
    let short = Percentiles::of(&short_samples);
    let long = Percentiles::of(&long_samples);
    let p50_ratio = match (&short, &long) {
        (Some(s), Some(l)) if s.p50_ms > 0.0 => l.p50_ms / s.p50_ms,
        _ => 0.0,
    };
    Ok(StreamLength {
        short_bots,
        short_events_before,
        long_events_before,
        long_events_after,
        grow_seconds,
        grow_commands,
        short,
        long,
        p50_ratio,
        conflicts,
        long_stream_snapshot_at,
    })
}
