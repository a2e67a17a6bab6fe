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
