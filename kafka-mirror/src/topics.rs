//! Which topic each event goes to, and keeping the topics in shape.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, NewPartitions, NewTopic, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::client::ClientContext;
use rdkafka::types::RDKafkaErrorCode;

use crate::KafkaError;

/// The five event topics and their shape; names carry an optional prefix
/// (e.g. per environment, or per test).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicLayout {
    pub prefix: String,
    pub user_partitions: i32,
    pub onboarding_partitions: i32,
    pub kraken_partitions: i32,
    pub trading_partitions: i32,
    pub support_partitions: i32,
    pub retention_ms: i64,
}

/// One topic as it should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    pub retention_ms: i64,
}

impl TopicLayout {
    /// The topic an event type is published to: `user.*` to `user.events`,
    /// `onboarding.*` to `onboarding.events`, `kraken.*` to `kraken.events`,
    /// `bot.*` and `trade.*` to `trading.events`, `support.*` to
    /// `support.events`; `None` for a type outside every family.
    pub fn topic_for(&self, event_type: &str) -> Option<String> {
        let family = event_type.split('.').next()?;
        let base = match family {
            // Notifications are told to users: they travel with the
            // users' events.
            "user" | "notification" => "user.events",
            "onboarding" => "onboarding.events",
            "kraken" => "kraken.events",
            "bot" | "trade" => "trading.events",
            "support" => "support.events",
            _ => return None,
        };
        Some(format!("{}{base}", self.prefix))
    }

    pub fn specs(&self) -> Vec<TopicSpec> {
        [
            ("user.events", self.user_partitions),
            ("onboarding.events", self.onboarding_partitions),
            ("kraken.events", self.kraken_partitions),
            ("trading.events", self.trading_partitions),
            ("support.events", self.support_partitions),
        ]
        .into_iter()
        .map(|(base, partitions)| TopicSpec {
            name: format!("{}{base}", self.prefix),
            partitions,
            retention_ms: self.retention_ms,
        })
        .collect()
    }
}

/// What provisioning found and did to one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicChange {
    Created {
        topic: String,
        partitions: i32,
    },
    /// `retention.ms` or `cleanup.policy` differed and was set.
    ConfigCorrected {
        topic: String,
        name: String,
        from: Option<String>,
        to: String,
    },
    PartitionsAdded {
        topic: String,
        from: i32,
        to: i32,
    },
    /// Kafka cannot take partitions away; the topic keeps its count.
    MorePartitionsThanConfigured {
        topic: String,
        has: i32,
        configured: i32,
    },
    /// A correction the broker refused; the topic is usable as it is, so
    /// the mirror runs, but an operator should look.
    NotCorrected {
        topic: String,
        what: String,
        reason: String,
    },
}

impl std::fmt::Display for TopicChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TopicChange::Created { topic, partitions } => {
                write!(f, "created {topic} with {partitions} partitions")
            }
            TopicChange::ConfigCorrected {
                topic,
                name,
                from,
                to,
            } => write!(
                f,
                "{topic}: {name} was {}, set to {to}",
                from.as_deref().unwrap_or("unset")
            ),
            TopicChange::PartitionsAdded { topic, from, to } => {
                write!(f, "{topic}: partitions raised from {from} to {to}")
            }
            TopicChange::MorePartitionsThanConfigured {
                topic,
                has,
                configured,
            } => write!(
                f,
                "{topic} has {has} partitions, more than the {configured} configured; left as is"
            ),
            TopicChange::NotCorrected {
                topic,
                what,
                reason,
            } => write!(f, "{topic}: could not correct {what}: {reason}"),
        }
    }
}

/// The settings every topic must have.
fn wanted_configs(spec: &TopicSpec) -> [(&'static str, String); 2] {
    [
        ("retention.ms", spec.retention_ms.to_string()),
        ("cleanup.policy", "delete".to_string()),
    ]
}

/// Makes every topic in `specs` exist with its partition count, retention
/// and cleanup policy, and reports what it changed. Idempotent: a second
/// run on a correct cluster changes nothing. Fails only when a topic can
/// neither be found nor created (the broker is unreachable, say).
pub async fn provision<C: ClientContext + 'static>(
    admin: &Arc<AdminClient<C>>,
    specs: &[TopicSpec],
    replication_factor: i32,
    timeout: Duration,
) -> Result<Vec<TopicChange>, KafkaError> {
    let options = AdminOptions::new().operation_timeout(Some(timeout));
    let existing = partition_counts(admin, timeout).await?;
    let mut changes =
        create_missing_topics(admin, specs, &existing, replication_factor, &options).await?;
    // Counted again so that the topics just created, here or by another
    // instance, are checked like the others.
    let existing = partition_counts(admin, timeout).await?;
    changes.extend(correct_partition_counts(admin, specs, &existing, &options).await?);
    changes.extend(correct_configs(admin, specs, &options).await?);
    Ok(changes)
}

