//! Kraken keys: connecting, testing, relabelling, listing, disconnecting.

use axum::http::StatusCode;
use integration_tests::GOOD_SECRET;
use serde_json::json;
use uuid::Uuid;

use crate::conformance::Conformance;

const CONNECT: &str = "/api/v1/kraken/connect";
const KEYS: &str = "/api/v1/kraken/keys";

#[tokio::test]
async fn kraken_key_operations_answer_as_documented() {
    let mut c = Conformance::spawn().await;
    let user = c.app.user().await;
    let token = Some(user.token.as_str());
    let unknown = Uuid::new_v4();

    let main_key = json!({ "api_key": "paper-key-1", "api_secret": GOOD_SECRET, "label": "main" });
    let key = c.post(CONNECT, token, main_key).await;
    assert_eq!(key.status, StatusCode::CREATED);
    let key_id = key.body["key_id"].as_str().unwrap().to_string();
    let withdrawing = json!({ "api_key": "paper-withdraw-key", "api_secret": GOOD_SECRET });
    c.post(CONNECT, token, withdrawing).await;

    let tested = c.post_empty(&format!("{KEYS}/{key_id}/test"), token).await;
    assert_eq!(tested.body["status"], "tested", "{}", tested.body);
    c.post_empty(&format!("{KEYS}/{unknown}/test"), token).await;
    c.post_empty(&format!("{KEYS}/not-a-uuid/test"), token)
        .await;

    let one_key = format!("{KEYS}/{key_id}");
    let relabelled = c
        .patch(&one_key, token, json!({ "label": "renamed" }))
        .await;
    assert_eq!(relabelled.status, StatusCode::OK);
    c.patch(&one_key, token, json!({ "api_key": "half" })).await;

    let position = relabelled.body["position"].as_str().unwrap();
    let listed = c
        .get(&format!("{KEYS}?min_position={position}"), token)
        .await;
    assert_eq!(listed.body["keys"].as_array().unwrap().len(), 1);
    c.get(&format!("{KEYS}?limit=1&cursor=1"), token).await;
    c.get(&format!("{KEYS}?cursor=99999999999999999999"), token)
        .await;
    // An empty value is refused, not read as absent: an ignored
    // `min_position` would skip the wait the client asked for.
    let empty = c.get(&format!("{KEYS}?min_position="), token).await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST, "{}", empty.body);
    assert_eq!(empty.field(), Some("min_position"));

    c.delete(&format!("{KEYS}/{unknown}"), token).await;
    let spare = c.app.connected_key(&user, "paper-key-spare").await;
    let disconnected = c.delete(&format!("{KEYS}/{spare}"), token).await;
    assert_eq!(disconnected.status, StatusCode::OK, "{}", disconnected.body);
    c.finish("keys");
}
