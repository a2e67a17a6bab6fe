//! Rebuilds: deterministic, byte-identical to what the live projectors
//! built; `--compare` names every row that differs; `--swap` promotes the
//! rebuild and the live projectors carry on from it.

use domain::Side;
use integration_tests::TestApp;
use projections::audit::NoProgress;
use projections::rebuild::{self, RebuildPlan, Stop};
use serde_json::{json, Value};

use crate::common::{caught_up, describe, replay, stdout};
use crate::history::some_history;

const TABLES: [(&str, &str); 7] = [
    ("users", "user_id"),
    ("exchange_keys", "key_id"),
    ("bot_status", "bot_id"),
    ("trades", "trade_id"),
    ("positions", "user_id, pair"),
    ("support_tickets", "ticket_id"),
    ("support_messages", "ticket_id, number"),
];

/// Every row of every read model in `schema`, as PostgreSQL's text form of
/// the row, in key order.
async fn dump(app: &TestApp, schema: &str) -> Vec<(&'static str, Vec<String>)> {
    let mut tables = Vec::new();
    for (table, key) in TABLES {
        let rows: Vec<(String,)> = sqlx::query_as(&format!(
            "SELECT t::text FROM {schema}.{table} t ORDER BY {key}"
        ))
        .fetch_all(&app.pool)
        .await
        .unwrap();
        tables.push((table, rows.into_iter().map(|(row,)| row).collect()));
    }
    tables
}

fn count(dump: &[(&str, Vec<String>)], table: &str) -> usize {
    dump.iter()
        .find(|(name, _)| *name == table)
        .unwrap()
        .1
        .len()
}

