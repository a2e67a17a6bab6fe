//! The overflow attack of issue 15 against the real runner: a DCA bot whose
//! quote amount is `Decimal::MAX`. The edge refuses it with a 422; written
//! into the log past the edge and then started and triggered, it is a
//! `bot.error` and a `bot.trade.skipped` with the reason, and the runner
//! goes on serving everyone else (before, the paper exchange's `cost + fee`
//! panicked and took the runner's consumer with it).

use axum::http::StatusCode;
use chrono::Utc;
use domain::bot::BotEvent;
use domain::{Decimal, Pair, Strategy};
use serde_json::json;
use uuid::Uuid;

use crate::flow::{bot_events, bot_with, hourly_dca, service, wait_for_events, wait_for_state};
use integration_tests::rabbit::RabbitTest;
use integration_tests::{TestApp, TestUser};

const DECIMAL_MAX: &str = "79228162514264337593543950335";

#[tokio::test]
async fn an_amount_beyond_the_bounds_is_refused_and_harms_no_other_bot() {
    let rabbit = RabbitTest::new().await;
    let app = service(&rabbit, &[]).await;
    let attacker = app.user().await;
    let other = app.user().await;
    let key_id = app.tested_key(&attacker).await;

    // At the edge: a 422 naming the field, nothing recorded.
    let attack = json!({ "kind": "dca", "quote_amount": DECIMAL_MAX, "interval_secs": 60 });
    let refused = app
        .post(
            "/api/v1/bot",
            Some(&attacker.token),
            json!({ "key_id": key_id, "pair": "XBT/USD", "strategy": attack }),
        )
        .await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.body
    );
    assert_eq!(refused.field(), Some("strategy.quote_amount"));

    // Past the edge, as an attacker who got a bad event into the log would.
    let bot_id = configured_past_the_edge(&app, &attacker, key_id).await;
    let started = app
        .post_empty(
            &format!("/api/v1/bot/{bot_id}/start"),
            Some(&attacker.token),
        )
        .await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.body);
    wait_for_state(&app, &attacker, bot_id, "running").await;
    // The loop's first tick (a DCA bot buys at once) refuses to trade.
    wait_for_events(&app, bot_id, "bot.error", 1).await;
    let triggered = app
        .post_empty(
            &format!("/api/v1/bot/{bot_id}/trigger-trade"),
            Some(&attacker.token),
        )
        .await;
    assert_eq!(triggered.status, StatusCode::ACCEPTED, "{}", triggered.body);
    let trigger_id = triggered.body["trigger_id"].as_str().unwrap().to_string();

    // Another user's bot starts and trades within 10 s of the trigger.
    let others_bot = bot_with(&app, &other, hourly_dca()).await;
    let started = app
        .post_empty(
            &format!("/api/v1/bot/{others_bot}/start"),
            Some(&other.token),
        )
        .await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.body);
    app.eventually(10, "the other user's bot to trade", || async {
        !bot_events(&app, others_bot, "bot.trade.executed")
            .await
            .is_empty()
    })
    .await;

    // The attack bot's trigger is a skip with the reason, beside its errors.
    app.eventually(30, "the trigger's skip", || async {
        bot_events(&app, bot_id, "bot.trade.skipped")
            .await
            .iter()
            .any(|(_, payload, _)| payload["trigger_id"] == trigger_id)
    })
    .await;
    let reason = "not trading a strategy outside the bounds: \
                  strategy.quote_amount: must be at most 1000000";
    let skipped = bot_events(&app, bot_id, "bot.trade.skipped").await;
    assert!(
        skipped
            .iter()
            .any(|(_, payload, _)| payload["reason"] == reason),
        "{skipped:?}"
    );
    let errors = bot_events(&app, bot_id, "bot.error").await;
    assert!(
        errors
            .iter()
            .all(|(_, payload, _)| payload["message"] == reason),
        "{errors:?}"
    );
    assert!(bot_events(&app, bot_id, "bot.trade.executed")
        .await
        .is_empty());
}

/// Appends a `bot.configured` with a quote amount of `Decimal::MAX` for
/// `owner` on `key_id` straight into the log (the application would refuse
/// it), and returns the bot's id.
async fn configured_past_the_edge(app: &TestApp, owner: &TestUser, key_id: Uuid) -> Uuid {
    let bot_id = Uuid::new_v4();
    let event = BotEvent::BotConfigured {
        bot_id,
        owner_id: owner.id,
        key_id,
        pair: Pair::parse("XBT/USD").unwrap(),
        strategy: Strategy::Dca {
            quote_amount: Decimal::MAX,
            interval_secs: 60,
        },
        at: Utc::now(),
    };
    let metadata = json!({
        "command_id": Uuid::new_v4(),
        "command_type": "bot.configure",
        "source": "rest",
        "user_id": owner.id,
        "role": "user",
    });
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
         payload, metadata) VALUES ('Bot', $1, 1, 'bot.configured', '1.0', $2::json, $3::json)",
    )
    .bind(bot_id.to_string())
    .bind(serde_json::to_string(&event).unwrap())
    .bind(metadata.to_string())
    .execute(&app.pool)
    .await
    .expect("append the bad event");
    bot_id
}
