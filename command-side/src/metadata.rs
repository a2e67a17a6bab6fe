//! The metadata stored with every event of a command.

use std::collections::HashMap;

use domain::Actor;
use uuid::Uuid;

/// Who asked for a command and how to trace it. Every field ends up in the
/// `metadata` column of each event the command appends.
#[derive(Debug, Clone, Default)]
pub struct CommandMetadata {
    pub command_id: Uuid,
    pub command_type: String,
    pub idempotency_key: Option<String>,
    pub user_id: Option<Uuid>,
    pub role: Option<String>,
    pub correlation_id: Option<String>,
    pub causation_id: Option<String>,
    pub request_id: Option<String>,
    pub traceparent: Option<String>,
    pub source: String,
}

impl CommandMetadata {
    /// Metadata for a command from `source` (e.g. `rest`, `cli`) by `actor`.
    pub fn new(source: &str, actor: Option<Actor>) -> Self {
        let (user_id, role) = match actor {
            Some(Actor::User { user_id, role }) => (Some(user_id), Some(role.as_str().to_string())),
            Some(Actor::System) => (None, Some("system".to_string())),
            None => (None, None),
        };
        Self {
            command_id: Uuid::new_v4(),
            source: source.to_string(),
            user_id,
            role,
            ..Self::default()
        }
    }

    pub fn with_command_type(mut self, command_type: &str) -> Self {
        self.command_type = command_type.to_string();
        self
    }

    /// The map cqrs-es stores. A missing correlation id defaults to the
    /// command id, a missing causation id to the request id: every event
    /// can be traced to what caused it.
    pub fn to_map(&self) -> HashMap<String, String> {
        let mut map = HashMap::new();
        map.insert("command_id".to_string(), self.command_id.to_string());
        map.insert("command_type".to_string(), self.command_type.clone());
        map.insert("source".to_string(), self.source.clone());
        let correlation = self
            .correlation_id
            .clone()
            .unwrap_or_else(|| self.command_id.to_string());
        map.insert("correlation_id".to_string(), correlation);
        let causation = self
            .causation_id
            .clone()
            .or_else(|| self.request_id.clone())
            .unwrap_or_else(|| self.command_id.to_string());
        map.insert("causation_id".to_string(), causation);
        let optional = [
            ("idempotency_key", self.idempotency_key.clone()),
            ("user_id", self.user_id.map(|id| id.to_string())),
            ("role", self.role.clone()),
            ("request_id", self.request_id.clone()),
            ("traceparent", self.traceparent.clone()),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                map.insert(name.to_string(), value);
            }
        }
        map
    }
}
