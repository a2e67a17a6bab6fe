//! Support tickets on Kafka: every ticket event of the log on the topic of
//! its own, `support.events`, once, keyed by the ticket, in sequence order,
//! matching the published schemas, with the texts sealed.

use std::collections::HashSet;

use axum::http::StatusCode;
use integration_tests::TestApp;
use serde_json::json;
use uuid::Uuid;

use crate::mirror::check_against_log;
use crate::support::{
    bootstrap, consume_until, delete_topics, log_rows, mirror_reached_the_head, topic_names,
    unique_prefix,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ticket_events_reach_support_events_once_in_order_with_their_texts_sealed() {
    let prefix = unique_prefix();
    let bootstrap = bootstrap();
    let app = TestApp::spawn_with(&[
        ("MUCKARD_ROLES", "api,projector,kafka-mirror"),
        ("KAFKA_BOOTSTRAP_SERVERS", &bootstrap),
        ("KAFKA_TOPIC_PREFIX", &prefix),
    ])
    .await;
    let owner = app.user().await;
    let agent = app.user_with_role(domain::Role::Support).await;
    let marker = Uuid::new_v4().simple().to_string();
    let mut tickets = Vec::new();
    for n in 0..2 {
        let (ticket_id, _) = app
            .ticket(
                &owner,
                &format!("Subject {marker}"),
                &format!("Body {marker} {n}"),
            )
            .await;
        let at = |action: &str| format!("/api/v1/support/tickets/{ticket_id}/{action}");
        for (path, token, body) in [
            (
                at("assign"),
                &agent.token,
                Some(json!({ "assignee_id": agent.id })),
            ),
            (
                at("replies"),
                &agent.token,
                Some(json!({ "body": format!("Reply {marker}") })),
            ),
            (at("close"), &owner.token, None),
            (at("reopen"), &agent.token, None),
        ] {
            let response = match body {
                Some(body) => app.post(&path, Some(token), body).await,
                None => app.post_empty(&path, Some(token)).await,
            };
            assert!(response.status.is_success(), "{path}: {}", response.body);
            assert_ne!(response.status, StatusCode::NO_CONTENT);
        }
        tickets.push(ticket_id);
    }
    mirror_reached_the_head(&app).await;

    // Every event of the log, the users' included, once and where it
    // belongs; the ticket events on support.events.
    let log = log_rows(&app).await;
    let expected = log.len();
    let topics = topic_names(&app);
    assert!(
        topics.contains(&format!("{prefix}support.events")),
        "{topics:?}"
    );
    let consumed = {
        let bootstrap = bootstrap.clone();
        tokio::task::spawn_blocking(move || {
            consume_until(&bootstrap, &topics, 90, |read| read.len() >= expected)
        })
        .await
        .unwrap()
    };
    assert_eq!(check_against_log(&prefix, &log, &consumed, false), 0);
    assert_eq!(consumed.len(), expected, "nothing more than the log");
    let validator = crate::schemas::envelope_validator();
    for message in &consumed {
        let errors = crate::schemas::errors(&validator, &message.value);
        assert!(errors.is_empty(), "{}: {errors:?}", message.text);
    }

    let support: Vec<_> = consumed
        .iter()
        .filter(|m| m.topic == format!("{prefix}support.events"))
        .collect();
    assert_eq!(support.len(), 2 * 5, "five events per ticket");
    let keys: HashSet<Uuid> = support.iter().map(|m| m.key.parse().unwrap()).collect();
    assert_eq!(keys, tickets.iter().copied().collect());
    for ticket_id in &tickets {
        let mut of_ticket: Vec<_> = support
            .iter()
            .filter(|m| m.key == ticket_id.to_string())
            .collect();
        of_ticket.sort_by_key(|m| m.offset);
        let types: Vec<&str> = of_ticket
            .iter()
            .map(|m| m.value["event_type"].as_str().unwrap())
            .collect();
        assert_eq!(
            types,
            [
                "support.ticket_opened",
                "support.ticket_assigned",
                "support.reply_added",
                "support.ticket_closed",
                "support.ticket_reopened"
            ]
        );
        for message in &of_ticket {
            assert_eq!(message.value["aggregate_type"], "SupportTicket");
            assert_eq!(message.value["payload"]["owner_id"], json!(owner.id));
            assert_eq!(
                message.headers.get("aggregate_type").map(String::as_str),
                Some("SupportTicket")
            );
        }
        let opened = &of_ticket[0].value["payload"];
        assert!(
            opened["subject"]["sealed"]
                .as_str()
                .is_some_and(|s| s.starts_with("1:")),
            "{opened}"
        );
    }
    // No text of a ticket in clear in any message, value or header.
    for message in &consumed {
        assert!(
            !format!("{} {:?}", message.text, message.headers).contains(&marker),
            "clear ticket text on {}: {}",
            message.topic,
            message.text
        );
    }

    app.shutdown.cancel();
    delete_topics(&app.settings.kafka, &app.settings.kafka.layout.specs()).await;
}
