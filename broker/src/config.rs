//! Broker, topic and client settings under Kafka's own names.
//!
//! Settings arrive as string maps (from scenario files or real-mode flags)
//! and are read with typed getters that fall back to Kafka's defaults (see
//! ../shared/KAFKA-FACTS.md). Topic-level overrides beat broker defaults.

use std::collections::BTreeMap;

/// A bag of Kafka settings (`"min.insync.replicas" -> "2"`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Settings(pub BTreeMap<String, String>);

impl Settings {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn from_pairs<K: Into<String>, V: ToString>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        Settings(pairs.into_iter().map(|(k, v)| (k.into(), v.to_string())).collect())
    }

    pub fn set(&mut self, key: &str, value: impl ToString) {
        self.0.insert(key.to_string(), value.to_string());
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|s| s.as_str())
    }

    pub fn i64_or(&self, key: &str, default: i64) -> i64 {
        self.get(key).and_then(|v| v.trim().parse().ok()).unwrap_or(default)
    }

    pub fn u64_or(&self, key: &str, default: u64) -> u64 {
        self.get(key).and_then(|v| v.trim().parse().ok()).unwrap_or(default)
    }

    pub fn bool_or(&self, key: &str, default: bool) -> bool {
        match self.get(key).map(|v| v.trim().to_ascii_lowercase()) {
            Some(v) if v == "true" => true,
            Some(v) if v == "false" => false,
            _ => default,
        }
    }

    /// `self` overridden by `overrides` (topic config over broker defaults).
    pub fn overlaid(&self, overrides: &Settings) -> Settings {
        let mut out = self.clone();
        for (k, v) in &overrides.0 {
            out.0.insert(k.clone(), v.clone());
        }
        out
    }
}

/// Broker-level defaults (Kafka 3.x/4.x) for the settings the broker reads.
pub mod defaults {
    pub const MIN_INSYNC_REPLICAS: i64 = 1;
    pub const REPLICA_LAG_TIME_MAX_MS: u64 = 30_000;
    pub const REPLICA_FETCH_WAIT_MAX_MS: u64 = 500;
    pub const REPLICA_FETCH_MAX_BYTES: usize = 1_048_576;
    pub const BROKER_HEARTBEAT_INTERVAL_MS: u64 = 2_000;
    pub const BROKER_SESSION_TIMEOUT_MS: u64 = 9_000;
    pub const LOG_SEGMENT_BYTES: u64 = 1 << 30;
    pub const LOG_INDEX_INTERVAL_BYTES: u64 = 4096;
    pub const MESSAGE_MAX_BYTES: usize = 1_048_588;
    pub const UNCLEAN_LEADER_ELECTION_ENABLE: bool = false;
    pub const DEFAULT_REPLICATION_FACTOR: i64 = 1;
    pub const NUM_PARTITIONS: i64 = 1;
    /// `log.retention.hours` 168, as ms.
    pub const RETENTION_MS: i64 = 168 * 3_600_000;
    /// `log.cleaner.delete.retention.ms`: how long tombstones stay readable.
    pub const DELETE_RETENTION_MS: i64 = 86_400_000;
    pub const AUTO_CREATE_TOPICS_ENABLE: bool = true;
    /// `log.retention.check.interval.ms`.
    pub const RETENTION_CHECK_INTERVAL_MS: u64 = 300_000;
    /// `log.cleaner.backoff.ms`: pause between cleaner passes.
    pub const CLEANER_BACKOFF_MS: u64 = 15_000;
    pub const AUTO_LEADER_REBALANCE_ENABLE: bool = true;
    pub const LEADER_IMBALANCE_CHECK_INTERVAL_SECONDS: u64 = 300;
    /// `producer.id.expiration.ms`: idle idempotent producers are forgotten.
    pub const PRODUCER_ID_EXPIRATION_MS: i64 = crate::log::producer_state::PRODUCER_ID_EXPIRATION_MS_DEFAULT;
    /// `producer.id.expiration.check.interval.ms`.
    pub const PRODUCER_ID_EXPIRATION_CHECK_INTERVAL_MS: u64 = crate::log::producer_state::PRODUCER_ID_EXPIRATION_CHECK_INTERVAL_MS_DEFAULT;
}

