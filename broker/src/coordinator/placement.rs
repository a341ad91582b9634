//! Coordinator placement as Kafka computes it (GroupMetadataManager /
//! TransactionStateManager `partitionFor`), and the internal topics that
//! hold coordinator state, created on first lookup as Kafka's
//! AutoTopicCreationManager does.

use crate::config::Settings;
use std::collections::BTreeMap;

/// The compacted topic holding committed offsets and group metadata.
pub const GROUP_METADATA_TOPIC: &str = "__consumer_offsets";
/// The compacted topic holding transaction state.
pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";

/// `offsets.topic.num.partitions` / `transaction.state.log.num.partitions`.
pub const INTERNAL_TOPIC_PARTITIONS_DEFAULT: i64 = 50;
/// `offsets.topic.replication.factor` / `transaction.state.log.replication.factor`.
pub const INTERNAL_TOPIC_REPLICATION_FACTOR_DEFAULT: i64 = 3;
/// `offsets.topic.segment.bytes` / `transaction.state.log.segment.bytes`.
pub const INTERNAL_TOPIC_SEGMENT_BYTES_DEFAULT: i64 = 104_857_600;
/// `transaction.state.log.min.isr`.
pub const TRANSACTION_STATE_MIN_ISR_DEFAULT: i64 = 2;

/// Java's `String.hashCode`: `s[0]*31^(n-1) + … + s[n-1]` over UTF-16 code
/// units, in wrapping 32-bit arithmetic.
pub fn java_string_hash_code(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, unit| h.wrapping_mul(31).wrapping_add(i32::from(unit)))
}

/// Kafka's `Utils.abs`: `abs(Integer.MIN_VALUE)` is 0, not negative.
pub fn kafka_abs(n: i32) -> i32 {
    if n == i32::MIN {
        0
    } else {
        n.abs()
    }
}

/// The internal-topic partition that coordinates `key`.
pub fn partition_for(key: &str, partitions: i32) -> i32 {
    assert!(partitions > 0, "coordinator topic with {partitions} partitions");
    let p = kafka_abs(java_string_hash_code(key)) % partitions;
    debug_assert!((0..partitions).contains(&p));
    p
}

/// FindCoordinator's `key_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoordinatorType {
    Group,
    Transaction,
}

impl CoordinatorType {
    /// `None` for key types this broker does not coordinate (KIP-932 share
    /// groups are 2).
    pub fn from_key_type(key_type: i8) -> Option<Self> {
        match key_type {
            0 => Some(Self::Group),
            1 => Some(Self::Transaction),
            _ => None,
        }
    }

    pub fn topic(self) -> &'static str {
        match self {
            Self::Group => GROUP_METADATA_TOPIC,
            Self::Transaction => TRANSACTION_STATE_TOPIC,
        }
    }

    fn setting_prefix(self) -> &'static str {
        match self {
            Self::Group => "offsets.topic",
            Self::Transaction => "transaction.state.log",
        }
    }

    /// The internal topic's partition count under `settings` (broker config).
    pub fn partitions(self, settings: &Settings) -> i32 {
        let n = settings.i64_or(&format!("{}.num.partitions", self.setting_prefix()), INTERNAL_TOPIC_PARTITIONS_DEFAULT);
        n.clamp(1, i64::from(i32::MAX)) as i32
    }

    /// The replication factor the internal topic is created with. As in
    /// Kafka, it is not lowered to the cluster size: creation fails (and
    /// lookups answer COORDINATOR_NOT_AVAILABLE) until enough brokers exist.
    pub fn replication_factor(self, settings: &Settings) -> i32 {
        let rf = settings.i64_or(&format!("{}.replication.factor", self.setting_prefix()), INTERNAL_TOPIC_REPLICATION_FACTOR_DEFAULT);
        rf.clamp(1, i64::from(i16::MAX)) as i32
    }

    /// Topic configs of the internal topic: compacted, with its own segment
    /// size (and for transactions, its own min ISR).
    pub fn topic_configs(self, settings: &Settings) -> Settings {
        let prefix = self.setting_prefix();
        let mut configs = BTreeMap::new();
        configs.insert("cleanup.policy".to_string(), "compact".to_string());
        let segment = settings.i64_or(&format!("{prefix}.segment.bytes"), INTERNAL_TOPIC_SEGMENT_BYTES_DEFAULT);
        configs.insert("segment.bytes".to_string(), segment.to_string());
        if self == Self::Transaction {
            let min_isr = settings.i64_or("transaction.state.log.min.isr", TRANSACTION_STATE_MIN_ISR_DEFAULT);
            configs.insert("min.insync.replicas".to_string(), min_isr.to_string());
        }
        Settings(configs)
    }
}

/// Whether `topic` is one of Kafka's internal topics (Metadata's
/// `is_internal`).
pub fn is_internal_topic(topic: &str) -> bool {
    topic == GROUP_METADATA_TOPIC || topic == TRANSACTION_STATE_TOPIC
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values from ../shared/KAFKA-FACTS.md, checked against Java's
    /// `String.hashCode` and GroupMetadataManager.partitionFor with 50
    /// partitions.
    #[test]
    fn group_coordinator_partition_is_java_hash_code_mod_offsets_partitions() {
        for (group, hash, partition) in [
            ("test-group", 627_841_412, 12),
            ("my-group", -1_906_497_762, 12),
            ("group1", -1_237_460_590, 40),
            ("g", 103, 3),
            ("test-consumer-group", -1_793_216_381, 31),
        ] {
            assert_eq!(java_string_hash_code(group), hash, "{group}");
            assert_eq!(partition_for(group, 50), partition, "{group}");
        }
    }

    #[test]
    fn java_hash_code_uses_utf16_code_units() {
        assert_eq!(java_string_hash_code(""), 0);
        // U+00E9 is one UTF-16 unit (233); U+1F600 is a surrogate pair
        // (0xD83D, 0xDE00): 0xD83D * 31 + 0xDE00.
        assert_eq!(java_string_hash_code("é"), 233);
        assert_eq!(java_string_hash_code("😀"), 0xD83D * 31 + 0xDE00);
    }

    #[test]
    fn utils_abs_maps_integer_min_value_to_zero() {
        assert_eq!(kafka_abs(i32::MIN), 0);
        assert_eq!(kafka_abs(-5), 5);
        // "polygenelubricants" is the classic Java string whose hashCode is
        // Integer.MIN_VALUE: it lands on partition 0.
        assert_eq!(java_string_hash_code("polygenelubricants"), i32::MIN);
        assert_eq!(partition_for("polygenelubricants", 50), 0);
    }

    #[test]
    fn internal_topics_are_compacted_with_kafka_defaults() {
        let s = Settings::new();
        assert_eq!(CoordinatorType::Group.partitions(&s), 50);
        assert_eq!(CoordinatorType::Group.replication_factor(&s), 3);
        let g = CoordinatorType::Group.topic_configs(&s);
        assert_eq!(g.0.get("cleanup.policy").map(String::as_str), Some("compact"));
        assert_eq!(g.0.get("min.insync.replicas"), None);
        let t = CoordinatorType::Transaction.topic_configs(&s);
        assert_eq!(t.0.get("min.insync.replicas").map(String::as_str), Some("2"));
        let mut custom = Settings::new();
        custom.0.insert("offsets.topic.num.partitions".into(), "7".into());
        assert_eq!(CoordinatorType::Group.partitions(&custom), 7);
        assert_eq!(CoordinatorType::Transaction.partitions(&custom), 50);
    }
}
