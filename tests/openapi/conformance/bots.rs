//! Bots: configuring, starting (idempotently), stopping, triggering a
//! trade (and beyond the trigger quota), reading their status and the caller's overview.

use axum::http::{Method, StatusCode};
use serde_json::json;
use uuid::Uuid;

use crate::conformance::Conformance;

const BOT: &str = "/api/v1/bot";

#[tokio::test]
async fn bot_operations_answer_as_documented() {
    let mut c = Conformance::spawn().await;
    let user = c.app.user().await;
    let token = Some(user.token.as_str());
    let unknown = Uuid::new_v4();
    let key_id = c.app.tested_key(&user).await;

    let threshold = json!({
        "key_id": key_id, "pair": "XBT/USD",
        "strategy": { "kind": "threshold", "buy_below": "90000", "sell_above": "110000", "quote_amount": "50" }
    });
    let configured = c.post(BOT, token, threshold).await;
    assert_eq!(
        configured.status,
        StatusCode::CREATED,
        "{}",
        configured.body
    );
    let bot_id = configured.body["bot_id"].as_str().unwrap().to_string();
    let bad_pair = json!({ "key_id": key_id, "pair": "xbt-usd",
        "strategy": { "kind": "dca", "quote_amount": "25", "interval_secs": 60 } });
    c.post(BOT, token, bad_pair).await;
    c.post_empty(&format!("{BOT}/{bot_id}/stop"), token).await;

    let start = format!("{BOT}/{bot_id}/start");
    let once = [("idempotency-key", "start-1")];
    let started = c.call(Method::POST, &start, token, None, &once).await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.body);
    let replayed = c.call(Method::POST, &start, token, None, &once).await;
    assert_eq!(replayed.headers["idempotent-replayed"], "true");
    c.post_empty(&format!("{BOT}/{unknown}/start"), token).await;

    let position = started.body["position"].as_str().unwrap();
    let seen = c
        .get(
            &format!("{BOT}/{bot_id}/status?min_position={position}"),
            token,
        )
        .await;
    assert_eq!(seen.body["state"], "starting", "{}", seen.body);
    c.get(&format!("{BOT}/{unknown}/status"), token).await;
    c.get(BOT, token).await;

    let running = c.app.running_bot(&user).await;
    let head = c
        .app
        .state
        .commands
        .position_of("Bot", &running.to_string())
        .await
        .unwrap();
    let first_page = c
        .get(&format!("{BOT}?limit=1&min_position={head}"), token)
        .await;
    assert!(
        first_page.body["next_cursor"].is_string(),
        "{}",
        first_page.body
    );
    c.get(&format!("{BOT}?limit=1&cursor=1"), token).await;
    c.get(&format!("{BOT}?cursor=-1"), token).await;
    let triggered = c
        .post_empty(&format!("{BOT}/{running}/trigger-trade"), token)
        .await;
    assert_eq!(triggered.status, StatusCode::ACCEPTED, "{}", triggered.body);
    // Beyond the bot's trigger rate (6 a minute by default, or its 10
    // pending triggers): a 429 with `Retry-After`, as documented.
    let mut over_quota = None;
    for _ in 0..12 {
        let answer = c
            .post_empty(&format!("{BOT}/{running}/trigger-trade"), token)
            .await;
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            over_quota = Some(answer);
            break;
        }
    }
    let over_quota = over_quota.expect("a trigger beyond the quota is refused");
    assert!(over_quota.headers.contains_key("retry-after"));
    c.post_empty(&format!("{BOT}/{bot_id}/trigger-trade"), token)
        .await;
    let stopping = c
        .post(
            &format!("{BOT}/{running}/stop"),
            token,
            json!({ "reason": "enough" }),
        )
        .await;
    assert_eq!(stopping.status, StatusCode::ACCEPTED, "{}", stopping.body);
    // A `null` body is no body, as the document's nullable body says.
    let stop = format!("{BOT}/{bot_id}/stop");
    let null_body = c
        .call(
            Method::POST,
            &stop,
            token,
            Some(serde_json::Value::Null),
            &[],
        )
        .await;
    assert_eq!(null_body.status, StatusCode::ACCEPTED, "{}", null_body.body);
    c.finish("bots");
}
