//! The document against the service, by schemathesis (PyPI, pinned in
//! scripts/python-requirements.txt): a real `muckard serve` process on a
//! database of its own, every documented operation called with data the
//! document allows and data it forbids, `--checks all`. The service must
//! accept what the document allows (or answer as a random-but-valid value
//! deserves: a 404 for an id nobody holds), refuse what it forbids, and
//! answer in the documented statuses, media types, headers and bodies.
//!
//! The run is fixed (seed, examples per operation, one worker, no
//! shrinking) so a failure repeats. `schemathesis.toml` at the workspace's
//! root holds the few answers schemathesis cannot know are right, each
//! with its reason.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use integration_tests::{free_port, muckard_binary, poll, TestApp, GOOD_SECRET, PASSWORD};
use serde_json::{json, Value};
use uuid::Uuid;

/// Where `ensure_python_tools` (scripts/services.sh) installs the tools.
fn schemathesis() -> PathBuf {
    integration_tests::python_tool("schemathesis")
}

/// The run's fixed shape: same seed, same number of examples, same order.
const SEED: &str = "20261201";
const MAX_EXAMPLES: &str = "25";

/// A child process killed when the test ends, however it ends.
struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn send(request: reqwest::RequestBuilder, what: &str) -> (u16, Value) {
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let status = response.status().as_u16();
    let body = response.bytes().await.expect("a body");
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_difference_between_the_document_and_the_service() {
    let tool = schemathesis();
    assert!(
        tool.exists(),
        "{} is missing: run ./scripts/test, or \
         `source scripts/services.sh && ensure_python_tools`",
        tool.display()
    );
    // The database (made and dropped by the TestApp); the process serves
    // it. The in-process app runs no projector, so the process's are the
    // only ones.
    let app = TestApp::spawn_with(&[("MUCKARD_ROLES", "api")]).await;
    let port = free_port();
    muckard_binary();
    let started = Instant::now();
    let _service = Service(
        Command::new(muckard_binary())
            .arg("serve")
            .envs(app.process_env())
            .env("MUCKARD_ROLES", "api,projector")
            .env("HTTP_ADDR", format!("127.0.0.1:{port}"))
            // Schemathesis is one client sending as fast as it can; the
            // per-client limit would answer 429s instead of the operations.
            .env("RATE_LIMIT_PER_SECOND", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start muckard"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    poll(60, "/health to answer 200", || async {
        client
            .get(format!("{base}/health"))
            .send()
            .await
            .ok()
            .filter(|r| r.status().as_u16() == 200)
    })
    .await;

    // A user with a tested key and a bot, made through the API.
    let email = format!("schemathesis-{}@example.com", Uuid::new_v4().simple());
    let credentials = json!({ "email": email, "password": PASSWORD });
    let (status, body) = send(
        client
            .post(format!("{base}/api/v1/auth/register"))
            .header("content-type", "application/json")
            .body(credentials.to_string()),
        "register",
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = send(
        client
            .post(format!("{base}/api/v1/auth/login"))
            .header("content-type", "application/json")
            .body(credentials.to_string()),
        "log in",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().expect("a token").to_string();
    let key = json!({ "api_key": "paper-key-trading", "api_secret": GOOD_SECRET, "label": "main" });
    let (status, body) = send(
        client
            .post(format!("{base}/api/v1/kraken/connect"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(key.to_string()),
        "connect a key",
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let key_id = body["key_id"].as_str().expect("a key id").to_string();
    let (status, body) = send(
        client
            .post(format!("{base}/api/v1/kraken/keys/{key_id}/test"))
            .bearer_auth(&token),
        "test the key",
    )
    .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("tested")),
        "{body}"
    );
    let bot = json!({
        "key_id": key_id,
        "pair": "XBT/USD",
        "strategy": { "kind": "dca", "quote_amount": "25.00", "interval_secs": 60 }
    });
    let (status, body) = send(
        client
            .post(format!("{base}/api/v1/bot"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(bot.to_string()),
        "configure a bot",
    )
    .await;
    assert_eq!(status, 201, "{body}");

    // Schemathesis writes caches and reports into its working directory:
    // a directory of the run's own, removed afterwards.
    let workdir = std::env::temp_dir().join(format!("muckard-schemathesis-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&workdir).expect("a working directory");
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemathesis.toml");
    let ran = Instant::now();
    let hooks = Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi/schemathesis_hooks.py");
    let output = Command::new(&tool)
        .current_dir(&workdir)
        .env("SCHEMATHESIS_HOOKS", &hooks)
        .env("MUCKARD_SCHEMATHESIS_TOKEN", &token)
        .arg("--config-file")
        .arg(&config)
        .args(["run", &format!("{base}/openapi.json")])
        .args(["--checks", "all"])
        .args(["--seed", SEED, "--max-examples", MAX_EXAMPLES])
        .args(["--workers", "1", "--no-shrink"])
        .args(["--generation-database", "none"])
        .args(["--request-timeout", "10"])
        .args(["--no-color", "--output-sanitize", "false"])
        .output()
        .expect("run schemathesis");
    let _ = std::fs::remove_dir_all(&workdir);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!(
        "schemathesis ran {:.1} s ({:.1} s with the service's start)",
        ran.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        output.status.success(),
        "schemathesis found differences ({}):\n{stdout}\n{stderr}",
        output.status
    );
}
