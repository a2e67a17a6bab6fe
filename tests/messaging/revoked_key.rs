//! A key disconnected while its bot runs: the disconnect is never refused
//! (a leaked key can always be revoked at once), its credential is
//! shredded, and the bot's next trade fails, recorded as the bot's error,
//! instead of trading with a key its owner took back.

use axum::http::StatusCode;
use integration_tests::rabbit::RabbitTest;

use crate::flow::{bot_events, bot_with, hourly_dca, service, wait_for_events, wait_for_state};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_disconnected_under_a_running_bot_stops_its_trading() {
    let rabbit = RabbitTest::new().await;
    let app = service(&rabbit, &[]).await;
    let user = app.user().await;
    let bot_id = bot_with(&app, &user, hourly_dca()).await;
    let started = app
        .post_empty(&format!("/api/v1/bot/{bot_id}/start"), Some(&user.token))
        .await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.body);
    wait_for_state(&app, &user, bot_id, "running").await;
    // The DCA bot's first buy, made with the key.
    wait_for_events(&app, bot_id, "bot.trade.executed", 1).await;

    let keys = app.get("/api/v1/kraken/keys", Some(&user.token)).await;
    let key_id = keys.body["keys"][0]["key_id"].as_str().unwrap().to_string();
    let disconnected = app
        .delete(&format!("/api/v1/kraken/keys/{key_id}"), Some(&user.token))
        .await;
    assert_eq!(disconnected.status, StatusCode::OK, "{}", disconnected.body);
    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM exchange_key_secrets WHERE key_id = $1")
            .bind(key_id.parse::<uuid::Uuid>().unwrap())
            .fetch_one(&app.pool)
            .await
            .expect("count credentials");
    assert_eq!(stored, 0, "the credential is shredded");

    let triggered = app
        .post_empty(
            &format!("/api/v1/bot/{bot_id}/trigger-trade"),
            Some(&user.token),
        )
        .await;
    assert_eq!(triggered.status, StatusCode::ACCEPTED, "{}", triggered.body);
    wait_for_events(&app, bot_id, "bot.error", 1).await;
    let errors = bot_events(&app, bot_id, "bot.error").await;
    let message = errors[0].1["message"].as_str().unwrap_or_default();
    assert!(message.contains("credential"), "{message}");
    assert_eq!(
        bot_events(&app, bot_id, "bot.trade.executed").await.len(),
        1,
        "no trade after the disconnect"
    );
}
