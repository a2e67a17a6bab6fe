//! Input one client could use to hurt others: control characters and NUL
//! in bodies, paths, queries and metadata headers are 4xx naming the field
//! and never reach PostgreSQL (which refuses a NUL in `text` and `jsonb`,
//! and would fail a shared append batch with it).

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use integration_tests::{TestApp, TestResponse, GOOD_SECRET, PASSWORD};
use serde_json::json;

const NUL: &str = "\u{0}";

fn assert_refused(response: &TestResponse, status: StatusCode, field: &str) {
    assert_eq!(response.status, status, "{}", response.body);
    assert_eq!(response.field(), Some(field), "{}", response.body);
}

#[tokio::test]
async fn control_characters_in_bodies_are_422s_naming_the_field_and_append_nothing() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let key_id = app.tested_key(&user).await;
    let before = app.event_count().await;
    let token = Some(user.token.as_str());

    let register = [
        (
            json!({ "email": format!("a{NUL}@example.com"), "password": PASSWORD }),
            "email",
        ),
        (
            json!({ "email": "nul@example.com", "password": format!("pass{NUL}word-long") }),
            "password",
        ),
        (
            json!({ "email": "nul@example.com", "password": PASSWORD, "display_name": format!("Eve{NUL}") }),
            "display_name",
        ),
        (
            json!({ "email": "tab@example.com", "password": PASSWORD, "display_name": "Eve\tTab" }),
            "display_name",
        ),
    ];
    for (body, field) in register {
        let answer = app.post("/api/v1/auth/register", None, body).await;
        assert_refused(&answer, StatusCode::UNPROCESSABLE_ENTITY, field);
    }
    let configure = [
        (
            json!({ "key_id": key_id, "pair": format!("XBT/USD{NUL}"), "strategy": { "kind": "dca", "quote_amount": "25.00", "interval_secs": 60 } }),
            "pair",
        ),
        (
            json!({ "key_id": key_id, "pair": "XBT/USD", "strategy": { "kind": "dca", "quote_amount": format!("25{NUL}"), "interval_secs": 60 } }),
            "strategy.quote_amount",
        ),
        (
            json!({ "key_id": format!("{key_id}{NUL}"), "pair": "XBT/USD", "strategy": { "kind": "dca", "quote_amount": "25.00", "interval_secs": 60 } }),
            "key_id",
        ),
    ];
    for (body, field) in configure {
        let answer = app.post("/api/v1/bot", token, body).await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            answer.body
        );
        // A strategy's fields are read through its tag, which may name
        // the strategy rather than the amount inside it.
        let named = answer.field().unwrap_or_default();
        assert!(
            field.starts_with(named) && !named.is_empty(),
            "{named} for {field}"
        );
    }
    let connect = [
        (
            json!({ "api_key": format!("paper-key{NUL}"), "api_secret": GOOD_SECRET }),
            "api_key",
        ),
        (
            json!({ "api_key": "paper-key-2", "api_secret": GOOD_SECRET, "label": "line\nbreak" }),
            "label",
        ),
        (
            json!({ "api_key": "paper-key-3", "api_secret": format!("{GOOD_SECRET}{NUL}") }),
            "api_secret",
        ),
    ];
    for (body, field) in connect {
        let answer = app.post("/api/v1/kraken/connect", token, body).await;
        assert_refused(&answer, StatusCode::UNPROCESSABLE_ENTITY, field);
    }
    let rename = app
        .patch(
            "/api/v1/user/me",
            token,
            json!({ "display_name": format!("x{NUL}") }),
        )
        .await;
    assert_refused(&rename, StatusCode::UNPROCESSABLE_ENTITY, "display_name");
    assert_eq!(
        app.event_count().await,
        before,
        "nothing refused was appended"
    );
}

