//! The same command delivered twice has one effect.

use integration_tests::rabbit::RabbitTest;
use messaging::{BotCommandMessage, Queue};
use serde_json::json;
use uuid::Uuid;

use crate::flow::{bot_events, bot_with, hourly_dca, service, wait_for_events, wait_for_state};

/// The message the publisher sent for a bot's request event, rebuilt from
/// the log: same body, same message id.
async fn republish(
    app: &integration_tests::TestApp,
    rabbit: &RabbitTest,
    queue: Queue,
    bot_id: Uuid,
    event_type: &str,
) {
    let (event_id, sequence, payload): (Uuid, i64, String) = sqlx::query_as(
        "SELECT event_id, sequence, payload::text FROM events \
         WHERE aggregate_type = 'Bot' AND aggregate_id = $1 AND event_type = $2 \
         ORDER BY sequence LIMIT 1",
    )
    .bind(bot_id.to_string())
    .bind(event_type)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let payload: serde_json::Value = serde_json::from_str(&payload).unwrap();
    let message = BotCommandMessage {
        bot_id,
        user_id: payload["requested_by"]
            .as_str()
            .map(|id| id.parse().unwrap()),
        sequence: Some(sequence),
        trigger_id: payload["trigger_id"].as_str().map(|id| id.parse().unwrap()),
        reason: None,
        requested_at: None,
    };
    let body = serde_json::to_vec(&message).unwrap();
    rabbit.publish(queue, &body, &event_id.to_string()).await;
}

#[tokio::test]
async fn a_duplicated_delivery_has_one_effect() {
    let rabbit = RabbitTest::new().await;
    let app = service(&rabbit, &[]).await;
    let user = app.user().await;
    let bot_id = bot_with(&app, &user, hourly_dca()).await;
    let other_bot = bot_with(&app, &user, hourly_dca()).await;
    app.post_empty(&format!("/api/v1/bot/{bot_id}/start"), Some(&user.token))
        .await;
    wait_for_state(&app, &user, bot_id, "running").await;
    // The hourly DCA bot bought once when it started.
    wait_for_events(&app, bot_id, "bot.trade.executed", 1).await;

    // A trade trigger, carried out once.
    let triggered = app
        .post_empty(
            &format!("/api/v1/bot/{bot_id}/trigger-trade"),
            Some(&user.token),
        )
        .await;
    let trigger_id = triggered.body["trigger_id"].as_str().unwrap().to_string();
    wait_for_events(&app, bot_id, "bot.trade.executed", 2).await;

    // The trigger and the start delivered again, twice each.
    for _ in 0..2 {
        republish(
            &app,
            &rabbit,
            Queue::BotTriggerTrade,
            bot_id,
            "bot.trade_triggered",
        )
        .await;
        republish(
            &app,
            &rabbit,
            Queue::BotStart,
            bot_id,
            "bot.start_requested",
        )
        .await;
    }
    // Markers behind the duplicates on the same queues: a new trigger from
    // an external producer, and the start of another bot. Each queue is
    // consumed in order, so once the markers took effect the duplicates
    // were handled.
    let marker = Uuid::new_v4();
    let trigger = json!({ "bot_id": bot_id, "user_id": user.id, "trigger_id": marker });
    rabbit
        .publish(
            Queue::BotTriggerTrade,
            trigger.to_string().as_bytes(),
            "marker-trigger",
        )
        .await;
    let start = json!({ "bot_id": other_bot, "user_id": user.id });
    rabbit
        .publish(
            Queue::BotStart,
            start.to_string().as_bytes(),
            "marker-start",
        )
        .await;
    wait_for_events(&app, bot_id, "bot.trade.executed", 3).await;
    wait_for_state(&app, &user, other_bot, "running").await;

    let fills = bot_events(&app, bot_id, "bot.trade.executed").await;
    let by_trigger = |id: &str| {
        fills
            .iter()
            .filter(|(_, payload, _)| payload["fill"]["trigger_id"] == id)
            .count()
    };
    assert_eq!(
        by_trigger(&trigger_id),
        1,
        "the repeated trigger traded once"
    );
    assert_eq!(by_trigger(&marker.to_string()), 1);
    assert_eq!(fills.len(), 3, "start buy, trigger, marker; nothing else");
    assert_eq!(bot_events(&app, bot_id, "bot.started").await.len(), 1);
    assert_eq!(
        bot_events(&app, bot_id, "bot.trade_triggered").await.len(),
        2
    );
    // Nothing was dead-lettered: a duplicate is not an error.
    assert!(rabbit
        .drain(&rabbit.topology.dead_letter_name(Queue::BotTriggerTrade))
        .await
        .is_empty());
    assert!(rabbit
        .drain(&rabbit.topology.dead_letter_name(Queue::BotStart))
        .await
        .is_empty());
}
