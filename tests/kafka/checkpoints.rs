//! Signed checkpoints on their Kafka topic: `muckard anchor` publishes one
//! (the topic is made with `retention.ms=-1`), `muckard-replay verify
//! --anchors kafka` reads them back and finds the log clean, then names a
//! stream the owner cut at its tail with the triggers off, and the row the
//! Kafka copy of the events still holds.

use std::process::{Command, Output};

use integration_tests::{muckard_binary, workspace_binary, TestApp};
use projections::audit::signing::AuditSigner;
use rdkafka::admin::{AdminOptions, ResourceSpecifier};
use sqlx::Connection;

use crate::support::{admin, bootstrap, delete_topics, settings, unique_prefix};

async fn run(mut command: Command) -> Output {
    tokio::task::spawn_blocking(move || command.output().expect("run"))
        .await
        .expect("join")
}

fn describe(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test]
async fn checkpoints_on_kafka_anchor_the_log_and_name_a_stream_cut_at_its_tail() {
    let prefix = unique_prefix();
    let app = TestApp::spawn_with(&[
        ("KAFKA_TOPIC_PREFIX", &prefix),
        ("MUCKARD_ROLES", "api,projector,kafka-mirror"),
        // Checkpoints only on demand, so the test knows which exist.
        ("ANCHOR_INTERVAL_SECS", "0"),
    ])
    .await;
    let trader = app.user().await;
    app.bot(&trader).await;
    // The trader's stream: registered, then logged in.
    let user_id = trader.id;
    let kafka_env = [
        ("KAFKA_BOOTSTRAP_SERVERS", bootstrap()),
        ("KAFKA_TOPIC_PREFIX", prefix.clone()),
    ];
    crate::support::mirror_reached_the_head(&app).await;
    let mut anchor = Command::new(muckard_binary());
    anchor
        .arg("anchor")
        .envs(app.process_env())
        .envs(kafka_env.clone());
    let signed = run(anchor).await;
    assert!(signed.status.success(), "{}", describe(&signed));

    // The topic keeps its checkpoints forever.
    let kafka = settings(&bootstrap(), &prefix);
    let topic = kafka_mirror::checkpoints::topic(&kafka);
    let configs = admin(&kafka)
        .describe_configs(&[ResourceSpecifier::Topic(&topic)], &AdminOptions::new())
        .await
        .expect("describe the checkpoints topic");
    let retention = configs[0]
        .as_ref()
        .expect("the topic's configuration")
        .get("retention.ms")
        .and_then(|entry| entry.value.clone());
    assert_eq!(retention.as_deref(), Some("-1"));

    // What is on the topic is what schemas/kafka/checkpoint.schema.json
    // (referenced by /asyncapi.json) says.
    let schema = crate::schemas::read_json(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../schemas/kafka/checkpoint.schema.json"
    )));
    let validator = crate::schemas::validator(&schema);
    let texts = kafka_mirror::checkpoints::read_all(&kafka, std::time::Duration::from_secs(30))
        .expect("read the checkpoints");
    assert_eq!(texts.len(), 1);
    for text in &texts {
        let checkpoint: serde_json::Value = serde_json::from_str(text).expect("JSON");
        let errors = crate::schemas::errors(&validator, &checkpoint);
        assert!(errors.is_empty(), "{errors:?}\n{checkpoint:#}");
    }

    let key = AuditSigner::from_seed(app.settings.audit_signing_key.expose())
        .unwrap()
        .public_key()
        .public_key;
    let verify = || {
        let mut command = Command::new(workspace_binary("muckard-replay"));
        command
            .args(["verify", "--anchors", "kafka", "--public-key", &key])
            .env("DATABASE_URL", &app.database_url)
            .env("RUST_LOG", "warn")
            .envs(kafka_env.clone());
        command
    };
    let clean = run(verify()).await;
    assert_eq!(clean.status.code(), Some(0), "{}", describe(&clean));
    assert!(
        String::from_utf8_lossy(&clean.stdout).contains("against 1 signed checkpoints: 0 findings"),
        "{}",
        describe(&clean)
    );

    // The owner, triggers off, cuts the trader's stream at its tail.
    let mut owner = sqlx::PgConnection::connect(&app.database_url)
        .await
        .unwrap();
    sqlx::query("SET session_replication_role = replica")
        .execute(&mut owner)
        .await
        .unwrap();
    let last: i64 = sqlx::query_scalar(
        "SELECT max(sequence) FROM events WHERE aggregate_type = 'User' AND aggregate_id = $1",
    )
    .bind(user_id.to_string())
    .fetch_one(&mut owner)
    .await
    .unwrap();
    sqlx::query(
        "DELETE FROM events WHERE aggregate_type = 'User' AND aggregate_id = $1 AND sequence = $2",
    )
    .bind(user_id.to_string())
    .bind(last)
    .execute(&mut owner)
    .await
    .unwrap();
    let cut = run(verify()).await;
    assert_eq!(cut.status.code(), Some(1), "{}", describe(&cut));
    assert!(
        String::from_utf8_lossy(&cut.stdout)
            .contains(&format!("ANCHOR User/{user_id}: cut at its tail")),
        "{}",
        describe(&cut)
    );
    // The Kafka copy of the events names the very row.
    assert!(
        String::from_utf8_lossy(&cut.stdout).contains(&format!(
            "ANCHOR User/{user_id} sequence {last}: mirrored to Kafka, gone from the log"
        )),
        "{}",
        describe(&cut)
    );

    let mut specs = app.settings.kafka.layout.specs();
    specs.push(kafka_mirror::TopicSpec {
        name: topic,
        partitions: 1,
        retention_ms: -1,
    });
    delete_topics(&kafka, &specs).await;
}
