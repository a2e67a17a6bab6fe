use std::collections::HashSet;

use axum::http::StatusCode;
use chrono::{Duration, TimeZone, Utc};
use domain::Side;
use integration_tests::{TestApp, TestResponse, TestUser};
use serde_json::{json, Value};

fn token(response: &TestResponse) -> String {
    response.body["position"]
        .as_str()
        .expect("position")
        .to_string()
}

/// A new user who renamed themselves, and the path that reads their
/// profile once the read model holds the rename.
async fn renamed_user(app: &TestApp, display_name: &str) -> (TestUser, String) {
    let user = app.user().await;
    let renamed = app
        .patch(
            "/api/v1/user/me",
            Some(&user.token),
            json!({ "display_name": display_name }),
        )
        .await;
    let path = format!("/api/v1/user/me?min_position={}", token(&renamed));
    (user, path)
}

#[tokio::test]
async fn queries_read_your_writes_with_min_position() {
    let app = TestApp::spawn_with(&[("QUERY_WAIT_MAX_MS", "5000")]).await;
    let (user, read_after_rename) = renamed_user(&app, "Fresh Name").await;
    let me = app.get(&read_after_rename, Some(&user.token)).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    assert_eq!(
        me.body["display_name"], "Fresh Name",
        "the read includes the write"
    );
    assert_eq!(me.body["email"], user.email);
    assert_eq!(me.body["role"], "user");

    let key = app
        .post(
            "/api/v1/kraken/connect",
            Some(&user.token),
            json!({ "api_key": "paper-key-q", "api_secret": integration_tests::GOOD_SECRET, "label": "q" }),
        )
        .await;
    let keys = app
        .get(
            &format!("/api/v1/kraken/keys?min_position={}", token(&key)),
            Some(&user.token),
        )
        .await;
    assert_eq!(keys.status, StatusCode::OK);
    let listed = &keys.body["keys"][0];
    assert_eq!(listed["key_id"], key.body["key_id"]);
    assert_eq!(listed["status"], "untested");
    assert!(listed.get("api_secret").is_none() && !keys.body.to_string().contains("paper-key-q"));

    let malformed = app
        .get("/api/v1/user/me?min_position=yesterday", Some(&user.token))
        .await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert_eq!(malformed.field(), Some("min_position"));
    let unknown = app.get("/api/v1/bot?colour=red", Some(&user.token)).await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert_eq!(unknown.field(), Some("colour"));
}

#[tokio::test]
async fn a_position_not_reached_within_the_bound_is_a_503_with_retry_after() {
    let app = TestApp::spawn_with(&[("QUERY_WAIT_MAX_MS", "300"), ("MUCKARD_ROLES", "api")]).await;
    let (user, read_after_rename) = renamed_user(&app, "Unseen").await;
    // No projector runs in this app, so the read model never gets there.
    let started = std::time::Instant::now();
    let me = app.get(&read_after_rename, Some(&user.token)).await;
    assert_eq!(me.status, StatusCode::SERVICE_UNAVAILABLE, "{}", me.body);
    assert_eq!(me.headers["retry-after"], "1");
    assert!(started.elapsed() >= std::time::Duration::from_millis(300));
}

#[tokio::test]
async fn bots_are_visible_to_their_owner_and_admins_only() {
    let app = TestApp::spawn_with(&[("QUERY_WAIT_MAX_MS", "5000")]).await;
    let owner = app.user().await;
    let stranger = app.user().await;
    let bot_id = app.running_bot(&owner).await;
    let stop = app
        .post_empty(&format!("/api/v1/bot/{bot_id}/stop"), Some(&owner.token))
        .await;
    let wait = format!("min_position={}", token(&stop));
    let status_path = format!("/api/v1/bot/{bot_id}/status?{wait}");
    let overview_path = format!("/api/v1/bot?{wait}");

    let status = app.get(&status_path, Some(&owner.token)).await;
    assert_eq!(status.status, StatusCode::OK, "{}", status.body);
    assert_eq!(status.body["state"], "stopping");
    assert_eq!(status.body["pair"], "XBT/USD");
    assert_eq!(status.body["strategy"]["quote_amount"], "25.00");
    let foreign = app.get(&status_path, Some(&stranger.token)).await;
    assert_eq!(
        foreign.status,
        StatusCode::NOT_FOUND,
        "another user's bot is a 404"
    );
    let mine = app.get(&overview_path, Some(&owner.token)).await;
    assert_eq!(mine.body["bots"].as_array().unwrap().len(), 1);
    let theirs = app.get(&overview_path, Some(&stranger.token)).await;
    assert_eq!(
        theirs.body["bots"],
        json!([]),
        "a new user's bot overview is empty"
    );

    app.grant_role(&stranger.email, domain::Role::Admin).await;
    let admin = app.login(&stranger.email).await;
    let as_admin = app.get(&status_path, Some(&admin.token)).await;
    assert_eq!(as_admin.status, StatusCode::OK);
    let users = app
        .get("/api/v1/admin/users?limit=1", Some(&admin.token))
        .await;
    assert_eq!(users.status, StatusCode::OK, "{}", users.body);
    assert_eq!(users.body["users"].as_array().unwrap().len(), 1);
    assert!(users.body["next_cursor"].is_string());
    let not_admin = app.get("/api/v1/admin/users", Some(&owner.token)).await;
    assert_eq!(not_admin.status, StatusCode::FORBIDDEN);
}

