//! The server under test: the release `muckard` binary, spawned on its own
//! database, port, Kafka topic prefix and RabbitMQ queue prefix, and
//! stopped (SIGTERM, then kill) at the end.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use std::process::{Child, Command};
use tokio::time::Instant;

/// What the spawned server is told, beyond the defaults of `.env.example`.
pub struct ServerPlan<'a> {
    pub binary: &'a Path,
    pub database_url: &'a str,
    pub roles: &'a str,
    pub pool: u32,
    pub run_id: &'a str,
    pub bootstrap_servers: &'a str,
    pub rabbitmq_url: &'a str,
    /// Extra `NAME=VALUE` settings (`--server-env`).
    pub extra_env: &'a [String],
}

pub struct Server {
    child: Child,
    pub base_url: String,
    pub pid: u32,
    pub log: PathBuf,
}

impl Server {
    /// The directory of a run's key file and server logs; the keys stay
    /// for the whole run, so a restarted server accepts the same tokens
    /// ([`forget_keys`] deletes them).
    pub fn run_dir(run_id: &str) -> PathBuf {
        std::env::temp_dir().join(format!("muckard-bench-{run_id}"))
    }

    pub async fn spawn(plan: &ServerPlan<'_>) -> Result<Server> {
        ensure!(
            plan.binary.is_file(),
            "no muckard binary at {} (scripts/bench builds it; or pass --muckard-bin)",
            plan.binary.display()
        );
        let port = free_port()?;
        let key_dir = Self::run_dir(plan.run_id);
        std::fs::create_dir_all(&key_dir)
            .with_context(|| format!("creating {}", key_dir.display()))?;
        // One log per server of the run (a run may restart it).
        let log = (1..)
            .map(|n| key_dir.join(format!("server-{n}.log")))
            .find(|path| !path.exists())
            .context("naming the server's log")?;
        let log_file =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut command = Command::new(plan.binary);
        command
            .arg("serve")
            .arg("--roles")
            .arg(plan.roles)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", std::env::var("HOME").unwrap_or_default())
            .env("MUCKARD_ENV", "development")
            .env("DATABASE_URL", plan.database_url)
            .env("DATABASE_MAX_CONNECTIONS", plan.pool.to_string())
            .env("HTTP_ADDR", format!("127.0.0.1:{port}"))
            .env("MUCKARD_KEY_FILE", key_dir.join("keys.json"))
            // A run lasts longer than the default 15-minute token.
            .env("ACCESS_TOKEN_TTL_SECS", "14400")
            // Measure the service, not the lead's rate limiter.
            .env("RATE_LIMIT_PER_SECOND", "0")
            // Nor the quotas: the throughput phase triggers each bot a
            // few times a second and configures a bot every tenth
            // command, and the set-up registers four users at once.
            .env("BOT_TRIGGERS_PER_MINUTE", "256")
            .env("BOT_MAX_PENDING_TRIGGERS", "256")
            .env("BOT_MAX_PER_USER", "10000")
            .env("PASSWORD_HASH_CONCURRENCY", "4")
            .env("PASSWORD_HASH_WAIT_MS", "30000")
            .env("KAFKA_BOOTSTRAP_SERVERS", plan.bootstrap_servers)
            .env("KAFKA_TOPIC_PREFIX", format!("{}.", plan.run_id))
            .env("RABBITMQ_URL", plan.rabbitmq_url)
            .env("RABBITMQ_QUEUE_PREFIX", format!("{}.", plan.run_id))
            .env("MUCKARD_INSTANCE", format!("bench-{}", plan.run_id))
            .env("EXCHANGE", "paper")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file);
        for setting in plan.extra_env {
            let (name, value) = setting
                .split_once('=')
                .with_context(|| format!("--server-env {setting:?} is not NAME=VALUE"))?;
            command.env(name, value);
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", plan.binary.display()))?;
        let pid = child.id();
        let mut server = Server {
            child,
            base_url: format!("http://127.0.0.1:{port}"),
            pid,
            log,
        };
        server.wait_healthy(Duration::from_secs(60)).await?;
        Ok(server)
    }

    async fn wait_healthy(&mut self, within: Duration) -> Result<()> {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + within;
        let url = format!("{}/health", self.base_url);
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "the server exited with {status} before answering; its log: {}",
                    self.log.display()
                );
            }
            if let Ok(response) = client.get(&url).send().await {
                if response.status().is_success() {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                bail!(
                    "the server did not answer /health within {within:?}; its log: {}",
                    self.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM (graceful: drain, then exit), then a kill after 15 s.
    pub async fn stop(mut self) {
        signal(self.pid, "-TERM");
        let deadline = Instant::now() + Duration::from_secs(15);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Drop kills it if it is still running.
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Deletes the run's JWT and encryption keys (the logs stay).
pub fn forget_keys(run_id: &str) {
    let _ = std::fs::remove_file(Server::run_dir(run_id).join("keys.json"));
}

fn signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(signal)
        .arg(pid.to_string())
        .status();
}

/// A port nothing listens on now (the OS picks it).
fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// Records the server's CPU profile with `perf record -g` until stopped.
pub struct Profiler {
    child: Child,
    pub output: PathBuf,
}

impl Profiler {
    pub fn start(pid: u32, output: PathBuf) -> Result<Profiler> {
        let child = Command::new("perf")
            .args(["record", "-F", "499", "-g", "-p"])
            .arg(pid.to_string())
            .arg("-o")
            .arg(&output)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting perf record (apt-get install linux-perf)")?;
        Ok(Profiler { child, output })
    }

    /// SIGINT makes perf write its file and exit.
    pub async fn stop(mut self) -> Result<PathBuf> {
        signal(self.child.id(), "-INT");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if self.child.try_wait()?.is_some() {
                return Ok(self.output.clone());
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                bail!("perf did not finish writing within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
