//! Every list pages with `limit` and `cursor`; a malformed cursor or limit
//! and a `min_position` beyond the head of the log are 400s naming the
//! parameter, at once.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use chrono::Utc;
use domain::Side;
use integration_tests::{TestApp, TestUser, GOOD_SECRET};
use serde_json::{json, Value};
use uuid::Uuid;

const PAIRS: [&str; 3] = ["XBT/USD", "ETH/USD", "XBT/EUR"];

/// Reads `path` page by page (`limit` rows each) and returns the rows of
/// `field`, checking each page's size and that only the last has no
/// `next_cursor`.
async fn page_through(
    app: &TestApp,
    token: &str,
    path: &str,
    field: &str,
    limit: usize,
) -> Vec<Value> {
    let mut rows = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{path}?limit={limit}");
        if let Some(cursor) = &cursor {
            url.push_str(&format!("&cursor={cursor}"));
        }
        let page = app.get(&url, Some(token)).await;
        assert_eq!(page.status, StatusCode::OK, "{url}: {}", page.body);
        let found = page.body[field].as_array().unwrap().clone();
        assert!(found.len() <= limit, "{url}: {} rows", found.len());
        rows.extend(found.iter().cloned());
        match page.body["next_cursor"].as_str() {
            Some(next) => {
                assert_eq!(found.len(), limit, "{url}: a short page before the last");
                cursor = Some(next.to_string());
            }
            None => {
                assert!(page.body["next_cursor"].is_null(), "{}", page.body);
                return rows;
            }
        }
    }
}

/// A user with three keys and three running bots, one per pair, each of
/// which has filled once.
async fn trader_with_three_of_everything(app: &TestApp) -> TestUser {
    let user = app.user().await;
    let key_id = app.tested_key(&user).await;
    for n in 0..2 {
        app.connected_key(&user, &format!("paper-key-extra-{n}"))
            .await;
    }
    for (n, pair) in PAIRS.iter().enumerate() {
        let configured = app
            .post(
                "/api/v1/bot",
                Some(&user.token),
                json!({
                    "key_id": key_id,
                    "pair": pair,
                    "strategy": { "kind": "dca", "quote_amount": "25.00", "interval_secs": 60 }
                }),
            )
            .await;
        assert_eq!(
            configured.status,
            StatusCode::CREATED,
            "{}",
            configured.body
        );
        let bot_id: Uuid = configured.body["bot_id"].as_str().unwrap().parse().unwrap();
        let started = app
            .post_empty(&format!("/api/v1/bot/{bot_id}/start"), Some(&user.token))
            .await;
        assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.body);
        app.runner_command(
            bot_id,
            domain::bot::BotCommand::MarkStarted {
                actor: domain::Actor::System,
                at: Utc::now(),
            },
        )
        .await;
        app.fill(
            bot_id,
            &format!("page-{n}"),
            Side::Buy,
            "0.01",
            "100",
            Utc::now(),
        )
        .await;
    }
    user
}

#[tokio::test]
async fn bots_keys_and_positions_page_with_limit_and_cursor() {
    let app = TestApp::spawn_with(&[("QUERY_WAIT_MAX_MS", "5000")]).await;
    let user = trader_with_three_of_everything(&app).await;
    app.eventually(20, "three positions", || async {
        let all = app
            .get("/api/v1/trading/positions", Some(&user.token))
            .await;
        all.body["positions"]
            .as_array()
            .is_some_and(|p| p.len() == 3)
    })
    .await;
    app.eventually(20, "three bots and keys", || async {
        let bots = app.get("/api/v1/bot", Some(&user.token)).await;
        let keys = app.get("/api/v1/kraken/keys", Some(&user.token)).await;
        bots.body["bots"].as_array().is_some_and(|b| b.len() == 3)
            && keys.body["keys"].as_array().is_some_and(|k| k.len() == 3)
    })
    .await;
    for (path, field, id) in [
        ("/api/v1/bot", "bots", "bot_id"),
        ("/api/v1/kraken/keys", "keys", "key_id"),
        ("/api/v1/trading/positions", "positions", "pair"),
    ] {
        // Without `limit`, one page of up to 100 with `next_cursor: null`.
        let whole = app.get(path, Some(&user.token)).await;
        assert_eq!(whole.body[field].as_array().unwrap().len(), 3, "{path}");
        assert!(
            whole.body["next_cursor"].is_null(),
            "{path}: {}",
            whole.body
        );
        for limit in [1, 2, 3] {
            let rows = page_through(&app, &user.token, path, field, limit).await;
            let ids: Vec<&Value> = rows.iter().map(|row| &row[id]).collect();
            let whole_ids: Vec<&Value> = whole.body[field]
                .as_array()
                .unwrap()
                .iter()
                .map(|row| &row[id])
                .collect();
            assert_eq!(
                ids, whole_ids,
                "{path} by {limit}: the same rows in the same order"
            );
        }
    }
}

