//! The quotas through the real router and PostgreSQL: bots per user (also
//! under concurrent requests of one user), the trigger rate per bot (a 429
//! with `Retry-After` naming it, also under concurrent triggers) and the
//! pending triggers per bot.

use axum::http::{header, StatusCode};
use chrono::Utc;
use domain::bot::BotCommand;
use domain::Actor;
use integration_tests::{TestApp, TestResponse, TestUser};
use serde_json::json;
use uuid::Uuid;

async fn configure(app: &TestApp, user: &TestUser, key_id: Uuid) -> TestResponse {
    app.post(
        "/api/v1/bot",
        Some(&user.token),
        json!({
            "key_id": key_id,
            "pair": "XBT/USD",
            "strategy": { "kind": "dca", "quote_amount": "25.00", "interval_secs": 60 }
        }),
    )
    .await
}

async fn configured_bots_in_the_log(app: &TestApp, user: &TestUser) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE event_type = 'bot.configured' \
         AND (payload::jsonb) ->> 'owner_id' = $1",
    )
    .bind(user.id.to_string())
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

fn message(response: &TestResponse) -> String {
    response.body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

async fn trigger(app: &TestApp, user: &TestUser, bot_id: Uuid) -> TestResponse {
    app.post_empty(
        &format!("/api/v1/bot/{bot_id}/trigger-trade"),
        Some(&user.token),
    )
    .await
}

#[tokio::test]
async fn one_bot_beyond_bots_per_user_is_a_409_naming_the_limit() {
    let app = TestApp::spawn_with(&[("BOT_MAX_PER_USER", "3")]).await;
    let (user, other) = (app.user().await, app.user().await);
    let key_id = app.tested_key(&user).await;
    for _ in 0..3 {
        let configured = configure(&app, &user, key_id).await;
        assert_eq!(
            configured.status,
            StatusCode::CREATED,
            "{}",
            configured.body
        );
    }
    let refused = configure(&app, &user, key_id).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    assert_eq!(refused.body["error"]["code"], "conflict");
    let text = message(&refused);
    assert!(
        text.starts_with("bots per user: the limit is 3 bots"),
        "{text}"
    );
    assert_eq!(configured_bots_in_the_log(&app, &user).await, 3);
    // The quota is the user's own: another user still configures bots.
    let other_key = app.tested_key(&other).await;
    let configured = configure(&app, &other, other_key).await;
    assert_eq!(
        configured.status,
        StatusCode::CREATED,
        "{}",
        configured.body
    );
}

#[tokio::test]
async fn concurrent_configurations_of_one_user_never_pass_the_quota() {
    let app = TestApp::spawn_with(&[("BOT_MAX_PER_USER", "3")]).await;
    let user = app.user().await;
    let key_id = app.tested_key(&user).await;
    let answers = futures::future::join_all((0..12).map(|_| configure(&app, &user, key_id))).await;
    let created = answers
        .iter()
        .filter(|answer| answer.status == StatusCode::CREATED)
        .count();
    for answer in &answers {
        assert!(
            answer.status == StatusCode::CREATED || answer.status == StatusCode::CONFLICT,
            "{} {}",
            answer.status,
            answer.body
        );
    }
    let statuses: Vec<StatusCode> = answers.iter().map(|answer| answer.status).collect();
    assert_eq!(created, 3, "{statuses:?}");
    assert_eq!(configured_bots_in_the_log(&app, &user).await, 3);
}

#[tokio::test]
async fn a_trigger_beyond_the_rate_is_a_429_with_retry_after_naming_the_limit() {
    let app = TestApp::spawn_with(&[
        ("BOT_TRIGGERS_PER_MINUTE", "2"),
        ("BOT_MAX_PENDING_TRIGGERS", "10"),
    ])
    .await;
    let user = app.user().await;
    let bot_id = app.running_bot(&user).await;
    for _ in 0..2 {
        let accepted = trigger(&app, &user, bot_id).await;
        assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.body);
    }
    let refused = trigger(&app, &user, bot_id).await;
    assert_eq!(
        refused.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        refused.body
    );
    assert_eq!(refused.body["error"]["code"], "rate_limited");
    let text = message(&refused);
    assert_eq!(
        text,
        "trigger rate per bot: the limit is 2 triggers per minute"
    );
    let retry_after: u64 = refused.headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    // The rate is per bot: the user's other bot is triggered.
    let other_bot = app.running_bot(&user).await;
    let accepted = trigger(&app, &user, other_bot).await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.body);
    let triggered = app
        .event_types("Bot", bot_id)
        .await
        .into_iter()
        .filter(|event_type| event_type == "bot.trade_triggered")
        .count();
    assert_eq!(triggered, 2);
}

