//! The notifier against the real RabbitMQ: a bot's error, its stop and a
//! failed key test reach the owner's notification list within 2 s of
//! their event; a fill does for a user whose level is `all` and does not
//! for `errors_only`; a forged alert notifies nobody; and with the notifier
//! stopped the status queues stay within their bounds, the overflow
//! dead-lettered, nothing already acknowledged lost.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use chrono::Utc;
use integration_tests::rabbit::RabbitTest;
use integration_tests::{TestApp, TestUser};
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use messaging::{Queue, QueueBounds, StatusMessage};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::flow::{bot_events, bot_with, hourly_dca, notifying_service, service, wait_for_events};

const NOTIFICATIONS: &str = "/api/v1/notifications";

/// One field of every notification of a page, newest first.
fn column<'a>(page: &'a Value, field: &str) -> Vec<&'a str> {
    page["notifications"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n[field].as_str())
        .collect()
}

async fn notifications(app: &TestApp, user: &TestUser) -> Value {
    let listed = app.get(NOTIFICATIONS, Some(&user.token)).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    listed.body
}

/// Waits, at most `within`, for a notification of `kind` that `matches`;
/// returns it and how long it took.
async fn wait_for_notification(
    app: &TestApp,
    user: &TestUser,
    kind: &str,
    within: Duration,
    matches: impl Fn(&Value) -> bool,
) -> (Value, Duration) {
    let started = Instant::now();
    loop {
        let page = notifications(app, user).await;
        if let Some(found) = page["notifications"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|n| n["kind"] == kind && matches(n))
        {
            return (found.clone(), started.elapsed());
        }
        assert!(
            started.elapsed() < within,
            "no {kind} notification within {within:?}: {page}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn bot_errors_stops_and_failed_key_tests_reach_the_list_within_2_s() {
    let rabbit = RabbitTest::new().await;
    let app = notifying_service(&rabbit, &[]).await;
    let user = app.user().await;

    // More than the paper account holds: the first buy is a bot.error.
    let strategy = json!({ "kind": "dca", "quote_amount": "250000", "interval_secs": 3600 });
    let bot_id = bot_with(&app, &user, strategy).await;
    app.post_empty(&format!("/api/v1/bot/{bot_id}/start"), Some(&user.token))
        .await;
    wait_for_events(&app, bot_id, "bot.error", 1).await;
    let (error_id, _, _) = bot_events(&app, bot_id, "bot.error").await[0].clone();
    let (error, took) =
        wait_for_notification(&app, &user, "bot_error", Duration::from_secs(2), |n| {
            n["source_event_id"] == error_id.to_string()
        })
        .await;
    assert_eq!(error["bot_id"], bot_id.to_string());
    assert_eq!(
        error["message"],
        "bot error: exchange refused: EOrder:Insufficient funds"
    );
    assert!(error["read_at"].is_null());
    eprintln!("bot.error → notification listed: {took:?}");

    // A failed key test.
    let key_id = app.failed_key_test(&user, "paper-key-soon-revoked").await;
    let (failed, took) = wait_for_notification(
        &app,
        &user,
        "key_test_failed",
        Duration::from_secs(2),
        |n| n["key_id"] == key_id.to_string(),
    )
    .await;
    assert_eq!(
        failed["message"],
        "exchange key test failed: EAPI:Invalid key"
    );
    eprintln!("kraken.key.test.failed → notification listed: {took:?}");

    // Stopped by its owner: the reason is told.
    let stopped = app
        .post(
            &format!("/api/v1/bot/{bot_id}/stop"),
            Some(&user.token),
            json!({ "reason": "out of funds" }),
        )
        .await;
    assert_eq!(stopped.status, StatusCode::ACCEPTED, "{}", stopped.body);
    wait_for_events(&app, bot_id, "bot.stopped", 1).await;
    let (stop, _) =
        wait_for_notification(&app, &user, "bot_stopped", Duration::from_secs(2), |n| {
            n["bot_id"] == bot_id.to_string()
        })
        .await;
    assert!(
        stop["message"].as_str().unwrap().starts_with("bot stopped"),
        "{stop}"
    );

    // Exactly one of each, however often the broker delivered them.
    let page = notifications(&app, &user).await;
    let kinds: Vec<&str> = column(&page, "kind")
        .into_iter()
        .filter(|kind| *kind != "trade_executed")
        .collect();
    assert_eq!(
        kinds,
        ["bot_stopped", "key_test_failed", "bot_error"],
        "{page}"
    );
    assert_eq!(page["unread"], 3, "{page}");

    // Read one, then all.
    let one = error["notification_id"].as_str().unwrap();
    let read = app
        .post_empty(&format!("{NOTIFICATIONS}/{one}/read"), Some(&user.token))
        .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    let all = app
        .post_empty(&format!("{NOTIFICATIONS}/read-all"), Some(&user.token))
        .await;
    assert_eq!(all.body["marked"], 2, "{}", all.body);
    let position = all.body["position"].as_str().unwrap();
    let after = app
        .get(
            &format!("{NOTIFICATIONS}?min_position={position}"),
            Some(&user.token),
        )
        .await;
    assert_eq!(after.body["unread"], 0, "{}", after.body);
}

#[tokio::test]
async fn fills_are_told_as_each_user_chose_and_forged_alerts_to_nobody() {
    let rabbit = RabbitTest::new().await;
    let app = notifying_service(&rabbit, &[]).await;
    let everything = app.user().await;
    let errors_only = app.user().await;
    let changed = app
        .patch(
            "/api/v1/user/me",
            Some(&errors_only.token),
            json!({ "notifications": {
                "trade_fills": true, "bot_errors": true, "security": true, "in_app": "errors_only"
            } }),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);

    // Each starts a bot that buys at once.
    let mut bots = Vec::new();
    for user in [&everything, &errors_only] {
        let bot_id = bot_with(&app, user, hourly_dca()).await;
        app.post_empty(&format!("/api/v1/bot/{bot_id}/start"), Some(&user.token))
            .await;
        bots.push(bot_id);
    }
    for bot_id in &bots {
        wait_for_events(&app, *bot_id, "bot.trade.executed", 1).await;
    }
    let (fill, _) = wait_for_notification(
        &app,
        &everything,
        "trade_executed",
        Duration::from_secs(5),
        |n| n["bot_id"] == bots[0].to_string(),
    )
    .await;
    assert!(
        fill["message"].as_str().unwrap().contains("XBT/USD"),
        "{fill}"
    );

    // A bot.error alert the log never recorded, for the errors-only user:
    // a producer on the broker cannot make the ledger tell them anything.
    let forged = StatusMessage {
        event_id: Uuid::new_v4(),
        event_type: "bot.error".to_string(),
        event_version: "1.0".to_string(),
        aggregate_type: "Bot".to_string(),
        aggregate_id: bots[1].to_string(),
        sequence: 99,
        recorded_at: Utc::now(),
        user_id: Some(errors_only.id),
        correlation_id: None,
        payload: json!({ "type": "bot.error", "owner_id": errors_only.id,
                         "message": "send your key to support@evil.example" }),
    };
    rabbit
        .publish(
            Queue::BotError,
            &serde_json::to_vec(&forged).unwrap(),
            &forged.event_id.to_string(),
        )
        .await;
    let mut seen = Vec::new();
    let dead = rabbit
        .wait_for(
            &rabbit.topology.dead_letter_name(Queue::BotError),
            10,
            &mut seen,
            |m| m.message_id() == Some(forged.event_id.to_string()),
        )
        .await;
    let reason = dead.header("x-death-reason").unwrap_or_default();
    assert!(reason.starts_with("unknown event"), "{reason}");

    // A real error of the errors-only user's (a buy beyond the paper
    // account), raised after the fill and the forged alert: their list
    // holds it, and neither of those.
    let strategy = json!({ "kind": "dca", "quote_amount": "250000", "interval_secs": 3600 });
    let failing = bot_with(&app, &errors_only, strategy).await;
    app.post_empty(
        &format!("/api/v1/bot/{failing}/start"),
        Some(&errors_only.token),
    )
    .await;
    wait_for_notification(
        &app,
        &errors_only,
        "bot_error",
        Duration::from_secs(10),
        |n| n["bot_id"] == failing.to_string(),
    )
    .await;
    let page = notifications(&app, &errors_only).await;
    assert_eq!(column(&page, "kind"), ["bot_error"], "{page}");
    assert!(!page.to_string().contains("evil.example"), "{page}");
}

#[tokio::test]
async fn with_the_notifier_stopped_the_alert_queues_stay_bounded() {
    let bounds = QueueBounds {
        max_length: 3,
        dead_letter_max_length: 4,
        ..QueueBounds::default()
    };
    let rabbit = RabbitTest::with_bounds(bounds).await;
    // The service runs no notifier; the test starts and stops one.
    let app = service(&rabbit, &[]).await;
    let user = app.user().await;
    let notifier = |shutdown: CancellationToken| {
        notifier::spawn(
            app.state.commands.clone(),
            rabbit.settings(),
            notifier::NotifierSettings::default(),
            shutdown,
        )
    };

    // Key tests that fail: each a kraken.key.test.failed alert.
    let mut keys = Vec::new();
    let fail_a_key_test = |n: usize| {
        let (app, user) = (&app, &user);
        async move {
            app.failed_key_test(user, &format!("paper-key-revoked-{n}"))
                .await
        }
    };

    // With the notifier running, two are told (and acknowledged).
    let running = CancellationToken::new();
    let worker = notifier(running.clone());
    for n in 0..2 {
        keys.push(fail_a_key_test(n).await);
    }
    for key_id in &keys {
        wait_for_notification(
            &app,
            &user,
            "key_test_failed",
            Duration::from_secs(5),
            |n| n["key_id"] == key_id.to_string(),
        )
        .await;
    }
    running.cancel();
    worker.await.expect("the notifier stops");

    // Stopped: eight more, past the bound of three.
    let queue = rabbit.topology.name(Queue::KeyTestFailed);
    let dead_letters = rabbit.topology.dead_letter_name(Queue::KeyTestFailed);
    for n in 2..10 {
        keys.push(fail_a_key_test(n).await);
    }
    app.eventually(10, "the publisher to have published all ten", || async {
        rabbit.depth(&queue).await + rabbit.depth(&dead_letters).await >= 7
    })
    .await;
    assert_eq!(rabbit.depth(&queue).await, 3, "the queue holds its bound");
    // Five overflowed, oldest first, into a dead-letter queue that holds
    // four: the fifth oldest is dropped from the broker, not from the log.
    assert_eq!(rabbit.depth(&dead_letters).await, 4);

    // The depth gauge says so.
    app.eventually(15, "the depth gauge", || async {
        let metrics = app.get("/metrics", None).await;
        let text = metrics.body.as_str().unwrap_or_default().to_string();
        text.lines().any(|line| {
            line.starts_with("muckard_rabbitmq_queue_messages{")
                && line.contains(&format!("queue=\"{queue}\""))
                && line.ends_with(" 3")
        })
    })
    .await;

    // The dead letters name why: the queue's length bound.
    let overflow = rabbit.drain(&dead_letters).await;
    assert_eq!(overflow.len(), 4);
    for message in &overflow {
        assert_eq!(
            message.header("x-first-death-reason").as_deref(),
            Some("maxlen")
        );
    }
    let dropped_or_dead: Vec<String> = overflow
        .iter()
        .map(|m| m.json()["aggregate_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        dropped_or_dead,
        keys[3..7].iter().map(Uuid::to_string).collect::<Vec<_>>(),
        "the oldest overflowed first"
    );

    // Started again: the three the queue kept are told; the two told
    // before are still there, once each.
    let running = CancellationToken::new();
    let worker = notifier(running.clone());
    for key_id in &keys[7..] {
        wait_for_notification(
            &app,
            &user,
            "key_test_failed",
            Duration::from_secs(5),
            |n| n["key_id"] == key_id.to_string(),
        )
        .await;
    }
    let page = notifications(&app, &user).await;
    let told = column(&page, "key_id");
    assert_eq!(told.len(), 5, "{page}");
    for key_id in keys[..2].iter().chain(&keys[7..]) {
        assert_eq!(
            told.iter().filter(|t| **t == key_id.to_string()).count(),
            1,
            "{page}"
        );
    }
    running.cancel();
    worker.await.expect("the notifier stops");
}

#[tokio::test]
async fn a_queue_declared_with_other_bounds_is_used_and_reported() {
    // An older deployment declared the status queues without bounds.
    let old = RabbitTest::new().await;
    let connection = lapin::Connection::connect(
        &integration_tests::rabbit::rabbit_url(),
        lapin::ConnectionProperties::default(),
    )
    .await
    .expect("connect");
    let channel = connection.create_channel().await.expect("channel");
    let name = old.topology.name(Queue::BotStopped);
    channel
        .queue_delete(name.as_str().into(), Default::default())
        .await
        .expect("delete");
    channel
        .queue_declare(
            name.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("declare the old way");
    let _ = connection.close(200, "done".into()).await;

    // The service declares its topology on every connect: it does not
    // crash-loop, it serves, and it says which queue differs.
    let app = notifying_service(&old, &[]).await;
    let user = app.user().await;
    app.eventually(15, "the mismatch reported", || async {
        let metrics = app.get("/metrics", None).await;
        let text = metrics.body.as_str().unwrap_or_default().to_string();
        text.lines().any(|line| {
            line.starts_with("muckard_rabbitmq_queue_arguments_mismatched{")
                && line.contains(&format!("queue=\"{name}\""))
                && line.ends_with(" 1")
        })
    })
    .await;
    // And the notifier still works, on every queue.
    let key_id = app.failed_key_test(&user, "paper-key-revoked-old").await;
    wait_for_notification(
        &app,
        &user,
        "key_test_failed",
        Duration::from_secs(5),
        |n| n["key_id"] == key_id.to_string(),
    )
    .await;
}
