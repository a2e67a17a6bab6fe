//! Audit reports: what `export` writes, `verify-export` accepting it, and
//! catching any change to the report or to the log behind it.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use integration_tests::TestApp;
use projections::audit::export::{build_report, verify_report};
use rust_decimal::Decimal;
use serde_json::Value;

use crate::common::{describe, replay, stdout};
use crate::history::some_history;

struct TempFile(PathBuf);

impl TempFile {
    fn new() -> Self {
        TempFile(std::env::temp_dir().join(format!("audit-{}.json", uuid::Uuid::new_v4())))
    }
    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[tokio::test]
async fn an_export_verifies_and_any_change_to_it_or_the_log_is_caught() {
    let app = TestApp::spawn().await;
    let (trader, bot_id) = some_history(&app).await;
    // Another user's events stay out of the report.
    some_history(&app).await;
    let file = TempFile::new();
    let user = trader.id.to_string();

    let output = replay(&app, &["export", "--user", &user, "--out", file.path()]).await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let text = std::fs::read_to_string(&file.0).unwrap();
    let report: Value = serde_json::from_str(&text).unwrap();
    let content = &report["content"];
    let streams = content["streams"].as_array().unwrap();
    let kinds: Vec<&str> = streams
        .iter()
        .map(|s| s["aggregate_type"].as_str().unwrap())
        .collect();
    // The trader's streams, their three fills' notifications included.
    assert_eq!(
        kinds,
        vec![
            "Bot",
            "ExchangeKey",
            "Notification",
            "Notification",
            "Notification",
            "Portfolio",
            "User"
        ]
    );
    let owned: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE aggregate_id IN ($1, $2) \
            OR aggregate_id IN (SELECT aggregate_id FROM events \
                                 WHERE aggregate_type IN ('ExchangeKey', 'Notification') \
                                   AND payload->>'owner_id' = $1)",
    )
    .bind(&user)
    .bind(bot_id.to_string())
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(content["event_count"], owned);
    let portfolio = streams
        .iter()
        .find(|s| s["aggregate_type"] == "Portfolio")
        .unwrap();
    let quantity: Decimal = portfolio["state_at_end"]["positions"]["XBT/USD"]["quantity"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(quantity, Decimal::from(1), "bought 2, sold 1");
    assert_eq!(report["digest"]["value"].as_str().unwrap().len(), 64);

    let output = replay(&app, &["verify-export", file.path()]).await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert!(
        stdout(&output).contains("digest matches"),
        "{}",
        describe(&output)
    );

    // A report over part of the range: fewer events, the same end states.
    let second_fill: DateTime<Utc> = sqlx::query_scalar(
        "SELECT recorded_at FROM events WHERE aggregate_type = 'Bot' AND aggregate_id = $1 AND sequence = 5",
    )
    .bind(bot_id.to_string())
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let part = build_report(&app.pool, trader.id, Some(second_fill), None, None)
        .await
        .unwrap();
    assert!(part.content.event_count < owned as u64 && part.content.event_count >= 2);
    let part_text = serde_json::to_string(&part).unwrap();
    let checked = verify_report(&app.pool, &part_text, None).await.unwrap();
    assert!(checked.is_clean(), "{:?}", checked.problems);

    // An edited report: its digest and the edited event's hash fail.
    let edited = text.replacen("O-1", "O-7", 1);
    assert_ne!(edited, text);
    std::fs::write(&file.0, &edited).unwrap();
    let output = replay(&app, &["verify-export", file.path(), "--json"]).await;
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let printed: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(printed["digest_matches"], false);
    let problems: Vec<&str> = printed["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(
        problems.iter().any(|p| p.starts_with("digest")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.contains(&format!(
            "Bot/{bot_id} sequence 4: content does not match its hash"
        ))),
        "{problems:?}"
    );

    // The untouched report against a log changed since: named by row.
    std::fs::write(&file.0, &text).unwrap();
    let mut connection = app.tamperer().await;
    sqlx::query(
        "UPDATE events SET payload = replace(payload::text, '\"O-2\"', '\"O-8\"')::json \
         WHERE aggregate_type = 'Bot' AND aggregate_id = $1 AND sequence = 5",
    )
    .bind(bot_id.to_string())
    .execute(&mut connection)
    .await
    .unwrap();
    let checked = verify_report(&app.pool, &text, None).await.unwrap();
    assert!(checked.digest_matches);
    assert!(
        checked.problems.iter().any(|p| p.contains(&format!(
            "Bot/{bot_id} sequence 5: the log's row does not match its hash"
        ))),
        "{:?}",
        checked.problems
    );
    assert!(
        checked.problems.iter().any(|p| p.contains(&format!(
            "Bot/{bot_id} sequence 5: the report's event differs"
        ))),
        "{:?}",
        checked.problems
    );
    let output = replay(&app, &["verify-export", file.path()]).await;
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
}

#[tokio::test]
async fn a_report_made_while_a_transaction_is_in_flight_verifies_clean_after_it_commits() {
    let app = TestApp::spawn().await;
    let (trader, _bot) = some_history(&app).await;
    let user = trader.id.to_string();
    let next: i64 = sqlx::query_scalar(
        "SELECT max(sequence) + 1 FROM events WHERE aggregate_type = 'User' AND aggregate_id = $1",
    )
    .bind(&user)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    // An append of the trader's, inserted (so recorded before the report's
    // `to`) but not yet committed while the report is made.
    let mut writer = app.pool.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
                             payload, metadata) \
         VALUES ('User', $1, $2, 'user.logged_in', '1.0', \
                 json_build_object('type', 'user.logged_in', 'at', now()), '{}')",
    )
    .bind(&user)
    .bind(next)
    .execute(&mut *writer)
    .await
    .unwrap();
    let report = build_report(&app.pool, trader.id, None, None, None)
        .await
        .unwrap();
    writer.commit().await.unwrap();
    let text = serde_json::to_string(&report).unwrap();
    let checked = verify_report(&app.pool, &text, None).await.unwrap();
    assert!(checked.is_clean(), "{:?}", checked.problems);
    // The late event is not in the report, and a new report has it.
    let reported = |report: &projections::audit::export::AuditReport| {
        report
            .content
            .streams
            .iter()
            .find(|s| s.aggregate_type == domain::AggregateType::User && s.aggregate_id == user)
            .map(|s| s.events.len())
            .unwrap()
    };
    // Once no older transaction runs, the head passes it.
    let before = reported(&report);
    app.eventually(30, "a new report to hold the late event", || async {
        let later = build_report(&app.pool, trader.id, None, None, None)
            .await
            .unwrap();
        reported(&later) == before + 1
    })
    .await;
}

