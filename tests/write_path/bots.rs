use axum::http::StatusCode;
use chrono::Utc;
use command_side::CommandMetadata;
use domain::bot::BotCommand;
use domain::{Actor, Role};
use integration_tests::TestApp;
use serde_json::json;

#[tokio::test]
async fn configure_validates_pair_strategy_and_key() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let stranger = app.user().await;
    let key_id = app.connected_key(&user, "paper-key-untested").await;
    let foreign_key = app.connected_key(&stranger, "paper-key-foreign").await;
    let dca = json!({ "kind": "dca", "quote_amount": "25.00", "interval_secs": 60 });
    let cases = vec![
        (
            json!({ "key_id": key_id, "pair": "xbt-usd", "strategy": dca }),
            "pair",
        ),
        (
            json!({ "key_id": key_id, "pair": "XBT/USD", "strategy": { "kind": "dca", "quote_amount": "0", "interval_secs": 60 } }),
            "strategy.quote_amount",
        ),
        (
            json!({ "key_id": key_id, "pair": "XBT/USD", "strategy": { "kind": "dca", "quote_amount": "25", "interval_secs": 0 } }),
            "strategy.interval_secs",
        ),
        (
            json!({ "key_id": key_id, "pair": "XBT/USD", "strategy": { "kind": "threshold", "buy_below": "50000", "sell_above": "40000", "quote_amount": "10" } }),
            "strategy.sell_above",
        ),
        (
            json!({ "key_id": key_id, "pair": "XBT/USD", "strategy": { "kind": "martingale" } }),
            "strategy.kind",
        ),
        (
            json!({ "key_id": key_id, "pair": "XBT/USD", "strategy": { "kind": "dca", "quote_amount": 25.5, "interval_secs": 60 } }),
            "strategy",
        ),
        (
            json!({ "key_id": "nope", "pair": "XBT/USD", "strategy": dca }),
            "key_id",
        ),
        (
            json!({ "key_id": foreign_key, "pair": "XBT/USD", "strategy": dca }),
            "key_id",
        ),
        (
            json!({ "key_id": uuid::Uuid::new_v4(), "pair": "XBT/USD", "strategy": dca }),
            "key_id",
        ),
        (json!({ "pair": "XBT/USD", "strategy": dca }), "key_id"),
    ];
    for (body, field) in cases {
        let response = app
            .post("/api/v1/bot", Some(&user.token), body.clone())
            .await;
        assert_eq!(
            response.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            response.body
        );
        assert_eq!(response.field(), Some(field), "{body}: {}", response.body);
    }
    let ok = app
        .post(
            "/api/v1/bot",
            Some(&user.token),
            json!({ "key_id": key_id, "pair": "ETH/EUR", "strategy": { "kind": "threshold", "buy_below": "1800.5", "sell_above": "2100", "quote_amount": "50" } }),
        )
        .await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.body);
    let bot_id: uuid::Uuid = ok.body["bot_id"].as_str().unwrap().parse().unwrap();
    let events = app.stream("Bot", bot_id).await;
    let payload = events[0].payload_json();
    assert_eq!(payload["type"], "bot.configured");
    assert_eq!(
        payload["strategy"]["buy_below"], "1800.5",
        "decimals stay exact strings"
    );
}

