//! Poison and unauthorised messages land in the dead-letter queue with
//! their reason, and the consumer carries on; a valid message from an
//! external producer is carried out after the same checks as REST.

use integration_tests::rabbit::RabbitTest;
use messaging::Queue;
use serde_json::json;
use uuid::Uuid;

use crate::flow::{bot_with, hourly_dca, service, wait_for_state};

#[tokio::test]
async fn poison_and_unauthorised_messages_are_dead_lettered_with_a_reason() {
    let rabbit = RabbitTest::new().await;
    let app = service(&rabbit, &[]).await;
    let owner = app.user().await;
    let stranger = app.user().await;
    let bot_id = bot_with(&app, &owner, hourly_dca()).await;

    let poison = [
        ("not-json", b"{not json".to_vec()),
        (
            "unknown-field",
            json!({ "bot_id": bot_id, "colour": "red" })
                .to_string()
                .into_bytes(),
        ),
        (
            "no-user",
            json!({ "bot_id": bot_id }).to_string().into_bytes(),
        ),
        (
            "stranger",
            json!({ "bot_id": bot_id, "user_id": stranger.id })
                .to_string()
                .into_bytes(),
        ),
        (
            "unknown-bot",
            json!({ "bot_id": Uuid::new_v4(), "user_id": owner.id })
                .to_string()
                .into_bytes(),
        ),
    ];
    for (message_id, body) in &poison {
        rabbit.publish(Queue::BotStart, body, message_id).await;
    }
    // After the poison, a valid start from an external producer: the
    // consumer carried on past every bad message.
    let valid = json!({ "bot_id": bot_id, "user_id": owner.id });
    rabbit
        .publish(Queue::BotStart, valid.to_string().as_bytes(), "valid-start")
        .await;
    wait_for_state(&app, &owner, bot_id, "running").await;

    let dead_letters = rabbit.topology.dead_letter_name(Queue::BotStart);
    let mut seen = Vec::new();
    let expected = [
        ("not-json", "malformed: "),
        ("unknown-field", "malformed: unknown field `colour`"),
        (
            "no-user",
            "unauthorised: a command not from the log must name its user_id",
        ),
        ("stranger", "unauthorised: bot not found"),
        ("unknown-bot", "unauthorised: bot not found"),
    ];
    for (message_id, reason) in expected {
        let dead = rabbit
            .wait_for(&dead_letters, 30, &mut seen, |m| {
                m.message_id().as_deref() == Some(message_id)
            })
            .await;
        let stated = dead.header("x-death-reason").expect("a reason header");
        assert!(stated.starts_with(reason), "{message_id}: {stated}");
        assert_eq!(
            dead.header("x-original-queue").as_deref(),
            Some(rabbit.topology.name(Queue::BotStart).as_str())
        );
        // The body is kept as it came.
        let original = &poison.iter().find(|(id, _)| *id == message_id).unwrap().1;
        assert_eq!(&dead.body, original);
    }
    assert!(
        !seen
            .iter()
            .any(|m| m.message_id().as_deref() == Some("valid-start")),
        "the valid message is not dead-lettered"
    );

    // The stranger's start left no trace; the owner's was recorded as his.
    let requested = crate::flow::bot_events(&app, bot_id, "bot.start_requested").await;
    assert_eq!(requested.len(), 1);
    assert_eq!(requested[0].1["requested_by"], owner.id.to_string());
    assert_eq!(requested[0].2["source"], "rabbitmq");
    assert_eq!(requested[0].2["user_id"], owner.id.to_string());
}

#[tokio::test]
async fn an_external_command_is_refused_as_rest_would_refuse_it() {
    let rabbit = RabbitTest::new().await;
    let app = service(&rabbit, &[]).await;
    let owner = app.user().await;
    // An untested key: REST refuses to start such a bot, and so does the
    // runner.
    let key_id = app.connected_key(&owner, "paper-key-untested").await;
    let configured = app
        .post(
            "/api/v1/bot",
            Some(&owner.token),
            json!({ "key_id": key_id, "pair": "XBT/USD", "strategy": crate::flow::hourly_dca() }),
        )
        .await;
    let bot_id = configured.body["bot_id"].as_str().unwrap().to_string();
    let start = json!({ "bot_id": bot_id, "user_id": owner.id });
    rabbit
        .publish(Queue::BotStart, start.to_string().as_bytes(), "untested")
        .await;
    // Stopping a bot that never started is a state conflict.
    let stop = json!({ "bot_id": bot_id, "user_id": owner.id, "reason": "no" });
    rabbit
        .publish(Queue::BotStop, stop.to_string().as_bytes(), "not-running")
        .await;
    for (queue, reason) in [
        (
            Queue::BotStart,
            "refused: the bot's exchange key has not passed a test; test it first",
        ),
        (Queue::BotStop, "refused: cannot stop: bot is configured"),
    ] {
        let mut seen = Vec::new();
        let dead = rabbit
            .wait_for(
                &rabbit.topology.dead_letter_name(queue),
                30,
                &mut seen,
                |_| true,
            )
            .await;
        assert_eq!(dead.header("x-death-reason").as_deref(), Some(reason));
    }
}
