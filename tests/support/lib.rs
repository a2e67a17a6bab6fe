//! Test support: a fresh PostgreSQL database per test, the real router
//! driven without a socket, and helpers for the common flows.
//!
//! Set `TEST_DATABASE_URL` to point at another server (default
//! `postgres://postgres@127.0.0.1:5432/postgres`, used only to create and
//! drop the per-test databases) and `TEST_LOG=1` to see the service's logs.

use std::collections::HashMap;
use std::sync::Arc;

use api::AppState;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use exchange::PaperExchange;
use http_body_util::BodyExt;
use muckard::settings::Settings;
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection, PgPool};
use tower::ServiceExt;
use uuid::Uuid;

pub mod browser;
pub mod rabbit;
pub mod smtp;
pub mod sse;

pub const PASSWORD: &str = "correct horse battery";
/// A base64 secret of 64 bytes, shaped like Kraken's.
pub const GOOD_SECRET: &str =
    "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg==";

pub struct TestApp {
    pub router: Router,
    /// The simulated exchange the service trades through.
    pub exchange: Arc<PaperExchange>,
    pub state: AppState,
    /// The settings the app was built from (the binary's, all of them).
    pub settings: Arc<Settings>,
    pub pool: PgPool,
    pub database_url: String,
    /// Stops the workers this app started.
    pub shutdown: tokio_util::sync::CancellationToken,
    database_name: String,
    admin_url: String,
}

pub struct TestResponse {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Value,
}

impl TestResponse {
    pub fn field(&self) -> Option<&str> {
        self.body["error"]["field"].as_str()
    }
}

#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: Uuid,
    pub email: String,
    pub token: String,
    pub refresh_token: String,
}

fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

