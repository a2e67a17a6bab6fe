//! The `muckard` binary as an operator runs it.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use integration_tests::rabbit::RabbitTest;
use integration_tests::{free_port, muckard_binary, poll, TestApp};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use uuid::Uuid;

/// A child process killed when the test ends, however it ends.
pub(crate) struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn spawn_service(app: &TestApp, http_port: u16, env: &[(&str, String)]) -> Service {
    let mut command = Command::new(muckard_binary());
    command
        .arg("serve")
        .envs(app.process_env())
        .env("HTTP_ADDR", format!("127.0.0.1:{http_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for (name, value) in env {
        command.env(name, value);
    }
    Service(command.spawn().expect("start muckard"))
}

/// Forwards connections on `port` to `target` once opened: a broker that
/// is "down" (nothing listens, connections are refused) until then.
async fn open_forwarder(port: u16, target: &'static str) -> tokio::task::JoinHandle<()> {
    let listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind the forwarder");
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    })
}

pub(crate) async fn get_json(client: &reqwest::Client, url: &str) -> Option<(u16, Value)> {
    let response = client.get(url).send().await.ok()?;
    let status = response.status().as_u16();
    let body = response.bytes().await.ok()?;
    Some((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_binary_starts_with_kafka_and_rabbitmq_down_and_turns_ready_when_they_return() {
    let app = TestApp::spawn().await;
    let rabbit = RabbitTest::new().await;
    let (kafka_port, rabbit_port, http_port) = (free_port(), free_port(), free_port());
    let topic_prefix = format!("ops{}.", &Uuid::new_v4().simple().to_string()[..10]);
    // Found (or built) before the clock starts: start-up is the process's.
    muckard_binary();
    let started = Instant::now();
    let _service = spawn_service(
        &app,
        http_port,
        &[
            ("MUCKARD_ROLES", "all".to_string()),
            ("KAFKA_BOOTSTRAP_SERVERS", format!("127.0.0.1:{kafka_port}")),
            ("KAFKA_TOPIC_PREFIX", topic_prefix.clone()),
            (
                "RABBITMQ_URL",
                format!("amqp://guest:guest@127.0.0.1:{rabbit_port}/%2f"),
            ),
            ("RABBITMQ_QUEUE_PREFIX", rabbit.prefix.clone()),
            ("READY_CHECK_TIMEOUT_MS", "1000".to_string()),
        ],
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let base = format!("http://127.0.0.1:{http_port}");
    poll(30, "/health to answer 200", || async {
        get_json(&client, &format!("{base}/health"))
            .await
            .filter(|(status, _)| *status == 200)
    })
    .await;
    let up_after = started.elapsed();
    assert!(up_after < Duration::from_secs(30), "{up_after:?}");
    let (status, ready) = get_json(&client, &format!("{base}/ready"))
        .await
        .expect("/ready answers");
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["status"], "not_ready");
    assert_eq!(ready["dependencies"]["postgres"]["status"], "up", "{ready}");
    assert_eq!(ready["dependencies"]["kafka"]["status"], "down", "{ready}");
    assert_eq!(
        ready["dependencies"]["rabbitmq"]["status"], "down",
        "{ready}"
    );
    // The API serves commands meanwhile; their events wait in the log.
    let registered = client
        .post(format!("{base}/api/v1/auth/register"))
        .header("content-type", "application/json")
        .body(
            json!({
                "email": format!("ops-{}@example.com", Uuid::new_v4().simple()),
                "password": "correct horse battery"
            })
            .to_string(),
        )
        .send()
        .await
        .expect("register");
    assert_eq!(registered.status().as_u16(), 201);
    // The brokers come back; no restart.
    let _kafka = open_forwarder(kafka_port, "127.0.0.1:9092").await;
    let _rabbitmq = open_forwarder(rabbit_port, "127.0.0.1:5672").await;
    let ready = poll(90, "/ready to turn 200", || async {
        get_json(&client, &format!("{base}/ready"))
            .await
            .filter(|(status, _)| *status == 200)
            .map(|(_, body)| body)
    })
    .await;
    for dependency in ["postgres", "kafka", "rabbitmq"] {
        assert_eq!(ready["dependencies"][dependency]["status"], "up", "{ready}");
    }
    // The event committed while Kafka was down reaches it.
    app.eventually(
        60,
        "the Kafka mirror to publish the waiting event",
        || async { app.events_handled(kafka_mirror::MIRROR_SUBSCRIBER).await >= 1 },
    )
    .await;
    delete_topics(&topic_prefix).await;
}

pub(crate) async fn delete_topics(prefix: &str) {
    use rdkafka::admin::{AdminClient, AdminOptions};
    use rdkafka::client::DefaultClientContext;
    let env = [
        ("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092".to_string()),
        ("KAFKA_TOPIC_PREFIX", prefix.to_string()),
    ];
    let settings = kafka_mirror::KafkaSettings::from_lookup(&|name: &str| {
        env.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone())
    })
    .expect("kafka settings");
    let names: Vec<String> = settings
        .layout
        .specs()
        .into_iter()
        .map(|s| s.name)
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    if let Ok(admin) = settings
        .client_config()
        .create::<AdminClient<DefaultClientContext>>()
    {
        let _ = admin
            .delete_topics(
                &names,
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
            )
            .await;
    }
}

/// What the load saw: every bot a 2xx answer named, and any 5xx.
#[derive(Default)]
struct LoadRecord {
    accepted: Vec<Uuid>,
    server_errors: Vec<String>,
    refused_connections: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_during_a_steady_command_load_loses_no_acknowledged_command_and_exits_in_bound() {
    let app = TestApp::spawn().await;
    // Users with tested keys, made through the in-process API on the same
    // database the binary serves.
    let mut clients = Vec::new();
    for _ in 0..4 {
        let user = app.user().await;
        let key_id = app.tested_key(&user).await;
        clients.push((user.token.clone(), key_id));
    }
    let http_port = free_port();
    let grace_secs = 5u64;
    let mut service = spawn_service(
        &app,
        http_port,
        &[
            ("MUCKARD_ROLES", "api,projector".to_string()),
            ("SHUTDOWN_GRACE_SECS", grace_secs.to_string()),
            ("RATE_LIMIT_PER_SECOND", "0".to_string()),
        ],
    );
    let base = format!("http://127.0.0.1:{http_port}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    poll(30, "/health", || async {
        get_json(&client, &format!("{base}/health"))
            .await
            .filter(|(status, _)| *status == 200)
    })
    .await;
    let record = Arc::new(Mutex::new(LoadRecord::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    // Eight clients, each with one request in flight at a time.
    for worker in 0..8 {
        let (token, key_id) = clients[worker % clients.len()].clone();
        let (client, base, record, stop) =
            (client.clone(), base.clone(), record.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let sent = client
                    .post(format!("{base}/api/v1/bot"))
                    .bearer_auth(&token)
                    .header("content-type", "application/json")
                    .body(
                        json!({
                            "key_id": key_id,
                            "pair": "XBT/USD",
                            "strategy": {
                                "kind": "dca", "quote_amount": "10.00", "interval_secs": 3600
                            }
                        })
                        .to_string(),
                    )
                    .send()
                    .await;
                match sent {
                    Ok(response) => {
                        let status = response.status();
                        let body: Value =
                            serde_json::from_slice(&response.bytes().await.unwrap_or_default())
                                .unwrap_or(Value::Null);
                        let mut record = record.lock().unwrap();
                        if status.is_success() {
                            let bot_id = body["bot_id"].as_str().and_then(|id| id.parse().ok());
                            record.accepted.push(bot_id.expect("a 2xx names its bot"));
                        } else if status.is_server_error() {
                            record.server_errors.push(format!("{status} {body}"));
                        }
                    }
                    // After SIGTERM the listener closes: refused, as expected.
                    Err(_) => {
                        record.lock().unwrap().refused_connections += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        }));
    }
    poll(60, "a steady load of accepted commands", || async {
        (record.lock().unwrap().accepted.len() >= 50).then_some(())
    })
    .await;
    let accepted_before = record.lock().unwrap().accepted.len();
    let signalled = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &service.0.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    let bound = Duration::from_secs(2 * grace_secs + 5);
    let exit = poll(bound.as_secs() + 5, "the process to exit", || {
        let exited = service.0.try_wait().expect("try_wait");
        async move { exited }
    })
    .await;
    let took = signalled.elapsed();
    stop.store(true, Ordering::Relaxed);
    for worker in load {
        worker.await.unwrap();
    }
    assert!(exit.success(), "exit status {exit:?}");
    assert!(
        took <= bound,
        "exited {took:?} after SIGTERM; bound {bound:?}"
    );
    let record = std::mem::take(&mut *record.lock().unwrap());
    assert!(
        record.server_errors.is_empty(),
        "5xx during shutdown: {:?}",
        record.server_errors
    );
    assert!(record.accepted.len() >= accepted_before);
    // Every command that got a 2xx is in the log.
    let stored: Vec<(String,)> = sqlx::query_as(
        "SELECT aggregate_id FROM events WHERE aggregate_type = 'Bot' AND event_type = 'bot.configured'",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let stored: std::collections::HashSet<String> = stored.into_iter().map(|(id,)| id).collect();
    let missing: Vec<&Uuid> = record
        .accepted
        .iter()
        .filter(|id| !stored.contains(&id.to_string()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged commands missing from the log: {missing:?}",
        missing.len(),
        record.accepted.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_started_together_migrate_one_fresh_database_once_and_log_json() {
    let app = TestApp::spawn().await;
    // A database nobody has created yet: the instances race to create and
    // migrate it, which the advisory lock and the duplicate check settle.
    let fresh = format!("muckard_test_{}", Uuid::new_v4().simple());
    let (prefix, _) = app.database_url.rsplit_once('/').expect("a database URL");
    let fresh_url = format!("{prefix}/{fresh}");
    let ports = [free_port(), free_port(), free_port()];
    let mut services = Vec::new();
    for port in ports {
        let mut command = Command::new(muckard_binary());
        command
            .args(["serve", "--roles", "api,projector"])
            .envs(app.process_env())
            .env("DATABASE_URL", &fresh_url)
            .env("HTTP_ADDR", format!("127.0.0.1:{port}"))
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        services.push(Service(command.spawn().expect("start muckard")));
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    for port in ports {
        poll(60, "every instance's /ready", || async {
            get_json(&client, &format!("http://127.0.0.1:{port}/ready"))
                .await
                .filter(|(status, _)| *status == 200)
        })
        .await;
    }
    let fresh_pool = sqlx::PgPool::connect(&fresh_url).await.expect("connect");
    let migrations: Vec<(i64, bool)> =
        sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&fresh_pool)
            .await
            .expect("the migrations table");
    assert_eq!(
        migrations.len(),
        command_side::database::MIGRATOR.iter().count(),
        "each migration applied once"
    );
    assert!(migrations.iter().all(|(_, success)| *success));
    // A request with an id of ours shows up in the JSON access log.
    let request_id = format!("json-log-{}", Uuid::new_v4().simple());
    let answered = client
        .get(format!("http://127.0.0.1:{}/health", ports[0]))
        .header("x-request-id", &request_id)
        .send()
        .await
        .expect("health");
    assert_eq!(answered.status().as_u16(), 200);
    assert_eq!(
        answered.headers()["x-request-id"].to_str().unwrap(),
        request_id
    );
    // Stop the first instance so its log ends, then read all of it.
    let mut first = services.remove(0);
    let status = Command::new("kill")
        .args(["-TERM", &first.0.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    let stdout = first.0.stdout.take().expect("piped stdout");
    let lines: Vec<String> = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect()
    })
    .await
    .unwrap();
    assert!(!lines.is_empty(), "no log lines");
    let records: Vec<Value> = lines
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    let access = records
        .iter()
        .find(|record| {
            record["target"] == "muckard::access"
                && record["span"]["request_id"] == json!(request_id)
        })
        .unwrap_or_else(|| panic!("no access log line for {request_id}: {lines:#?}"));
    assert_eq!(access["status"], 200, "{access}");
    assert_eq!(access["span"]["route"], "/health", "{access}");
    assert_eq!(access["span"]["trace_id"].as_str().map(str::len), Some(32));
    assert!(access["level"] == "INFO", "{access}");
    drop(services);
    fresh_pool.close().await;
    let admin = sqlx::PgPool::connect(&format!("{prefix}/postgres"))
        .await
        .expect("connect to postgres");
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{fresh}\" WITH (FORCE)"))
        .execute(&admin)
        .await;
}
