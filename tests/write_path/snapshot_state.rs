//! The state the command side keeps (cached, and in snapshots) is the fold
//! of the log: each committed event applied once.

use chrono::Utc;
use domain::bot::Bot;
use domain::{Decimal, Side};
use integration_tests::TestApp;

#[tokio::test]
async fn a_bots_holding_across_snapshots_is_the_sum_of_its_fills() {
    let app = TestApp::spawn_with(&[("SNAPSHOT_EVERY", "5")]).await;
    let user = app.user().await;
    let bot_id = app.running_bot(&user).await;
    for n in 0..12 {
        app.fill(
            bot_id,
            &format!("O-{n}"),
            Side::Buy,
            "0.001",
            "60000",
            Utc::now(),
        )
        .await;
    }
    let (bot, _) = app
        .state
        .commands
        .load::<Bot>(&bot_id.to_string())
        .await
        .unwrap();
    assert_eq!(bot.holding, Decimal::new(12, 3));
    assert_eq!(bot.trades_executed, 12);
    assert_eq!(bot.recent_order_ids.len(), 12);
}
