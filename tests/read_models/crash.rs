use std::process::{Child, Command, Stdio};

use chrono::Utc;
use domain::Side;
use event_log::{LogReader, SubscriberRunner, SubscriberSettings};
use integration_tests::{muckard_binary, TestApp};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use projections::read_models::READ_MODELS;

fn projector_process(app: &TestApp) -> Child {
    Command::new(muckard_binary())
        .args(["serve", "--roles", "projector"])
        .envs(app.process_env())
        .env("PROJECTOR_BATCH_SIZE", "7")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the projector process")
}

/// Every read-model row, in key order, as JSON text.
async fn snapshot(app: &TestApp) -> Vec<(String, Vec<String>)> {
    let mut tables = Vec::new();
    for model in &READ_MODELS {
        let (table, key) = (model.name, model.primary_key.join(", "));
        let rows: Vec<(Value,)> =
            sqlx::query_as(&format!("SELECT to_jsonb(t) FROM {table} t ORDER BY {key}"))
                .fetch_all(&app.pool)
                .await
                .unwrap();
        tables.push((
            table.to_string(),
            rows.into_iter().map(|(row,)| row.to_string()).collect(),
        ));
    }
    tables
}

async fn all_caught_up(app: &TestApp) -> bool {
    let lags = event_log::lag::all(&app.pool).await.unwrap();
    // Every subscriber of the projector role: the projectors and the
    // process managers.
    let subscribers = muckard::wiring::projector_role(app.state.commands.clone()).len();
    lags.len() == subscribers && lags.iter().all(|lag| lag.events_behind == 0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projector_killed_mid_run_resumes_to_the_same_read_models_as_a_rebuild() {
    let app = TestApp::spawn_with(&[("MUCKARD_ROLES", "api")]).await;
    // A history touching every read model.
    for _ in 0..4 {
        let user = app.user().await;
        let (ticket_id, _) = app.ticket(&user, "Crash", "Will it survive?").await;
        let replied = app
            .post(
                &format!("/api/v1/support/tickets/{ticket_id}/replies"),
                Some(&user.token),
                serde_json::json!({ "body": "Yes." }),
            )
            .await;
        assert!(replied.status.is_success(), "{}", replied.body);
        let bot_id = app.running_bot(&user).await;
        for n in 0..40 {
            let side = if n % 4 == 3 { Side::Sell } else { Side::Buy };
            app.fill(
                bot_id,
                &format!("{bot_id}-{n}"),
                side,
                "0.5",
                &format!("{}", 100 + n),
                Utc::now(),
            )
            .await;
        }
    }
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(total > 150);

    // Kill the projector with SIGKILL once it is part way through.
    let mut first = projector_process(&app);
    app.eventually(60, "the projector to make progress", || async {
        app.events_handled("bot_status").await > 14
    })
    .await;
    first.kill().expect("SIGKILL");
    first.wait().unwrap();
    let at_kill = app.events_handled("bot_status").await;
    assert!(
        at_kill < total,
        "killed mid-run: {at_kill} of {total} handled"
    );

    let mut second = projector_process(&app);
    app.eventually(120, "the restarted projector to catch up", || {
        all_caught_up(&app)
    })
    .await;
    second.kill().unwrap();
    second.wait().unwrap();
    let resumed = snapshot(&app).await;
    let checkpoints: Vec<(String, String, i64, i64)> = sqlx::query_as(
        "SELECT subscriber, transaction_id::text, global_position, events_handled FROM subscriber_checkpoints ORDER BY 1",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let first_events: Vec<(String, i64, String, String)> = sqlx::query_as(
        "SELECT transaction_id::text, global_position, event_type, aggregate_id FROM events \
         ORDER BY transaction_id, global_position LIMIT 12",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    eprintln!("checkpoints after resume: {checkpoints:?}\nfirst events: {first_events:#?}");

    // Rebuild every read model from scratch in this process and compare.
    for model in &READ_MODELS {
        sqlx::query(&format!("TRUNCATE {}", model.name))
            .execute(&app.pool)
            .await
            .unwrap();
    }
    sqlx::query("DELETE FROM subscriber_checkpoints WHERE subscriber = ANY($1)")
        .bind(
            READ_MODELS
                .iter()
                .map(|model| model.name.to_string())
                .collect::<Vec<_>>(),
        )
        .execute(&app.pool)
        .await
        .unwrap();
    let shutdown = CancellationToken::new();
    let runner = SubscriberRunner::new(
        app.pool.clone(),
        LogReader::new(),
        SubscriberSettings::default(),
        shutdown.clone(),
    );
    for projector in projections::read_models::all() {
        runner.catch_up(projector.as_ref()).await.unwrap();
    }
    shutdown.cancel();
    let rebuilt = snapshot(&app).await;
    for ((table, resumed_rows), (_, rebuilt_rows)) in resumed.iter().zip(&rebuilt) {
        assert!(!rebuilt_rows.is_empty(), "{table} is not empty");
        assert_eq!(
            resumed_rows, rebuilt_rows,
            "{table} after the crash equals its rebuild"
        );
    }
    let trades: i64 = sqlx::query_scalar("SELECT count(*) FROM trades")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(trades, 160, "every fill once");
}