/// Group coordinator settings under Kafka's names, with Kafka's defaults
/// (read by `coordinator::runtime::group_config`).
pub mod group_defaults {
    /// `group.initial.rebalance.delay.ms`: a new group's first rebalance
    /// waits this long for more members.
    pub const GROUP_INITIAL_REBALANCE_DELAY_MS: i64 = 3_000;
    /// `group.min.session.timeout.ms` / `group.max.session.timeout.ms`.
    pub const GROUP_MIN_SESSION_TIMEOUT_MS: i32 = 6_000;
    pub const GROUP_MAX_SESSION_TIMEOUT_MS: i32 = 1_800_000;
    /// `group.max.size` (Kafka: Int.MaxValue).
    pub const GROUP_MAX_SIZE: usize = i32::MAX as usize;
    /// `offsets.retention.minutes` (7 days).
    pub const OFFSETS_RETENTION_MINUTES: i64 = 10_080;
    /// `offsets.retention.check.interval.ms`.
    pub const OFFSETS_RETENTION_CHECK_INTERVAL_MS: u64 = 600_000;
    /// `offsets.commit.timeout.ms`: bound on waiting for an offsets or
    /// group record to be replicated.
    pub const OFFSETS_COMMIT_TIMEOUT_MS: u64 = 5_000;
    /// `offset.metadata.max.bytes`.
    pub const OFFSET_METADATA_MAX_BYTES: usize = 4_096;
}

/// What a topic config's value must look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigKind {
    /// A number in `[min, max]`.
    Long { min: i64, max: i64 },
    Bool,
    /// `cleanup.policy`: a comma list of `delete` and `compact`.
    CleanupPolicy,
    /// `compression.type`.
    Compression,
}

/// One topic-level config Kafka knows: its name, the broker setting that
/// supplies its default (Kafka's "synonym"), and the built-in default.
#[derive(Debug, Clone, Copy)]
pub struct TopicConfigDef {
    pub name: &'static str,
    pub broker_synonym: &'static str,
    pub default: &'static str,
    pub kind: ConfigKind,
}

const LONG_MAX: &str = "9223372036854775807";

/// The topic configs this broker understands (Kafka's `LogConfig`, the ones
/// that change broker behaviour here). Anything else is INVALID_CONFIG.
pub const TOPIC_CONFIGS: &[TopicConfigDef] = &[
    TopicConfigDef { name: "cleanup.policy", broker_synonym: "log.cleanup.policy", default: "delete", kind: ConfigKind::CleanupPolicy },
    TopicConfigDef { name: "compression.type", broker_synonym: "compression.type", default: "producer", kind: ConfigKind::Compression },
    TopicConfigDef { name: "delete.retention.ms", broker_synonym: "log.cleaner.delete.retention.ms", default: "86400000", kind: ConfigKind::Long { min: 0, max: i64::MAX } },
    TopicConfigDef { name: "flush.messages", broker_synonym: "log.flush.interval.messages", default: LONG_MAX, kind: ConfigKind::Long { min: 1, max: i64::MAX } },
    TopicConfigDef { name: "flush.ms", broker_synonym: "log.flush.interval.ms", default: LONG_MAX, kind: ConfigKind::Long { min: 0, max: i64::MAX } },
    TopicConfigDef { name: "index.interval.bytes", broker_synonym: "log.index.interval.bytes", default: "4096", kind: ConfigKind::Long { min: 0, max: i32::MAX as i64 } },
    TopicConfigDef { name: "max.message.bytes", broker_synonym: "message.max.bytes", default: "1048588", kind: ConfigKind::Long { min: 0, max: i32::MAX as i64 } },
    TopicConfigDef { name: "min.insync.replicas", broker_synonym: "min.insync.replicas", default: "1", kind: ConfigKind::Long { min: 1, max: i32::MAX as i64 } },
    // Kafka has producer.id.expiration.ms as a broker setting only; ksim
    // also takes it per topic.
    TopicConfigDef { name: "producer.id.expiration.ms", broker_synonym: "producer.id.expiration.ms", default: "86400000", kind: ConfigKind::Long { min: 1, max: i32::MAX as i64 } },
    TopicConfigDef { name: "retention.bytes", broker_synonym: "log.retention.bytes", default: "-1", kind: ConfigKind::Long { min: i64::MIN, max: i64::MAX } },
    TopicConfigDef { name: "retention.ms", broker_synonym: "log.retention.ms", default: "604800000", kind: ConfigKind::Long { min: -1, max: i64::MAX } },
    // Kafka's minimum segment size is 14 bytes (one empty v2 batch would not fit).
    TopicConfigDef { name: "segment.bytes", broker_synonym: "log.segment.bytes", default: "1073741824", kind: ConfigKind::Long { min: 14, max: i32::MAX as i64 } },
    TopicConfigDef { name: "unclean.leader.election.enable", broker_synonym: "unclean.leader.election.enable", default: "false", kind: ConfigKind::Bool },
];

