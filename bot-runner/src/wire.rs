//! What a command message must be before the runner acts on it: its
//! strings free of control characters (they go into event metadata and
//! payloads, where PostgreSQL refuses a `\u0000` and the domain refuses the
//! rest), and its body a [`BotCommandMessage`].

use command_side::CommandMetadata;
use domain::Actor;
use lapin::types::AMQPValue;
use lapin::BasicProperties;
use messaging::BotCommandMessage;
use serde_json::Value;

/// A message fit to act on, with the metadata its command will carry.
#[derive(Debug, Clone)]
pub(crate) struct Inspected {
    pub message: BotCommandMessage,
    pub metadata: CommandMetadata,
}

/// Reads a delivery, or says why it must be dead-lettered (`malformed: …`,
/// naming the field).
pub(crate) fn inspect(properties: &BasicProperties, body: &[u8]) -> Result<Inspected, String> {
    let message_id = properties.message_id().as_ref().map(|id| id.to_string());
    let correlation_id = properties
        .correlation_id()
        .as_ref()
        .map(|id| id.to_string());
    for (field, text) in [
        ("message_id", message_id.as_deref()),
        ("correlation_id", correlation_id.as_deref()),
    ] {
        if text.is_some_and(has_control_character) {
            return Err(format!("malformed: {field} contains a control character"));
        }
    }
    check_trace_headers(properties)?;
    let body: Value =
        serde_json::from_slice(body).map_err(|error| format!("malformed: {error}"))?;
    if let Some(path) = control_character_in(&body, "") {
        return Err(format!(
            "malformed: body field `{path}` contains a control character"
        ));
    }
    let message: BotCommandMessage =
        serde_json::from_value(body).map_err(|error| format!("malformed: {error}"))?;
    let mut metadata = CommandMetadata::new("rabbitmq", Some(Actor::System));
    metadata.idempotency_key = message_id.clone();
    metadata.causation_id = message_id;
    metadata.correlation_id = correlation_id;
    metadata.traceparent = messaging::messages::traceparent_of(properties);
    Ok(Inspected { message, metadata })
}

fn has_control_character(text: &str) -> bool {
    text.chars().any(char::is_control)
}

/// The trace context headers go into metadata too.
fn check_trace_headers(properties: &BasicProperties) -> Result<(), String> {
    let Some(headers) = properties.headers().as_ref() else {
        return Ok(());
    };
    for name in ["traceparent", "tracestate"] {
        let text = match headers.inner().get(name) {
            Some(AMQPValue::LongString(value)) => {
                String::from_utf8_lossy(value.as_bytes()).into_owned()
            }
            Some(AMQPValue::ShortString(value)) => value.to_string(),
            _ => continue,
        };
        if has_control_character(&text) {
            return Err(format!(
                "malformed: header {name} contains a control character"
            ));
        }
    }
    Ok(())
}

/// The path of the first string (or key) in `value` with a control
/// character.
fn control_character_in(value: &Value, path: &str) -> Option<String> {
    match value {
        Value::String(text) if has_control_character(text) => Some(path.to_string()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(index, item)| control_character_in(item, &format!("{path}[{index}]"))),
        Value::Object(fields) => fields.iter().find_map(|(key, item)| {
            let inner = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            if has_control_character(key) {
                Some(inner.escape_default().to_string())
            } else {
                control_character_in(item, &inner)
            }
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapin::types::FieldTable;

    const BOT: &str = "5f8c9a52-61a5-4c4e-9d0e-0a3b8f0f6d2e";

    fn body(extra: &str) -> Vec<u8> {
        format!(r#"{{"bot_id": "{BOT}"{extra}}}"#).into_bytes()
    }

    #[test]
    fn a_clean_message_is_read_with_its_metadata() {
        let properties = BasicProperties::default()
            .with_message_id("m-1".into())
            .with_correlation_id("c-1".into());
        let inspected = inspect(&properties, &body(r#", "reason": "done""#)).unwrap();
        assert_eq!(inspected.message.reason.as_deref(), Some("done"));
        assert_eq!(inspected.metadata.idempotency_key.as_deref(), Some("m-1"));
        assert_eq!(inspected.metadata.correlation_id.as_deref(), Some("c-1"));
    }

    #[test]
    fn a_control_character_anywhere_is_refused_naming_the_field() {
        let nul = BasicProperties::default();
        let cases = [
            (
                nul.clone().with_message_id("a\u{0}b".into()),
                body(""),
                "malformed: message_id contains a control character",
            ),
            (
                nul.clone().with_correlation_id("\u{1b}[31m".into()),
                body(""),
                "malformed: correlation_id contains a control character",
            ),
            (
                nul.clone()
                    .with_headers(FieldTable::from(std::collections::BTreeMap::from([(
                        "traceparent".into(),
                        AMQPValue::LongString("00-\u{0}".into()),
                    )]))),
                body(""),
                "malformed: header traceparent contains a control character",
            ),
            (
                nul.clone(),
                body(r#", "reason": "stop\u0000now""#),
                "malformed: body field `reason` contains a control character",
            ),
            (
                nul.clone(),
                body(r#", "x\u0000": 1"#),
                "malformed: body field `x\\u{0}` contains a control character",
            ),
        ];
        for (properties, body, reason) in cases {
            assert_eq!(inspect(&properties, &body).unwrap_err(), reason);
        }
    }
}