/// The money bounds a user may configure, each refused at the edge with a
/// 422 naming the field, and nothing recorded.
#[tokio::test]
async fn configure_refuses_money_outside_the_bounds() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let key_id = app.connected_key(&user, "paper-key-bounds").await;
    let dca = |quote_amount: &str, interval_secs: u64| json!({ "kind": "dca", "quote_amount": quote_amount, "interval_secs": interval_secs });
    let threshold = |buy_below: &str, sell_above: &str| json!({ "kind": "threshold", "buy_below": buy_below, "sell_above": sell_above, "quote_amount": "10" });
    let max = "79228162514264337593543950335";
    let cases = [
        (
            dca(max, 60),
            "strategy.quote_amount",
            "must be at most 1000000",
        ),
        (
            dca("1000000.01", 60),
            "strategy.quote_amount",
            "must be at most 1000000",
        ),
        (
            dca("-1", 60),
            "strategy.quote_amount",
            "must be greater than zero",
        ),
        (
            dca("0.000000001", 60),
            "strategy.quote_amount",
            "must have at most 8 decimal places",
        ),
        (
            dca("25", 59),
            "strategy.interval_secs",
            "must be between 60 and 2592000",
        ),
        (
            dca("25", 2_592_001),
            "strategy.interval_secs",
            "must be between 60 and 2592000",
        ),
        (
            threshold("0", "10"),
            "strategy.buy_below",
            "must be greater than zero",
        ),
        (
            threshold(max, max),
            "strategy.buy_below",
            "must be at most 1000000000000",
        ),
        (
            threshold("10", "1000000000001"),
            "strategy.sell_above",
            "must be at most 1000000000000",
        ),
        (
            threshold("10", "10"),
            "strategy.sell_above",
            "must be greater than buy_below",
        ),
    ];
    for (strategy, field, reason) in cases {
        let body = json!({ "key_id": key_id, "pair": "XBT/USD", "strategy": strategy });
        let response = app
            .post("/api/v1/bot", Some(&user.token), body.clone())
            .await;
        assert_eq!(
            response.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            response.body
        );
        assert_eq!(response.field(), Some(field), "{body}: {}", response.body);
        assert_eq!(
            response.body["error"]["reason"], reason,
            "{body}: {}",
            response.body
        );
    }
    // Beyond what a decimal holds at all: unreadable, still a 422.
    let body = json!({ "key_id": key_id, "pair": "XBT/USD",
        "strategy": dca("79228162514264337593543950336", 60) });
    let response = app.post("/api/v1/bot", Some(&user.token), body).await;
    assert_eq!(
        response.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        response.body
    );
    assert!(
        response.field().is_some_and(|f| f.starts_with("strategy")),
        "{}",
        response.body
    );
    let configured: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'bot.configured'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(configured, 0);
}

/// An operator's `BOT_MAX_QUOTE_AMOUNT` and `BOT_MIN_INTERVAL_SECS` are
/// the bounds users meet.
#[tokio::test]
async fn the_operator_chooses_the_largest_amount_and_the_shortest_interval() {
    let app = TestApp::spawn_with(&[
        ("BOT_MAX_QUOTE_AMOUNT", "100"),
        ("BOT_MIN_INTERVAL_SECS", "5"),
    ])
    .await;
    let user = app.user().await;
    let key_id = app.connected_key(&user, "paper-key-operator").await;
    let configure = |quote_amount: &str, interval_secs: u64| {
        json!({ "key_id": key_id, "pair": "XBT/USD",
            "strategy": { "kind": "dca", "quote_amount": quote_amount, "interval_secs": interval_secs } })
    };
    let too_much = app
        .post("/api/v1/bot", Some(&user.token), configure("100.01", 5))
        .await;
    assert_eq!(
        too_much.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        too_much.body
    );
    assert_eq!(too_much.body["error"]["reason"], "must be at most 100");
    let too_quick = app
        .post("/api/v1/bot", Some(&user.token), configure("100", 4))
        .await;
    assert_eq!(
        too_quick.field(),
        Some("strategy.interval_secs"),
        "{}",
        too_quick.body
    );
    let edge = app
        .post("/api/v1/bot", Some(&user.token), configure("100", 5))
        .await;
    assert_eq!(edge.status, StatusCode::CREATED, "{}", edge.body);
}

