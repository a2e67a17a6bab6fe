//! The REST audit endpoints: auditors and admins only, the log's own
//! events with their hashes, 404 for a stream that does not exist, 400
//! naming the field for bad input.

use axum::http::StatusCode;
use integration_tests::TestApp;
use serde_json::Value;

use crate::history::some_history;

#[tokio::test]
async fn the_audit_endpoints_answer_auditors_and_admins_only() {
    let app = TestApp::spawn().await;
    let (trader, bot_id) = some_history(&app).await;
    let auditor = app.user_with_role(domain::Role::Auditor).await;
    let admin = app.user_with_role(domain::Role::Admin).await;
    let events = format!("/api/v1/audit/streams/Bot/{bot_id}/events");
    let state = format!("/api/v1/audit/streams/Bot/{bot_id}/state");

    let stored = app.stream("Bot", bot_id).await;
    for token in [&auditor.token, &admin.token] {
        let response = app.get(&events, Some(token)).await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.body);
        let listed = response.body["events"].as_array().unwrap();
        assert_eq!(listed.len(), stored.len());
        for (listed, stored) in listed.iter().zip(&stored) {
            assert_eq!(listed["sequence"], stored.sequence);
            assert_eq!(listed["hash"], stored.hash.as_str());
            assert_eq!(listed["prev_hash"], stored.prev_hash.as_str());
            assert_eq!(listed["payload"], stored.payload_json());
        }
        let response = app.get(&state, Some(token)).await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.body);
        assert_eq!(response.body["sequence"], stored.len());
        assert_eq!(response.body["state"]["trades_executed"], 3);
        assert_eq!(response.body["state"]["owner_id"], trader.id.to_string());
    }

    // A trader may not audit, not even their own bot.
    for path in [&events, &state] {
        let response = app.get(path, Some(&trader.token)).await;
        assert_eq!(response.status, StatusCode::FORBIDDEN, "{}", response.body);
        let response = app.get(path, None).await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED);
    }

    // A stream with no events.
    let unknown = uuid::Uuid::new_v4();
    for path in [
        format!("/api/v1/audit/streams/Bot/{unknown}/events"),
        format!("/api/v1/audit/streams/bot/{unknown}/state"),
        "/api/v1/audit/streams/User/not-a-uuid/state".to_string(),
    ] {
        let response = app.get(&path, Some(&auditor.token)).await;
        assert_eq!(
            response.status,
            StatusCode::NOT_FOUND,
            "{path}: {}",
            response.body
        );
    }

    // Bad input: 400 naming the field, never a 5xx.
    for (query, field) in [
        ("as_of=yesterday", "as_of"),
        ("as_of=2026-13-01T00:00:00Z", "as_of"),
        ("at_sequence=-1", "at_sequence"),
        ("at_sequence=two", "at_sequence"),
        ("as_of=2026-11-23T08:00:00Z&at_sequence=2", "at_sequence"),
        ("since=2026-11-23T08:00:00Z", "since"),
    ] {
        for path in [&events, &state] {
            let response = app
                .get(&format!("{path}?{query}"), Some(&auditor.token))
                .await;
            assert_eq!(
                response.status,
                StatusCode::BAD_REQUEST,
                "{query}: {}",
                response.body
            );
            assert_eq!(response.field(), Some(field), "{query}: {}", response.body);
        }
    }
    let response = app
        .get(
            &format!("/api/v1/audit/streams/Wallet/{bot_id}/state"),
            Some(&auditor.token),
        )
        .await;
    assert_eq!(
        response.status,
        StatusCode::BAD_REQUEST,
        "{}",
        response.body
    );
    assert_eq!(response.field(), Some("aggregate_type"));

    // A time before the stream began: it exists, with nothing in it yet.
    let response = app
        .get(
            &format!("{state}?as_of=2000-01-01T00:00:00Z"),
            Some(&auditor.token),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    assert_eq!(response.body["sequence"], 0);
    assert_eq!(response.body["state"], Value::Null);
    assert_eq!(response.body["events"], serde_json::json!([]));
}

