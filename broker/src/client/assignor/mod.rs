//! Consumer partition assignors (the "consumer" embedded protocol): the
//! group leader's client runs one of these over every member's
//! subscription and sends the result in SyncGroup.
//!
//! # Layout
//!
//! - this file: the [`PartitionAssignor`] trait, [`Subscription`] /
//!   [`Assignment`], [`RebalanceProtocol`] and [`by_name`].
//! - [`protocol`]: ConsumerProtocolSubscription / ConsumerProtocolAssignment
//!   v0-v3 encoding (the bytes inside JoinGroup metadata and SyncGroup
//!   assignments), errors for malformed bytes.
//! - one file per assignor: [`range`] (Kafka's RangeAssignor),
//!   [`round_robin`] (RoundRobinAssignor), [`sticky`] (StickyAssignor,
//!   eager, with its StickyAssignorUserData v0/v1) and
//!   [`cooperative_sticky`] (CooperativeStickyAssignor, KIP-429).
//! - `balance`: the sticky assignors' shared core (ownership resolution by
//!   generation, then balance, then stickiness).
//! - `tests`: properties of every assignor over random groups (proptest)
//!   and the shared test helpers.
//!
//! Every `assign` is a pure function of its inputs: members and topics
//! are iterated in sorted order, so the same inputs give the same
//! assignment on every run. The only state is what the sticky assignors
//! remember from `on_assignment` for their next subscription.

use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet};

mod balance;
pub mod cooperative_sticky;
pub mod protocol;
pub mod range;
pub mod round_robin;
pub mod sticky;

pub use cooperative_sticky::CooperativeStickyAssignor;
pub use protocol::{
    decode_assignment, decode_subscription, encode_assignment, encode_subscription, ProtocolError,
    CONSUMER_PROTOCOL_VERSION_LATEST,
};
pub use range::RangeAssignor;
pub use round_robin::RoundRobinAssignor;
pub use sticky::StickyAssignor;

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub topics: Vec<String>,
    pub user_data: Option<Bytes>,
    /// Partitions the member owns now (ConsumerProtocolSubscription v1+).
    pub owned_partitions: Vec<TopicPartition>,
    /// The generation the owned partitions belong to (v2+); -1 unknown.
    pub generation_id: i32,
    pub rack_id: Option<String>,
    /// The member's group.instance.id (KIP-345), filled in by the leader
    /// from the JoinGroup response, never sent inside the subscription
    /// bytes. Range and round-robin order static members by it.
    pub group_instance_id: Option<String>,
}

impl Default for Subscription {
    /// No topics, nothing owned, generation unknown (-1, Kafka's
    /// `DEFAULT_GENERATION`).
    fn default() -> Self {
        Subscription {
            topics: Vec::new(),
            user_data: None,
            owned_partitions: Vec::new(),
            generation_id: -1,
            rack_id: None,
            group_instance_id: None,
        }
    }
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

/// A built-in assignor by its protocol name ("range", "roundrobin",
/// "sticky", "cooperative-sticky") or Kafka class name
/// (`org.apache.kafka.clients.consumer.RangeAssignor`, ...). Each call
/// makes a new instance; a consumer keeps its own for its lifetime, since
/// the sticky assignors remember their last assignment (`on_assignment`)
/// for the next subscription's user data.
pub fn by_name(name: &str) -> Option<Box<dyn PartitionAssignor>> {
    match name {
        range::NAME | "org.apache.kafka.clients.consumer.RangeAssignor" => Some(Box::new(RangeAssignor)),
        round_robin::NAME | "org.apache.kafka.clients.consumer.RoundRobinAssignor" => Some(Box::new(RoundRobinAssignor)),
        sticky::NAME | "org.apache.kafka.clients.consumer.StickyAssignor" => Some(Box::new(StickyAssignor::default())),
        cooperative_sticky::NAME | "org.apache.kafka.clients.consumer.CooperativeStickyAssignor" => {
            Some(Box::new(CooperativeStickyAssignor::default()))
        }
        _ => None,
    }
}

/// Members in Kafka's `MemberInfo` order: static members (with a
/// group.instance.id) first, by instance id, then dynamic members by
/// member id.
pub(crate) fn sorted_members<'a>(members: impl Iterator<Item = (&'a String, &'a Subscription)>) -> Vec<&'a String> {
    let mut members: Vec<(&String, &Subscription)> = members.collect();
    members.sort_by(|(id_a, a), (id_b, b)| match (&a.group_instance_id, &b.group_instance_id) {
        (Some(x), Some(y)) => x.cmp(y).then(id_a.cmp(id_b)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => id_a.cmp(id_b),
    });
    members.into_iter().map(|(id, _)| id).collect()
}

/// An empty assignment for every member: assignors start from this so
/// that members who get nothing still appear in the result.
pub(crate) fn empty_assignments(subscriptions: &BTreeMap<String, Subscription>) -> BTreeMap<String, Assignment> {
    subscriptions.keys().map(|m| (m.clone(), Assignment::default())).collect()
}

#[cfg(test)]
mod tests;
