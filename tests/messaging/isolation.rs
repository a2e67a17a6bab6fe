//! One bot cannot take the runner down: a panic in one bot's exchange call
//! (in its trading loop and in a trigger's command) is a `bot.error` on
//! that bot, the message that keeps panicking ends in the dead-letter
//! queue after its attempts, and another user's bot trades on meanwhile.

use std::time::Instant;

use axum::http::StatusCode;
use integration_tests::rabbit::RabbitTest;
use integration_tests::{TestApp, TestUser, GOOD_SECRET};
use messaging::Queue;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::doubles::{service_on, FaultyExchange};
use crate::flow::{bot_events, bot_with, wait_for_events, wait_for_state};

const PANICKING_KEY: &str = "paper-key-panics";

/// A bot on a tested key whose API key is `api_key`.
async fn bot_on_key(app: &TestApp, user: &TestUser, api_key: &str, strategy: Value) -> Uuid {
    let connected = app
        .post(
            "/api/v1/kraken/connect",
            Some(&user.token),
            json!({ "api_key": api_key, "api_secret": GOOD_SECRET }),
        )
        .await;
    assert_eq!(connected.status, StatusCode::CREATED, "{}", connected.body);
    let key_id = connected.body["key_id"].as_str().unwrap();
    let tested = app
        .post_empty(
            &format!("/api/v1/kraken/keys/{key_id}/test"),
            Some(&user.token),
        )
        .await;
    assert_eq!(tested.body["status"], "tested", "{}", tested.body);
    let configured = app
        .post(
            "/api/v1/bot",
            Some(&user.token),
            json!({ "key_id": key_id, "pair": "XBT/USD", "strategy": strategy }),
        )
        .await;
    assert_eq!(
        configured.status,
        StatusCode::CREATED,
        "{}",
        configured.body
    );
    configured.body["bot_id"].as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_panicking_bot_is_an_error_on_that_bot_and_other_bots_keep_trading() {
    let rabbit = RabbitTest::new().await;
    let app = service_on(&rabbit, FaultyExchange::panicking_for(PANICKING_KEY)).await;
    let (unlucky, other) = (app.user().await, app.user().await);
    let every_second = json!({ "kind": "dca", "quote_amount": "25.00", "interval_secs": 1 });
    let faulty = bot_on_key(&app, &unlucky, PANICKING_KEY, every_second.clone()).await;
    let healthy = bot_with(&app, &other, every_second).await;
    for (bot_id, user) in [(faulty, &unlucky), (healthy, &other)] {
        app.post_empty(&format!("/api/v1/bot/{bot_id}/start"), Some(&user.token))
            .await;
        wait_for_state(&app, user, bot_id, "running").await;
    }

    // The faulty bot's loop panicked placing its order: recorded on it,
    // once however many ticks panic the same way.
    wait_for_events(&app, faulty, "bot.error", 1).await;
    let errors = bot_events(&app, faulty, "bot.error").await;
    let message = errors[0].1["message"].as_str().unwrap().to_string();
    assert_eq!(
        message,
        "trading tick panicked: injected fault placing an order for XBT/USD"
    );

    // A trigger on it panics in its command each time it is tried: each
    // attempt is a bot.error, and after three the message is dead-lettered
    // instead of redelivered forever.
    let started = Instant::now();
    let triggered = app
        .post_empty(
            &format!("/api/v1/bot/{faulty}/trigger-trade"),
            Some(&unlucky.token),
        )
        .await;
    assert_eq!(triggered.status, StatusCode::ACCEPTED, "{}", triggered.body);
    let mut seen = Vec::new();
    let dead = rabbit
        .wait_for(
            &rabbit.topology.dead_letter_name(Queue::BotTriggerTrade),
            30,
            &mut seen,
            |_| true,
        )
        .await;
    eprintln!("trigger dead-lettered after {:?}", started.elapsed());
    assert_eq!(
        dead.header("x-death-reason").as_deref(),
        Some(
            "failed 3 times: bot.trigger_trade panicked: \
             injected fault placing an order for XBT/USD"
        )
    );
    let errors = bot_events(&app, faulty, "bot.error").await;
    let count = |prefix: &str| {
        errors
            .iter()
            .filter(|(_, payload, _)| {
                payload["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with(prefix))
            })
            .count()
    };
    assert_eq!(count("bot.trigger_trade panicked"), 3, "one per attempt");
    assert_eq!(count("trading tick panicked"), 1, "the same error once");

    // Meanwhile the other user's bot trades on, and the runner still
    // carries out commands.
    let fills = bot_events(&app, healthy, "bot.trade.executed").await.len();
    wait_for_events(&app, healthy, "bot.trade.executed", fills + 3).await;
    assert!(bot_events(&app, faulty, "bot.trade.executed")
        .await
        .is_empty());
    wait_for_state(&app, &unlucky, faulty, "running").await;
    app.post(
        &format!("/api/v1/bot/{healthy}/stop"),
        Some(&other.token),
        json!({}),
    )
    .await;
    wait_for_events(&app, healthy, "bot.stopped", 1).await;
    // Nothing else was dead-lettered.
    assert!(rabbit
        .drain(&rabbit.topology.dead_letter_name(Queue::BotStop))
        .await
        .is_empty());
}

#[tokio::test]
async fn the_overflow_attack_costs_only_the_attackers_bot() {
    let rabbit = RabbitTest::new().await;
    let app = crate::flow::service(&rabbit, &[]).await;
    let (attacker, other) = (app.user().await, app.user().await);
    let key_id = app.tested_key(&attacker).await;
    let configured = app
        .post(
            "/api/v1/bot",
            Some(&attacker.token),
            json!({
                "key_id": key_id,
                "pair": "XBT/USD",
                "strategy": {
                    "kind": "dca",
                    "quote_amount": "79228162514264337593543950335",
                    "interval_secs": 3600
                }
            }),
        )
        .await;
    if configured.status == StatusCode::UNPROCESSABLE_ENTITY {
        // Refused at the edge: the attack never reaches the runner.
        assert!(configured.field().is_some(), "{}", configured.body);
        return;
    }
    assert_eq!(
        configured.status,
        StatusCode::CREATED,
        "{}",
        configured.body
    );
    let attack: Uuid = configured.body["bot_id"].as_str().unwrap().parse().unwrap();
    app.post_empty(
        &format!("/api/v1/bot/{attack}/start"),
        Some(&attacker.token),
    )
    .await;
    wait_for_state(&app, &attacker, attack, "running").await;
    app.post_empty(
        &format!("/api/v1/bot/{attack}/trigger-trade"),
        Some(&attacker.token),
    )
    .await;
    // The attack's trades end as an error or a skip on the attacker's bot.
    app.eventually(30, "the attack recorded on its bot", || async {
        !bot_events(&app, attack, "bot.error").await.is_empty()
            || !bot_events(&app, attack, "bot.trade.skipped")
                .await
                .is_empty()
    })
    .await;

    let asked = Instant::now();
    let bot_id = bot_with(&app, &other, crate::flow::hourly_dca()).await;
    app.post_empty(&format!("/api/v1/bot/{bot_id}/start"), Some(&other.token))
        .await;
    app.eventually(10, "the other user's bot trading", || async {
        !bot_events(&app, bot_id, "bot.trade.executed")
            .await
            .is_empty()
    })
    .await;
    eprintln!(
        "after the overflow attack, another user's bot started and traded in {:?}",
        asked.elapsed()
    );
    assert!(bot_events(&app, attack, "bot.trade.executed")
        .await
        .is_empty());
}
