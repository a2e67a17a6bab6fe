//! The message contracts the service publishes beside its OpenAPI document:
//! the AsyncAPI 3.0 document of every Kafka topic and RabbitMQ queue
//! (`/asyncapi.json`) and the JSON Schemas of `schemas/` it references
//! (`/schemas/...`), both made from the definitions the workers use (the
//! topic layout, the queue topology and which event goes where) and the
//! configured names, so the document describes this deployment.
//!
//! Message payloads are `$ref`s relative to the document
//! (`schemas/kafka/events/bot.started.schema.json`), so the document
//! resolves both where it is served (`/asyncapi.json` beside `/schemas/`)
//! and saved at the repository's root beside `schemas/`.

use std::collections::BTreeMap;

use api::contracts::MessageContracts;
use kafka_mirror::TopicLayout;
use messaging::{Queue, Topology};
use serde_json::{json, Map, Value};

/// The files of `schemas/`, built into the binary.
#[derive(rust_embed::RustEmbed)]
#[folder = "../schemas/"]
struct SchemaFiles;

/// One event type as its schema file annotates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventContract {
    pub wire_name: String,
    pub version: String,
    pub aggregate_type: String,
    pub description: String,
}

/// Where the brokers are, for the document's `servers`.
#[derive(Debug, Clone)]
pub struct Brokers {
    /// `KAFKA_BOOTSTRAP_SERVERS` (the first is the document's host).
    pub kafka_bootstrap: String,
    /// `RABBITMQ_URL` (its credentials are left out).
    pub rabbitmq_url: String,
    pub kafka_replication_factor: i32,
}

/// The schema files by their path below `schemas/`
/// (`kafka/events/bot.started.schema.json`).
pub fn schema_files() -> BTreeMap<String, Vec<u8>> {
    SchemaFiles::iter()
        .filter(|path| path.ends_with(".json"))
        .filter_map(|path| {
            let file = SchemaFiles::get(&path)?;
            Some((path.replace('\\', "/"), file.data.into_owned()))
        })
        .collect()
}

/// Every event type of `schemas/kafka/events/`, by wire name.
pub fn event_contracts(files: &BTreeMap<String, Vec<u8>>) -> anyhow::Result<Vec<EventContract>> {
    let mut events = Vec::new();
    for (path, bytes) in files {
        let Some(wire_name) = path
            .strip_prefix("kafka/events/")
            .and_then(|file| file.strip_suffix(".schema.json"))
        else {
            continue;
        };
        let schema: Value = serde_json::from_slice(bytes)
            .map_err(|e| anyhow::anyhow!("schemas/{path} is not JSON: {e}"))?;
        let text = |key: &str| {
            schema[key]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| anyhow::anyhow!("schemas/{path} has no {key}"))
        };
        events.push(EventContract {
            wire_name: wire_name.to_string(),
            version: text("x-event-version")?,
            aggregate_type: text("x-aggregate-type")?,
            description: text("description")?,
        });
    }
    Ok(events)
}

/// The contracts of this deployment: its topic names and partitions, its
/// queue names, its brokers.
pub fn message_contracts(
    layout: &TopicLayout,
    topology: &Topology,
    brokers: &Brokers,
) -> anyhow::Result<MessageContracts> {
    let files = schema_files();
    let events = event_contracts(&files)?;
    let document = asyncapi(layout, topology, brokers, &events)?;
    Ok(MessageContracts::new(document, files))
}

