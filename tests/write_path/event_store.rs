use std::collections::HashMap;

use axum::http::{Method, StatusCode};
use chrono::Utc;
use command_side::CommandMetadata;
use domain::bot::BotCommand;
use domain::Actor;
use integration_tests::{TestApp, TestResponse, GOOD_SECRET, PASSWORD};
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::Row;

fn netstring(field: &str) -> Vec<u8> {
    let mut out = format!("{}:", field.len()).into_bytes();
    out.extend_from_slice(field.as_bytes());
    out.push(b',');
    out
}

/// Some history across every aggregate type.
async fn some_history(app: &TestApp) -> uuid::Uuid {
    let user = app.user().await;
    let bot_id = app.bot(&user).await;
    app.post_empty(&format!("/api/v1/bot/{bot_id}/start"), Some(&user.token))
        .await;
    app.patch(
        "/api/v1/user/me",
        Some(&user.token),
        json!({ "display_name": "Chain" }),
    )
    .await;
    bot_id
}

#[tokio::test]
async fn every_stream_is_a_sha256_chain_recomputable_outside_the_database() {
    let app = TestApp::spawn().await;
    some_history(&app).await;
    let rows: Vec<Vec<String>> = sqlx::query(
            "SELECT aggregate_type, aggregate_id, sequence::text, event_type, event_version, \
             payload::text, metadata::text, event_id::text, global_position::text, \
             to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), prev_hash, hash \
             FROM events ORDER BY aggregate_type, aggregate_id, sequence",
        )
        .fetch_all(&app.pool)
        .await
        .unwrap()
        .iter()
        .map(|row| (0..12).map(|i| row.get::<String, _>(i)).collect())
        .collect();
    assert!(rows.len() >= 7, "{} rows", rows.len());
    let mut last: HashMap<(String, String), (String, i64)> = HashMap::new();
    for row in &rows {
        let stream = (row[0].clone(), row[1].clone());
        let (previous, sequence) = last.get(&stream).cloned().unwrap_or(("0".repeat(64), 0));
        assert_eq!(
            row[2].parse::<i64>().unwrap(),
            sequence + 1,
            "contiguous sequence"
        );
        assert_eq!(row[10], previous, "prev_hash links to the previous event");
        let mut input = netstring(&previous);
        for field in &row[..10] {
            input.extend(netstring(field));
        }
        let expected = hex::encode(Sha256::digest(&input));
        assert_eq!(row[11], expected, "hash of {stream:?} #{}", row[2]);
        last.insert(stream, (row[11].clone(), sequence + 1));
    }

    // The auditor's script, independent of this code, agrees.
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/verify_chain.py");
    let output = std::process::Command::new("python3")
        .arg(script)
        .arg(&app.database_url)
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains(", 0 broken rows"), "{stdout}");
}

#[tokio::test]
async fn the_log_refuses_update_delete_truncate_and_gaps() {
    let app = TestApp::spawn().await;
    some_history(&app).await;
    for statement in [
        "UPDATE events SET payload = '{}'",
        "UPDATE events SET metadata = '{}' WHERE sequence = 1",
        "DELETE FROM events",
        "DELETE FROM events WHERE sequence = 2",
        "TRUNCATE events",
    ] {
        let error = sqlx::query(statement)
            .execute(&app.pool)
            .await
            .expect_err(statement);
        assert!(
            error.to_string().contains("append-only"),
            "{statement}: {error}"
        );
    }
    let gap = sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         VALUES ('Bot', 'forged', 3, 'bot.started', '1.0', '{}', '{}')",
    )
    .execute(&app.pool)
    .await
    .expect_err("a stream cannot start at 3");
    assert!(gap.to_string().contains("does not follow"), "{gap}");
    // A forged hash is overwritten by the trigger's own.
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, prev_hash, hash) \
         VALUES ('Bot', 'forged', 1, 'bot.started', '1.0', '{}', '{}', 'x', 'y')",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let hash: String = sqlx::query_scalar("SELECT hash FROM events WHERE aggregate_id = 'forged'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(hash.len(), 64);
}

#[tokio::test]
async fn the_application_role_may_append_but_never_change_the_log() {
    let app = TestApp::spawn().await;
    some_history(&app).await;
    let mut connection = app.pool.acquire().await.unwrap();
    sqlx::query("SET ROLE muckard_app")
        .execute(&mut *connection)
        .await
        .unwrap();
    for statement in [
        "UPDATE events SET payload = '{}'",
        "DELETE FROM events",
        "TRUNCATE events",
    ] {
        let error = sqlx::query(statement)
            .execute(&mut *connection)
            .await
            .expect_err(statement);
        assert!(
            error.to_string().contains("permission denied"),
            "{statement}: {error}"
        );
    }
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         VALUES ('Bot', 'appended-by-app-role', 1, 'bot.started', '1.0', '{}', '{}')",
    )
    .execute(&mut *connection)
    .await
    .expect("the application role appends");
    sqlx::query("RESET ROLE")
        .execute(&mut *connection)
        .await
        .unwrap();
}