fn url_with_database(admin_url: &str, database: &str) -> String {
    let (base, _) = admin_url
        .rsplit_once('/')
        .expect("TEST_DATABASE_URL has a database path");
    format!("{base}/{database}")
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(&[]).await
    }

    /// A service on its own new database, with `overrides` applied to the
    /// environment it reads its settings from.
    pub async fn spawn_with(overrides: &[(&str, &str)]) -> TestApp {
        Self::spawn_on(overrides, None).await
    }

    /// The same, trading through `exchange` instead of the paper exchange
    /// (`TestApp::exchange` is then unused).
    pub async fn spawn_with_exchange(
        overrides: &[(&str, &str)],
        exchange: Arc<dyn exchange::Exchange>,
    ) -> TestApp {
        Self::spawn_on(overrides, Some(exchange)).await
    }

    async fn spawn_on(
        overrides: &[(&str, &str)],
        trading_exchange: Option<Arc<dyn exchange::Exchange>>,
    ) -> TestApp {
        if std::env::var_os("TEST_LOG").is_some() {
            std::mem::forget(muckard::telemetry::init(muckard::settings::LogFormat::Text));
        }
        let admin_url = admin_url();
        let database_name = format!("muckard_test_{}", Uuid::new_v4().simple());
        let database_url = url_with_database(&admin_url, &database_name);
        let mut env: HashMap<String, String> = HashMap::from([
            ("DATABASE_URL".to_string(), database_url.clone()),
            ("DATABASE_MAX_CONNECTIONS".to_string(), "12".to_string()),
            (
                "JWT_SECRET".to_string(),
                Uuid::new_v4().simple().to_string(),
            ),
            (
                "SECRETS_ENCRYPTION_KEY".to_string(),
                format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple()),
            ),
            (
                "AUDIT_SIGNING_KEY".to_string(),
                format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple()),
            ),
            // Kafka and RabbitMQ roles only where a test asks for them (with
            // its own topic or queue prefix), so tests never consume each
            // other's messages.
            ("MUCKARD_ROLES".to_string(), "api,projector".to_string()),
            // Without SMTP_URL the codes go to an outbox directory: one of
            // the test's own, under the system's temporary directory.
            (
                "MAIL_OUTBOX_DIR".to_string(),
                std::env::temp_dir()
                    .join("muckard-outbox")
                    .join(&database_name)
                    .display()
                    .to_string(),
            ),
        ]);
        for (name, value) in overrides {
            env.insert(name.to_string(), value.to_string());
        }
        let settings = Settings::from_lookup(|name| env.get(name).cloned()).expect("test settings");
        let pool = muckard::wiring::prepare_database(&settings)
            .await
            .expect("prepare the test database");
        let exchange = Arc::new(PaperExchange::new());
        let trading_exchange = trading_exchange.unwrap_or_else(|| exchange.clone());
        let state = muckard::wiring::build_state(&settings, pool.clone(), trading_exchange)
            .expect("build state");
        let shutdown = tokio_util::sync::CancellationToken::new();
        muckard::wiring::start_workers(&settings, &state, shutdown.clone());
        TestApp {
            shutdown,
            exchange,
            settings: Arc::new(settings),
            router: api::app(state.clone()),
            state,
            pool,
            database_url,
            database_name,
            admin_url,
        }
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> TestResponse {
        let mut builder = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        if body.is_some() {
            builder = builder.header("content-type", "application/json");
        }
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder
            .body(Body::from(body.unwrap_or_default().to_string()))
            .expect("request");
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let streaming = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let bytes = if streaming {
            // A stream never ends: what it sent within a short quiet
            // spell (at most 2 s), then it is dropped (the client left).
            let mut body = response.into_body();
            let mut bytes = Vec::new();
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
            loop {
                let quiet = tokio::time::Instant::now() + std::time::Duration::from_millis(300);
                match tokio::time::timeout_at(quiet.min(deadline), body.frame()).await {
                    Ok(Some(Ok(frame))) => {
                        if let Some(data) = frame.data_ref() {
                            bytes.extend_from_slice(data);
                        }
                    }
                    _ => break,
                }
            }
            axum::body::Bytes::from(bytes)
        } else {
            response
                .into_body()
                .collect()
                .await
                .expect("body")
                .to_bytes()
        };
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            // A text body (e.g. /metrics) is kept as a JSON string.
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        TestResponse {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> TestResponse {
        self.request(Method::GET, path, token, None, &[]).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> TestResponse {
        self.request(Method::DELETE, path, token, None, &[]).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> TestResponse {
        self.request(Method::POST, path, token, Some(&body.to_string()), &[])
            .await
    }

    pub async fn patch(&self, path: &str, token: Option<&str>, body: Value) -> TestResponse {
        self.request(Method::PATCH, path, token, Some(&body.to_string()), &[])
            .await
    }

    pub async fn post_empty(&self, path: &str, token: Option<&str>) -> TestResponse {
        self.request(Method::POST, path, token, None, &[]).await
    }

    /// Registers and logs in a new user.
    pub async fn user(&self) -> TestUser {
        let email = format!("trader-{}@example.com", Uuid::new_v4().simple());
        let registered = self
            .post(
                "/api/v1/auth/register",
                None,
                json!({ "email": email, "password": PASSWORD }),
            )
            .await;
        assert_eq!(
            registered.status,
            StatusCode::CREATED,
            "{}",
            registered.body
        );
        self.login(&email).await
    }

    /// Registers a new user, grants it `role` as an operator would, and
    /// logs it in again so its token carries the role.
    pub async fn user_with_role(&self, role: domain::Role) -> TestUser {
        let user = self.user().await;
        self.grant_role(&user.email, role).await;
        self.login(&user.email).await
    }

    /// Grants `role` to the user with `email`, as `muckard grant-role` does.
    pub async fn grant_role(&self, email: &str, role: domain::Role) {
        let metadata = command_side::CommandMetadata::new("cli", Some(domain::Actor::System));
        muckard::operator::grant_role(&self.state.commands, email, role, &metadata)
            .await
            .expect("grant role");
    }

    pub async fn login(&self, email: &str) -> TestUser {
        let login = self
            .post(
                "/api/v1/auth/login",
                None,
                json!({ "email": email, "password": PASSWORD }),
            )
            .await;
        assert_eq!(login.status, StatusCode::OK, "{}", login.body);
        TestUser {
            id: login.body["user_id"].as_str().unwrap().parse().unwrap(),
            email: email.to_string(),
            token: login.body["access_token"].as_str().unwrap().to_string(),
            refresh_token: login.body["refresh_token"].as_str().unwrap().to_string(),
        }
    }

    /// Connects a key for `user` and returns its id.
    pub async fn connected_key(&self, user: &TestUser, api_key: &str) -> Uuid {
        let response = self
            .post(
                "/api/v1/kraken/connect",
                Some(&user.token),
                json!({ "api_key": api_key, "api_secret": GOOD_SECRET, "label": "main" }),
            )
            .await;
        assert_eq!(response.status, StatusCode::CREATED, "{}", response.body);
        response.body["key_id"].as_str().unwrap().parse().unwrap()
    }

    /// Raises a notification for `owner_id` as the notifier would, caused by
    /// a made-up event of the kind's type; returns its id (a new user wants
    /// every kind, so one whose level leaves it out is a test's mistake).
    pub async fn raise_notification(
        &self,
        owner_id: Uuid,
        kind: domain::notification::NotificationKind,
        subject: domain::notification::NotificationSubject,
        message: &str,
    ) -> Uuid {
        use domain::notification::NotificationKind;
        let source_event_type = match kind {
            NotificationKind::BotError => "bot.error",
            NotificationKind::BotStopped => "bot.stopped",
            NotificationKind::KeyTestFailed => "kraken.key.test.failed",
            NotificationKind::TradeExecuted => "bot.trade.executed",
            NotificationKind::SupportReply => "support.reply_added",
        };
        let request = command_side::notifications::NotificationRequest {
            owner_id,
            kind,
            subject,
            message: message.to_string(),
            source_event_id: Uuid::new_v4(),
            source_event_type: source_event_type.to_string(),
        };
        let metadata = command_side::CommandMetadata::new("test", Some(domain::Actor::System));
        match self
            .state
            .commands
            .raise_notification(request, &metadata)
            .await
            .expect("raise a notification")
        {
            command_side::notifications::Raised::Recorded { notification_id } => notification_id,
            command_side::notifications::Raised::NotWanted => {
                panic!("{owner_id}'s notification level leaves {kind:?} out")
            }
        }
    }

    /// Connects a key for `user`, revokes it on the paper exchange (as the
    /// user would on Kraken's site) and tests it: a failed key test, a
    /// `kraken.key.test.failed` alert.
    pub async fn failed_key_test(&self, user: &TestUser, api_key: &str) -> Uuid {
        let key_id = self.connected_key(user, api_key).await;
        self.exchange.revoke_key(api_key);
        let tested = self
            .post_empty(
                &format!("/api/v1/kraken/keys/{key_id}/test"),
                Some(&user.token),
            )
            .await;
        assert_eq!(tested.body["status"], "test_failed", "{}", tested.body);
        key_id
    }

    /// Connects and tests a key for `user`.
    pub async fn tested_key(&self, user: &TestUser) -> Uuid {
        let key_id = self.connected_key(user, "paper-key-trading").await;
        let tested = self
            .post_empty(
                &format!("/api/v1/kraken/keys/{key_id}/test"),
                Some(&user.token),
            )
            .await;
        assert_eq!(tested.body["status"], "tested", "{}", tested.body);
        key_id
    }

    /// Configures a DCA bot on a tested key.
    pub async fn bot(&self, user: &TestUser) -> Uuid {
        let key_id = self.tested_key(user).await;
        let response = self
            .post(
                "/api/v1/bot",
                Some(&user.token),
                json!({
                    "key_id": key_id,
                    "pair": "XBT/USD",
                    "strategy": { "kind": "dca", "quote_amount": "25.00", "interval_secs": 60 }
                }),
            )
            .await;
        assert_eq!(response.status, StatusCode::CREATED, "{}", response.body);
        response.body["bot_id"].as_str().unwrap().parse().unwrap()
    }

    /// Opens a support ticket for `user`; returns its id and the position
    /// of its `support.ticket_opened`.
    pub async fn ticket(&self, user: &TestUser, subject: &str, body: &str) -> (Uuid, String) {
        let response = self
            .post(
                "/api/v1/support/tickets",
                Some(&user.token),
                json!({ "subject": subject, "body": body }),
            )
            .await;
        assert_eq!(response.status, StatusCode::CREATED, "{}", response.body);
        (
            response.body["ticket_id"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap(),
            response.body["position"].as_str().unwrap().to_string(),
        )
    }

    /// Every stored event of one stream, in sequence order.
    pub async fn stream(&self, aggregate_type: &str, aggregate_id: Uuid) -> Vec<StoredEvent> {
        sqlx::query_as::<_, StoredEvent>(
            "SELECT aggregate_type, aggregate_id, sequence, event_type, event_version, \
             payload::text AS payload, metadata::text AS metadata, prev_hash, hash \
             FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 ORDER BY sequence",
        )
        .bind(aggregate_type)
        .bind(aggregate_id.to_string())
        .fetch_all(&self.pool)
        .await
        .expect("read stream")
    }

    /// The event types of one stream, in sequence order.
    pub async fn event_types(&self, aggregate_type: &str, aggregate_id: Uuid) -> Vec<String> {
        let stream = self.stream(aggregate_type, aggregate_id).await;
        stream.into_iter().map(|event| event.event_type).collect()
    }

    /// How many events `subscriber` has handled (0 before its first batch).
    /// A sealed personal field of `user_id`'s events (`{"sealed": …}`),
    /// opened with their data key; `None` once erased.
    pub async fn open_personal(&self, user_id: Uuid, field: &str, value: &Value) -> Option<String> {
        let text: domain::personal::PersonalText = serde_json::from_value(value.clone())
            .unwrap_or_else(|e| panic!("{field} is not personal text: {value}: {e}"));
        let key = event_log::data_keys::fetch(&self.pool, user_id)
            .await
            .expect("read the data key")
            .map(domain::personal::DataKey::from_bytes);
        text.reveal(key.as_ref(), user_id, field)
    }

    pub async fn events_handled(&self, subscriber: &str) -> i64 {
        sqlx::query_scalar(
            "SELECT coalesce(max(events_handled), 0) FROM subscriber_checkpoints WHERE subscriber = $1",
        )
        .bind(subscriber)
        .fetch_one(&self.pool)
        .await
        .expect("read a checkpoint")
    }

    pub async fn event_count(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&self.pool)
            .await
            .expect("count events")
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredEvent {
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub payload: String,
    pub metadata: String,
    pub prev_hash: String,
    pub hash: String,
}

impl StoredEvent {
    pub fn payload_json(&self) -> Value {
        serde_json::from_str(&self.payload).expect("payload is JSON")
    }
    pub fn metadata_json(&self) -> Value {
        serde_json::from_str(&self.metadata).expect("metadata is JSON")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if std::env::var_os("TEST_KEEP_DB").is_some() {
            eprintln!("kept test database {}", self.database_name);
            return;
        }
        let name = self.database_name.clone();
        let admin = self.admin_url.clone();
        clean_up_outside_the_runtime(async move {
            if let Ok(mut connection) = PgConnection::connect(&admin).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .execute(&mut connection)
                    .await;
            }
        });
    }
}

/// Runs `clean_up` to its end on a thread and runtime of its own: a `Drop`
/// runs inside the test's runtime, which cannot block on a future.
/// A PostgreSQL login role of a test's own (roles are cluster-wide),
/// dropped when the test ends. `url` connects to the app's database as it.
pub struct LoginRole {
    pub name: String,
    pub url: String,
    admin_url: String,
}

impl TestApp {
    /// A new login role, a member of `member_of` (e.g. `muckard_app`), or
    /// of nothing when `None`.
    pub async fn login_role(&self, member_of: Option<&str>) -> LoginRole {
        let name = format!("muckard_test_{}", Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&self.admin_url)
            .await
            .expect("connect as the test admin");
        sqlx::query(&format!("CREATE ROLE {name} LOGIN"))
            .execute(&mut admin)
            .await
            .expect("create a login role");
        if let Some(role) = member_of {
            sqlx::query(&format!("GRANT {role} TO {name}"))
                .execute(&mut admin)
                .await
                .expect("grant a role");
        }
        let (scheme_and_user, host_and_database) = self
            .database_url
            .split_once('@')
            .expect("the test database URL names a user");
        let scheme = scheme_and_user
            .split_once("//")
            .map(|(scheme, _)| scheme)
            .expect("a URL scheme");
        LoginRole {
            url: format!("{scheme}//{name}@{host_and_database}"),
            name,
            admin_url: self.admin_url.clone(),
        }
    }
}

impl Drop for LoginRole {
    fn drop(&mut self) {
        let (name, admin) = (self.name.clone(), self.admin_url.clone());
        clean_up_outside_the_runtime(async move {
            if let Ok(mut connection) = PgConnection::connect(&admin).await {
                // Sessions of a killed process may linger for a moment.
                let _ = sqlx::query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1",
                )
                .bind(&name)
                .execute(&mut connection)
                .await;
                let _ = sqlx::query(&format!("DROP ROLE IF EXISTS {name}"))
                    .execute(&mut connection)
                    .await;
            }
        });
    }
}

pub(crate) fn clean_up_outside_the_runtime(
    clean_up: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let _ = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(clean_up);
    })
    .join();
}

/// Polls `check` every 100 ms until it gives a value; fails the test,
/// naming `what`, when `seconds` pass first.
pub async fn poll<T, F, Fut>(seconds: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {seconds} s waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Where the scripts keep their tools: `$MUCKARD_STATE_DIR`, else
/// `~/.cache/muckard`.
pub fn state_dir() -> std::path::PathBuf {
    std::env::var_os("MUCKARD_STATE_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
                .join(".cache/muckard")
        })
}

/// A program of the Python tools' virtual environment that
/// `ensure_python_tools` (scripts/services.sh) makes: `MUCKARD_VENV`, else
/// `<state_dir>/venv`.
pub fn python_tool(name: &str) -> std::path::PathBuf {
    std::env::var_os("MUCKARD_VENV")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| state_dir().join("venv"))
        .join("bin")
        .join(name)
}

