//! RabbitMQ stopped and restarted mid-flow (`rabbitmqctl stop_app` /
//! `start_app`): the service starts and serves REST with the broker down,
//! its consumers and publisher reconnect, and nothing recorded meanwhile is
//! lost. A target of its own, since it stops the shared broker.

// The messaging target's steps; this target uses some of them.
#[path = "../messaging/flow.rs"]
#[allow(dead_code)]
mod flow;

use std::process::Command;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use integration_tests::rabbit::{rabbit_url, RabbitTest};
use lapin::{Connection, ConnectionProperties};
use messaging::Queue;
use serde_json::json;
use uuid::Uuid;

use flow::{bot_events, bot_with, service, wait_for_events, wait_for_state};

fn rabbitmqctl(args: &[&str]) {
    let status = Command::new("rabbitmqctl")
        .args(args)
        .status()
        .expect("run rabbitmqctl");
    assert!(status.success(), "rabbitmqctl {args:?} failed");
}

/// Stops the broker; starts it again when dropped, even if the test fails,
/// so no other test is left without it.
struct StoppedBroker {
    restarted: bool,
}

impl StoppedBroker {
    fn stop() -> StoppedBroker {
        rabbitmqctl(&["stop_app"]);
        StoppedBroker { restarted: false }
    }

    /// Starts the broker and waits, up to two minutes, until it accepts
    /// connections again.
    async fn start(mut self) {
        rabbitmqctl(&["start_app"]);
        self.restarted = true;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let attempt = tokio::time::timeout(
                Duration::from_secs(5),
                Connection::connect(&rabbit_url(), ConnectionProperties::default()),
            )
            .await;
            if let Ok(Ok(connection)) = attempt {
                let _ = connection.close(200, "up".into()).await;
                return;
            }
            assert!(
                Instant::now() < deadline,
                "rabbitmq did not come back within 120 s"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for StoppedBroker {
    fn drop(&mut self) {
        if !self.restarted {
            let _ = Command::new("rabbitmqctl").arg("start_app").status();
        }
    }
}

#[tokio::test]
async fn nothing_is_lost_while_rabbitmq_restarts() {
    let rabbit = RabbitTest::new().await;

    // The service starts, and serves REST, with the broker down.
    let down = StoppedBroker::stop();
    let began = Instant::now();
    // A DCA bot that buys every second (below the default minimum).
    let app = service(&rabbit, &[("BOT_MIN_INTERVAL_SECS", "1")]).await;
    let health = app.get("/health", None).await;
    assert_eq!(health.status, StatusCode::OK);
    assert!(
        began.elapsed() < Duration::from_secs(30),
        "{:?}",
        began.elapsed()
    );
    let user = app.user().await;
    let strategy = json!({ "kind": "dca", "quote_amount": "10.00", "interval_secs": 1 });
    let bot_id = bot_with(&app, &user, strategy).await;
    let started = app
        .post_empty(&format!("/api/v1/bot/{bot_id}/start"), Some(&user.token))
        .await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.body);
    wait_for_state(&app, &user, bot_id, "starting").await;
    assert!(bot_events(&app, bot_id, "bot.started").await.is_empty());

    // Back up: the waiting start is carried out, the bot trades.
    down.start().await;
    wait_for_state(&app, &user, bot_id, "running").await;
    wait_for_events(&app, bot_id, "bot.trade.executed", 1).await;

    // Down again mid-flow: a trade trigger waits in the log.
    let down = StoppedBroker::stop();
    let triggered = app
        .post_empty(
            &format!("/api/v1/bot/{bot_id}/trigger-trade"),
            Some(&user.token),
        )
        .await;
    assert_eq!(triggered.status, StatusCode::ACCEPTED, "{}", triggered.body);
    let trigger_id: Uuid = triggered.body["trigger_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    down.start().await;
    app.eventually(60, "the trigger traded after the restart", || async {
        bot_events(&app, bot_id, "bot.trade.executed")
            .await
            .iter()
            .any(|(_, payload, _)| payload["fill"]["trigger_id"] == trigger_id.to_string())
    })
    .await;

    // And once more for the stop.
    let down = StoppedBroker::stop();
    let stopped = app
        .post(
            &format!("/api/v1/bot/{bot_id}/stop"),
            Some(&user.token),
            json!({ "reason": "broker test" }),
        )
        .await;
    assert_eq!(stopped.status, StatusCode::ACCEPTED, "{}", stopped.body);
    down.start().await;
    wait_for_events(&app, bot_id, "bot.stopped", 1).await;
    wait_for_state(&app, &user, bot_id, "stopped").await;

    // Every status event in the log reached its queue, once its
    // publisher caught up with the log.
    app.eventually(60, "the publisher caught up with the log", || async {
        let (checkpoint, head): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT global_position FROM subscriber_checkpoints \
                      WHERE subscriber = 'rabbitmq_publisher'), \
                    (SELECT max(global_position) FROM events)",
        )
        .fetch_one(&app.pool)
        .await
        .unwrap_or((0, 1));
        checkpoint == head
    })
    .await;
    for (queue, event_type) in [
        (Queue::BotStarted, "bot.started"),
        (Queue::BotStopped, "bot.stopped"),
        (Queue::BotError, "bot.error"),
    ] {
        let published: Vec<String> = rabbit
            .drain(&rabbit.topology.name(queue))
            .await
            .iter()
            .filter_map(|m| m.message_id())
            .collect();
        for (event_id, _, _) in bot_events(&app, bot_id, event_type).await {
            assert!(
                published.contains(&event_id.to_string()),
                "{event_type} {event_id} missing from its queue: {published:?}"
            );
        }
    }
    assert_eq!(bot_events(&app, bot_id, "bot.started").await.len(), 1);
    let with_trigger = bot_events(&app, bot_id, "bot.trade.executed")
        .await
        .iter()
        .filter(|(_, payload, _)| payload["fill"]["trigger_id"] == trigger_id.to_string())
        .count();
    assert_eq!(with_trigger, 1);
    // Nothing was dead-lettered.
    for queue in Queue::COMMANDS {
        let dead = rabbit.drain(&rabbit.topology.dead_letter_name(queue)).await;
        assert!(dead.is_empty(), "{queue:?}: {} dead letters", dead.len());
    }
}
