//! Tampering with the log as the superuser with its triggers off: each kind
//! of change is caught by `verify` and named exactly (stream, sequence,
//! what is wrong); an untouched log verifies clean.

use chrono::{DateTime, Utc};
use integration_tests::TestApp;
use projections::audit::verify::{verify_log, VerifyRange, VerifyReport};
use projections::audit::NoProgress;
use serde_json::Value;
use uuid::Uuid;

use crate::common::{describe, replay, stdout};
use crate::history::some_history;

async fn verify(app: &TestApp) -> VerifyReport {
    verify_log(&app.pool, VerifyRange::default(), &NoProgress)
        .await
        .unwrap()
}

/// Each broken row as (aggregate type, aggregate id, sequence, kind).
fn named(report: &VerifyReport) -> Vec<(String, String, i64, String)> {
    report
        .broken_rows
        .iter()
        .map(|row| {
            let problem = serde_json::to_value(&row.problem).unwrap();
            (
                row.aggregate_type.clone(),
                row.aggregate_id.clone(),
                row.sequence,
                problem["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn row(
    kind: &str,
    id: impl ToString,
    sequence: i64,
    problem: &str,
) -> (String, String, i64, String) {
    (
        kind.to_string(),
        id.to_string(),
        sequence,
        problem.to_string(),
    )
}

async fn execute(app: &TestApp, sql: &str, binds: &[&str]) {
    let mut connection = app.tamperer().await;
    let mut query = sqlx::query(sql);
    for bind in binds {
        query = query.bind(*bind);
    }
    let done = query.execute(&mut connection).await.unwrap();
    assert!(done.rows_affected() >= 1, "{sql} changed nothing");
}

#[tokio::test]
async fn an_untouched_log_verifies_clean() {
    let app = TestApp::spawn().await;
    some_history(&app).await;
    let report = verify(&app).await;
    assert!(report.is_clean(), "{:?}", report.broken_rows);
    assert_eq!(report.events_checked as i64, app.event_count().await);
    assert!(report.streams_checked >= 4);

    // A range checks fewer rows, still clean, links to rows before it
    // included.
    let middle: DateTime<Utc> = sqlx::query_scalar(
        "SELECT recorded_at FROM events ORDER BY global_position OFFSET 5 LIMIT 1",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let ranged = verify_log(
        &app.pool,
        VerifyRange {
            from: Some(middle),
            to: None,
        },
        &NoProgress,
    )
    .await
    .unwrap();
    assert!(ranged.is_clean(), "{:?}", ranged.broken_rows);
    assert!(ranged.events_checked < report.events_checked);
    assert!(ranged.events_checked > 0);

    let output = replay(&app, &["verify"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert!(
        stdout(&output).contains(": 0 broken rows"),
        "{}",
        describe(&output)
    );
    let output = replay(&app, &["verify", "--json"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let printed: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(printed["broken_rows"], serde_json::json!([]));
    assert_eq!(printed["events_checked"], report.events_checked);
}

#[tokio::test]
async fn a_changed_payload_is_named_by_its_row() {
    let app = TestApp::spawn().await;
    let (_, bot_id) = some_history(&app).await;
    // Bot: 1 configured, 2 start requested, 3 started, 4..6 the fills.
    execute(
        &app,
        "UPDATE events SET payload = replace(payload::text, '\"O-1\"', '\"O-9\"')::json \
         WHERE aggregate_type = 'Bot' AND aggregate_id = $1 AND sequence = 4",
        &[&bot_id.to_string()],
    )
    .await;
    let report = verify(&app).await;
    assert_eq!(named(&report), vec![row("Bot", bot_id, 4, "hash_mismatch")]);

    let output = replay(&app, &["verify"]).await;
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let text = stdout(&output);
    assert!(
        text.contains(&format!("BROKEN Bot/{bot_id} sequence 4 "))
            && text.contains("content does not match its hash")
            && text.contains(": 1 broken rows"),
        "{text}"
    );
}

#[tokio::test]
async fn a_deleted_row_is_named_as_the_gap_it_leaves() {
    let app = TestApp::spawn().await;
    let (_, bot_id) = some_history(&app).await;
    execute(
        &app,
        "DELETE FROM events WHERE aggregate_type = 'Bot' AND aggregate_id = $1 AND sequence = 5",
        &[&bot_id.to_string()],
    )
    .await;
    let report = verify(&app).await;
    assert_eq!(named(&report), vec![row("Bot", bot_id, 6, "gap")]);
    let problem = serde_json::to_value(&report.broken_rows[0].problem).unwrap();
    assert_eq!(
        (
            problem["missing_from"].clone(),
            problem["missing_to"].clone()
        ),
        (5.into(), 5.into())
    );
    assert!(
        report.broken_rows[0]
            .to_string()
            .contains(&format!("Bot/{bot_id} sequence 5: missing")),
        "{}",
        report.broken_rows[0]
    );
}

#[tokio::test]
async fn two_swapped_payloads_name_both_rows() {
    let app = TestApp::spawn().await;
    let (trader, _) = some_history(&app).await;
    let other = app.user().await;
    let payload = |id: Uuid| {
        let pool = app.pool.clone();
        async move {
            sqlx::query_scalar::<_, String>(
                "SELECT payload::text FROM events WHERE aggregate_type = 'User' AND aggregate_id = $1 AND sequence = 1",
            )
            .bind(id.to_string())
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    let (first, second) = (payload(trader.id).await, payload(other.id).await);
    assert_ne!(first, second);
    let swap = "UPDATE events SET payload = $1::json \
                WHERE aggregate_type = 'User' AND aggregate_id = $2 AND sequence = 1";
    execute(&app, swap, &[&second, &trader.id.to_string()]).await;
    execute(&app, swap, &[&first, &other.id.to_string()]).await;
    let report = verify(&app).await;
    let mut expected = vec![
        row("User", trader.id, 1, "hash_mismatch"),
        row("User", other.id, 1, "hash_mismatch"),
    ];
    expected.sort();
    assert_eq!(named(&report), expected);
}

#[tokio::test]
async fn forged_rows_are_named_by_a_bad_hash_or_a_reused_event_id() {
    let app = TestApp::spawn().await;
    let (trader, bot_id) = some_history(&app).await;
    // A forged fill appended to the bot's stream, linked to the real last
    // row, with a hash its forger could not compute from the server's
    // columns.
    execute(
        &app,
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
                             payload, metadata, prev_hash, hash) \
         SELECT aggregate_type, aggregate_id, 7, event_type, event_version, \
                replace(payload::text, '\"O-3\"', '\"O-FORGED\"')::json, metadata, hash, \
                encode(sha256('forged'::bytea), 'hex') \
           FROM events WHERE aggregate_type = 'Bot' AND aggregate_id = $1 AND sequence = 6",
        &[&bot_id.to_string()],
    )
    .await;
    let report = verify(&app).await;
    assert_eq!(named(&report), vec![row("Bot", bot_id, 7, "hash_mismatch")]);

    // A forger who knows the hash specification and drops the unique
    // index can make a self-consistent stream, but not a new event id.
    sqlx::query("DROP INDEX events_event_id_key")
        .execute(&app.pool)
        .await
        .unwrap();
    let event_id: String = sqlx::query_scalar(
        "SELECT event_id::text FROM events WHERE aggregate_type = 'User' AND aggregate_id = $1 AND sequence = 1",
    )
    .bind(trader.id.to_string())
    .fetch_one(&app.pool)
    .await
    .unwrap();
    execute(
        &app,
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
                             payload, metadata, prev_hash, hash, event_id) \
         VALUES ('Bot', 'forged-stream', 1, 'bot.error', '1.0', '{\"type\":\"bot.error\"}', '{}', \
                 repeat('0', 64), '', $1::uuid)",
        &[&event_id],
    )
    .await;
    execute(
        &app,
        "UPDATE events e SET hash = encode(sha256(convert_to(events_hash_input(e.prev_hash, e), 'UTF8')), 'hex') \
         WHERE aggregate_id = 'forged-stream'",
        &[],
    )
    .await;
    let report = verify(&app).await;
    let names = named(&report);
    assert_eq!(names.len(), 2, "{names:?}");
    assert_eq!(names[0], row("Bot", bot_id, 7, "hash_mismatch"));
    // Scanned in stream order, the forged Bot stream comes before the
    // genuine User row, so the genuine row is the one named as repeating
    // an id, with the forged row as the other holder.
    assert_eq!(names[1], row("User", trader.id, 1, "duplicate_event_id"));
    let text = report.broken_rows[1].to_string();
    assert!(text.contains("Bot/forged-stream sequence 1"), "{text}");
}

#[tokio::test]
async fn a_change_with_a_recomputed_hash_breaks_the_next_link() {
    let app = TestApp::spawn().await;
    let (trader, _) = some_history(&app).await;
    // User: 1 created, 2 logged in, 3 renamed "Chain", 4 logged in again.
    app.login(&trader.email).await;
    execute(
        &app,
        "UPDATE events SET payload = jsonb_set(payload::jsonb, '{at}', '\"2001-01-01T00:00:00Z\"')::json \
         WHERE aggregate_type = 'User' AND aggregate_id = $1 AND sequence = 3",
        &[&trader.id.to_string()],
    )
    .await;
    execute(
        &app,
        "UPDATE events e SET hash = encode(sha256(convert_to(events_hash_input(e.prev_hash, e), 'UTF8')), 'hex') \
         WHERE aggregate_type = 'User' AND aggregate_id = $1 AND sequence = 3",
        &[&trader.id.to_string()],
    )
    .await;
    let report = verify(&app).await;
    assert_eq!(
        named(&report),
        vec![row("User", trader.id, 4, "broken_link")]
    );

    // Verifying only the rows from sequence 4 on still checks its link to
    // the row before the range.
    let from: DateTime<Utc> = sqlx::query_scalar(
        "SELECT recorded_at FROM events WHERE aggregate_type = 'User' AND aggregate_id = $1 AND sequence = 4",
    )
    .bind(trader.id.to_string())
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let output = replay(&app, &["verify", "--from", &from.to_rfc3339(), "--json"]).await;
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let printed: Value = serde_json::from_str(&stdout(&output)).unwrap();
    let broken = printed["broken_rows"].as_array().unwrap();
    assert_eq!(broken.len(), 1, "{printed}");
    assert_eq!(broken[0]["aggregate_id"], trader.id.to_string());
    assert_eq!(broken[0]["sequence"], 4);
    assert_eq!(broken[0]["problem"]["kind"], "broken_link");
}
