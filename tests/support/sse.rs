//! A real server-sent-events client: `scripts/sse_client.py` (httpx and
//! httpx-sse, no project code) as a child process, its events read as they
//! arrive.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tokio::sync::mpsc;

use crate::python_tool;

/// One event as the client parsed it.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub id: String,
    pub event: String,
    pub data: Value,
    /// When the client had it.
    pub received_at: SystemTime,
}

/// A running client; killed when dropped.
pub struct SseClient {
    child: Child,
    lines: mpsc::UnboundedReceiver<Value>,
    /// The status and content type of the answer.
    pub opened: Value,
}

impl Drop for SseClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SseClient {
    /// Opens `url` with `token` (and `Last-Event-ID` when given) and waits,
    /// up to 10 s, for the answer's headers.
    pub async fn open(url: &str, token: &str, last_event_id: Option<&str>) -> SseClient {
        let mut command = Command::new(python_tool("python"));
        command
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../scripts/sse_client.py"
            ))
            .arg(url)
            .args(["--token", token, "--seconds", "120"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(id) = last_event_id {
            command.args(["--last-event-id", id]);
        }
        let mut child = command
            .spawn()
            .expect("start scripts/sse_client.py (ensure_python_tools)");
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, mut lines) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                match serde_json::from_str::<Value>(&line) {
                    Ok(value) => {
                        if sender.send(value).is_err() {
                            break;
                        }
                    }
                    Err(_) => eprintln!("sse_client: {line}"),
                }
            }
        });
        let opened = tokio::time::timeout(Duration::from_secs(10), lines.recv())
            .await
            .expect("the stream to answer within 10 s")
            .expect("the client to say how the server answered");
        SseClient {
            child,
            lines,
            opened,
        }
    }

    /// The next event, if one arrives within `within`.
    pub async fn next(&mut self, within: Duration) -> Option<SseEvent> {
        loop {
            let line = tokio::time::timeout(within, self.lines.recv())
                .await
                .ok()??;
            if line.get("closed").is_some() {
                return None;
            }
            let Some(id) = line["id"].as_str() else {
                continue;
            };
            let seconds = line["received_at"].as_f64().unwrap_or_default();
            return Some(SseEvent {
                id: id.to_string(),
                event: line["event"].as_str().unwrap_or_default().to_string(),
                data: serde_json::from_str(line["data"].as_str().unwrap_or("null"))
                    .unwrap_or(Value::Null),
                received_at: UNIX_EPOCH + Duration::from_secs_f64(seconds),
            });
        }
    }

    /// Whether the server ends the stream within `within` (events before
    /// that are skipped).
    pub async fn closed_within(&mut self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) if line.get("closed").is_some() => return true,
                Ok(Some(_)) => continue,
                // The client process ended: so did the stream.
                Ok(None) => return true,
                Err(_) => return false,
            }
        }
    }

    /// Every event until none arrives for `quiet`.
    pub async fn until_quiet(&mut self, quiet: Duration) -> Vec<SseEvent> {
        let mut events = Vec::new();
        while let Some(event) = self.next(quiet).await {
            events.push(event);
        }
        events
    }
}
