use axum::http::{Method, StatusCode};
use integration_tests::rabbit::RabbitTest;
use integration_tests::TestApp;
use messaging::Queue;
use serde_json::{json, Value};

fn metric_value(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|line| line.starts_with(series) && line[series.len()..].starts_with(' '))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

#[tokio::test]
async fn health_is_alive_and_ready_names_each_dependency_of_the_roles() {
    let app = TestApp::spawn().await;
    let health = app.get("/health", None).await;
    assert_eq!(health.status, StatusCode::OK);
    app.user().await;
    app.eventually(10, "the users projector's checkpoint", || async {
        app.events_handled("users").await > 0
    })
    .await;
    let ready = app.get("/ready", None).await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.body);
    assert_eq!(ready.body["status"], "ready");
    let dependencies = &ready.body["dependencies"];
    assert_eq!(dependencies["postgres"]["status"], "up", "{}", ready.body);
    assert!(dependencies["postgres"]["latency_ms"].as_f64().is_some());
    // The test app runs the api and projector roles: no broker is used.
    assert_eq!(dependencies["kafka"]["status"], "not_used");
    assert_eq!(dependencies["rabbitmq"]["status"], "not_used");
    let subscribers = ready.body["subscribers"].as_array().expect("subscribers");
    let users = subscribers
        .iter()
        .find(|s| s["name"] == "users")
        .unwrap_or_else(|| panic!("the users projector in {}", ready.body));
    assert!(users["events_behind"].as_i64().is_some());
    assert!(users["seconds_behind"].as_f64().is_some());
}

