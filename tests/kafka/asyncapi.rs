//! `/asyncapi.json`: the AsyncAPI 3.0 document of the topics and queues,
//! checked against the definitions in code (the topic layout, the queue
//! topology, which event goes where, the event enums' wire names), its
//! schema references served, and the whole parsed by the official parser
//! (`@asyncapi/parser`, installed by `ensure_node_tools`).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use integration_tests::TestApp;
use messaging::{Queue, Topology};
use serde_json::Value;

use crate::schemas::all_wire_names;

/// The app's router on a loopback port, as the binary serves it.
async fn serve(app: &TestApp) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let router = app.router.clone();
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    addr
}

fn message_names(channel: &Value) -> BTreeSet<String> {
    channel["messages"]
        .as_object()
        .expect("messages")
        .values()
        .map(|reference| {
            let path = reference["$ref"].as_str().expect("a reference");
            path.rsplit('/').next().unwrap().to_string()
        })
        .collect()
}

/// Every `$ref` in `value`.
fn references(value: &Value, found: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("$ref", Value::String(path)) => {
                        found.insert(path.clone());
                    }
                    _ => references(value, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| references(item, found)),
        _ => {}
    }
}

#[tokio::test]
async fn the_asyncapi_document_matches_the_topics_and_queues_and_the_official_parser_accepts_it() {
    let prefix = "contracts.";
    let app = TestApp::spawn_with(&[
        ("KAFKA_TOPIC_PREFIX", prefix),
        ("KAFKA_TRADING_EVENTS_PARTITIONS", "6"),
        ("RABBITMQ_QUEUE_PREFIX", "q."),
    ])
    .await;
    let served = app.get("/asyncapi.json", None).await;
    assert_eq!(served.status, 200, "{}", served.body);
    let document = served.body;
    assert_eq!(document["asyncapi"], "3.0.0");
    let channels = document["channels"].as_object().expect("channels");
    let messages = document["components"]["messages"]
        .as_object()
        .expect("messages");

    // Every topic of the layout, its name and partitions as configured,
    // carrying exactly the event types the mirror routes to it.
    let layout = &app.settings.kafka.layout;
    let wire_names = all_wire_names();
    let mut routed = BTreeMap::<String, BTreeSet<String>>::new();
    for name in wire_names.keys() {
        let topic = layout.topic_for(name).expect("routed");
        routed
            .entry(topic)
            .or_default()
            .insert(format!("kafka_{}", name.replace('.', "_")));
    }
    for spec in layout.specs() {
        let (_, channel) = channels
            .iter()
            .find(|(_, channel)| channel["address"] == spec.name.as_str())
            .unwrap_or_else(|| panic!("no channel for the topic {}", spec.name));
        let kafka = &channel["bindings"]["kafka"];
        assert_eq!(kafka["partitions"], spec.partitions, "{}", spec.name);
        assert_eq!(
            kafka["topicConfiguration"]["retention.ms"], spec.retention_ms,
            "{}",
            spec.name
        );
        assert_eq!(
            message_names(channel),
            routed.remove(&spec.name).unwrap_or_default(),
            "the messages of {}",
            spec.name
        );
    }
    assert!(routed.is_empty(), "topics outside the layout: {routed:?}");
    assert_eq!(
        channels["trading_events"]["bindings"]["kafka"]["partitions"],
        6
    );
    assert_eq!(
        channels["ledger_checkpoints"]["address"],
        format!("{prefix}ledger.checkpoints")
    );
    for (name, aggregate) in &wire_names {
        let message = &messages[&format!("kafka_{}", name.replace('.', "_"))];
        assert_eq!(message["name"], name.as_str());
        let headers = &document["components"]["schemas"]["KafkaHeaders"];
        for header in [
            "ce_specversion",
            "ce_id",
            "ce_source",
            "ce_type",
            "ce_time",
            "ce_subject",
        ] {
            assert!(
                headers["required"]
                    .as_array()
                    .unwrap()
                    .contains(&Value::from(header)),
                "{header}"
            );
        }
        assert_eq!(
            message["x-cloudevents"]["source"],
            format!("/muckard/{aggregate}")
        );
    }

    // Every queue and its dead-letter queue under the configured prefix,
    // carrying the event types the publisher sends there; the runner
    // consumes the command queues.
    let topology = Topology::new("q.");
    let operations = document["operations"].as_object().expect("operations");
    for queue in Queue::ALL {
        let channel = &channels[&queue.base_name().replace('.', "_")];
        assert_eq!(channel["address"], topology.name(queue));
        assert_eq!(
            channel["bindings"]["amqp"]["queue"]["name"],
            topology.name(queue)
        );
        assert_eq!(
            channel["x-arguments"]["x-dead-letter-routing-key"],
            topology.dead_letter_name(queue)
        );
        assert_eq!(
            channel["x-arguments"].get("x-max-priority").is_some(),
            queue.has_priority(),
            "{queue:?}"
        );
        let expected: BTreeSet<String> = wire_names
            .iter()
            .filter(|(name, aggregate)| {
                messaging::messages::queue_for(aggregate, name) == Some(queue)
            })
            .map(|(name, _)| name.replace('.', "_"))
            .collect();
        assert!(!expected.is_empty(), "{queue:?} carries nothing");
        let carried: BTreeSet<String> = channel["messages"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(carried, expected, "the messages of {queue:?}");
        let dead_letters = &channels[&format!("{}_dlq", queue.base_name().replace('.', "_"))];
        assert_eq!(dead_letters["address"], topology.dead_letter_name(queue));
        let receives = operations.values().any(|operation| {
            operation["action"] == "receive"
                && operation["channel"]["$ref"]
                    == format!("#/channels/{}", queue.base_name().replace('.', "_"))
        });
        assert_eq!(receives, Queue::COMMANDS.contains(&queue), "{queue:?}");
    }
    let queue_channels = Queue::ALL.len() * 2;
    assert_eq!(
        channels.len(),
        layout.specs().len() + 1 + queue_channels,
        "a channel for every topic and queue, and nothing else"
    );

    // Every external reference is served, and is the repository's file.
    let mut found = BTreeSet::new();
    references(&document, &mut found);
    let external: Vec<&String> = found.iter().filter(|r| !r.starts_with('#')).collect();
    assert!(external.len() > wire_names.len(), "{external:?}");
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    for reference in external {
        let served = app.get(&format!("/{reference}"), None).await;
        assert_eq!(served.status, 200, "{reference}: {}", served.body);
        let file = std::fs::read_to_string(format!("{root}/{reference}"))
            .unwrap_or_else(|e| panic!("{reference}: {e}"));
        let file: Value = serde_json::from_str(&file).expect("a JSON schema file");
        assert_eq!(served.body, file, "{reference}");
    }
    let missing = app
        .get("/schemas/kafka/events/no.such.schema.json", None)
        .await;
    assert_eq!(missing.status, 404);

    // The official parser, reading the document and its references over
    // HTTP as a consumer would.
    let addr = serve(&app).await;
    let script = integration_tests::node_tool("validate-asyncapi.mjs");
    assert!(
        script.exists(),
        "{} is missing: run ./scripts/test, or `source scripts/services.sh && ensure_node_tools`",
        script.display()
    );
    let url = format!("http://{addr}/asyncapi.json");
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg(script)
            .arg(url)
            .output()
            .expect("run node")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the AsyncAPI parser refused the document:\n{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("valid AsyncAPI 3.0.0"), "{stdout}");
}

/// The queues' schemas (`schemas/amqp/`) accept what the service's own
/// message types serialise to, and refuse what those types refuse.
#[test]
fn the_queue_schemas_describe_the_messages_the_service_sends() {
    use messaging::{BotCommandMessage, StatusMessage};
    use uuid::Uuid;
    let schema = |file: &str| {
        crate::schemas::validator(&crate::schemas::read_json(std::path::Path::new(&format!(
            "{}/../schemas/amqp/{file}",
            env!("CARGO_MANIFEST_DIR")
        ))))
    };
    let command = schema("bot-command.schema.json");
    let status = schema("status.schema.json");
    let full = BotCommandMessage {
        bot_id: Uuid::new_v4(),
        user_id: Some(Uuid::new_v4()),
        sequence: Some(4),
        trigger_id: Some(Uuid::new_v4()),
        reason: Some("why".to_string()),
        requested_at: Some(chrono::Utc::now()),
    };
    let bare = BotCommandMessage {
        user_id: None,
        sequence: None,
        trigger_id: None,
        reason: None,
        requested_at: None,
        ..full.clone()
    };
    for message in [&full, &bare] {
        let value = serde_json::to_value(message).unwrap();
        let errors = crate::schemas::errors(&command, &value);
        assert!(errors.is_empty(), "{errors:?}: {value}");
    }
    let external = serde_json::json!({ "bot_id": Uuid::new_v4(), "user_id": Uuid::new_v4() });
    assert!(serde_json::from_value::<BotCommandMessage>(external.clone()).is_ok());
    assert!(crate::schemas::errors(&command, &external).is_empty());
    let unknown = serde_json::json!({ "bot_id": Uuid::new_v4(), "api_secret": "x" });
    assert!(serde_json::from_value::<BotCommandMessage>(unknown.clone()).is_err());
    assert!(!crate::schemas::errors(&command, &unknown).is_empty());

    let alert = StatusMessage {
        event_id: Uuid::new_v4(),
        event_type: "bot.error".to_string(),
        event_version: "1.0".to_string(),
        aggregate_type: "Bot".to_string(),
        aggregate_id: Uuid::new_v4().to_string(),
        sequence: 7,
        recorded_at: chrono::Utc::now(),
        user_id: None,
        correlation_id: Some("c".to_string()),
        payload: serde_json::json!({ "type": "bot.error", "message": "boom" }),
    };
    let value = serde_json::to_value(&alert).unwrap();
    let errors = crate::schemas::errors(&status, &value);
    assert!(errors.is_empty(), "{errors:?}: {value}");
    let mut other = value.clone();
    other["event_type"] = "bot.configured".into();
    assert!(!crate::schemas::errors(&status, &other).is_empty());
}
