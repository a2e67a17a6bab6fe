//! `GET /api/v1/stream` read by a real SSE client (scripts/sse_client.py:
//! httpx and httpx-sse) while a real bot runs through RabbitMQ: it sees
//! the bot go `starting` → `running` and its first fill, each within 2 s of
//! the event's commit; it leaves, misses a trade and the bot's stop, and
//! back with `Last-Event-ID` gets exactly those, in order, none twice.
//! Another user's stream sees none of it; one stream too many is a 429.

use std::time::{Duration, SystemTime};

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use integration_tests::rabbit::RabbitTest;
use integration_tests::sse::{SseClient, SseEvent};
use integration_tests::TestApp;
use serde_json::json;

use crate::flow::{bot_with, hourly_dca, service, wait_for_events, wait_for_state};

/// When the event at `position` (`<transaction>.<global>`) was recorded.
async fn recorded_at(app: &TestApp, position: &str) -> DateTime<Utc> {
    let (_, global) = position.split_once('.').expect("a position id");
    sqlx::query_scalar("SELECT recorded_at FROM events WHERE global_position = $1")
        .bind(global.parse::<i64>().unwrap())
        .fetch_one(&app.pool)
        .await
        .expect("the event of the id")
}

/// Waits for the next event that `matches`, at most 10 s; it must have
/// arrived within 2 s of its event's commit (`recorded_at` is taken
/// inside the committing transaction, so this errs long).
async fn expect_event(
    app: &TestApp,
    client: &mut SseClient,
    what: &str,
    seen: &mut Vec<SseEvent>,
    matches: impl Fn(&SseEvent) -> bool,
) -> SseEvent {
    loop {
        let event = client
            .next(Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("no {what} on the stream; saw {seen:?}"));
        seen.push(event.clone());
        if !matches(&event) {
            continue;
        }
        let committed: SystemTime = recorded_at(app, &event.id).await.into();
        let took = event
            .received_at
            .duration_since(committed)
            .unwrap_or_default();
        assert!(took < Duration::from_secs(2), "{what} took {took:?}");
        eprintln!("{what}: {took:?} from commit to the client");
        return event;
    }
}

