//! End-to-end freshness: from a REST command's answer (accepted and
//! committed; its `position` names its event) to the `bot_status` read
//! model having handled it, and to the Kafka mirror's checkpoint passing
//! it (the mirror moves it only once the broker acknowledged the batch).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use event_log::Position;
use serde::Serialize;
use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::client::{Api, Bot};
use crate::stats::{rate, Percentiles};

/// How often the poller reads the checkpoints.
const POLL: Duration = Duration::from_millis(2);
pub const READ_MODEL: &str = "bot_status";
pub const MIRROR: &str = "kafka_mirror";

#[derive(Debug, Clone, Serialize)]
pub struct Freshness {
    pub target_rate: f64,
    pub achieved_rate: f64,
    pub accepted: u64,
    pub failed: u64,
    pub command: Option<Percentiles>,
    pub accepted_to_read_model: Option<Percentiles>,
    pub accepted_to_kafka_acknowledged: Option<Percentiles>,
    /// Commands whose position a subscriber had not reached by the end.
    pub unresolved_read_model: u64,
    pub unresolved_kafka: u64,
}

struct Accepted {
    position: Position,
    at: Instant,
}

/// Open loop: one task per command at `target_rate` for `seconds`, round
/// robin over `bots`, at most 512 in flight.
pub async fn measure(
    api: &Api,
    pool: &PgPool,
    bots: &[Bot],
    target_rate: f64,
    seconds: Duration,
    kafka: bool,
) -> Result<Freshness> {
    let (sender, receiver) = mpsc::unbounded_channel::<Accepted>();
    let poller = tokio::spawn(poll(pool.clone(), receiver, kafka));
    let interval = Duration::from_secs_f64(1.0 / target_rate);
    let total = (target_rate * seconds.as_secs_f64()).round() as u64;
    let in_flight = Arc::new(tokio::sync::Semaphore::new(512));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        tokio::time::sleep_until(started + interval * i as u32).await;
        let permit = in_flight.clone().acquire_owned().await?;
        let bot = bots[i as usize % bots.len()].clone();
        let api = api.clone();
        let sender = sender.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            let sent = Instant::now();
            let answer = api.trigger(&bot.token, bot.id).await.ok()?;
            let at = Instant::now();
            if !answer.ok() {
                return None;
            }
            let position = answer.position().ok()?;
            let _ = sender.send(Accepted { position, at });
            Some(at - sent)
        }));
    }
    drop(sender);
    let mut command = Vec::new();
    let mut failed = 0;
    let mut last = started;
    for task in tasks {
        match task.await.context("a command task panicked")? {
            Some(latency) => command.push(latency),
            None => failed += 1,
        }
        last = last.max(Instant::now());
    }
    let elapsed = started.elapsed();
    let (read_model, kafka_samples, unresolved_read_model, unresolved_kafka) =
        poller.await.context("the checkpoint poller panicked")??;
    Ok(Freshness {
        target_rate,
        achieved_rate: rate(command.len() as u64, elapsed),
        accepted: command.len() as u64,
        failed,
        command: Percentiles::of(&command),
        accepted_to_read_model: Percentiles::of(&read_model),
        accepted_to_kafka_acknowledged: Percentiles::of(&kafka_samples),
        unresolved_read_model,
        unresolved_kafka,
    })
}

type Polled = (Vec<Duration>, Vec<Duration>, u64, u64);

/// Reads both checkpoints every [`POLL`] and resolves every accepted
/// command they have reached; gives up on the rest 60 s after the last
/// command was accepted.
async fn poll(
    pool: PgPool,
    mut receiver: mpsc::UnboundedReceiver<Accepted>,
    kafka: bool,
) -> Result<Polled> {
    let mut pending_read: Vec<Accepted> = Vec::new();
    let mut pending_kafka: Vec<(Position, Instant)> = Vec::new();
    let mut read_model = Vec::new();
    let mut mirrored = Vec::new();
    let mut open = true;
    let mut give_up: Option<Instant> = None;
    loop {
        while let Ok(accepted) = receiver.try_recv() {
            if kafka {
                pending_kafka.push((accepted.position, accepted.at));
            }
            pending_read.push(accepted);
        }
        if open && receiver.is_closed() && receiver.is_empty() {
            open = false;
            give_up = Some(Instant::now() + Duration::from_secs(60));
        }
        if !open && pending_read.is_empty() && pending_kafka.is_empty() {
            break;
        }
        if give_up.is_some_and(|at| Instant::now() >= at) {
            break;
        }
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT subscriber, transaction_id::text, global_position \
               FROM subscriber_checkpoints WHERE subscriber = ANY($1)",
        )
        .bind(vec![READ_MODEL, MIRROR])
        .fetch_all(&pool)
        .await
        .context("reading the checkpoints")?;
        let now = Instant::now();
        for (name, transaction, global_position) in rows {
            let checkpoint = Position::from_columns(&transaction, global_position)?;
            if name == READ_MODEL {
                pending_read.retain(|a| {
                    let reached = a.position <= checkpoint;
                    if reached {
                        read_model.push(now - a.at);
                    }
                    !reached
                });
            } else {
                pending_kafka.retain(|(position, at)| {
                    let reached = *position <= checkpoint;
                    if reached {
                        mirrored.push(now - *at);
                    }
                    !reached
                });
            }
        }
        tokio::time::sleep(POLL).await;
    }
    Ok((
        read_model,
        mirrored,
        pending_read.len() as u64,
        pending_kafka.len() as u64,
    ))
}
