//! Running bots resume when the runner restarts, and a standby runner
//! takes over from one that stops.

use domain::Pair;
use integration_tests::rabbit::RabbitTest;
use integration_tests::TestApp;
use rust_decimal::Decimal;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::flow::{bot_events, bot_with, hourly_dca, service, wait_for_events, wait_for_state};

/// The session holding the runner's advisory lock, if any.
pub(crate) async fn runner_lock_holder(app: &TestApp, prefix: &str) -> Option<i32> {
    let key = bot_runner::supervisor::runner_lock_key(prefix);
    sqlx::query_scalar(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 \
           AND classid::bigint = $1 AND objid::bigint = $2 AND database = \
             (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .bind((key >> 32) & 0xffff_ffff)
    .bind(key & 0xffff_ffff)
    .fetch_optional(&app.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_standby_runner_takes_over_and_resumes_the_running_bots() {
    let rabbit = RabbitTest::new().await;
    let app = service(&rabbit, &[]).await;
    let xbt = Pair::parse("XBT/USD").unwrap();
    app.exchange.set_price(&xbt, Some(Decimal::from(60_000)));
    let user = app.user().await;
    // An hourly DCA bot buys when it starts, then not for an hour.
    let dca = bot_with(&app, &user, hourly_dca()).await;
    // A threshold bot waits for the price to fall below 50000.
    let strategy = json!({
        "kind": "threshold", "buy_below": "50000", "sell_above": "55000", "quote_amount": "100"
    });
    let threshold = bot_with(&app, &user, strategy).await;
    for bot_id in [dca, threshold] {
        app.post_empty(&format!("/api/v1/bot/{bot_id}/start"), Some(&user.token))
            .await;
        wait_for_state(&app, &user, bot_id, "running").await;
    }
    wait_for_events(&app, dca, "bot.trade.executed", 1).await;
    wait_for_events(&app, threshold, "bot.trade.skipped", 1).await;
    let first = runner_lock_holder(&app, &rabbit.prefix).await;
    assert!(first.is_some(), "one runner is active");

    // A second set of workers (another process, in effect) on the same
    // database stands by behind the active runner's lock...
    let second = CancellationToken::new();
    let _stop_second = second.clone().drop_guard();
    muckard::wiring::start_workers(&app.settings, &app.state, second.clone());
    // ...and takes over when the first set stops.
    app.shutdown.cancel();
    app.eventually(30, "the standby runner took the lock", || async {
        let holder = runner_lock_holder(&app, &rabbit.prefix).await;
        holder.is_some() && holder != first
    })
    .await;

    // Only a loop resumed by the new runner can see the price fall.
    app.exchange.set_price(&xbt, Some(Decimal::from(40_000)));
    wait_for_events(&app, threshold, "bot.trade.executed", 1).await;
    // The resumed DCA loop waits out its hour instead of buying again.
    assert_eq!(bot_events(&app, dca, "bot.trade.executed").await.len(), 1);
    for bot_id in [dca, threshold] {
        assert_eq!(bot_events(&app, bot_id, "bot.started").await.len(), 1);
    }
    // The new runner's consumer carries out a stop.
    app.post(
        &format!("/api/v1/bot/{dca}/stop"),
        Some(&user.token),
        json!({}),
    )
    .await;
    wait_for_events(&app, dca, "bot.stopped", 1).await;
}