async fn page_all(app: &TestApp, token: &str, query: &str, limit: usize) -> Vec<Value> {
    let mut trades = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/trading/trades?limit={limit}{query}");
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={cursor}"));
        }
        let page = app.get(&path, Some(token)).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        trades.extend(page.body["trades"].as_array().unwrap().iter().cloned());
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return trades,
        }
    }
}

#[tokio::test]
async fn trades_filter_and_page_without_duplicates_or_holes_while_fills_arrive() {
    let app = TestApp::spawn_with(&[("QUERY_WAIT_MAX_MS", "10000")]).await;
    let user = app.user().await;
    let other = app.user().await;
    let first_bot = app.running_bot(&user).await;
    let second_bot = app.running_bot(&user).await;
    let foreign_bot = app.running_bot(&other).await;
    let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let mut last = Default::default();
    for n in 0..30 {
        let bot = if n % 3 == 0 { second_bot } else { first_bot };
        last = app
            .fill(
                bot,
                &format!("o-{n}"),
                Side::Buy,
                "0.01",
                "40000",
                start + Duration::hours(n),
            )
            .await;
    }
    app.fill(foreign_bot, "o-foreign", Side::Buy, "1", "100", start)
        .await;
    let wait = format!("min_position={last}");
    let all = app
        .get(
            &format!("/api/v1/trading/trades?limit=500&{wait}"),
            Some(&user.token),
        )
        .await;
    assert_eq!(
        all.body["trades"].as_array().unwrap().len(),
        30,
        "only the caller's trades"
    );
    assert!(all.body["next_cursor"].is_null());
    let by_bot = page_all(&app, &user.token, &format!("&bot_id={second_bot}"), 500).await;
    assert_eq!(by_bot.len(), 10);
    let window = page_all(
        &app,
        &user.token,
        &format!(
            "&from={}&to={}",
            (start + Duration::hours(5)).to_rfc3339(),
            (start + Duration::hours(10)).to_rfc3339()
        )
        .replace('+', "%2B"),
        500,
    )
    .await;
    assert_eq!(window.len(), 5, "from inclusive, to exclusive");
    let other_pair = page_all(&app, &user.token, "&pair=ETH/EUR", 500).await;
    assert!(other_pair.is_empty());

    // Page through while new fills arrive: the pages hold every trade that
    // existed when paging began, each exactly once, newest first.
    let mut seen: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut extra = 0;
    loop {
        let mut path = "/api/v1/trading/trades?limit=7".to_string();
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={cursor}"));
        }
        let page = app.get(&path, Some(&user.token)).await;
        seen.extend(page.body["trades"].as_array().unwrap().iter().cloned());
        app.fill(
            first_bot,
            &format!("late-{extra}"),
            Side::Buy,
            "0.01",
            "41000",
            Utc::now(),
        )
        .await;
        extra += 1;
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    let orders: Vec<&str> = seen
        .iter()
        .map(|t| t["order_id"].as_str().unwrap())
        .collect();
    let unique: HashSet<&str> = orders.iter().copied().collect();
    assert_eq!(unique.len(), orders.len(), "no duplicates: {orders:?}");
    for n in 0..30 {
        assert!(unique.contains(format!("o-{n}").as_str()), "hole at o-{n}");
    }
    let ids: Vec<i64> = seen
        .iter()
        .map(|t| t["trade_id"].as_i64().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");

    let bad_limit = app
        .get("/api/v1/trading/trades?limit=501", Some(&user.token))
        .await;
    assert_eq!(bad_limit.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_limit.field(), Some("limit"));
    let bad_from = app
        .get("/api/v1/trading/trades?from=monday", Some(&user.token))
        .await;
    assert_eq!(bad_from.field(), Some("from"));
}

#[tokio::test]
async fn fills_become_portfolio_trades_and_positions_exactly_once() {
    let app = TestApp::spawn_with(&[("QUERY_WAIT_MAX_MS", "10000")]).await;
    let user = app.user().await;
    let bot_id = app.running_bot(&user).await;
    let now = Utc::now();
    app.fill(bot_id, "buy-1", Side::Buy, "1", "100", now).await;
    app.fill(bot_id, "buy-2", Side::Buy, "1", "110", now).await;
    // The runner reporting the same fill twice has one effect.
    app.fill(bot_id, "buy-2", Side::Buy, "1", "110", now).await;
    app.fill(bot_id, "sell-1", Side::Sell, "1", "120", now)
        .await;
    // A sell beyond the position is refused by the portfolio and reported on the bot.
    app.fill(bot_id, "sell-too-much", Side::Sell, "5", "120", now)
        .await;

    app.eventually(
        30,
        "the portfolio to record three fills and the refusal to reach the bot",
        || async {
            let recorded: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM events WHERE aggregate_type = 'Portfolio'",
            )
            .fetch_one(&app.pool)
            .await
            .unwrap();
            let errors: i64 =
                sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'bot.error'")
                    .fetch_one(&app.pool)
                    .await
                    .unwrap();
            recorded == 3 && errors == 1
        },
    )
    .await;
    let head = app
        .state
        .commands
        .position_of("Bot", &bot_id.to_string())
        .await
        .unwrap();
    let portfolio = app
        .state
        .commands
        .position_of("Portfolio", &user.id.to_string())
        .await
        .unwrap();
    let positions = app
        .get(
            &format!("/api/v1/trading/positions?min_position={portfolio}"),
            Some(&user.token),
        )
        .await;
    assert_eq!(positions.status, StatusCode::OK, "{}", positions.body);
    let position = &positions.body["positions"][0];
    assert_eq!(position["pair"], "XBT/USD");
    assert_eq!(position["quantity"], "1");
    // Cost 100.1 + 110.1; the sale takes half the cost (105.1) and
    // realises 120 - 0.1 - 105.1.
    assert_eq!(position["cost_basis"], "105.1");
    assert_eq!(position["realised_pnl"], "14.8");
    assert_eq!(position["trades"], 3);
    let status = app
        .get(
            &format!("/api/v1/bot/{bot_id}/status?min_position={head}"),
            Some(&user.token),
        )
        .await;
    assert_eq!(status.body["trades_executed"], 4);
    assert_eq!(status.body["errors"], 1);
    assert!(status.body["last_error"]
        .as_str()
        .unwrap()
        .contains("sell-too-much"));
    let trades = app
        .get(
            &format!("/api/v1/trading/trades?min_position={head}"),
            Some(&user.token),
        )
        .await;
    assert_eq!(trades.body["trades"].as_array().unwrap().len(), 4);
    let trade_events: Vec<(String,)> = sqlx::query_as(
        "SELECT payload->'trade'->>'order_id' FROM events WHERE event_type = 'trade.executed' ORDER BY global_position",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let orders: Vec<&str> = trade_events.iter().map(|(o,)| o.as_str()).collect();
    assert_eq!(orders, ["buy-1", "buy-2", "sell-1"]);

    // The lag gauge reaches 0 once `trades` is at the head; the
    // notification raiser appends after fills, so the head may move once
    // more after the trades were read.
    app.eventually(10, "the trades lag gauge at 0", || async {
        let metrics = app.get("/metrics", None).await;
        metrics.status == StatusCode::OK
            && metrics.body.as_str().is_some_and(|text| {
                text.contains("muckard_subscriber_lag_events{subscriber=\"trades\"} 0")
            })
    })
    .await;
    let metrics = app.get("/metrics", None).await;
    let text = metrics.body.as_str().unwrap();
    assert!(
        text.contains("muckard_subscriber_lag_seconds{subscriber=\"trade_recorder\"}"),
        "{text}"
    );
}
