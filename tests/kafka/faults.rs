//! Faults: commands keep flowing while the broker is down or the relay
//! process is killed; when they come back, the topics hold every event.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use integration_tests::{muckard_binary, TestApp};
use kafka_mirror::MIRROR_SUBSCRIBER;

use crate::mirror::check_against_log;
use crate::support::{
    bootstrap, consume_until, delete_topics, log_rows, topic_names, trading_day, unique_prefix,
    OwnBroker,
};

async fn mirror_reaches_head(app: &TestApp, seconds: u64) {
    reach_head(app, seconds, None).await;
}

/// Waits for the mirror to reach the log's head, settling on a head that
/// stays put while the mirror passes it (the trade recorder may still be
/// appending). With `broker`: if the broker's storage panicked (a tansu
/// 0.6 defect, see `OwnBroker::storage_panics`: it then accepts
/// connections and serves no produce request, which no client can get
/// past), it is restarted once more, as an operator would restart a
/// wedged broker, and the mirror must still drain everything from its
/// checkpoint.
async fn reach_head(app: &TestApp, seconds: u64, mut broker: Option<&mut OwnBroker>) {
    let reader = event_log::LogReader::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    let mut restarts = 0;
    loop {
        let head = reader.head(&app.pool).await.unwrap();
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        // Watching a broker, look at it every 5 s.
        let within = if broker.is_some() {
            left.min(Duration::from_secs(5))
        } else {
            left
        };
        let reached =
            event_log::lag::wait_until_reached(&app.pool, MIRROR_SUBSCRIBER, head, within)
                .await
                .unwrap();
        if reached {
            if reader.head(&app.pool).await.unwrap() == head {
                return;
            }
            continue;
        }
        let panics = broker.as_deref().map_or(0, OwnBroker::storage_panics);
        if let Some(broker) = broker.as_deref_mut().filter(|_| panics > restarts) {
            assert!(restarts < 2, "the broker's storage panicked {panics} times");
            restarts += 1;
            eprintln!(
                "tansu's storage panicked (a tansu 0.6 defect); restarting the broker ({restarts})"
            );
            broker.kill();
            broker.resume();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the mirror did not reach {head} within {seconds} s (broker storage panics: {panics})"
        );
    }
}

async fn mirror_lag(app: &TestApp) -> i64 {
    event_log::lag::all(&app.pool)
        .await
        .unwrap()
        .into_iter()
        .find(|lag| lag.subscriber == MIRROR_SUBSCRIBER)
        .map(|lag| lag.events_behind)
        .unwrap_or(0)
}

async fn consume_everything(app: &TestApp, bootstrap: &str) -> Vec<crate::support::Consumed> {
    let expected = log_rows(app).await.len();
    let topics = topic_names(app);
    let bootstrap = bootstrap.to_string();
    tokio::task::spawn_blocking(move || {
        consume_until(&bootstrap, &topics, 120, |read| {
            let unique: std::collections::HashSet<&str> = read
                .iter()
                .filter_map(|m| m.headers.get("event_id").map(String::as_str))
                .collect();
            unique.len() >= expected
        })
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_wait_in_the_log_while_the_broker_is_down_and_drain_when_it_returns() {
    let mut broker = OwnBroker::start();
    let prefix = unique_prefix();
    let app = TestApp::spawn_with(&[
        ("MUCKARD_ROLES", "api,projector,kafka-mirror"),
        ("KAFKA_BOOTSTRAP_SERVERS", &broker.bootstrap()),
        ("KAFKA_TOPIC_PREFIX", &prefix),
        ("KAFKA_MESSAGE_TIMEOUT_MS", "2000"),
        ("KAFKA_MIRROR_BATCH_SIZE", "10"),
    ])
    .await;
    let first = app.user().await;
    trading_day(&app, &first, 3).await;
    mirror_reaches_head(&app, 90).await;

    broker.kill();
    // Commands keep succeeding with the broker gone; their events wait.
    for _ in 0..2 {
        let user = app.user().await;
        trading_day(&app, &user, 4).await;
    }
    app.eventually(30, "the mirror to fall behind", || async {
        mirror_lag(&app).await > 0
    })
    .await;
    let behind = mirror_lag(&app).await;

    broker.resume();
    let late = app.user().await;
    trading_day(&app, &late, 2).await;
    reach_head(&app, 120, Some(&mut broker)).await;

    let consumed = consume_everything(&app, &broker.bootstrap()).await;
    let log = log_rows(&app).await;
    let duplicates = check_against_log(&prefix, &log, &consumed, true);
    eprintln!(
        "broker outage: {} events in the log, {behind} waited for the broker, {} messages read, {duplicates} duplicates",
        log.len(),
        consumed.len()
    );
    app.shutdown.cancel();
}

fn relay_process(app: &TestApp, bootstrap: &str, prefix: &str) -> Child {
    Command::new(muckard_binary())
        .args(["serve", "--roles", "kafka-mirror"])
        .envs(app.process_env())
        .env("KAFKA_BOOTSTRAP_SERVERS", bootstrap)
        .env("KAFKA_TOPIC_PREFIX", prefix)
        .env("KAFKA_MIRROR_BATCH_SIZE", "5")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the relay process")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_relay_killed_mid_run_and_restarted_loses_nothing() {
    let bootstrap = bootstrap();
    let prefix = unique_prefix();
    // The API and projectors here; the relay in a process of its own.
    let app = TestApp::spawn_with(&[
        ("KAFKA_BOOTSTRAP_SERVERS", &bootstrap),
        ("KAFKA_TOPIC_PREFIX", &prefix),
    ])
    .await;
    let mut relay = relay_process(&app, &bootstrap, &prefix);
    for _ in 0..2 {
        let user = app.user().await;
        trading_day(&app, &user, 5).await;
    }
    app.eventually(90, "the relay to publish some events", || async {
        app.events_handled(MIRROR_SUBSCRIBER).await >= 20
    })
    .await;
    // Keep commands coming while the relay dies.
    let user = app.user().await;
    let traffic = trading_day(&app, &user, 8);
    let kill = async {
        relay.kill().expect("SIGKILL the relay");
        relay.wait().unwrap();
    };
    tokio::join!(traffic, kill);
    let at_kill = app.events_handled(MIRROR_SUBSCRIBER).await;
    let mut relay = relay_process(&app, &bootstrap, &prefix);
    let after = app.user().await;
    trading_day(&app, &after, 3).await;
    // Every subscriber, the relay's mirror and the notification raiser
    // (which appends a notification per fill) included, at the head at
    // once: the log has stopped growing.
    crate::support::caught_up(&app).await;
    mirror_reaches_head(&app, 120).await;
    relay.kill().unwrap();
    relay.wait().unwrap();

    let consumed = consume_everything(&app, &bootstrap).await;
    let log = log_rows(&app).await;
    let duplicates = check_against_log(&prefix, &log, &consumed, true);
    eprintln!(
        "relay killed after {at_kill} events: {} in the log, {} messages read, {duplicates} duplicates",
        log.len(),
        consumed.len()
    );
    app.shutdown.cancel();
    delete_topics(&app.settings.kafka, &app.settings.kafka.layout.specs()).await;
}
