//! Consumer partition assignors (the "consumer" embedded protocol): the
//! group leader's client runs one of these over every member's
//! subscription and sends the result in SyncGroup.
//!
//! # Layout
//!
//! - this file: the [`PartitionAssignor`] trait, [`Subscription`] /
//!   [`Assignment`], [`RebalanceProtocol`] and [`by_name`].
//! - `protocol`: ConsumerProtocolSubscription / ConsumerProtocolAssignment
//!   encoding (the bytes inside JoinGroup metadata and SyncGroup
//!   assignments).
//! - one file per assignor: `range`, `round_robin`, `sticky`,
//!   `cooperative_sticky`.
//!
//! Everything here is a pure function of its inputs: members and topics
//! are iterated in sorted order, so the same inputs give the same
//! assignment on every run.

use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet};

/// (topic, partition).
pub type TopicPartition = (String, i32);

/// How a member gives up partitions in a rebalance (KIP-429).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RebalanceProtocol {
    /// Revoke everything before rejoining.
    Eager,
    /// Keep owned partitions; revoke only those reassigned, then rejoin.
    Cooperative,
}

/// One member's subscription as the leader sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscription {
    pub topics: Vec<String>,
    pub user_data: Option<Bytes>,
    /// Partitions the member owns now (ConsumerProtocolSubscription v1+).
    pub owned_partitions: Vec<TopicPartition>,
    /// The generation the owned partitions belong to (v2+); -1 unknown.
    pub generation_id: i32,
    pub rack_id: Option<String>,
}

/// One member's assignment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assignment {
    pub partitions: Vec<TopicPartition>,
    pub user_data: Option<Bytes>,
}

/// Kafka's ConsumerPartitionAssignor.
pub trait PartitionAssignor: Send + Sync {
    /// The protocol name sent in JoinGroup ("range", "roundrobin",
    /// "sticky", "cooperative-sticky", or a custom name).
    fn name(&self) -> &str;

    /// Protocols this assignor supports, most preferred last is not
    /// implied: the consumer uses the highest one common to all its
    /// assignors (Kafka's rule).
    fn supported_protocols(&self) -> Vec<RebalanceProtocol> {
        vec![RebalanceProtocol::Eager]
    }

    /// `partitions_per_topic`: partition count of every subscribed topic
    /// the leader's metadata knows. `subscriptions`: member id → its
    /// subscription. Returns an assignment for every member (possibly
    /// empty).
    fn assign(
        &self,
        partitions_per_topic: &BTreeMap<String, i32>,
        subscriptions: &BTreeMap<String, Subscription>,
    ) -> BTreeMap<String, Assignment>;

    /// User data this member puts in its subscription.
    fn subscription_user_data(&self, _topics: &BTreeSet<String>) -> Option<Bytes> {
        None
    }

    /// Called on every member with its assignment after SyncGroup.
    fn on_assignment(&self, _assignment: &Assignment, _generation_id: i32) {}
}

/// A built-in assignor by its protocol name or Kafka class name
/// (`org.apache.kafka.clients.consumer.RangeAssignor`, ...).
pub fn by_name(name: &str) -> Option<Box<dyn PartitionAssignor>> {
    let _ = name;
    None
}