/// A key the AsyncAPI document may use for a channel, message or
/// operation (`^[A-Za-z0-9_\-]+$`).
fn key(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn reference(path: &str) -> Value {
    json!({ "$ref": path })
}

/// The AsyncAPI 3.0 document.
pub fn asyncapi(
    layout: &TopicLayout,
    topology: &Topology,
    brokers: &Brokers,
    events: &[EventContract],
) -> anyhow::Result<Value> {
    let mut channels = Map::new();
    let mut operations = Map::new();
    let mut messages = Map::new();

    // Kafka: one channel per event topic, one message per event type.
    for spec in layout.specs() {
        let base = spec
            .name
            .strip_prefix(&layout.prefix)
            .unwrap_or(&spec.name)
            .to_string();
        let channel = key(&base);
        let mut channel_messages = Map::new();
        for event in events
            .iter()
            .filter(|event| layout.topic_for(&event.wire_name).as_deref() == Some(&spec.name))
        {
            let message = format!("kafka_{}", key(&event.wire_name));
            messages.insert(message.clone(), kafka_message(event));
            channel_messages.insert(
                key(&event.wire_name),
                reference(&format!("#/components/messages/{message}")),
            );
        }
        anyhow::ensure!(
            !channel_messages.is_empty(),
            "no event type goes to the topic {}",
            spec.name
        );
        let message_refs: Vec<Value> = channel_messages
            .keys()
            .map(|name| reference(&format!("#/channels/{channel}/messages/{name}")))
            .collect();
        channels.insert(
            channel.clone(),
            json!({
                "address": spec.name,
                "title": base,
                "description": format!(
                    "Every committed event of the families that go to {base}, one message per \
                     event, keyed by the aggregate id (an aggregate's events keep their order \
                     within a partition), at least once: deduplicate by event_id. Each message \
                     is a CloudEvent 1.0 in the Kafka binding's binary mode (ce_* headers)."
                ),
                "servers": [reference("#/servers/kafka")],
                "messages": channel_messages,
                "bindings": { "kafka": {
                    "topic": spec.name,
                    "partitions": spec.partitions,
                    "replicas": brokers.kafka_replication_factor,
                    "topicConfiguration": {
                        "cleanup.policy": ["delete"],
                        "retention.ms": spec.retention_ms,
                    },
                    "bindingVersion": "0.5.0",
                }},
            }),
        );
        operations.insert(
            format!("mirror_{channel}"),
            json!({
                "action": "send",
                "channel": reference(&format!("#/channels/{channel}")),
                "title": format!("The Kafka mirror publishes to {base}"),
                "description": "The kafka-mirror role reads the log in commit order and publishes each event once acknowledged by the broker before its checkpoint moves (at least once).",
                "messages": message_refs,
            }),
        );
    }

    // The signed checkpoints of the log.
    let checkpoints = format!("{}ledger.checkpoints", layout.prefix);
    messages.insert(
        "kafka_checkpoint".to_string(),
        json!({
            "name": "checkpoint",
            "title": "A signed checkpoint of the log",
            "summary": "muckard-checkpoint/1: a digest over every stream's head at a commit position, signed with Ed25519 over its RFC 8785 form; what `muckard-replay verify --anchors kafka` checks the log against.",
            "contentType": "application/json",
            "payload": reference("schemas/kafka/checkpoint.schema.json"),
            "bindings": { "kafka": {
                "key": { "type": "string", "description": "The checkpoint's position, <transaction>.<global position>." },
                "bindingVersion": "0.5.0",
            }},
        }),
    );
    channels.insert(
        "ledger_checkpoints".to_string(),
        json!({
            "address": checkpoints,
            "title": "ledger.checkpoints",
            "description": "Signed checkpoints of the log, in order: one partition, never deleted by retention.",
            "servers": [reference("#/servers/kafka")],
            "messages": { "checkpoint": reference("#/components/messages/kafka_checkpoint") },
            "bindings": { "kafka": {
                "topic": checkpoints,
                "partitions": 1,
                "replicas": brokers.kafka_replication_factor,
                "topicConfiguration": { "cleanup.policy": ["delete"], "retention.ms": -1 },
                "bindingVersion": "0.5.0",
            }},
        }),
    );
    operations.insert(
        "sign_checkpoints".to_string(),
        json!({
            "action": "send",
            "channel": reference("#/channels/ledger_checkpoints"),
            "title": "The kafka-mirror role (every ANCHOR_INTERVAL_SECS) and `muckard anchor` publish checkpoints",
            "messages": [reference("#/channels/ledger_checkpoints/messages/checkpoint")],
        }),
    );

    // RabbitMQ: each queue, and its dead-letter queue.
    let (rabbit_host, vhost) = rabbit_host_and_vhost(&brokers.rabbitmq_url);
    for queue in Queue::ALL {
        let carried: Vec<&EventContract> = events
            .iter()
            .filter(|event| {
                messaging::messages::queue_for(&event.aggregate_type, &event.wire_name)
                    == Some(queue)
            })
            .collect();
        anyhow::ensure!(
            !carried.is_empty(),
            "no event type goes to the queue {}",
            queue.base_name()
        );
        let channel = key(queue.base_name());
        let mut channel_messages = Map::new();
        for event in &carried {
            let message = format!("amqp_{}", key(&event.wire_name));
            messages.insert(message.clone(), amqp_message(queue, event));
            channel_messages.insert(
                key(&event.wire_name),
                reference(&format!("#/components/messages/{message}")),
            );
        }
        let message_refs: Vec<Value> = channel_messages
            .keys()
            .map(|name| reference(&format!("#/channels/{channel}/messages/{name}")))
            .collect();
        let name = topology.name(queue);
        let dead_letters = topology.dead_letter_name(queue);
        let mut arguments = json!({
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": dead_letters,
        });
        if queue.has_priority() {
            arguments["x-max-priority"] = json!(messaging::topology::MAX_PRIORITY);
        }
        let is_command = Queue::COMMANDS.contains(&queue);
        channels.insert(
            channel.clone(),
            json!({
                "address": name,
                "title": queue.base_name(),
                "description": if is_command {
                    "Commands to the bot runner: published from the log by the rabbitmq-publisher role, or by a trusted external producer (who omits sequence and names user_id). Rejected messages are dead-lettered with the reason."
                } else {
                    "Status and alerts for real-time consumers, published from the log by the rabbitmq-publisher role with publisher confirms before its checkpoint moves (at least once: deduplicate by message_id)."
                },
                "servers": [reference("#/servers/rabbitmq")],
                "messages": channel_messages.clone(),
                "x-arguments": arguments,
                "bindings": { "amqp": queue_binding(&name, &vhost) },
            }),
        );
        channels.insert(
            format!("{channel}_dlq"),
            json!({
                "address": dead_letters,
                "title": format!("{}.dlq", queue.base_name()),
                "description": format!("What {name} rejected or let expire, kept for an operator."),
                "servers": [reference("#/servers/rabbitmq")],
                "messages": channel_messages,
                "bindings": { "amqp": queue_binding(&dead_letters, &vhost) },
            }),
        );
        let mut publishing = json!({
            "deliveryMode": 2,
            "timestamp": true,
            "ack": true,
            "bindingVersion": "0.3.0",
        });
        if queue.has_priority() {
            publishing["priority"] = json!(queue.message_priority());
        }
        operations.insert(
            format!("publish_{channel}"),
            json!({
                "action": "send",
                "channel": reference(&format!("#/channels/{channel}")),
                "title": format!("The rabbitmq-publisher role sends to {}", queue.base_name()),
                "description": "Persistent, with publisher confirms: the publisher's checkpoint moves only past confirmed messages.",
                "messages": message_refs.clone(),
                "bindings": { "amqp": publishing },
            }),
        );
        if is_command {
            operations.insert(
                format!("run_{channel}"),
                json!({
                    "action": "receive",
                    "channel": reference(&format!("#/channels/{channel}")),
                    "title": format!("The bot runner consumes {}", queue.base_name()),
                    "description": "Acknowledged once its effect is recorded in the log; a message that cannot be carried out is dead-lettered with the reason.",
                    "messages": message_refs,
                }),
            );
        }
    }

    let kafka_host = brokers
        .kafka_bootstrap
        .split(',')
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    let mut components_schemas = Map::new();
    components_schemas.insert("KafkaHeaders".to_string(), kafka_headers());
    components_schemas.insert("AmqpHeaders".to_string(), amqp_headers());
    Ok(json!({
        "asyncapi": "3.0.0",
        "id": "urn:muckard:ledger",
        "info": {
            "title": "Muckard ledger: topics and queues",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Every Kafka topic the ledger publishes its log to and every RabbitMQ queue it sends to and consumes, with the message schemas of schemas/ (JSON Schema 2020-12, referenced relative to this document). Generated by the service from the definitions its workers use, with this deployment's names (KAFKA_TOPIC_PREFIX, RABBITMQ_QUEUE_PREFIX, partitions). The REST API is described by /openapi.json.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "kafka": {
                "host": kafka_host,
                "protocol": "kafka",
                "description": "KAFKA_BOOTSTRAP_SERVERS",
            },
            "rabbitmq": {
                "host": rabbit_host,
                "protocol": "amqp",
                "protocolVersion": "0.9.1",
                "pathname": format!("/{vhost}"),
                "description": "RABBITMQ_URL (the vhost is the pathname)",
            },
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": messages,
            "schemas": components_schemas,
        },
    }))
}

