//! Least privilege at run time: `muckard migrate` as the owner grants
//! `muckard_app` to the service's login role, `muckard serve` works end to
//! end as that role alone, and the role can neither turn off the log's
//! triggers nor change or remove a row of it; `serve` refuses in
//! production as the owner; the read-only `muckard_auditor` is enough for
//! `muckard-replay verify`.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use integration_tests::rabbit::RabbitTest;
use integration_tests::{free_port, muckard_binary, poll, workspace_binary, TestApp, GOOD_SECRET};
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

/// A child process killed when the test ends, however it ends.
struct Service(std::process::Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn muckard(app: &TestApp, arguments: &[&str], env: &[(&str, String)]) -> Command {
    let mut command = Command::new(muckard_binary());
    command.args(arguments).envs(app.process_env());
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

async fn run(mut command: Command) -> Output {
    tokio::task::spawn_blocking(move || command.stdin(Stdio::null()).output().expect("run"))
        .await
        .expect("join")
}

fn describe(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

struct Http {
    client: reqwest::Client,
    base: String,
}

impl Http {
    async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        self.send(self.client.get(format!("{}{path}", self.base)), token)
            .await
    }

    /// A POST with `body`, or with none.
    async fn post(&self, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
        let request = self.client.post(format!("{}{path}", self.base));
        let request = match body {
            Some(body) => request
                .header("content-type", "application/json")
                .body(body.to_string()),
            None => request,
        };
        self.send(request, token).await
    }

    async fn send(
        &self,
        mut request: reqwest::RequestBuilder,
        token: Option<&str>,
    ) -> (u16, Value) {
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        // Not listening (yet) reads as status 0, which no assertion takes.
        let Ok(response) = request.send().await else {
            return (0, Value::Null);
        };
        let status = response.status().as_u16();
        let bytes = response.bytes().await.unwrap_or_default();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, body)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn serve_runs_end_to_end_as_a_role_holding_only_muckard_app() {
    // The in-process app serves no role's workers: the process under test
    // does all the work.
    let app = TestApp::spawn_with(&[("MUCKARD_ROLES", "api")]).await;
    let rabbit = RabbitTest::new().await;
    let service_role = app.login_role(None).await;

    // The owner migrates and grants muckard_app to the service's login.
    let migrated = run(muckard(
        &app,
        &["migrate"],
        &[
            ("MIGRATION_DATABASE_URL", app.database_url.clone()),
            ("DATABASE_URL", service_role.url.clone()),
            ("MUCKARD_APP_LOGINS", service_role.name.clone()),
        ],
    ))
    .await;
    assert!(migrated.status.success(), "{}", describe(&migrated));

    let port = free_port();
    let topic_prefix = format!("lp{}.", &Uuid::new_v4().simple().to_string()[..10]);
    let mut command = muckard(
        &app,
        &["serve"],
        &[
            ("DATABASE_URL", service_role.url.clone()),
            ("HTTP_ADDR", format!("127.0.0.1:{port}")),
            ("KAFKA_TOPIC_PREFIX", topic_prefix),
            ("RABBITMQ_QUEUE_PREFIX", rabbit.prefix.clone()),
            ("RUNNER_TICK_MS", "200".to_string()),
        ],
    );
    command.stdout(Stdio::null()).stderr(Stdio::inherit());
    let _service = Service(command.spawn().expect("start muckard serve"));
    let http = Http {
        client: reqwest::Client::new(),
        base: format!("http://127.0.0.1:{port}"),
    };
    poll(60, "/ready", || async {
        let (status, _) = http.get("/ready", None).await;
        (status == 200).then_some(())
    })
    .await;

    // A whole trading flow through every role, as the app role.
    let email = format!("least-{}@example.com", Uuid::new_v4().simple());
    let credentials = json!({ "email": email, "password": integration_tests::PASSWORD });
    let (status, body) = http
        .post("/api/v1/auth/register", None, Some(credentials.clone()))
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, login) = http
        .post("/api/v1/auth/login", None, Some(credentials))
        .await;
    assert_eq!(status, 200, "{login}");
    let token = login["access_token"].as_str().unwrap().to_string();
    let (status, key) = http
        .post(
            "/api/v1/kraken/connect",
            Some(&token),
            Some(json!({ "api_key": "paper-key-trading", "api_secret": GOOD_SECRET })),
        )
        .await;
    assert_eq!(status, 201, "{key}");
    let key_id = key["key_id"].as_str().unwrap().to_string();
    let (status, tested) = http
        .post(
            &format!("/api/v1/kraken/keys/{key_id}/test"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(tested["status"], "tested", "{status} {tested}");
    let (status, bot) = http
        .post(
            "/api/v1/bot",
            Some(&token),
            Some(json!({
                "key_id": key_id,
                "pair": "XBT/USD",
                "strategy": { "kind": "dca", "quote_amount": "25.00", "interval_secs": 60 }
            })),
        )
        .await;
    assert_eq!(status, 201, "{bot}");
    let bot_id = bot["bot_id"].as_str().unwrap().to_string();
    let (status, started) = http
        .post(&format!("/api/v1/bot/{bot_id}/start"), Some(&token), None)
        .await;
    assert_eq!(status, 202, "{started}");
    // Running, and the DCA loop's first fill is a trade in the read model:
    // the runner, the process manager and the projectors all wrote.
    poll(30, "the bot's first trade", || async {
        let (_, trades) = http
            .get(
                &format!("/api/v1/trading/trades?bot_id={bot_id}"),
                Some(&token),
            )
            .await;
        trades["trades"]
            .as_array()
            .is_some_and(|t| !t.is_empty())
            .then_some(())
    })
    .await;
    let (_, status_row) = http
        .get(&format!("/api/v1/bot/{bot_id}/status"), Some(&token))
        .await;
    assert_eq!(status_row["state"], "running", "{status_row}");

    // What the service's role cannot do to the log.
    let mut connection = PgConnection::connect(&service_role.url)
        .await
        .expect("connect as the service's role");
    for statement in [
        "ALTER TABLE events DISABLE TRIGGER ALL",
        "SET session_replication_role = replica",
        "UPDATE events SET metadata = metadata",
        "DELETE FROM events",
        "TRUNCATE events",
        "DROP TABLE events",
        "DELETE FROM _sqlx_migrations",
    ] {
        let refused = sqlx::query(statement)
            .execute(&mut connection)
            .await
            .expect_err(statement);
        let code = refused
            .as_database_error()
            .and_then(|e| e.code())
            .map(|c| c.to_string());
        assert_eq!(
            code.as_deref(),
            Some("42501"),
            "{statement} must be refused for lack of privilege: {refused}"
        );
    }
    connection.close().await.ok();
}

#[tokio::test]
async fn serve_refuses_in_production_as_a_role_that_owns_the_log() {
    let app = TestApp::spawn_with(&[("MUCKARD_ROLES", "api")]).await;
    let command = muckard(
        &app,
        &["serve", "--roles", "api"],
        &[
            ("MUCKARD_ENV", "production".to_string()),
            // Required in production; never contacted before the refusal.
            ("SMTP_URL", "smtp://127.0.0.1:2525".to_string()),
            ("HTTP_ADDR", format!("127.0.0.1:{}", free_port())),
        ],
    );
    refuses_to_serve(command, "refusing to serve as PostgreSQL role").await;
}

/// `command` (a `serve`) exits at once, unsuccessfully, saying `why`.
async fn refuses_to_serve(mut command: Command, why: &str) {
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let output = tokio::time::timeout(Duration::from_secs(60), run(command))
        .await
        .expect("serve gives up at once");
    assert!(!output.status.success(), "{}", describe(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains(why),
        "{}",
        describe(&output)
    );
}

#[tokio::test]
async fn serve_as_the_app_role_refuses_a_database_behind_its_migrations() {
    let app = TestApp::spawn_with(&[("MUCKARD_ROLES", "api")]).await;
    let service_role = app.login_role(Some("muckard_app")).await;
    // One migration of this build marked as never applied.
    sqlx::query(
        "DELETE FROM _sqlx_migrations WHERE version = (SELECT max(version) FROM _sqlx_migrations)",
    )
    .execute(&app.pool)
    .await
    .expect("forget a migration");
    let command = muckard(
        &app,
        &["serve", "--roles", "api"],
        &[
            ("DATABASE_URL", service_role.url.clone()),
            ("HTTP_ADDR", format!("127.0.0.1:{}", free_port())),
        ],
    );
    refuses_to_serve(command, "run `muckard migrate`").await;
}

#[tokio::test]
async fn the_read_only_auditor_role_can_verify_the_log_and_change_nothing() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    app.bot(&user).await;
    let auditor = app.login_role(Some("muckard_auditor")).await;
    let mut command = Command::new(workspace_binary("muckard-replay"));
    command
        .args(["verify"])
        .env("DATABASE_URL", &auditor.url)
        .env("RUST_LOG", "warn");
    let output = run(command).await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let mut connection = PgConnection::connect(&auditor.url)
        .await
        .expect("connect as the auditor");
    for statement in [
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         VALUES ('User', 'x', 1, 'user.created', '1.0', '{}', '{}')",
        "UPDATE users SET role = 'admin'",
        "DELETE FROM snapshots",
    ] {
        let refused = sqlx::query(statement)
            .execute(&mut connection)
            .await
            .expect_err(statement);
        assert_eq!(
            refused
                .as_database_error()
                .and_then(|e| e.code())
                .as_deref(),
            Some("42501"),
            "{statement}: {refused}"
        );
    }
    connection.close().await.ok();
}
