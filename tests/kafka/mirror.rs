//! The mirror end to end: commands through the REST API, events in the
//! log, every one of them on its topic exactly once, keyed by aggregate,
//! in sequence order within its partition, with its headers, and no secret.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use integration_tests::{TestApp, GOOD_SECRET, PASSWORD};
use kafka_mirror::envelope::Envelope;
use kafka_mirror::MIRROR_SUBSCRIBER;

use crate::support::{
    bootstrap, consume_until, delete_topics, log_rows, topic_names, trading_day, unique_prefix,
    Consumed, LogRow,
};

/// Checks `consumed` against the log: every event exactly once (counting,
/// not failing on, duplicates when `duplicates_allowed`), on the right topic
/// with the right key, headers and envelope, each aggregate's events in
/// sequence order. Returns the number of duplicates.
pub fn check_against_log(
    prefix: &str,
    log: &[LogRow],
    consumed: &[Consumed],
    duplicates_allowed: bool,
) -> usize {
    let by_id: HashMap<String, &LogRow> = log
        .iter()
        .map(|row| (row.event_id.to_string(), row))
        .collect();
    let mut seen = HashSet::new();
    let mut duplicates = 0;
    // The highest sequence delivered so far per aggregate and partition.
    let mut last_sequence: HashMap<(String, i32, String), i64> = HashMap::new();
    let mut ordered: Vec<&Consumed> = consumed.iter().collect();
    ordered.sort_by_key(|m| (m.topic.clone(), m.partition, m.offset));
    for message in ordered {
        let envelope: Envelope = serde_json::from_value(message.value.clone())
            .unwrap_or_else(|e| panic!("undecodable envelope {}: {e}", message.text));
        let id = envelope.event_id.to_string();
        let row = by_id
            .get(&id)
            .unwrap_or_else(|| panic!("{id} on Kafka is not in the log"));
        if !seen.insert(id.clone()) {
            duplicates += 1;
            assert!(duplicates_allowed, "{id} delivered twice");
            continue;
        }
        let family = row.event_type.split('.').next().unwrap();
        let topic = match family {
            "user" | "notification" => "user.events",
            "onboarding" => "onboarding.events",
            "kraken" => "kraken.events",
            "support" => "support.events",
            _ => "trading.events",
        };
        assert_eq!(
            message.topic,
            format!("{prefix}{topic}"),
            "{}",
            row.event_type
        );
        assert_eq!(message.key, row.aggregate_id, "key is the aggregate id");
        assert_eq!(envelope.event_type, row.event_type);
        assert_eq!(envelope.event_version, row.event_version);
        assert_eq!(envelope.aggregate_type, row.aggregate_type);
        assert_eq!(envelope.aggregate_id, row.aggregate_id);
        assert_eq!(envelope.sequence, row.sequence);
        assert_eq!(envelope.global_position, row.global_position);
        assert_eq!(envelope.payload, row.payload, "payload as stored");
        assert_eq!(envelope.payload["type"], row.event_type);
        let header = |name: &str| message.headers.get(name).map(String::as_str);
        assert_eq!(header("event_id"), Some(id.as_str()));
        assert_eq!(header("event_type"), Some(row.event_type.as_str()));
        assert_eq!(header("event_version"), Some(row.event_version.as_str()));
        assert_eq!(header("aggregate_type"), Some(row.aggregate_type.as_str()));
        assert_eq!(header("aggregate_id"), Some(row.aggregate_id.as_str()));
        assert_eq!(header("sequence"), Some(row.sequence.to_string().as_str()));
        assert_eq!(
            header("global_position"),
            Some(row.global_position.to_string().as_str())
        );
        assert_eq!(header("position"), Some(envelope.position.as_str()));
        assert_eq!(header("content-type"), Some("application/json"));
        assert_eq!(header("prev_hash"), Some(row.prev_hash.as_str()));
        assert_eq!(header("hash"), Some(row.hash.as_str()));
        assert!(header("recorded_at").is_some());
        let stream = (
            message.topic.clone(),
            message.partition,
            row.aggregate_id.clone(),
        );
        let previous = last_sequence.insert(stream, row.sequence).unwrap_or(0);
        assert!(
            row.sequence > previous,
            "{} {}: sequence {} after {previous}",
            row.aggregate_type,
            row.aggregate_id,
            row.sequence
        );
    }
    let missing: Vec<&String> = by_id.keys().filter(|id| !seen.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} events never reached Kafka",
        missing.len()
    );
    duplicates
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_event_reaches_its_topic_once_in_order_with_key_and_headers() {
    let prefix = unique_prefix();
    let bootstrap = bootstrap();
    let app = TestApp::spawn_with(&[
        ("MUCKARD_ROLES", "api,projector,kafka-mirror"),
        ("KAFKA_BOOTSTRAP_SERVERS", &bootstrap),
        ("KAFKA_TOPIC_PREFIX", &prefix),
        ("KAFKA_MIRROR_BATCH_SIZE", "17"),
    ])
    .await;
    for _ in 0..3 {
        let user = app.user().await;
        trading_day(&app, &user, 6).await;
    }
    // The trade recorder turns each fill into trade.executed: wait for the
    // log to settle, then for the mirror to pass its head.
    app.eventually(60, "every fill to reach the portfolio", || async {
        let portfolio: i64 =
            sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'trade.executed'")
                .fetch_one(&app.pool)
                .await
                .unwrap();
        portfolio == 18
    })
    .await;
    // And each fill's notification (raised from the log by the
    // notification raiser), the last events the history makes.
    app.eventually(60, "every fill's notification", || async {
        let raised: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM events WHERE event_type = 'notification.raised'",
        )
        .fetch_one(&app.pool)
        .await
        .unwrap();
        raised == 18
    })
    .await;
    let head = event_log::LogReader::new().head(&app.pool).await.unwrap();
    let reached = event_log::lag::wait_until_reached(
        &app.pool,
        MIRROR_SUBSCRIBER,
        head,
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    assert!(reached, "the mirror acknowledged up to the head");

    let log = log_rows(&app).await;
    let expected = log.len();
    assert!(expected > 50, "a realistic log: {expected} events");
    let topics = topic_names(&app);
    let consumed = {
        let bootstrap = bootstrap.clone();
        tokio::task::spawn_blocking(move || {
            consume_until(&bootstrap, &topics, 90, |read| read.len() >= expected)
        })
        .await
        .unwrap()
    };
    let duplicates = check_against_log(&prefix, &log, &consumed, false);
    assert_eq!(duplicates, 0);
    // Every message matches the published JSON Schemas.
    let validator = crate::schemas::envelope_validator();
    for message in &consumed {
        let errors = crate::schemas::errors(&validator, &message.value);
        assert!(errors.is_empty(), "{}: {errors:?}", message.text);
    }
    assert_eq!(consumed.len(), expected, "nothing more than the log");

    // Every topic got its share, trading.events over several partitions.
    let per_topic = |name: &str| {
        consumed
            .iter()
            .filter(|m| m.topic == format!("{prefix}{name}"))
            .count()
    };
    for name in [
        "user.events",
        "onboarding.events",
        "kraken.events",
        "trading.events",
    ] {
        assert!(per_topic(name) > 0, "{name} is empty");
    }
    let trading_partitions: HashSet<i32> = consumed
        .iter()
        .filter(|m| m.topic.ends_with("trading.events"))
        .map(|m| m.partition)
        .collect();
    assert!(trading_partitions.len() > 1, "{trading_partitions:?}");

    // No secret or password hash ever leaves the ledger.
    for message in &consumed {
        for secret in [GOOD_SECRET, PASSWORD, "argon2", "paper-key-trading"] {
            assert!(
                !message.text.contains(secret),
                "{secret} in {}",
                message.text
            );
        }
    }

    // The mirror's counters and lag are on /metrics.
    let metrics = app.get("/metrics", None).await;
    let text = metrics.body.as_str().unwrap().to_string();
    assert!(
        text.contains("muckard_subscriber_lag_events{subscriber=\"kafka_mirror\"} 0"),
        "{text}"
    );
    let published: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("muckard_kafka_published_events_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(published >= expected as u64, "{published}");

    app.shutdown.cancel();
    delete_topics(&app.settings.kafka, &app.settings.kafka.layout.specs()).await;
}