#[tokio::test]
async fn concurrent_triggers_never_pass_the_rate() {
    let app = TestApp::spawn_with(&[
        ("BOT_TRIGGERS_PER_MINUTE", "3"),
        ("BOT_MAX_PENDING_TRIGGERS", "10"),
    ])
    .await;
    let user = app.user().await;
    let bot_id = app.running_bot(&user).await;
    let answers = futures::future::join_all((0..12).map(|_| trigger(&app, &user, bot_id))).await;
    let accepted = answers
        .iter()
        .filter(|answer| answer.status == StatusCode::ACCEPTED)
        .count();
    for answer in &answers {
        // A lost race retried past COMMAND_MAX_ATTEMPTS is a 409; nothing
        // else but the quota refuses.
        assert!(
            matches!(
                answer.status,
                StatusCode::ACCEPTED | StatusCode::TOO_MANY_REQUESTS | StatusCode::CONFLICT
            ),
            "{} {}",
            answer.status,
            answer.body
        );
    }
    assert!(accepted <= 3, "{accepted} accepted");
    let triggered = app
        .event_types("Bot", bot_id)
        .await
        .into_iter()
        .filter(|event_type| event_type == "bot.trade_triggered")
        .count();
    assert_eq!(triggered, accepted);
    assert!(answers
        .iter()
        .any(|answer| answer.status == StatusCode::TOO_MANY_REQUESTS));
}

#[tokio::test]
async fn a_trigger_beyond_the_pending_limit_is_a_429_until_the_runner_handles_one() {
    let app = TestApp::spawn_with(&[
        ("BOT_TRIGGERS_PER_MINUTE", "100"),
        ("BOT_MAX_PENDING_TRIGGERS", "2"),
    ])
    .await;
    let user = app.user().await;
    let bot_id = app.running_bot(&user).await;
    // No runner in this service: the triggers stay pending.
    let mut trigger_ids = Vec::new();
    for _ in 0..2 {
        let accepted = trigger(&app, &user, bot_id).await;
        assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.body);
        let trigger_id: Uuid = accepted.body["trigger_id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        trigger_ids.push(trigger_id);
    }
    let refused = trigger(&app, &user, bot_id).await;
    assert_eq!(
        refused.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        refused.body
    );
    let text = message(&refused);
    assert!(text.starts_with("pending triggers per bot:"), "{text}");
    assert!(text.contains("the limit is 2"), "{text}");
    assert!(refused.headers.contains_key(header::RETRY_AFTER));
    // The runner skips one: there is room for one more.
    app.runner_command(
        bot_id,
        BotCommand::RecordTradeSkipped {
            actor: Actor::System,
            trigger_id: Some(trigger_ids[0]),
            reason: "price above buy_below".to_string(),
            at: Utc::now(),
        },
    )
    .await;
    let accepted = trigger(&app, &user, bot_id).await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.body);
}

#[tokio::test]
async fn many_users_configuring_at_once_do_not_exhaust_the_pool() {
    // Each configuration holds its user's lock on a pooled connection while
    // it appends on another: more users at once than the pool (12 here)
    // must still all be answered.
    let app = TestApp::spawn().await;
    let mut users = Vec::new();
    for _ in 0..16 {
        let user = app.user().await;
        let key_id = app.tested_key(&user).await;
        users.push((user, key_id));
    }
    let answers = futures::future::join_all(
        users
            .iter()
            .map(|(user, key_id)| configure(&app, user, *key_id)),
    )
    .await;
    for answer in &answers {
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    }
}
