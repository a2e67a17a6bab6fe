//! Topic provisioning: created with their partitions, retention and
//! cleanup policy, read back from the broker; idempotent; a wrong retention
//! corrected and reported.

use std::time::Duration;

use kafka_mirror::topics::{describe, partition_counts};
use kafka_mirror::{provision, TopicChange};
use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};

use crate::support::{admin, bootstrap, delete_topics, settings, unique_prefix};

const TIMEOUT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_get_their_partitions_and_90_day_retention_and_are_kept_in_shape() {
    let prefix = unique_prefix();
    let settings = settings(&bootstrap(), &prefix);
    let specs = settings.layout.specs();
    let admin = admin(&settings);

    let first = provision(&admin, &specs, 1, TIMEOUT)
        .await
        .expect("provision");
    let created: Vec<(String, i32)> = first
        .iter()
        .filter_map(|change| match change {
            TopicChange::Created { topic, partitions } => Some((topic.clone(), *partitions)),
            _ => None,
        })
        .collect();
    assert_eq!(
        created,
        [
            (format!("{prefix}user.events"), 3),
            (format!("{prefix}onboarding.events"), 1),
            (format!("{prefix}kraken.events"), 1),
            (format!("{prefix}trading.events"), 3),
            (format!("{prefix}support.events"), 1),
        ],
        "{first:?}"
    );

    // Read back from the broker, not from what was asked.
    let counts = partition_counts(&admin, TIMEOUT).await.unwrap();
    for spec in &specs {
        assert_eq!(
            counts.get(&spec.name),
            Some(&spec.partitions),
            "{}",
            spec.name
        );
    }
    let options = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let configs = describe(&admin, &specs, &options).await.unwrap();
    for spec in &specs {
        let topic = &configs[&spec.name];
        assert_eq!(
            topic.get("retention.ms").map(String::as_str),
            Some("7776000000"),
            "{}: {topic:?}",
            spec.name
        );
        assert_eq!(
            topic.get("cleanup.policy").map(String::as_str),
            Some("delete"),
            "{}",
            spec.name
        );
    }

    let again = provision(&admin, &specs, 1, TIMEOUT).await.unwrap();
    assert!(again.is_empty(), "a second run changes nothing: {again:?}");

    delete_topics(&settings, &specs).await;
}

/// A topic made by hand with a one-day retention: provisioning finds the
/// difference and corrects it where the broker supports AlterConfigs, and
/// reports it either way. (tansu 0.6 answers AlterConfigs with
/// UNSUPPORTED_FEATURE; against Kafka the correction is read back.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_with_the_wrong_retention_is_corrected_or_reported() {
    let prefix = unique_prefix();
    let settings = settings(&bootstrap(), &prefix);
    let specs = settings.layout.specs();
    let admin = admin(&settings);
    let options = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let trading = format!("{prefix}trading.events");
    let by_hand = NewTopic::new(&trading, 3, TopicReplication::Fixed(1))
        .set("retention.ms", "86400000")
        .set("cleanup.policy", "delete");
    let created = admin.create_topics([&by_hand], &options).await.unwrap();
    assert!(created.iter().all(Result::is_ok), "{created:?}");
    let configs = describe(&admin, &specs[3..4], &options).await.unwrap();
    assert_eq!(
        configs[&trading]["retention.ms"], "86400000",
        "the broker kept what was asked"
    );

    let changes = provision(&admin, &specs, 1, TIMEOUT).await.unwrap();
    let about_trading: Vec<&TopicChange> = changes
        .iter()
        .filter(|change| change.to_string().starts_with(&trading))
        .collect();
    assert_eq!(about_trading.len(), 1, "{changes:?}");
    let retention_now =
        describe(&admin, &specs[3..4], &options).await.unwrap()[&trading]["retention.ms"].clone();
    match about_trading[0] {
        TopicChange::ConfigCorrected { name, from, to, .. } => {
            assert_eq!(name, "retention.ms");
            assert_eq!(from.as_deref(), Some("86400000"));
            assert_eq!(to, "7776000000");
            assert_eq!(retention_now, "7776000000", "the correction is read back");
            assert_eq!(
                about_trading[0].to_string(),
                format!("{trading}: retention.ms was 86400000, set to 7776000000")
            );
        }
        TopicChange::NotCorrected { what, reason, .. } => {
            assert_eq!(what, "retention.ms=7776000000");
            assert!(!reason.is_empty());
            assert_eq!(retention_now, "86400000");
        }
        other => panic!("unexpected {other:?}"),
    }
    // The other four topics were created as configured.
    assert_eq!(
        changes
            .iter()
            .filter(|c| matches!(c, TopicChange::Created { .. }))
            .count(),
        4
    );
    delete_topics(&settings, &specs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_counts_and_retention_are_honoured() {
    let prefix = unique_prefix();
    let mut settings = settings(&bootstrap(), &prefix);
    settings.layout.trading_partitions = 6;
    settings.layout.retention_ms = 3_600_000;
    let specs = settings.layout.specs();
    let admin = admin(&settings);
    provision(&admin, &specs, 1, TIMEOUT).await.unwrap();
    let counts = partition_counts(&admin, TIMEOUT).await.unwrap();
    assert_eq!(counts[&format!("{prefix}trading.events")], 6);
    let options = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let configs = describe(&admin, &specs, &options).await.unwrap();
    assert_eq!(
        configs[&format!("{prefix}user.events")]["retention.ms"],
        "3600000"
    );
    delete_topics(&settings, &specs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_broker_is_an_error_not_a_hang() {
    let settings = settings(
        &format!("127.0.0.1:{}", integration_tests::free_port()),
        "x.",
    );
    let admin = admin(&settings);
    let started = std::time::Instant::now();
    let outcome = provision(&admin, &settings.layout.specs(), 1, Duration::from_secs(2)).await;
    assert!(outcome.is_err(), "{outcome:?}");
    assert!(started.elapsed() < Duration::from_secs(15));
}
