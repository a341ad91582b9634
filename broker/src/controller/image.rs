//! The metadata image: what the controller knows and every broker mirrors.

use crate::config::Settings;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// No leader: every ISR member is fenced (and unclean election is off).
pub const NO_LEADER: i32 = -1;

/// A registered broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerInfo {
    pub id: i32,
    pub host: String,
    pub port: u16,
    /// Fenced brokers missed heartbeats: they lead nothing and leave ISRs.
    pub fenced: bool,
    /// Changes on every broker process start, so a restart is seen even when
    /// it is faster than the session timeout.
    pub incarnation: u64,
}

/// One partition's replication state, as the controller decided it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    pub partition: i32,
    /// Assigned replicas; the first is the preferred leader.
    pub replicas: Vec<i32>,
    /// In-sync replicas; always contains the leader when there is one.
    pub isr: Vec<i32>,
    pub leader: i32,
    /// Bumped on every leader change (KIP-101, KIP-320).
    pub leader_epoch: i32,
    /// Bumped on every change of this record (ISR or leader), for
    /// AlterPartition's optimistic concurrency (KIP-497's partition epoch).
    pub partition_epoch: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicInfo {
    pub name: String,
    /// 16 bytes as Kafka's Uuid, stable for the topic's life.
    pub topic_id: [u8; 16],
    /// Topic-level config overrides.
    pub configs: Settings,
    pub partitions: Vec<PartitionState>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataImage {
    /// Bumped on every change; brokers fetch the image when theirs is older.
    pub version: u64,
    pub brokers: BTreeMap<i32, BrokerInfo>,
    pub topics: BTreeMap<String, TopicInfo>,
    /// The first producer id no broker has been given yet (KIP-730: the
    /// controller hands out blocks of ids and records the next free one in
    /// the replicated metadata, so ids stay unique across brokers, broker
    /// restarts and controller failover).
    #[serde(default)]
    pub next_producer_id: i64,
}

impl MetadataImage {
    pub fn partition(&self, topic: &str, partition: i32) -> Option<&PartitionState> {
        self.topics.get(topic)?.partitions.get(usize::try_from(partition).ok()?)
    }

    pub fn is_fenced(&self, broker: i32) -> bool {
        self.brokers.get(&broker).map(|b| b.fenced).unwrap_or(true)
    }

    /// Checks the image's invariants; panics with a message on violation.
    pub fn assert_invariants(&self) {
        for t in self.topics.values() {
            for (i, p) in t.partitions.iter().enumerate() {
                assert_eq!(p.partition as usize, i, "{}: partition index", t.name);
                assert!(!p.isr.is_empty(), "{}/{}: empty ISR", t.name, i);
                assert!(
                    p.isr.iter().all(|r| p.replicas.contains(r)),
                    "{}/{}: ISR {:?} not within replicas {:?}",
                    t.name, i, p.isr, p.replicas
                );
                if p.leader != NO_LEADER {
                    assert!(p.isr.contains(&p.leader), "{}/{}: leader {} not in ISR {:?}", t.name, i, p.leader, p.isr);
                }
            }
        }
    }
}
