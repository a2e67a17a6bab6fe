use axum::http::StatusCode;
use integration_tests::{TestApp, GOOD_SECRET};
use serde_json::json;

#[tokio::test]
async fn connect_stores_an_encrypted_secret_and_a_fingerprint_only() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let key_id = app.connected_key(&user, "paper-key-alpha").await;
    let events = app.stream("ExchangeKey", key_id).await;
    assert_eq!(events.len(), 1);
    let payload = events[0].payload_json();
    assert_eq!(events[0].event_type, "kraken.key.connected");
    assert_eq!(payload["owner_id"], user.id.to_string());
    assert_eq!(payload["label"], "main");
    assert!(payload["fingerprint"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
    assert_eq!(
        payload["permissions"],
        json!(["query_funds", "query_orders", "trade"])
    );
    assert!(!events[0].payload.contains("paper-key-alpha"));

    let (ciphertext,): (Vec<u8>,) =
        sqlx::query_as("SELECT ciphertext FROM exchange_key_secrets WHERE key_id = $1")
            .bind(key_id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let text = String::from_utf8_lossy(&ciphertext);
    assert!(!text.contains("paper-key-alpha") && !text.contains(&GOOD_SECRET[..20]));
}

#[tokio::test]
async fn keys_with_withdrawal_permission_are_refused_and_leave_nothing() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let before = app.event_count().await;
    let response = app
        .post(
            "/api/v1/kraken/connect",
            Some(&user.token),
            json!({ "api_key": "key-with-withdraw-rights", "api_secret": GOOD_SECRET }),
        )
        .await;
    assert_eq!(
        response.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        response.body
    );
    assert_eq!(response.field(), Some("api_key"));
    assert!(response.body["error"]["reason"]
        .as_str()
        .unwrap()
        .contains("withdrawal"));
    assert_eq!(app.event_count().await, before);
    let secrets: i64 = sqlx::query_scalar("SELECT count(*) FROM exchange_key_secrets")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(secrets, 0, "a refused key's secret is not kept");

    for (body, field) in [
        (
            json!({ "api_key": "", "api_secret": GOOD_SECRET }),
            "api_key",
        ),
        (json!({ "api_key": "k" }), "api_secret"),
        (
            json!({ "api_key": "k", "api_secret": "has space" }),
            "api_secret",
        ),
        (
            json!({ "api_key": "k", "api_secret": GOOD_SECRET, "label": "x".repeat(65) }),
            "label",
        ),
    ] {
        let refused = app
            .post("/api/v1/kraken/connect", Some(&user.token), body.clone())
            .await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            refused.body
        );
        assert_eq!(refused.field(), Some(field), "{body}: {}", refused.body);
    }
}

#[tokio::test]
async fn testing_a_key_records_success_or_failure() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let good = app.connected_key(&user, "paper-key-good").await;
    let tested = app
        .post_empty(
            &format!("/api/v1/kraken/keys/{good}/test"),
            Some(&user.token),
        )
        .await;
    assert_eq!(tested.status, StatusCode::OK, "{}", tested.body);
    assert_eq!(tested.body["status"], "tested");

    let revoked = app.connected_key(&user, "paper-key-soon-revoked").await;
    app.exchange.revoke_key("paper-key-soon-revoked");
    let failed = app
        .post_empty(
            &format!("/api/v1/kraken/keys/{revoked}/test"),
            Some(&user.token),
        )
        .await;
    assert_eq!(failed.status, StatusCode::OK);
    assert_eq!(failed.body["status"], "test_failed");
    assert_eq!(failed.body["reason"], "EAPI:Invalid key");
    let events = app.stream("ExchangeKey", revoked).await;
    assert_eq!(events.last().unwrap().event_type, "kraken.key.test.failed");
    assert_eq!(
        events.last().unwrap().payload_json()["owner_id"],
        user.id.to_string()
    );

    // A revoked credential cannot be connected in the first place.
    let refused = app
        .post(
            "/api/v1/kraken/connect",
            Some(&user.token),
            json!({ "api_key": "paper-key-soon-revoked", "api_secret": GOOD_SECRET }),
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(refused.field(), Some("api_key"));
    let not_base64 = app
        .post(
            "/api/v1/kraken/connect",
            Some(&user.token),
            json!({ "api_key": "paper-key-x", "api_secret": "not*base64" }),
        )
        .await;
    assert_eq!(not_base64.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn update_and_disconnect_only_ones_own_key() {
    let app = TestApp::spawn().await;
    let owner = app.user().await;
    let stranger = app.user().await;
    let key_id = app.tested_key(&owner).await;
    let path = format!("/api/v1/kraken/keys/{key_id}");

    let relabel = app
        .patch(&path, Some(&owner.token), json!({ "label": "renamed" }))
        .await;
    assert_eq!(relabel.status, StatusCode::OK, "{}", relabel.body);
    let half = app
        .patch(&path, Some(&owner.token), json!({ "api_key": "new-key" }))
        .await;
    assert_eq!(half.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(half.field(), Some("api_secret"));
    let empty = app.patch(&path, Some(&owner.token), json!({})).await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);

    // A stranger cannot see, change, test or delete the key, nor overwrite its secret.
    let (before,): (Vec<u8>,) =
        sqlx::query_as("SELECT ciphertext FROM exchange_key_secrets WHERE key_id = $1")
            .bind(key_id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let hijack = app
        .patch(
            &path,
            Some(&stranger.token),
            json!({ "api_key": "mine", "api_secret": GOOD_SECRET }),
        )
        .await;
    assert_eq!(hijack.status, StatusCode::NOT_FOUND);
    let (after,): (Vec<u8>,) =
        sqlx::query_as("SELECT ciphertext FROM exchange_key_secrets WHERE key_id = $1")
            .bind(key_id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(before, after);
    let test = app
        .post_empty(&format!("{path}/test"), Some(&stranger.token))
        .await;
    assert_eq!(test.status, StatusCode::NOT_FOUND);
    let delete = app.delete(&path, Some(&stranger.token)).await;
    assert_eq!(delete.status, StatusCode::NOT_FOUND);

    // A new credential is verified again and resets the tested status.
    let rotate = app
        .patch(
            &path,
            Some(&owner.token),
            json!({ "api_key": "paper-key-rotated", "api_secret": GOOD_SECRET }),
        )
        .await;
    assert_eq!(rotate.status, StatusCode::OK, "{}", rotate.body);
    let bad_rotation = app
        .patch(
            &path,
            Some(&owner.token),
            json!({ "api_key": "now-with-withdraw", "api_secret": GOOD_SECRET }),
        )
        .await;
    assert_eq!(bad_rotation.status, StatusCode::UNPROCESSABLE_ENTITY);

    let gone = app.delete(&path, Some(&owner.token)).await;
    assert_eq!(gone.status, StatusCode::OK, "{}", gone.body);
    let secrets: i64 =
        sqlx::query_scalar("SELECT count(*) FROM exchange_key_secrets WHERE key_id = $1")
            .bind(key_id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(secrets, 0, "disconnecting shreds the credential");
    let again = app.delete(&path, Some(&owner.token)).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    let types = app.event_types("ExchangeKey", key_id).await;
    assert_eq!(
        types,
        [
            "kraken.key.connected",
            "kraken.key.tested",
            "kraken.key.updated",
            "kraken.key.updated",
            "kraken.key.disconnected"
        ]
    );

    let bad_id = app
        .post_empty("/api/v1/kraken/keys/not-a-uuid/test", Some(&owner.token))
        .await;
    assert_eq!(bad_id.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_id.field(), Some("key_id"));
}
