//! The trigger quota holds for an external producer as for REST: a trigger
//! on the queue beyond the bot's rate is dead-lettered naming the limit,
//! and only the triggers within it are recorded (and traded).

use integration_tests::rabbit::RabbitTest;
use messaging::Queue;
use serde_json::json;
use uuid::Uuid;

use crate::flow::{bot_events, bot_with, hourly_dca, service, wait_for_state};

#[tokio::test]
async fn an_external_trigger_beyond_the_rate_is_dead_lettered_naming_the_limit() {
    let rabbit = RabbitTest::new().await;
    let app = service(&rabbit, &[("BOT_TRIGGERS_PER_MINUTE", "2")]).await;
    let owner = app.user().await;
    let bot_id = bot_with(&app, &owner, hourly_dca()).await;
    app.post_empty(&format!("/api/v1/bot/{bot_id}/start"), Some(&owner.token))
        .await;
    wait_for_state(&app, &owner, bot_id, "running").await;
    for n in 0..3 {
        let trigger =
            json!({ "bot_id": bot_id, "user_id": owner.id, "trigger_id": Uuid::new_v4() });
        rabbit
            .publish(
                Queue::BotTriggerTrade,
                trigger.to_string().as_bytes(),
                &format!("external-trigger-{n}"),
            )
            .await;
    }
    let mut seen = Vec::new();
    let dead = rabbit
        .wait_for(
            &rabbit.topology.dead_letter_name(Queue::BotTriggerTrade),
            30,
            &mut seen,
            |_| true,
        )
        .await;
    assert_eq!(
        dead.header("x-death-reason").as_deref(),
        Some("refused: trigger rate per bot: the limit is 2 triggers per minute")
    );
    assert_eq!(dead.message_id().as_deref(), Some("external-trigger-2"));
    // The two within the rate are recorded and traded.
    app.eventually(30, "two triggered fills", || async {
        let fills = bot_events(&app, bot_id, "bot.trade.executed").await;
        let triggered = fills
            .iter()
            .filter(|(_, payload, _)| !payload["fill"]["trigger_id"].is_null());
        triggered.count() == 2
    })
    .await;
    assert_eq!(
        bot_events(&app, bot_id, "bot.trade_triggered").await.len(),
        2
    );
}