/// A script of the Node tools `ensure_node_tools` installs beside their
/// packages (`<state_dir>/node-tools`), so they resolve them.
pub fn node_tool(script: &str) -> std::path::PathBuf {
    state_dir().join("node-tools").join(script)
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("bind a free port")
        .port()
}

/// The `muckard` binary, built on first use with the same cargo and target
/// directory as the running tests, for tests that run it as a process.
pub fn muckard_binary() -> std::path::PathBuf {
    workspace_binary("muckard")
}

/// The workspace's binary `name`, built on first use with the same cargo
/// and target directory as the running tests.
pub fn workspace_binary(name: &'static str) -> std::path::PathBuf {
    static BUILT: std::sync::OnceLock<std::sync::Mutex<HashMap<&'static str, std::path::PathBuf>>> =
        std::sync::OnceLock::new();
    let mut built = BUILT
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    built
        .entry(name)
        .or_insert_with(|| {
            let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
            let mut command = std::process::Command::new(cargo);
            // The variables cargo sets for a running test must not reach
            // the nested build: build scripts that watch them (ring's
            // watches CARGO_MANIFEST_DIR) would see a change and rebuild
            // everything above them, here and again in the next build.
            for (name, _) in std::env::vars_os() {
                let name = name.to_string_lossy();
                if name.starts_with("CARGO_PKG_")
                    || [
                        "CARGO_MANIFEST_DIR",
                        "CARGO_MANIFEST_PATH",
                        "CARGO_CRATE_NAME",
                        "CARGO_PRIMARY_PACKAGE",
                        "CARGO_TARGET_TMPDIR",
                        "OUT_DIR",
                    ]
                    .contains(&name.as_ref())
                {
                    command.env_remove(name.as_ref());
                }
            }
            let status = command
                // --workspace resolves features as `cargo test --workspace`
                // does, so this build reuses its artefacts instead of
                // rebuilding sqlx and friends with another feature set.
                .args([
                    "build",
                    "--quiet",
                    "--workspace",
                    "--bin",
                    name,
                    "--manifest-path",
                ])
                .arg(manifest)
                .status()
                .expect("run cargo build");
            assert!(status.success(), "building the {name} binary failed");
            // This test runs from <target>/debug/deps/<test>; the binary sits
            // in <target>/debug.
            let exe = std::env::current_exe().expect("current exe");
            let profile_dir = exe
                .parent()
                .and_then(|deps| deps.parent())
                .expect("target dir");
            let binary = profile_dir.join(name);
            assert!(binary.exists(), "{} missing", binary.display());
            binary
        })
        .clone()
}