#[tokio::test]
async fn rebuilding_twice_gives_byte_identical_read_models_equal_to_the_live_ones() {
    let app = TestApp::spawn().await;
    some_history(&app).await;
    some_history(&app).await;

    let output = replay(&app, &["rebuild", "--name", "first", "--compare", "--json"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let printed: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(printed["rebuild"]["events_read"], app.event_count().await);
    for diff in printed["compare"].as_array().unwrap() {
        assert_eq!(diff["shadow_digest"], diff["live_digest"], "{diff}");
        assert_eq!(diff["differing"], 0, "{diff}");
    }

    // A second rebuild in other batch sizes.
    let plan = RebuildPlan {
        name: "second".to_string(),
        projections: projections::read_models::all(),
        stop: Stop::Head,
        batch_size: 2,
    };
    let report = rebuild::rebuild(&app.pool, &plan, &NoProgress)
        .await
        .unwrap();
    assert_eq!(report.events_read as i64, app.event_count().await);

    let live = dump(&app, "public").await;
    let first = dump(&app, "replay_first").await;
    let second = dump(&app, "replay_second").await;
    assert_eq!(first, second, "two rebuilds differ");
    assert_eq!(first, live, "the rebuild differs from the live read models");
    assert_eq!(count(&live, "users"), 2);
    assert_eq!(count(&live, "bot_status"), 2);
    assert_eq!(count(&live, "trades"), 6);
    assert_eq!(count(&live, "positions"), 2);

    // One read model alone, and a name that is none.
    let output = replay(
        &app,
        &[
            "rebuild",
            "--name",
            "trades_only",
            "--projection",
            "trades",
            "--compare",
            "--json",
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let printed: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(printed["rebuild"]["projections"], json!(["trades"]));
    assert_eq!(printed["compare"].as_array().unwrap().len(), 1);
    let output = replay(&app, &["rebuild", "--projection", "wallets"]).await;
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("unknown projection \"wallets\""),
        "{}",
        describe(&output)
    );
}

/// Bots with every kind of event, several in one batch: configured and
/// started and traded, skipped, errored, stopped and started again, many
/// fills on one bot and one pair, and a bot configured that never starts.
async fn every_kind_of_bot_event(app: &TestApp) {
    use chrono::Utc;
    use domain::bot::BotCommand;
    use domain::Actor;
    let trader = app.user().await;
    let other = app.user().await;
    let busy = app.running_bot(&trader).await;
    let quiet = app.running_bot(&other).await;
    let _idle = app.bot(&trader).await;
    for n in 0..12 {
        let side = if n % 3 == 2 { Side::Sell } else { Side::Buy };
        let price = format!("{}", 100 + n * 7);
        app.fill(busy, &format!("B-{n}"), side, "0.5", &price, Utc::now())
            .await;
        if n % 4 == 0 {
            app.runner_command(
                busy,
                BotCommand::RecordTradeSkipped {
                    actor: Actor::System,
                    trigger_id: None,
                    reason: format!("skip {n}"),
                    at: Utc::now(),
                },
            )
            .await;
        }
        if n % 5 == 1 {
            app.runner_command(
                busy,
                BotCommand::RecordError {
                    actor: Actor::System,
                    message: format!("error {n}"),
                    at: Utc::now(),
                },
            )
            .await;
        }
    }
    app.fill(quiet, "Q-1", Side::Buy, "2", "50", Utc::now())
        .await;
    for command in [
        BotCommand::RequestStop {
            actor: Actor::System,
            reason: Some("test".to_string()),
            at: Utc::now(),
        },
        BotCommand::MarkStopped {
            actor: Actor::System,
            reason: Some("test".to_string()),
            at: Utc::now(),
        },
        BotCommand::RequestStart {
            actor: Actor::System,
            at: Utc::now(),
        },
        BotCommand::MarkStarted {
            actor: Actor::System,
            at: Utc::now(),
        },
    ] {
        app.runner_command(quiet, command).await;
    }
    app.fill(quiet, "Q-2", Side::Sell, "1", "60", Utc::now())
        .await;
    caught_up(app).await;
}

/// Tickets with every kind of event, by their owners and the staff, and
/// the owner of one of them erased between their events: several tickets
/// opened, replied to, assigned (twice), closed and reopened, one of them
/// closed after its owner's erasure.
async fn every_kind_of_ticket_event(app: &TestApp) {
    use axum::http::StatusCode;
    let ada = app.user().await;
    let bob = app.user().await;
    let agent = app.user_with_role(domain::Role::Support).await;
    let admin = app.user_with_role(domain::Role::Admin).await;
    let post = move |path: String, token: String, body: Option<Value>| async move {
        let response = match body {
            Some(body) => app.post(&path, Some(&token), body).await,
            None => app.post_empty(&path, Some(&token)).await,
        };
        assert!(response.status.is_success(), "{path}: {}", response.body);
        assert_ne!(response.status, StatusCode::NO_CONTENT);
    };
    let (first, _) = app.ticket(&ada, "First", "One.\nTwo.").await;
    let (second, _) = app.ticket(&bob, "Second", "Bob's").await;
    let (third, _) = app.ticket(&ada, "Third", "Three").await;
    let at =
        |ticket: uuid::Uuid, action: &str| format!("/api/v1/support/tickets/{ticket}/{action}");
    for n in 0..3 {
        post(
            at(first, "replies"),
            ada.token.clone(),
            Some(json!({ "body": format!("ada {n}") })),
        )
        .await;
        post(
            at(first, "replies"),
            agent.token.clone(),
            Some(json!({ "body": format!("agent {n}") })),
        )
        .await;
    }
    post(
        at(first, "assign"),
        agent.token.clone(),
        Some(json!({ "assignee_id": agent.id })),
    )
    .await;
    post(
        at(first, "assign"),
        admin.token.clone(),
        Some(json!({ "assignee_id": admin.id })),
    )
    .await;
    post(at(first, "close"), ada.token.clone(), None).await;
    post(at(first, "reopen"), agent.token.clone(), None).await;
    post(at(second, "close"), agent.token.clone(), None).await;
    post(
        at(third, "replies"),
        agent.token.clone(),
        Some(json!({ "body": "noted" })),
    )
    .await;
    post(
        format!("/api/v1/admin/users/{}/erase", ada.id),
        admin.token.clone(),
        None,
    )
    .await;
    post(at(third, "close"), agent.token.clone(), None).await;
    caught_up(app).await;
}

#[tokio::test]
async fn batches_of_any_size_project_as_events_one_by_one() {
    // The projectors fold each batch into a few set-based statements; a
    // batch of one event is the statements one by one. Every batch size
    // must leave the same rows, and the live projectors (woken per commit)
    // the same again.
    let app = TestApp::spawn().await;
    every_kind_of_bot_event(&app).await;
    every_kind_of_ticket_event(&app).await;
    let events = app.event_count().await;
    let mut dumps = Vec::new();
    for batch_size in [1, 2, 7, 10_000] {
        let plan = RebuildPlan {
            name: format!("batch_{batch_size}"),
            projections: projections::read_models::all(),
            stop: Stop::Head,
            batch_size,
        };
        let report = rebuild::rebuild(&app.pool, &plan, &NoProgress)
            .await
            .unwrap();
        assert_eq!(report.events_read as i64, events);
        dumps.push((
            batch_size,
            dump(&app, &format!("replay_batch_{batch_size}")).await,
        ));
    }
    let (_, one_by_one) = &dumps[0];
    for (batch_size, dump) in &dumps[1..] {
        assert_eq!(
            dump, one_by_one,
            "batches of {batch_size} differ from one by one"
        );
    }
    assert_eq!(
        &dump(&app, "public").await,
        one_by_one,
        "the live read models differ"
    );
    assert_eq!(count(one_by_one, "bot_status"), 3);
    assert_eq!(count(one_by_one, "trades"), 14);
    assert_eq!(count(one_by_one, "positions"), 2);
    let busy: (i64, i64, i64, String) = sqlx::query_as(
        "SELECT trades_executed, trades_skipped, errors, state FROM replay_batch_10000.bot_status \
         ORDER BY trades_executed DESC LIMIT 1",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(busy, (12, 3, 3, "running".to_string()));
    assert_eq!(count(one_by_one, "support_tickets"), 3);
    assert_eq!(count(one_by_one, "support_messages"), 3 + 6 + 1);
    // The erased owner's texts are gone, the other owner's are there.
    let texts: Vec<(Option<String>, String)> = sqlx::query_as(
        "SELECT subject, status FROM replay_batch_7.support_tickets ORDER BY opened_at",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        texts,
        [
            (None, "open".to_string()),
            (Some("Second".to_string()), "closed".to_string()),
            (None, "closed".to_string()),
        ]
    );
    let bodies: i64 = sqlx::query_scalar("SELECT count(body) FROM replay_batch_1.support_messages")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(bodies, 1, "only Bob's opening message keeps its body");
}

#[tokio::test]
async fn compare_names_each_differing_row_and_swap_promotes_the_rebuild() {
    let app = TestApp::spawn().await;
    let (trader, bot_id) = some_history(&app).await;
    // The live read models drift: a counter changed, a trade lost, a user
    // that the log never had.
    for statement in [
        format!("UPDATE bot_status SET trades_executed = 99 WHERE bot_id = '{bot_id}'"),
        "DELETE FROM trades WHERE order_id = 'O-2'".to_string(),
        "INSERT INTO users (user_id, email, role, created_at, updated_at) \
         VALUES ('00000000-0000-0000-0000-00000000abcd', 'ghost@example.com', 'user', now(), now())"
            .to_string(),
    ] {
        sqlx::query(&statement).execute(&app.pool).await.unwrap();
    }

    let output = replay(&app, &["rebuild", "--compare", "--json"]).await;
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let printed: Value = serde_json::from_str(&stdout(&output)).unwrap();
    let diff = |table: &str| {
        printed["compare"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["table"] == table)
            .unwrap()
            .clone()
    };
    let bots = diff("bot_status");
    assert_eq!(
        (bots["differing"].clone(), bots["only_in_shadow"].clone()),
        (json!(1), json!(0))
    );
    assert_eq!(bots["rows"][0]["key"], json!({ "bot_id": bot_id }));
    assert_eq!(bots["rows"][0]["live"]["trades_executed"], 99);
    assert_eq!(bots["rows"][0]["shadow"]["trades_executed"], 3);
    let trades = diff("trades");
    assert_eq!(trades["only_in_shadow"], 1);
    assert_eq!(trades["rows"][0]["shadow"]["order_id"], "O-2");
    assert_eq!(trades["rows"][0]["live"], Value::Null);
    let users = diff("users");
    assert_eq!(users["only_in_live"], 1);
    assert_eq!(
        users["rows"][0]["key"]["user_id"],
        "00000000-0000-0000-0000-00000000abcd"
    );
    for table in ["exchange_keys", "positions"] {
        assert_eq!(
            diff(table)["shadow_digest"],
            diff(table)["live_digest"],
            "{table}"
        );
    }
    // The text report names them too.
    let output = replay(&app, &["rebuild", "--name", "text", "--compare"]).await;
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert!(stdout(&output).contains("bot_status") && stdout(&output).contains("DIFFERS"));

    // Swap the rebuild in; the drifted tables are kept aside.
    let output = replay(&app, &["rebuild", "--name", "fix", "--swap"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let retired: i64 = sqlx::query_scalar(&format!(
        "SELECT trades_executed FROM replay_fix_retired.bot_status WHERE bot_id = '{bot_id}'"
    ))
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(retired, 99);

    // The live projectors go on writing into the swapped-in tables.
    app.fill(bot_id, "O-4", Side::Buy, "1", "400", chrono::Utc::now())
        .await;
    caught_up(&app).await;
    let live_trades: i64 = sqlx::query_scalar("SELECT count(*) FROM trades")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(live_trades, 4);
    let output = replay(&app, &["rebuild", "--name", "after", "--compare"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let response = app
        .get(&format!("/api/v1/bot/{bot_id}/status"), Some(&trader.token))
        .await;
    assert_eq!(response.body["trades_executed"], 4, "{}", response.body);
}
