//! Helpers of the replay tests: the `muckard-replay` binary, a connection
//! that bypasses the log's triggers, the database clock, catching up.

use std::process::{Command, Output};

use chrono::{DateTime, Utc};
use integration_tests::{workspace_binary, TestApp};

/// Runs `muckard-replay <args>` against the app's database, off the test's
/// async threads.
pub async fn replay(app: &TestApp, args: &[&str]) -> Output {
    let url = app.database_url.clone();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(workspace_binary("muckard-replay"))
            .args(&args)
            .env("DATABASE_URL", url)
            .env("RUST_LOG", "warn")
            .output()
            .expect("run muckard-replay")
    })
    .await
    .expect("join")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn describe(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The database's clock, the one `recorded_at` is taken from.
pub async fn database_now(app: &TestApp) -> DateTime<Utc> {
    sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(&app.pool)
        .await
        .expect("clock")
}

/// Waits until every subscriber of the projector role (every read model's
/// projector and the process managers) has handled every event.
pub async fn caught_up(app: &TestApp) {
    let subscribers = muckard::wiring::projector_role(app.state.commands.clone()).len();
    app.eventually(30, "every subscriber to catch up", || async {
        let lags = event_log::lag::all(&app.pool).await.unwrap();
        lags.len() == subscribers && lags.iter().all(|lag| lag.events_behind == 0)
    })
    .await;
}