#[tokio::test]
async fn ready_is_503_naming_rabbitmq_when_a_role_needs_it_and_it_does_not_answer() {
    let app = TestApp::spawn_with(&[
        ("MUCKARD_ROLES", "api,publisher"),
        // Nothing listens on port 9 (discard) here.
        ("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:9/%2f"),
        ("READY_CHECK_TIMEOUT_MS", "1000"),
    ])
    .await;
    let started = std::time::Instant::now();
    let ready = app.get("/ready", None).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(
        ready.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        ready.body
    );
    assert_eq!(ready.body["status"], "not_ready");
    assert_eq!(ready.body["dependencies"]["rabbitmq"]["status"], "down");
    assert!(
        ready.body["dependencies"]["rabbitmq"]["error"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{}",
        ready.body
    );
    assert_eq!(ready.body["dependencies"]["postgres"]["status"], "up");
    // Liveness does not depend on the broker.
    let health = app.get("/health", None).await;
    assert_eq!(health.status, StatusCode::OK);
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status_commands_by_outcome_and_the_pool() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    app.bot(&user).await;
    // A refused command: starting a bot that does not exist.
    let missing = app
        .post_empty(
            &format!("/api/v1/bot/{}/start", uuid::Uuid::new_v4()),
            Some(&user.token),
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.body);
    let unmatched = app.get("/no/such/route", None).await;
    app.eventually(10, "the bot_status projector's checkpoint", || async {
        app.events_handled("bot_status").await > 0
    })
    .await;
    assert_eq!(unmatched.status, StatusCode::NOT_FOUND);
    let response = app.get("/metrics", None).await;
    assert_eq!(response.status, StatusCode::OK);
    assert!(response.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let metrics = response.body.as_str().expect("a text body").to_string();
    let series = |name: &str| {
        metric_value(&metrics, name).unwrap_or_else(|| panic!("{name} missing:\n{metrics}"))
    };
    // Counters are per process and the tests of this target share one:
    // each of these requests was counted at least once.
    assert!(
        series(r#"muckard_http_requests_total{method="POST",route="/api/v1/bot",status="201"}"#)
            >= 1.0
    );
    assert!(
        series(
            r#"muckard_http_requests_total{method="POST",route="/api/v1/bot/{bot_id}/start",status="404"}"#
        ) >= 1.0
    );
    assert!(
        series(r#"muckard_http_requests_total{method="GET",route="unmatched",status="404"}"#)
            >= 1.0
    );
    assert!(
        series(
            r#"muckard_http_request_duration_seconds_count{method="POST",route="/api/v1/bot",status="201"}"#
        ) >= 1.0
    );
    assert!(
        series(r#"muckard_commands_total{command_type="bot.configure",outcome="accepted"}"#) >= 1.0
    );
    assert!(
        series(r#"muckard_commands_total{command_type="bot.request_start",outcome="rejected"}"#)
            >= 1.0
    );
    assert!(
        series(
            r#"muckard_events_appended_total{aggregate_type="Bot",event_type="bot.configured"}"#
        ) >= 1.0
    );
    assert!(series("muckard_db_pool_max_connections") >= 1.0);
    assert!(metrics.contains(r#"muckard_db_pool_connections{state="idle"}"#));
    assert!(metrics.contains(r#"muckard_subscriber_lag_events{subscriber="bot_status"}"#));
    for counter in [
        "muckard_kafka_published_events_total",
        "muckard_kafka_publish_errors_total",
        "muckard_rabbitmq_published_messages_total",
        "muckard_rabbitmq_publish_errors_total",
    ] {
        assert!(
            metric_value(&metrics, counter).is_some(),
            "{counter} missing"
        );
    }
}

#[tokio::test]
async fn cors_answers_allowed_origins_only() {
    let app = TestApp::spawn_with(&[("CORS_ALLOWED_ORIGINS", "https://app.example.com")]).await;
    let preflight = |origin: &'static str| {
        let app = &app;
        async move {
            app.request(
                Method::OPTIONS,
                "/api/v1/bot",
                None,
                None,
                &[
                    ("origin", origin),
                    ("access-control-request-method", "POST"),
                    (
                        "access-control-request-headers",
                        "authorization,content-type,idempotency-key",
                    ),
                ],
            )
            .await
        }
    };
    let allowed = preflight("https://app.example.com").await;
    assert!(allowed.status.is_success(), "{}", allowed.status);
    assert_eq!(
        allowed.headers["access-control-allow-origin"],
        "https://app.example.com"
    );
    let methods = allowed.headers["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(methods.contains("POST"), "{methods}");
    let headers = allowed.headers["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(headers.contains("idempotency-key"), "{headers}");
    let other = preflight("https://evil.example.net").await;
    assert!(other.headers.get("access-control-allow-origin").is_none());
    // A simple request from the allowed origin sees the exposed headers.
    let health = app
        .request(
            Method::GET,
            "/api/v1/bot",
            None,
            None,
            &[("origin", "https://app.example.com")],
        )
        .await;
    assert_eq!(health.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        health.headers["access-control-allow-origin"],
        "https://app.example.com"
    );
    let exposed = health.headers["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(exposed.contains("x-request-id"), "{exposed}");
    // Without the setting no CORS header is sent at all.
    let plain = TestApp::spawn().await;
    let response = plain
        .request(
            Method::GET,
            "/health",
            None,
            None,
            &[("origin", "https://app.example.com")],
        )
        .await;
    assert!(response
        .headers
        .get("access-control-allow-origin")
        .is_none());
}

#[tokio::test]
async fn each_client_has_its_own_rate_limit_and_over_it_gets_429_with_retry_after() {
    let app =
        TestApp::spawn_with(&[("RATE_LIMIT_PER_SECOND", "1"), ("RATE_LIMIT_BURST", "4")]).await;
    // Registering and logging in spend the anonymous client's budget; each
    // user then has a budget of their own.
    let first = app.user().await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let response = app.get("/api/v1/bot", Some(&first.token)).await;
        statuses.push(response.status);
        if response.status == StatusCode::TOO_MANY_REQUESTS {
            let retry_after: u64 = response.headers["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=2).contains(&retry_after), "{retry_after}");
            assert_eq!(response.body["error"]["code"], "rate_limited");
        }
    }
    let allowed = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let limited = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    // A burst of 4, plus at most one token refilled while the loop ran.
    assert!((4..=5).contains(&allowed), "{statuses:?}");
    assert_eq!(allowed + limited, 6, "{statuses:?}");
    // The limit never applies to health, readiness or metrics.
    for path in ["/health", "/ready", "/metrics"] {
        let response = app.get(path, None).await;
        assert_ne!(response.status, StatusCode::TOO_MANY_REQUESTS, "{path}");
    }
    // A limited request had no effect: nothing was appended by it. A user
    // created directly in the database gets a full budget.
    let token_of_other = {
        let claims_user = uuid::Uuid::new_v4();
        app.state
            .jwt
            .issue(claims_user, domain::Role::User, None)
            .expect("a token")
    };
    let other = app.get("/api/v1/bot", Some(&token_of_other)).await;
    assert_ne!(
        other.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        other.body
    );
}

#[tokio::test]
async fn a_request_s_trace_context_reaches_the_event_metadata_and_the_amqp_headers() {
    let rabbit = RabbitTest::new().await;
    let env = rabbit.service_env();
    let mut overrides: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // The publisher without the runner, so the command stays on its queue.
    overrides.push(("MUCKARD_ROLES", "api,projector,publisher"));
    overrides.push(("PROJECTOR_POLL_MS", "50"));
    let app = TestApp::spawn_with(&overrides).await;
    let user = app.user().await;
    let bot_id = app.bot(&user).await;
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let started = app
        .request(
            Method::POST,
            &format!("/api/v1/bot/{bot_id}/start"),
            Some(&user.token),
            None,
            &[("traceparent", parent), ("x-request-id", "req-trace-1")],
        )
        .await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.body);
    let events = app.stream("Bot", bot_id).await;
    let requested = events
        .iter()
        .find(|e| e.event_type == "bot.start_requested")
        .expect("bot.start_requested");
    let metadata: Value = requested.metadata_json();
    let traceparent = metadata["traceparent"].as_str().expect("a traceparent");
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts[0], "00");
    assert_eq!(parts[1], "4bf92f3577b34da6a3ce929d0e0e4736", "same trace");
    assert_ne!(parts[2], "00f067aa0ba902b7", "a span of the request's own");
    assert_eq!(metadata["request_id"], "req-trace-1");
    let queue = rabbit.topology.name(Queue::BotStart);
    let mut seen = Vec::new();
    let message = rabbit
        .wait_for(&queue, 30, &mut seen, |m| {
            m.json()["bot_id"] == json!(bot_id.to_string())
        })
        .await;
    assert_eq!(message.header("traceparent").as_deref(), Some(traceparent));
    // A request without trace context starts a trace of its own.
    let configured = events
        .iter()
        .find(|e| e.event_type == "bot.configured")
        .expect("bot.configured");
    let own = configured.metadata_json()["traceparent"]
        .as_str()
        .expect("a generated traceparent")
        .to_string();
    assert_eq!(own.len(), 55, "{own}");
    assert!(!own.contains("4bf92f3577b34da6a3ce929d0e0e4736"));
}