fn queue_binding(name: &str, vhost: &str) -> Value {
    json!({
        "is": "queue",
        "queue": {
            "name": name,
            "durable": true,
            "exclusive": false,
            "autoDelete": false,
            "vhost": format!("/{vhost}"),
        },
        "bindingVersion": "0.3.0",
    })
}

/// `host:port` and the decoded vhost of an AMQP URL, without credentials.
fn rabbit_host_and_vhost(url: &str) -> (String, String) {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, rest)| rest);
    let (host, vhost) = rest.split_once('/').unwrap_or((rest, ""));
    let vhost = vhost.split('?').next().unwrap_or_default();
    let vhost = vhost.replace("%2f", "/").replace("%2F", "/");
    // An empty path is the default vhost, "/".
    let vhost = vhost.strip_prefix('/').unwrap_or(&vhost).to_string();
    (host.to_string(), vhost)
}

fn kafka_message(event: &EventContract) -> Value {
    let wire = &event.wire_name;
    json!({
        "name": wire,
        "title": wire,
        "summary": event.description,
        "contentType": "application/json",
        "headers": reference("#/components/schemas/KafkaHeaders"),
        "correlationId": {
            "description": "The command that caused the event.",
            "location": "$message.payload#/metadata/correlation_id",
        },
        "payload": {
            "description": format!("The envelope of a {wire} event (version {}); its payload is the event.", event.version),
            "allOf": [
                reference("schemas/kafka/envelope.schema.json"),
                {
                    "type": "object",
                    "properties": {
                        "event_type": { "const": wire },
                        "event_version": { "const": event.version },
                        "aggregate_type": { "const": event.aggregate_type },
                        "payload": reference(&format!("schemas/kafka/events/{wire}.schema.json")),
                    },
                },
            ],
        },
        "bindings": { "kafka": {
            "key": { "type": "string", "description": "The aggregate id (a Portfolio's is its user's id)." },
            "bindingVersion": "0.5.0",
        }},
        "x-cloudevents": {
            "specversion": kafka_mirror::envelope::CLOUDEVENTS_SPEC_VERSION,
            "type": wire,
            "source": kafka_mirror::envelope::cloudevents_source(&event.aggregate_type),
            "mode": "binary",
        },
    })
}

