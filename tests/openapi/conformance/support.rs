//! Support tickets: opening, replying, assigning, closing and reopening,
//! listing and reading, as their owner, another user and the staff.

use axum::http::StatusCode;
use domain::Role;
use serde_json::json;
use uuid::Uuid;

use crate::conformance::Conformance;

const TICKETS: &str = "/api/v1/support/tickets";

#[tokio::test]
async fn support_ticket_operations_answer_as_documented() {
    let mut c = Conformance::spawn().await;
    let user = c.app.user().await;
    let other = c.app.user().await;
    let agent = c.app.user_with_role(Role::Support).await;
    let (token, as_other, as_agent) = (
        Some(user.token.as_str()),
        Some(other.token.as_str()),
        Some(agent.token.as_str()),
    );
    let unknown = Uuid::new_v4();
    let at = |ticket: &str, action: &str| format!("{TICKETS}/{ticket}/{action}");

    let opened = c
        .post(
            TICKETS,
            token,
            json!({ "subject": "Help", "body": "Line one\n\tline two" }),
        )
        .await;
    assert_eq!(opened.status, StatusCode::CREATED, "{}", opened.body);
    let ticket = opened.body["ticket_id"].as_str().unwrap().to_string();
    let position = opened.body["position"].as_str().unwrap().to_string();
    c.post(TICKETS, token, json!({ "subject": "", "body": "x" }))
        .await;

    let read = c
        .get(
            &format!("{TICKETS}/{ticket}?min_position={position}"),
            token,
        )
        .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    c.get(&format!("{TICKETS}/{ticket}"), as_other).await;
    c.get(&format!("{TICKETS}/not-a-ticket"), token).await;
    let listed = c
        .get(&format!("{TICKETS}?limit=1&min_position={position}"), token)
        .await;
    assert_eq!(listed.body["tickets"].as_array().unwrap().len(), 1);
    c.get(&format!("{TICKETS}?status=pending"), as_agent).await;
    let filtered = c
        .get(
            &format!("{TICKETS}?status=open&owner_id={}", user.id),
            as_agent,
        )
        .await;
    assert_eq!(filtered.status, StatusCode::OK, "{}", filtered.body);

    let replied = c
        .post(
            &at(&ticket, "replies"),
            as_agent,
            json!({ "body": "On it." }),
        )
        .await;
    assert_eq!(replied.status, StatusCode::CREATED, "{}", replied.body);
    c.post(&at(&ticket, "replies"), as_other, json!({ "body": "me?" }))
        .await;
    c.post(&at(&ticket, "replies"), token, json!({ "body": "\r" }))
        .await;
    c.post(&at("x", "replies"), token, json!({ "body": "x" }))
        .await;

    let assigned = c
        .post(
            &at(&ticket, "assign"),
            as_agent,
            json!({ "assignee_id": agent.id }),
        )
        .await;
    assert_eq!(assigned.status, StatusCode::OK, "{}", assigned.body);
    c.post(
        &at(&ticket, "assign"),
        as_agent,
        json!({ "assignee_id": user.id }),
    )
    .await;
    c.post(
        &at(&ticket, "assign"),
        token,
        json!({ "assignee_id": agent.id }),
    )
    .await;
    c.post(
        &at(&unknown.to_string(), "assign"),
        as_agent,
        json!({ "assignee_id": agent.id }),
    )
    .await;

    let closed = c.post_empty(&at(&ticket, "close"), token).await;
    assert_eq!(closed.status, StatusCode::OK, "{}", closed.body);
    let again = c.post_empty(&at(&ticket, "close"), token).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    c.post(&at(&ticket, "replies"), token, json!({ "body": "hello?" }))
        .await;
    c.post(
        &at(&ticket, "assign"),
        as_agent,
        json!({ "assignee_id": agent.id }),
    )
    .await;
    c.post_empty(&at(&unknown.to_string(), "close"), token)
        .await;
    let reopened = c.post_empty(&at(&ticket, "reopen"), as_agent).await;
    assert_eq!(reopened.status, StatusCode::OK, "{}", reopened.body);
    c.post_empty(&at(&ticket, "reopen"), token).await;
    c.post_empty(&at("x", "reopen"), token).await;
    c.finish("support");
}
