//! Kafka settings, read once from the environment (see `.env.example`),
//! with defaults that run against the local broker.

use std::time::Duration;

use rdkafka::ClientConfig;

use crate::topics::TopicLayout;

/// 90 days, the retention DESIGN.md asks of every topic.
pub const NINETY_DAYS_MS: i64 = 90 * 24 * 60 * 60 * 1000;

#[derive(Clone)]
pub struct KafkaSettings {
    /// `KAFKA_BOOTSTRAP_SERVERS`, e.g. `127.0.0.1:9092`.
    pub bootstrap_servers: String,
    /// The topics, their partition counts and retention.
    pub layout: TopicLayout,
    /// `KAFKA_REPLICATION_FACTOR` for topics the service creates.
    pub replication_factor: i32,
    /// How long the producer keeps trying to deliver a message before the
    /// batch fails and is retried from the checkpoint.
    pub message_timeout: Duration,
    /// How long the producer waits to fill a request (`linger.ms`).
    pub linger: Duration,
    /// Events published per batch (one checkpoint move per batch).
    pub batch_size: i64,
    /// librdkafka properties passed through unchanged: security protocol,
    /// SASL, TLS and anything set in `KAFKA_CLIENT_PROPERTIES`.
    pub client_properties: Vec<(String, String)>,
}

/// Properties whose values never appear in logs.
const SENSITIVE: [&str; 4] = [
    "sasl.password",
    "ssl.key.password",
    "ssl.keystore.password",
    "sasl.oauthbearer.client.secret",
];

impl std::fmt::Debug for KafkaSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let properties: Vec<String> = self
            .client_properties
            .iter()
            .map(|(name, value)| {
                if SENSITIVE.contains(&name.as_str()) {
                    format!("{name}=[redacted]")
                } else {
                    format!("{name}={value}")
                }
            })
            .collect();
        f.debug_struct("KafkaSettings")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("layout", &self.layout)
            .field("replication_factor", &self.replication_factor)
            .field("message_timeout", &self.message_timeout)
            .field("linger", &self.linger)
            .field("batch_size", &self.batch_size)
            .field("client_properties", &properties)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{name}: {reason}")]
pub struct KafkaSettingsError {
    pub name: &'static str,
    pub reason: String,
}

/// The environment variables that map straight onto librdkafka properties.
const PASSED_THROUGH: [(&str, &str); 7] = [
    ("KAFKA_SECURITY_PROTOCOL", "security.protocol"),
    ("KAFKA_SASL_MECHANISM", "sasl.mechanism"),
    ("KAFKA_SASL_USERNAME", "sasl.username"),
    ("KAFKA_SASL_PASSWORD", "sasl.password"),
    ("KAFKA_SSL_CA_LOCATION", "ssl.ca.location"),
    ("KAFKA_SSL_CERTIFICATE_LOCATION", "ssl.certificate.location"),
    ("KAFKA_SSL_KEY_LOCATION", "ssl.key.location"),
];

impl Default for KafkaSettings {
    fn default() -> Self {
        Self::from_lookup(&|_| None).expect("the defaults are valid")
    }
}

impl KafkaSettings {
    /// Reads the settings through `lookup` (the environment, or a test's).
    /// Every environment variable [`KafkaSettings::from_lookup`] reads, in
    /// the order it reads them (what a command's `--help` lists).
    pub fn setting_names() -> Vec<String> {
        let asked = std::sync::Mutex::new(Vec::<String>::new());
        let _ = Self::from_lookup(&|name| {
            let mut asked = asked.lock().unwrap_or_else(|e| e.into_inner());
            if !asked.iter().any(|known| known == name) {
                asked.push(name.to_string());
            }
            None
        });
        asked.into_inner().unwrap_or_else(|e| e.into_inner())
    }