fn amqp_message(queue: Queue, event: &EventContract) -> Value {
    let wire = &event.wire_name;
    let payload = if Queue::COMMANDS.contains(&queue) {
        reference("schemas/amqp/bot-command.schema.json")
    } else {
        json!({
            "allOf": [
                reference("schemas/amqp/status.schema.json"),
                {
                    "type": "object",
                    "properties": {
                        "event_type": { "const": wire },
                        "event_version": { "const": event.version },
                        "aggregate_type": { "const": event.aggregate_type },
                        "payload": reference(&format!("schemas/kafka/events/{wire}.schema.json")),
                    },
                },
            ],
        })
    };
    let bindings = json!({
        "contentEncoding": "identity",
        "messageType": wire,
        "bindingVersion": "0.3.0",
    });
    json!({
        "name": wire,
        "title": format!("{} on {}", wire, queue.base_name()),
        "summary": event.description,
        "contentType": "application/json",
        "headers": reference("#/components/schemas/AmqpHeaders"),
        "correlationId": {
            "description": "The correlation id of the command that caused the event (AMQP property correlation_id).",
            "location": "$message.header#/correlation_id",
        },
        "payload": payload,
        "bindings": { "amqp": bindings },
    })
}

fn string_header(description: &str) -> Value {
    json!({ "type": "string", "description": description })
}

