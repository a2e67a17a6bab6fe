//! The log against signed checkpoints kept outside the database, as the
//! database's owner attacks it with the triggers disabled: each change the
//! hash chain alone cannot show (a stream cut at its tail with its
//! snapshot, deleted whole, re-hashed from its second row, a correctly
//! hashed row inserted at a position a checkpoint covers) is named by
//! `muckard-replay verify --anchors`, and so is a changed checkpoint.

use std::path::PathBuf;

use integration_tests::TestApp;
use projections::audit::anchor::{self, Checkpoint};
use projections::audit::chain::{HashedFields, HASHED_COLUMNS};
use projections::audit::signing::AuditSigner;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::common::{caught_up, describe, replay, stdout};
use crate::history::some_history;

struct AnchorDir(PathBuf);

impl AnchorDir {
    fn new() -> Self {
        AnchorDir(std::env::temp_dir().join(format!("anchors-{}", Uuid::new_v4())))
    }
    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for AnchorDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An app with some history, every subscriber caught up, and a signed
/// checkpoint of its log written into a directory of its own.
async fn anchored() -> (TestApp, AnchorDir, Checkpoint, Uuid) {
    let app = TestApp::spawn().await;
    let (_trader, bot_id) = some_history(&app).await;
    caught_up(&app).await;
    let signer = AuditSigner::from_seed(app.settings.audit_signing_key.expose()).unwrap();
    let dir = AnchorDir::new();
    let checkpoint = anchor::make_checkpoint(&app.pool, &signer, None)
        .await
        .unwrap();
    anchor::write_to_dir(&dir.0, &checkpoint).unwrap();
    (app, dir, checkpoint, bot_id)
}

fn public_key(app: &TestApp) -> String {
    AuditSigner::from_seed(app.settings.audit_signing_key.expose())
        .unwrap()
        .public_key()
        .public_key
}

/// `verify --anchors`: its exit code and the `ANCHOR` lines it printed.
async fn verify(app: &TestApp, dir: &AnchorDir) -> (Option<i32>, Vec<String>) {
    let key = public_key(app);
    let output = replay(
        app,
        &["verify", "--anchors", dir.path(), "--public-key", &key],
    )
    .await;
    let findings = stdout(&output)
        .lines()
        .filter_map(|line| line.strip_prefix("ANCHOR ").map(str::to_string))
        .collect();
    assert!(
        output.status.code().is_some(),
        "verify did not exit: {}",
        describe(&output)
    );
    (output.status.code(), findings)
}

fn named(findings: &[String], stream: &str, what: &str) -> bool {
    findings
        .iter()
        .any(|f| f.starts_with(stream) && f.contains(what))
}

async fn stream_id(app: &TestApp, aggregate_type: &str) -> String {
    sqlx::query_scalar("SELECT aggregate_id FROM events WHERE aggregate_type = $1 LIMIT 1")
        .bind(aggregate_type)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_untouched_log_verifies_clean_against_its_checkpoints() {
    let (app, dir, first, _) = anchored().await;
    // A second checkpoint after more history links to the first.
    some_history(&app).await;
    caught_up(&app).await;
    let signer = AuditSigner::from_seed(app.settings.audit_signing_key.expose()).unwrap();
    let second = anchor::make_checkpoint(&app.pool, &signer, Some(&first))
        .await
        .unwrap();
    assert_eq!(second.previous.as_deref(), Some(first.position.as_str()));
    assert!(second.heads.len() < second.streams as usize);
    anchor::write_to_dir(&dir.0, &second).unwrap();
    // And one on demand from the operator's command, after one more event
    // (a checkpoint at an unchanged head replaces the one there).
    app.user().await;
    caught_up(&app).await;
    let dir_path = dir.path().to_string();
    let env = app.process_env();
    let signed = tokio::task::spawn_blocking(move || {
        std::process::Command::new(integration_tests::muckard_binary())
            .args(["anchor", "--dir", &dir_path, "--no-kafka"])
            .envs(env)
            .output()
            .expect("run muckard anchor")
    })
    .await
    .unwrap();
    assert!(signed.status.success(), "{}", describe(&signed));
    assert_eq!(anchor::read_dir(&dir.0).unwrap().len(), 3);
    let (code, findings) = verify(&app, &dir).await;
    assert_eq!(code, Some(0), "{findings:?}");
    assert!(findings.is_empty(), "{findings:?}");
}

#[tokio::test]
async fn a_stream_cut_at_its_tail_with_its_snapshot_is_named() {
    let (app, dir, _, bot_id) = anchored().await;
    let bot = bot_id.to_string();
    let mut owner = app.tamperer().await;
    sqlx::query(
        "DELETE FROM events WHERE aggregate_type = 'Bot' AND aggregate_id = $1 \
           AND sequence = (SELECT max(sequence) FROM events WHERE aggregate_type = 'Bot' AND aggregate_id = $1)",
    )
    .bind(&bot)
    .execute(&mut owner)
    .await
    .unwrap();
    sqlx::query("DELETE FROM snapshots WHERE aggregate_id = $1")
        .bind(&bot)
        .execute(&mut owner)
        .await
        .unwrap();
    let (code, findings) = verify(&app, &dir).await;
    assert_eq!(code, Some(1), "{findings:?}");
    assert!(
        named(&findings, &format!("Bot/{bot}"), "cut at its tail"),
        "{findings:?}"
    );
}

#[tokio::test]
async fn a_stream_deleted_whole_is_named() {
    let (app, dir, _, _) = anchored().await;
    let key = stream_id(&app, "ExchangeKey").await;
    let mut owner = app.tamperer().await;
    sqlx::query("DELETE FROM events WHERE aggregate_type = 'ExchangeKey' AND aggregate_id = $1")
        .bind(&key)
        .execute(&mut owner)
        .await
        .unwrap();
    let (code, findings) = verify(&app, &dir).await;
    assert_eq!(code, Some(1), "{findings:?}");
    assert!(
        named(&findings, &format!("ExchangeKey/{key}"), "deleted whole"),
        "{findings:?}"
    );
}

/// The rows of a stream with everything their hash covers.
async fn hashed_rows(
    owner: &mut PgConnection,
    aggregate_type: &str,
    id: &str,
) -> Vec<HashedFields> {
    sqlx::query(&format!(
        "SELECT {HASHED_COLUMNS} FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 \
         ORDER BY sequence"
    ))
    .bind(aggregate_type)
    .bind(id)
    .fetch_all(&mut *owner)
    .await
    .unwrap()
    .iter()
    .map(|row| HashedFields::from_row(row).unwrap())
    .collect()
}

/// Re-hashes a bot's stream from its second row to its end, each row on
/// the stored hash of the one before: the chain is self-consistent again.
async fn re_hash_bot_stream_from_its_second_row(owner: &mut PgConnection, bot: &str) {
    let rows = hashed_rows(owner, "Bot", bot).await;
    let mut previous: String = sqlx::query_scalar(
        "SELECT hash FROM events WHERE aggregate_type = 'Bot' AND aggregate_id = $1 AND sequence = 1",
    )
    .bind(bot)
    .fetch_one(&mut *owner)
    .await
    .unwrap();
    for fields in rows.iter().skip(1) {
        let hash = fields.hash(&previous);
        sqlx::query(
            "UPDATE events SET prev_hash = $3, hash = $4 \
              WHERE aggregate_type = 'Bot' AND aggregate_id = $1 AND sequence = $2",
        )
        .bind(bot)
        .bind(fields.sequence)
        .bind(&previous)
        .bind(&hash)
        .execute(&mut *owner)
        .await
        .unwrap();
        previous = hash;
    }
}

#[tokio::test]
async fn a_stream_re_hashed_from_its_second_row_is_named() {
    let (app, dir, _, bot_id) = anchored().await;
    let bot = bot_id.to_string();
    let mut owner = app.tamperer().await;
    // Change the second event, then re-hash it and every later row: the
    // chain is self-consistent again, and `verify` without anchors passes.
    sqlx::query(
        "UPDATE events SET metadata = '{\"rewritten\": true}' \
          WHERE aggregate_type = 'Bot' AND aggregate_id = $1 AND sequence = 2",
    )
    .bind(&bot)
    .execute(&mut owner)
    .await
    .unwrap();
    re_hash_bot_stream_from_its_second_row(&mut owner, &bot).await;
    let chain_only = replay(&app, &["verify"]).await;
    assert_eq!(
        chain_only.status.code(),
        Some(0),
        "{}",
        describe(&chain_only)
    );
    let (code, findings) = verify(&app, &dir).await;
    assert_eq!(code, Some(1), "{findings:?}");
    assert!(
        named(&findings, &format!("Bot/{bot}"), "re-hashed"),
        "{findings:?}"
    );
}

#[tokio::test]
async fn rows_reordered_and_re_hashed_are_named() {
    let (app, dir, _, bot_id) = anchored().await;
    let bot = bot_id.to_string();
    let mut owner = app.tamperer().await;
    // Swap the bot's second and third events (their sequences), then
    // re-hash from the second row on, so every link holds again.
    for (from, to) in [(2, 1_000_000), (3, 2), (1_000_000, 3)] {
        sqlx::query(
            "UPDATE events SET sequence = $3 \
              WHERE aggregate_type = 'Bot' AND aggregate_id = $1 AND sequence = $2",
        )
        .bind(&bot)
        .bind(from)
        .bind(to)
        .execute(&mut owner)
        .await
        .unwrap();
    }
    re_hash_bot_stream_from_its_second_row(&mut owner, &bot).await;
    // The chain alone names the order: the row now third was appended
    // before the row now second (its global position is not after it).
    let chain_only = replay(&app, &["verify"]).await;
    assert_eq!(
        chain_only.status.code(),
        Some(1),
        "{}",
        describe(&chain_only)
    );
    assert!(
        stdout(&chain_only).contains(&format!("Bot/{bot} sequence 3 (global position"))
            && stdout(&chain_only).contains("global position not after the previous row's"),
        "{}",
        describe(&chain_only)
    );
    // The checkpoint names the stream re-hashed.
    let (code, findings) = verify(&app, &dir).await;
    assert_eq!(code, Some(1), "{findings:?}");
    assert!(
        named(&findings, &format!("Bot/{bot}"), "re-hashed"),
        "{findings:?}"
    );
}

#[tokio::test]
async fn a_correctly_hashed_row_inserted_behind_a_checkpoint_is_named() {
    let (app, dir, checkpoint, _) = anchored().await;
    let user = stream_id(&app, "User").await;
    let mut owner = app.tamperer().await;
    let rows = hashed_rows(&mut owner, "User", &user).await;
    let last = rows.last().unwrap();
    let last_hash: String = sqlx::query_scalar(
        "SELECT hash FROM events WHERE aggregate_type = 'User' AND aggregate_id = $1 AND sequence = $2",
    )
    .bind(&user)
    .bind(last.sequence)
    .fetch_one(&mut owner)
    .await
    .unwrap();
    // A role grant making the user an admin, hashed exactly as the trigger
    // would, at a commit position the checkpoint covers.
    let forged = HashedFields {
        aggregate_type: "User".to_string(),
        aggregate_id: user.clone(),
        sequence: last.sequence + 1,
        event_type: "user.role_assigned".to_string(),
        event_version: "1.0".to_string(),
        payload: format!(
            "{{\"type\":\"user.role_assigned\",\"role\":\"admin\",\"at\":\"{}\"}}",
            "2026-12-01T00:00:00Z"
        ),
        metadata: "{}".to_string(),
        event_id: Uuid::new_v4(),
        global_position: -7,
        recorded_at: "2026-12-01T00:00:00.000000Z".to_string(),
    };
    let hash = forged.hash(&last_hash);
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
                             payload, metadata, event_id, global_position, transaction_id, \
                             recorded_at, prev_hash, hash) \
         OVERRIDING SYSTEM VALUE \
         VALUES ($1, $2, $3, $4, $5, $6::json, $7::json, $8, $9, '1'::xid8, \
                 '2026-12-01T00:00:00Z'::timestamptz, $10, $11)",
    )
    .bind(&forged.aggregate_type)
    .bind(&forged.aggregate_id)
    .bind(forged.sequence)
    .bind(&forged.event_type)
    .bind(&forged.event_version)
    .bind(&forged.payload)
    .bind(&forged.metadata)
    .bind(forged.event_id)
    .bind(forged.global_position)
    .bind(&last_hash)
    .bind(&hash)
    .execute(&mut owner)
    .await
    .unwrap();
    assert!(checkpoint.position().unwrap().transaction_id > 1);
    let (code, findings) = verify(&app, &dir).await;
    assert_eq!(code, Some(1), "{findings:?}");
    assert!(
        named(
            &findings,
            &format!("User/{user}"),
            "inserted behind the service's back"
        ),
        "{findings:?}"
    );
}