#[tokio::test]
async fn control_characters_in_paths_queries_and_metadata_headers_are_400s_naming_them() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let auditor = app.user_with_role(domain::Role::Admin).await;
    let bot_id = app.bot(&user).await;
    let before = app.event_count().await;
    let token = Some(user.token.as_str());

    let start = app.post_empty("/api/v1/bot/%00/start", token).await;
    assert_refused(&start, StatusCode::BAD_REQUEST, "bot_id");
    let trades = app.get("/api/v1/trading/trades?pair=XBT%00", token).await;
    assert_refused(&trades, StatusCode::BAD_REQUEST, "pair");
    let named = app.get("/api/v1/bot?limit%00=1", token).await;
    assert_eq!(named.status, StatusCode::BAD_REQUEST, "{}", named.body);
    // Not UTF-8: a 400 in the error shape of every answer.
    let undecodable = app.get("/api/v1/bot?limit=%FF", token).await;
    assert_eq!(undecodable.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        undecodable.body["error"]["code"], "bad_request",
        "{}",
        undecodable.body
    );
    let audit = app
        .get(
            "/api/v1/audit/streams/User/a%00b/events",
            Some(&auditor.token),
        )
        .await;
    assert_refused(&audit, StatusCode::BAD_REQUEST, "id");

    // HTTP lets a tab through in a header value; none of these may carry
    // one into event metadata.
    for header in [
        "x-request-id",
        "x-correlation-id",
        "idempotency-key",
        "traceparent",
    ] {
        let answer = app
            .request(
                Method::POST,
                &format!("/api/v1/bot/{bot_id}/start"),
                token,
                None,
                &[(header, "tab\there")],
            )
            .await;
        assert_refused(&answer, StatusCode::BAD_REQUEST, header);
        assert_ne!(answer.headers["x-request-id"], "tab\there");
    }
    assert_eq!(
        app.event_count().await,
        before,
        "nothing refused was appended"
    );
    // Outside /api such a request id is replaced, not refused.
    let health = app
        .request(
            Method::GET,
            "/health",
            None,
            None,
            &[("x-request-id", "tab\there")],
        )
        .await;
    assert_eq!(health.status, StatusCode::OK);
    assert_ne!(health.headers["x-request-id"], "tab\there");
}

/// 32 clients rename themselves and connect keys while one sends NULs in
/// bodies and queries, tabs in metadata headers and positions beyond the
/// head of the log (a NUL in a query was a 500 from PostgreSQL, a position
/// beyond the head a 503 after the whole wait): no answer is a 5xx, and
/// every good command is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_client_sending_nuls_fails_no_other_clients_command() {
    let app = Arc::new(TestApp::spawn().await);
    let mut users = Vec::new();
    for _ in 0..33 {
        users.push(app.user().await);
    }
    let attacker = users.pop().unwrap();
    let good: Vec<_> = users
        .into_iter()
        .enumerate()
        .map(|(n, user)| {
            let app = app.clone();
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                for round in 0..4 {
                    let name = json!({ "display_name": format!("client {n} round {round}") });
                    statuses.push(
                        app.patch("/api/v1/user/me", Some(&user.token), name)
                            .await
                            .status,
                    );
                }
                let key = json!({ "api_key": format!("paper-key-{n}"), "api_secret": GOOD_SECRET });
                statuses.push(
                    app.post("/api/v1/kraken/connect", Some(&user.token), key)
                        .await
                        .status,
                );
                statuses
            })
        })
        .collect();
    let hostile = {
        let app = app.clone();
        tokio::spawn(async move {
            let token = Some(attacker.token.as_str());
            let mut statuses = Vec::new();
            for round in 0..40 {
                let name = json!({ "display_name": format!("evil{NUL}{round}") });
                statuses.push(app.patch("/api/v1/user/me", token, name).await.status);
                let key = json!({ "api_key": format!("k{NUL}{round}"), "api_secret": GOOD_SECRET });
                statuses.push(app.post("/api/v1/kraken/connect", token, key).await.status);
                let header = app
                    .request(
                        Method::PATCH,
                        "/api/v1/user/me",
                        token,
                        Some(&json!({ "display_name": "fine" }).to_string()),
                        &[("x-correlation-id", "evil\tcorrelation")],
                    )
                    .await;
                statuses.push(header.status);
                let query = app.get("/api/v1/trading/trades?pair=XBT%00USD", token);
                statuses.push(query.await.status);
                let beyond = format!("/api/v1/user/me?min_position={}.{round}", u64::MAX);
                statuses.push(app.get(&beyond, token).await.status);
            }
            statuses
        })
    };
    let mut good_statuses = Vec::new();
    for task in good {
        good_statuses.extend(task.await.unwrap());
    }
    let hostile_statuses = hostile.await.unwrap();
    assert!(
        good_statuses.iter().all(|s| s.is_success()),
        "a good command failed: {good_statuses:?}"
    );
    assert!(
        hostile_statuses.iter().all(|s| s.is_client_error()),
        "the hostile client got other than 4xx: {hostile_statuses:?}"
    );
    let renames: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'user.updated'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        renames,
        32 * 4,
        "every good rename is stored, no hostile one"
    );
}