fn kafka_headers() -> Value {
    use kafka_mirror::envelope::header as h;
    let always = [
        (h::EVENT_ID, "The event id."),
        (h::EVENT_TYPE, "The wire name."),
        (h::EVENT_VERSION, "The payload's shape version."),
        (h::AGGREGATE_TYPE, "The aggregate type."),
        (h::AGGREGATE_ID, "The aggregate id (also the key)."),
        (
            h::SEQUENCE,
            "The event's number in its stream (decimal text).",
        ),
        (
            h::GLOBAL_POSITION,
            "The row's global position (decimal text).",
        ),
        (
            h::POSITION,
            "The commit-order position, <transaction>.<global position>.",
        ),
        (h::RECORDED_AT, "When the row was written (RFC 3339)."),
        (h::CONTENT_TYPE, "application/json"),
        (
            h::PREV_HASH,
            "The hash of the stream's previous event (64 hex digits).",
        ),
        (
            h::HASH,
            "The event's hash in its stream's chain (64 hex digits).",
        ),
        (h::CE_SPECVERSION, "CloudEvents: 1.0"),
        (h::CE_ID, "CloudEvents: the event id."),
        (h::CE_SOURCE, "CloudEvents: /muckard/<aggregate type>."),
        (h::CE_TYPE, "CloudEvents: the wire name."),
        (h::CE_TIME, "CloudEvents: when the row was written."),
        (h::CE_SUBJECT, "CloudEvents: the aggregate id."),
    ];
    let optional = [
        (
            h::TRACEPARENT,
            "W3C trace context of the command that caused the event.",
        ),
        (h::TRACESTATE, "W3C trace state, when the command had one."),
    ];
    let mut properties = Map::new();
    for (name, description) in always.iter().chain(optional.iter()) {
        properties.insert(name.to_string(), string_header(description));
    }
    json!({
        "type": "object",
        "description": "Kafka headers, UTF-8 text.",
        "required": always.iter().map(|(name, _)| *name).collect::<Vec<_>>(),
        "properties": properties,
    })
}

fn amqp_headers() -> Value {
    json!({
        "type": "object",
        "description": "AMQP application headers; the message also has the properties content_type application/json, delivery_mode 2, message_id (the event id), type (the wire name), correlation_id, timestamp and app_id muckard.",
        "required": ["x-event-type"],
        "properties": {
            "x-event-type": string_header("The wire name."),
            "traceparent": string_header("W3C trace context of the command that caused the event."),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rabbit_urls_lose_their_credentials() {
        assert_eq!(
            rabbit_host_and_vhost("amqp://guest:secret@127.0.0.1:5672/%2f"),
            ("127.0.0.1:5672".to_string(), "".to_string())
        );
        assert_eq!(
            rabbit_host_and_vhost("amqp://u:p@h:1/staging?heartbeat=10"),
            ("h:1".to_string(), "staging".to_string())
        );
        assert_eq!(
            rabbit_host_and_vhost("amqp://h:1"),
            ("h:1".to_string(), "".to_string())
        );
    }

    #[test]
    fn keys_are_identifiers() {
        assert_eq!(key("kraken.key.test.failed"), "kraken_key_test_failed");
    }
}