#[tokio::test]
async fn a_changed_checkpoint_fails_its_signature() {
    let (app, dir, checkpoint, _) = anchored().await;
    let file = dir.0.join(format!("{}.json", checkpoint.position));
    let text = std::fs::read_to_string(&file).unwrap();
    let mut value: serde_json::Value = serde_json::from_str(&text).unwrap();
    value["events"] = serde_json::json!(checkpoint.events + 1);
    std::fs::write(&file, value.to_string()).unwrap();
    let (code, findings) = verify(&app, &dir).await;
    assert_eq!(code, Some(1), "{findings:?}");
    assert!(
        findings
            .iter()
            .any(|f| f.contains("signature does not verify")),
        "{findings:?}"
    );
}

#[tokio::test]
async fn the_checkpoint_row_order_is_the_digest_order() {
    // The digest covers heads ordered by bytes, whatever the collation.
    let (app, _dir, checkpoint, _) = anchored().await;
    let rows = sqlx::query(
        "SELECT DISTINCT ON (aggregate_type COLLATE \"C\", aggregate_id COLLATE \"C\") \
                aggregate_type, aggregate_id, sequence, hash FROM events \
          ORDER BY aggregate_type COLLATE \"C\", aggregate_id COLLATE \"C\", sequence DESC",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let heads: Vec<anchor::StreamHead> = rows
        .iter()
        .map(|row| anchor::StreamHead {
            aggregate_type: row.get("aggregate_type"),
            aggregate_id: row.get("aggregate_id"),
            sequence: row.get("sequence"),
            hash: row.get("hash"),
        })
        .collect();
    let mut sorted = heads.clone();
    sorted.sort_by(|a, b| {
        (a.aggregate_type.as_bytes(), a.aggregate_id.as_bytes())
            .cmp(&(b.aggregate_type.as_bytes(), b.aggregate_id.as_bytes()))
    });
    assert_eq!(heads, sorted);
    assert_eq!(anchor::digest_of_heads(&heads), checkpoint.digest);
}
