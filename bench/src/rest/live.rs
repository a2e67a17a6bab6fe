//! `GET /api/v1/stream` under load: `connections` server-sent-event
//! streams spread over the users (each user's bots' fills reach every one
//! of that user's streams) while trades are triggered at a fixed rate,
//! open loop. Measured per delivered event: commit → delivered, the
//! client's clock at the event's arrival minus the event's `recorded_at`
//! (taken inside the committing transaction, so this errs long; server
//! and client share the machine's clock). And the server's resident memory
//! before the streams opened and once all were open and idle, per
//! connection.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::client::{Api, Bot, User};
use crate::stats::{rate, Percentiles};

#[derive(Debug, Clone, Serialize)]
pub struct LiveLevel {
    pub connections: usize,
    /// Streams the server refused (429 past the per-user bound, or any
    /// other answer than 200).
    pub refused: usize,
    pub target_rate: f64,
    pub achieved_rate: f64,
    pub accepted: u64,
    pub failed: u64,
    /// Events delivered, over all streams.
    pub delivered: u64,
    pub commit_to_delivered: Option<Percentiles>,
    pub rss_before_kib: Option<u64>,
    pub rss_open_kib: Option<u64>,
    pub kib_per_connection: Option<f64>,
}

/// The server's resident set size, from `/proc/<pid>/status`.
fn rss_kib(pid: Option<u32>) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}

/// One stream: reads events until `stop`, sending each delivery's latency
/// while `measuring`.
async fn follow(
    client: reqwest::Client,
    url: String,
    token: Arc<str>,
    opened: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
    measuring: Arc<AtomicBool>,
    latencies: mpsc::UnboundedSender<Duration>,
) {
    let response = match client.get(&url).bearer_auth(&*token).send().await {
        Ok(response) if response.status().as_u16() == 200 => response,
        _ => {
            refused.fetch_add(1, Ordering::SeqCst);
            return;
        }
    };
    opened.fetch_add(1, Ordering::SeqCst);
    let mut response = response;
    let mut pending = String::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let arrived = Utc::now();
        pending.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = pending.find('\n') {
            let line: String = pending.drain(..=end).collect();
            let Some(data) = line.trim_end().strip_prefix("data: ") else {
                continue;
            };
            if !measuring.load(Ordering::Relaxed) {
                continue;
            }
            let recorded = serde_json::from_str::<Value>(data)
                .ok()
                .and_then(|event| event["recorded_at"].as_str().map(str::to_string))
                .and_then(|text| text.parse::<DateTime<Utc>>().ok());
            if let Some(recorded) = recorded {
                let took = (arrived - recorded).to_std().unwrap_or_default();
                let _ = latencies.send(took);
            }
        }
    }
}

/// Opens `connections` streams (user `i % users.len()` for the i-th),
/// waits until all answered, then triggers trades at `target_rate` for
/// `seconds` and collects what the streams received until 3 s after.
pub async fn measure(
    api: &Api,
    users: &[User],
    bots: &[Bot],
    server_pid: Option<u32>,
    connections: usize,
    target_rate: f64,
    seconds: Duration,
) -> Result<LiveLevel> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .build()
        .context("building the streams' HTTP client")?;
    let url = format!("{}/api/v1/stream", api.base_url);
    let rss_before_kib = rss_kib(server_pid);
    let opened = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let measuring = Arc::new(AtomicBool::new(false));
    let (sender, mut receiver) = mpsc::unbounded_channel();
    let mut streams = Vec::with_capacity(connections);
    for i in 0..connections {
        streams.push(tokio::spawn(follow(
            client.clone(),
            url.clone(),
            users[i % users.len()].token.clone(),
            opened.clone(),
            refused.clone(),
            measuring.clone(),
            sender.clone(),
        )));
    }
    drop(sender);
    let deadline = Instant::now() + Duration::from_secs(120);
    while opened.load(Ordering::SeqCst) + refused.load(Ordering::SeqCst) < connections {
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {} of {connections} streams answered within 120 s",
            opened.load(Ordering::SeqCst) + refused.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Idle for a moment: the memory of open, quiet streams.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_open_kib = rss_kib(server_pid);
    let open = opened.load(Ordering::SeqCst);

    measuring.store(true, Ordering::SeqCst);
    let interval = Duration::from_secs_f64(1.0 / target_rate);
    let total = (target_rate * seconds.as_secs_f64()).round() as u64;
    let started = Instant::now();
    let mut commands = Vec::with_capacity(total as usize);
    for i in 0..total {
        tokio::time::sleep_until(started + interval * i as u32).await;
        let bot = bots[i as usize % bots.len()].clone();
        let api = api.clone();
        commands.push(tokio::spawn(async move {
            api.trigger(&bot.token, bot.id)
                .await
                .is_ok_and(|answer| answer.ok())
        }));
    }
    let mut accepted = 0;
    for command in commands {
        if command.await.unwrap_or(false) {
            accepted += 1;
        }
    }
    let elapsed = started.elapsed();
    // The fills of the last triggers, and their way to the streams.
    let drain_until = Instant::now() + Duration::from_secs(3);
    let mut latencies = Vec::new();
    while let Ok(Some(latency)) = tokio::time::timeout_at(drain_until, receiver.recv()).await {
        latencies.push(latency);
    }
    measuring.store(false, Ordering::SeqCst);
    for stream in &streams {
        stream.abort();
    }
    while let Ok(latency) = receiver.try_recv() {
        latencies.push(latency);
    }
    let kib_per_connection = match (rss_before_kib, rss_open_kib) {
        (Some(before), Some(after)) if open > 0 => {
            Some(after.saturating_sub(before) as f64 / open as f64)
        }
        _ => None,
    };
    Ok(LiveLevel {
        connections,
        refused: refused.load(Ordering::SeqCst),
        target_rate,
        achieved_rate: rate(accepted, elapsed),
        accepted,
        failed: total - accepted,
        delivered: latencies.len() as u64,
        commit_to_delivered: Percentiles::of(&latencies),
        rss_before_kib,
        rss_open_kib,
        kib_per_connection,
    })
}
