//! Kafka helpers: unique topic prefixes, an independent consumer that reads
//! topics from the beginning, the log as stored, a broker process of the
//! test's own.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use domain::Side;
use integration_tests::{free_port, TestApp, TestUser};
use kafka_mirror::{KafkaSettings, TopicSpec};
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::ClientConfig;
use serde_json::json;
use uuid::Uuid;

pub fn bootstrap() -> String {
    std::env::var("TEST_KAFKA_BOOTSTRAP_SERVERS").unwrap_or_else(|_| "127.0.0.1:9092".to_string())
}

/// A topic prefix no other test uses.
pub fn unique_prefix() -> String {
    format!("t{}.", &Uuid::new_v4().simple().to_string()[..12])
}

pub fn settings(bootstrap: &str, prefix: &str) -> KafkaSettings {
    let env: HashMap<&str, String> = HashMap::from([
        ("KAFKA_BOOTSTRAP_SERVERS", bootstrap.to_string()),
        ("KAFKA_TOPIC_PREFIX", prefix.to_string()),
    ]);
    KafkaSettings::from_lookup(&|name| env.get(name).cloned()).unwrap()
}

pub fn admin(settings: &KafkaSettings) -> Arc<AdminClient<DefaultClientContext>> {
    Arc::new(settings.client_config().create().expect("admin client"))
}

/// The names of the topics `app` mirrors to.
pub fn topic_names(app: &TestApp) -> Vec<String> {
    app.settings
        .kafka
        .layout
        .specs()
        .into_iter()
        .map(|spec| spec.name)
        .collect()
}