#[tokio::test]
async fn a_support_ticket_is_in_its_owners_export_and_in_no_one_elses() {
    let app = TestApp::spawn().await;
    let owner = app.user().await;
    let agent = app.user_with_role(domain::Role::Support).await;
    let (ticket_id, _) = app.ticket(&owner, "Export me", "Body").await;
    let at = |action: &str| format!("/api/v1/support/tickets/{ticket_id}/{action}");
    for (path, token, body) in [
        (
            at("assign"),
            &agent.token,
            Some(serde_json::json!({ "assignee_id": agent.id })),
        ),
        (
            at("replies"),
            &agent.token,
            Some(serde_json::json!({ "body": "Staff reply" })),
        ),
        (at("close"), &owner.token, None),
    ] {
        let response = match body {
            Some(body) => app.post(&path, Some(token), body).await,
            None => app.post_empty(&path, Some(token)).await,
        };
        assert!(response.status.is_success(), "{path}: {}", response.body);
    }
    // A report holds what was committed below the oldest transaction then
    // running: the projectors' batches are done once they caught up.
    crate::common::caught_up(&app).await;

    let report = build_report(&app.pool, owner.id, None, None, None)
        .await
        .unwrap();
    let ticket = report
        .content
        .streams
        .iter()
        .find(|s| s.aggregate_type == domain::AggregateType::SupportTicket)
        .expect("the ticket's stream is in its owner's export");
    assert_eq!(ticket.aggregate_id, ticket_id.to_string());
    let types: Vec<&str> = ticket
        .events
        .iter()
        .map(|e| e.fields.event_type.as_str())
        .collect();
    assert_eq!(
        types,
        [
            "support.ticket_opened",
            "support.ticket_assigned",
            "support.reply_added",
            "support.ticket_closed"
        ]
    );
    assert_eq!(ticket.sequence_at_end, 4);
    assert_eq!(ticket.state_at_end["status"], "closed");
    assert_eq!(
        ticket.state_at_end["assignee_id"],
        serde_json::json!(agent.id)
    );
    assert_eq!(ticket.state_at_end["replies"], 1);
    let text = serde_json::to_string(&report).unwrap();
    let checked = verify_report(&app.pool, &text, None).await.unwrap();
    assert!(checked.is_clean(), "{:?}", checked.problems);

    // The staff member who worked it owns none of it.
    let staff_report = build_report(&app.pool, agent.id, None, None, None)
        .await
        .unwrap();
    assert!(
        staff_report
            .content
            .streams
            .iter()
            .all(|s| s.aggregate_type != domain::AggregateType::SupportTicket),
        "{:?}",
        staff_report.content.streams
    );
}
