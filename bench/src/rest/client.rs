//! The REST calls the benchmark makes, over plain HTTP/1.1 keep-alive
//! connections to the spawned server, and the fleet of users and running
//! bots it makes before anything is timed.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use event_log::Position;
use futures::stream::{self, StreamExt, TryStreamExt};
use serde_json::{json, Value};
use tokio::time::Instant;
use uuid::Uuid;

pub const PASSWORD: &str = "correct horse battery";
/// Standard base64 of 64 bytes, as the paper exchange wants a secret.
const SECRET: &str =
    "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg==";

#[derive(Clone)]
pub struct Api {
    client: reqwest::Client,
    /// The first (or only) server's base URL.
    pub base_url: String,
    /// Every API server's, each request sent to the next in turn.
    base_urls: Arc<[String]>,
    next: Arc<std::sync::atomic::AtomicUsize>,
}

/// An answer: the status and the JSON body (`Null` when there is none).
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    pub fn text(&self, field: &str) -> Result<String> {
        self.body[field]
            .as_str()
            .map(str::to_string)
            .with_context(|| format!("no {field} in {}", self.body))
    }

    /// The position token of a command's answer.
    pub fn position(&self) -> Result<Position> {
        self.text("position")?
            .parse()
            .map_err(|reason: String| anyhow::anyhow!("{reason}"))
    }
}

impl Api {
    /// A client of several instances of the same service: each request
    /// goes to the next (tokens are valid at every one).
    pub fn balanced(base_urls: &[String]) -> Result<Api> {
        let first = base_urls.first().context("no API server")?.clone();
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1024)
            .timeout(Duration::from_secs(30))
            .build()
            .context("building the HTTP client")?;
        Ok(Api {
            client,
            base_url: first,
            base_urls: base_urls.into(),
            next: Arc::default(),
        })
    }

    /// The base URL of the next request.
    fn base(&self) -> &str {
        let turn = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        &self.base_urls[turn % self.base_urls.len()]
    }

    pub async fn post(
        &self,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<Answer> {
        let mut request = self.client.post(format!("{}{path}", self.base()));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        answer(
            request
                .send()
                .await
                .with_context(|| format!("POST {path}"))?,
        )
        .await
    }

    pub async fn get(&self, path: &str, token: &str) -> Result<Answer> {
        let request = self
            .client
            .get(format!("{}{path}", self.base()))
            .bearer_auth(token);
        answer(
            request
                .send()
                .await
                .with_context(|| format!("GET {path}"))?,
        )
        .await
    }

    /// `POST /api/v1/bot/{id}/trigger-trade`.
    pub async fn trigger(&self, token: &str, bot_id: Uuid) -> Result<Answer> {
        self.post(
            &format!("/api/v1/bot/{bot_id}/trigger-trade"),
            Some(token),
            None,
        )
        .await
    }

    /// `POST /api/v1/bot` with a DCA strategy that buys 1 USD a day, so
    /// the runner's own schedule adds next to nothing.
    pub async fn configure(&self, token: &str, key_id: Uuid) -> Result<Answer> {
        self.post(
            "/api/v1/bot",
            Some(token),
            Some(json!({
                "key_id": key_id,
                "pair": "XBT/USD",
                "strategy": { "kind": "dca", "quote_amount": "1.00", "interval_secs": 86400 }
            })),
        )
        .await
    }
}

async fn answer(response: reqwest::Response) -> Result<Answer> {
    let status = response.status().as_u16();
    let bytes = response.bytes().await.context("reading a response body")?;
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    Ok(Answer { status, body })
}

fn expect(answer: Answer, what: &str) -> Result<Answer> {
    if !answer.ok() {
        bail!("{what}: {} {}", answer.status, answer.body);
    }
    Ok(answer)
}

/// A registered, logged-in user with one connected, tested key.
#[derive(Debug, Clone)]
pub struct User {
    pub token: Arc<str>,
    pub key_id: Uuid,
}

/// A running bot and the token of its owner.
#[derive(Debug, Clone)]
pub struct Bot {
    pub id: Uuid,
    pub owner: usize,
    pub token: Arc<str>,
}

/// How long registering and logging in took (argon2id: slow by design,
/// so it is timed apart from the commands).
#[derive(Debug, Clone, serde::Serialize)]
pub struct SessionTimings {
    pub users: usize,
    pub register_seconds: f64,
    pub registers_per_second: f64,
    pub login_seconds: f64,
    pub logins_per_second: f64,
}