/// An `as_of` answer while an append is in flight waits for it, so the
/// same request answers the same after it commits; a future `as_of` is a
/// 400, and an append held past the wait a 503.
#[tokio::test]
async fn an_as_of_answer_is_final_even_with_an_append_in_flight() {
    use sqlx::Connection;
    let app = TestApp::spawn().await;
    let auditor = app.user_with_role(domain::Role::Auditor).await;
    let stream_id = format!("held-{}", uuid::Uuid::new_v4().simple());
    // A writer's transaction inserts an event and has not committed yet.
    let mut writer = sqlx::PgConnection::connect(&app.database_url)
        .await
        .unwrap();
    sqlx::query("BEGIN").execute(&mut writer).await.unwrap();
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
         payload, metadata) VALUES ('User', $1, 1, 'user.logged_in', '1.0', \
         '{\"type\": \"user.logged_in\", \"at\": \"2026-12-01T00:00:00Z\"}', '{}')",
    )
    .bind(&stream_id)
    .execute(&mut writer)
    .await
    .unwrap();
    let as_of: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let path = format!(
        "/api/v1/audit/streams/User/{stream_id}/events?as_of={}",
        as_of.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    );
    // The answer is asked for while the append is in flight and comes
    // after it commits, with its event.
    let asked = tokio::spawn({
        let app_router = app.router.clone();
        let token = auditor.token.clone();
        let path = path.clone();
        async move {
            use tower::ServiceExt;
            let request = axum::http::Request::get(&path)
                .header("authorization", format!("Bearer {token}"))
                .body(axum::body::Body::empty())
                .unwrap();
            let response = app_router.oneshot(request).await.unwrap();
            let status = response.status();
            let body = http_body_util::BodyExt::collect(response.into_body())
                .await
                .unwrap()
                .to_bytes();
            (status, serde_json::from_slice::<Value>(&body).unwrap())
        }
    });
    // Commit only once the request is waiting on the writer (it has read
    // the locks and not answered).
    let started = std::time::Instant::now();
    while started.elapsed() < std::time::Duration::from_millis(300) && !asked.is_finished() {
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(!asked.is_finished(), "answered before the append ended");
    sqlx::query("COMMIT").execute(&mut writer).await.unwrap();
    let (status, first) = asked.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["events"].as_array().unwrap().len(), 1, "{first}");
    let again = app.get(&path, Some(&auditor.token)).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(again.body, first, "the same as_of answers the same");

    // A time after the database's clock: the log up to then is unwritten.
    let future =
        format!("/api/v1/audit/streams/User/{stream_id}/events?as_of=2999-01-01T00:00:00Z");
    let response = app.get(&future, Some(&auditor.token)).await;
    assert_eq!(
        response.status,
        StatusCode::BAD_REQUEST,
        "{}",
        response.body
    );
    assert_eq!(response.field(), Some("as_of"));

    // An append held open past the wait: 503, not an answer that could
    // change.
    sqlx::query("BEGIN").execute(&mut writer).await.unwrap();
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
         payload, metadata) VALUES ('User', $1, 2, 'user.logged_in', '1.0', \
         '{\"type\": \"user.logged_in\", \"at\": \"2026-12-01T00:00:01Z\"}', '{}')",
    )
    .bind(&stream_id)
    .execute(&mut writer)
    .await
    .unwrap();
    let now: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let held = format!(
        "/api/v1/audit/streams/User/{stream_id}/events?as_of={}",
        now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    );
    let response = app.get(&held, Some(&auditor.token)).await;
    assert_eq!(
        response.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        response.body
    );
    sqlx::query("ROLLBACK").execute(&mut writer).await.unwrap();
    let response = app.get(&held, Some(&auditor.token)).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    assert_eq!(response.body["events"].as_array().unwrap().len(), 1);
}
