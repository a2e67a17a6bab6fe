//! Support tickets through the REST API against the real database: a user
//! works their own ticket from opening to reopening; another user finds no
//! trace of it; the staff see every ticket, filter, assign and reply; bad
//! input is a 4xx naming the field; the texts are sealed in the log and
//! erasing the owner leaves none of them readable.

use axum::http::StatusCode;
use domain::Role;
use integration_tests::{TestApp, TestUser};
use serde_json::{json, Value};
use uuid::Uuid;

const TICKETS: &str = "/api/v1/support/tickets";

fn ticket_path(ticket_id: Uuid, action: &str) -> String {
    format!("{TICKETS}/{ticket_id}/{action}")
}

/// The ticket as `user` reads it once the read models hold `position`.
async fn read_ticket(app: &TestApp, user: &TestUser, ticket_id: Uuid, position: &str) -> Value {
    let response = app
        .get(
            &format!("{TICKETS}/{ticket_id}?min_position={position}"),
            Some(&user.token),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    response.body
}

/// The ids of the tickets `user` lists with `query`, after `position`.
async fn listed(app: &TestApp, user: &TestUser, query: &str, position: &str) -> Vec<Uuid> {
    let separator = if query.is_empty() { "" } else { "&" };
    let response = app
        .get(
            &format!("{TICKETS}?{query}{separator}min_position={position}"),
            Some(&user.token),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    response.body["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["ticket_id"].as_str().unwrap().parse().unwrap())
        .collect()
}

fn position_of(response: &integration_tests::TestResponse) -> String {
    response.body["position"]
        .as_str()
        .unwrap_or_else(|| panic!("no position in {}", response.body))
        .to_string()
}

#[tokio::test]
async fn a_user_opens_replies_to_closes_and_reopens_their_ticket() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let body = "Hello,\n\tmy bot stopped at 02:26.\nZoë";
    let (ticket_id, opened) = app.ticket(&user, "  My bot stopped ", body).await;

    let ticket = read_ticket(&app, &user, ticket_id, &opened).await;
    assert_eq!(ticket["subject"], "My bot stopped", "trimmed: {ticket}");
    assert_eq!(ticket["status"], "open");
    assert_eq!(ticket["owner_id"], json!(user.id));
    assert_eq!(ticket["assignee_id"], Value::Null);
    assert_eq!(ticket["replies"], 0);
    assert_eq!(ticket["messages"].as_array().unwrap().len(), 1);
    assert_eq!(ticket["messages"][0]["number"], 0);
    assert_eq!(ticket["messages"][0]["body"], body);
    assert_eq!(ticket["messages"][0]["author_id"], json!(user.id));
    assert_eq!(ticket["messages"][0]["from_staff"], false);

    let replied = app
        .post(
            &ticket_path(ticket_id, "replies"),
            Some(&user.token),
            json!({ "body": "Still stopped." }),
        )
        .await;
    assert_eq!(replied.status, StatusCode::CREATED, "{}", replied.body);
    let closed = app
        .post_empty(&ticket_path(ticket_id, "close"), Some(&user.token))
        .await;
    assert_eq!(closed.status, StatusCode::OK, "{}", closed.body);
    assert_eq!(closed.body["status"], "closed");
    let ticket = read_ticket(&app, &user, ticket_id, &position_of(&closed)).await;
    assert_eq!(ticket["status"], "closed");
    assert!(ticket["closed_at"].is_string(), "{ticket}");
    assert_eq!(ticket["replies"], 1);

    // A closed ticket takes no reply and no second close, until reopened.
    let refused = app
        .post(
            &ticket_path(ticket_id, "replies"),
            Some(&user.token),
            json!({ "body": "Hello?" }),
        )
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    let again = app
        .post_empty(&ticket_path(ticket_id, "close"), Some(&user.token))
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    let reopened = app
        .post_empty(&ticket_path(ticket_id, "reopen"), Some(&user.token))
        .await;
    assert_eq!(reopened.status, StatusCode::OK, "{}", reopened.body);
    assert_eq!(reopened.body["status"], "open");
    let reply = app
        .post(
            &ticket_path(ticket_id, "replies"),
            Some(&user.token),
            json!({ "body": "It works again, thanks." }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);

    let ticket = read_ticket(&app, &user, ticket_id, &position_of(&reply)).await;
    assert_eq!(ticket["status"], "open");
    assert_eq!(ticket["closed_at"], Value::Null);
    let messages: Vec<(i64, &str)> = ticket["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["number"].as_i64().unwrap(), m["body"].as_str().unwrap()))
        .collect();
    assert_eq!(
        messages,
        [
            (0, body),
            (1, "Still stopped."),
            (2, "It works again, thanks.")
        ]
    );
    assert_eq!(
        listed(&app, &user, "", &position_of(&reply)).await,
        [ticket_id]
    );

    // The log holds the events with the owner in each and the texts sealed.
    assert_eq!(
        app.event_types("SupportTicket", ticket_id).await,
        [
            "support.ticket_opened",
            "support.reply_added",
            "support.ticket_closed",
            "support.ticket_reopened",
            "support.reply_added"
        ]
    );
    let stream = app.stream("SupportTicket", ticket_id).await;
    for event in &stream {
        assert_eq!(event.payload_json()["owner_id"], json!(user.id));
        assert_eq!(event.event_version, "1.0");
        assert!(!event.payload.contains("stopped"), "{}", event.payload);
    }
    let opened = stream[0].payload_json();
    assert_eq!(
        app.open_personal(user.id, "subject", &opened["subject"])
            .await
            .as_deref(),
        Some("My bot stopped")
    );
    assert_eq!(
        app.open_personal(user.id, "body", &opened["body"])
            .await
            .as_deref(),
        Some(body)
    );
    assert_eq!(
        stream[0].metadata_json()["command_type"],
        "support.open_ticket"
    );
}

#[tokio::test]
async fn another_user_finds_no_trace_of_a_ticket_that_is_not_theirs() {
    let app = TestApp::spawn().await;
    let owner = app.user().await;
    let other = app.user().await;
    let auditor = app.user_with_role(Role::Auditor).await;
    let (ticket_id, position) = app.ticket(&owner, "Private", "Only mine.").await;
    let (own_ticket, own_position) = app.ticket(&other, "Theirs", "Another one.").await;
    let unknown = Uuid::new_v4();

    for stranger in [&other, &auditor] {
        let token = Some(stranger.token.as_str());
        let read = app
            .get(
                &format!("{TICKETS}/{ticket_id}?min_position={position}"),
                token,
            )
            .await;
        assert_eq!(read.status, StatusCode::NOT_FOUND, "{}", read.body);
        let never = app.get(&format!("{TICKETS}/{unknown}"), token).await;
        assert_eq!(never.status, StatusCode::NOT_FOUND, "{}", never.body);
        assert_eq!(read.body["error"], never.body["error"], "the same answer");
        for action in ["close", "reopen"] {
            let refused = app.post_empty(&ticket_path(ticket_id, action), token).await;
            assert_eq!(refused.status, StatusCode::NOT_FOUND, "{}", refused.body);
        }
        let refused = app
            .post(
                &ticket_path(ticket_id, "replies"),
                token,
                json!({ "body": "me too" }),
            )
            .await;
        assert_eq!(refused.status, StatusCode::NOT_FOUND, "{}", refused.body);
        // Assigning is the staff's: refused before the ticket is looked at.
        let assign = app
            .post(
                &ticket_path(ticket_id, "assign"),
                token,
                json!({ "assignee_id": stranger.id }),
            )
            .await;
        assert_eq!(assign.status, StatusCode::FORBIDDEN, "{}", assign.body);
        // Filtering by the owner does not widen a user's list.
        let filtered = listed(&app, stranger, &format!("owner_id={}", owner.id), &position).await;
        assert!(filtered.is_empty(), "{filtered:?}");
    }
    assert_eq!(
        listed(&app, &other, "", &own_position).await,
        [own_ticket],
        "a user lists their own tickets only"
    );
    assert!(listed(&app, &auditor, "", &own_position).await.is_empty());
    // Nothing was recorded by the refusals.
    assert_eq!(
        app.event_types("SupportTicket", ticket_id).await,
        ["support.ticket_opened"]
    );
}

#[tokio::test]
async fn the_staff_list_every_ticket_filter_assign_and_reply() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let agent = app.user_with_role(Role::Support).await;
    let admin = app.user_with_role(Role::Admin).await;
    let (first, _) = app.ticket(&alice, "First", "One.").await;
    let (second, _) = app.ticket(&bob, "Second", "Two.").await;
    let (third, position) = app.ticket(&alice, "Third", "Three.").await;

    assert_eq!(
        listed(&app, &agent, "", &position).await,
        [first, second, third],
        "oldest first"
    );
    assert_eq!(
        listed(&app, &agent, &format!("owner_id={}", alice.id), &position).await,
        [first, third]
    );
    let page = app
        .get(&format!("{TICKETS}?limit=2"), Some(&agent.token))
        .await;
    assert_eq!(page.body["next_cursor"], "2", "{}", page.body);
    let rest = app
        .get(&format!("{TICKETS}?limit=2&cursor=2"), Some(&agent.token))
        .await;
    assert_eq!(rest.body["tickets"][0]["ticket_id"], json!(third));
    assert_eq!(rest.body["next_cursor"], Value::Null);

    // Assigned to a member of the staff, never to a plain user.
    let assigned = app
        .post(
            &ticket_path(second, "assign"),
            Some(&agent.token),
            json!({ "assignee_id": agent.id }),
        )
        .await;
    assert_eq!(assigned.status, StatusCode::OK, "{}", assigned.body);
    assert_eq!(assigned.body["assignee_id"], json!(agent.id));
    for not_staff in [alice.id, Uuid::new_v4()] {
        let refused = app
            .post(
                &ticket_path(first, "assign"),
                Some(&agent.token),
                json!({ "assignee_id": not_staff }),
            )
            .await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            refused.body
        );
        assert_eq!(refused.field(), Some("assignee_id"));
    }
    let by_admin = app
        .post(
            &ticket_path(first, "assign"),
            Some(&admin.token),
            json!({ "assignee_id": agent.id }),
        )
        .await;
    assert_eq!(by_admin.status, StatusCode::OK, "{}", by_admin.body);

    // The staff reply and close on any ticket; the owner sees both.
    let replied = app
        .post(
            &ticket_path(second, "replies"),
            Some(&agent.token),
            json!({ "body": "Restarted it for you." }),
        )
        .await;
    assert_eq!(replied.status, StatusCode::CREATED, "{}", replied.body);
    let closed = app
        .post_empty(&ticket_path(second, "close"), Some(&agent.token))
        .await;
    assert_eq!(closed.status, StatusCode::OK, "{}", closed.body);
    let position = position_of(&closed);
    let seen = read_ticket(&app, &bob, second, &position).await;
    assert_eq!(seen["assignee_id"], json!(agent.id));
    assert_eq!(seen["status"], "closed");
    assert_eq!(seen["messages"][1]["author_id"], json!(agent.id));
    assert_eq!(seen["messages"][1]["from_staff"], true);
    assert_eq!(seen["messages"][1]["body"], "Restarted it for you.");
    let stream = app.stream("SupportTicket", second).await;
    let assignment = stream[1].payload_json();
    assert_eq!(assignment["type"], "support.ticket_assigned");
    assert_eq!(assignment["assigned_by"], json!(agent.id));
    assert_eq!(stream[1].metadata_json()["role"], "support");

    // The filters: status, assignee, and all three together.
    assert_eq!(
        listed(&app, &agent, "status=closed", &position).await,
        [second]
    );
    assert_eq!(
        listed(&app, &agent, "status=open", &position).await,
        [first, third]
    );
    assert_eq!(
        listed(
            &app,
            &agent,
            &format!("assignee_id={}", agent.id),
            &position
        )
        .await,
        [first, second]
    );
    assert_eq!(
        listed(
            &app,
            &admin,
            &format!("status=open&assignee_id={}&owner_id={}", agent.id, alice.id),
            &position
        )
        .await,
        [first]
    );
    // A user's own list takes the filters too.
    assert_eq!(
        listed(&app, &bob, "status=closed", &position).await,
        [second]
    );
    assert!(listed(&app, &bob, "status=open", &position)
        .await
        .is_empty());
}

#[tokio::test]
async fn bad_input_is_a_4xx_naming_the_field() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let token = Some(user.token.as_str());
    let (ticket_id, _) = app.ticket(&user, "Fine", "Fine.").await;
    let too_long_subject = "s".repeat(201);
    let too_long_body = "b".repeat(10_001);
    for (body, field) in [
        (json!({ "subject": "", "body": "x" }), "subject"),
        (json!({ "subject": "   ", "body": "x" }), "subject"),
        (json!({ "subject": "two\nlines", "body": "x" }), "subject"),
        (
            json!({ "subject": too_long_subject, "body": "x" }),
            "subject",
        ),
        (json!({ "subject": "s", "body": "" }), "body"),
        (json!({ "subject": "s", "body": " \n\t " }), "body"),
        (json!({ "subject": "s", "body": too_long_body }), "body"),
        (
            json!({ "subject": "s", "body": "carriage\r\nreturn" }),
            "body",
        ),
        (json!({ "subject": "s", "body": "nul\u{0}" }), "body"),
        (json!({ "subject": "s" }), "body"),
        (
            json!({ "subject": "s", "body": "b", "priority": 1 }),
            "priority",
        ),
        (json!({ "subject": 7, "body": "b" }), "subject"),
    ] {
        let refused = app.post(TICKETS, token, body.clone()).await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            refused.body
        );
        assert_eq!(refused.field(), Some(field), "{body}: {}", refused.body);
    }
    let longest = app
        .post(
            TICKETS,
            token,
            json!({ "subject": "s".repeat(200), "body": "b".repeat(10_000) }),
        )
        .await;
    assert_eq!(longest.status, StatusCode::CREATED, "{}", longest.body);
    let reply = app
        .post(
            &ticket_path(ticket_id, "replies"),
            token,
            json!({ "body": "esc\u{1b}[31m" }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.field(), Some("body"));
    let unreadable = app
        .request(
            axum::http::Method::POST,
            TICKETS,
            token,
            Some("{\"subject\": "),
            &[],
        )
        .await;
    assert_eq!(unreadable.status, StatusCode::BAD_REQUEST);

    for (path, field) in [
        (format!("{TICKETS}/not-a-ticket"), "ticket_id"),
        (format!("{TICKETS}?status=pending"), "status"),
        (format!("{TICKETS}?assignee_id=x"), "assignee_id"),
        (format!("{TICKETS}?owner_id=x"), "owner_id"),
        (format!("{TICKETS}?priority=high"), "priority"),
        (format!("{TICKETS}?status="), "status"),
        (format!("{TICKETS}?cursor=0"), "cursor"),
    ] {
        let refused = app.get(&path, token).await;
        assert_eq!(
            refused.status,
            StatusCode::BAD_REQUEST,
            "{path}: {}",
            refused.body
        );
        assert_eq!(refused.field(), Some(field), "{path}");
    }
    for action in ["close", "reopen"] {
        let refused = app
            .post_empty(&format!("{TICKETS}/x/{action}"), token)
            .await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST);
        assert_eq!(refused.field(), Some("ticket_id"));
    }
    let agent = app.user_with_role(Role::Support).await;
    let assign = app
        .post(
            &ticket_path(ticket_id, "assign"),
            Some(&agent.token),
            json!({ "assignee_id": "nobody" }),
        )
        .await;
    assert_eq!(assign.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(assign.field(), Some("assignee_id"));
    let anonymous = app.get(TICKETS, None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn erasing_the_owner_leaves_their_tickets_unreadable_and_closed_to_more_text() {
    let app = TestApp::spawn().await;
    let owner = app.user().await;
    let agent = app.user_with_role(Role::Support).await;
    let admin = app.user_with_role(Role::Admin).await;
    let marker = Uuid::new_v4().simple().to_string();
    let subject = format!("Subject {marker}");
    let body = format!("Body {marker}");
    let staff_reply = format!("Staff {marker}");
    let (ticket_id, _) = app.ticket(&owner, &subject, &body).await;
    let replied = app
        .post(
            &ticket_path(ticket_id, "replies"),
            Some(&agent.token),
            json!({ "body": staff_reply }),
        )
        .await;
    assert_eq!(replied.status, StatusCode::CREATED, "{}", replied.body);
    let before = read_ticket(&app, &agent, ticket_id, &position_of(&replied)).await;
    assert_eq!(before["subject"], json!(subject));
    assert_eq!(before["messages"][1]["body"], json!(staff_reply));
    // The staff's reply is sealed under the owner's key, not the staff's.
    let stream = app.stream("SupportTicket", ticket_id).await;
    let reply = stream[1].payload_json();
    assert_eq!(
        app.open_personal(owner.id, "body", &reply["body"])
            .await
            .as_deref(),
        Some(staff_reply.as_str())
    );
    assert_eq!(
        app.open_personal(agent.id, "body", &reply["body"]).await,
        None
    );

    let erased = app
        .post_empty(
            &format!("/api/v1/admin/users/{}/erase", owner.id),
            Some(&admin.token),
        )
        .await;
    assert_eq!(erased.status, StatusCode::OK, "{}", erased.body);
    let after = read_ticket(&app, &agent, ticket_id, &position_of(&erased)).await;
    assert_eq!(after["subject"], Value::Null, "{after}");
    for message in after["messages"].as_array().unwrap() {
        assert_eq!(message["body"], Value::Null, "{after}");
    }
    // Nothing in any table or any event holds the texts in clear.
    let clear: Vec<String> = sqlx::query_scalar(
        "SELECT row_to_json(e)::text FROM events e WHERE row_to_json(e)::text LIKE $1 \
         UNION ALL SELECT row_to_json(t)::text FROM support_tickets t \
            WHERE row_to_json(t)::text LIKE $1 \
         UNION ALL SELECT row_to_json(m)::text FROM support_messages m \
            WHERE row_to_json(m)::text LIKE $1 \
         UNION ALL SELECT row_to_json(s)::text FROM snapshots s \
            WHERE row_to_json(s)::text LIKE $1",
    )
    .bind(format!("%{marker}%"))
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert!(clear.is_empty(), "{clear:#?}");
    for event in app.stream("SupportTicket", ticket_id).await {
        let payload = event.payload_json();
        for field in domain::personal::personal_fields(&event.event_type) {
            assert_eq!(
                app.open_personal(owner.id, field, &payload[*field]).await,
                None,
                "{} {field} still opens",
                event.event_type
            );
        }
    }

    // No more text can be written to it; closing it still works.
    let more = app
        .post(
            &ticket_path(ticket_id, "replies"),
            Some(&agent.token),
            json!({ "body": "Anyone there?" }),
        )
        .await;
    assert_eq!(more.status, StatusCode::CONFLICT, "{}", more.body);
    let closed = app
        .post_empty(&ticket_path(ticket_id, "close"), Some(&agent.token))
        .await;
    assert_eq!(closed.status, StatusCode::OK, "{}", closed.body);
}