impl TestApp {
    /// The environment a `muckard` process needs to serve this app's
    /// database with the same keys.
    pub fn process_env(&self) -> Vec<(String, String)> {
        let settings = &self.settings;
        vec![
            ("DATABASE_URL".to_string(), self.database_url.clone()),
            (
                "JWT_SECRET".to_string(),
                String::from_utf8_lossy(settings.jwt_secret.expose()).into_owned(),
            ),
            (
                "SECRETS_ENCRYPTION_KEY".to_string(),
                hex::encode(settings.encryption_key.expose()),
            ),
            (
                "AUDIT_SIGNING_KEY".to_string(),
                hex::encode(settings.audit_signing_key.expose()),
            ),
            ("RUST_LOG".to_string(), "warn".to_string()),
        ]
    }

    /// Waits, up to `seconds`, until `check` holds; panics naming `what`
    /// otherwise.
    pub async fn eventually<F, Fut>(&self, seconds: u64, what: &str, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(seconds);
        while !check().await {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out after {seconds} s waiting for {what}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Starts a bot through the REST API and marks it running as the bot
    /// runner would.
    pub async fn running_bot(&self, user: &TestUser) -> Uuid {
        let bot_id = self.bot(user).await;
        let started = self
            .post_empty(&format!("/api/v1/bot/{bot_id}/start"), Some(&user.token))
            .await;
        assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.body);
        self.runner_command(
            bot_id,
            domain::bot::BotCommand::MarkStarted {
                actor: domain::Actor::System,
                at: chrono::Utc::now(),
            },
        )
        .await;
        bot_id
    }

    /// Executes a bot command as the bot runner (the System actor).
    pub async fn runner_command(
        &self,
        bot_id: Uuid,
        command: domain::bot::BotCommand,
    ) -> event_log::Position {
        let metadata =
            command_side::CommandMetadata::new("bot-runner", Some(domain::Actor::System))
                .with_command_type("bot.runner");
        self.state
            .commands
            .execute_bot(&bot_id.to_string(), command, &metadata)
            .await
            .expect("runner command")
    }

    /// Records a fill on a running bot as the bot runner would.
    pub async fn fill(
        &self,
        bot_id: Uuid,
        order_id: &str,
        side: domain::Side,
        quantity: &str,
        price: &str,
        executed_at: chrono::DateTime<chrono::Utc>,
    ) -> event_log::Position {
        self.runner_command(
            bot_id,
            domain::bot::BotCommand::RecordTradeExecuted {
                actor: domain::Actor::System,
                fill: domain::bot::Fill {
                    trigger_id: None,
                    order_id: order_id.to_string(),
                    side,
                    quantity: quantity.parse().unwrap(),
                    price: price.parse().unwrap(),
                    fee: "0.1".parse().unwrap(),
                    executed_at,
                },
            },
        )
        .await
    }
}

impl TestApp {
    /// A connection as the database's owner with the log's triggers off
    /// (`session_replication_role = replica`), as a tamperer with full
    /// access would have: what it changes, the verifier must find.
    pub async fn tamperer(&self) -> sqlx::PgConnection {
        use sqlx::Connection;
        let mut connection = sqlx::PgConnection::connect(&self.database_url)
            .await
            .expect("connect as the owner");
        sqlx::query("SET session_replication_role = replica")
            .execute(&mut connection)
            .await
            .expect("disable triggers for this session");
        connection
    }

    /// Serves the app on a loopback port, as `muckard serve` does, until
    /// the app's shutdown; returns its base URL.
    pub async fn listen(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let address = listener.local_addr().expect("its address");
        let router = self.router.clone();
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            let _ = axum::serve(
                listener,
                router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        });
        format!("http://{address}")
    }

    /// The ids (positions) `GET /api/v1/stream` has for `user` after the
    /// event id `after`, in order, as `live_updates` holds them.
    pub async fn live_ids_after(&self, user: Uuid, after: &str) -> Vec<String> {
        let (transaction, global) = after.split_once('.').expect("an event id");
        sqlx::query_scalar(
            "SELECT transaction_id::text || '.' || global_position FROM live_updates \
             WHERE user_id = $1 AND (transaction_id, global_position) > ($2::xid8, $3) \
             ORDER BY transaction_id, global_position",
        )
        .bind(user)
        .bind(transaction)
        .bind(global.parse::<i64>().expect("an event id"))
        .fetch_all(&self.pool)
        .await
        .expect("live_updates")
    }
}
