//! Auditors' reads of the log: a stream's events and its state folded
//! up to a point.

use axum::http::StatusCode;
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
    c.finish("audit");
}
