//! The aggregate cache (`command_side::cache`) while a second process
//! writes the same stream: whatever this process's cached state says, the
//! log decides. A command refused on a state that is behind the log is
//! decided again on the log's; a command accepted on it conflicts at the
//! append and is retried on the log's. The same scenario runs with the
//! cache off, and must end the same.

use axum::http::StatusCode;
use chrono::Utc;
use command_side::{CommandMetadata, CommandSide};
use domain::bot::BotCommand;
use domain::Actor;
use integration_tests::TestApp;
use uuid::Uuid;

/// Another instance of the service on the same database: its own command
/// side, its own (empty) cache.
fn other_process(app: &TestApp) -> CommandSide {
    CommandSide::new(app.pool.clone(), app.state.commands.settings.clone())
}

async fn execute(other: &CommandSide, bot_id: Uuid, actor: Actor, command: BotCommand) {
    let metadata = CommandMetadata::new("other-process", Some(actor)).with_command_type("test");
    other
        .execute_bot(&bot_id.to_string(), command, &metadata)
        .await
        .expect("the other process's command");
}

async fn a_stale_cached_state_never_decides(app: TestApp, cache_on: bool) {
    let other = other_process(&app);
    let user = app.user().await;
    let bot_id = app.bot(&user).await;
    let base = format!("/api/v1/bot/{bot_id}");
    let start = app
        .post_empty(&format!("{base}/start"), Some(&user.token))
        .await;
    assert_eq!(start.status, StatusCode::ACCEPTED, "{}", start.body);
    assert_eq!(
        app.state.commands.cached_aggregates() > 0,
        cache_on,
        "this process keeps the aggregates it wrote only with the cache on"
    );

    // The other process marks the bot started: this process's cached bot
    // (start requested, not running) is one event behind the log.
    execute(
        &other,
        bot_id,
        Actor::System,
        BotCommand::MarkStarted {
            actor: Actor::System,
            at: Utc::now(),
        },
    )
    .await;
    let trigger = app
        .post_empty(&format!("{base}/trigger-trade"), Some(&user.token))
        .await;
    assert_eq!(
        trigger.status,
        StatusCode::ACCEPTED,
        "a running bot takes a trigger whatever a cache says: {}",
        trigger.body
    );

    // Now the other process stops it: the cached bot says running, the
    // log says stopped.
    execute(
        &other,
        bot_id,
        Actor::user(user.id),
        BotCommand::RequestStop {
            actor: Actor::user(user.id),
            reason: None,
            at: Utc::now(),
        },
    )
    .await;
    execute(
        &other,
        bot_id,
        Actor::System,
        BotCommand::MarkStopped {
            actor: Actor::System,
            reason: None,
            at: Utc::now(),
        },
    )
    .await;
    let late = app
        .post_empty(&format!("{base}/trigger-trade"), Some(&user.token))
        .await;
    assert_eq!(
        late.status,
        StatusCode::CONFLICT,
        "a stopped bot refuses a trigger whatever a cache says: {}",
        late.body
    );

    let stream = app.stream("Bot", bot_id).await;
    let types: Vec<&str> = stream.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "bot.configured",
            "bot.start_requested",
            "bot.started",
            "bot.trade_triggered",
            "bot.stop_requested",
            "bot.stopped",
        ]
    );
    let sequences: Vec<i64> = stream.iter().map(|e| e.sequence).collect();
    assert_eq!(sequences, (1..=6).collect::<Vec<i64>>());
}

#[tokio::test]
async fn with_the_cache_the_log_still_decides_against_another_writer() {
    a_stale_cached_state_never_decides(TestApp::spawn().await, true).await;
}

#[tokio::test]
async fn without_the_cache_the_same_commands_end_the_same() {
    a_stale_cached_state_never_decides(
        TestApp::spawn_with(&[("AGGREGATE_CACHE_SIZE", "0")]).await,
        false,
    )
    .await;
}