    pub fn from_lookup(
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<KafkaSettings, KafkaSettingsError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let number = |name: &'static str, default: i64, min: i64| -> Result<i64, _> {
            let Some(text) = get(name) else {
                return Ok(default);
            };
            match text.trim().parse::<i64>() {
                Ok(value) if value >= min => Ok(value),
                _ => Err(KafkaSettingsError {
                    name,
                    reason: format!("expected a whole number of at least {min}, got {text}"),
                }),
            }
        };
        let partitions = |name: &'static str, default: i64| -> Result<i32, _> {
            number(name, default, 1).and_then(|n| {
                i32::try_from(n).map_err(|_| KafkaSettingsError {
                    name,
                    reason: format!("{n} partitions is too many"),
                })
            })
        };
        let layout = TopicLayout {
            prefix: get("KAFKA_TOPIC_PREFIX").unwrap_or_default(),
            user_partitions: partitions("KAFKA_USER_EVENTS_PARTITIONS", 3)?,
            onboarding_partitions: partitions("KAFKA_ONBOARDING_EVENTS_PARTITIONS", 1)?,
            kraken_partitions: partitions("KAFKA_KRAKEN_EVENTS_PARTITIONS", 1)?,
            trading_partitions: partitions("KAFKA_TRADING_EVENTS_PARTITIONS", 3)?,
            support_partitions: partitions("KAFKA_SUPPORT_EVENTS_PARTITIONS", 1)?,
            retention_ms: number("KAFKA_RETENTION_MS", NINETY_DAYS_MS, 1)?,
        };
        let mut client_properties = Vec::new();
        for (variable, property) in PASSED_THROUGH {
            if let Some(value) = get(variable) {
                client_properties.push((property.to_string(), value));
            }
        }
        if let Some(extra) = get("KAFKA_CLIENT_PROPERTIES") {
            for item in extra.split(';').map(str::trim).filter(|i| !i.is_empty()) {
                let Some((name, value)) = item.split_once('=') else {
                    return Err(KafkaSettingsError {
                        name: "KAFKA_CLIENT_PROPERTIES",
                        reason: format!("expected name=value pairs separated by ';', got {item}"),
                    });
                };
                client_properties.push((name.trim().to_string(), value.trim().to_string()));
            }
        }
        let millis = |name: &'static str, default: i64, min: i64| {
            number(name, default, min).map(|n| Duration::from_millis(n as u64))
        };
        Ok(KafkaSettings {
            bootstrap_servers: get("KAFKA_BOOTSTRAP_SERVERS")
                .unwrap_or_else(|| "127.0.0.1:9092".to_string()),
            layout,
            replication_factor: number("KAFKA_REPLICATION_FACTOR", 1, 1)? as i32,
            message_timeout: millis("KAFKA_MESSAGE_TIMEOUT_MS", 30_000, 1_000)?,
            linger: millis("KAFKA_LINGER_MS", 5, 0)?,
            batch_size: number("KAFKA_MIRROR_BATCH_SIZE", 1_000, 1)?.min(50_000),
            client_properties,
        })
    }

    /// The configuration shared by every client: where the brokers are and
    /// how to reach them.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap_servers)
            .set("client.id", "muckard-ledger");
        for (name, value) in &self.client_properties {
            config.set(name, value);
        }
        config
    }

    /// The mirror's producer: idempotent, every in-sync replica
    /// acknowledges, ordered per partition.
    pub fn producer_config(&self) -> ClientConfig {
        let mut config = self.client_config();
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("max.in.flight.requests.per.connection", "5")
            .set(
                "message.timeout.ms",
                self.message_timeout.as_millis().to_string(),
            )
            .set("linger.ms", self.linger.as_millis().to_string())
            .set("partitioner", "murmur2_random");
        config
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<KafkaSettings, KafkaSettingsError> {
        let env: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        KafkaSettings::from_lookup(&|name| env.get(name).cloned())
    }

    #[test]
    fn defaults_match_the_design() {
        let settings = settings(&[]).unwrap();
        assert_eq!(settings.bootstrap_servers, "127.0.0.1:9092");
        assert_eq!(settings.layout.retention_ms, 7_776_000_000);
        let specs = settings.layout.specs();
        let counts: Vec<(&str, i32)> = specs
            .iter()
            .map(|s| (s.name.as_str(), s.partitions))
            .collect();
        assert_eq!(
            counts,
            [
                ("user.events", 3),
                ("onboarding.events", 1),
                ("kraken.events", 1),
                ("trading.events", 3),
                ("support.events", 1)
            ]
        );
    }

    #[test]
    fn security_settings_pass_through_and_the_password_never_prints() {
        let settings = settings(&[
            ("KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
            ("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"),
            ("KAFKA_SASL_USERNAME", "ledger"),
            ("KAFKA_SASL_PASSWORD", "hunter2-very-secret"),
            (
                "KAFKA_CLIENT_PROPERTIES",
                "ssl.endpoint.identification.algorithm=https; socket.keepalive.enable=true",
            ),
        ])
        .unwrap();
        let config = settings.producer_config();
        assert_eq!(config.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(config.get("sasl.password"), Some("hunter2-very-secret"));
        assert_eq!(config.get("socket.keepalive.enable"), Some("true"));
        assert_eq!(config.get("enable.idempotence"), Some("true"));
        assert_eq!(config.get("acks"), Some("all"));
        let printed = format!("{settings:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("sasl.password=[redacted]"));
    }

    #[test]
    fn bad_values_name_the_variable() {
        let error = settings(&[("KAFKA_TRADING_EVENTS_PARTITIONS", "0")]).unwrap_err();
        assert_eq!(error.name, "KAFKA_TRADING_EVENTS_PARTITIONS");
        let error = settings(&[("KAFKA_CLIENT_PROPERTIES", "nonsense")]).unwrap_err();
        assert_eq!(error.name, "KAFKA_CLIENT_PROPERTIES");
    }
}