#[tokio::test]
async fn thirty_two_concurrent_commands_on_one_bot_leave_a_contiguous_stream() {
    // Trigger quotas high enough for all 32: this test is about the stream.
    let app = TestApp::spawn_with(&[
        ("COMMAND_MAX_ATTEMPTS", "4"),
        ("SNAPSHOT_EVERY", "5"),
        ("BOT_TRIGGERS_PER_MINUTE", "256"),
        ("BOT_MAX_PENDING_TRIGGERS", "256"),
    ])
    .await;
    let user = app.user().await;
    let bot_id = app.bot(&user).await;
    app.post_empty(&format!("/api/v1/bot/{bot_id}/start"), Some(&user.token))
        .await;
    let metadata = CommandMetadata::new("bot-runner", Some(Actor::System));
    app.state
        .commands
        .execute_bot(
            &bot_id.to_string(),
            BotCommand::MarkStarted {
                actor: Actor::System,
                at: Utc::now(),
            },
            &metadata,
        )
        .await
        .unwrap();
    let before = app.stream("Bot", bot_id).await.len();

    let path = format!("/api/v1/bot/{bot_id}/trigger-trade");
    let requests = (0..32).map(|_| app.post_empty(&path, Some(&user.token)));
    let responses = futures::future::join_all(requests).await;
    let accepted = responses
        .iter()
        .filter(|r| r.status == StatusCode::ACCEPTED)
        .count();
    let conflicts = responses
        .iter()
        .filter(|r| r.status == StatusCode::CONFLICT)
        .count();
    for response in &responses {
        assert!(
            response.status == StatusCode::ACCEPTED || response.status == StatusCode::CONFLICT,
            "{} {}",
            response.status,
            response.body
        );
    }
    assert_eq!(accepted + conflicts, 32);
    assert!(accepted >= 1);

    let events = app.stream("Bot", bot_id).await;
    for (index, event) in events.iter().enumerate() {
        assert_eq!(event.sequence, index as i64 + 1, "no gaps, no duplicates");
    }
    let triggered = events
        .iter()
        .filter(|e| e.event_type == "bot.trade_triggered")
        .count();
    assert_eq!(
        triggered, accepted,
        "exactly one event per accepted command"
    );
    assert_eq!(events.len(), before + accepted);
    let snapshots: i64 =
        sqlx::query_scalar("SELECT count(*) FROM snapshots WHERE aggregate_type = 'Bot'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(
        snapshots >= 1,
        "a stream longer than SNAPSHOT_EVERY is snapshotted"
    );
    // The snapshotted aggregate still decides correctly.
    let again = app
        .post_empty(&format!("/api/v1/bot/{bot_id}/start"), Some(&user.token))
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
}

/// Registers with `body` under the idempotency key `signup-1`.
async fn register_as_signup_1(app: &TestApp, body: &str) -> TestResponse {
    let headers = [("idempotency-key", "signup-1")];
    app.request(
        Method::POST,
        "/api/v1/auth/register",
        None,
        Some(body),
        &headers,
    )
    .await
}

#[tokio::test]
async fn a_repeated_idempotency_key_replays_the_first_response_and_appends_nothing() {
    let app = TestApp::spawn().await;
    let body = r#"{"email": "idem@example.com", "password": "correct horse battery"}"#;
    let first = register_as_signup_1(&app, body).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let count = app.event_count().await;
    let second = register_as_signup_1(&app, body).await;
    assert_eq!(second.status, StatusCode::CREATED);
    assert_eq!(second.body, first.body);
    assert_eq!(second.headers["idempotent-replayed"], "true");
    assert_eq!(app.event_count().await, count);
    let other_body = r#"{"email": "other@example.com", "password": "correct horse battery"}"#;
    let reused = register_as_signup_1(&app, other_body).await;
    assert_eq!(reused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reused.field(), Some("Idempotency-Key"));

    // Keys are per caller, and a refusal is replayed as the first answer too.
    let user = app.login("idem@example.com").await;
    let bot_id = app.bot(&user).await;
    let start = format!("/api/v1/bot/{bot_id}/start");
    let key = [("idempotency-key", "start-1")];
    let started = app
        .request(Method::POST, &start, Some(&user.token), None, &key)
        .await;
    assert_eq!(started.status, StatusCode::ACCEPTED);
    let count = app.event_count().await;
    let replayed = app
        .request(Method::POST, &start, Some(&user.token), None, &key)
        .await;
    assert_eq!(
        replayed.status,
        StatusCode::ACCEPTED,
        "the first result, not a 409"
    );
    assert_eq!(replayed.body, started.body);
    assert_eq!(app.event_count().await, count);
    let fresh = app
        .request(
            Method::POST,
            &start,
            Some(&user.token),
            None,
            &[("idempotency-key", "start-2")],
        )
        .await;
    assert_eq!(
        fresh.status,
        StatusCode::CONFLICT,
        "a new key runs the command again"
    );
    let metadata = app.stream("Bot", bot_id).await[1].metadata_json();
    assert_eq!(metadata["idempotency_key"], "start-1");
}

#[tokio::test]
async fn no_password_or_exchange_credential_appears_in_any_event() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let key_id = app
        .connected_key(&user, "paper-key-SENSITIVE-public-part")
        .await;
    app.post_empty(
        &format!("/api/v1/kraken/keys/{key_id}/test"),
        Some(&user.token),
    )
    .await;
    app.patch(
        &format!("/api/v1/kraken/keys/{key_id}"),
        Some(&user.token),
        json!({ "api_key": "paper-key-ROTATED-public", "api_secret": GOOD_SECRET }),
    )
    .await;
    let password_hash: String =
        sqlx::query_scalar("SELECT password_hash FROM user_credentials WHERE user_id = $1")
            .bind(user.id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(password_hash.starts_with("$argon2id$"));
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT payload::text, metadata::text FROM events")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert!(rows.len() >= 5, "{} rows", rows.len());
    let needles = [
        PASSWORD,
        GOOD_SECRET,
        &GOOD_SECRET[..24],
        "paper-key-SENSITIVE-public-part",
        "paper-key-ROTATED-public",
        &password_hash,
        "argon2",
    ];
    for (payload, metadata) in &rows {
        for needle in needles {
            assert!(
                !payload.contains(needle) && !metadata.contains(needle),
                "{needle} leaked into {payload} {metadata}"
            );
        }
    }
}
