//! REST start → `bot.start_requested` → `bot.start` message → runner →
//! `bot.started` → status message → `bot_status` running → trades in
//! `trades` and `positions` → stop → `bot.stopped` (and its message).

use axum::http::StatusCode;
use integration_tests::rabbit::RabbitTest;
use messaging::Queue;
use rust_decimal::Decimal;
use serde_json::json;

use crate::flow::{bot_events, bot_with, get, service, wait_for_events, wait_for_state};

#[tokio::test]
async fn a_bot_starts_trades_and_stops_through_rabbitmq() {
    let rabbit = RabbitTest::new().await;
    // A DCA bot that buys every second, which the operator allows here.
    let app = service(&rabbit, &[("BOT_MIN_INTERVAL_SECS", "1")]).await;
    let user = app.user().await;
    let strategy = json!({ "kind": "dca", "quote_amount": "25.00", "interval_secs": 1 });
    let bot_id = bot_with(&app, &user, strategy).await;

    let started = app
        .post_empty(&format!("/api/v1/bot/{bot_id}/start"), Some(&user.token))
        .await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.body);

    // The runner marked it started because of the `bot.start` message: the
    // message id is the request event's id, and it caused the new event.
    wait_for_events(&app, bot_id, "bot.started", 1).await;
    let (request_id, _, _) = bot_events(&app, bot_id, "bot.start_requested").await[0].clone();
    let (started_id, _, started_metadata) =
        bot_events(&app, bot_id, "bot.started").await[0].clone();
    assert_eq!(started_metadata["source"], "rabbitmq");
    assert_eq!(started_metadata["causation_id"], request_id.to_string());
    assert_eq!(started_metadata["idempotency_key"], request_id.to_string());

    // The status message on `bot.started`: persistent, id = event id.
    let mut seen = Vec::new();
    let status = rabbit
        .wait_for(
            &rabbit.topology.name(Queue::BotStarted),
            30,
            &mut seen,
            |m| m.message_id() == Some(started_id.to_string()),
        )
        .await;
    assert_eq!(*status.properties.delivery_mode(), Some(2));
    let body = status.json();
    assert_eq!(body["event_type"], "bot.started");
    assert_eq!(body["aggregate_id"], bot_id.to_string());
    assert_eq!(body["payload"]["type"], "bot.started");

    wait_for_state(&app, &user, bot_id, "running").await;

    // Trades: recorded on the bot, in `trades`, and in `positions`.
    app.eventually(30, "two trades in the trades read model", || async {
        let trades = get(
            &app,
            &format!("/api/v1/trading/trades?bot_id={bot_id}"),
            &user,
        )
        .await;
        trades["trades"].as_array().is_some_and(|t| t.len() >= 2)
    })
    .await;
    let trades = get(
        &app,
        &format!("/api/v1/trading/trades?bot_id={bot_id}"),
        &user,
    )
    .await;
    for trade in trades["trades"].as_array().unwrap() {
        assert_eq!(trade["side"], "buy");
        assert_eq!(trade["pair"], "XBT/USD");
        let price: Decimal = trade["price"].as_str().unwrap().parse().unwrap();
        let quantity: Decimal = trade["quantity"].as_str().unwrap().parse().unwrap();
        // 25.00 of quote at the paper price, rounded down to 8 decimals.
        assert!((price * quantity) <= Decimal::from(25));
        assert!((price * quantity) > Decimal::new(2499, 2));
    }
    app.eventually(30, "a position in XBT/USD", || async {
        let positions = get(&app, "/api/v1/trading/positions", &user).await;
        positions["positions"].as_array().is_some_and(|p| {
            p.iter().any(|p| {
                p["pair"] == "XBT/USD"
                    && p["quantity"]
                        .as_str()
                        .and_then(|q| q.parse::<Decimal>().ok())
                        > Some(Decimal::ZERO)
            })
        })
    })
    .await;

    let stopped = app
        .post(
            &format!("/api/v1/bot/{bot_id}/stop"),
            Some(&user.token),
            json!({ "reason": "end of test" }),
        )
        .await;
    assert_eq!(stopped.status, StatusCode::ACCEPTED, "{}", stopped.body);
    wait_for_events(&app, bot_id, "bot.stopped", 1).await;
    let (stopped_id, stopped_payload, _) = bot_events(&app, bot_id, "bot.stopped").await[0].clone();
    assert_eq!(stopped_payload["reason"], "end of test");
    let mut seen = Vec::new();
    rabbit
        .wait_for(
            &rabbit.topology.name(Queue::BotStopped),
            30,
            &mut seen,
            |m| m.message_id() == Some(stopped_id.to_string()),
        )
        .await;
    wait_for_state(&app, &user, bot_id, "stopped").await;

    // The loop ended with the stop: no fill follows `bot.stopped`.
    let stream = app.stream("Bot", bot_id).await;
    let stopped_at = stream
        .iter()
        .position(|e| e.event_type == "bot.stopped")
        .unwrap();
    assert!(
        stream[stopped_at..]
            .iter()
            .all(|e| e.event_type != "bot.trade.executed"),
        "{:?}",
        stream.iter().map(|e| &e.event_type).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_failed_key_test_is_an_alert_on_its_queue() {
    let rabbit = RabbitTest::new().await;
    let app = service(&rabbit, &[]).await;
    let user = app.user().await;
    let key_id = app.failed_key_test(&user, "paper-key-soon-revoked").await;
    let mut seen = Vec::new();
    let alert = rabbit
        .wait_for(
            &rabbit.topology.name(Queue::KeyTestFailed),
            30,
            &mut seen,
            |m| m.json()["aggregate_id"] == key_id.to_string(),
        )
        .await;
    assert_eq!(*alert.properties.priority(), Some(9));
    let body = alert.json();
    assert_eq!(body["event_type"], "kraken.key.test.failed");
    assert_eq!(body["user_id"], user.id.to_string());
    assert_eq!(body["payload"]["reason"], "EAPI:Invalid key");
}