/// Deletes the topics of `specs`, ignoring topics that are not there.
pub async fn delete_topics(settings: &KafkaSettings, specs: &[TopicSpec]) {
    let admin = admin(settings);
    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    let _ = admin
        .delete_topics(
            &names,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await;
}

/// One message as an independent consumer read it.
#[derive(Debug, Clone)]
pub struct Consumed {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: String,
    pub headers: HashMap<String, String>,
    pub value: serde_json::Value,
    pub text: String,
}

/// Reads `topics` from the beginning with a new consumer group until
/// `done` holds for what was read, or `seconds` pass (then panics with what
/// it has).
pub fn consume_until(
    bootstrap: &str,
    topics: &[String],
    seconds: u64,
    done: impl Fn(&[Consumed]) -> bool,
) -> Vec<Consumed> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("test-{}", Uuid::new_v4().simple()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .expect("consumer");
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.subscribe(&names).expect("subscribe");
    let deadline = std::time::Instant::now() + Duration::from_secs(seconds);
    let mut consumed = Vec::new();
    while !done(&consumed) {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {seconds} s with {} messages read",
            consumed.len()
        );
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(error)) => eprintln!("consumer: {error}"),
            Some(Ok(message)) => {
                let headers = message
                    .headers()
                    .map(|headers| {
                        headers
                            .iter()
                            .map(|h| {
                                (
                                    h.key.to_string(),
                                    String::from_utf8_lossy(h.value.unwrap_or_default())
                                        .into_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let text =
                    String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned();
                consumed.push(Consumed {
                    topic: message.topic().to_string(),
                    partition: message.partition(),
                    offset: message.offset(),
                    key: String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned(),
                    headers,
                    value: serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
                    text,
                });
            }
        }
    }
    assert_cloudevents(&consumed);
    consumed
}

/// Every message in `consumed` parses as a CloudEvent in the Kafka
/// binding's binary mode with the CloudEvents SDK for Python (no project
/// code: `scripts/check_cloudevents.py`), and says what its envelope says.
pub fn assert_cloudevents(consumed: &[Consumed]) {
    use std::io::Write;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scripts/check_cloudevents.py"
    );
    let mut child = Command::new(integration_tests::python_tool("python"))
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the CloudEvents check (scripts/services.sh ensure_python_tools)");
    let mut lines = String::new();
    for message in consumed {
        let line = json!({
            "topic": message.topic,
            "key": message.key,
            "headers": message.headers,
            "value": message.text,
        });
        lines.push_str(&line.to_string());
        lines.push('\n');
    }
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || stdin.write_all(lines.as_bytes()));
    let output = child.wait_with_output().expect("the CloudEvents check");
    writer.join().expect("writer").expect("write the messages");
    assert!(
        output.status.success(),
        "messages that are not CloudEvents:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        format!("{} messages are CloudEvents", consumed.len())
    );
}

/// The facts of one stored event the mirror must reproduce.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LogRow {
    pub event_id: Uuid,
    pub event_type: String,
    pub event_version: String,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub global_position: i64,
    pub payload: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

pub async fn log_rows(app: &TestApp) -> Vec<LogRow> {
    sqlx::query_as(
        "SELECT event_id, event_type, event_version, aggregate_type, aggregate_id, sequence, \
         global_position, payload::jsonb AS payload, prev_hash, hash FROM events \
         ORDER BY global_position",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap()
}

/// Everything a user does, enough to touch every topic: register, log in,
/// complete onboarding, connect and test a key, run a bot that trades
/// (fills become `trade.executed` through the trade recorder), stop it.
pub async fn trading_day(app: &TestApp, user: &TestUser, fills: usize) {
    let onboarded = app
        .post(
            "/api/v1/user/onboarding",
            Some(&user.token),
            json!({ "risk_profile": "balanced", "experience": "beginner", "terms_version": "2026-01" }),
        )
        .await;
    assert!(onboarded.status.is_success(), "{}", onboarded.body);
    let bot_id = app.running_bot(user).await;
    for n in 0..fills {
        let side = if n % 3 == 2 { Side::Sell } else { Side::Buy };
        app.fill(
            bot_id,
            &format!("o-{}-{n}", bot_id.simple()),
            side,
            "0.5",
            &format!("{}", 100 + n),
            Utc::now(),
        )
        .await;
    }
    let stopped = app
        .post(
            &format!("/api/v1/bot/{bot_id}/stop"),
            Some(&user.token),
            json!({ "reason": "end of day" }),
        )
        .await;
    assert!(stopped.status.is_success(), "{}", stopped.body);
}

/// A `tansu` broker of the test's own, on its own port, storing in SQLite
/// so that what it acknowledged survives a restart.
pub struct OwnBroker {
    pub port: u16,
    database: PathBuf,
    child: Option<Child>,
}

impl OwnBroker {
    pub fn start() -> OwnBroker {
        let directory = std::env::temp_dir().join(format!("muckard-tansu-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&directory).unwrap();
        let mut broker = OwnBroker {
            port: free_port(),
            database: directory.join("tansu.db"),
            child: None,
        };
        broker.resume();
        broker
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts the process again on the same port and storage, and waits
    /// for it to accept connections.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "already running");
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let child = Command::new(tansu_binary())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                // tansu reads the SQLite path relative to its working
                // directory, even when it starts with a slash.
                "--storage-engine",
                "sqlite://tansu.db",
            ])
            .current_dir(self.database.parent().expect("the broker's directory"))
            .stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(std::env::temp_dir().join(format!("tansu-{}.log", self.port)))
                    .map(Stdio::from)
                    .unwrap_or_else(|_| Stdio::null()),
            )
            .spawn()
            .expect("start tansu (scripts/test installs it)");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "tansu did not listen on {} within 30 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// How many times this broker's storage has panicked so far (its
    /// stderr, kept in `tansu-<port>.log`). tansu 0.6's SQLite engine
    /// panics in its idempotent-producer check ("more or less than one
    /// row", `tansu-storage` lite.rs) when, after a SIGKILL and a restart,
    /// a producer id it handed out before is not in its table; the broker
    /// then still accepts connections but serves no produce request again.
    pub fn storage_panics(&self) -> usize {
        std::fs::read_to_string(std::env::temp_dir().join(format!("tansu-{}.log", self.port)))
            .map(|log| log.matches("panicked at").count())
            .unwrap_or(0)
    }

    /// Kills the broker (SIGKILL: nothing is flushed on the way out).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        self.kill();
        if let Some(directory) = self.database.parent() {
            let _ = std::fs::remove_dir_all(directory);
        }
    }
}

fn tansu_binary() -> PathBuf {
    if let Ok(path) = std::env::var("TANSU_BIN") {
        return PathBuf::from(path);
    }
    let home = std::env::var("HOME").unwrap_or_default();
    let installed = PathBuf::from(home).join(".cargo/bin/tansu");
    if installed.exists() {
        installed
    } else {
        PathBuf::from("tansu")
    }
}

/// Waits until every subscriber of the app has handled every event.
pub async fn caught_up(app: &TestApp) {
    app.eventually(60, "every subscriber to catch up", || async {
        let lags = event_log::lag::all(&app.pool).await.unwrap();
        !lags.is_empty() && lags.iter().all(|lag| lag.events_behind == 0)
    })
    .await;
}

/// Waits until the log has stopped growing (every subscriber of the app at
/// its head at once: the process managers, which append notifications and
/// portfolio records after the commands, included), then until the app's
/// Kafka mirror has published every event up to that head.
pub async fn mirror_reached_the_head(app: &TestApp) {
    caught_up(app).await;
    let head = event_log::LogReader::new().head(&app.pool).await.unwrap();
    assert!(
        event_log::lag::wait_until_reached(
            &app.pool,
            kafka_mirror::MIRROR_SUBSCRIBER,
            head,
            std::time::Duration::from_secs(60)
        )
        .await
        .unwrap(),
        "the mirror did not reach {head}"
    );
}