/// Creates the topics of `specs` that `existing` lacks, with their
/// settings; one created meanwhile by another instance is not an error.
async fn create_missing_topics<C: ClientContext + 'static>(
    admin: &Arc<AdminClient<C>>,
    specs: &[TopicSpec],
    existing: &HashMap<String, i32>,
    replication_factor: i32,
    options: &AdminOptions,
) -> Result<Vec<TopicChange>, KafkaError> {
    let mut changes = Vec::new();
    let missing: Vec<&TopicSpec> = specs
        .iter()
        .filter(|s| !existing.contains_key(&s.name))
        .collect();
    if missing.is_empty() {
        return Ok(changes);
    }
    let configs: Vec<[(&str, String); 2]> = missing.iter().map(|s| wanted_configs(s)).collect();
    let new_topics: Vec<NewTopic> = missing
        .iter()
        .zip(&configs)
        .map(|(spec, configs)| {
            configs.iter().fold(
                NewTopic::new(
                    &spec.name,
                    spec.partitions,
                    TopicReplication::Fixed(replication_factor),
                ),
                |topic, (name, value)| topic.set(name, value),
            )
        })
        .collect();
    for (result, spec) in admin
        .create_topics(new_topics.iter(), options)
        .await?
        .into_iter()
        .zip(&missing)
    {
        match result {
            Ok(_) => changes.push(TopicChange::Created {
                topic: spec.name.clone(),
                partitions: spec.partitions,
            }),
            // Another instance created it meanwhile; checked by the caller.
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(KafkaError::Topic {
                    topic,
                    reason: format!("cannot create it: {code}"),
                })
            }
        }
    }
    Ok(changes)
}

/// Raises each topic to its configured partition count; one with more
/// partitions is reported and left alone. Fails when a topic is missing.
async fn correct_partition_counts<C: ClientContext + 'static>(
    admin: &Arc<AdminClient<C>>,
    specs: &[TopicSpec],
    existing: &HashMap<String, i32>,
    options: &AdminOptions,
) -> Result<Vec<TopicChange>, KafkaError> {
    let mut changes = Vec::new();
    for spec in specs {
        let Some(&has) = existing.get(&spec.name) else {
            return Err(KafkaError::Topic {
                topic: spec.name.clone(),
                reason: "missing after creation".to_string(),
            });
        };
        if has < spec.partitions {
            changes.extend(raise_partitions(admin, spec, has, options).await);
        } else if has > spec.partitions {
            changes.push(TopicChange::MorePartitionsThanConfigured {
                topic: spec.name.clone(),
                has,
                configured: spec.partitions,
            });
        }
    }
    Ok(changes)
}

async fn raise_partitions<C: ClientContext + 'static>(
    admin: &Arc<AdminClient<C>>,
    spec: &TopicSpec,
    has: i32,
    options: &AdminOptions,
) -> Option<TopicChange> {
    let raise = NewPartitions::new(&spec.name, spec.partitions as usize);
    // A broker that refuses the request (or lacks the API) leaves
    // a usable topic: reported, not fatal.
    let refused = |reason: String| TopicChange::NotCorrected {
        topic: spec.name.clone(),
        what: format!("partitions ({has} < {})", spec.partitions),
        reason,
    };
    match admin.create_partitions([&raise], options).await {
        Ok(mut results) => match results.pop() {
            Some(Ok(_)) => Some(TopicChange::PartitionsAdded {
                topic: spec.name.clone(),
                from: has,
                to: spec.partitions,
            }),
            Some(Err((_, code))) => Some(refused(code.to_string())),
            None => None,
        },
        Err(error) => Some(refused(error.to_string())),
    }
}

/// Sets `retention.ms` and `cleanup.policy` on every topic where they
/// differ from `wanted_configs`.
async fn correct_configs<C: ClientContext + 'static>(
    admin: &Arc<AdminClient<C>>,
    specs: &[TopicSpec],
    options: &AdminOptions,
) -> Result<Vec<TopicChange>, KafkaError> {
    let current = describe(admin, specs, options).await?;
    let mut changes = Vec::new();
    for spec in specs {
        let values = current.get(&spec.name).cloned().unwrap_or_default();
        changes.extend(correct_topic_config(admin, spec, &values, options).await);
    }
    Ok(changes)
}