/// The definition of topic config `name`, if Kafka has one we serve.
pub fn topic_config_def(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// Checks one topic config override (Kafka answers INVALID_CONFIG otherwise).
pub fn validate_topic_config(name: &str, value: &str) -> Result<(), String> {
    let def = topic_config_def(name).ok_or_else(|| format!("unknown topic config {name}"))?;
    let v = value.trim();
    match def.kind {
        ConfigKind::Long { min, max } => match v.parse::<i64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(()),
            Ok(n) => Err(format!("{name}={n} outside [{min}, {max}]")),
            Err(_) => Err(format!("{name}={value:?} is not a number")),
        },
        ConfigKind::Bool => match v.to_ascii_lowercase().as_str() {
            "true" | "false" => Ok(()),
            _ => Err(format!("{name}={value:?} is not a boolean")),
        },
        ConfigKind::CleanupPolicy => {
            let parts: Vec<&str> = v.split(',').map(str::trim).collect();
            if parts.iter().all(|p| *p == "delete" || *p == "compact") {
                Ok(())
            } else {
                Err(format!("{name}={value:?}: expected delete and/or compact"))
            }
        }
        ConfigKind::Compression => match v {
            "producer" | "uncompressed" | "gzip" | "snappy" | "lz4" | "zstd" => Ok(()),
            _ => Err(format!("{name}={value:?}: expected producer, uncompressed, gzip, snappy, lz4 or zstd")),
        },
    }
}

/// Checks a whole set of topic overrides.
pub fn validate_topic_configs(configs: &Settings) -> Result<(), String> {
    configs.0.iter().try_for_each(|(k, v)| validate_topic_config(k, v))
}

/// Where a described config value comes from (Kafka's DescribeConfigs
/// `config_source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    TopicConfig = 1,
    StaticBrokerConfig = 4,
    DefaultConfig = 5,
}

/// The effective value of topic config `def` and its source: the topic's
/// override, else the broker's static setting, else Kafka's default.
pub fn describe_topic_config(def: &TopicConfigDef, broker: &Settings, topic: &Settings) -> (String, ConfigSource) {
    if let Some(v) = topic.get(def.name) {
        return (v.to_string(), ConfigSource::TopicConfig);
    }
    if def.name == "retention.ms" {
        if let Some(ms) = broker_retention_ms(broker) {
            return (ms.to_string(), ConfigSource::StaticBrokerConfig);
        }
    }
    if let Some(v) = broker.get(def.broker_synonym) {
        return (v.to_string(), ConfigSource::StaticBrokerConfig);
    }
    (def.default.to_string(), ConfigSource::DefaultConfig)
}

