//! Fair across users: 200 triggers from one user on a slow exchange (every
//! order takes 2.5 s) do not hold up another user's start or stop, each
//! done within 2 s, nor another user's trigger on the same queue (done in
//! its own order's time).

use std::time::{Duration, Instant};

use integration_tests::rabbit::RabbitTest;
use messaging::Queue;
use serde_json::json;
use uuid::Uuid;

use crate::doubles::{service_on, FaultyExchange};
use crate::flow::{bot_events, bot_with, hourly_dca, wait_for_state};

const FLOOD: usize = 200;

#[tokio::test]
async fn a_flood_of_one_users_triggers_does_not_delay_another_users_start_or_stop() {
    let rabbit = RabbitTest::new().await;
    let app = service_on(&rabbit, FaultyExchange::slow(Duration::from_millis(2500))).await;
    let (flooder, other) = (app.user().await, app.user().await);
    let flooded = bot_with(&app, &flooder, hourly_dca()).await;
    let calm = bot_with(&app, &other, hourly_dca()).await;
    app.post_empty(
        &format!("/api/v1/bot/{flooded}/start"),
        Some(&flooder.token),
    )
    .await;
    wait_for_state(&app, &flooder, flooded, "running").await;

    // 200 triggers, as an external producer sends them.
    for n in 0..FLOOD {
        let trigger =
            json!({ "bot_id": flooded, "user_id": flooder.id, "trigger_id": Uuid::new_v4() });
        rabbit
            .publish(
                Queue::BotTriggerTrade,
                trigger.to_string().as_bytes(),
                &format!("flood-{n}"),
            )
            .await;
    }
    // Every trigger is on the queue; wait until the flooder's lane is
    // trading them (its start bought once, then a trigger's order).
    app.eventually(30, "the flood being traded", || async {
        bot_events(&app, flooded, "bot.trade.executed").await.len() >= 2
    })
    .await;

    let asked = Instant::now();
    app.post_empty(&format!("/api/v1/bot/{calm}/start"), Some(&other.token))
        .await;
    wait_until(&app, calm, "bot.started").await;
    let start_took = asked.elapsed();

    // On the flooded queue itself, the other user's trigger is not queued
    // behind the flood: it waits only for its own order (2.5 s).
    let asked = Instant::now();
    let triggered = app
        .post_empty(
            &format!("/api/v1/bot/{calm}/trigger-trade"),
            Some(&other.token),
        )
        .await;
    let trigger_id = triggered.body["trigger_id"].as_str().unwrap().to_string();
    app.eventually(30, "the other user's trigger traded", || async {
        bot_events(&app, calm, "bot.trade.executed")
            .await
            .iter()
            .any(|(_, payload, _)| payload["fill"]["trigger_id"] == trigger_id.as_str())
    })
    .await;
    let trigger_took = asked.elapsed();

    let asked = Instant::now();
    app.post(
        &format!("/api/v1/bot/{calm}/stop"),
        Some(&other.token),
        json!({ "reason": "enough" }),
    )
    .await;
    wait_until(&app, calm, "bot.stopped").await;
    let stop_took = asked.elapsed();

    let traded = bot_events(&app, flooded, "bot.trade.executed").await.len();
    let recorded = bot_events(&app, flooded, "bot.trade_triggered").await.len();
    eprintln!(
        "during the flood: start {start_took:?}, trigger {trigger_took:?}, stop {stop_took:?}; \
         {recorded} of {FLOOD} triggers recorded, {traded} of the flooder's {} orders placed",
        FLOOD + 1
    );
    assert!(
        start_took < Duration::from_secs(2),
        "start took {start_took:?}"
    );
    assert!(
        stop_took < Duration::from_secs(2),
        "stop took {stop_took:?}"
    );
    assert!(traded < FLOOD, "the flood was still being traded");
}

/// Polls (no deadline of its own: the caller measures) up to 30 s for the
/// bot's first event of `event_type`.
async fn wait_until(app: &integration_tests::TestApp, bot_id: Uuid, event_type: &str) {
    app.eventually(30, event_type, || async {
        !bot_events(app, bot_id, event_type).await.is_empty()
    })
    .await;
}