/// One `ConfigCorrected` per setting that differed from `values` and was
/// set, or one `NotCorrected` when the broker refused.
async fn correct_topic_config<C: ClientContext + 'static>(
    admin: &Arc<AdminClient<C>>,
    spec: &TopicSpec,
    values: &HashMap<String, String>,
    options: &AdminOptions,
) -> Vec<TopicChange> {
    let wanted = wanted_configs(spec);
    let differing: Vec<(&str, Option<String>, String)> = wanted
        .iter()
        .filter(|(name, value)| values.get(*name) != Some(value))
        .map(|(name, value)| (*name, values.get(*name).cloned(), value.clone()))
        .collect();
    if differing.is_empty() {
        return Vec::new();
    }
    // AlterConfigs replaces the topic's whole dynamic configuration, so
    // send every setting the mirror owns, not only the wrong one.
    let alter = wanted.iter().fold(
        AlterConfig::new(ResourceSpecifier::Topic(&spec.name)),
        |alter, (name, value)| alter.set(name, value),
    );
    let refused = |reason: String| TopicChange::NotCorrected {
        topic: spec.name.clone(),
        what: differing
            .iter()
            .map(|(name, _, to)| format!("{name}={to}"))
            .collect::<Vec<_>>()
            .join(", "),
        reason,
    };
    let outcome = match admin.alter_configs([&alter], options).await {
        Ok(mut results) => results
            .pop()
            .map(|result| result.map_err(|(_, code)| code.to_string())),
        Err(error) => Some(Err(error.to_string())),
    };
    match outcome {
        Some(Ok(_)) => differing
            .into_iter()
            .map(|(name, from, to)| TopicChange::ConfigCorrected {
                topic: spec.name.clone(),
                name: name.to_string(),
                from,
                to,
            })
            .collect(),
        Some(Err(reason)) => vec![refused(reason)],
        None => Vec::new(),
    }
}

/// Every topic the cluster knows, with its partition count.
pub async fn partition_counts<C: ClientContext + 'static>(
    admin: &Arc<AdminClient<C>>,
    timeout: Duration,
) -> Result<HashMap<String, i32>, KafkaError> {
    let admin = Arc::clone(admin);
    // librdkafka's metadata call blocks its thread.
    let metadata = tokio::task::spawn_blocking(move || admin.inner().fetch_metadata(None, timeout))
        .await
        .map_err(|e| KafkaError::Other(format!("metadata task: {e}")))??;
    Ok(metadata
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .map(|t| (t.name().to_string(), t.partitions().len() as i32))
        .collect())
}

/// The current value of every config entry of each topic in `specs`.
pub async fn describe<C: ClientContext + 'static>(
    admin: &Arc<AdminClient<C>>,
    specs: &[TopicSpec],
    options: &AdminOptions,
) -> Result<HashMap<String, HashMap<String, String>>, KafkaError> {
    let resources: Vec<ResourceSpecifier> = specs
        .iter()
        .map(|s| ResourceSpecifier::Topic(&s.name))
        .collect();
    let mut described = HashMap::new();
    for (result, spec) in admin
        .describe_configs(resources.iter(), options)
        .await?
        .into_iter()
        .zip(specs)
    {
        let resource = result.map_err(|code| KafkaError::Topic {
            topic: spec.name.clone(),
            reason: format!("cannot describe its configuration: {code}"),
        })?;
        let values = resource
            .entries
            .into_iter()
            .filter_map(|entry| entry.value.map(|value| (entry.name, value)))
            .collect();
        described.insert(spec.name.clone(), values);
    }
    Ok(described)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(prefix: &str) -> TopicLayout {
        TopicLayout {
            prefix: prefix.to_string(),
            user_partitions: 3,
            onboarding_partitions: 1,
            kraken_partitions: 1,
            trading_partitions: 3,
            support_partitions: 1,
            retention_ms: 7_776_000_000,
        }
    }

    #[test]
    fn every_event_family_has_its_topic() {
        let layout = layout("");
        let cases = [
            ("user.created", "user.events"),
            ("user.logged_in", "user.events"),
            ("user.role_assigned", "user.events"),
            ("onboarding.completed", "onboarding.events"),
            ("kraken.key.connected", "kraken.events"),
            ("kraken.key.test.failed", "kraken.events"),
            ("bot.configured", "trading.events"),
            ("bot.trade.executed", "trading.events"),
            ("trade.executed", "trading.events"),
            ("support.ticket_opened", "support.events"),
            ("support.reply_added", "support.events"),
        ];
        for (event_type, topic) in cases {
            assert_eq!(
                layout.topic_for(event_type).as_deref(),
                Some(topic),
                "{event_type}"
            );
        }
        assert_eq!(layout.topic_for("gap.appended"), None);
        assert_eq!(layout.topic_for(""), None);
    }

    #[test]
    fn the_prefix_names_every_topic() {
        let layout = layout("staging.");
        assert_eq!(
            layout.topic_for("trade.executed").as_deref(),
            Some("staging.trading.events")
        );
        assert!(layout
            .specs()
            .iter()
            .all(|spec| spec.name.starts_with("staging.")));
    }
}