/// Registers `count` users (`concurrency` at a time), logs them in and
/// connects and tests one key each.
pub async fn make_users(
    api: &Api,
    run_id: &str,
    count: usize,
    concurrency: usize,
) -> Result<(Vec<User>, SessionTimings)> {
    let emails: Vec<String> = (0..count)
        .map(|i| format!("bench-{run_id}-{i}@example.com"))
        .collect();
    let started = Instant::now();
    stream::iter(emails.iter().cloned())
        .map(|email| async move {
            let body = json!({ "email": email, "password": PASSWORD });
            expect(
                api.post("/api/v1/auth/register", None, Some(body)).await?,
                "register",
            )
        })
        .buffer_unordered(concurrency)
        .try_collect::<Vec<_>>()
        .await?;
    let register_seconds = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let tokens: Vec<(String, String)> = stream::iter(emails.iter().cloned())
        .map(|email| async move {
            let body = json!({ "email": email, "password": PASSWORD });
            let login = expect(
                api.post("/api/v1/auth/login", None, Some(body)).await?,
                "login",
            )?;
            Ok::<_, anyhow::Error>((email, login.text("access_token")?))
        })
        .buffered(concurrency)
        .try_collect()
        .await?;
    let login_seconds = started.elapsed().as_secs_f64();
    let users = stream::iter(tokens)
        .map(|(email, token)| async move {
            let body = json!({ "api_key": format!("paper-{email}"), "api_secret": SECRET, "label": "bench" });
            let connected = expect(
                api.post("/api/v1/kraken/connect", Some(&token), Some(body)).await?,
                "connect a key",
            )?;
            let key_id: Uuid = connected.text("key_id")?.parse()?;
            let tested = expect(
                api.post(&format!("/api/v1/kraken/keys/{key_id}/test"), Some(&token), None)
                    .await?,
                "test a key",
            )?;
            if tested.body["status"] != "tested" {
                bail!("the key test failed: {}", tested.body);
            }
            Ok(User {
                token: token.into(),
                key_id,
            })
        })
        .buffered(8)
        .try_collect()
        .await?;
    let timings = SessionTimings {
        users: count,
        register_seconds,
        registers_per_second: count as f64 / register_seconds.max(1e-9),
        login_seconds,
        logins_per_second: count as f64 / login_seconds.max(1e-9),
    };
    Ok((users, timings))
}

/// Configures and starts `per_user` bots for every user, then waits until
/// the bot runner has started them all (their `bot_status` says running).
pub async fn make_running_bots(api: &Api, users: &[User], per_user: usize) -> Result<Vec<Bot>> {
    let plan: Vec<(usize, &User)> = users
        .iter()
        .enumerate()
        .flat_map(|(owner, user)| std::iter::repeat_n((owner, user), per_user))
        .collect();
    let bots: Vec<Bot> = stream::iter(plan)
        .map(|(owner, user)| async move { start_bot(api, owner, user).await })
        .buffered(8)
        .try_collect()
        .await?;
    wait_running(api, &bots, Duration::from_secs(120)).await?;
    Ok(bots)
}

/// One new bot of `user`, configured and asked to start.
pub async fn start_bot(api: &Api, owner: usize, user: &User) -> Result<Bot> {
    let configured = expect(
        api.configure(&user.token, user.key_id).await?,
        "configure a bot",
    )?;
    let id: Uuid = configured.text("bot_id")?.parse()?;
    expect(
        api.post(&format!("/api/v1/bot/{id}/start"), Some(&user.token), None)
            .await?,
        "start a bot",
    )?;
    Ok(Bot {
        id,
        owner,
        token: user.token.clone(),
    })
}

/// Polls each bot's status until the runner has marked it running.
pub async fn wait_running(api: &Api, bots: &[Bot], within: Duration) -> Result<()> {
    let deadline = Instant::now() + within;
    for bot in bots {
        loop {
            let status = api
                .get(&format!("/api/v1/bot/{}/status", bot.id), &bot.token)
                .await?;
            if status.ok() && status.body["state"] == "running" {
                break;
            }
            if Instant::now() >= deadline {
                bail!(
                    "bot {} is not running after {within:?} (is RabbitMQ up, and the runner role on?): {} {}",
                    bot.id,
                    status.status,
                    status.body
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}
