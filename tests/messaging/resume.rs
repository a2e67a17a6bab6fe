//! Running bots resume when the runner restarts, and a standby runner
//! takes over from one that stops.

use integration_tests::rabbit::RabbitTest;
use tokio_util::sync::CancellationToken;

use crate::flow::{bot_events, bot_with, hourly_dca, service, wait_for_events, wait_for_state};

#[tokio::test]
async fn a_standby_runner_takes_over_and_resumes_the_running_bots() {
    let rabbit = RabbitTest::new().await;
    let app = service(&rabbit, &[]).await;
    let user = app.user().await;
    let bot_id = bot_with(&app, &user, hourly_dca()).await;
    app.post_empty(&format!("/api/v1/bot/{bot_id}/start"), Some(&user.token))
        .await;
    wait_for_state(&app, &user, bot_id, "running").await;
    // An hourly DCA loop buys when it starts, then sleeps for an hour: a
    // second buy within the test means a new loop resumed the bot.
    wait_for_events(&app, bot_id, "bot.trade.executed", 1).await;

    // A second set of workers (another process, in effect) on the same
    // database stands by behind the active runner's lock...
    let second = CancellationToken::new();
    let _stop_second = second.clone().drop_guard();
    api::state::start_workers(&app.state, second.clone());
    // ...and takes over, resuming the bot from the log, when the first
    // set stops.
    app.shutdown.cancel();
    wait_for_events(&app, bot_id, "bot.trade.executed", 2).await;
    assert_eq!(bot_events(&app, bot_id, "bot.started").await.len(), 1);
    let fills = bot_events(&app, bot_id, "bot.trade.executed").await;
    assert_eq!(fills[1].2["source"], "bot-runner");
    // The resumed loop is a loop: stopping the bot ends it, through the
    // second set's consumer.
    app.post(
        &format!("/api/v1/bot/{bot_id}/stop"),
        Some(&user.token),
        serde_json::json!({}),
    )
    .await;
    wait_for_events(&app, bot_id, "bot.stopped", 1).await;
}