#[tokio::test]
async fn bot_lifecycle_through_rest_and_the_runner() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let stranger = app.user().await;
    let untested_key = app.connected_key(&user, "paper-key-plain").await;
    let untested_bot = app
        .post(
            "/api/v1/bot",
            Some(&user.token),
            json!({ "key_id": untested_key, "pair": "XBT/USD", "strategy": { "kind": "dca", "quote_amount": "10", "interval_secs": 60 } }),
        )
        .await;
    let untested_bot = untested_bot.body["bot_id"].as_str().unwrap().to_string();
    let refused = app
        .post_empty(
            &format!("/api/v1/bot/{untested_bot}/start"),
            Some(&user.token),
        )
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    assert!(refused.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("test"));

    let bot_id = app.bot(&user).await;
    let base = format!("/api/v1/bot/{bot_id}");
    let trigger_early = app
        .post_empty(&format!("{base}/trigger-trade"), Some(&user.token))
        .await;
    assert_eq!(trigger_early.status, StatusCode::CONFLICT);
    let stop_early = app
        .post_empty(&format!("{base}/stop"), Some(&user.token))
        .await;
    assert_eq!(
        stop_early.status,
        StatusCode::CONFLICT,
        "a never-started bot cannot stop"
    );

    let foreign = app
        .post_empty(&format!("{base}/start"), Some(&stranger.token))
        .await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND);
    let started = app
        .post_empty(&format!("{base}/start"), Some(&user.token))
        .await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.body);
    let twice = app
        .post_empty(&format!("{base}/start"), Some(&user.token))
        .await;
    assert_eq!(twice.status, StatusCode::CONFLICT);

    app.runner_command(
        bot_id,
        BotCommand::MarkStarted {
            actor: Actor::System,
            at: Utc::now(),
        },
    )
    .await;
    let trigger = app
        .post_empty(&format!("{base}/trigger-trade"), Some(&user.token))
        .await;
    assert_eq!(trigger.status, StatusCode::ACCEPTED, "{}", trigger.body);
    assert!(trigger.body["trigger_id"].is_string());
    let foreign_trigger = app
        .post_empty(&format!("{base}/trigger-trade"), Some(&stranger.token))
        .await;
    assert_eq!(foreign_trigger.status, StatusCode::NOT_FOUND);

    let bad_stop = app
        .post(
            &format!("{base}/stop"),
            Some(&user.token),
            json!({ "reason": 7 }),
        )
        .await;
    assert_eq!(bad_stop.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad_stop.field(), Some("reason"));
    let stop = app
        .post(
            &format!("{base}/stop"),
            Some(&user.token),
            json!({ "reason": "taking profits" }),
        )
        .await;
    assert_eq!(stop.status, StatusCode::ACCEPTED, "{}", stop.body);
    app.runner_command(
        bot_id,
        BotCommand::MarkStopped {
            actor: Actor::System,
            reason: None,
            at: Utc::now(),
        },
    )
    .await;
    let stop_stopped = app
        .post_empty(&format!("{base}/stop"), Some(&user.token))
        .await;
    assert_eq!(
        stop_stopped.status,
        StatusCode::CONFLICT,
        "stopping a stopped bot is refused"
    );

    // Users cannot pose as the bot runner.
    let metadata = CommandMetadata::new(
        "rest",
        Some(Actor::User {
            user_id: user.id,
            role: Role::User,
        }),
    );
    let posing = app
        .state
        .commands
        .execute_bot(
            &bot_id.to_string(),
            BotCommand::MarkStarted {
                actor: Actor::user(user.id),
                at: Utc::now(),
            },
            &metadata,
        )
        .await;
    assert!(posing.is_err());

    let types = app.event_types("Bot", bot_id).await;
    assert_eq!(
        types,
        [
            "bot.configured",
            "bot.start_requested",
            "bot.started",
            "bot.trade_triggered",
            "bot.stop_requested",
            "bot.stopped"
        ]
    );
    let bad_id = app
        .post_empty("/api/v1/bot/123/start", Some(&user.token))
        .await;
    assert_eq!(bad_id.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_id.field(), Some("bot_id"));
}
