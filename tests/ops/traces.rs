//! Traces exported over OTLP to a real receiver (scripts/otlp_receiver.py,
//! the OpenTelemetry protobufs from PyPI): one REST command yields one
//! trace whose spans include the request, the command, the append, the
//! Kafka mirror's publish of its event and a projector's handling of it.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};

use integration_tests::{free_port, poll, python_tool, TestApp};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::process::{delete_topics, spawn_service};

struct Receiver(Child);

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spans_of(file: &std::path::Path, trace_id: &str) -> Vec<Value> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|span| span["trace_id"] == trace_id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_rest_command_is_one_exported_trace_from_the_request_to_kafka_and_the_projector() {
    // The database only: the process under test runs the projectors.
    let app = TestApp::spawn_with(&[("MUCKARD_ROLES", "api")]).await;
    let spans_file = std::env::temp_dir().join(format!("muckard-spans-{}.jsonl", Uuid::new_v4()));
    let receiver_port = free_port();
    let _receiver = Receiver(
        Command::new(python_tool("python"))
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../scripts/otlp_receiver.py"
            ))
            .arg(receiver_port.to_string())
            .arg(&spans_file)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the OTLP receiver (ensure_python_tools)"),
    );
    let prefix = format!("t{}.", &Uuid::new_v4().simple().to_string()[..12]);
    let port = free_port();
    let _service = spawn_service(
        &app,
        port,
        &[
            ("MUCKARD_ROLES", "api,projector,kafka-mirror".to_string()),
            ("KAFKA_TOPIC_PREFIX", prefix.clone()),
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("http://127.0.0.1:{receiver_port}"),
            ),
            ("OTEL_SERVICE_NAME", "muckard-test".to_string()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100".to_string()),
        ],
    );
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    poll(60, "the service answers", || {
        let client = client.clone();
        let url = format!("{base}/health");
        async move {
            client
                .get(&url)
                .send()
                .await
                .ok()
                .filter(|r| r.status() == 200)
        }
    })
    .await;

    // The caller's own trace: the service continues it.
    let trace_id = Uuid::new_v4().simple().to_string();
    let caller_span = &Uuid::new_v4().simple().to_string()[..16];
    let registered = client
        .post(format!("{base}/api/v1/auth/register"))
        .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
        .header("content-type", "application/json")
        .body(
            json!({
                "email": format!("t-{}@example.com", Uuid::new_v4().simple()),
                "password": integration_tests::PASSWORD,
                "display_name": "Traced",
            })
            .to_string(),
        )
        .send()
        .await
        .expect("register");
    assert_eq!(registered.status(), 201, "{:?}", registered.text().await);

    let wanted = [
        "POST /api/v1/auth/register",
        "execute",
        "append",
        "kafka_mirror user.created",
        "users user.created",
    ];
    let spans = poll(60, "the trace's spans reach the receiver", || {
        let file = spans_file.clone();
        let trace_id = trace_id.clone();
        async move {
            let spans = spans_of(&file, &trace_id);
            let names: Vec<&str> = spans.iter().filter_map(|s| s["name"].as_str()).collect();
            wanted
                .iter()
                .all(|name| names.contains(name))
                .then_some(spans)
        }
    })
    .await;
    let by_name: BTreeMap<&str, &Value> = spans
        .iter()
        .map(|span| (span["name"].as_str().unwrap(), span))
        .collect();
    let id = |name: &str| by_name[name]["span_id"].as_str().unwrap().to_string();
    let parent = |name: &str| {
        by_name[name]["parent_span_id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    // The request continues the caller's span; the command runs in the
    // request, the append in the command; the mirror's publish and the
    // projector's handling are children of the request whose event they
    // handle (its span is what the event's metadata names).
    assert_eq!(parent("POST /api/v1/auth/register"), caller_span);
    assert_eq!(parent("execute"), id("POST /api/v1/auth/register"));
    assert_eq!(parent("append"), id("execute"));
    assert_eq!(
        parent("kafka_mirror user.created"),
        id("POST /api/v1/auth/register")
    );
    assert_eq!(
        parent("users user.created"),
        id("POST /api/v1/auth/register")
    );
    assert!(spans.iter().all(|span| span["service"] == "muckard-test"));
    let _ = std::fs::remove_file(&spans_file);
    delete_topics(&prefix).await;
}
