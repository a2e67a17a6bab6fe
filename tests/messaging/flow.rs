//! Steps the messaging tests share.

use axum::http::StatusCode;
use integration_tests::rabbit::RabbitTest;
use integration_tests::{TestApp, TestUser};
use serde_json::{json, Value};
use uuid::Uuid;

/// A service running every role but the notifier on the test's own
/// queues, so the status and alert messages stay there for the test to
/// read.
pub async fn service(rabbit: &RabbitTest, extra: &[(&str, &str)]) -> TestApp {
    spawn(rabbit.service_env_without_notifier(), extra).await
}

/// A service running every role, the notifier too.
pub async fn notifying_service(rabbit: &RabbitTest, extra: &[(&str, &str)]) -> TestApp {
    spawn(rabbit.service_env(), extra).await
}

async fn spawn(env: Vec<(&'static str, String)>, extra: &[(&str, &str)]) -> TestApp {
    let mut overrides: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    overrides.push(("RUNNER_TICK_MS", "100"));
    overrides.push(("PROJECTOR_POLL_MS", "50"));
    overrides.extend_from_slice(extra);
    TestApp::spawn_with(&overrides).await
}

/// Configures a bot with `strategy` on a tested key.
pub async fn bot_with(app: &TestApp, user: &TestUser, strategy: Value) -> Uuid {
    let key_id = app.tested_key(user).await;
    let response = app
        .post(
            "/api/v1/bot",
            Some(&user.token),
            json!({ "key_id": key_id, "pair": "XBT/USD", "strategy": strategy }),
        )
        .await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.body);
    response.body["bot_id"].as_str().unwrap().parse().unwrap()
}

/// A DCA bot that buys at start and then once an hour: every later trade
/// is one a test asked for.
pub fn hourly_dca() -> Value {
    json!({ "kind": "dca", "quote_amount": "25.00", "interval_secs": 3600 })
}

pub async fn get(app: &TestApp, path: &str, user: &TestUser) -> Value {
    let response = app.get(path, Some(&user.token)).await;
    assert_eq!(response.status, StatusCode::OK, "{path}: {}", response.body);
    response.body
}

/// Waits until the bot's status (read model) is `state`.
pub async fn wait_for_state(app: &TestApp, user: &TestUser, bot_id: Uuid, state: &str) {
    let path = format!("/api/v1/bot/{bot_id}/status");
    app.eventually(30, &format!("bot {bot_id} {state}"), || async {
        // 404 until the read model has the bot.
        let status = app.get(&path, Some(&user.token)).await;
        status.status == StatusCode::OK && status.body["state"] == state
    })
    .await;
}

/// The stored events of a bot's stream with this type, as (event id,
/// payload, metadata).
pub async fn bot_events(
    app: &TestApp,
    bot_id: Uuid,
    event_type: &str,
) -> Vec<(Uuid, Value, Value)> {
    sqlx::query_as::<_, (Uuid, String, String)>(
        "SELECT event_id, payload::text, metadata::text FROM events \
         WHERE aggregate_type = 'Bot' AND aggregate_id = $1 AND event_type = $2 ORDER BY sequence",
    )
    .bind(bot_id.to_string())
    .bind(event_type)
    .fetch_all(&app.pool)
    .await
    .expect("read events")
    .into_iter()
    .map(|(id, payload, metadata)| {
        (
            id,
            serde_json::from_str(&payload).unwrap(),
            serde_json::from_str(&metadata).unwrap(),
        )
    })
    .collect()
}

/// Waits until the bot's stream holds at least `count` events of a type.
pub async fn wait_for_events(app: &TestApp, bot_id: Uuid, event_type: &str, count: usize) {
    app.eventually(30, &format!("{count} × {event_type}"), || async {
        bot_events(app, bot_id, event_type).await.len() >= count
    })
    .await;
}