/// The broker's retention in ms: `log.retention.ms`, else `.minutes`, else
/// `.hours` (Kafka's precedence); None when none is set.
fn broker_retention_ms(broker: &Settings) -> Option<i64> {
    let num = |k: &str| broker.get(k).and_then(|v| v.trim().parse::<i64>().ok());
    num("log.retention.ms")
        .or_else(|| num("log.retention.minutes").map(|m| m.saturating_mul(60_000)))
        .or_else(|| num("log.retention.hours").map(|h| h.saturating_mul(3_600_000)))
}

/// Which records a topic's log discards (`cleanup.policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CleanupPolicy {
    /// Whole old segments are deleted by retention.ms / retention.bytes.
    pub delete: bool,
    /// Closed segments are compacted to the latest record per key.
    pub compact: bool,
}

/// Settings the replication path reads, resolved once per topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSettings {
    pub min_insync_replicas: i64,
    pub unclean_leader_election_enable: bool,
    pub segment_bytes: u64,
    pub flush_messages: Option<u64>,
    pub flush_ms: Option<u64>,
    pub max_message_bytes: usize,
    /// `retention.ms`: None = keep forever (-1).
    pub retention_ms: Option<i64>,
    /// `retention.bytes` per partition: None = unlimited (negative).
    pub retention_bytes: Option<i64>,
    pub cleanup_policy: CleanupPolicy,
    /// `compression.type`: `producer` keeps the producer's batches as sent;
    /// otherwise the leader recompresses to this codec.
    pub compression_type: String,
    /// `delete.retention.ms`: tombstones older than this are compacted away.
    pub delete_retention_ms: i64,
    pub index_interval_bytes: u64,
    /// `producer.id.expiration.ms`: a producer idle this long (by its last
    /// batch's max timestamp) loses its state on this partition.
    pub producer_id_expiration_ms: i64,
}

