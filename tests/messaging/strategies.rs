//! The strategies running in the trading loop on the paper exchange: the
//! threshold strategy skips (with its reason), buys and sells as the price
//! moves; an idle threshold bot records one skip however the price moves;
//! an exchange refusal is a `bot.error` alert on its queue.

use domain::Pair;
use integration_tests::rabbit::RabbitTest;
use messaging::Queue;
use rust_decimal::Decimal;
use serde_json::json;

use crate::doubles::{service_on, MovingPriceExchange};
use crate::flow::{bot_events, bot_with, get, service, wait_for_events, wait_for_state};

#[tokio::test]
async fn the_threshold_strategy_buys_low_and_sells_high() {
    let rabbit = RabbitTest::new().await;
    let app = service(&rabbit, &[]).await;
    let xbt = Pair::parse("XBT/USD").unwrap();
    app.exchange.set_price(&xbt, Some(Decimal::from(60_000)));
    let user = app.user().await;
    let strategy = json!({
        "kind": "threshold", "buy_below": "50000", "sell_above": "55000", "quote_amount": "100"
    });
    let bot_id = bot_with(&app, &user, strategy).await;
    app.post_empty(&format!("/api/v1/bot/{bot_id}/start"), Some(&user.token))
        .await;
    wait_for_state(&app, &user, bot_id, "running").await;

    // Above buy_below: a skip with the reason, recorded once however many
    // ticks pass.
    wait_for_events(&app, bot_id, "bot.trade.skipped", 1).await;
    let skipped = bot_events(&app, bot_id, "bot.trade.skipped").await;
    assert_eq!(
        skipped[0].1["reason"],
        "price 60000 is above buy_below 50000"
    );

    app.exchange.set_price(&xbt, Some(Decimal::from(40_000)));
    wait_for_events(&app, bot_id, "bot.trade.executed", 1).await;
    app.exchange.set_price(&xbt, Some(Decimal::from(60_000)));
    wait_for_events(&app, bot_id, "bot.trade.executed", 2).await;

    let fills = bot_events(&app, bot_id, "bot.trade.executed").await;
    let (bought, sold) = (&fills[0].1["fill"], &fills[1].1["fill"]);
    assert_eq!(bought["side"], "buy");
    assert_eq!(bought["price"], "40000");
    assert_eq!(bought["quantity"], "0.0025");
    assert_eq!(sold["side"], "sell");
    assert_eq!(sold["price"], "60000");
    assert_eq!(sold["quantity"], "0.0025");
    // Flat again, the position is closed with its realised P&L: bought for
    // 100 (+0.26 fee), sold for 150 (−0.39 fee).
    app.eventually(30, "a closed position with its profit", || async {
        let positions = get(&app, "/api/v1/trading/positions", &user).await;
        positions["positions"].as_array().is_some_and(|p| {
            p.iter().any(|p| {
                p["pair"] == "XBT/USD"
                    && p["quantity"]
                        .as_str()
                        .and_then(|q| q.parse::<Decimal>().ok())
                        == Some(Decimal::ZERO)
                    && p["realised_pnl"]
                        .as_str()
                        .and_then(|q| q.parse::<Decimal>().ok())
                        > Some(Decimal::from(49))
            })
        })
    })
    .await;
    // Two trades; after the sell, holding nothing at 60000 is a skip again.
    assert_eq!(
        bot_events(&app, bot_id, "bot.trade.executed").await.len(),
        2
    );
}

#[tokio::test]
async fn an_idle_threshold_bot_records_one_skip_while_the_price_moves_every_tick() {
    let rabbit = RabbitTest::new().await;
    let exchange = MovingPriceExchange::from(Decimal::new(612_345, 1));
    let app = service_on(&rabbit, exchange.clone()).await;
    let user = app.user().await;
    let strategy = json!({
        "kind": "threshold", "buy_below": "50000", "sell_above": "70000", "quote_amount": "100"
    });
    let bot_id = bot_with(&app, &user, strategy).await;
    app.post_empty(&format!("/api/v1/bot/{bot_id}/start"), Some(&user.token))
        .await;
    wait_for_state(&app, &user, bot_id, "running").await;
    wait_for_events(&app, bot_id, "bot.trade.skipped", 1).await;
    // Many ticks later, each at a price half a unit higher than the last,
    let seen = exchange.looks();
    app.eventually(30, "30 more ticks", || async {
        exchange.looks() >= seen + 30
    })
    .await;
    // the decision (above buy_below) has not changed: still one skip, whose
    // reason names the price it was first made at.
    let skipped = bot_events(&app, bot_id, "bot.trade.skipped").await;
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!(
        skipped[0].1["reason"],
        "price 61234.5 is above buy_below 50000"
    );
    assert!(bot_events(&app, bot_id, "bot.error").await.is_empty());
}

#[tokio::test]
async fn an_exchange_refusal_is_a_bot_error_alert() {
    let rabbit = RabbitTest::new().await;
    let app = service(&rabbit, &[]).await;
    let user = app.user().await;
    // More than the paper account's 100000 USD.
    let strategy = json!({ "kind": "dca", "quote_amount": "250000", "interval_secs": 3600 });
    let bot_id = bot_with(&app, &user, strategy).await;
    app.post_empty(&format!("/api/v1/bot/{bot_id}/start"), Some(&user.token))
        .await;
    wait_for_events(&app, bot_id, "bot.error", 1).await;
    let (error_id, error, _) = bot_events(&app, bot_id, "bot.error").await[0].clone();
    assert_eq!(
        error["message"],
        "exchange refused: EOrder:Insufficient funds"
    );
    let mut seen = Vec::new();
    let alert = rabbit
        .wait_for(&rabbit.topology.name(Queue::BotError), 30, &mut seen, |m| {
            m.message_id() == Some(error_id.to_string())
        })
        .await;
    assert_eq!(*alert.properties.priority(), Some(9));
    assert_eq!(alert.json()["user_id"], user.id.to_string());
    // The bot keeps running; its status shows the error.
    wait_for_state(&app, &user, bot_id, "running").await;
    app.eventually(30, "the error in the bot's status", || async {
        let status = get(&app, &format!("/api/v1/bot/{bot_id}/status"), &user).await;
        status["last_error"] == "exchange refused: EOrder:Insufficient funds"
    })
    .await;
}