#[tokio::test]
async fn malformed_cursors_and_limits_are_400s_naming_them() {
    let app = TestApp::spawn().await;
    let admin = app.user_with_role(domain::Role::Admin).await;
    for path in [
        "/api/v1/bot",
        "/api/v1/kraken/keys",
        "/api/v1/trading/positions",
        "/api/v1/trading/trades",
        "/api/v1/admin/users",
    ] {
        for cursor in ["", "-1", "0", "abc", "1.5", "99999999999999999999", "%00"] {
            let answer = app
                .get(&format!("{path}?cursor={cursor}"), Some(&admin.token))
                .await;
            assert_eq!(
                answer.status,
                StatusCode::BAD_REQUEST,
                "{path} cursor={cursor}: {}",
                answer.body
            );
            assert_eq!(answer.field(), Some("cursor"), "{path} cursor={cursor}");
        }
        for limit in ["0", "501", "-3", "x"] {
            let answer = app
                .get(&format!("{path}?limit={limit}"), Some(&admin.token))
                .await;
            assert_eq!(
                answer.status,
                StatusCode::BAD_REQUEST,
                "{path} limit={limit}"
            );
            assert_eq!(answer.field(), Some("limit"), "{path} limit={limit}");
        }
        // The largest cursor is well-formed: an empty last page, not a 500.
        let far = app
            .get(&format!("{path}?cursor={}", i64::MAX), Some(&admin.token))
            .await;
        assert_eq!(far.status, StatusCode::OK, "{path}: {}", far.body);
        assert!(far.body["next_cursor"].is_null(), "{path}: {}", far.body);
    }
}

#[tokio::test]
async fn a_min_position_beyond_the_head_of_the_log_is_a_400_at_once() {
    let app = TestApp::spawn_with(&[("QUERY_WAIT_MAX_MS", "5000")]).await;
    let user = app.user().await;
    let key = app
        .post(
            "/api/v1/kraken/connect",
            Some(&user.token),
            json!({ "api_key": "paper-key-head", "api_secret": GOOD_SECRET }),
        )
        .await;
    let real: event_log::Position = key.body["position"].as_str().unwrap().parse().unwrap();
    let beyond = [
        format!(
            "{}.{}",
            real.transaction_id + 1_000_000,
            real.global_position
        ),
        format!(
            "{}.{}",
            real.transaction_id,
            real.global_position + 1_000_000
        ),
        format!("{}.1", u64::MAX),
    ];
    for token in &beyond {
        for path in [
            "/api/v1/user/me",
            "/api/v1/kraken/keys",
            "/api/v1/bot",
            "/api/v1/trading/trades",
        ] {
            let started = Instant::now();
            let answer = app
                .get(&format!("{path}?min_position={token}"), Some(&user.token))
                .await;
            assert_eq!(
                answer.status,
                StatusCode::BAD_REQUEST,
                "{path} {token}: {}",
                answer.body
            );
            assert_eq!(answer.field(), Some("min_position"));
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "{path} {token}: answered after {:?}, not at once",
                started.elapsed()
            );
        }
    }
    // The position a command answered is still waited for and read.
    let keys = app
        .get(
            &format!("/api/v1/kraken/keys?min_position={real}"),
            Some(&user.token),
        )
        .await;
    assert_eq!(keys.status, StatusCode::OK, "{}", keys.body);
    assert_eq!(keys.body["keys"][0]["key_id"], key.body["key_id"]);
}
