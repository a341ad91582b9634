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
    pub const AUTO_LEADER_REBALANCE_ENABLE: bool = true;
    pub const LEADER_IMBALANCE_CHECK_INTERVAL_SECONDS: u64 = 300;
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
}