fn is_state(state: &'static str) -> impl Fn(&SseEvent) -> bool {
    move |e| e.event == "bot_status" && e.data["data"]["state"] == state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_client_follows_a_bot_and_resumes_exactly_where_it_left() {
    let rabbit = RabbitTest::new().await;
    let app = service(
        &rabbit,
        &[
            ("STREAM_HEARTBEAT_SECS", "1"),
            ("STREAM_MAX_CONNECTIONS_PER_USER", "2"),
        ],
    )
    .await;
    let base = app.listen().await;
    let stream = format!("{base}/api/v1/stream");
    let user = app.user().await;
    let other = app.user().await;
    let bot_id = bot_with(&app, &user, hourly_dca()).await;

    let mut client = SseClient::open(&stream, &user.token, None).await;
    assert_eq!(client.opened["open"], 200, "{}", client.opened);
    assert!(
        client.opened["content_type"]
            .as_str()
            .unwrap()
            .starts_with("text/event-stream"),
        "{}",
        client.opened
    );
    let mut bystander = SseClient::open(&stream, &other.token, None).await;

    let started = app
        .post_empty(&format!("/api/v1/bot/{bot_id}/start"), Some(&user.token))
        .await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.body);
    let mut seen = Vec::new();
    let starting = expect_event(
        &app,
        &mut client,
        "starting",
        &mut seen,
        is_state("starting"),
    )
    .await;
    assert_eq!(starting.data["data"]["bot_id"], bot_id.to_string());
    assert_eq!(starting.data["user_id"], user.id.to_string());
    assert_eq!(starting.data["position"], starting.id);
    expect_event(&app, &mut client, "running", &mut seen, is_state("running")).await;
    let trade = expect_event(&app, &mut client, "the first fill", &mut seen, |e| {
        e.event == "trade"
    })
    .await;
    assert_eq!(trade.data["data"]["bot_id"], bot_id.to_string());
    assert_eq!(trade.data["data"]["side"], "buy");
    // Its position follows.
    let position = expect_event(&app, &mut client, "the position", &mut seen, |e| {
        e.event == "position"
    })
    .await;
    assert_eq!(position.data["data"]["pair"], "XBT/USD");
    // Ids rise, none twice.
    for pair in seen.windows(2) {
        let parse = |id: &str| {
            let (t, g) = id.split_once('.').unwrap();
            (t.parse::<u64>().unwrap(), g.parse::<i64>().unwrap())
        };
        assert!(parse(&pair[0].id) < parse(&pair[1].id), "{seen:?}");
    }

    // Two streams per user here: a third is refused.
    let second = SseClient::open(&stream, &user.token, None).await;
    assert_eq!(second.opened["open"], 200, "{}", second.opened);
    let third = SseClient::open(&stream, &user.token, None).await;
    assert_eq!(third.opened["open"], 429, "{}", third.opened);
    drop((second, third));

    // The client leaves; a trade and the stop happen without it.
    let last = seen.last().unwrap().id.clone();
    drop(client);
    let triggered = app
        .post_empty(
            &format!("/api/v1/bot/{bot_id}/trigger-trade"),
            Some(&user.token),
        )
        .await;
    assert_eq!(triggered.status, StatusCode::ACCEPTED, "{}", triggered.body);
    wait_for_events(&app, bot_id, "bot.trade.executed", 2).await;
    app.post(
        &format!("/api/v1/bot/{bot_id}/stop"),
        Some(&user.token),
        json!({ "reason": "done for today" }),
    )
    .await;
    wait_for_state(&app, &user, bot_id, "stopped").await;
    // And the fills' notifications (raised from the log by a process
    // manager, so perhaps after the stop).
    app.eventually(30, "both fills' notifications", || async {
        let listed = app.get("/api/v1/notifications", Some(&user.token)).await;
        listed.body["notifications"]
            .as_array()
            .is_some_and(|n| n.iter().filter(|n| n["kind"] == "trade_executed").count() == 2)
    })
    .await;

    // Back, from the last id it saw: exactly what it missed, which is
    // what `live_updates` holds for the user after that id (nothing
    // happens any more, so the table is complete once the stream is
    // quiet).
    let mut back = SseClient::open(&stream, &user.token, Some(&last)).await;
    assert_eq!(back.opened["open"], 200, "{}", back.opened);
    let resumed = back.until_quiet(Duration::from_secs(3)).await;
    let missed = app.live_ids_after(user.id, &last).await;
    assert!(
        missed.len() >= 5,
        "a trade, its position and notification, stopping, stopped: {missed:?}"
    );
    let ids: Vec<String> = resumed.iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids, missed, "{resumed:?}");
    let kinds: Vec<&str> = resumed.iter().map(|e| e.event.as_str()).collect();
    assert!(kinds.contains(&"trade"), "{kinds:?}");
    let stopped = resumed
        .iter()
        .find(|e| e.data["data"]["state"] == "stopped")
        .unwrap_or_else(|| panic!("no stop among {resumed:?}"));
    assert_eq!(stopped.data["data"]["reason"], "done for today");

    // The other user saw nothing of it.
    let theirs = bystander.until_quiet(Duration::from_millis(500)).await;
    assert!(
        theirs
            .iter()
            .all(|e| e.data["user_id"] == other.id.to_string()),
        "{theirs:?}"
    );
    assert!(theirs.is_empty(), "{theirs:?}");

    // Whoever may no longer read a stream loses it within the recheck
    // (here the 1 s heartbeat): an admin streaming everyone's events who
    // is made a user again, and a user who logs out.
    let admin = app.user_with_role(domain::Role::Admin).await;
    let mut everyone = SseClient::open(&stream, &admin.token, None).await;
    assert_eq!(everyone.opened["open"], 200, "{}", everyone.opened);
    assert!(!everyone.closed_within(Duration::from_millis(1500)).await);
    app.grant_role(&admin.email, domain::Role::User).await;
    assert!(
        everyone.closed_within(Duration::from_secs(5)).await,
        "the demoted admin's stream of everyone's events goes on"
    );
    let logged_out = app
        .post(
            "/api/v1/auth/logout",
            None,
            json!({ "refresh_token": user.refresh_token }),
        )
        .await;
    assert_eq!(
        logged_out.status,
        StatusCode::NO_CONTENT,
        "{}",
        logged_out.body
    );
    assert!(
        back.closed_within(Duration::from_secs(5)).await,
        "the logged-out user's stream goes on"
    );
}