impl TopicSettings {
    /// Resolves topic settings: topic-level names first, then the broker's
    /// (`log.segment.bytes` vs `segment.bytes`, as Kafka names them).
    pub fn resolve(broker: &Settings, topic: &Settings) -> Self {
        let pick_u64 = |topic_key: &str, broker_key: &str| {
            topic
                .get(topic_key)
                .and_then(|v| v.parse().ok())
                .or_else(|| broker.get(broker_key).and_then(|v| v.parse().ok()))
        };
        let pick_i64 = |topic_key: &str, broker_key: &str| {
            topic
                .get(topic_key)
                .and_then(|v| v.trim().parse::<i64>().ok())
                .or_else(|| broker.get(broker_key).and_then(|v| v.trim().parse().ok()))
        };
        TopicSettings {
            min_insync_replicas: topic.i64_or(
                "min.insync.replicas",
                broker.i64_or("min.insync.replicas", defaults::MIN_INSYNC_REPLICAS),
            ),
            unclean_leader_election_enable: topic.bool_or(
                "unclean.leader.election.enable",
                broker.bool_or(
                    "unclean.leader.election.enable",
                    defaults::UNCLEAN_LEADER_ELECTION_ENABLE,
                ),
            ),
            segment_bytes: pick_u64("segment.bytes", "log.segment.bytes")
                .unwrap_or(defaults::LOG_SEGMENT_BYTES),
            flush_messages: pick_u64("flush.messages", "log.flush.interval.messages"),
            flush_ms: pick_u64("flush.ms", "log.flush.interval.ms"),
            max_message_bytes: pick_u64("max.message.bytes", "message.max.bytes")
                .map(|v| v as usize)
                .unwrap_or(defaults::MESSAGE_MAX_BYTES),
            retention_ms: {
                let ms = topic
                    .get("retention.ms")
                    .and_then(|v| v.trim().parse::<i64>().ok())
                    .or_else(|| broker_retention_ms(broker))
                    .unwrap_or(defaults::RETENTION_MS);
                (ms >= 0).then_some(ms)
            },
            retention_bytes: pick_i64("retention.bytes", "log.retention.bytes").filter(|b| *b >= 0),
            cleanup_policy: {
                let v = topic.get("cleanup.policy").or_else(|| broker.get("log.cleanup.policy")).unwrap_or("delete");
                let parts: Vec<&str> = v.split(',').map(str::trim).collect();
                CleanupPolicy { delete: parts.contains(&"delete"), compact: parts.contains(&"compact") }
            },
            compression_type: topic
                .get("compression.type")
                .or_else(|| broker.get("compression.type"))
                .unwrap_or("producer")
                .trim()
                .to_string(),
            delete_retention_ms: pick_i64("delete.retention.ms", "log.cleaner.delete.retention.ms")
                .unwrap_or(defaults::DELETE_RETENTION_MS),
            index_interval_bytes: pick_u64("index.interval.bytes", "log.index.interval.bytes")
                .unwrap_or(defaults::LOG_INDEX_INTERVAL_BYTES),
            producer_id_expiration_ms: pick_i64("producer.id.expiration.ms", "producer.id.expiration.ms")
                .unwrap_or(defaults::PRODUCER_ID_EXPIRATION_MS),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_override_beats_broker_default() {
        let broker = Settings::from_pairs([("min.insync.replicas", "2"), ("log.flush.interval.messages", "10")]);
        let topic = Settings::from_pairs([("min.insync.replicas", "1"), ("flush.messages", "1")]);
        let s = TopicSettings::resolve(&broker, &topic);
        assert_eq!(s.min_insync_replicas, 1);
        assert_eq!(s.flush_messages, Some(1));
        let s = TopicSettings::resolve(&broker, &Settings::new());
        assert_eq!(s.min_insync_replicas, 2);
        assert_eq!(s.flush_messages, Some(10));
        assert!(!s.unclean_leader_election_enable);
    }

    #[test]
    fn retention_and_policy_resolve_like_kafka() {
        // Kafka docs (log.retention.ms > .minutes > .hours; -1 = unlimited).
        let s = TopicSettings::resolve(&Settings::from_pairs([("log.retention.hours", "1")]), &Settings::new());
        assert_eq!(s.retention_ms, Some(3_600_000));
        let s = TopicSettings::resolve(&Settings::new(), &Settings::from_pairs([("retention.ms", "-1"), ("cleanup.policy", "compact,delete")]));
        assert_eq!(s.retention_ms, None);
        assert_eq!(s.retention_bytes, None);
        assert_eq!(s.cleanup_policy, CleanupPolicy { delete: true, compact: true });
        assert_eq!(s.compression_type, "producer");
        assert_eq!(s.delete_retention_ms, 86_400_000);
    }

    #[test]
    fn invalid_topic_configs_are_rejected() {
        assert!(validate_topic_config("retention.ms", "100").is_ok());
        assert!(validate_topic_config("retention.ms", "-2").is_err());
        assert!(validate_topic_config("no.such.config", "1").is_err());
        assert!(validate_topic_config("cleanup.policy", "compact,delete").is_ok());
        assert!(validate_topic_config("cleanup.policy", "forever").is_err());
        assert!(validate_topic_config("compression.type", "brotli").is_err());
        assert!(validate_topic_config("min.insync.replicas", "0").is_err());
        assert!(validate_topic_config("unclean.leader.election.enable", "yes").is_err());
    }

    #[test]
    fn describe_reports_the_source_as_kafka_does() {
        let broker = Settings::from_pairs([("log.retention.ms", "1000")]);
        let topic = Settings::from_pairs([("max.message.bytes", "100")]);
        let def = |n| topic_config_def(n).unwrap();
        assert_eq!(describe_topic_config(def("max.message.bytes"), &broker, &topic), ("100".into(), ConfigSource::TopicConfig));
        assert_eq!(describe_topic_config(def("retention.ms"), &broker, &topic), ("1000".into(), ConfigSource::StaticBrokerConfig));
        assert_eq!(describe_topic_config(def("cleanup.policy"), &broker, &topic), ("delete".into(), ConfigSource::DefaultConfig));
    }
}
