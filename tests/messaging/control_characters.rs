//! A NUL (or any control character) in a command message's `message_id`,
//! `correlation_id`, `traceparent` header or body is refused: the message
//! is dead-lettered naming the field, nothing of it reaches the log, and
//! REST clients sending commands meanwhile get no 5xx.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use integration_tests::rabbit::RabbitTest;
use lapin::types::{AMQPValue, FieldTable};
use lapin::BasicProperties;
use messaging::Queue;
use serde_json::json;

use crate::flow::{bot_events, bot_with, hourly_dca, service, wait_for_state};

const REST_CLIENTS: usize = 32;

fn properties(message_id: &str) -> BasicProperties {
    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_message_id(message_id.into())
}

#[tokio::test]
async fn a_control_character_in_a_command_message_is_dead_lettered_naming_the_field() {
    let rabbit = RabbitTest::new().await;
    let app = service(&rabbit, &[("RATE_LIMIT_PER_SECOND", "100000")]).await;
    let user = app.user().await;
    let bot_id = bot_with(&app, &user, hourly_dca()).await;
    let start = json!({ "bot_id": bot_id, "user_id": user.id }).to_string();
    let traceparent = FieldTable::from(BTreeMap::from([(
        "traceparent".into(),
        AMQPValue::LongString("00-4bf92f3577b34da6a3ce929d0e0e4736-\u{0}0f067aa0ba902b7-01".into()),
    )]));
    let poisoned = [
        (
            Queue::BotStart,
            properties("start-\u{0}-id"),
            start.clone(),
            "malformed: message_id contains a control character",
        ),
        (
            Queue::BotStart,
            properties("nul-correlation").with_correlation_id("corr\u{0}".into()),
            start.clone(),
            "malformed: correlation_id contains a control character",
        ),
        (
            Queue::BotStart,
            properties("nul-traceparent").with_headers(traceparent),
            start.clone(),
            "malformed: header traceparent contains a control character",
        ),
        (
            Queue::BotStop,
            properties("nul-body"),
            json!({ "bot_id": bot_id, "user_id": user.id, "reason": "stop\u{0}now" }).to_string(),
            "malformed: body field `reason` contains a control character",
        ),
    ];

    // 32 REST clients send commands the whole time.
    let done = AtomicBool::new(false);
    let (answered, server_errors) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let clients = futures::future::join_all((0..REST_CLIENTS).map(|n| {
        let (app, user, done) = (&app, &user, &done);
        let (answered, server_errors) = (&answered, &server_errors);
        async move {
            let mut round = 0;
            // At least a few rounds each, however quickly the poison goes.
            while round < 5 || !done.load(Ordering::SeqCst) {
                let response = app
                    .patch(
                        "/api/v1/user/me",
                        Some(&user.token),
                        json!({ "display_name": format!("client {n} round {round}") }),
                    )
                    .await;
                answered.fetch_add(1, Ordering::SeqCst);
                if response.status.is_server_error() {
                    server_errors.fetch_add(1, Ordering::SeqCst);
                }
                round += 1;
            }
        }
    }));
    let messages = async {
        for (queue, properties, body, _) in &poisoned {
            rabbit
                .publish_with(*queue, body.as_bytes(), properties.clone())
                .await;
        }
        // Behind the poison, a clean start: the consumer carried on.
        rabbit
            .publish(Queue::BotStart, start.as_bytes(), "clean-start")
            .await;
        wait_for_state(&app, &user, bot_id, "running").await;
        for (queue, _, _, reason) in &poisoned {
            let mut seen = Vec::new();
            rabbit
                .wait_for(
                    &rabbit.topology.dead_letter_name(*queue),
                    30,
                    &mut seen,
                    |m| m.header("x-death-reason").as_deref() == Some(*reason),
                )
                .await;
        }
        done.store(true, Ordering::SeqCst);
    };
    futures::future::join(clients, messages).await;

    let answered = answered.load(Ordering::SeqCst);
    eprintln!("{answered} REST answers while the poison was consumed");
    assert!(answered >= 5 * REST_CLIENTS);
    assert_eq!(server_errors.load(Ordering::SeqCst), 0);
    // Only the clean start was recorded; no stop was asked for.
    assert_eq!(
        bot_events(&app, bot_id, "bot.start_requested").await.len(),
        1
    );
    assert!(bot_events(&app, bot_id, "bot.stop_requested")
        .await
        .is_empty());
    let nul_in_log: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE metadata::text LIKE '%\\u0000%' \
         OR payload::text LIKE '%\\u0000%'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(nul_in_log, 0);
}
