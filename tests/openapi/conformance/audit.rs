//! Auditors' reads of the log: a stream's events and its state folded
//! up to a point.

use axum::http::StatusCode;
use serde_json::json;
use uuid::Uuid;

use crate::conformance::Conformance;

const STREAMS: &str = "/api/v1/audit/streams";

#[tokio::test]
async fn audit_operations_answer_as_documented() {
    let mut c = Conformance::spawn().await;
    let trader = c.app.user().await;
    let running = c.app.running_bot(&trader).await;
    let admin = c.app.user_with_role(domain::Role::Admin).await;
    let as_admin = Some(admin.token.as_str());
    let unknown = Uuid::new_v4();

    let read = c
        .get(&format!("{STREAMS}/Bot/{running}/events"), as_admin)
        .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    assert!(read.body["events"].as_array().unwrap().len() >= 3);
    c.get(&format!("{STREAMS}/User/{unknown}/events"), as_admin)
        .await;
    c.get(&format!("{STREAMS}/Robot/{running}/events"), as_admin)
        .await;

    for query in ["", "?at_sequence=1", "?as_of=2020-01-01T00:00:00Z"] {
        let folded = c
            .get(&format!("{STREAMS}/Bot/{running}/state{query}"), as_admin)
            .await;
        assert_eq!(folded.status, StatusCode::OK, "{}", folded.body);
    }
    let regular = c.app.user().await;
    c.get(
        &format!("{STREAMS}/User/{}/state", regular.id),
        Some(&regular.token),
    )
    .await;
    // Signed reports: the key, an export, its verification, and refusals.
    let keys = c.get("/api/v1/audit/keys", None).await;
    assert_eq!(keys.status, StatusCode::OK, "{}", keys.body);
    let export = format!("/api/v1/audit/users/{}/export", trader.id);
    let report = c.post(&export, as_admin, json!({})).await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.body);
    c.post(&export, Some(&regular.token), json!({})).await;
    c.post(&export, as_admin, json!({ "since": "yesterday" }))
        .await;
    c.post("/api/v1/audit/users/not-an-id/export", as_admin, json!({}))
        .await;
    let verified = c
        .post("/api/v1/audit/verify-export", as_admin, report.body.clone())
        .await;
    assert_eq!(verified.body["clean"], true, "{}", verified.body);
    c.post(
        "/api/v1/audit/verify-export",
        as_admin,
        json!({ "not": "a report" }),
    )
    .await;
    c.post(
        "/api/v1/audit/verify-export",
        Some(&regular.token),
        json!({}),
    )
    .await;
    // The log's own verification: clean, then refusals.
    let verified = c.post("/api/v1/audit/verify", as_admin, json!({})).await;
    assert_eq!(verified.body["clean"], true, "{}", verified.body);
    assert!(verified.body["events_checked"].as_u64().unwrap() >= 3);
    c.post(
        "/api/v1/audit/verify",
        as_admin,
        json!({ "from": "2030-01-02T00:00:00Z", "to": "2030-01-01T00:00:00Z" }),
    )
    .await;
    c.post("/api/v1/audit/verify", as_admin, json!({ "since": 1 }))
        .await;
    c.post("/api/v1/audit/verify", Some(&regular.token), json!({}))
        .await;
    c.finish("audit");
}
